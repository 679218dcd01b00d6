//! The working-day calendars while intake runs (D-SLA-6). A year without an official holiday
//! arrangement is counted provisionally; when its file arrives in `calendars_dir` (noticed by
//! polling, or on `ReloadCalendars`) the calculator in force is replaced whole and every receipt
//! with a provisional deadline is recomputed, with no restart.

use std::sync::{Arc, PoisonError, RwLock};

pub use redress_calendar::CalendarSource;
use redress_calendar::Institutions;

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
