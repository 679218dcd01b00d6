//! Production mode: one service per process, configured by environment variables only.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use redress_platform::signing::{GATEWAY, SigningKey};

/// A fresh Ed25519 private key of `signer`, PEM.
fn key_pem(signer: &str) -> String {
    SigningKey::generate(signer).to_pem()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_intake_from_the_environment_becomes_serving_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["serve", "intake"])
        .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
        .env("REDRESS_DATABASE__URL", format!("sqlite://{}/intake.db", dir.path().display()))
        .env("REDRESS_AUTH__SIGNING_KEY", key_pem("intake"))
        .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", SigningKey::generate(GATEWAY).public_key().to_pem())
        .env("REDRESS_PII__ACTIVE_KEY_ID", "k2")
        .env("REDRESS_PII__MASTER_KEYS__K1", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
        .env("REDRESS_PII__MASTER_KEYS__K2", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=")
        .env("REDRESS_PII__INDEX_KEY", "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=")
        .env("REDRESS_TELEMETRY__JSON", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["fields"]["message"] == "intake listening" {
            break json["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let started = Instant::now();
    loop {
        let request = tonic_health::pb::HealthCheckRequest { service: "redress.intake.v1.IntakeService".to_owned() };
        if health.check(request).await.unwrap().into_inner().status == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "drained and exited cleanly: {status}");
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    for service in ["gateway", "case-workflow"] {
        let output = Command::new(env!("CARGO_BIN_EXE_redress"))
            .args(["serve", service])
            .env("REDRESS_DATABASE__URL", format!("sqlite://{}/{service}.db", dir.path().display()))
            .env_remove("REDRESS_SIGNING_KEY")
            .env_remove("REDRESS_AUTH__SIGNING_KEY")
            .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("signing_key"), "{service}: {stderr}");
    }
}

/// Case-workflow chains its audit trails under a key kept outside the database: without one
/// it does not start, and says which settings are missing.
#[tokio::test]
async fn serve_case_workflow_refuses_to_start_without_an_audit_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["serve", "case-workflow"])
        .env("REDRESS_AUTH__SIGNING_KEY", key_pem("case-workflow"))
        .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", SigningKey::generate(GATEWAY).public_key().to_pem())
        .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
        .env("REDRESS_DATABASE__URL", format!("sqlite://{}/case-workflow.db", dir.path().display()))
        .env_remove("REDRESS_AUDIT__ACTIVE_KEY_ID")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("audit.active_key_id and audit.keys are required"), "{stderr}");
}

/// A gateway configured with static dev tokens (which never expire and stand for whoever they
/// say) starts only with the development flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_gateway_refuses_dev_tokens_without_the_development_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let toml = r#"
[[auth.dev_tokens]]
token = "dev-token-of-a-test"
principal = { subject = "dev", org_unit = "/", permissions = ["pii.manage"] }
"#;
    std::fs::write(&config, toml).unwrap();
    let gateway = |flag: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
        command.args(["serve", "gateway", "--config", config.to_str().unwrap()]).args(flag);
        command
            .env("REDRESS_SIGNING_KEY", key_pem(GATEWAY))
            .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
            .env("REDRESS_TELEMETRY__JSON", "true")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let output = gateway(None).output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("development mode"), "{stderr}");
    // With the flag it starts (and says that dev tokens are accepted).
    let mut child = gateway(Some("--allow-dev-tokens")).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut warned = false;
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let message = json["fields"]["message"].as_str().unwrap_or_default();
        warned |= message.contains("dev tokens are accepted");
        if message == "gateway listening" {
            break;
        }
    }
    assert!(warned);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn serve_intake_refuses_to_start_without_personal_information_keys() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["serve", "intake"])
        .env("REDRESS_AUTH__SIGNING_KEY", key_pem("intake"))
        .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
        .env("REDRESS_DATABASE__URL", format!("sqlite://{}/intake.db", dir.path().display()))
        .env_remove("REDRESS_PII__INDEX_KEY")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pii.index_key"), "{stderr}");
}

/// Production mode never picks a database: a service with a store does not start, and its
/// migrations do not run, without `database.url`, and the error names the setting and its
/// environment variable. Nothing is created in the working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_migrate_refuse_to_start_without_a_database_url() {
    let dir = tempfile::tempdir().unwrap();
    for service in ["intake", "case-workflow", "escalation", "quality-metrics", "knowledge-base"] {
        for command in ["serve", "migrate"] {
            let run = Command::new(env!("CARGO_BIN_EXE_redress"))
                .args([command, service])
                .current_dir(dir.path())
                .env_remove("REDRESS_DATABASE__URL")
                .env_remove("REDRESS_CONFIG")
                .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
                .env("REDRESS_AUTH__SIGNING_KEY", key_pem(service))
                .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", SigningKey::generate(GATEWAY).public_key().to_pem())
                .kill_on_drop(true)
                .output();
            let output = tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .unwrap_or_else(|_| panic!("{command} {service} started without a database url"))
                .unwrap();
            assert!(!output.status.success(), "{command} {service}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("database.url is not set"), "{command} {service}: {stderr}");
            assert!(stderr.contains("REDRESS_DATABASE__URL"), "{command} {service}: {stderr}");
        }
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written to the working directory");
}

const MASTER_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const INDEX_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

/// `redress migrate` reads the service's configuration file and environment as `serve` does:
/// the database from the file, a key from the environment (`…__K1` names key id `k1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_takes_the_configuration_file_and_environment_of_serve() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("intake.db");
    let config = dir.path().join("intake.toml");
    let toml = format!(
        "[database]\nurl = \"sqlite://{}\"\n\n[pii]\nactive_key_id = \"k1\"\nindex_key = \"{INDEX_KEY}\"\n",
        database.display()
    );
    std::fs::write(&config, toml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["migrate", "intake", "--config", config.to_str().unwrap()])
        .env_remove("REDRESS_DATABASE__URL")
        .env_remove("REDRESS_PII__ACTIVE_KEY_ID")
        .env_remove("REDRESS_PII__INDEX_KEY")
        .env("REDRESS_PII__MASTER_KEYS__K1", MASTER_KEY)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("migrations applied to sqlite://"));
    assert!(database.exists(), "the file's database was migrated");
}

/// Key ids are lower case in a file as in the environment (whose names are lowercased): an
/// upper-case one is refused, naming the setting, rather than silently naming another key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_case_key_id_in_a_configuration_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("intake.toml");
    let toml = format!(
        "[database]\nurl = \"sqlite://{}/intake.db\"\n\n[pii]\nactive_key_id = \"k1\"\nindex_key = \"{INDEX_KEY}\"\n\
         [pii.master_keys]\nK1 = \"{MASTER_KEY}\"\n",
        dir.path().display()
    );
    std::fs::write(&config, toml).unwrap();
    for command in ["migrate", "serve"] {
        let run = Command::new(env!("CARGO_BIN_EXE_redress"))
            .args([command, "intake", "--config", config.to_str().unwrap()])
            .env_remove("REDRESS_DATABASE__URL")
            .env_remove("REDRESS_PII__ACTIVE_KEY_ID")
            .env_remove("REDRESS_PII__INDEX_KEY")
            .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
            .env("REDRESS_AUTH__SIGNING_KEY", key_pem("intake"))
            .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", SigningKey::generate(GATEWAY).public_key().to_pem())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
        assert!(!output.status.success(), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("pii.master_keys.K1") && stderr.contains("must be lower case"), "{command}: {stderr}");
    }
}

/// One line per accepted complaint is not written at INFO (a busy intake would log each one);
/// at DEBUG it is, and the count is the `redress_complaints_accepted_total` counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_complaint_is_logged_at_debug_not_at_info() {
    use redress_platform::principal::{Permission, Principal};
    use redress_platform::signing::ServiceCredentials;
    use redress_proto::redress::intake::v1::SubmitComplaintRequest;
    use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;

    for (level, logged) in [("info", false), ("debug", true)] {
        let dir = tempfile::tempdir().unwrap();
        let gateway = SigningKey::generate(GATEWAY);
        let mut child = Command::new(env!("CARGO_BIN_EXE_redress"))
            .args(["serve", "intake"])
            .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
            .env("REDRESS_DATABASE__URL", format!("sqlite://{}/intake.db", dir.path().display()))
            .env("REDRESS_AUTH__SIGNING_KEY", key_pem("intake"))
            .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", gateway.public_key().to_pem())
            .env("REDRESS_PII__ACTIVE_KEY_ID", "k1")
            .env("REDRESS_PII__MASTER_KEYS__K1", MASTER_KEY)
            .env("REDRESS_PII__INDEX_KEY", INDEX_KEY)
            .env("REDRESS_TELEMETRY__JSON", "true")
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line =
                tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
            let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if json["fields"]["message"] == "intake listening" {
                break json["fields"]["addr"].as_str().unwrap().to_owned();
            }
        };
        let messages = tokio::spawn(async move {
            let mut messages = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                messages.push(json["fields"]["message"].as_str().unwrap_or_default().to_owned());
            }
            messages
        });
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let mut intake = IntakeServiceClient::new(channel);
        let principal = Principal {
            subject: "user:li-na".to_owned(),
            org_unit: "institutions/demo-bank".to_owned(),
            permissions: vec![Permission::ComplaintsCreate.as_str().to_owned()],
            ..Principal::default()
        };
        let credentials = ServiceCredentials::new(std::sync::Arc::new(gateway), principal, "intake");
        let started = Instant::now();
        loop {
            let mut request = tonic::Request::new(SubmitComplaintRequest {
                request_id: "log-level-1".to_owned(),
                complaint: Some(redress_intake::testing::complaint("年费已达标仍被扣收。")),
            });
            credentials.apply(&mut request).unwrap();
            match intake.submit_complaint(request).await {
                Ok(_) => break,
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    assert!(started.elapsed() < Duration::from_secs(30), "not serving: {status:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
        let pid = child.id().unwrap();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
        let messages = messages.await.unwrap();
        assert_eq!(messages.iter().any(|m| m == "complaint accepted"), logged, "at {level}: {messages:?}");
    }
}
