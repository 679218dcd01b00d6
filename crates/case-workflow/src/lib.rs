//! Case-workflow: carries every accepted complaint as a case from acceptance to closure
//! (D-CASE, D-SLA). It follows intake's event feed and opens one case per accepted complaint,
//! storing its feed position with the case so nothing is lost or opened twice.

pub mod api;
pub mod domain;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use futures_util::{FutureExt, StreamExt};
use redress_platform::config::Secret;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::events::{EventSink, Subscribe, run_consumer};
use redress_platform::principal::{InternalKey, Permission, Principal, ServiceCredentials};
use redress_platform::ready::Ready;
use redress_platform::server::{GrpcServer, ServerConfig, suite_endpoint};
use redress_platform::telemetry::{TelemetryConfig, inject_current_context};
use redress_proto::redress::case::v1::case_event_feed_service_server::CaseEventFeedServiceServer;
use redress_proto::redress::case::v1::case_service_server::CaseServiceServer;
use redress_proto::redress::intake::v1::StreamEventsRequest;
use redress_proto::redress::intake::v1::intake_event_feed_service_client::IntakeEventFeedServiceClient;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::CaseApi;
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
    pub internal_key: Secret,
    pub telemetry: TelemetryConfig,
    /// Where intake's event feed is served, e.g. `http://redress-intake:50051`.
    pub intake_url: String,
}

impl Default for CaseWorkflowConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig { url: "sqlite://data/case-workflow.db".to_owned(), ..DatabaseConfig::default() },
            internal_key: Secret::default(),
            telemetry: TelemetryConfig::default(),
            intake_url: "http://127.0.0.1:50052".to_owned(),
        }
    }
}

pub async fn open_store(config: &DatabaseConfig, shutdown: CancellationToken) -> anyhow::Result<Arc<dyn CaseStore>> {
    Ok(match Backend::of(&config.url)? {
        Backend::Sqlite => {
            let db = redress_platform::db::connect_sqlite(config).await?;
            Arc::new(store::SqliteCaseStore::open(db).await?)
        }
        Backend::Postgres => {
            let pool = redress_platform::db::connect_postgres(config).await?;
            Arc::new(store::PostgresCaseStore::open(pool, shutdown).await?)
        }
    })
}

/// Subscribes to intake's feed over gRPC with case-workflow's own signed principal.
pub fn intake_subscription(intake_url: &str, key: InternalKey) -> anyhow::Result<Subscribe> {
    let channel = suite_endpoint(intake_url).context("intake_url")?.connect_lazy();
    let credentials = ServiceCredentials::new(key, Principal::service(SERVICE_NAME, &[Permission::EventsRead]));
    Ok(Box::new(move |after| {
        let mut client = IntakeEventFeedServiceClient::new(channel.clone());
        let credentials = credentials.clone();
        async move {
            let mut request = tonic::Request::new(StreamEventsRequest { after_position: after });
            credentials.apply(&mut request)?;
            inject_current_context(&mut request);
            let stream = client.stream_events(request).await?.into_inner();
            Ok(stream
                .filter_map(|r| async move {
                    match r {
                        Ok(response) if response.events.is_empty() => None,
                        Ok(response) => Some(Ok(response.events)),
                        Err(status) => Some(Err(status)),
                    }
                })
                .boxed())
        }
        .boxed()
    }))
}

pub struct CaseWorkflow {
    server: GrpcServer,
    config: CaseWorkflowConfig,
    api: CaseApi,
    store: Ready<Arc<dyn CaseStore>>,
    key: InternalKey,
    shutdown: CancellationToken,
}

impl CaseWorkflow {
    pub async fn build(
        config: CaseWorkflowConfig,
        key: InternalKey,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let server = GrpcServer::bind(&config.server, SERVICES).await?;
        let store = Ready::new();
        let api = CaseApi::new(store.clone(), shutdown.clone());
        Ok(Self { server, config, api, store, key, shutdown })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let routes = Routes::new(CaseServiceServer::with_interceptor(self.api.clone(), self.key.interceptor()))
            .add_service(CaseEventFeedServiceServer::with_interceptor(self.api, self.key.interceptor()));
        let subscribe = intake_subscription(&self.config.intake_url, self.key.clone())?;
        // The store's background work (the PostgreSQL sequencer) outlives the drain, so that
        // events committed by work still in flight at shutdown get their feed positions.
        let store_stop = CancellationToken::new();
        let init = async {
            tracing::info!(database = %self.config.database, "opening case store");
            let store = open_store(&self.config.database, store_stop.clone()).await?;
            self.store.set(store.clone());
            let sink: Arc<dyn EventSink> = store;
            tokio::spawn(run_consumer("case-workflow<-intake", subscribe, sink, self.shutdown.clone()));
            tracing::info!(intake = %self.config.intake_url, "case-workflow ready; following intake events");
            Ok(())
        };
        let served = self.server.run(routes, SERVICES, init, self.shutdown.clone()).await;
        if let Ok(store) = self.store.get()
            && let Err(e) = store.feed().sequence_now().await
        {
            tracing::warn!(error = format!("{e:#}"), "final outbox sequencing failed; the next start completes it");
        }
        store_stop.cancel();
        served
    }
}
