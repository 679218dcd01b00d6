//! Quality-metrics: answers the questions management and the regulator ask of complaints
//! (D-QM) — KPIs against targets, breakdowns, series, Pareto charts and hotspots — from read
//! models it builds only from the suite's event feeds. It follows intake's and case-workflow's
//! feeds into one fact per complaint and rollups by unit × dimension value × day and month,
//! each batch in one transaction with the feed position, so the read models can always be
//! dropped and replayed.

pub mod api;
pub mod domain;
pub mod error;
pub mod gauges;
pub mod read;
pub mod report;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{FutureExt, StreamExt};
use redress_calendar::{RegimeConfig, SlaPolicy};
use redress_platform::bounded_service;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::events::{
    EventSink, RetentionConfig, Subscribe, grpc_subscription, run_consumer, spawn_retention,
};
use redress_platform::host::{Host, Supervisor};
use redress_platform::principal::{Permission, Principal, ServiceAuth, ServiceCredentials};
use redress_platform::ready::Ready;
use redress_platform::server::ServerConfig;
use redress_platform::signing::ServiceAuthConfig;
use redress_platform::telemetry::TelemetryConfig;
use redress_platform::time::Clock;
use redress_proto::redress::metrics::v1::improvement_service_server::ImprovementServiceServer;
use redress_proto::redress::metrics::v1::metrics_event_feed_service_server::MetricsEventFeedServiceServer;
use redress_proto::redress::metrics::v1::quality_metrics_service_server::QualityMetricsServiceServer;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::MetricsApi;
pub use domain::fact::Calendars;
pub use error::MetricsError;
pub use store::{FeedSink, MetricsStore};

/// gRPC services quality-metrics serves (and reports health for).
pub const SERVICES: &[&str] = &[services::METRICS, services::IMPROVEMENT, services::METRICS_EVENTS];
/// The identity quality-metrics uses towards other services.
pub const SERVICE_NAME: &str = "quality-metrics";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityMetricsConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// How calls to the service are authenticated and its own calls signed: its Ed25519 key,
    /// the gateway's public key, and the services allowed to call it with the permissions each
    /// may claim (docs/authorization.md).
    pub auth: ServiceAuthConfig,
    pub telemetry: TelemetryConfig,
    /// Where intake's event feed is served, e.g. `http://redress-intake:50051`.
    pub intake_url: String,
    /// Where case-workflow's event feed is served.
    pub case_workflow_url: String,
    /// Where escalation's event feed is served (incidents).
    pub escalation_url: String,
    /// IANA zone of institutions without a regime of their own: days are counted in it.
    pub time_zone: String,
    /// Extra year calendars (as intake's and case-workflow's), for business days.
    pub calendars_dir: String,
    /// Each institution's regime, calendar and zone, as intake and case-workflow read them.
    pub regimes: RegimeConfig,
    /// How long this service's own events and request ids are kept.
    pub retention: RetentionConfig,
    /// How often improvement actions are looked at for reminders, in milliseconds.
    pub reminder_interval_ms: u64,
    /// How often the KPI gauges are refreshed, in milliseconds.
    pub gauge_interval_ms: u64,
}

/// The page-cache budget of a SQLite quality-metrics store unless configured
/// (`database.cache_mib`): its writer's share (120 MiB) holds the recent months' cells that
/// every batch reads before writing them.
pub const SQLITE_CACHE_MIB: u32 = 160;

impl Default for QualityMetricsConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig {
                url: "sqlite://data/quality-metrics.db".to_owned(),
                cache_mib: SQLITE_CACHE_MIB,
                ..DatabaseConfig::default()
            },
            auth: ServiceAuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            intake_url: "http://127.0.0.1:50052".to_owned(),
            case_workflow_url: "http://127.0.0.1:50053".to_owned(),
            escalation_url: "http://127.0.0.1:50055".to_owned(),
            time_zone: redress_calendar::DEFAULT_TIME_ZONE.name().to_owned(),
            calendars_dir: String::new(),
            regimes: RegimeConfig::default(),
            retention: RetentionConfig::default(),
            reminder_interval_ms: 60_000,
            gauge_interval_ms: 60_000,
        }
    }
}

impl QualityMetricsConfig {
    /// The institutions' calendars and zones the read models count days on.
    pub fn calendars(&self) -> anyhow::Result<Arc<dyn Calendars>> {
        let institutions = self.regimes.resolve(&self.time_zone, &self.calendars_dir, &SlaPolicy::default())?;
        Ok(Arc::new(institutions))
    }
}

/// Opens (and migrates) the store the URL names; `supervisor` runs its background work.
pub async fn open_store(
    config: &DatabaseConfig,
    calendars: Arc<dyn Calendars>,
    supervisor: &Supervisor,
) -> anyhow::Result<Arc<dyn MetricsStore>> {
    Ok(match Backend::of(&config.url)? {
        Backend::Sqlite => {
            let db = redress_platform::db::connect_sqlite(config, supervisor).await?;
            Arc::new(store::SqliteMetricsStore::open(db, calendars).await?)
        }
        Backend::Postgres => {
            let pool = redress_platform::db::connect_postgres(config).await?;
            Arc::new(store::PostgresMetricsStore::open(pool, calendars, supervisor).await?)
        }
    })
}

/// Reminds the owners of improvement actions that fall due or are overdue (D-CASE-7), until
/// `stop`. Each reminder commits with its event, once per due date.
pub async fn run_reminders(store: Arc<dyn MetricsStore>, clock: Clock, interval: Duration, stop: CancellationToken) {
    const BATCH: i64 = 200;
    loop {
        let now = clock.now();
        match store.actions_to_remind(now, BATCH).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = store.improve(None, store::Improvement::Remind { id, now }).await {
                        tracing::warn!(error = %e, "an improvement action's reminder failed; retrying later");
                    }
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "looking for action reminders failed; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The feeds the read models follow: consumer name, feed URL, feed service and the name of the
/// service serving it.
fn feeds(config: &QualityMetricsConfig) -> [(&'static str, String, &'static str, &'static str); 3] {
    [
        (store::INTAKE_CONSUMER, config.intake_url.clone(), services::INTAKE_EVENTS, "intake"),
        (store::CASE_CONSUMER, config.case_workflow_url.clone(), services::CASE_EVENTS, "case-workflow"),
        (store::ESCALATION_CONSUMER, config.escalation_url.clone(), services::ESCALATION_EVENTS, "escalation"),
    ]
}

pub struct QualityMetrics {
    host: Host,
    config: QualityMetricsConfig,
    api: MetricsApi,
    store: Ready<Arc<dyn MetricsStore>>,
    calendars: Arc<dyn Calendars>,
    auth: ServiceAuth,
    clock: Clock,
}

impl QualityMetrics {
    pub async fn build(
        config: QualityMetricsConfig,
        auth: ServiceAuth,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let host = Host::bind(SERVICE_NAME, &config.server, SERVICES, shutdown).await?;
        let calendars = config.calendars()?;
        let store = Ready::new();
        let tls = host.tls_for_calls();
        let mut checks = Vec::new();
        for (consumer, url, feed, owner) in feeds(&config) {
            checks.push((
                consumer,
                grpc_subscription(&url, feed, credentials(&auth, owner), tls.as_ref())
                    .with_context(|| format!("{consumer} url"))?,
            ));
        }
        let (rebuilt, _) = tokio::sync::watch::channel(0);
        let api = MetricsApi::new(store.clone(), host.shutdown()).with_feeds(checks, rebuilt);
        Ok(Self { host, config, api, store, calendars, auth, clock: Clock::system() })
    }

    /// Reads "today" from `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { api: self.api.with_clock(clock.clone()), clock, ..self }
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { host, config, api, store, calendars, auth, clock } = self;
        let rebuilds = api.rebuilds();
        let routes =
            Routes::new(bounded_service!(QualityMetricsServiceServer, api.clone(), auth.interceptor(), config.server))
                .add_service(bounded_service!(ImprovementServiceServer, api.clone(), auth.interceptor(), config.server))
                .add_service(bounded_service!(MetricsEventFeedServiceServer, api, auth.interceptor(), config.server));
        let tls = host.tls_for_calls();
        let mut subscriptions = Vec::new();
        for (consumer, url, feed, owner) in feeds(&config) {
            let subscribe = grpc_subscription(&url, feed, credentials(&auth, owner), tls.as_ref())?;
            subscriptions.push((consumer, restart_on_rebuild(subscribe, rebuilds.clone())));
        }
        let (supervisor, published) = (host.supervisor().clone(), host.publishes());
        let init = async {
            tracing::info!(database = %config.database, "opening quality-metrics store");
            let opened = open_store(&config.database, calendars, &supervisor).await?;
            store.set(opened.clone());
            published.set(opened.feed().clone());
            for (consumer, subscribe) in subscriptions {
                let sink: Arc<dyn EventSink> = Arc::new(FeedSink::new(opened.clone(), consumer));
                let name = format!("quality-metrics<-{consumer}");
                let stop = supervisor.stopping();
                supervisor.spawn(format!("consumer<-{consumer}"), async move {
                    run_consumer(&name, subscribe, sink, stop).await;
                    Ok(())
                });
            }
            let pruned = opened.clone();
            let prune_requests = move |before| {
                let store = pruned.clone();
                async move { store.prune_requests(before).await }
            };
            spawn_retention(&supervisor, opened.feed().clone(), config.retention.clone(), prune_requests);
            let interval = Duration::from_millis(config.reminder_interval_ms.max(10));
            supervisor.spawn(
                "action-reminders",
                run_reminders(opened.clone(), clock.clone(), interval, supervisor.stopping()).map(Ok),
            );
            let every = Duration::from_millis(config.gauge_interval_ms.max(100));
            supervisor.spawn("kpi-gauges", gauges::run(opened.clone(), clock, every, supervisor.stopping()).map(Ok));
            tracing::info!("quality-metrics ready; following the intake, case-workflow and escalation feeds");
            Ok(())
        };
        host.run(routes, init.map(|r: anyhow::Result<()>| r)).await
    }
}

/// A subscription whose stream ends when the read models are rebuilt, so that the consumer
/// resumes from its stored position (the start) at once rather than at the next event.
fn restart_on_rebuild(mut subscribe: Subscribe, rebuilds: tokio::sync::watch::Receiver<u64>) -> Subscribe {
    Box::new(move |after| {
        let mut rebuilt = rebuilds.clone();
        rebuilt.mark_unchanged();
        let opening = subscribe(after);
        Box::pin(async move {
            let stream = opening.await?;
            let rebuilt = async move {
                if rebuilt.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            Ok(stream.take_until(rebuilt).boxed())
        })
    })
}

/// The service's credentials for following the feed of `audience`.
fn credentials(auth: &ServiceAuth, audience: &str) -> ServiceCredentials {
    auth.credentials(Principal::service(SERVICE_NAME, &[Permission::EventsRead]), audience)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_database_keeps_the_stores_own_cache_budget() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quality-metrics.toml");
        std::fs::write(&file, "[database]\nurl = \"sqlite:///var/lib/redress/quality-metrics.db\"\n").unwrap();
        let config: QualityMetricsConfig = redress_platform::config::load(Some(&file)).unwrap();
        assert_eq!(config.database.url, "sqlite:///var/lib/redress/quality-metrics.db");
        assert_eq!(config.database.cache_mib, SQLITE_CACHE_MIB);
    }
}
