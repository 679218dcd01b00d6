//! The England and Wales and US holiday files against the rules that fix their dates
//! (D-SLA-10): every shipped date is derived from weekday arithmetic and Easter by the rules
//! that build provisional years, so a typo in a year file, or a rule applied wrongly, fails a
//! test rather than a deadline, and a provisional year is built as an official one would be.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use redress_calendar::{CALENDAR_NAMES, CalendarError, WorkingCalendar, provisional};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn dates(year: redress_calendar::YearCalendar) -> BTreeSet<NaiveDate> {
    assert!(year.is_provisional() && year.makeup_working_days().is_empty());
    year.holidays()
        .iter()
        .map(|h| {
            assert_eq!(h.from, h.to, "{}: one day each", h.name);
            h.from
        })
        .collect()
}

fn england_and_wales(year: i32) -> BTreeSet<NaiveDate> {
    dates(provisional::england_and_wales(year).unwrap())
}

fn united_states(year: i32) -> BTreeSet<NaiveDate> {
    dates(provisional::united_states(year).unwrap())
}

fn easter(year: i32) -> NaiveDate {
    provisional::easter(year).unwrap()
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
fn years_without_a_file_are_provisional_when_asked() {
    for (cal, name) in [(WorkingCalendar::england_and_wales(), "gb-eng"), (WorkingCalendar::united_states(), "us")] {
        let lenient = cal.clone().with_provisional_years();
        for year in [2024, 2027] {
            let date = d(year, 3, 4);
            assert_eq!(cal.is_working_day(date), Err(CalendarError::YearNotLoaded { year }));
            assert_eq!(lenient.is_working_day(date), Ok(true), "{name} {year}: a weekday");
            assert!(lenient.is_provisional(year) && lenient.counts(year));
            let reason = lenient.provisional_reason(year);
            assert!(reason.contains(name) && reason.contains(&year.to_string()), "{reason}");
            assert!(reason.contains("one-off holidays"), "{reason}");
        }
        assert!(!lenient.is_provisional(2026));
        assert_eq!(cal.add_working_days(d(2026, 12, 30), 2), Err(CalendarError::YearNotLoaded { year: 2027 }));
        // 2027-01-01 is a Friday holiday on both calendars.
        assert_eq!(lenient.add_working_days(d(2026, 12, 30), 2), Ok(d(2027, 1, 4)));
    }
    // Each calendar keeps its own rule: 2027-12-27 is England and Wales' Christmas substitute
    // (Christmas is a Saturday) and the US's observed Christmas is Friday 24 December.
    let gb = WorkingCalendar::england_and_wales().with_provisional_years();
    let us = WorkingCalendar::united_states().with_provisional_years();
    assert_eq!(gb.is_working_day(d(2027, 12, 27)), Ok(false));
    assert_eq!(gb.is_working_day(d(2027, 12, 24)), Ok(true));
    assert_eq!(us.is_working_day(d(2027, 12, 24)), Ok(false));
    assert_eq!(us.is_working_day(d(2027, 12, 27)), Ok(true));
    // 2027: Christmas Saturday and Boxing Day Sunday, substitutes Monday 27 and Tuesday 28.
    assert_eq!(gb.is_working_day(d(2027, 12, 28)), Ok(false));
    // A loaded file replaces the provisional year.
    let file = "year = 2027\n[[holidays]]\nname = \"One-off\"\nfrom = 2027-06-07\nto = 2027-06-07\n";
    let loaded = gb.clone().merged(WorkingCalendar::from_year_toml(&[("gb-eng/2027.toml", file)]).unwrap());
    assert!(!loaded.is_provisional(2027));
    assert_eq!(loaded.is_working_day(d(2027, 6, 7)), Ok(false));
    assert_eq!(gb.is_working_day(d(2027, 6, 7)), Ok(true));
    assert!(WorkingCalendar::china().with_provisional_years().counts(2027));
}

#[test]
fn provisional_years_are_the_statutory_days_of_their_calendar() {
    let gb = provisional::england_and_wales(2027).unwrap();
    let names: Vec<&str> = gb.holidays().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "New Year's Day",
            "Good Friday",
            "Easter Monday",
            "Early May bank holiday",
            "Spring bank holiday",
            "Summer bank holiday",
            "Christmas Day (substitute day)",
            "Boxing Day (substitute day)"
        ]
    );
    assert_eq!(england_and_wales(2027).len(), 8);
    assert_eq!(gb.working_day_count(), 253);
    let us = provisional::united_states(2027).unwrap();
    // Twelve: New Year's Day 2028 is a Saturday, observed on Friday 31 December 2027.
    assert_eq!(us.holidays().len(), 12);
    assert!(united_states(2027).contains(&d(2027, 12, 31)));
    assert!(us.holidays().iter().any(|h| h.name == "Juneteenth National Independence Day (observed)"));
    // Juneteenth is not a federal holiday before 2021.
    assert_eq!(united_states(2020).len(), 10);
    assert!(!united_states(2020).contains(&d(2020, 6, 19)));
    assert_eq!(provisional::england_and_wales(1900).unwrap_err(), CalendarError::YearNotLoaded { year: 1900 });
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
