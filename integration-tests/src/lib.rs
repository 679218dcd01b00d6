//! A sandbox for end-to-end tests: the embedded suite on ephemeral ports with a fresh data
//! directory, and authenticated clients for the gateway.

use std::time::Duration;

use redress::{Suite, SuiteOptions};
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::escalation::v1::escalation_service_client::EscalationServiceClient;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::metrics::v1::quality_metrics_service_client::QualityMetricsServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const TOKEN: &str = "integration-test-token";
/// Token of a handler at one branch, who may work only within that branch and reads personal
/// information masked.
pub const BRANCH_TOKEN: &str = "integration-test-branch-token";
pub const BRANCH: &str = "institutions/demo-bank/branches/beijing";

pub fn branch_principal() -> redress_platform::Principal {
    redress_platform::Principal {
        subject: "user:branch-handler".to_owned(),
        roles: vec!["handler".to_owned()],
        org_unit: BRANCH.to_owned(),
        department: String::new(),
        permissions: ["complaints.create", "complaints.read", "cases.read"].map(str::to_owned).to_vec(),
        staff_id: String::new(),
    }
}

/// The head office of the institution [`BRANCH`] belongs to.
pub const HEAD_OFFICE: &str = "institutions/demo-bank";
/// Token of a handler at [`BRANCH`] who changes its cases and holds both extension permissions:
/// the handling unit itself, for the rules that look above it.
pub const BRANCH_STAFF_TOKEN: &str = "integration-test-branch-staff-token";
/// Token of a handler at [`HEAD_OFFICE`], above every branch, with the same permissions.
pub const HEAD_OFFICE_TOKEN: &str = "integration-test-head-office-token";
/// Token of a senior manager at [`HEAD_OFFICE`] (role `senior_manager`).
pub const SENIOR_MANAGER_TOKEN: &str = "integration-test-senior-manager-token";

/// A handler at `unit` who may change cases and extend them to 30 and 60 days.
fn case_staff(subject: &str, role: &str, unit: &str) -> redress_platform::Principal {
    redress_platform::Principal {
        subject: subject.to_owned(),
        roles: vec![role.to_owned()],
        org_unit: unit.to_owned(),
        department: String::new(),
        permissions: ["cases.read", "cases.write", "cases.extend", "cases.extend.special"].map(str::to_owned).to_vec(),
        staff_id: String::new(),
    }
}

/// Token of a handler at [`HEAD_OFFICE`] with employee id [`STAFF_ID`], who takes complaints
/// (first-contact owner) and handles cases.
pub const STAFF_TOKEN: &str = "integration-test-staff-token";
pub const STAFF_ID: &str = "E2001";
/// Token of a supervisor at [`HEAD_OFFICE`] with employee id [`APPROVER_STAFF_ID`], who may
/// approve resolutions and confirm conflict-of-interest checks.
pub const APPROVER_TOKEN: &str = "integration-test-approver-token";
pub const APPROVER_STAFF_ID: &str = "E3001";
/// Token of a supervisor at [`HEAD_OFFICE`] with employee id [`COMPLAINED_STAFF_ID`], the
/// member of staff complaints in the tests are about.
pub const COMPLAINED_STAFF_TOKEN: &str = "integration-test-complained-staff-token";
pub const COMPLAINED_STAFF_ID: &str = "E9001";

/// A member of staff at [`HEAD_OFFICE`] with an employee id, who may take complaints and
/// change cases (and approve, with role `supervisor`).
fn staff_member(subject: &str, role: &str, staff_id: &str) -> redress_platform::Principal {
    let mut permissions = vec!["complaints.create", "complaints.read", "cases.read", "cases.write", "events.read"];
    if role == "supervisor" {
        permissions.push("cases.approve");
    }
    redress_platform::Principal {
        subject: subject.to_owned(),
        roles: vec![role.to_owned()],
        org_unit: HEAD_OFFICE.to_owned(),
        department: String::new(),
        permissions: permissions.into_iter().map(str::to_owned).collect(),
        staff_id: staff_id.to_owned(),
    }
}

/// Token of an integration team's reader at institution A only (events of A's units).
pub const INSTITUTION_A_TOKEN: &str = "integration-test-institution-a-token";
pub const INSTITUTION_A: &str = "institutions/a";

pub fn institution_a_reader() -> redress_platform::Principal {
    redress_platform::Principal {
        subject: "user:a-integration".to_owned(),
        roles: vec!["integration".to_owned()],
        org_unit: INSTITUTION_A.to_owned(),
        department: String::new(),
        permissions: ["events.read", "cases.read"].map(str::to_owned).to_vec(),
        staff_id: String::new(),
    }
}

/// Adds a bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}").parse().map_err(|_| tonic::Status::internal("bad token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

static METRICS_ADDR: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();

/// Installs the suite's telemetry once per test process (trace context needs its layer), with
/// Prometheus metrics on a free loopback port.
fn init_telemetry() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let Ok(addr) = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) else { return };
        let config = redress_platform::telemetry::TelemetryConfig {
            log_filter: "warn".to_owned(),
            metrics_addr: addr.to_string(),
            ..Default::default()
        };
        if let Ok(guard) = redress_platform::telemetry::init(&config, "redress-integration-tests") {
            std::mem::forget(guard);
            let _ = METRICS_ADDR.set(addr);
        }
    });
}

/// The text of the process's Prometheus `/metrics` page.
pub async fn scrape_metrics() -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = METRICS_ADDR.get().ok_or_else(|| anyhow::anyhow!("metrics are not being served"))?;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut page = String::new();
    stream.read_to_string(&mut page).await?;
    Ok(page)
}

pub struct Sandbox {
    pub suite: Suite,
    pub channel: Channel,
    pub data_dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts the suite on ephemeral ports and waits until the gateway reports every public
    /// service SERVING.
    pub async fn start() -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        Self::start_in(data_dir).await
    }

    pub async fn start_in(data_dir: tempfile::TempDir) -> anyhow::Result<Self> {
        Self::start_configured(data_dir, |_| {}).await
    }

    /// [`Sandbox::start_in`], with the suite's options changed by `configure` first (calendars,
    /// a clock standing at a chosen date).
    pub async fn start_configured(
        data_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut SuiteOptions),
    ) -> anyhow::Result<Self> {
        init_telemetry();
        let suite = Suite::start(
            SuiteOptions {
                data_dir: data_dir.path().to_owned(),
                gateway_addr: "127.0.0.1:0".to_owned(),
                dev_token: TOKEN.to_owned(),
                extra_dev_tokens: vec![
                    (BRANCH_TOKEN.to_owned(), branch_principal()),
                    (INSTITUTION_A_TOKEN.to_owned(), institution_a_reader()),
                    (
                        BRANCH_STAFF_TOKEN.to_owned(),
                        // Of the department transferred cases go to in the tests.
                        redress_platform::Principal {
                            department: "wealth".to_owned(),
                            ..case_staff("user:branch-staff", "handler", BRANCH)
                        },
                    ),
                    (HEAD_OFFICE_TOKEN.to_owned(), case_staff("user:head-office", "handler", HEAD_OFFICE)),
                    (SENIOR_MANAGER_TOKEN.to_owned(), case_staff("user:senior-manager", "senior_manager", HEAD_OFFICE)),
                    (STAFF_TOKEN.to_owned(), staff_member("user:li-na", "handler", STAFF_ID)),
                    (APPROVER_TOKEN.to_owned(), staff_member("user:chen-jing", "supervisor", APPROVER_STAFF_ID)),
                    (
                        COMPLAINED_STAFF_TOKEN.to_owned(),
                        staff_member("user:zhang-wei", "supervisor", COMPLAINED_STAFF_ID),
                    ),
                ],
                ..SuiteOptions::default()
            }
            .with(configure),
            CancellationToken::new(),
        )
        .await?;
        let channel = Channel::from_shared(format!("http://{}", suite.gateway_addr))?.connect().await?;
        let sandbox = Self { suite, channel, data_dir };
        sandbox.wait_until_serving().await?;
        Ok(sandbox)
    }

    async fn wait_until_serving(&self) -> anyhow::Result<()> {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        for _ in 0..200 {
            let mut all = true;
            for service in [
                redress_proto::services::INTAKE,
                redress_proto::services::CASE,
                redress_proto::services::METRICS,
                redress_proto::services::ESCALATION,
            ] {
                let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
                let status = health.check(request).await?.into_inner().status;
                all &= status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
            }
            if all {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("suite did not become SERVING")
    }

    pub fn intake(&self) -> IntakeServiceClient<InterceptedService<Channel, Bearer>> {
        self.intake_with(Some(TOKEN))
    }

    pub fn intake_with(&self, token: Option<&str>) -> IntakeServiceClient<InterceptedService<Channel, Bearer>> {
        IntakeServiceClient::with_interceptor(self.channel.clone(), Bearer(token.map(str::to_owned)))
    }

    pub fn cases(&self) -> CaseServiceClient<InterceptedService<Channel, Bearer>> {
        self.cases_with(TOKEN)
    }

    pub fn cases_with(&self, token: &str) -> CaseServiceClient<InterceptedService<Channel, Bearer>> {
        CaseServiceClient::with_interceptor(self.channel.clone(), Bearer(Some(token.to_owned())))
    }

    pub fn metrics(&self) -> QualityMetricsServiceClient<InterceptedService<Channel, Bearer>> {
        self.metrics_with(TOKEN)
    }

    pub fn metrics_with(&self, token: &str) -> QualityMetricsServiceClient<InterceptedService<Channel, Bearer>> {
        QualityMetricsServiceClient::with_interceptor(self.channel.clone(), Bearer(Some(token.to_owned())))
    }

    pub fn escalation(&self) -> EscalationServiceClient<InterceptedService<Channel, Bearer>> {
        self.escalation_with(TOKEN)
    }

    pub fn escalation_with(&self, token: &str) -> EscalationServiceClient<InterceptedService<Channel, Bearer>> {
        EscalationServiceClient::with_interceptor(self.channel.clone(), Bearer(Some(token.to_owned())))
    }

    /// Stops the suite and hands back its data directory (to start again on the same files).
    pub async fn stop(self) -> anyhow::Result<tempfile::TempDir> {
        self.suite.stop().await?;
        Ok(self.data_dir)
    }
}

impl Sandbox {
    /// Submits `complaint` with `request_id` and waits (at most 10 s) for case-workflow to open
    /// its case.
    pub async fn submit_and_open(
        &self,
        request_id: &str,
        complaint: redress_proto::redress::intake::v1::Complaint,
    ) -> redress_proto::redress::case::v1::Case {
        use redress_proto::redress::intake::v1::SubmitComplaintRequest;
        let request = SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) };
        let response = self.intake().submit_complaint(request).await;
        let complaint = response.map(|r| r.into_inner().complaint.unwrap_or_default()).unwrap_or_default();
        self.case_of(&complaint.name).await
    }

    /// The case of `complaint`, once case-workflow opened it (at most 10 s).
    pub async fn case_of(&self, complaint: &str) -> redress_proto::redress::case::v1::Case {
        use redress_proto::redress::case::v1::ListCasesRequest;
        let started = std::time::Instant::now();
        loop {
            let request = ListCasesRequest { complaint: complaint.to_owned(), ..Default::default() };
            let found = self.cases().list_cases(request).await.ok().and_then(|r| r.into_inner().cases.pop());
            if let Some(case) = found {
                return case;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no case opened for {complaint}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Takes a case from accepted to decided (assign, investigate, propose an explanation,
    /// decide) as the development principal, and returns it decided.
    pub async fn decide(&self, name: &str) -> redress_proto::redress::case::v1::Case {
        use redress_proto::redress::case::v1::{
            AssignCaseRequest, CaseState, DecideCaseRequest, ProposeResolutionRequest, ResolutionType,
            TransitionCaseRequest,
        };
        let mut cases = self.cases();
        let name = name.to_owned();
        let assign = AssignCaseRequest {
            name: name.clone(),
            assignee: "user:li-na".to_owned(),
            department: "cards".to_owned(),
            ..Default::default()
        };
        let investigate = TransitionCaseRequest {
            name: name.clone(),
            state: CaseState::Investigating as i32,
            reason: "调取合同".to_owned(),
            ..Default::default()
        };
        let propose = ProposeResolutionRequest {
            name: name.clone(),
            r#type: ResolutionType::Explanation as i32,
            grounds: "年费按合同收取".to_owned(),
            ..Default::default()
        };
        let decide = DecideCaseRequest { name, decision_notice: "维持收费".to_owned(), ..Default::default() };
        let steps = async {
            cases.assign_case(assign).await?;
            cases.transition_case(investigate).await?;
            cases.propose_resolution(propose).await?;
            cases.decide_case(decide).await
        };
        match steps.await {
            Ok(decided) => decided.into_inner(),
            Err(status) => panic!("the case could not be decided: {status:?}"),
        }
    }
}

/// A `StreamEvents` response of any feed of the suite.
pub trait HasEvents {
    fn into_events(self) -> Vec<redress_proto::redress::common::v1::Event>;
}

impl HasEvents for redress_proto::redress::intake::v1::StreamEventsResponse {
    fn into_events(self) -> Vec<redress_proto::redress::common::v1::Event> {
        self.events
    }
}

impl HasEvents for redress_proto::redress::case::v1::StreamEventsResponse {
    fn into_events(self) -> Vec<redress_proto::redress::common::v1::Event> {
        self.events
    }
}

/// A feed's events until one `done` accepts (at most 30 s), all of them in order.
pub async fn events_until(
    mut batches: tonic::Streaming<impl HasEvents>,
    done: impl Fn(&redress_proto::redress::common::v1::Event) -> bool,
) -> Vec<redress_proto::redress::common::v1::Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Ok(Some(batch))) = tokio::time::timeout_at(deadline, batches.message()).await {
        let events = batch.into_events();
        let finished = events.iter().any(&done);
        seen.extend(events);
        if finished {
            return seen;
        }
    }
    panic!("the awaited event never came; read {seen:?}");
}
