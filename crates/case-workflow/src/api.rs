//! gRPC surface of case-workflow: maps protos to store calls and errors to `Status`.

use std::sync::Arc;

use redress_platform::ServiceError;
use redress_platform::dead_letters::Replay;
use redress_platform::error::Violations;
use redress_platform::events::{FeedStream, serve_stream};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::ready::Ready;
use redress_platform::time::{from_micros, to_timestamp};
use redress_proto::redress::case::v1::case_event_feed_service_server::CaseEventFeedService;
use redress_proto::redress::case::v1::case_service_server::CaseService;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, AddEvidenceRequest, AnswerSurveyRequest, ApproveResolutionRequest, AssignCaseRequest,
    AuditEntry, Case, CaseState, ChangeCaseGradeRequest, CompleteCoordinationTaskRequest, DecideCaseRequest,
    ExtendDecisionDeadlineRequest, GetCaseRequest, LinkCasesRequest, ListAuditEntriesRequest, ListAuditEntriesResponse,
    ListCasesRequest, ListCasesResponse, PauseCaseClocksRequest, ProposeResolutionRequest, RecordFirstResponseRequest,
    ResumeCaseClocksRequest, StreamEventsRequest, StreamEventsResponse, TransferCaseRequest, TransitionCaseRequest,
    VerifyAuditChainRequest, VerifyAuditChainResponse,
};
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::domain::audit::{self, AuditRecord};
use crate::store::{AuditTrail, CaseQuery, CaseStore};

#[derive(Clone)]
pub struct CaseApi {
    store: Ready<Arc<dyn CaseStore>>,
    shutdown: CancellationToken,
}

impl CaseApi {
    pub fn new(store: Ready<Arc<dyn CaseStore>>, shutdown: CancellationToken) -> Self {
        Self { store, shutdown }
    }

    pub(crate) fn store(&self) -> Result<Arc<dyn CaseStore>, ServiceError> {
        Ok(self.store.get()?.clone())
    }

    pub async fn get(&self, principal: &Principal, request: GetCaseRequest) -> Result<Case, ServiceError> {
        principal.require(Permission::CasesRead)?;
        self.visible_case(principal, "name", &request.name).await.map(|(_, case)| case)
    }

    /// The case `name` (given in `field`) if it exists within the caller's organisation unit.
    async fn visible_case<'n>(
        &self,
        principal: &Principal,
        field: &str,
        name: &'n str,
    ) -> Result<(&'n str, Case), ServiceError> {
        let id = name
            .strip_prefix("cases/")
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
            .ok_or_else(|| ServiceError::invalid(field, "must be cases/{case_id}"))?;
        let case = self
            .store
            .get()?
            .get(id)
            .await?
            // Outside the caller's organisation unit it does not exist for the caller.
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| ServiceError::NotFound { resource: "case", name: name.to_owned() })?;
        Ok((id, case))
    }

    async fn trail(&self, principal: &Principal, name: &str) -> Result<(String, AuditTrail), ServiceError> {
        principal.require(Permission::CasesRead)?;
        let (id, _) = self.visible_case(principal, "case", name).await?;
        let trail = self
            .store
            .get()?
            .audit_trail(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound { resource: "case", name: name.to_owned() })?;
        Ok((id.to_owned(), trail))
    }

    pub async fn list_audit_entries(
        &self,
        principal: &Principal,
        request: ListAuditEntriesRequest,
    ) -> Result<ListAuditEntriesResponse, ServiceError> {
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
            })
            .collect();
        Ok(ListAuditEntriesResponse { audit_entries, next_page_token })
    }

    pub async fn verify_audit_chain(
        &self,
        principal: &Principal,
        request: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, ServiceError> {
        let (id, trail) = self.trail(principal, &request.case).await?;
        let entries = trail.entries.len() as i64;
        Ok(match audit::verify(&id, &trail.entries, trail.length, &trail.head) {
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

    pub async fn list(
        &self,
        principal: &Principal,
        request: ListCasesRequest,
    ) -> Result<ListCasesResponse, ServiceError> {
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
        let mut listed = self.store.get()?.list(&query).await?;
        let next_page_token = paging::finish_page(&mut listed, page_size, |l| l.cursor.clone());
        Ok(ListCasesResponse { cases: listed.into_iter().map(|l| l.case).collect(), next_page_token })
    }
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(&self, request: Request<GetCaseRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.get(&principal, request.into_inner()).await?))
    }

    async fn list_cases(&self, request: Request<ListCasesRequest>) -> Result<Response<ListCasesResponse>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.list(&principal, request.into_inner()).await?))
    }

    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.list_audit_entries(&principal, request.into_inner()).await?))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<VerifyAuditChainRequest>,
    ) -> Result<Response<VerifyAuditChainResponse>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.verify_audit_chain(&principal, request.into_inner()).await?))
    }

    async fn assign_case(&self, request: Request<AssignCaseRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.assign(&principal, request.into_inner()).await?))
    }

    async fn transfer_case(&self, request: Request<TransferCaseRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.transfer(&principal, request.into_inner()).await?))
    }

    async fn transition_case(&self, request: Request<TransitionCaseRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.transition(&principal, request.into_inner()).await?))
    }

    async fn record_first_response(
        &self,
        request: Request<RecordFirstResponseRequest>,
    ) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.first_response(&principal, request.into_inner()).await?))
    }

    async fn change_case_grade(&self, request: Request<ChangeCaseGradeRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.change_grade(&principal, request.into_inner()).await?))
    }

    async fn pause_case_clocks(&self, request: Request<PauseCaseClocksRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.pause(&principal, request.into_inner()).await?))
    }

    async fn resume_case_clocks(&self, request: Request<ResumeCaseClocksRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.resume(&principal, request.into_inner()).await?))
    }

    async fn extend_decision_deadline(
        &self,
        request: Request<ExtendDecisionDeadlineRequest>,
    ) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.extend(&principal, request.into_inner()).await?))
    }

    async fn propose_resolution(&self, request: Request<ProposeResolutionRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.propose(&principal, request.into_inner()).await?))
    }

    async fn approve_resolution(&self, request: Request<ApproveResolutionRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.approve(&principal, request.into_inner()).await?))
    }

    async fn decide_case(&self, request: Request<DecideCaseRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.decide(&principal, request.into_inner()).await?))
    }

    async fn answer_survey(&self, request: Request<AnswerSurveyRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.survey(&principal, request.into_inner()).await?))
    }

    async fn add_evidence(&self, request: Request<AddEvidenceRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.add_evidence(&principal, request.into_inner()).await?))
    }

    async fn link_cases(&self, request: Request<LinkCasesRequest>) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.link(&principal, request.into_inner()).await?))
    }

    async fn add_coordination_task(
        &self,
        request: Request<AddCoordinationTaskRequest>,
    ) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.add_task(&principal, request.into_inner()).await?))
    }

    async fn complete_coordination_task(
        &self,
        request: Request<CompleteCoordinationTaskRequest>,
    ) -> Result<Response<Case>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.complete_task(&principal, request.into_inner()).await?))
    }
}

type EventStream = FeedStream<StreamEventsResponse>;

#[tonic::async_trait]
impl CaseEventFeedService for CaseApi {
    type StreamEventsStream = EventStream;

    async fn stream_events(&self, request: Request<StreamEventsRequest>) -> Result<Response<EventStream>, Status> {
        let principal = Principal::of(&request)?;
        let (feed, after) = (self.store.get()?.feed(), request.get_ref().after_position);
        let stream =
            serve_stream(feed, principal, after, self.shutdown.clone(), |events| StreamEventsResponse { events });
        Ok(Response::new(stream.await?))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(self.store.get()?.list_dead_letters(&principal, request.get_ref()).await?))
    }

    async fn replay_dead_letter(
        &self,
        request: Request<ReplayDeadLetterRequest>,
    ) -> Result<Response<DeadLetter>, Status> {
        let replay = Replay::parse(Principal::of(&request)?, request.into_inner())?;
        let dead = self.store.get()?.replay_dead_letter(replay).await?;
        tracing::info!(dead_letter = %dead.name(), by = %dead.replayed_by, "dead letter replayed");
        Ok(Response::new(dead.to_proto()))
    }
}
