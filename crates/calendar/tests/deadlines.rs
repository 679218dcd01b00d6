//! Hand-checked deadline tables (D-SLA-5 counting rule against the 2025/2026
//! China calendars). Every expected instant is worked out in the comment next
//! to it; "24:00 of D" is D+1 00:00 +08:00, i.e. D 16:00 UTC.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use redress_calendar::{
    CalendarError, DeadlineCalculator, Due, Grade, Period, Provisional, ReceiptDeadlines, SlaPolicy, WorkingCalendar,
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn shanghai() -> DeadlineCalculator {
    DeadlineCalculator::new(Arc::new(WorkingCalendar::china()), chrono_tz::Asia::Shanghai)
}

/// (case, accepted_at, period, expected due)
fn check(rows: &[(&str, &str, Period, &str)]) {
    let calc = shanghai();
    for (case, accepted, period, expected) in rows {
        let got = calc.due(at(accepted), *period);
        assert_eq!(got, Ok(at(expected)), "{case}: {accepted} + {period:?}");
    }
}

#[test]
fn normal_weekday() {
    check(&[
        // Tue 2026-03-10 10:00 local. Wed 11 (1) .. Thu 19 (7), skipping Sat 14/Sun 15.
        ("7 wd", "2026-03-10T10:00:00+08:00", Period::WorkingDays(7), "2026-03-19T16:00:00Z"),
        // Acceptance day is not counted: Wed 11 is day 1.
        ("1 wd", "2026-03-10T10:00:00+08:00", Period::WorkingDays(1), "2026-03-11T16:00:00Z"),
        // Hours are elapsed time from the exact instant.
        ("24 h", "2026-03-10T10:00:00+08:00", Period::Hours(24), "2026-03-11T02:00:00Z"),
        // Last day Wed 2026-03-25 is a working day: no extension.
        ("15 cd", "2026-03-10T10:00:00+08:00", Period::CalendarDays(15), "2026-03-25T16:00:00Z"),
    ]);
}

#[test]
fn friday_evening_skips_weekend() {
    check(&[
        // Fri 2026-03-13 20:00: Mon 16 (1), Tue 17 (2), Wed 18 (3).
        ("3 wd", "2026-03-13T20:00:00+08:00", Period::WorkingDays(3), "2026-03-18T16:00:00Z"),
        ("1 wd", "2026-03-13T20:00:00+08:00", Period::WorkingDays(1), "2026-03-16T16:00:00Z"),
    ]);
}

#[test]
fn spring_festival_2026() {
    check(&[
        // Thu 02-12: Fri 13 (1), Sat 14 make-up (2), 15–23 holidays, Tue 24 (3),
        // Wed 25 (4), Thu 26 (5), Fri 27 (6), Sat 28 make-up (7).
        ("7 wd from thu 02-12", "2026-02-12T10:00:00+08:00", Period::WorkingDays(7), "2026-02-28T16:00:00Z"),
        // Fri 13 (1), Sat 14 (2), Tue 24 (3).
        ("3 wd from thu 02-12", "2026-02-12T10:00:00+08:00", Period::WorkingDays(3), "2026-02-24T16:00:00Z"),
        // Accepted on holiday Tue 02-17: 18–23 holidays, Tue 24 (1).
        ("1 wd during festival", "2026-02-17T09:00:00+08:00", Period::WorkingDays(1), "2026-02-24T16:00:00Z"),
        // Tue 24 (1), 25 (2), 26 (3), 27 (4), Sat 28 make-up (5).
        ("5 wd during festival", "2026-02-17T09:00:00+08:00", Period::WorkingDays(5), "2026-02-28T16:00:00Z"),
        // Accepted on make-up Sat 02-14 (a working day, still not counted): Tue 24 (1).
        ("1 wd from make-up sat", "2026-02-14T09:00:00+08:00", Period::WorkingDays(1), "2026-02-24T16:00:00Z"),
        // Tue 02-10 + 10 calendar days = Fri 02-20 (holiday) -> next working day Tue 24.
        ("10 cd into festival", "2026-02-10T09:00:00+08:00", Period::CalendarDays(10), "2026-02-24T16:00:00Z"),
    ]);
}

#[test]
fn national_day_2025() {
    check(&[
        // Fri 09-26: Sun 28 make-up (1), Mon 29 (2), Tue 30 (3), Oct 1–8 holidays,
        // Thu 10-09 (4), Fri 10-10 (5).
        ("5 wd", "2025-09-26T10:00:00+08:00", Period::WorkingDays(5), "2025-10-10T16:00:00Z"),
        // ... Sat 10-11 make-up (6), Sun 12 rest, Mon 10-13 (7).
        ("7 wd", "2025-09-26T10:00:00+08:00", Period::WorkingDays(7), "2025-10-13T16:00:00Z"),
        // Tue 09-30: Oct 1–8 holidays, Thu 10-09 (1).
        ("1 wd before holiday", "2025-09-30T10:00:00+08:00", Period::WorkingDays(1), "2025-10-09T16:00:00Z"),
        // Accepted on rest day Sat 09-27: make-up Sun 28 (1).
        ("1 wd from rest sat", "2025-09-27T10:00:00+08:00", Period::WorkingDays(1), "2025-09-28T16:00:00Z"),
    ]);
}

#[test]
fn calendar_days_ending_on_rest_day_extend_to_next_working_day() {
    check(&[
        // Sat 2025-09-20 + 15 = Sun 10-05 (holiday); Oct 6–8 holidays -> Thu 10-09.
        ("holiday", "2025-09-20T10:00:00+08:00", Period::CalendarDays(15), "2025-10-09T16:00:00Z"),
        // Fri 2026-03-13 + 15 = Sat 03-28 (ordinary weekend) -> Mon 03-30.
        ("weekend", "2026-03-13T10:00:00+08:00", Period::CalendarDays(15), "2026-03-30T16:00:00Z"),
        // Sun 2026-02-01 + 15 = Mon 02-16 (Spring Festival) -> Tue 02-24.
        ("festival", "2026-02-01T10:00:00+08:00", Period::CalendarDays(15), "2026-02-24T16:00:00Z"),
    ]);
}

#[test]
fn calendar_days_ending_on_makeup_saturday_do_not_extend() {
    check(&[
        // Fri 2026-02-13 + 15 = Sat 02-28, a make-up working day.
        ("2026-02-28", "2026-02-13T10:00:00+08:00", Period::CalendarDays(15), "2026-02-28T16:00:00Z"),
        // Fri 2026-01-30 + 15 = Sat 02-14, a make-up working day.
        ("2026-02-14", "2026-01-30T10:00:00+08:00", Period::CalendarDays(15), "2026-02-14T16:00:00Z"),
        // Fri 2025-09-26 + 15 = Sat 10-11, a make-up working day.
        ("2025-10-11", "2025-09-26T10:00:00+08:00", Period::CalendarDays(15), "2025-10-11T16:00:00Z"),
    ]);
}

#[test]
fn local_date_boundary_not_utc() {
    check(&[
        // 2026-03-01T16:30Z is Mon 03-02 00:30 in Shanghai (UTC still says Sun 03-01):
        // Tue 03-03 (1). Using the UTC date would give Mon 03-02.
        ("00:30 local", "2026-03-01T16:30:00Z", Period::WorkingDays(1), "2026-03-03T16:00:00Z"),
        // Mon 03-02 23:59:59 local: still Monday, so Tue 03-03 (1).
        ("23:59:59 local", "2026-03-02T15:59:59Z", Period::WorkingDays(1), "2026-03-03T16:00:00Z"),
        // One second later is Tue 03-03 00:00:00 local: Wed 03-04 (1).
        ("00:00:00 local", "2026-03-02T16:00:00Z", Period::WorkingDays(1), "2026-03-04T16:00:00Z"),
        // Calendar days from Mon 03-02 23:59:59: Tue 03-03.
        ("1 cd at 23:59:59", "2026-03-02T15:59:59Z", Period::CalendarDays(1), "2026-03-03T16:00:00Z"),
        // Calendar days from Tue 03-03 00:00:00: Wed 03-04.
        ("1 cd at 00:00:00", "2026-03-02T16:00:00Z", Period::CalendarDays(1), "2026-03-04T16:00:00Z"),
    ]);
}

#[test]
fn hour_clocks_are_elapsed_time() {
    check(&[
        ("24 h during holiday", "2026-02-17T03:15:42Z", Period::Hours(24), "2026-02-18T03:15:42Z"),
        ("8 h overnight", "2026-03-13T20:00:00+08:00", Period::Hours(8), "2026-03-14T04:00:00+08:00"),
        ("1 h", "2026-03-10T10:20:30+08:00", Period::Hours(1), "2026-03-10T11:20:30+08:00"),
        // Hour clocks ignore calendars, so unloaded years are fine.
        ("into 2027", "2026-12-31T23:30:00Z", Period::Hours(1), "2027-01-01T00:30:00Z"),
        ("in 2024", "2024-06-03T02:00:00Z", Period::Hours(2), "2024-06-03T04:00:00Z"),
    ]);
}

#[test]
fn last_day_of_loaded_data_is_usable() {
    check(&[
        // Wed 2026-12-30: Thu 12-31 (1) ends at 2027-01-01 00:00 local; no 2027 date counted.
        ("1 wd", "2026-12-30T10:00:00+08:00", Period::WorkingDays(1), "2026-12-31T16:00:00Z"),
        ("1 cd", "2026-12-30T10:00:00+08:00", Period::CalendarDays(1), "2026-12-31T16:00:00Z"),
    ]);
}

#[test]
fn unloaded_years_are_errors() {
    let calc = shanghai();
    let cases = [
        // Mon 2026-12-28: Tue 29, Wed 30, Thu 31, then 2027-01-01 has no calendar.
        ("2026-12-28T10:00:00+08:00", Period::WorkingDays(5), 2027),
        ("2026-12-30T10:00:00+08:00", Period::WorkingDays(2), 2027),
        // 2026-12-20 + 15 = 2027-01-04.
        ("2026-12-20T10:00:00+08:00", Period::CalendarDays(15), 2027),
        // Acceptance in 2024.
        ("2024-06-03T10:00:00+08:00", Period::WorkingDays(1), 2024),
        ("2024-06-03T10:00:00+08:00", Period::CalendarDays(15), 2024),
        // Even when the counted days would all be in 2025.
        ("2024-12-31T10:00:00+08:00", Period::WorkingDays(1), 2024),
        ("2024-12-20T10:00:00+08:00", Period::CalendarDays(15), 2024),
    ];
    for (accepted, period, year) in cases {
        assert_eq!(
            calc.due(at(accepted), period),
            Err(CalendarError::YearNotLoaded { year }),
            "{accepted} + {period:?}"
        );
    }
    assert_eq!(CalendarError::YearNotLoaded { year: 2027 }.to_string(), "no working-day calendar loaded for year 2027");
}

#[test]
fn receipt_deadlines_use_grade_targets() {
    let calc = shanghai();
    let policy = SlaPolicy::default();
    // Urgent, Thu 2026-02-12 10:00: 2 h; 3 wd -> Tue 02-24 (see spring festival);
    // 15 cd -> Fri 02-27 (working day).
    assert_eq!(
        calc.receipt_deadlines(at("2026-02-12T10:00:00+08:00"), Grade::Urgent, &policy),
        Ok(ReceiptDeadlines {
            first_response_due: at("2026-02-12T04:00:00Z"),
            resolution_due: at("2026-02-24T16:00:00Z"),
            regulatory_decision_due: at("2026-02-27T16:00:00Z"),
        })
    );
    // General, Fri 2025-09-26 10:00: 24 h; 7 wd -> Mon 10-13; 15 cd -> Sat 10-11 (make-up).
    assert_eq!(
        calc.receipt_deadlines(at("2025-09-26T10:00:00+08:00"), Grade::General, &policy),
        Ok(ReceiptDeadlines {
            first_response_due: at("2025-09-27T02:00:00Z"),
            resolution_due: at("2025-10-13T16:00:00Z"),
            regulatory_decision_due: at("2025-10-11T16:00:00Z"),
        })
    );
    // Major, Tue 2026-03-10 10:00: 1 h; 1 wd -> Wed 03-11; 15 cd -> Wed 03-25.
    // Important: 8 h; 5 wd -> Tue 03-17.
    let major = calc.receipt_deadlines(at("2026-03-10T10:00:00+08:00"), Grade::Major, &policy).unwrap();
    assert_eq!(major.first_response_due, at("2026-03-10T03:00:00Z"));
    assert_eq!(major.resolution_due, at("2026-03-11T16:00:00Z"));
    assert_eq!(major.regulatory_decision_due, at("2026-03-25T16:00:00Z"));
    let important = calc.receipt_deadlines(at("2026-03-10T10:00:00+08:00"), Grade::Important, &policy).unwrap();
    assert_eq!(important.first_response_due, at("2026-03-10T10:00:00Z"));
    assert_eq!(important.resolution_due, at("2026-03-17T16:00:00Z"));
    // An unloaded year in any clock fails the whole receipt.
    assert_eq!(
        calc.receipt_deadlines(at("2026-12-28T10:00:00+08:00"), Grade::General, &policy),
        Err(CalendarError::YearNotLoaded { year: 2027 })
    );
}

#[test]
fn other_time_zones() {
    let calendar = Arc::new(WorkingCalendar::china());
    let utc = DeadlineCalculator::new(calendar.clone(), chrono_tz::UTC);
    assert_eq!(utc.time_zone(), chrono_tz::UTC);
    // In UTC the acceptance date is Sun 03-01, so Mon 03-02 (1), ending at UTC midnight.
    assert_eq!(utc.due(at("2026-03-01T16:30:00Z"), Period::WorkingDays(1)), Ok(at("2026-03-03T00:00:00Z")));

    let havana = DeadlineCalculator::new(calendar, chrono_tz::America::Havana);
    let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    // Cuba falls back 01:00 CDT -> 00:00 CST on Sun 2025-11-02, so that local
    // midnight happens twice; the earlier (-04:00) instant is used.
    assert_eq!(havana.end_of_day(d(2025, 11, 1)), Ok(at("2025-11-02T04:00:00Z")));
    // Cuba springs forward 00:00 CST -> 01:00 CDT on Sun 2025-03-09, so that
    // local midnight does not exist; the first instant after the gap is used.
    assert_eq!(havana.end_of_day(d(2025, 3, 8)), Ok(at("2025-03-09T05:00:00Z")));
    // An ordinary day: midnight -05:00 in winter.
    assert_eq!(havana.end_of_day(d(2025, 12, 1)), Ok(at("2025-12-02T05:00:00Z")));
}

#[test]
fn default_calculator_is_shanghai_with_shipped_data() {
    let calc = DeadlineCalculator::china();
    assert_eq!(calc.time_zone(), chrono_tz::Asia::Shanghai);
    assert_eq!(calc.calendar().years(), vec![2025, 2026]);
    assert!(calc.calendar().is_provisional(2027), "the services' calculator counts missing years provisionally");
}

fn provisional(year: i32) -> Option<Provisional> {
    Some(Provisional { year, reason: redress_calendar::provisional::provisional_reason(year) })
}

/// D-SLA-6: a deadline that counts a day of a year with no official file is still computed, on
/// that year's provisional calendar, and says so.
#[test]
fn deadlines_reaching_a_year_without_a_file_are_provisional() {
    let calc = DeadlineCalculator::china();
    let rows = [
        // Sun 2026-12-20 + 15 = Mon 2027-01-04, a working day of provisional 2027.
        ("2026-12-20T10:00:00+08:00", Period::CalendarDays(15), "2027-01-04T16:00:00Z", provisional(2027)),
        // Mon 2026-12-28: Tue 29, Wed 30, Thu 31, (Fri 01-01 New Year's Day) Mon 4, Tue 5.
        ("2026-12-28T10:00:00+08:00", Period::WorkingDays(5), "2027-01-05T16:00:00Z", provisional(2027)),
        // Sun 2026-12-20 + 30 = Tue 2027-01-19.
        ("2026-12-20T10:00:00+08:00", Period::CalendarDays(30), "2027-01-19T16:00:00Z", provisional(2027)),
        // Within 2026: official.
        ("2026-12-20T10:00:00+08:00", Period::WorkingDays(7), "2026-12-29T16:00:00Z", None),
        // Hour clocks count no days.
        ("2026-12-31T23:00:00+08:00", Period::Hours(24), "2027-01-01T15:00:00Z", None),
        // Accepted in 2024, counted into 2025: the acceptance year is provisional too.
        ("2024-12-20T10:00:00+08:00", Period::CalendarDays(15), "2025-01-06T16:00:00Z", provisional(2024)),
    ];
    for (accepted, period, expected, why) in rows {
        let got = calc.due_explained(at(accepted), period);
        assert_eq!(got, Ok(Due { at: at(expected), provisional: why }), "{accepted} + {period:?}");
    }
    // Paused across the turn of the year: Sun 20 December, 5 wd = Mon 21 .. Fri 25. Paused Mon
    // 21 with all 5 left, resumed Mon 28: Mon 28 .. Thu 31 and Mon 2027-01-04.
    let paused = calc.due_with_pauses_explained(
        at("2026-12-20T10:00:00+08:00"),
        Period::WorkingDays(5),
        &[(at("2026-12-21T10:00:00+08:00"), at("2026-12-28T10:00:00+08:00"))],
    );
    assert_eq!(paused, Ok(Due { at: at("2027-01-04T16:00:00Z"), provisional: provisional(2027) }));
    assert!(provisional(2027).unwrap().reason.contains("2027"));
    // Outside the years a provisional calendar is built for, nothing is guessed: an error.
    assert_eq!(
        calc.due_explained(at("2200-12-25T10:00:00+08:00"), Period::CalendarDays(15)),
        Err(CalendarError::YearNotLoaded { year: 2201 })
    );
}

/// Loading the official year replaces the provisional one: the same deadline is recomputed on
/// it and is no longer provisional.
#[test]
fn an_official_year_replaces_the_provisional_count() {
    let official = WorkingCalendar::from_year_toml(&[(
        "2027.toml",
        "year = 2027\n[[holidays]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-04\n",
    )])
    .unwrap();
    let calendar = WorkingCalendar::china().with_provisional_years().merged(official);
    let calc = DeadlineCalculator::new(Arc::new(calendar), chrono_tz::Asia::Shanghai);
    // Mon 2027-01-04 is now a holiday: the 15 days run to Tue 01-05.
    assert_eq!(
        calc.due_explained(at("2026-12-20T10:00:00+08:00"), Period::CalendarDays(15)),
        Ok(Due { at: at("2027-01-05T16:00:00Z"), provisional: None })
    );
}

/// (case, started_at, period, pauses, expected due)
type PausedRow<'a> = (&'a str, &'a str, Period, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn pauses_are_not_counted() {
    let calc = shanghai();
    let rows: &[PausedRow] = &[
        // Paused Wed 11 10:00, resumed Fri 13 09:00: Thu 12 and Fri 13 are not counted.
        // Without the pause day 7 is Thu 19; the two uncounted working days push it to Mon 23.
        (
            "7 wd paused two working days",
            "2026-03-10T10:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-03-11T10:00:00+08:00", "2026-03-13T09:00:00+08:00")],
            "2026-03-23T16:00:00Z",
        ),
        // A pause within one day moves a day clock not at all.
        (
            "7 wd paused within a day",
            "2026-03-10T10:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-03-11T10:00:00+08:00", "2026-03-11T17:00:00+08:00")],
            "2026-03-19T16:00:00Z",
        ),
        // Paused Fri 13 18:00 over the weekend: Friday was still a day left when the pause began,
        // so the clock resumes on Mon 16 with the five working days it had (Fri 13, Mon 16 ..
        // Thu 19): Mon 16 .. Fri 20.
        (
            "7 wd paused over a weekend",
            "2026-03-10T10:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-03-13T18:00:00+08:00", "2026-03-15T20:00:00+08:00")],
            "2026-03-20T16:00:00Z",
        ),
        // 15 calendar days from Tue 10 would end Wed 25; paused Thu 12 → Mon 16 with 14 days
        // left (Thu 12 .. Wed 25), resumed with Mon 16 .. Sun 29, a rest day, so Mon 30.
        (
            "15 cd paused four days",
            "2026-03-10T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2026-03-12T09:00:00+08:00", "2026-03-16T09:00:00+08:00")],
            "2026-03-30T16:00:00Z",
        ),
        // Spring Festival 2026: accepted Thu 2026-02-12, so the 7 working days would be Fri 13,
        // Sat 14 (make-up), Tue 24 .. Fri 27 and Sat 28 (make-up). Paused Fri 13 with all 7
        // left, resumed Wed 25 with Wed 25, Thu 26, Fri 27, Sat 28, Mon 3-02, Tue 3, Wed 4-03.
        (
            "7 wd paused across Spring Festival",
            "2026-02-12T15:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-02-13T11:00:00+08:00", "2026-02-25T10:00:00+08:00")],
            "2026-03-04T16:00:00Z",
        ),
        // Hour clocks move by exactly the paused time.
        (
            "24 h paused 3 h",
            "2026-03-10T10:00:00+08:00",
            Period::Hours(24),
            &[("2026-03-10T12:00:00+08:00", "2026-03-10T15:00:00+08:00")],
            "2026-03-11T05:00:00Z",
        ),
        // A pause that begins after an hour clock's due instant does not move it.
        (
            "2 h paused after due",
            "2026-03-10T10:00:00+08:00",
            Period::Hours(2),
            &[("2026-03-10T13:00:00+08:00", "2026-03-10T15:00:00+08:00")],
            "2026-03-10T04:00:00Z",
        ),
    ];
    for (case, started, period, pauses, expected) in rows {
        let pauses: Vec<_> = pauses.iter().map(|(p, r)| (at(p), at(r))).collect();
        let got = calc.due_with_pauses(at(started), *period, &pauses);
        assert_eq!(got, Ok(at(expected)), "{case}");
    }
}

#[test]
fn a_pause_reaching_an_unloaded_year_is_an_error() {
    let got = shanghai().due_with_pauses(
        // Sun 20 December: Mon 21 .. Fri 25. Paused Mon 21 with all 5 left, resumed Mon 28 with
        // Mon 28 .. Thu 31, and the fifth needs 2027.
        at("2026-12-20T10:00:00+08:00"),
        Period::WorkingDays(5),
        &[(at("2026-12-21T10:00:00+08:00"), at("2026-12-28T10:00:00+08:00"))],
    );
    assert_eq!(got, Err(CalendarError::YearNotLoaded { year: 2027 }));
}

/// D-SLA-9: a clock resumes with at least the time it had left when it paused; a day clock
/// counts the day the pause began as a day left, and the day it resumed as one it has.
#[test]
fn a_pause_owes_no_time() {
    let calc = shanghai();
    let rows: &[PausedRow] = &[
        // Accepted Mon 2026-03-09: 15 calendar days end Tue 24. Paused Tue 24 09:00 with that
        // day left, resumed Fri 27 09:00 with Fri 27 to run.
        (
            "15 cd paused 09:00 on its last day, resumed three days later",
            "2026-03-09T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2026-03-24T09:00:00+08:00", "2026-03-27T09:00:00+08:00")],
            "2026-03-27T16:00:00Z",
        ),
        // Accepted Mon 2025-09-15: 15 calendar days end Tue 09-30, the eve of National Day
        // (Oct 1-8). Paused that morning, resumed Thu 10-09: Thu 10-09 is the day left.
        (
            "15 cd paused on its last day over National Day",
            "2025-09-15T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2025-09-30T09:00:00+08:00", "2025-10-09T09:00:00+08:00")],
            "2025-10-09T16:00:00Z",
        ),
        // Accepted Fri 2026-03-13: day 15 is Sat 28, so the clock ends Mon 30 (D-SLA-5).
        // Paused Sat 28 10:00 with Sat 28, Sun 29 and Mon 30 left, resumed Tue 31 10:00 with
        // Tue 31, Wed 4-01 and Thu 4-02, a working day.
        (
            "15 cd paused on a rest day it was extended over",
            "2026-03-13T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2026-03-28T10:00:00+08:00", "2026-03-31T10:00:00+08:00")],
            "2026-04-02T16:00:00Z",
        ),
        // 7 working days from Tue 2026-03-10 end Thu 19. Paused Thu 19 09:00, resumed Mon 23:
        // Mon 23 is the working day left.
        (
            "7 wd paused on its last day",
            "2026-03-10T10:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-03-19T09:00:00+08:00", "2026-03-23T09:00:00+08:00")],
            "2026-03-23T16:00:00Z",
        ),
        // Two minutes across the last midnight: Tue 24 was left, Wed 25 is the day it runs to.
        (
            "15 cd paused two minutes across its last midnight",
            "2026-03-09T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2026-03-24T23:59:00+08:00", "2026-03-25T00:01:00+08:00")],
            "2026-03-25T16:00:00Z",
        ),
        // Two minutes across an earlier midnight: Thu 12 .. Tue 24 (13 days) left, Fri 13 ..
        // Wed 25 after. A pause within one day costs at most one day.
        (
            "15 cd paused two minutes across a midnight",
            "2026-03-09T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2026-03-12T23:59:00+08:00", "2026-03-13T00:01:00+08:00")],
            "2026-03-25T16:00:00Z",
        ),
        // Two minutes across Sunday midnight: the working days left (Mon 16 .. Thu 19) are the
        // same before and after, so nothing moves.
        (
            "7 wd paused two minutes across Sunday midnight",
            "2026-03-10T10:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-03-15T23:59:00+08:00", "2026-03-16T00:01:00+08:00")],
            "2026-03-19T16:00:00Z",
        ),
        // Two minutes across Friday midnight: Fri 13 was a working day left (with Mon 16 .. Thu
        // 19), so one more working day follows the resume: Fri 20.
        (
            "7 wd paused two minutes across Friday midnight",
            "2026-03-10T10:00:00+08:00",
            Period::WorkingDays(7),
            &[("2026-03-13T23:59:00+08:00", "2026-03-14T00:01:00+08:00")],
            "2026-03-20T16:00:00Z",
        ),
        // An hour clock moves by exactly the two minutes.
        (
            "24 h paused two minutes across midnight",
            "2026-03-10T10:00:00+08:00",
            Period::Hours(24),
            &[("2026-03-10T23:59:00+08:00", "2026-03-11T00:01:00+08:00")],
            "2026-03-11T02:02:00Z",
        ),
        // Two pauses: 15 cd from Mon 03-09 end Tue 24. Paused Mon 16 → Wed 18 (9 days left, Mon
        // 16 .. Tue 24, so Wed 18 .. Thu 26), then Thu 26 → Mon 30 (Thu 26 left, so Mon 30).
        (
            "15 cd paused twice",
            "2026-03-09T10:00:00+08:00",
            Period::CalendarDays(15),
            &[
                ("2026-03-16T09:00:00+08:00", "2026-03-18T09:00:00+08:00"),
                ("2026-03-26T09:00:00+08:00", "2026-03-30T09:00:00+08:00"),
            ],
            "2026-03-30T16:00:00Z",
        ),
        // A pause that begins after a day clock ran out finds nothing left and moves nothing.
        (
            "15 cd paused after its due time",
            "2026-03-09T10:00:00+08:00",
            Period::CalendarDays(15),
            &[("2026-03-25T09:00:00+08:00", "2026-03-27T09:00:00+08:00")],
            "2026-03-24T16:00:00Z",
        ),
    ];
    for (case, started, period, pauses, expected) in rows {
        let pauses: Vec<_> = pauses.iter().map(|(p, r)| (at(p), at(r))).collect();
        let got = calc.due_with_pauses(at(started), *period, &pauses);
        assert_eq!(got, Ok(at(expected)), "{case}");
    }
}
