//! Replies to the complainant linted through the knowledge base (D-KB-3): case-workflow lints
//! each first response and decision notice as its own service principal and keeps the findings
//! with the case; an institution that blocks banned phrases has such a reply refused with
//! nothing changed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use redress::{InstitutionWorkflow, WorkflowConfig};
use redress_integration_tests::Sandbox;
use redress_proto::redress::case::v1::{
    AssignCaseRequest, Case, CaseState, DecideCaseRequest, GetCaseRequest, ListAuditEntriesRequest,
    ProposeResolutionRequest, RecordFirstResponseRequest, ReplyKind, ReplyLint, ReplyLintStatus, ResolutionType,
    TransitionCaseRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

/// An institution that refuses replies with banned phrases.
const STRICT: &str = "institutions/strict-bank";
/// The seeds' recommended first response (script "首次答复客户的承诺话术").
const RECOMMENDED_FIRST_RESPONSE: &str = "针对您反映的问题，我们将立即进行核实，并在24小时内给您回复。";
/// A decision notice with grounds, next steps and the right to a review (guide "处理决定告知书怎么写").
const COMPLETE_NOTICE: &str = "根据您与本行签订的《信用卡领用合约》第五条，本行退还已收取的年费。我们将于3个工作日内将款项退回您的账户。\
如您对处理结果有异议，可在收到本决定之日起30日内向我行申请核查。";

async fn sandbox() -> Sandbox {
    Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        let strict = InstitutionWorkflow { block_banned_phrases: true };
        options.workflow = Some(WorkflowConfig {
            institutions: BTreeMap::from([(STRICT.to_owned(), strict)]),
            ..WorkflowConfig::default()
        });
    })
    .await
    .unwrap()
}

async fn case_at(sandbox: &Sandbox, request_id: &str, org_unit: &str) -> Case {
    let mut complaint = redress_intake::testing::complaint("信用卡满足免年费条件仍被扣年费。");
    complaint.org_unit = org_unit.to_owned();
    sandbox.submit_and_open(request_id, complaint).await
}

fn first_response(case: &Case, note: &str) -> RecordFirstResponseRequest {
    RecordFirstResponseRequest { name: case.name.clone(), note: note.to_owned(), ..Default::default() }
}

/// Takes the case to a proposed resolution, ready to be decided.
async fn to_proposed(sandbox: &Sandbox, case: &Case) {
    let mut cases = sandbox.cases();
    let assign = AssignCaseRequest {
        name: case.name.clone(),
        assignee: "user:li-na".to_owned(),
        department: "cards".to_owned(),
        ..Default::default()
    };
    cases.assign_case(assign).await.unwrap();
    let investigate = TransitionCaseRequest {
        name: case.name.clone(),
        state: CaseState::Investigating as i32,
        reason: "调取合同".to_owned(),
        ..Default::default()
    };
    cases.transition_case(investigate).await.unwrap();
    let propose = ProposeResolutionRequest {
        name: case.name.clone(),
        r#type: ResolutionType::ApologyCompensation as i32,
        grounds: "客户满足免年费条件".to_owned(),
        ..Default::default()
    };
    cases.propose_resolution(propose).await.unwrap();
}

fn only_lint(case: &Case) -> &ReplyLint {
    assert_eq!(case.reply_lints.len(), 1, "{:?}", case.reply_lints);
    &case.reply_lints[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_response_with_a_banned_phrase_is_recorded_with_its_finding_and_span() {
    let sandbox = sandbox().await;
    let case = case_at(&sandbox, "lint-first-1", "institutions/demo-bank/branches/shanghai").await;
    let note = "您好，这是公司规定，年费不能退。我们将在24小时内给您回复。";
    let answered = sandbox.cases().record_first_response(first_response(&case, note)).await.unwrap().into_inner();

    assert!(answered.first_response_time.is_some());
    let lint = only_lint(&answered);
    assert_eq!(
        (lint.kind, lint.status, lint.reply.as_str()),
        (ReplyKind::FirstResponse as i32, ReplyLintStatus::Linted as i32, note)
    );
    assert!(!lint.rules_version.is_empty() && lint.lint_time.is_some());
    assert_eq!(lint.recorded_by, "dev");
    let banned = lint.findings.iter().find(|f| f.rule == "banned.company-policy").unwrap();
    assert_eq!((banned.kind.as_str(), banned.severity.as_str()), ("BANNED_PHRASE", "ERROR"));
    // "您好，" is three characters: the phrase spans characters 3..9 of the reply.
    assert_eq!((banned.start, banned.end, banned.text.as_str()), (3, 9, "这是公司规定"));
    let spanned: String = note.chars().skip(banned.start as usize).take((banned.end - banned.start) as usize).collect();
    assert_eq!(spanned, "这是公司规定");
    assert!(!banned.alternatives.is_empty() && !banned.message.is_empty());
    // "不能" with nothing said of what can be done is negative wording.
    assert!(lint.findings.iter().any(|f| f.kind == "NEGATIVE_WORDING" && f.text == "不能"), "{:?}", lint.findings);

    // The case's trail says what the lint found, with the first response.
    let trail = sandbox
        .cases()
        .list_audit_entries(ListAuditEntriesRequest { case: case.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let entry = trail.audit_entries.iter().find(|e| e.action == "case.first_response").unwrap();
    assert!(entry.details["lint_findings"].contains("banned.company-policy"), "{:?}", entry.details);
    assert_eq!(entry.details["lint_rules_version"], lint.rules_version);

    // Read again, the case keeps it.
    let read = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
    assert_eq!(read.reply_lints, answered.reply_lints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_reply_in_the_recommended_wording_has_no_finding() {
    let sandbox = sandbox().await;
    // At the strict institution too: a clean reply goes through.
    let case = case_at(&sandbox, "lint-clean-1", STRICT).await;
    let answered = sandbox
        .cases()
        .record_first_response(first_response(&case, RECOMMENDED_FIRST_RESPONSE))
        .await
        .unwrap()
        .into_inner();
    let lint = only_lint(&answered);
    assert_eq!(lint.status, ReplyLintStatus::Linted as i32);
    assert!(lint.findings.is_empty(), "{:?}", lint.findings);

    to_proposed(&sandbox, &case).await;
    let decide = DecideCaseRequest {
        name: case.name.clone(),
        decision_notice: COMPLETE_NOTICE.to_owned(),
        ..Default::default()
    };
    let decided = sandbox.cases().decide_case(decide).await.unwrap().into_inner();
    let notice = &decided.reply_lints[1];
    assert_eq!((notice.kind, notice.status), (ReplyKind::DecisionNotice as i32, ReplyLintStatus::Linted as i32));
    assert!(notice.findings.is_empty(), "{:?}", notice.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_notice_without_the_review_right_has_a_missing_element_finding() {
    let sandbox = sandbox().await;
    let case = case_at(&sandbox, "lint-notice-1", "institutions/demo-bank/branches/shanghai").await;
    to_proposed(&sandbox, &case).await;
    let notice =
        "根据您与本行签订的《信用卡领用合约》第五条，本行退还已收取的年费。我们将于3个工作日内将款项退回您的账户。";
    let decide =
        DecideCaseRequest { name: case.name.clone(), decision_notice: notice.to_owned(), ..Default::default() };
    let decided = sandbox.cases().decide_case(decide).await.unwrap().into_inner();

    assert_eq!(decided.state, CaseState::Decided as i32);
    let lint = only_lint(&decided);
    assert_eq!((lint.kind, lint.status), (ReplyKind::DecisionNotice as i32, ReplyLintStatus::Linted as i32));
    let rules: Vec<_> = lint.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["missing.review-right"], "grounds and next steps are there");
    let missing = &lint.findings[0];
    let length = notice.chars().count() as i32;
    assert_eq!((missing.kind.as_str(), missing.start, missing.end), ("MISSING_ELEMENT", length, length));
    assert!(missing.alternatives.iter().any(|a| a.contains("30日内")), "{:?}", missing.alternatives);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_institution_blocks_banned_phrases_such_a_reply_is_refused_and_nothing_changes() {
    let sandbox = sandbox().await;
    let case = case_at(&sandbox, "lint-block-1", &format!("{STRICT}/branches/hangzhou")).await;
    let before = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();

    let note = "这是公司规定，您别着急，我们会在24小时内回复您。";
    let status = sandbox.cases().record_first_response(first_response(&case, note)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "REPLY_BLOCKED");
    assert_eq!(info.metadata["rules"], "banned.company-policy,banned.calm-down");
    assert_eq!(info.metadata["spans"], "0-6,7-11");
    assert_eq!(info.metadata["field"], "note");
    let violations = &details.bad_request().unwrap().field_violations;
    assert!(violations.iter().all(|v| v.field == "note"));
    assert!(violations[0].description.contains("这是公司规定"), "{violations:?}");

    // Nothing was written: same version, no response time, no contact, no lint.
    let after = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
    assert_eq!(after, before);
    assert!(after.first_response_time.is_none() && after.contacts.is_empty() && after.reply_lints.is_empty());

    // Reworded, it goes through.
    let answered = sandbox
        .cases()
        .record_first_response(first_response(&case, RECOMMENDED_FIRST_RESPONSE))
        .await
        .unwrap()
        .into_inner();
    assert!(answered.first_response_time.is_some());
    assert!(only_lint(&answered).findings.is_empty());

    // At an institution that does not block, the same reply is recorded with its findings.
    let elsewhere = case_at(&sandbox, "lint-block-2", "institutions/demo-bank/branches/shanghai").await;
    let recorded = sandbox.cases().record_first_response(first_response(&elsewhere, note)).await.unwrap().into_inner();
    let rules: Vec<_> = only_lint(&recorded).findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["banned.company-policy", "banned.calm-down"]);
}
