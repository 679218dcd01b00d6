//! Supervision: a background task that dies takes its service out of rotation. A panic is
//! injected into each supervised task of the real binary in turn; the service must report
//! NOT_SERVING, name the task in its log, drain and exit non-zero.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use redress_integration_tests::TOKEN;
use redress_platform::signing::{GATEWAY, SigningKey};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What one run showed: the health statuses seen on the watch, the exit status, the log.
struct Outcome {
    statuses: Vec<ServingStatus>,
    success: bool,
    log: String,
}

/// Runs `command` with a panic injected into `task`; the process prints its address on a line
/// starting with `address_prefix` (stdout) or as the JSON field `addr` of `listening` (stderr).
async fn run_with_panic(mut command: Command, task: &str, service: &str, from_stdout: bool) -> Outcome {
    let mut child = command
        .env("REDRESS_INJECT_PANIC", task)
        .env("REDRESS_DEV_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env("REDRESS_TELEMETRY__JSON", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = if from_stdout { out.next_line().await } else { err.next_line().await };
        let line = line.unwrap().unwrap_or_else(|| panic!("{task}: exited before listening"));
        if let Some(addr) = line.strip_prefix("redress gateway listening on ") {
            break addr.to_owned();
        }
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["fields"]["message"].as_str().is_some_and(|m| m.ends_with(" listening")) {
            break json["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let log = tokio::spawn(async move {
        let mut log = String::new();
        while let Ok(Some(line)) = err.next_line().await {
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    let mut statuses = Vec::new();
    {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let mut health = HealthClient::new(channel);
        let request = HealthCheckRequest { service: service.to_owned() };
        let mut watch = health.watch(request).await.unwrap().into_inner();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(Ok(update))) = tokio::time::timeout_at(deadline, watch.next()).await {
            let status = ServingStatus::try_from(update.status).unwrap();
            statuses.push(status);
            if status == ServingStatus::NotServing && statuses.contains(&ServingStatus::Serving) {
                break;
            }
        }
        // Dropping the watch lets the server finish draining.
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    Outcome { statuses, success: status.success(), log: log.await.unwrap() }
}

fn assert_stopped_for(outcome: &Outcome, task: &str) {
    let served_then_stopped = outcome
        .statuses
        .iter()
        .position(|s| *s == ServingStatus::Serving)
        .is_some_and(|i| outcome.statuses[i..].contains(&ServingStatus::NotServing));
    assert!(served_then_stopped, "{task}: health went {:?}", outcome.statuses);
    assert!(!outcome.success, "{task}: the process must exit non-zero");
    let named = outcome.log.lines().any(|line| line.contains("background task stopped") && line.contains(task));
    let panicked = outcome.log.lines().any(|line| line.contains(task) && line.contains("panic injected"));
    assert!(named && panicked, "{task}: the log names the task and its panic:\n{}", outcome.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_any_supervised_task_stops_the_suite_with_an_error() {
    let tasks = [
        ("intake/sqlite-writer", redress_proto::services::INTAKE),
        ("intake/submission-batcher", redress_proto::services::INTAKE),
        ("intake/retention", redress_proto::services::INTAKE),
        ("case-workflow/sqlite-writer", redress_proto::services::CASE),
        ("case-workflow/sweeper", redress_proto::services::CASE),
        ("case-workflow/consumer<-intake", redress_proto::services::CASE),
        ("case-workflow/retention", redress_proto::services::CASE),
        ("case-workflow/calendar-watcher", redress_proto::services::CASE),
        ("quality-metrics/sqlite-writer", redress_proto::services::METRICS),
        ("quality-metrics/consumer<-intake", redress_proto::services::METRICS),
        ("quality-metrics/consumer<-case-workflow", redress_proto::services::METRICS),
        ("quality-metrics/retention", redress_proto::services::METRICS),
        ("quality-metrics/action-reminders", redress_proto::services::METRICS),
        ("quality-metrics/kpi-gauges", redress_proto::services::METRICS),
        ("knowledge-base/sqlite-writer", redress_proto::services::KNOWLEDGE),
        ("knowledge-base/search-index", redress_proto::services::KNOWLEDGE),
        ("knowledge-base/consumer<-case-workflow", redress_proto::services::KNOWLEDGE),
        ("knowledge-base/retention", redress_proto::services::KNOWLEDGE),
        ("escalation/sqlite-writer", redress_proto::services::ESCALATION),
        ("escalation/consumer<-intake", redress_proto::services::ESCALATION),
        ("escalation/consumer<-case-workflow", redress_proto::services::ESCALATION),
        ("escalation/sweeper", redress_proto::services::ESCALATION),
        ("escalation/case-requests", redress_proto::services::ESCALATION),
        ("escalation/matcher", redress_proto::services::ESCALATION),
        ("escalation/retention", redress_proto::services::ESCALATION),
    ];
    let runs = tasks.iter().map(|(task, _)| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
        command.args(["dev", "--gateway-addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir"]).arg(dir.path());
        // The gateway's overall health: the whole embedded suite stops when one service fails.
        let outcome = run_with_panic(command, task, "", true).await;
        (task, outcome, dir)
    });
    for (task, outcome, _dir) in futures_util::future::join_all(runs).await {
        assert_stopped_for(&outcome, task);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_postgres_outbox_sequencer_stops_the_service_with_an_error() {
    let test = "a_panic_in_the_postgres_outbox_sequencer_stops_the_service_with_an_error";
    for (service, task, health) in [
        ("intake", "intake/outbox-sequencer", redress_proto::services::INTAKE),
        ("case-workflow", "case-workflow/outbox-sequencer", redress_proto::services::CASE),
        ("quality-metrics", "quality-metrics/outbox-sequencer", redress_proto::services::METRICS),
        ("knowledge-base", "knowledge-base/outbox-sequencer", redress_proto::services::KNOWLEDGE),
        ("escalation", "escalation/outbox-sequencer", redress_proto::services::ESCALATION),
    ] {
        let Some(url) = redress_platform::testing::fresh_postgres_database(test).await.unwrap() else { return };
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
        command
            .args(["serve", service])
            .env("REDRESS_SERVER__LISTEN_ADDR", "127.0.0.1:0")
            .env("REDRESS_DATABASE__URL", &url)
            .env("REDRESS_AUTH__SIGNING_KEY", SigningKey::generate(service).to_pem())
            .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", SigningKey::generate(GATEWAY).public_key().to_pem())
            .env("REDRESS_INTAKE_URL", "http://127.0.0.1:9")
            .env("REDRESS_INDEX_DIR", std::env::temp_dir().join("redress-supervision-knowledge-index"))
            .env("REDRESS_PII__ACTIVE_KEY_ID", "k1")
            .env("REDRESS_PII__MASTER_KEYS__K1", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
            .env("REDRESS_PII__INDEX_KEY", "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=")
            .env("REDRESS_AUDIT__ACTIVE_KEY_ID", "k1")
            .env("REDRESS_AUDIT__KEYS__K1", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
        let outcome = run_with_panic(command, task, health, false).await;
        assert_stopped_for(&outcome, task);
    }
}
