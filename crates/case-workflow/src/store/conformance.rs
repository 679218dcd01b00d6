//! One conformance suite for both case stores (PostgreSQL when `REDRESS_TEST_POSTGRES_URL` is
//! set; otherwise those runs report that they skipped).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use redress_platform::db::DatabaseConfig;
use redress_platform::testing::committed_events;
use redress_proto::redress::case::v1::{CaseOpened, CaseState};
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::intake::v1::ComplaintAccepted;
use tokio_util::sync::CancellationToken;

use super::{CaseQuery, CaseStore};

async fn open(config: &DatabaseConfig) -> Arc<dyn CaseStore> {
    crate::open_store(config, CancellationToken::new()).await.expect("store opens")
}

fn accepted(position: i64, n: u32) -> Event {
    accepted_in(position, n, "institutions/demo")
}

fn accepted_in(position: i64, n: u32, org_unit: &str) -> Event {
    let payload = ComplaintAccepted {
        complaint: format!("complaints/{n:08}"),
        complaint_number: format!("20261125{n:08}"),
        channel: 3,
        org_unit: org_unit.to_owned(),
        grade: 1,
        ..Default::default()
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
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
    an_opened_case_starts_a_verifiable_audit_trail,
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
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].position, 1);
    assert_eq!(dead[0].event_id, broken.event_id);
    assert_eq!(dead[0].payload, [0xff, 0xff, 0xff]);
    assert!(!dead[0].error.is_empty());
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
    assert_eq!(crate::domain::audit::verify(id, &trail.entries, trail.length, &trail.head), Ok(()));
    assert!(store.audit_trail(&uuid::Uuid::now_v7().to_string()).await.unwrap().is_none());
}
