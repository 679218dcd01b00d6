//! Intake's pure logic: validating a submitted complaint, checksums of Chinese identifiers,
//! masking personal information, and the receipt's deadlines. No I/O here.

pub mod classify;
pub mod identifiers;
pub mod import;
pub mod mask;
pub mod pii;
pub mod validate;

pub use validate::validate_submission;
