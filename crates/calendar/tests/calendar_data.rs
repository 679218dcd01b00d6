//! Shipped calendar data and year-file validation (D-SLA-6).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use chrono::NaiveDate;
use redress_calendar::{CalendarError, WorkingCalendar};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

#[test]
fn shipped_years_match_the_state_council_notices() {
    let cal = WorkingCalendar::china();
    assert_eq!(cal.years(), vec![2025, 2026]);

    let y2025 = cal.year(2025).unwrap();
    assert_eq!(y2025.holidays().len(), 6);
    // 1 + 8 (01-28..02-04) + 3 + 5 + 3 (05-31..06-02) + 8 (10-01..10-08)
    assert_eq!(y2025.holiday_date_count(), 28);
    let makeup: Vec<_> = y2025.makeup_working_days().iter().map(|m| m.date).collect();
    assert_eq!(makeup, vec![d(2025, 1, 26), d(2025, 2, 8), d(2025, 4, 27), d(2025, 9, 28), d(2025, 10, 11)]);
    // 261 weekdays - 18 weekday holidays + 5 make-up days.
    assert_eq!(y2025.working_day_count(), 248);
    assert_eq!(y2025.source(), "国务院办公厅关于2025年部分节假日安排的通知");

    let y2026 = cal.year(2026).unwrap();
    assert_eq!(y2026.holidays().len(), 7);
    // 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert_eq!(y2026.holiday_date_count(), 33);
    let makeup: Vec<_> = y2026.makeup_working_days().iter().map(|m| m.date).collect();
    assert_eq!(
        makeup,
        vec![d(2026, 1, 4), d(2026, 2, 14), d(2026, 2, 28), d(2026, 5, 9), d(2026, 9, 20), d(2026, 10, 10)]
    );
    // 261 weekdays - 19 weekday holidays + 6 make-up days.
    assert_eq!(y2026.working_day_count(), 248);
}

#[test]
fn working_day_queries() {
    let cal = WorkingCalendar::china();
    let cases = [
        (d(2025, 1, 1), false),   // Wed, 元旦
        (d(2025, 1, 2), true),    // Thu
        (d(2025, 1, 26), true),   // Sun, make-up
        (d(2025, 2, 4), false),   // Tue, 春节
        (d(2025, 10, 8), false),  // Wed, 国庆
        (d(2025, 10, 11), true),  // Sat, make-up
        (d(2025, 10, 12), false), // Sun
        (d(2026, 2, 14), true),   // Sat, make-up
        (d(2026, 2, 23), false),  // Mon, 春节
        (d(2026, 2, 28), true),   // Sat, make-up
        (d(2026, 3, 1), false),   // Sun
        (d(2026, 3, 2), true),    // Mon
        (d(2026, 12, 31), true),  // Thu
    ];
    for (date, expected) in cases {
        assert_eq!(cal.is_working_day(date), Ok(expected), "{date}");
    }
    // No Mon–Fri fallback for unloaded years.
    assert_eq!(cal.is_working_day(d(2024, 12, 31)), Err(CalendarError::YearNotLoaded { year: 2024 }));
    assert_eq!(cal.is_working_day(d(2027, 1, 4)), Err(CalendarError::YearNotLoaded { year: 2027 }));

    assert_eq!(cal.next_working_day_on_or_after(d(2026, 3, 2)), Ok(d(2026, 3, 2)));
    assert_eq!(cal.next_working_day_on_or_after(d(2026, 2, 15)), Ok(d(2026, 2, 24)));
    assert_eq!(cal.next_working_day_on_or_after(d(2025, 9, 27)), Ok(d(2025, 9, 28)));
    // Sat 2026-12-26 -> Mon 12-28; nothing after Thu 12-31 is known.
    assert_eq!(cal.next_working_day_on_or_after(d(2026, 12, 26)), Ok(d(2026, 12, 28)));

    assert_eq!(cal.add_working_days(d(2026, 2, 12), 0), Ok(d(2026, 2, 12)));
    assert_eq!(cal.add_working_days(d(2026, 2, 12), 2), Ok(d(2026, 2, 14)));
    assert_eq!(cal.add_working_days(d(2026, 2, 12), 3), Ok(d(2026, 2, 24)));
    // Thu 2025-12-25: Fri 26 (1), Mon 29 (2), Tue 30 (3), Wed 31 (4), Fri 2026-01-02 is
    // a holiday, Sun 01-04 make-up (5).
    assert_eq!(cal.add_working_days(d(2025, 12, 25), 5), Ok(d(2026, 1, 4)));
    assert_eq!(cal.add_working_days(d(2026, 12, 31), 1), Err(CalendarError::YearNotLoaded { year: 2027 }));
    assert_eq!(cal.add_working_days(d(2024, 12, 31), 1), Err(CalendarError::YearNotLoaded { year: 2024 }));
}

const VALID_2027: &str = r#"
year = 2027
source = "test"
[[holidays]]
name = "元旦"
from = 2027-01-01
to = 2027-01-03
[[makeup_working_days]]
date = 2027-01-09
note = "test"
"#;

fn invalid(source_name: &str, message: &str) -> Result<WorkingCalendar, CalendarError> {
    Err(CalendarError::Invalid { source_name: source_name.to_owned(), message: message.to_owned() })
}

#[test]
fn year_file_validation() {
    assert!(WorkingCalendar::from_year_toml(&[("2027.toml", VALID_2027)]).is_ok());

    let makeup_on_weekday = VALID_2027.replace("2027-01-09", "2027-01-05");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &makeup_on_weekday)]),
        invalid("2027.toml", "year 2027: make-up working day 2027-01-05 is a tuesday, not a saturday or sunday")
    );

    let outside_year = VALID_2027.replace("from = 2027-01-01", "from = 2026-12-31");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &outside_year)]),
        invalid("2027.toml", "year 2027: holiday from 2026-12-31 is outside year 2027")
    );

    let makeup_outside_year = VALID_2027.replace("date = 2027-01-09", "date = 2028-01-08");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &makeup_outside_year)]),
        invalid("2027.toml", "year 2027: make-up working day 2028-01-08 is outside year 2027")
    );

    let backwards = VALID_2027.replace("to = 2027-01-03", "to = 2026-12-30");
    assert!(matches!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &backwards)]),
        Err(CalendarError::Invalid { .. })
    ));
    let backwards = VALID_2027.replace("from = 2027-01-01", "from = 2027-01-05");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &backwards)]),
        invalid("2027.toml", "year 2027: holiday 元旦 runs backwards: from 2027-01-05 is after to 2027-01-03")
    );

    // 2027-01-02 is a Saturday inside the holiday block.
    let coincide = VALID_2027.replace("date = 2027-01-09", "date = 2027-01-02");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &coincide)]),
        invalid("2027.toml", "year 2027: date 2027-01-02 is both a holiday and a make-up working day")
    );

    let duplicate_makeup = format!("{VALID_2027}\n[[makeup_working_days]]\ndate = 2027-01-09\nnote = \"again\"\n");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &duplicate_makeup)]),
        invalid("2027.toml", "year 2027: duplicate make-up working day 2027-01-09")
    );

    let overlapping_holidays =
        format!("{VALID_2027}\n[[holidays]]\nname = \"again\"\nfrom = 2027-01-03\nto = 2027-01-04\n");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &overlapping_holidays)]),
        invalid("2027.toml", "year 2027: duplicate holiday date 2027-01-03")
    );

    let with_time = VALID_2027.replace("date = 2027-01-09", "date = 2027-01-09T00:00:00");
    assert_eq!(
        WorkingCalendar::from_year_toml(&[("2027.toml", &with_time)]),
        invalid("2027.toml", "year 2027: make-up working day 2027-01-09T00:00:00 is not a plain date (yyyy-mm-dd)")
    );

    assert_eq!(
        WorkingCalendar::from_year_toml(&[("a.toml", VALID_2027), ("b.toml", VALID_2027)]),
        invalid("b.toml", "year 2027: already loaded from another file")
    );

    let err = WorkingCalendar::from_year_toml(&[("bad.toml", "year = ")]).unwrap_err();
    assert!(matches!(&err, CalendarError::Parse { source_name, .. } if source_name == "bad.toml"), "{err:?}");
    let err = WorkingCalendar::from_year_toml(&[("typo.toml", "year = 2027\nholiday = []\n")]).unwrap_err();
    assert!(matches!(err, CalendarError::Parse { .. }), "{err:?}");

    assert_eq!(
        CalendarError::Invalid {
            source_name: "2027.toml".into(),
            message: "year 2027: duplicate holiday date 2027-01-03".into()
        }
        .to_string(),
        "invalid calendar 2027.toml: year 2027: duplicate holiday date 2027-01-03"
    );
}

#[test]
fn shipped_directory_loads_like_embedded_data() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/cn");
    let loaded = WorkingCalendar::load_dir(&dir).unwrap();
    assert_eq!(loaded, WorkingCalendar::china());
}

#[test]
fn operator_directory_adds_and_overrides_years() {
    let dir = std::env::temp_dir().join(format!("redress-calendar-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("2027.toml"), VALID_2027).unwrap();
    // An override for 2026 that drops every holiday.
    std::fs::write(dir.join("2026.toml"), "year = 2026\nsource = \"override\"\n").unwrap();
    std::fs::write(dir.join("README.txt"), "not a calendar").unwrap();

    let extra = WorkingCalendar::load_dir(&dir);
    let missing = WorkingCalendar::load_dir(&dir.join("missing"));
    std::fs::remove_dir_all(&dir).unwrap();

    let extra = extra.unwrap();
    assert_eq!(extra.years(), vec![2026, 2027]);
    let cal = WorkingCalendar::china().merged(extra);
    assert_eq!(cal.years(), vec![2025, 2026, 2027]);
    // Thu 2026-01-01 is a working day under the override.
    assert_eq!(cal.is_working_day(d(2026, 1, 1)), Ok(true));
    assert_eq!(cal.year(2026).unwrap().source(), "override");
    assert_eq!(cal.is_working_day(d(2027, 1, 1)), Ok(false));
    assert_eq!(cal.is_working_day(d(2027, 1, 9)), Ok(true));
    // Thu 2026-12-31 (1), 2027-01-01..03 holidays, Mon 01-04 (2).
    assert_eq!(cal.add_working_days(d(2026, 12, 30), 2), Ok(d(2027, 1, 4)));

    assert!(matches!(missing, Err(CalendarError::Io { .. })), "{missing:?}");
}
