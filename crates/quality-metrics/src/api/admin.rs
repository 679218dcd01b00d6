//! Targets and denominators, the read models' status and rebuild, the event feed and dead
//! letters.

use redress_platform::ServiceError;
use redress_platform::dead_letters::Replay;
use redress_platform::error::Violations;
use redress_platform::events::{FeedStream, serve_stream};
use redress_platform::names::RequestId;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::{from_micros, to_timestamp};
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use redress_proto::redress::metrics::v1::{
    Comparator, Denominators, GetReadModelStatusRequest, GetTargetsRequest, Kpi, ListDenominatorsRequest,
    ListDenominatorsResponse, ReadModelStatus, RebuildReadModelsRequest, SetDenominatorsRequest, StreamEventsRequest,
    StreamEventsResponse, Targets, UpdateTargetsRequest,
};
use sha2::{Digest, Sha256};

use super::MetricsApi;
use super::parse;
use crate::domain::period::{Days, format_month, parse_month};
use crate::error::MetricsError;
use crate::read::Reader;
use crate::store::{RequestKey, StoredDenominators, Write};

pub type EventStream = FeedStream<StreamEventsResponse>;

/// The request key of a mutating call: its id with a fingerprint of caller, method and request.
pub(super) fn request_key(
    id: &RequestId,
    principal: &Principal,
    method: &str,
    request: &impl prost::Message,
) -> RequestKey {
    let mut hash = Sha256::new();
    hash.update(principal.subject.as_bytes());
    hash.update([0]);
    hash.update(method.as_bytes());
    hash.update([0]);
    hash.update(request.encode_to_vec());
    RequestKey { id: id.as_str().to_owned(), fingerprint: hex::encode(hash.finalize()) }
}

impl MetricsApi {
    async fn targets_of(&self, institution: &str) -> Result<Targets, MetricsError> {
        let targets = Reader::new(self.store()?).targets(institution).await?;
        let stored = self.store()?.targets(institution).await?;
        let last = stored.iter().max_by_key(|t| t.update_time_us);
        Ok(Targets {
            org_unit: institution.to_owned(),
            own: targets.values().map(|(_, own)| *own).collect(),
            targets: targets.into_values().map(|(t, _)| t).collect(),
            update_time: last.map(|t| to_timestamp(from_micros(t.update_time_us))),
            updated_by: last.map(|t| t.updated_by.clone()).unwrap_or_default(),
        })
    }

    pub(super) async fn get_targets(
        &self,
        principal: &Principal,
        r: GetTargetsRequest,
    ) -> Result<Targets, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        v.into_result()?;
        let institution = unit.map(|u| u.institution().into_string()).unwrap_or_default();
        self.targets_of(&institution).await
    }

    pub(super) async fn update_targets(
        &self,
        principal: &Principal,
        r: UpdateTargetsRequest,
    ) -> Result<Targets, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesApprove, &mut v, "org_unit", &r.org_unit)?;
        let request_id = RequestId::parse_required(&mut v, "request_id", &r.request_id);
        if let Some(unit) = &unit
            && !unit.is_institution()
        {
            v.add("org_unit", "targets are set per institution, institutions/{id}");
        }
        if r.targets.is_empty() {
            v.add("targets", "required: at least one target");
        }
        let mut targets = Vec::new();
        for (i, t) in r.targets.iter().enumerate() {
            let kpi = Kpi::try_from(t.kpi).unwrap_or(Kpi::Unspecified);
            if kpi == Kpi::Unspecified {
                v.add(format!("targets[{i}].kpi"), "required: a KPI");
            }
            let target = match Comparator::try_from(t.comparator) {
                Ok(Comparator::Unspecified) => None,
                Ok(c) => {
                    if !t.threshold.is_finite() {
                        v.add(format!("targets[{i}].threshold"), "must be a finite number");
                    }
                    Some((c as i32, t.threshold))
                }
                Err(_) => {
                    v.add(format!("targets[{i}].comparator"), "is not a comparator");
                    None
                }
            };
            targets.push((kpi as i32, target));
        }
        v.into_result()?;
        let (Some(unit), Some(request_id)) = (unit, request_id) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let key = request_key(&request_id, principal, "UpdateTargets", &r);
        let institution = unit.into_string();
        let write = Write::Targets { institution: institution.clone(), targets, by: principal.subject.clone() };
        self.store()?.write(Some(key), write).await?;
        self.targets_of(&institution).await
    }

    pub(super) async fn set_denominators(
        &self,
        principal: &Principal,
        r: SetDenominatorsRequest,
    ) -> Result<Denominators, MetricsError> {
        let mut v = Violations::new();
        let request_id = RequestId::parse_required(&mut v, "request_id", &r.request_id);
        if r.denominators.is_none() {
            v.add("denominators", "required");
        }
        let d = r.denominators.clone().unwrap_or_default();
        let unit = parse::unit(principal, Permission::CasesApprove, &mut v, "denominators.org_unit", &d.org_unit)?;
        let month = parse_month(&d.month);
        if month.is_none() {
            v.add("denominators.month", "must be a month YYYY-MM");
        }
        for (field, value) in [("customers", d.customers), ("branches", d.branches), ("premium_minor", d.premium_minor)]
        {
            if value < 0 {
                v.add(format!("denominators.{field}"), "must not be negative");
            }
        }
        v.into_result()?;
        let (Some(unit), Some(month), Some(request_id)) = (unit, month, request_id) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let key = request_key(&request_id, principal, "SetDenominators", &r);
        let stored = StoredDenominators {
            org_unit: unit.into_string(),
            month,
            customers: d.customers,
            branches: d.branches,
            premium_minor: d.premium_minor,
            update_time_us: redress_platform::time::to_micros(redress_platform::time::now()),
            updated_by: principal.subject.clone(),
        };
        let store = self.store()?;
        store.write(Some(key), Write::Denominators(stored.clone())).await?;
        let current = store.denominators(&stored.org_unit, Days::new(month, month)).await?;
        Ok(current.first().map(denominators_proto).unwrap_or_else(|| denominators_proto(&stored)))
    }

    pub(super) async fn list_denominators(
        &self,
        principal: &Principal,
        r: ListDenominatorsRequest,
    ) -> Result<ListDenominatorsResponse, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        v.into_result()?;
        let unit = unit.map(|u| u.into_string()).unwrap_or_default();
        let rows = self.store()?.denominators(&unit, Days::new(i32::MIN, i32::MAX)).await?;
        Ok(ListDenominatorsResponse { denominators: rows.iter().map(denominators_proto).collect() })
    }

    pub(super) async fn get_read_model_status(
        &self,
        principal: &Principal,
        _: GetReadModelStatusRequest,
    ) -> Result<ReadModelStatus, MetricsError> {
        principal.require(Permission::EventsAdmin)?;
        Ok(self.store()?.status().await?)
    }

    pub(super) async fn rebuild_read_models(
        &self,
        principal: &Principal,
        _: RebuildReadModelsRequest,
    ) -> Result<ReadModelStatus, MetricsError> {
        principal.require(Permission::EventsAdmin)?;
        if !parse::platform_wide(principal) {
            return Err(ServiceError::PermissionDenied(
                "only an operator of the whole platform may rebuild the read models".to_owned(),
            )
            .into());
        }
        // A feed that no longer holds its first events cannot rebuild what it held: refuse
        // rather than leave the read models empty.
        let mut feeds = self.feeds.lock().await;
        for (consumer, subscribe) in feeds.iter_mut() {
            if let Err(status) = subscribe(0).await {
                if status.code() == tonic::Code::FailedPrecondition {
                    return Err(ServiceError::failed_precondition(
                        "FEED_POSITION_PRUNED",
                        format!("the {consumer} feed no longer holds its first events: {}", status.message()),
                    )
                    .into());
                }
                return Err(ServiceError::Unavailable(format!(
                    "the {consumer} feed cannot be read: {}",
                    status.message()
                ))
                .into());
            }
        }
        drop(feeds);
        let store = self.store()?;
        store.rebuild().await?;
        self.rebuilt.send_modify(|n| *n += 1);
        tracing::info!(by = %principal.subject, "read models dropped; the consumers replay their feeds");
        Ok(store.status().await?)
    }

    pub(super) async fn stream_events(
        &self,
        principal: &Principal,
        r: StreamEventsRequest,
    ) -> Result<EventStream, MetricsError> {
        let store = self.store()?;
        let principal = std::sync::Arc::new(principal.clone());
        Ok(serve_stream(store.feed(), principal, r.after_position, self.shutdown.clone(), |events| {
            StreamEventsResponse { events }
        })
        .await?)
    }

    pub(super) async fn list_dead_letters(
        &self,
        principal: &Principal,
        r: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, MetricsError> {
        self.store()?.list_dead_letters(principal, &r).await
    }

    pub(super) async fn replay_dead_letter(
        &self,
        principal: &Principal,
        r: ReplayDeadLetterRequest,
    ) -> Result<DeadLetter, MetricsError> {
        let replay = Replay::parse(std::sync::Arc::new(principal.clone()), r)?;
        Ok(self.store()?.replay_dead_letter(replay).await?.to_proto())
    }
}

fn denominators_proto(d: &StoredDenominators) -> Denominators {
    Denominators {
        org_unit: d.org_unit.clone(),
        month: format_month(d.month),
        customers: d.customers,
        branches: d.branches,
        premium_minor: d.premium_minor,
        update_time: Some(to_timestamp(from_micros(d.update_time_us))),
        updated_by: d.updated_by.clone(),
    }
}
