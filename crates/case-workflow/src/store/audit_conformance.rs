//! The keyed audit trail on both case stores, through the `VerifyAuditChain` RPC: a row edited
//! in the database is found, so is a trail rebuilt by someone without the key (also after a
//! restart, which must not seal it), and trails written before keying verify after the upgrade.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use redress_platform::db::{DatabaseConfig, Pool};
use redress_platform::ready::Ready;
use redress_platform::time::{now, to_timestamp};
use redress_proto::redress::case::v1::case_service_server::CaseService;
use redress_proto::redress::case::v1::{Case, VerifyAuditChainRequest, VerifyAuditChainResponse};
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
        "DELETE FROM _sqlx_migrations WHERE version >= 10",
    ] {
        execute(&store, sql, &[]).await;
    }
    drop(store);

    // The upgraded service opens the old database, with a key and a retired one configured.
    let mut rules = rules();
    rules.audit =
        Arc::new(AuditKeys::new("k2", &[("k1".to_owned(), vec![7; 32]), ("k2".to_owned(), vec![9; 32])]).unwrap());
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
    assert!(again.already_keyed && again.rechained == 0, "{again:?}");
    assert!(verify_rpc(&store, &ids[0]).await.intact);
    // Without the key the trails were chained under, they do not verify.
    drop(store);
    let store = open(&config).await;
    let unknown = verify_rpc(&store, &ids[0]).await;
    assert_eq!(unknown.reason, "is chained under audit key k2, which is not configured");
}
