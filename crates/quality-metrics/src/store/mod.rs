//! Quality-metrics' store: one trait, SQLite and PostgreSQL implementations, one conformance
//! suite. The read models are written only by the consumers of the followed feeds, one batch
//! per transaction together with the consumer's position; everything else here (targets,
//! denominators) is the service's own record.

mod improvement;
mod ops;
mod postgres;
mod queries;
mod sqlite;
mod tx;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::{EventSink, Feed};
use redress_platform::paging::Cursor;
use redress_platform::principal::Principal;
use redress_proto::redress::common::v1::{Event, ListDeadLettersRequest, ListDeadLettersResponse};
use redress_proto::redress::metrics::v1::{ImprovementAction, ReadModelStatus, RootCause};

use crate::domain::fact::Calendars;
use crate::domain::period::Days;
use crate::domain::rollup::{Cell, CellQuery};
use crate::error::MetricsError;

pub use improvement::{ActionUpdate, Improvement, etag};
pub use postgres::PostgresMetricsStore;
pub use sqlite::SqliteMetricsStore;

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The consumer of intake's feed.
pub const INTAKE_CONSUMER: &str = "intake";
/// The consumer of case-workflow's feed.
pub const CASE_CONSUMER: &str = "case-workflow";
/// The consumer of escalation's feed (incidents).
pub const ESCALATION_CONSUMER: &str = "escalation";
/// Every feed the read models are built from.
pub const CONSUMERS: &[&str] = &[INTAKE_CONSUMER, CASE_CONSUMER, ESCALATION_CONSUMER];

/// An institution's own target for one KPI.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredTarget {
    pub kpi: i32,
    pub comparator: i32,
    pub threshold: f64,
    pub update_time_us: i64,
    pub updated_by: String,
}

/// A unit's denominators for one month (its first day).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredDenominators {
    pub org_unit: String,
    pub month: i32,
    pub customers: i64,
    pub branches: i64,
    pub premium_minor: i64,
    pub update_time_us: i64,
    pub updated_by: String,
}

/// A request id with the fingerprint of the caller and request that first used it.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub id: String,
    pub fingerprint: String,
}

/// A write of the service's own records.
#[derive(Debug, Clone)]
pub enum Write {
    /// Sets (`Some`) or clears (`None`) an institution's targets, by KPI.
    Targets {
        institution: String,
        targets: Vec<(i32, Option<(i32, f64)>)>,
        by: String,
    },
    Denominators(StoredDenominators),
}

#[async_trait]
pub trait MetricsStore: Send + Sync + 'static {
    /// A consumer's stored position and the read models' epoch (bumped by each rebuild).
    async fn position(&self, consumer: &str) -> anyhow::Result<(i64, i64)>;
    /// Applies a batch of `consumer`'s feed in one transaction with its new position; refused
    /// (nothing written) when the read models were rebuilt since `epoch`.
    async fn apply(&self, consumer: &str, epoch: i64, events: Vec<Event>) -> anyhow::Result<i64>;
    /// Applies a dead letter again and marks it replayed, at most once.
    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, MetricsError>;
    async fn list_dead_letters(
        &self,
        principal: &Principal,
        request: &ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, MetricsError> {
        Ok(redress_platform::dead_letters::list(self.feed().pool(), principal, request).await?)
    }
    /// The rollup cells a query reads.
    async fn cells(&self, query: &CellQuery) -> anyhow::Result<Vec<Cell>>;
    /// An institution's own targets.
    async fn targets(&self, institution: &str) -> anyhow::Result<Vec<StoredTarget>>;
    /// A unit's denominators for the months from `months.first` to `months.last` (first days).
    async fn denominators(&self, org_unit: &str, months: Days) -> anyhow::Result<Vec<StoredDenominators>>;
    /// Writes the service's own records; a retried request id writes nothing again and returns
    /// `true` (`false` when written now). A request id reused for another request is refused.
    async fn write(&self, request: Option<RequestKey>, write: Write) -> Result<bool, MetricsError>;
    /// Where the consumers stand and how large the read models are.
    async fn status(&self) -> anyhow::Result<ReadModelStatus>;
    /// Drops the read models and the consumers' positions and dead letters, and bumps the
    /// epoch, in one transaction: the consumers then replay their feeds from the start.
    async fn rebuild(&self) -> anyhow::Result<()>;
    /// Forgets request ids first used before `before` (retention); returns how many.
    async fn prune_requests(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let cutoff = redress_platform::time::to_micros(before);
        self.feed().pool().delete_in_batches(PRUNE_REQUESTS, cutoff).await
    }
    /// Applies a change to the root causes or improvement actions with its event; returns the
    /// record it leaves (encoded), `None` for a reminder no longer owed. A retried request id
    /// returns the first result; one reused for another request is refused.
    async fn improve(&self, request: Option<RequestKey>, change: Improvement) -> Result<Option<Vec<u8>>, MetricsError>;
    async fn root_cause(&self, id: &str) -> anyhow::Result<Option<RootCause>> {
        queries::root_cause(self.feed().pool(), id).await
    }
    /// Root causes of units within `scope` (all for `None`), newest first, after `after`.
    async fn root_causes(
        &self,
        scope: Option<String>,
        after: Option<Cursor>,
        limit: i64,
    ) -> anyhow::Result<Vec<(RootCause, Cursor)>> {
        queries::root_causes(self.feed().pool(), scope, after, limit).await
    }
    /// An action with its version.
    async fn action(&self, id: &str) -> anyhow::Result<Option<(i64, ImprovementAction)>> {
        queries::action(self.feed().pool(), id).await
    }
    /// Actions of units within `scope`, of one status or all, by due date, after `after`.
    async fn actions(
        &self,
        scope: Option<String>,
        status: Option<i32>,
        after: Option<Cursor>,
        limit: i64,
    ) -> anyhow::Result<Vec<(ImprovementAction, Cursor)>> {
        queries::actions(self.feed().pool(), scope, status, after, limit).await
    }
    /// Actions whose next reminder may be due by `now`.
    async fn actions_to_remind(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<Vec<String>> {
        queries::actions_to_remind(self.feed().pool(), redress_platform::time::to_micros(now), limit).await
    }
    /// The institutions the read models hold complaints of.
    async fn institutions(&self) -> anyhow::Result<Vec<String>> {
        queries::institutions(self.feed().pool()).await
    }
    fn calendars(&self) -> &Arc<dyn Calendars>;
    fn feed(&self) -> &Feed;
}

/// Forgets up to 5,000 request ids older than `$1` (both backends).
const PRUNE_REQUESTS: &str = "DELETE FROM metrics_requests WHERE request_id IN \
    (SELECT request_id FROM metrics_requests WHERE record_time_us < $1 LIMIT 5000)";

/// Cells of one unit and dimension; `queries::cells` adds the value (when one is asked for:
/// a condition of its own, so that `cells_by_value` serves it), the month cells' range and the
/// day cells' ranges.
const CELLS: &str = "SELECT value, grain, day, measures FROM cells WHERE unit = $1 AND dimension = $2";

const STATUS_POSITIONS: &str = "SELECT c.consumer, c.position, \
    (SELECT COUNT(*) FROM dead_letters d WHERE d.consumer = c.consumer AND d.replay_time_us IS NULL) \
    FROM consumer_positions c ORDER BY c.consumer";

/// The feed-following side of the store for one consumer: remembers the epoch it resumed in,
/// so that a rebuild (which bumps it) makes the consumer resubscribe from the start.
pub struct FeedSink {
    store: Arc<dyn MetricsStore>,
    consumer: &'static str,
    epoch: AtomicI64,
}

impl FeedSink {
    pub fn new(store: Arc<dyn MetricsStore>, consumer: &'static str) -> Self {
        Self { store, consumer, epoch: AtomicI64::new(-1) }
    }
}

#[async_trait]
impl EventSink for FeedSink {
    async fn position(&self) -> anyhow::Result<i64> {
        let (position, epoch) = self.store.position(self.consumer).await?;
        self.epoch.store(epoch, Ordering::SeqCst);
        Ok(position)
    }

    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64> {
        self.store.apply(self.consumer, self.epoch.load(Ordering::SeqCst), events).await
    }
}

/// Says so when opening the store dropped read models built in an older layout.
fn log_layout_upgrade(replay: bool) {
    if replay {
        tracing::info!(
            layout = ops::LAYOUT,
            "the read models were built in an older layout; dropped, the consumers replay the feeds from the start"
        );
    }
}

/// The error that makes a consumer resubscribe after a rebuild.
#[derive(Debug, thiserror::Error)]
#[error("the read models were rebuilt; resuming the feed from its start")]
pub struct Rebuilt;

#[cfg(test)]
mod conformance;
#[cfg(test)]
pub(crate) use conformance::{calendars as conformance_calendars, scenario as conformance_scenario};
