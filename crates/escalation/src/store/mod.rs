//! The escalation store: one type for both backends. Every write is an operation of `ops`,
//! written once over [`tx::EscTx`] and run in one transaction (SQLite: one job of the
//! group-commit writer; PostgreSQL: a transaction of its own); reads are the same SQL on
//! either pool. The conformance suite runs every test on both.

mod commands;
#[cfg(test)]
mod conformance;
pub(crate) mod ops;
pub(crate) mod special;
pub(crate) mod tx;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use prost::Message;
use redress_platform::db::{Backend, DatabaseConfig, Pool, Sqlite};
use redress_platform::events::{EventSink, Feed};
use redress_platform::host::Supervisor;
use redress_platform::listing::ListSql;
use redress_platform::paging::Cursor;
use redress_platform::time::{Clock, from_timestamp, to_micros};
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::escalation::v1::{
    Alert, Escalation, Incident, IncidentMember, MaliciousFlag, Mention, ResponseTemplate, Statement, Vip, Watchlist,
};
use redress_proto::redress::intake::v1::ComplaintAccepted;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::actions::CaseRequest;
use crate::error::EscalationError;
use crate::rules::Rules;
use tx::EscTx;

pub use ops::{MatchInput, MatchOutcome};
pub use special::{FlagDecision, Registration, WatchlistUpdate};

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Consumer names under which the followed feeds' positions are stored.
pub const INTAKE_CONSUMER: &str = "intake";
pub const CASE_CONSUMER: &str = "case-workflow";

/// A record as loaded, with the version its write must find unchanged.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub record: T,
    pub version: i64,
}

/// What the service knows of a complaint (from intake's and case-workflow's feeds).
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub complaint: String,
    pub org_unit: String,
    /// Intake's ComplaintAccepted, once applied.
    pub accepted: Option<ComplaintAccepted>,
    pub case: Option<String>,
    pub grade: i32,
    pub assignee: String,
    pub department: String,
    pub case_open: bool,
    /// Who complains, as far as the service can tell without personal information: the first
    /// complaint of the chain of repeats intake links by its blind indexes (this complaint
    /// when it repeats none).
    pub complainant_key: String,
    /// The complainant restricted the processing of their personal information (PIPL Art.44):
    /// as intake's latest ComplaintProcessingRestricted says, else as its ComplaintAccepted did.
    pub restricted: bool,
}

/// The columns of [`Known`], as a literal for `concat!`.
macro_rules! known_sql {
    () => {
        "SELECT complaint, org_unit, accepted_record, case_name, grade, assignee, department, case_open, \
         complainant_key, restricted FROM complaints"
    };
}
pub(crate) use known_sql;

#[derive(sqlx::FromRow)]
pub(crate) struct KnownRow {
    complaint: String,
    org_unit: String,
    accepted_record: Option<Vec<u8>>,
    case_name: Option<String>,
    grade: i64,
    assignee: String,
    department: String,
    case_open: i64,
    complainant_key: String,
    restricted: Option<i64>,
}

impl TryFrom<KnownRow> for Known {
    type Error = EscalationError;

    fn try_from(r: KnownRow) -> Result<Self, EscalationError> {
        let accepted = r.accepted_record.map(|a| ComplaintAccepted::decode(a.as_slice())).transpose()?;
        let restricted = match r.restricted {
            Some(restricted) => restricted != 0,
            None => accepted.as_ref().is_some_and(|a| a.personal_data_restricted),
        };
        Ok(Known {
            complaint: r.complaint,
            org_unit: r.org_unit,
            accepted,
            case: r.case_name,
            grade: i32::try_from(r.grade).unwrap_or_default(),
            assignee: r.assignee,
            department: r.department,
            case_open: r.case_open != 0,
            complainant_key: r.complainant_key,
            restricted,
        })
    }
}

/// The columns of [`FingerprintRow`], each prefixed (`"f."` or `""`), as a literal.
macro_rules! fingerprint_columns {
    ($p:literal) => {
        concat!(
            $p,
            "complaint, ",
            $p,
            "institution, ",
            $p,
            "receive_time_us, ",
            $p,
            "cluster, ",
            $p,
            "complainant_key, ",
            $p,
            "tokens, ",
            $p,
            "business_type, ",
            $p,
            "cause, ",
            $p,
            "matched_with, ",
            $p,
            "score, ",
            $p,
            "shared_terms"
        )
    };
}
pub(crate) use fingerprint_columns;

/// A matched complaint as stored: what it is compared by, its cluster and its match.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FingerprintRow {
    pub complaint: String,
    pub institution: String,
    pub receive_time_us: i64,
    pub cluster: String,
    pub complainant_key: String,
    pub tokens: String,
    pub business_type: String,
    pub cause: String,
    pub matched_with: String,
    pub score: f64,
    pub shared_terms: String,
}

impl FingerprintRow {
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }
}

/// Where a case stands, as its feed last said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFacts {
    pub case: String,
    pub org_unit: String,
    pub grade: i32,
    pub assignee: String,
    pub department: String,
    pub open: bool,
}

/// Storage form of an optional timestamp (0 when unset).
pub(crate) fn micros(t: Option<&prost_types::Timestamp>) -> i64 {
    t.and_then(from_timestamp).map(to_micros).unwrap_or_default()
}

/// A page query over records listed newest first by id (ids are UUIDv7, so creation order).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only records of organisation units within this one; `None` for all.
    pub scope: Option<String>,
    /// The kind (incidents, alerts) or state (escalations) asked for; 0 for any.
    pub kind: i64,
    pub state: i64,
    /// Only records not yet acknowledged (alerts).
    pub open_only: bool,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// A pending request to CaseService whose complaint has a case.
#[derive(Debug, Clone)]
pub struct DueAction {
    pub key: String,
    pub complaint: String,
    pub case: String,
    pub org_unit: String,
    pub request: CaseRequest,
    pub attempts: i64,
    /// When it was recorded: what it asks is fixed from then (a retry asks the same).
    pub create_time: DateTime<Utc>,
}

#[derive(Clone)]
enum Db {
    Sqlite(Sqlite),
    Postgres(PgPool),
}

/// The escalation service's store.
#[derive(Clone)]
pub struct EscalationStore {
    db: Db,
    feed: Feed,
    rules: Arc<Rules>,
    clock: Clock,
}

/// A page of incidents, newest first, with only the filters `q` sets (0 for any kind or state).
pub(crate) fn incidents_sql(backend: Backend, q: &ListQuery) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record FROM incidents");
    sql.and_eq("kind", Some(q.kind).filter(|k| *k != 0))
        .and_eq("state", Some(q.state).filter(|s| *s != 0))
        .and_cmp("id", "<", q.after.as_ref().map(|c| c.1.clone()))
        .and_within("org_unit", q.scope.as_deref());
    sql.finish("ORDER BY id DESC", q.limit)
}

/// A page of escalations, newest first, with only the filters set (0 for any state or level).
pub(crate) fn escalations_sql(backend: Backend, q: &ListQuery, level: i64, complaint: Option<&str>) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record FROM escalations");
    sql.and_eq("state", Some(q.state).filter(|s| *s != 0))
        .and_eq("level", Some(level).filter(|l| *l != 0))
        .and_eq("complaint", complaint)
        .and_cmp("id", "<", q.after.as_ref().map(|c| c.1.clone()))
        .and_within("org_unit", q.scope.as_deref());
    sql.finish("ORDER BY id DESC", q.limit)
}

/// A page of alerts, newest first, with only the filters `q` sets.
pub(crate) fn alerts_sql(backend: Backend, q: &ListQuery) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record FROM alerts");
    sql.and_eq("kind", Some(q.kind).filter(|k| *k != 0));
    if q.open_only {
        sql.and("acknowledged = 0");
    }
    sql.and_cmp("id", "<", q.after.as_ref().map(|c| c.1.clone())).and_within("org_unit", q.scope.as_deref());
    sql.finish("ORDER BY id DESC", q.limit)
}

/// A page of `table`'s records within the scope of `q`, newest first, narrowed to one value of
/// a column when it is set.
fn newest_sql(backend: Backend, table: &str, q: &ListQuery, narrow: Option<(&str, Option<&str>)>) -> ListSql {
    let mut sql = ListSql::new(backend, &format!("SELECT record FROM {table}"));
    sql.and_within("org_unit", q.scope.as_deref()).and_cmp("id", "<", q.after.as_ref().map(|c| c.1.clone()));
    if let Some((column, value)) = narrow {
        sql.and_eq(column, value);
    }
    sql.finish("ORDER BY id DESC", q.limit)
}

/// Runs the same statement on whichever pool the store has.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.feed.pool() {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A write of the store: an operation over one transaction.
pub(crate) type Write<T> =
    Box<dyn for<'c> FnOnce(&'c mut dyn EscTx) -> BoxFuture<'c, Result<T, EscalationError>> + Send>;

/// Advisory lock key held by the one replica that sweeps (ASCII "redrsesc").
pub(crate) const SWEEP_LOCK: i64 = 0x7265_6472_7365_7363;
/// Advisory lock key held by the one replica that matches complaints (ASCII "redrsgrp"):
/// clusters grow one complaint at a time.
pub(crate) const MATCH_LOCK: i64 = 0x7265_6472_7367_7270;
/// Advisory lock key held by the one replica that forgets old match candidates (ASCII
/// "redrsret"): two replicas deleting the same rows in different orders would deadlock.
pub(crate) const RETENTION_LOCK: i64 = 0x7265_6472_7372_6574;

impl EscalationStore {
    /// Opens (and migrates) the store the URL names; `supervisor` runs its background work.
    pub async fn open(
        config: &DatabaseConfig,
        rules: Arc<Rules>,
        clock: Clock,
        supervisor: &Supervisor,
    ) -> anyhow::Result<Self> {
        let (db, feed) = match Backend::of(&config.url)? {
            Backend::Sqlite => {
                let db = redress_platform::db::connect_sqlite(config, supervisor).await?;
                redress_platform::db::migrate_sqlite(&db.pool, &SQLITE_MIGRATIONS).await?;
                redress_platform::events::migrate_sqlite(&db.pool).await?;
                let feed = Feed::sqlite(db.pool.clone());
                (Db::Sqlite(db), feed)
            }
            Backend::Postgres => {
                let pool = redress_platform::db::connect_postgres(config).await?;
                redress_platform::db::migrate_postgres(&pool, &POSTGRES_MIGRATIONS).await?;
                redress_platform::events::migrate_postgres(&pool).await?;
                let feed = Feed::postgres(pool.clone(), supervisor);
                (Db::Postgres(pool), feed)
            }
        };
        Ok(Self { db, feed, rules, clock })
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock the store reads the current instant from (clones share its setting).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `write` in one transaction and tells the feed when it committed events.
    pub(crate) async fn write<T: Send + 'static>(&self, write: Write<T>) -> Result<T, EscalationError> {
        let result = match &self.db {
            Db::Sqlite(db) => db.writer.write(move |conn| write(conn)).await,
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let result = write(&mut *tx).await?;
                tx.commit().await?;
                Ok(result)
            }
        };
        if result.is_ok() {
            // Cheap when nothing was appended: a reader wakes and finds nothing new.
            self.feed.notify_committed();
        }
        result
    }

    /// Runs `sweep` only while this replica holds the advisory lock `key` (PostgreSQL: one
    /// replica at a time, released however the sweep ends; SQLite has one process).
    pub async fn exclusively<F, Fut, T>(&self, key: i64, sweep: F) -> anyhow::Result<Option<T>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        match &self.db {
            Db::Sqlite(_) => sweep().await.map(Some),
            Db::Postgres(pool) => {
                let mut lock = pool.begin().await?;
                let held: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(key).fetch_one(&mut *lock).await?;
                if !held {
                    return Ok(None);
                }
                let result = sweep().await;
                lock.rollback().await?;
                result.map(Some)
            }
        }
    }

    /// The stored position of a consumer (0 before its first batch).
    pub async fn position(&self, consumer: &str) -> anyhow::Result<i64> {
        let p: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = $1")
                .bind(consumer)
                .fetch_optional(pool)
                .await?
        });
        Ok(p.unwrap_or(0))
    }

    pub async fn known(&self, complaint: &str) -> anyhow::Result<Option<Known>> {
        let row: Option<KnownRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(known_sql!(), " WHERE complaint = $1")).bind(complaint).fetch_optional(pool).await?
        });
        Ok(row.map(Known::try_from).transpose()?)
    }

    pub async fn known_case(&self, case: &str) -> anyhow::Result<Option<Known>> {
        let row: Option<KnownRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(known_sql!(), " WHERE case_name = $1")).bind(case).fetch_optional(pool).await?
        });
        Ok(row.map(Known::try_from).transpose()?)
    }

    pub async fn incident(&self, id: &str) -> anyhow::Result<Option<Incident>> {
        let row: Option<Vec<u8>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT record FROM incidents WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(|r| Incident::decode(r.as_slice())).transpose()?)
    }

    pub async fn incidents(&self, q: &ListQuery) -> anyhow::Result<Vec<Incident>> {
        let rows = self.records(|backend| incidents_sql(backend, q)).await?;
        rows.iter().map(|r| Ok(Incident::decode(r.as_slice())?)).collect()
    }

    /// Members of an incident in join order, after position `after_seq`, with their positions.
    pub async fn members(
        &self,
        incident: &str,
        after_seq: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<(i64, IncidentMember)>> {
        let rows: Vec<(i64, Vec<u8>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, record FROM incident_members WHERE incident = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(incident)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|(seq, r)| Ok((seq, IncidentMember::decode(r.as_slice())?))).collect()
    }

    /// The incidents a complaint is a member of.
    pub async fn incidents_of(&self, complaint: &str) -> anyhow::Result<Vec<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT incident FROM incident_members WHERE complaint = $1 ORDER BY incident")
                .bind(complaint)
                .fetch_all(pool)
                .await?
        }))
    }

    /// An incident's statements, newest first.
    pub async fn statements(&self, incident: &str) -> anyhow::Result<Vec<Statement>> {
        let rows: Vec<Vec<u8>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT record FROM statements WHERE incident = $1 ORDER BY version DESC")
                .bind(incident)
                .fetch_all(pool)
                .await?
        });
        rows.iter().map(|r| Ok(Statement::decode(r.as_slice())?)).collect()
    }

    pub async fn escalation(&self, id: &str) -> anyhow::Result<Option<Escalation>> {
        let row: Option<Vec<u8>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT record FROM escalations WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(|r| Escalation::decode(r.as_slice())).transpose()?)
    }

    /// Escalations, newest first; `complaint` narrows to one complaint's.
    pub async fn escalations(
        &self,
        q: &ListQuery,
        level: i64,
        complaint: Option<String>,
    ) -> anyhow::Result<Vec<Escalation>> {
        let rows = self.records(|backend| escalations_sql(backend, q, level, complaint.as_deref())).await?;
        rows.iter().map(|r| Ok(Escalation::decode(r.as_slice())?)).collect()
    }

    pub async fn alerts(&self, q: &ListQuery) -> anyhow::Result<Vec<Alert>> {
        let rows = self.records(|backend| alerts_sql(backend, q)).await?;
        rows.iter().map(|r| Ok(Alert::decode(r.as_slice())?)).collect()
    }

    /// Requests to CaseService that are due and whose complaint has a case, oldest first.
    pub async fn due_actions(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<Vec<DueAction>> {
        const DUE: &str = "SELECT a.key, a.complaint, c.case_name, a.org_unit, a.request, a.attempts, a.create_time_us \
            FROM case_actions a JOIN complaints c ON c.complaint = a.complaint \
            WHERE a.state = 0 AND a.next_attempt_us <= $1 AND c.case_name IS NOT NULL \
            ORDER BY a.next_attempt_us, a.key LIMIT $2";
        type Row = (String, String, String, String, String, i64, i64);
        let rows: Vec<Row> =
            on_pool!(self, |pool| { sqlx::query_as(DUE).bind(to_micros(now)).bind(limit).fetch_all(pool).await? });
        rows.into_iter()
            .map(|(key, complaint, case, org_unit, request, attempts, created)| {
                Ok(DueAction {
                    key,
                    complaint,
                    case,
                    org_unit,
                    request: serde_json::from_str(&request)?,
                    attempts,
                    create_time: redress_platform::time::from_micros(created),
                })
            })
            .collect()
    }

    /// Complaints waiting to be matched, in intake's feed order: (complaint, organisation unit).
    pub async fn pending_matches(&self, limit: i64) -> anyhow::Result<Vec<(String, String)>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT complaint, org_unit FROM match_queue ORDER BY enqueue_seq LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The fingerprints of the members of a complaint's cluster (for diagnostics and tests).
    pub async fn cluster_of(&self, complaint: &str) -> anyhow::Result<Option<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT cluster FROM fingerprints WHERE complaint = $1")
                .bind(complaint)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Whether an institution keeps a VIP register (its complaints are then matched against it).
    pub async fn institution_has_vips(&self, institution: &str) -> anyhow::Result<bool> {
        let found: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM vips WHERE institution = $1 LIMIT 1")
                .bind(institution)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// The `record` column of a list statement built for the store's backend.
    async fn records(&self, build: impl Fn(Backend) -> ListSql) -> anyhow::Result<Vec<Vec<u8>>> {
        let rows: Vec<(Vec<u8>,)> = match self.feed.pool() {
            Pool::Sqlite(pool) => build(Backend::Sqlite).query_as().fetch_all(pool).await?,
            Pool::Postgres(pool) => build(Backend::Postgres).query_as().fetch_all(pool).await?,
        };
        Ok(rows.into_iter().map(|(record,)| record).collect())
    }

    pub async fn watchlist(&self, id: &str) -> anyhow::Result<Option<Watchlist>> {
        let row: Option<Vec<u8>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT record FROM watchlists WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(|r| Watchlist::decode(r.as_slice())).transpose()?)
    }

    pub async fn watchlists(&self, q: &ListQuery) -> anyhow::Result<Vec<Watchlist>> {
        let rows = self.records(|backend| newest_sql(backend, "watchlists", q, None)).await?;
        rows.iter().map(|r| Ok(Watchlist::decode(r.as_slice())?)).collect()
    }

    /// Mentions newest first; `incident` narrows to one incident's.
    pub async fn mentions(&self, q: &ListQuery, incident: Option<String>) -> anyhow::Result<Vec<Mention>> {
        let rows =
            self.records(|backend| newest_sql(backend, "mentions", q, Some(("incident", incident.as_deref())))).await?;
        rows.iter().map(|r| Ok(Mention::decode(r.as_slice())?)).collect()
    }

    /// Response templates within `scope` (all stages when `stage` is 0), newest first.
    pub async fn templates(&self, scope: Option<String>, stage: i64) -> anyhow::Result<Vec<ResponseTemplate>> {
        let rows = self
            .records(|backend| {
                let mut sql = ListSql::new(backend, "SELECT record FROM response_templates");
                sql.and_within("org_unit", scope.as_deref()).and_eq("stage", Some(stage).filter(|s| *s != 0));
                sql.finish("ORDER BY id DESC", 1000)
            })
            .await?;
        rows.iter().map(|r| Ok(ResponseTemplate::decode(r.as_slice())?)).collect()
    }

    /// The VIP register within `q.scope` (its unit and those below it), newest first.
    pub async fn vips(&self, q: &ListQuery) -> anyhow::Result<Vec<Vip>> {
        let rows = self
            .records(|backend| {
                let mut sql = ListSql::new(backend, "SELECT record FROM vips");
                sql.and_within("institution", q.scope.as_deref()).and_cmp(
                    "id",
                    "<",
                    q.after.as_ref().map(|c| c.1.clone()),
                );
                sql.finish("ORDER BY id DESC", q.limit)
            })
            .await?;
        rows.iter().map(|r| Ok(Vip::decode(r.as_slice())?)).collect()
    }

    pub async fn flag(&self, id: &str) -> anyhow::Result<Option<MaliciousFlag>> {
        let row: Option<Vec<u8>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT record FROM malicious_flags WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(|r| MaliciousFlag::decode(r.as_slice())).transpose()?)
    }

    /// Flags newest first; `complaint` narrows to one complaint's.
    pub async fn flags(&self, q: &ListQuery, complaint: Option<String>) -> anyhow::Result<Vec<MaliciousFlag>> {
        let rows = self
            .records(|backend| newest_sql(backend, "malicious_flags", q, Some(("complaint", complaint.as_deref()))))
            .await?;
        rows.iter().map(|r| Ok(MaliciousFlag::decode(r.as_slice())?)).collect()
    }

    /// Counts of requests to CaseService by state (0 pending, 1 done, 2 refused), for tests
    /// and diagnostics.
    pub async fn action_counts(&self) -> anyhow::Result<[i64; 3]> {
        let rows: Vec<(i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT state, COUNT(*) FROM case_actions GROUP BY state").fetch_all(pool).await?
        });
        let mut counts = [0; 3];
        for (state, n) in rows {
            if let Some(c) = usize::try_from(state).ok().and_then(|s| counts.get_mut(s)) {
                *c = n;
            }
        }
        Ok(counts)
    }

    /// Ids of escalations and incidents whose timers are due by `now`.
    async fn due(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let at = to_micros(now);
        let escalations: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM escalations WHERE next_check_us IS NOT NULL AND next_check_us <= $1 \
                 ORDER BY next_check_us LIMIT $2",
            )
            .bind(at)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        let incidents: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM incidents WHERE next_check_us IS NOT NULL AND next_check_us <= $1 \
                 ORDER BY next_check_us LIMIT $2",
            )
            .bind(at)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok((escalations, incidents))
    }

    /// What retention removes, each pass: request ids first used before `requests_before`,
    /// then the bands of complaints that are no longer anyone's candidates (one replica at a
    /// time, a turn under the lock at a time, until none is left or `stop`). Returns how many
    /// request ids went (the bands are counted in `redress_escalation_candidates_forgotten_total`).
    pub async fn prune(&self, requests_before: DateTime<Utc>, stop: &CancellationToken) -> anyhow::Result<u64> {
        // Request ids first: forgetting bands after an upgrade can take hours.
        let pruned = self.prune_requests(requests_before).await;
        for turn in 0.. {
            if turn > 0 {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(commands::FORGET_PAUSE) => {}
                }
            }
            let forgot = self.exclusively(RETENTION_LOCK, || async { Ok(self.forget_candidates(stop).await?) }).await;
            match forgot {
                Ok(Some((n, done))) => {
                    metrics::counter!("redress_escalation_candidates_forgotten_total").increment(n);
                    if done || stop.is_cancelled() {
                        break;
                    }
                }
                // Another replica is forgetting them.
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "forgetting old match candidates failed; retrying later");
                    break;
                }
            }
        }
        pruned
    }

    /// Forgets request ids first used before `before` (retention); returns how many.
    pub async fn prune_requests(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        const PRUNE: &str = "DELETE FROM requests WHERE request_id IN \
            (SELECT request_id FROM requests WHERE record_time_us < $1 LIMIT 5000)";
        self.feed.pool().delete_in_batches(PRUNE, to_micros(before)).await
    }
}

/// One followed feed as a consumer sink: the same store, under the consumer's name.
pub struct FeedSink {
    pub store: Arc<EscalationStore>,
    pub consumer: &'static str,
}

#[async_trait::async_trait]
impl EventSink for FeedSink {
    async fn position(&self) -> anyhow::Result<i64> {
        self.store.position(self.consumer).await
    }

    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64> {
        Ok(self.store.apply(self.consumer, events).await?)
    }
}
