//! `redress-bench --scale`: whether the hot paths keep their cost as the store grows.
//!
//! The same scenarios run against two embedded suites in one run: one that starts empty, and
//! one holding `--scale-complaints` complaints (1,000,000 by default), each with its case,
//! filled through intake's own API first (or reused from `--scale-dir`, where a filled store is
//! kept between runs). Targets: each scenario with the large store ≥ 0.8 × the same with the
//! empty one.
//!
//! - SubmitComplaint through the gateway, half of them by someone who complained before
//!   (drawn uniformly from everyone in the store, so their rows are anywhere in it: the
//!   subject found by its blind index, the recurrence looked up, the new case linked to the
//!   earlier one), half by someone new;
//! - GetCase through the gateway of a case drawn uniformly from every case;
//! - ListCases through the gateway filtered by state (the newest page) and by complaint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use redress::{Suite, SuiteOptions};
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{CaseState, GetCaseRequest, ListCasesRequest};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{Args, Scenario, bearer, channels, complaint, draw, drive, median, wait_serving};

/// The first identity of people who complain for the first time during a measurement: above
/// every identity used to fill the store, and below 100,000,000, after which the bench's
/// identities repeat phone numbers and ID numbers (a "new" person would be a stored one).
const NEW_PEOPLE: u64 = 50_000_000;
/// Submissions in flight while filling.
const FILL_CONCURRENCY: usize = 128;
/// Longest wait for the consumers between scenarios.
const SETTLE_SECONDS: u64 = 180;
/// Longest wait for the consumers after filling the large store.
const FILL_SETTLE_SECONDS: u64 = 4 * 3600;
/// Written beside a filled store: how many complaints it holds.
const MARKER: &str = "redress-bench-scale";

struct Running {
    suite: Suite,
    shutdown: CancellationToken,
    gateway: Vec<Channel>,
    token: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

async fn start(data_dir: &Path, args: &Args) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    let token = "bench-token".to_owned();
    let suite = Suite::start(
        SuiteOptions {
            data_dir: data_dir.to_owned(),
            gateway_addr: "127.0.0.1:0".to_owned(),
            dev_token: token.clone(),
            ..SuiteOptions::default()
        },
        shutdown.clone(),
    )
    .await?;
    let gateway = channels(suite.gateway_addr, args.connections).await?;
    wait_serving(&gateway[0]).await?;
    Ok(Running { suite, shutdown, gateway, token: format!("Bearer {token}").parse()? })
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.suite.stop().await?;
        self.shutdown.cancel();
        Ok(())
    }
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// Waits until the suite's consumers have caught up: the process uses less than a tenth of a
/// core for two seconds in a row (or `limit` seconds have passed, which is said).
pub(crate) async fn settle(limit: u64) {
    let mut quiet = 0;
    let mut last = cpu_seconds();
    for _ in 0..limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_seconds();
        quiet = if now - last < 0.1 { quiet + 1 } else { 0 };
        last = now;
        if quiet >= 2 {
            return;
        }
    }
    println!("  (the suite was still busy after {limit} s)");
}

/// Submits complaints of identities `from..to` straight to intake, as many at once as
/// [`FILL_CONCURRENCY`], printing progress.
pub(crate) async fn fill(suite: &Suite, from: u64, to: u64) -> anyhow::Result<()> {
    let credentials = suite.gateway_credentials(redress::dev_principal(), "intake");
    let intake = channels(suite.intake_addr, 4).await?;
    let next = Arc::new(AtomicU64::new(from));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for t in 0..FILL_CONCURRENCY {
        let (next, credentials) = (next.clone(), credentials.clone());
        let mut client = IntakeServiceClient::new(intake[t % intake.len()].clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return anyhow::Ok(());
                }
                if i % 50_000 == 0 && i > from {
                    let rate = (i - from) as f64 / started.elapsed().as_secs_f64();
                    println!("  filled {i} complaints ({rate:.0}/s)");
                }
                let request = SubmitComplaintRequest { request_id: format!("fill-{i}"), complaint: Some(complaint(i)) };
                for attempt in 0.. {
                    let mut call = tonic::Request::new(request.clone());
                    credentials.apply(&mut call).map_err(tonic::Status::from)?;
                    match client.submit_complaint(call).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::Unavailable && attempt < 20 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => return Err(status.into()),
                    }
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    println!(
        "  filled {} complaints in {:.0} s; waiting for the consumers",
        to - from,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every case in the store: its name and its complaint's.
async fn every_case(running: &Running) -> anyhow::Result<Vec<(String, String)>> {
    let mut cases = CaseServiceClient::new(running.gateway[0].clone());
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListCasesRequest { page_size: 1000, page_token: page_token.clone(), ..Default::default() };
        let page = cases.list_cases(bearer(tonic::Request::new(request), &running.token)).await?.into_inner();
        out.extend(page.cases.into_iter().map(|c| (c.name, c.complaint)));
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// The store for the large measurement: kept in `--scale-dir` when given (filled once and
/// reused by later runs), else in a temporary directory.
async fn large_store(args: &Args, temp: &Path) -> anyhow::Result<PathBuf> {
    let dir = args.scale_dir.clone().unwrap_or_else(|| temp.join("large"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let marker = dir.join(MARKER);
    let held: u64 = std::fs::read_to_string(&marker).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    if held >= args.scale_complaints {
        println!("reusing {} complaints in {}", held, dir.display());
        return Ok(dir);
    }
    println!("filling {} with {} complaints", dir.display(), args.scale_complaints);
    let running = start(&dir, args).await?;
    fill(&running.suite, held, args.scale_complaints).await?;
    // Escalation matches complaints into groups more slowly than intake accepts them; the store
    // is kept only once its backlog is matched, so that no measurement shares the machine with it.
    settle(FILL_SETTLE_SECONDS).await;
    running.stop().await?;
    std::fs::write(&marker, args.scale_complaints.to_string())?;
    Ok(dir)
}

/// The scenarios against one running suite, `rounds` times interleaved; medians in req/s.
async fn measure(label: &str, running: &Running, people: u64, args: &Args) -> anyhow::Result<[f64; 4]> {
    let cases = every_case(running).await?;
    anyhow::ensure!(!cases.is_empty(), "no case to read");
    println!("{label}: {} cases, {people} people in the store", cases.len());
    let cases = Arc::new(cases);
    let submit = {
        let (channels, token) = (running.gateway.clone(), running.token.clone());
        Scenario::new("SubmitComplaint through gateway", move |i| {
            let mut client = IntakeServiceClient::new(channels[i as usize % channels.len()].clone());
            // Even requests: someone already in the store; odd ones: someone new.
            let person = if i % 2 == 0 { draw(i) % people } else { NEW_PEOPLE + i };
            let request =
                SubmitComplaintRequest { request_id: format!("{}-{i}", people), complaint: Some(complaint(person)) };
            let request = bearer(tonic::Request::new(request), &token);
            async move { client.submit_complaint(request).await.map(|_| ()) }
        })
    };
    let get = {
        let (channels, token, cases) = (running.gateway.clone(), running.token.clone(), cases.clone());
        Scenario::new("GetCase through gateway", move |i| {
            let mut client = CaseServiceClient::new(channels[i as usize % channels.len()].clone());
            let name = cases[(draw(i) % cases.len() as u64) as usize].0.clone();
            let request = bearer(tonic::Request::new(GetCaseRequest { name }), &token);
            async move { client.get_case(request).await.map(|_| ()) }
        })
    };
    let by_state = {
        let (channels, token) = (running.gateway.clone(), running.token.clone());
        Scenario::new("ListCases by state (newest 20)", move |i| {
            let mut client = CaseServiceClient::new(channels[i as usize % channels.len()].clone());
            let request = ListCasesRequest { page_size: 20, state: CaseState::Accepted as i32, ..Default::default() };
            let request = bearer(tonic::Request::new(request), &token);
            async move {
                let page = client.list_cases(request).await?.into_inner();
                if page.cases.is_empty() {
                    return Err(tonic::Status::internal("no case in the state"));
                }
                Ok(())
            }
        })
    };
    let by_complaint = {
        let (channels, token, cases) = (running.gateway.clone(), running.token.clone(), cases.clone());
        Scenario::new("ListCases by complaint", move |i| {
            let mut client = CaseServiceClient::new(channels[i as usize % channels.len()].clone());
            let complaint = cases[(draw(i) % cases.len() as u64) as usize].1.clone();
            let request = ListCasesRequest { page_size: 20, complaint, ..Default::default() };
            let request = bearer(tonic::Request::new(request), &token);
            async move {
                let page = client.list_cases(request).await?.into_inner();
                if page.cases.len() != 1 {
                    return Err(tonic::Status::internal("not exactly one case of the complaint"));
                }
                Ok(())
            }
        })
    };
    let scenarios = [submit, get, by_state, by_complaint];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    for round in 1..=args.rounds {
        println!("{label} round {round}/{}", args.rounds);
        for (k, scenario) in scenarios.iter().enumerate() {
            rates[k].push(drive(scenario, args).await?.rate());
            // The submissions' cases, links and counts are applied before the next scenario.
            settle(SETTLE_SECONDS).await;
        }
    }
    Ok([0, 1, 2, 3].map(|k| median(rates[k].clone())))
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.scale_complaints <= NEW_PEOPLE,
        "--scale-complaints: at most {NEW_PEOPLE}, so that the measured new people are not stored ones"
    );
    println!(
        "redress-bench --scale: {} complaints, concurrency {}, {} s measured after {} s warm-up, {} rounds, {} cores",
        args.scale_complaints,
        args.concurrency,
        args.seconds,
        args.warmup,
        args.rounds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let temp = tempfile::tempdir().context("temp dir")?;
    let large_dir = large_store(args, temp.path()).await?;

    // The small store: 1,000 complaints, so that there are cases to read and people to return.
    let small_dir = temp.path().join("small");
    let running = start(&small_dir, args).await?;
    fill(&running.suite, 0, 1_000).await?;
    settle(SETTLE_SECONDS).await;
    let small = measure("empty store", &running, 1_000, args).await?;
    running.stop().await?;

    // Measurements leave complaints behind: a reused store is measured on a copy. The copy is
    // on disk before the suite starts, so that its write-back (gigabytes) does not share the
    // disk with the measured commits, and the original leaves the page cache once copied, so
    // that reading it does not evict the copy: the store is then cached as a running server's
    // would be, as a store filled in this run is.
    let measured_dir = if args.scale_dir.is_some() {
        let copy = temp.path().join("large-copy");
        let started = std::time::Instant::now();
        copy_dir(&large_dir, &copy)?;
        println!("  copied the large store and flushed it to disk in {:.0} s", started.elapsed().as_secs_f64());
        copy
    } else {
        large_dir
    };
    let running = start(&measured_dir, args).await?;
    settle(SETTLE_SECONDS).await;
    let large = measure("large store", &running, args.scale_complaints, args).await?;
    running.stop().await?;

    println!();
    println!("{:<34} {:>12} {:>12} {:>7}  target", "medians (req/s)", "empty", "large", "ratio");
    let names =
        ["SubmitComplaint through gateway", "GetCase through gateway", "ListCases by state", "ListCases by complaint"];
    for (k, name) in names.iter().enumerate() {
        let ratio = large[k] / small[k];
        let verdict = if ratio >= 0.8 { "met" } else { "NOT met" };
        println!("{name:<34} {:>12.0} {:>12.0} {ratio:>7.3}  >= 0.8 {verdict}", small[k], large[k]);
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
            std::fs::File::open(&target)
                .and_then(|copied| copied.sync_all())
                .with_context(|| format!("flushing {}", target.display()))?;
            let original = std::fs::File::open(entry.path())?;
            rustix::fs::fadvise(&original, 0, None, rustix::fs::Advice::DontNeed)
                .with_context(|| format!("dropping {} from the page cache", entry.path().display()))?;
        }
    }
    Ok(())
}
