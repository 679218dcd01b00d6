//! Composition of the suite: the embedded mode that runs every service in one process (each on
//! its own loopback port with its own SQLite file), used by `redress dev`, the integration
//! tests and the benchmark.

pub mod memory;
pub mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use redress_case_workflow::{AuditConfig, CaseWorkflow, CaseWorkflowConfig};
pub use redress_case_workflow::{InstitutionWorkflow, WorkflowConfig};
use redress_escalation::{Escalation, EscalationConfig, PiiIndexConfig};
use redress_gateway::{AuthConfig, DevToken, DevTokens, Gateway, GatewayConfig, RateLimits, Upstreams};
use redress_intake::{Intake, IntakeConfig, PiiConfig};
use redress_knowledge_base::{KnowledgeBase, KnowledgeConfig};
use redress_platform::config::Secret;
use redress_platform::db::DatabaseConfig;
use redress_platform::principal::{Permission, Principal, ServiceAuth, ServiceCredentials};
use redress_platform::server::ServerConfig;
use redress_platform::signing::{GATEWAY, PublicKey, SigningKey, Verifier};
use redress_platform::time::Clock;
use redress_quality_metrics::{QualityMetrics, QualityMetricsConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Options of the embedded suite.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    /// Each service keeps its SQLite file here.
    pub data_dir: PathBuf,
    /// Where the gateway listens (`127.0.0.1:0` picks a free port).
    pub gateway_addr: String,
    /// The bearer token accepted by the gateway in development mode (for [`dev_principal`]).
    pub dev_token: String,
    /// More development tokens with the principals they stand for (tests use scoped users).
    pub extra_dev_tokens: Vec<(String, Principal)>,
    /// Year calendar files beside the shipped ones (`calendars_dir` of intake and
    /// case-workflow), and how often they are looked at for changes (milliseconds; `None`:
    /// the services' default).
    pub calendars_dir: Option<PathBuf>,
    pub calendars_poll_interval_ms: Option<u64>,
    /// Each institution's regime, calendar and zone (`regimes` of intake and case-workflow).
    pub regimes: redress_calendar::RegimeConfig,
    /// The clock the services read the time from (the system clock unless a test stands it).
    pub clock: Clock,
    /// How case-workflow works cases (reminders, channel monitors, authority limits); its
    /// defaults unless set.
    pub workflow: Option<WorkflowConfig>,
    /// Whether the knowledge base loads its starter pack when it starts empty (`redress dev`).
    pub starter_content: bool,
    /// Leaves the escalation service out (the benchmark's baseline of intake without it).
    pub without_escalation: bool,
    /// The gateway's request rate limits; `None` turns them off (one developer on one machine).
    pub rate_limits: Option<RateLimits>,
}

impl SuiteOptions {
    /// These options as `configure` changes them.
    pub fn with(mut self, configure: impl FnOnce(&mut Self)) -> Self {
        configure(&mut self);
        self
    }
}

/// The services of the suite allowed to call each service, and the permissions each caller may
/// claim there (the callers' allow-lists): `(service, caller, permissions)`. The deployment
/// configures the same (`auth.callers` of each service; docs/authorization.md).
pub fn service_callers() -> Vec<(&'static str, &'static str, &'static [Permission])> {
    use Permission as P;
    vec![
        ("intake", redress_case_workflow::SERVICE_NAME, &[P::EventsRead]),
        ("intake", redress_escalation::SERVICE_NAME, redress_escalation::INTAKE_PERMISSIONS),
        // SuggestForComplaint reads the named complaint as the caller, with no more than this.
        ("intake", redress_knowledge_base::SERVICE_NAME, &[P::ComplaintsRead]),
        ("intake", redress_quality_metrics::SERVICE_NAME, &[P::EventsRead]),
        ("case-workflow", redress_escalation::SERVICE_NAME, redress_escalation::CASE_PERMISSIONS),
        ("case-workflow", redress_knowledge_base::SERVICE_NAME, &[P::EventsRead]),
        ("case-workflow", redress_quality_metrics::SERVICE_NAME, &[P::EventsRead]),
        // Replies to complainants are linted at the knowledge base (D-KB-3).
        ("knowledge-base", redress_case_workflow::SERVICE_NAME, &[P::KnowledgeRead]),
        ("escalation", redress_quality_metrics::SERVICE_NAME, &[P::EventsRead]),
    ]
}

/// The signers of the suite: the gateway and every service.
pub const SIGNERS: [&str; 6] = [
    GATEWAY,
    redress_intake::SERVICE_NAME,
    redress_case_workflow::SERVICE_NAME,
    redress_escalation::SERVICE_NAME,
    redress_knowledge_base::SERVICE_NAME,
    redress_quality_metrics::SERVICE_NAME,
];

/// The signing keys of the suite, by signer.
pub struct SuiteKeys(std::collections::BTreeMap<&'static str, SigningKey>);

impl SuiteKeys {
    /// The keys in `dir` (`{signer}.pem`, owner-only), each generated and written on first use.
    pub fn in_dir(dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut keys = std::collections::BTreeMap::new();
        for signer in SIGNERS {
            let path = dir.join(format!("{signer}.pem"));
            let key = match std::fs::read_to_string(&path) {
                Ok(text) => SigningKey::from_pem(signer, &text).with_context(|| format!("{}", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = SigningKey::generate(signer);
                    write_private(&path, &key.to_pem())?;
                    key
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
            };
            keys.insert(signer, key);
        }
        Ok(Self(keys))
    }

    fn public(&self, signer: &str) -> anyhow::Result<PublicKey> {
        Ok(self.0.get(signer).with_context(|| format!("no key of {signer}"))?.public_key())
    }

    /// Service `name`'s identity: its key, trusting the gateway and its callers as
    /// [`service_callers`] says.
    pub fn service_auth(&self, name: &str) -> anyhow::Result<ServiceAuth> {
        let mut verifier = Verifier::new(name, Some(self.public(GATEWAY)?));
        for (_, caller, permissions) in service_callers().into_iter().filter(|(to, _, _)| *to == name) {
            verifier = verifier.trust(caller, self.public(caller)?, permissions);
        }
        let key = SigningKey::from_pem(name, &self.0.get(name).with_context(|| format!("no key of {name}"))?.to_pem())?;
        ServiceAuth::new(key, verifier)
    }

    /// The gateway's key.
    pub fn gateway(&self) -> anyhow::Result<SigningKey> {
        SigningKey::from_pem(GATEWAY, &self.0.get(GATEWAY).context("no gateway key")?.to_pem())
    }
}

/// Writes a new file readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The principal behind the development token: every permission, over the whole platform.
pub fn dev_principal() -> Principal {
    Principal {
        subject: "dev".to_owned(),
        roles: vec!["admin".to_owned()],
        org_unit: redress_platform::principal::ROOT_ORG_UNIT.to_owned(),
        department: String::new(),
        permissions: Permission::ALL.iter().map(|p| p.as_str().to_owned()).collect(),
        staff_id: String::new(),
    }
}

/// A fresh random development token.
pub fn random_dev_token() -> String {
    format!("dev-{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A running embedded suite.
pub struct Suite {
    pub gateway_addr: SocketAddr,
    pub intake_addr: SocketAddr,
    pub case_workflow_addr: SocketAddr,
    /// Where the escalation service listens (the discard port of loopback, where nothing
    /// listens, when the suite runs without it).
    pub escalation_addr: SocketAddr,
    pub knowledge_base_addr: SocketAddr,
    pub quality_metrics_addr: SocketAddr,
    /// The gateway's key, for calling a service directly as the gateway would.
    gateway_key: std::sync::Arc<SigningKey>,
    tasks: JoinSet<anyhow::Result<()>>,
    shutdown: CancellationToken,
}

fn loopback() -> ServerConfig {
    ServerConfig { listen_addr: "127.0.0.1:0".to_owned(), ..ServerConfig::default() }
}

/// The development data directory's personal-information keys (`pii-keys`, owner-only),
/// generated on first start: without the same keys the data is unreadable after a restart.
fn dev_pii_keys(dir: &std::path::Path) -> anyhow::Result<PiiConfig> {
    let path = dir.join("pii-keys");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut config = PiiConfig::default();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let (key, value) =
                    line.split_once('=').with_context(|| format!("malformed line in {}", path.display()))?;
                match key.trim() {
                    "active_key_id" => config.active_key_id = value.trim().to_owned(),
                    "index_key" => config.index_key = Secret::new(value.trim()),
                    other => {
                        let id = other
                            .strip_prefix("master_key.")
                            .with_context(|| format!("unknown entry {other:?} in {}", path.display()))?;
                        config.master_keys.insert(id.to_owned(), Secret::new(value.trim()));
                    }
                }
            }
            Ok(config)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let config = PiiConfig::generate();
            let mut text = format!("active_key_id={}\nindex_key={}\n", config.active_key_id, config.index_key.expose());
            for (id, key) in &config.master_keys {
                text.push_str(&format!("master_key.{id}={}\n", key.expose()));
            }
            write_private(&path, &text)?;
            Ok(config)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

/// The development data directory's audit-trail keys (`audit-keys`, owner-only), generated on
/// first start: the case trails are chained under them, so they stay with the data.
fn dev_audit_keys(dir: &std::path::Path) -> anyhow::Result<AuditConfig> {
    let path = dir.join("audit-keys");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut config = AuditConfig::default();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let (key, value) =
                    line.split_once('=').with_context(|| format!("malformed line in {}", path.display()))?;
                match key.trim() {
                    "active_key_id" => config.active_key_id = value.trim().to_owned(),
                    other => {
                        let id = other
                            .strip_prefix("key.")
                            .with_context(|| format!("unknown entry {other:?} in {}", path.display()))?;
                        config.keys.insert(id.to_owned(), Secret::new(value.trim()));
                    }
                }
            }
            Ok(config)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let config = AuditConfig::generate();
            let mut text = format!("active_key_id={}\n", config.active_key_id);
            for (id, key) in &config.keys {
                text.push_str(&format!("key.{id}={}\n", key.expose()));
            }
            write_private(&path, &text)?;
            Ok(config)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

fn sqlite(dir: &std::path::Path, name: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        max_connections: 8,
        ..Default::default()
    }
}

impl Suite {
    /// Binds every service and starts them; they report SERVING once their stores are ready.
    pub async fn start(options: SuiteOptions, shutdown: CancellationToken) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("cannot create data dir {}", options.data_dir.display()))?;
        // The development keys live with the data (loopback only; `keys/`, owner-only).
        let keys = SuiteKeys::in_dir(&options.data_dir.join("keys"))?;
        let calendars_dir = options.calendars_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
        let intake_defaults = IntakeConfig::default();
        let intake = Intake::build(
            IntakeConfig {
                server: loopback(),
                database: sqlite(&options.data_dir, "intake"),
                pii: dev_pii_keys(&options.data_dir)?,
                calendars_dir: calendars_dir.clone(),
                regimes: options.regimes.clone(),
                calendars_poll_interval_ms: options
                    .calendars_poll_interval_ms
                    .unwrap_or(intake_defaults.calendars_poll_interval_ms),
                ..intake_defaults
            },
            keys.service_auth(redress_intake::SERVICE_NAME)?,
            shutdown.clone(),
        )
        .await?
        .with_clock(options.clock.clone());
        let intake_addr = intake.local_addr();
        let case_defaults = CaseWorkflowConfig::default();
        let case_workflow = CaseWorkflow::build(
            CaseWorkflowConfig {
                server: loopback(),
                database: sqlite(&options.data_dir, "case-workflow"),
                intake_url: format!("http://{intake_addr}"),
                calendars_dir,
                regimes: options.regimes.clone(),
                calendars_poll_interval_ms: options
                    .calendars_poll_interval_ms
                    .unwrap_or(case_defaults.calendars_poll_interval_ms),
                workflow: options.workflow.clone().unwrap_or_default(),
                audit: dev_audit_keys(&options.data_dir)?,
                ..case_defaults
            },
            keys.service_auth(redress_case_workflow::SERVICE_NAME)?,
            shutdown.clone(),
        )
        .await?
        .with_clock(options.clock.clone());
        let case_workflow_addr = case_workflow.local_addr();
        let escalation = if options.without_escalation {
            None
        } else {
            let escalation = Escalation::build(
                EscalationConfig {
                    server: loopback(),
                    database: sqlite(&options.data_dir, "escalation"),
                    intake_url: format!("http://{intake_addr}"),
                    case_workflow_url: format!("http://{case_workflow_addr}"),
                    // Intake's own blind-index key, so the VIP register meets complainants on the
                    // digests intake keeps.
                    pii: PiiIndexConfig { index_key: dev_pii_keys(&options.data_dir)?.index_key },
                    ..EscalationConfig::default()
                },
                keys.service_auth(redress_escalation::SERVICE_NAME)?,
                shutdown.clone(),
            )
            .await?
            .with_clock(options.clock.clone());
            Some(escalation)
        };
        let escalation_addr =
            escalation.as_ref().map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)), Escalation::local_addr);
        let knowledge_base = KnowledgeBase::build(
            KnowledgeConfig {
                server: loopback(),
                database: sqlite(&options.data_dir, "knowledge-base"),
                index_dir: options.data_dir.join("knowledge-base-index").display().to_string(),
                intake_url: format!("http://{intake_addr}"),
                case_workflow_url: format!("http://{case_workflow_addr}"),
                starter_content: options.starter_content,
                ..KnowledgeConfig::default()
            },
            keys.service_auth(redress_knowledge_base::SERVICE_NAME)?,
            shutdown.clone(),
        )
        .await?;
        let knowledge_base_addr = knowledge_base.local_addr();
        // Case-workflow lints replies to complainants at the knowledge base, which is bound only
        // now: it follows case-workflow's feed, so it needs case-workflow's address first.
        let case_workflow = case_workflow.with_knowledge_base_url(format!("http://{knowledge_base_addr}"));
        let quality_metrics = QualityMetrics::build(
            QualityMetricsConfig {
                server: loopback(),
                database: DatabaseConfig {
                    cache_mib: redress_quality_metrics::SQLITE_CACHE_MIB,
                    ..sqlite(&options.data_dir, "quality-metrics")
                },
                intake_url: format!("http://{intake_addr}"),
                case_workflow_url: format!("http://{case_workflow_addr}"),
                escalation_url: format!("http://{escalation_addr}"),
                calendars_dir: options.calendars_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
                regimes: options.regimes.clone(),
                ..QualityMetricsConfig::default()
            },
            keys.service_auth(redress_quality_metrics::SERVICE_NAME)?,
            shutdown.clone(),
        )
        .await?
        .with_clock(options.clock.clone());
        let quality_metrics_addr = quality_metrics.local_addr();
        let gateway_key = keys.gateway()?;
        let gateway = Gateway::build(
            GatewayConfig {
                server: ServerConfig { listen_addr: options.gateway_addr.clone(), ..ServerConfig::default() },
                upstreams: Upstreams {
                    intake: format!("http://{intake_addr}"),
                    case_workflow: format!("http://{case_workflow_addr}"),
                    knowledge_base: format!("http://{knowledge_base_addr}"),
                    escalation: format!("http://{escalation_addr}"),
                    quality_metrics: format!("http://{quality_metrics_addr}"),
                },
                auth: AuthConfig {
                    dev_tokens: std::iter::once((options.dev_token.clone(), dev_principal()))
                        .chain(options.extra_dev_tokens.iter().cloned())
                        .map(|(token, principal)| DevToken { token: Secret::new(token), principal })
                        .collect(),
                    ..AuthConfig::default()
                },
                // One developer (or the benchmark) on one machine: no request rate limits unless asked.
                rate_limits: options.rate_limits.clone().unwrap_or_else(RateLimits::off),
                // Pages served from anywhere on the developer's machine may call it.
                cors_allowed_origins: vec!["*".to_owned()],
                ..GatewayConfig::default()
            },
            gateway_key,
            DevTokens::Allowed,
            shutdown.clone(),
        )
        .await?;
        let gateway_addr = gateway.local_addr();
        let gateway_key = std::sync::Arc::new(keys.gateway()?);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move { intake.run_until_stopped().await.context("intake") });
        tasks.spawn(async move { case_workflow.run_until_stopped().await.context("case-workflow") });
        if let Some(escalation) = escalation {
            tasks.spawn(async move { escalation.run_until_stopped().await.context("escalation") });
        }
        tasks.spawn(async move { knowledge_base.run_until_stopped().await.context("knowledge-base") });
        tasks.spawn(async move { quality_metrics.run_until_stopped().await.context("quality-metrics") });
        tasks.spawn(async move { gateway.run_until_stopped().await.context("gateway") });
        Ok(Self {
            gateway_addr,
            intake_addr,
            case_workflow_addr,
            escalation_addr,
            knowledge_base_addr,
            quality_metrics_addr,
            gateway_key,
            tasks,
            shutdown,
        })
    }

    /// Credentials signing `principal` for calls straight to `audience` (a service's name), as
    /// the gateway would sign them (benchmarks, diagnostics).
    pub fn gateway_credentials(&self, principal: Principal, audience: &str) -> ServiceCredentials {
        ServiceCredentials::new(self.gateway_key.clone(), principal, audience)
    }

    /// Waits until every service has stopped (after shutdown), or the first one fails; a
    /// failure stops the others.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                if !self.shutdown.is_cancelled() {
                    tracing::error!(error = format!("{e:#}"), "a service failed; stopping the suite");
                    self.shutdown.cancel();
                }
                first_error.get_or_insert(e);
            } else if !self.shutdown.is_cancelled() {
                self.shutdown.cancel();
                first_error.get_or_insert(anyhow::anyhow!("a service stopped unexpectedly"));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stops every service and waits for them to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}
