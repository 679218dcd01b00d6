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
    for service in ["gateway", "case-workflow"] {
        let output = Command::new(env!("CARGO_BIN_EXE_redress"))
            .args(["serve", service])
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
