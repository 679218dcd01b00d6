//! The access log's keyed hash chain on both backends: it verifies as recorded, and an entry
//! edited in the database, or the whole chain rebuilt without the access-log key, does not;
//! entries recorded before the chain existed are chained when the store opens.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::host::Supervisor;
use sqlx::{PgPool, SqlitePool};

use super::conformance_support::personal_new;
use super::{IntakeStore, PiiAccess};
use crate::domain::access_log::{AccessLogKeys, LogEntry};
use crate::domain::pii::{Keyring, test_keyring};

async fn open_with(config: &DatabaseConfig, keyring: Keyring) -> Arc<dyn IntakeStore> {
    crate::open_store(config, Arc::new(keyring), &Supervisor::detached()).await.unwrap()
}

async fn database(config: &DatabaseConfig) -> DatabaseConfig {
    config.clone()
}

redress_platform::conformance_suite!(
    open = database;
    an_edited_entry_or_a_chain_rebuilt_without_the_key_does_not_verify,
    entries_recorded_before_the_chain_are_chained_on_open,
);

/// Either backend's pool on the test database, outside any store.
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

macro_rules! on_raw {
    ($raw:expr, |$pool:ident| $body:expr) => {
        match $raw {
            Raw::Sqlite($pool) => $body,
            Raw::Postgres($pool) => $body,
        }
    };
}

impl Raw {
    async fn connect(config: &DatabaseConfig) -> Self {
        match Backend::of(&config.url).unwrap() {
            Backend::Sqlite => Self::Sqlite(SqlitePool::connect(&config.url).await.unwrap()),
            Backend::Postgres => Self::Postgres(PgPool::connect(&config.url).await.unwrap()),
        }
    }

    async fn execute(&self, sql: &'static str, position: i64, text: &str) {
        on_raw!(self, |pool| sqlx::query(sql).bind(position).bind(text).execute(pool).await.map(drop)).unwrap();
    }

    async fn entries(&self) -> Vec<LogEntry> {
        const SQL: &str = "SELECT chain_position, complaint_id, subject_id, actor, action, reason, access_time_us, \
            previous_hash, hash, key_id FROM pii_access WHERE chain_position IS NOT NULL ORDER BY chain_position";
        on_raw!(self, |pool| sqlx::query_as(SQL).fetch_all(pool).await).unwrap()
    }

    /// Records an access the way intake did before the log was chained.
    async fn insert_unchained(&self, subject: &str, reason: &str) {
        const SQL: &str = "INSERT INTO pii_access (complaint_id, subject_id, actor, action, reason, access_time_us) \
            VALUES (NULL, $1, 'user:dpo', 'export', $2, 1)";
        on_raw!(self, |pool| sqlx::query(SQL).bind(subject).bind(reason).execute(pool).await.map(drop)).unwrap();
    }

    async fn close(self) {
        on_raw!(self, |pool| pool.close().await);
    }
}

fn access(reason: &str) -> PiiAccess {
    PiiAccess { actor: "user:dpo".to_owned(), action: "read", reason: reason.to_owned() }
}

/// A store with a complaint read three times; the complaint's id.
async fn read_three_times(store: &Arc<dyn IntakeStore>) -> String {
    let new = personal_new("r1");
    let id = new.id.clone();
    store.submit(new).await.unwrap();
    for n in 0..3 {
        store.reveal(&id, &access(&format!("callback {n}"))).await.unwrap().unwrap();
    }
    id
}

async fn an_edited_entry_or_a_chain_rebuilt_without_the_key_does_not_verify(config: DatabaseConfig) {
    let store = open_with(&config, test_keyring()).await;
    read_three_times(&store).await;
    let verdict = store.verify_access_log().await.unwrap();
    assert_eq!((verdict.entries, verdict.unchained, verdict.broken), (3, 0, None));

    let raw = Raw::connect(&config).await;
    raw.execute("UPDATE pii_access SET reason = $2 WHERE chain_position = $1", 2, "routine check").await;
    let broken = store.verify_access_log().await.unwrap().broken.expect("an edited entry is detected");
    assert_eq!(broken.position, 2, "{broken:?}");

    // Someone who can write the database rebuilds the whole chain, head included, under a
    // key of their own named like the configured one.
    let forged = AccessLogKeys::new("index", &[("index".to_owned(), vec![9; 32])]).unwrap();
    let (mut length, mut head) = (0, String::new());
    for mut entry in raw.entries().await {
        entry.chain(&forged, length, &head);
        raw.execute("UPDATE pii_access SET hash = $2 WHERE chain_position = $1", entry.chain_position, &entry.hash)
            .await;
        raw.execute(
            "UPDATE pii_access SET previous_hash = $2 WHERE chain_position = $1",
            entry.chain_position,
            &entry.previous_hash,
        )
        .await;
        (length, head) = (entry.chain_position, entry.hash);
    }
    raw.execute("UPDATE pii_access_chain SET length = $1, head = $2 WHERE id = 1", length, &head).await;
    let broken = store.verify_access_log().await.unwrap().broken.expect("a chain rebuilt without the key is detected");
    assert_eq!(broken.position, 1, "{broken:?}");
    raw.close().await;
}

async fn entries_recorded_before_the_chain_are_chained_on_open(config: DatabaseConfig) {
    let store = open_with(&config, test_keyring()).await;
    let id = read_three_times(&store).await;
    let subject = store.subject_of(&id).await.unwrap().unwrap();
    let raw = Raw::connect(&config).await;
    raw.insert_unchained(&subject, "written by an earlier version").await;
    raw.insert_unchained(&subject, "and another").await;
    let verdict = store.verify_access_log().await.unwrap();
    assert_eq!((verdict.entries, verdict.unchained, verdict.broken), (3, 2, None), "outside the chain until opened");
    drop(store);

    let store = open_with(&config, test_keyring()).await;
    let verdict = store.verify_access_log().await.unwrap();
    assert_eq!((verdict.entries, verdict.unchained, verdict.broken), (5, 0, None));
    let reasons: Vec<String> = raw.entries().await.into_iter().map(|e| e.reason).collect();
    assert_eq!(&reasons[3..], ["written by an earlier version", "and another"], "chained in the order recorded");
    // Still listed as the subject's accesses.
    assert_eq!(store.pii_accesses(&subject).await.unwrap().len(), 5);
    raw.close().await;
}
