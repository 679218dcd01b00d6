//! Case-workflow's pure logic, free of I/O.

pub mod audit;
pub mod clock;
pub mod revision;
pub mod workflow;

#[cfg(test)]
pub(crate) mod tests;
