//! Escalation: special complaints and the escalation ladder (D-ESC). It follows intake's and
//! case-workflow's feeds, owns incidents (group, media, VIP, malicious) with their working
//! groups, timelines and one approved statement, raises alerts and climbs the ladder, and acts
//! on cases only through CaseService as its own service principal. It publishes its own feed.

pub mod api;
pub mod cases;
pub mod domain;
pub mod error;
pub mod matcher;
pub mod rules;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::FutureExt;
use redress_platform::blind_index::BlindIndexKey;
use redress_platform::bounded_service;
use redress_platform::config::Secret;
use redress_platform::db::DatabaseConfig;
use redress_platform::events::{EventSink, RetentionConfig, grpc_subscription, run_consumer, spawn_retention};
use redress_platform::host::Host;
use redress_platform::principal::{Permission, Principal, ROOT_ORG_UNIT, ServiceAuth};
use redress_platform::ready::Ready;
use redress_platform::server::ServerConfig;
use redress_platform::signing::ServiceAuthConfig;
use redress_platform::telemetry::TelemetryConfig;
use redress_platform::time::Clock;
use redress_proto::redress::escalation::v1::escalation_event_feed_service_server::EscalationEventFeedServiceServer;
use redress_proto::redress::escalation::v1::escalation_service_server::EscalationServiceServer;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::EscalationApi;
pub use error::EscalationError;
pub use rules::Rules;
pub use store::{CASE_CONSUMER, EscalationStore, FeedSink, INTAKE_CONSUMER};

/// gRPC services the escalation service serves (and reports health for).
pub const SERVICES: &[&str] = &[services::ESCALATION, services::ESCALATION_EVENTS];
/// The identity the escalation service uses towards other services.
pub const SERVICE_NAME: &str = "escalation";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EscalationConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// How calls to the service are authenticated and its own calls signed: its Ed25519 key,
    /// the gateway's public key, and the services allowed to call it with the permissions each
    /// may claim (docs/authorization.md).
    pub auth: ServiceAuthConfig,
    pub telemetry: TelemetryConfig,
    pub retention: RetentionConfig,
    /// Where intake serves its feed, e.g. `http://redress-intake:50051`.
    pub intake_url: String,
    /// Where case-workflow serves CaseService and its feed.
    pub case_workflow_url: String,
    /// Roles that approve a statement (统一口径).
    pub statement_approver_roles: Vec<String>,
    /// How often the ladder's timers and crisis stages are looked at, in milliseconds.
    pub sweep_interval_ms: u64,
    /// How often recorded requests to CaseService are carried out, in milliseconds.
    pub case_requests_interval_ms: u64,
    /// How often complaints waiting to be matched are looked for, in milliseconds.
    pub match_interval_ms: u64,
    /// When similar complaints become a group incident.
    pub grouping: domain::grouping::GroupingConfig,
    /// The blind-index key (`pii.index_key`, base64), the one intake keeps, so the VIP
    /// register meets complainants on the same digests; without it there is no register.
    pub pii: PiiIndexConfig,
    /// Where a VIP's complaint goes (D-ESC-4).
    pub vip: domain::vip::VipRouting,
    /// Where an approved malicious-complaint flag is referred (D-ESC-5).
    pub legal: domain::malicious::LegalReferral,
}

/// The part of the personal-information keys the escalation service needs: the blind-index
/// key, configured as intake's (`REDRESS_PII__INDEX_KEY`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PiiIndexConfig {
    pub index_key: Secret,
}

impl PiiIndexConfig {
    /// The key, or `None` when it is not configured.
    pub fn key(&self) -> anyhow::Result<Option<BlindIndexKey>> {
        if self.index_key.is_empty() {
            return Ok(None);
        }
        BlindIndexKey::from_base64(self.index_key.expose()).context("pii.index_key").map(Some)
    }
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig { url: "sqlite://data/escalation.db".to_owned(), ..DatabaseConfig::default() },
            auth: ServiceAuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            retention: RetentionConfig::default(),
            intake_url: "http://127.0.0.1:50052".to_owned(),
            case_workflow_url: "http://127.0.0.1:50053".to_owned(),
            statement_approver_roles: vec![
                "senior_manager".to_owned(),
                "department_head".to_owned(),
                "pr_lead".to_owned(),
                "admin".to_owned(),
            ],
            sweep_interval_ms: 1000,
            case_requests_interval_ms: 200,
            match_interval_ms: 100,
            grouping: domain::grouping::GroupingConfig::default(),
            pii: PiiIndexConfig::default(),
            vip: domain::vip::VipRouting::default(),
            legal: domain::malicious::LegalReferral::default(),
        }
    }
}

impl EscalationConfig {
    pub fn rules(&self) -> anyhow::Result<Rules> {
        anyhow::ensure!(!self.statement_approver_roles.is_empty(), "statement_approver_roles: at least one role");
        let mut rules = Rules::with(self.statement_approver_roles.clone(), self.grouping.clone())?;
        rules.vip = self.vip.clone();
        rules.legal = self.legal.clone();
        Ok(rules)
    }
}

/// What the service claims at intake: its feed, and complaints to match, in clear only to
/// digest a complainant's identifiers against a VIP register.
pub const INTAKE_PERMISSIONS: &[Permission] =
    &[Permission::EventsRead, Permission::ComplaintsRead, Permission::PiiRead];
/// What the service claims at case-workflow: its feed, and cases to work, never more than
/// CaseService allows any caller.
pub const CASE_PERMISSIONS: &[Permission] = &[Permission::EventsRead, Permission::CasesRead, Permission::CasesWrite];

/// The principal the service acts as, holding `permissions`, over every unit.
pub fn service_principal(permissions: &[Permission]) -> Principal {
    Principal { org_unit: ROOT_ORG_UNIT.to_owned(), ..Principal::service(SERVICE_NAME, permissions) }
}

pub struct Escalation {
    host: Host,
    config: EscalationConfig,
    api: EscalationApi,
    store: Ready<Arc<EscalationStore>>,
    rules: Arc<Rules>,
    clock: Clock,
    auth: ServiceAuth,
}

impl Escalation {
    pub async fn build(
        config: EscalationConfig,
        auth: ServiceAuth,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let host = Host::bind(SERVICE_NAME, &config.server, SERVICES, shutdown).await?;
        let rules = Arc::new(config.rules()?);
        let store = Ready::new();
        let api = EscalationApi::new(store.clone(), host.shutdown()).with_index_key(config.pii.key()?);
        Ok(Self { host, config, api, store, rules, clock: Clock::system(), auth })
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { host, config, api, store, rules, clock, auth } = self;
        let routes =
            Routes::new(bounded_service!(EscalationServiceServer, api.clone(), auth.interceptor(), config.server))
                .add_service(bounded_service!(
                    EscalationEventFeedServiceServer,
                    api,
                    auth.interceptor(),
                    config.server
                ));
        let to_intake = auth.credentials(service_principal(INTAKE_PERMISSIONS), "intake");
        let to_cases = auth.credentials(service_principal(CASE_PERMISSIONS), "case-workflow");
        let tls = host.tls_for_calls();
        let tls = tls.as_ref();
        let intake = grpc_subscription(&config.intake_url, services::INTAKE_EVENTS, to_intake.clone(), tls)
            .context("intake_url")?;
        let cases_feed = grpc_subscription(&config.case_workflow_url, services::CASE_EVENTS, to_cases.clone(), tls)
            .context("case_workflow_url")?;
        let case_client = cases::case_client(&config.case_workflow_url, to_cases, tls).context("case_workflow_url")?;
        let intake_client = matcher::intake_client(&config.intake_url, to_intake, tls).context("intake_url")?;
        let (tasks, published) = (host.supervisor().clone(), host.publishes());
        let init = async {
            tracing::info!(database = %config.database, "opening escalation store");
            let opened = Arc::new(EscalationStore::open(&config.database, rules, clock, &tasks).await?);
            store.set(opened.clone());
            published.set(opened.feed().clone());
            let stop = tasks.stopping();
            let sink = |consumer| -> Arc<dyn EventSink> { Arc::new(FeedSink { store: opened.clone(), consumer }) };
            tasks.spawn(
                "consumer<-intake",
                run_consumer("escalation<-intake", intake, sink(INTAKE_CONSUMER), stop.clone()).map(Ok),
            );
            tasks.spawn(
                "consumer<-case-workflow",
                run_consumer("escalation<-case-workflow", cases_feed, sink(CASE_CONSUMER), stop.clone()).map(Ok),
            );
            let interval = Duration::from_millis(config.sweep_interval_ms.max(10));
            tasks.spawn("sweeper", run_sweeper(opened.clone(), interval, stop.clone()).map(Ok));
            let interval = Duration::from_millis(config.case_requests_interval_ms.max(10));
            tasks.spawn("case-requests", cases::run(opened.clone(), case_client, interval, stop.clone()).map(Ok));
            let interval = Duration::from_millis(config.match_interval_ms.max(10));
            let key = config.pii.key()?;
            if key.is_none() {
                tracing::warn!("pii.index_key is not configured: complaints are not matched against a VIP register");
            }
            tasks.spawn("matcher", matcher::run(opened.clone(), intake_client, key, interval, stop.clone()).map(Ok));
            let (pruned, stopping) = (opened.clone(), stop.clone());
            let prune = move |before| {
                let (store, stop) = (pruned.clone(), stopping.clone());
                async move { store.prune(before, &stop).await }
            };
            spawn_retention(&tasks, opened.feed().clone(), config.retention.clone(), prune);
            tracing::info!(intake = %config.intake_url, cases = %config.case_workflow_url, "escalation ready");
            Ok(())
        };
        host.run(routes, init).await
    }
}

/// Raises what the ladder's timers and the crisis stages call for until `stop`. Each record
/// changes in its own transaction with its events, so stopping or killing it at any point
/// neither loses nor repeats a step.
pub async fn run_sweeper(store: Arc<EscalationStore>, interval: Duration, stop: CancellationToken) {
    const BATCH: i64 = 500;
    loop {
        let swept = match store.sweep(store.now(), BATCH).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "escalation sweep failed; retrying");
                0
            }
        };
        if swept < BATCH as usize {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}
