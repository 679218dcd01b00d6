//! gRPC surface of case-workflow, the only place protos meet the domain: [`queries`] reads
//! cases, their audit trails, the event feed and dead letters; [`commands`] validates each
//! change and hands it to the store as a workflow command.

mod calendars;
mod commands;
mod queries;

use std::sync::Arc;

use redress_platform::principal::Principal;
use redress_platform::ready::Ready;
use redress_proto::redress::case::v1::case_event_feed_service_server::CaseEventFeedService;
use redress_proto::redress::case::v1::case_service_server::CaseService;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, AddEvidenceRequest, AnswerSurveyRequest, ApproveResolutionRequest, AssignCaseRequest,
    Case, ChangeCaseGradeRequest, CompleteCoordinationTaskRequest, ConfirmNoConflictRequest, DecideCaseRequest,
    DecideCaseReviewRequest, ExtendDecisionDeadlineRequest, GetCaseRequest, LinkCasesRequest, ListAuditEntriesRequest,
    ListAuditEntriesResponse, ListCasesRequest, ListCasesResponse, PauseCaseClocksRequest, ProposeResolutionRequest,
    RecordFirstResponseRequest, RequestCaseReviewRequest, ResumeCaseClocksRequest, SetProblemScopeRequest,
    StreamEventsRequest, TransferCaseRequest, TransitionCaseRequest, VerifyAuditChainRequest, VerifyAuditChainResponse,
};
use redress_proto::redress::case::v1::{
    AddImplementationStepRequest, CompleteImplementationStepRequest, RecordContactRequest,
};
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReloadCalendarsRequest, ReloadCalendarsResponse,
    ReplayDeadLetterRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::calendars::CalendarSource;
use crate::error::CaseError;
use crate::lint::ReplyLinter;
use crate::store::CaseStore;
use queries::EventStream;

#[derive(Clone)]
pub struct CaseApi {
    store: Ready<Arc<dyn CaseStore>>,
    shutdown: CancellationToken,
    calendars: Option<CalendarSource>,
    linter: ReplyLinter,
}

impl CaseApi {
    pub fn new(store: Ready<Arc<dyn CaseStore>>, shutdown: CancellationToken) -> Self {
        Self { store, shutdown, calendars: None, linter: ReplyLinter::not_configured() }
    }

    /// First responses and decision notices are linted by `linter` (D-KB-3).
    pub fn with_linter(self, linter: ReplyLinter) -> Self {
        Self { linter, ..self }
    }

    /// `ReloadCalendars` reads the calendars from `source`.
    pub fn with_calendars(self, source: CalendarSource) -> Self {
        Self { calendars: Some(source), ..self }
    }

    /// The store, once it is open (UNAVAILABLE until then).
    fn store(&self) -> Result<Arc<dyn CaseStore>, CaseError> {
        Ok(self.store.get()?.clone())
    }
}

/// Implements a gRPC service on [`CaseApi`]: each method takes the principal the interceptor
/// verified and hands it, with the request, to the handler named after `=>`.
macro_rules! delegate {
    ($service:ident {
        $(type $assoc:ident = $assoc_ty:ty;)*
        $(fn $method:ident($request:ty) -> $response:ty => $handler:ident;)*
    }) => {
        #[tonic::async_trait]
        impl $service for CaseApi {
            $(type $assoc = $assoc_ty;)*
            $(
                async fn $method(&self, request: Request<$request>) -> Result<Response<$response>, Status> {
                    let principal = Principal::of(&request)?;
                    Ok(Response::new(self.$handler(&principal, request.into_inner()).await?))
                }
            )*
        }
    };
}

delegate!(CaseService {
    fn get_case(GetCaseRequest) -> Case => get;
    fn list_cases(ListCasesRequest) -> ListCasesResponse => list;
    fn list_audit_entries(ListAuditEntriesRequest) -> ListAuditEntriesResponse => list_audit_entries;
    fn verify_audit_chain(VerifyAuditChainRequest) -> VerifyAuditChainResponse => verify_audit_chain;
    fn reload_calendars(ReloadCalendarsRequest) -> ReloadCalendarsResponse => reload_calendars;
    fn assign_case(AssignCaseRequest) -> Case => change;
    fn transfer_case(TransferCaseRequest) -> Case => change;
    fn transition_case(TransitionCaseRequest) -> Case => change;
    fn record_first_response(RecordFirstResponseRequest) -> Case => change;
    fn change_case_grade(ChangeCaseGradeRequest) -> Case => change;
    fn pause_case_clocks(PauseCaseClocksRequest) -> Case => change;
    fn resume_case_clocks(ResumeCaseClocksRequest) -> Case => change;
    fn extend_decision_deadline(ExtendDecisionDeadlineRequest) -> Case => change;
    fn propose_resolution(ProposeResolutionRequest) -> Case => change;
    fn approve_resolution(ApproveResolutionRequest) -> Case => change;
    fn decide_case(DecideCaseRequest) -> Case => change;
    fn answer_survey(AnswerSurveyRequest) -> Case => change;
    fn add_evidence(AddEvidenceRequest) -> Case => change;
    fn link_cases(LinkCasesRequest) -> Case => change;
    fn add_coordination_task(AddCoordinationTaskRequest) -> Case => change;
    fn complete_coordination_task(CompleteCoordinationTaskRequest) -> Case => change;
    fn request_case_review(RequestCaseReviewRequest) -> Case => change;
    fn decide_case_review(DecideCaseReviewRequest) -> Case => change;
    fn confirm_no_conflict(ConfirmNoConflictRequest) -> Case => change;
    fn set_problem_scope(SetProblemScopeRequest) -> Case => change;
    fn record_contact(RecordContactRequest) -> Case => change;
    fn add_implementation_step(AddImplementationStepRequest) -> Case => change;
    fn complete_implementation_step(CompleteImplementationStepRequest) -> Case => change;
});

delegate!(CaseEventFeedService {
    type StreamEventsStream = EventStream;
    fn stream_events(StreamEventsRequest) -> EventStream => stream_events;
    fn list_dead_letters(ListDeadLettersRequest) -> ListDeadLettersResponse => list_dead_letters;
    fn replay_dead_letter(ReplayDeadLetterRequest) -> DeadLetter => replay_dead_letter;
});
