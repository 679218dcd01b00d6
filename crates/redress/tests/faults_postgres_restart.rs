//! PostgreSQL restarted under the suite during a burst of submissions. Alone in its binary: it
//! stops the server every other PostgreSQL test of a binary would be using.
#![allow(clippy::unwrap_used)]

mod faults_support;

use std::time::Duration;

use faults_support::{Burst, Suite, assert_exactly_once};

/// The local cluster serving `url` (`pg_lsclusters`: version and name), when this process may
/// restart it; else why not.
fn local_cluster(url: &str) -> Result<(String, String), String> {
    let uid = std::process::Command::new("id").arg("-u").output().map_err(|e| format!("cannot run id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".to_owned());
    }
    let listed =
        std::process::Command::new("pg_lsclusters").arg("-h").output().map_err(|e| format!("no pg_lsclusters: {e}"))?;
    let port = url
        .rsplit('@')
        .next()
        .and_then(|host| host.split('/').next())
        .and_then(|host| host.rsplit_once(':'))
        .map_or("5432", |(_, port)| port);
    let clusters = String::from_utf8_lossy(&listed.stdout).into_owned();
    clusters
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[2] == port)
        .map(|fields| (fields[0].to_owned(), fields[1].to_owned()))
        .ok_or_else(|| format!("no local cluster on port {port}: {clusters}"))
}

fn pg_ctlcluster(cluster: &(String, String), action: &str) {
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster.0, &cluster.1, action])
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster {action}: {status}");
}

/// Starts the cluster again if the test fails while it is stopped.
struct Restart<'a>(&'a (String, String));

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.0.0, &self.0.1, "start"])
            .status();
    }
}

/// PostgreSQL stops for a few seconds and starts again while sixteen callers submit through the
/// gateway: callers see UNAVAILABLE (never INTERNAL) while it is away, every service goes on
/// without a restart once it is back, and every acknowledged complaint is in intake once, has
/// one case and is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_during_a_burst_fails_calls_as_unavailable_and_every_service_resumes() {
    let test = "postgres_restarted_during_a_burst_fails_calls_as_unavailable_and_every_service_resumes";
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let server = std::env::var(redress_platform::testing::POSTGRES_URL_ENV).unwrap_or_default();
    let cluster = match local_cluster(&server) {
        Ok(cluster) => cluster,
        Err(why) if !ci || server.is_empty() => {
            // Without a server at all, the suite says it is skipped (and fails on CI).
            if !server.is_empty() {
                redress_platform::testing::skipped(&format!("{test} on PostgreSQL ({why})"));
                return;
            }
            (String::new(), String::new())
        }
        Err(why) => panic!("{test} must restart the local PostgreSQL under CI=true: {why}"),
    };
    let started = std::time::Instant::now();
    let Some(mut suite) = Suite::start(test).await else { return };
    eprintln!("{:?}: serving", started.elapsed());
    let burst = Burst::start(suite.gateway(), "restart", 16);
    burst.wait_for(50, Duration::from_secs(60), || suite.logs()).await;
    let before = suite.pids();

    let stopped_at = burst.acknowledged_count();
    let restart = Restart(&cluster);
    pg_ctlcluster(&cluster, "stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg_ctlcluster(&cluster, "start");
    std::mem::forget(restart);
    eprintln!("{:?}: PostgreSQL restarted with {stopped_at} acknowledged", started.elapsed());

    burst.wait_for(50, Duration::from_secs(60), || suite.logs()).await;
    suite.wait_serving(Duration::from_secs(30)).await;
    assert_eq!(suite.pids(), before, "a service was restarted");
    let (acknowledged, failures) = burst.finish().await;
    eprintln!("{} acknowledged; failures {failures:?}", acknowledged.len());
    assert!(
        failures.keys().all(|k| k.starts_with("Unavailable/")),
        "callers saw failures other than UNAVAILABLE: {failures:?}"
    );
    assert!(failures.contains_key("Unavailable/DATABASE_UNAVAILABLE"), "the restart went unnoticed: {failures:?}");
    eprintln!("{:?}: {} acknowledged", started.elapsed(), acknowledged.len());
    assert_exactly_once(suite.gateway(), "restart", &acknowledged, Duration::from_secs(60), || suite.logs()).await;
    eprintln!("{:?}: checked", started.elapsed());
    assert_eq!(suite.pids(), before, "a service was restarted");
    suite.stop().await;
}
