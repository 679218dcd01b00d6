//! The escalation service's rules as pure functions over its records: incidents and their
//! working groups, timelines and crisis stages ([`incident`]), the one approved statement
//! ([`statement`]), the escalation ladder ([`ladder`]), early-warning rules ([`early_warning`]),
//! and what the service asks of cases through CaseService ([`actions`]). Nothing here reads a
//! clock, a file at run time or a database: callers pass `now` and what they loaded, and get
//! back what to write.

pub mod actions;
pub mod early_warning;
mod error;
pub mod grouping;
pub mod incident;
pub mod ladder;
pub mod malicious;
pub mod media;
pub mod statement;
pub mod vip;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redress_platform::principal::Principal;
use redress_proto::redress::common::v1::Grade;

pub use error::DomainError;

/// The subject the service acts as when a rule, a threshold or a timer decides.
pub const SERVICE_ACTOR: &str = "service:escalation";

/// Who acts and when.
#[derive(Debug, Clone)]
pub struct Actor {
    pub subject: String,
    pub roles: Vec<String>,
    pub now: DateTime<Utc>,
}

impl Actor {
    pub fn of(principal: &Principal, now: DateTime<Utc>) -> Self {
        Self { subject: principal.subject.clone(), roles: principal.roles.clone(), now }
    }

    /// The service itself, deciding by rule.
    pub fn service(now: DateTime<Utc>) -> Self {
        Self { subject: SERVICE_ACTOR.to_owned(), roles: vec!["service".to_owned()], now }
    }

    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

/// What a change did, as its event and audit trail name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// E.g. "incident.declared".
    pub action: &'static str,
    /// Stable key/value pairs, no personal information.
    pub details: BTreeMap<String, String>,
}

impl Change {
    pub fn new<const N: usize>(action: &'static str, details: [(&str, String); N]) -> Self {
        Self { action, details: details.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
    }
}

/// The grade's rank: general < important < urgent < major (unspecified lowest).
pub fn grade_rank(grade: i32) -> i32 {
    match Grade::try_from(grade).unwrap_or(Grade::Unspecified) {
        Grade::Unspecified => 0,
        Grade::General => 1,
        Grade::Important => 2,
        Grade::Urgent => 3,
        Grade::Major => 4,
    }
}

/// A grade named in data files: "general", "important", "urgent", "major".
pub fn parse_grade(name: &str) -> Option<Grade> {
    match name {
        "general" => Some(Grade::General),
        "important" => Some(Grade::Important),
        "urgent" => Some(Grade::Urgent),
        "major" => Some(Grade::Major),
        _ => None,
    }
}

/// The zh-CN name of a grade, for reasons people read.
pub fn grade_label(grade: Grade) -> &'static str {
    match grade {
        Grade::Unspecified => "未分级",
        Grade::General => "一般",
        Grade::Important => "重要",
        Grade::Urgent => "紧急",
        Grade::Major => "重大",
    }
}

/// The institution unit (`institutions/{id}`) of an organisation unit string already in
/// canonical form.
pub fn institution_of(org_unit: &str) -> String {
    org_unit.splitn(3, '/').take(2).collect::<Vec<_>>().join("/")
}

/// A person as an alert or step recipient: `user:{subject}` (a subject already of that form
/// is taken as it is).
pub fn user_recipient(subject: &str) -> String {
    if subject.starts_with("user:") { subject.to_owned() } else { format!("user:{subject}") }
}
