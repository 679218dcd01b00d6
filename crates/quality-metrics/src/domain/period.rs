//! Days, months and periods as the rollups count them: a day is its number since 1970-01-01 in
//! the institution's zone; a month cell is keyed by the number of its first day.

use chrono::{Datelike, NaiveDate};
use redress_proto::redress::metrics::v1::Granularity;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Longest period a query may cover, in days.
pub const MAX_DAYS: i32 = 3 * 366;

pub fn day_number(date: NaiveDate) -> i32 {
    i32::try_from((date - EPOCH).num_days()).unwrap_or(if date < EPOCH { i32::MIN } else { i32::MAX })
}

pub fn date_of(day: i32) -> NaiveDate {
    EPOCH.checked_add_signed(chrono::TimeDelta::days(i64::from(day))).unwrap_or(EPOCH)
}

pub fn format_day(day: i32) -> String {
    date_of(day).format("%Y-%m-%d").to_string()
}

/// The first day of the month `day` is in.
pub fn month_start(day: i32) -> i32 {
    let date = date_of(day);
    day_number(date.with_day(1).unwrap_or(date))
}

/// The last day of the month `day` is in.
pub fn month_end(day: i32) -> i32 {
    let date = date_of(day);
    let (y, m) = if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).map_or(day, |next| day_number(next) - 1)
}

/// Parses "YYYY-MM-DD".
pub fn parse_day(value: &str) -> Option<i32> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok().map(day_number)
}

/// Parses "YYYY-MM" into the month's first day.
pub fn parse_month(value: &str) -> Option<i32> {
    NaiveDate::parse_from_str(&format!("{}-01", value.trim()), "%Y-%m-%d").ok().map(day_number)
}

pub fn format_month(day: i32) -> String {
    date_of(day).format("%Y-%m").to_string()
}

/// Days `first..=last`, both in the institution's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub first: i32,
    pub last: i32,
}

impl Days {
    pub fn new(first: i32, last: i32) -> Self {
        Self { first, last }
    }

    pub fn count(&self) -> i32 {
        self.last - self.first + 1
    }

    /// The quarter "YYYY-Qn".
    pub fn quarter(value: &str) -> Option<Self> {
        let (year, q) = value.trim().split_once(['-', 'Q', 'q']).map(|(y, q)| (y, q.trim_start_matches(['Q', 'q'])))?;
        let (year, q): (i32, u32) = (year.parse().ok()?, q.parse().ok()?);
        if !(1..=4).contains(&q) {
            return None;
        }
        let first = NaiveDate::from_ymd_opt(year, (q - 1) * 3 + 1, 1)?;
        let next = if q == 4 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, q * 3 + 1, 1)?
        };
        Some(Self::new(day_number(first), day_number(next) - 1))
    }

    pub fn to_proto(self) -> redress_proto::redress::metrics::v1::Period {
        redress_proto::redress::metrics::v1::Period {
            start_date: format_day(self.first),
            end_date: format_day(self.last),
        }
    }

    /// The buckets of a series over these days, each cut to them.
    pub fn buckets(self, granularity: Granularity) -> Vec<Days> {
        let mut out = Vec::new();
        let mut start = self.first;
        while start <= self.last {
            let date = date_of(start);
            let end = match granularity {
                Granularity::Week => start + (6 - date.weekday().num_days_from_monday() as i32),
                Granularity::Month => month_end(start),
                Granularity::Quarter => {
                    let q = (date.month() - 1) / 3;
                    let quarter = Days::quarter(&format!("{}-Q{}", date.year(), q + 1));
                    quarter.map_or(start, |q| q.last)
                }
                Granularity::Day | Granularity::Unspecified => start,
            };
            let end = end.min(self.last);
            out.push(Days::new(start, end));
            start = end + 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> i32 {
        parse_day(s).unwrap_or_default()
    }

    #[test]
    fn months_and_quarters() {
        assert_eq!(month_start(d("2026-02-17")), d("2026-02-01"));
        assert_eq!(month_end(d("2026-02-17")), d("2026-02-28"));
        assert_eq!(month_end(d("2026-12-02")), d("2026-12-31"));
        assert_eq!(Days::quarter("2026-Q1"), Some(Days::new(d("2026-01-01"), d("2026-03-31"))));
        assert_eq!(Days::quarter("2026Q4"), Some(Days::new(d("2026-10-01"), d("2026-12-31"))));
        assert_eq!(Days::quarter("2026-Q5"), None);
        assert_eq!(format_day(d("2026-07-04")), "2026-07-04");
        assert_eq!(parse_month("2026-03"), Some(d("2026-03-01")));
    }

    #[test]
    fn buckets_are_cut_to_the_period() {
        let days = Days::new(d("2026-01-28"), d("2026-04-02"));
        let months = days.buckets(Granularity::Month);
        assert_eq!(months.len(), 4);
        assert_eq!(months[0], Days::new(d("2026-01-28"), d("2026-01-31")));
        assert_eq!(months[3], Days::new(d("2026-04-01"), d("2026-04-02")));
        let weeks = Days::new(d("2026-03-04"), d("2026-03-16")).buckets(Granularity::Week);
        // Wed 4 March .. Sun 8; Mon 9 .. Sun 15; Mon 16.
        assert_eq!(
            weeks,
            vec![
                Days::new(d("2026-03-04"), d("2026-03-08")),
                Days::new(d("2026-03-09"), d("2026-03-15")),
                Days::new(d("2026-03-16"), d("2026-03-16")),
            ]
        );
        assert_eq!(days.buckets(Granularity::Quarter).len(), 2);
        assert_eq!(days.buckets(Granularity::Day).len() as i32, days.count());
    }
}
