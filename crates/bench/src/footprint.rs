//! `redress-bench --footprint`: the embedded suite as `redress dev` starts it (every service,
//! the knowledge base's starter content) on an empty data directory: the time from start to
//! every public service SERVING through the gateway's health (target ≤ 1.5 s), and the resident
//! memory once it has been idle 5 s (target ≤ 150 MB). The real `redress` binary beside this
//! one runs as a child process when it exists (its own memory alone is measured); otherwise the
//! suite starts in this process. Three starts, medians.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redress::{Suite, SuiteOptions};
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;

use super::median;
use crate::sys::{Memory, print_load, verdict};

const STARTS: usize = 3;
const IDLE: Duration = Duration::from_secs(5);

/// Whether every public service reports SERVING through the gateway at `addr` now.
async fn all_serving(addr: std::net::SocketAddr) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else { return false };
    let Ok(Ok(channel)) = tokio::time::timeout(
        Duration::from_millis(200),
        endpoint.connect_timeout(Duration::from_millis(100)).connect(),
    )
    .await
    else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in redress_gateway::public_services() {
        let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
        match health.check(request).await {
            Ok(response) if response.get_ref().status == ServingStatus::Serving as i32 => {}
            _ => return false,
        }
    }
    true
}

/// Waits (polling every 5 ms, at most a minute) until every service is SERVING; the time since
/// `started`.
async fn until_serving(addr: std::net::SocketAddr, started: Instant) -> anyhow::Result<Duration> {
    while started.elapsed() < Duration::from_secs(60) {
        if all_serving(addr).await {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("the suite did not report every service SERVING within a minute")
}

fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The `redress` binary built beside this one, if there is one.
fn redress_binary() -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.parent()?.join("redress");
    path.is_file().then_some(path)
}

/// One start of the real binary: (time to SERVING, memory after idling).
async fn start_child(binary: &std::path::Path) -> anyhow::Result<(Duration, Memory)> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let log = std::fs::File::create(dir.path().join("redress.log"))?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["dev", "--gateway-addr", &addr.to_string(), "--metrics-addr", ""])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("REDRESS_DEV_TOKEN", "bench-footprint")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let outcome = async {
        let serving = until_serving(addr, started).await?;
        tokio::time::sleep(IDLE).await;
        anyhow::Ok((serving, Memory::of(Some(child.id()))))
    }
    .await;
    // Stop it as an operator would (SIGTERM), then make sure.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    for _ in 0..100 {
        if child.try_wait()?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if child.try_wait()?.is_none() {
        child.kill()?;
        child.wait()?;
    }
    if outcome.is_err() {
        eprintln!("{}", std::fs::read_to_string(dir.path().join("redress.log")).unwrap_or_default());
    }
    outcome
}

/// One start of the suite in this process: (time to SERVING, this process's memory after idling).
async fn start_in_process() -> anyhow::Result<(Duration, Memory)> {
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let suite = Suite::start(
        SuiteOptions {
            data_dir: dir.path().join("data"),
            gateway_addr: "127.0.0.1:0".to_owned(),
            dev_token: "bench-footprint".to_owned(),
            starter_content: true,
            ..SuiteOptions::default()
        },
        shutdown,
    )
    .await?;
    let serving = until_serving(suite.gateway_addr, started).await?;
    tokio::time::sleep(IDLE).await;
    let memory = Memory::of(None);
    suite.stop().await?;
    Ok((serving, memory))
}

pub async fn run() -> anyhow::Result<()> {
    let binary = redress_binary();
    match &binary {
        Some(path) => println!("redress-bench --footprint: `{} dev` as a child process", path.display()),
        None => println!("redress-bench --footprint: no redress binary beside this one; the suite in this process"),
    }
    print_load("start");
    let (mut times, mut rss) = (Vec::new(), Vec::new());
    for start in 1..=STARTS {
        let (serving, memory) = match &binary {
            Some(path) => start_child(path).await?,
            None => start_in_process().await?,
        };
        println!(
            "start {start}: every service SERVING after {:.3} s; after {} s idle RSS {:.1} MB ({:.1} MiB), peak {:.1} MiB",
            serving.as_secs_f64(),
            IDLE.as_secs(),
            memory.rss_kib as f64 * 1024.0 / 1e6,
            memory.rss_mib(),
            memory.hwm_mib()
        );
        times.push(serving.as_secs_f64());
        rss.push(memory.rss_kib as f64 * 1024.0 / 1e6);
    }
    let (time, rss) = (median(times), median(rss));
    println!("medians of {STARTS} starts on an empty data directory:");
    println!("  start → every service SERVING  {time:>7.3} s   (target ≤ 1.5 s)   {}", verdict(time <= 1.5));
    println!(
        "  idle RSS after {} s           {rss:>7.1} MB  (target ≤ 150 MB)  {}",
        IDLE.as_secs(),
        verdict(rss <= 150.0)
    );
    println!("  (the gateway looks at its upstreams' health every 500 ms, so SERVING is seen up to 0.5 s late)");
    print_load("end");
    Ok(())
}
