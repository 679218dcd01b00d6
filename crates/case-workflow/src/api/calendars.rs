//! `ReloadCalendars`: an operator puts a year's official holiday arrangement in force without
//! a restart (D-SLA-6).

use redress_platform::ServiceError;
use redress_platform::principal::{Permission, Principal};
use redress_proto::redress::common::v1::{ReloadCalendarsRequest, ReloadCalendarsResponse};

use super::CaseApi;
use crate::error::CaseError;

impl CaseApi {
    pub(super) async fn reload_calendars(
        &self,
        principal: &Principal,
        _request: ReloadCalendarsRequest,
    ) -> Result<ReloadCalendarsResponse, CaseError> {
        principal.require(Permission::CalendarsAdmin)?;
        let Some(source) = &self.calendars else {
            return Err(ServiceError::failed_precondition(
                "CALENDARS_NOT_CONFIGURED",
                "no calendar source is configured",
            )
            .into());
        };
        let response = crate::calendars::reload(source, self.store()?.as_ref()).await?;
        tracing::info!(by = %principal.subject, "calendars reloaded on request");
        Ok(response)
    }
}
