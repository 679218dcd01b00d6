//! Faults during a burst of submissions: each service of the suite served one process per
//! service SIGKILLed and restarted in turn, and the embedded suite's disk filled up. Callers see
//! only failures they are told to retry, nothing acknowledged is lost or recorded twice, and
//! what was not restarted recovers by itself.
#![allow(clippy::unwrap_used)]

mod faults_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use faults_support::{Burst, SERVED, Suite, assert_exactly_once};
use redress_integration_tests::TOKEN;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// Each service in turn, gateway first, is SIGKILLed while sixteen callers submit through the
/// gateway, and started again on its port. The others keep their processes and follow the
/// restarted one's feed again by themselves; every acknowledged complaint is in intake once, has
/// one case and is counted once, and callers saw nothing but UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_each_service_in_turn_during_a_burst_loses_and_repeats_nothing() {
    let test = "sigkill_of_each_service_in_turn_during_a_burst_loses_and_repeats_nothing";
    let started = Instant::now();
    let Some(mut suite) = Suite::start(test).await else { return };
    eprintln!("{:?}: serving", started.elapsed());
    let burst = Burst::start(suite.gateway(), "kill", 16);
    burst.wait_for(30, Duration::from_secs(60), || suite.logs()).await;
    for service in SERVED {
        burst.set_phase(service);
        let before = suite.pids();
        let killed_at = burst.acknowledged_count();
        suite.kill(service).await;
        // The burst goes on (or retries) without it for a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        suite.spawn(service);
        suite.wait_serving(Duration::from_secs(60)).await;
        eprintln!("{:?}: {service} serving again", started.elapsed());
        burst.wait_for(25, Duration::from_secs(60), || suite.logs()).await;
        let after = suite.pids();
        for (other, pid) in &before {
            if other == &service {
                assert_ne!(after[other], *pid);
            } else {
                assert_eq!(after[other], *pid, "{other} was restarted while {service} was down");
            }
        }
        eprintln!(
            "{:?}: {service} killed at {killed_at} acknowledged, now {}",
            started.elapsed(),
            burst.acknowledged_count()
        );
    }
    let (acknowledged, failures) = burst.finish().await;
    eprintln!("{:?}: {} acknowledged; failures {failures:?}", started.elapsed(), acknowledged.len());
    assert_exactly_once(suite.gateway(), "kill", &acknowledged, Duration::from_secs(60), || suite.logs()).await;
    eprintln!("{:?}: checked", started.elapsed());
    // Every answer was UNAVAILABLE. Only the gateway's own death leaves calls without one: their
    // connection broke (tonic says UNKNOWN "transport error"), and they too were retried with the
    // same request id.
    assert!(
        failures.keys().all(|k| k.starts_with("Unavailable/") || k == "Unknown/- during gateway"),
        "callers saw failures other than UNAVAILABLE: {failures:?}"
    );
    suite.stop().await;
}

/// A tmpfs mounted for the test, unmounted when dropped (lazily when still in use, e.g. after
/// a failure left the suite running).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `megabytes` on `dir`, or says why it cannot.
    fn mount(dir: &Path, megabytes: u32) -> Result<Self, String> {
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Starts `redress dev` on `data_dir`, its log in `log`; waits until every service serves.
async fn start_dev(data_dir: &Path, log: &Path) -> (Child, Channel) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["dev", "--gateway-addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir"])
        .arg(data_dir)
        .env("REDRESS_DEV_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap();
        let line = line.unwrap_or_else(|| panic!("redress dev exited:\n{}", std::fs::read_to_string(log).unwrap()));
        if let Some(addr) = line.strip_prefix("redress gateway listening on ") {
            break addr.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let started = Instant::now();
    for service in [
        redress_proto::services::INTAKE,
        redress_proto::services::CASE,
        redress_proto::services::ESCALATION,
        redress_proto::services::KNOWLEDGE,
        redress_proto::services::METRICS,
    ] {
        loop {
            let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
            if health.check(request).await.unwrap().into_inner().status == 1 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{service} not serving");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (child, channel)
}

/// Fills the file system of `dir` with `filler` until it is full, then gives back `slack` bytes.
fn fill(filler: &Path, slack: u64) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut written = 0_u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", filler.display()),
        }
    }
    let _ = file.flush();
    file.set_len(written.saturating_sub(slack)).unwrap();
    written
}

/// Every SQLite file under `dir`.
fn sqlite_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sqlite_files(&path));
        } else if path.extension().is_some_and(|e| e == "db") {
            files.push(path);
        }
    }
    files
}

/// The embedded suite's data directory fills up during a burst: callers are told to retry
/// (RESOURCE_EXHAUSTED `STORAGE_FULL` or UNAVAILABLE, never INTERNAL), nothing acknowledged is
/// lost, and once space is freed the suite goes on by itself: the retried and new submissions
/// are acknowledged and every acknowledged complaint opens its one case. Stopped cleanly, every
/// SQLite file passes `PRAGMA integrity_check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_calls_as_retryable_and_the_suite_resumes_once_space_is_freed() {
    let test = "a_full_disk_fails_calls_as_retryable_and_the_suite_resumes_once_space_is_freed";
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let tmpfs = match Tmpfs::mount(&data, 96) {
        Ok(tmpfs) => tmpfs,
        Err(why) if !ci => {
            redress_platform::testing::skipped(&format!("{test} on a small tmpfs ({why})"));
            return;
        }
        Err(why) => panic!("{test} needs a tmpfs it can mount under CI=true: {why}"),
    };
    let log = dir.path().join("redress.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let (mut child, channel) = start_dev(&data, &log).await;

    let burst = Burst::start(channel.clone(), "full", 8);
    burst.wait_for(100, Duration::from_secs(60), logs).await;
    let filler = data.join("filler");
    let filled = fill(&filler, 256 * 1024);
    eprintln!("filled {} MiB", filled / (1024 * 1024));

    // Calls fail once the space left is used up.
    let started = Instant::now();
    while burst.failures.lock().unwrap().values().sum::<usize>() < 50 {
        assert!(started.elapsed() < Duration::from_secs(60), "no call failed on a full disk:\n{}", logs());
        assert!(child.try_wait().unwrap().is_none(), "redress dev stopped on a full disk:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stalled_at = burst.acknowledged_count();
    assert!(child.try_wait().unwrap().is_none(), "redress dev stopped on a full disk:\n{}", logs());

    // Space again: the retries and new submissions go through without a restart.
    std::fs::remove_file(&filler).unwrap();
    burst.wait_for(200, Duration::from_secs(60), logs).await;
    let (acknowledged, failures) = burst.finish().await;
    eprintln!("{} acknowledged ({stalled_at} when the disk was full); failures {failures:?}", acknowledged.len());
    assert!(
        failures.keys().all(|k| k == "ResourceExhausted/STORAGE_FULL" || k.starts_with("Unavailable/")),
        "callers saw failures they are not told to retry: {failures:?}"
    );
    assert!(failures.contains_key("ResourceExhausted/STORAGE_FULL"), "{failures:?}");
    assert_exactly_once(channel, "full", &acknowledged, Duration::from_secs(60), logs).await;

    let pid = child.id().unwrap();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "redress dev stopped with {status}:\n{}", logs());

    let files = sqlite_files(&data);
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.unwrap();
        assert_eq!(check, ["ok"], "{}", file.display());
        conn.close().await.unwrap();
    }
    drop(tmpfs);
}
