//! The escalation ladder and alerts.

use std::sync::Arc;

use redress_platform::error::Violations;
use redress_platform::names::{Text, resource_id};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_proto::redress::escalation::v1::{
    AcknowledgeAlertRequest, AcknowledgeEscalationRequest, Alert, AlertKind, Escalation, EscalationLevel,
    EscalationState, GetEscalationRequest, ListAlertsRequest, ListAlertsResponse, ListEscalationsRequest,
    ListEscalationsResponse, RaiseEscalationRequest,
};

use super::{EscalationApi, request_key, version_of};
use crate::domain::actions::id_of;
use crate::error::EscalationError;
use crate::store::ListQuery;
use crate::store::ops;

fn unparsed() -> EscalationError {
    EscalationError::Internal(anyhow::anyhow!("a valid request produced nothing"))
}

impl EscalationApi {
    pub(super) async fn get_escalation(
        &self,
        principal: &Principal,
        request: GetEscalationRequest,
    ) -> Result<Escalation, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "escalations");
        v.into_result()?;
        let id = id.ok_or_else(unparsed)?;
        self.store()?
            .escalation(id)
            .await?
            .filter(|e| principal.covers(&e.org_unit))
            .ok_or_else(|| EscalationError::not_found("escalation", request.name.clone()))
    }

    pub(super) async fn list_escalations(
        &self,
        principal: &Principal,
        request: ListEscalationsRequest,
    ) -> Result<ListEscalationsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        if EscalationState::try_from(request.state).is_err() {
            v.add("state", "unknown state");
        }
        if EscalationLevel::try_from(request.level).is_err() {
            v.add("level", "unknown level");
        }
        let case = (!request.case.is_empty()).then(|| resource_id(&mut v, "case", &request.case, "cases")).flatten();
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListEscalationsResponse::default());
        }
        let store = self.store()?;
        let complaint = match case {
            Some(_) => match store.known_case(&request.case).await? {
                Some(known) => Some(known.complaint),
                None => return Ok(ListEscalationsResponse::default()),
            },
            None => None,
        };
        let query = ListQuery {
            scope: principal.scope(),
            state: i64::from(request.state),
            after,
            limit: i64::from(size) + 1,
            ..ListQuery::default()
        };
        let mut escalations = store.escalations(&query, i64::from(request.level), complaint).await?;
        let next_page_token = paging::finish_page(&mut escalations, size, |e| (0, id_of(&e.name).to_owned()));
        Ok(ListEscalationsResponse { escalations, next_page_token })
    }

    pub(super) async fn raise_escalation(
        &self,
        principal: &Arc<Principal>,
        request: RaiseEscalationRequest,
    ) -> Result<Escalation, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let case = resource_id(&mut v, "case", &request.case, "cases").map(|_| request.case.clone());
        Text::Reason.check(&mut v, "reason", &request.reason, true);
        let level = match EscalationLevel::try_from(request.level) {
            Ok(EscalationLevel::Unspecified) => None,
            Ok(level) => Some(level),
            Err(_) => {
                v.add("level", "unknown level");
                None
            }
        };
        let key = request_key(&mut v, &request.request_id, false, principal, "RaiseEscalation", &request);
        v.into_result()?;
        let r = ops::ManualRaise {
            case: case.ok_or_else(unparsed)?,
            level,
            reason: request.reason.trim().to_owned(),
            request: key,
            principal: principal.clone(),
        };
        self.store()?.raise_escalation(r).await
    }

    pub(super) async fn acknowledge_escalation(
        &self,
        principal: &Arc<Principal>,
        request: AcknowledgeEscalationRequest,
    ) -> Result<Escalation, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "escalations");
        Text::Reason.check(&mut v, "note", &request.note, true);
        let expected_version = version_of(&mut v, &request.etag);
        let key = request_key(&mut v, &request.request_id, false, principal, "AcknowledgeEscalation", &request);
        v.into_result()?;
        let a = ops::Acknowledgement {
            id: id.ok_or_else(unparsed)?.to_owned(),
            expected_version,
            note: request.note.trim().to_owned(),
            request: key,
            principal: principal.clone(),
        };
        self.store()?.acknowledge_escalation(a).await
    }

    pub(super) async fn list_alerts(
        &self,
        principal: &Principal,
        request: ListAlertsRequest,
    ) -> Result<ListAlertsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        if AlertKind::try_from(request.kind).is_err() {
            v.add("kind", "unknown kind");
        }
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListAlertsResponse::default());
        }
        let query = ListQuery {
            scope: principal.scope(),
            kind: i64::from(request.kind),
            open_only: request.unacknowledged_only,
            after,
            limit: i64::from(size) + 1,
            ..ListQuery::default()
        };
        let mut alerts = self.store()?.alerts(&query).await?;
        let next_page_token = paging::finish_page(&mut alerts, size, |a| (0, id_of(&a.name).to_owned()));
        Ok(ListAlertsResponse { alerts, next_page_token })
    }

    pub(super) async fn acknowledge_alert(
        &self,
        principal: &Arc<Principal>,
        request: AcknowledgeAlertRequest,
    ) -> Result<Alert, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "alerts");
        let key = request_key(&mut v, &request.request_id, false, principal, "AcknowledgeAlert", &request);
        v.into_result()?;
        self.store()?.acknowledge_alert(id.ok_or_else(unparsed)?.to_owned(), key, principal.clone()).await
    }
}
