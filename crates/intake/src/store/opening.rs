//! What opening a store does to data already there, on both backends: complaints recorded
//! before encryption at rest are sealed, complaints recorded before source references were
//! kept get theirs, data keys are re-wrapped after a rotation, and subjects indexed by phones
//! as written are re-indexed by phones in E.164 and merged where they prove to be one person.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prost::Message;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::host::Supervisor;
use sqlx::{PgPool, SqlitePool};

use redress_proto::redress::intake::v1::Complaint;
use redress_proto::redress::intake::v1::complainant::Party;

use super::{IntakeStore, PiiAccess, StoreError, Submitted};
use crate::domain::pii::Keyring;
use crate::domain::subjects::{ID_DOCUMENT, INDEX_FORM, Identifier, PHONE};

async fn open_with(config: &DatabaseConfig, keyring: Keyring) -> Arc<dyn IntakeStore> {
    crate::open_store(config, Arc::new(keyring), &Supervisor::detached()).await.unwrap()
}

/// These tests open and reopen stores themselves, so they take the database's configuration.
async fn database(config: &DatabaseConfig) -> DatabaseConfig {
    config.clone()
}

redress_platform::conformance_suite!(
    open = database;
    records_from_before_encryption_are_sealed_on_open,
    source_references_of_earlier_complaints_are_derived_on_open,
    rotation_rewraps_every_subject_under_the_active_key,
    subjects_indexed_by_phones_as_written_are_reindexed_and_merged_on_open,
    a_merge_keeps_the_restriction_of_any_subject_it_merges,
    free_text_from_before_detection_is_sealed_on_open,
);

/// A complaint's id, stored record and sealed personal part.
type StoredRow = (String, Vec<u8>, Option<Vec<u8>>);

/// Either backend's pool on the test database, outside any store.
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    async fn connect(config: &DatabaseConfig) -> Self {
        match Backend::of(&config.url).unwrap() {
            Backend::Sqlite => Self::Sqlite(SqlitePool::connect(&config.url).await.unwrap()),
            Backend::Postgres => Self::Postgres(PgPool::connect(&config.url).await.unwrap()),
        }
    }

    /// Records a complaint the way intake did before personal information was sealed.
    async fn insert_unsealed(&self, id: &str, complaint: &Complaint) {
        const SQL: &str = "INSERT INTO complaints \
            (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us) \
            VALUES ($1, '2025010100000001', 3, 0, $2, 1, $3, 0)";
        let (unit, record) = (complaint.org_unit.as_str(), complaint.encode_to_vec());
        match self {
            Self::Sqlite(pool) => sqlx::query(SQL).bind(id).bind(unit).bind(record).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(SQL).bind(id).bind(unit).bind(record).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    async fn record(&self, id: &str) -> Vec<u8> {
        const SQL: &str = "SELECT record FROM complaints WHERE id = $1";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(SQL).bind(id).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(SQL).bind(id).fetch_one(pool).await,
        }
        .unwrap()
    }

    /// Makes a complaint look as if recorded before source references were kept.
    async fn forget_source_reference(&self, id: &str) {
        const SQL: &str =
            "UPDATE complaints SET source_reference = NULL, source_reference_derived = FALSE WHERE id = $1";
        match self {
            Self::Sqlite(pool) => sqlx::query(SQL).bind(id).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(SQL).bind(id).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    async fn source_reference(&self, id: &str) -> Option<String> {
        const SQL: &str = "SELECT source_reference FROM complaints WHERE id = $1";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(SQL).bind(id).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(SQL).bind(id).fetch_one(pool).await,
        }
        .unwrap()
    }

    async fn key_ids(&self) -> Vec<String> {
        const SQL: &str = "SELECT DISTINCT key_id FROM subjects";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
        }
        .unwrap()
    }

    /// Records a complaint of a subject the way intake did before phones were indexed in
    /// E.164: the subject without an index form, the phone digested as written (spaces and
    /// dashes removed), the identity document as it still is, the personal part sealed with
    /// the subject's key. `erased` records a subject whose key and index entries are gone.
    async fn insert_indexed_as_written(&self, keyring: &Keyring, complaint: &Complaint, erased: bool) -> String {
        const SUBJECT: &str = "INSERT INTO subjects (id, key_id, wrapped_key, create_time_us) VALUES ($1, $2, $3, 0)";
        const COMPLAINT: &str = "INSERT INTO complaints \
            (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us, pii, subject_id) \
            VALUES ($1, $2, 3, 0, $3, 1, $4, 0, $5, $6)";
        // As then, a digest another subject holds stays with it.
        const INDEX: &str =
            "INSERT INTO subject_index (kind, digest, subject_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        let subject = uuid::Uuid::now_v7().to_string();
        let id = complaint.name.strip_prefix("complaints/").unwrap().to_owned();
        let number = format!("legacy-{id}");
        let (key, wrapped) = keyring.new_data_key(&subject).unwrap();
        let (record, sealed) = crate::domain::pii::seal(complaint, &subject, &key).unwrap();
        let institution = crate::domain::acceptance::institution_of(&complaint.org_unit);
        let mut index = Vec::new();
        for (kind, value) in crate::domain::subjects::identifiers(complaint) {
            let written: String =
                value.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect();
            index.push((kind, keyring.digest(&format!("{kind}@{institution}"), written.as_bytes())));
        }
        let (wrapped_key, pii) = if erased { (None, None) } else { (Some(wrapped.sealed), Some(sealed)) };
        macro_rules! insert {
            ($pool:expr) => {{
                sqlx::query(SUBJECT)
                    .bind(&subject)
                    .bind(&wrapped.key_id)
                    .bind(wrapped_key)
                    .execute($pool)
                    .await
                    .unwrap();
                sqlx::query(COMPLAINT)
                    .bind(&id)
                    .bind(&number)
                    .bind(&complaint.org_unit)
                    .bind(record)
                    .bind(pii)
                    .bind(&subject)
                    .execute($pool)
                    .await
                    .unwrap();
                for (kind, digest) in index.iter().filter(|_| !erased) {
                    sqlx::query(INDEX).bind(*kind).bind(digest).bind(&subject).execute($pool).await.unwrap();
                }
            }};
        }
        match self {
            Self::Sqlite(pool) => insert!(pool),
            Self::Postgres(pool) => insert!(pool),
        }
        subject
    }

    /// Records a complaint the way intake did before identifiers in free text were detected:
    /// its subject indexed as now, its personal part sealed without the free text, which the
    /// record keeps as written. `erased` records it after its subject's erasure then: no key,
    /// nothing sealed, the personal fields replaced and the free text as written.
    async fn insert_sealed_before_detection(&self, keyring: &Keyring, complaint: &Complaint, erased: bool) -> String {
        const SUBJECT: &str = "INSERT INTO subjects (id, key_id, wrapped_key, create_time_us, index_form) \
            VALUES ($1, $2, $3, 0, $4)";
        const COMPLAINT: &str = "INSERT INTO complaints \
            (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us, pii, subject_id) \
            VALUES ($1, $2, 3, 0, $3, 1, $4, 0, $5, $6)";
        const INDEX: &str = "INSERT INTO subject_index (kind, digest, subject_id) VALUES ($1, $2, $3)";
        let subject = uuid::Uuid::now_v7().to_string();
        let id = complaint.name.strip_prefix("complaints/").unwrap().to_owned();
        let number = format!("legacy-{id}");
        let (key, wrapped) = keyring.new_data_key(&subject).unwrap();
        let mut without_text = complaint.clone();
        crate::domain::mask::free_texts(&mut without_text, &|_| String::new());
        let (record, sealed) = crate::domain::pii::seal(&without_text, &subject, &key).unwrap();
        let mut record = Complaint::decode(record.as_slice()).unwrap();
        if erased {
            crate::domain::pii::erase(&mut record);
        }
        crate::domain::mask::free_texts(&mut record, &|_| String::new());
        (record.demand, record.facts, record.staff_notes) =
            (complaint.demand.clone(), complaint.facts.clone(), complaint.staff_notes.clone());
        let record = record.encode_to_vec();
        let index = if erased { Vec::new() } else { crate::domain::subjects::digests(keyring, complaint) };
        let (wrapped_key, pii) = if erased { (None, None) } else { (Some(wrapped.sealed), Some(sealed)) };
        macro_rules! insert {
            ($pool:expr) => {{
                sqlx::query(SUBJECT)
                    .bind(&subject)
                    .bind(&wrapped.key_id)
                    .bind(wrapped_key)
                    .bind(INDEX_FORM)
                    .execute($pool)
                    .await
                    .unwrap();
                sqlx::query(COMPLAINT)
                    .bind(&id)
                    .bind(&number)
                    .bind(&complaint.org_unit)
                    .bind(record)
                    .bind(pii)
                    .bind(&subject)
                    .execute($pool)
                    .await
                    .unwrap();
                for (kind, digest) in &index {
                    sqlx::query(INDEX).bind(*kind).bind(digest).bind(&subject).execute($pool).await.unwrap();
                }
            }};
        }
        match self {
            Self::Sqlite(pool) => insert!(pool),
            Self::Postgres(pool) => insert!(pool),
        }
        subject
    }

    /// Every complaint's stored record and sealed part, byte for byte.
    async fn complaint_rows(&self) -> Vec<StoredRow> {
        const SQL: &str = "SELECT id, record, pii FROM complaints ORDER BY id";
        match self {
            Self::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
        }
        .unwrap()
    }

    /// Marks every complaint's free text as unchecked, as an earlier version left it.
    async fn forget_free_text_form(&self) {
        const SQL: &str = "UPDATE complaints SET free_text_form = 0";
        match self {
            Self::Sqlite(pool) => sqlx::query(SQL).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(SQL).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    /// Everything re-indexing may change, as text: subjects, index entries, which subject
    /// each complaint is sealed for, and how many accesses were recorded.
    async fn subjects_snapshot(&self) -> Vec<String> {
        const SUBJECTS: &str = "SELECT id || ' ' || key_id || ' ' || index_form || ' ' || \
            COALESCE(merged_into, '-') || ' ' || CASE WHEN wrapped_key IS NULL THEN 'no key' ELSE 'key' END \
            FROM subjects ORDER BY id";
        const INDEX: &str =
            "SELECT kind || ' ' || digest || ' ' || subject_id FROM subject_index ORDER BY kind, digest";
        const COMPLAINTS: &str = "SELECT id || ' ' || COALESCE(subject_id, '-') FROM complaints ORDER BY id";
        const PII: &str = "SELECT pii FROM complaints WHERE pii IS NOT NULL ORDER BY id";
        const ACCESSES: &str = "SELECT CAST(COUNT(*) AS TEXT) FROM pii_access";
        let mut out: Vec<String> = Vec::new();
        match self {
            Self::Sqlite(pool) => {
                for sql in [SUBJECTS, INDEX, COMPLAINTS, ACCESSES] {
                    out.extend(sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap());
                }
                let sealed: Vec<Vec<u8>> = sqlx::query_scalar(PII).fetch_all(pool).await.unwrap();
                out.extend(sealed.iter().map(hex::encode));
            }
            Self::Postgres(pool) => {
                for sql in [SUBJECTS, INDEX, COMPLAINTS, ACCESSES] {
                    out.extend(sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap());
                }
                let sealed: Vec<Vec<u8>> = sqlx::query_scalar(PII).fetch_all(pool).await.unwrap();
                out.extend(sealed.iter().map(hex::encode));
            }
        }
        out
    }

    /// Subject `id`'s row: (index form, merged into, whether it keeps a key).
    async fn subject(&self, id: &str) -> (i32, Option<String>, bool) {
        const SQL: &str = "SELECT index_form, merged_into, wrapped_key IS NOT NULL FROM subjects WHERE id = $1";
        match self {
            Self::Sqlite(pool) => sqlx::query_as(SQL).bind(id).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_as(SQL).bind(id).fetch_one(pool).await,
        }
        .unwrap()
    }

    /// Records that subject `id` restricted its processing at `since_us`.
    async fn restrict(&self, id: &str, since_us: i64) {
        const SQL: &str = "UPDATE subjects SET restrict_time_us = $2 WHERE id = $1";
        match self {
            Self::Sqlite(pool) => sqlx::query(SQL).bind(id).bind(since_us).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(SQL).bind(id).bind(since_us).execute(pool).await.map(drop),
        }
        .unwrap()
    }

    /// Since when subject `id` restricted its processing.
    async fn restriction(&self, id: &str) -> Option<i64> {
        const SQL: &str = "SELECT restrict_time_us FROM subjects WHERE id = $1";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(SQL).bind(id).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(SQL).bind(id).fetch_one(pool).await,
        }
        .unwrap()
    }

    async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

fn read(reason: &str) -> PiiAccess {
    PiiAccess { actor: "user:dpo".to_owned(), action: "read", reason: reason.to_owned() }
}

/// A complaint recorded in clear before encryption at rest is sealed when the store opens.
async fn records_from_before_encryption_are_sealed_on_open(config: DatabaseConfig) {
    let keyring = crate::domain::pii::test_keyring;
    drop(open_with(&config, keyring()).await);
    let id = uuid::Uuid::now_v7().to_string();
    let mut legacy = crate::testing::complaint("旧系统记录");
    legacy.name = format!("complaints/{id}");
    let raw = Raw::connect(&config).await;
    raw.insert_unsealed(&id, &legacy).await;

    let store = open_with(&config, keyring()).await;
    let stored = store.get(&id).await.unwrap().unwrap();
    let Some(redress_proto::redress::intake::v1::complainant::Party::Person(p)) = stored.complainant.unwrap().party
    else {
        panic!()
    };
    assert_eq!(p.phone, "138****5678");
    assert_eq!(store.reveal(&id, &read("check")).await.unwrap().unwrap(), legacy);
    assert!(!raw.record(&id).await.windows(11).any(|w| w == b"13812345678"), "no clear phone left in the record");
    raw.close().await;
}

/// Complaints recorded before source references were kept get theirs when the store opens;
/// of two sharing one, the earlier recorded keeps it and the other is left without.
async fn source_references_of_earlier_complaints_are_derived_on_open(config: DatabaseConfig) {
    let keyring = crate::domain::pii::test_keyring;
    let store = open_with(&config, keyring()).await;
    let mut created = Vec::new();
    for (request_id, reference) in [("d1", "crm:1"), ("d2", "crm:2"), ("d3", "")] {
        let mut new = super::conformance_support::personal_new(request_id);
        new.complaint.external_reference = reference.to_owned();
        let Submitted::Created(c) = store.submit(new).await.unwrap() else { panic!() };
        created.push(c.name.strip_prefix("complaints/").unwrap().to_owned());
    }
    drop(store);
    let raw = Raw::connect(&config).await;
    for id in &created {
        raw.forget_source_reference(id).await;
    }
    // Recorded long before (the legacy record is dated 1970) with the first one's reference.
    let legacy = uuid::Uuid::now_v7().to_string();
    let mut complaint = crate::testing::complaint("旧系统记录");
    complaint.name = format!("complaints/{legacy}");
    complaint.org_unit = "institutions/demo-bank".to_owned();
    complaint.external_reference = "crm:1".to_owned();
    raw.insert_unsealed(&legacy, &complaint).await;

    let store = open_with(&config, keyring()).await;
    let derived = [&legacy, &created[0], &created[1], &created[2]];
    let mut references = Vec::new();
    for id in derived {
        references.push(raw.source_reference(id).await);
    }
    let expected = [Some("institutions/demo-bank crm:1"), None, Some("institutions/demo-bank crm:2"), None];
    assert_eq!(references.iter().map(Option::as_deref).collect::<Vec<_>>(), expected);

    // The legacy complaint's request is long gone: its reference alone finds it.
    let mut again = super::conformance_support::personal_new("d4");
    again.complaint.external_reference = "crm:1".to_owned();
    let Submitted::Replayed(found) = store.submit(again).await.unwrap() else { panic!() };
    assert_eq!(found.name, complaint.name);
    // The second one's request is remembered: the same payload replays, another is refused.
    let mut retry = super::conformance_support::personal_new("d5");
    (retry.request_hash, retry.complaint.external_reference) = ("hash-d2".to_owned(), "crm:2".to_owned());
    let Submitted::Replayed(found) = store.submit(retry.clone()).await.unwrap() else { panic!() };
    assert_eq!(found.name, format!("complaints/{}", created[1]));
    retry.request_hash = "hash-other".to_owned();
    assert!(matches!(store.submit(retry).await, Err(StoreError::ReferenceTaken { .. })));
    drop(store);

    // Done once: opening again changes nothing.
    drop(open_with(&config, keyring()).await);
    for (id, reference) in derived.into_iter().zip(&references) {
        assert_eq!(&raw.source_reference(id).await, reference);
    }
    raw.close().await;
}

/// After a rotation, data keys are re-wrapped under the new master key when the store
/// opens, after which the retired key is no longer needed.
async fn rotation_rewraps_every_subject_under_the_active_key(config: DatabaseConfig) {
    let k1 = ("k1".to_owned(), vec![1u8; 32]);
    let k2 = ("k2".to_owned(), vec![2u8; 32]);
    let index = [9u8; 32];
    let store = open_with(&config, Keyring::new("k1", std::slice::from_ref(&k1), &index).unwrap()).await;
    let mut new = super::conformance_support::personal_new("rot-1");
    new.recurrence_since = new.receive_time;
    let Submitted::Created(created) = store.submit(new).await.unwrap() else { panic!() };
    drop(store);

    // Started with the old key missing: the store still opens (and reports the subjects it
    // could not re-wrap), nothing is lost.
    drop(open_with(&config, Keyring::new("k2", std::slice::from_ref(&k2), &index).unwrap()).await);
    drop(open_with(&config, Keyring::new("k2", &[k1, k2.clone()], &index).unwrap()).await);
    let raw = Raw::connect(&config).await;
    assert_eq!(raw.key_ids().await, ["k2"]);
    raw.close().await;

    let store = open_with(&config, Keyring::new("k2", &[k2], &index).unwrap()).await;
    let id = created.name.strip_prefix("complaints/").unwrap();
    assert_eq!(store.reveal(id, &read("check")).await.unwrap().unwrap(), created);
}

/// A complaint by a person with `phone` and, when given, the resident ID `id_number`.
fn complaint_by(phone: &str, id_number: Option<&str>) -> Complaint {
    let mut complaint = crate::testing::complaint("旧索引记录");
    complaint.name = format!("complaints/{}", uuid::Uuid::now_v7());
    if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
        p.phone = phone.to_owned();
        p.id_number = id_number.unwrap_or_default().to_owned();
        if id_number.is_none() {
            p.id_document_type = 0;
        }
    }
    complaint
}

fn at_demo_bank(kind: &'static str, value: &str) -> Identifier {
    let institution = redress_platform::names::OrgUnit::parse(
        &mut redress_platform::error::Violations::new(),
        "institution",
        "institutions/demo-bank",
    )
    .unwrap();
    Identifier { institution, kind, value: value.to_owned() }
}

/// Names of the complaints the person `identifier` names, sorted.
async fn exported(store: &Arc<dyn IntakeStore>, identifier: &Identifier) -> Vec<String> {
    let access = PiiAccess { actor: "user:dpo".to_owned(), action: "export", reason: "access request".to_owned() };
    let mut names: Vec<String> = store.export(identifier, &access).await.unwrap().into_iter().map(|c| c.name).collect();
    names.sort();
    names
}

/// Subjects recorded when phones were digested as written (`138…`, `+86 138…`, `86138…`) are
/// re-indexed in E.164 when the store opens, and those that prove to be one person are merged
/// into the earliest: their complaints re-sealed under its key, the merge in the access log.
/// Two people whose identity documents differ stay apart though they share the phone. Done
/// once: opening again changes nothing, and a subject an earlier version records meanwhile is
/// merged at the next opening.
async fn subjects_indexed_by_phones_as_written_are_reindexed_and_merged_on_open(config: DatabaseConfig) {
    let keyring = crate::domain::pii::test_keyring;
    drop(open_with(&config, keyring()).await);
    let raw = Raw::connect(&config).await;
    let ring = keyring();
    let plain = complaint_by("13812345678", None);
    let with_document = complaint_by("+86 138 1234 5678", Some("11010519491231002X"));
    let with_prefix = complaint_by("8613812345678", None);
    // Recorded as another person then (its document differs), its phone's digest left with
    // the one before.
    let other_document = complaint_by("+86-138-1234-5678", Some("110105194912310029"));
    let someone_else = complaint_by("13900001111", None);
    let erased = complaint_by("13812345678", None);
    let mut subjects = Vec::new();
    for (complaint, erased) in [
        (&plain, false),
        (&with_document, false),
        (&with_prefix, false),
        (&other_document, false),
        (&someone_else, false),
        (&erased, true),
    ] {
        subjects.push(raw.insert_indexed_as_written(&ring, complaint, erased).await);
    }
    let [survivor, merged_document, merged_prefix, apart, alone, erased_subject] = subjects.as_slice() else {
        panic!()
    };

    let store = open_with(&config, keyring()).await;
    let same_person = {
        let mut names = vec![plain.name.clone(), with_document.name.clone(), with_prefix.name.clone()];
        names.sort();
        names
    };
    for spelling in ["+86 138 1234 5678", "86 13812345678", "008613812345678", "138-1234-5678", "13812345678"] {
        assert_eq!(exported(&store, &at_demo_bank(PHONE, spelling)).await, same_person, "{spelling}");
    }
    assert_eq!(exported(&store, &at_demo_bank(ID_DOCUMENT, "1:11010519491231002X")).await, same_person);
    assert_eq!(
        exported(&store, &at_demo_bank(ID_DOCUMENT, "1:110105194912310029")).await,
        std::slice::from_ref(&other_document.name),
        "another identity document is another person, whatever the phone"
    );
    assert_eq!(exported(&store, &at_demo_bank(PHONE, "139 0000 1111")).await, std::slice::from_ref(&someone_else.name));
    for (complaint, subject) in
        [(&plain, survivor), (&with_document, survivor), (&with_prefix, survivor), (&other_document, apart)]
    {
        let id = complaint.name.strip_prefix("complaints/").unwrap();
        assert_eq!(store.subject_of(id).await.unwrap().as_deref(), Some(subject.as_str()));
        assert_eq!(&store.reveal(id, &read("check")).await.unwrap().unwrap(), complaint, "opens under the survivor");
    }
    assert_eq!(raw.subject(survivor).await, (INDEX_FORM, None, true));
    for merged in [merged_document, merged_prefix] {
        assert_eq!(raw.subject(merged).await, (INDEX_FORM, Some(survivor.clone()), false));
    }
    for kept in [apart, alone] {
        assert_eq!(raw.subject(kept).await, (INDEX_FORM, None, true));
    }
    assert_eq!(raw.subject(erased_subject).await, (1, None, false), "an erased subject has nothing to index");
    // Each moved complaint is in the access log of the survivor and of the subject it left.
    let merges: Vec<_> = store
        .pii_accesses(survivor)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "merge")
        .map(|a| (a.complaint_id.unwrap(), a.actor))
        .collect();
    assert_eq!(merges.len(), 4, "{merges:?}");
    for moved in [&with_document, &with_prefix] {
        let id = moved.name.strip_prefix("complaints/").unwrap().to_owned();
        assert!(merges.contains(&(id, "service:intake".to_owned())));
    }
    assert!(store.pii_accesses(apart).await.unwrap().iter().all(|a| a.action != "merge"));
    drop(store);

    // Done once: opening again changes nothing.
    let before = raw.subjects_snapshot().await;
    drop(open_with(&config, keyring()).await);
    assert_eq!(raw.subjects_snapshot().await, before);

    // An earlier version still running records the same person as written meanwhile: merged
    // at the next opening.
    let late = complaint_by("008613812345678", None);
    let late_subject = raw.insert_indexed_as_written(&ring, &late, false).await;
    let store = open_with(&config, keyring()).await;
    let mut all = same_person.clone();
    all.push(late.name.clone());
    all.sort();
    assert_eq!(exported(&store, &at_demo_bank(PHONE, "+86 138-1234-5678")).await, all);
    assert_eq!(raw.subject(&late_subject).await, (INDEX_FORM, Some(survivor.clone()), false));
    // Erasure by any spelling erases them all.
    let erase = PiiAccess { actor: "user:dpo".to_owned(), action: "erase", reason: "deletion request".to_owned() };
    let erased = store.erase(&at_demo_bank(PHONE, "138 1234 5678"), &erase).await.unwrap().unwrap();
    assert_eq!((erased.subject_id.as_str(), erased.complaints), (survivor.as_str(), 4));
    assert!(exported(&store, &at_demo_bank(PHONE, "13812345678")).await.is_empty());
    raw.close().await;
}

/// Two subjects proved one person by their phone are merged; one of them had restricted the
/// processing of its information (PIPL Art.44): the surviving subject is restricted from then,
/// and every complaint it now holds is marked and announced as restricted.
async fn a_merge_keeps_the_restriction_of_any_subject_it_merges(config: DatabaseConfig) {
    let keyring = crate::domain::pii::test_keyring;
    drop(open_with(&config, keyring()).await);
    let raw = Raw::connect(&config).await;
    let ring = keyring();
    let earlier = complaint_by("13812345678", None);
    let mut restricted = complaint_by("+86 138 1234 5678", None);
    restricted.personal_data_restricted = true;
    let survivor = raw.insert_indexed_as_written(&ring, &earlier, false).await;
    let merged = raw.insert_indexed_as_written(&ring, &restricted, false).await;
    raw.restrict(&merged, 1_700_000_000_000_000).await;

    let store = open_with(&config, keyring()).await;
    assert_eq!(raw.subject(&merged).await, (INDEX_FORM, Some(survivor.clone()), false));
    assert_eq!(raw.restriction(&survivor).await, Some(1_700_000_000_000_000), "the person stays restricted");
    for complaint in [&earlier, &restricted] {
        let id = complaint.name.strip_prefix("complaints/").unwrap();
        assert!(store.get(id).await.unwrap().unwrap().personal_data_restricted, "{id}");
    }
    let events = redress_platform::testing::committed_events(store.feed(), 0, 100).await.unwrap();
    let announced: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == "redress.intake.v1.ComplaintProcessingRestricted")
        .map(|e| e.aggregate.as_str())
        .collect();
    assert_eq!(announced, [earlier.name.as_str()], "the complaint that was not restricted yet is announced");
    raw.close().await;
}

/// Complaints stored before identifiers in free text were detected hold them in clear in their
/// records: recorded before encryption at rest, sealed without their free text, or erased
/// then. When the store opens, each is sealed as a submission now seals it: masked for every
/// reader of the record, the words as written only for a `pii.read` reader with the
/// subject's key, and nothing left to recover once the subject is erased. Nothing else of the
/// complaints changes, no access is recorded and the access log still verifies; opening
/// again, or after the marks were lost, changes nothing.
async fn free_text_from_before_detection_is_sealed_on_open(config: DatabaseConfig) {
    const PHONE_IN_TEXT: &str = "13900112233";
    const CARD: &str = "6222020200112233446";
    const EMAIL: &str = "wang.li@example.cn";
    let keyring = crate::domain::pii::test_keyring;
    drop(open_with(&config, keyring()).await);
    let raw = Raw::connect(&config).await;
    let ring = keyring();
    let with_text = |mut complaint: Complaint| {
        complaint.facts = format!("来电 {PHONE_IN_TEXT}，尾号 3446 的卡 {CARD} 于 2026-01-05 被扣 300.00 元");
        complaint.demand = format!("退款至卡 {CARD}");
        complaint.staff_notes = format!("客户另留邮箱 {EMAIL}");
        complaint
    };
    let unsealed = with_text(complaint_by("13812345678", Some("11010519491231002X")));
    let unsealed_id = unsealed.name.strip_prefix("complaints/").unwrap().to_owned();
    raw.insert_unsealed(&unsealed_id, &unsealed).await;
    let sealed = with_text(complaint_by("13700001111", None));
    let sealed_subject = raw.insert_sealed_before_detection(&ring, &sealed, false).await;
    let erased = with_text(complaint_by("13600002222", None));
    raw.insert_sealed_before_detection(&ring, &erased, true).await;
    let in_clear = |rows: &[StoredRow]| -> Vec<&str> {
        let mut found = Vec::new();
        for clear in [PHONE_IN_TEXT, CARD, EMAIL] {
            let held = rows
                .iter()
                .flat_map(|(_, record, pii)| std::iter::once(record).chain(pii))
                .any(|bytes| bytes.windows(clear.len()).any(|w| w == clear.as_bytes()));
            if held {
                found.push(clear);
            }
        }
        found
    };
    assert_eq!(in_clear(&raw.complaint_rows().await), [PHONE_IN_TEXT, CARD, EMAIL], "recorded in clear");

    let store = open_with(&config, keyring()).await;
    assert!(in_clear(&raw.complaint_rows().await).is_empty(), "no identifier in clear left in any row");
    let verdict = store.verify_access_log().await.unwrap();
    assert_eq!((verdict.entries, verdict.unchained, verdict.broken.is_none()), (0, 0, true), "nothing read");
    for complaint in [&unsealed, &sealed] {
        let id = complaint.name.strip_prefix("complaints/").unwrap();
        let mut masked = complaint.clone();
        crate::domain::mask::complaint(&mut masked);
        let stored = store.get(id).await.unwrap().unwrap();
        assert_eq!(stored, masked, "a reader without pii.read gets the masked words, and nothing else changed");
        assert!(
            stored.facts.contains("139****2233") && stored.facts.contains("6222***********3446"),
            "{}",
            stored.facts
        );
        assert_eq!(&store.reveal(id, &read("check")).await.unwrap().unwrap(), complaint, "pii.read gets the words");
    }
    let erased_id = erased.name.strip_prefix("complaints/").unwrap();
    let left = store.get(erased_id).await.unwrap().unwrap();
    assert_eq!(left.facts, crate::domain::mask::free_text(&erased.facts));
    assert_eq!(left.staff_notes, crate::domain::mask::free_text(&erased.staff_notes));
    assert!(left.staff_notes.ends_with("@example.cn") && !left.staff_notes.contains(EMAIL), "{}", left.staff_notes);
    assert_eq!(store.reveal(erased_id, &read("check")).await.unwrap().unwrap(), left, "nothing more to reveal");
    assert_eq!(store.pii_accesses(&sealed_subject).await.unwrap().len(), 1, "the one read, by user:dpo");
    drop(store);

    // Done once: opening again changes nothing, nor does it once the marks are lost.
    let before = raw.complaint_rows().await;
    drop(open_with(&config, keyring()).await);
    assert_eq!(raw.complaint_rows().await, before);
    raw.forget_free_text_form().await;
    let store = open_with(&config, keyring()).await;
    assert_eq!(raw.complaint_rows().await, before);

    // Erased, the words as written are gone.
    let erase = PiiAccess { actor: "user:dpo".to_owned(), action: "erase", reason: "deletion request".to_owned() };
    for (complaint, phone) in [(&unsealed, "13812345678"), (&sealed, "13700001111")] {
        store.erase(&at_demo_bank(PHONE, phone), &erase).await.unwrap().unwrap();
        let id = complaint.name.strip_prefix("complaints/").unwrap();
        let revealed = store.reveal(id, &read("check")).await.unwrap().unwrap();
        assert_eq!(revealed.facts, crate::domain::mask::free_text(&complaint.facts));
        assert_eq!(revealed.demand, crate::domain::mask::free_text(&complaint.demand));
    }
    assert!(in_clear(&raw.complaint_rows().await).is_empty());
    assert!(store.verify_access_log().await.unwrap().broken.is_none());
    raw.close().await;
}
