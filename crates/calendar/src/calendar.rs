//! Working-day calendars (D-SLA-6).
//!
//! This module owns the question "is this date a working day?". A working
//! day is Monday–Friday, minus statutory holidays, plus make-up working
//! weekends (调休上班). The holiday arrangement is published by the State
//! Council once a year, so calendars are data: one TOML file per year,
//! parsed and validated into a [`YearCalendar`], several of which form a
//! [`WorkingCalendar`]. A year without a file is either refused
//! ([`CalendarError::YearNotLoaded`]) or, with
//! [`WorkingCalendar::with_provisional_years`], counted on its provisional
//! calendar (see [`crate::provisional`]), which callers must report as such.
//!
//! England and Wales bank holidays and US federal holidays (D-SLA-10) ship the
//! same way, one file per year with holidays only; their provisional years are
//! built from the statutory rules that fix those holidays.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// Year files shipped with the crate, embedded so the library needs no
/// files on disk at run time.
const SHIPPED_CHINA: &[(&str, &str)] =
    &[("cn/2025.toml", include_str!("../data/cn/2025.toml")), ("cn/2026.toml", include_str!("../data/cn/2026.toml"))];

/// England and Wales bank holidays, the non-business days of FCA DISP beside weekends.
const SHIPPED_ENGLAND_AND_WALES: &[(&str, &str)] = &[
    ("gb-eng/2025.toml", include_str!("../data/gb-eng/2025.toml")),
    ("gb-eng/2026.toml", include_str!("../data/gb-eng/2026.toml")),
];

/// US federal holidays, as observed.
const SHIPPED_UNITED_STATES: &[(&str, &str)] =
    &[("us/2025.toml", include_str!("../data/us/2025.toml")), ("us/2026.toml", include_str!("../data/us/2026.toml"))];

/// Names of the shipped calendars, as regimes and configuration refer to them.
pub const CALENDAR_NAMES: [&str; 3] = ["cn", "gb-eng", "us"];

/// Errors from loading calendars or from queries that need calendar data.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// A computation needed a date in a year for which no calendar is loaded.
    #[error("no working-day calendar loaded for year {year}")]
    YearNotLoaded { year: i32 },
    /// A year file parsed but violates a calendar rule.
    #[error("invalid calendar {source_name}: {message}")]
    Invalid { source_name: String, message: String },
    /// A year file is not well-formed TOML or does not have the expected shape.
    #[error("cannot parse calendar {source_name}: {message}")]
    Parse { source_name: String, message: String },
    /// A calendar directory or file could not be read.
    #[error("cannot read calendar {path}: {message}")]
    Io { path: String, message: String },
    /// Date arithmetic left the range chrono can represent.
    #[error("date arithmetic out of range")]
    OutOfRange,
    /// A configured time zone is not an IANA zone name.
    #[error("invalid time zone {name:?}: {message}")]
    InvalidTimeZone { name: String, message: String },
}

/// One statutory holiday block, both ends inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A Saturday or Sunday that is a working day (调休上班).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeupWorkingDay {
    pub date: NaiveDate,
    pub note: String,
}

/// The validated holiday arrangement of one year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearCalendar {
    year: i32,
    source: String,
    holidays: Vec<Holiday>,
    makeup_working_days: Vec<MakeupWorkingDay>,
    holiday_dates: BTreeSet<NaiveDate>,
    makeup_dates: BTreeSet<NaiveDate>,
    /// Built from the statutory rule because no official arrangement is loaded.
    provisional: bool,
}

// Wire shape of a year file; kept private so the public types only ever
// hold validated data.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: i32,
    #[serde(default)]
    source: String,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
    #[serde(default)]
    makeup_working_days: Vec<RawMakeup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: String,
    from: toml::value::Datetime,
    to: toml::value::Datetime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMakeup {
    date: toml::value::Datetime,
    #[serde(default)]
    note: String,
}

impl YearCalendar {
    /// Parses and validates one year file. `source_name` only labels errors.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self, CalendarError> {
        let raw: RawYear = toml::from_str(text).map_err(|e| CalendarError::Parse {
            source_name: source_name.to_owned(),
            message: e.message().to_lowercase(),
        })?;
        let year = raw.year;
        let invalid = |message: String| CalendarError::Invalid {
            source_name: source_name.to_owned(),
            message: format!("year {year}: {message}"),
        };
        let in_year = |field: &str, value: &toml::value::Datetime| -> Result<NaiveDate, CalendarError> {
            let date =
                toml_date(value).ok_or_else(|| invalid(format!("{field} {value} is not a plain date (yyyy-mm-dd)")))?;
            if date.year() != year {
                return Err(invalid(format!("{field} {date} is outside year {year}")));
            }
            Ok(date)
        };

        let mut holidays = Vec::with_capacity(raw.holidays.len());
        let mut holiday_dates = BTreeSet::new();
        for h in raw.holidays {
            let from = in_year("holiday from", &h.from)?;
            let to = in_year("holiday to", &h.to)?;
            if from > to {
                return Err(invalid(format!("holiday {} runs backwards: from {from} is after to {to}", h.name)));
            }
            for date in from.iter_days().take_while(|d| *d <= to) {
                if !holiday_dates.insert(date) {
                    return Err(invalid(format!("duplicate holiday date {date}")));
                }
            }
            holidays.push(Holiday { name: h.name, from, to });
        }

        let mut makeup_working_days = Vec::with_capacity(raw.makeup_working_days.len());
        let mut makeup_dates = BTreeSet::new();
        for m in raw.makeup_working_days {
            let date = in_year("make-up working day", &m.date)?;
            if !is_weekend(date) {
                return Err(invalid(format!(
                    "make-up working day {date} is a {}, not a saturday or sunday",
                    weekday_name(date.weekday())
                )));
            }
            if holiday_dates.contains(&date) {
                return Err(invalid(format!("date {date} is both a holiday and a make-up working day")));
            }
            if !makeup_dates.insert(date) {
                return Err(invalid(format!("duplicate make-up working day {date}")));
            }
            makeup_working_days.push(MakeupWorkingDay { date, note: m.note });
        }

        Ok(Self {
            year,
            source: raw.source,
            holidays,
            makeup_working_days,
            holiday_dates,
            makeup_dates,
            provisional: false,
        })
    }

    /// A provisional year: `holidays` (which may share dates, as when Mid-Autumn falls on
    /// National Day) and weekends, no make-up days; `source` says why it is provisional.
    pub fn provisional(year: i32, source: String, holidays: Vec<Holiday>) -> Result<Self, CalendarError> {
        let mut holiday_dates = BTreeSet::new();
        for h in &holidays {
            if h.from.year() != year || h.to.year() != year || h.from > h.to {
                return Err(CalendarError::Invalid {
                    source_name: "provisional".to_owned(),
                    message: format!("year {year}: holiday {} ({} to {}) is not within the year", h.name, h.from, h.to),
                });
            }
            holiday_dates.extend(h.from.iter_days().take_while(|d| *d <= h.to));
        }
        Ok(Self {
            year,
            source,
            holidays,
            makeup_working_days: Vec::new(),
            holiday_dates,
            makeup_dates: BTreeSet::new(),
            provisional: true,
        })
    }

    /// Whether this year was built from the statutory rule rather than an official notice.
    pub fn is_provisional(&self) -> bool {
        self.provisional
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    /// The notice the arrangement was taken from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }

    pub fn makeup_working_days(&self) -> &[MakeupWorkingDay] {
        &self.makeup_working_days
    }

    /// Number of individual dates covered by holiday blocks.
    pub fn holiday_date_count(&self) -> usize {
        self.holiday_dates.len()
    }

    /// Number of working days in the year.
    pub fn working_day_count(&self) -> usize {
        NaiveDate::from_ymd_opt(self.year, 1, 1)
            .map(|first| {
                first
                    .iter_days()
                    .take_while(|d| d.year() == self.year)
                    .filter(|d| self.is_working_day_unchecked(*d))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Whether `date` is a working day; errors if `date` is in another year.
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        if date.year() != self.year {
            return Err(CalendarError::YearNotLoaded { year: date.year() });
        }
        Ok(self.is_working_day_unchecked(date))
    }

    fn is_working_day_unchecked(&self, date: NaiveDate) -> bool {
        if self.makeup_dates.contains(&date) {
            return true;
        }
        !is_weekend(date) && !self.holiday_dates.contains(&date)
    }
}

/// A set of year calendars, keyed by year: the official ones loaded from files and, when
/// enabled, provisional ones built on demand for the other years (D-SLA-6).
#[derive(Debug, Clone, Default)]
pub struct WorkingCalendar {
    years: BTreeMap<i32, YearCalendar>,
    /// Provisional years built so far; `None` when years without a file are not counted.
    provisional: Option<Arc<ProvisionalYears>>,
    /// The rule provisional years are built by: each region's own, never another's.
    rule: crate::provisional::Rule,
}

/// Provisional years built so far, shared by the clones of one calendar.
type ProvisionalYears = RwLock<BTreeMap<i32, Arc<YearCalendar>>>;

impl PartialEq for WorkingCalendar {
    fn eq(&self, other: &Self) -> bool {
        self.years == other.years && self.provisional.is_some() == other.provisional.is_some()
    }
}

impl Eq for WorkingCalendar {}

/// A year calendar as a query sees it: an official one, or a provisional one built for it.
enum YearRef<'a> {
    Official(&'a YearCalendar),
    Provisional(Arc<YearCalendar>),
}

impl std::ops::Deref for YearRef<'_> {
    type Target = YearCalendar;

    fn deref(&self) -> &YearCalendar {
        match self {
            Self::Official(year) => year,
            Self::Provisional(year) => year,
        }
    }
}

impl WorkingCalendar {
    /// The shipped mainland China calendars (2025 and 2026).
    pub fn china() -> Self {
        Self::shipped(SHIPPED_CHINA)
    }

    /// The shipped England and Wales bank-holiday calendars (2025 and 2026); with
    /// [`Self::with_provisional_years`], other years are built by
    /// [`crate::provisional::england_and_wales`].
    pub fn england_and_wales() -> Self {
        Self { rule: crate::provisional::Rule::EnglandAndWales, ..Self::shipped(SHIPPED_ENGLAND_AND_WALES) }
    }

    /// The shipped US federal-holiday calendars (2025 and 2026), observed dates; with
    /// [`Self::with_provisional_years`], other years are built by
    /// [`crate::provisional::united_states`].
    pub fn united_states() -> Self {
        Self { rule: crate::provisional::Rule::UnitedStates, ..Self::shipped(SHIPPED_UNITED_STATES) }
    }

    /// A shipped calendar by the name regimes use: `cn`, `gb-eng` or `us` (see
    /// [`CALENDAR_NAMES`]).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "cn" => Some(Self::china()),
            "gb-eng" => Some(Self::england_and_wales()),
            "us" => Some(Self::united_states()),
            _ => None,
        }
    }

    fn shipped(files: &[(&str, &str)]) -> Self {
        let mut years = BTreeMap::new();
        for (name, text) in files {
            // The embedded files are validated by the crate's tests, so a
            // failure here is a build defect; skipping keeps this infallible
            // and the missing year still surfaces as YearNotLoaded.
            if let Ok(year) = YearCalendar::from_toml(name, text) {
                years.insert(year.year(), year);
            }
        }
        Self { years, provisional: None, rule: crate::provisional::Rule::default() }
    }

    /// This calendar, counting the years it has no file for on their provisional calendar
    /// (the statutory holidays, no make-up days) instead of refusing them.
    pub fn with_provisional_years(mut self) -> Self {
        self.provisional = Some(Arc::default());
        self
    }

    /// Why a deadline counting a day of `year` on this calendar's provisional calendar is
    /// provisional: names the calendar and the year.
    pub fn provisional_reason(&self, year: i32) -> String {
        self.rule.reason(year)
    }

    /// Whether a date of `year` counts on a provisional calendar (no official file loaded).
    pub fn is_provisional(&self, year: i32) -> bool {
        !self.years.contains_key(&year)
            && self.provisional.is_some()
            && crate::provisional::PROVISIONAL_YEARS.contains(&year)
    }

    /// Whether dates of `year` can be counted (officially or provisionally).
    pub fn counts(&self, year: i32) -> bool {
        self.years.contains_key(&year) || self.is_provisional(year)
    }

    /// Builds a calendar from `(name, toml text)` pairs; the name labels errors.
    /// Two sources for the same year are an error.
    pub fn from_year_toml(sources: &[(&str, &str)]) -> Result<Self, CalendarError> {
        let mut years = BTreeMap::new();
        for (name, text) in sources {
            let year = YearCalendar::from_toml(name, text)?;
            if years.contains_key(&year.year()) {
                return Err(CalendarError::Invalid {
                    source_name: (*name).to_owned(),
                    message: format!("year {}: already loaded from another file", year.year()),
                });
            }
            years.insert(year.year(), year);
        }
        Ok(Self { years, provisional: None, rule: crate::provisional::Rule::default() })
    }

    /// Loads every `*.toml` file directly inside `dir` (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<Self, CalendarError> {
        let io = |path: &Path, e: std::io::Error| CalendarError::Io {
            path: path.display().to_string(),
            message: e.to_string().to_lowercase(),
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.is_file() && path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            files.push((path.display().to_string(), text));
        }
        let sources: Vec<(&str, &str)> = files.iter().map(|(name, text)| (name.as_str(), text.as_str())).collect();
        Self::from_year_toml(&sources)
    }

    /// Combines two calendars; where both have a year, `other`'s wins. Provisional years are
    /// counted when either calendar counts them.
    pub fn merged(mut self, other: WorkingCalendar) -> Self {
        self.years.extend(other.years);
        if self.provisional.is_none() && other.provisional.is_some() {
            self.provisional = Some(Arc::default());
        }
        // Years built before a file arrived are dropped: the file now speaks for them.
        if let Some(cache) = &self.provisional
            && let Ok(mut cache) = cache.write()
        {
            cache.retain(|year, _| !self.years.contains_key(year));
        }
        self
    }

    /// Years loaded from official files, ascending.
    pub fn years(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    /// The official calendar of one year, if loaded.
    pub fn year(&self, year: i32) -> Option<&YearCalendar> {
        self.years.get(&year)
    }

    /// Errors unless the year of `date` is loaded.
    pub fn ensure_loaded(&self, date: NaiveDate) -> Result<(), CalendarError> {
        self.year_of(date).map(|_| ())
    }

    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        self.year_of(date)?.is_working_day(date)
    }

    /// `date` itself if it is a working day, else the first working day after it.
    pub fn next_working_day_on_or_after(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        let mut day = date;
        // Terminates: each step either finds a working day, moves one day
        // forward, or hits an unloaded year (only finitely many are loaded).
        loop {
            if self.is_working_day(day)? {
                return Ok(day);
            }
            day = day.succ_opt().ok_or(CalendarError::OutOfRange)?;
        }
    }

    /// The `n`th working day strictly after `date` (`date` itself never
    /// counts); `n == 0` returns `date`. The year of `date` must be loaded
    /// too, so a count never starts from a guessed calendar.
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        self.ensure_loaded(date)?;
        let mut day = date;
        let mut remaining = n;
        while remaining > 0 {
            day = day.succ_opt().ok_or(CalendarError::OutOfRange)?;
            if self.is_working_day(day)? {
                remaining -= 1;
            }
        }
        Ok(day)
    }

    fn year_of(&self, date: NaiveDate) -> Result<YearRef<'_>, CalendarError> {
        let year = date.year();
        if let Some(official) = self.years.get(&year) {
            return Ok(YearRef::Official(official));
        }
        let Some(cache) = &self.provisional else { return Err(CalendarError::YearNotLoaded { year }) };
        if let Some(built) = cache.read().ok().and_then(|c| c.get(&year).cloned()) {
            return Ok(YearRef::Provisional(built));
        }
        let built = Arc::new(self.rule.build(year)?);
        if let Ok(mut cache) = cache.write() {
            cache.insert(year, built.clone());
        }
        Ok(YearRef::Provisional(built))
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

/// A TOML local date (no time, no offset) as a `NaiveDate`.
fn toml_date(value: &toml::value::Datetime) -> Option<NaiveDate> {
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_are_valid() {
        for (name, text) in SHIPPED_CHINA {
            assert!(YearCalendar::from_toml(name, text).is_ok(), "{name}");
        }
        assert_eq!(WorkingCalendar::china().years(), vec![2025, 2026]);
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn years_without_a_file_count_provisionally_only_when_asked() {
        let strict = WorkingCalendar::china();
        assert_eq!(strict.is_working_day(d(2027, 1, 4)), Err(CalendarError::YearNotLoaded { year: 2027 }));
        let lenient = WorkingCalendar::china().with_provisional_years();
        assert!(lenient.is_provisional(2027) && !lenient.is_provisional(2026));
        assert_eq!(lenient.is_working_day(d(2027, 1, 1)), Ok(false));
        assert_eq!(lenient.is_working_day(d(2027, 1, 4)), Ok(true));
        // Official data wins: 2026-01-04 is a make-up working Sunday.
        assert_eq!(lenient.is_working_day(d(2026, 1, 4)), Ok(true));
        // 2026-12-31 (Thursday) + 3 working days crosses into provisional 2027.
        assert_eq!(lenient.add_working_days(d(2026, 12, 31), 3), Ok(d(2027, 1, 6)));
    }

    #[test]
    fn an_official_file_replaces_the_provisional_year() {
        let lenient = WorkingCalendar::china().with_provisional_years();
        assert_eq!(lenient.is_working_day(d(2027, 2, 20)), Ok(false), "a Saturday");
        let official = WorkingCalendar::from_year_toml(&[(
            "2027.toml",
            "year = 2027\n[[makeup_working_days]]\ndate = 2027-02-20\nnote = \"调休\"\n",
        )]);
        let merged = lenient.merged(official.unwrap_or_default());
        assert!(!merged.is_provisional(2027));
        assert_eq!(merged.is_working_day(d(2027, 2, 20)), Ok(true));
    }
}
