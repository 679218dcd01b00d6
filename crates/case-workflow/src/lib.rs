//! Case-workflow: carries every accepted complaint as a case from acceptance to closure
//! (D-CASE, D-SLA). It follows intake's event feed and opens one case per accepted complaint,
//! storing its feed position with the case so nothing is lost or opened twice.

pub mod api;
pub mod calendars;
pub mod domain;
pub mod error;
pub mod lint;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::FutureExt;
use redress_calendar::{Period, RegimeConfig, SlaPolicy};
use redress_platform::bounded_service;
use redress_platform::config::Secret;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::events::{EventSink, RetentionConfig, grpc_subscription, run_consumer, spawn_retention};
use redress_platform::host::{Host, Supervisor};
use redress_platform::principal::{Permission, Principal, ServiceAuth};
use redress_platform::ready::Ready;
use redress_platform::server::ServerConfig;
use redress_platform::signing::ServiceAuthConfig;
use redress_platform::telemetry::TelemetryConfig;
use redress_proto::redress::case::v1::case_event_feed_service_server::CaseEventFeedServiceServer;
use redress_proto::redress::case::v1::case_service_server::CaseServiceServer;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::CaseApi;
pub use calendars::{CalendarSource, LiveRules};
pub use domain::audit::AuditKeys;
pub use domain::clock::Clocks;
pub use domain::routing::RoutingRules;
pub use domain::workflow::{Progress, Rules};
pub use error::CaseError;
pub use store::CaseStore;

/// gRPC services case-workflow serves (and reports health for).
pub const SERVICES: &[&str] = &[services::CASE, services::CASE_EVENTS];
/// The identity case-workflow uses towards other services.
pub const SERVICE_NAME: &str = "case-workflow";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseWorkflowConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// How calls to the service are authenticated and its own calls signed: its Ed25519 key,
    /// the gateway's public key, and the services allowed to call it with the permissions each
    /// may claim (docs/authorization.md).
    pub auth: ServiceAuthConfig,
    pub telemetry: TelemetryConfig,
    /// Where intake's event feed is served, e.g. `http://redress-intake:50051`.
    pub intake_url: String,
    /// Where the knowledge base serves, e.g. `http://redress-knowledge-base:50051`: first
    /// responses and decision notices are linted there (D-KB-3). Empty: replies are recorded as
    /// not linted.
    pub knowledge_base_url: String,
    /// How replies are linted: the knowledge base's time to answer, and how often replies it
    /// could not lint are tried again.
    pub reply_lint: lint::ReplyLintConfig,
    /// IANA zone the institution counts its days in.
    pub time_zone: String,
    /// Directory of extra or replacement year calendars (`*.toml`); empty for the shipped ones.
    pub calendars_dir: String,
    /// How often `calendars_dir` is looked at for new or changed year files, in milliseconds
    /// (0: only `ReloadCalendars` reloads them).
    pub calendars_poll_interval_ms: u64,
    pub sla: SlaPolicy,
    /// Which regime, calendar and zone each institution counts on (D-SLA-10); `time_zone`,
    /// `sla` and `calendars_dir` configure the default regime.
    pub regimes: RegimeConfig,
    pub workflow: WorkflowConfig,
    /// How long events stay on the feed and request ids are remembered.
    pub retention: RetentionConfig,
    /// The keys audit trails are chained under (required).
    pub audit: AuditConfig,
}

/// Keys of the audit trails' HMAC-SHA256 chains (D-CASE-2), kept outside the database so that
/// someone who can write the database cannot rebuild a trail that verifies. Keys are base64 of
/// at least 32 bytes, by key id; `active_key_id` chains new entries, and older ids stay
/// configured to verify the entries chained under them (rotation).
///
/// `rechain_legacy` is the one-time migration of trails written before keying or before heads
/// were sealed: when set, opening the store chains unkeyed entries again under the active key
/// (only while no entry anywhere is keyed yet) and seals unsealed heads, wherever the trail
/// still verifies as stored. The database cannot be trusted to say whether that is needed, so
/// it is never done unless set; set it for one start after upgrading, then remove it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    pub active_key_id: String,
    pub keys: BTreeMap<String, Secret>,
    pub rechain_legacy: bool,
}

impl AuditConfig {
    /// A random key (for a new development data directory).
    pub fn generate() -> Self {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        Self {
            active_key_id: "k1".to_owned(),
            keys: BTreeMap::from([("k1".to_owned(), Secret::new(key))]),
            rechain_legacy: false,
        }
    }

    pub fn keys(&self) -> anyhow::Result<AuditKeys> {
        use base64::Engine;
        anyhow::ensure!(
            !self.active_key_id.is_empty() && !self.keys.is_empty(),
            "audit.active_key_id and audit.keys are required: the audit trails are chained under a key kept \
             outside the database (REDRESS_AUDIT__ACTIVE_KEY_ID, REDRESS_AUDIT__KEYS__<id>=<base64 of 32 bytes>)"
        );
        let mut keys = Vec::with_capacity(self.keys.len());
        for (id, secret) in &self.keys {
            let key = base64::engine::general_purpose::STANDARD
                .decode(secret.expose().trim())
                .with_context(|| format!("audit.keys.{id} is not base64"))?;
            keys.push((id.clone(), key));
        }
        Ok(AuditKeys::new(&self.active_key_id, &keys).context("audit.keys")?.rechaining_legacy(self.rechain_legacy))
    }
}

/// How cases are worked: handoffs, reminders, authority limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowConfig {
    /// Working days a receiving department has to assign a transferred case.
    pub handoff_working_days: u32,
    /// Share of a clock's span (percent) after which the owner is reminded.
    pub at_risk_percent: u8,
    /// How often the deadline sweeper looks for reminders to raise, in milliseconds.
    pub sweep_interval_ms: u64,
    /// Highest compensation in minor units (fen) each role may grant without approval.
    pub authority_limits: HashMap<String, i64>,
    /// A file of sensitive-complaint routing rules (D-CASE-9) in the format of the shipped
    /// `data/routing.toml`, which it replaces; empty for the shipped rules.
    pub routing_rules_file: String,
    /// Working days an open case may go without contact with the complainant before its owner
    /// is reminded (D-CASE-8), counted on the institution's calendar.
    pub no_contact_working_days: u32,
    /// Minutes a case may stay unassigned after opening before its channel's monitor is told
    /// (D-INT-5).
    pub unassigned_reminder_minutes: u32,
    /// Who monitors each channel, by channel name (`CHANNEL_PHONE = ["user:hotline-lead"]`),
    /// and `default` for the channels not listed; `{org_unit}` in a recipient is the case's
    /// unit. A channel neither listed nor covered by `default` goes to the unit's supervisor.
    pub channel_monitors: BTreeMap<String, Vec<String>>,
    /// Settings of single institutions, by institution (`institutions/{id}` or just `{id}`).
    pub institutions: BTreeMap<String, InstitutionWorkflow>,
}

/// How one institution's cases are worked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstitutionWorkflow {
    /// Refuse a first response or decision notice in which the reply lint finds a banned phrase
    /// (FAILED_PRECONDITION `REPLY_BLOCKED`, nothing recorded); off: the reply is recorded with
    /// its findings. A reply the knowledge base cannot lint is never refused.
    pub block_banned_phrases: bool,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            handoff_working_days: 1,
            at_risk_percent: 80,
            sweep_interval_ms: 1000,
            authority_limits: HashMap::from([
                ("handler".to_owned(), 100_000),
                ("supervisor".to_owned(), 1_000_000),
                ("department_head".to_owned(), 10_000_000),
                ("senior_manager".to_owned(), 100_000_000),
                ("admin".to_owned(), 100_000_000),
            ]),
            routing_rules_file: String::new(),
            no_contact_working_days: 5,
            // An hour: every grade's first-response target but major's is longer, and a major
            // case is escalated at once and has its at-risk reminder within the hour anyway.
            unassigned_reminder_minutes: 60,
            channel_monitors: domain::workflow::default_channel_monitors(),
            institutions: BTreeMap::new(),
        }
    }
}

impl CaseWorkflowConfig {
    /// The workflow's rules: calendar, SLA policy, reminders and authority limits.
    pub fn rules(&self) -> anyhow::Result<Rules> {
        let institutions = self.regimes.resolve(&self.time_zone, &self.calendars_dir, &self.sla)?;
        let default_zone = institutions.default_regime().calculator().time_zone();
        tracing::info!(years = ?institutions.official_years(), time_zone = %default_zone, "working-day calendars loaded");
        anyhow::ensure!(self.workflow.handoff_working_days > 0, "workflow.handoff_working_days must be at least 1");
        anyhow::ensure!(self.workflow.at_risk_percent <= 100, "workflow.at_risk_percent must be at most 100");
        Ok(Rules {
            clocks: Clocks {
                institutions: Arc::new(institutions),
                handoff: Period::WorkingDays(self.workflow.handoff_working_days),
                at_risk_percent: self.workflow.at_risk_percent,
            },
            authority_limits: self.workflow.authority_limits.clone(),
            routing: Arc::new(self.routing_rules()?),
            progress: self.workflow.progress()?,
            replies: self.workflow.replies()?,
            audit: Arc::new(self.audit.keys()?),
        })
    }

    /// The routing rules: the configured file's, or the shipped ones.
    fn routing_rules(&self) -> anyhow::Result<RoutingRules> {
        let path = &self.workflow.routing_rules_file;
        let rules = if path.is_empty() {
            RoutingRules::parse("data/routing.toml", domain::routing::SHIPPED)?
        } else {
            let text = std::fs::read_to_string(path).with_context(|| format!("workflow.routing_rules_file: {path}"))?;
            RoutingRules::parse(path, &text).context("workflow.routing_rules_file")?
        };
        tracing::info!(version = %rules.version, rules = rules.rules.len(), "routing rules loaded");
        Ok(rules)
    }
}

impl WorkflowConfig {
    /// Which institutions refuse replies with banned phrases (D-KB-3).
    fn replies(&self) -> anyhow::Result<domain::workflow::ReplyRules> {
        let mut blocking = std::collections::BTreeSet::new();
        for (key, institution) in &self.institutions {
            let name = if key.contains('/') { key.clone() } else { format!("institutions/{key}") };
            let unit = redress_platform::names::OrgUnit::try_from_str(&name)
                .map_err(|e| anyhow::anyhow!("workflow.institutions.{key}: {e}"))?;
            anyhow::ensure!(unit.is_institution(), "workflow.institutions.{key}: must name an institution");
            if institution.block_banned_phrases {
                blocking.insert(unit.into_string());
            }
        }
        Ok(domain::workflow::ReplyRules { blocking_institutions: blocking })
    }

    /// How progress to the complainant is watched (D-CASE-8, D-INT-5).
    fn progress(&self) -> anyhow::Result<Progress> {
        anyhow::ensure!(
            (1..=365).contains(&self.no_contact_working_days),
            "workflow.no_contact_working_days must be 1 to 365"
        );
        anyhow::ensure!(
            self.unassigned_reminder_minutes > 0,
            "workflow.unassigned_reminder_minutes must be at least 1"
        );
        Progress::check_monitors(&self.channel_monitors)
            .map_err(|e| anyhow::anyhow!("workflow.channel_monitors: {e}"))?;
        Ok(Progress {
            no_contact: Period::WorkingDays(self.no_contact_working_days),
            unassigned_after: chrono::TimeDelta::minutes(i64::from(self.unassigned_reminder_minutes)),
            channel_monitors: self.channel_monitors.clone(),
        })
    }
}

impl CaseWorkflowConfig {
    /// Where the working-day calendars are read from, again on every reload.
    pub fn calendar_source(&self) -> CalendarSource {
        CalendarSource {
            regimes: self.regimes.clone(),
            time_zone: self.time_zone.clone(),
            calendars_dir: self.calendars_dir.clone(),
            sla: self.sla.clone(),
        }
    }
}

impl Default for CaseWorkflowConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig { url: "sqlite://data/case-workflow.db".to_owned(), ..DatabaseConfig::default() },
            auth: ServiceAuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            intake_url: "http://127.0.0.1:50052".to_owned(),
            knowledge_base_url: String::new(),
            reply_lint: lint::ReplyLintConfig::default(),
            time_zone: "Asia/Shanghai".to_owned(),
            calendars_dir: String::new(),
            calendars_poll_interval_ms: 60_000,
            sla: SlaPolicy::default(),
            regimes: RegimeConfig::default(),
            workflow: WorkflowConfig::default(),
            retention: RetentionConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

/// Opens (and migrates) the store the URL names; `supervisor` runs its background work.
pub async fn open_store(
    config: &DatabaseConfig,
    rules: impl Into<LiveRules>,
    supervisor: &Supervisor,
) -> anyhow::Result<Arc<dyn CaseStore>> {
    let rules = rules.into();
    let store: Arc<dyn CaseStore> = match Backend::of(&config.url)? {
        Backend::Sqlite => {
            let db = redress_platform::db::connect_sqlite(config, supervisor).await?;
            Arc::new(store::SqliteCaseStore::open(db, rules).await?)
        }
        Backend::Postgres => {
            let pool = redress_platform::db::connect_postgres(config).await?;
            Arc::new(store::PostgresCaseStore::open(pool, rules, supervisor).await?)
        }
    };
    // Trails written before they were keyed, or before their heads were sealed, are chained
    // and sealed under the key before anything is served, only when the operator asks for it.
    if !store.rules().current().audit.rechains_legacy() {
        return Ok(store);
    }
    let keyed = store.key_unkeyed_trails().await.context("chaining audit trails under the audit key")?;
    tracing::warn!(
        rechained = keyed.rechained,
        sealed = keyed.sealed,
        broken = keyed.broken.len(),
        "audit.rechain_legacy is set: audit trails written before keying were chained and sealed under the \
         audit key; remove the setting now, while it is set, a trail rewritten in the database could be sealed"
    );
    if !keyed.broken.is_empty() {
        metrics::counter!("redress_audit_chain_broken_total").increment(keyed.broken.len() as u64);
    }
    Ok(store)
}

/// Raises deadline reminders until `shutdown` (D-SLA-7). Each case's reminders commit with
/// their events, so stopping or killing it at any point neither loses nor repeats one.
pub async fn run_sweeper(store: Arc<dyn CaseStore>, interval: Duration, shutdown: CancellationToken) {
    const BATCH: i64 = 500;
    loop {
        let swept = match store.sweep(store.rules().now(), BATCH).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "deadline sweep failed; retrying");
                0
            }
        };
        // A full batch means more may be due: go on at once.
        if swept < BATCH as usize {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        } else if shutdown.is_cancelled() {
            return;
        }
    }
}

pub struct CaseWorkflow {
    host: Host,
    config: CaseWorkflowConfig,
    api: CaseApi,
    store: Ready<Arc<dyn CaseStore>>,
    rules: LiveRules,
    auth: ServiceAuth,
}

impl CaseWorkflow {
    pub async fn build(
        config: CaseWorkflowConfig,
        auth: ServiceAuth,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let host = Host::bind(SERVICE_NAME, &config.server, SERVICES, shutdown).await?;
        let rules = LiveRules::new(config.rules()?);
        let store = Ready::new();
        let api = CaseApi::new(store.clone(), host.shutdown()).with_calendars(config.calendar_source());
        Ok(Self { host, config, api, store, rules, auth })
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(self, clock: redress_platform::time::Clock) -> Self {
        Self { rules: self.rules.with_clock(clock), ..self }
    }

    /// Lints replies at the knowledge base serving at `url` (for a suite whose knowledge base
    /// is bound after case-workflow, as it follows case-workflow's feed).
    pub fn with_knowledge_base_url(mut self, url: String) -> Self {
        self.config.knowledge_base_url = url;
        self
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { host, config, api, store, rules, auth } = self;
        let me = Principal::service(SERVICE_NAME, &[Permission::EventsRead]);
        let to_knowledge_base =
            auth.credentials(Principal::service(SERVICE_NAME, &[Permission::KnowledgeRead]), "knowledge-base");
        let tls = host.tls_for_calls();
        let linter = lint::ReplyLinter::new(
            &config.knowledge_base_url,
            to_knowledge_base,
            config.reply_lint.clone(),
            tls.as_ref(),
        )
        .context("knowledge_base_url")?;
        if !linter.is_configured() {
            tracing::warn!("knowledge_base_url is not configured: replies to complainants are recorded as not linted");
        }
        let api = api.with_linter(linter.clone());
        let routes = Routes::new(bounded_service!(CaseServiceServer, api.clone(), auth.interceptor(), config.server))
            .add_service(bounded_service!(CaseEventFeedServiceServer, api, auth.interceptor(), config.server));
        let subscribe = grpc_subscription(
            &config.intake_url,
            services::INTAKE_EVENTS,
            auth.credentials(me, "intake"),
            tls.as_ref(),
        )
        .context("intake_url")?;
        let (supervisor, published) = (host.supervisor().clone(), host.publishes());
        let init = async {
            tracing::info!(database = %config.database, "opening case store");
            let opened = open_store(&config.database, rules.clone(), &supervisor).await?;
            store.set(opened.clone());
            published.set(opened.feed().clone());
            let stop = supervisor.stopping();
            let interval = Duration::from_millis(config.workflow.sweep_interval_ms.max(10));
            supervisor.spawn("sweeper", run_sweeper(opened.clone(), interval, stop.clone()).map(Ok));
            // Cases whose clocks a year file dropped in while the service was down would move.
            calendars::reload(&config.calendar_source(), opened.as_ref()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if config.calendars_poll_interval_ms > 0 {
                let poll = Duration::from_millis(config.calendars_poll_interval_ms);
                supervisor.spawn(
                    "calendar-watcher",
                    calendars::watch(config.calendar_source(), opened.clone(), poll, stop.clone()),
                );
            }
            let sink: Arc<dyn EventSink> = opened.clone();
            supervisor.spawn(
                "consumer<-intake",
                run_consumer("case-workflow<-intake", subscribe, sink, stop.clone()).map(Ok),
            );
            let pruned = opened.clone();
            let prune_requests = move |before| {
                let store = pruned.clone();
                async move { store.prune_requests(before).await }
            };
            spawn_retention(&supervisor, opened.feed().clone(), config.retention.clone(), prune_requests);
            if linter.is_configured() {
                let interval = Duration::from_millis(config.reply_lint.retry_interval_ms.max(10));
                let relinter = lint::run_relinter(opened.clone(), linter, interval, stop.clone());
                supervisor.spawn("relinter", relinter.map(Ok));
            }
            tracing::info!(
                intake = %config.intake_url,
                knowledge_base = %config.knowledge_base_url,
                "case-workflow ready; following intake events"
            );
            Ok(())
        };
        host.run(routes, init).await
    }
}
