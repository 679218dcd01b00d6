//! One conformance suite, run against SQLite always and against PostgreSQL when
//! `REDRESS_TEST_POSTGRES_URL` names a server (otherwise those runs report that they skipped).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use redress_platform::db::DatabaseConfig;
use redress_platform::testing::committed_events;
use redress_proto::redress::intake::v1::{Complaint, ComplaintAccepted};
use tokio_util::sync::CancellationToken;

use super::{IntakeStore, ListQuery, NewComplaint, StoreError, Submitted};

async fn open(config: &DatabaseConfig) -> Arc<dyn IntakeStore> {
    crate::open_store(config, CancellationToken::new()).await.expect("store opens")
}

fn new_complaint(request_id: &str, facts: &str, minutes_ago: i64, channel: i32) -> NewComplaint {
    let id = uuid::Uuid::now_v7().to_string();
    let receive_time = redress_platform::time::now() - Duration::minutes(minutes_ago);
    NewComplaint {
        id: id.clone(),
        request_id: request_id.to_owned(),
        request_hash: format!("hash-of-{facts}"),
        number_prefix: "20261125".to_owned(),
        receive_time,
        create_time: Utc::now(),
        complaint: Complaint {
            name: format!("complaints/{id}"),
            channel,
            facts: facts.to_owned(),
            org_unit: "institutions/demo".to_owned(),
            receive_time: Some(redress_platform::time::to_timestamp(receive_time)),
            ..Default::default()
        },
        trace: Default::default(),
    }
}

redress_platform::conformance_suite!(
    open = open;
    submit_get_and_idempotent_replay,
    reused_request_id_with_other_payload_is_refused,
    concurrent_retries_create_one_complaint,
    list_filters_and_pages,
    lists_are_scoped_to_an_organisation_unit,
    one_bad_record_does_not_sink_the_others,
    feed_order_is_commit_order_under_concurrent_writers,
);

async fn submit_get_and_idempotent_replay(store: Arc<dyn IntakeStore>) {
    let new = new_complaint("r1", "facts", 0, 3);
    let Submitted::Created(created) = store.submit(new.clone()).await.unwrap() else { panic!("not created") };
    assert_eq!(created.complaint_number, "2026112500000001");
    assert_eq!(store.get(&new.id).await.unwrap().unwrap(), created);
    // A retry, even with another generated id, returns the first result.
    let mut retry = new_complaint("r1", "facts", 0, 3);
    retry.request_hash = new.request_hash.clone();
    assert_eq!(store.submit(retry).await.unwrap(), Submitted::Replayed(created.clone()));
    let Submitted::Created(second) = store.submit(new_complaint("r2", "other", 0, 3)).await.unwrap() else { panic!() };
    assert_eq!(second.complaint_number, "2026112500000002");
    assert!(store.get(&uuid::Uuid::now_v7().to_string()).await.unwrap().is_none());
}

async fn reused_request_id_with_other_payload_is_refused(store: Arc<dyn IntakeStore>) {
    store.submit(new_complaint("r1", "facts", 0, 3)).await.unwrap();
    let err = store.submit(new_complaint("r1", "different facts", 0, 3)).await.unwrap_err();
    assert!(matches!(err, StoreError::RequestIdReused), "{err:?}");
    assert_eq!(store.list(&ListQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 1);
}

async fn concurrent_retries_create_one_complaint(store: Arc<dyn IntakeStore>) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.submit(new_complaint("same", "facts", 0, 3)).await.unwrap() }));
    }
    let mut created = 0;
    let mut names = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Submitted::Created(c) => {
                created += 1;
                names.insert(c.name);
            }
            Submitted::Replayed(c) => {
                names.insert(c.name);
            }
        }
    }
    assert_eq!(created, 1);
    assert_eq!(names.len(), 1);
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), 1);
}

async fn list_filters_and_pages(store: Arc<dyn IntakeStore>) {
    for i in 0..7 {
        let channel = if i % 2 == 0 { 3 } else { 5 };
        store.submit(new_complaint(&format!("r{i}"), &format!("f{i}"), i, channel)).await.unwrap();
    }
    let all = store.list(&ListQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 7);
    let facts: Vec<_> = all.iter().map(|l| l.complaint.facts.clone()).collect();
    assert_eq!(facts, ["f0", "f1", "f2", "f3", "f4", "f5", "f6"], "newest received first");
    let phone = store.list(&ListQuery { channel: Some(3), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(phone.len(), 4);
    let page1 = store.list(&ListQuery { limit: 3, ..Default::default() }).await.unwrap();
    let page2 =
        store.list(&ListQuery { limit: 3, after: Some(page1[2].cursor.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(page2.iter().map(|l| l.complaint.facts.as_str()).collect::<Vec<_>>(), ["f3", "f4", "f5"]);
    let window = store
        .list(&ListQuery {
            receive_from: Some(Utc::now() - Duration::minutes(4) - Duration::seconds(30)),
            receive_to: Some(Utc::now() - Duration::minutes(1) - Duration::seconds(30)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(window.iter().map(|l| l.complaint.facts.as_str()).collect::<Vec<_>>(), ["f2", "f3", "f4"]);
}

async fn feed_order_is_commit_order_under_concurrent_writers(store: Arc<dyn IntakeStore>) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 40;
    let stop = CancellationToken::new();
    let mut stream = store.feed().stream(0, stop.clone());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                store.submit(new_complaint(&format!("w{w}-{i}"), &format!("w{w}-{i}"), 0, 3)).await.unwrap();
            }
        }));
    }
    // Tail while writers run: positions must be strictly increasing and gap-free, and every
    // committed complaint must appear exactly once.
    let mut seen = HashSet::new();
    let mut last = 0;
    use tokio_stream::StreamExt;
    while seen.len() < WRITERS * PER_WRITER {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .expect("feed stalled")
            .unwrap()
            .unwrap();
        assert!(!batch.is_empty(), "no empty batches");
        for event in batch {
            assert_eq!(event.position, last + 1, "positions are dense and ordered");
            last = event.position;
            let accepted: ComplaintAccepted = event.payload.unwrap().to_msg().unwrap();
            assert!(seen.insert(accepted.complaint), "delivered twice");
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.cancel();
    assert_eq!(
        {
            store.feed().sequence_now().await.unwrap();
            store.feed().head()
        }
        .await
        .unwrap(),
        (WRITERS * PER_WRITER) as i64
    );
}

async fn lists_are_scoped_to_an_organisation_unit(store: Arc<dyn IntakeStore>) {
    for (i, unit) in ["institutions/demo", "institutions/demo/branches/sh", "institutions/demo-2", "institutions"]
        .into_iter()
        .enumerate()
    {
        let mut new = new_complaint(&format!("r{i}"), &format!("f{i}"), i as i64, 3);
        new.complaint.org_unit = unit.to_owned();
        store.submit(new).await.unwrap();
    }
    let scoped = |scope: &str| ListQuery { scope: Some(scope.to_owned()), limit: 10, ..Default::default() };
    let facts = |listed: Vec<super::Listed>| listed.into_iter().map(|l| l.complaint.facts).collect::<Vec<_>>();
    assert_eq!(facts(store.list(&scoped("institutions/demo")).await.unwrap()), ["f0", "f1"]);
    assert_eq!(facts(store.list(&scoped("institutions/demo/branches/sh")).await.unwrap()), ["f1"]);
    assert_eq!(facts(store.list(&scoped("institutions")).await.unwrap()).len(), 4);
    assert!(store.list(&scoped("institutions/dem")).await.unwrap().is_empty());
}

async fn one_bad_record_does_not_sink_the_others(store: Arc<dyn IntakeStore>) {
    // Two submissions share a complaint id (a primary-key clash the store cannot resolve);
    // submitted together they may share a batch, and only the clashing one may fail.
    let first = new_complaint("ok-0", "f0", 0, 3);
    let mut clash = new_complaint("clash", "clash", 0, 3);
    clash.id = first.id.clone();
    let mut tasks = vec![
        tokio::spawn({
            let store = store.clone();
            async move { store.submit(first).await.is_ok() }
        }),
        tokio::spawn({
            let store = store.clone();
            async move { store.submit(clash).await.is_ok() }
        }),
    ];
    for i in 1..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.submit(new_complaint(&format!("ok-{i}"), &format!("f{i}"), 0, 3)).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 10, "every submission but the clashing one is recorded");
    assert_eq!(store.list(&ListQuery { limit: 100, ..Default::default() }).await.unwrap().len(), 10);
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), 10);
}
