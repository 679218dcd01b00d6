//! Event feeds through the gateway: scoped to the caller's organisation units, and dead
//! letters an operator can list and replay.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redress_integration_tests::{
    BRANCH_TOKEN, Bearer, INSTITUTION_A, INSTITUTION_A_TOKEN, Sandbox, TOKEN, events_until,
};
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::{CaseOpened, ListCasesRequest};
use redress_proto::redress::common::v1::{Event, ListDeadLettersRequest, ReplayDeadLetterRequest};
use redress_proto::redress::intake::v1::intake_event_feed_service_client::IntakeEventFeedServiceClient;
use redress_proto::redress::intake::v1::{ComplaintAccepted, StreamEventsRequest, SubmitComplaintRequest};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

fn intake_feed(sandbox: &Sandbox, token: &str) -> IntakeEventFeedServiceClient<InterceptedService<Channel, Bearer>> {
    IntakeEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(token.to_owned())))
}

fn case_feed(sandbox: &Sandbox, token: &str) -> CaseEventFeedServiceClient<InterceptedService<Channel, Bearer>> {
    CaseEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(token.to_owned())))
}

async fn submit(sandbox: &Sandbox, org_unit: &str, request_id: &str) -> String {
    let mut complaint = redress_intake::testing::complaint("年费已达标免收但仍被扣收。");
    complaint.org_unit = org_unit.to_owned();
    let request = SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) };
    sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap().name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_scoped_to_one_institution_never_sees_anothers_events_on_either_feed() {
    let sandbox = Sandbox::start().await.unwrap();
    let b = submit(&sandbox, "institutions/b/branches/x", "scope-b").await;
    let a = submit(&sandbox, &format!("{INSTITUTION_A}/branches/y"), "scope-a").await;

    // Both exist on the intake feed for a reader of the whole platform…
    let mut feed = intake_feed(&sandbox, TOKEN);
    let everything = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let all = events_until(everything, |e| e.aggregate == a).await;
    assert!(all.iter().any(|e| e.aggregate == b), "B's complaint is on the feed");
    // …but A's reader, resuming from the start, gets A's events only.
    let mut feed = intake_feed(&sandbox, INSTITUTION_A_TOKEN);
    let scoped = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let seen = events_until(scoped, |e| e.aggregate == a).await;
    assert!(seen.iter().all(|e| e.aggregate == a && e.org_unit.starts_with(INSTITUTION_A)), "{seen:?}");

    // The same on case-workflow's feed, once both cases are open.
    let request = redress_proto::redress::case::v1::StreamEventsRequest { after_position: 0 };
    let is_a = |e: &Event| {
        e.payload.as_ref().and_then(|p| p.to_msg::<CaseOpened>().ok()).is_some_and(|o| o.case.unwrap().complaint == a)
    };
    let everything = case_feed(&sandbox, TOKEN).stream_events(request).await.unwrap().into_inner();
    let all = events_until(everything, is_a).await;
    assert!(all.iter().any(|e| e.org_unit.starts_with("institutions/b")), "B's case is on the feed");
    let scoped = case_feed(&sandbox, INSTITUTION_A_TOKEN).stream_events(request).await.unwrap().into_inner();
    let seen = events_until(scoped, is_a).await;
    assert!(seen.iter().all(|e| e.org_unit.starts_with(INSTITUTION_A)), "{seen:?}");
    // The API agrees: A's reader lists A's case only.
    let mut cases = redress_proto::redress::case::v1::case_service_client::CaseServiceClient::with_interceptor(
        sandbox.channel.clone(),
        Bearer(Some(INSTITUTION_A_TOKEN.to_owned())),
    );
    let listed = cases.list_cases(ListCasesRequest { page_size: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.into_inner().cases.iter().map(|c| c.complaint.as_str()).collect::<Vec<_>>(), [a.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_event_is_dead_lettered_listed_and_applied_once_by_replay() {
    let sandbox = Sandbox::start().await.unwrap();
    // An event on intake's feed that no version of case-workflow can read.
    let url = format!("sqlite://{}/intake.db", sandbox.data_dir.path().display());
    let intake_db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate, org_unit, occur_time_us, payload) \
         VALUES ('poison-1', 'redress.intake.v1.ComplaintAccepted', 'complaints/poisoned', \
         'institutions/demo-bank', 1, x'ffffff')",
    )
    .execute(&intake_db)
    .await
    .unwrap();
    intake_db.close().await;

    let mut admin = case_feed(&sandbox, TOKEN);
    let listed = loop {
        let listed = admin.list_dead_letters(ListDeadLettersRequest::default()).await.unwrap().into_inner();
        if !listed.dead_letters.is_empty() {
            break listed.dead_letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed.len(), 1);
    let dead = &listed[0];
    assert_eq!((dead.event_id.as_str(), dead.consumer.as_str()), ("poison-1", "intake"));
    assert!(!dead.error.is_empty());

    // Only an operator with events.admin may see or replay it.
    let mut handler = case_feed(&sandbox, BRANCH_TOKEN);
    let denied = handler.list_dead_letters(ListDeadLettersRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let replay = |payload| ReplayDeadLetterRequest { name: dead.name.clone(), payload };
    assert_eq!(handler.replay_dead_letter(replay(None)).await.unwrap_err().code(), Code::PermissionDenied);

    // As received it still fails; corrected, it opens the case, once.
    let still = admin.replay_dead_letter(replay(None)).await.unwrap_err();
    assert_eq!(still.code(), Code::FailedPrecondition);
    let corrected = ComplaintAccepted {
        complaint: "complaints/poisoned".to_owned(),
        complaint_number: "20261202999999".to_owned(),
        org_unit: "institutions/demo-bank".to_owned(),
        channel: 3,
        grade: 1,
        receive_time: Some(redress_platform::time::to_timestamp(redress_platform::time::now())),
        ..Default::default()
    };
    let corrected = Some(prost_types::Any::from_msg(&corrected).unwrap());
    let first = admin.replay_dead_letter(replay(corrected.clone())).await.unwrap().into_inner();
    assert!(first.replay_time.is_some());
    assert_eq!(first.replayed_by, "dev");
    let second = admin.replay_dead_letter(replay(corrected)).await.unwrap().into_inner();
    assert_eq!(second.replay_time, first.replay_time, "a replayed dead letter is not applied again");
    let request = ListCasesRequest { complaint: "complaints/poisoned".to_owned(), page_size: 10, ..Default::default() };
    let cases = sandbox.cases().list_cases(request).await.unwrap().into_inner().cases;
    assert_eq!(cases.len(), 1);
    let outstanding = admin.list_dead_letters(ListDeadLettersRequest::default()).await.unwrap().into_inner();
    assert!(outstanding.dead_letters.is_empty());
}
