//! redress-calendar: SLA clocks for complaint handling.
//!
//! * [`calendar`] owns working-day calendars (which dates are working days,
//!   loaded per year from data files; China, England and Wales and US
//!   2025–2026 shipped embedded).
//! * [`deadline`] owns turning a period counted from an acceptance instant
//!   into a due instant under the Civil Code counting rules.
//! * [`policy`] owns which periods apply per complaint grade.

pub mod calendar;
pub mod deadline;
pub mod policy;
pub mod provisional;

pub use calendar::{CALENDAR_NAMES, CalendarError, WorkingCalendar, YearCalendar};
pub use deadline::{DEFAULT_TIME_ZONE, DeadlineCalculator, Due, Period, Provisional, ReceiptDeadlines};
pub use policy::{Grade, GradeTargets, SlaPolicy};
