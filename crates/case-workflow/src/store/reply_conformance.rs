//! Replies the knowledge base could not lint, on both case stores: found again through the
//! `lint_pending` index, linted once by case-workflow itself, then no longer found.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use redress_platform::db::DatabaseConfig;
use redress_platform::principal::Principal;
use redress_platform::time::{now, to_timestamp};
use redress_proto::redress::case::v1::{Case, ReplyFinding, ReplyKind, ReplyLint, ReplyLintStatus};
use redress_proto::redress::common::v1::{Channel, Event};
use redress_proto::redress::intake::v1::ComplaintAccepted;

use super::{CaseQuery, CaseStore, Update};
use crate::domain::tests::{handler, rules};
use crate::domain::workflow::{Command, LintedReply};
use crate::lint::{ReplyLintConfig, ReplyLinter, relint};

async fn open(config: &DatabaseConfig) -> Arc<dyn CaseStore> {
    crate::open_store(config, Arc::new(rules()), &redress_platform::host::Supervisor::detached())
        .await
        .expect("store opens")
}

redress_platform::conformance_suite!(
    open = open;
    a_reply_recorded_unlinted_is_found_again_and_linted_once,
);

fn accepted(position: i64, n: u32) -> Event {
    let payload = ComplaintAccepted {
        complaint: format!("complaints/{n:08}"),
        complaint_number: format!("20261125{n:08}"),
        channel: 3,
        org_unit: "institutions/demo".to_owned(),
        grade: 1,
        receive_time: Some(to_timestamp(now())),
        ..Default::default()
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        org_unit: "institutions/demo".to_owned(),
        ..Default::default()
    }
}

fn id_of(case: &Case) -> String {
    case.name.strip_prefix("cases/").unwrap().to_owned()
}

async fn change(store: &Arc<dyn CaseStore>, id: &str, who: Principal, command: Command) -> Case {
    let update = Update {
        id: id.to_owned(),
        other: None,
        expected_version: None,
        request: None,
        principal: Arc::new(who),
        command,
    };
    store.update(update).await.unwrap()
}

fn respond(note: &str, status: ReplyLintStatus) -> Command {
    let lint = ReplyLint {
        kind: ReplyKind::FirstResponse as i32,
        reply: note.to_owned(),
        status: status as i32,
        pending_reason: "Unavailable: connection refused".to_owned(),
        ..ReplyLint::default()
    };
    Command::Linted {
        command: Box::new(Command::FirstResponse { note: note.to_owned(), channel: Channel::Phone }),
        reply: Box::new(LintedReply { lint, knowledge_base_blocked: false }),
    }
}

async fn a_reply_recorded_unlinted_is_found_again_and_linted_once(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1), accepted(2, 2)]).await.unwrap();
    let cases = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    let (pending, not_configured) = (id_of(&cases[0].case), id_of(&cases[1].case));
    assert!(store.lint_pending("", 10).await.unwrap().is_empty());

    let note = "这是公司规定，我们会在24小时内回复您。";
    let answered = change(&store, &pending, handler(), respond(note, ReplyLintStatus::Pending)).await;
    assert!(answered.first_response_time.is_some(), "the reply is recorded all the same");
    change(&store, &not_configured, handler(), respond(note, ReplyLintStatus::NotConfigured)).await;
    assert_eq!(store.lint_pending("", 10).await.unwrap(), std::slice::from_ref(&pending));
    assert!(store.lint_pending(&pending, 10).await.unwrap().is_empty());

    // The knowledge base still cannot be reached: the relinter leaves it pending.
    let me = redress_platform::testing::credentials(Principal::service("case-workflow", &[]), "knowledge-base");
    let config = ReplyLintConfig { timeout_ms: 300, attempts: 1, retry_interval_ms: 1_000 };
    let down = ReplyLinter::new("http://127.0.0.1:9", me, config, None).unwrap();
    assert_eq!(relint(store.as_ref(), &down).await.unwrap(), 0);
    assert_eq!(store.lint_pending("", 10).await.unwrap(), std::slice::from_ref(&pending));

    // Linted later, as case-workflow itself: the findings join the case, the audit trail says so.
    let finding = ReplyFinding {
        rule: "banned.company-policy".to_owned(),
        kind: "BANNED_PHRASE".to_owned(),
        severity: "ERROR".to_owned(),
        start: 0,
        end: 6,
        text: "这是公司规定".to_owned(),
        ..ReplyFinding::default()
    };
    let done = ReplyLint {
        lint_id: "r1".to_owned(),
        status: ReplyLintStatus::Linted as i32,
        rules_version: "2026.1".to_owned(),
        findings: vec![finding.clone()],
        ..ReplyLint::default()
    };
    let system = Principal {
        org_unit: redress_platform::principal::ROOT_ORG_UNIT.to_owned(),
        ..Principal::service("case-workflow", &[])
    };
    let linted = change(&store, &pending, system, Command::RecordLint(Box::new(done))).await;
    let lint = &linted.reply_lints[0];
    assert_eq!((lint.status, lint.reply.as_str()), (ReplyLintStatus::Linted as i32, note));
    assert_eq!(lint.findings, [finding]);
    assert!(store.lint_pending("", 10).await.unwrap().is_empty());
    let trail = store.audit_trail(&pending).await.unwrap().unwrap();
    let entry = trail.entries.last().unwrap();
    assert_eq!(entry.action, "reply.linted");
    assert_eq!(entry.details["lint_findings"], "banned.company-policy");
    assert_eq!(store.get(&pending).await.unwrap().unwrap(), linted);
}
