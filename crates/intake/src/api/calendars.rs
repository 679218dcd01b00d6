//! `ReloadCalendars`: an operator puts a year's official holiday arrangement in force, for
//! every institution's calendar, without a restart, and every receipt deadline counted on that year provisionally is recomputed
//! (D-SLA-6).

use std::sync::Arc;

use redress_calendar::Institutions;
use redress_platform::ServiceError;
use redress_platform::principal::{Permission, Principal};
use redress_proto::redress::common::v1::{ReloadCalendarsRequest, ReloadCalendarsResponse};

use super::IntakeApi;
use crate::domain::deadlines;
use crate::error::IntakeError;

impl IntakeApi {
    pub(super) async fn reload_calendars(
        &self,
        principal: &Principal,
        _request: ReloadCalendarsRequest,
    ) -> Result<ReloadCalendarsResponse, IntakeError> {
        principal.require(Permission::CalendarsAdmin)?;
        let response = self.reload_calendars_now().await?;
        tracing::info!(by = %principal.subject, "calendars reloaded on request");
        Ok(response)
    }

    /// Reads the calendars again, puts them in force and recomputes every receipt with a
    /// provisional deadline. A directory with a file that does not load changes nothing.
    pub async fn reload_calendars_now(&self) -> Result<ReloadCalendarsResponse, IntakeError> {
        let Some(source) = &self.calendars else {
            return Err(ServiceError::failed_precondition(
                "CALENDARS_NOT_CONFIGURED",
                "no calendar source is configured",
            )
            .into());
        };
        let institutions = Arc::new(source.load()?);
        let official_years = institutions.official_years();
        let store = self.store()?;
        self.deadlines.set(Institutions::clone(&institutions));
        // Each receipt is recounted on its own institution's calendar.
        let revised = store
            .revise_deadlines(Arc::new(move |complaint| {
                let regime = institutions.of(&complaint.org_unit).clone();
                deadlines::revised(complaint, regime.calculator(), regime.policy())
            }))
            .await?;
        Ok(redress_platform::revisions::reloaded(official_years, revised))
    }
}
