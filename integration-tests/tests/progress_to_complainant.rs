//! Progress to the complainant (D-CASE-8) and nothing left unattended (D-INT-5, D-CASE-1) end
//! to end through the gateway, with the suite's clock stood at Mon 2026-03-02 10:00 in
//! Shanghai and moved on by hand: a case with no contact for five working days reminds its
//! owner, one contacted in time does not; a case nobody took reminds its channel's monitor
//! once; the steps carrying out a decision are reminded like tasks and hold the case open; a
//! transfer records its reason and new owner and tells the complainant.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redress_integration_tests::{BRANCH_TOKEN, Bearer, Sandbox, TOKEN, events_until};
use redress_platform::time::{Clock, from_timestamp};
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::{
    AddImplementationStepRequest, AssignCaseRequest, Case, CaseState, CaseTransferred, ComplainantContactDue,
    CompleteImplementationStepRequest, ContactDirection, GetCaseRequest, ImplementationStepOverdue,
    RecordContactRequest, StreamEventsRequest, TransferCaseRequest, TransitionCaseRequest, UnassignedCaseReminder,
};
use redress_proto::redress::common::v1::{Channel, Event};
use tonic::Code;
use tonic_types::StatusExt;

fn ts(s: &str) -> prost_types::Timestamp {
    s.parse().unwrap()
}

/// Moves the suite's clock to `s`.
fn move_to(clock: &Clock, s: &str) {
    clock.set(from_timestamp(&ts(s)).unwrap());
}

/// A suite whose clock stands at Mon 2026-03-02 10:00 in Shanghai (returned, to move it on),
/// sweeping every 20 ms, with a monitor for the phone channel.
async fn sandbox() -> (Sandbox, Clock) {
    let monday = from_timestamp(&prost_types::Timestamp { seconds: 1_772_416_800, nanos: 0 }).unwrap();
    let clock = Clock::fixed(monday);
    let workflow = redress::WorkflowConfig {
        sweep_interval_ms: 20,
        channel_monitors: [
            ("CHANNEL_PHONE".to_owned(), vec!["user:hotline-lead".to_owned()]),
            ("default".to_owned(), vec!["supervisor:{org_unit}".to_owned()]),
        ]
        .into(),
        ..Default::default()
    };
    let suite_clock = clock.clone();
    let sandbox = Sandbox::start_configured(tempfile::tempdir().unwrap(), move |options| {
        options.clock = suite_clock;
        options.workflow = Some(workflow);
    })
    .await
    .unwrap();
    (sandbox, clock)
}

async fn open(sandbox: &Sandbox, request_id: &str) -> Case {
    sandbox.submit_and_open(request_id, redress_intake::testing::complaint("信用卡年费未经同意被扣收。")).await
}

async fn get(sandbox: &Sandbox, case: &Case) -> Case {
    sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner()
}

async fn assign(sandbox: &Sandbox, case: &Case) -> Case {
    let assign = AssignCaseRequest {
        name: case.name.clone(),
        assignee: "li-na".to_owned(),
        department: "cards".to_owned(),
        ..Default::default()
    };
    sandbox.cases().assign_case(assign).await.unwrap().into_inner()
}

fn case_feed(
    sandbox: &Sandbox,
) -> CaseEventFeedServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>> {
    CaseEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())))
}

/// The case feed from the start until an event `done` accepts.
async fn feed_until(sandbox: &Sandbox, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    let stream =
        case_feed(sandbox).stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    events_until(stream, done).await
}

/// Whether `event` is the case event named `name` (e.g. "CaseTransferred").
fn is(event: &Event, name: &str) -> bool {
    event.event_type == format!("redress.case.v1.{name}")
}

/// The payloads of the events of type `$t` among `$events`.
macro_rules! payloads {
    ($events:expr, $t:ty) => {
        $events
            .iter()
            .filter(|e| is(e, stringify!($t)))
            .map(|e| e.payload.as_ref().unwrap().to_msg::<$t>().unwrap())
            .collect::<Vec<$t>>()
    };
}

/// The feed until the event named `name` is announced for `case`.
async fn until_announced(sandbox: &Sandbox, name: &'static str, case: &Case) -> Vec<Event> {
    let case = case.name.clone();
    feed_until(sandbox, move |e| is(e, name) && e.aggregate == case).await
}

/// Lets the sweeper (every 20 ms) look at every case at least once more.
async fn let_it_sweep() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn contact(case: &Case, request_id: &str) -> RecordContactRequest {
    RecordContactRequest {
        name: case.name.clone(),
        request_id: request_id.to_owned(),
        channel: Channel::Phone as i32,
        direction: ContactDirection::Outbound as i32,
        summary: "告知已调取年费扣收记录，正在核实".to_owned(),
        ..Default::default()
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_working_days_without_contact_remind_the_owner_and_a_case_nobody_took_its_channels_monitor() {
    let (sandbox, clock) = sandbox().await;
    let silent = assign(&sandbox, &open(&sandbox, "silent").await).await;
    let contacted = assign(&sandbox, &open(&sandbox, "contacted").await).await;
    let untaken = open(&sandbox, "untaken").await;
    // Five working days from Monday: Mar 3, 4, 5, 6 and 9.
    assert_eq!(silent.next_contact_due_time, Some(ts("2026-03-09T16:00:00Z")));

    // An hour on, the case nobody took is reported to the phone channel's monitor.
    move_to(&clock, "2026-03-02T03:01:00Z");
    let events = until_announced(&sandbox, "UnassignedCaseReminder", &untaken).await;
    let reported = payloads!(events, UnassignedCaseReminder);
    assert_eq!(reported.len(), 1);
    assert_eq!(
        (reported[0].channel, reported[0].recipients.as_slice()),
        (Channel::Phone as i32, ["user:hotline-lead".to_owned()].as_slice())
    );

    // Bad input names its fields; a reader may not record a contact.
    let bad = RecordContactRequest {
        name: contacted.name.clone(),
        contact_time: Some(ts("2026-03-03T00:00:00Z")),
        next_contact_due_time: Some(ts("2026-03-01T00:00:00Z")),
        ..Default::default()
    };
    let status = sandbox.cases().record_contact(bad).await.unwrap_err();
    assert_eq!(fields(&status), ["channel", "direction", "summary"]);
    let future =
        RecordContactRequest { contact_time: Some(ts("2026-03-03T00:00:00Z")), ..contact(&contacted, "future") };
    assert_eq!(fields(&sandbox.cases().record_contact(future).await.unwrap_err()), ["contact_time"]);
    let denied = sandbox.cases_with(BRANCH_TOKEN).record_contact(contact(&contacted, "denied")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Wednesday: the complainant is called.
    move_to(&clock, "2026-03-04T02:00:00Z");
    let called = sandbox.cases().record_contact(contact(&contacted, "call-1")).await.unwrap().into_inner();
    let again = sandbox.cases().record_contact(contact(&contacted, "call-1")).await.unwrap().into_inner();
    assert_eq!(again.contacts.len(), 1, "a retried request records the contact once");
    assert_eq!(called.contacts[0].recorded_by, "dev");
    assert_eq!(called.last_contact_time, Some(ts("2026-03-04T02:00:00Z")));
    // Mar 5, 6, 9, 10, 11.
    assert_eq!(called.next_contact_due_time, Some(ts("2026-03-11T16:00:00Z")));

    // The last minute of the fifth working day: nobody is reminded yet.
    move_to(&clock, "2026-03-09T15:59:00Z");
    let_it_sweep().await;
    assert_eq!(get(&sandbox, &silent).await.contact_reminded_due_time, None);
    // At its end the silent case's owner is reminded, and the case nobody took its unit.
    move_to(&clock, "2026-03-09T17:00:00Z");
    let events = until_announced(&sandbox, "ComplainantContactDue", &silent).await;
    let due = payloads!(events, ComplainantContactDue);
    let of = |case: &Case| due.iter().find(|d| d.case.as_ref().unwrap().name == case.name).cloned();
    let reminded = of(&silent).unwrap();
    assert_eq!(reminded.recipients, ["user:li-na"]);
    assert_eq!(reminded.due_time, Some(ts("2026-03-09T16:00:00Z")));
    let_it_sweep().await;
    assert_eq!(get(&sandbox, &contacted).await.contact_reminded_due_time, None, "contacted in time");
    let untaken_now = get(&sandbox, &untaken).await;
    assert!(untaken_now.contact_reminded_due_time.is_some());

    // Two days later the contacted case's own five working days have passed.
    move_to(&clock, "2026-03-11T17:00:00Z");
    let events = until_announced(&sandbox, "ComplainantContactDue", &contacted).await;
    let due = payloads!(events, ComplainantContactDue);
    let count = |case: &Case| due.iter().filter(|d| d.case.as_ref().unwrap().name == case.name).count();
    assert_eq!((count(&silent), count(&contacted), count(&untaken)), (1, 1, 1), "once per due time");
    assert_eq!(payloads!(events, UnassignedCaseReminder).len(), 1, "once per case");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implementation_steps_are_reminded_like_tasks_and_hold_the_case_open() {
    let (sandbox, clock) = sandbox().await;
    let case = open(&sandbox, "decided").await;
    let decided = sandbox.decide(&case.name).await;
    let step = |request_id: &str, due: &str| AddImplementationStepRequest {
        name: decided.name.clone(),
        request_id: request_id.to_owned(),
        description: "退还已扣收的年费".to_owned(),
        owner: "ops-zhao".to_owned(),
        department: "operations".to_owned(),
        due_time: Some(ts(due)),
        ..Default::default()
    };
    let status = sandbox.cases().add_implementation_step(step("past", "2026-03-01T00:00:00Z")).await.unwrap_err();
    assert_eq!(fields(&status), ["due_time"]);
    let missing = AddImplementationStepRequest { name: decided.name.clone(), ..Default::default() };
    let status = sandbox.cases().add_implementation_step(missing).await.unwrap_err();
    assert_eq!(fields(&status), ["description", "owner", "department", "due_time"]);
    let with_step =
        sandbox.cases().add_implementation_step(step("refund", "2026-03-04T10:00:00Z")).await.unwrap().into_inner();
    assert_eq!(with_step.implementation_steps[0].step_id, "s1");

    // Not closed while the refund is outstanding.
    let follow_up = TransitionCaseRequest {
        name: decided.name.clone(),
        state: CaseState::FollowUp as i32,
        reason: "回访".to_owned(),
        ..Default::default()
    };
    sandbox.cases().transition_case(follow_up).await.unwrap();
    let close = TransitionCaseRequest {
        name: decided.name.clone(),
        state: CaseState::Closed as i32,
        reason: "办结".to_owned(),
        ..Default::default()
    };
    let status = sandbox.cases().transition_case(close.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!((info.reason.as_str(), info.metadata["open_steps"].as_str()), ("IMPLEMENTATION_OPEN", "s1"));

    // Past its due time, its owner and department are reminded once.
    move_to(&clock, "2026-03-04T11:00:00Z");
    let events = until_announced(&sandbox, "ImplementationStepOverdue", &decided).await;
    let overdue = payloads!(events, ImplementationStepOverdue);
    assert_eq!(overdue[0].recipients, ["user:ops-zhao", "department:operations"]);
    move_to(&clock, "2026-03-05T11:00:00Z");
    let_it_sweep().await;
    let done = CompleteImplementationStepRequest {
        name: decided.name.clone(),
        step_id: "s1".to_owned(),
        outcome: "年费已退还至原卡".to_owned(),
        ..Default::default()
    };
    let completed = sandbox.cases().complete_implementation_step(done).await.unwrap().into_inner();
    assert!(completed.implementation_steps[0].overdue && completed.implementation_steps[0].complete_time.is_some());
    let closed = sandbox.cases().transition_case(close).await.unwrap().into_inner();
    assert_eq!(closed.state, CaseState::Closed as i32);
    let events = feed_until(&sandbox, |e| e.event_type.ends_with(".CaseClosed")).await;
    assert_eq!(payloads!(events, ImplementationStepOverdue).len(), 1, "once");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_records_its_reason_and_new_owner_and_tells_the_complainant() {
    let (sandbox, _clock) = sandbox().await;
    let mut complaint = redress_intake::testing::complaint("客户经理推销理财时未揭示风险。");
    complaint.complained_party.as_mut().unwrap().staff_id = "E9001".to_owned();
    let case = sandbox.submit_and_open("named-staff", complaint).await;
    let assign = AssignCaseRequest {
        name: case.name.clone(),
        assignee: "user:li-na".to_owned(),
        department: "cards".to_owned(),
        assignee_staff_id: "E2001".to_owned(),
        ..Default::default()
    };
    sandbox.cases().assign_case(assign).await.unwrap();
    let transfer = |to_assignee: &str, staff_id: &str, reason: &str| TransferCaseRequest {
        name: case.name.clone(),
        to_department: "wealth".to_owned(),
        reason: reason.to_owned(),
        to_assignee: to_assignee.to_owned(),
        to_assignee_staff_id: staff_id.to_owned(),
        ..Default::default()
    };
    let reason = "涉及理财产品销售，由财富管理部专人核查销售录音";
    // Never "not my department".
    let status = sandbox.cases().transfer_case(transfer("", "", "这事不归我们部门管")).await.unwrap_err();
    assert_eq!(fields(&status), ["reason"]);
    // The person complained about cannot be named.
    let status = sandbox.cases().transfer_case(transfer("user:zhang-wei", "E9001", reason)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "CONFLICT_OF_INTEREST");

    let moved = sandbox.cases().transfer_case(transfer("user:wang-fang", "E4001", reason)).await.unwrap().into_inner();
    assert_eq!(
        (moved.state, moved.assignee.as_str(), moved.department.as_str()),
        (CaseState::Assigned as i32, "user:wang-fang", "wealth")
    );
    let recorded = moved.transfers.last().unwrap();
    assert_eq!((recorded.reason.as_str(), recorded.to_assignee.as_str()), (reason, "user:wang-fang"));
    assert_eq!(recorded.to_assignee_staff_id, "E4001");
    let events = until_announced(&sandbox, "CaseTransferred", &case).await;
    let told = payloads!(events, CaseTransferred);
    let notice = &told[0].complainant_notice;
    assert!(notice.contains("wealth的专责处理人员") && notice.contains(reason), "{notice}");
    assert!(!notice.contains("不归") && !notice.contains("user:wang-fang"), "{notice}");
    sandbox.stop().await.unwrap();
}
