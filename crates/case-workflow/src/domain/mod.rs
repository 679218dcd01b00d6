//! Case-workflow's pure logic, free of I/O.

pub mod audit;
