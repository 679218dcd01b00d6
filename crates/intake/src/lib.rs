//! Intake: accepts complaints from every channel, records them to the legal standard (D-INT),
//! issues receipts with real deadlines (D-SLA) and publishes ComplaintAccepted on its feed.

pub mod api;
pub mod domain;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use domain::pii::Keyring;
use redress_calendar::{DeadlineCalculator, SlaPolicy};
use redress_platform::config::Secret;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::principal::InternalKey;
use redress_platform::ready::Ready;
use redress_platform::server::{GrpcServer, ServerConfig};
use redress_platform::telemetry::TelemetryConfig;
use redress_proto::redress::intake::v1::intake_event_feed_service_server::IntakeEventFeedServiceServer;
use redress_proto::redress::intake::v1::intake_service_server::IntakeServiceServer;
use redress_proto::redress::intake::v1::personal_data_service_server::PersonalDataServiceServer;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::IntakeApi;
pub use store::IntakeStore;

/// gRPC services intake serves (and reports health for).
pub const SERVICES: &[&str] = &[services::INTAKE, services::INTAKE_EVENTS, services::PERSONAL_DATA];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IntakeConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// Key that verifies principals forwarded by the gateway.
    pub internal_key: Secret,
    pub telemetry: TelemetryConfig,
    /// IANA zone the institution counts its days in.
    pub time_zone: String,
    /// Directory of extra or replacement year calendars (`*.toml`); empty for the shipped ones.
    pub calendars_dir: String,
    pub sla: SlaPolicy,
    pub pii: PiiConfig,
    /// An earlier complaint by the same person about the same business type and cause within
    /// this many days makes a new one a recurrence (D-CASE-5).
    pub recurrence_window_days: u32,
    /// Directory of the institution's own taxonomy files (`*.toml`, the shipped ones' format);
    /// empty for the shipped ones only.
    pub taxonomies_dir: String,
}

/// Keys protecting personal information at rest (D-PII). Master keys are base64 of 32 bytes,
/// by key id; `active_key_id` wraps new subjects' keys, older ids stay to unwrap existing
/// ones (rotation). `index_key` (base64, at least 32 bytes) keys the blind indexes and must
/// never change while data exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PiiConfig {
    pub active_key_id: String,
    pub master_keys: std::collections::BTreeMap<String, Secret>,
    pub index_key: Secret,
}

impl PiiConfig {
    /// Random keys (for a new development data directory).
    pub fn generate() -> Self {
        let key = || Secret::new(BASE64.encode(rand::random::<[u8; 32]>()));
        Self {
            active_key_id: "k1".to_owned(),
            master_keys: std::collections::BTreeMap::from([("k1".to_owned(), key())]),
            index_key: key(),
        }
    }

    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        anyhow::ensure!(
            !self.active_key_id.is_empty() && !self.master_keys.is_empty() && !self.index_key.is_empty(),
            "pii.active_key_id, pii.master_keys and pii.index_key are required (REDRESS_PII__...)"
        );
        let mut masters = Vec::new();
        for (id, secret) in &self.master_keys {
            let key = BASE64.decode(secret.expose()).with_context(|| format!("pii.master_keys.{id} is not base64"))?;
            masters.push((id.clone(), key));
        }
        let index = BASE64.decode(self.index_key.expose()).context("pii.index_key is not base64")?;
        Ok(Keyring::new(&self.active_key_id, &masters, &index)?)
    }
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig { url: "sqlite://data/intake.db".to_owned(), ..DatabaseConfig::default() },
            internal_key: Secret::default(),
            telemetry: TelemetryConfig::default(),
            time_zone: "Asia/Shanghai".to_owned(),
            calendars_dir: String::new(),
            sla: SlaPolicy::default(),
            pii: PiiConfig::default(),
            recurrence_window_days: 90,
            taxonomies_dir: String::new(),
        }
    }
}

impl IntakeConfig {
    pub fn deadline_calculator(&self) -> anyhow::Result<DeadlineCalculator> {
        let calculator = DeadlineCalculator::configured(&self.time_zone, &self.calendars_dir)
            .context("time_zone / calendars_dir")?;
        tracing::info!(years = ?calculator.calendar().years(), time_zone = %calculator.time_zone(), "working-day calendars loaded");
        Ok(calculator)
    }
}

/// Opens (and migrates) the store the URL names.
pub async fn open_store(
    config: &DatabaseConfig,
    keyring: Arc<Keyring>,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<dyn IntakeStore>> {
    Ok(match Backend::of(&config.url)? {
        Backend::Sqlite => {
            let db = redress_platform::db::connect_sqlite(config).await?;
            Arc::new(store::SqliteIntakeStore::open(db, keyring).await?)
        }
        Backend::Postgres => {
            let pool = redress_platform::db::connect_postgres(config).await?;
            Arc::new(store::PostgresIntakeStore::open(pool, keyring, shutdown).await?)
        }
    })
}

/// A bound intake server, serving once [`Intake::run_until_stopped`] is awaited.
pub struct Intake {
    server: GrpcServer,
    config: IntakeConfig,
    api: IntakeApi,
    store: Ready<Arc<dyn IntakeStore>>,
    keyring: Arc<Keyring>,
    key: InternalKey,
    shutdown: CancellationToken,
}

impl Intake {
    pub async fn build(config: IntakeConfig, key: InternalKey, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let deadlines = config.deadline_calculator()?;
        let keyring = Arc::new(config.pii.keyring()?);
        let server = GrpcServer::bind(&config.server, SERVICES).await?;
        let store = Ready::new();
        let taxonomies = if config.taxonomies_dir.is_empty() {
            Vec::new()
        } else {
            domain::classify::Taxonomy::load_dir(std::path::Path::new(&config.taxonomies_dir))
                .context("taxonomies_dir")?
        };
        let api = IntakeApi::new(store.clone(), deadlines, config.sla.clone(), keyring.clone(), shutdown.clone())
            .with_recurrence_window(config.recurrence_window_days)
            .with_taxonomies(taxonomies);
        Ok(Self { server, config, api, store, keyring, key, shutdown })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let routes = Routes::new(IntakeServiceServer::with_interceptor(self.api.clone(), self.key.interceptor()))
            .add_service(PersonalDataServiceServer::with_interceptor(self.api.clone(), self.key.interceptor()))
            .add_service(IntakeEventFeedServiceServer::with_interceptor(self.api, self.key.interceptor()));
        // The store's background work (the PostgreSQL sequencer) outlives the drain, so that
        // events committed by calls still in flight at shutdown get their feed positions.
        let store_stop = CancellationToken::new();
        let init = async {
            tracing::info!(database = %self.config.database, "opening intake store");
            let store = open_store(&self.config.database, self.keyring.clone(), store_stop.clone()).await?;
            self.store.set(store);
            tracing::info!("intake ready");
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
