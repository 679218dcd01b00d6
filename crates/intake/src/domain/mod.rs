//! Intake's pure logic: validating a submitted complaint, checksums of Chinese identifiers,
//! classification, the receipt's deadlines, who took a complaint and the complainant's answer
//! to its read-back, what accepting a complaint records and what may happen to it afterwards,
//! personal information at rest, the chained access log and who a complainant is. No I/O here.

pub mod acceptance;
pub mod access_log;
pub mod classify;
pub mod contact;
pub mod deadlines;
pub mod identifiers;
pub mod import;
pub mod lifecycle;
pub mod mask;
pub mod pii;
pub mod subjects;
pub mod validate;

pub use validate::validate_submission;
