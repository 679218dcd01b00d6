//! `redress-bench --burst`: the gateway's per-caller rate limits under a burst, in one run.
//!
//! The embedded suite runs with rate limits on (200 requests/s per caller, the default limits per
//! institution), and first stores 20,000 complaints (`--burst-stored`) so that its page caches fill
//! toward their budget. Caller B reads cases (GetCase through the gateway) open-loop at 100/s:
//! first alone, then while caller A submits complaints at its limit (spending its bucket first, as
//! a burst does, then at exactly its rate), then while A submits at 2,000/s, ten times its limit,
//! for a short and for a three times longer burst, then alone again. Reported: A's share of
//! RESOURCE_EXHAUSTED, B's p99 loaded against alone (target ≤ 2 ×) and against A at its limit (what
//! the refused excess adds: A at its limit and the short burst admit the same calls), and the
//! process's resident memory before, during and after each burst (bounded: the longer burst's peak
//! no higher than the shorter one's). Latencies run from when each request was due, so a generator
//! that falls behind counts against the suite, not in its favour.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use redress::{Suite, SuiteOptions};
use redress_gateway::RateLimits;
use redress_platform::principal::Principal;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{GetCaseRequest, ListCasesRequest};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use tokio_util::sync::CancellationToken;

use super::{Args, bearer, channels, complaint};
use crate::sys::{Memory, histogram, ms, print_load, verdict};

/// Requests per second one caller may make (and its burst).
const LIMIT: u32 = 200;
/// Caller B's steady rate, and caller A's: ten times its limit.
const B_RATE: u64 = 100;
const A_RATE: u64 = 10 * LIMIT as u64;
/// Requests of one generator left outstanding at most; beyond, a request is not sent but
/// counted as dropped (the suite is not keeping up at all).
const MAX_OUTSTANDING: usize = 20_000;
const SEEDED_CASES: u64 = 200;
/// How long the suite may take to catch up after the warm-up.
const WARM_SETTLE_SECONDS: u64 = 300;

/// What one open-loop generator saw.
struct Tally {
    sent: u64,
    ok: u64,
    exhausted: u64,
    other: u64,
    dropped: u64,
    first_error: Option<String>,
    /// Latency of the successful requests, from when each was due.
    latency: Histogram<u64>,
}

impl Tally {
    fn exhausted_share(&self) -> f64 {
        self.exhausted as f64 / self.sent.max(1) as f64
    }
}

/// What a generator hands over: a request it sent, or one it could not.
enum Sent {
    Task(tokio::task::JoinHandle<(Result<(), tonic::Status>, Duration)>),
    Dropped,
}

/// How a generator times its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// From a thread of its own that sleeps until each request is due: the runtime's timer ticks
    /// in milliseconds, which would make every request up to 2 ms late and count that against
    /// the suite. For the caller whose latency is judged (B).
    Exact,
    /// From a task on the runtime that its timer wakes when the next request is due, sending all
    /// that have come due: the timer's millisecond ticks make them up to 2 ms late, which does
    /// not matter for the caller whose latency is not judged (A). A thread woken for each of
    /// 2,000 requests a second, each time waking a runtime worker to take it, is load of the
    /// generator's own on the two cores the suite has: with every call refused, the process
    /// used 0.45 cores paced by a thread and 0.33 paced by the runtime's timer.
    Ticks,
}

/// Sends `call(n)` at `rate` per second for `length`, each request on its own task, paced as
/// `pace` says, and waits for every answer.
async fn open_loop<F, Fut>(pace: Pace, rate: u64, length: Duration, first: u64, call: Arc<F>) -> anyhow::Result<Tally>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let total = (rate as f64 * length.as_secs_f64()) as u64;
    let runtime = tokio::runtime::Handle::current();
    let (sent, mut received) = tokio::sync::mpsc::unbounded_channel();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let due = move |n: u64| start + Duration::from_secs_f64(n as f64 / rate as f64);
    // Starts request `n`; false once nobody is waiting for the answers any more.
    let emit = move |n: u64| {
        if outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
            return sent.send(Sent::Dropped).is_ok();
        }
        outstanding.fetch_add(1, Ordering::Relaxed);
        let request = call(first + n);
        let done = outstanding.clone();
        let due = due(n);
        let task = runtime.spawn(async move {
            let result = request.await;
            done.fetch_sub(1, Ordering::Relaxed);
            (result, Instant::now().saturating_duration_since(due))
        });
        sent.send(Sent::Task(task)).is_ok()
    };
    let generator = match pace {
        Pace::Exact => {
            Generator::Thread(std::thread::Builder::new().name("bench-open-loop".to_owned()).spawn(move || {
                for n in 0..total {
                    if let Some(wait) = due(n).checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if !emit(n) {
                        return;
                    }
                }
            })?)
        }
        Pace::Ticks => Generator::Task(tokio::spawn(async move {
            let mut n = 0;
            while n < total {
                tokio::time::sleep_until(due(n).into()).await;
                // Every request whose time has come, all at once.
                let come_due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
                while n < come_due {
                    if !emit(n) {
                        return;
                    }
                    n += 1;
                }
            }
        })),
    };
    let mut tally =
        Tally { sent: 0, ok: 0, exhausted: 0, other: 0, dropped: 0, first_error: None, latency: histogram() };
    while let Some(request) = received.recv().await {
        let task = match request {
            Sent::Task(task) => task,
            Sent::Dropped => {
                tally.dropped += 1;
                continue;
            }
        };
        tally.sent += 1;
        let (result, latency) = task.await?;
        match result {
            Ok(()) => {
                tally.ok += 1;
                tally.latency.record(latency.as_micros().max(1) as u64)?;
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => tally.exhausted += 1,
            Err(status) => {
                tally.other += 1;
                tally.first_error.get_or_insert_with(|| status.to_string());
            }
        }
    }
    match generator {
        Generator::Thread(thread) => thread.join().map_err(|_| anyhow::anyhow!("the request generator panicked"))?,
        Generator::Task(task) => task.await?,
    }
    Ok(tally)
}

/// Where a generator runs.
enum Generator {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// The peak of what this process allocated (its anonymous resident memory) while `running`
/// holds, sampled every 100 ms.
fn watch_memory(running: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while running.load(Ordering::Relaxed) {
            peak = peak.max(Memory::of(None).anon_kib);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    })
}

fn caller(subject: &str) -> Principal {
    Principal { subject: subject.to_owned(), ..redress::dev_principal() }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "redress-bench --burst: per-caller limit {LIMIT}/s; B reads at {B_RATE}/s, A submits at {A_RATE}/s; bursts \
         of {} s and {} s",
        args.burst_seconds,
        3 * args.burst_seconds
    );
    print_load("start");
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir()?;
    let suite = Suite::start(
        SuiteOptions {
            data_dir: dir.path().to_owned(),
            gateway_addr: "127.0.0.1:0".to_owned(),
            dev_token: "bench-admin".to_owned(),
            extra_dev_tokens: vec![
                ("bench-caller-a".to_owned(), caller("user:bench-a")),
                ("bench-caller-b".to_owned(), caller("user:bench-b")),
            ],
            rate_limits: Some(RateLimits { caller_per_second: LIMIT, caller_burst: LIMIT, ..RateLimits::default() }),
            ..SuiteOptions::default()
        },
        shutdown.clone(),
    )
    .await?;
    super::wait_serving(&channels(suite.gateway_addr, 1).await?[0]).await?;

    // Cases for B to read, submitted straight to intake (not counted against any caller).
    let credentials = suite.gateway_credentials(redress::dev_principal(), "intake");
    let mut intake = IntakeServiceClient::new(channels(suite.intake_addr, 1).await?.remove(0));
    for i in 0..SEEDED_CASES {
        let mut request = tonic::Request::new(SubmitComplaintRequest {
            request_id: format!("burst-seed-{i}"),
            complaint: Some(complaint(i)),
        });
        credentials.apply(&mut request).map_err(tonic::Status::from)?;
        intake.submit_complaint(request).await?;
    }
    let case_credentials = suite.gateway_credentials(redress::dev_principal(), "case-workflow");
    let mut cases = CaseServiceClient::new(channels(suite.case_workflow_addr, 1).await?.remove(0));
    let mut names = Vec::new();
    for _ in 0..400 {
        let mut request = tonic::Request::new(ListCasesRequest { page_size: 1000, ..Default::default() });
        case_credentials.apply(&mut request).map_err(tonic::Status::from)?;
        names = cases.list_cases(request).await?.into_inner().cases;
        if names.len() as u64 >= SEEDED_CASES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::ensure!(names.len() as u64 >= SEEDED_CASES, "the consumer did not open the seeded cases");
    let names: Arc<Vec<String>> = Arc::new(names.into_iter().map(|c| c.name).collect());
    // Complaints stored before anything is measured, so that the stores' page caches have filled
    // toward their budget: what a burst adds to memory is then mostly the burst's own.
    crate::scale::fill(&suite, 10_000, 10_000 + args.burst_stored).await?;
    crate::scale::settle(WARM_SETTLE_SECONDS).await;

    let b_channel = channels(suite.gateway_addr, 1).await?.remove(0);
    let b_token: tonic::metadata::MetadataValue<_> = "Bearer bench-caller-b".parse()?;
    let read = Arc::new(move |n: u64| {
        let mut client = CaseServiceClient::new(b_channel.clone());
        let request =
            bearer(tonic::Request::new(GetCaseRequest { name: names[n as usize % names.len()].clone() }), &b_token);
        async move { client.get_case(request).await.map(|_| ()) }
    });
    let a_channels = channels(suite.gateway_addr, args.connections).await?;
    let a_token: tonic::metadata::MetadataValue<_> = "Bearer bench-caller-a".parse()?;
    let submit = Arc::new(move |n: u64| {
        let mut client = IntakeServiceClient::new(a_channels[n as usize % a_channels.len()].clone());
        let request = bearer(
            tonic::Request::new(SubmitComplaintRequest {
                request_id: format!("burst-a-{n}"),
                complaint: Some(complaint(1_000_000 + n)),
            }),
            &a_token,
        );
        async move { client.submit_complaint(request).await.map(|_| ()) }
    });

    let short = Duration::from_secs(args.burst_seconds.max(1));
    open_loop(Pace::Exact, B_RATE, Duration::from_secs(2), 0, read.clone()).await?;
    let alone = open_loop(Pace::Exact, B_RATE, short, 1_000_000, read.clone()).await?;
    let before = Memory::of(None);
    println!(
        "B alone:            {} reads, p50 {:.2} ms  p99 {:.2} ms, errors {}; allocated {:.1} MiB (RSS {:.1} MiB, {:.1} \
         MiB of it mapped files)",
        alone.ok,
        ms(&alone.latency, 0.5),
        ms(&alone.latency, 0.99),
        alone.other + alone.exhausted,
        before.anon_mib(),
        before.rss_mib(),
        before.file_mib()
    );
    // A at its limit: the load the limiter lets through in any case, its bucket included. A burst
    // opens by spending A's full bucket (LIMIT calls in its first tenth of a second) and then has
    // calls admitted at the limit's rate; so here A sends LIMIT calls at the burst's rate in that
    // tenth of a second and, beside them, calls at exactly its limit. The two phases then admit
    // alike, and B's p99 between them is what the refused excess adds.
    let opening = Duration::from_secs_f64(f64::from(LIMIT) / A_RATE as f64);
    let (spent, limited, at_limit) = tokio::join!(
        open_loop(Pace::Ticks, A_RATE, opening, 4_000_000, submit.clone()),
        open_loop(Pace::Ticks, u64::from(LIMIT), short, 3_000_000, submit.clone()),
        open_loop(Pace::Exact, B_RATE, short, 3_000_000, read.clone())
    );
    let (spent, limited, at_limit) = (spent?, limited?, at_limit?);
    println!(
        "A at its limit:     A sent {} (its bucket, then at its limit): OK {}, RESOURCE_EXHAUSTED {}; B {} reads, p50 \
         {:.2} ms  p99 {:.2} ms",
        spent.sent + limited.sent,
        spent.ok + limited.ok,
        spent.exhausted + limited.exhausted,
        at_limit.ok,
        ms(&at_limit.latency, 0.5),
        ms(&at_limit.latency, 0.99)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut bursts = Vec::new();
    let mut next_a = 0;
    for length in [short, 3 * short] {
        let running = Arc::new(AtomicBool::new(true));
        let peak = watch_memory(running.clone());
        let (a, b) = tokio::join!(
            open_loop(Pace::Ticks, A_RATE, length, next_a, submit.clone()),
            open_loop(Pace::Exact, B_RATE, length, 0, read.clone())
        );
        running.store(false, Ordering::Relaxed);
        let (a, b, peak) = (a?, b?, peak.await?);
        next_a += a.sent + a.dropped;
        // Let the followers catch up on what A got through, then look again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = Memory::of(None);
        println!(
            "burst of {:>3} s:     A sent {} ({} dropped unsent): OK {}, RESOURCE_EXHAUSTED {} ({:.1} %), other {}{}",
            length.as_secs(),
            a.sent,
            a.dropped,
            a.ok,
            a.exhausted,
            100.0 * a.exhausted_share(),
            a.other,
            a.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        );
        println!(
            "                    B {} reads, p50 {:.2} ms  p99 {:.2} ms, errors {}{}; allocated: peak {:.1} MiB, after \
             {:.1} MiB (RSS {:.1} MiB)",
            b.ok,
            ms(&b.latency, 0.5),
            ms(&b.latency, 0.99),
            b.other + b.exhausted,
            b.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
            mib(peak),
            after.anon_mib(),
            after.rss_mib()
        );
        bursts.push((length, a, b, peak, after));
    }
    let again = open_loop(Pace::Exact, B_RATE, short, 2_000_000, read.clone()).await?;
    let end = Memory::of(None);
    println!(
        "B alone again:      {} reads, p50 {:.2} ms  p99 {:.2} ms; allocated {:.1} MiB; RSS {:.1} MiB, peak of the run \
         (VmHWM) {:.1} MiB",
        again.ok,
        ms(&again.latency, 0.5),
        ms(&again.latency, 0.99),
        end.anon_mib(),
        end.rss_mib(),
        end.hwm_mib()
    );

    println!();
    println!("summary:");
    let unloaded = ms(&alone.latency, 0.99);
    let admitted = ms(&at_limit.latency, 0.99);
    for (length, a, b, _, _) in &bursts {
        let ratio = ms(&b.latency, 0.99) / unloaded;
        println!(
            "  burst {:>3} s: A refused {:.1} % (RESOURCE_EXHAUSTED); B p99 loaded {:.2} ms / alone {unloaded:.2} ms = \
             {ratio:.2} (target ≤ 2.00) {}; B errors {}",
            length.as_secs(),
            100.0 * a.exhausted_share(),
            ms(&b.latency, 0.99),
            verdict(ratio <= 2.0 && b.other + b.exhausted == 0),
            b.other + b.exhausted
        );
        let excess = ms(&b.latency, 0.99) / admitted;
        println!(
            "               against A at its limit, bucket and rate admitted alike ({admitted:.2} ms): {excess:.2} \
             (what the refused excess adds; ≤ 2.00 {})",
            verdict(excess <= 2.0)
        );
    }
    let (short_peak, long_peak) = (bursts[0].3, bursts[1].3);
    let bounded = long_peak as f64 <= short_peak as f64 * 1.1;
    println!(
        "  allocated memory: before {:.1} MiB, peak in the {} s burst {:.1} MiB, in the {} s burst {:.1} MiB, after \
         {:.1} MiB: bounded (longer burst's peak ≤ 1.1 × shorter's) {}",
        before.anon_mib(),
        bursts[0].0.as_secs(),
        mib(short_peak),
        bursts[1].0.as_secs(),
        mib(long_peak),
        end.anon_mib(),
        verdict(bounded)
    );
    println!(
        "  (the benchmark's own process, the suite and both generators: its anonymous resident memory, RssAnon; its \
         RSS also counts the stores' mapped file pages, once per connection that touched them)"
    );
    print_load("end");
    suite.stop().await.context("suite")?;
    shutdown.cancel();
    Ok(())
}
