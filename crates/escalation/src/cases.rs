//! Carries out the requests the service recorded for cases, through CaseService as the
//! service's own principal (see `domain::actions`). Each request keeps its key as request id,
//! so one carried out before a crash and retried after is answered with its first result, and
//! a link found to exist already counts as done.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redress_platform::principal::ServiceCredentials;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, AddEvidenceRequest, ChangeCaseGradeRequest, LinkCasesRequest, LinkType,
};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::domain::actions::{CaseRequest, request_id};
use crate::store::ops::Attempt;
use crate::store::{DueAction, EscalationStore};

/// Adds the service's signed principal to every call.
#[derive(Clone)]
pub struct Credentials(ServiceCredentials);

impl Credentials {
    pub fn new(credentials: ServiceCredentials) -> Self {
        Self(credentials)
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.0.apply(&mut request)?;
        redress_platform::telemetry::inject_current_context(&mut request);
        Ok(request)
    }
}

pub type CaseClient = CaseServiceClient<InterceptedService<Channel, Credentials>>;

/// A CaseService client calling as `credentials`, over `tls` (the service's own) for `https://`.
pub fn case_client(
    url: &str,
    credentials: ServiceCredentials,
    tls: Option<&redress_platform::tls::Tls>,
) -> anyhow::Result<CaseClient> {
    let channel = redress_platform::server::suite_endpoint(url)?.connect_lazy(tls);
    Ok(CaseServiceClient::with_interceptor(channel, Credentials(credentials))
        .max_decoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE)
        .max_encoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE))
}

/// Requests carried out per pass.
const BATCH: i64 = 100;

/// Carries out due requests until `stop`, every `interval` (at once again after a full batch).
pub async fn run(store: Arc<EscalationStore>, client: CaseClient, interval: Duration, stop: CancellationToken) {
    loop {
        let done = match carry_out(&store, &client).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "carrying out case requests failed; retrying");
                0
            }
        };
        if done < BATCH as usize {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

/// One pass: every due request whose complaint has a case; returns how many it tried.
pub async fn carry_out(store: &EscalationStore, client: &CaseClient) -> anyhow::Result<usize> {
    let due = store.due_actions(store.now(), BATCH).await?;
    let tried = due.len();
    for action in due {
        let now = store.now();
        let (attempt, lead_case) = attempt(store, client.clone(), &action, now).await?;
        metrics::counter!(
            "redress_escalation_case_requests_total",
            "kind" => action.request.kind(),
            "outcome" => match &attempt { Attempt::Done => "done", Attempt::Refused(_) => "refused", Attempt::Retry(..) => "retry" }
        )
        .increment(1);
        store.finish_action(action, attempt, lead_case).await?;
    }
    Ok(tried)
}

/// How long to wait before trying again after `attempts` failures (1 s doubling, at most 5 min).
fn backoff(attempts: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = 1_i64 << attempts.clamp(0, 8);
    now + chrono::Duration::seconds(seconds.min(300))
}

async fn attempt(
    store: &EscalationStore,
    mut client: CaseClient,
    action: &DueAction,
    now: DateTime<Utc>,
) -> anyhow::Result<(Attempt, String)> {
    let id = request_id(&action.key);
    let result = match &action.request {
        CaseRequest::LinkParent { lead_complaint, reason, .. } => {
            let lead = store.known(lead_complaint).await?.and_then(|k| k.case);
            let Some(lead) = lead else {
                // The lead's case is not opened yet: wait for it.
                return Ok((
                    Attempt::Retry("the lead complaint has no case yet".to_owned(), backoff(0, now)),
                    String::new(),
                ));
            };
            if lead == action.case {
                return Ok((Attempt::Done, lead));
            }
            let request = LinkCasesRequest {
                name: action.case.clone(),
                request_id: id,
                other: lead.clone(),
                r#type: LinkType::Parent as i32,
                reason: reason.clone(),
                ..LinkCasesRequest::default()
            };
            return Ok((outcome(client.link_cases(request).await.map(|_| ()), action, now), lead));
        }
        CaseRequest::ChangeGrade { grade, reason } => client
            .change_case_grade(ChangeCaseGradeRequest {
                name: action.case.clone(),
                request_id: id,
                grade: *grade,
                reason: reason.clone(),
                ..ChangeCaseGradeRequest::default()
            })
            .await
            .map(|_| ()),
        CaseRequest::AddTask { department, owner, description, due_in_hours } => {
            // Fixed from when the request was recorded, so a retry asks exactly the same.
            let due = action.create_time + chrono::Duration::hours(i64::from(*due_in_hours));
            client
                .add_coordination_task(AddCoordinationTaskRequest {
                    name: action.case.clone(),
                    request_id: id,
                    department: department.clone(),
                    owner: owner.clone(),
                    description: description.clone(),
                    due_time: Some(to_timestamp(due)),
                    ..AddCoordinationTaskRequest::default()
                })
                .await
                .map(|_| ())
        }
        CaseRequest::AddEvidence { uri, sha256, kind, description } => client
            .add_evidence(AddEvidenceRequest {
                name: action.case.clone(),
                request_id: id,
                uri: uri.clone(),
                sha256: sha256.clone(),
                kind: kind.clone(),
                description: description.clone(),
                ..AddEvidenceRequest::default()
            })
            .await
            .map(|_| ()),
    };
    Ok((outcome(result, action, now), String::new()))
}

/// What CaseService's answer means for the request.
fn outcome(result: Result<(), Status>, action: &DueAction, now: DateTime<Utc>) -> Attempt {
    let status = match result {
        Ok(()) => return Attempt::Done,
        Err(status) => status,
    };
    let why = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        // The link or evidence is there already (done before, its request id since forgotten).
        Code::AlreadyExists => Attempt::Done,
        // The case has the grade already.
        Code::InvalidArgument
            if matches!(action.request, CaseRequest::ChangeGrade { .. }) && status.message().contains("grade") =>
        {
            Attempt::Done
        }
        Code::InvalidArgument | Code::NotFound | Code::PermissionDenied | Code::FailedPrecondition => {
            Attempt::Refused(why)
        }
        _ => Attempt::Retry(why, backoff(action.attempts, now)),
    }
}
