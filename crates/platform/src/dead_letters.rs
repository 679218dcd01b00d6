//! Dead letters: events a consumer could not apply and passed over, kept with their payload
//! in the consumer's store (`dead_letters`, created by the platform's event migrations).
//!
//! An operator lists them and replays one once its cause is fixed (new code, a corrected
//! payload). Each consuming service applies a replay with its own consumer logic, in one
//! transaction with [`MARK_REPLAYED`], so a dead letter is applied at most once.

use prost_types::Any;
use redress_proto::redress::common::v1 as pb;
use redress_proto::redress::common::v1::Event;

use crate::ServiceError;
use crate::db::{Backend, Pool};
use crate::error::Violations;
use crate::listing::ListSql;
use crate::paging::{Cursor, decode_token, finish_page, page_size};
use crate::principal::{Permission, Principal};
use crate::time::{from_micros, now, to_micros, to_timestamp};

/// An event passed over because it cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub consumer: String,
    pub position: i64,
    pub event_id: String,
    pub event_type: String,
    /// The aggregate the event is about (e.g. `complaints/…`): its later events wait behind it.
    pub aggregate: String,
    pub error: String,
    pub payload: Vec<u8>,
    pub org_unit: String,
    pub record_time_us: i64,
    pub replay_time_us: Option<i64>,
    pub replayed_by: String,
    pub replay_payload: Option<Vec<u8>>,
}

/// Records a dead letter (idempotent on consumer and position); bind with [`bind_insert!`].
pub const INSERT: &str = "INSERT INTO dead_letters \
    (consumer, position, event_id, event_type, error, payload, org_unit, record_time_us, aggregate) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";

/// One dead letter by consumer and position (`FOR UPDATE` is appended on PostgreSQL).
pub const LOAD: &str = "SELECT consumer, position, event_id, event_type, aggregate, error, payload, org_unit, \
    record_time_us, replay_time_us, replayed_by, replay_payload FROM dead_letters WHERE consumer = $1 AND position = $2";

/// The outstanding dead letters of `$2` after position `$3`, in order (`FOR UPDATE` appended on
/// PostgreSQL): the events that waited behind a replayed one.
pub const WAITING_BEHIND: &str = "SELECT consumer, position, event_id, event_type, aggregate, error, payload, \
    org_unit, record_time_us, replay_time_us, replayed_by, replay_payload FROM dead_letters \
    WHERE consumer = $1 AND aggregate = $2 AND position > $3 AND replay_time_us IS NULL ORDER BY position";

/// The first outstanding dead letter of each aggregate of a consumer.
pub const OUTSTANDING: &str = "SELECT aggregate, MIN(position) FROM dead_letters \
    WHERE consumer = $1 AND replay_time_us IS NULL AND aggregate <> '' GROUP BY aggregate";

/// Marks a dead letter replayed: `$3` when, `$4` by whom, `$5` the corrected payload if any.
pub const MARK_REPLAYED: &str = "UPDATE dead_letters SET replay_time_us = $3, replayed_by = $4, replay_payload = $5 \
    WHERE consumer = $1 AND position = $2 AND replay_time_us IS NULL";

/// A page of dead letters, with only the filters that are set: of one consumer (`None` for
/// all), outstanding only unless `show_replayed`, after a keyset (consumer, position), within a
/// scope (organisation unit; a dead letter without one is then never shown), `limit` at most.
pub fn list_sql(
    backend: Backend,
    consumer: Option<&str>,
    show_replayed: bool,
    after: Option<(&str, i64)>,
    scope: Option<&str>,
    limit: i64,
) -> ListSql {
    let mut q = ListSql::new(
        backend,
        "SELECT consumer, position, event_id, event_type, aggregate, error, payload, org_unit, \
         record_time_us, replay_time_us, replayed_by, replay_payload FROM dead_letters",
    );
    q.and_eq("consumer", consumer);
    if !show_replayed {
        q.and("replay_time_us IS NULL");
    }
    q.and_after(("consumer", "position"), ">", after);
    if scope.is_some() {
        q.and("org_unit <> ''");
    }
    q.and_within("org_unit", scope);
    q.finish("ORDER BY consumer, position", limit)
}

/// [`INSERT`] with a [`DeadLetter`] bound, for either backend's connection.
#[macro_export]
macro_rules! bind_dead_letter_insert {
    ($d:expr) => {{
        let d: &$crate::dead_letters::DeadLetter = $d;
        sqlx::query($crate::dead_letters::INSERT)
            .bind(d.consumer.clone())
            .bind(d.position)
            .bind(d.event_id.clone())
            .bind(d.event_type.clone())
            .bind(d.error.clone())
            .bind(d.payload.clone())
            .bind(d.org_unit.clone())
            .bind(d.record_time_us)
            .bind(d.aggregate.clone())
    }};
}

impl DeadLetter {
    /// The dead letter of `event`, which `consumer` cannot apply because of `error`.
    pub fn of(consumer: &str, event: &Event, error: String) -> Self {
        metrics::counter!("redress_consumer_dead_letters_total", "consumer" => consumer.to_owned()).increment(1);
        tracing::error!(
            consumer,
            position = event.position,
            event_id = %event.event_id,
            event_type = %event.event_type,
            error = %error,
            "event cannot be applied; recorded as a dead letter"
        );
        Self {
            consumer: consumer.to_owned(),
            position: event.position,
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            aggregate: event.aggregate.clone(),
            error,
            payload: event.payload.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
            org_unit: event.org_unit.clone(),
            record_time_us: to_micros(now()),
            replay_time_us: None,
            replayed_by: String::new(),
            replay_payload: None,
        }
    }

    pub fn name(&self) -> String {
        format!("consumers/{}/deadLetters/{}", self.consumer, self.position)
    }

    /// The consumer and position a dead letter's resource name names.
    pub fn parse_name(name: &str) -> Result<(String, i64), ServiceError> {
        let parsed = name
            .strip_prefix("consumers/")
            .and_then(|rest| rest.split_once("/deadLetters/"))
            .filter(|(consumer, _)| !consumer.is_empty() && !consumer.contains('/'))
            .and_then(|(consumer, position)| Some((consumer.to_owned(), position.parse::<i64>().ok()?)));
        parsed.ok_or_else(|| ServiceError::invalid("name", "must be consumers/{consumer}/deadLetters/{position}"))
    }

    /// The event to apply again: the one received, or with `corrected` as its payload (which
    /// must be of the event's type).
    pub fn event(&self, corrected: Option<&Any>) -> Result<Event, ServiceError> {
        let type_url = format!("type.googleapis.com/{}", self.event_type);
        let payload = match corrected {
            // The type is what follows the URL's last '/' (google.protobuf.Any).
            Some(any) if any.type_url.rsplit('/').next() != Some(self.event_type.as_str()) => {
                return Err(ServiceError::invalid(
                    "payload",
                    format!("must be a {} (type_url {type_url})", self.event_type),
                ));
            }
            Some(any) => any.clone(),
            None => Any { type_url, value: self.payload.clone() },
        };
        Ok(Event {
            position: self.position,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            aggregate: self.aggregate.clone(),
            occur_time: None,
            payload: Some(payload),
            traceparent: String::new(),
            tracestate: String::new(),
            org_unit: self.org_unit.clone(),
        })
    }

    pub fn to_proto(&self) -> pb::DeadLetter {
        let any =
            |value: &[u8]| Any { type_url: format!("type.googleapis.com/{}", self.event_type), value: value.to_vec() };
        pb::DeadLetter {
            name: self.name(),
            consumer: self.consumer.clone(),
            position: self.position,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            error: self.error.clone(),
            payload: Some(any(&self.payload)),
            record_time: Some(to_timestamp(from_micros(self.record_time_us))),
            replay_time: self.replay_time_us.map(|t| to_timestamp(from_micros(t))),
            replayed_by: self.replayed_by.clone(),
            replay_payload: self.replay_payload.as_deref().map(any),
            org_unit: self.org_unit.clone(),
            aggregate: self.aggregate.clone(),
        }
    }
}

/// What a replay is to apply, after the caller's permission and scope are checked.
pub struct Replay {
    pub consumer: String,
    pub position: i64,
    pub corrected: Option<Any>,
    pub principal: std::sync::Arc<Principal>,
}

impl Replay {
    /// A `ReplayDeadLetter` request of `principal` (who needs `events.admin`).
    pub fn parse(
        principal: std::sync::Arc<Principal>,
        request: pb::ReplayDeadLetterRequest,
    ) -> Result<Self, ServiceError> {
        principal.require(Permission::EventsAdmin)?;
        let (consumer, position) = DeadLetter::parse_name(&request.name)?;
        // A corrected payload can name any complaint of any unit, which only an operator of the
        // whole platform may act on; a unit's operator replays what was received.
        if request.payload.is_some() && !principal.is_service() && principal.org_unit != crate::names::ROOT_ORG_UNIT {
            return Err(ServiceError::PermissionDenied(
                "only an operator of the whole platform may replay a dead letter with a corrected payload".to_owned(),
            ));
        }
        Ok(Self { consumer, position, corrected: request.payload, principal })
    }

    /// Checks the loaded dead letter against the caller and returns the event to apply, or
    /// `None` when it was replayed already (a replay applies at most once).
    pub fn event_of(&self, stored: &DeadLetter) -> Result<Option<Event>, ServiceError> {
        if !self.principal.covers(&stored.org_unit) && !self.principal.is_service() {
            return Err(self.not_found());
        }
        if stored.replay_time_us.is_some() {
            return Ok(None);
        }
        stored.event(self.corrected.as_ref()).map(Some)
    }

    /// There is no such dead letter (or none the caller may see).
    pub fn not_found(&self) -> ServiceError {
        ServiceError::NotFound {
            resource: "dead letter",
            name: format!("consumers/{}/deadLetters/{}", self.consumer, self.position),
        }
    }

    /// The corrected payload's bytes, as [`MARK_REPLAYED`] records them.
    pub fn replay_payload(&self) -> Option<Vec<u8>> {
        self.corrected.as_ref().map(|any| any.value.clone())
    }

    /// A replay of a dead letter while an earlier one of the same aggregate is outstanding.
    pub fn waits_for(earlier: i64) -> ServiceError {
        ServiceError::failed_precondition(
            "DEAD_LETTER_WAITS",
            format!("an earlier event of the same aggregate is a dead letter too; replay position {earlier} first"),
        )
    }

    /// The error a replay that fails again reports (nothing of it is written).
    pub fn still_fails(error: &str) -> ServiceError {
        ServiceError::failed_precondition(
            "DEAD_LETTER_STILL_FAILS",
            format!("the event still cannot be applied: {error}"),
        )
    }
}

/// `ListDeadLetters` over a consumer's store: the caller needs `events.admin` and sees the
/// dead letters of the organisation units it covers.
pub async fn list(
    pool: &Pool,
    principal: &Principal,
    request: &pb::ListDeadLettersRequest,
) -> Result<pb::ListDeadLettersResponse, ServiceError> {
    principal.require(Permission::EventsAdmin)?;
    let mut v = Violations::new();
    let size = page_size(request.page_size, &mut v);
    let after: Option<Cursor> = decode_token(&request.page_token, &mut v);
    v.into_result()?;
    if !principal.is_service() && principal.org_unit.is_empty() {
        // A principal without a unit covers nothing.
        return Ok(pb::ListDeadLettersResponse::default());
    }
    let consumer = Some(request.consumer.clone()).filter(|c| !c.is_empty());
    let scope = if principal.is_service() { None } else { principal.scope() };
    let (after_position, after_consumer) = after.unzip();
    let limit = i64::from(size) + 1;
    let after = after_consumer.as_deref().zip(after_position);
    let list = |backend| list_sql(backend, consumer.as_deref(), request.show_replayed, after, scope.as_deref(), limit);
    let mut rows = match pool {
        Pool::Sqlite(pool) => list(Backend::Sqlite).query_as::<_, DeadLetter>().fetch_all(pool).await,
        Pool::Postgres(pool) => list(Backend::Postgres).query_as::<_, DeadLetter>().fetch_all(pool).await,
    }
    .map_err(anyhow::Error::from)?;
    let next_page_token = finish_page(&mut rows, size, |d| (d.position, d.consumer.clone()));
    Ok(pb::ListDeadLettersResponse { dead_letters: rows.iter().map(DeadLetter::to_proto).collect(), next_page_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(DeadLetter::parse_name("consumers/intake/deadLetters/42").ok(), Some(("intake".to_owned(), 42)));
        for bad in
            ["consumers//deadLetters/1", "consumers/intake/deadLetters/x", "cases/1", "consumers/a/b/deadLetters/1"]
        {
            assert!(DeadLetter::parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_corrected_payload_must_be_of_the_events_type() {
        let event = Event {
            position: 7,
            event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
            payload: Some(Any { type_url: String::new(), value: vec![1, 2] }),
            ..Event::default()
        };
        let d = DeadLetter::of("intake", &event, "garbled".to_owned());
        let wrong =
            Any { type_url: "type.googleapis.com/redress.intake.v1.ComplaintWithdrawn".to_owned(), value: vec![] };
        assert!(d.event(Some(&wrong)).is_err());
        let prefix =
            Any { type_url: "type.googleapis.com/redress.intake.v1.ComplaintAcceptedX".to_owned(), value: vec![] };
        assert!(d.event(Some(&prefix)).is_err());
        let short = Any { type_url: "/redress.intake.v1.ComplaintAccepted".to_owned(), value: vec![9] };
        assert!(d.event(Some(&short)).is_ok());
        let right =
            Any { type_url: "type.googleapis.com/redress.intake.v1.ComplaintAccepted".to_owned(), value: vec![9] };
        assert_eq!(d.event(Some(&right)).ok().and_then(|e| e.payload).map(|p| p.value), Some(vec![9]));
        assert_eq!(d.event(None).ok().and_then(|e| e.payload).map(|p| p.value), Some(vec![1, 2]));
    }
}
