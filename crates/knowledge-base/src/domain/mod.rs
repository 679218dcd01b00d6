//! The knowledge base's rules as pure functions: who sees and edits an article ([`scope`]),
//! how its versions move from draft to published ([`article`]), and what changed between two
//! versions ([`diff`]). No I/O, no clock reads.

pub mod article;
pub mod diff;
pub mod scope;
