//! Events between contexts: a transactional outbox in the publisher's store, exposed as an
//! ordered, resumable feed, and a consumer loop that stores its position with its effects.
//!
//! Positions are commit order. On SQLite every write holds the database's single write lock,
//! so the outbox row id assigned inside the transaction is already commit order. On PostgreSQL
//! ids come from a sequence and are not commit order, so rows are inserted without a position
//! and a sequencer assigns positions to committed rows afterwards, one sequencer at a time
//! (transaction-level advisory lock). A reader that has seen position `p` can therefore never
//! later find a new event at or below `p`.

use std::sync::Arc;
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

use crate::time::{from_micros, now, to_micros, to_timestamp};

/// How often readers and the sequencer look for rows committed by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Events read from the store per query.
const READ_BATCH: i64 = 500;

/// An event to append to the outbox in the same transaction as its state change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate: String,
    pub occur_time: DateTime<Utc>,
    pub payload: Vec<u8>,
    pub traceparent: String,
    pub tracestate: String,
}

impl NewEvent {
    /// An event about `aggregate` carrying `payload`, in the current span's trace.
    pub fn new<M: prost::Name>(aggregate: impl Into<String>, payload: &M) -> Self {
        Self::in_trace(aggregate, payload, crate::telemetry::TraceContext::current())
    }

    /// An event about `aggregate` carrying `payload`, in the given trace (for events built away
    /// from the request's span, such as in a batch writer).
    pub fn in_trace<M: prost::Name>(
        aggregate: impl Into<String>,
        payload: &M,
        trace: crate::telemetry::TraceContext,
    ) -> Self {
        let crate::telemetry::TraceContext { traceparent, tracestate } = trace;
        Self {
            event_id: Uuid::now_v7(),
            event_type: M::full_name(),
            aggregate: aggregate.into(),
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
        // 7 bound values a row keeps each statement far below SQLite's variable limit.
        for chunk in events.chunks(1000) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO outbox (event_id, event_type, aggregate, occur_time_us, payload, traceparent, tracestate) ",
            );
            query.push_values(chunk, |mut row, e| {
                row.push_bind(e.event_id.to_string())
                    .push_bind(e.event_type.as_str())
                    .push_bind(e.aggregate.as_str())
                    .push_bind(to_micros(e.occur_time))
                    .push_bind(e.payload.as_slice())
                    .push_bind(e.traceparent.as_str())
                    .push_bind(e.tracestate.as_str());
            });
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Append as the last statement of the transaction, after any row locks on the aggregate,
    /// so that events of one aggregate get ids in their commit order.
    pub async fn append_postgres(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, aggregate, occur_time_us, payload, traceparent, tracestate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.event_id.to_string())
        .bind(&self.event_type)
        .bind(&self.aggregate)
        .bind(to_micros(self.occur_time))
        .bind(&self.payload)
        .bind(&self.traceparent)
        .bind(&self.tracestate)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    }
}

#[derive(Clone)]
enum Source {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The readable side of one publisher's outbox.
#[derive(Clone)]
pub struct Feed {
    source: Source,
    /// Woken when the publisher commits events (sequencer on PostgreSQL, readers on SQLite).
    committed: Arc<Notify>,
    /// Woken when new positions become readable.
    readable: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Feed {
    pub fn sqlite(pool: SqlitePool) -> Self {
        Self::with(Source::Sqlite(pool))
    }

    /// A PostgreSQL feed; its sequencer runs until `shutdown`.
    pub fn postgres(pool: PgPool, shutdown: CancellationToken) -> Self {
        let feed = Self::with(Source::Postgres(pool));
        tokio::spawn(feed.clone().run_sequencer(shutdown));
        feed
    }

    fn with(source: Source) -> Self {
        Self { source, committed: Arc::new(Notify::new()), readable: Arc::new(tokio::sync::watch::channel(0).0) }
    }

    /// Tells the feed that the publisher committed events.
    pub fn notify_committed(&self) {
        match self.source {
            Source::Sqlite(_) => self.readable.send_modify(|v| *v = v.wrapping_add(1)),
            Source::Postgres(_) => self.committed.notify_one(),
        }
    }

    /// Makes every event committed so far readable now (on PostgreSQL this runs a sequencer
    /// pass instead of waiting for the background one; on SQLite they already are).
    pub async fn sequence_now(&self) -> anyhow::Result<()> {
        if let Source::Postgres(pool) = &self.source
            && sequence_postgres(pool).await? > 0
        {
            self.readable.send_modify(|v| *v = v.wrapping_add(1));
        }
        Ok(())
    }

    /// Committed events with position greater than `after`, in position order.
    pub async fn read_after(&self, after: i64, limit: i64) -> anyhow::Result<Vec<Event>> {
        // `$n` placeholders are understood by both SQLite and PostgreSQL.
        const READ: &str = "SELECT position, event_id, event_type, aggregate, occur_time_us, payload, traceparent, \
                            tracestate FROM outbox WHERE position > $1 ORDER BY position LIMIT $2";
        let rows: Vec<OutboxRow> = match &self.source {
            Source::Sqlite(pool) => sqlx::query_as(READ).bind(after).bind(limit).fetch_all(pool).await?,
            Source::Postgres(pool) => sqlx::query_as(READ).bind(after).bind(limit).fetch_all(pool).await?,
        };
        Ok(rows.into_iter().map(Event::from).collect())
    }

    /// The highest readable position (0 when empty).
    pub async fn head(&self) -> anyhow::Result<i64> {
        let head: Option<i64> = match &self.source {
            Source::Sqlite(pool) => sqlx::query_scalar("SELECT MAX(position) FROM outbox").fetch_one(pool).await?,
            Source::Postgres(pool) => sqlx::query_scalar("SELECT MAX(position) FROM outbox").fetch_one(pool).await?,
        };
        Ok(head.unwrap_or(0))
    }

    /// Streams every event after `after` in batches of consecutive events, then follows new
    /// ones, until the receiver goes away or `shutdown` fires.
    pub fn stream(&self, after: i64, shutdown: CancellationToken) -> ReceiverStream<Result<Vec<Event>, tonic::Status>> {
        let (tx, rx) = mpsc::channel(4);
        let feed = self.clone();
        tokio::spawn(async move {
            let mut cursor = after;
            let mut readable = feed.readable.subscribe();
            loop {
                readable.mark_unchanged();
                let batch = match feed.read_after(cursor, READ_BATCH).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "event feed read failed");
                        let _ = tx.send(Err(tonic::Status::unavailable("event feed read failed"))).await;
                        return;
                    }
                };
                let full = batch.len() as i64 == READ_BATCH;
                if let Some(last) = batch.last() {
                    cursor = last.position;
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
        let Source::Postgres(pool) = &self.source else {
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

/// Gives positions to committed, unsequenced outbox rows in id order. Only one sequencer runs
/// at a time in a database; rows still uncommitted are invisible and get later positions.
pub async fn sequence_postgres(pool: &PgPool) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7262657373)").execute(&mut *tx).await?;
    let done = sqlx::query(
        "WITH base AS (SELECT COALESCE(MAX(position), 0) AS p FROM outbox), \
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
        }
    }
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
            Err(e) => {
                // Retried from the stored position; a count that keeps rising means a stuck feed.
                metrics::counter!("redress_consumer_failures_total", "consumer" => name.to_owned()).increment(1);
                return Err(e.context("applying events"));
            }
        };
        metrics::counter!("redress_consumer_events_total", "consumer" => name.to_owned()).increment(applied);
        metrics::gauge!("redress_consumer_position", "consumer" => name.to_owned()).set(position as f64);
    }
}
