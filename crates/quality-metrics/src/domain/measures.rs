//! What a rollup cell counts: one fixed vector of additive counters, so that any set of cells
//! sums to the figures of its union, and a histogram of times to resolve from which the
//! percentiles are read.
//!
//! Received counters (`R_FIELDS`) are counted on the day a complaint was received; the rest on
//! the day its case was resolved. New counters are appended at the end: a stored vector shorter
//! than [`LEN`] reads as zeros beyond its end.

use prost::Message;

/// Complaints received.
pub const RECEIVED: usize = 0;
/// Received complaints that repeat an earlier one (D-CASE-5).
pub const RECURRENCES: usize = 1;
/// Received complaints with a first response recorded.
pub const RESPONDED: usize = 2;
/// Seconds from receipt to first response, summed over those.
pub const RESPONSE_SECONDS: usize = 3;
/// Received complaints whose case is still open (for the ageing of the backlog).
pub const OPEN: usize = 4;
/// Cases resolved: decided, or closed or withdrawn without a decision.
pub const RESOLVED: usize = 5;
/// Resolved by the complainant's withdrawal.
pub const WITHDRAWN: usize = 6;
/// Resolved with a decision.
pub const DECIDED: usize = 7;
/// Decided in the complainant's favour.
pub const UPHELD: usize = 8;
/// Decided with compensation.
pub const REDRESS_CASES: usize = 9;
/// Compensation decided, minor units.
pub const REDRESS_MINOR: usize = 10;
/// Resolved with no clock ever breached.
pub const ON_TIME: usize = 11;
/// Decided once: no review, no reopening, and the complainant says resolved.
pub const ONE_TIME: usize = 12;
/// Resolved with a survey answered.
pub const SURVEYED: usize = 13;
/// Of those, scoring 4 or 5.
pub const SATISFIED: usize = 14;
/// Survey scores summed.
pub const SCORE_SUM: usize = 15;
/// Resolved after a review (核查) was asked for.
pub const REVIEWED: usize = 16;
/// Resolved after being reopened.
pub const REOPENED: usize = 17;
/// Resolved by the close of the third business day after receipt (DISP summary resolution).
pub const WITHIN_3_BUSINESS_DAYS: usize = 18;
/// Resolved within eight weeks of receipt.
pub const WITHIN_8_WEEKS: usize = 19;
/// Seconds from receipt to resolution, summed over timed cases.
pub const RESOLVE_SECONDS: usize = 20;
/// Resolved cases with a time to resolve (not withdrawn, not merged into another).
pub const TIMED: usize = 21;
/// First bucket of the time-to-resolve histogram.
pub const RESOLVE_HISTOGRAM: usize = 22;

/// Upper bounds of the time-to-resolve histogram's buckets, in hours; a last bucket holds
/// everything longer.
pub const HOUR_BOUNDS: [i64; 36] = [
    1, 2, 4, 8, 12, 16, 20, 24, 36, 48, 72, 96, 120, 144, 168, 192, 216, 240, 264, 288, 312, 336, 360, 408, 480, 552,
    672, 720, 840, 1008, 1176, 1344, 1440, 2160, 4320, 8760,
];

/// Counters in a vector.
pub const LEN: usize = RESOLVE_HISTOGRAM + HOUR_BOUNDS.len() + 1;

/// Counters counted on the day of receipt.
pub const R_FIELDS: [usize; 5] = [RECEIVED, RECURRENCES, RESPONDED, RESPONSE_SECONDS, OPEN];

/// The histogram bucket of a time to resolve.
pub fn bucket_of(seconds: i64) -> usize {
    let hours_up = (seconds.max(0) + 3599) / 3600;
    HOUR_BOUNDS.iter().position(|bound| hours_up <= *bound).unwrap_or(HOUR_BOUNDS.len())
}

/// The counters of a cell, of a fact, or of a sum of cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measures(pub [i64; LEN]);

impl Default for Measures {
    fn default() -> Self {
        Self([0; LEN])
    }
}

#[derive(Clone, PartialEq, Message)]
struct Packed {
    #[prost(sint64, repeated, tag = "1")]
    values: Vec<i64>,
}

impl Measures {
    pub fn get(&self, field: usize) -> i64 {
        self.0[field]
    }

    pub fn set(&mut self, field: usize, value: i64) {
        self.0[field] = value;
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    pub fn add(&mut self, other: &Measures) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    pub fn sub(&mut self, other: &Measures) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a -= b;
        }
    }

    /// The counters counted on the day of receipt (`received`) or on the day of resolution.
    pub fn part(&self, received: bool) -> Measures {
        let mut out = Measures::default();
        for (i, v) in self.0.iter().enumerate() {
            if R_FIELDS.contains(&i) == received {
                out.0[i] = *v;
            }
        }
        out
    }

    /// The time-to-resolve histogram.
    pub fn histogram(&self) -> &[i64] {
        &self.0[RESOLVE_HISTOGRAM..]
    }

    /// The nearest-rank `percent` percentile of the histogram: the upper bound (hours) of the
    /// bucket holding it, and how many cases lie in that bucket or below; `None` when empty.
    pub fn percentile(&self, percent: u32) -> Option<(i64, i64)> {
        let total: i64 = self.histogram().iter().sum();
        if total <= 0 {
            return None;
        }
        // Nearest rank: the smallest value with at least `percent`% of cases at or below it.
        let rank = ((i64::from(percent) * total + 99) / 100).max(1);
        let mut seen = 0;
        for (i, n) in self.histogram().iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = HOUR_BOUNDS.get(i).copied().unwrap_or(HOUR_BOUNDS[HOUR_BOUNDS.len() - 1]);
                return Some((bound, seen));
            }
        }
        None
    }

    /// Compact bytes: varints, trailing zeros dropped.
    pub fn encode(&self) -> Vec<u8> {
        let used = self.0.iter().rposition(|v| *v != 0).map_or(0, |i| i + 1);
        Packed { values: self.0[..used].to_vec() }.encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        let packed = Packed::decode(bytes)?;
        anyhow::ensure!(
            packed.values.len() <= LEN,
            "a rollup cell has {} counters, more than {LEN}",
            packed.values.len()
        );
        let mut out = Measures::default();
        out.0[..packed.values.len()].copy_from_slice(&packed.values);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn measures_round_trip_and_add_up() {
        let mut a = Measures::default();
        a.set(RECEIVED, 3);
        a.set(RESOLVE_HISTOGRAM + 4, 2);
        let b = Measures::decode(&a.encode()).unwrap();
        assert_eq!(a, b);
        assert_eq!(Measures::decode(&Measures::default().encode()).unwrap(), Measures::default());
        let mut c = b.clone();
        c.add(&a);
        assert_eq!(c.get(RECEIVED), 6);
        c.sub(&a);
        assert_eq!(c, a);
        assert_eq!(a.part(true).get(RECEIVED), 3);
        assert_eq!(a.part(false).get(RECEIVED), 0);
        assert_eq!(a.part(false).get(RESOLVE_HISTOGRAM + 4), 2);
    }

    #[test]
    fn buckets_round_hours_up() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(3600), 0);
        assert_eq!(bucket_of(3601), 1);
        assert_eq!(bucket_of(24 * 3600), 7);
        assert_eq!(bucket_of(10_000 * 3600), HOUR_BOUNDS.len());
    }

    #[test]
    fn percentiles_are_nearest_rank_bucket_bounds() {
        let mut m = Measures::default();
        // 10 cases: 6 within 1 hour, 3 within 24 hours, 1 within 48 hours.
        m.set(RESOLVE_HISTOGRAM + bucket_of(1800), 6);
        m.set(RESOLVE_HISTOGRAM + bucket_of(20 * 3600), 3);
        m.set(RESOLVE_HISTOGRAM + bucket_of(47 * 3600), 1);
        assert_eq!(m.percentile(50), Some((1, 6)));
        assert_eq!(m.percentile(90), Some((20, 9)));
        assert_eq!(m.percentile(91), Some((48, 10)));
        assert_eq!(Measures::default().percentile(50), None);
    }
}
