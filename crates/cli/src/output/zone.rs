//! Times as a handler reads them: on the institution's wall clock, to the minute, naming the
//! zone; and a day deadline as its last day, the way D-SLA-5 words it ("ends at 24:00").

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use prost_types::Timestamp;

/// Where days are counted when nothing names a zone (D-SLA-5).
const DEFAULT_ZONE: &str = "Asia/Shanghai";

/// The time zone times are shown in.
pub(super) struct Zone {
    tz: Tz,
    /// How each time names its zone.
    label: String,
}

impl Zone {
    /// The zone named, the default when the name is empty. A name this build does not know
    /// still shows every time, in UTC and saying so, rather than hiding the deadline.
    pub(super) fn named(name: &str) -> Self {
        let name = if name.is_empty() { DEFAULT_ZONE } else { name };
        match name.parse::<Tz>() {
            Ok(tz) => Self { tz, label: format!("({name})") },
            Err(_) => Self { tz: Tz::UTC, label: format!("(UTC; unknown time zone {name})") },
        }
    }

    /// An instant, e.g. `2026-12-10 14:30 (Asia/Shanghai)`, or `-` when there is none.
    pub(super) fn instant(&self, t: Option<&Timestamp>) -> String {
        self.due(t, false)
    }

    /// A due time; `days` when its clock counts working or calendar days. Such a period ends at
    /// 24:00 of its last day (D-SLA-5), so local midnight is shown as the day before at 24:00:
    /// `00:00` of the 11th would be read as the 11th, a day later than the law's wording, and
    /// the same instant in UTC can fall on yet another date.
    pub(super) fn due(&self, t: Option<&Timestamp>, days: bool) -> String {
        let Some(t) = t else { return "-".to_owned() };
        let Some(utc) = u32::try_from(t.nanos).ok().and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos)) else {
            return format!("{}s", t.seconds);
        };
        let local = utc.with_timezone(&self.tz);
        if days
            && self.starts_a_day(utc)
            && let Some(last_day) = local.date_naive().pred_opt()
        {
            return format!("{} 24:00 {}", last_day.format("%Y-%m-%d"), self.label);
        }
        format!("{} {}", local.format("%Y-%m-%d %H:%M"), self.label)
    }

    /// Whether `t` is the first instant of its local date. That is midnight, except where a
    /// clock change skips midnight and the day starts at 01:00; where midnight happens twice,
    /// only the first one starts the day. The calendar ends a day period at that same instant.
    fn starts_a_day(&self, t: DateTime<Utc>) -> bool {
        let Some(a_second_before) = t.checked_sub_signed(TimeDelta::seconds(1)) else { return false };
        t.timestamp_subsec_nanos() == 0
            && a_second_before.with_timezone(&self.tz).date_naive() < t.with_timezone(&self.tz).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(rfc3339).ok().map(|t| Timestamp { seconds: t.timestamp(), nanos: 0 })
    }

    /// Printed in UTC as 16:00 on the 10th, a period that in Shanghai ends with the 10th.
    #[test]
    fn a_day_deadline_at_local_midnight_is_the_previous_day_at_24_00() {
        let zone = Zone::named("Asia/Shanghai");
        assert_eq!(zone.due(at("2026-12-10T16:00:00Z").as_ref(), true), "2026-12-10 24:00 (Asia/Shanghai)");
        // Across a month and a year end.
        assert_eq!(zone.due(at("2026-12-31T16:00:00Z").as_ref(), true), "2026-12-31 24:00 (Asia/Shanghai)");
        assert_eq!(zone.due(at("2026-02-28T16:00:00Z").as_ref(), true), "2026-02-28 24:00 (Asia/Shanghai)");
    }

    #[test]
    fn hour_deadlines_and_other_instants_are_wall_clock_times() {
        let zone = Zone::named("Asia/Shanghai");
        assert_eq!(zone.due(at("2026-12-10T06:30:00Z").as_ref(), false), "2026-12-10 14:30 (Asia/Shanghai)");
        // Midnight of an hour clock is the start of that day, as it says.
        assert_eq!(zone.due(at("2026-12-10T16:00:00Z").as_ref(), false), "2026-12-11 00:00 (Asia/Shanghai)");
        assert_eq!(zone.instant(at("2026-12-10T16:00:00Z").as_ref()), "2026-12-11 00:00 (Asia/Shanghai)");
        // A day deadline off midnight (a clock paused part of a day) keeps its time.
        assert_eq!(zone.due(at("2026-12-10T06:30:00Z").as_ref(), true), "2026-12-10 14:30 (Asia/Shanghai)");
        assert_eq!(zone.instant(None), "-");
    }

    #[test]
    fn no_zone_named_is_the_default() {
        let zone = Zone::named("");
        assert_eq!(zone.due(at("2026-12-10T16:00:00Z").as_ref(), true), "2026-12-10 24:00 (Asia/Shanghai)");
    }

    /// Midnight moves by an hour in UTC when British Summer Time starts (2026-03-29).
    #[test]
    fn midnight_follows_the_zones_offset_across_a_dst_change() {
        let zone = Zone::named("Europe/London");
        assert_eq!(zone.due(at("2026-03-29T00:00:00Z").as_ref(), true), "2026-03-28 24:00 (Europe/London)");
        assert_eq!(zone.due(at("2026-03-29T23:00:00Z").as_ref(), true), "2026-03-29 24:00 (Europe/London)");
        // 23:00 UTC before the change is 23:00 on the wall, not the end of a day.
        assert_eq!(zone.due(at("2026-03-27T23:00:00Z").as_ref(), true), "2026-03-27 23:00 (Europe/London)");
        assert_eq!(zone.instant(at("2026-03-29T01:30:00Z").as_ref()), "2026-03-29 02:30 (Europe/London)");
    }

    /// Chile's summer time starts at midnight (2026-09-06): that day begins at 01:00, and a
    /// period ending with the 5th ends then.
    #[test]
    fn a_day_that_skips_midnight_ends_the_previous_one_when_it_begins() {
        let zone = Zone::named("America/Santiago");
        assert_eq!(zone.due(at("2026-09-06T04:00:00Z").as_ref(), true), "2026-09-05 24:00 (America/Santiago)");
        assert_eq!(zone.instant(at("2026-09-06T04:00:00Z").as_ref()), "2026-09-06 01:00 (America/Santiago)");
        assert_eq!(zone.due(at("2026-09-06T05:00:00Z").as_ref(), true), "2026-09-06 02:00 (America/Santiago)");
    }

    #[test]
    fn an_unknown_zone_shows_utc_and_the_name_given() {
        let zone = Zone::named("Mars/Olympus_Mons");
        assert_eq!(
            zone.due(at("2026-12-10T00:00:00Z").as_ref(), true),
            "2026-12-09 24:00 (UTC; unknown time zone Mars/Olympus_Mons)"
        );
        assert_eq!(
            zone.instant(at("2026-12-09T16:00:00Z").as_ref()),
            "2026-12-09 16:00 (UTC; unknown time zone Mars/Olympus_Mons)"
        );
    }
}
