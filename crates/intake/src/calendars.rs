//! The working-day calendars while intake runs (D-SLA-6). A year without an official holiday
//! arrangement is counted provisionally; when its file arrives in `calendars_dir` (noticed by
//! polling, or on `ReloadCalendars`) the calculator in force is replaced whole and every receipt
//! with a provisional deadline is recomputed, with no restart.

use std::sync::{Arc, PoisonError, RwLock};

use redress_calendar::DeadlineCalculator;
use redress_platform::ServiceError;

/// The deadline calculator in force, replaced whole when the calendars are reloaded, so one
/// receipt is counted on one calendar from start to end.
#[derive(Debug, Clone)]
pub struct LiveCalculator(Arc<RwLock<DeadlineCalculator>>);

impl LiveCalculator {
    pub fn new(calculator: DeadlineCalculator) -> Self {
        Self(Arc::new(RwLock::new(calculator)))
    }

    pub fn current(&self) -> DeadlineCalculator {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn set(&self, calculator: DeadlineCalculator) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = calculator;
    }
}

/// Where the calendars come from: the zone days are counted in and the directory of year files.
#[derive(Debug, Clone)]
pub struct CalendarSource {
    pub time_zone: String,
    pub calendars_dir: String,
}

impl CalendarSource {
    /// The calendars as they are on disk now; a file that does not load is refused whole.
    pub fn load(&self) -> Result<DeadlineCalculator, ServiceError> {
        DeadlineCalculator::configured(&self.time_zone, &self.calendars_dir).map_err(|e| {
            ServiceError::failed_precondition("CALENDARS_INVALID", format!("the calendars do not load: {e}"))
        })
    }
}
