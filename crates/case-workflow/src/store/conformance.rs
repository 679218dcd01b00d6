//! One conformance suite for both case stores (PostgreSQL when `REDRESS_TEST_POSTGRES_URL` is
//! set; otherwise those runs report that they skipped).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::TimeDelta;
use redress_platform::db::DatabaseConfig;
use redress_platform::dead_letters::Replay;
use redress_platform::principal::Principal;
use redress_platform::testing::committed_events;
use redress_platform::time::{now, to_timestamp};
use redress_platform::{ApiError, ServiceError};
use redress_proto::redress::case::v1::{
    Case, CaseChanged, CaseClosed, CaseOpened, CaseState, ClockKind, ClockStatus, DeadlineBreached, EscalationRequired,
    LinkType, Money, PauseReason, ResolutionType, ReviewOutcome, SurveyAnswered,
};
use redress_proto::redress::common::v1::{Channel, Event, Grade, ListDeadLettersRequest, ReplayDeadLetterRequest};
use redress_proto::redress::intake::v1::{
    Classification, ComplaintAccepted, ComplaintReclassified, ComplaintWithdrawn, FirstContact, RiskSignal,
    RiskSignalKind,
};

use super::{CaseQuery, CaseStore, RequestKey, Update};
use crate::domain::tests::{handler, rules, supervisor};
use crate::domain::workflow::{Command, WorkflowError};
use crate::error::CaseError;

async fn open(config: &DatabaseConfig) -> Arc<dyn CaseStore> {
    crate::open_store(config, Arc::new(rules()), &redress_platform::host::Supervisor::detached())
        .await
        .expect("store opens")
}

fn accepted(position: i64, n: u32) -> Event {
    accepted_in(position, n, "institutions/demo")
}

/// An accepted complaint received at `received`.
fn accepted_at(position: i64, n: u32, received: chrono::DateTime<chrono::Utc>) -> Event {
    let mut event = accepted(position, n);
    let mut payload: ComplaintAccepted = event.payload.as_ref().unwrap().to_msg().unwrap();
    payload.receive_time = Some(to_timestamp(received));
    event.payload = Some(prost_types::Any::from_msg(&payload).unwrap());
    event
}

fn accepted_in(position: i64, n: u32, org_unit: &str) -> Event {
    let payload = ComplaintAccepted {
        complaint: format!("complaints/{n:08}"),
        complaint_number: format!("20261125{n:08}"),
        channel: 3,
        org_unit: org_unit.to_owned(),
        grade: 1,
        receive_time: Some(to_timestamp(now())),
        complained_staff_id: "e-042".to_owned(),
        ..Default::default()
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        org_unit: org_unit.to_owned(),
        ..Default::default()
    }
}

redress_platform::conformance_suite!(
    open = open;
    accepted_complaints_open_cases_once_despite_redelivery,
    concurrent_consumers_apply_each_event_once,
    cases_list_by_state_and_complaint_with_pages,
    case_lists_are_scoped_to_an_organisation_unit,
    an_event_that_cannot_be_applied_is_set_aside_and_the_rest_proceed,
    a_dead_letter_is_listed_fixed_by_replay_and_applied_once,
    later_events_of_a_dead_lettered_complaint_wait_and_apply_in_order_on_replay,
    one_batch_of_intake_events_gives_the_same_cases_links_and_feed_order,
    an_opened_case_starts_a_verifiable_audit_trail,
    a_case_walks_through_every_state,
    two_updates_with_the_same_etag_one_wins,
    a_retried_request_returns_the_first_result,
    reminders_are_raised_once_even_when_sweeps_are_interrupted,
    merging_updates_both_cases,
    a_reclassification_at_intake_changes_the_case_grade_once,
    a_withdrawal_at_intake_withdraws_the_case,
    a_recurrence_links_the_new_case_to_the_earlier_one,
    a_breach_outlives_a_late_extension_a_downgrade_and_a_reopening,
    provisional_clocks_are_recomputed_once_when_the_official_year_is_loaded,
    a_case_opens_owned_routed_and_escalated_in_one_transaction_and_only_once,
    a_grade_change_to_major_escalates_once_with_the_grade,
    a_name_only_complaint_keeps_its_pending_confirmation_until_someone_else_confirms,
);

async fn accepted_complaints_open_cases_once_despite_redelivery(store: Arc<dyn CaseStore>) {
    assert_eq!(store.position().await.unwrap(), 0);
    assert_eq!(store.apply(vec![accepted(1, 1), accepted(2, 2)]).await.unwrap(), 2);
    // Redelivery of an overlapping batch, then of one already applied.
    assert_eq!(store.apply(vec![accepted(2, 2), accepted(3, 3)]).await.unwrap(), 3);
    assert_eq!(store.apply(vec![accepted(1, 1)]).await.unwrap(), 3);
    // The same complaint announced again at a later position still has one case.
    assert_eq!(store.apply(vec![accepted(4, 1)]).await.unwrap(), 4);
    assert_eq!(store.position().await.unwrap(), 4);
    let cases = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(cases.len(), 3);
    let case = &cases.iter().find(|c| c.case.complaint == "complaints/00000002").unwrap().case;
    assert_eq!(case.state, CaseState::Accepted as i32);
    assert_eq!(case.case_number, "2026112500000002");
    assert!(case.assignee.is_empty());
    let id = case.name.strip_prefix("cases/").unwrap();
    assert_eq!(store.get(id).await.unwrap().as_ref(), Some(case));
    let events = committed_events(store.feed(), 0, 10).await.unwrap();
    assert_eq!(events.len(), 3, "one CaseOpened per case");
    let opened: CaseOpened = events[1].payload.as_ref().unwrap().to_msg().unwrap();
    assert_eq!(opened.case.unwrap().complaint, "complaints/00000002");
    // One complaint announced twice within one batch.
    assert_eq!(store.apply(vec![accepted(5, 9), accepted(6, 9)]).await.unwrap(), 6);
    assert_eq!(store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 4);
    assert_eq!(committed_events(store.feed(), 0, 10).await.unwrap().len(), 4);
}

async fn concurrent_consumers_apply_each_event_once(store: Arc<dyn CaseStore>) {
    let events: Vec<_> = (1..=60).map(|i| accepted(i, i as u32)).collect();
    let mut tasks = Vec::new();
    // Replicas that read the same stored position receive batches of different lengths.
    for len in [60usize, 30, 45] {
        let store = store.clone();
        let batch = events[..len].to_vec();
        tasks.push(tokio::spawn(async move { store.apply(batch).await.unwrap() }));
    }
    for t in tasks {
        let position = t.await.unwrap();
        assert!([30, 45, 60].contains(&position), "{position}");
    }
    assert_eq!(store.position().await.unwrap(), 60);
    assert_eq!(store.list(&CaseQuery { limit: 100, ..Default::default() }).await.unwrap().len(), 60);
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), 60);
}

async fn cases_list_by_state_and_complaint_with_pages(store: Arc<dyn CaseStore>) {
    store.apply((1..=5).map(|i| accepted(i, i as u32)).collect()).await.unwrap();
    let by_complaint = store
        .list(&CaseQuery { complaint: Some("complaints/00000004".to_owned()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_complaint.len(), 1);
    let closed = CaseQuery { state: Some(CaseState::Closed as i32), limit: 10, ..Default::default() };
    assert!(store.list(&closed).await.unwrap().is_empty());
    let page1 = store.list(&CaseQuery { limit: 2, ..Default::default() }).await.unwrap();
    let next = CaseQuery { limit: 10, after: Some(page1[1].cursor.clone()), ..Default::default() };
    let page2 = store.list(&next).await.unwrap();
    assert_eq!(page1.len() + page2.len(), 5);
    assert!(page2.iter().all(|c| page1.iter().all(|p| p.case.name != c.case.name)));
}

async fn case_lists_are_scoped_to_an_organisation_unit(store: Arc<dyn CaseStore>) {
    let units = ["institutions/demo", "institutions/demo/branches/sh", "institutions/demo-2"];
    let events = units.iter().enumerate().map(|(i, unit)| accepted_in(i as i64 + 1, i as u32 + 1, unit)).collect();
    store.apply(events).await.unwrap();
    let scoped = |scope: &str| CaseQuery { scope: Some(scope.to_owned()), limit: 10, ..Default::default() };
    let mut units_seen: Vec<_> =
        store.list(&scoped("institutions/demo")).await.unwrap().into_iter().map(|c| c.case.org_unit).collect();
    units_seen.sort();
    assert_eq!(units_seen, ["institutions/demo", "institutions/demo/branches/sh"]);
    assert_eq!(store.list(&scoped("institutions/demo-2")).await.unwrap().len(), 1);
    assert_eq!(store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 3);
}

async fn an_event_that_cannot_be_applied_is_set_aside_and_the_rest_proceed(store: Arc<dyn CaseStore>) {
    let mut broken = accepted(1, 1);
    broken.payload.as_mut().unwrap().value = vec![0xff, 0xff, 0xff];
    assert_eq!(store.apply(vec![broken.clone(), accepted(2, 2)]).await.unwrap(), 2);
    // Redelivery does not record it twice.
    assert_eq!(store.apply(vec![broken.clone()]).await.unwrap(), 2);
    let cases = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(cases.iter().map(|c| c.case.complaint.as_str()).collect::<Vec<_>>(), ["complaints/00000002"]);
    let dead = store.list_dead_letters(&operator("/"), &ListDeadLettersRequest::default()).await.unwrap().dead_letters;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].name.as_str(), dead[0].position), ("consumers/intake/deadLetters/1", 1));
    assert_eq!(dead[0].event_id, broken.event_id);
    assert_eq!(dead[0].payload.as_ref().unwrap().value, [0xff, 0xff, 0xff]);
    assert!(!dead[0].error.is_empty());
}

fn operator(org_unit: &str) -> Principal {
    Principal {
        subject: "user:ops".to_owned(),
        roles: vec!["operator".to_owned()],
        org_unit: org_unit.to_owned(),
        department: String::new(),
        permissions: vec!["events.admin".to_owned()],
        staff_id: String::new(),
    }
}

fn replay_of(position: i64, payload: Option<prost_types::Any>, by: &Principal) -> Result<Replay, ServiceError> {
    let request = ReplayDeadLetterRequest { name: format!("consumers/intake/deadLetters/{position}"), payload };
    Replay::parse(Arc::new(by.clone()), request)
}

async fn a_dead_letter_is_listed_fixed_by_replay_and_applied_once(store: Arc<dyn CaseStore>) {
    let good = accepted(1, 1);
    let mut broken = good.clone();
    broken.payload.as_mut().unwrap().value = vec![0xff, 0xff, 0xff];
    store.apply(vec![broken, accepted(2, 2)]).await.unwrap();
    let admin = operator("institutions/demo");
    let outstanding = || async {
        let request = ListDeadLettersRequest::default();
        store.list_dead_letters(&admin, &request).await.unwrap().dead_letters
    };
    assert_eq!(outstanding().await.len(), 1);
    // Another institution's operator sees none and cannot replay it; a reader cannot at all.
    let foreign = operator("institutions/other");
    assert!(
        store.list_dead_letters(&foreign, &ListDeadLettersRequest::default()).await.unwrap().dead_letters.is_empty()
    );
    let err = store.replay_dead_letter(replay_of(1, None, &foreign).unwrap()).await.unwrap_err();
    assert!(matches!(err, CaseError::Platform(ServiceError::NotFound { .. })), "{err}");
    let reader = Principal { permissions: vec!["events.read".to_owned()], ..admin.clone() };
    assert!(matches!(replay_of(1, None, &reader), Err(ServiceError::PermissionDenied(_))));
    // Replayed as received it still fails, and nothing is written.
    let err = store.replay_dead_letter(replay_of(1, None, &admin).unwrap()).await.unwrap_err();
    assert_eq!(err.reason(), "DEAD_LETTER_STILL_FAILS", "{err}");
    // A corrected payload could name any unit's complaint: only the whole platform's operator
    // may supply one.
    let corrected = good.payload.clone();
    assert!(matches!(replay_of(1, corrected.clone(), &admin), Err(ServiceError::PermissionDenied(_))));
    let platform = operator("/");
    // A payload of another type is refused.
    let wrong = Some(prost_types::Any::from_msg(&ComplaintWithdrawn::default()).unwrap());
    let err = store.replay_dead_letter(replay_of(1, wrong, &platform).unwrap()).await.unwrap_err();
    assert!(matches!(err, CaseError::Platform(ServiceError::InvalidArgument(_))), "{err}");
    assert_eq!(store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 1);
    // With the corrected payload it opens the case, once however often it is replayed.
    let replayed = store.replay_dead_letter(replay_of(1, corrected.clone(), &platform).unwrap()).await.unwrap();
    assert_eq!(replayed.replayed_by, "user:ops");
    assert!(replayed.replay_time_us.is_some());
    let again = store.replay_dead_letter(replay_of(1, corrected, &platform).unwrap()).await.unwrap();
    assert_eq!(again.replay_time_us, replayed.replay_time_us, "returned unchanged, not applied again");
    let cases = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    let mut complaints: Vec<_> = cases.iter().map(|c| c.case.complaint.clone()).collect();
    complaints.sort();
    assert_eq!(complaints, ["complaints/00000001", "complaints/00000002"]);
    let opened = committed_events(store.feed(), 0, 10).await.unwrap();
    assert_eq!(opened.len(), 2, "one CaseOpened each");
    assert!(outstanding().await.is_empty());
    let all = ListDeadLettersRequest { show_replayed: true, ..Default::default() };
    let listed = store.list_dead_letters(&admin, &all).await.unwrap().dead_letters;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].replay_time.is_some() && listed[0].replay_payload.is_some());
}

fn withdrawal(position: i64, n: u32) -> Event {
    let payload = ComplaintWithdrawn {
        complaint: format!("complaints/{n:08}"),
        withdraw_time: Some(to_timestamp(now())),
        reason: "已协商解决".to_owned(),
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintWithdrawn".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        org_unit: "institutions/demo".to_owned(),
        ..Default::default()
    }
}

/// A withdrawal behind an acceptance that could not be applied must not be lost, nor applied
/// to nothing: it waits, and the replay applies both in their order.
async fn later_events_of_a_dead_lettered_complaint_wait_and_apply_in_order_on_replay(store: Arc<dyn CaseStore>) {
    let good = accepted(1, 1);
    let mut broken = good.clone();
    broken.payload.as_mut().unwrap().value = vec![0xff];
    store.apply(vec![broken, accepted(2, 2), withdrawal(3, 1)]).await.unwrap();
    let platform = operator("/");
    let dead = store.list_dead_letters(&platform, &ListDeadLettersRequest::default()).await.unwrap().dead_letters;
    assert_eq!(dead.iter().map(|d| d.position).collect::<Vec<_>>(), [1, 3], "the withdrawal waits behind");
    assert!(dead[1].error.contains("position 1"), "{}", dead[1].error);
    // The later one cannot jump the queue.
    let err = store.replay_dead_letter(replay_of(3, None, &platform).unwrap()).await.unwrap_err();
    assert_eq!(err.reason(), "DEAD_LETTER_WAITS", "{err}");
    store.replay_dead_letter(replay_of(1, good.payload.clone(), &platform).unwrap()).await.unwrap();
    let query = CaseQuery { complaint: Some("complaints/00000001".to_owned()), limit: 10, ..Default::default() };
    let case = store.list(&query).await.unwrap().remove(0).case;
    assert_eq!(case.state, CaseState::Withdrawn as i32, "opened, then withdrawn, in order");
    assert!(
        store.list_dead_letters(&platform, &ListDeadLettersRequest::default()).await.unwrap().dead_letters.is_empty()
    );
}

/// One batch mixing every kind of intake event, applied in one go: the cases, their links and
/// the feed they announce must be the same on every backend, in event order.
async fn one_batch_of_intake_events_gives_the_same_cases_links_and_feed_order(store: Arc<dyn CaseStore>) {
    let mut repeat = accepted(3, 2);
    let mut payload: ComplaintAccepted = repeat.payload.as_ref().unwrap().to_msg().unwrap();
    payload.recurrence_of = "complaints/00000001".to_owned();
    repeat.payload = Some(prost_types::Any::from_msg(&payload).unwrap());
    let mut broken = accepted(5, 4);
    broken.payload.as_mut().unwrap().value = vec![0xff];
    let withdrawn = ComplaintWithdrawn {
        complaint: "complaints/00000003".to_owned(),
        withdraw_time: Some(to_timestamp(now())),
        reason: "已解决".to_owned(),
    };
    let withdrawn = Event {
        position: 7,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintWithdrawn".to_owned(),
        payload: Some(prost_types::Any::from_msg(&withdrawn).unwrap()),
        ..Default::default()
    };
    let batch = vec![
        accepted(1, 1),
        reclassified(2, 1, Grade::Urgent),
        repeat,
        reclassified(4, 2, Grade::Important),
        broken,
        accepted(6, 3),
        withdrawn,
        reclassified(8, 3, Grade::Major),
    ];
    assert_eq!(store.apply(batch).await.unwrap(), 8);
    let cases = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    let complaint_of =
        |case: &str| cases.iter().find(|c| c.case.name == case).map(|c| c.case.complaint.clone()).unwrap_or_default();
    let mut summary: Vec<String> = cases
        .iter()
        .map(|c| {
            let links: Vec<String> = c.case.links.iter().map(|l| complaint_of(&l.case)).collect();
            let state = CaseState::try_from(c.case.state).unwrap().as_str_name();
            format!("{} {state} grade {} links {links:?}", c.case.complaint, c.case.grade)
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        [
            "complaints/00000001 CASE_STATE_ACCEPTED grade 3 links [\"complaints/00000002\"]",
            "complaints/00000002 CASE_STATE_ACCEPTED grade 2 links [\"complaints/00000001\"]",
            "complaints/00000003 CASE_STATE_WITHDRAWN grade 1 links []",
        ]
    );
    let feed: Vec<String> = committed_events(store.feed(), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let kind = e.event_type.rsplit('.').next().unwrap_or_default().to_owned();
            let action = match kind.as_str() {
                "CaseChanged" => {
                    let changed: CaseChanged = e.payload.as_ref().unwrap().to_msg().unwrap();
                    format!(" {}", changed.action)
                }
                _ => String::new(),
            };
            format!("{kind}{action} {}", complaint_of(&e.aggregate))
        })
        .collect();
    assert_eq!(
        feed,
        [
            "CaseOpened complaints/00000001",
            "CaseChanged case.grade_changed complaints/00000001",
            "CaseOpened complaints/00000002",
            "CaseChanged case.linked complaints/00000002",
            "CaseChanged case.linked complaints/00000001",
            "CaseChanged case.grade_changed complaints/00000002",
            "CaseOpened complaints/00000003",
            "CaseChanged case.transitioned complaints/00000003",
        ]
    );
    let dead = store.list_dead_letters(&operator("/"), &ListDeadLettersRequest::default()).await.unwrap().dead_letters;
    assert_eq!(dead.iter().map(|d| d.position).collect::<Vec<_>>(), [5]);
}

async fn an_opened_case_starts_a_verifiable_audit_trail(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1), accepted(2, 1)]).await.unwrap();
    let case = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap().remove(0).case;
    let id = case.name.strip_prefix("cases/").unwrap();
    let trail = store.audit_trail(id).await.unwrap().unwrap();
    assert_eq!(trail.entries.len(), 1, "a re-announced complaint adds nothing");
    let entry = &trail.entries[0];
    assert_eq!((entry.sequence, entry.action.as_str(), entry.actor.as_str()), (1, "case.opened", super::SYSTEM_ACTOR));
    assert_eq!(entry.details.get("complaint").map(String::as_str), Some("complaints/00000001"));
    assert_eq!((trail.length, trail.head.as_str()), (1, entry.hash.as_str()));
    assert_eq!(
        crate::domain::audit::verify(
            &store.rules().current().audit,
            id,
            &trail.entries,
            trail.length,
            &trail.head,
            &trail.seal
        ),
        Ok(())
    );
    assert!(store.audit_trail(&uuid::Uuid::now_v7().to_string()).await.unwrap().is_none());
}

/// The id of the first case listed (the newest).
async fn newest_case(store: &Arc<dyn CaseStore>) -> Case {
    store.list(&CaseQuery { limit: 1, ..Default::default() }).await.unwrap().remove(0).case
}

fn id_of(case: &Case) -> String {
    case.name.strip_prefix("cases/").unwrap().to_owned()
}

async fn change(store: &Arc<dyn CaseStore>, case: &Case, who: &Principal, command: Command) -> Result<Case, CaseError> {
    let update = Update {
        id: id_of(case),
        other: None,
        expected_version: None,
        request: None,
        principal: Arc::new(who.clone()),
        command,
    };
    store.update(update).await
}

fn text(s: &str) -> String {
    s.to_owned()
}

fn to(target: CaseState) -> Command {
    Command::Transition { target, reason: format!("to {}", target.as_str_name()) }
}

async fn a_case_walks_through_every_state(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1)]).await.unwrap();
    let h = handler();
    let s = supervisor();
    // The receiving department's supervisor takes the transferred case.
    let loans = Principal { department: "loans".to_owned(), ..supervisor() };
    let mut case = newest_case(&store).await;
    let mut visited = vec![case.state];
    let steps: Vec<(&Principal, Command)> = vec![
        (
            &h,
            Command::Assign {
                assignee: text("u-handler"),
                department: text("cards"),
                assignee_staff_id: text("E1001"),
            },
        ),
        (&h, Command::FirstResponse { note: text("called the complainant"), channel: Channel::Phone }),
        (
            &h,
            Command::Transfer {
                to_department: text("loans"),
                reason: text("a loan fee, not a card fee"),
                to_assignee: String::new(),
                to_assignee_staff_id: String::new(),
            },
        ),
        (
            &loans,
            Command::Assign { assignee: text("u-loans"), department: text("loans"), assignee_staff_id: text("E1001") },
        ),
        (&h, to(CaseState::Investigating)),
        (&h, Command::Pause { reason: PauseReason::WaitingForMaterials, note: text("statement") }),
        (&h, Command::Resume { note: text("statement received") }),
        (&s, Command::Extend { total_days: 30, reason: text("needs the partner's records") }),
        (
            &h,
            Command::AddEvidence {
                uri: text("s3://ev/call.mp3"),
                sha256: "0f".repeat(32),
                kind: text("recording"),
                description: text(""),
            },
        ),
        (&h, to(CaseState::InMediation)),
        (
            &h,
            Command::Propose {
                kind: ResolutionType::ApologyCompensation,
                compensation: Some(Money { currency_code: text("CNY"), amount_minor: 200_000 }),
                grounds: text("fee charged twice"),
            },
        ),
        (&s, Command::Approve { note: text("within policy") }),
        (&h, Command::Decide { notice: text("we refund the fee and apologise") }),
        (&h, Command::RequestReview { reason: text("the refund is too small") }),
        (
            &s,
            Command::Assign {
                assignee: text("u-reviewer"),
                department: text("consumer-protection"),
                assignee_staff_id: text("E1001"),
            },
        ),
        (&s, Command::DecideReview { outcome: ReviewOutcome::Upheld, notice: text("the review confirms the refund") }),
        (&h, Command::Survey { score: 4, resolved: true, comment: text("ok") }),
        (&h, to(CaseState::Closed)),
        (&h, to(CaseState::Reopened)),
        (
            &h,
            Command::Assign { assignee: text("u-loans"), department: text("loans"), assignee_staff_id: text("E1001") },
        ),
        (&h, to(CaseState::Investigating)),
        (&h, Command::Propose { kind: ResolutionType::ProcessFix, compensation: None, grounds: text("process fixed") }),
        (&h, Command::Decide { notice: text("fixed") }),
        (&h, to(CaseState::FollowUp)),
        (&h, to(CaseState::Closed)),
    ];
    let count = steps.len();
    for (who, command) in steps {
        let before = case.etag.clone();
        case = change(&store, &case, who, command.clone()).await.unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert_ne!(case.etag, before);
        visited.push(case.state);
    }
    for state in [
        CaseState::Accepted,
        CaseState::Assigned,
        CaseState::Investigating,
        CaseState::ResolutionProposed,
        CaseState::Decided,
        CaseState::FollowUp,
        CaseState::Closed,
        CaseState::Reopened,
        CaseState::UnderReview,
        CaseState::InMediation,
    ] {
        assert!(visited.contains(&(state as i32)), "never in {state:?}");
    }
    assert_eq!(store.get(&id_of(&case)).await.unwrap().as_ref(), Some(&case));
    assert_eq!(case.first_contact_owner, "u-handler");
    assert_eq!((case.review_count, case.reopen_count), (1, 1));
    assert_eq!(case.transfers.len(), 1);
    assert!(case.transfers[0].accept_time.is_some());
    assert_eq!(case.pauses.len(), 1);
    let decision = case.clocks.iter().find(|c| c.kind == ClockKind::RegulatoryDecision as i32).unwrap();
    assert_eq!(decision.length, 30);
    // The review is kept with who asked, why, and how it ended, and its clock was met.
    assert_eq!(case.reviews.len(), 1);
    let review = &case.reviews[0];
    assert_eq!((review.reason.as_str(), review.reviewer.as_str()), ("the refund is too small", "u-reviewer"));
    assert_eq!(review.outcome, ReviewOutcome::Upheld as i32);
    let reviewed = case.clocks.iter().find(|c| c.kind == ClockKind::ReviewDecision as i32).unwrap();
    assert_eq!(reviewed.status, ClockStatus::Met as i32);

    // Every step is on the verifiable trail and on the feed.
    let id = id_of(&case);
    let trail = store.audit_trail(&id).await.unwrap().unwrap();
    assert_eq!(trail.entries.len(), count + 1);
    assert_eq!(
        crate::domain::audit::verify(
            &store.rules().current().audit,
            &id,
            &trail.entries,
            trail.length,
            &trail.head,
            &trail.seal
        ),
        Ok(())
    );
    let events = committed_events(store.feed(), 0, 1000).await.unwrap();
    let of_type = |t: &str| events.iter().filter(|e| e.event_type == format!("redress.case.v1.{t}")).count();
    assert_eq!(of_type("CaseChanged"), count);
    assert_eq!(of_type("DecisionDeadlineExtended"), 1);
    assert_eq!(of_type("CaseReviewDecided"), 1);
    assert_eq!(of_type("SurveyAnswered"), 1);
    assert_eq!(of_type("CaseClosed"), 2);
    let survey = events.iter().find(|e| e.event_type.ends_with("SurveyAnswered")).unwrap();
    let survey: SurveyAnswered = survey.payload.as_ref().unwrap().to_msg().unwrap();
    let measures = survey.measures.unwrap();
    assert!(measures.first_response_seconds >= 0 && measures.decision_seconds >= measures.first_response_seconds);
    assert!(!measures.one_time_resolution, "reviewed once");
    let closed: CaseClosed = events
        .iter()
        .rfind(|e| e.event_type.ends_with("CaseClosed"))
        .unwrap()
        .payload
        .as_ref()
        .unwrap()
        .to_msg()
        .unwrap();
    assert_eq!(closed.case.unwrap().state, CaseState::Closed as i32);
    let last: CaseChanged = events
        .iter()
        .rfind(|e| e.event_type.ends_with("CaseChanged"))
        .unwrap()
        .payload
        .as_ref()
        .unwrap()
        .to_msg()
        .unwrap();
    assert_eq!((last.previous_state, last.actor.as_str()), (CaseState::FollowUp as i32, "u-handler"));

    // Withdrawal ends another case from any open state; nothing follows it.
    store.apply(vec![accepted(2, 2)]).await.unwrap();
    let other = newest_case(&store).await;
    let withdrawn = change(&store, &other, &h, to(CaseState::Withdrawn)).await.unwrap();
    assert!(withdrawn.close_time.is_some());
    let err = change(&store, &withdrawn, &h, to(CaseState::Reopened)).await.unwrap_err();
    assert!(
        matches!(&err, CaseError::Workflow(WorkflowError::InvalidState { current: CaseState::Withdrawn, .. })),
        "{err}"
    );
}

async fn two_updates_with_the_same_etag_one_wins(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1)]).await.unwrap();
    let case = newest_case(&store).await;
    let version = 1;
    let mut tasks = Vec::new();
    for assignee in ["u-a", "u-b", "u-c", "u-d"] {
        let store = store.clone();
        let update = Update {
            id: id_of(&case),
            other: None,
            expected_version: Some(version),
            request: None,
            principal: Arc::new(handler()),
            command: Command::Assign {
                assignee: assignee.to_owned(),
                department: text("cards"),
                assignee_staff_id: text("E1001"),
            },
        };
        tasks.push(tokio::spawn(async move { store.update(update).await }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(case) => won.push(case),
            Err(e) => assert_eq!(e.reason(), "ETAG_MISMATCH", "{e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one update wins");
    let stored = store.get(&id_of(&case)).await.unwrap().unwrap();
    assert_eq!(stored.assignee, won[0].assignee);
    assert_eq!(stored.etag, "\"2\"");
    assert_eq!(store.audit_trail(&id_of(&case)).await.unwrap().unwrap().entries.len(), 2);
}

async fn a_retried_request_returns_the_first_result(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1)]).await.unwrap();
    let case = newest_case(&store).await;
    let update = |fingerprint: &str, assignee: &str| Update {
        id: id_of(&case),
        other: None,
        expected_version: None,
        request: Some(RequestKey { id: text("req-1"), fingerprint: fingerprint.to_owned() }),
        principal: Arc::new(handler()),
        command: Command::Assign {
            assignee: assignee.to_owned(),
            department: text("cards"),
            assignee_staff_id: text("E1001"),
        },
    };
    let first = store.update(update("f1", "u-a")).await.unwrap();
    let again = store.update(update("f1", "u-a")).await.unwrap();
    assert_eq!(first, again);
    let err = store.update(update("f2", "u-b")).await.unwrap_err();
    assert!(matches!(err, CaseError::RequestIdReused), "{err}");
    assert_eq!(err.violations()[0].field, "request_id");
    assert_eq!(store.audit_trail(&id_of(&case)).await.unwrap().unwrap().entries.len(), 2, "applied once");
    // A refused change writes nothing either.
    let refused = change(&store, &first, &handler(), to(CaseState::Closed)).await;
    assert!(refused.is_err());
    assert_eq!(store.get(&id_of(&case)).await.unwrap().unwrap(), first);
}

async fn reminders_are_raised_once_even_when_sweeps_are_interrupted(store: Arc<dyn CaseStore>) {
    // Complaints received 20 days ago: every clock has run out.
    let received = now() - TimeDelta::days(20);
    let events: Vec<Event> = (1..=30).map(|i| accepted_at(i, i as u32, received)).collect();
    store.apply(events).await.unwrap();
    // Sweeps that are cut off at arbitrary points, racing each other.
    for round in 0..6u64 {
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.sweep(now(), 4).await }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(round * 3)).await;
        tasks[0].abort();
        for t in tasks {
            let _ = t.await;
        }
    }
    // Sweep until everything is raised. On PostgreSQL a cut-off sweep's lock is released only
    // when its connection's pending rollback runs, so a sweep may stand back meanwhile.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let breaches = loop {
        store.sweep(now(), 100).await.unwrap();
        let events = committed_events(store.feed(), 0, 10_000).await.unwrap();
        let mut breaches = std::collections::HashMap::<(String, i32), usize>::new();
        for e in events.iter().filter(|e| e.event_type.ends_with("DeadlineBreached")) {
            let b: DeadlineBreached = e.payload.as_ref().unwrap().to_msg().unwrap();
            *breaches.entry((e.aggregate.clone(), b.clock)).or_default() += 1;
        }
        if breaches.len() >= 90 || std::time::Instant::now() > give_up {
            break breaches;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // First response, resolution and the 15-day decision clock: one breach each per case.
    assert_eq!(breaches.len(), 90, "{breaches:?}");
    assert!(breaches.values().all(|n| *n == 1), "{breaches:?}");
    for listed in store.list(&CaseQuery { limit: 100, ..Default::default() }).await.unwrap() {
        assert!(listed.case.clocks.iter().all(|c| c.breached), "{:?}", listed.case.clocks);
        let id = id_of(&listed.case);
        let trail = store.audit_trail(&id).await.unwrap().unwrap();
        assert_eq!(trail.entries.iter().filter(|e| e.action == "deadline.breached").count(), 3);
        assert_eq!(
            crate::domain::audit::verify(
                &store.rules().current().audit,
                &id,
                &trail.entries,
                trail.length,
                &trail.head,
                &trail.seal
            ),
            Ok(())
        );
    }
    assert_eq!(store.sweep(now(), 100).await.unwrap(), 0, "nothing left to raise");
}

async fn merging_updates_both_cases(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1), accepted(2, 2)]).await.unwrap();
    let cases = store.list(&CaseQuery { limit: 2, ..Default::default() }).await.unwrap();
    let (duplicate, survivor) = (&cases[0].case, &cases[1].case);
    let update = Update {
        id: id_of(duplicate),
        other: Some(id_of(survivor)),
        expected_version: Some(1),
        request: None,
        principal: Arc::new(handler()),
        command: Command::Link { kind: LinkType::MergedInto, reason: text("same complaint") },
    };
    let merged = store.update(update).await.unwrap();
    assert_eq!((merged.state, merged.merged_into.as_str()), (CaseState::Closed as i32, survivor.name.as_str()));
    let survivor = store.get(&id_of(survivor)).await.unwrap().unwrap();
    assert_eq!(survivor.links.len(), 1);
    assert_eq!(
        (survivor.links[0].r#type, survivor.links[0].case.as_str()),
        (LinkType::MergedFrom as i32, merged.name.as_str())
    );
    assert_eq!(survivor.etag, "\"2\"");
    for id in [id_of(&merged), id_of(&survivor)] {
        let trail = store.audit_trail(&id).await.unwrap().unwrap();
        assert_eq!(trail.entries.last().unwrap().action, "case.linked");
    }
    // A case outside the caller's unit cannot be linked: it does not exist for the caller.
    store.apply(vec![accepted_in(3, 3, "institutions/other")]).await.unwrap();
    let foreign = newest_case(&store).await;
    let update = Update {
        id: id_of(&survivor),
        other: Some(id_of(&foreign)),
        expected_version: None,
        request: None,
        principal: Arc::new(handler()),
        command: Command::Link { kind: LinkType::Related, reason: text("r") },
    };
    assert!(matches!(store.update(update).await, Err(CaseError::NotFound { .. })));
    // Nor can it be changed.
    let err = change(&store, &foreign, &handler(), to(CaseState::Withdrawn)).await.unwrap_err();
    assert!(matches!(err, CaseError::NotFound { .. }), "{err}");
    assert_eq!(store.get(&id_of(&foreign)).await.unwrap().unwrap(), foreign);
}

fn reclassified(position: i64, n: u32, grade: Grade) -> Event {
    let payload = ComplaintReclassified {
        complaint: format!("complaints/{n:08}"),
        classification: Some(Classification {
            grade: grade as i32,
            classified_by: "u-supervisor".to_owned(),
            override_reason: "media attention".to_owned(),
            ..Default::default()
        }),
        previous: None,
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintReclassified".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        ..Default::default()
    }
}

async fn a_reclassification_at_intake_changes_the_case_grade_once(store: Arc<dyn CaseStore>) {
    // Accepted and reclassified in one batch, then the reclassification redelivered.
    store.apply(vec![accepted(1, 1), reclassified(2, 1, Grade::Urgent)]).await.unwrap();
    assert_eq!(store.apply(vec![reclassified(2, 1, Grade::Urgent)]).await.unwrap(), 2);
    let case = newest_case(&store).await;
    assert_eq!(case.grade, Grade::Urgent as i32);
    let resolution = case.clocks.iter().find(|c| c.kind == ClockKind::Resolution as i32).unwrap();
    assert_eq!(resolution.length, 3, "urgent: 3 working days");
    let trail = store.audit_trail(&id_of(&case)).await.unwrap().unwrap();
    let actions: Vec<(&str, &str)> = trail.entries.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert_eq!(actions, [("case.opened", super::SYSTEM_ACTOR), ("case.grade_changed", super::SYSTEM_ACTOR)]);
    assert!(trail.entries[1].details["reason"].contains("u-supervisor"));
    // The same grade again, or a complaint without a case, changes nothing.
    store.apply(vec![reclassified(3, 1, Grade::Urgent), reclassified(4, 77, Grade::Major)]).await.unwrap();
    assert_eq!(store.audit_trail(&id_of(&case)).await.unwrap().unwrap().entries.len(), 2);
    assert_eq!(store.position().await.unwrap(), 4);
}

async fn a_withdrawal_at_intake_withdraws_the_case(store: Arc<dyn CaseStore>) {
    let payload = ComplaintWithdrawn {
        complaint: "complaints/00000001".to_owned(),
        withdraw_time: Some(to_timestamp(now())),
        reason: "已与网点协商解决".to_owned(),
    };
    let withdrawn = Event {
        position: 2,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintWithdrawn".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        ..Default::default()
    };
    store.apply(vec![accepted(1, 1), withdrawn.clone()]).await.unwrap();
    let case = newest_case(&store).await;
    assert_eq!(case.state, CaseState::Withdrawn as i32);
    assert!(case.close_time.is_some());
    assert!(case.clocks.iter().all(|c| c.status == redress_proto::redress::case::v1::ClockStatus::Stopped as i32));
    // Redelivered at a later position: the case is already withdrawn, nothing more happens.
    let mut again = withdrawn;
    again.position = 3;
    store.apply(vec![again]).await.unwrap();
    let trail = store.audit_trail(&id_of(&case)).await.unwrap().unwrap();
    assert_eq!(trail.entries.len(), 2);
    assert!(trail.entries[1].details["reason"].contains("已与网点协商解决"));
}

async fn a_recurrence_links_the_new_case_to_the_earlier_one(store: Arc<dyn CaseStore>) {
    let mut repeat = accepted(2, 2);
    let mut payload: ComplaintAccepted = repeat.payload.as_ref().unwrap().to_msg().unwrap();
    payload.recurrence_of = "complaints/00000001".to_owned();
    repeat.payload = Some(prost_types::Any::from_msg(&payload).unwrap());
    // Both in one batch, then the batch redelivered.
    store.apply(vec![accepted(1, 1), repeat.clone()]).await.unwrap();
    store.apply(vec![accepted(1, 1), repeat]).await.unwrap();
    let cases = store.list(&CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    let case_of = |complaint: &str| cases.iter().find(|c| c.case.complaint == complaint).unwrap().case.clone();
    let (earlier, later) = (case_of("complaints/00000001"), case_of("complaints/00000002"));
    assert_eq!(later.links.len(), 1);
    assert_eq!(
        (later.links[0].r#type, later.links[0].case.as_str()),
        (LinkType::Related as i32, earlier.name.as_str())
    );
    assert_eq!(earlier.links.len(), 1, "linked once despite redelivery");
    assert_eq!(earlier.links[0].case, later.name);
    assert!(later.links[0].reason.contains("recurrence"));
    for case in [&earlier, &later] {
        let trail = store.audit_trail(&id_of(case)).await.unwrap().unwrap();
        assert_eq!(trail.entries.last().unwrap().action, "case.linked");
    }
}

async fn a_breach_outlives_a_late_extension_a_downgrade_and_a_reopening(store: Arc<dyn CaseStore>) {
    // Received 20 days ago: every clock has run out.
    store.apply(vec![accepted_at(1, 1, now() - TimeDelta::days(20))]).await.unwrap();
    let received = newest_case(&store).await;
    let (h, s) = (handler(), supervisor());
    let extend = Command::Extend { total_days: 30, reason: text("needs the partner's records") };
    let err = change(&store, &received, &s, extend.clone()).await.unwrap_err();
    assert!(matches!(err, CaseError::Workflow(WorkflowError::ExtensionTooLate { .. })), "{err}");
    assert_eq!((err.kind().code(), err.reason()), (tonic::Code::FailedPrecondition, "EXTENSION_TOO_LATE"));
    assert_eq!(store.get(&id_of(&received)).await.unwrap().unwrap(), received, "a refusal writes nothing");

    store.sweep(now(), 10).await.unwrap();
    let swept = store.get(&id_of(&received)).await.unwrap().unwrap();
    let kinds: Vec<i32> = swept.breaches.iter().map(|b| b.clock).collect();
    let expected = [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::RegulatoryDecision];
    assert_eq!(kinds, expected.map(|k| k as i32));
    for breach in &swept.breaches {
        let clock = swept.clocks.iter().find(|c| c.kind == breach.clock).unwrap();
        assert_eq!((breach.clock_start_time, breach.due_time), (clock.start_time, clock.due_time));
        let (due, recorded) = (breach.due_time.unwrap(), breach.breach_time.unwrap());
        assert!((recorded.seconds, recorded.nanos) >= (due.seconds, due.nanos));
    }

    let err = change(&store, &swept, &s, extend).await.unwrap_err();
    assert_eq!(err.reason(), "EXTENSION_TOO_LATE");

    // Up to urgent and back down, paused and resumed, decided, closed and reopened: the
    // clocks get new due times and a new resolution clock, the breaches stay as they were.
    let steps: Vec<(&Principal, Command)> = vec![
        (&h, Command::ChangeGrade { grade: Grade::Urgent, reason: text("media attention") }),
        (&h, Command::ChangeGrade { grade: Grade::General, reason: text("not urgent after all") }),
        (&h, Command::Pause { reason: PauseReason::WaitingForMaterials, note: text("statement") }),
        (&h, Command::Resume { note: text("statement received") }),
        (
            &h,
            Command::Assign {
                assignee: text("u-handler"),
                department: text("cards"),
                assignee_staff_id: text("E1001"),
            },
        ),
        (&h, to(CaseState::Investigating)),
        (&h, Command::Propose { kind: ResolutionType::Explanation, compensation: None, grounds: text("g") }),
        (&h, Command::Decide { notice: text("explained") }),
        (&h, Command::Survey { score: 5, resolved: true, comment: text("ok") }),
        (&h, to(CaseState::Closed)),
        (&h, to(CaseState::Reopened)),
    ];
    let mut case = swept.clone();
    for (who, command) in steps {
        case = change(&store, &case, who, command.clone()).await.unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert_eq!(case.breaches, swept.breaches, "after {command:?}");
    }
    assert_eq!(case.state, CaseState::Reopened as i32);
    assert_eq!(store.get(&id_of(&case)).await.unwrap().unwrap().breaches, swept.breaches);

    // What quality-metrics is told counts them.
    let events = committed_events(store.feed(), 0, 1000).await.unwrap();
    let payload = |t: &str| events.iter().find(|e| e.event_type.ends_with(t)).unwrap().payload.clone().unwrap();
    let survey: SurveyAnswered = payload("SurveyAnswered").to_msg().unwrap();
    assert!(!survey.measures.unwrap().on_time);
    let closed: CaseClosed = payload("CaseClosed").to_msg().unwrap();
    assert!(!closed.measures.unwrap().on_time);
}

/// D-SLA-6: with no 2027 calendar, a case received on 2026-12-20 still has every clock, the
/// decision clock marked provisional; a review of a decision taken that day is accepted; and
/// loading a 2027 file that changes the decision deadline recomputes it, announcing the new
/// date to the complainant once.
async fn provisional_clocks_are_recomputed_once_when_the_official_year_is_loaded(store: Arc<dyn CaseStore>) {
    use redress_proto::redress::case::v1::DecisionDeadlineRevised;

    let received = chrono::DateTime::parse_from_rfc3339("2026-12-20T10:00:00+08:00").unwrap().to_utc();
    store.rules().clock().set(received);
    store.rules().set_calculator(redress_calendar::DeadlineCalculator::china());
    store.apply(vec![accepted_at(1, 1, received), accepted_at(2, 2, received)]).await.unwrap();
    let by_complaint = |n: u32| {
        let store = store.clone();
        async move {
            let query = CaseQuery { complaint: Some(format!("complaints/{n:08}")), limit: 1, ..Default::default() };
            store.list(&query).await.unwrap().remove(0).case
        }
    };
    let open = by_complaint(1).await;
    let decision = crate::domain::clock::clock(&open, ClockKind::RegulatoryDecision).unwrap().clone();
    // 2026-12-20 + 15 days = Mon 2027-01-04, a working day of provisional 2027: 24:00 that day.
    assert_eq!(decision.due_time, Some(to_timestamp("2027-01-04T16:00:00Z".parse().unwrap())));
    assert!(decision.provisional, "{decision:?}");
    assert!(decision.provisional_reason.contains("2027"), "{}", decision.provisional_reason);
    let deadlines = open.deadlines.clone().unwrap();
    assert!(deadlines.regulatory_decision_provisional && deadlines.regulatory_decision_due_time.is_some());
    assert!(!deadlines.first_response_provisional && !deadlines.resolution_provisional, "within 2026");

    // Decided the day it was received: a review asked for at once is within the 30 days,
    // which end in provisional 2027.
    let (h, s) = (handler(), supervisor());
    let mut decided = by_complaint(2).await;
    for (who, command) in [
        (
            &h,
            Command::Assign {
                assignee: text("u-handler"),
                department: text("cards"),
                assignee_staff_id: text("E1001"),
            },
        ),
        (&h, to(CaseState::Investigating)),
        (&h, Command::Propose { kind: ResolutionType::Explanation, compensation: None, grounds: text("terms") }),
        (&h, Command::Decide { notice: text("the fee stands") }),
        (&s, Command::RequestReview { reason: text("the complainant disagrees") }),
    ] {
        decided = change(&store, &decided, who, command.clone()).await.unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
    assert_eq!(decided.state, CaseState::UnderReview as i32);

    // The official 2027 arrives, with (made up) holidays on 1–4 January.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("2027.toml"),
        "year = 2027\n[[holidays]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-04\n",
    )
    .unwrap();
    let source = crate::CalendarSource {
        regimes: redress_calendar::RegimeConfig::default(),
        time_zone: "Asia/Shanghai".to_owned(),
        calendars_dir: dir.path().display().to_string(),
        sla: redress_calendar::SlaPolicy::default(),
    };
    let before = committed_events(store.feed(), 0, 100).await.unwrap().len();
    let reloaded = crate::calendars::reload(&source, store.as_ref()).await.unwrap();
    assert!(reloaded.official_years.contains(&2027));
    assert!(reloaded.revised_count >= 1, "{reloaded:?}");
    let revised = by_complaint(1).await;
    let decision = crate::domain::clock::clock(&revised, ClockKind::RegulatoryDecision).unwrap().clone();
    assert_eq!(decision.due_time, Some(to_timestamp("2027-01-05T16:00:00Z".parse().unwrap())));
    assert!(!decision.provisional && decision.provisional_reason.is_empty());
    assert!(!revised.deadlines.unwrap().regulatory_decision_provisional);
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let notices: Vec<DecisionDeadlineRevised> = events[before..]
        .iter()
        .filter(|e| e.event_type == "redress.case.v1.DecisionDeadlineRevised")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(notices.len(), 1, "one notice, for the case whose decision deadline moved");
    assert_eq!(notices[0].case.as_ref().unwrap().name, revised.name);
    assert_eq!(notices[0].previous_due_time, Some(to_timestamp("2027-01-04T16:00:00Z".parse().unwrap())));
    assert!(notices[0].complainant_notice.contains("2027年01月05日"), "{}", notices[0].complainant_notice);
    let changed: CaseChanged = events[before..]
        .iter()
        .find(|e| e.aggregate == revised.name && e.event_type == "redress.case.v1.CaseChanged")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .unwrap();
    assert_eq!(changed.action, "deadlines.revised");

    // A second reload finds nothing provisional left to move and announces nothing.
    let again = crate::calendars::reload(&source, store.as_ref()).await.unwrap();
    assert_eq!(again.revised_count, 0, "{again:?}");
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), events.len());
}

mod progress;

/// The kinds of the feed's events of `case`, in order, CaseChanged with its action.
async fn feed_of(store: &Arc<dyn CaseStore>, case: &Case) -> Vec<String> {
    committed_events(store.feed(), 0, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.aggregate == case.name)
        .map(|e| {
            let kind = e.event_type.rsplit('.').next().unwrap_or_default().to_owned();
            match kind.as_str() {
                "CaseChanged" => {
                    let changed: CaseChanged = e.payload.as_ref().unwrap().to_msg().unwrap();
                    format!("{kind} {}", changed.action)
                }
                _ => kind,
            }
        })
        .collect()
}

async fn trail_of(store: &Arc<dyn CaseStore>, case: &Case) -> Vec<String> {
    store.audit_trail(&id_of(case)).await.unwrap().unwrap().entries.into_iter().map(|e| e.action).collect()
}

/// An accepted complaint taken by staff E2001, about personal information, with a threat to
/// sue, graded major.
fn sensitive(position: i64, n: u32) -> Event {
    let mut event = accepted(position, n);
    let mut payload: ComplaintAccepted = event.payload.as_ref().unwrap().to_msg().unwrap();
    payload.grade = Grade::Major as i32;
    payload.first_contact = Some(FirstContact {
        subject: "user:li".to_owned(),
        staff_id: "E2001".to_owned(),
        department: "counter".to_owned(),
        ..Default::default()
    });
    payload.classification = Some(Classification {
        taxonomy: "banking@2026.1".to_owned(),
        business_type: "B08".to_owned(),
        cause: "C10".to_owned(),
        rights: vec!["R8".to_owned()],
        grade: Grade::Major as i32,
        ..Default::default()
    });
    payload.risk_signals =
        vec![RiskSignal { kind: RiskSignalKind::EscalationThreat as i32, evidence: vec!["律师".to_owned()] }];
    event.payload = Some(prost_types::Any::from_msg(&payload).unwrap());
    event
}

async fn a_case_opens_owned_routed_and_escalated_in_one_transaction_and_only_once(store: Arc<dyn CaseStore>) {
    store.apply(vec![sensitive(1, 1), sensitive(2, 1)]).await.unwrap();
    let case = newest_case(&store).await;
    assert_eq!(case.state, CaseState::Assigned as i32);
    assert_eq!((case.assignee.as_str(), case.assignee_staff_id.as_str()), ("user:li", "E2001"));
    assert_eq!(case.first_contact_owner, "user:li");
    assert_eq!(case.classification.as_ref().unwrap().cause, "C10");
    assert_eq!(case.risk_signals[0].kind, "ESCALATION_THREAT");
    let rules: Vec<&str> = case.routings.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(rules, ["information-security.compliance", "legal-risk.legal-opinion"]);
    assert_eq!(case.coordination_tasks.len(), 1);
    assert!(case.escalation_required_time.is_some());
    let opened =
        ["CaseOpened", "SensitiveComplaintRouted", "SensitiveComplaintRouted", "EscalationRequired"].map(String::from);
    assert_eq!(feed_of(&store, &case).await, opened, "a redelivered complaint adds nothing");
    let trail = ["case.opened", "routing.applied", "routing.applied", "escalation.required"].map(String::from);
    assert_eq!(trail_of(&store, &case).await, trail);
    let checked = store.audit_trail(&id_of(&case)).await.unwrap().unwrap();
    assert_eq!(
        crate::domain::audit::verify(
            &store.rules().current().audit,
            &id_of(&case),
            &checked.entries,
            checked.length,
            &checked.head,
            &checked.seal
        ),
        Ok(())
    );
    let opened: CaseOpened =
        committed_events(store.feed(), 0, 10).await.unwrap()[0].payload.as_ref().unwrap().to_msg().unwrap();
    assert_eq!(opened.case.unwrap(), case, "CaseOpened carries the case as stored");

    // A reclassification that would fire the same rules, at the same grade: nothing fires
    // again, only the new codes are recorded.
    let mut again = reclassified(3, 1, Grade::Major);
    let mut payload: ComplaintReclassified = again.payload.as_ref().unwrap().to_msg().unwrap();
    let classification = payload.classification.as_mut().unwrap();
    (classification.taxonomy, classification.business_type, classification.cause) =
        ("banking@2026.1".to_owned(), "B01".to_owned(), "C06".to_owned());
    classification.rights = vec!["R8".to_owned()];
    again.payload = Some(prost_types::Any::from_msg(&payload).unwrap());
    store.apply(vec![again.clone()]).await.unwrap();
    store.apply(vec![Event { position: 4, ..again }]).await.unwrap();
    let case = newest_case(&store).await;
    assert_eq!(case.classification.as_ref().unwrap().cause, "C06");
    assert_eq!((case.routings.len(), case.coordination_tasks.len()), (2, 1));
    let mut expected = opened_feed();
    expected.push("CaseChanged case.reclassified".to_owned());
    assert_eq!(feed_of(&store, &case).await, expected);
}

fn opened_feed() -> Vec<String> {
    ["CaseOpened", "SensitiveComplaintRouted", "SensitiveComplaintRouted", "EscalationRequired"]
        .map(String::from)
        .to_vec()
}

async fn a_grade_change_to_major_escalates_once_with_the_grade(store: Arc<dyn CaseStore>) {
    store.apply(vec![accepted(1, 1)]).await.unwrap();
    let case = newest_case(&store).await;
    let h = handler();
    let major = || Command::ChangeGrade { grade: Grade::Major, reason: text("threatens self-harm") };
    let changed = change(&store, &case, &h, major()).await.unwrap();
    assert!(changed.escalation_required_time.is_some());
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let raised: Vec<EscalationRequired> = events
        .iter()
        .filter(|e| e.event_type.ends_with(".EscalationRequired"))
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].case.as_ref().unwrap(), &changed, "the event carries the case as the change wrote it");
    change(&store, &case, &h, Command::ChangeGrade { grade: Grade::Urgent, reason: text("calmer") }).await.unwrap();
    change(&store, &case, &h, major()).await.unwrap();
    // Intake reclassifying it major again changes nothing either.
    store.apply(vec![reclassified(2, 1, Grade::Major)]).await.unwrap();
    let feed = feed_of(&store, &case).await;
    assert_eq!(
        feed,
        [
            "CaseOpened",
            "CaseChanged case.grade_changed",
            "EscalationRequired",
            "CaseChanged case.grade_changed",
            "CaseChanged case.grade_changed",
        ]
    );
    let trail = trail_of(&store, &case).await;
    assert_eq!(trail.iter().filter(|a| *a == "escalation.required").count(), 1);
}

async fn a_name_only_complaint_keeps_its_pending_confirmation_until_someone_else_confirms(store: Arc<dyn CaseStore>) {
    let mut event = accepted(1, 1);
    let mut payload: ComplaintAccepted = event.payload.as_ref().unwrap().to_msg().unwrap();
    payload.complained_staff_id.clear();
    payload.complained_staff_named_only = true;
    event.payload = Some(prost_types::Any::from_msg(&payload).unwrap());
    store.apply(vec![event]).await.unwrap();
    let case = newest_case(&store).await;
    assert!(case.conflict_check.as_ref().unwrap().required);
    let (h, s) = (handler(), supervisor());
    let assign =
        Command::Assign { assignee: text("u-handler"), department: text("cards"), assignee_staff_id: text("E1001") };
    change(&store, &case, &h, assign).await.unwrap();
    change(&store, &case, &h, to(CaseState::Investigating)).await.unwrap();
    let propose = || Command::Propose { kind: ResolutionType::Explanation, compensation: None, grounds: text("g") };
    let pending = change(&store, &case, &h, propose()).await.unwrap_err();
    assert_eq!(pending.reason(), "CONFLICT_CHECK_PENDING");
    let confirmed = change(&store, &case, &s, Command::ConfirmNoConflict { note: text("not the same person") }).await;
    let check = confirmed.unwrap().conflict_check.unwrap();
    assert_eq!((check.assignee.as_str(), check.confirmed_by.as_str()), ("u-handler", "u-supervisor"));
    change(&store, &case, &h, propose()).await.unwrap();
    assert_eq!(trail_of(&store, &case).await.iter().filter(|a| *a == "conflict.confirmed").count(), 1);
}
