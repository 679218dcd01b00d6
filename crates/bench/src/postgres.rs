//! `redress-bench --postgres <URL>`: intake on PostgreSQL against the server's own floor,
//! measured in the same run.
//!
//! 1. Baseline: a raw single-row INSERT + COMMIT (BEGIN, INSERT, COMMIT) into a bare table
//!    (text primary key, a payload the size of an encoded complaint) from 32 tasks on 32
//!    connections.
//! 2. Durable SubmitComplaint straight to an intake server on PostgreSQL (32-connection pool),
//!    32 in flight: every complaint by a new person, and half of them by returning
//!    complainants. Rounds interleave the scenarios; the ratios to the baseline are taken between
//!    medians (target ≥ 0.8).
//! 3. A reference: the same intake on SQLite (the embedded store), new people, interleaved with
//!    the others. It shows what a submission's own work (checks, classification, sealing,
//!    events) lets this machine do whatever the store, and so what PostgreSQL adds to it.
//!
//! While each runs, the server's sessions of the benchmark's databases are sampled
//! (`pg_stat_activity`): state, wait event and statement, so that where the time goes shows
//! without `pg_stat_statements`. Before the rounds, complaint accepted → case visible is
//! measured with case-workflow on PostgreSQL too (target p99 ≤ 200 ms).
//!
//! Every database is created for the run (`bench_<pid>_…`) and dropped at its end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use redress::SuiteKeys;
use redress_case_workflow::{CaseWorkflow, CaseWorkflowConfig};
use redress_intake::{Intake, IntakeConfig};
use redress_platform::db::DatabaseConfig;
use redress_platform::server::ServerConfig;
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Args, Outcome, Scenario, channels, complaint, drive, median};
use crate::latency::{Visibility, accepted_to_visible, print_visibility};
use crate::sys::{Cpu, cores, print_load, verdict};

/// Complainants who come back in the mixed scenario (seeded before the rounds).
const RETURNING: u64 = 1000;
/// First person of each scenario of new people, far apart so that none meets another's.
const NEW_PEOPLE: u64 = 5_000_000;
const MIXED_NEW_PEOPLE: u64 = 10_000_000;
const VISIBLE_PEOPLE: u64 = 15_000_000;
/// The scenario of the same intake on SQLite.
const EMBEDDED: usize = 3;
/// How often the server's sessions are sampled while a scenario runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").context("the PostgreSQL URL has no scheme")? + 3;
    let authority_end = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

fn loopback() -> ServerConfig {
    ServerConfig { listen_addr: "127.0.0.1:0".to_owned(), ..ServerConfig::default() }
}

async fn pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .context("cannot connect to PostgreSQL")
}

/// The databases of this run, dropped when it ends.
struct Databases {
    admin: PgPool,
    names: Vec<String>,
}

impl Databases {
    async fn create(&mut self, name: String) -> anyhow::Result<String> {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&self.admin).await?;
        self.names.push(name.clone());
        Ok(name)
    }

    async fn drop_all(&self) {
        for name in &self.names {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&self.admin).await {
                eprintln!("could not drop database {name}: {e}");
            }
        }
    }
}

/// Samples of the server's sessions: (state, wait event, statement) → times seen.
#[derive(Default)]
struct Activity {
    samples: u64,
    seen: HashMap<(String, String, String), u64>,
}

impl Activity {
    fn print(&self, name: &str) {
        let total: u64 = self.seen.values().sum();
        if total == 0 {
            return;
        }
        println!(
            "  {name}: {} samples, {:.1} sessions of the run's databases on average",
            self.samples,
            total as f64 / self.samples.max(1) as f64
        );
        let mut by_state: HashMap<&str, u64> = HashMap::new();
        for ((state, _, _), n) in &self.seen {
            *by_state.entry(state).or_default() += n;
        }
        let mut states: Vec<_> = by_state.into_iter().collect();
        states.sort_by_key(|state| std::cmp::Reverse(state.1));
        let states: Vec<String> =
            states.iter().map(|(s, n)| format!("{s} {:.0} %", 100.0 * *n as f64 / total as f64)).collect();
        println!("    by state: {}", states.join(", "));
        let mut rows: Vec<_> = self.seen.iter().collect();
        rows.sort_by_key(|row| std::cmp::Reverse(*row.1));
        for ((state, wait, query), n) in rows.into_iter().take(12) {
            println!("    {:>5.1} %  {state:<20} {wait:<24} {query}", 100.0 * *n as f64 / total as f64);
        }
    }
}

/// Samples the sessions of `databases` until `stop`.
async fn sample(admin: PgPool, databases: Vec<String>, stop: Arc<AtomicBool>) -> Activity {
    let mut activity = Activity::default();
    while !stop.load(Ordering::Relaxed) {
        let rows: Result<Vec<(String, String, String)>, _> = sqlx::query_as(
            "SELECT coalesce(state, ''), \
                    CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU') \
                         ELSE coalesce(wait_event_type || ':' || wait_event, '') END, \
                    regexp_replace(left(query, 90), '\\s+', ' ', 'g') \
             FROM pg_stat_activity \
             WHERE datname = ANY($1) AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .bind(&databases)
        .fetch_all(&admin)
        .await;
        if let Ok(rows) = rows {
            activity.samples += 1;
            for row in rows {
                *activity.seen.entry(row).or_default() += 1;
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    activity
}

/// Runs `scenario` while sampling the server's sessions; also what CPU it used.
async fn drive_sampled(
    scenario: &Scenario,
    args: &Args,
    admin: &PgPool,
    databases: &[String],
    activity: &mut Activity,
) -> anyhow::Result<(Outcome, Cpu)> {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(admin.clone(), databases.to_vec(), stop.clone()));
    // The CPU of the measured window only (after the warm-up, until the end), the window whose
    // completed calls the outcome counts.
    let (warmup, seconds) = (Duration::from_secs(args.warmup), Duration::from_secs(args.seconds));
    let window = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let before = Cpu::now();
        tokio::time::sleep(seconds).await;
        Cpu::now().since(before)
    });
    let outcome = drive(scenario, args).await;
    let used = window.await?;
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.await?;
    activity.samples += sampled.samples;
    for (key, n) in sampled.seen {
        *activity.seen.entry(key).or_default() += n;
    }
    Ok((outcome?, used))
}

/// CPU per operation of each scenario over all its rounds, and what that lets the machine do at
/// best: its cores divided by the CPU per operation. For a submission on PostgreSQL, the cores
/// divided by this process's share alone (the load generator, intake and its PostgreSQL client)
/// is the most any server could let it reach, even one that took no CPU at all.
fn print_cpu(scenarios: &[Scenario], cpu: &[(Cpu, u64)], floor: f64) {
    let cores = cores() as f64;
    println!();
    println!(
        "CPU per operation, all rounds ({cores} cores; \"this process\" is the load generator and intake, \"the rest\" \
         mostly the server):"
    );
    println!("  {:<36} {:>13} {:>10} {:>10}   {:>22}", "", "this process", "the rest", "in all", "cores / CPU per op");
    for (k, scenario) in scenarios.iter().enumerate() {
        let (used, ops) = cpu[k];
        if ops == 0 {
            continue;
        }
        let per = used / ops as f64;
        let rest = (per.machine - per.process).max(0.0);
        println!(
            "  {:<36} {:>10.0} µs {:>7.0} µs {:>7.0} µs   {:>15.0} per s",
            scenario.name,
            per.process * 1e6,
            rest * 1e6,
            per.machine * 1e6,
            cores / per.machine.max(f64::EPSILON)
        );
    }
    for (k, scenario) in scenarios.iter().enumerate().skip(1).filter(|(k, _)| *k != EMBEDDED) {
        let (used, ops) = cpu[k];
        if ops == 0 || floor <= 0.0 {
            continue;
        }
        let ceiling = cores / (used.process / ops as f64).max(f64::EPSILON);
        println!(
            "  {}: even a server that took no CPU would leave at most {ceiling:.0} per s (this process's CPU per \
             submission alone): {:.3} of the baseline",
            scenario.name,
            ceiling / floor
        );
    }
}

async fn wait_serving(addr: std::net::SocketAddr, service: &str) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channels(addr, 1).await?.remove(0));
    for _ in 0..1200 {
        let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
        if health.check(request).await?.into_inner().status == ServingStatus::Serving as i32 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{service} did not become SERVING")
}

pub async fn run(url: &str, args: &Args) -> anyhow::Result<()> {
    let connections = args.postgres_connections.max(1);
    println!(
        "redress-bench --postgres: {connections} connections and {connections} in flight, {} s measured after {} s \
         warm-up, {} rounds",
        args.seconds, args.warmup, args.rounds
    );
    print_load("start");
    let admin = pool(url, 3).await?;
    let (version, synchronous_commit, max_connections, fsync, wal_sync_method): (
        String,
        String,
        String,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'), \
             current_setting('max_connections'), current_setting('fsync'), current_setting('wal_sync_method')",
    )
    .fetch_one(&admin)
    .await?;
    println!(
        "server: PostgreSQL {version}, synchronous_commit={synchronous_commit}, max_connections={max_connections}, \
         fsync={fsync}, wal_sync_method={wal_sync_method}"
    );
    let mut databases = Databases { admin: admin.clone(), names: Vec::new() };
    let outcome = measure(url, args, connections, &admin, &mut databases).await;
    databases.drop_all().await;
    print_load("end");
    outcome
}

async fn measure(
    url: &str,
    args: &Args,
    connections: usize,
    admin: &PgPool,
    databases: &mut Databases,
) -> anyhow::Result<()> {
    let pid = std::process::id();
    let raw_db = databases.create(format!("bench_{pid}_raw")).await?;
    let intake_db = databases.create(format!("bench_{pid}_intake")).await?;
    let case_db = databases.create(format!("bench_{pid}_case")).await?;

    // Baseline: the bare table, written as intake writes, one row per transaction.
    let raw = pool(&with_database(url, &raw_db)?, connections as u32).await?;
    sqlx::query("CREATE TABLE submissions (id text PRIMARY KEY, payload bytea NOT NULL)").execute(&raw).await?;
    let payload = prost::Message::encode_to_vec(&complaint(0));
    println!("baseline payload: {} bytes (an encoded complaint)", payload.len());
    let baseline = Scenario::new("raw INSERT + COMMIT (baseline)", move |i| {
        let (raw, payload) = (raw.clone(), payload.clone());
        async move {
            let internal = |e: sqlx::Error| tonic::Status::internal(e.to_string());
            let mut tx = raw.begin().await.map_err(internal)?;
            sqlx::query("INSERT INTO submissions (id, payload) VALUES ($1, $2)")
                .bind(format!("0196c000-0000-7000-8000-{i:012}"))
                .bind(payload)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            tx.commit().await.map_err(internal)
        }
    });

    // Intake (and, for accepted → visible, case-workflow) on PostgreSQL.
    let keys_dir = tempfile::tempdir()?;
    let keys = SuiteKeys::in_dir(&keys_dir.path().join("keys"))?;
    let gateway_key = Arc::new(keys.gateway()?);
    let shutdown = CancellationToken::new();
    let intake = Intake::build(
        IntakeConfig {
            server: loopback(),
            database: DatabaseConfig {
                url: with_database(url, &intake_db)?,
                max_connections: connections as u32,
                ..Default::default()
            },
            pii: redress_intake::PiiConfig::generate(),
            ..IntakeConfig::default()
        },
        keys.service_auth(redress_intake::SERVICE_NAME)?,
        shutdown.clone(),
    )
    .await?;
    let intake_addr = intake.local_addr();
    let mut services = JoinSet::new();
    services.spawn(async move { intake.run_until_stopped().await.context("intake") });
    wait_serving(intake_addr, redress_proto::services::INTAKE).await?;
    // The same intake on the embedded store: what a submission costs this machine whatever
    // the store, the reference for what PostgreSQL adds to it.
    let sqlite_dir = tempfile::tempdir()?;
    let embedded = Intake::build(
        IntakeConfig {
            server: loopback(),
            database: DatabaseConfig {
                url: format!("sqlite://{}", sqlite_dir.path().join("intake.db").display()),
                max_connections: 8,
                ..Default::default()
            },
            pii: redress_intake::PiiConfig::generate(),
            ..IntakeConfig::default()
        },
        keys.service_auth(redress_intake::SERVICE_NAME)?,
        shutdown.clone(),
    )
    .await?;
    let embedded_addr = embedded.local_addr();
    services.spawn(async move { embedded.run_until_stopped().await.context("intake on SQLite") });
    wait_serving(embedded_addr, redress_proto::services::INTAKE).await?;
    let credentials = redress_platform::signing::ServiceCredentials::new(
        gateway_key.clone(),
        redress::dev_principal(),
        redress_intake::SERVICE_NAME,
    );

    println!();
    println!("complaint accepted → case visible (intake and case-workflow on PostgreSQL; idle: one at a time):");
    let case_stop = shutdown.child_token();
    let case_workflow = CaseWorkflow::build(
        CaseWorkflowConfig {
            server: loopback(),
            database: DatabaseConfig { url: with_database(url, &case_db)?, max_connections: 8, ..Default::default() },
            intake_url: format!("http://{intake_addr}"),
            audit: redress_case_workflow::AuditConfig::generate(),
            ..CaseWorkflowConfig::default()
        },
        keys.service_auth(redress_case_workflow::SERVICE_NAME)?,
        case_stop.clone(),
    )
    .await?;
    let case_addr = case_workflow.local_addr();
    let case_task = tokio::spawn(async move { case_workflow.run_until_stopped().await });
    wait_serving(case_addr, redress_proto::services::CASE).await?;
    let visibility = Visibility {
        intake: channels(intake_addr, 1).await?.remove(0),
        intake_credentials: credentials.clone(),
        cases: channels(case_addr, 1).await?.remove(0),
        case_credentials: redress_platform::signing::ServiceCredentials::new(
            gateway_key.clone(),
            redress::dev_principal(),
            redress_case_workflow::SERVICE_NAME,
        ),
    };
    let visible = accepted_to_visible(&visibility, args.visible_samples, VISIBLE_PEOPLE, "pg-visible").await?;
    print_visibility("accepted → CaseOpened on the case feed", &visible, 200.0);
    // Case-workflow would follow intake's feed during the rounds and share the server: stop it.
    case_stop.cancel();
    case_task.await??;

    // The returning complainants' first complaints.
    let intake_channels = channels(intake_addr, args.connections).await?;
    let embedded_channels = channels(embedded_addr, args.connections).await?;
    let submit_to = |channels: &Vec<tonic::transport::Channel>, prefix: &'static str, person: fn(u64) -> u64| {
        let (channels, credentials) = (channels.clone(), credentials.clone());
        move |i: u64| {
            let mut client = IntakeServiceClient::new(channels[i as usize % channels.len()].clone());
            let mut request = tonic::Request::new(SubmitComplaintRequest {
                request_id: format!("{prefix}-{i}"),
                complaint: Some(complaint(person(i))),
            });
            let credentials = credentials.clone();
            async move {
                credentials.apply(&mut request).map_err(tonic::Status::from)?;
                client.submit_complaint(request).await.map(|_| ())
            }
        }
    };
    let submit = |prefix: &'static str, person: fn(u64) -> u64| submit_to(&intake_channels, prefix, person);
    let seed = submit("pg-seed", |i| i);
    let mut tasks = JoinSet::new();
    for task in 0..connections as u64 {
        let seed = seed.clone();
        tasks.spawn(async move {
            for person in (task..RETURNING).step_by(connections) {
                seed(person).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    println!();
    println!("seeded {RETURNING} returning complainants");

    let scenarios = [
        baseline,
        Scenario::new("SubmitComplaint, new person each", submit("pg-new", |i| NEW_PEOPLE + i)),
        Scenario::new(
            "SubmitComplaint, 50 % returning",
            submit("pg-mixed", |i| if i % 2 == 0 { MIXED_NEW_PEOPLE + i } else { (i / 2) % RETURNING }),
        ),
        Scenario::new(
            "SubmitComplaint on SQLite, new person",
            submit_to(&embedded_channels, "sqlite-new", |i| NEW_PEOPLE + i),
        ),
    ];
    let run_args = Args { concurrency: connections, ..args.clone() };
    let watched = [raw_db.clone(), intake_db.clone()];
    let mut activity: Vec<Activity> = scenarios.iter().map(|_| Activity::default()).collect();
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); scenarios.len()];
    let mut cpu = vec![(Cpu::default(), 0_u64); scenarios.len()];
    for round in 1..=args.rounds {
        println!("round {round}/{}", args.rounds);
        for (k, scenario) in scenarios.iter().enumerate() {
            let (outcome, used) = drive_sampled(scenario, &run_args, admin, &watched, &mut activity[k]).await?;
            cpu[k].0 += used;
            cpu[k].1 += outcome.requests;
            let (p50, p99) = (outcome.latency.value_at_quantile(0.5), outcome.latency.value_at_quantile(0.99));
            results[k].push((outcome.rate(), p50 as f64 / 1000.0, p99 as f64 / 1000.0));
        }
    }
    let medians: Vec<(f64, f64, f64)> = results
        .iter()
        .map(|r| {
            (
                median(r.iter().map(|x| x.0).collect()),
                median(r.iter().map(|x| x.1).collect()),
                median(r.iter().map(|x| x.2).collect()),
            )
        })
        .collect();
    println!();
    println!("medians over {} rounds:", args.rounds);
    println!("  {:<36} {:>12} {:>10} {:>10}   {:>26}", "", "submissions/s", "p50 ms", "p99 ms", "ratio to baseline");
    let floor = medians[0].0;
    for (k, scenario) in scenarios.iter().enumerate() {
        let (rate, p50, p99) = medians[k];
        let ratio = if k == 0 {
            String::new()
        } else if k == EMBEDDED {
            format!("{:.3} (a reference, not a target)", rate / floor)
        } else {
            format!("{:.3} (target ≥ 0.80) {}", rate / floor, verdict(rate / floor >= 0.8))
        };
        println!("  {:<36} {rate:>12.0} {p50:>10.2} {p99:>10.2}   {ratio}", scenario.name);
    }
    let embedded_rate = medians[EMBEDDED].0;
    println!(
        "  on PostgreSQL / on SQLite (new person each): {:.3}; the same intake on SQLite reaches {:.3} of the \
         baseline, so this machine's ceiling for any store is there",
        medians[1].0 / embedded_rate,
        embedded_rate / floor
    );
    print_cpu(&scenarios, &cpu, floor);
    println!();
    println!("where the time goes (pg_stat_activity every {} ms; share of session samples):", SAMPLE_EVERY.as_millis());
    for (k, scenario) in scenarios.iter().enumerate().filter(|(k, _)| *k != EMBEDDED) {
        activity[k].print(scenario.name);
    }
    shutdown.cancel();
    while let Some(done) = services.join_next().await {
        done??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_parameters_kept() {
        let url = "postgres://u:p@127.0.0.1:5432/postgres?sslmode=prefer";
        assert_eq!(with_database(url, "b").ok().as_deref(), Some("postgres://u:p@127.0.0.1:5432/b?sslmode=prefer"));
        assert_eq!(with_database("postgres://h", "b").ok().as_deref(), Some("postgres://h/b"));
    }
}
