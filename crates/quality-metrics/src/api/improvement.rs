//! Root causes and improvement actions: recorded, listed and changed within the caller's
//! units; an action's effect measured from the read models.

use std::sync::Arc;

use prost::Message;
use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, RequestId, Text, resource_id};
use redress_platform::paging::{decode_token, finish_page, page_size};
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::to_timestamp;
use redress_proto::redress::metrics::v1::{
    ActionEffect, ActionStatus, CreateImprovementActionRequest, CreateRootCauseRequest, Dimension,
    GetActionEffectRequest, GetImprovementActionRequest, GetRootCauseRequest, ImprovementAction,
    ListImprovementActionsRequest, ListImprovementActionsResponse, ListRootCausesRequest, ListRootCausesResponse,
    RootCause, UpdateImprovementActionRequest,
};

use super::MetricsApi;
use super::admin::request_key;
use super::parse;
use crate::domain::improvement::{self, change_percent};
use crate::domain::period::parse_day;
use crate::error::MetricsError;
use crate::read::Reader;
use crate::store::{ActionUpdate, Improvement};

/// Fields of an action `UpdateImprovementAction` may change.
const UPDATABLE: [&str; 6] = ["owner", "department", "due_date", "status", "title", "description"];

fn decoded<M: Message + Default>(bytes: Option<Vec<u8>>) -> Result<M, MetricsError> {
    let bytes = bytes.ok_or_else(|| anyhow::anyhow!("the change left no record"))?;
    Ok(M::decode(bytes.as_slice()).map_err(anyhow::Error::from)?)
}

fn check_action_fields(v: &mut Violations, a: &ImprovementAction, creating: bool) {
    Text::Name.check(v, "action.title", &a.title, creating);
    Text::Long.check(v, "action.description", &a.description, false);
    Text::Name.check(v, "action.owner", &a.owner, creating);
    Text::Name.check(v, "action.department", &a.department, false);
}

impl MetricsApi {
    pub(super) async fn create_root_cause(
        &self,
        principal: &Principal,
        r: CreateRootCauseRequest,
    ) -> Result<RootCause, MetricsError> {
        let mut v = Violations::new();
        let request_id = RequestId::parse_required(&mut v, "request_id", &r.request_id);
        if r.root_cause.is_none() {
            v.add("root_cause", "required");
        }
        let mut root = r.root_cause.clone().unwrap_or_default();
        let unit = parse::unit(principal, Permission::CasesWrite, &mut v, "root_cause.org_unit", &root.org_unit)?;
        for (field, why) in improvement::check_root_cause(&root) {
            v.add(field, why);
        }
        Text::Long.check(&mut v, "root_cause.problem", &root.problem, true);
        for (i, why) in root.whys.iter().enumerate() {
            Text::Reason.check(&mut v, &format!("root_cause.whys[{i}]"), why, false);
        }
        for (i, code) in root.cause_codes.iter().enumerate() {
            Text::Name.check(&mut v, &format!("root_cause.cause_codes[{i}]"), code, true);
        }
        v.into_result()?;
        let (Some(unit), Some(request_id)) = (unit, request_id) else {
            return Err(anyhow::anyhow!("unparsed request").into());
        };
        let key = request_key(&request_id, principal, "CreateRootCause", &r);
        root.name = format!("rootCauses/{}", uuid::Uuid::now_v7());
        root.org_unit = unit.into_string();
        root.recorded_by = principal.subject.clone();
        root.create_time = Some(to_timestamp(self.clock.now()));
        decoded(self.store()?.improve(Some(key), Improvement::RootCause(root)).await?)
    }

    pub(super) async fn get_root_cause(
        &self,
        principal: &Principal,
        r: GetRootCauseRequest,
    ) -> Result<RootCause, MetricsError> {
        principal.require(Permission::CasesRead)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &r.name, "rootCauses");
        v.into_result()?;
        let found = self.store()?.root_cause(id.unwrap_or_default()).await?;
        found.filter(|c| principal.covers(&c.org_unit)).ok_or(MetricsError::NotFound { name: r.name })
    }

    pub(super) async fn list_root_causes(
        &self,
        principal: &Principal,
        r: ListRootCausesRequest,
    ) -> Result<ListRootCausesResponse, MetricsError> {
        principal.require(Permission::CasesRead)?;
        let mut v = Violations::new();
        let size = page_size(r.page_size, &mut v);
        let after = decode_token(&r.page_token, &mut v);
        v.into_result()?;
        if principal.org_unit.is_empty() && !principal.is_service() {
            return Ok(ListRootCausesResponse::default());
        }
        let mut rows = self.store()?.root_causes(principal.scope(), after, i64::from(size) + 1).await?;
        let next_page_token = finish_page(&mut rows, size, |(_, cursor)| cursor.clone());
        Ok(ListRootCausesResponse { root_causes: rows.into_iter().map(|(c, _)| c).collect(), next_page_token })
    }

    pub(super) async fn create_improvement_action(
        &self,
        principal: &Principal,
        r: CreateImprovementActionRequest,
    ) -> Result<ImprovementAction, MetricsError> {
        let mut v = Violations::new();
        let request_id = RequestId::parse_required(&mut v, "request_id", &r.request_id);
        if r.action.is_none() {
            v.add("action", "required");
        }
        let mut a = r.action.clone().unwrap_or_default();
        let target = a.target.clone().unwrap_or_default();
        if a.target.is_none() {
            v.add("action.target", "required");
        }
        let unit = parse::unit(principal, Permission::CasesWrite, &mut v, "action.target.org_unit", &target.org_unit)?;
        check_action_fields(&mut v, &a, true);
        if parse_day(&a.due_date).is_none() {
            v.add("action.due_date", "must be a date YYYY-MM-DD");
        }
        if target.values.is_empty() {
            v.add("action.target.values", "at least one value, e.g. a cause code");
        }
        for (i, value) in target.values.iter().enumerate() {
            Text::Name.check(&mut v, &format!("action.target.values[{i}]"), value, true);
        }
        let dimension = parse::dimension(&mut v, "action.target.dimension", target.dimension, Some(Dimension::Cause));
        if !a.root_cause.is_empty() {
            resource_id(&mut v, "action.root_cause", &a.root_cause, "rootCauses");
        }
        v.into_result()?;
        let (Some(unit), Some(request_id), Some(dimension)) = (unit, request_id, dimension) else {
            return Err(anyhow::anyhow!("unparsed request").into());
        };
        let key = request_key(&request_id, principal, "CreateImprovementAction", &r);
        let now = to_timestamp(self.clock.now());
        a.name = format!("improvementActions/{}", uuid::Uuid::now_v7());
        a.org_unit = unit.as_str().to_owned();
        a.status = ActionStatus::Planned as i32;
        a.target = Some(redress_proto::redress::metrics::v1::ActionTarget {
            org_unit: unit.into_string(),
            dimension,
            values: target.values,
        });
        a.done_date.clear();
        (a.due_reminded, a.overdue) = (false, false);
        a.created_by = principal.subject.clone();
        a.create_time = Some(now);
        a.update_time = Some(now);
        decoded(self.store()?.improve(Some(key), Improvement::CreateAction(a)).await?)
    }

    async fn visible_action(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<(String, i64, ImprovementAction), MetricsError> {
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", name, "improvementActions").map(str::to_owned);
        v.into_result()?;
        let id = id.unwrap_or_default();
        let found = self.store()?.action(&id).await?.filter(|(_, a)| principal.covers(&a.org_unit));
        let (version, action) = found.ok_or_else(|| MetricsError::NotFound { name: name.to_owned() })?;
        Ok((id, version, action))
    }

    pub(super) async fn get_improvement_action(
        &self,
        principal: &Principal,
        r: GetImprovementActionRequest,
    ) -> Result<ImprovementAction, MetricsError> {
        principal.require(Permission::CasesRead)?;
        Ok(self.visible_action(principal, &r.name).await?.2)
    }

    pub(super) async fn list_improvement_actions(
        &self,
        principal: &Principal,
        r: ListImprovementActionsRequest,
    ) -> Result<ListImprovementActionsResponse, MetricsError> {
        principal.require(Permission::CasesRead)?;
        let mut v = Violations::new();
        let size = page_size(r.page_size, &mut v);
        let after = decode_token(&r.page_token, &mut v);
        let status = match ActionStatus::try_from(r.status) {
            Ok(ActionStatus::Unspecified) => None,
            Ok(s) => Some(s as i32),
            Err(_) => {
                v.add("status", "is not an action status");
                None
            }
        };
        v.into_result()?;
        if principal.org_unit.is_empty() && !principal.is_service() {
            return Ok(ListImprovementActionsResponse::default());
        }
        let mut rows = self.store()?.actions(principal.scope(), status, after, i64::from(size) + 1).await?;
        let next_page_token = finish_page(&mut rows, size, |(_, cursor)| cursor.clone());
        Ok(ListImprovementActionsResponse { actions: rows.into_iter().map(|(a, _)| a).collect(), next_page_token })
    }

    pub(super) async fn update_improvement_action(
        &self,
        principal: &Principal,
        r: UpdateImprovementActionRequest,
    ) -> Result<ImprovementAction, MetricsError> {
        principal.require(Permission::CasesWrite)?;
        let mut v = Violations::new();
        let request_id = RequestId::parse_optional(&mut v, "request_id", &r.request_id);
        let values = r.action.clone().unwrap_or_default();
        if r.action.is_none() {
            v.add("action", "required");
        }
        let id = resource_id(&mut v, "action.name", &values.name, "improvementActions").map(str::to_owned);
        if r.update_mask.is_empty() {
            v.add("update_mask", "name at least one field");
        }
        for (i, field) in r.update_mask.iter().enumerate() {
            if !UPDATABLE.contains(&field.as_str()) {
                v.add(format!("update_mask[{i}]"), format!("one of {}", UPDATABLE.join(", ")));
            }
        }
        let mask = |f: &str| r.update_mask.iter().any(|m| m == f);
        if mask("due_date") && parse_day(&values.due_date).is_none() {
            v.add("action.due_date", "must be a date YYYY-MM-DD");
        }
        let status = ActionStatus::try_from(r.status).unwrap_or(ActionStatus::Unspecified);
        if mask("status") && status == ActionStatus::Unspecified {
            v.add("status", "required with status in the update mask");
        }
        check_action_fields(&mut v, &values, false);
        for field in ["owner", "title"] {
            let value = if field == "owner" { &values.owner } else { &values.title };
            if mask(field) && value.trim().is_empty() {
                v.add(format!("action.{field}"), "must not be cleared");
            }
        }
        let expected_version = match r.etag.trim_matches('"') {
            "" => None,
            version => match version.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    v.add("etag", "is not an etag this service issued");
                    None
                }
            },
        };
        v.into_result()?;
        let key = request_id.map(|id| request_key(&id, principal, "UpdateImprovementAction", &r));
        let update = ActionUpdate {
            id: id.unwrap_or_default(),
            expected_version,
            mask: r.update_mask.clone(),
            values,
            status,
            principal: Arc::new(principal.clone()),
            now: self.clock.now(),
        };
        decoded(self.store()?.improve(key, Improvement::UpdateAction(update)).await?)
    }

    pub(super) async fn get_action_effect(
        &self,
        principal: &Principal,
        r: GetActionEffectRequest,
    ) -> Result<ActionEffect, MetricsError> {
        principal.require(Permission::CasesRead)?;
        let mut v = Violations::new();
        let window = if r.window_days == 0 { 90 } else { r.window_days };
        if !(1..=366).contains(&window) {
            v.add("window_days", "must be 1..366");
        }
        v.into_result()?;
        let (_, _, action) = self.visible_action(principal, &r.name).await?;
        let target = action.target.clone().unwrap_or_default();
        let unit = OrgUnit::try_from_str(&target.org_unit).map_err(|e| anyhow::anyhow!("stored target unit: {e}"))?;
        let today = self.store()?.calendars().today(unit.as_str(), self.clock.now());
        let (before, after) = improvement::effect_windows(&action, window, today).ok_or(MetricsError::ActionNotDone)?;
        let reader = Reader::new(self.store()?);
        let measured = reader.target_volumes(unit.as_str(), target.dimension, &target.values, before, after).await?;
        let ((volume_before, recurrences_before), (volume_after, recurrences_after)) = measured;
        let daily = |n: i64, days: i32| n as f64 / f64::from(days.max(1));
        let percent = |n: i64, d: i64| if d > 0 { 100.0 * n as f64 / d as f64 } else { 0.0 };
        let (daily_before, daily_after) = (daily(volume_before, before.count()), daily(volume_after, after.count()));
        Ok(ActionEffect {
            action: action.name.clone(),
            before: Some(before.to_proto()),
            after: Some(after.to_proto()),
            volume_before,
            volume_after,
            daily_before,
            daily_after,
            volume_change_percent: change_percent(daily_before, daily_after),
            recurrences_before,
            recurrences_after,
            recurrence_before: percent(recurrences_before, volume_before),
            recurrence_after: percent(recurrences_after, volume_after),
        })
    }
}
