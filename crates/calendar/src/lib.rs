//! redress-calendar: SLA clocks for complaint handling.
//!
//! * [`calendar`] owns working-day calendars (which dates are working days,
//!   loaded per year from data files; China, England and Wales and US
//!   2025–2026 shipped embedded).
//! * [`deadline`] owns turning a period counted from an acceptance instant
//!   into a due instant under the Civil Code counting rules.
//! * [`institutions`] owns which regime, calendar and time zone each institution
//!   counts on, as configured.
//! * [`provisional`] owns the provisional years of each calendar: those it has
//!   no file for, built from the statutory rules.
//! * [`policy`] owns which periods apply per complaint grade.
//! * [`regime`] owns the clock sets of complaint regimes (CBIRC, SAMR, FCA
//!   DISP, CFPB) with their calendar and time zone, shipped as preset files.

pub mod calendar;
pub mod deadline;
pub mod institutions;
pub mod policy;
pub mod provisional;
pub mod regime;

pub use calendar::{CALENDAR_NAMES, CalendarError, WorkingCalendar, YearCalendar};
pub use deadline::{DEFAULT_TIME_ZONE, DeadlineCalculator, Due, Period, Provisional, ReceiptDeadlines};
pub use institutions::{
    CalendarSource, InstitutionConfig, InstitutionRegime, Institutions, RegimeConfig, RegimeConfigError,
};
pub use policy::{Grade, GradeTargets, SlaPolicy};
pub use regime::{ClockStart, ExcludedTime, Extension, PeriodUnit, REGIME_NAMES, Regime, RegimeClock, RegimeError};
