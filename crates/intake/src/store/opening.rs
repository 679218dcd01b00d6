//! What opening a store does to data already there, on both backends: complaints recorded
//! before encryption at rest are sealed, complaints recorded before source references were
//! kept get theirs, and data keys are re-wrapped after a rotation.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prost::Message;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::host::Supervisor;
use sqlx::{PgPool, SqlitePool};

use super::{IntakeStore, PiiAccess, StoreError, Submitted};
use crate::domain::pii::Keyring;

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
);

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
    async fn insert_unsealed(&self, id: &str, complaint: &redress_proto::redress::intake::v1::Complaint) {
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
