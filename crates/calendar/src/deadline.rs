//! Deadline computation (D-SLA-4, D-SLA-5).
//!
//! This module owns turning "period P counted from acceptance instant T" into
//! the instant the period ends, in an institution's time zone:
//!
//! * hour periods run from the exact acceptance instant (elapsed time, no
//!   calendar);
//! * day periods do not count the acceptance date (Civil Code Art. 201) and
//!   end at 24:00 of their last day, i.e. 00:00 of the following local date
//!   (Art. 203);
//! * a calendar-day period whose last day is a rest day or holiday runs to
//!   24:00 of the next working day;
//! * N working days end at 24:00 of the Nth working day after acceptance.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::calendar::{CalendarError, WorkingCalendar};
use crate::policy::{Grade, SlaPolicy};

/// The time zone used when an institution configures none.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Shanghai;

/// A clock length (D-SLA-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    Hours(u32),
    WorkingDays(u32),
    CalendarDays(u32),
}

/// All three deadlines of a receipt at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptDeadlines {
    pub first_response_due: DateTime<Utc>,
    pub resolution_due: DateTime<Utc>,
    pub regulatory_decision_due: DateTime<Utc>,
}

/// Computes due instants against one working calendar and one time zone.
#[derive(Debug, Clone)]
pub struct DeadlineCalculator {
    calendar: Arc<WorkingCalendar>,
    time_zone: Tz,
}

impl DeadlineCalculator {
    pub fn new(calendar: Arc<WorkingCalendar>, time_zone: Tz) -> Self {
        Self { calendar, time_zone }
    }

    /// The shipped calendars, merged with (and overridden by) the year files in
    /// `calendars_dir` when it is not empty, in the IANA zone `time_zone`.
    pub fn configured(time_zone: &str, calendars_dir: &str) -> Result<Self, CalendarError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|e| CalendarError::InvalidTimeZone { name: time_zone.to_owned(), message: format!("{e}") })?;
        let mut calendar = WorkingCalendar::china();
        if !calendars_dir.is_empty() {
            calendar = calendar.merged(WorkingCalendar::load_dir(std::path::Path::new(calendars_dir))?);
        }
        Ok(Self::new(Arc::new(calendar), tz))
    }

    /// The shipped China calendar in Asia/Shanghai.
    pub fn china() -> Self {
        Self::new(Arc::new(WorkingCalendar::china()), DEFAULT_TIME_ZONE)
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    pub fn calendar(&self) -> &WorkingCalendar {
        &self.calendar
    }

    /// The local date of `accepted_at` in this calculator's zone.
    pub fn acceptance_date(&self, accepted_at: DateTime<Utc>) -> NaiveDate {
        accepted_at.with_timezone(&self.time_zone).date_naive()
    }

    /// The instant "24:00 of `date`", i.e. local midnight starting the next
    /// date. Where that midnight is ambiguous the earlier instant is used;
    /// where it does not exist (a DST gap) the first instant after the gap.
    pub fn end_of_day(&self, date: NaiveDate) -> Result<DateTime<Utc>, CalendarError> {
        let midnight =
            date.succ_opt().ok_or(CalendarError::OutOfRange)?.and_hms_opt(0, 0, 0).ok_or(CalendarError::OutOfRange)?;
        earliest_instant_at_or_after(self.time_zone, midnight)
    }

    /// Instant at which `period` counted from the acceptance instant ends.
    pub fn due(&self, accepted_at: DateTime<Utc>, period: Period) -> Result<DateTime<Utc>, CalendarError> {
        match period {
            Period::Hours(hours) => {
                accepted_at.checked_add_signed(TimeDelta::hours(i64::from(hours))).ok_or(CalendarError::OutOfRange)
            }
            Period::WorkingDays(n) => {
                let accepted = self.acceptance_date(accepted_at);
                let last = self.calendar.add_working_days(accepted, n)?;
                self.end_of_day(last)
            }
            Period::CalendarDays(n) => {
                let accepted = self.acceptance_date(accepted_at);
                let last = accepted.checked_add_days(Days::new(u64::from(n))).ok_or(CalendarError::OutOfRange)?;
                // Every counted day must come from a loaded year, not only
                // the last one, so a gap in the data is never papered over.
                for year in accepted.year()..=last.year() {
                    if self.calendar.year(year).is_none() {
                        return Err(CalendarError::YearNotLoaded { year });
                    }
                }
                let last = self.calendar.next_working_day_on_or_after(last)?;
                self.end_of_day(last)
            }
        }
    }

    /// Instant at which `period` counted from `started_at` ends when the clock
    /// was paused over `pauses` (each `(paused_at, resumed_at)`, closed, in any
    /// order). Without pauses this is [`Self::due`].
    ///
    /// * Hour clocks: every paused duration that began before the (so far
    ///   extended) due instant moves it by that duration.
    /// * Day clocks count whole local days: a pause from a day P to a day R
    ///   leaves the days after P up to and including R uncounted, so the clock
    ///   behaves as if it stopped at the end of P and restarted on R with the
    ///   days it had left (R itself not counted, like an acceptance day). A
    ///   pause that begins and ends on the same day moves nothing.
    pub fn due_with_pauses(
        &self,
        started_at: DateTime<Utc>,
        period: Period,
        pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Result<DateTime<Utc>, CalendarError> {
        if pauses.is_empty() {
            return self.due(started_at, period);
        }
        let mut sorted: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            pauses.iter().copied().filter(|(paused, resumed)| resumed > paused && *resumed > started_at).collect();
        sorted.sort();
        match period {
            Period::Hours(_) => {
                let mut due = self.due(started_at, period)?;
                for (paused, resumed) in sorted {
                    if paused < due {
                        let paused = paused.max(started_at);
                        due = due.checked_add_signed(resumed - paused).ok_or(CalendarError::OutOfRange)?;
                    }
                }
                Ok(due)
            }
            Period::WorkingDays(n) | Period::CalendarDays(n) => {
                let working_only = matches!(period, Period::WorkingDays(_));
                let start = self.acceptance_date(started_at);
                self.calendar.ensure_loaded(start)?;
                let excluded: Vec<(NaiveDate, NaiveDate)> = sorted
                    .iter()
                    .map(|(paused, resumed)| (self.acceptance_date(*paused), self.acceptance_date(*resumed)))
                    .collect();
                let is_excluded = |day: NaiveDate| excluded.iter().any(|(from, to)| day > *from && day <= *to);
                let mut day = start;
                let mut remaining = n;
                while remaining > 0 {
                    day = day.succ_opt().ok_or(CalendarError::OutOfRange)?;
                    // Every day passed over must come from a loaded year.
                    let working = self.calendar.is_working_day(day)?;
                    if (working || !working_only) && !is_excluded(day) {
                        remaining -= 1;
                    }
                }
                let last = if working_only { day } else { self.calendar.next_working_day_on_or_after(day)? };
                self.end_of_day(last)
            }
        }
    }

    /// First-response, resolution and regulatory-decision deadlines of a
    /// receipt accepted at `accepted_at`.
    pub fn receipt_deadlines(
        &self,
        accepted_at: DateTime<Utc>,
        grade: Grade,
        policy: &SlaPolicy,
    ) -> Result<ReceiptDeadlines, CalendarError> {
        let targets = policy.targets(grade);
        Ok(ReceiptDeadlines {
            first_response_due: self.due(accepted_at, targets.first_response)?,
            resolution_due: self.due(accepted_at, targets.resolution)?,
            regulatory_decision_due: self.due(accepted_at, policy.regulatory_decision)?,
        })
    }
}

/// Earliest instant whose local time in `tz` is at or after `local`.
fn earliest_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, CalendarError> {
    // Transitions in the tz database fall on whole minutes and gaps are at
    // most a few hours, so probing minute by minute for a day finds the end
    // of any gap.
    for minutes in 0..=24 * 60 {
        let probe = local.checked_add_signed(TimeDelta::minutes(minutes)).ok_or(CalendarError::OutOfRange)?;
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return Ok(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earliest, _) => return Ok(earliest.with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    Err(CalendarError::OutOfRange)
}
