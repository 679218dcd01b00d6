//! The working-day calendars while the service runs (D-SLA-6). A year without an official
//! holiday arrangement is counted provisionally; when its file arrives in `calendars_dir`
//! (noticed by polling, or on `ReloadCalendars`) the rules in force are replaced whole and every
//! case with a provisional running clock is recomputed, with no restart.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use redress_calendar::CalendarSource;
use redress_calendar::{DeadlineCalculator, Institutions};
use redress_platform::time::Clock;
use redress_proto::redress::common::v1::ReloadCalendarsResponse;

use crate::domain::workflow::Rules;
use crate::error::CaseError;
use crate::store::CaseStore;

/// The rules the workflow applies and the clock it reads the time from. The rules are
/// replaced whole when the calendars are reloaded, never changed in place, so one operation
/// sees one calendar from start to end.
#[derive(Debug, Clone)]
pub struct LiveRules {
    current: Arc<RwLock<Arc<Rules>>>,
    clock: Clock,
}

impl LiveRules {
    pub fn new(rules: Rules) -> Self {
        Self { current: Arc::new(RwLock::new(Arc::new(rules))), clock: Clock::system() }
    }

    /// These rules read the time from `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    pub fn current(&self) -> Arc<Rules> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Puts `institutions` in force for every operation that starts from now on.
    pub fn set_institutions(&self, institutions: Institutions) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut rules = Rules::clone(&current);
        rules.clocks.institutions = Arc::new(institutions);
        *current = Arc::new(rules);
    }

    /// Puts `calculator` in force for the institutions on the default regime.
    pub fn set_calculator(&self, calculator: DeadlineCalculator) {
        let institutions = Institutions::clone(&self.current().clocks.institutions);
        self.set_institutions(institutions.with_default_calculator(calculator));
    }
}

impl From<Rules> for LiveRules {
    fn from(rules: Rules) -> Self {
        Self::new(rules)
    }
}

impl From<Arc<Rules>> for LiveRules {
    fn from(rules: Arc<Rules>) -> Self {
        Self::new(Arc::unwrap_or_clone(rules))
    }
}

/// Reads every institution's calendar again from `source`, puts them in force and recomputes
/// every case with a provisional running clock. A directory with a file that does not load
/// changes nothing.
pub async fn reload(source: &CalendarSource, store: &dyn CaseStore) -> Result<ReloadCalendarsResponse, CaseError> {
    let institutions = source.load()?;
    let official_years = institutions.official_years();
    store.rules().set_institutions(institutions);
    let revised = store.revise_provisional().await?;
    Ok(redress_platform::revisions::reloaded(official_years, revised))
}

/// Reloads whenever a file in `source`'s `calendars_dir` changes, polling every `interval`,
/// until `store`'s supervisor stops (run it under [`redress_platform::host::Supervisor::spawn`]).
pub async fn watch(
    source: CalendarSource,
    store: Arc<dyn CaseStore>,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    if source.calendars_dir.is_empty() {
        shutdown.cancelled().await;
        return Ok(());
    }
    let dir = std::path::PathBuf::from(&source.calendars_dir);
    redress_platform::watch::watch_dir(dir, interval, shutdown, || async {
        reload(&source, store.as_ref()).await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await;
    Ok(())
}
