//! Handling a case end to end through the gateway: the lifecycle, etags, refusals that name
//! what is wrong, permissions, and the events that tell other systems what happened.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use redress_integration_tests::{BRANCH, BRANCH_TOKEN, Bearer, Sandbox, TOKEN};
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{
    AnswerSurveyRequest, AssignCaseRequest, Case, CaseClosed, CaseState, DecideCaseRequest,
    ExtendDecisionDeadlineRequest, Money, ProposeResolutionRequest, RecordFirstResponseRequest, ResolutionType,
    StreamEventsRequest, TransitionCaseRequest, VerifyAuditChainRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

async fn case_for(sandbox: &Sandbox, request_id: &str, org_unit: Option<&str>) -> Case {
    let mut complaint = redress_intake::testing::complaint("信用卡年费未经同意被扣收。");
    if let Some(unit) = org_unit {
        complaint.org_unit = unit.to_owned();
    }
    sandbox.submit_and_open(request_id, complaint).await
}

fn transition(case: &Case, state: CaseState, reason: &str) -> TransitionCaseRequest {
    TransitionCaseRequest {
        name: case.name.clone(),
        etag: case.etag.clone(),
        state: state as i32,
        reason: reason.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_handled_to_closure_through_the_gateway() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut cases = sandbox.cases();
    let case = case_for(&sandbox, "handle-1", None).await;

    let assign = AssignCaseRequest {
        name: case.name.clone(),
        etag: case.etag.clone(),
        request_id: "assign-1".to_owned(),
        assignee: "u-handler".to_owned(),
        department: "cards".to_owned(),
        ..Default::default()
    };
    let assigned = cases.assign_case(assign.clone()).await.unwrap().into_inner();
    assert_eq!(assigned.state, CaseState::Assigned as i32);
    // A retry of the same request returns the same result and changes nothing more.
    assert_eq!(cases.assign_case(assign.clone()).await.unwrap().into_inner(), assigned);
    // The same etag again, in a new request: the case changed meanwhile.
    let stale = AssignCaseRequest { request_id: "assign-2".to_owned(), assignee: "u-other".to_owned(), ..assign };
    let status = cases.assign_case(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "ETAG_MISMATCH");

    // Closing an assigned case is refused, naming the state it is in.
    let status = cases.transition_case(transition(&assigned, CaseState::Closed, "done")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "INVALID_CASE_STATE");
    assert_eq!(info.metadata["current_state"], "CASE_STATE_ASSIGNED");

    // Bad input: every wrong field at once.
    let bad = ExtendDecisionDeadlineRequest { name: assigned.name.clone(), total_days: 45, ..Default::default() };
    let status = cases.extend_decision_deadline(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["reason", "total_days"]);

    let mut case = cases
        .record_first_response(RecordFirstResponseRequest {
            name: case.name.clone(),
            note: "电话联系客户，说明处理流程".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(case.first_response_time.is_some());
    case =
        cases.transition_case(transition(&case, CaseState::Investigating, "调取扣费记录")).await.unwrap().into_inner();
    let extend = ExtendDecisionDeadlineRequest {
        name: case.name.clone(),
        total_days: 30,
        reason: "需第三方机构协查".to_owned(),
        ..Default::default()
    };
    case = cases.extend_decision_deadline(extend).await.unwrap().into_inner();
    let propose = ProposeResolutionRequest {
        name: case.name.clone(),
        r#type: ResolutionType::ApologyCompensation as i32,
        compensation: Some(Money { currency_code: "CNY".to_owned(), amount_minor: 30_000 }),
        grounds: "年费收取未经客户同意".to_owned(),
        ..Default::default()
    };
    case = cases.propose_resolution(propose).await.unwrap().into_inner();
    let decide = DecideCaseRequest {
        name: case.name.clone(),
        decision_notice: "退还年费300元并致歉".to_owned(),
        ..Default::default()
    };
    case = cases.decide_case(decide).await.unwrap().into_inner();
    assert_eq!(case.state, CaseState::Decided as i32);
    let survey = AnswerSurveyRequest {
        name: case.name.clone(),
        score: 5,
        resolved: true,
        comment: "满意".to_owned(),
        ..Default::default()
    };
    case = cases.answer_survey(survey).await.unwrap().into_inner();
    case = cases.transition_case(transition(&case, CaseState::Closed, "回访完成")).await.unwrap().into_inner();
    assert_eq!(case.state, CaseState::Closed as i32);

    let verified =
        cases.verify_audit_chain(VerifyAuditChainRequest { case: case.name.clone() }).await.unwrap().into_inner();
    assert!(verified.intact, "{verified:?}");
    assert_eq!(verified.entries, 9, "opened plus eight changes");

    // Other systems learn of the closure, with what quality measurement needs, on the feed.
    let mut feed =
        CaseEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let mut stream = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let closed = loop {
        let batch = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
        if let Some(e) = batch.events.iter().find(|e| e.event_type == "redress.case.v1.CaseClosed") {
            break e.payload.as_ref().unwrap().to_msg::<CaseClosed>().unwrap();
        }
    };
    let measures = closed.measures.unwrap();
    assert!(measures.on_time && measures.one_time_resolution);
    assert_eq!(measures.satisfaction_score, 5);
    drop(stream);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_case_needs_the_write_permission_and_the_callers_unit() {
    let sandbox = Sandbox::start().await.unwrap();
    let own = case_for(&sandbox, "perm-1", Some(BRANCH)).await;
    let foreign = case_for(&sandbox, "perm-2", Some("institutions/other-bank")).await;
    let mut branch =
        CaseServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(BRANCH_TOKEN.to_owned())));
    let assign = |case: &Case| AssignCaseRequest {
        name: case.name.clone(),
        assignee: "u-x".to_owned(),
        department: "cards".to_owned(),
        ..Default::default()
    };
    // The branch handler may read cases but not change them.
    let status = branch.assign_case(assign(&own)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // The platform-wide token may change a case of any unit.
    let assigned = sandbox.cases().assign_case(assign(&foreign)).await.unwrap().into_inner();
    assert_eq!(assigned.assignee, "u-x");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_complaint_withdraws_its_case() {
    use redress_proto::redress::case::v1::GetCaseRequest;
    use redress_proto::redress::intake::v1::{ComplaintState, WithdrawComplaintRequest};

    let sandbox = Sandbox::start().await.unwrap();
    let case = case_for(&sandbox, "withdraw-1", None).await;
    let request = WithdrawComplaintRequest {
        name: case.complaint.clone(),
        reason: "已与网点协商解决".to_owned(),
        withdraw_time: None,
    };
    let complaint = sandbox.intake().withdraw_complaint(request).await.unwrap().into_inner();
    assert_eq!(complaint.state, ComplaintState::Withdrawn as i32);
    let bad = WithdrawComplaintRequest { name: case.complaint.clone(), ..Default::default() };
    let status = sandbox.intake().withdraw_complaint(bad).await.unwrap_err();
    assert_eq!(status.get_error_details().bad_request().unwrap().field_violations[0].field, "reason");
    let started = Instant::now();
    loop {
        let now = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
        if now.state == CaseState::Withdrawn as i32 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "case not withdrawn within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sandbox.stop().await.unwrap();
}
