//! Knowledge base (D-KB): articles in versions, reviewed by someone other than their author
//! and published within an organisation scope, with their own event feed; a Chinese full-text
//! search index derived from the store, rebuilt at start and kept up to date from the feed;
//! reply lint; suggestions for a complaint; and the case library, fed by case-workflow's feed.

pub mod api;
pub mod domain;
pub mod error;
pub mod search;
pub mod starter;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use futures_util::FutureExt;
use redress_platform::bounded_service;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::events::{EventSink, RetentionConfig, grpc_subscription, run_consumer, spawn_retention};
use redress_platform::host::{Host, Supervisor};
use redress_platform::principal::{Permission, Principal, ServiceAuth};
use redress_platform::ready::Ready;
use redress_platform::server::ServerConfig;
use redress_platform::signing::ServiceAuthConfig;
use redress_platform::telemetry::TelemetryConfig;
use redress_proto::redress::knowledge::v1::knowledge_event_feed_service_server::KnowledgeEventFeedServiceServer;
use redress_proto::redress::knowledge::v1::knowledge_service_server::KnowledgeServiceServer;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::KnowledgeApi;
use domain::lint::Rules;
pub use error::KbError;
pub use search::SearchIndex;
use search::text::Lexicon;
pub use store::KnowledgeStore;

/// gRPC services the knowledge base serves (and reports health for).
pub const SERVICES: &[&str] = &[services::KNOWLEDGE, services::KNOWLEDGE_EVENTS];
/// The identity the knowledge base uses towards other services.
pub const SERVICE_NAME: &str = "knowledge-base";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KnowledgeConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// How calls to the service are authenticated and its own calls signed: its Ed25519 key,
    /// the gateway's public key, and the services allowed to call it with the permissions each
    /// may claim (docs/authorization.md).
    pub auth: ServiceAuthConfig,
    pub telemetry: TelemetryConfig,
    /// How long events stay on the feed and request ids are remembered.
    pub retention: RetentionConfig,
    /// Where the search index lives (derived data: a lost directory is rebuilt from the store).
    pub index_dir: String,
    /// Where intake serves, e.g. `http://redress-intake:50051`: SuggestForComplaint reads named
    /// complaints there, as the caller. Empty: suggestions take a complaint's text only.
    pub intake_url: String,
    /// Where case-workflow serves its event feed, e.g. `http://redress-case-workflow:50051`:
    /// closed cases with notable outcomes become typical-case candidates. Empty: no case library.
    pub case_workflow_url: String,
    /// Whether an empty knowledge base loads the starter pack (`redress dev` does).
    pub starter_content: bool,
    /// Institutions (`institutions/{id}`) whose replies must not go out with a banned phrase:
    /// LintReply answers `blocked` for them.
    pub lint_blocking_institutions: Vec<String>,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig { url: "sqlite://data/knowledge-base.db".to_owned(), ..DatabaseConfig::default() },
            auth: ServiceAuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            retention: RetentionConfig::default(),
            index_dir: "data/knowledge-base-index".to_owned(),
            lint_blocking_institutions: Vec::new(),
            starter_content: false,
            intake_url: String::new(),
            case_workflow_url: String::new(),
        }
    }
}

/// Opens (and migrates) the store the URL names; `supervisor` runs its background work.
pub async fn open_store(config: &DatabaseConfig, supervisor: &Supervisor) -> anyhow::Result<Arc<dyn KnowledgeStore>> {
    Ok(match Backend::of(&config.url)? {
        Backend::Sqlite => {
            let db = redress_platform::db::connect_sqlite(config, supervisor).await?;
            Arc::new(store::SqliteKnowledgeStore::open(db).await?)
        }
        Backend::Postgres => {
            let pool = redress_platform::db::connect_postgres(config).await?;
            Arc::new(store::PostgresKnowledgeStore::open(pool, supervisor).await?)
        }
    })
}

pub struct KnowledgeBase {
    host: Host,
    config: KnowledgeConfig,
    api: KnowledgeApi,
    store: Ready<Arc<dyn KnowledgeStore>>,
    index: Ready<Arc<SearchIndex>>,
    lexicon: Arc<Lexicon>,
    auth: ServiceAuth,
}

/// Opens the index in `dir` and brings it up to date with `store` (a rebuild unless the index
/// there reflects a position the feed still has); returns it with the position to follow from.
pub async fn open_index(
    dir: &str,
    lexicon: Arc<Lexicon>,
    store: &Arc<dyn KnowledgeStore>,
) -> anyhow::Result<(Arc<SearchIndex>, i64)> {
    let dir = std::path::PathBuf::from(dir);
    let (index, recorded) = tokio::task::spawn_blocking(move || SearchIndex::open(&dir, lexicon)).await??;
    let index = Arc::new(index);
    let position = search::follow::prepare(&index, store, recorded).await?;
    Ok((index, position))
}

impl KnowledgeBase {
    pub async fn build(
        config: KnowledgeConfig,
        auth: ServiceAuth,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let host = Host::bind(SERVICE_NAME, &config.server, SERVICES, shutdown).await?;
        let (store, index) = (Ready::new(), Ready::new());
        let lexicon = Lexicon::shipped()?;
        let mut blocking = std::collections::BTreeSet::new();
        for (i, unit) in config.lint_blocking_institutions.iter().enumerate() {
            let unit = redress_platform::names::OrgUnit::try_from_str(unit)
                .map_err(|e| anyhow::anyhow!("lint_blocking_institutions[{i}]: {e}"))?;
            blocking.insert(unit.institution().into_string());
        }
        let tls = host.tls_for_calls();
        let intake = match config.intake_url.trim() {
            "" => None,
            url => Some((
                redress_platform::server::suite_endpoint(url).context("intake_url")?.connect_lazy(tls.as_ref()),
                // Used only on behalf of the caller (SuggestForComplaint), who is granted at most
                // the permission to read complaints.
                auth.credentials(Principal::service(SERVICE_NAME, &[Permission::ComplaintsRead]), "intake"),
            )),
        };
        let settings = api::Settings { lexicon: lexicon.clone(), rules: Arc::new(Rules::shipped()?), blocking, intake };
        let api = KnowledgeApi::new(store.clone(), index.clone(), settings, host.shutdown());
        Ok(Self { host, config, api, store, index, lexicon, auth })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { host, config, api, store, index, lexicon, auth } = self;
        let routes =
            Routes::new(bounded_service!(KnowledgeServiceServer, api.clone(), auth.interceptor(), config.server))
                .add_service(bounded_service!(KnowledgeEventFeedServiceServer, api, auth.interceptor(), config.server));
        let (tasks, published) = (host.supervisor().clone(), host.publishes());
        let cases = match config.case_workflow_url.trim() {
            "" => None,
            url => {
                let me = auth.credentials(Principal::service(SERVICE_NAME, &[Permission::EventsRead]), "case-workflow");
                let tls = host.tls_for_calls();
                Some(grpc_subscription(url, services::CASE_EVENTS, me, tls.as_ref()).context("case_workflow_url")?)
            }
        };
        let init = async {
            tracing::info!(database = %config.database, "opening knowledge store");
            let opened = open_store(&config.database, &tasks).await?;
            store.set(opened.clone());
            published.set(opened.feed().clone());
            if config.starter_content && opened.count().await? == 0 {
                let loaded = opened.seed(starter::plans(redress_platform::time::now())?).await?;
                tracing::info!(articles = loaded, "knowledge base was empty; starter pack loaded");
            }
            let (built, position) = open_index(&config.index_dir, lexicon, &opened).await?;
            index.set(built.clone());
            if let Some(cases) = cases {
                let sink: Arc<dyn EventSink> = opened.clone();
                let consumer = run_consumer("knowledge-base<-case-workflow", cases, sink, tasks.stopping());
                tasks.spawn("consumer<-case-workflow", consumer.map(Ok));
            }
            tasks.spawn(
                "search-index",
                search::follow::follow(built, opened.clone(), position, tasks.stopping()).map(Ok),
            );
            let pruned = opened.clone();
            let prune = move |before| {
                let store = pruned.clone();
                async move { store.prune_requests(before).await }
            };
            spawn_retention(&tasks, opened.feed().clone(), config.retention.clone(), prune);
            Ok(())
        };
        host.run(routes, init).await
    }
}
