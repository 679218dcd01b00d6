//! `redress-bench`: measures, in one run and on one machine, a raw tonic echo (the baseline),
//! SubmitComplaint straight to intake, SubmitComplaint through the gateway and GetCase through
//! the gateway, each as requests/s and p50/p99 latency at the same concurrency, and prints the
//! ratios to the baseline. Intake is durable (SQLite, WAL, synchronous=FULL, group commit).

// The services allocate per request and per row; mimalloc is markedly cheaper than glibc's
// allocator under this many small, cross-thread allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hdrhistogram::Histogram;
use redress::{Suite, SuiteOptions};
use redress_proto::redress::case::v1::GetCaseRequest;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{Complaint, SubmitComplaintRequest};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

mod escalation;
mod knowledge;
mod scale;

mod echo {
    tonic::include_proto!("redress.bench.v1");
}
mod metrics;

mod burst;
mod footprint;
mod latency;
mod postgres;
mod sys;

#[derive(Parser, Clone)]
#[command(name = "redress-bench", about = "Throughput and latency of the Redress suite against a raw tonic baseline")]
struct Args {
    /// Requests in flight at once in every scenario.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds per scenario (after warm-up).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Warm-up seconds per scenario (not measured).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Rounds of all scenarios, interleaved; results are medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only what the gateway adds to one call at a time, and accepted → visible: the default
    /// run without its throughput rounds.
    #[arg(long)]
    latency_only: bool,
    /// Milliseconds to wait before each call of the raw echo and of the gateway's added
    /// latency, so that every call starts from idle threads (and what a submission sets off
    /// in the suite's consumers is mostly over before the next call).
    #[arg(long, default_value_t = 0)]
    pair_gap_ms: u64,
    /// Run the knowledge-base search benchmark (10,000 then 100,000 articles) instead.
    #[arg(long)]
    knowledge: bool,
    /// Run the escalation benchmark instead: matching latency at 10,000 and 200,000 complaints
    /// in the window, and intake's throughput with and without the escalation service.
    #[arg(long)]
    escalation: bool,
    /// Benchmark quality-metrics' read models instead: KPIs and breakdowns over a quarter at
    /// `--metrics-small` and `--metrics-large` cases, and the consumer at `--metrics-rate`.
    #[arg(long)]
    metrics: bool,
    #[arg(long, default_value_t = 100_000)]
    metrics_small: u64,
    #[arg(long, default_value_t = 1_000_000)]
    metrics_large: u64,
    /// Run the store-size benchmark instead: the same scenarios against an empty store and one
    /// of `--scale-complaints` complaints.
    #[arg(long)]
    scale: bool,
    #[arg(long, default_value_t = 1_000_000)]
    scale_complaints: u64,
    /// Keeps the filled store here and reuses it in later runs (it is measured on a copy).
    #[arg(long)]
    scale_dir: Option<std::path::PathBuf>,
    /// Events per second the consumer is offered.
    #[arg(long, default_value_t = 2_000)]
    metrics_rate: u64,
    /// Seconds the consumer is offered them for.
    #[arg(long, default_value_t = 30)]
    metrics_seconds: u64,
    /// Benchmark intake on PostgreSQL at this server instead (a database of its own is created
    /// and dropped): durable SubmitComplaint against a raw INSERT + COMMIT loop.
    #[arg(long, env = "REDRESS_BENCH_POSTGRES_URL", hide_env_values = true)]
    postgres: Option<String>,
    /// Connections (and tasks) of the PostgreSQL benchmark.
    #[arg(long, default_value_t = 32)]
    postgres_connections: usize,
    /// Benchmark the gateway's rate limits instead: one caller bursting at ten times its limit
    /// beside another at a modest rate.
    #[arg(long)]
    burst: bool,
    /// Seconds of the shorter burst (the longer one is three times as long).
    #[arg(long, default_value_t = 10)]
    burst_seconds: u64,
    /// Complaints stored before the burst benchmark measures anything (its page caches fill
    /// with them toward their budget).
    #[arg(long, default_value_t = 20_000)]
    burst_stored: u64,
    /// Measure the embedded suite's start-up time and idle memory instead.
    #[arg(long)]
    footprint: bool,
    /// Complaints of the accepted → visible measurement.
    #[arg(long, default_value_t = 500)]
    visible_samples: u64,
}

struct Outcome {
    name: &'static str,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        println!(
            "{:<34} {:>10.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
            self.name,
            self.rate(),
            self.latency.value_at_quantile(0.5) as f64 / 1000.0,
            self.latency.value_at_quantile(0.99) as f64 / 1000.0,
            self.errors,
        );
    }
}

type Call = Arc<dyn Fn(u64) -> BoxFuture<'static, Result<(), tonic::Status>> + Send + Sync>;

/// One measured operation; its counter keeps request ids unique across rounds.
struct Scenario {
    name: &'static str,
    call: Call,
    next: Arc<AtomicU64>,
}

impl Scenario {
    fn new<F, Fut>(name: &'static str, call: F) -> Self
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send + 'static,
    {
        Self { name, call: Arc::new(move |i| call(i).boxed()), next: Arc::new(AtomicU64::new(0)) }
    }
}

/// Runs a scenario from `concurrency` tasks for warm-up plus the measured window.
async fn drive(scenario: &Scenario, args: &Args) -> anyhow::Result<Outcome> {
    let name = scenario.name;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = JoinSet::new();
    for _ in 0..args.concurrency {
        let call = scenario.call.clone();
        let counter = scenario.next.clone();
        tasks.spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let issued = Instant::now();
                if issued >= end {
                    break;
                }
                let result = call(counter.fetch_add(1, Ordering::Relaxed)).await;
                if issued >= measure_from {
                    let finished = Instant::now();
                    if finished > end {
                        break;
                    }
                    match result {
                        Ok(()) => {
                            ok += 1;
                            histogram.record((finished - issued).as_micros().max(1) as u64)?;
                        }
                        Err(status) => {
                            if errors == 0 {
                                eprintln!("{name}: {status}");
                            }
                            errors += 1;
                        }
                    }
                }
            }
            anyhow::Ok((ok, errors, histogram))
        });
    }
    let mut outcome = Outcome {
        name,
        requests: 0,
        errors: 0,
        elapsed: Duration::from_secs(args.seconds),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    while let Some(joined) = tasks.join_next().await {
        let (ok, errors, histogram) = joined??;
        outcome.requests += ok;
        outcome.errors += errors;
        outcome.latency.add(histogram)?;
    }
    outcome.print();
    Ok(outcome)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

async fn channels(addr: std::net::SocketAddr, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        out.push(Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?);
    }
    Ok(out)
}

#[derive(Clone)]
struct EchoServer;

#[tonic::async_trait]
impl echo::echo_service_server::EchoService for EchoServer {
    async fn echo(
        &self,
        request: tonic::Request<echo::EchoRequest>,
    ) -> Result<tonic::Response<echo::EchoResponse>, tonic::Status> {
        Ok(tonic::Response::new(echo::EchoResponse { payload: request.into_inner().payload }))
    }
}

/// Words of real complaints: the escalation evaluation set's (its keys and labels are no
/// Chinese words).
const EVAL: &str = include_str!("../../escalation/data/eval/complaints.jsonl");

fn vocabulary() -> &'static [String] {
    static WORDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        let mut words: Vec<String> = EVAL
            .lines()
            .flat_map(redress_escalation::domain::grouping::tokens)
            .filter(|t| t.chars().any(|c| c > '\u{2e80}'))
            .collect();
        words.sort();
        words.dedup();
        words
    })
}

/// The complaint every scenario submits for person `n`, about that person's own issue: 18
/// words of real complaints and one real complaint's demand, drawn by `n`, classified like
/// any other. Complaints of different people are as unlike as real ones are (texts alike would
/// all be candidates of one another in escalation's group matching, and would form one group
/// incident, whose member links are the cost of that one incident, not of a complaint), and a
/// person who comes back complains of the same issue again (a recurrence, linked to the
/// earlier case).
/// The first person of the submissions through the gateway: its people are others than those
/// submitting straight to intake, so that neither scenario is the other's returning
/// complainants (a returning complainant costs a recurrence look-up and a link more).
const GATEWAY_PEOPLE: u64 = 1_000_000_000;

fn complaint(n: u64) -> Complaint {
    let words = vocabulary();
    let mut state = draw(n);
    let mut facts = Vec::with_capacity(18);
    for _ in 0..18 {
        state = draw(state);
        facts.push(words[(state % words.len() as u64) as usize].as_str());
    }
    let demands = demands();
    let mut complaint = identified(n);
    complaint.facts = facts.join("，");
    complaint.demand = demands[(draw(state) % demands.len() as u64) as usize].clone();
    complaint
}

/// The demands of real complaints (the evaluation set's), each once: people who want the same
/// thing say so in the same words, and those words are shared by far fewer complaints than a
/// single demand for everyone would be.
fn demands() -> &'static [String] {
    static DEMANDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    DEMANDS.get_or_init(|| {
        let mut demands: Vec<String> = EVAL
            .lines()
            .filter_map(|line| line.split_once("\"demand\": \"").and_then(|(_, rest)| rest.split_once('"')))
            .map(|(demand, _)| demand.to_owned())
            .filter(|demand| !demand.is_empty())
            .collect();
        demands.sort();
        demands.dedup();
        demands
    })
}

/// A complaint of person `n` (phone and identity number drawn from `n`).
fn identified(i: u64) -> Complaint {
    let mut complaint = redress_intake::testing::complaint("本人信用卡已满足免年费条件，但账单仍扣收年费300元。");
    let (phone, id_number) = redress_intake::testing::identity((i % u64::from(u32::MAX)) as u32);
    if let Some(redress_proto::redress::intake::v1::complainant::Party::Person(p)) =
        complaint.complainant.as_mut().and_then(|c| c.party.as_mut())
    {
        (p.phone, p.id_number) = (phone, id_number);
    }
    complaint
}

/// A deterministic draw (splitmix64) from a request counter.
fn draw(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn bearer<T>(
    mut request: tonic::Request<T>,
    token: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<T> {
    request.metadata_mut().insert("authorization", token.clone());
    request
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    redress::memory::without_transparent_huge_pages();
    // Telemetry as the services run it (spans and trace propagation on), logging warnings only.
    let telemetry =
        redress_platform::telemetry::TelemetryConfig { log_filter: "warn".to_owned(), ..Default::default() };
    let _telemetry = redress_platform::telemetry::init(&telemetry, "redress-bench")?;
    if let Some(url) = &args.postgres {
        return postgres::run(url, &args).await;
    }
    if args.burst {
        return burst::run(&args).await;
    }
    if args.footprint {
        return footprint::run().await;
    }
    if args.metrics {
        return metrics::run(args.metrics_small, args.metrics_large, args.metrics_rate, args.metrics_seconds).await;
    }
    if args.knowledge {
        return knowledge::run(&args).await;
    }
    if args.escalation {
        return escalation::run(&args).await;
    }
    if args.scale {
        return scale::run(&args).await;
    }
    println!(
        "redress-bench: concurrency {}, {} s measured after {} s warm-up, {} connections, {} cores",
        args.concurrency,
        args.seconds,
        args.warmup,
        args.connections,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    sys::print_load("start");
    let shutdown = CancellationToken::new();

    // Baseline: raw tonic echo with a payload the size of an encoded complaint.
    let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo_listener.local_addr()?;
    let echo_stop = shutdown.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(echo::echo_service_server::EchoServiceServer::new(EchoServer))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(echo_listener).with_nodelay(Some(true)),
                async move { echo_stop.cancelled().await },
            ),
    );
    let payload = prost::Message::encode_to_vec(&complaint(0));
    let echo_channels = channels(echo_addr, args.connections).await?;
    let echo = Scenario::new("raw tonic echo (baseline)", move |i| {
        let mut client =
            echo::echo_service_client::EchoServiceClient::new(echo_channels[i as usize % echo_channels.len()].clone());
        let payload = payload.clone();
        async move { client.echo(echo::EchoRequest { payload }).await.map(|_| ()) }
    });

    let dir = tempfile::tempdir().context("temp dir")?;
    let token = "bench-token".to_owned();
    let suite = Suite::start(
        SuiteOptions {
            data_dir: dir.path().to_owned(),
            gateway_addr: "127.0.0.1:0".to_owned(),
            dev_token: token.clone(),
            ..SuiteOptions::default()
        },
        shutdown.clone(),
    )
    .await?;
    let bearer_value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let gateway_channels = channels(suite.gateway_addr, args.connections).await?;
    wait_serving(&gateway_channels[0]).await?;

    // SubmitComplaint straight to intake, with a principal signed as the gateway would.
    let credentials = suite.gateway_credentials(redress::dev_principal(), "intake");
    let intake_channels = channels(suite.intake_addr, args.connections).await?;
    let direct = Scenario::new("SubmitComplaint direct to intake", move |i| {
        let mut client = IntakeServiceClient::new(intake_channels[i as usize % intake_channels.len()].clone());
        let mut request = tonic::Request::new(SubmitComplaintRequest {
            request_id: format!("direct-{i}"),
            complaint: Some(complaint(i)),
        });
        let credentials = credentials.clone();
        async move {
            credentials.apply(&mut request).map_err(tonic::Status::from)?;
            client.submit_complaint(request).await.map(|_| ())
        }
    });

    let channels_for_submit = gateway_channels.clone();
    let token_for_submit = bearer_value.clone();
    let gateway = Scenario::new("SubmitComplaint through gateway", move |i| {
        let mut client = IntakeServiceClient::new(channels_for_submit[i as usize % channels_for_submit.len()].clone());
        let request = bearer(
            tonic::Request::new(SubmitComplaintRequest {
                request_id: format!("gateway-{i}"),
                complaint: Some(complaint(GATEWAY_PEOPLE + i)),
            }),
            &token_for_submit,
        );
        async move { client.submit_complaint(request).await.map(|_| ()) }
    });

    // Cases to read: opened by the consumer for complaints submitted up front.
    let mut intake = IntakeServiceClient::new(gateway_channels[0].clone());
    for i in 0..500 {
        let request = SubmitComplaintRequest { request_id: format!("seed-{i}"), complaint: Some(complaint(i)) };
        intake.submit_complaint(bearer(tonic::Request::new(request), &bearer_value)).await?;
    }
    let mut cases = CaseServiceClient::new(gateway_channels[0].clone());
    let mut names = Vec::new();
    for _ in 0..200 {
        let request = redress_proto::redress::case::v1::ListCasesRequest { page_size: 1000, ..Default::default() };
        names = cases.list_cases(bearer(tonic::Request::new(request), &bearer_value)).await?.into_inner().cases;
        if names.len() >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let names: Arc<Vec<String>> = Arc::new(names.into_iter().map(|c| c.name).collect());
    anyhow::ensure!(names.len() >= 500, "the consumer did not open the seeded cases");
    let case_credentials = suite.gateway_credentials(redress::dev_principal(), "case-workflow");
    let case_channels = channels(suite.case_workflow_addr, args.connections).await?;
    let read_direct = latency::direct_get_case(case_credentials.clone(), case_channels.clone(), names.clone());
    let channels_for_read = gateway_channels.clone();
    let read = Scenario::new("GetCase through gateway", move |i| {
        let mut client = CaseServiceClient::new(channels_for_read[i as usize % channels_for_read.len()].clone());
        let request = bearer(
            tonic::Request::new(GetCaseRequest { name: names[i as usize % names.len()].clone() }),
            &bearer_value,
        );
        async move { client.get_case(request).await.map(|_| ()) }
    });

    let scenarios = [echo, direct, gateway, read, read_direct];
    if !args.latency_only {
        throughput(&scenarios, &args).await?;
    }
    let [echo, direct, gateway, read, read_direct] = &scenarios;
    latency::gateway_overhead(echo, &[("SubmitComplaint", direct, gateway), ("GetCase", read_direct, read)], &args)
        .await?;
    println!();
    println!("complaint accepted → case visible (embedded, SQLite; idle: one complaint at a time, no other load):");
    let visibility = latency::Visibility {
        intake: channels(suite.intake_addr, 1).await?.remove(0),
        intake_credentials: suite.gateway_credentials(redress::dev_principal(), "intake"),
        cases: case_channels[0].clone(),
        case_credentials,
    };
    let visible = latency::accepted_to_visible(&visibility, args.visible_samples, 15_000_000, "visible").await?;
    latency::print_visibility("accepted → CaseOpened on the case feed", &visible, 50.0);
    sys::print_load("end");
    suite.stop().await?;
    shutdown.cancel();
    Ok(())
}

/// The throughput rounds of the default run: every scenario in turn, `--rounds` times, and
/// the ratios of their medians.
async fn throughput(scenarios: &[Scenario; 5], args: &Args) -> anyhow::Result<()> {
    // Rounds interleave the scenarios so that a slow spell of a shared machine hits all of
    // them alike; ratios are taken between medians.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    for round in 1..=args.rounds {
        println!("round {round}/{}", args.rounds);
        for (k, scenario) in scenarios.iter().enumerate() {
            rates[k].push(drive(scenario, args).await?.rate());
        }
    }
    let [echo, direct, gateway, read, read_direct] = [0, 1, 2, 3, 4].map(|k| median(rates[k].clone()));
    println!();
    println!("medians over {} rounds (req/s):", args.rounds);
    for (k, scenario) in scenarios.iter().enumerate() {
        println!("  {:<34} {:>10.0}", scenario.name, median(rates[k].clone()));
    }
    println!("ratios (same run, medians):");
    println!("  submit through gateway / raw echo      {:.3}  (target >= 0.25)", gateway / echo);
    println!(
        "  submit through gateway / direct intake {:.3}  (target >= 0.80) {}",
        gateway / direct,
        sys::verdict(gateway / direct >= 0.8)
    );
    println!("  submit direct to intake / raw echo     {:.3}", direct / echo);
    println!("  GetCase through gateway / raw echo     {:.3}  (target >= 0.60)", read / echo);
    println!(
        "  GetCase through gateway / direct       {:.3}  (target >= 0.50) {}",
        read / read_direct,
        sys::verdict(read / read_direct >= 0.5)
    );
    Ok(())
}

async fn wait_serving(channel: &Channel) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for _ in 0..400 {
        let mut all = true;
        for service in [redress_proto::services::INTAKE, redress_proto::services::CASE] {
            let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
            all &= health.check(request).await?.into_inner().status == ServingStatus::Serving as i32;
        }
        if all {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("suite did not become SERVING")
}

#[cfg(test)]
mod tests {
    use super::{complaint, demands};

    #[test]
    fn complaints_are_drawn_per_person_from_real_words_and_demands() {
        assert!(demands().len() > 100, "{} demands", demands().len());
        assert!(demands().iter().all(|d| !d.contains('"') && !d.is_empty()));
        assert_eq!(complaint(7), complaint(7));
        let distinct: std::collections::BTreeSet<String> = (0..50).map(|n| complaint(n).demand).collect();
        assert!(distinct.len() > 20, "{} demands among 50 people", distinct.len());
        assert_ne!(complaint(1).facts, complaint(2).facts);
    }
}
