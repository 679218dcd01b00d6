//! The working-day calendars while intake runs (D-SLA-6). A year without an official holiday
//! arrangement is counted provisionally; when its file arrives in `calendars_dir` (noticed by
//! polling, or on `ReloadCalendars`) the calculator in force is replaced whole and every receipt
//! with a provisional deadline is recomputed, with no restart.

use std::sync::{Arc, PoisonError, RwLock};

use redress_calendar::{Institutions, RegimeConfig, SlaPolicy};
use redress_platform::ServiceError;

/// Every institution's calculator in force, replaced whole when the calendars are reloaded, so
/// one receipt is counted on one calendar from start to end.
#[derive(Debug, Clone)]
pub struct LiveCalculator(Arc<RwLock<Arc<Institutions>>>);

impl LiveCalculator {
    pub fn new(institutions: Institutions) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(institutions))))
    }

    pub fn current(&self) -> Arc<Institutions> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn set(&self, institutions: Institutions) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(institutions);
    }
}

/// Where the calendars come from: the institutions' regimes, the default zone, the directory
/// of year files and the grade targets.
#[derive(Debug, Clone)]
pub struct CalendarSource {
    pub regimes: RegimeConfig,
    pub time_zone: String,
    pub calendars_dir: String,
    pub sla: SlaPolicy,
}

impl CalendarSource {
    /// Every institution's calendar as it is on disk now; a file that does not load is
    /// refused whole.
    pub fn load(&self) -> Result<Institutions, ServiceError> {
        self.regimes.resolve(&self.time_zone, &self.calendars_dir, &self.sla).map_err(|e| {
            ServiceError::failed_precondition("CALENDARS_INVALID", format!("the calendars do not load: {e}"))
        })
    }
}
