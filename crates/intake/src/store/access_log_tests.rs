//! The access log's keyed hash chain on both backends: it verifies as recorded, and an entry
//! edited in the database, the whole chain rebuilt without the access-log key, the chain cut
//! short with an earlier head written back, its head removed, or an entry put outside it after
//! it began, does not; entries recorded before the chain existed are chained, and a head
//! written before heads were sealed is sealed, when the store opens only if the operator asks.
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
    entries_recorded_before_the_chain_are_chained_only_when_the_operator_asks,
    entries_put_outside_the_chain_after_it_began_are_a_break_and_never_chained,
    a_log_cut_short_with_an_earlier_head_written_back_or_without_its_head_does_not_verify,
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

    async fn statement(&self, sql: &'static str) {
        on_raw!(self, |pool| sqlx::query(sql).execute(pool).await.map(drop)).unwrap();
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
    let id = submitted(store).await;
    read(store, &id, 3).await;
    id
}

/// A complaint with personal information, not read yet; its id.
async fn submitted(store: &Arc<dyn IntakeStore>) -> String {
    let new = personal_new("r1");
    let id = new.id.clone();
    store.submit(new).await.unwrap();
    id
}

async fn read(store: &Arc<dyn IntakeStore>, id: &str, times: usize) {
    for n in 0..times {
        store.reveal(id, &access(&format!("callback {n}"))).await.unwrap().unwrap();
    }
}

/// The keyring with `pii.chain_legacy_access_log` set.
fn migrating() -> Keyring {
    test_keyring().chaining_legacy_access_log(true)
}

/// Entries in the chain, entries outside it, and where it breaks.
async fn verdict(store: &Arc<dyn IntakeStore>) -> (i64, i64, Option<i64>) {
    let v = store.verify_access_log().await.unwrap();
    (v.entries, v.unchained, v.broken.map(|b| b.position))
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

async fn entries_recorded_before_the_chain_are_chained_only_when_the_operator_asks(config: DatabaseConfig) {
    let store = open_with(&config, test_keyring()).await;
    let id = submitted(&store).await;
    let subject = store.subject_of(&id).await.unwrap().unwrap();
    let raw = Raw::connect(&config).await;
    // Recorded before the log was chained, then chained accesses after them.
    raw.insert_unchained(&subject, "written by an earlier version").await;
    raw.insert_unchained(&subject, "and another").await;
    read(&store, &id, 3).await;
    // And the head as an earlier version left it: without a seal.
    raw.statement("UPDATE pii_access_chain SET seal = ''").await;
    let v = store.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.unchained), (3, 2), "outside the chain until the operator asks");
    let broken = v.broken.expect("an unsealed head does not verify");
    assert_eq!(broken.position, 4);
    assert!(broken.reason.contains("is not sealed"), "{broken:?}");
    drop(store);

    // Starting again does not chain them or seal the head.
    let store = open_with(&config, test_keyring()).await;
    assert_eq!(verdict(&store).await, (3, 2, Some(4)));
    drop(store);

    // The operator asks for it (pii.chain_legacy_access_log).
    let store = open_with(&config, migrating()).await;
    assert_eq!(verdict(&store).await, (5, 0, None));
    let reasons: Vec<String> = raw.entries().await.into_iter().map(|e| e.reason).collect();
    assert_eq!(&reasons[3..], ["written by an earlier version", "and another"], "chained in the order recorded");
    // Still listed as the subject's accesses; a second start with the setting changes nothing.
    assert_eq!(store.pii_accesses(&subject).await.unwrap().len(), 5);
    drop(store);
    let store = open_with(&config, migrating()).await;
    assert_eq!(verdict(&store).await, (5, 0, None));
    read(&store, &id, 1).await;
    assert_eq!(verdict(&store).await, (6, 0, None));
    raw.close().await;
}

async fn entries_put_outside_the_chain_after_it_began_are_a_break_and_never_chained(config: DatabaseConfig) {
    let store = open_with(&config, test_keyring()).await;
    let id = read_three_times(&store).await;
    let subject = store.subject_of(&id).await.unwrap().unwrap();
    let raw = Raw::connect(&config).await;
    raw.insert_unchained(&subject, "inserted in the database").await;
    let v = store.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.unchained), (3, 1));
    let broken = v.broken.expect("an entry outside the chain after it began is a break");
    assert_eq!((broken.position, broken.reason.as_str()), (4, "an entry recorded after the chain began is outside it"));
    // Taken out of the chain: its position nulled.
    raw.execute("UPDATE pii_access SET chain_position = NULL WHERE chain_position = $1 AND reason <> $2", 2, "").await;
    assert_eq!(verdict(&store).await, (2, 2, Some(2)));
    drop(store);

    // Neither a start nor one with the migration setting chains them.
    for keyring in [test_keyring(), migrating()] {
        let store = open_with(&config, keyring).await;
        let (_, unchained, broken) = verdict(&store).await;
        assert_eq!((unchained, broken), (2, Some(2)));
        read(&store, &id, 1).await;
        assert_eq!(verdict(&store).await.2, Some(2));
    }
    raw.close().await;
}

async fn a_log_cut_short_with_an_earlier_head_written_back_or_without_its_head_does_not_verify(config: DatabaseConfig) {
    let store = open_with(&config, test_keyring()).await;
    let id = read_three_times(&store).await;
    let raw = Raw::connect(&config).await;
    // The newest entry removed and the head of the two before it written back.
    let second = raw.entries().await[1].hash.clone();
    raw.execute("DELETE FROM pii_access WHERE chain_position = $1 AND reason <> $2", 3, "").await;
    raw.execute("UPDATE pii_access_chain SET length = $1, head = $2 WHERE id = 1", 2, &second).await;
    let broken = store.verify_access_log().await.unwrap().broken.expect("a cut chain is detected");
    assert_eq!(broken.position, 3);
    assert!(broken.reason.contains("does not match its seal"), "{broken:?}");
    // Reading on, or starting again (with the migration setting too), does not seal it.
    read(&store, &id, 1).await;
    assert_eq!(verdict(&store).await, (3, 0, Some(4)));
    drop(store);
    let store = open_with(&config, migrating()).await;
    assert_eq!(verdict(&store).await, (3, 0, Some(4)));
    // The head left in place but written back to an earlier one: the entries beyond it count.
    raw.execute("UPDATE pii_access_chain SET length = $1, head = $2 WHERE id = 1", 2, &second).await;
    assert_eq!(verdict(&store).await.2, Some(3));

    // The head removed: reported, and accesses that cannot be logged are refused.
    raw.statement("DELETE FROM pii_access_chain").await;
    let broken = store.verify_access_log().await.unwrap().broken.expect("a removed head is detected");
    assert_eq!(broken.position, 1);
    assert!(broken.reason.contains("missing"), "{broken:?}");
    assert!(store.reveal(&id, &access("callback")).await.is_err());
    raw.close().await;
}
