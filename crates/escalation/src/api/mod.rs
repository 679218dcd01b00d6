//! gRPC surface of the escalation service, the only place protos meet the domain: each
//! request is parsed once (every violation at once), checked for permission and scope, and
//! handed to the store. [`incidents`] covers incidents, members and statements,
//! [`escalations`] the ladder and alerts, [`feed`] the event feed and dead letters.

mod escalations;
mod feed;
mod incidents;
mod special;

use std::sync::Arc;

use prost::Message;
use redress_platform::blind_index::BlindIndexKey;
use redress_platform::error::Violations;
use redress_platform::names::RequestId;
use redress_platform::principal::Principal;
use redress_platform::ready::Ready;
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use redress_proto::redress::escalation::v1::escalation_event_feed_service_server::EscalationEventFeedService;
use redress_proto::redress::escalation::v1::escalation_service_server::EscalationService;
use redress_proto::redress::escalation::v1::*;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::error::EscalationError;
use crate::store::EscalationStore;
use crate::store::ops::RequestKey;
use feed::EventStream;

#[derive(Clone)]
pub struct EscalationApi {
    store: Ready<Arc<EscalationStore>>,
    shutdown: CancellationToken,
    /// The blind-index key the VIP register digests identifiers with; without it the
    /// register is refused.
    index_key: Option<BlindIndexKey>,
}

impl EscalationApi {
    pub fn new(store: Ready<Arc<EscalationStore>>, shutdown: CancellationToken) -> Self {
        Self { store, shutdown, index_key: None }
    }

    /// Keeps a VIP register, its identifiers digested with `key`.
    pub fn with_index_key(self, key: Option<BlindIndexKey>) -> Self {
        Self { index_key: key, ..self }
    }

    /// The store, once it is open (UNAVAILABLE until then).
    fn store(&self) -> Result<Arc<EscalationStore>, EscalationError> {
        Ok(self.store.get()?.clone())
    }
}

/// The request id of a mutation with the fingerprint of who sent what to which method, so a
/// retry is recognised and a reuse for another request refused (AIP-155).
fn request_key<M: Message>(
    v: &mut Violations,
    request_id: &str,
    required: bool,
    principal: &Principal,
    method: &str,
    request: &M,
) -> Option<RequestKey> {
    let id = if required {
        RequestId::parse_required(v, "request_id", request_id)
    } else {
        RequestId::parse_optional(v, "request_id", request_id)
    }?;
    let mut hash = Sha256::new();
    hash.update(principal.subject.as_bytes());
    hash.update([0]);
    hash.update(method.as_bytes());
    hash.update([0]);
    hash.update(request.encode_to_vec());
    Some(RequestKey { id: id.as_str().to_owned(), fingerprint: hex::encode(hash.finalize()) })
}

/// The version an etag names (`"N"`); empty for none.
fn version_of(v: &mut Violations, etag: &str) -> Option<i64> {
    if etag.is_empty() {
        return None;
    }
    let version = etag.trim_matches('"').parse::<i64>().ok().filter(|n| *n > 0);
    if version.is_none() {
        v.add("etag", "is not an etag this service issued");
    }
    version
}

/// Implements a gRPC service on [`EscalationApi`]: each method takes the principal the
/// interceptor verified and hands it, with the request, to the handler named after `=>`.
macro_rules! delegate {
    ($service:ident {
        $(type $assoc:ident = $assoc_ty:ty;)*
        $(fn $method:ident($request:ty) -> $response:ty => $handler:ident;)*
    }) => {
        #[tonic::async_trait]
        impl $service for EscalationApi {
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

delegate!(EscalationService {
    fn get_incident(GetIncidentRequest) -> Incident => get_incident;
    fn list_incidents(ListIncidentsRequest) -> ListIncidentsResponse => list_incidents;
    fn create_incident(CreateIncidentRequest) -> Incident => create_incident;
    fn declare_incident(DeclareIncidentRequest) -> Incident => change_incident;
    fn dismiss_incident(DismissIncidentRequest) -> Incident => change_incident;
    fn set_working_group(SetWorkingGroupRequest) -> Incident => change_incident;
    fn add_timeline_entry(AddTimelineEntryRequest) -> Incident => change_incident;
    fn record_systemic_cause(RecordSystemicCauseRequest) -> Incident => change_incident;
    fn advance_crisis_stage(AdvanceCrisisStageRequest) -> Incident => change_incident;
    fn close_incident(CloseIncidentRequest) -> Incident => change_incident;
    fn add_incident_member(AddIncidentMemberRequest) -> IncidentMember => add_member;
    fn list_incident_members(ListIncidentMembersRequest) -> ListIncidentMembersResponse => list_members;
    fn classify_incident_member(ClassifyIncidentMemberRequest) -> IncidentMember => classify_member;
    fn draft_statement(DraftStatementRequest) -> Statement => draft_statement;
    fn approve_statement(ApproveStatementRequest) -> Statement => approve_statement;
    fn get_current_statement(GetCurrentStatementRequest) -> Statement => current_statement;
    fn list_statements(ListStatementsRequest) -> ListStatementsResponse => list_statements;
    fn use_statement(UseStatementRequest) -> StatementUse => use_statement;
    fn get_escalation(GetEscalationRequest) -> Escalation => get_escalation;
    fn list_escalations(ListEscalationsRequest) -> ListEscalationsResponse => list_escalations;
    fn raise_escalation(RaiseEscalationRequest) -> Escalation => raise_escalation;
    fn acknowledge_escalation(AcknowledgeEscalationRequest) -> Escalation => acknowledge_escalation;
    fn list_alerts(ListAlertsRequest) -> ListAlertsResponse => list_alerts;
    fn acknowledge_alert(AcknowledgeAlertRequest) -> Alert => acknowledge_alert;
    fn create_watchlist(CreateWatchlistRequest) -> Watchlist => create_watchlist;
    fn get_watchlist(GetWatchlistRequest) -> Watchlist => get_watchlist;
    fn list_watchlists(ListWatchlistsRequest) -> ListWatchlistsResponse => list_watchlists;
    fn update_watchlist(UpdateWatchlistRequest) -> Watchlist => update_watchlist;
    fn delete_watchlist(DeleteWatchlistRequest) -> DeleteWatchlistResponse => delete_watchlist;
    fn report_mention(ReportMentionRequest) -> Mention => report_mention;
    fn list_mentions(ListMentionsRequest) -> ListMentionsResponse => list_mentions;
    fn attach_mention(AttachMentionRequest) -> Mention => attach_mention;
    fn create_response_template(CreateResponseTemplateRequest) -> ResponseTemplate => create_response_template;
    fn list_response_templates(ListResponseTemplatesRequest) -> ListResponseTemplatesResponse => list_response_templates;
    fn register_vip(RegisterVipRequest) -> Vip => register_vip;
    fn import_vips(ImportVipsRequest) -> ImportVipsResponse => import_vips;
    fn list_vips(ListVipsRequest) -> ListVipsResponse => list_vips;
    fn delete_vip(DeleteVipRequest) -> DeleteVipResponse => delete_vip;
    fn flag_malicious_complaint(FlagMaliciousComplaintRequest) -> MaliciousFlag => flag_malicious_complaint;
    fn approve_malicious_flag(ApproveMaliciousFlagRequest) -> MaliciousFlag => approve_malicious_flag;
    fn reject_malicious_flag(RejectMaliciousFlagRequest) -> MaliciousFlag => reject_malicious_flag;
    fn get_malicious_flag(GetMaliciousFlagRequest) -> MaliciousFlag => get_malicious_flag;
    fn list_malicious_flags(ListMaliciousFlagsRequest) -> ListMaliciousFlagsResponse => list_malicious_flags;
});

delegate!(EscalationEventFeedService {
    type StreamEventsStream = EventStream;
    fn stream_events(StreamEventsRequest) -> EventStream => stream_events;
    fn list_dead_letters(ListDeadLettersRequest) -> ListDeadLettersResponse => list_dead_letters;
    fn replay_dead_letter(ReplayDeadLetterRequest) -> DeadLetter => replay_dead_letter;
});
