//! gRPC surface of intake: maps protos to domain calls and domain errors to `Status`, here
//! and nowhere else.

use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use redress_calendar::{CalendarError, DeadlineCalculator, Grade, SlaPolicy};
use redress_platform::ServiceError;
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::ready::Ready;
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{from_timestamp, now, to_timestamp};
use redress_proto::redress::common::v1::{Channel, Deadlines};
use redress_proto::redress::intake::v1::intake_event_feed_service_server::IntakeEventFeedService;
use redress_proto::redress::intake::v1::intake_service_server::IntakeService;
use redress_proto::redress::intake::v1::{
    Complaint, ComplaintState, GetComplaintRequest, ListComplaintsRequest, ListComplaintsResponse, Receipt,
    StreamEventsRequest, StreamEventsResponse, SubmitComplaintRequest, SubmitComplaintResponse,
};
use sha2::{Digest, Sha256};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::domain::{mask, validate_submission};
use crate::store::{IntakeStore, ListQuery, NewComplaint, StoreError, Submitted};

#[derive(Clone)]
pub struct IntakeApi {
    store: Ready<Arc<dyn IntakeStore>>,
    deadlines: DeadlineCalculator,
    policy: SlaPolicy,
    shutdown: CancellationToken,
}

impl IntakeApi {
    pub fn new(
        store: Ready<Arc<dyn IntakeStore>>,
        deadlines: DeadlineCalculator,
        policy: SlaPolicy,
        shutdown: CancellationToken,
    ) -> Self {
        Self { store, deadlines, policy, shutdown }
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.request_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        request: SubmitComplaintRequest,
    ) -> Result<SubmitComplaintResponse, ServiceError> {
        principal.require(Permission::ComplaintsCreate)?;
        let now = now();
        let receive_time = validate_submission(&request, now)?;
        let request_hash =
            hex::encode(Sha256::digest(request.complaint.as_ref().map(Message::encode_to_vec).unwrap_or_default()));
        let grade = Grade::General;
        let due = self.deadlines.receipt_deadlines(receive_time, grade, &self.policy).map_err(calendar_error)?;
        let id = uuid::Uuid::now_v7().to_string();
        let name = format!("complaints/{id}");
        let deadlines = Deadlines {
            first_response_due_time: Some(to_timestamp(due.first_response_due)),
            resolution_due_time: Some(to_timestamp(due.resolution_due)),
            regulatory_decision_due_time: Some(to_timestamp(due.regulatory_decision_due)),
            time_zone: self.deadlines.time_zone().name().to_owned(),
            grade: grade_to_proto(grade) as i32,
        };
        let mut complaint = request.complaint.unwrap_or_default();
        complaint.name.clone_from(&name);
        complaint.complaint_number.clear();
        complaint.receive_time = Some(to_timestamp(receive_time));
        complaint.grade = deadlines.grade;
        complaint.state = ComplaintState::Accepted as i32;
        complaint.create_time = Some(to_timestamp(now));
        complaint.receipt = Some(Receipt {
            complaint_number: String::new(),
            complaint: name,
            accept_time: Some(to_timestamp(receive_time)),
            deadlines: Some(deadlines),
        });
        let new = NewComplaint {
            id,
            request_id: request.request_id,
            request_hash,
            number_prefix: now.with_timezone(&self.deadlines.time_zone()).format("%Y%m%d").to_string(),
            receive_time,
            create_time: now,
            complaint,
            trace: TraceContext::current(),
        };
        let store = self.store.get()?;
        let mut complaint = match store.submit(new).await {
            Ok(Submitted::Created(c)) => {
                tracing::info!(complaint = %c.name, number = %c.complaint_number, "complaint accepted");
                c
            }
            Ok(Submitted::Replayed(c)) => c,
            Err(StoreError::RequestIdReused) => {
                return Err(ServiceError::invalid("request_id", "was already used for a different complaint"));
            }
            Err(StoreError::Other(e)) => return Err(e.into()),
        };
        redact(principal, &mut complaint);
        Ok(SubmitComplaintResponse { receipt: complaint.receipt.clone(), complaint: Some(complaint) })
    }

    pub async fn get(&self, principal: &Principal, request: GetComplaintRequest) -> Result<Complaint, ServiceError> {
        principal.require(Permission::ComplaintsRead)?;
        let id = parse_name(&request.name)?;
        let mut complaint = self
            .store
            .get()?
            .get(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        redact(principal, &mut complaint);
        Ok(complaint)
    }

    pub async fn list(
        &self,
        principal: &Principal,
        request: ListComplaintsRequest,
    ) -> Result<ListComplaintsResponse, ServiceError> {
        principal.require(Permission::ComplaintsRead)?;
        let mut v = redress_platform::error::Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let channel = match Channel::try_from(request.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(c) => Some(c as i32),
            Err(_) => {
                v.add("channel", "unknown channel");
                None
            }
        };
        let mut time = |field: &str, t: Option<&prost_types::Timestamp>| {
            t.and_then(|t| {
                let parsed = from_timestamp(t);
                if parsed.is_none() {
                    v.add(field, "is not a valid timestamp");
                }
                parsed
            })
        };
        let receive_from = time("receive_time_from", request.receive_time_from.as_ref());
        let receive_to = time("receive_time_to", request.receive_time_to.as_ref());
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        let query = ListQuery { channel, receive_from, receive_to, after, limit: i64::from(page_size) + 1 };
        let mut listed = self.store.get()?.list(&query).await.map_err(store_error)?;
        let next_page_token = paging::finish_page(&mut listed, page_size, |l| l.cursor.clone());
        let complaints = listed
            .into_iter()
            .map(|l| {
                let mut c = l.complaint;
                redact(principal, &mut c);
                c
            })
            .collect();
        Ok(ListComplaintsResponse { complaints, next_page_token })
    }
}

fn redact(principal: &Principal, complaint: &mut Complaint) {
    if !principal.has(Permission::PiiRead) {
        mask::complaint(complaint);
    }
}

fn parse_name(name: &str) -> Result<&str, ServiceError> {
    name.strip_prefix("complaints/")
        .filter(|id| uuid::Uuid::try_parse(id).is_ok())
        .ok_or_else(|| ServiceError::invalid("name", "must be complaints/{complaint_id}"))
}

fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::RequestIdReused => {
            ServiceError::invalid("request_id", "was already used for a different complaint")
        }
        StoreError::Other(e) => ServiceError::Internal(e),
    }
}

fn calendar_error(e: CalendarError) -> ServiceError {
    match e {
        CalendarError::YearNotLoaded { year } => {
            tracing::error!(year, "no working-day calendar loaded for {year}; deadlines cannot be computed");
            ServiceError::FailedPrecondition {
                reason: "CALENDAR_NOT_LOADED",
                message: format!("no working-day calendar is loaded for {year}; an operator must add it"),
                metadata: [("year".to_owned(), year.to_string())].into(),
            }
        }
        other => ServiceError::Internal(anyhow::Error::new(other).context("deadline computation failed")),
    }
}

pub fn grade_to_proto(grade: Grade) -> redress_proto::redress::common::v1::Grade {
    use redress_proto::redress::common::v1::Grade as P;
    match grade {
        Grade::General => P::General,
        Grade::Important => P::Important,
        Grade::Urgent => P::Urgent,
        Grade::Major => P::Major,
    }
}

fn principal_of<T>(request: &Request<T>) -> Result<Principal, Status> {
    Ok(Principal::of(request)?)
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn submit_complaint(
        &self,
        request: Request<SubmitComplaintRequest>,
    ) -> Result<Response<SubmitComplaintResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.submit(&principal, request.into_inner()).await?))
    }

    async fn get_complaint(&self, request: Request<GetComplaintRequest>) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.get(&principal, request.into_inner()).await?))
    }

    async fn list_complaints(
        &self,
        request: Request<ListComplaintsRequest>,
    ) -> Result<Response<ListComplaintsResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.list(&principal, request.into_inner()).await?))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IntakeEventFeedService for IntakeApi {
    type StreamEventsStream = EventStream;

    async fn stream_events(&self, request: Request<StreamEventsRequest>) -> Result<Response<EventStream>, Status> {
        principal_of(&request)?.require(Permission::EventsRead)?;
        let after = request.get_ref().after_position;
        if after < 0 {
            return Err(ServiceError::invalid("after_position", "must not be negative").into());
        }
        let stream = self.store.get()?.feed().stream(after, self.shutdown.clone());
        Ok(Response::new(Box::pin(stream.map(|r| r.map(|events| StreamEventsResponse { events })))))
    }
}
