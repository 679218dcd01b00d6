//! One conformance suite, run against SQLite always and against PostgreSQL when
//! `REDRESS_TEST_POSTGRES_URL` names a server (otherwise those runs report that they skipped).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use redress_platform::db::DatabaseConfig;
use redress_platform::names::OrgUnit;
use redress_platform::telemetry::TraceContext;
use redress_platform::testing::committed_events;
use redress_proto::redress::intake::v1::{
    Complaint, ComplaintAccepted, ComplaintContentConfirmed, ConfirmationMethod, ContentConfirmation, NaturalPerson,
    complainant::Party,
};
use tokio_util::sync::CancellationToken;

use super::{Erased, Identifier, IntakeStore, ListQuery, NewComplaint, PiiAccess, RequestKey, StoreError, Submitted};
use crate::domain::lifecycle::ChangeError;

async fn open(config: &DatabaseConfig) -> Arc<dyn IntakeStore> {
    crate::open_store(
        config,
        Arc::new(crate::domain::pii::test_keyring()),
        &redress_platform::host::Supervisor::detached(),
    )
    .await
    .expect("store opens")
}

fn new_complaint(request_id: &str, facts: &str, minutes_ago: i64, channel: i32) -> NewComplaint {
    let id = uuid::Uuid::now_v7().to_string();
    let receive_time = redress_platform::time::now() - Duration::minutes(minutes_ago);
    NewComplaint {
        id: id.clone(),
        request_id: super::conformance_support::request_id(request_id),
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
            product: "信用卡".to_owned(),
            ..Default::default()
        },
        trace: Default::default(),
        recurrence_since: receive_time - Duration::days(90),
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
    personal_information_is_sealed_masked_and_revealed_with_a_record,
    one_person_is_one_subject_per_institution,
    every_spelling_of_a_phone_is_one_subject,
    export_correct_and_erase_a_person,
    a_repeat_complaint_within_the_window_is_a_recurrence,
    a_withdrawal_ends_the_complaint_once,
    a_correction_to_another_person_moves_the_complaint_to_them,
    a_restriction_follows_its_person_through_a_correction,
    an_override_is_what_recurrence_compares,
    people_sharing_a_phone_stay_apart_when_their_id_numbers_differ,
    retention_prunes_the_oldest_events_and_a_reader_below_them_is_told_where_to_resume,
    retention_forgets_old_request_ids_and_a_reference_still_finds_its_complaint,
    a_reference_identifies_one_complaint_of_its_institution,
    concurrent_submissions_of_one_reference_create_one_complaint,
    provisional_receipt_deadlines_are_revised_once_when_the_official_year_is_loaded,
    a_read_back_answer_is_kept_with_the_persons_information_and_announced_without_it,
    a_read_back_answer_is_recorded_once_per_request_id,
    a_read_back_answer_needs_an_accepted_complaint_received_before_it,
);

async fn submit_get_and_idempotent_replay(store: Arc<dyn IntakeStore>) {
    let new = new_complaint("r1", "facts", 0, 3);
    let Submitted::Created(created) = store.submit(new.clone()).await.unwrap() else { panic!("not created") };
    assert_eq!((created.complaint_number.as_str(), created.product.as_str()), ("2026112500000001", "信用卡"));
    assert_eq!(store.get(&new.id).await.unwrap().unwrap(), created);
    let events = redress_platform::testing::committed_events(store.feed(), 0, 10).await.unwrap();
    let accepted: ComplaintAccepted = events[0].payload.as_ref().unwrap().to_msg().unwrap();
    assert_eq!(accepted.product, "信用卡");
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

/// A complaint by a person with the given phone and resident ID, owned by `org_unit`.
fn personal(request_id: &str, phone: &str, id_number: &str, org_unit: &str) -> NewComplaint {
    let mut new = new_complaint(request_id, &format!("facts of {request_id}"), 0, 3);
    let mut complaint = crate::testing::complaint(&new.complaint.facts);
    complaint.name = new.complaint.name.clone();
    complaint.receive_time = new.complaint.receive_time;
    complaint.org_unit = org_unit.to_owned();
    if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
        p.phone = phone.to_owned();
        p.id_number = id_number.to_owned();
    }
    new.complaint = complaint;
    new
}

fn person(c: &Complaint) -> NaturalPerson {
    match c.complainant.as_ref().and_then(|c| c.party.clone()) {
        Some(Party::Person(p)) => p,
        other => panic!("{other:?}"),
    }
}

fn access(action: &'static str, reason: &str) -> PiiAccess {
    PiiAccess { actor: "user:dpo".to_owned(), action, reason: reason.to_owned() }
}

fn id_of(c: &Complaint) -> String {
    c.name.strip_prefix("complaints/").unwrap().to_owned()
}

const BANK: &str = "institutions/demo-bank";

fn bank() -> OrgUnit {
    OrgUnit::try_from_str(BANK).unwrap()
}

fn by_phone(phone: &str) -> Identifier {
    Identifier { institution: bank(), kind: "phone", value: phone.to_owned() }
}

async fn personal_information_is_sealed_masked_and_revealed_with_a_record(store: Arc<dyn IntakeStore>) {
    let new = personal("p1", "13911112222", "11010519491231002X", "institutions/demo-bank/branches/sh");
    let Submitted::Created(created) = store.submit(new).await.unwrap() else { panic!() };
    assert_eq!(person(&created).phone, "13911112222", "the submitter gets back what it sent");
    let stored = store.get(&id_of(&created)).await.unwrap().unwrap();
    assert_eq!(person(&stored).phone, "139****2222");
    assert_eq!(person(&stored).id_number, "1****************X");
    assert_eq!(person(&stored).full_name, "王**");
    let listed = store.list(&ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(person(&listed[0].complaint).phone, "139****2222");
    let clear = store.reveal(&id_of(&created), &access("read", "complainant called back")).await.unwrap().unwrap();
    assert_eq!(clear, created);
    let subject = store.subject_of(&id_of(&created)).await.unwrap().unwrap();
    let accesses = store.pii_accesses(&subject).await.unwrap();
    assert_eq!(accesses.len(), 1);
    assert_eq!(
        (accesses[0].actor.as_str(), accesses[0].action.as_str(), accesses[0].reason.as_str()),
        ("user:dpo", "read", "complainant called back")
    );
    assert_eq!(accesses[0].complaint_id.as_deref(), Some(id_of(&created).as_str()));
    // A retried submission replays the stored (masked) record.
    let Submitted::Replayed(replayed) = store
        .submit(personal("p1", "13911112222", "11010519491231002X", "institutions/demo-bank/branches/sh"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(replayed, stored);
}

async fn one_person_is_one_subject_per_institution(store: Arc<dyn IntakeStore>) {
    let mut subjects = Vec::new();
    // Same ID number, new phone; same phone again; same person at another institution.
    for (rid, phone, unit) in [
        ("s1", "13911112222", "institutions/demo-bank/branches/sh"),
        ("s2", "13933334444", "institutions/demo-bank/branches/bj"),
        ("s3", "13933334444", "institutions/demo-bank"),
        ("s4", "13911112222", "institutions/other-bank"),
    ] {
        let Submitted::Created(c) = store.submit(personal(rid, phone, "11010519491231002X", unit)).await.unwrap()
        else {
            panic!()
        };
        subjects.push(store.subject_of(&id_of(&c)).await.unwrap().unwrap());
    }
    assert_eq!(subjects[0], subjects[1]);
    assert_eq!(subjects[1], subjects[2]);
    assert_ne!(subjects[0], subjects[3], "a person is a separate subject at each institution");
}

/// A phone is one identifier however it is written (indexed in E.164), also when the
/// spellings arrive together (in one batch or in batches written at once).
async fn every_spelling_of_a_phone_is_one_subject(store: Arc<dyn IntakeStore>) {
    let spellings = ["+86 138 1234 5678", "86 13812345678", "008613812345678", "138-1234-5678"];
    let submitted =
        futures_util::future::join_all(
            spellings.iter().enumerate().map(|(n, phone)| {
                let store = store.clone();
                async move {
                    store.submit(personal(&format!("sp{n}"), phone, "", "institutions/demo-bank/branches/sh")).await
                }
            }),
        )
        .await;
    let mut subjects = Vec::new();
    let mut names = Vec::new();
    for submitted in submitted {
        let Submitted::Created(c) = submitted.unwrap() else { panic!() };
        subjects.push(store.subject_of(&id_of(&c)).await.unwrap().unwrap());
        names.push(c.name);
    }
    subjects.dedup();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    names.sort();
    let exported = store.export(&by_phone("13812345678"), &access("export", "access request")).await.unwrap();
    let mut found: Vec<String> = exported.into_iter().map(|c| c.name).collect();
    found.sort();
    assert_eq!(found, names);
    // Another number is another person.
    let Submitted::Created(other) =
        store.submit(personal("sp9", "138-1234-5679", "", "institutions/demo-bank/branches/sh")).await.unwrap()
    else {
        panic!()
    };
    assert_ne!(store.subject_of(&id_of(&other)).await.unwrap().unwrap(), subjects[0]);
}

async fn export_correct_and_erase_a_person(store: Arc<dyn IntakeStore>) {
    let mut created = Vec::new();
    for rid in ["e1", "e2"] {
        let Submitted::Created(c) = store
            .submit(personal(rid, "13955556666", "11010519491231002X", "institutions/demo-bank/branches/sh"))
            .await
            .unwrap()
        else {
            panic!()
        };
        created.push(c);
    }
    store.submit(personal("e3", "13977778888", "", BANK)).await.unwrap();
    let exported = store.export(&by_phone("139-5555-6666"), &access("export", "access request #1")).await.unwrap();
    assert_eq!(
        exported.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        [created[0].name.clone(), created[1].name.clone()]
    );
    assert_eq!(person(&exported[0]).id_number, "11010519491231002X");
    let elsewhere = Identifier {
        institution: OrgUnit::try_from_str("institutions/other-bank").unwrap(),
        ..by_phone("13955556666")
    };
    assert!(store.export(&elsewhere, &access("export", "x")).await.unwrap().is_empty());

    // Correction: a new phone, found by it afterwards.
    let mut corrected = created[0].complainant.clone().unwrap();
    if let Some(Party::Person(p)) = corrected.party.as_mut() {
        p.phone = "13900001111".to_owned();
    }
    let fixed =
        store.correct(&id_of(&created[0]), corrected, &access("correct", "wrong number")).await.unwrap().unwrap();
    assert_eq!(person(&fixed).phone, "13900001111");
    assert_eq!(person(&store.get(&id_of(&created[0])).await.unwrap().unwrap()).phone, "139****1111");
    assert_eq!(store.export(&by_phone("13900001111"), &access("export", "x")).await.unwrap().len(), 2);

    // Erasure: the key is gone, the complaints stay and count, nothing personal is left.
    let subject = store.subject_of(&id_of(&created[0])).await.unwrap().unwrap();
    let erased = store.erase(&by_phone("13955556666"), &access("erase", "deletion request #7")).await.unwrap().unwrap();
    assert_eq!(erased, Erased { subject_id: subject.clone(), complaints: 2 });
    for c in &created {
        let stored = store.get(&id_of(c)).await.unwrap().unwrap();
        let p = person(&stored);
        assert_eq!((p.full_name.as_str(), p.phone.as_str()), (crate::domain::pii::ERASED, crate::domain::pii::ERASED));
        assert_eq!(stored.facts, c.facts, "the complaint itself remains");
        let revealed = store.reveal(&id_of(c), &access("read", "x")).await.unwrap().unwrap();
        assert_eq!(person(&revealed).phone, crate::domain::pii::ERASED);
        let fix = store.correct(&id_of(c), c.complainant.clone().unwrap(), &access("correct", "x")).await;
        assert!(matches!(fix, Err(StoreError::Erased)), "{fix:?}");
    }
    assert_eq!(store.list(&ListQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 3, "counts stay right");
    assert!(store.export(&by_phone("13955556666"), &access("export", "x")).await.unwrap().is_empty());
    assert!(store.erase(&by_phone("13955556666"), &access("erase", "again")).await.unwrap().is_none());
    let log = store.pii_accesses(&subject).await.unwrap();
    assert_eq!(log[0].action, "erase");
    assert_eq!(log[0].reason, "deletion request #7");
    // The same person complaining again is a new subject.
    let Submitted::Created(again) = store.submit(personal("e4", "13955556666", "", BANK)).await.unwrap() else {
        panic!()
    };
    assert_ne!(store.subject_of(&id_of(&again)).await.unwrap().unwrap(), subject);
}

/// A complaint by the person with `phone`, classified as `cause`, received `days_ago`.
fn classified(request_id: &str, phone: &str, cause: &str, days_ago: i64) -> NewComplaint {
    let mut new = personal(request_id, phone, "", BANK);
    let receive_time = redress_platform::time::now() - Duration::days(days_ago);
    new.receive_time = receive_time;
    new.recurrence_since = receive_time - Duration::days(90);
    new.complaint.receive_time = Some(redress_platform::time::to_timestamp(receive_time));
    new.complaint.classification = Some(redress_proto::redress::intake::v1::Classification {
        business_type: "B02".to_owned(),
        cause: cause.to_owned(),
        ..Default::default()
    });
    new
}

async fn a_repeat_complaint_within_the_window_is_a_recurrence(store: Arc<dyn IntakeStore>) {
    let submit = |new: NewComplaint| {
        let store = store.clone();
        async move {
            match store.submit(new).await.unwrap() {
                Submitted::Created(c) => c,
                Submitted::Replayed(_) => panic!("replayed"),
            }
        }
    };
    let old = submit(classified("old", "13911112222", "C05", 200)).await;
    let first = submit(classified("first", "13911112222", "C05", 30)).await;
    assert!(first.recurrence_of.is_empty(), "200 days earlier is outside the 90-day window");
    let again = submit(classified("again", "139-1111-2222", "C05", 0)).await;
    assert_eq!(again.recurrence_of, first.name, "the latest earlier complaint of the same issue");
    let other_cause = submit(classified("cause", "13911112222", "C01", 0)).await;
    assert!(other_cause.recurrence_of.is_empty());
    let other_person = submit(classified("person", "13933334444", "C05", 0)).await;
    assert!(other_person.recurrence_of.is_empty());
    assert!(old.recurrence_of.is_empty());
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let accepted: ComplaintAccepted =
        events.iter().find(|e| e.aggregate == again.name).unwrap().payload.as_ref().unwrap().to_msg().unwrap();
    assert_eq!(accepted.recurrence_of, first.name);
    // Submitted together (often one batch): the later-received one repeats the earlier.
    let mut earlier = classified("b1", "13955556666", "C09", 0);
    let later = classified("b2", "13955556666", "C09", 0);
    earlier.receive_time -= Duration::minutes(1);
    earlier.complaint.receive_time = Some(redress_platform::time::to_timestamp(earlier.receive_time));
    let (a, b) = tokio::join!(store.submit(earlier), async {
        tokio::task::yield_now().await;
        store.submit(later).await
    });
    let (Submitted::Created(a), Submitted::Created(b)) = (a.unwrap(), b.unwrap()) else { panic!() };
    assert!(a.recurrence_of.is_empty());
    // On PostgreSQL the two may commit in either order; the later one is marked unless it
    // committed first (a missed recurrence, never a false one).
    assert!(b.recurrence_of.is_empty() || b.recurrence_of == a.name);
}

async fn a_withdrawal_ends_the_complaint_once(store: Arc<dyn IntakeStore>) {
    let Submitted::Created(c) = store.submit(personal("w1", "13911112222", "", BANK)).await.unwrap() else { panic!() };
    let at = redress_platform::time::now();
    let withdrawn = store.withdraw(&id_of(&c), "已协商解决", at).await.unwrap().unwrap();
    assert_eq!(withdrawn.state, redress_proto::redress::intake::v1::ComplaintState::Withdrawn as i32);
    assert_eq!(withdrawn.withdraw_time, Some(redress_platform::time::to_timestamp(at)));
    assert_eq!(person(&withdrawn).phone, "139****2222", "stored masked");
    let again = store.withdraw(&id_of(&c), "再次", redress_platform::time::now()).await.unwrap().unwrap();
    assert_eq!(again, withdrawn, "a withdrawn complaint is returned as is");
    assert_eq!(store.get(&id_of(&c)).await.unwrap().unwrap(), withdrawn);
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["redress.intake.v1.ComplaintAccepted", "redress.intake.v1.ComplaintWithdrawn"]);
    assert!(store.withdraw(&uuid::Uuid::now_v7().to_string(), "x", at).await.unwrap().is_none());
}

async fn a_correction_to_another_person_moves_the_complaint_to_them(store: Arc<dyn IntakeStore>) {
    // Alice files two complaints; one of them turns out to be Bob's.
    let mut alice = Vec::new();
    for rid in ["m1", "m2"] {
        let Submitted::Created(c) = store.submit(personal(rid, "13911110000", "", BANK)).await.unwrap() else {
            panic!()
        };
        alice.push(c);
    }
    let mut bob = alice[1].complainant.clone().unwrap();
    if let Some(Party::Person(p)) = bob.party.as_mut() {
        p.full_name = "李四".to_owned();
        p.phone = "13922220000".to_owned();
        p.id_number.clear();
    }
    store.correct(&id_of(&alice[1]), bob, &access("correct", "it was Bob's")).await.unwrap().unwrap();
    let of_alice = store.export(&by_phone("13911110000"), &access("export", "x")).await.unwrap();
    assert_eq!(of_alice.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), [alice[0].name.clone()]);
    let of_bob = store.export(&by_phone("13922220000"), &access("export", "x")).await.unwrap();
    assert_eq!(of_bob.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), [alice[1].name.clone()]);
    assert_eq!(person(&of_bob[0]).full_name, "李四");
    // Erasing Bob leaves Alice's data alone.
    store.erase(&by_phone("13922220000"), &access("erase", "Bob asked")).await.unwrap().unwrap();
    let revealed = store.reveal(&id_of(&alice[0]), &access("read", "x")).await.unwrap().unwrap();
    assert_eq!(person(&revealed).phone, "13911110000");

    // A typo fix of the same person's phone keeps the subject; the wrong number stops finding it.
    let Submitted::Created(c) = store.submit(personal("m3", "13933330000", "11010519491231002X", BANK)).await.unwrap()
    else {
        panic!()
    };
    let subject = store.subject_of(&id_of(&c)).await.unwrap().unwrap();
    let mut fixed = c.complainant.clone().unwrap();
    if let Some(Party::Person(p)) = fixed.party.as_mut() {
        p.phone = "13933331111".to_owned();
    }
    store.correct(&id_of(&c), fixed, &access("correct", "typo")).await.unwrap().unwrap();
    assert_eq!(store.subject_of(&id_of(&c)).await.unwrap().unwrap(), subject);
    assert!(store.export(&by_phone("13933330000"), &access("export", "x")).await.unwrap().is_empty());
    assert_eq!(store.export(&by_phone("13933331111"), &access("export", "x")).await.unwrap().len(), 1);
}

/// A complainant who restricted the processing of their information (PIPL Art.44) stays
/// restricted when a correction moves their complaint to another subject: a new one (their
/// corrected phone names nobody yet) or one already held, whose complaints are then marked and
/// announced too.
async fn a_restriction_follows_its_person_through_a_correction(store: Arc<dyn IntakeStore>) {
    let key = |id: &str| RequestKey { id: super::conformance_support::request_id(id), hash: format!("hash-{id}") };
    let Submitted::Created(alice) = store.submit(personal("r1", "13955550000", "", BANK)).await.unwrap() else {
        panic!()
    };
    let Submitted::Created(bob) = store.submit(personal("r2", "13966660000", "", BANK)).await.unwrap() else {
        panic!()
    };
    let restriction = store
        .restrict(
            &by_phone("13955550000"),
            true,
            key("restrict-1"),
            &access("restrict", "客户要求"),
            TraceContext::default(),
        )
        .await
        .unwrap()
        .unwrap();
    let since = restriction.since_us.unwrap();
    assert!(store.get(&id_of(&alice)).await.unwrap().unwrap().personal_data_restricted);

    // Her phone was recorded wrong: the corrected one names nobody held, a new subject.
    let mut corrected = alice.complainant.clone().unwrap();
    if let Some(Party::Person(p)) = corrected.party.as_mut() {
        p.phone = "13955551111".to_owned();
    }
    let moved = store.correct(&id_of(&alice), corrected, &access("correct", "号码有误")).await.unwrap().unwrap();
    assert!(moved.personal_data_restricted, "the corrected complaint stays restricted");
    let subject = store.subject_of(&id_of(&alice)).await.unwrap().unwrap();
    assert_ne!(subject, restriction.subject_id, "a new subject");
    let again = store
        .restrict(
            &by_phone("13955551111"),
            true,
            key("restrict-2"),
            &access("restrict", "核对"),
            TraceContext::default(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.subject_id.as_str(), again.since_us), (subject.as_str(), Some(since)), "restricted since then");

    // It was Bob's after all: Bob is held already, unrestricted; the restriction goes with the
    // complaint, so Bob's own complaint is restricted and announced too.
    let mut to_bob = bob.complainant.clone().unwrap();
    if let Some(Party::Person(p)) = to_bob.party.as_mut() {
        p.full_name = "李四".to_owned();
    }
    let moved = store.correct(&id_of(&alice), to_bob, &access("correct", "投诉人为李四")).await.unwrap().unwrap();
    assert!(moved.personal_data_restricted);
    assert!(store.get(&id_of(&bob)).await.unwrap().unwrap().personal_data_restricted);
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let announced: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == "redress.intake.v1.ComplaintProcessingRestricted")
        .map(|e| e.aggregate.as_str())
        .collect();
    assert_eq!(announced, [alice.name.as_str(), bob.name.as_str()]);
}

async fn an_override_is_what_recurrence_compares(store: Arc<dyn IntakeStore>) {
    let Submitted::Created(first) = store.submit(classified("o1", "13944440000", "C05", 10)).await.unwrap() else {
        panic!()
    };
    // Two handlers override different parts at once: both take effect.
    let change = |cause: Option<&str>, grade: Option<i32>, who: &str| super::ClassificationOverride {
        taxonomy: "banking@2026.1".to_owned(),
        business_type: None,
        cause: cause.map(str::to_owned),
        rights: None,
        grade,
        classified_by: who.to_owned(),
        reason: "review".to_owned(),
        time: redress_platform::time::to_timestamp(redress_platform::time::now()),
    };
    let id = id_of(&first);
    let (a, b) = tokio::join!(
        store.reclassify(&id, change(Some("C01"), None, "u-a")),
        store.reclassify(&id, change(None, Some(3), "u-b")),
    );
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    let now = store.get(&id_of(&first)).await.unwrap().unwrap().classification.unwrap();
    assert_eq!((now.cause.as_str(), now.grade), ("C01", 3));
    // Recurrence compares the codes in force.
    let Submitted::Created(same) = store.submit(classified("o2", "13944440000", "C01", 0)).await.unwrap() else {
        panic!()
    };
    assert_eq!(same.recurrence_of, first.name);
    let Submitted::Created(old_code) = store.submit(classified("o3", "13944440000", "C05", 0)).await.unwrap() else {
        panic!()
    };
    assert!(old_code.recurrence_of.is_empty());
}

async fn people_sharing_a_phone_stay_apart_when_their_id_numbers_differ(store: Arc<dyn IntakeStore>) {
    let (_, alice_id) = crate::testing::identity(11);
    let (_, bob_id) = crate::testing::identity(12);
    let household = "13955550000";
    let Submitted::Created(a) = store.submit(personal("h1", household, &alice_id, BANK)).await.unwrap() else {
        panic!()
    };
    let Submitted::Created(b) = store.submit(personal("h2", household, &bob_id, BANK)).await.unwrap() else { panic!() };
    let (sa, sb) =
        (store.subject_of(&id_of(&a)).await.unwrap().unwrap(), store.subject_of(&id_of(&b)).await.unwrap().unwrap());
    assert_ne!(sa, sb, "a shared phone does not make two people with different ID numbers one");
    let by_id = |id: &str| Identifier {
        institution: bank(),
        kind: "id",
        value: format!("{}:{id}", redress_proto::redress::intake::v1::IdDocumentType::ResidentId as i32),
    };
    let of_bob = store.export(&by_id(&bob_id), &access("export", "x")).await.unwrap();
    assert_eq!(of_bob.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), std::slice::from_ref(&b.name));

    // Alice's complaint turns out to be Carol's, who shares the phone and has no ID on file:
    // the phone, given up by Alice, still finds someone afterwards.
    let mut carol = a.complainant.clone().unwrap();
    if let Some(Party::Person(p)) = carol.party.as_mut() {
        p.full_name = "王五".to_owned();
        p.id_number.clear();
        p.id_document_type = 0;
    }
    let corrected = store.correct(&id_of(&a), carol, &access("correct", "Carol's")).await.unwrap().unwrap();
    assert_eq!(person(&corrected).full_name, "王五");
    assert!(!store.export(&by_phone(household), &access("export", "x")).await.unwrap().is_empty());
    assert!(
        store.export(&by_id(&alice_id), &access("export", "x")).await.unwrap().is_empty(),
        "Alice has nothing left"
    );
}

async fn retention_prunes_the_oldest_events_and_a_reader_below_them_is_told_where_to_resume(
    store: Arc<dyn IntakeStore>,
) {
    use redress_platform::ServiceError;
    use redress_platform::events::FeedScope;
    use tokio_stream::StreamExt;

    for i in 0..3 {
        store.submit(new_complaint(&format!("r{i}"), &format!("facts {i}"), 0, 3)).await.unwrap();
    }
    let feed = store.feed();
    let head = committed_events(feed, 0, 10).await.unwrap().last().unwrap().position;
    assert_eq!(head, 3);
    let later = Utc::now() + Duration::hours(1);
    // Everything is older than the cut-off; at most two go per pass, oldest first.
    assert_eq!(feed.prune(later, 2).await.unwrap(), 2);
    assert_eq!(feed.pruned_through().await.unwrap(), 2);
    let stop = CancellationToken::new();
    let err = feed.subscribe(0, FeedScope::All, stop.clone()).await.unwrap_err();
    let ServiceError::FailedPrecondition { reason, metadata, .. } = &err else { panic!("{err}") };
    assert_eq!((*reason, metadata["oldest_position"].as_str()), ("FEED_POSITION_PRUNED", "3"));
    let mut resumed = feed.subscribe(2, FeedScope::All, stop.clone()).await.unwrap();
    let batch = resumed.next().await.unwrap().unwrap();
    assert_eq!(batch.iter().map(|e| e.position).collect::<Vec<_>>(), [3]);
    // A feed pruned empty still never hands out a position twice.
    assert_eq!(feed.prune(later, 100).await.unwrap(), 1);
    store.submit(new_complaint("r9", "facts 9", 0, 3)).await.unwrap();
    let next = committed_events(feed, 3, 10).await.unwrap();
    assert_eq!(next.iter().map(|e| e.position).collect::<Vec<_>>(), [4]);
    // Nothing newer than the cut-off goes.
    assert_eq!(feed.prune(Utc::now() - Duration::days(1), 100).await.unwrap(), 0);
    stop.cancel();
}

/// `new_complaint` carrying an external reference.
fn referenced(request_id: &str, facts: &str, reference: &str) -> NewComplaint {
    let mut new = new_complaint(request_id, facts, 0, 3);
    new.complaint.external_reference = reference.to_owned();
    new
}

async fn count(store: &Arc<dyn IntakeStore>) -> usize {
    store.list(&ListQuery { limit: 100, ..Default::default() }).await.unwrap().len()
}

async fn retention_forgets_old_request_ids_and_a_reference_still_finds_its_complaint(store: Arc<dyn IntakeStore>) {
    let old = |request_id: &str, facts: &str, reference: &str| {
        let mut new = referenced(request_id, facts, reference);
        new.create_time = Utc::now() - Duration::days(40);
        new
    };
    store.submit(old("api-1", "api-1", "")).await.unwrap();
    let Submitted::Created(imported) = store.submit(old("import:cfpb:1", "row 1", "cfpb:1")).await.unwrap() else {
        panic!()
    };
    store.submit(new_complaint("api-2", "api-2", 0, 3)).await.unwrap();
    assert_eq!(store.prune_requests(Utc::now() - Duration::days(30)).await.unwrap(), 2, "imports' ids too");
    assert!(matches!(store.submit(old("api-1", "api-1", "")).await.unwrap(), Submitted::Created(_)), "forgotten");
    assert!(matches!(store.submit(new_complaint("api-2", "api-2", 0, 3)).await.unwrap(), Submitted::Replayed(_)));

    // The import run again after its request ids were forgotten finds the complaint by its
    // reference, even where the source row was edited since, and records nothing.
    let stored = store.get(&id_of(&imported)).await.unwrap().unwrap();
    assert_eq!(
        store.submit(old("import:cfpb:1", "row 1", "cfpb:1")).await.unwrap(),
        Submitted::Replayed(stored.clone())
    );
    assert_eq!(
        store.submit(old("import:cfpb:1", "row 1, edited", "cfpb:1")).await.unwrap(),
        Submitted::Replayed(stored)
    );
    assert_eq!(count(&store).await, 4, "api-1 twice, as forgotten, the import once");
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), 4);
}

async fn a_reference_identifies_one_complaint_of_its_institution(store: Arc<dyn IntakeStore>) {
    let Submitted::Created(first) = store.submit(referenced("r1", "facts", "crm:7")).await.unwrap() else { panic!() };
    let stored = store.get(&id_of(&first)).await.unwrap().unwrap();
    // The same request under another id is a retry.
    assert_eq!(store.submit(referenced("r2", "facts", "crm:7")).await.unwrap(), Submitted::Replayed(stored));
    // Another request with the reference is refused, from any unit of the institution.
    for unit in ["institutions/demo", "institutions/demo/branches/sh"] {
        let mut other = referenced("r3", "other facts", "crm:7");
        other.complaint.org_unit = unit.to_owned();
        let err = store.submit(other).await.unwrap_err();
        let StoreError::ReferenceTaken { complaint, org_unit } = &err else { panic!("{err:?}") };
        assert_eq!((complaint, org_unit.as_str()), (&first.name, "institutions/demo"));
    }
    // Another institution's reference is another one; no reference is none.
    let mut elsewhere = referenced("r4", "other facts", "crm:7");
    elsewhere.complaint.org_unit = "institutions/demo-2".to_owned();
    assert!(matches!(store.submit(elsewhere).await.unwrap(), Submitted::Created(_)));
    for rid in ["r5", "r6"] {
        assert!(matches!(store.submit(referenced(rid, rid, "")).await.unwrap(), Submitted::Created(_)));
    }
    assert_eq!(count(&store).await, 4);
    // The refused request recorded nothing: its id is free for what the caller meant.
    assert!(matches!(store.submit(referenced("r3", "r3", "crm:8")).await.unwrap(), Submitted::Created(_)));
}

async fn concurrent_submissions_of_one_reference_create_one_complaint(store: Arc<dyn IntakeStore>) {
    // Under different request ids, half with one payload and half with another.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let facts = if i % 2 == 0 { "facts a" } else { "facts b" };
        tasks.push(tokio::spawn(async move { store.submit(referenced(&format!("c{i}"), facts, "crm:9")).await }));
    }
    let (mut created, mut replayed, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok(Submitted::Created(c)) => created.push(c.name),
            Ok(Submitted::Replayed(c)) => replayed.push(c.name),
            Err(StoreError::ReferenceTaken { complaint, .. }) => refused.push(complaint),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!((replayed.len(), refused.len()), (7, 8), "the winner's payload is replayed, the other refused");
    assert!(replayed.iter().chain(&refused).all(|name| *name == created[0]));
    assert_eq!(count(&store).await, 1);
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), 1);
}

/// D-SLA-6: a receipt of 2026-12-20 counted without a 2027 calendar has a provisional decision
/// deadline (24:00 on Mon 2027-01-04); once a 2027 calendar that makes 4 January a holiday is
/// loaded, only the provisional receipts are recomputed, the deadline moves to 5 January, and
/// ReceiptDeadlinesRevised carries the complainant's notice once.
async fn provisional_receipt_deadlines_are_revised_once_when_the_official_year_is_loaded(store: Arc<dyn IntakeStore>) {
    use redress_calendar::{DeadlineCalculator, Grade, SlaPolicy, WorkingCalendar};
    use redress_proto::redress::intake::v1::{Receipt, ReceiptDeadlinesRevised};

    use crate::domain::deadlines::{receipt_deadlines, revised};

    let policy = SlaPolicy::default();
    let provisional = DeadlineCalculator::china();
    let receipt = |request_id: &str, received: &str| {
        let received = chrono::DateTime::parse_from_rfc3339(received).unwrap().to_utc();
        let mut new = new_complaint(request_id, request_id, 0, 3);
        new.receive_time = received;
        new.complaint.receive_time = Some(redress_platform::time::to_timestamp(received));
        let deadlines = receipt_deadlines(&provisional, &policy, received, Grade::General).unwrap();
        new.complaint.receipt = Some(Receipt {
            complaint: new.complaint.name.clone(),
            accept_time: Some(redress_platform::time::to_timestamp(received)),
            deadlines: Some(deadlines),
            ..Receipt::default()
        });
        new
    };
    let december = receipt("r-december", "2026-12-20T10:00:00+08:00");
    let march = receipt("r-march", "2026-03-10T10:00:00+08:00");
    let december_id = december.id.clone();
    store.submit(december).await.unwrap();
    store.submit(march).await.unwrap();
    let stored = store.get(&december_id).await.unwrap().unwrap().receipt.unwrap().deadlines.unwrap();
    let due = |s: &str| Some(redress_platform::time::to_timestamp(s.parse().unwrap()));
    assert_eq!(stored.regulatory_decision_due_time, due("2027-01-04T16:00:00Z"));
    assert!(stored.regulatory_decision_provisional);

    // The same calendars again move nothing, and only the provisional receipt is looked at.
    let calc = provisional.clone();
    let same = store.revise_deadlines(Arc::new(move |c| revised(c, &calc, &SlaPolicy::default()))).await.unwrap();
    assert_eq!((same.recomputed, same.revised), (1, 0));
    let before = committed_events(store.feed(), 0, 100).await.unwrap().len();

    let official = WorkingCalendar::from_year_toml(&[(
        "2027.toml",
        "year = 2027\n[[holidays]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-04\n",
    )])
    .unwrap();
    let loaded = DeadlineCalculator::new(
        Arc::new(WorkingCalendar::china().with_provisional_years().merged(official)),
        redress_calendar::DEFAULT_TIME_ZONE,
    );
    let revise = move || {
        let calc = loaded.clone();
        Arc::new(move |c| revised(c, &calc, &SlaPolicy::default())) as super::Revise
    };
    let done = store.revise_deadlines(revise()).await.unwrap();
    assert_eq!((done.recomputed, done.revised), (1, 1));
    let now = store.get(&december_id).await.unwrap().unwrap().receipt.unwrap().deadlines.unwrap();
    assert_eq!(now.regulatory_decision_due_time, due("2027-01-05T16:00:00Z"));
    assert!(!now.regulatory_decision_provisional && now.regulatory_decision_provisional_reason.is_empty());
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let revisions: Vec<ReceiptDeadlinesRevised> = events[before..]
        .iter()
        .filter(|e| e.event_type == "redress.intake.v1.ReceiptDeadlinesRevised")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].complaint, format!("complaints/{december_id}"));
    let previous = revisions[0].previous_deadlines.as_ref().unwrap();
    assert_eq!(previous.regulatory_decision_due_time, due("2027-01-04T16:00:00Z"));
    assert!(revisions[0].complainant_notice.contains("2027年01月05日"), "{}", revisions[0].complainant_notice);

    // Nothing is provisional any more: a second revision finds nothing and announces nothing.
    let again = store.revise_deadlines(revise()).await.unwrap();
    assert_eq!((again.recomputed, again.revised), (0, 0));
    assert_eq!(committed_events(store.feed(), 0, 100).await.unwrap().len(), events.len());
}

/// The complainant's answer to the read-back: `corrections` when they corrected the record
/// (confirmed otherwise), `minutes` after now, recorded by a clerk.
fn answer(corrections: &str, minutes: i64) -> ContentConfirmation {
    ContentConfirmation {
        confirmed: corrections.is_empty(),
        method: ConfirmationMethod::ReadBackCall as i32,
        corrections: corrections.to_owned(),
        note: "录音 R-1".to_owned(),
        confirm_time: Some(redress_platform::time::to_timestamp(
            redress_platform::time::now() + Duration::minutes(minutes),
        )),
        recorded_by: "user:clerk".to_owned(),
    }
}

fn request_key(id: &str, hash: &str) -> RequestKey {
    RequestKey { id: super::conformance_support::request_id(id), hash: hash.to_owned() }
}

/// Every stored byte of the complaints table, to look for clear text in.
async fn complaint_bytes(store: &Arc<dyn IntakeStore>) -> Vec<u8> {
    const SQL: &str = "SELECT record, pii FROM complaints";
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = match store.feed().pool() {
        redress_platform::db::Pool::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
        redress_platform::db::Pool::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
    };
    rows.into_iter().flat_map(|(record, pii)| record.into_iter().chain(pii.unwrap_or_default())).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn a_read_back_answer_is_kept_with_the_persons_information_and_announced_without_it(store: Arc<dyn IntakeStore>) {
    use crate::domain::mask::MASKED_TEXT;
    use crate::domain::pii::ERASED;

    const WORDS: &str = "金额应为 300 元，回电 13900009999";
    let Submitted::Created(c) = store.submit(personal("c1", "13955556666", "11010519491231002X", BANK)).await.unwrap()
    else {
        panic!()
    };
    let id = id_of(&c);
    let trace = TraceContext::default();
    let stored = store.confirm(&id, request_key("a1", "h1"), answer(WORDS, 1), trace.clone()).await.unwrap().unwrap();
    assert_eq!(stored.content_confirmations.len(), 1);
    assert_eq!(stored.content_confirmations[0].corrections, MASKED_TEXT, "returned as stored");
    assert_eq!(stored.content_confirmations[0].note, "录音 R-1");
    assert_eq!(stored.facts, c.facts, "the recorded words stay as they are");
    assert_eq!(person(&stored).phone, "139****6666");
    assert_eq!(store.get(&id).await.unwrap().unwrap(), stored);
    let listed = store.list(&ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed[0].complaint.content_confirmations[0].corrections, MASKED_TEXT);
    assert!(!contains(&complaint_bytes(&store).await, "13900009999"), "no correction in clear at rest");

    // In clear with a recorded reason, and exported with the person.
    let clear = store.reveal(&id, &access("read", "回访核实")).await.unwrap().unwrap();
    assert_eq!(clear.content_confirmations[0].corrections, WORDS);
    assert_eq!(person(&clear).phone, "13955556666");
    let exported = store.export(&by_phone("13955556666"), &access("export", "access request")).await.unwrap();
    assert_eq!(exported[0].content_confirmations[0].corrections, WORDS);

    // A later confirmation stands after it; correcting the complainant keeps both.
    store.confirm(&id, request_key("a2", "h2"), answer("", 2), trace.clone()).await.unwrap().unwrap();
    let mut complainant = c.complainant.clone().unwrap();
    if let Some(Party::Person(p)) = complainant.party.as_mut() {
        p.full_name = "王晓明".to_owned();
    }
    let corrected = store.correct(&id, complainant, &access("correct", "name misspelt")).await.unwrap().unwrap();
    let answers: Vec<(bool, &str)> =
        corrected.content_confirmations.iter().map(|a| (a.confirmed, a.corrections.as_str())).collect();
    assert_eq!(answers, [(false, WORDS), (true, "")]);

    // The events say whether there are corrections, never what they are.
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let confirmed: Vec<ComplaintContentConfirmed> = events
        .iter()
        .filter(|e| e.event_type == "redress.intake.v1.ComplaintContentConfirmed")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(confirmed.len(), 2);
    assert_eq!((confirmed[0].complaint.as_str(), confirmed[0].has_corrections), (c.name.as_str(), true));
    assert_eq!((confirmed[1].confirmed, confirmed[1].has_corrections), (true, false));
    assert_eq!(confirmed[0].method, ConfirmationMethod::ReadBackCall as i32);
    assert_eq!(confirmed[0].recorded_by, "user:clerk");
    for event in &events {
        assert!(!contains(&event.payload.as_ref().unwrap().value, "13900009999"));
    }

    // Erased with the person; after that only an answer without corrections can be recorded.
    store.erase(&by_phone("13955556666"), &access("erase", "deletion request")).await.unwrap().unwrap();
    let erased = store.get(&id).await.unwrap().unwrap();
    assert_eq!(erased.content_confirmations[0].corrections, ERASED);
    assert_eq!(
        store.reveal(&id, &access("read", "x")).await.unwrap().unwrap().content_confirmations[0].corrections,
        ERASED
    );
    let refused = store.confirm(&id, request_key("a3", "h3"), answer("又有更正", 3), trace.clone()).await;
    assert!(matches!(refused, Err(StoreError::Erased)), "{refused:?}");
    let after = store.confirm(&id, request_key("a4", "h4"), answer("", 4), trace).await.unwrap().unwrap();
    assert_eq!(after.content_confirmations.len(), 3);
    assert_eq!(after.content_confirmations[0].corrections, ERASED);
}

async fn a_read_back_answer_is_recorded_once_per_request_id(store: Arc<dyn IntakeStore>) {
    let Submitted::Created(c) = store.submit(personal("c1", "13955556666", "", BANK)).await.unwrap() else { panic!() };
    let Submitted::Created(other) = store.submit(personal("c2", "13977778888", "", BANK)).await.unwrap() else {
        panic!()
    };
    let (id, trace) = (id_of(&c), TraceContext::default());
    let first = store.confirm(&id, request_key("a1", "h1"), answer("更正", 1), trace.clone()).await.unwrap().unwrap();
    // Retried, also concurrently: the complaint as it is, nothing recorded again.
    let mut retries = Vec::new();
    for _ in 0..4 {
        let (store, id, trace) = (store.clone(), id.clone(), trace.clone());
        retries.push(tokio::spawn(async move {
            store.confirm(&id, request_key("a1", "h1"), answer("更正", 1), trace).await.unwrap().unwrap()
        }));
    }
    for retry in retries {
        assert_eq!(retry.await.unwrap(), first);
    }
    let reused = store.confirm(&id, request_key("a1", "other"), answer("", 2), trace.clone()).await;
    assert!(matches!(reused, Err(StoreError::RequestIdReused)), "{reused:?}");
    let elsewhere = store.confirm(&id_of(&other), request_key("a1", "other"), answer("", 2), trace.clone()).await;
    assert!(matches!(elsewhere, Err(StoreError::RequestIdReused)), "{elsewhere:?}");
    assert_eq!(store.get(&id).await.unwrap().unwrap().content_confirmations.len(), 1);
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type.ends_with("ComplaintContentConfirmed")).count(), 1);

    // Retention forgets the request id like a submission's.
    assert_eq!(
        store.prune_requests(Utc::now() + Duration::minutes(1)).await.unwrap(),
        3,
        "two submissions, one change"
    );
    let again = store.confirm(&id, request_key("a1", "other"), answer("", 2), trace).await.unwrap().unwrap();
    assert_eq!(again.content_confirmations.len(), 2);
}

async fn a_read_back_answer_needs_an_accepted_complaint_received_before_it(store: Arc<dyn IntakeStore>) {
    let Submitted::Created(c) = store.submit(personal("c1", "13955556666", "", BANK)).await.unwrap() else { panic!() };
    let (id, trace) = (id_of(&c), TraceContext::default());
    let early = store.confirm(&id, request_key("a1", "h1"), answer("", -10), trace.clone()).await;
    assert!(matches!(early, Err(StoreError::Refused(ChangeError::ConfirmedBeforeReceipt))), "{early:?}");
    // A refused request took no request id: corrected, it is recorded.
    let fixed = store.confirm(&id, request_key("a1", "h1-fixed"), answer("", 1), trace.clone()).await.unwrap().unwrap();
    assert_eq!(fixed.content_confirmations.len(), 1);
    store.withdraw(&id, "已协商解决", redress_platform::time::now()).await.unwrap().unwrap();
    let withdrawn = store.confirm(&id, request_key("a2", "h2"), answer("", 1), trace.clone()).await;
    assert!(matches!(withdrawn, Err(StoreError::Refused(ChangeError::Withdrawn))), "{withdrawn:?}");
    assert_eq!(store.get(&id).await.unwrap().unwrap().content_confirmations.len(), 1, "nothing half written");
    let missing = uuid::Uuid::now_v7().to_string();
    assert!(store.confirm(&missing, request_key("a3", "h3"), answer("", 1), trace).await.unwrap().is_none());
    let types: Vec<String> =
        committed_events(store.feed(), 0, 100).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            "redress.intake.v1.ComplaintAccepted",
            "redress.intake.v1.ComplaintContentConfirmed",
            "redress.intake.v1.ComplaintWithdrawn"
        ]
    );
}
