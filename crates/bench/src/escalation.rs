//! `redress-bench --escalation`: the escalation service's targets, each against its own
//! baseline measured in the same run.
//!
//! 1. Matching latency per complaint with 10,000 and with 200,000 complaints of one
//!    institution in the window: the store is filled through its own matching path with
//!    complaints whose words are drawn from the evaluation set's vocabulary, then probe
//!    complaints are matched one at a time (each a durable transaction) and their p99 compared
//!    (target: p99 at 200k ≤ 2 × p99 at 10k).
//! 2. Intake's throughput (SubmitComplaint straight to intake) with the escalation service
//!    following the feeds, matching and linking, against the same suite without it, in
//!    interleaved rounds (target: ≥ 0.8 ×).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use redress::{Suite, SuiteOptions};
use redress_escalation::store::MatchInput;
use redress_escalation::{EscalationStore, INTAKE_CONSUMER, Rules};
use redress_platform::db::DatabaseConfig;
use redress_platform::host::Supervisor;
use redress_platform::time::{Clock, to_timestamp};
use redress_proto::redress::common::v1::{Event, Grade};
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{Classification, ComplaintAccepted, SubmitComplaintRequest};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Args, Scenario, channels, complaint, drive, median};

const EVAL: &str = include_str!("../../escalation/data/eval/complaints.jsonl");
const SMALL: u64 = 10_000;
const LARGE: u64 = 200_000;
/// Enough probes that the p99 is the 20th slowest, not the third.
const PROBES: u64 = 2_000;
/// Matched at once while filling (the store's writer commits them in groups).
const FILL_CONCURRENCY: usize = 64;

/// A small deterministic generator (xorshift), so every run fills the same window.
struct Words {
    vocabulary: Vec<String>,
    state: u64,
    /// The last feed position handed out: intake's feed only moves forward.
    position: i64,
}

impl Words {
    fn new() -> Self {
        // The words of the evaluation set's complaints (its keys and labels are no Chinese words).
        let mut vocabulary: Vec<String> = EVAL
            .lines()
            .flat_map(redress_escalation::domain::grouping::tokens)
            .filter(|t| t.chars().any(|c| c > '\u{2e80}'))
            .collect();
        vocabulary.sort();
        vocabulary.dedup();
        Self { vocabulary, state: 0x9e37_79b9_7f4a_7c15, position: 0 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A complaint's text: 18 words of the vocabulary.
    fn text(&mut self) -> String {
        let mut words = Vec::with_capacity(18);
        for _ in 0..18 {
            let i = (self.next() % self.vocabulary.len() as u64) as usize;
            words.push(self.vocabulary[i].clone());
        }
        words.join("，")
    }
}

fn name(n: u64) -> String {
    format!("complaints/0196c000-0000-7000-8000-{n:012}")
}

fn accepted(n: u64, words: &mut Words) -> Event {
    let received = chrono::Utc::now() - chrono::Duration::minutes((words.next() % (13 * 24 * 60)) as i64);
    let payload = ComplaintAccepted {
        complaint: name(n),
        org_unit: "institutions/bench-bank/branches/main".to_owned(),
        grade: Grade::General as i32,
        receive_time: Some(to_timestamp(received)),
        classification: Some(Classification {
            business_type: format!("B0{}", words.next() % 7 + 1),
            cause: format!("C{:02}", words.next() % 15 + 1),
            ..Classification::default()
        }),
        ..ComplaintAccepted::default()
    };
    words.position += 1;
    Event {
        position: words.position,
        event_id: format!("bench-{n}"),
        event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
        aggregate: name(n),
        org_unit: payload.org_unit.clone(),
        payload: Some(prost_types::Any {
            type_url: "type.googleapis.com/redress.intake.v1.ComplaintAccepted".to_owned(),
            value: prost::Message::encode_to_vec(&payload),
        }),
        ..Event::default()
    }
}

/// Fills the window with complaints `from..to`: accepted, then matched concurrently.
async fn fill(store: &Arc<EscalationStore>, words: &mut Words, from: u64, to: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut next = from;
    while next < to {
        let end = (next + 5_000).min(to);
        let events: Vec<Event> = (next..end).map(|n| accepted(n, words)).collect();
        store.apply(INTAKE_CONSUMER, events).await?;
        let texts: Vec<(u64, String)> = (next..end).map(|n| (n, words.text())).collect();
        let mut tasks = JoinSet::new();
        for chunk in texts.chunks(texts.len().div_ceil(FILL_CONCURRENCY)) {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tasks.spawn(async move {
                for (n, text) in chunk {
                    let input =
                        MatchInput { complaint: name(n), facts: text, demand: String::new(), digests: Vec::new() };
                    store.match_complaint(input).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        next = end;
    }
    println!("  filled complaints {from}..{to} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Folds the write-ahead log of the bulk fill into the database, so the probes measure matching
/// in a store at rest rather than the checkpoint of everything the fill wrote.
async fn checkpoint(database: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display())).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

/// Matches `PROBES` new complaints one at a time; their latency.
async fn probe(store: &EscalationStore, words: &mut Words, from: u64) -> anyhow::Result<Histogram<u64>> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for n in from..from + PROBES {
        store.apply(INTAKE_CONSUMER, vec![accepted(n, words)]).await?;
        let input = MatchInput { complaint: name(n), facts: words.text(), demand: String::new(), digests: Vec::new() };
        let started = Instant::now();
        store.match_complaint(input).await?;
        latency.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    Ok(latency)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn matching() -> anyhow::Result<()> {
    println!("matching latency per complaint (SQLite store, durable; one institution, 14-day window):");
    let dir = tempfile::tempdir()?;
    let config = DatabaseConfig {
        url: format!("sqlite://{}/escalation.db", dir.path().display()),
        max_connections: 8,
        ..Default::default()
    };
    let rules = Arc::new(Rules::shipped(vec!["senior_manager".to_owned()])?);
    let tasks = Supervisor::detached();
    let store = Arc::new(EscalationStore::open(&config, rules, Clock::system(), &tasks).await?);
    let mut words = Words::new();
    println!("  vocabulary: {} words of the evaluation set", words.vocabulary.len());
    let database = dir.path().join("escalation.db");
    fill(&store, &mut words, 0, SMALL).await?;
    checkpoint(&database).await?;
    let small = probe(&store, &mut words, 10_000_000).await?;
    println!("  {SMALL:>7} in the window: p50 {:.2} ms  p99 {:.2} ms", ms(&small, 0.5), ms(&small, 0.99));
    fill(&store, &mut words, SMALL, LARGE).await?;
    checkpoint(&database).await?;
    let large = probe(&store, &mut words, 20_000_000).await?;
    println!("  {LARGE:>7} in the window: p50 {:.2} ms  p99 {:.2} ms", ms(&large, 0.5), ms(&large, 0.99));
    let ratio = ms(&large, 0.99) / ms(&small, 0.99);
    println!(
        "  p99 at {LARGE} / p99 at {SMALL}: {ratio:.2} (target ≤ 2.00) {}",
        if ratio <= 2.0 { "met" } else { "NOT MET" }
    );
    drop(store);
    tasks.stop().await;
    Ok(())
}

async fn throughput(args: &Args) -> anyhow::Result<()> {
    println!("intake throughput with and without the escalation service (SubmitComplaint direct to intake):");
    let shutdown = CancellationToken::new();
    let mut scenarios = Vec::new();
    let mut dirs = Vec::new();
    for (label, without) in [("intake, escalation off", true), ("intake, escalation on", false)] {
        let dir = tempfile::tempdir()?;
        let suite = Suite::start(
            SuiteOptions {
                data_dir: dir.path().to_owned(),
                gateway_addr: "127.0.0.1:0".to_owned(),
                dev_token: format!("bench-{without}"),
                without_escalation: without,
                ..SuiteOptions::default()
            },
            shutdown.clone(),
        )
        .await?;
        super::wait_serving(&channels(suite.gateway_addr, 1).await?[0]).await?;
        let credentials = suite.gateway_credentials(redress::dev_principal(), "intake");
        let intake = channels(suite.intake_addr, args.connections).await?;
        scenarios.push(Scenario::new(label, move |i| {
            let mut client = IntakeServiceClient::new(intake[i as usize % intake.len()].clone());
            let mut request = tonic::Request::new(SubmitComplaintRequest {
                request_id: format!("escalation-bench-{i}"),
                complaint: Some(complaint(i)),
            });
            let credentials = credentials.clone();
            async move {
                credentials.apply(&mut request).map_err(tonic::Status::from)?;
                client.submit_complaint(request).await.map(|_| ())
            }
        }));
        dirs.push((dir, suite));
    }
    let mut rates = vec![Vec::new(); scenarios.len()];
    for round in 1..=args.rounds {
        println!("  round {round}");
        for (i, scenario) in scenarios.iter().enumerate() {
            rates[i].push(drive(scenario, args).await?.rate());
            // Let the followers (case-workflow, escalation) catch up before the next run.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let (off, on) = (median(rates[0].clone()), median(rates[1].clone()));
    let ratio = on / off;
    println!(
        "  median: off {off:.0} req/s, on {on:.0} req/s: {ratio:.2} × (target ≥ 0.80) {}",
        if ratio >= 0.8 { "met" } else { "NOT MET" }
    );
    shutdown.cancel();
    for (_dir, suite) in dirs {
        let _ = suite.wait().await;
    }
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    println!("redress-bench --escalation: {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()));
    matching().await?;
    throughput(args).await
}
