//! Properties of the counting rule over the shipped 2025/2026 calendars.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use proptest::prelude::*;
use redress_calendar::{DeadlineCalculator, Period, WorkingCalendar};

static CALC: LazyLock<DeadlineCalculator> =
    LazyLock::new(|| DeadlineCalculator::new(Arc::new(WorkingCalendar::china()), chrono_tz::Asia::Shanghai));

/// 2025-01-01 00:00 and 2026-12-01 00:00 Shanghai, as Unix seconds.
const START: i64 = 1_735_660_800;
const END: i64 = 1_796_054_400;

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (START..END).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

/// The local date whose 24:00 is `due`, checking `due` is a local midnight.
fn last_counted_day(due: DateTime<Utc>) -> NaiveDate {
    let local = due.with_timezone(&CALC.time_zone());
    assert_eq!(local.time(), NaiveTime::MIN, "{due} is not a local midnight");
    local.date_naive().pred_opt().unwrap()
}

#[test]
fn range_constants_are_what_they_claim() {
    let tz = chrono_tz::Asia::Shanghai;
    let start = DateTime::from_timestamp(START, 0).unwrap().with_timezone(&tz);
    let end = DateTime::from_timestamp(END, 0).unwrap().with_timezone(&tz);
    assert_eq!(start.to_rfc3339(), "2025-01-01T00:00:00+08:00");
    assert_eq!(end.to_rfc3339(), "2026-12-01T00:00:00+08:00");
}

proptest! {
    #[test]
    fn working_day_deadline_counts_exactly_n_working_days(at in instant(), n in 1u32..=20) {
        let due = CALC.due(at, Period::WorkingDays(n)).unwrap();
        let accepted = CALC.acceptance_date(at);
        let last = last_counted_day(due);
        prop_assert!(last > accepted);
        prop_assert_eq!(CALC.calendar().is_working_day(last), Ok(true));
        let counted = accepted
            .iter_days()
            .skip(1)
            .take_while(|d| *d <= last)
            .filter(|d| CALC.calendar().is_working_day(*d).unwrap())
            .count();
        prop_assert_eq!(counted, n as usize);
    }

    #[test]
    fn working_day_deadline_is_monotone_in_n(at in instant(), n in 1u32..=20, m in 1u32..=20) {
        let (n, m) = (n.min(m), n.max(m));
        let a = CALC.due(at, Period::WorkingDays(n)).unwrap();
        let b = CALC.due(at, Period::WorkingDays(m)).unwrap();
        prop_assert!(a <= b);
        if n < m {
            prop_assert!(a < b);
        }
    }

    #[test]
    fn deadlines_are_monotone_in_acceptance(x in instant(), y in instant(), n in 1u32..=20) {
        let (x, y) = (x.min(y), x.max(y));
        for period in [Period::WorkingDays(n), Period::CalendarDays(n), Period::Hours(n)] {
            prop_assert!(CALC.due(x, period).unwrap() <= CALC.due(y, period).unwrap());
        }
    }

    #[test]
    fn calendar_day_deadline_ends_on_first_working_day_from_day_n(at in instant(), n in 1u32..=20) {
        let due = CALC.due(at, Period::CalendarDays(n)).unwrap();
        let nominal = CALC.acceptance_date(at).checked_add_days(Days::new(n.into())).unwrap();
        let last = last_counted_day(due);
        prop_assert!(last >= nominal);
        prop_assert_eq!(CALC.calendar().is_working_day(last), Ok(true));
        // Extended only over rest days: nothing in [nominal, last) is a working day.
        for d in nominal.iter_days().take_while(|d| *d < last) {
            prop_assert_eq!(CALC.calendar().is_working_day(d), Ok(false));
        }
    }

    #[test]
    fn calendar_day_deadline_is_monotone_in_n(at in instant(), n in 1u32..=20, m in 1u32..=20) {
        let (n, m) = (n.min(m), n.max(m));
        let a = CALC.due(at, Period::CalendarDays(n)).unwrap();
        let b = CALC.due(at, Period::CalendarDays(m)).unwrap();
        prop_assert!(a <= b);
    }

    #[test]
    fn hour_deadline_is_exact_elapsed_time(at in instant(), n in 1u32..=20) {
        prop_assert_eq!(
            CALC.due(at, Period::Hours(n)),
            Ok(at + TimeDelta::hours(i64::from(n)))
        );
    }
}

fn clock() -> impl Strategy<Value = Period> {
    prop_oneof![
        (1u32..=48).prop_map(Period::Hours),
        (1u32..=15).prop_map(Period::WorkingDays),
        (1u32..=30).prop_map(Period::CalendarDays),
    ]
}

proptest! {
    #[test]
    fn pauses_never_bring_a_deadline_forward(
        at in instant(),
        period in clock(),
        offset_minutes in 0i64..20 * 24 * 60,
        length_minutes in 1i64..10 * 24 * 60,
    ) {
        let paused = at + TimeDelta::minutes(offset_minutes);
        let resumed = paused + TimeDelta::minutes(length_minutes);
        let plain = CALC.due(at, period).unwrap();
        let with_pause = CALC.due_with_pauses(at, period, &[(paused, resumed)]).unwrap();
        prop_assert!(with_pause >= plain);
        // Nothing is added for pauses that begin after the clock ran out.
        if paused >= plain {
            prop_assert_eq!(with_pause, plain);
        }
        if matches!(period, Period::Hours(_)) && paused < plain {
            prop_assert_eq!(with_pause, plain + (resumed - paused));
        }
    }

    #[test]
    fn no_pauses_is_the_plain_deadline(at in instant(), period in clock()) {
        prop_assert_eq!(CALC.due_with_pauses(at, period, &[]), CALC.due(at, period));
    }

    #[test]
    fn a_pause_and_resume_on_the_same_day_moves_no_day_clock(
        at in instant(),
        n in 1u32..=15,
        offset_days in 0u64..10,
    ) {
        let day = CALC.acceptance_date(at).checked_add_days(Days::new(offset_days)).unwrap();
        let tz = CALC.time_zone();
        let local = |h| day.and_hms_opt(h, 0, 0).unwrap().and_local_timezone(tz).unwrap().with_timezone(&Utc);
        let (paused, resumed) = (local(9).max(at), local(17).max(at));
        for period in [Period::WorkingDays(n), Period::CalendarDays(n)] {
            prop_assert_eq!(CALC.due_with_pauses(at, period, &[(paused, resumed)]), CALC.due(at, period));
        }
    }
}
