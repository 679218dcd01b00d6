//! Properties of the counting rule over the shipped 2025/2026 calendars (and, for clocks
//! paused late in 2026, a plain 2027 test year).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use proptest::prelude::*;
use redress_calendar::{DeadlineCalculator, Period, WorkingCalendar};

static CALC: LazyLock<DeadlineCalculator> =
    LazyLock::new(|| DeadlineCalculator::new(Arc::new(WorkingCalendar::china()), chrono_tz::Asia::Shanghai));

/// The shipped years plus a plain 2027 (weekends only), so that clocks paused late in 2026 can
/// still be counted to their end.
static PAUSE_CALC: LazyLock<DeadlineCalculator> = LazyLock::new(|| {
    let test_year = WorkingCalendar::from_year_toml(&[("test/2027.toml", "year = 2027\nsource = \"test\"\n")]).unwrap();
    DeadlineCalculator::new(Arc::new(WorkingCalendar::china().merged(test_year)), chrono_tz::Asia::Shanghai)
});

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

fn day_clock() -> impl Strategy<Value = Period> {
    prop_oneof![(1u32..=15).prop_map(Period::WorkingDays), (1u32..=30).prop_map(Period::CalendarDays)]
}

/// Minutes: a few, up to a day, up to ten days.
fn pause_length() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..=10, 1i64..=24 * 60, 1i64..=10 * 24 * 60]
}

/// One to three pauses after `at`, each `(gap, length)` in minutes from the previous resume.
fn pauses() -> impl Strategy<Value = Vec<(i64, i64)>> {
    proptest::collection::vec((0i64..10 * 24 * 60, pause_length()), 1..=3)
}

fn laid_out(at: DateTime<Utc>, spec: &[(i64, i64)]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut from = at;
    spec.iter()
        .map(|(gap, length)| {
            let paused = from + TimeDelta::minutes(*gap);
            from = paused + TimeDelta::minutes(*length);
            (paused, from)
        })
        .collect()
}

/// What a clock started at `at` and due at `due` has left at `t`: for an hour clock the time
/// to its due instant in seconds; for a day clock the days it counts from the date of `t`
/// (which counts as a day left, D-SLA-9) to its last day, the start date never counted.
fn left(at: DateTime<Utc>, period: Period, due: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    let first_counted = PAUSE_CALC.acceptance_date(at).succ_opt().unwrap();
    let counted = |d: &NaiveDate| match period {
        Period::WorkingDays(_) => PAUSE_CALC.calendar().is_working_day(*d).unwrap(),
        _ => true,
    };
    match period {
        Period::Hours(_) => (due - t).num_seconds().max(0),
        Period::WorkingDays(_) | Period::CalendarDays(_) => {
            let last = last_counted_day(due);
            let from = PAUSE_CALC.acceptance_date(t).max(first_counted);
            i64::try_from(from.iter_days().take_while(|d| *d <= last).filter(counted).count()).unwrap()
        }
    }
}

/// The last day of a day clock one day longer than one whose last day is `last`.
fn one_day_later(period: Period, last: NaiveDate) -> NaiveDate {
    let calendar = PAUSE_CALC.calendar();
    match period {
        Period::WorkingDays(_) => calendar.add_working_days(last, 1).unwrap(),
        _ => calendar.next_working_day_on_or_after(last.succ_opt().unwrap()).unwrap(),
    }
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
        let plain = PAUSE_CALC.due(at, period).unwrap();
        let with_pause = PAUSE_CALC.due_with_pauses(at, period, &[(paused, resumed)]).unwrap();
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
        prop_assert_eq!(PAUSE_CALC.due_with_pauses(at, period, &[]), PAUSE_CALC.due(at, period));
    }

    #[test]
    fn a_pause_and_resume_on_the_same_day_moves_no_day_clock(
        at in instant(),
        n in 1u32..=15,
        offset_days in 0u64..10,
    ) {
        let day = PAUSE_CALC.acceptance_date(at).checked_add_days(Days::new(offset_days)).unwrap();
        let tz = PAUSE_CALC.time_zone();
        let local = |h| day.and_hms_opt(h, 0, 0).unwrap().and_local_timezone(tz).unwrap().with_timezone(&Utc);
        let (paused, resumed) = (local(9).max(at), local(17).max(at));
        for period in [Period::WorkingDays(n), Period::CalendarDays(n)] {
            prop_assert_eq!(PAUSE_CALC.due_with_pauses(at, period, &[(paused, resumed)]), PAUSE_CALC.due(at, period));
        }
    }

    #[test]
    fn after_a_pause_the_time_left_is_at_least_what_was_left(
        at in instant(),
        period in clock(),
        spec in pauses(),
    ) {
        let pauses = laid_out(at, &spec);
        for (i, (paused, resumed)) in pauses.iter().copied().enumerate() {
            let before = PAUSE_CALC.due_with_pauses(at, period, &pauses[..i]).unwrap();
            let after = PAUSE_CALC.due_with_pauses(at, period, &pauses[..=i]).unwrap();
            let (had, has) = (left(at, period, before, paused), left(at, period, after, resumed));
            prop_assert!(
                has >= had,
                "{period:?} due {before}, paused {paused} with {had} left, resumed {resumed}: due {after}, {has} left"
            );
        }
    }

    #[test]
    fn a_pause_on_the_last_day_leaves_a_day_to_run(
        at in instant(),
        period in day_clock(),
        minute in 0i64..24 * 60,
        length in pause_length(),
    ) {
        let due = PAUSE_CALC.due(at, period).unwrap();
        let last = last_counted_day(due).and_hms_opt(0, 0, 0).unwrap().and_local_timezone(PAUSE_CALC.time_zone());
        let paused = last.unwrap().with_timezone(&Utc) + TimeDelta::minutes(minute);
        let resumed = paused + TimeDelta::minutes(length);
        let after = PAUSE_CALC.due_with_pauses(at, period, &[(paused, resumed)]).unwrap();
        prop_assert!(after > resumed, "{period:?} due {due} paused {paused} resumed {resumed}: due {after}");
        prop_assert!(left(at, period, after, resumed) >= 1);
    }

    #[test]
    fn a_pause_within_one_day_extends_a_day_clock_by_at_most_one_day(
        at in instant(),
        period in day_clock(),
        offset_minutes in 0i64..20 * 24 * 60,
        length_minutes in 1i64..=24 * 60,
    ) {
        let paused = at + TimeDelta::minutes(offset_minutes);
        let resumed = paused + TimeDelta::minutes(length_minutes);
        let plain = last_counted_day(PAUSE_CALC.due(at, period).unwrap());
        let with_pause = last_counted_day(PAUSE_CALC.due_with_pauses(at, period, &[(paused, resumed)]).unwrap());
        prop_assert!(with_pause >= plain);
        prop_assert!(
            with_pause <= one_day_later(period, plain),
            "{period:?} ending {plain}, paused {paused}, resumed {resumed}: ends {with_pause}"
        );
    }

    #[test]
    fn an_hour_clock_moves_by_exactly_the_paused_time(at in instant(), hours in 1u32..=48, spec in pauses()) {
        let period = Period::Hours(hours);
        let pauses = laid_out(at, &spec);
        for (i, (paused, resumed)) in pauses.iter().copied().enumerate() {
            let before = PAUSE_CALC.due_with_pauses(at, period, &pauses[..i]).unwrap();
            let after = PAUSE_CALC.due_with_pauses(at, period, &pauses[..=i]).unwrap();
            let moved = if paused < before { resumed - paused } else { TimeDelta::zero() };
            prop_assert_eq!(after - before, moved);
        }
    }
}
