//! Production mode: the configuration of one service per process (`redress serve <service>`)
//! and of its migrations (`redress migrate <service>`), from an optional TOML file and
//! `REDRESS_*` environment variables.
//!
//! Each service has a fixed default port, and the default address by which the others call it
//! is that port on loopback, so that a whole suite started on one host without addresses finds
//! itself; in Kubernetes every pod listens on 50051 (`REDRESS_SERVER__LISTEN_ADDR`) and is called
//! by its Service name. Unlike `redress dev`, production mode never picks a database: a service
//! with a store refuses to start without `database.url`.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A service run by `redress serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Gateway,
    Intake,
    CaseWorkflow,
    QualityMetrics,
    Escalation,
    KnowledgeBase,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Gateway,
        Service::Intake,
        Service::CaseWorkflow,
        Service::QualityMetrics,
        Service::Escalation,
        Service::KnowledgeBase,
    ];

    /// The name on the command line (`redress serve <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Intake => "intake",
            Self::CaseWorkflow => "case-workflow",
            Self::QualityMetrics => "quality-metrics",
            Self::Escalation => "escalation",
            Self::KnowledgeBase => "knowledge-base",
        }
    }

    /// The port it listens on unless `server.listen_addr` says otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Gateway => 50051,
            Self::Intake => 50052,
            Self::CaseWorkflow => 50053,
            Self::QualityMetrics => 50054,
            Self::Escalation => 50055,
            Self::KnowledgeBase => 50056,
        }
    }

    /// `server.listen_addr` by default: loopback on [`Service::default_port`].
    pub fn default_listen_addr(self) -> String {
        format!("127.0.0.1:{}", self.default_port())
    }

    /// The URL other services call it at by default.
    pub fn default_url(self) -> String {
        format!("http://127.0.0.1:{}", self.default_port())
    }

    /// Whether it owns a database (every service but the gateway).
    pub fn has_store(self) -> bool {
        self != Self::Gateway
    }
}

/// The configuration of `service` for `redress serve`: its defaults with the listen address of
/// [`Service::default_listen_addr`], then `file`, then the environment. A service with a store
/// needs `database.url` from the file or the environment.
pub fn config<T>(service: Service, file: Option<&Path>) -> anyhow::Result<T>
where
    T: DeserializeOwned + Serialize + Default,
{
    if service.has_store() {
        require_database_url(service, file)?;
    }
    redress_platform::config::load_with(file, &[("server.listen_addr", &service.default_listen_addr())])
}

/// Refuses a service with a store whose database is not given: production mode never falls
/// back to a file of its own choosing.
pub fn require_database_url(service: Service, file: Option<&Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        redress_platform::config::is_given(file, "database.url")?,
        "database.url is not set: {name} needs the database it owns, as REDRESS_DATABASE__URL=postgres://… \
         or `url` under `[database]` in the configuration file (--config); only `redress dev` keeps SQLite \
         files under ./data by default",
        name = service.name(),
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The address each service calls another at by default is where that one listens by
    /// default, so a suite started on one host without addresses finds itself.
    #[test]
    fn default_peer_urls_are_the_default_ports() {
        use Service::*;
        let gateway = redress_gateway::GatewayConfig::default();
        assert_eq!(gateway.server.listen_addr, Gateway.default_listen_addr());
        let upstreams = gateway.upstreams;
        assert_eq!(upstreams.intake, Intake.default_url());
        assert_eq!(upstreams.case_workflow, CaseWorkflow.default_url());
        assert_eq!(upstreams.quality_metrics, QualityMetrics.default_url());
        assert_eq!(upstreams.escalation, Escalation.default_url());
        assert_eq!(upstreams.knowledge_base, KnowledgeBase.default_url());
        let cases = redress_case_workflow::CaseWorkflowConfig::default();
        assert_eq!(cases.intake_url, Intake.default_url());
        let escalation = redress_escalation::EscalationConfig::default();
        assert_eq!(escalation.intake_url, Intake.default_url());
        assert_eq!(escalation.case_workflow_url, CaseWorkflow.default_url());
        let metrics = redress_quality_metrics::QualityMetricsConfig::default();
        assert_eq!(metrics.intake_url, Intake.default_url());
        assert_eq!(metrics.case_workflow_url, CaseWorkflow.default_url());
        assert_eq!(metrics.escalation_url, Escalation.default_url());
        let ports: std::collections::BTreeSet<_> = Service::ALL.iter().map(|s| s.default_port()).collect();
        assert_eq!(ports.len(), Service::ALL.len(), "one port per service");
    }

    fn unset(var: &str) -> bool {
        std::env::var_os(var).is_none()
    }

    #[test]
    fn serve_mode_listens_on_the_service_port_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("intake.toml");
        std::fs::write(&file, "[database]\nurl = \"sqlite://intake.db\"\n").unwrap();
        let intake: redress_intake::IntakeConfig = config(Service::Intake, Some(&file)).unwrap();
        if unset("REDRESS_SERVER__LISTEN_ADDR") {
            assert_eq!(intake.server.listen_addr, "127.0.0.1:50052");
        }
        std::fs::write(&file, "[database]\nurl = \"sqlite://intake.db\"\n[server]\nlisten_addr = \"0.0.0.0:7000\"\n")
            .unwrap();
        let intake: redress_intake::IntakeConfig = config(Service::Intake, Some(&file)).unwrap();
        if unset("REDRESS_SERVER__LISTEN_ADDR") {
            assert_eq!(intake.server.listen_addr, "0.0.0.0:7000", "the file wins over serve mode's default");
        }
    }

    #[test]
    fn a_service_with_a_store_needs_its_database_url_the_gateway_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "[database]\nmax_connections = 4\n").unwrap();
        let _: redress_gateway::GatewayConfig = config(Service::Gateway, Some(&file)).unwrap();
        if unset("REDRESS_DATABASE__URL") {
            for service in Service::ALL.into_iter().filter(|s| s.has_store()) {
                let e = require_database_url(service, Some(&file)).unwrap_err().to_string();
                assert!(e.contains("database.url") && e.contains("REDRESS_DATABASE__URL"), "{e}");
            }
            std::fs::write(&file, "[database]\nurl = \" \"\n").unwrap();
            assert!(require_database_url(Service::Intake, Some(&file)).is_err(), "blank is not given");
        }
    }
}
