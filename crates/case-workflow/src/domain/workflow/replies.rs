//! Replies to the complainant as the knowledge base's reply lint found them (D-KB-3). A first
//! response or decision notice arrives here with its lint already done (or not possible): the
//! reply is kept with the case whatever the lint found, except where the case's institution
//! blocks replies with banned phrases and the lint found one, when the whole change is refused.
//! A reply the knowledge base could not lint is recorded as pending and linted later
//! ([`Command::RecordLint`]), never refused or lost for it.

use std::collections::BTreeSet;

use redress_platform::names::OrgUnit;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, ReplyFinding, ReplyKind, ReplyLint, ReplyLintStatus};

use super::{Change, Context, WorkflowError, details};

/// The knowledge base's name for the kind of finding an institution may block on.
pub const BANNED_PHRASE: &str = "BANNED_PHRASE";
/// The knowledge base's name for the severity of a finding that must not be sent as it is.
pub const ERROR_SEVERITY: &str = "ERROR";

/// Which institutions refuse replies with banned phrases.
#[derive(Debug, Clone, Default)]
pub struct ReplyRules {
    /// Institution units (`institutions/{id}`) with `block_banned_phrases` on.
    pub blocking_institutions: BTreeSet<String>,
}

impl ReplyRules {
    /// Whether replies on cases of `org_unit` are refused when they carry a banned phrase.
    pub fn blocks(&self, org_unit: &str) -> bool {
        OrgUnit::try_from_str(org_unit)
            .is_ok_and(|unit| self.blocking_institutions.contains(unit.institution().as_str()))
    }
}

/// A reply as it reached the workflow: what the lint made of it, and whether the knowledge base
/// itself answered that it must not be sent (its own per-institution blocking).
#[derive(Debug, Clone, PartialEq)]
pub struct LintedReply {
    /// The reply's lint; `lint_id`, `record_time` and `recorded_by` are set when it is recorded.
    pub lint: ReplyLint,
    pub knowledge_base_blocked: bool,
}

/// Whether a finding is of the kind an institution blocks on: a banned phrase the rules call an
/// error (a banned phrase of lesser severity is only flagged).
pub fn is_blocking(finding: &ReplyFinding) -> bool {
    finding.kind == BANNED_PHRASE && finding.severity == ERROR_SEVERITY
}

/// The request field a reply of `kind` comes in.
pub fn field_of(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::FirstResponse => "note",
        _ => "decision_notice",
    }
}

/// Refuses the reply when its case's institution blocks banned phrases (or the knowledge base
/// answered that it must not be sent) and the lint found one. An unlinted reply is never
/// refused: a helper service being down must not stop the complainant being answered.
pub(super) fn admit(case: &Case, reply: &LintedReply, rules: &ReplyRules) -> Result<(), WorkflowError> {
    let lint = &reply.lint;
    if lint.status != ReplyLintStatus::Linted as i32 {
        return Ok(());
    }
    let banned = lint.findings.iter().any(is_blocking);
    if banned && (reply.knowledge_base_blocked || rules.blocks(&case.org_unit)) {
        let kind = ReplyKind::try_from(lint.kind).unwrap_or(ReplyKind::Unspecified);
        return Err(WorkflowError::ReplyBlocked {
            field: field_of(kind),
            rules_version: lint.rules_version.clone(),
            findings: lint.findings.clone(),
        });
    }
    Ok(())
}

/// Keeps the reply's lint with the case and notes it in the change's audit entry.
pub(super) fn record(case: &mut Case, reply: LintedReply, change: &mut Change, ctx: &Context<'_>) {
    let mut lint = reply.lint;
    lint.lint_id = format!("r{}", case.reply_lints.len() + 1);
    lint.record_time = Some(to_timestamp(ctx.now));
    lint.recorded_by = ctx.actor();
    if lint.status == ReplyLintStatus::Linted as i32 {
        lint.lint_time = Some(to_timestamp(ctx.now));
    }
    change.details.extend(summary(&lint));
    case.reply_lints.push(lint);
}

/// The audit details that say what the lint made of a reply.
fn summary(lint: &ReplyLint) -> [(String, String); 3] {
    let status = ReplyLintStatus::try_from(lint.status).unwrap_or(ReplyLintStatus::Unspecified);
    let found = match status {
        ReplyLintStatus::Linted if lint.findings.is_empty() => "none".to_owned(),
        ReplyLintStatus::Linted => lint.findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>().join(","),
        ReplyLintStatus::NotConfigured => "not linted: no knowledge base configured".to_owned(),
        _ => format!("not linted yet: {}", lint.pending_reason),
    };
    [
        ("lint_id".to_owned(), lint.lint_id.clone()),
        ("lint_findings".to_owned(), found),
        ("lint_rules_version".to_owned(), lint.rules_version.clone()),
    ]
}

/// Whether any reply of the case waits to be linted.
pub fn lint_pending(case: &Case) -> bool {
    case.reply_lints.iter().any(|l| l.status == ReplyLintStatus::Pending as i32)
}

/// The lint of a reply recorded while the knowledge base could not be reached. A reply linted
/// meanwhile, or no longer waiting, is [`WorkflowError::Unchanged`].
pub(super) fn complete(case: &mut Case, done: ReplyLint, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    let pending = case
        .reply_lints
        .iter_mut()
        .find(|l| l.lint_id == done.lint_id && l.status == ReplyLintStatus::Pending as i32)
        .ok_or(WorkflowError::Unchanged)?;
    if done.status != ReplyLintStatus::Linted as i32 {
        return Err(WorkflowError::Unchanged);
    }
    pending.status = done.status;
    pending.rules_version = done.rules_version;
    pending.findings = done.findings;
    pending.lint_time = Some(to_timestamp(ctx.now));
    pending.pending_reason.clear();
    let lint = pending.clone();
    let mut change = Change::new("reply.linted", details([("kind", kind_name(lint.kind))]));
    change.details.extend(summary(&lint));
    Ok(change)
}

fn kind_name(kind: i32) -> String {
    ReplyKind::try_from(kind).unwrap_or(ReplyKind::Unspecified).as_str_name().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use redress_proto::redress::case::v1::CaseState;
    use redress_proto::redress::common::v1::Channel;

    use super::*;
    use crate::domain::tests::{handler, opened, rules, run};
    use crate::domain::workflow::{Command, Rules};

    const WHEN: &str = "2026-03-02T10:00:00+08:00";

    fn banned() -> ReplyFinding {
        ReplyFinding {
            rule: "banned.company-policy".to_owned(),
            kind: BANNED_PHRASE.to_owned(),
            severity: ERROR_SEVERITY.to_owned(),
            start: 0,
            end: 6,
            text: "这是公司规定".to_owned(),
            message: "why".to_owned(),
            alternatives: vec!["我来为您说明这项规定的原因".to_owned()],
        }
    }

    fn linted(status: ReplyLintStatus, findings: Vec<ReplyFinding>) -> LintedReply {
        let lint = ReplyLint {
            kind: ReplyKind::FirstResponse as i32,
            reply: "这是公司规定，我们会在24小时内回复您。".to_owned(),
            status: status as i32,
            rules_version: if status == ReplyLintStatus::Linted { "2026.1".to_owned() } else { String::new() },
            findings,
            pending_reason: if status == ReplyLintStatus::Pending {
                "Unavailable: down".to_owned()
            } else {
                String::new()
            },
            ..ReplyLint::default()
        };
        LintedReply { lint, knowledge_base_blocked: false }
    }

    fn respond(reply: LintedReply) -> Command {
        let note = reply.lint.reply.clone();
        Command::Linted {
            command: Box::new(Command::FirstResponse { note, channel: Channel::Phone }),
            reply: Box::new(reply),
        }
    }

    fn blocking(rules: &mut Rules) {
        rules.replies.blocking_institutions.insert("institutions/demo".to_owned());
    }

    #[test]
    fn a_reply_is_kept_with_its_findings_where_the_institution_does_not_block() {
        let rules = rules();
        let mut case = opened("2026-03-02T09:00:00+08:00", &rules);
        run(&mut case, &handler(), WHEN, respond(linted(ReplyLintStatus::Linted, vec![banned()])), &rules).unwrap();
        let lint = &case.reply_lints[0];
        assert_eq!((lint.lint_id.as_str(), lint.recorded_by.as_str()), ("r1", "u-handler"));
        assert!(lint.record_time.is_some() && lint.lint_time.is_some());
        assert_eq!(lint.findings, [banned()]);
        assert!(case.first_response_time.is_some());
        assert!(!lint_pending(&case));
    }

    #[test]
    fn a_banned_phrase_is_refused_where_the_institution_blocks_and_the_case_stays_as_it_was() {
        let mut rules = rules();
        blocking(&mut rules);
        let mut case = opened("2026-03-02T09:00:00+08:00", &rules);
        let refused =
            run(&mut case, &handler(), WHEN, respond(linted(ReplyLintStatus::Linted, vec![banned()])), &rules);
        let Err(WorkflowError::ReplyBlocked { field, rules_version, findings }) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!((field, rules_version.as_str(), findings), ("note", "2026.1", vec![banned()]));

        // A banned phrase the rules only warn about is not blocked.
        let mut case = opened("2026-03-02T09:00:00+08:00", &rules);
        let warning = ReplyFinding { severity: "WARNING".to_owned(), ..banned() };
        run(&mut case, &handler(), WHEN, respond(linted(ReplyLintStatus::Linted, vec![warning])), &rules).unwrap();
        assert_eq!(case.reply_lints.len(), 1);
    }

    #[test]
    fn the_knowledge_bases_own_blocking_is_honoured_too() {
        let rules = rules();
        let mut case = opened("2026-03-02T09:00:00+08:00", &rules);
        let reply = LintedReply { knowledge_base_blocked: true, ..linted(ReplyLintStatus::Linted, vec![banned()]) };
        let refused = run(&mut case, &handler(), WHEN, respond(reply), &rules);
        assert!(matches!(refused, Err(WorkflowError::ReplyBlocked { .. })), "{refused:?}");
    }

    #[test]
    fn an_unlinted_reply_is_never_refused_and_a_pending_one_is_linted_later() {
        let mut rules = rules();
        blocking(&mut rules);
        let mut case = opened("2026-03-02T09:00:00+08:00", &rules);
        run(&mut case, &handler(), WHEN, respond(linted(ReplyLintStatus::Pending, Vec::new())), &rules).unwrap();
        assert!(case.first_response_time.is_some());
        assert!(lint_pending(&case));
        assert!(case.reply_lints[0].lint_time.is_none());

        // Linted later: recorded, even with the banned phrase; the reply went out already.
        let done = ReplyLint { lint_id: "r1".to_owned(), ..linted(ReplyLintStatus::Linted, vec![banned()]).lint };
        run(&mut case, &handler(), "2026-03-02T11:00:00+08:00", Command::RecordLint(Box::new(done.clone())), &rules)
            .unwrap();
        let lint = &case.reply_lints[0];
        assert_eq!((lint.status, lint.findings.clone()), (ReplyLintStatus::Linted as i32, vec![banned()]));
        assert!(lint.lint_time.is_some() && lint.pending_reason.is_empty());
        assert!(!lint_pending(&case));
        // Once linted, a second lint changes nothing.
        let again =
            run(&mut case, &handler(), "2026-03-02T12:00:00+08:00", Command::RecordLint(Box::new(done)), &rules);
        assert!(matches!(again, Err(WorkflowError::Unchanged)), "{again:?}");

        let mut other = opened("2026-03-02T09:00:00+08:00", &rules);
        run(&mut other, &handler(), WHEN, respond(linted(ReplyLintStatus::NotConfigured, Vec::new())), &rules).unwrap();
        assert_eq!(other.reply_lints[0].status, ReplyLintStatus::NotConfigured as i32);
        assert!(!lint_pending(&other));
        assert_eq!(other.state, CaseState::Accepted as i32);
    }

    #[test]
    fn blocking_is_set_per_institution_and_covers_its_branches() {
        let rules = ReplyRules { blocking_institutions: ["institutions/strict".to_owned()].into() };
        assert!(rules.blocks("institutions/strict/branches/sh"));
        assert!(rules.blocks("institutions/strict"));
        assert!(!rules.blocks("institutions/strict-other"));
        assert!(!rules.blocks("/"));
    }
}
