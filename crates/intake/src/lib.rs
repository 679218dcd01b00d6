//! Intake: accepts complaints from every channel, records them to the legal standard (D-INT),
//! issues receipts with real deadlines (D-SLA) and publishes ComplaintAccepted on its feed.

pub mod api;
pub mod calendars;
pub mod domain;
pub mod error;
pub mod store;
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use domain::classify::{Catalogue, OwnTaxonomy, Taxonomy};
use domain::pii::Keyring;
use redress_calendar::{Institutions, RegimeConfig, SlaPolicy};
use redress_platform::bounded_service;
use redress_platform::config::Secret;
use redress_platform::db::{Backend, DatabaseConfig};
use redress_platform::events::{RetentionConfig, spawn_retention};
use redress_platform::host::{Host, Supervisor};
use redress_platform::principal::ServiceAuth;
use redress_platform::ready::Ready;
use redress_platform::server::ServerConfig;
use redress_platform::signing::ServiceAuthConfig;
use redress_platform::telemetry::TelemetryConfig;
use redress_proto::redress::intake::v1::intake_event_feed_service_server::IntakeEventFeedServiceServer;
use redress_proto::redress::intake::v1::intake_service_server::IntakeServiceServer;
use redress_proto::redress::intake::v1::personal_data_service_server::PersonalDataServiceServer;
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use api::IntakeApi;
pub use error::IntakeError;
pub use store::IntakeStore;

/// gRPC services intake serves (and reports health for).
pub const SERVICES: &[&str] = &[services::INTAKE, services::INTAKE_EVENTS, services::PERSONAL_DATA];
/// The service's name in logs, task names and its own principal.
pub const SERVICE_NAME: &str = "intake";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IntakeConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// Key that verifies principals forwarded by the gateway.
    /// How calls to the service are authenticated and its own calls signed: its Ed25519 key,
    /// the gateway's public key, and the services allowed to call it with the permissions each
    /// may claim (docs/authorization.md).
    pub auth: ServiceAuthConfig,
    pub telemetry: TelemetryConfig,
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
    pub pii: PiiConfig,
    /// An earlier complaint by the same person about the same business type and cause within
    /// this many days makes a new one a recurrence (D-CASE-5).
    pub recurrence_window_days: u32,
    /// Directory of the institution's own taxonomy files (`*.toml`, the shipped ones' format),
    /// each with its labelled corpus, if it has one, beside it (`{stem}.jsonl`: `id`, `text`,
    /// `business_type`, `cause` per line); empty for the shipped ones only. Which taxonomy an
    /// institution classifies in is its regime's or its own `regimes.institutions.*.taxonomy`.
    pub taxonomies_dir: String,
    /// How long events stay on the feed and request ids are remembered.
    pub retention: RetentionConfig,
}

/// Keys protecting personal information at rest (D-PII). Master keys are base64 of 32 bytes,
/// by key id; `active_key_id` wraps new subjects' keys, older ids stay to unwrap existing
/// ones (rotation). `index_key` (base64, at least 32 bytes) keys the blind indexes and must
/// never change while data exists. `access_log_keys` (base64, at least 32 bytes, by key id)
/// key the hash chain of the access log, new entries under `access_log_active_key_id`, older
/// ids kept to verify what they chained; when none is configured, a key derived from
/// `index_key` chains it (key id "index"). Like the master keys, they never live in the
/// database, so whoever can write it cannot rebuild a chain that verifies.
///
/// `chain_legacy_access_log` is the one-time migration of an access log written before it was
/// chained or before its head was sealed: when set, opening the store appends the entries
/// recorded outside the chain before its first chained entry to it and seals the head, if the
/// chain verifies as stored. The database cannot be trusted to say whether that is needed, so
/// it is never done unless set; set it for one start after upgrading, then remove it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PiiConfig {
    pub active_key_id: String,
    pub master_keys: std::collections::BTreeMap<String, Secret>,
    pub index_key: Secret,
    pub access_log_active_key_id: String,
    pub access_log_keys: std::collections::BTreeMap<String, Secret>,
    pub chain_legacy_access_log: bool,
}

impl PiiConfig {
    /// Random keys (for a new development data directory).
    pub fn generate() -> Self {
        let key = || Secret::new(BASE64.encode(rand::random::<[u8; 32]>()));
        Self {
            active_key_id: "k1".to_owned(),
            master_keys: std::collections::BTreeMap::from([("k1".to_owned(), key())]),
            index_key: key(),
            access_log_active_key_id: String::new(),
            access_log_keys: std::collections::BTreeMap::new(),
            chain_legacy_access_log: false,
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
        let keyring = Keyring::new(&self.active_key_id, &masters, &index)?
            .chaining_legacy_access_log(self.chain_legacy_access_log);
        if self.access_log_keys.is_empty() && self.access_log_active_key_id.is_empty() {
            return Ok(keyring);
        }
        let mut log_keys = Vec::new();
        for (id, secret) in &self.access_log_keys {
            let key =
                BASE64.decode(secret.expose()).with_context(|| format!("pii.access_log_keys.{id} is not base64"))?;
            log_keys.push((id.clone(), key));
        }
        Ok(keyring
            .with_access_log_keys(&self.access_log_active_key_id, &log_keys)
            .context("pii.access_log_keys")?
            .chaining_legacy_access_log(self.chain_legacy_access_log))
    }
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig { url: "sqlite://data/intake.db".to_owned(), ..DatabaseConfig::default() },
            auth: ServiceAuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            time_zone: "Asia/Shanghai".to_owned(),
            calendars_dir: String::new(),
            calendars_poll_interval_ms: 60_000,
            sla: SlaPolicy::default(),
            regimes: RegimeConfig::default(),
            pii: PiiConfig::default(),
            recurrence_window_days: 90,
            taxonomies_dir: String::new(),
            retention: RetentionConfig::default(),
        }
    }
}

impl IntakeConfig {
    /// Every institution's regime, calendar and zone; a key that does not resolve is named.
    pub fn institutions(&self) -> anyhow::Result<Institutions> {
        let institutions = self.regimes.resolve(&self.time_zone, &self.calendars_dir, &self.sla)?;
        let default_zone = institutions.default_regime().calculator().time_zone();
        tracing::info!(years = ?institutions.official_years(), time_zone = %default_zone, "working-day calendars loaded");
        Ok(institutions)
    }

    /// Where the working-day calendars are read from, again on every reload.
    pub fn calendar_source(&self) -> calendars::CalendarSource {
        calendars::CalendarSource {
            regimes: self.regimes.clone(),
            time_zone: self.time_zone.clone(),
            calendars_dir: self.calendars_dir.clone(),
            sla: self.sla.clone(),
        }
    }

    /// The institution's own taxonomies: every `*.toml` file in `taxonomies_dir`, sorted by
    /// file name, with the corpus `{stem}.jsonl` beside it if there is one; none when it is
    /// empty. A file that does not load is an error, not skipped.
    pub fn taxonomies(&self) -> anyhow::Result<Vec<OwnTaxonomy>> {
        if self.taxonomies_dir.is_empty() {
            return Ok(Vec::new());
        }
        let dir = std::path::Path::new(&self.taxonomies_dir);
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let read = |p: &std::path::Path| {
                    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
                };
                let taxonomy = Taxonomy::from_toml(&p.display().to_string(), &read(p)?)?;
                let corpus_path = p.with_extension("jsonl");
                let corpus = if corpus_path.exists() {
                    let source = corpus_path.display().to_string();
                    let examples = domain::classify::parse_corpus(&source, &read(&corpus_path)?)?;
                    Some((source, examples))
                } else {
                    None
                };
                Ok(OwnTaxonomy { taxonomy, corpus })
            })
            .collect()
    }

    /// The taxonomies and classifiers intake serves: the shipped ones and the institution's
    /// own. Refused when an institution (or the default regime) classifies in a taxonomy that
    /// is not loaded or has no model, naming the key at fault: complaints are never classified
    /// in another taxonomy than their institution's.
    pub fn catalogue(&self) -> anyhow::Result<Catalogue> {
        let catalogue = Catalogue::shipped().with_own(self.taxonomies().context("taxonomies_dir")?)?;
        catalogue.check(&self.regimes.taxonomies())?;
        Ok(catalogue)
    }
}

/// Opens (and migrates) the store the URL names; `supervisor` runs its background work.
pub async fn open_store(
    config: &DatabaseConfig,
    keyring: Arc<Keyring>,
    supervisor: &Supervisor,
) -> anyhow::Result<Arc<dyn IntakeStore>> {
    Ok(match Backend::of(&config.url)? {
        Backend::Sqlite => {
            let db = redress_platform::db::connect_sqlite(config, supervisor).await?;
            Arc::new(store::SqliteIntakeStore::open(db, keyring, supervisor).await?)
        }
        Backend::Postgres => {
            let pool = redress_platform::db::connect_postgres(config).await?;
            Arc::new(store::PostgresIntakeStore::open(pool, keyring, supervisor).await?)
        }
    })
}

/// A bound intake server, serving once [`Intake::run_until_stopped`] is awaited.
pub struct Intake {
    host: Host,
    config: IntakeConfig,
    api: IntakeApi,
    store: Ready<Arc<dyn IntakeStore>>,
    keyring: Arc<Keyring>,
    auth: ServiceAuth,
}

impl Intake {
    pub async fn build(config: IntakeConfig, auth: ServiceAuth, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let institutions = config.institutions()?;
        let catalogue = config.catalogue()?;
        let deadlines = institutions.default_regime().calculator().clone();
        let keyring = Arc::new(config.pii.keyring()?);
        let host = Host::bind(SERVICE_NAME, &config.server, SERVICES, shutdown).await?;
        let store = Ready::new();
        let api = IntakeApi::new(store.clone(), deadlines, config.sla.clone(), keyring.clone(), host.shutdown())
            .with_institutions(institutions)
            .with_recurrence_window(config.recurrence_window_days)
            .with_catalogue(catalogue)
            .with_calendars(config.calendar_source());
        Ok(Self { host, config, api, store, keyring, auth })
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(self, clock: redress_platform::time::Clock) -> Self {
        Self { api: self.api.with_clock(clock), ..self }
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { host, config, api, store, keyring, auth } = self;
        let calendars = api.clone();
        let routes = Routes::new(bounded_service!(IntakeServiceServer, api.clone(), auth.interceptor(), config.server))
            .add_service(bounded_service!(PersonalDataServiceServer, api.clone(), auth.interceptor(), config.server))
            .add_service(bounded_service!(IntakeEventFeedServiceServer, api, auth.interceptor(), config.server));
        let (supervisor, published) = (host.supervisor().clone(), host.publishes());
        let init = async {
            tracing::info!(database = %config.database, "opening intake store");
            let opened = open_store(&config.database, keyring.clone(), &supervisor).await?;
            store.set(opened.clone());
            published.set(opened.feed().clone());
            let pruned = opened.clone();
            let prune_requests = move |before| {
                let store = pruned.clone();
                async move { store.prune_requests(before).await }
            };
            spawn_retention(&supervisor, opened.feed().clone(), config.retention.clone(), prune_requests);
            // Receipts whose deadlines a year file dropped in while intake was down would move.
            calendars.reload_calendars_now().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if config.calendars_poll_interval_ms > 0 && !config.calendars_dir.is_empty() {
                let (dir, poll) = (config.calendars_dir.clone().into(), config.calendars_poll_interval_ms);
                let stop = supervisor.stopping();
                let watched = redress_platform::watch::watch_dir(dir, Duration::from_millis(poll), stop, move || {
                    let api = calendars.clone();
                    async move { api.reload_calendars_now().await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e}")) }
                });
                supervisor.spawn("calendar-watcher", async move {
                    watched.await;
                    Ok(())
                });
            }
            tracing::info!("intake ready");
            Ok(())
        };
        host.run(routes, init).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use redress_calendar::InstitutionConfig;

    use super::*;

    #[test]
    fn an_institutions_taxonomies_load_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mall = include_str!("../data/taxonomy/general.toml").replace("name = \"general\"", "name = \"mall\"");
        std::fs::write(dir.path().join("b.toml"), mall).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let config = IntakeConfig { taxonomies_dir: dir.path().display().to_string(), ..IntakeConfig::default() };
        let loaded = config.taxonomies().unwrap();
        assert_eq!(loaded.iter().map(|t| t.taxonomy.id()).collect::<Vec<_>>(), ["mall@2026.2"]);
        assert!(loaded[0].corpus.is_none());
        std::fs::write(dir.path().join("a.toml"), "name = 1").unwrap();
        assert!(config.taxonomies().is_err(), "a broken file is an error, not skipped");
        assert!(IntakeConfig::default().taxonomies().unwrap().is_empty());
    }

    /// An institution classifying in its own taxonomy needs a corpus for it; without one
    /// intake does not start, and says which key and file to fix.
    #[test]
    fn an_institutions_own_taxonomy_needs_a_corpus_to_classify_in() {
        let dir = tempfile::tempdir().unwrap();
        let mall = include_str!("../data/taxonomy/general.toml").replace("name = \"general\"", "name = \"mall\"");
        std::fs::write(dir.path().join("mall.toml"), mall).unwrap();
        let mut config = IntakeConfig { taxonomies_dir: dir.path().display().to_string(), ..IntakeConfig::default() };
        config.regimes.institutions.insert(
            "mall".to_owned(),
            InstitutionConfig {
                regime: "samr".to_owned(),
                taxonomy: "mall".to_owned(),
                ..InstitutionConfig::default()
            },
        );
        let error = format!("{:#}", config.catalogue().unwrap_err());
        assert!(error.contains("regimes.institutions.mall.taxonomy: taxonomy mall@2026.2 has no model"), "{error}");

        let line = |id: &str, text: &str, b: &str, c: &str| {
            format!("{{\"id\": \"{id}\", \"text\": \"{text}\", \"business_type\": \"{b}\", \"cause\": \"{c}\"}}\n")
        };
        let corpus = line("m1", "停车场收费太贵", "G08", "K02") + &line("m2", "快递丢了没人赔", "G03", "K08");
        std::fs::write(dir.path().join("mall.jsonl"), corpus).unwrap();
        let catalogue = config.catalogue().unwrap();
        assert_eq!(catalogue.classifier("mall").unwrap().taxonomy().id(), "mall@2026.2");

        std::fs::write(dir.path().join("mall.jsonl"), line("m1", "信用卡年费", "B02", "C05")).unwrap();
        let error = format!("{:#}", config.catalogue().unwrap_err());
        assert!(error.contains("business type \"B02\" is not a code of mall@2026.2"), "{error}");

        std::fs::remove_file(dir.path().join("mall.jsonl")).unwrap();
        config.regimes.institutions.get_mut("mall").unwrap().taxonomy = "insurance".to_owned();
        let error = format!("{:#}", config.catalogue().unwrap_err());
        assert!(error.contains("regimes.institutions.mall.taxonomy: unknown taxonomy \"insurance\""), "{error}");
    }
}
