//! What the fault tests share: the suite served one `redress serve` process per service on
//! PostgreSQL (each on a port fixed for the test, so that a service restarted takes its place
//! again), a burst of submissions through the gateway that retries what it is told to retry
//! with the same request id, and the checks that every acknowledged complaint was recorded once,
//! opened one case and was counted once.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redress_integration_tests::{Bearer, TOKEN};
use redress_platform::principal::Permission;
use redress_platform::signing::{GATEWAY, SigningKey};
use redress_proto::redress::case::v1::ListCasesRequest;
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::common::v1::ListDeadLettersRequest;
use redress_proto::redress::escalation::v1::escalation_event_feed_service_client::EscalationEventFeedServiceClient;
use redress_proto::redress::escalation::v1::escalation_service_client::EscalationServiceClient;
use redress_proto::redress::escalation::v1::{ListIncidentMembersRequest, ListIncidentsRequest};
use redress_proto::redress::intake::v1::complainant::Party;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{ListComplaintsRequest, NaturalPerson, SubmitComplaintRequest};
use redress_proto::redress::knowledge::v1::knowledge_event_feed_service_client::KnowledgeEventFeedServiceClient;
use redress_proto::redress::metrics::v1::metrics_event_feed_service_client::MetricsEventFeedServiceClient;
use redress_proto::redress::metrics::v1::quality_metrics_service_client::QualityMetricsServiceClient;
use redress_proto::redress::metrics::v1::{GetKpisRequest, GetReadModelStatusRequest, Kpi, Period};
use tokio::process::{Child, Command};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// The services as `redress serve` names them, the gateway first.
pub const SERVED: [&str; 6] = [GATEWAY, "intake", "case-workflow", "quality-metrics", "escalation", "knowledge-base"];

/// The organisation unit every complaint of the burst is filed for.
pub const INSTITUTION: &str = "institutions/demo-bank";

/// The suite, one process per service, each on its own fixed port and (but the gateway) its own
/// PostgreSQL database.
pub struct Suite {
    pub dir: tempfile::TempDir,
    ports: BTreeMap<&'static str, u16>,
    databases: BTreeMap<&'static str, String>,
    private_keys: BTreeMap<&'static str, String>,
    public_keys: BTreeMap<&'static str, String>,
    children: BTreeMap<&'static str, Child>,
}

impl Suite {
    /// Starts every service and waits until the gateway sees all of them serving; `None` (after
    /// the skip line) when no PostgreSQL server is configured.
    pub async fn start(test: &str) -> Option<Self> {
        let mut databases = BTreeMap::new();
        for service in &SERVED[1..] {
            let url = redress_platform::testing::fresh_postgres_database(test).await.unwrap()?;
            databases.insert(*service, url);
        }
        // A port per service, picked here and bound again by the service on every start.
        let ports: BTreeMap<&'static str, u16> = {
            let listeners: Vec<_> =
                SERVED.iter().map(|s| (*s, std::net::TcpListener::bind("127.0.0.1:0").unwrap())).collect();
            listeners.iter().map(|(s, l)| (*s, l.local_addr().unwrap().port())).collect()
        };
        let keys: BTreeMap<&str, SigningKey> = redress::SIGNERS.iter().map(|s| (*s, SigningKey::generate(s))).collect();
        let dir = tempfile::tempdir().unwrap();
        let permissions: Vec<String> = Permission::ALL.iter().map(|p| format!("{:?}", p.as_str())).collect();
        std::fs::write(
            dir.path().join("gateway.toml"),
            format!(
                "[[auth.dev_tokens]]\ntoken = \"{TOKEN}\"\nprincipal = {{ subject = \"dev\", roles = [\"admin\"], \
                 org_unit = \"/\", permissions = [{}] }}\n",
                permissions.join(", ")
            ),
        )
        .unwrap();
        let mut suite = Self {
            dir,
            ports,
            databases,
            private_keys: keys.iter().map(|(s, k)| (*s, k.to_pem())).collect(),
            public_keys: keys.iter().map(|(s, k)| (*s, k.public_key().to_pem())).collect(),
            children: BTreeMap::new(),
        };
        for service in SERVED {
            suite.spawn(service);
        }
        suite.wait_serving(Duration::from_secs(60)).await;
        Some(suite)
    }

    pub fn url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[service])
    }

    /// The database URL of `service`.
    pub fn database(&self, service: &str) -> &str {
        &self.databases[service]
    }

    /// Starts `service` on its port, its log appended to `<service>.log`.
    pub fn spawn(&mut self, service: &'static str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{service}.log")))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
        command
            .args(["serve", service])
            .env("REDRESS_SERVER__LISTEN_ADDR", format!("127.0.0.1:{}", self.ports[service]))
            .env("REDRESS_TELEMETRY__METRICS_ADDR", "")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if service == GATEWAY {
            command
                .arg("--allow-dev-tokens")
                .arg("--config")
                .arg(self.dir.path().join("gateway.toml"))
                .env("REDRESS_SIGNING_KEY", &self.private_keys[GATEWAY])
                .env("REDRESS_RATE_LIMITS__CALLER_PER_SECOND", "0")
                .env("REDRESS_RATE_LIMITS__INSTITUTION_PER_SECOND", "0")
                .env("REDRESS_UPSTREAMS__INTAKE", self.url("intake"))
                .env("REDRESS_UPSTREAMS__CASE_WORKFLOW", self.url("case-workflow"))
                .env("REDRESS_UPSTREAMS__ESCALATION", self.url("escalation"))
                .env("REDRESS_UPSTREAMS__KNOWLEDGE_BASE", self.url("knowledge-base"))
                .env("REDRESS_UPSTREAMS__QUALITY_METRICS", self.url("quality-metrics"));
        } else {
            command
                .env("REDRESS_DATABASE__URL", &self.databases[service])
                .env("REDRESS_AUTH__SIGNING_KEY", &self.private_keys[service])
                .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", &self.public_keys[GATEWAY])
                .env("REDRESS_INTAKE_URL", self.url("intake"))
                .env("REDRESS_CASE_WORKFLOW_URL", self.url("case-workflow"))
                .env("REDRESS_ESCALATION_URL", self.url("escalation"))
                .env("REDRESS_KNOWLEDGE_BASE_URL", self.url("knowledge-base"))
                .env("REDRESS_INDEX_DIR", self.dir.path().join("knowledge-base-index"))
                .env("REDRESS_PII__ACTIVE_KEY_ID", "k1")
                .env("REDRESS_PII__MASTER_KEYS__K1", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
                .env("REDRESS_PII__INDEX_KEY", "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=")
                .env("REDRESS_AUDIT__ACTIVE_KEY_ID", "k1")
                .env("REDRESS_AUDIT__KEYS__K1", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
            for (_, caller, allowed) in redress::service_callers().into_iter().filter(|(to, _, _)| *to == service) {
                let setting = format!("REDRESS_AUTH__CALLERS__{}", caller.replace('-', "_").to_uppercase());
                let allowed: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
                command
                    .env(format!("{setting}__PUBLIC_KEY"), &self.public_keys[caller])
                    .env(format!("{setting}__PERMISSIONS"), allowed.join(","));
            }
        }
        self.children.insert(service, command.spawn().unwrap());
    }

    /// SIGKILLs `service` and waits until it is gone.
    pub async fn kill(&mut self, service: &str) {
        let child = self.children.get_mut(service).unwrap();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }

    /// The process id of every service, asserting that each still runs.
    pub fn pids(&mut self) -> BTreeMap<&'static str, u32> {
        let logs = self.logs();
        self.children
            .iter_mut()
            .map(|(service, child)| {
                assert!(child.try_wait().unwrap().is_none(), "{service} stopped by itself:\n{logs}");
                (*service, child.id().unwrap())
            })
            .collect()
    }

    /// Every service's log.
    pub fn logs(&self) -> String {
        SERVED
            .iter()
            .map(|s| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{s}.log"))).unwrap_or_default();
                format!("--- {s}\n{log}")
            })
            .collect()
    }

    /// A channel to the gateway that connects again whenever the gateway is back.
    pub fn gateway(&self) -> Channel {
        Channel::from_shared(self.url(GATEWAY)).unwrap().connect_lazy()
    }

    /// Waits until every service serves and the gateway sees each of them serving.
    pub async fn wait_serving(&self, within: Duration) {
        let started = Instant::now();
        let serving = |channel: Channel, service: &'static str| async move {
            let request = HealthCheckRequest { service: service.to_owned() };
            HealthClient::new(channel).check(request).await.is_ok_and(|r| r.get_ref().status == 1)
        };
        for service in &SERVED[1..] {
            let channel = Channel::from_shared(self.url(service)).unwrap().connect_lazy();
            while !serving(channel.clone(), "").await {
                assert!(started.elapsed() < within, "{service} not serving:\n{}", self.logs());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let gateway = self.gateway();
        for service in [
            redress_proto::services::INTAKE,
            redress_proto::services::CASE,
            redress_proto::services::ESCALATION,
            redress_proto::services::KNOWLEDGE,
            redress_proto::services::METRICS,
        ] {
            while !serving(gateway.clone(), service).await {
                assert!(started.elapsed() < within, "{service} not serving via the gateway:\n{}", self.logs());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Stops every service with SIGTERM and asserts that each drains and exits cleanly.
    pub async fn stop(mut self) {
        for child in self.children.values() {
            let pid = child.id().unwrap();
            Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        }
        let logs = self.logs();
        for (service, mut child) in std::mem::take(&mut self.children) {
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
            assert!(status.success(), "{service} stopped with {status}:\n{logs}");
        }
    }
}

/// The `n`th complaint of a burst: its own complainant and its own facts (`#n#` in them).
pub fn request(prefix: &str, n: usize) -> SubmitComplaintRequest {
    let mut complaint = redress_intake::testing::complaint(&facts(n));
    let (phone, id) = redress_intake::testing::identity(n as u32);
    if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
        *p = NaturalPerson { id_number: id, phone, ..p.clone() };
    }
    SubmitComplaintRequest { request_id: format!("{prefix}-{n}"), complaint: Some(complaint) }
}

fn facts(n: usize) -> String {
    format!("编号#{n}#的信用卡账单中同一笔消费被扣款两次，联系客服后仍未退回。")
}

/// The `n` of the facts [`request`] wrote.
fn facts_number(facts: &str) -> Option<usize> {
    facts.split('#').nth(1)?.parse().ok()
}

/// A burst of submissions through the gateway: `writers` callers at once, each submitting new
/// complaints one after the other, retrying a failed one with the same request id until it is
/// acknowledged. Every failure is counted by code and `ErrorInfo` reason (`-` for none); a call
/// that got no answer at all (UNKNOWN without details: the connection broke) also by the phase
/// it happened in.
pub struct Burst {
    stop: Arc<AtomicBool>,
    pub acknowledged: Arc<Mutex<HashMap<usize, String>>>,
    pub failures: Arc<Mutex<BTreeMap<String, usize>>>,
    phase: Arc<Mutex<String>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Burst {
    pub fn start(channel: Channel, prefix: &'static str, writers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(HashMap::new()));
        let failures = Arc::new(Mutex::new(BTreeMap::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let phase = Arc::new(Mutex::new(String::new()));
        let writers = (0..writers)
            .map(|_| {
                let (channel, stop, next) = (channel.clone(), stop.clone(), next.clone());
                let (acknowledged, failures, phase) = (acknowledged.clone(), failures.clone(), phase.clone());
                tokio::spawn(async move {
                    let mut client = IntakeServiceClient::with_interceptor(channel, Bearer(Some(TOKEN.to_owned())));
                    while !stop.load(Ordering::SeqCst) {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let started = Instant::now();
                        loop {
                            let mut call = tonic::Request::new(request(prefix, n));
                            call.set_timeout(Duration::from_secs(20));
                            match client.submit_complaint(call).await {
                                Ok(r) => {
                                    let name = r.into_inner().complaint.unwrap().name;
                                    acknowledged.lock().unwrap().insert(n, name);
                                    break;
                                }
                                Err(status) => {
                                    let reason = status
                                        .get_error_details()
                                        .error_info()
                                        .map_or_else(|| "-".to_owned(), |i| i.reason.clone());
                                    let mut key = format!("{:?}/{reason}", status.code());
                                    if status.code() == Code::Unknown && reason == "-" {
                                        // No answer from the gateway at all: the connection
                                        // broke mid-call (tonic's "transport error").
                                        key = format!("{key} during {}", phase.lock().unwrap());
                                    }
                                    {
                                        let mut failures = failures.lock().unwrap();
                                        if status.code() != Code::Unavailable && !failures.contains_key(&key) {
                                            eprintln!("{prefix}-{n}: {key}: {}", status.message());
                                        }
                                        *failures.entry(key).or_default() += 1;
                                    }
                                    // Given up only when it cannot get through for a long time.
                                    assert!(
                                        started.elapsed() < Duration::from_secs(120),
                                        "{prefix}-{n} not acknowledged: {status:?}"
                                    );
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Self { stop, acknowledged, failures, phase, writers }
    }

    /// Names what is being done to the suite, for failures that reached no service.
    pub fn set_phase(&self, phase: &str) {
        phase.clone_into(&mut self.phase.lock().unwrap());
    }

    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits until `more` complaints more than now were acknowledged.
    pub async fn wait_for(&self, more: usize, within: Duration, logs: impl Fn() -> String) {
        let target = self.acknowledged_count() + more;
        let started = Instant::now();
        while self.acknowledged_count() < target {
            assert!(
                started.elapsed() < within,
                "the burst stalled at {} acknowledged ({:?}):\n{}",
                self.acknowledged_count(),
                self.failures.lock().unwrap(),
                logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the burst once every writer's complaint in hand is acknowledged; returns every
    /// acknowledged complaint by its number, and the failures seen by code and reason.
    pub async fn finish(self) -> (HashMap<usize, String>, BTreeMap<String, usize>) {
        self.stop.store(true, Ordering::SeqCst);
        for writer in self.writers {
            writer.await.unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().clone();
        (acknowledged, failures)
    }
}

/// Today's date in UTC and the days either side, as a period covering whatever day the
/// institution's time zone is in.
fn around_today() -> Period {
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400;
    let date = |days: u64| {
        // Howard Hinnant's civil_from_days.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    };
    Period { start_date: date(days - 1), end_date: date(days + 1) }
}

/// Checks, through the gateway, that every acknowledged complaint was recorded once and its
/// retry answers with it, that each has exactly one case, that quality metrics counted each
/// once and that no consumer set an event aside; waits up to `within` for the consumers.
pub async fn assert_exactly_once(
    channel: Channel,
    prefix: &'static str,
    acknowledged: &HashMap<usize, String>,
    within: Duration,
    logs: impl Fn() -> String,
) {
    let bearer = || Bearer(Some(TOKEN.to_owned()));
    let mut intake = IntakeServiceClient::with_interceptor(channel.clone(), bearer());

    // Intake holds each acknowledged complaint once, under the name it was acknowledged with,
    // and nothing else.
    let mut recorded: HashMap<usize, Vec<String>> = HashMap::new();
    let mut total = 0;
    let mut page_token = String::new();
    loop {
        let page = ListComplaintsRequest { page_size: 1000, page_token, ..Default::default() };
        let page = intake.list_complaints(page).await.unwrap().into_inner();
        for complaint in page.complaints {
            total += 1;
            let n = facts_number(&complaint.facts).unwrap_or_else(|| panic!("facts: {}", complaint.facts));
            recorded.entry(n).or_default().push(complaint.name);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for (n, name) in acknowledged {
        assert_eq!(recorded.get(n), Some(&vec![name.clone()]), "{prefix}-{n} recorded other than once");
    }
    assert_eq!(total, acknowledged.len(), "intake holds complaints that were never acknowledged");

    // A retry with the same request id answers with the acknowledged complaint (every fourth
    // is tried again here; those that failed were retried during the burst already).
    let retries = acknowledged.iter().filter(|(n, _)| *n % 4 == 0).map(|(n, name)| {
        let mut intake = intake.clone();
        async move {
            let again = intake.submit_complaint(request(prefix, *n)).await.unwrap().into_inner();
            assert_eq!(&again.complaint.unwrap().name, name, "{prefix}-{n}: a retry answered another complaint");
        }
    });
    futures_util::stream::iter(retries).buffer_unordered(16).collect::<Vec<()>>().await;

    // Each has one case, and there are no others; quality metrics counted each complaint once
    // and followed both feeds; no consumer set an event aside.
    let mut cases = CaseServiceClient::with_interceptor(channel.clone(), bearer());
    let mut metrics = QualityMetricsServiceClient::with_interceptor(channel.clone(), bearer());
    let started = Instant::now();
    loop {
        let mut per_complaint: HashMap<String, usize> = HashMap::new();
        let mut page_token = String::new();
        loop {
            let page = ListCasesRequest { page_size: 1000, page_token, ..Default::default() };
            let page = cases.list_cases(page).await.unwrap().into_inner();
            for case in page.cases {
                *per_complaint.entry(case.complaint).or_default() += 1;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let twice: Vec<_> = per_complaint.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "complaints with more than one case: {twice:?}");
        let status = metrics.get_read_model_status(GetReadModelStatusRequest {}).await.unwrap().into_inner();
        let request = GetKpisRequest { org_unit: INSTITUTION.to_owned(), period: Some(around_today()), filter: None };
        let kpis = metrics.get_kpis(request).await.unwrap().into_inner().kpis;
        let kpi = |k: Kpi| kpis.iter().find(|v| v.kpi == k as i32).map_or(0, |v| v.numerator);
        let all_cases = acknowledged.values().all(|name| per_complaint.contains_key(name));
        let counted = status.facts == acknowledged.len() as i64
            && kpi(Kpi::Volume) == acknowledged.len() as i64
            && kpi(Kpi::Backlog) == acknowledged.len() as i64;
        assert!(status.facts <= acknowledged.len() as i64, "quality metrics counted a complaint twice: {status:?}");
        assert!(kpi(Kpi::Volume) <= acknowledged.len() as i64, "received complaints counted twice: {kpis:?}");
        if all_cases && per_complaint.len() == acknowledged.len() && counted {
            assert!(status.consumers.iter().all(|c| c.dead_letters == 0), "{status:?}");
            break;
        }
        assert!(
            started.elapsed() < within,
            "not every acknowledged complaint has its case ({} of {}) or was counted ({status:?}, volume {}, \
             backlog {}):\n{}",
            acknowledged.values().filter(|name| per_complaint.contains_key(*name)).count(),
            acknowledged.len(),
            kpi(Kpi::Volume),
            kpi(Kpi::Backlog),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // No consumer of any service set an event aside as unappliable.
    let dead = ListDeadLettersRequest { page_size: 500, ..Default::default() };
    let mut outstanding = Vec::new();
    let letters =
        CaseEventFeedServiceClient::with_interceptor(channel.clone(), bearer()).list_dead_letters(dead.clone()).await;
    outstanding.extend(letters.unwrap().into_inner().dead_letters);
    let letters = EscalationEventFeedServiceClient::with_interceptor(channel.clone(), bearer())
        .list_dead_letters(dead.clone())
        .await;
    outstanding.extend(letters.unwrap().into_inner().dead_letters);
    let letters = KnowledgeEventFeedServiceClient::with_interceptor(channel.clone(), bearer())
        .list_dead_letters(dead.clone())
        .await;
    outstanding.extend(letters.unwrap().into_inner().dead_letters);
    let letters =
        MetricsEventFeedServiceClient::with_interceptor(channel.clone(), bearer()).list_dead_letters(dead).await;
    outstanding.extend(letters.unwrap().into_inner().dead_letters);
    assert!(outstanding.is_empty(), "dead letters: {outstanding:?}");

    // Escalation matched each complaint at most once: no complaint is a member of its group
    // incidents twice.
    let mut escalation = EscalationServiceClient::with_interceptor(channel, bearer());
    let incidents = escalation
        .list_incidents(ListIncidentsRequest { page_size: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    let mut members: HashMap<String, usize> = HashMap::new();
    for incident in incidents {
        let request = ListIncidentMembersRequest { incident: incident.name, page_size: 1000, ..Default::default() };
        for member in escalation.list_incident_members(request).await.unwrap().into_inner().members {
            *members.entry(member.complaint).or_default() += 1;
        }
    }
    assert!(members.values().all(|n| *n == 1), "a complaint matched twice: {members:?}");
}
