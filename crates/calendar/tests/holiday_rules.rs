//! The England and Wales and US holiday files against the rules that fix their dates
//! (D-SLA-10): every shipped date is derived here from weekday arithmetic and Easter, so a
//! typo in a year file, or a rule applied wrongly, fails a test rather than a deadline.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use redress_calendar::{CALENDAR_NAMES, CalendarError, WorkingCalendar};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Easter Sunday (Gregorian), by the anonymous Gregorian algorithm (Meeus/Jones/Butcher).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let dd = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - dd - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    d(year, month as u32, day as u32)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).unwrap()
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let first_of_next = if month == 12 { d(year + 1, 1, 1) } else { d(year, month + 1, 1) };
    let mut day = first_of_next.pred_opt().unwrap();
    while day.weekday() != weekday {
        day = day.pred_opt().unwrap();
    }
    day
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// England and Wales: fixed-date holidays on a weekend move to the next weekday not already
/// a holiday (so Christmas on Saturday and Boxing Day on Sunday become Monday and Tuesday).
fn england_and_wales(year: i32) -> BTreeSet<NaiveDate> {
    let easter = easter(year);
    let mut days: BTreeSet<NaiveDate> = [
        easter.pred_opt().unwrap().pred_opt().unwrap(), // Good Friday
        easter.succ_opt().unwrap(),                     // Easter Monday
        nth_weekday(year, 5, Weekday::Mon, 1),          // Early May
        last_weekday(year, 5, Weekday::Mon),            // Spring
        last_weekday(year, 8, Weekday::Mon),            // Summer
    ]
    .into();
    for fixed in [d(year, 1, 1), d(year, 12, 25), d(year, 12, 26)] {
        let mut day = fixed;
        while is_weekend(day) || days.contains(&day) {
            day = day.succ_opt().unwrap();
        }
        days.insert(day);
    }
    days
}

/// US federal holidays (5 U.S.C. 6103): fixed dates observed on the Friday before when on a
/// Saturday and the Monday after when on a Sunday, kept in the year they are observed in.
fn united_states(year: i32) -> BTreeSet<NaiveDate> {
    let mut days: BTreeSet<NaiveDate> = [
        nth_weekday(year, 1, Weekday::Mon, 3),  // Martin Luther King, Jr.
        nth_weekday(year, 2, Weekday::Mon, 3),  // Washington's Birthday
        last_weekday(year, 5, Weekday::Mon),    // Memorial Day
        nth_weekday(year, 9, Weekday::Mon, 1),  // Labor Day
        nth_weekday(year, 10, Weekday::Mon, 2), // Columbus Day
        nth_weekday(year, 11, Weekday::Thu, 4), // Thanksgiving
    ]
    .into();
    let fixed_dates = [(1, 1), (6, 19), (7, 4), (11, 11), (12, 25)].map(|(month, day)| d(year, month, day));
    // Next year's New Year's Day is observed in this year when it is a Saturday.
    for fixed in fixed_dates.into_iter().chain([d(year + 1, 1, 1)]) {
        let observed = match fixed.weekday() {
            Weekday::Sat => fixed.pred_opt().unwrap(),
            Weekday::Sun => fixed.succ_opt().unwrap(),
            _ => fixed,
        };
        if observed.year() == year {
            days.insert(observed);
        }
    }
    days
}

fn shipped_dates(calendar: &WorkingCalendar, year: i32) -> BTreeSet<NaiveDate> {
    let year = calendar.year(year).unwrap();
    assert!(year.makeup_working_days().is_empty(), "no make-up working days outside China");
    let mut dates = BTreeSet::new();
    for holiday in year.holidays() {
        assert_eq!(holiday.from, holiday.to, "{}: one day each", holiday.name);
        assert!(dates.insert(holiday.from), "{} listed twice", holiday.from);
    }
    dates
}

#[test]
fn easter_is_computed_right() {
    assert_eq!(easter(2024), d(2024, 3, 31));
    assert_eq!(easter(2025), d(2025, 4, 20));
    assert_eq!(easter(2026), d(2026, 4, 5));
    assert_eq!(easter(2027), d(2027, 3, 28));
}

#[test]
fn england_and_wales_files_follow_the_rules() {
    let cal = WorkingCalendar::england_and_wales();
    assert_eq!(cal.years(), vec![2025, 2026]);
    for year in [2025, 2026] {
        assert_eq!(shipped_dates(&cal, year), england_and_wales(year), "{year}");
    }
    // The announced dates, as a second, independent check of the rule code above.
    let announced_2025 = [(1, 1), (4, 18), (4, 21), (5, 5), (5, 26), (8, 25), (12, 25), (12, 26)];
    let announced_2026 = [(1, 1), (4, 3), (4, 6), (5, 4), (5, 25), (8, 31), (12, 25), (12, 28)];
    assert_eq!(england_and_wales(2025), announced_2025.iter().map(|(m, day)| d(2025, *m, *day)).collect());
    assert_eq!(england_and_wales(2026), announced_2026.iter().map(|(m, day)| d(2026, *m, *day)).collect());
    // 2026: Boxing Day is a Saturday and its substitute the Monday after.
    assert_eq!(d(2026, 12, 26).weekday(), Weekday::Sat);
    assert_eq!(cal.is_working_day(d(2026, 12, 28)), Ok(false));
    assert_eq!(cal.is_working_day(d(2026, 12, 29)), Ok(true));
    // 261 weekdays a year, 8 of them bank holidays.
    assert_eq!(cal.year(2025).unwrap().working_day_count(), 253);
    assert_eq!(cal.year(2026).unwrap().working_day_count(), 253);
}

#[test]
fn united_states_files_follow_the_rules() {
    let cal = WorkingCalendar::united_states();
    assert_eq!(cal.years(), vec![2025, 2026]);
    for year in [2025, 2026] {
        assert_eq!(shipped_dates(&cal, year), united_states(year), "{year}");
    }
    let published_2025 =
        [(1, 1), (1, 20), (2, 17), (5, 26), (6, 19), (7, 4), (9, 1), (10, 13), (11, 11), (11, 27), (12, 25)];
    let published_2026 =
        [(1, 1), (1, 19), (2, 16), (5, 25), (6, 19), (7, 3), (9, 7), (10, 12), (11, 11), (11, 26), (12, 25)];
    assert_eq!(united_states(2025), published_2025.iter().map(|(m, day)| d(2025, *m, *day)).collect());
    assert_eq!(united_states(2026), published_2026.iter().map(|(m, day)| d(2026, *m, *day)).collect());
    // 2026: Independence Day is a Saturday, observed on Friday 3 July.
    assert_eq!(d(2026, 7, 4).weekday(), Weekday::Sat);
    assert_eq!(cal.is_working_day(d(2026, 7, 3)), Ok(false));
    assert_eq!(cal.is_working_day(d(2026, 7, 6)), Ok(true));
    // 261 weekdays a year, 11 of them holidays.
    assert_eq!(cal.year(2025).unwrap().working_day_count(), 250);
    assert_eq!(cal.year(2026).unwrap().working_day_count(), 250);
}

#[test]
fn rule_code_handles_weekend_fixed_dates() {
    // 2021: Christmas Saturday and Boxing Day Sunday, substitutes Monday 27 and Tuesday 28.
    assert!(england_and_wales(2021).is_superset(&[d(2021, 12, 27), d(2021, 12, 28)].into()));
    // 2022: New Year's Day Saturday: the substitute is Monday 3 January in England and
    // Wales, while the US observes it on Friday 31 December 2021.
    assert!(england_and_wales(2022).contains(&d(2022, 1, 3)));
    assert!(united_states(2021).contains(&d(2021, 12, 31)));
    assert!(!united_states(2022).contains(&d(2022, 1, 1)) && united_states(2022).len() == 10);
    // 2023: New Year's Day Sunday, observed Monday 2 January.
    assert!(united_states(2023).contains(&d(2023, 1, 2)));
}

#[test]
fn years_without_a_file_are_refused_outside_china() {
    for cal in [WorkingCalendar::england_and_wales(), WorkingCalendar::united_states()] {
        let lenient = cal.clone().with_provisional_years();
        for year in [2024, 2027] {
            let date = d(year, 3, 3);
            assert_eq!(cal.is_working_day(date), Err(CalendarError::YearNotLoaded { year }));
            assert_eq!(lenient.is_working_day(date), Err(CalendarError::YearNotLoaded { year }), "no provisional rule");
            assert!(!lenient.is_provisional(year) && !lenient.counts(year));
        }
        assert_eq!(cal.add_working_days(d(2026, 12, 30), 2), Err(CalendarError::YearNotLoaded { year: 2027 }));
    }
    // China keeps its provisional years.
    assert!(WorkingCalendar::china().with_provisional_years().counts(2027));
}

#[test]
fn calendars_by_name() {
    assert_eq!(WorkingCalendar::by_name("cn"), Some(WorkingCalendar::china()));
    assert_eq!(WorkingCalendar::by_name("gb-eng"), Some(WorkingCalendar::england_and_wales()));
    assert_eq!(WorkingCalendar::by_name("us"), Some(WorkingCalendar::united_states()));
    assert_eq!(WorkingCalendar::by_name("GB-ENG"), None);
    assert_eq!(WorkingCalendar::by_name("uk"), None);
    assert!(CALENDAR_NAMES.iter().all(|name| WorkingCalendar::by_name(name).is_some()));
}

#[test]
fn shipped_directories_load_like_embedded_data() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    assert_eq!(WorkingCalendar::load_dir(&root.join("gb-eng")).unwrap(), WorkingCalendar::england_and_wales());
    assert_eq!(WorkingCalendar::load_dir(&root.join("us")).unwrap(), WorkingCalendar::united_states());
}
