//! Case-workflow's pure logic, free of I/O.

pub mod audit;
pub mod clock;
pub mod free_text;
pub mod revision;
pub mod routing;
pub mod workflow;

#[cfg(test)]
mod people_tests;
#[cfg(test)]
mod progress_tests;
#[cfg(test)]
pub(crate) mod tests;
