//! D-SLA-6 end to end through the gateway: on 2026-12-20 with no 2027 calendar, receipts and
//! cases still get every deadline, the decision deadline marked provisional; when the official
//! 2027 file arrives (ReloadCalendars, or dropped into `calendars_dir` and noticed by the
//! services) the deadline is recomputed without a restart and the complainant is told of the
//! new date once.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use redress_integration_tests::{BRANCH_TOKEN, Bearer, Sandbox, TOKEN, events_until};
use redress_platform::time::{Clock, from_timestamp};
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::{
    Case, CaseState, ClockKind, DecisionDeadlineRevised, GetCaseRequest, RequestCaseReviewRequest,
};
use redress_proto::redress::common::v1::{Event, ReloadCalendarsRequest};
use redress_proto::redress::intake::v1::intake_event_feed_service_client::IntakeEventFeedServiceClient;
use redress_proto::redress::intake::v1::{
    Complaint, GetComplaintRequest, ReceiptDeadlinesRevised, SubmitComplaintRequest,
};
use tonic::Code;

/// 24:00 on Mon 2027-01-04 in Shanghai: 15 days after 2026-12-20, on provisional 2027.
const PROVISIONAL_DUE: &str = "2027-01-04T16:00:00Z";
/// 24:00 on Tue 2027-01-05: the official file makes 4 January a holiday.
const OFFICIAL_DUE: &str = "2027-01-05T16:00:00Z";

fn due(s: &str) -> Option<prost_types::Timestamp> {
    Some(s.parse().unwrap())
}

/// A suite whose clock stands at 2026-12-20 10:00 in Shanghai, with an empty `calendars_dir`
/// looked at every `poll_ms` (0: never).
async fn sandbox(calendars: &Path, poll_ms: u64) -> Sandbox {
    // 2026-12-20T02:00:00Z.
    let today = from_timestamp(&prost_types::Timestamp { seconds: 1_797_732_000, nanos: 0 }).unwrap();
    Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        options.clock = Clock::fixed(today);
        options.calendars_dir = Some(calendars.to_owned());
        options.calendars_poll_interval_ms = Some(poll_ms);
    })
    .await
    .unwrap()
}

fn publish_2027(calendars: &Path) {
    let text = "year = 2027\nsource = \"test\"\n[[holidays]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-04\n";
    std::fs::write(calendars.join("2027.toml"), text).unwrap();
}

async fn submit(sandbox: &Sandbox, request_id: &str) -> Complaint {
    let complaint = redress_intake::testing::complaint("信用卡年费未经同意被扣收。");
    let request = SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) };
    sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap()
}

async fn case_of(sandbox: &Sandbox, complaint: &Complaint) -> Case {
    sandbox.case_of(&complaint.name).await
}

fn decision_clock(case: &Case) -> redress_proto::redress::case::v1::SlaClock {
    case.clocks.iter().find(|c| c.kind == ClockKind::RegulatoryDecision as i32).unwrap().clone()
}

/// Both the receipt and the case have a provisional decision deadline at 24:00 on 4 January.
async fn provisional_complaint_and_case(sandbox: &Sandbox, request_id: &str) -> (Complaint, Case) {
    let complaint = submit(sandbox, request_id).await;
    let deadlines = complaint.receipt.clone().unwrap().deadlines.unwrap();
    assert_eq!(deadlines.regulatory_decision_due_time, due(PROVISIONAL_DUE));
    assert!(deadlines.regulatory_decision_provisional);
    assert!(deadlines.regulatory_decision_provisional_reason.contains("2027"));
    assert!(deadlines.first_response_due_time.is_some() && !deadlines.first_response_provisional);
    let case = case_of(sandbox, &complaint).await;
    let clock = decision_clock(&case);
    assert_eq!(clock.due_time, due(PROVISIONAL_DUE));
    assert!(clock.provisional && clock.provisional_reason.contains("2027"), "{clock:?}");
    (complaint, case)
}

fn intake_feed(
    sandbox: &Sandbox,
) -> IntakeEventFeedServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>> {
    IntakeEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())))
}

fn case_feed(
    sandbox: &Sandbox,
) -> CaseEventFeedServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>> {
    CaseEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())))
}

fn of_type<'a>(events: &'a [Event], full_name: &'a str) -> impl Iterator<Item = &'a Event> {
    events.iter().filter(move |e| e.event_type == full_name)
}

/// The receipt and the case now stand on the official calendar.
async fn revised(sandbox: &Sandbox, complaint: &Complaint, case: &Case) {
    let request = GetComplaintRequest { name: complaint.name.clone(), ..Default::default() };
    let now = sandbox.intake().get_complaint(request).await.unwrap().into_inner();
    let deadlines = now.receipt.unwrap().deadlines.unwrap();
    assert_eq!(deadlines.regulatory_decision_due_time, due(OFFICIAL_DUE));
    assert!(!deadlines.regulatory_decision_provisional);
    let now = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
    let clock = decision_clock(&now);
    assert_eq!(clock.due_time, due(OFFICIAL_DUE));
    assert!(!clock.provisional);
    assert!(!now.deadlines.unwrap().regulatory_decision_provisional);
}

/// Every event of both feeds up to the ones a complaint submitted after everything else
/// announces (feeds are in commit order, so nothing committed earlier is missed).
async fn feeds_until_after(sandbox: &Sandbox, request_id: &str) -> (Vec<Event>, Vec<Event>) {
    let marker = submit(sandbox, request_id).await;
    let intake = intake_feed(sandbox)
        .stream_events(redress_proto::redress::intake::v1::StreamEventsRequest { after_position: 0 })
        .await
        .unwrap()
        .into_inner();
    let intake = events_until(intake, |e| e.aggregate == marker.name).await;
    let case = case_of(sandbox, &marker).await;
    let cases = case_feed(sandbox)
        .stream_events(redress_proto::redress::case::v1::StreamEventsRequest { after_position: 0 })
        .await
        .unwrap()
        .into_inner();
    let cases = events_until(cases, |e| e.aggregate == case.name).await;
    (intake, cases)
}

fn the_notices(intake: &[Event], cases: &[Event], complaint: &Complaint, case: &Case) {
    let receipts: Vec<ReceiptDeadlinesRevised> = of_type(intake, "redress.intake.v1.ReceiptDeadlinesRevised")
        .filter(|e| e.aggregate == complaint.name)
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(receipts.len(), 1, "one revision of the receipt: {receipts:?}");
    assert!(receipts[0].complainant_notice.contains("2027年01月05日"), "{}", receipts[0].complainant_notice);
    // Only a running decision clock moves: the decided case's is met and stays as it was.
    let decisions: Vec<DecisionDeadlineRevised> = of_type(cases, "redress.case.v1.DecisionDeadlineRevised")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(decisions.len(), 1, "one revision of the case: {decisions:?}");
    assert_eq!(decisions[0].case.as_ref().unwrap().name, case.name);
    assert_eq!(decisions[0].due_time, due(OFFICIAL_DUE));
    assert!(decisions[0].complainant_notice.contains("2027年01月05日"), "{}", decisions[0].complainant_notice);
}

/// Decided on 2026-12-20, the case may be reviewed: the 30 days end in provisional 2027.
async fn decide_and_request_review(sandbox: &Sandbox, request_id: &str) {
    let case = case_of(sandbox, &submit(sandbox, request_id).await).await;
    sandbox.decide(&case.name).await;
    let (mut cases, name) = (sandbox.cases(), case.name.clone());
    let review = RequestCaseReviewRequest { name, reason: "对处理结果有异议".to_owned(), ..Default::default() };
    let reviewed = cases.request_case_review(review).await.unwrap().into_inner();
    assert_eq!(reviewed.state, CaseState::UnderReview as i32);
    let clock = reviewed.clocks.iter().find(|c| c.kind == ClockKind::ReviewDecision as i32).unwrap();
    assert!(clock.due_time.is_some() && clock.provisional, "{clock:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_calendars_recomputes_provisional_deadlines_once_without_a_restart() {
    let calendars = tempfile::tempdir().unwrap();
    let sandbox = sandbox(calendars.path(), 0).await;
    let (complaint, case) = provisional_complaint_and_case(&sandbox, "provisional-1").await;
    decide_and_request_review(&sandbox, "decided-1").await;

    // Only an operator holding calendars.admin reloads.
    let denied = sandbox.intake_with(Some(BRANCH_TOKEN)).reload_calendars(ReloadCalendarsRequest {}).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);

    publish_2027(calendars.path());
    let intake = sandbox.intake().reload_calendars(ReloadCalendarsRequest {}).await.unwrap().into_inner();
    assert!(intake.official_years.contains(&2027));
    assert_eq!((intake.recomputed_count, intake.revised_count), (2, 2));
    // The reviewed case's review decision clock is recomputed too (no longer provisional).
    let cases = sandbox.cases().reload_calendars(ReloadCalendarsRequest {}).await.unwrap().into_inner();
    assert_eq!(cases.revised_count, 2, "{cases:?}");
    revised(&sandbox, &complaint, &case).await;

    // Reloading again changes nothing and announces nothing.
    let again = sandbox.intake().reload_calendars(ReloadCalendarsRequest {}).await.unwrap().into_inner();
    assert_eq!(again.revised_count, 0);
    let again = sandbox.cases().reload_calendars(ReloadCalendarsRequest {}).await.unwrap().into_inner();
    assert_eq!(again.revised_count, 0);
    let (intake, cases) = feeds_until_after(&sandbox, "after-reload").await;
    the_notices(&intake, &cases, &complaint, &case);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_file_dropped_into_calendars_dir_is_picked_up_without_a_restart() {
    let calendars = tempfile::tempdir().unwrap();
    let sandbox = sandbox(calendars.path(), 50).await;
    let (complaint, case) = provisional_complaint_and_case(&sandbox, "provisional-2").await;

    publish_2027(calendars.path());
    // Each service notices the file by itself; its revision events say it is done.
    let intake = intake_feed(&sandbox)
        .stream_events(redress_proto::redress::intake::v1::StreamEventsRequest { after_position: 0 })
        .await
        .unwrap()
        .into_inner();
    events_until(intake, |e| e.event_type == "redress.intake.v1.ReceiptDeadlinesRevised").await;
    let cases = case_feed(&sandbox)
        .stream_events(redress_proto::redress::case::v1::StreamEventsRequest { after_position: 0 })
        .await
        .unwrap()
        .into_inner();
    events_until(cases, |e| e.event_type == "redress.case.v1.DecisionDeadlineRevised").await;
    revised(&sandbox, &complaint, &case).await;
    let (intake, cases) = feeds_until_after(&sandbox, "after-watch").await;
    the_notices(&intake, &cases, &complaint, &case);
    sandbox.stop().await.unwrap();
}
