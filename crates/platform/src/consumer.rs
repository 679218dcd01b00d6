//! The consuming side of a feed inside the consumer's own transaction, written once for both
//! backends: the stored position, the skip of what was applied before, strict feed order, dead
//! letters for what can never be applied, and replays of them. A service supplies only what
//! one event means for it.

use std::collections::HashMap;

use async_trait::async_trait;
use redress_proto::redress::common::v1::Event;
use sqlx::{PgConnection, SqliteConnection};
use tracing::Instrument as _;

use crate::ServiceError;
use crate::dead_letters::{DeadLetter, LOAD, MARK_REPLAYED, OUTSTANDING, Replay, WAITING_BEHIND};
use crate::time::{now, to_micros};

/// A store transaction that keeps consumers' positions and dead letters.
#[async_trait]
pub trait ConsumerTx: Send {
    /// A consumer's stored position (0 at first), locked until the transaction ends, so that
    /// replicas consuming at once apply each event once between them; and whether it has any
    /// outstanding dead letter that later events of its aggregate must wait behind.
    async fn consumer_start(&mut self, consumer: &str) -> Result<(i64, bool), sqlx::Error>;
    async fn save_consumer_position(&mut self, consumer: &str, position: i64) -> Result<(), sqlx::Error>;
    async fn record_dead_letter(&mut self, dead: &DeadLetter) -> Result<(), sqlx::Error>;
    /// A dead letter, locked until the transaction ends.
    async fn load_dead_letter(&mut self, consumer: &str, position: i64) -> Result<Option<DeadLetter>, sqlx::Error>;
    /// The outstanding dead letters of `aggregate` after `position`, in order, locked.
    async fn waiting_behind(
        &mut self,
        consumer: &str,
        aggregate: &str,
        position: i64,
    ) -> Result<Vec<DeadLetter>, sqlx::Error>;
    /// The first outstanding dead letter of each aggregate that has one.
    async fn outstanding(&mut self, consumer: &str) -> Result<Vec<(String, i64)>, sqlx::Error>;
    async fn mark_replayed(
        &mut self,
        dead: &DeadLetter,
        by: &str,
        payload: Option<Vec<u8>>,
    ) -> Result<i64, sqlx::Error>;
}

/// Implements [`ConsumerTx`] for one backend's connection; `$lock` ends the reads that lock.
macro_rules! consumer_tx {
    ($conn:ty, lock = $lock:literal) => {
        #[async_trait]
        impl ConsumerTx for $conn {
            async fn consumer_start(&mut self, consumer: &str) -> Result<(i64, bool), sqlx::Error> {
                // One statement a batch once the consumer has a row; its first batch adds it.
                const START: &str = concat!(
                    "SELECT position, EXISTS (SELECT 1 FROM dead_letters WHERE consumer = $1 ",
                    "AND replay_time_us IS NULL AND aggregate <> '') FROM consumer_positions WHERE consumer = $1",
                    $lock
                );
                if let Some(start) = sqlx::query_as(START).bind(consumer).fetch_optional(&mut *self).await? {
                    return Ok(start);
                }
                sqlx::query(
                    "INSERT INTO consumer_positions (consumer, position) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                )
                .bind(consumer)
                .execute(&mut *self)
                .await?;
                sqlx::query_as(START).bind(consumer).fetch_one(&mut *self).await
            }

            async fn save_consumer_position(&mut self, consumer: &str, position: i64) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE consumer_positions SET position = $2 WHERE consumer = $1")
                    .bind(consumer)
                    .bind(position)
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }

            async fn record_dead_letter(&mut self, dead: &DeadLetter) -> Result<(), sqlx::Error> {
                crate::bind_dead_letter_insert!(dead).execute(&mut *self).await.map(|_| ())
            }

            async fn load_dead_letter(
                &mut self,
                consumer: &str,
                position: i64,
            ) -> Result<Option<DeadLetter>, sqlx::Error> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{LOAD}{}", $lock)))
                    .bind(consumer)
                    .bind(position)
                    .fetch_optional(&mut *self)
                    .await
            }

            async fn waiting_behind(
                &mut self,
                consumer: &str,
                aggregate: &str,
                position: i64,
            ) -> Result<Vec<DeadLetter>, sqlx::Error> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{WAITING_BEHIND}{}", $lock)))
                    .bind(consumer)
                    .bind(aggregate)
                    .bind(position)
                    .fetch_all(&mut *self)
                    .await
            }

            async fn outstanding(&mut self, consumer: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
                sqlx::query_as(OUTSTANDING).bind(consumer).fetch_all(&mut *self).await
            }

            async fn mark_replayed(
                &mut self,
                dead: &DeadLetter,
                by: &str,
                payload: Option<Vec<u8>>,
            ) -> Result<i64, sqlx::Error> {
                let when = to_micros(now());
                sqlx::query(MARK_REPLAYED)
                    .bind(&dead.consumer)
                    .bind(dead.position)
                    .bind(when)
                    .bind(by)
                    .bind(payload)
                    .execute(&mut *self)
                    .await?;
                Ok(when)
            }
        }
    };
}

consumer_tx!(SqliteConnection, lock = "");
consumer_tx!(PgConnection, lock = " FOR UPDATE");

/// What one event means for a consumer once applied: done, or never appliable (why).
pub enum Effect {
    Applied,
    Unappliable(String),
}

/// What a consuming service does with one event of the feed it follows, inside `T`, its
/// store's transaction.
#[async_trait]
pub trait ApplyEvent<T: ?Sized + Send>: Send {
    type Error: From<sqlx::Error> + From<ServiceError> + Send;

    /// Applies `event`, or says why it can never be applied (it then becomes a dead letter).
    async fn apply(&mut self, tx: &mut T, event: &Event) -> Result<Effect, Self::Error>;
}

/// Applies the events of a batch that come after `consumer`'s stored position, strictly in
/// feed order, with `apply`; an event `apply` finds unappliable is recorded as a dead letter and
/// passed over, and so is every later event of the same aggregate while that dead letter is
/// outstanding (they wait behind it, so per-aggregate order holds). Stores and returns the new
/// position, all in the caller's transaction.
pub async fn apply_in_order<T, A>(tx: &mut T, consumer: &str, events: &[Event], apply: &mut A) -> Result<i64, A::Error>
where
    T: ConsumerTx + ?Sized,
    A: ApplyEvent<T>,
{
    let (stored, outstanding) = tx.consumer_start(consumer).await?;
    let mut blocked: HashMap<String, i64> =
        if outstanding { tx.outstanding(consumer).await?.into_iter().collect() } else { HashMap::new() };
    let mut position = stored;
    for event in events.iter().filter(|e| e.position > stored) {
        let waits_for = blocked.get(&event.aggregate).copied().filter(|_| !event.aggregate.is_empty());
        let unappliable = match waits_for {
            Some(first) => Some(format!("waits for the dead letter at position {first} of the same aggregate")),
            None => match apply.apply(tx, event).instrument(applying(consumer, event)).await? {
                Effect::Applied => None,
                Effect::Unappliable(why) => Some(why),
            },
        };
        if let Some(why) = unappliable {
            tx.record_dead_letter(&DeadLetter::of(consumer, event, why)).await?;
            if !event.aggregate.is_empty() {
                blocked.entry(event.aggregate.clone()).or_insert(event.position);
            }
        }
        position = event.position;
    }
    if position != stored {
        tx.save_consumer_position(consumer, position).await?;
    }
    Ok(position)
}

/// The span applying one event runs in: a child of the span that published it (its stored W3C
/// context), so that what a consumer does with an event stays in the trace of the request that
/// caused it.
fn applying(consumer: &str, event: &Event) -> tracing::Span {
    let span = tracing::info_span!("event.apply", consumer, event.type = %event.event_type, event.position);
    crate::telemetry::set_parent_from_trace_context(&span, &event.traceparent, &event.tracestate);
    span
}

/// Applies a dead letter again with `apply` and marks it replayed, in the caller's
/// transaction, then the events of its aggregate that waited behind it, in order, until one
/// still cannot be applied (it stays outstanding). Returns the dead letter, unchanged when it
/// was replayed before (each applies at most once). Refused while an earlier dead letter of
/// the same aggregate is outstanding; still unappliable is `DEAD_LETTER_STILL_FAILS`, and the
/// caller must then write nothing.
pub async fn replay<T, A>(tx: &mut T, replay: &Replay, apply: &mut A) -> Result<DeadLetter, A::Error>
where
    T: ConsumerTx + ?Sized,
    A: ApplyEvent<T>,
{
    let Some(dead) = tx.load_dead_letter(&replay.consumer, replay.position).await? else {
        return Err(replay.not_found().into());
    };
    let Some(event) = replay.event_of(&dead)? else { return Ok(dead) };
    if !dead.aggregate.is_empty() {
        let earlier = tx.outstanding(&dead.consumer).await?;
        if let Some((_, first)) = earlier.iter().find(|(a, first)| *a == dead.aggregate && *first < dead.position) {
            return Err(Replay::waits_for(*first).into());
        }
    }
    if let Effect::Unappliable(why) = apply.apply(tx, &event).await? {
        return Err(Replay::still_fails(&why).into());
    }
    let by = replay.principal.subject.clone();
    let when = tx.mark_replayed(&dead, &by, replay.replay_payload()).await?;
    if !dead.aggregate.is_empty() {
        for waiting in tx.waiting_behind(&dead.consumer, &dead.aggregate, dead.position).await? {
            let Effect::Applied = apply.apply(tx, &waiting.event(None)?).await? else { break };
            tx.mark_replayed(&waiting, &by, None).await?;
        }
    }
    Ok(DeadLetter { replay_time_us: Some(when), replayed_by: by, replay_payload: replay.replay_payload(), ..dead })
}
