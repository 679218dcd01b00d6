//! The keyed audit trail on both case stores, through the `VerifyAuditChain` RPC: a row edited
//! in the database is found, so is a trail rebuilt by someone without the key (also after a
//! restart, which must not seal it, even with every trail rewritten and the record of keying
//! removed), and so is a trail cut short with an earlier head written back; trails written
//! before keying verify after the upgrade only when the operator asks for it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use redress_platform::db::{DatabaseConfig, Pool};
use redress_platform::ready::Ready;
use redress_platform::time::{now, to_timestamp};
use redress_proto::redress::case::v1::case_service_server::CaseService;
use redress_proto::redress::case::v1::{
    Case, ListAuditEntriesRequest, PauseReason, VerifyAuditChainRequest, VerifyAuditChainResponse,
};
use redress_proto::redress::common::v1::{Channel, Event};
use redress_proto::redress::intake::v1::ComplaintAccepted;
use tokio_util::sync::CancellationToken;

use super::{CaseQuery, CaseStore, Update};
use crate::domain::audit::{self, AuditKeys, AuditRecord};
use crate::domain::tests::{handler, rules, supervisor};
use crate::domain::workflow::{Command, Rules};

/// The tests open (and reopen) their stores themselves.
async fn config_of(config: &DatabaseConfig) -> DatabaseConfig {
    config.clone()
}

redress_platform::conformance_suite!(
    open = config_of;
    an_edited_audit_row_does_not_verify,
    a_trail_rebuilt_without_the_key_does_not_verify_even_after_a_restart,
    trails_written_before_keying_verify_after_the_upgrade,
    trails_rewritten_unkeyed_with_the_keying_record_removed_are_not_sealed_on_restart,
    a_trail_cut_short_with_an_earlier_head_written_back_does_not_verify,
);

async fn open_with(config: &DatabaseConfig, rules: Rules) -> Arc<dyn CaseStore> {
    crate::open_store(config, Arc::new(rules), &redress_platform::host::Supervisor::detached())
        .await
        .expect("store opens")
}

async fn open(config: &DatabaseConfig) -> Arc<dyn CaseStore> {
    open_with(config, rules()).await
}

fn accepted(position: i64, n: u32) -> Event {
    let payload = ComplaintAccepted {
        complaint: format!("complaints/{n:08}"),
        complaint_number: format!("20261125{n:08}"),
        channel: 3,
        org_unit: "institutions/demo".to_owned(),
        grade: 1,
        receive_time: Some(to_timestamp(now())),
        ..Default::default()
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        org_unit: "institutions/demo".to_owned(),
        ..Default::default()
    }
}

fn id_of(case: &Case) -> String {
    case.name.strip_prefix("cases/").unwrap().to_owned()
}

/// Opens a case for complaint `n` and works it a little, so its trail has several entries.
async fn worked_case(store: &Arc<dyn CaseStore>, n: u32) -> String {
    store.apply(vec![accepted(i64::from(n), n)]).await.unwrap();
    let complaint = format!("complaints/{n:08}");
    let query = CaseQuery { complaint: Some(complaint), limit: 1, ..Default::default() };
    let id = id_of(&store.list(&query).await.unwrap().remove(0).case);
    let commands = [
        Command::Assign {
            assignee: "u-handler".to_owned(),
            department: "cards".to_owned(),
            assignee_staff_id: "E1001".to_owned(),
        },
        Command::FirstResponse { note: "called the complainant".to_owned(), channel: Channel::Phone },
    ];
    for command in commands {
        let update = Update {
            id: id.clone(),
            other: None,
            expected_version: None,
            request: None,
            principal: Arc::new(handler()),
            command,
        };
        store.update(update).await.unwrap();
    }
    assert!(store.audit_trail(&id).await.unwrap().unwrap().entries.len() >= 3);
    id
}

/// `VerifyAuditChain` as a supervisor of the case's unit calls it.
async fn verify_rpc(store: &Arc<dyn CaseStore>, id: &str) -> VerifyAuditChainResponse {
    let api = crate::CaseApi::new(Ready::from(store.clone()), CancellationToken::new());
    let mut request = tonic::Request::new(VerifyAuditChainRequest { case: format!("cases/{id}") });
    request.extensions_mut().insert(Arc::new(supervisor()));
    api.verify_audit_chain(request).await.unwrap().into_inner()
}

/// `ListAuditEntries` as a supervisor of the case's unit calls it: each entry's key id.
async fn listed_key_ids(store: &Arc<dyn CaseStore>, id: &str) -> Vec<String> {
    let api = crate::CaseApi::new(Ready::from(store.clone()), CancellationToken::new());
    let mut request =
        tonic::Request::new(ListAuditEntriesRequest { case: format!("cases/{id}"), ..Default::default() });
    request.extensions_mut().insert(Arc::new(supervisor()));
    let listed = api.list_audit_entries(request).await.unwrap().into_inner();
    listed.audit_entries.into_iter().map(|e| e.key_id).collect()
}

/// Runs one statement with text and integer parameters on either backend.
async fn execute(store: &Arc<dyn CaseStore>, sql: &'static str, params: &[Param<'_>]) {
    macro_rules! run {
        ($pool:expr) => {{
            let mut query = sqlx::query(sql);
            for p in params {
                query = match p {
                    Param::Text(t) => query.bind(t.to_string()),
                    Param::Int(i) => query.bind(*i),
                };
            }
            query.execute($pool).await.unwrap();
        }};
    }
    match store.feed().pool() {
        Pool::Sqlite(pool) => run!(pool),
        Pool::Postgres(pool) => run!(pool),
    }
}

enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// Writes `entries` over a case's stored trail, and their last hash as its head: what someone
/// who can write the database does to make a trail say something else.
async fn overwrite_trail(store: &Arc<dyn CaseStore>, id: &str, entries: &[AuditRecord]) {
    for e in entries {
        let details = serde_json::to_string(&e.details).unwrap();
        execute(
            store,
            "UPDATE audit_entries SET actor = $3, details = $4, previous_hash = $5, hash = $6, key_id = $7 \
             WHERE case_id = $1 AND sequence = $2",
            &[
                Param::Text(id),
                Param::Int(e.sequence),
                Param::Text(&e.actor),
                Param::Text(&details),
                Param::Text(&e.previous_hash),
                Param::Text(&e.hash),
                Param::Text(&e.key_id),
            ],
        )
        .await;
    }
    let head = entries.last().map(|e| e.hash.as_str()).unwrap_or_default();
    execute(store, "UPDATE cases SET audit_head = $2 WHERE id = $1", &[Param::Text(id), Param::Text(head)]).await;
}

/// The trail with the second entry's actor changed.
async fn forged_trail(store: &Arc<dyn CaseStore>, id: &str) -> Vec<AuditRecord> {
    let mut entries = store.audit_trail(id).await.unwrap().unwrap().entries;
    entries[1].actor = "user:someone-else".to_owned();
    entries
}

async fn an_edited_audit_row_does_not_verify(config: DatabaseConfig) {
    let store = open(&config).await;
    let id = worked_case(&store, 1).await;
    let untouched = worked_case(&store, 2).await;
    let intact = verify_rpc(&store, &id).await;
    assert!(intact.intact, "{intact:?}");
    assert!(intact.entries >= 3);
    let key_ids = listed_key_ids(&store, &id).await;
    assert_eq!(key_ids.len() as i64, intact.entries);
    assert!(key_ids.iter().all(|k| k == "k1"), "{key_ids:?}");

    execute(
        &store,
        "UPDATE audit_entries SET actor = 'user:someone-else' WHERE case_id = $1 AND sequence = 2",
        &[Param::Text(&id)],
    )
    .await;
    let broken = verify_rpc(&store, &id).await;
    assert!(!broken.intact);
    assert_eq!(broken.first_broken_sequence, 2);
    assert_eq!(broken.reason, "content no longer matches its hash");
    assert!(verify_rpc(&store, &untouched).await.intact, "another case is not affected");
}

async fn a_trail_rebuilt_without_the_key_does_not_verify_even_after_a_restart(config: DatabaseConfig) {
    let store = open(&config).await;
    let plain = worked_case(&store, 1).await;
    let guessed = worked_case(&store, 2).await;

    // Rebuilt the way trails were chained before keying: plain SHA-256, no key id.
    let entries = forged_trail(&store, &plain).await;
    overwrite_trail(&store, &plain, &audit::unkeyed_chain(&plain, &entries)).await;
    let broken = verify_rpc(&store, &plain).await;
    assert_eq!((broken.intact, broken.first_broken_sequence), (false, 1));
    assert_eq!(broken.reason, "is not chained under an audit key");

    // Rebuilt under a key of the forger's own, named as the real one.
    let forger = AuditKeys::new("k1", &[("k1".to_owned(), vec![8; 32])]).unwrap();
    let entries = forged_trail(&store, &guessed).await;
    overwrite_trail(&store, &guessed, &audit::chain_under(&forger, &guessed, &entries)).await;
    let broken = verify_rpc(&store, &guessed).await;
    assert_eq!((broken.intact, broken.first_broken_sequence), (false, 1));
    assert_eq!(broken.reason, "content no longer matches its hash");

    // Starting again chains nothing: the rebuilt trails are not sealed under the key.
    drop(store);
    let store = open(&config).await;
    assert_eq!(store.key_unkeyed_trails().await.unwrap().rechained, 0);
    assert_eq!(verify_rpc(&store, &plain).await.first_broken_sequence, 1);
    assert_eq!(verify_rpc(&store, &guessed).await.first_broken_sequence, 1);

    // Nor when the record of keying is removed as well: keyed entries remain elsewhere.
    execute(&store, "DELETE FROM audit_keying", &[]).await;
    drop(store);
    let store = open(&config).await;
    assert_eq!(verify_rpc(&store, &plain).await.reason, "is not chained under an audit key");
    let keyed = worked_case(&store, 3).await;
    assert!(verify_rpc(&store, &keyed).await.intact);
}

async fn trails_written_before_keying_verify_after_the_upgrade(config: DatabaseConfig) {
    let store = open(&config).await;
    let ids = [worked_case(&store, 1).await, worked_case(&store, 2).await, worked_case(&store, 3).await];
    // Make the database what one written before keying is: entries chained with plain SHA-256,
    // and the schema and migrations of then.
    for id in &ids {
        let entries = store.audit_trail(id).await.unwrap().unwrap().entries;
        overwrite_trail(&store, id, &audit::unkeyed_chain(id, &entries)).await;
    }
    // One trail was already altered before the upgrade: it must not be sealed.
    execute(
        &store,
        "UPDATE audit_entries SET actor = 'user:someone-else' WHERE case_id = $1 AND sequence = 2",
        &[Param::Text(&ids[2])],
    )
    .await;
    for sql in [
        "DROP TABLE audit_keying",
        "ALTER TABLE audit_entries DROP COLUMN key_id",
        "ALTER TABLE cases DROP COLUMN audit_seal",
        "DROP INDEX cases_by_org_unit_time",
        "CREATE INDEX cases_by_org_unit ON cases (org_unit)",
        "DELETE FROM _sqlx_migrations WHERE version >= 10",
    ] {
        execute(&store, sql, &[]).await;
    }
    drop(store);

    // The upgraded service opens the old database, with a key and a retired one configured:
    // unless the operator asks for it, nothing is chained again, and nothing verifies.
    let keys = AuditKeys::new("k2", &[("k1".to_owned(), vec![7; 32]), ("k2".to_owned(), vec![9; 32])]).unwrap();
    let mut rules = rules();
    rules.audit = Arc::new(keys.clone());
    let store = open_with(&config, rules.clone()).await;
    for id in &ids[..2] {
        let unkeyed = verify_rpc(&store, id).await;
        assert_eq!((unkeyed.intact, unkeyed.reason.as_str()), (false, "is not chained under an audit key"));
        assert_eq!(listed_key_ids(&store, id).await[0], "");
    }
    drop(store);
    // It asks for it (audit.rechain_legacy).
    rules.audit = Arc::new(keys.rechaining_legacy(true));
    let store = open_with(&config, rules.clone()).await;
    for id in &ids[..2] {
        let verified = verify_rpc(&store, id).await;
        assert!(verified.intact, "{verified:?}");
        let trail = store.audit_trail(id).await.unwrap().unwrap();
        assert!(trail.entries.iter().all(|e| e.key_id == "k2"), "{trail:?}");
        assert_eq!(trail.entries[0].action, "case.opened");
    }
    let altered = verify_rpc(&store, &ids[2]).await;
    assert_eq!((altered.intact, altered.first_broken_sequence), (false, 2));
    // Keyed once: a second start finds it done.
    drop(store);
    let store = open_with(&config, rules).await;
    let again = store.key_unkeyed_trails().await.unwrap();
    assert!(again.already_keyed && again.rechained == 0 && again.sealed == 0, "{again:?}");
    assert_eq!(again.broken, [ids[2].clone()]);
    assert!(verify_rpc(&store, &ids[0]).await.intact);
    // Without the key the trails were chained under, they do not verify.
    drop(store);
    let store = open(&config).await;
    let unknown = verify_rpc(&store, &ids[0]).await;
    assert_eq!(unknown.reason, "is chained under audit key k2, which is not configured");
}

async fn trails_rewritten_unkeyed_with_the_keying_record_removed_are_not_sealed_on_restart(config: DatabaseConfig) {
    let store = open(&config).await;
    let ids = [worked_case(&store, 1).await, worked_case(&store, 2).await];
    // Every trail rewritten as plain SHA-256 (one of them forged), so that no keyed entry is
    // left, and the record of keying removed: the database looks as if never keyed.
    for (n, id) in ids.iter().enumerate() {
        let entries =
            if n == 0 { forged_trail(&store, id).await } else { store.audit_trail(id).await.unwrap().unwrap().entries };
        overwrite_trail(&store, id, &audit::unkeyed_chain(id, &entries)).await;
    }
    execute(&store, "DELETE FROM audit_keying", &[]).await;
    drop(store);

    // Restarted without audit.rechain_legacy: nothing is chained again or sealed.
    let store = open(&config).await;
    for id in &ids {
        let broken = verify_rpc(&store, id).await;
        assert_eq!((broken.intact, broken.first_broken_sequence), (false, 1), "{broken:?}");
        assert_eq!(broken.reason, "is not chained under an audit key");
        assert!(listed_key_ids(&store, id).await.iter().all(String::is_empty));
    }
    // Changing a case afterwards does not make its trail verify either.
    pause(&store, &ids[0]).await;
    assert_eq!(verify_rpc(&store, &ids[0]).await.first_broken_sequence, 1);
}

/// The handler pauses the case: one more audit entry.
async fn pause(store: &Arc<dyn CaseStore>, id: &str) {
    let command = Command::Pause { reason: PauseReason::WaitingForMaterials, note: "statement".to_owned() };
    let principal = Arc::new(handler());
    let update = Update { id: id.to_owned(), other: None, expected_version: None, request: None, principal, command };
    store.update(update).await.unwrap();
}

/// Removes a case's newest audit entry and writes back the length and head of the entries
/// before it, as someone who can write the database would to hide the last thing done.
async fn cut_last_entry(store: &Arc<dyn CaseStore>, id: &str) -> i64 {
    let trail = store.audit_trail(id).await.unwrap().unwrap();
    let length = trail.length - 1;
    let head = trail.entries[length as usize - 1].hash.clone();
    execute(
        store,
        "DELETE FROM audit_entries WHERE case_id = $1 AND sequence = $2",
        &[Param::Text(id), Param::Int(trail.length)],
    )
    .await;
    execute(
        store,
        "UPDATE cases SET audit_length = $2, audit_head = $3 WHERE id = $1",
        &[Param::Text(id), Param::Int(length), Param::Text(&head)],
    )
    .await;
    length
}

async fn a_trail_cut_short_with_an_earlier_head_written_back_does_not_verify(config: DatabaseConfig) {
    let store = open(&config).await;
    let cut = worked_case(&store, 1).await;
    let unsealed = worked_case(&store, 2).await;
    let untouched = worked_case(&store, 3).await;

    let length = cut_last_entry(&store, &cut).await;
    let broken = verify_rpc(&store, &cut).await;
    assert_eq!((broken.intact, broken.first_broken_sequence, broken.entries), (false, length + 1, length));
    assert!(broken.reason.contains("does not match its seal"), "{broken:?}");

    // The seal removed as well.
    let length = cut_last_entry(&store, &unsealed).await;
    execute(&store, "UPDATE cases SET audit_seal = '' WHERE id = $1", &[Param::Text(&unsealed)]).await;
    let broken = verify_rpc(&store, &unsealed).await;
    assert_eq!((broken.intact, broken.first_broken_sequence), (false, length + 1));
    assert!(broken.reason.contains("is not sealed"), "{broken:?}");

    // Working the cases on, or starting again, does not seal the cut heads.
    for id in [&cut, &unsealed] {
        pause(&store, id).await;
        assert!(!verify_rpc(&store, id).await.intact);
    }
    drop(store);
    let store = open(&config).await;
    assert!(!verify_rpc(&store, &cut).await.intact);
    assert!(!verify_rpc(&store, &unsealed).await.intact);
    assert!(verify_rpc(&store, &untouched).await.intact, "another case is not affected");
    // Nor does a start with the migration setting: it seals only heads that never had a seal.
    drop(store);
    let mut rules = rules();
    rules.audit = Arc::new(crate::domain::tests::audit_keys().rechaining_legacy(true));
    let store = open_with(&config, rules).await;
    assert!(!verify_rpc(&store, &cut).await.intact);
    assert!(verify_rpc(&store, &untouched).await.intact);
}
