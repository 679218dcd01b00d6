//! `redress`: run the embedded suite, one service, or a store's migrations, or drive a case or
//! submit a complaint by hand through a running gateway.

// The services allocate per request and per row; mimalloc is markedly cheaper than glibc's
// allocator under this many small, cross-thread allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use redress::{Suite, SuiteOptions, random_dev_token};
use redress_platform::signing::{GATEWAY, SigningKey};
use redress_platform::telemetry::{self, TelemetryConfig};

#[derive(Parser)]
#[command(name = "redress", version, about = "Consumer-complaint handling platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every service (gateway, intake, case-workflow, escalation, knowledge-base,
    /// quality-metrics) in one process on SQLite (development).
    Dev {
        /// Directory for each service's SQLite file.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Address the gateway listens on.
        #[arg(long, default_value = "127.0.0.1:50051")]
        gateway_addr: String,
        /// Bearer token the gateway accepts; random when unset.
        #[arg(long, env = "REDRESS_DEV_TOKEN", hide_env_values = true)]
        dev_token: Option<String>,
        /// Address serving Prometheus /metrics for the whole suite; empty to disable.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_addr: String,
        /// OTLP/gRPC endpoint to export every service's traces to (e.g. a local Jaeger at
        /// `http://127.0.0.1:4317`); empty: not exported.
        #[arg(long, env = "REDRESS_TELEMETRY__OTLP_ENDPOINT", default_value = "")]
        otlp_endpoint: String,
    },
    /// Run one service, configured by file and `REDRESS_*` environment variables (see
    /// docs/CONFIGURATION.md). Every service but the gateway needs `database.url`.
    Serve {
        service: Service,
        /// TOML configuration file.
        #[arg(long, env = "REDRESS_CONFIG")]
        config: Option<PathBuf>,
        /// Gateway only: accept the static dev tokens of `auth.dev_tokens`, which never expire.
        /// For development; without it a gateway configured with dev tokens does not start.
        #[arg(long)]
        allow_dev_tokens: bool,
    },
    /// Apply a service's database migrations and exit, configured as `serve` is (file and
    /// `REDRESS_*` environment variables; `database.url` is required).
    Migrate {
        service: StoreOwner,
        /// TOML configuration file, the service's own.
        #[arg(long, env = "REDRESS_CONFIG")]
        config: Option<PathBuf>,
        /// `sqlite://…` or `postgres://…`, instead of the configuration's `database.url`.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Drive a case by hand through a running gateway.
    Case(redress_cli::CaseArgs),
    /// Submit, read, withdraw and reclassify complaints by hand through a running gateway.
    Complaint(redress_cli::ComplaintArgs),
    /// Search the knowledge base, get suggestions for a complaint, lint replies, publish and
    /// import articles through a running gateway.
    Kb(redress_cli::KbArgs),
    /// Quality metrics: KPIs, breakdowns, Pareto, reports, root causes, improvement actions.
    Metrics(redress_cli::MetricsArgs),
    /// Incidents (group, media, VIP, malicious) and their one approved statement.
    Incident(redress_cli::IncidentArgs),
    /// Mentions from public-opinion monitoring, and the watchlists they are matched on.
    Mention(redress_cli::MentionArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Service {
    Intake,
    CaseWorkflow,
    Escalation,
    QualityMetrics,
    KnowledgeBase,
    Gateway,
}

#[derive(Clone, Copy, ValueEnum)]
enum StoreOwner {
    Intake,
    CaseWorkflow,
    Escalation,
    QualityMetrics,
    KnowledgeBase,
}

impl Service {
    fn serve(self) -> redress::serve::Service {
        use redress::serve::Service as S;
        match self {
            Self::Intake => S::Intake,
            Self::CaseWorkflow => S::CaseWorkflow,
            Self::Escalation => S::Escalation,
            Self::QualityMetrics => S::QualityMetrics,
            Self::KnowledgeBase => S::KnowledgeBase,
            Self::Gateway => S::Gateway,
        }
    }
}

impl StoreOwner {
    fn serve(self) -> redress::serve::Service {
        use redress::serve::Service as S;
        match self {
            Self::Intake => S::Intake,
            Self::CaseWorkflow => S::CaseWorkflow,
            Self::Escalation => S::Escalation,
            Self::QualityMetrics => S::QualityMetrics,
            Self::KnowledgeBase => S::KnowledgeBase,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    redress::memory::without_transparent_huge_pages();
    let outcome = match cli.command {
        Command::Case(args) => return Ok(redress_cli::run_case(args).await),
        Command::Complaint(args) => return Ok(redress_cli::run_complaint(args).await),
        Command::Kb(args) => return Ok(redress_cli::run_kb(args).await),
        Command::Metrics(args) => return Ok(redress_cli::run_metrics(args).await),
        Command::Incident(args) => return Ok(redress_cli::run_incident(args).await),
        Command::Mention(args) => return Ok(redress_cli::run_mention(args).await),
        Command::Dev { data_dir, gateway_addr, dev_token, metrics_addr, otlp_endpoint } => {
            let _telemetry = telemetry::init(
                &TelemetryConfig { metrics_addr, otlp_endpoint, ..TelemetryConfig::default() },
                "redress-dev",
            )?;
            let shutdown = redress_platform::shutdown::on_signal();
            let dev_token = dev_token.filter(|t| !t.is_empty()).unwrap_or_else(random_dev_token);
            let suite = Suite::start(
                SuiteOptions {
                    data_dir,
                    gateway_addr,
                    dev_token: dev_token.clone(),
                    starter_content: true,
                    ..SuiteOptions::default()
                },
                shutdown,
            )
            .await?;
            println!("redress gateway listening on {}", suite.gateway_addr);
            println!("dev bearer token: {dev_token}");
            println!("try: buf curl --protocol grpc --http2-prior-knowledge \\");
            println!("       -H 'Authorization: Bearer {dev_token}' \\");
            println!("       http://{}/redress.case.v1.CaseService/ListCases", suite.gateway_addr);
            suite.wait().await
        }
        Command::Serve { service, config, allow_dev_tokens } => {
            anyhow::ensure!(
                !allow_dev_tokens || matches!(service, Service::Gateway),
                "--allow-dev-tokens applies to the gateway only"
            );
            let shutdown = redress_platform::shutdown::on_signal();
            let file = config.as_deref();
            let serve = service.serve();
            match service {
                Service::Intake => {
                    let config: redress_intake::IntakeConfig = redress::serve::config(serve, file)?;
                    let _telemetry = telemetry::init(&config.telemetry, "redress-intake")?;
                    let auth = config.auth.load(redress_intake::SERVICE_NAME)?;
                    let intake = redress_intake::Intake::build(config, auth, shutdown).await?;
                    tracing::info!(addr = %intake.local_addr(), "intake listening");
                    intake.run_until_stopped().await
                }
                Service::CaseWorkflow => {
                    let config: redress_case_workflow::CaseWorkflowConfig = redress::serve::config(serve, file)?;
                    let _telemetry = telemetry::init(&config.telemetry, "redress-case-workflow")?;
                    let auth = config.auth.load(redress_case_workflow::SERVICE_NAME)?;
                    let service = redress_case_workflow::CaseWorkflow::build(config, auth, shutdown).await?;
                    tracing::info!(addr = %service.local_addr(), "case-workflow listening");
                    service.run_until_stopped().await
                }
                Service::Escalation => {
                    let config: redress_escalation::EscalationConfig = redress::serve::config(serve, file)?;
                    let _telemetry = telemetry::init(&config.telemetry, "redress-escalation")?;
                    let auth = config.auth.load(redress_escalation::SERVICE_NAME)?;
                    let service = redress_escalation::Escalation::build(config, auth, shutdown).await?;
                    tracing::info!(addr = %service.local_addr(), "escalation listening");
                    service.run_until_stopped().await
                }
                Service::QualityMetrics => {
                    let config: redress_quality_metrics::QualityMetricsConfig = redress::serve::config(serve, file)?;
                    let _telemetry = telemetry::init(&config.telemetry, "redress-quality-metrics")?;
                    let auth = config.auth.load(redress_quality_metrics::SERVICE_NAME)?;
                    let service = redress_quality_metrics::QualityMetrics::build(config, auth, shutdown).await?;
                    tracing::info!(addr = %service.local_addr(), "quality-metrics listening");
                    service.run_until_stopped().await
                }
                Service::KnowledgeBase => {
                    let config: redress_knowledge_base::KnowledgeConfig = redress::serve::config(serve, file)?;
                    let _telemetry = telemetry::init(&config.telemetry, "redress-knowledge-base")?;
                    let auth = config.auth.load(redress_knowledge_base::SERVICE_NAME)?;
                    let service = redress_knowledge_base::KnowledgeBase::build(config, auth, shutdown).await?;
                    tracing::info!(addr = %service.local_addr(), "knowledge-base listening");
                    service.run_until_stopped().await
                }
                Service::Gateway => {
                    let config: redress_gateway::GatewayConfig = redress::serve::config(serve, file)?;
                    let _telemetry = telemetry::init(&config.telemetry, "redress-gateway")?;
                    let key = SigningKey::load(GATEWAY, &config.signing_key, &config.signing_key_file, "signing_key")?;
                    let dev_tokens = if allow_dev_tokens {
                        redress_gateway::DevTokens::Allowed
                    } else {
                        redress_gateway::DevTokens::Refused
                    };
                    let gateway = redress_gateway::Gateway::build(config, key, dev_tokens, shutdown).await?;
                    tracing::info!(addr = %gateway.local_addr(), "gateway listening");
                    gateway.run_until_stopped().await
                }
            }
        }
        Command::Migrate { service, config, database_url } => {
            let _telemetry = telemetry::init(&TelemetryConfig::default(), "redress-migrate")?;
            let file = config.as_deref();
            if database_url.is_none() {
                redress::serve::require_database_url(service.serve(), file)?;
            }
            let load = |configured: &redress_platform::db::DatabaseConfig| redress_platform::db::DatabaseConfig {
                url: database_url.clone().unwrap_or_else(|| configured.url.clone()),
                max_connections: 2,
                cache_mib: configured.cache_mib,
            };
            let tasks = redress_platform::host::Supervisor::detached();
            let applied = match service {
                StoreOwner::Intake => {
                    // Migrating seals personal information recorded before encryption at rest,
                    // so it needs the service's keys (pii.*).
                    let service: redress_intake::IntakeConfig = redress_platform::config::load(file)?;
                    let config = load(&service.database);
                    let keyring = std::sync::Arc::new(service.pii.keyring()?);
                    redress_intake::open_store(&config, keyring, &tasks).await.context("intake migrations")?;
                    config
                }
                StoreOwner::CaseWorkflow => {
                    // Migrating chains audit trails written before keying under the audit key,
                    // so it needs the service's keys (audit.*).
                    let service: redress_case_workflow::CaseWorkflowConfig = redress_platform::config::load(file)?;
                    let config = load(&service.database);
                    let rules = service.rules()?;
                    redress_case_workflow::open_store(&config, std::sync::Arc::new(rules), &tasks)
                        .await
                        .context("case-workflow migrations")?;
                    config
                }
                StoreOwner::Escalation => {
                    let service: redress_escalation::EscalationConfig = redress_platform::config::load(file)?;
                    let config = load(&service.database);
                    let rules = std::sync::Arc::new(service.rules()?);
                    let clock = redress_platform::time::Clock::system();
                    redress_escalation::EscalationStore::open(&config, rules, clock, &tasks)
                        .await
                        .context("escalation migrations")?;
                    config
                }
                StoreOwner::QualityMetrics => {
                    let service: redress_quality_metrics::QualityMetricsConfig = redress_platform::config::load(file)?;
                    let config = load(&service.database);
                    redress_quality_metrics::open_store(&config, service.calendars()?, &tasks)
                        .await
                        .context("quality-metrics migrations")?;
                    config
                }
                StoreOwner::KnowledgeBase => {
                    let service: redress_knowledge_base::KnowledgeConfig = redress_platform::config::load(file)?;
                    let config = load(&service.database);
                    redress_knowledge_base::open_store(&config, &tasks).await.context("knowledge-base migrations")?;
                    config
                }
            };
            tasks.stop().await;
            println!("migrations applied to {applied}");
            Ok(())
        }
    };
    outcome.map(|()| ExitCode::SUCCESS)
}
