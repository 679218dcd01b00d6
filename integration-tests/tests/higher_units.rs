//! The rules that look above the unit handling a case (D-SLA-2, D-SLA-11), through the gateway
//! with principals at a branch, at head office and a head-office senior manager: a review is
//! handled above the unit that decided, a 60-day extension is approved above the handling unit,
//! and a regulator referral must reach a handling department within three working days.
#![allow(clippy::unwrap_used)]

use redress_integration_tests::{
    BRANCH, BRANCH_STAFF_TOKEN, HEAD_OFFICE, HEAD_OFFICE_TOKEN, SENIOR_MANAGER_TOKEN, Sandbox,
};
use redress_proto::redress::case::v1::{
    AssignCaseRequest, Case, CaseState, ClockKind, ClockStatus, DecideCaseRequest, DecideCaseReviewRequest,
    ExtendDecisionDeadlineRequest, ProposeResolutionRequest, RequestCaseReviewRequest, ResolutionType, ReviewOutcome,
    SlaClock, TransferCaseRequest, TransitionCaseRequest,
};
use redress_proto::redress::common::v1::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The case of a complaint of `org_unit` received through `channel`, once case-workflow opened it.
async fn case_for(sandbox: &Sandbox, request_id: &str, org_unit: &str, channel: Channel) -> Case {
    let mut complaint = redress_intake::testing::complaint("理财产品到期后本金未按约定到账。");
    complaint.org_unit = org_unit.to_owned();
    complaint.channel = channel as i32;
    sandbox.submit_and_open(request_id, complaint).await
}

fn transition(case: &Case, state: CaseState) -> TransitionCaseRequest {
    TransitionCaseRequest {
        name: case.name.clone(),
        state: state as i32,
        reason: "处理流程推进".to_owned(),
        ..Default::default()
    }
}

fn assign(case: &Case, assignee: &str, department: &str) -> AssignCaseRequest {
    AssignCaseRequest {
        name: case.name.clone(),
        assignee: assignee.to_owned(),
        department: department.to_owned(),
        ..Default::default()
    }
}

fn clock(case: &Case, kind: ClockKind) -> Option<&SlaClock> {
    case.clocks.iter().find(|c| c.kind == kind as i32)
}

/// Asserts a refusal's code, ErrorInfo reason and one metadata entry.
fn assert_refused(status: &Status, code: Code, reason: &str, key: &str, value: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.metadata[key], value, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_handled_above_the_unit_that_decided_even_after_closing() {
    let sandbox = Sandbox::start().await.unwrap();
    let case = case_for(&sandbox, "review-1", BRANCH, Channel::Counter).await;
    let mut branch = sandbox.cases_with(BRANCH_STAFF_TOKEN);
    let mut head_office = sandbox.cases_with(HEAD_OFFICE_TOKEN);

    // The branch handles the case to a decision, and closes it.
    branch.assign_case(assign(&case, "user:branch-staff", "wealth")).await.unwrap();
    branch.transition_case(transition(&case, CaseState::Investigating)).await.unwrap();
    let propose = ProposeResolutionRequest {
        name: case.name.clone(),
        r#type: ResolutionType::Explanation as i32,
        grounds: "本金已于到期日次日到账".to_owned(),
        ..Default::default()
    };
    branch.propose_resolution(propose).await.unwrap();
    let decide = DecideCaseRequest {
        name: case.name.clone(),
        decision_notice: "经核实，本金已到账".to_owned(),
        ..Default::default()
    };
    let decided = branch.decide_case(decide).await.unwrap().into_inner();
    assert_eq!(decided.resolution.unwrap().deciding_unit, BRANCH);
    branch.transition_case(transition(&case, CaseState::FollowUp)).await.unwrap();
    branch.transition_case(transition(&case, CaseState::Closed)).await.unwrap();

    // A review is requested as one, not reached by a move.
    let status = branch.transition_case(transition(&case, CaseState::UnderReview)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Closed, the case still takes the complainant's request, whoever records it.
    let request = RequestCaseReviewRequest {
        name: case.name.clone(),
        reason: "到账时间晚于合同约定，要求赔偿利息".to_owned(),
        ..Default::default()
    };
    let reviewed = branch.request_case_review(request.clone()).await.unwrap().into_inner();
    assert_eq!(reviewed.state, CaseState::UnderReview as i32);
    assert!(reviewed.close_time.is_none() && reviewed.assignee.is_empty());
    let review = reviewed.reviews.last().unwrap();
    assert_eq!((review.deciding_unit.as_str(), review.requested_by.as_str()), (BRANCH, "user:branch-staff"));
    let review_clock = clock(&reviewed, ClockKind::ReviewDecision).unwrap();
    assert_eq!((review_clock.status, review_clock.length), (ClockStatus::Running as i32, 30));
    assert!(review_clock.due_time.is_some());

    // The branch that decided neither assigns nor decides its own review.
    let status = branch.assign_case(assign(&case, "user:branch-staff", "wealth")).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "REVIEW_NEEDS_HIGHER_UNIT", "deciding_unit", BRANCH);
    let decide_review = DecideCaseReviewRequest {
        name: case.name.clone(),
        outcome: ReviewOutcome::Revised as i32,
        decision_notice: "经核查，补偿延迟到账期间利息".to_owned(),
        ..Default::default()
    };
    let status = branch.decide_case_review(decide_review.clone()).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "REVIEW_NEEDS_HIGHER_UNIT", "deciding_unit", BRANCH);

    // Head office, above it, does both.
    let assigned = head_office.assign_case(assign(&case, "user:reviewer", "consumer-protection")).await.unwrap();
    let assigned = assigned.into_inner();
    assert_eq!(assigned.reviews.last().unwrap().reviewer, "user:reviewer");
    let decided = head_office.decide_case_review(decide_review).await.unwrap().into_inner();
    assert_eq!(decided.state, CaseState::Decided as i32);
    let review = decided.reviews.last().unwrap();
    assert_eq!((review.outcome, review.decided_by.as_str()), (ReviewOutcome::Revised as i32, "user:head-office"));
    assert_eq!(clock(&decided, ClockKind::ReviewDecision).unwrap().status, ClockStatus::Met as i32);

    // A decision is reviewed once.
    let status = branch.request_case_review(request).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "ALREADY_REVIEWED");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_days_are_approved_above_the_handling_unit_or_by_a_head_office_senior_manager() {
    let sandbox = Sandbox::start().await.unwrap();
    let extend = |case: &Case| ExtendDecisionDeadlineRequest {
        name: case.name.clone(),
        total_days: 60,
        reason: "需多家机构联合核实".to_owned(),
        ..Default::default()
    };

    // The branch handling the case holds `cases.extend.special`, and is still refused.
    let at_branch = case_for(&sandbox, "extend-1", BRANCH, Channel::Phone).await;
    let status = sandbox.cases_with(BRANCH_STAFF_TOKEN).extend_decision_deadline(extend(&at_branch)).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "EXTENSION_NEEDS_HIGHER_UNIT", "handling_unit", BRANCH);
    // Head office, above it, approves.
    let extended =
        sandbox.cases_with(HEAD_OFFICE_TOKEN).extend_decision_deadline(extend(&at_branch)).await.unwrap().into_inner();
    assert_eq!(clock(&extended, ClockKind::RegulatoryDecision).unwrap().length, 60);

    // A case handled at head office itself: only a senior manager there approves.
    let at_head_office = case_for(&sandbox, "extend-2", HEAD_OFFICE, Channel::Phone).await;
    let status =
        sandbox.cases_with(HEAD_OFFICE_TOKEN).extend_decision_deadline(extend(&at_head_office)).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "EXTENSION_NEEDS_HIGHER_UNIT", "handling_unit", HEAD_OFFICE);
    let extended = sandbox
        .cases_with(SENIOR_MANAGER_TOKEN)
        .extend_decision_deadline(extend(&at_head_office))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(clock(&extended, ClockKind::RegulatoryDecision).unwrap().length, 60);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_referral_runs_a_forwarding_clock_that_only_an_assignment_meets() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut branch = sandbox.cases_with(BRANCH_STAFF_TOKEN);
    let referral = case_for(&sandbox, "referral-1", BRANCH, Channel::RegulatorReferral).await;
    let forwarding = clock(&referral, ClockKind::ReferralForwarding).unwrap();
    assert_eq!((forwarding.status, forwarding.length), (ClockStatus::Running as i32, 3));
    assert!(forwarding.due_time.is_some());
    // A complaint of any other channel has no such clock.
    let phoned = case_for(&sandbox, "referral-2", BRANCH, Channel::Phone).await;
    assert!(clock(&phoned, ClockKind::ReferralForwarding).is_none());

    // Moving it between departments does not forward it to a handling department.
    let transfer = TransferCaseRequest {
        name: referral.name.clone(),
        to_department: "wealth".to_owned(),
        reason: "理财产品投诉".to_owned(),
        ..Default::default()
    };
    let transferred = branch.transfer_case(transfer).await.unwrap().into_inner();
    assert_eq!(clock(&transferred, ClockKind::ReferralForwarding).unwrap().status, ClockStatus::Running as i32);
    // Assigning it there does.
    let assigned = branch.assign_case(assign(&referral, "user:branch-staff", "wealth")).await.unwrap().into_inner();
    let forwarding = clock(&assigned, ClockKind::ReferralForwarding).unwrap();
    assert_eq!(forwarding.status, ClockStatus::Met as i32);
    assert!(forwarding.met_time.is_some() && !forwarding.breached);
    sandbox.stop().await.unwrap();
}
