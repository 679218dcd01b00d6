//! The reading half of case-workflow's API: cases, their audit trails, the event feed, and
//! the dead letters its consumer set aside (with their replay, an operator's repair).

use std::sync::Arc;

use redress_platform::dead_letters::Replay;
use redress_platform::error::Violations;
use redress_platform::events::{FeedStream, serve_stream};
use redress_platform::names::resource_id;
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::{from_micros, to_timestamp};
use redress_proto::redress::case::v1::{
    AuditEntry, Case, CaseState, GetCaseRequest, ListAuditEntriesRequest, ListAuditEntriesResponse, ListCasesRequest,
    ListCasesResponse, StreamEventsRequest, StreamEventsResponse, VerifyAuditChainRequest, VerifyAuditChainResponse,
};
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};

use super::CaseApi;
use crate::domain::audit::{self, AuditRecord};
use crate::error::CaseError;
use crate::store::{AuditTrail, CaseQuery};

pub(super) type EventStream = FeedStream<StreamEventsResponse>;

impl CaseApi {
    pub(super) async fn get(&self, principal: &Principal, request: GetCaseRequest) -> Result<Case, CaseError> {
        principal.require(Permission::CasesRead)?;
        self.visible_case(principal, "name", &request.name).await.map(|(_, case)| case)
    }

    pub(super) async fn list(
        &self,
        principal: &Principal,
        request: ListCasesRequest,
    ) -> Result<ListCasesResponse, CaseError> {
        principal.require(Permission::CasesRead)?;
        let mut v = Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let state = match CaseState::try_from(request.state) {
            Ok(CaseState::Unspecified) => None,
            Ok(s) => Some(s as i32),
            Err(_) => {
                v.add("state", "unknown case state");
                None
            }
        };
        let complaint = if request.complaint.is_empty() {
            None
        } else {
            if !request.complaint.starts_with("complaints/") {
                v.add("complaint", "must be complaints/{complaint_id}");
            }
            Some(request.complaint.clone())
        };
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        let query = CaseQuery { state, complaint, after, scope: principal.scope(), limit: i64::from(page_size) + 1 };
        let mut listed = self.store()?.list(&query).await?;
        let next_page_token = paging::finish_page(&mut listed, page_size, |l| l.cursor.clone());
        Ok(ListCasesResponse { cases: listed.into_iter().map(|l| l.case).collect(), next_page_token })
    }

    pub(super) async fn list_audit_entries(
        &self,
        principal: &Principal,
        request: ListAuditEntriesRequest,
    ) -> Result<ListAuditEntriesResponse, CaseError> {
        let mut v = Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v).map_or(0, |(sequence, _)| sequence);
        v.into_result()?;
        let (_, trail) = self.trail(principal, &request.case).await?;
        let mut entries: Vec<AuditRecord> = trail.entries.into_iter().filter(|e| e.sequence > after).collect();
        entries.truncate(page_size as usize + 1);
        let next_page_token = paging::finish_page(&mut entries, page_size, |e| (e.sequence, String::new()));
        let audit_entries = entries
            .into_iter()
            .map(|e| AuditEntry {
                case: request.case.clone(),
                sequence: e.sequence,
                action: e.action,
                actor: e.actor,
                record_time: Some(to_timestamp(from_micros(e.record_time_us))),
                details: e.details.into_iter().collect(),
                previous_hash: e.previous_hash,
                hash: e.hash,
                key_id: e.key_id,
            })
            .collect();
        Ok(ListAuditEntriesResponse { audit_entries, next_page_token })
    }

    /// Recomputes a case's hash chain; a broken one is answered, logged and counted.
    pub(super) async fn verify_audit_chain(
        &self,
        principal: &Principal,
        request: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, CaseError> {
        let (id, trail) = self.trail(principal, &request.case).await?;
        let entries = trail.entries.len() as i64;
        let keys = self.store()?.rules().current().audit.clone();
        Ok(match audit::verify(&keys, &id, &trail.entries, trail.length, &trail.head, &trail.seal) {
            Ok(()) => {
                VerifyAuditChainResponse { intact: true, entries, first_broken_sequence: 0, reason: String::new() }
            }
            Err(broken) => {
                tracing::error!(case = %request.case, sequence = broken.sequence, reason = %broken.reason, "audit trail does not verify");
                metrics::counter!("redress_audit_chain_broken_total").increment(1);
                VerifyAuditChainResponse {
                    intact: false,
                    entries,
                    first_broken_sequence: broken.sequence,
                    reason: broken.reason,
                }
            }
        })
    }

    pub(super) async fn stream_events(
        &self,
        principal: &Arc<Principal>,
        request: StreamEventsRequest,
    ) -> Result<EventStream, CaseError> {
        let store = self.store()?;
        let respond = |events| StreamEventsResponse { events };
        Ok(serve_stream(store.feed(), principal.clone(), request.after_position, self.shutdown.clone(), respond)
            .await?)
    }

    pub(super) async fn list_dead_letters(
        &self,
        principal: &Principal,
        request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, CaseError> {
        self.store()?.list_dead_letters(principal, &request).await
    }

    pub(super) async fn replay_dead_letter(
        &self,
        principal: &Arc<Principal>,
        request: ReplayDeadLetterRequest,
    ) -> Result<DeadLetter, CaseError> {
        let replay = Replay::parse(principal.clone(), request)?;
        let dead = self.store()?.replay_dead_letter(replay).await?;
        tracing::info!(dead_letter = %dead.name(), by = %dead.replayed_by, "dead letter replayed");
        Ok(dead.to_proto())
    }

    /// The case `name` (given in `field`) with its id, if it exists within the caller's
    /// organisation unit.
    async fn visible_case<'n>(
        &self,
        principal: &Principal,
        field: &str,
        name: &'n str,
    ) -> Result<(&'n str, Case), CaseError> {
        let mut v = Violations::new();
        let Some(id) = resource_id(&mut v, field, name, "cases") else { return Err(v.into()) };
        let case = self
            .store()?
            .get(id)
            .await?
            // Outside the caller's organisation unit it does not exist for the caller.
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| CaseError::NotFound { name: name.to_owned() })?;
        Ok((id, case))
    }

    async fn trail(&self, principal: &Principal, name: &str) -> Result<(String, AuditTrail), CaseError> {
        principal.require(Permission::CasesRead)?;
        let (id, _) = self.visible_case(principal, "case", name).await?;
        let trail =
            self.store()?.audit_trail(id).await?.ok_or_else(|| CaseError::NotFound { name: name.to_owned() })?;
        Ok((id.to_owned(), trail))
    }
}
