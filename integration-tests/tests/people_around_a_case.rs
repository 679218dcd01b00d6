//! The people around a case, through the gateway: who owns it from the first contact
//! (首问负责, D-INT-5), who may not act on it because the complaint is about them (回避,
//! D-CASE-6), the manual confirmation a complaint naming staff by name only needs, sensitive
//! complaints routed by rule once each (D-CASE-9), and a major complaint escalated once, in the
//! transaction that makes it major (D-SLA-1, D-SLA-7).
#![allow(clippy::unwrap_used)]

use redress_integration_tests::{
    APPROVER_TOKEN, COMPLAINED_STAFF_ID, COMPLAINED_STAFF_TOKEN, STAFF_ID, STAFF_TOKEN, Sandbox, TOKEN, events_until,
};
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, ApproveResolutionRequest, AssignCaseRequest, Case, CaseChanged, CaseState,
    ChangeCaseGradeRequest, CompleteCoordinationTaskRequest, ConfirmNoConflictRequest, CoordinationTaskKind,
    DecideCaseRequest, EscalationRequired, GetCaseRequest, Money, ProblemScope, ProposeResolutionRequest,
    ResolutionType, RoutingAction, SensitiveComplaintRouted, SetProblemScopeRequest, StreamEventsRequest,
    TransitionCaseRequest,
};
use redress_proto::redress::common::v1::{Event, Grade};
use redress_proto::redress::intake::v1::{
    ComplainedParty, Complaint, FirstContact, OverrideClassificationRequest, SubmitComplaintRequest,
};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Cases = CaseServiceClient<InterceptedService<Channel, redress_integration_tests::Bearer>>;

fn complaint(facts: &str) -> Complaint {
    redress_intake::testing::complaint(facts)
}

/// A complaint about the member of staff with employee id `staff_id`.
fn about_staff(facts: &str, staff_id: &str) -> Complaint {
    let mut c = complaint(facts);
    c.complained_party = Some(ComplainedParty {
        institution: "示例银行".to_owned(),
        branch: "上海分行".to_owned(),
        staff_name: "张伟".to_owned(),
        staff_id: staff_id.to_owned(),
    });
    c
}

/// Submits `complaint` as the holder of `token` and waits for its case.
async fn open_as(sandbox: &Sandbox, token: &str, request_id: &str, complaint: Complaint) -> Case {
    let request = SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) };
    let submitted = sandbox.intake_with(Some(token)).submit_complaint(request).await.unwrap().into_inner();
    sandbox.case_of(&submitted.complaint.unwrap().name).await
}

fn refused(status: &tonic::Status) -> (Code, String) {
    let reason = status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default();
    (status.code(), reason)
}

fn conflict_of_interest(result: Result<tonic::Response<Case>, tonic::Status>, role: &str) {
    let status = result.unwrap_err();
    assert_eq!(refused(&status), (Code::FailedPrecondition, "CONFLICT_OF_INTEREST".to_owned()), "{status:?}");
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!((info.metadata["staff_id"].as_str(), info.metadata["role"].as_str()), (COMPLAINED_STAFF_ID, role));
}

fn assign(case: &Case, assignee: &str, staff_id: &str) -> AssignCaseRequest {
    AssignCaseRequest {
        name: case.name.clone(),
        assignee: assignee.to_owned(),
        department: "cards".to_owned(),
        assignee_staff_id: staff_id.to_owned(),
        ..Default::default()
    }
}

fn investigate(case: &Case) -> TransitionCaseRequest {
    TransitionCaseRequest {
        name: case.name.clone(),
        state: CaseState::Investigating as i32,
        reason: "调取扣费记录".to_owned(),
        ..Default::default()
    }
}

/// A proposal of compensation above a handler's limit, so that it needs approval.
fn propose(case: &Case) -> ProposeResolutionRequest {
    ProposeResolutionRequest {
        name: case.name.clone(),
        r#type: ResolutionType::ApologyCompensation as i32,
        compensation: Some(Money { currency_code: "CNY".to_owned(), amount_minor: 500_000 }),
        grounds: "年费重复扣收，予以退还并补偿".to_owned(),
        ..Default::default()
    }
}

fn decide(case: &Case) -> DecideCaseRequest {
    DecideCaseRequest {
        name: case.name.clone(), decision_notice: "退还年费并补偿".to_owned(), ..Default::default()
    }
}

async fn get(cases: &mut Cases, name: &str) -> Case {
    cases.get_case(GetCaseRequest { name: name.to_owned() }).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_a_complaint_is_about_can_neither_handle_propose_approve_decide_nor_own_a_task() {
    let sandbox = Sandbox::start().await.unwrap();
    let (mut dev, mut staff) = (sandbox.cases(), sandbox.cases_with(STAFF_TOKEN));
    let (mut approver, mut complained) =
        (sandbox.cases_with(APPROVER_TOKEN), sandbox.cases_with(COMPLAINED_STAFF_TOKEN));
    // Taken by a system without a staff id: it opens unassigned, naming the staff it is about.
    let case = open_as(&sandbox, TOKEN, "coi-1", about_staff("柜员张伟多收了信用卡年费。", COMPLAINED_STAFF_ID)).await;
    assert_eq!(case.state, CaseState::Accepted as i32);
    assert_eq!(case.complained_staff_ids, [COMPLAINED_STAFF_ID]);

    // Assignee: refused for the complained person (by employee id, whatever the subject),
    // refused when the employee id is not given, allowed for someone else.
    conflict_of_interest(dev.assign_case(assign(&case, "user:anyone", COMPLAINED_STAFF_ID)).await, "assignee");
    let status = dev.assign_case(assign(&case, "user:li-na", "")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = status.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!(fields[0].field, "assignee_staff_id");
    let assigned = dev.assign_case(assign(&case, "user:li-na", STAFF_ID)).await.unwrap().into_inner();
    assert_eq!((assigned.assignee.as_str(), assigned.assignee_staff_id.as_str()), ("user:li-na", STAFF_ID));
    staff.transition_case(investigate(&case)).await.unwrap();

    // Task owner: not the complained person, allowed for another; completed neither by them.
    let task = |owner_staff_id: &str| AddCoordinationTaskRequest {
        name: case.name.clone(),
        department: "risk".to_owned(),
        owner: "user:risk-officer".to_owned(),
        owner_staff_id: owner_staff_id.to_owned(),
        description: "调取扣费流水".to_owned(),
        due_time: Some(prost_types::Timestamp { seconds: chrono_like_now() + 86_400, nanos: 0 }),
        ..Default::default()
    };
    conflict_of_interest(staff.add_coordination_task(task(COMPLAINED_STAFF_ID)).await, "task owner");
    let with_task = staff.add_coordination_task(task("E4001")).await.unwrap().into_inner();
    let added = with_task.coordination_tasks.last().unwrap();
    assert_eq!((added.owner_staff_id.as_str(), added.kind), ("E4001", CoordinationTaskKind::Coordination as i32));
    let complete = CompleteCoordinationTaskRequest {
        name: case.name.clone(),
        task_id: added.task_id.clone(),
        outcome: "流水已附".to_owned(),
        ..Default::default()
    };
    conflict_of_interest(complained.complete_coordination_task(complete.clone()).await, "task completer");
    staff.complete_coordination_task(complete).await.unwrap();

    // Proposer.
    conflict_of_interest(complained.propose_resolution(propose(&case)).await, "proposer");
    let proposed = staff.propose_resolution(propose(&case)).await.unwrap().into_inner();
    assert!(proposed.resolution.unwrap().approval_required);
    // Approver.
    let approve = ApproveResolutionRequest { name: case.name.clone(), note: "同意".to_owned(), ..Default::default() };
    conflict_of_interest(complained.approve_resolution(approve.clone()).await, "approver");
    approver.approve_resolution(approve).await.unwrap();
    // Decider; a caller without an employee id decides nothing about named staff.
    conflict_of_interest(complained.decide_case(decide(&case)).await, "decider");
    let status = dev.decide_case(decide(&case)).await.unwrap_err();
    assert_eq!(refused(&status), (Code::PermissionDenied, "STAFF_ID_REQUIRED".to_owned()), "{status:?}");
    let decided = staff.decide_case(decide(&case)).await.unwrap().into_inner();
    assert_eq!(decided.state, CaseState::Decided as i32);
    assert_eq!(decided.resolution.unwrap().decided_by, "user:li-na");
    sandbox.stop().await.unwrap();
}

/// Seconds since the epoch now.
fn chrono_like_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_opens_owned_by_whoever_took_it_unless_it_is_about_them() {
    let sandbox = Sandbox::start().await.unwrap();
    // Taken by a member of staff: theirs from the start.
    let case = open_as(&sandbox, STAFF_TOKEN, "owner-1", complaint("信用卡年费未经同意被扣收。")).await;
    assert_eq!(case.state, CaseState::Assigned as i32);
    assert_eq!((case.assignee.as_str(), case.assignee_staff_id.as_str()), ("user:li-na", STAFF_ID));
    assert_eq!(case.first_contact_owner, "user:li-na");
    let trail = sandbox
        .cases()
        .list_audit_entries(redress_proto::redress::case::v1::ListAuditEntriesRequest {
            case: case.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(trail[0].action, "case.opened");
    assert_eq!(trail[0].details["first_contact_owner"], "user:li-na");
    // The owner works it without any assignment.
    sandbox.cases_with(STAFF_TOKEN).transition_case(investigate(&case)).await.unwrap();

    // A channel system names who took it, with their department.
    let mut named = complaint("网点柜员受理的投诉：年费被重复扣收。");
    named.first_contact = Some(FirstContact {
        subject: "user:wang-fang".to_owned(),
        staff_id: "E2002".to_owned(),
        department: "counter-services".to_owned(),
        ..Default::default()
    });
    let case = open_as(&sandbox, TOKEN, "owner-2", named).await;
    assert_eq!(case.state, CaseState::Assigned as i32);
    assert_eq!((case.assignee.as_str(), case.department.as_str()), ("user:wang-fang", "counter-services"));
    assert_eq!(case.assignee_staff_id, "E2002");

    // Taken by the very person it is about: nobody owns it yet, and the trail says why.
    let about_them = about_staff("张伟柜员态度恶劣。", COMPLAINED_STAFF_ID);
    let case = open_as(&sandbox, COMPLAINED_STAFF_TOKEN, "owner-3", about_them).await;
    assert_eq!(case.state, CaseState::Accepted as i32);
    assert!(case.assignee.is_empty() && case.first_contact_owner.is_empty());
    let trail = sandbox
        .cases()
        .list_audit_entries(redress_proto::redress::case::v1::ListAuditEntriesRequest {
            case: case.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(trail[0].details["first_contact_refused"], "conflict_of_interest");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_naming_staff_by_name_only_is_decided_only_after_a_confirmation() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut named_only = complaint("一位姓张的柜员多收了我的年费。");
    named_only.complained_party = Some(ComplainedParty {
        institution: "示例银行".to_owned(),
        staff_name: "张伟".to_owned(),
        ..Default::default()
    });
    let case = open_as(&sandbox, STAFF_TOKEN, "named-1", named_only).await;
    let check = case.conflict_check.clone().unwrap();
    assert!(check.required && check.confirm_time.is_none());
    assert_eq!(check.assignee, "user:li-na");

    let (mut staff, mut approver) = (sandbox.cases_with(STAFF_TOKEN), sandbox.cases_with(APPROVER_TOKEN));
    staff.transition_case(investigate(&case)).await.unwrap();
    let explain = |case: &Case| ProposeResolutionRequest {
        name: case.name.clone(),
        r#type: ResolutionType::Explanation as i32,
        grounds: "年费按合同收取".to_owned(),
        ..Default::default()
    };
    let status = staff.propose_resolution(explain(&case)).await.unwrap_err();
    assert_eq!(refused(&status), (Code::FailedPrecondition, "CONFLICT_CHECK_PENDING".to_owned()), "{status:?}");
    let confirm = ConfirmNoConflictRequest {
        name: case.name.clone(),
        note: "核对排班与工号，经办人并非被投诉人".to_owned(),
        ..Default::default()
    };
    // Not by the assignee (who lacks cases.approve, and could not vouch for themselves).
    let status = staff.confirm_no_conflict(confirm.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let missing = ConfirmNoConflictRequest { note: String::new(), ..confirm.clone() };
    let status = approver.confirm_no_conflict(missing).await.unwrap_err();
    assert_eq!(status.get_error_details().bad_request().unwrap().field_violations[0].field, "note");
    let confirmed = approver.confirm_no_conflict(confirm).await.unwrap().into_inner();
    assert_eq!(confirmed.conflict_check.unwrap().confirmed_by, "user:chen-jing");
    staff.propose_resolution(explain(&case)).await.unwrap();
    let decided = staff.decide_case(decide(&case)).await.unwrap().into_inner();
    assert_eq!(decided.state, CaseState::Decided as i32);

    // Systemic or individual, recorded with the reason.
    let scope = SetProblemScopeRequest {
        name: case.name.clone(),
        scope: ProblemScope::Individual as i32,
        reason: "仅此客户的年费被重复扣收".to_owned(),
        ..Default::default()
    };
    let scoped = staff.set_problem_scope(scope).await.unwrap().into_inner();
    assert_eq!(scoped.problem_scope, ProblemScope::Individual as i32);
    let status = staff
        .set_problem_scope(SetProblemScopeRequest { name: case.name.clone(), ..Default::default() })
        .await
        .unwrap_err();
    let fields: Vec<String> =
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["reason", "scope"]);
    sandbox.stop().await.unwrap();
}

/// Every event of the case feed up to the first CaseChanged of `case` that `done` accepts.
async fn case_events_until(sandbox: &Sandbox, case: &str, done: impl Fn(&CaseChanged) -> bool) -> Vec<Event> {
    let mut feed = CaseEventFeedServiceClient::with_interceptor(
        sandbox.channel.clone(),
        redress_integration_tests::Bearer(Some(TOKEN.to_owned())),
    );
    let stream = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let case = case.to_owned();
    events_until(stream, move |e| {
        e.aggregate == case && e.payload.as_ref().and_then(|p| p.to_msg::<CaseChanged>().ok()).is_some_and(|c| done(&c))
    })
    .await
}

/// A CaseChanged of the change that gave the case `etag`.
fn at_etag(etag: &str) -> impl Fn(&CaseChanged) -> bool {
    let etag = etag.to_owned();
    move |c| c.case.as_ref().is_some_and(|c| c.etag == etag)
}

fn of_case<M: prost::Message + prost::Name + Default>(events: &[Event], case: &str) -> Vec<M> {
    events
        .iter()
        .filter(|e| e.aggregate == case && e.event_type == M::full_name())
        .map(|e| e.payload.as_ref().unwrap().to_msg::<M>().unwrap())
        .collect()
}

async fn reclassify(sandbox: &Sandbox, complaint: &str, cause: &str, grade: Grade) {
    let request = OverrideClassificationRequest {
        name: complaint.to_owned(),
        cause: cause.to_owned(),
        grade: grade as i32,
        reason: "复核分类".to_owned(),
        ..Default::default()
    };
    sandbox.intake().override_classification(request).await.unwrap();
}

/// Waits until the case has been reclassified (its trail's last entry is `action`).
async fn reclassified(sandbox: &Sandbox, name: &str, action: &str) -> Case {
    let started = std::time::Instant::now();
    loop {
        let mut cases = sandbox.cases();
        let trail = cases
            .list_audit_entries(redress_proto::redress::case::v1::ListAuditEntriesRequest {
                case: name.to_owned(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .audit_entries;
        if trail.iter().any(|e| e.action == action) {
            return get(&mut cases, name).await;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no {action} on {name}: {trail:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_complaints_are_routed_once_each_also_after_a_reclassification() {
    let sandbox = Sandbox::start().await.unwrap();
    // Information security: compliance is told, once.
    let leak = open_as(&sandbox, TOKEN, "route-1", complaint("我的个人信息被泄露，隐私被卖给了推销公司。")).await;
    assert_eq!(leak.routings.len(), 1, "{:?}", leak.classification);
    assert_eq!(leak.routings[0].rule_id, "information-security.compliance");
    assert_eq!(leak.routings[0].recipients, ["department:compliance"]);
    // Reclassified by a handler (still personal information, another grade): no second notice.
    reclassify(&sandbox, &leak.complaint, "C10", Grade::Urgent).await;
    let after = reclassified(&sandbox, &leak.name, "case.grade_changed").await;
    assert_eq!(after.routings.len(), 1);
    let events = case_events_until(&sandbox, &leak.name, at_etag(&after.etag)).await;
    let routed: Vec<SensitiveComplaintRouted> = of_case(&events, &leak.name);
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].action, RoutingAction::NotifyCompliance as i32);

    // Legal risk (a threat to sue): one legal-opinion task, kept once through a reclassification
    // to contract terms, which would call for it too.
    let sue = open_as(&sandbox, TOKEN, "route-2", complaint("年费多扣了，我已经请了律师，准备起诉你们银行。")).await;
    let legal: Vec<_> =
        sue.coordination_tasks.iter().filter(|t| t.kind == CoordinationTaskKind::LegalOpinion as i32).collect();
    assert_eq!(legal.len(), 1, "{:?}", sue.risk_signals);
    assert_eq!((legal[0].department.as_str(), legal[0].owner.as_str()), ("legal", "queue:legal"));
    reclassify(&sandbox, &sue.complaint, "C06", Grade::Unspecified).await;
    let after = reclassified(&sandbox, &sue.name, "case.reclassified").await;
    assert_eq!(after.classification.unwrap().cause, "C06");
    assert_eq!(
        after.coordination_tasks.iter().filter(|t| t.kind == CoordinationTaskKind::LegalOpinion as i32).count(),
        1
    );
    let events = case_events_until(&sandbox, &sue.name, at_etag(&after.etag)).await;
    let routed: Vec<SensitiveComplaintRouted> = of_case(&events, &sue.name);
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].action, RoutingAction::LegalOpinionTask as i32);

    // No legal risk at first; a reclassification to contract terms evaluates the rules again.
    let fee = open_as(&sandbox, TOKEN, "route-3", complaint("营业网点排队时间太长，服务很慢。")).await;
    assert!(fee.coordination_tasks.is_empty() && fee.routings.is_empty(), "{:?}", fee.classification);
    reclassify(&sandbox, &fee.complaint, "C06", Grade::Unspecified).await;
    let after = reclassified(&sandbox, &fee.name, "routing.applied").await;
    assert_eq!(after.routings.len(), 1);
    assert_eq!(after.coordination_tasks[0].kind, CoordinationTaskKind::LegalOpinion as i32);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_major_complaint_escalates_once_with_its_grade() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut cases = sandbox.cases();
    // Graded major at intake: the case opens major and escalated, in one transaction.
    let major = open_as(&sandbox, TOKEN, "major-1", complaint("年费问题再不解决我就去跳楼。")).await;
    assert_eq!(major.grade, Grade::Major as i32);
    assert!(major.escalation_required_time.is_some());
    // Down and up again: still one escalation.
    let change = |grade: Grade, etag: &str| ChangeCaseGradeRequest {
        name: major.name.clone(),
        etag: etag.to_owned(),
        grade: grade as i32,
        reason: "复核".to_owned(),
        ..Default::default()
    };
    let down = cases.change_case_grade(change(Grade::Urgent, &major.etag)).await.unwrap().into_inner();
    let up = cases.change_case_grade(change(Grade::Major, &down.etag)).await.unwrap().into_inner();
    assert_eq!(up.escalation_required_time, major.escalation_required_time);
    let events = case_events_until(&sandbox, &major.name, at_etag(&up.etag)).await;
    let raised: Vec<EscalationRequired> = of_case(&events, &major.name);
    assert_eq!(raised.len(), 1);
    let raised = &raised[0];
    assert_eq!((raised.grade, raised.case.as_ref().unwrap().grade), (Grade::Major as i32, Grade::Major as i32));
    assert!(raised.recipients.contains(&"role:senior_manager".to_owned()), "{:?}", raised.recipients);
    assert_eq!(raised.raise_time, major.escalation_required_time);

    // Made major by a grade change: the response and the event agree on the same version.
    let general = open_as(&sandbox, TOKEN, "major-2", complaint("信用卡年费未经同意被扣收。")).await;
    assert!(general.escalation_required_time.is_none());
    let request = ChangeCaseGradeRequest {
        name: general.name.clone(),
        grade: Grade::Major as i32,
        reason: "客户扬言轻生".to_owned(),
        ..Default::default()
    };
    let changed = cases.change_case_grade(request).await.unwrap().into_inner();
    assert!(changed.escalation_required_time.is_some());
    let events = case_events_until(&sandbox, &general.name, at_etag(&changed.etag)).await;
    let raised: Vec<EscalationRequired> = of_case(&events, &general.name);
    assert_eq!(raised.len(), 1);
    let escalated = raised[0].case.clone().unwrap();
    assert_eq!((escalated.grade, escalated.etag.as_str()), (Grade::Major as i32, changed.etag.as_str()));
    // A second grade change to major (after urgent) raises nothing more.
    let down = cases
        .change_case_grade(ChangeCaseGradeRequest {
            name: general.name.clone(),
            grade: Grade::Urgent as i32,
            reason: "情绪平复".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let up = cases
        .change_case_grade(ChangeCaseGradeRequest {
            name: general.name.clone(),
            etag: down.etag.clone(),
            grade: Grade::Major as i32,
            reason: "再次扬言".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.escalation_required_time, changed.escalation_required_time);
    let events = case_events_until(&sandbox, &general.name, at_etag(&up.etag)).await;
    assert_eq!(of_case::<EscalationRequired>(&events, &general.name).len(), 1);
    sandbox.stop().await.unwrap();
}
