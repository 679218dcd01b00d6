//! gRPC surface of case-workflow: maps protos to store calls and errors to `Status`.

use std::pin::Pin;
use std::sync::Arc;

use redress_platform::ServiceError;
use redress_platform::error::Violations;
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::ready::Ready;
use redress_proto::redress::case::v1::case_event_feed_service_server::CaseEventFeedService;
use redress_proto::redress::case::v1::case_service_server::CaseService;
use redress_proto::redress::case::v1::{
    Case, CaseState, GetCaseRequest, ListCasesRequest, ListCasesResponse, StreamEventsRequest, StreamEventsResponse,
};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::store::{CaseQuery, CaseStore};

#[derive(Clone)]
pub struct CaseApi {
    store: Ready<Arc<dyn CaseStore>>,
    shutdown: CancellationToken,
}

impl CaseApi {
    pub fn new(store: Ready<Arc<dyn CaseStore>>, shutdown: CancellationToken) -> Self {
        Self { store, shutdown }
    }

    pub async fn get(&self, principal: &Principal, request: GetCaseRequest) -> Result<Case, ServiceError> {
        principal.require(Permission::CasesRead)?;
        let id = request
            .name
            .strip_prefix("cases/")
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
            .ok_or_else(|| ServiceError::invalid("name", "must be cases/{case_id}"))?;
        self.store
            .get()?
            .get(id)
            .await?
            // Outside the caller's organisation unit it does not exist for the caller.
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| ServiceError::NotFound { resource: "case", name: request.name.clone() })
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
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CaseEventFeedService for CaseApi {
    type StreamEventsStream = EventStream;

    async fn stream_events(&self, request: Request<StreamEventsRequest>) -> Result<Response<EventStream>, Status> {
        Principal::of(&request)?.require(Permission::EventsRead)?;
        let after = request.get_ref().after_position;
        if after < 0 {
            return Err(ServiceError::invalid("after_position", "must not be negative").into());
        }
        let stream = self.store.get()?.feed().stream(after, self.shutdown.clone());
        Ok(Response::new(Box::pin(stream.map(|r| r.map(|events| StreamEventsResponse { events })))))
    }
}
