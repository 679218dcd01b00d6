//! Conversions between protobuf timestamps and UTC instants. Storage keeps UTC microseconds.

use std::sync::{Arc, Mutex};

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

/// Where a service reads the current instant from: the system clock, or an instant set by hand
/// so that what depends on the date (deadlines, review windows) can be exercised on any date.
/// Clones share one setting.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    fixed: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock ([`now`]) until [`Clock::set`] stands it still.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock standing at `at`.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        let clock = Self::default();
        clock.set(at);
        clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.fixed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).unwrap_or_else(now)
    }

    /// Stands this clock (and every clone of it) at `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.fixed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(from_micros(to_micros(at)));
    }
}
