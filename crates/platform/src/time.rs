//! Conversions between protobuf timestamps and UTC instants. Storage keeps UTC microseconds.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;

pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// `None` when the timestamp is out of range or its nanos are not normalised.
pub fn from_timestamp(t: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok()?;
    Utc.timestamp_opt(t.seconds, nanos).single()
}

pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Current instant truncated to microseconds, so it round-trips through storage unchanged.
pub fn now() -> DateTime<Utc> {
    from_micros(to_micros(Utc::now()))
}
