//! Events between contexts: a transactional outbox in the publisher's store, exposed as an
//! ordered, resumable feed, and a consumer loop that stores its position with its effects.
//!
//! Positions are commit order. On SQLite every write holds the database's single write lock,
//! so the outbox row id assigned inside the transaction is already commit order. On PostgreSQL
//! ids come from a sequence and are not commit order, so rows are inserted without a position
//! and a sequencer assigns positions to committed rows afterwards, one sequencer at a time
//! (transaction-level advisory lock). A reader that has seen position `p` can therefore never
//! later find a new event at or below `p`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use redress_proto::redress::common::v1::Event;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ServiceError;
use crate::db::Pool;
use crate::host::Supervisor;
use crate::principal::Principal;
use crate::time::{from_micros, now, to_micros, to_timestamp};

/// How often readers and the sequencer look for rows committed by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Events read from the store per query.
const READ_BATCH: i64 = 500;

/// The events after position `$1`, `$2` at most, in feed order: a range of the unique index on
/// `position` (`$n` placeholders are understood by both SQLite and PostgreSQL).
pub(crate) const FEED_READ: &str = "SELECT position, event_id, event_type, aggregate, org_unit, occur_time_us, \
    payload, traceparent, tracestate FROM outbox WHERE position > $1 ORDER BY position LIMIT $2";

/// An event to append to the outbox in the same transaction as its state change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate: String,
    /// The organisation unit the aggregate belongs to: feeds show the event only to callers
    /// covering it.
    pub org_unit: String,
    pub occur_time: DateTime<Utc>,
    pub payload: Vec<u8>,
    pub traceparent: String,
    pub tracestate: String,
}

/// The start of a multi-row insert into an outbox; the rows follow (`push_events!`).
const OUTBOX_INSERT: &str =
    "INSERT INTO outbox (event_id, event_type, aggregate, org_unit, occur_time_us, payload, traceparent, tracestate) ";

/// Adds events as the rows of an [`OUTBOX_INSERT`] query builder of either backend, in order.
macro_rules! push_events {
    ($query:expr, $events:expr) => {
        $query.push_values($events, |mut row, e| {
            row.push_bind(e.event_id.to_string())
                .push_bind(e.event_type.as_str())
                .push_bind(e.aggregate.as_str())
                .push_bind(e.org_unit.as_str())
                .push_bind(to_micros(e.occur_time))
                .push_bind(e.payload.as_slice())
                .push_bind(e.traceparent.as_str())
                .push_bind(e.tracestate.as_str());
        })
    };
}

impl NewEvent {
    /// An event about `aggregate` (owned by `org_unit`) carrying `payload`, in the current
    /// span's trace.
    pub fn new<M: prost::Name>(aggregate: impl Into<String>, org_unit: impl Into<String>, payload: &M) -> Self {
        Self::in_trace(aggregate, org_unit, payload, crate::telemetry::TraceContext::current())
    }

    /// An event about `aggregate` carrying `payload`, in the given trace (for events built away
    /// from the request's span, such as in a batch writer).
    pub fn in_trace<M: prost::Name>(
        aggregate: impl Into<String>,
        org_unit: impl Into<String>,
        payload: &M,
        trace: crate::telemetry::TraceContext,
    ) -> Self {
        let crate::telemetry::TraceContext { traceparent, tracestate } = trace;
        Self {
            event_id: Uuid::now_v7(),
            event_type: M::full_name(),
            aggregate: aggregate.into(),
            org_unit: org_unit.into(),
            occur_time: now(),
            payload: payload.encode_to_vec(),
            traceparent,
            tracestate,
        }
    }

    pub async fn append_sqlite(&self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Self::append_all_sqlite(std::slice::from_ref(self), conn).await
    }

    /// Appends many events with one statement, in slice order.
    pub async fn append_all_sqlite(events: &[NewEvent], conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        // 8 bound values a row keeps each statement far below SQLite's variable limit.
        for chunk in events.chunks(1000) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(OUTBOX_INSERT);
            push_events!(query, chunk);
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Append as the last statement of the transaction, after any row locks on the aggregate,
    /// so that events of one aggregate get ids in their commit order.
    pub async fn append_postgres(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, aggregate, org_unit, occur_time_us, payload, traceparent, \
             tracestate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.event_id.to_string())
        .bind(&self.event_type)
        .bind(&self.aggregate)
        .bind(&self.org_unit)
        .bind(to_micros(self.occur_time))
        .bind(&self.payload)
        .bind(&self.traceparent)
        .bind(&self.tracestate)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    }
}

/// A store transaction that events can be appended to, on either backend.
#[async_trait::async_trait]
pub trait Outbox: Send {
    /// Appends `events` in slice order, in the same transaction as the state they announce.
    /// On PostgreSQL call it after the row locks on the aggregates, so that events of one
    /// aggregate get ids in their commit order.
    async fn append_events(&mut self, events: &[NewEvent]) -> Result<(), sqlx::Error>;
}

#[async_trait::async_trait]
impl Outbox for SqliteConnection {
    async fn append_events(&mut self, events: &[NewEvent]) -> Result<(), sqlx::Error> {
        NewEvent::append_all_sqlite(events, self).await
    }
}

#[async_trait::async_trait]
impl Outbox for PgConnection {
    async fn append_events(&mut self, events: &[NewEvent]) -> Result<(), sqlx::Error> {
        match events {
            [] => Ok(()),
            [event] => event.append_postgres(self).await,
            // Many with one statement a thousand (8 values a row, far below 65,535), in slice order.
            _ => {
                for chunk in events.chunks(1000) {
                    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(OUTBOX_INSERT);
                    push_events!(query, chunk);
                    query.build().execute(&mut *self).await?;
                }
                Ok(())
            }
        }
    }
}

/// The event tables every service's store has (outbox, consumer positions, dead letters,
/// retention), migrated with a history of their own (`_redress_platform_migrations`) after the
/// service's own migrations.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
const MIGRATIONS_TABLE: &str = "_redress_platform_migrations";

/// Creates or updates the event tables of a SQLite store.
pub async fn migrate_sqlite(pool: &SqlitePool) -> anyhow::Result<()> {
    let mut migrator = sqlx::migrate::Migrator::with_migrations(SQLITE_MIGRATIONS.migrations.to_vec());
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(pool).await.context("event table migrations failed (sqlite)")
}

/// Creates or updates the event tables of a PostgreSQL store.
pub async fn migrate_postgres(pool: &PgPool) -> anyhow::Result<()> {
    let mut migrator = sqlx::migrate::Migrator::with_migrations(POSTGRES_MIGRATIONS.migrations.to_vec());
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(pool).await.context("event table migrations failed (postgres)")
}

/// Who may read which events of a feed: every event (service principals, callers of the whole
/// platform), or only those of the organisation units a caller covers.
#[derive(Clone)]
pub enum FeedScope {
    All,
    Of(Arc<Principal>),
}

impl FeedScope {
    /// The scope of a verified caller.
    pub fn of(principal: Arc<Principal>) -> Self {
        if principal.is_service() || principal.org_unit == crate::principal::ROOT_ORG_UNIT {
            Self::All
        } else {
            Self::Of(principal)
        }
    }

    pub fn shows(&self, event_org_unit: &str) -> bool {
        match self {
            Self::All => true,
            // Events written before they carried a unit ('') are shown to the whole platform only.
            Self::Of(principal) => !event_org_unit.is_empty() && principal.covers(event_org_unit),
        }
    }
}

/// The readable side of one publisher's outbox.
#[derive(Clone)]
pub struct Feed {
    source: Pool,
    /// Woken when the publisher commits events (sequencer on PostgreSQL, readers on SQLite).
    committed: Arc<Notify>,
    /// Woken when new positions become readable.
    readable: Arc<tokio::sync::watch::Sender<u64>>,
    /// `StreamEvents` streams open on the feed and their bounds.
    streams: Arc<OpenStreams>,
}

/// The `StreamEvents` streams open on one feed, per caller and in total, and how many of each
/// may be (0: unbounded).
#[derive(Debug)]
struct OpenStreams {
    per_caller: AtomicUsize,
    total: AtomicUsize,
    open: std::sync::Mutex<(HashMap<String, usize>, usize)>,
}

impl OpenStreams {
    /// A stream of `caller`, if the bounds leave room for it; it counts until the permit drops.
    fn open(self: &Arc<Self>, caller: &str) -> Result<StreamPermit, ServiceError> {
        let (per_caller, total) = (self.per_caller.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed));
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (by_caller, all) = &mut *open;
        let mine = by_caller.get(caller).copied().unwrap_or(0);
        let refused = |message: String| {
            metrics::counter!("redress_feed_streams_refused_total").increment(1);
            Err(ServiceError::ResourceExhausted { reason: "TOO_MANY_STREAMS", message })
        };
        if per_caller > 0 && mine >= per_caller {
            return refused(format!(
                "caller {caller} already holds {mine} event streams, the most one caller may hold; close one first"
            ));
        }
        if total > 0 && *all >= total {
            return refused(format!("{all} event streams are open, the most this service holds; retry later"));
        }
        by_caller.insert(caller.to_owned(), mine + 1);
        *all += 1;
        Ok(StreamPermit { streams: self.clone(), caller: caller.to_owned() })
    }
}

/// One open `StreamEvents` stream, counted until dropped.
struct StreamPermit {
    streams: Arc<OpenStreams>,
    caller: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|p| p.into_inner());
        let (by_caller, all) = &mut *open;
        *all = all.saturating_sub(1);
        if let Some(n) = by_caller.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                by_caller.remove(&self.caller);
            }
        }
    }
}

impl Feed {
    pub fn sqlite(pool: SqlitePool) -> Self {
        Self::with(Pool::Sqlite(pool))
    }

    /// A PostgreSQL feed; `supervisor` runs its sequencer.
    pub fn postgres(pool: PgPool, supervisor: &Supervisor) -> Self {
        let feed = Self::with(Pool::Postgres(pool));
        let stop = supervisor.stopping_last();
        let sequencer = feed.clone();
        supervisor.spawn_last("outbox-sequencer", async move {
            sequencer.run_sequencer(stop).await;
            Ok(())
        });
        feed
    }

    /// The pool of the store the feed reads.
    pub fn pool(&self) -> &Pool {
        &self.source
    }

    fn with(source: Pool) -> Self {
        let defaults = crate::server::ServerConfig::default();
        let streams = OpenStreams {
            per_caller: AtomicUsize::new(defaults.max_event_streams_per_caller),
            total: AtomicUsize::new(defaults.max_event_streams),
            open: std::sync::Mutex::default(),
        };
        Self {
            source,
            committed: Arc::new(Notify::new()),
            readable: Arc::new(tokio::sync::watch::channel(0).0),
            streams: Arc::new(streams),
        }
    }

    /// Bounds the `StreamEvents` streams one caller (`per_caller`) and all callers (`total`)
    /// may hold open at once on this feed; 0 leaves that bound off. Streams already open stay.
    pub fn bound_streams(&self, per_caller: usize, total: usize) {
        self.streams.per_caller.store(per_caller, Ordering::Relaxed);
        self.streams.total.store(total, Ordering::Relaxed);
    }

    /// Tells the feed that the publisher committed events.
    pub fn notify_committed(&self) {
        match self.source {
            Pool::Sqlite(_) => self.readable.send_modify(|v| *v = v.wrapping_add(1)),
            Pool::Postgres(_) => self.committed.notify_one(),
        }
    }

    /// Makes every event committed so far readable now (on PostgreSQL this runs a sequencer
    /// pass instead of waiting for the background one; on SQLite they already are).
    pub async fn sequence_now(&self) -> anyhow::Result<()> {
        if let Pool::Postgres(pool) = &self.source
            && sequence_postgres(pool).await? > 0
        {
            self.readable.send_modify(|v| *v = v.wrapping_add(1));
        }
        Ok(())
    }

    /// The last outbox pass before a service stops (after the drain): events committed by
    /// calls still in flight get their positions now; should it fail, the next start does it.
    pub async fn sequence_before_stop(&self) {
        if let Err(e) = self.sequence_now().await {
            tracing::warn!(error = format!("{e:#}"), "final outbox sequencing failed; the next start completes it");
        }
    }

    /// Committed events with position greater than `after`, in position order.
    pub async fn read_after(&self, after: i64, limit: i64) -> anyhow::Result<Vec<Event>> {
        Ok(self.read_rows(after, limit).await?.into_iter().map(|(_, e)| e).collect())
    }

    /// [`Feed::read_after`], each event with its organisation unit.
    async fn read_rows(&self, after: i64, limit: i64) -> anyhow::Result<Vec<(String, Event)>> {
        let rows: Vec<OutboxRow> = match &self.source {
            Pool::Sqlite(pool) => sqlx::query_as(FEED_READ).bind(after).bind(limit).fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_as(FEED_READ).bind(after).bind(limit).fetch_all(pool).await?,
        };
        Ok(rows.into_iter().map(|r| (r.org_unit.clone(), Event::from(r))).collect())
    }

    /// The highest readable position (0 when empty).
    pub async fn head(&self) -> anyhow::Result<i64> {
        let head: Option<i64> = match &self.source {
            Pool::Sqlite(pool) => sqlx::query_scalar("SELECT MAX(position) FROM outbox").fetch_one(pool).await?,
            Pool::Postgres(pool) => sqlx::query_scalar("SELECT MAX(position) FROM outbox").fetch_one(pool).await?,
        };
        Ok(head.unwrap_or(0))
    }

    /// The highest position retention has removed (0 when nothing was).
    pub async fn pruned_through(&self) -> anyhow::Result<i64> {
        const PRUNED: &str = "SELECT pruned_through FROM feed_retention WHERE singleton = 1";
        let pruned: Option<i64> = match &self.source {
            Pool::Sqlite(pool) => sqlx::query_scalar(PRUNED).fetch_optional(pool).await?,
            Pool::Postgres(pool) => sqlx::query_scalar(PRUNED).fetch_optional(pool).await?,
        };
        Ok(pruned.unwrap_or(0))
    }

    /// Removes the events that occurred before `before`, oldest first, at most `limit` of them,
    /// and returns how many it removed. Only a prefix of the feed is ever removed, so that a
    /// reader resuming above the pruned position has missed nothing.
    pub async fn prune(&self, before: DateTime<Utc>, limit: i64) -> anyhow::Result<u64> {
        // The oldest `limit` sequenced events, in position order: reading them costs the same
        // however long the feed is, and pruning stops at the first one not old enough.
        const OLDEST: &str = "SELECT position, occur_time_us FROM outbox WHERE position IS NOT NULL \
            ORDER BY position LIMIT $1";
        const DELETE: &str = "DELETE FROM outbox WHERE position <= $1";
        const RECORD: &str = "INSERT INTO feed_retention (singleton, pruned_through) VALUES (1, $1) \
            ON CONFLICT (singleton) DO UPDATE SET pruned_through = excluded.pruned_through \
            WHERE excluded.pruned_through > feed_retention.pruned_through";
        let cutoff = to_micros(before);
        let through = |oldest: Vec<(i64, i64)>| {
            oldest.into_iter().take_while(|(_, occurred)| *occurred < cutoff).last().map(|(position, _)| position)
        };
        macro_rules! prune_in {
            ($tx:expr) => {{
                let mut tx = $tx;
                let oldest: Vec<(i64, i64)> = sqlx::query_as(OLDEST).bind(limit).fetch_all(&mut *tx).await?;
                let Some(through) = through(oldest) else { return Ok(0) };
                let removed = sqlx::query(DELETE).bind(through).execute(&mut *tx).await?.rows_affected();
                sqlx::query(RECORD).bind(through).execute(&mut *tx).await?;
                tx.commit().await?;
                removed
            }};
        }
        Ok(match &self.source {
            // Takes the write lock up front: a deferred transaction that read first would be
            // refused (a stale snapshot) whenever the writer committed in between.
            Pool::Sqlite(pool) => prune_in!(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => prune_in!(pool.begin().await?),
        })
    }

    /// A `StreamEvents` call: every event after `after` that `scope` may read, in batches of
    /// consecutive events, then new ones as they commit, until the caller goes away or
    /// `shutdown` fires. Asking to resume below what retention has removed is refused with
    /// FAILED_PRECONDITION (`FEED_POSITION_PRUNED`, naming the oldest position still kept).
    pub async fn subscribe(
        &self,
        after: i64,
        scope: FeedScope,
        shutdown: CancellationToken,
    ) -> Result<ReceiverStream<Result<Vec<Event>, tonic::Status>>, ServiceError> {
        if after < 0 {
            return Err(ServiceError::invalid("after_position", "must not be negative"));
        }
        let pruned = self.pruned_through().await?;
        if after < pruned {
            return Err(pruned_error(pruned));
        }
        Ok(self.stream_scoped(after, scope, shutdown))
    }

    /// Streams every event after `after` in batches of consecutive events, then follows new
    /// ones, until the receiver goes away or `shutdown` fires.
    pub fn stream(&self, after: i64, shutdown: CancellationToken) -> ReceiverStream<Result<Vec<Event>, tonic::Status>> {
        self.stream_scoped(after, FeedScope::All, shutdown)
    }

    fn stream_scoped(
        &self,
        after: i64,
        scope: FeedScope,
        shutdown: CancellationToken,
    ) -> ReceiverStream<Result<Vec<Event>, tonic::Status>> {
        let (tx, rx) = mpsc::channel(4);
        let feed = self.clone();
        tokio::spawn(async move {
            let mut cursor = after;
            let mut readable = feed.readable.subscribe();
            loop {
                readable.mark_unchanged();
                let rows = match feed.read_rows(cursor, READ_BATCH).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "event feed read failed");
                        let _ = tx.send(Err(tonic::Status::unavailable("event feed read failed"))).await;
                        return;
                    }
                };
                // Retention may have removed events behind a reader that fell behind it while
                // streaming: it is told, as a new subscriber would be, rather than skip them.
                // Retention removes a prefix of the feed, so when the next event after the
                // cursor is there, nothing the reader still needs was removed.
                let next_is_there = rows.first().is_some_and(|(_, event)| event.position == cursor + 1);
                match if next_is_there { Ok(0) } else { feed.pruned_through().await } {
                    Ok(pruned) if cursor < pruned => {
                        let _ = tx.send(Err(pruned_error(pruned).into())).await;
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "event feed read failed");
                        let _ = tx.send(Err(tonic::Status::unavailable("event feed read failed"))).await;
                        return;
                    }
                }
                let full = rows.len() as i64 == READ_BATCH;
                if let Some((_, last)) = rows.last() {
                    // Past the events the caller may not read, too: they are never sent.
                    cursor = last.position;
                }
                let batch: Vec<Event> =
                    rows.into_iter().filter(|(unit, _)| scope.shows(unit)).map(|(_, event)| event).collect();
                if !batch.is_empty() {
                    // A subscriber that stopped reading must not hold up shutdown.
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        sent = tx.send(Ok(batch)) => if sent.is_err() { return },
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tx.closed() => return,
                    _ = readable.changed() => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
        });
        ReceiverStream::new(rx)
    }

    async fn run_sequencer(self, shutdown: CancellationToken) {
        let Pool::Postgres(pool) = &self.source else {
            return;
        };
        loop {
            match sequence_postgres(pool).await {
                Ok(0) => {}
                Ok(_) => {
                    self.readable.send_modify(|v| *v = v.wrapping_add(1));
                    continue;
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "outbox sequencing failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.committed.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
}

/// A reader asked for events retention removed: FAILED_PRECONDITION naming the oldest kept.
fn pruned_error(pruned: i64) -> ServiceError {
    let oldest = pruned + 1;
    ServiceError::FailedPrecondition {
        reason: "FEED_POSITION_PRUNED",
        message: format!(
            "events up to position {pruned} were removed by retention; the oldest position still available is \
             {oldest} (resume with after_position {pruned} or later)"
        ),
        metadata: std::collections::HashMap::from([("oldest_position".to_owned(), oldest.to_string())]),
    }
}

/// How long events and idempotency records are kept.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Days an event stays on the feed (D-PII retention aside, consumers must keep up within it).
    pub feed_days: u32,
    /// Days a request id is remembered for retries (AIP-155).
    pub idempotency_days: u32,
    /// How often the pruner runs, in seconds.
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { feed_days: 90, idempotency_days: 30, interval_secs: 3600 }
    }
}

impl RetentionConfig {
    pub fn feed_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        days_before(now, self.feed_days)
    }

    pub fn idempotency_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        days_before(now, self.idempotency_days)
    }
}

/// `days` (at least one) before `now`; a window longer than time itself keeps everything.
fn days_before(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    chrono::Duration::try_days(i64::from(days.max(1)))
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Runs the service's retention task (`<service>/retention`) under `supervisor`: the feed's
/// old events, and the request ids `prune_requests` forgets.
pub fn spawn_retention<F, Fut>(supervisor: &Supervisor, feed: Feed, config: RetentionConfig, prune_requests: F)
where
    F: Fn(DateTime<Utc>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let pruner = run_pruner(feed, config, prune_requests, supervisor.stopping());
    supervisor.spawn("retention", async move {
        pruner.await;
        Ok(())
    });
}

/// Removes what retention no longer keeps, every `config.interval_secs`, until `stop`: the
/// feed's old events, and whatever else `extra` prunes (a service's idempotency records).
pub async fn run_pruner<F, Fut>(feed: Feed, config: RetentionConfig, extra: F, stop: CancellationToken)
where
    F: Fn(DateTime<Utc>) -> Fut + Send,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send,
{
    const BATCH: i64 = 10_000;
    loop {
        let now = now();
        loop {
            match feed.prune(config.feed_cutoff(now), BATCH).await {
                Ok(n) if n > 0 => {
                    metrics::counter!("redress_feed_pruned_total").increment(n);
                    if stop.is_cancelled() {
                        return;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "feed pruning failed; retrying later");
                    break;
                }
            }
        }
        match extra(config.idempotency_cutoff(now)).await {
            Ok(n) => metrics::counter!("redress_idempotency_pruned_total").increment(n),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "idempotency pruning failed; retrying later"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(config.interval_secs.max(1))) => {}
        }
    }
}

/// Gives positions to committed, unsequenced outbox rows in id order. Only one sequencer runs
/// at a time in a database; rows still uncommitted are invisible and get later positions.
pub async fn sequence_postgres(pool: &PgPool) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7262657373)").execute(&mut *tx).await?;
    let done = sqlx::query(
        "WITH base AS (SELECT GREATEST(COALESCE(MAX(position), 0), \
                                       COALESCE((SELECT pruned_through FROM feed_retention), 0)) AS p FROM outbox), \
              pending AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM outbox \
                          WHERE position IS NULL ORDER BY id LIMIT 5000) \
         UPDATE outbox o SET position = base.p + pending.n FROM pending, base WHERE o.id = pending.id",
    )
    .execute(&mut *tx)
    .await
    .context("assigning outbox positions")?
    .rows_affected();
    tx.commit().await?;
    Ok(done)
}

/// One row of an outbox, as both backends return it.
#[derive(sqlx::FromRow)]
struct OutboxRow {
    position: i64,
    event_id: String,
    event_type: String,
    aggregate: String,
    org_unit: String,
    occur_time_us: i64,
    payload: Vec<u8>,
    traceparent: String,
    tracestate: String,
}

impl From<OutboxRow> for Event {
    fn from(row: OutboxRow) -> Self {
        let type_url = format!("type.googleapis.com/{}", row.event_type);
        Event {
            position: row.position,
            event_id: row.event_id,
            event_type: row.event_type,
            aggregate: row.aggregate,
            occur_time: Some(to_timestamp(from_micros(row.occur_time_us))),
            payload: Some(prost_types::Any { type_url, value: row.payload }),
            traceparent: row.traceparent,
            tracestate: row.tracestate,
            org_unit: row.org_unit,
        }
    }
}

/// A `StreamEvents` response stream of a service's own response type.
pub type FeedStream<R> = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<R, tonic::Status>> + Send>>;

/// The whole of a `StreamEvents` handler: the caller needs `events.read` and sees only the
/// events of the organisation units it covers; each batch is wrapped by `respond` in the
/// service's response message. A caller holding as many streams of this feed as it may
/// (`server.max_event_streams_per_caller`), or a feed with as many open as it serves
/// (`server.max_event_streams`), is refused with RESOURCE_EXHAUSTED (`TOO_MANY_STREAMS`).
/// Streams of the suite's own services are neither counted nor refused: their feed consumers
/// hold one stream each and must be able to resubscribe however many outside callers hold.
pub async fn serve_stream<R, F>(
    feed: &Feed,
    principal: Arc<Principal>,
    after: i64,
    shutdown: CancellationToken,
    respond: F,
) -> Result<FeedStream<R>, ServiceError>
where
    R: Send + 'static,
    F: Fn(Vec<Event>) -> R + Send + 'static,
{
    principal.require(crate::Permission::EventsRead)?;
    let permit = if principal.is_service() { None } else { Some(feed.streams.open(&principal.subject)?) };
    let stream = feed.subscribe(after, FeedScope::of(principal), shutdown).await?;
    // A caller's stream counts against the bounds until the caller goes away and it is dropped.
    Ok(Box::pin(stream.map(move |batch| {
        let _open = &permit;
        batch.map(&respond)
    })))
}

/// Batches of consecutive events, as a feed delivers them.
pub type EventBatches = BoxStream<'static, Result<Vec<Event>, tonic::Status>>;

/// Opens a stream of events after a position (a gRPC `StreamEvents` call, usually).
pub type Subscribe =
    Box<dyn FnMut(i64) -> futures_util::future::BoxFuture<'static, Result<EventBatches, tonic::Status>> + Send>;

/// The consuming side: applies a batch of events and their final position in one transaction,
/// skipping events at or below the stored position, and returns the new position.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    async fn position(&self) -> anyhow::Result<i64>;
    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64>;
}

/// `StreamEvents`' request, as every feed service of the suite defines it.
#[derive(Clone, PartialEq, prost::Message)]
struct FeedRequest {
    #[prost(int64, tag = "1")]
    after_position: i64,
}

/// `StreamEvents`' response, as every feed service of the suite defines it.
#[derive(Clone, PartialEq, prost::Message)]
struct FeedBatch {
    #[prost(message, repeated, tag = "1")]
    events: Vec<Event>,
}

/// Follows another service's feed over gRPC with `credentials` (the follower's service
/// principal with `events.read`, signed with its own key for the feed's service): `feed_service` is the feed service's
/// full name, e.g. `redress.intake.v1.IntakeEventFeedService`. Every feed of the suite has the
/// same `StreamEvents` shape, so one client follows any of them. An `https://` URL is called
/// with `tls`, the follower's own ([`crate::host::Host::tls_for_calls`]).
pub fn grpc_subscription(
    url: &str,
    feed_service: &str,
    credentials: crate::principal::ServiceCredentials,
    tls: Option<&crate::tls::Tls>,
) -> anyhow::Result<Subscribe> {
    let channel = crate::server::suite_endpoint(url)?.connect_lazy(tls);
    let path = http::uri::PathAndQuery::try_from(format!("/{feed_service}/StreamEvents"))
        .with_context(|| format!("feed service {feed_service}"))?;
    Ok(Box::new(move |after| {
        let mut grpc = tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(crate::server::DEFAULT_MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::server::DEFAULT_MAX_MESSAGE_SIZE);
        let credentials = credentials.clone();
        let path = path.clone();
        Box::pin(async move {
            grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("feed unreachable: {e}")))?;
            let mut request = tonic::Request::new(FeedRequest { after_position: after });
            credentials.apply(&mut request)?;
            crate::telemetry::inject_current_context(&mut request);
            let codec = tonic_prost::ProstCodec::<FeedRequest, FeedBatch>::default();
            let stream = grpc.server_streaming(request, path, codec).await?.into_inner();
            let batches: EventBatches = stream
                .filter_map(|r| async move {
                    match r {
                        Ok(batch) if batch.events.is_empty() => None,
                        Ok(batch) => Some(Ok(batch.events)),
                        Err(status) => Some(Err(status)),
                    }
                })
                .boxed();
            Ok(batches)
        })
    }))
}

/// Most events applied in one transaction.
const APPLY_BATCH: usize = 1000;
/// Longest a consumer waits for more events before applying what it has.
const APPLY_LINGER: Duration = Duration::from_millis(20);

/// Follows a feed until `shutdown`: resumes from the stored position, applies events in
/// batches, and on any failure backs off and resumes from what was stored.
pub async fn run_consumer(name: &str, mut subscribe: Subscribe, sink: Arc<dyn EventSink>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            r = consume_once(name, &mut subscribe, sink.as_ref(), &shutdown) => r,
        };
        match outcome {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                // Every interruption counts (unreachable feed, pruned position, failed apply):
                // a count that keeps rising while the position stands still is the alarm.
                metrics::counter!("redress_consumer_failures_total", "consumer" => name.to_owned()).increment(1);
                tracing::warn!(consumer = name, error = format!("{e:#}"), "event consumer interrupted; resuming");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume_once(
    name: &str,
    subscribe: &mut Subscribe,
    sink: &dyn EventSink,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let position = sink.position().await.context("reading consumer position")?;
    let mut stream = subscribe(position).await.context("subscribing to the feed")?;
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = stream.next() => next,
        };
        let Some(first) = first else { anyhow::bail!("feed ended") };
        let mut batch = first?;
        // Linger briefly for more: every applied batch is a commit (an fsync and a rewrite of
        // each touched page), so fewer, larger batches cost far less than one per arrival.
        let linger_until = tokio::time::Instant::now() + APPLY_LINGER;
        while batch.len() < APPLY_BATCH {
            match tokio::time::timeout_at(linger_until, stream.next()).await {
                Ok(Some(Ok(more))) => batch.extend(more),
                Ok(Some(Err(status))) => return Err(status.into()),
                Ok(None) | Err(_) => break,
            }
        }
        let applied = batch.len() as u64;
        let position = match sink.apply(batch).await {
            Ok(position) => position,
            Err(e) => return Err(e.context("applying events")),
        };
        metrics::counter!("redress_consumer_events_total", "consumer" => name.to_owned()).increment(applied);
        metrics::gauge!("redress_consumer_position", "consumer" => name.to_owned()).set(position as f64);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Permission;
    use crate::testing::{TestDatabase, staff};

    async fn feed() -> (Feed, TestDatabase) {
        let db = TestDatabase::sqlite("streams").unwrap();
        let sqlite = crate::db::connect_sqlite(&db.config, &Supervisor::detached()).await.unwrap();
        migrate_sqlite(&sqlite.pool).await.unwrap();
        (Feed::sqlite(sqlite.pool), db)
    }

    async fn open(feed: &Feed, subject: &str, shutdown: &CancellationToken) -> Result<FeedStream<()>, ServiceError> {
        let principal = Arc::new(staff(subject, "institutions/acme", "", &[Permission::EventsRead]));
        serve_stream(feed, principal, 0, shutdown.clone(), |_| ()).await
    }

    fn refusal(opened: Result<FeedStream<()>, ServiceError>) -> String {
        let Err(e) = opened else { panic!("a stream over the bound was opened") };
        let status: tonic::Status = e.into();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        status.message().to_owned()
    }

    #[tokio::test]
    async fn event_streams_are_bounded_per_caller_and_in_total_until_one_closes() {
        let (feed, _db) = feed().await;
        let shutdown = CancellationToken::new();
        feed.bound_streams(2, 3);
        let a1 = open(&feed, "a", &shutdown).await.unwrap();
        let _a2 = open(&feed, "a", &shutdown).await.unwrap();
        assert!(refusal(open(&feed, "a", &shutdown).await).contains("caller a already holds 2"));
        let _b1 = open(&feed, "b", &shutdown).await.unwrap();
        assert!(refusal(open(&feed, "b", &shutdown).await).contains("3 event streams are open"));
        // A stream the caller closed no longer counts.
        drop(a1);
        let _b2 = open(&feed, "b", &shutdown).await.unwrap();
        refusal(open(&feed, "c", &shutdown).await);
        // Without bounds, nothing is refused.
        feed.bound_streams(0, 0);
        let _more: Vec<_> = futures_util::future::join_all((0..5).map(|_| open(&feed, "a", &shutdown)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_reader_that_retention_overtakes_while_it_streams_is_told_not_skipped() {
        let (feed, _db) = feed().await;
        let Pool::Sqlite(pool) = &feed.source else { unreachable!() };
        let total = READ_BATCH * 8;
        let events: Vec<NewEvent> = (0..total)
            .map(|i| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "test.Event".to_owned(),
                aggregate: format!("things/{i}"),
                org_unit: "institutions/acme".to_owned(),
                occur_time: now(),
                payload: Vec::new(),
                traceparent: String::new(),
                tracestate: String::new(),
            })
            .collect();
        let mut conn = pool.acquire().await.unwrap();
        NewEvent::append_all_sqlite(&events, &mut conn).await.unwrap();
        drop(conn);
        let shutdown = CancellationToken::new();
        let mut stream = feed.subscribe(0, FeedScope::All, shutdown.clone()).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.first().unwrap().position, 1);
        // The reader now waits for its caller with a few batches read ahead, far below the
        // head. Retention removes most of the feed, events it has not sent yet among them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pruned_through = READ_BATCH * 7;
        let removed = feed.prune(now() + chrono::Duration::hours(1), pruned_through).await.unwrap();
        assert_eq!(removed, pruned_through as u64);
        let mut next = first.last().unwrap().position + 1;
        let refusal = loop {
            match stream.next().await.expect("the stream ended without saying why") {
                Ok(batch) => {
                    for event in batch {
                        assert_eq!(event.position, next, "an event was skipped");
                        next += 1;
                    }
                }
                Err(status) => break status,
            }
        };
        assert!(next <= pruned_through, "the reader had read past what was pruned: {next}");
        assert_eq!(refusal.code(), tonic::Code::FailedPrecondition, "{refusal:?}");
        let info = tonic_types::StatusExt::get_details_error_info(&refusal).unwrap();
        assert_eq!(info.reason, "FEED_POSITION_PRUNED");
        assert_eq!(info.metadata["oldest_position"], (pruned_through + 1).to_string());
        // A reader whose next event is still there goes on: resuming at the oldest kept
        // position reads to the head without a refusal.
        let mut resumed = feed.subscribe(pruned_through, FeedScope::All, shutdown.clone()).await.unwrap();
        let mut read = 0;
        while read < total - pruned_through {
            read += resumed.next().await.unwrap().unwrap().len() as i64;
        }
        assert_eq!(read, total - pruned_through);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn service_streams_are_served_when_callers_fill_the_bounds() {
        let (feed, _db) = feed().await;
        let shutdown = CancellationToken::new();
        feed.bound_streams(1, 2);
        let _a = open(&feed, "a", &shutdown).await.unwrap();
        let _b = open(&feed, "b", &shutdown).await.unwrap();
        assert!(refusal(open(&feed, "c", &shutdown).await).contains("2 event streams are open"));
        let service = Arc::new(Principal::service("case-workflow", &[Permission::EventsRead]));
        let open_service = || serve_stream(&feed, service.clone(), 0, shutdown.clone(), |_| ());
        let first = open_service().await.unwrap();
        // Neither bound applies to a service, and its streams take no caller's place.
        let _second = open_service().await.unwrap();
        drop(first);
        assert!(refusal(open(&feed, "c", &shutdown).await).contains("2 event streams are open"));
        // A service still needs `events.read`.
        let unpermitted = Arc::new(Principal::service("gateway", &[]));
        let Err(e) = serve_stream(&feed, unpermitted, 0, shutdown.clone(), |_| ()).await else {
            panic!("a service without events.read was served")
        };
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::PermissionDenied);
        shutdown.cancel();
    }
}
