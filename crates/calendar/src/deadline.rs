//! Deadline computation (D-SLA-4, D-SLA-5, D-SLA-9).
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
//! * N working days end at 24:00 of the Nth working day after acceptance;
//! * a paused clock resumes with at least the time it had left when it
//!   paused.

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

/// A due instant, and whether it rests on a provisional year (D-SLA-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub at: DateTime<Utc>,
    /// Set when a year the period counts in has no official calendar loaded: the instant was
    /// counted on that year's provisional calendar and may move once the official one arrives.
    pub provisional: Option<Provisional>,
}

/// Why a due instant is provisional: the first year it counted provisionally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisional {
    pub year: i32,
    /// Names the calendar and the year, for people (see [`crate::provisional::Rule::reason`]).
    pub reason: String,
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
    /// `calendars_dir` when it is not empty, in the IANA zone `time_zone`. Years without a file
    /// are counted provisionally, so no deadline is ever left unset for want of a notice.
    pub fn configured(time_zone: &str, calendars_dir: &str) -> Result<Self, CalendarError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|e| CalendarError::InvalidTimeZone { name: time_zone.to_owned(), message: format!("{e}") })?;
        let mut calendar = WorkingCalendar::china().with_provisional_years();
        if !calendars_dir.is_empty() {
            calendar = calendar.merged(WorkingCalendar::load_dir(std::path::Path::new(calendars_dir))?);
        }
        Ok(Self::new(Arc::new(calendar), tz))
    }

    /// The shipped China calendar in Asia/Shanghai, counting other years provisionally.
    pub fn china() -> Self {
        Self::new(Arc::new(WorkingCalendar::china().with_provisional_years()), DEFAULT_TIME_ZONE)
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
            Period::WorkingDays(n) => self.end_of_day(self.last_day(self.acceptance_date(accepted_at), n, true)?),
            Period::CalendarDays(n) => self.end_of_day(self.last_day(self.acceptance_date(accepted_at), n, false)?),
        }
    }

    /// [`Self::due`], saying whether a provisional year was counted.
    pub fn due_explained(&self, accepted_at: DateTime<Utc>, period: Period) -> Result<Due, CalendarError> {
        let at = self.due(accepted_at, period)?;
        Ok(self.explain(accepted_at, at, period))
    }

    /// [`Self::due_with_pauses`], saying whether a provisional year was counted.
    pub fn due_with_pauses_explained(
        &self,
        started_at: DateTime<Utc>,
        period: Period,
        pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Result<Due, CalendarError> {
        let at = self.due_with_pauses(started_at, period, pauses)?;
        Ok(self.explain(started_at, at, period))
    }

    /// A day period is provisional when any year from its start date to its last counted day
    /// is; an hour period counts no days, so it never is.
    fn explain(&self, started_at: DateTime<Utc>, at: DateTime<Utc>, period: Period) -> Due {
        if matches!(period, Period::Hours(_)) {
            return Due { at, provisional: None };
        }
        // `at` is 24:00 of the last counted day, so the instant before it lies on that day.
        let last = self.acceptance_date(at - TimeDelta::seconds(1)).year();
        let first = self.acceptance_date(started_at).year();
        let provisional = (first..=last)
            .find(|year| self.calendar.is_provisional(*year))
            .map(|year| Provisional { year, reason: self.calendar.provisional_reason(year) });
        Due { at, provisional }
    }

    /// Instant at which `period` counted from `started_at` ends when the clock was paused over
    /// `pauses` (each `(paused_at, resumed_at)`, closed, in any order; overlapping pauses count
    /// once). Without pauses this is [`Self::due`].
    ///
    /// A pause owes no time (D-SLA-9): the clock resumes with at least the time it had left
    /// when it paused. A pause that begins at or after the (so far extended) due instant finds
    /// nothing left and moves nothing.
    ///
    /// * Hour clocks move by the paused duration.
    /// * Day clocks count whole local days. The days left at a pause are the days the clock
    ///   counts from the day the pause began to its last day, that day included however late
    ///   the pause began; the clock resumes with as many counted days from the day it resumed,
    ///   that day included too. So a pause within one date moves nothing, and one across a
    ///   single midnight moves the last day by at most one counted day. Working-day clocks
    ///   count working days only; a calendar-day clock that now ends on a rest day runs to the
    ///   next working day, as without pauses (D-SLA-5).
    pub fn due_with_pauses(
        &self,
        started_at: DateTime<Utc>,
        period: Period,
        pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Result<DateTime<Utc>, CalendarError> {
        let pauses = pauses_while_counting(started_at, pauses);
        match period {
            Period::Hours(_) => {
                let mut due = self.due(started_at, period)?;
                for (paused, resumed) in pauses {
                    if paused < due {
                        due = due.checked_add_signed(resumed - paused).ok_or(CalendarError::OutOfRange)?;
                    }
                }
                Ok(due)
            }
            Period::WorkingDays(n) | Period::CalendarDays(n) => {
                let working_only = matches!(period, Period::WorkingDays(_));
                let start = self.acceptance_date(started_at);
                // The start date is never counted, so neither is it a day left or to run.
                let first_counted = start.succ_opt().ok_or(CalendarError::OutOfRange)?;
                let mut last = self.last_day(start, n, working_only)?;
                for (paused, resumed) in pauses {
                    let paused_on = self.acceptance_date(paused).max(first_counted);
                    if paused_on > last {
                        continue;
                    }
                    let left = self.counted_days(paused_on, last, working_only)?;
                    let resumed_on = self.acceptance_date(resumed).max(first_counted);
                    last = self.nth_counted_day(resumed_on, left, working_only)?;
                    if !working_only {
                        last = self.calendar.next_working_day_on_or_after(last)?;
                    }
                }
                self.end_of_day(last)
            }
        }
    }

    /// The last day of `n` working (or calendar) days counted from the date `accepted`
    /// (D-SLA-5).
    fn last_day(&self, accepted: NaiveDate, n: u32, working_only: bool) -> Result<NaiveDate, CalendarError> {
        if working_only {
            return self.calendar.add_working_days(accepted, n);
        }
        let last = accepted.checked_add_days(Days::new(u64::from(n))).ok_or(CalendarError::OutOfRange)?;
        // Every counted day must come from a year the calendar counts (officially or
        // provisionally), not only the last one, so a gap in the data is never papered over.
        for year in accepted.year()..=last.year() {
            if !self.calendar.counts(year) {
                return Err(CalendarError::YearNotLoaded { year });
            }
        }
        self.calendar.next_working_day_on_or_after(last)
    }

    /// How many days from `from` to `to` (both included) a day clock counts.
    fn counted_days(&self, from: NaiveDate, to: NaiveDate, working_only: bool) -> Result<u32, CalendarError> {
        let mut count = 0;
        for day in from.iter_days().take_while(|day| *day <= to) {
            if self.calendar.is_working_day(day)? || !working_only {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The `n`th day a day clock counts from `from` on, `from` included; `from` itself when
    /// `n` is 0.
    fn nth_counted_day(&self, from: NaiveDate, n: u32, working_only: bool) -> Result<NaiveDate, CalendarError> {
        let mut day = from;
        let mut remaining = n;
        loop {
            // Every day passed over must come from a loaded year.
            if self.calendar.is_working_day(day)? || !working_only {
                remaining = remaining.saturating_sub(1);
            }
            if remaining == 0 {
                return Ok(day);
            }
            day = day.succ_opt().ok_or(CalendarError::OutOfRange)?;
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

/// The closed pauses that overlap a clock started at `started_at`, cut to its start, earliest
/// first, overlapping ones joined.
fn pauses_while_counting(
    started_at: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut sorted: Vec<(DateTime<Utc>, DateTime<Utc>)> = pauses
        .iter()
        .filter(|(paused, resumed)| resumed > paused && *resumed > started_at)
        .map(|(paused, resumed)| ((*paused).max(started_at), *resumed))
        .collect();
    sorted.sort();
    let mut joined: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(sorted.len());
    for (paused, resumed) in sorted {
        match joined.last_mut() {
            Some(previous) if paused <= previous.1 => previous.1 = previous.1.max(resumed),
            _ => joined.push((paused, resumed)),
        }
    }
    joined
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
