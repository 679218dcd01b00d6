//! The knowledge base's rules as pure functions: who sees and edits an article ([`scope`]),
//! how its versions move from draft to published ([`article`]), and what changed between two
//! versions ([`diff`]), what a reply should not say ([`lint`]), which closed cases are worth
//! learning from ([`candidates`]) with personal information removed ([`redact`]). No I/O, no
//! clock reads.

pub mod article;
pub mod candidates;
pub mod diff;
pub mod lint;
pub mod redact;
pub mod scope;
