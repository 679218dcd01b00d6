//! Provisional years (D-SLA-6): the working-day calendar of a year whose official holiday
//! arrangement has not been published or loaded yet, so that no complaint is refused and no
//! deadline left unset for want of a year file.
//!
//! England and Wales and the US (D-SLA-10) fix most of their holidays by rule, so a year without
//! a file is built from those rules and weekends: [`england_and_wales`] and [`united_states`].
//! What no rule can give are the one-off holidays proclaimed for a single year (a coronation, a
//! jubilee, a national day of mourning, an executive order closing federal offices); they are
//! missing until the year's file is loaded, which is why such a year is still provisional.
//!
//! The State Council publishes each year's arrangement (with its make-up working weekends)
//! around November of the year before. Until it is loaded, a year still needs deadlines, so it
//! is built from the statutory holidays of 《全国年节及纪念日放假办法》 (2024 revision, in force
//! from 2025) alone: New Year's Day (Jan 1), Spring Festival (lunar New Year's Eve and lunar
//! 1st–3rd), Qingming (the solar-term day), Labour Day (May 1–2), Dragon Boat (lunar 5/5),
//! Mid-Autumn (lunar 8/15) and National Day (Oct 1–3), plus Saturdays and Sundays, with no
//! make-up days. Lunar and solar-term dates are computed (tyme4rs, the ShouXing astronomical
//! algorithms), never typed in. Every deadline that counts a day of such a year is provisional.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use tyme4rs::tyme::lunar::LunarDay;
use tyme4rs::tyme::solar::{SolarDay, SolarTerm};

use crate::calendar::{CalendarError, Holiday, YearCalendar};

/// Years a provisional calendar can be built for: the lunar tables and the statutory rule are
/// meaningful here, and nothing a complaint platform counts lies outside.
pub const PROVISIONAL_YEARS: std::ops::RangeInclusive<i32> = 1950..=2200;

/// Which rule builds a calendar's provisional years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// Mainland China's statutory holidays ([`china`]).
    #[default]
    China,
    /// England and Wales bank holidays ([`england_and_wales`]).
    EnglandAndWales,
    /// US federal holidays, observed dates ([`united_states`]).
    UnitedStates,
}

impl Rule {
    /// The provisional calendar of `year` under this rule.
    pub fn build(self, year: i32) -> Result<YearCalendar, CalendarError> {
        match self {
            Self::China => china(year),
            Self::EnglandAndWales => england_and_wales(year),
            Self::UnitedStates => united_states(year),
        }
    }

    /// Why a deadline that counts a day of `year` is provisional under this rule.
    pub fn reason(self, year: i32) -> String {
        match self {
            Self::China => provisional_reason(year),
            Self::EnglandAndWales => format!(
                "no England and Wales bank-holiday file (gb-eng) is loaded for {year}: its days are computed from the \
                 statutory rules (weekends, New Year's Day, Good Friday, Easter Monday, the May and August bank \
                 holidays, Christmas and Boxing Day with substitute days); one-off holidays proclaimed for that year \
                 are not known until its file is loaded"
            ),
            Self::UnitedStates => format!(
                "no US federal-holiday file (us) is loaded for {year}: its days are computed from the statutory rules \
                 (weekends and the federal holidays of 5 U.S.C. 6103 on their observed dates); one-off holidays \
                 proclaimed for that year are not known until its file is loaded"
            ),
        }
    }
}

/// Why a deadline that counts a day of `year` is provisional on the China calendar.
pub fn provisional_reason(year: i32) -> String {
    format!(
        "no official holiday arrangement is loaded for {year}: its days are counted from the statutory holidays \
         (全国年节及纪念日放假办法) without make-up working days, until the State Council notice is loaded"
    )
}

/// The provisional calendar of `year`.
pub fn china(year: i32) -> Result<YearCalendar, CalendarError> {
    if !PROVISIONAL_YEARS.contains(&year) {
        return Err(CalendarError::YearNotLoaded { year });
    }
    let ymd = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d).ok_or(CalendarError::OutOfRange);
    let spring = lunar(year, 1, 1)?;
    let eve = spring.checked_sub_days(Days::new(1)).ok_or(CalendarError::OutOfRange)?;
    let holidays = vec![
        block("元旦", ymd(1, 1)?, 0),
        block("春节", eve, 3),
        block("清明节", qingming(year)?, 0),
        block("劳动节", ymd(5, 1)?, 1),
        block("端午节", lunar(year, 5, 5)?, 0),
        block("中秋节", lunar(year, 8, 15)?, 0),
        block("国庆节", ymd(10, 1)?, 2),
    ];
    YearCalendar::provisional(year, provisional_reason(year), holidays)
}

/// The provisional England and Wales calendar of `year`: the bank holidays fixed by the Banking
/// and Financial Dealings Act 1971, the customary royal proclamations and common law. A
/// fixed-date holiday on a weekend moves to the next weekday not already a holiday, so
/// Christmas on a Saturday and Boxing Day on a Sunday become Monday and Tuesday.
pub fn england_and_wales(year: i32) -> Result<YearCalendar, CalendarError> {
    if !PROVISIONAL_YEARS.contains(&year) {
        return Err(CalendarError::YearNotLoaded { year });
    }
    let easter = easter(year)?;
    let mut holidays = vec![
        day("Good Friday", before(easter, 2)?),
        day("Easter Monday", after(easter, 1)?),
        day("Early May bank holiday", nth_weekday(year, 5, Weekday::Mon, 1)?),
        day("Spring bank holiday", last_weekday(year, 5, Weekday::Mon)?),
        day("Summer bank holiday", last_weekday(year, 8, Weekday::Mon)?),
    ];
    for (name, month, dom) in [("New Year's Day", 1, 1), ("Christmas Day", 12, 25), ("Boxing Day", 12, 26)] {
        let fixed = ymd(year, month, dom)?;
        let mut date = fixed;
        while is_weekend(date) || holidays.iter().any(|h| h.from == date) {
            date = after(date, 1)?;
        }
        let name = if date == fixed { name.to_owned() } else { format!("{name} (substitute day)") };
        holidays.push(Holiday { name, from: date, to: date });
    }
    holidays.sort_by_key(|h| h.from);
    YearCalendar::provisional(year, Rule::EnglandAndWales.reason(year), holidays)
}

/// The provisional US federal-holiday calendar of `year` (5 U.S.C. 6103): a fixed date on a
/// Saturday is observed the Friday before, on a Sunday the Monday after (Executive Order
/// 11582), and counts in the year it is observed in, so next year's New Year's Day on a
/// Saturday is a holiday on 31 December of this one.
pub fn united_states(year: i32) -> Result<YearCalendar, CalendarError> {
    if !PROVISIONAL_YEARS.contains(&year) {
        return Err(CalendarError::YearNotLoaded { year });
    }
    let mut holidays = vec![
        day("Birthday of Martin Luther King, Jr.", nth_weekday(year, 1, Weekday::Mon, 3)?),
        day("Washington's Birthday", nth_weekday(year, 2, Weekday::Mon, 3)?),
        day("Memorial Day", last_weekday(year, 5, Weekday::Mon)?),
        day("Labor Day", nth_weekday(year, 9, Weekday::Mon, 1)?),
        day("Columbus Day", nth_weekday(year, 10, Weekday::Mon, 2)?),
        day("Thanksgiving Day", nth_weekday(year, 11, Weekday::Thu, 4)?),
    ];
    let mut fixed = vec![
        ("New Year's Day", ymd(year, 1, 1)?),
        ("Independence Day", ymd(year, 7, 4)?),
        ("Veterans Day", ymd(year, 11, 11)?),
        ("Christmas Day", ymd(year, 12, 25)?),
        ("New Year's Day", ymd(year + 1, 1, 1)?),
    ];
    // Juneteenth became a federal holiday in 2021.
    if year >= 2021 {
        fixed.push(("Juneteenth National Independence Day", ymd(year, 6, 19)?));
    }
    for (name, date) in fixed {
        let observed = match date.weekday() {
            Weekday::Sat => before(date, 1)?,
            Weekday::Sun => after(date, 1)?,
            _ => date,
        };
        if observed.year() == year {
            let name = if observed == date { name.to_owned() } else { format!("{name} (observed)") };
            holidays.push(Holiday { name, from: observed, to: observed });
        }
    }
    holidays.sort_by_key(|h| h.from);
    YearCalendar::provisional(year, Rule::UnitedStates.reason(year), holidays)
}

/// Easter Sunday (Gregorian), by the anonymous Gregorian algorithm (Meeus/Jones/Butcher).
pub fn easter(year: i32) -> Result<NaiveDate, CalendarError> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let dom = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month.unsigned_abs(), dom.unsigned_abs())
}

fn ymd(year: i32, month: u32, dom: u32) -> Result<NaiveDate, CalendarError> {
    NaiveDate::from_ymd_opt(year, month, dom).ok_or(CalendarError::OutOfRange)
}

fn before(date: NaiveDate, days: u64) -> Result<NaiveDate, CalendarError> {
    date.checked_sub_days(Days::new(days)).ok_or(CalendarError::OutOfRange)
}

fn after(date: NaiveDate, days: u64) -> Result<NaiveDate, CalendarError> {
    date.checked_add_days(Days::new(days)).ok_or(CalendarError::OutOfRange)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Result<NaiveDate, CalendarError> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).ok_or(CalendarError::OutOfRange)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Result<NaiveDate, CalendarError> {
    let first_of_next = if month == 12 { ymd(year + 1, 1, 1)? } else { ymd(year, month + 1, 1)? };
    let mut date = before(first_of_next, 1)?;
    while date.weekday() != weekday {
        date = before(date, 1)?;
    }
    Ok(date)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn day(name: &str, date: NaiveDate) -> Holiday {
    Holiday { name: name.to_owned(), from: date, to: date }
}

fn block(name: &str, from: NaiveDate, extra_days: u64) -> Holiday {
    let to = from.checked_add_days(Days::new(extra_days)).unwrap_or(from);
    Holiday { name: name.to_owned(), from, to }
}

/// The Gregorian date of lunar `month`/`day` in lunar year `year` (no leap month).
fn lunar(year: i32, month: isize, day: usize) -> Result<NaiveDate, CalendarError> {
    naive(LunarDay::from_ymd(year as isize, month, day).get_solar_day())
}

/// The day of the Qingming solar term (sun at 15° ecliptic longitude), China Standard Time.
fn qingming(year: i32) -> Result<NaiveDate, CalendarError> {
    naive(SolarTerm::from_name(year as isize, "清明").get_solar_day())
}

fn naive(day: SolarDay) -> Result<NaiveDate, CalendarError> {
    let year = i32::try_from(day.get_year()).map_err(|_| CalendarError::OutOfRange)?;
    NaiveDate::from_ymd_opt(year, day.get_month() as u32, day.get_day() as u32).ok_or(CalendarError::OutOfRange)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn starts(year: i32) -> Vec<(String, NaiveDate)> {
        china(year).unwrap().holidays().iter().map(|h| (h.name.clone(), h.from)).collect()
    }

    /// The festival dates of years whose notices are known, and of 2027 (D-SLA-6).
    #[test]
    fn festival_dates_match_known_years() {
        let cases = [
            (2023, d(2023, 1, 21), d(2023, 4, 5), d(2023, 6, 22), d(2023, 9, 29)),
            (2024, d(2024, 2, 9), d(2024, 4, 4), d(2024, 6, 10), d(2024, 9, 17)),
            (2025, d(2025, 1, 28), d(2025, 4, 4), d(2025, 5, 31), d(2025, 10, 6)),
            (2026, d(2026, 2, 16), d(2026, 4, 5), d(2026, 6, 19), d(2026, 9, 25)),
            (2027, d(2027, 2, 5), d(2027, 4, 5), d(2027, 6, 9), d(2027, 9, 15)),
        ];
        for (year, eve, qingming, dragon_boat, mid_autumn) in cases {
            let starts = starts(year);
            let of = |name: &str| starts.iter().find(|(n, _)| n == name).map(|(_, d)| *d);
            assert_eq!(of("春节"), Some(eve), "{year} spring festival starts on new year's eve");
            assert_eq!(of("清明节"), Some(qingming), "{year}");
            assert_eq!(of("端午节"), Some(dragon_boat), "{year}");
            assert_eq!(of("中秋节"), Some(mid_autumn), "{year}");
        }
    }

    #[test]
    fn a_provisional_year_has_the_statutory_days_and_weekends_only() {
        let year = china(2027).unwrap();
        assert!(year.is_provisional());
        assert!(year.makeup_working_days().is_empty());
        // 13 statutory days, none on top of another in 2027.
        assert_eq!(year.holiday_date_count(), 13);
        for (date, working) in [
            (d(2027, 1, 1), false),  // New Year's Day, a Friday
            (d(2027, 1, 4), true),   // Monday
            (d(2027, 2, 5), false),  // New Year's Eve
            (d(2027, 2, 8), false),  // lunar 3rd
            (d(2027, 2, 9), true),   // back at work
            (d(2027, 4, 5), false),  // Qingming, a Monday
            (d(2027, 5, 3), true),   // Labour Day is two days
            (d(2027, 10, 4), true),  // National Day is three days
            (d(2027, 10, 9), false), // a Saturday: never a make-up day
        ] {
            assert_eq!(year.is_working_day(date), Ok(working), "{date}");
        }
    }

    #[test]
    fn festivals_that_coincide_share_their_days() {
        // Mid-Autumn fell on National Day in 2020 (Oct 1).
        let year = china(2020).unwrap();
        assert_eq!(year.holiday_date_count(), 12);
        assert_eq!(year.is_working_day(d(2020, 10, 1)), Ok(false));
    }

    #[test]
    fn years_outside_the_range_are_not_guessed() {
        assert_eq!(china(1900).unwrap_err(), CalendarError::YearNotLoaded { year: 1900 });
    }
}
