//! Latencies of the default run beside its throughput: GetCase straight to case-workflow (the
//! baseline of GetCase through the gateway), what the gateway adds to one call at a time, and
//! how long after intake accepts a complaint its case is visible.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use prost::Message;
use redress_platform::signing::ServiceCredentials;
use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{CaseOpened, GetCaseRequest, StreamEventsRequest};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::{Args, Scenario, complaint, median};
use crate::sys::{histogram, ms, verdict};

/// GetCase straight to case-workflow over `channels`, with a principal signed as the gateway
/// would sign it, reading the cases `names` in turn.
pub fn direct_get_case(credentials: ServiceCredentials, channels: Vec<Channel>, names: Arc<Vec<String>>) -> Scenario {
    Scenario::new("GetCase direct to case-workflow", move |i| {
        let mut client = CaseServiceClient::new(channels[i as usize % channels.len()].clone());
        let mut request = tonic::Request::new(GetCaseRequest { name: names[i as usize % names.len()].clone() });
        let credentials = credentials.clone();
        async move {
            credentials.apply(&mut request).map_err(tonic::Status::from)?;
            client.get_case(request).await.map(|_| ())
        }
    })
}

/// What the gateway adds to one call at a time: each pair (direct, through the gateway) runs
/// one call after the other, alternating which goes first, for `--seconds` per round after
/// `--warmup` (target: at most 150 µs added at p50). Pairing call by call keeps what drifts
/// in a run (a store that grows with every submission, the machine's other work) out of the
/// difference; the medians of the rounds' p50s and of the rounds' median differences of a
/// pair are printed. Beside them, the raw tonic echo one call at a time: one gRPC call with
/// nothing behind it, which is what one more hop costs at least on this machine (the gateway
/// adds a server and a client to the call).
pub async fn gateway_overhead(
    echo: &Scenario,
    pairs: &[(&str, &Scenario, &Scenario)],
    args: &Args,
) -> anyhow::Result<()> {
    println!();
    println!(
        "added latency of the gateway, one call at a time, direct and through the gateway in turn ({} rounds{}):",
        args.rounds,
        if args.pair_gap_ms > 0 { format!(", {} ms idle before every call", args.pair_gap_ms) } else { String::new() }
    );
    let mut rounds = vec![(Vec::new(), Vec::new(), Vec::new()); pairs.len()];
    let mut echoes = Vec::new();
    for round in 1..=args.rounds {
        println!("round {round}/{}", args.rounds);
        let bare = alone(echo, args).await?;
        println!("  {:<16} {:>6} calls  p50 {:>6} µs", "raw tonic echo", bare.len(), bare.value_at_quantile(0.5));
        echoes.push(bare.value_at_quantile(0.5) as f64);
        for (k, (label, direct, gateway)) in pairs.iter().enumerate() {
            let (d, g, added) = paired(direct, gateway, args).await?;
            println!(
                "  {label:<16} {:>6} pairs  p50 direct {:>6} µs, through gateway {:>6} µs, median difference {:>5} µs",
                d.len(),
                d.value_at_quantile(0.5),
                g.value_at_quantile(0.5),
                added
            );
            rounds[k].0.push(d.value_at_quantile(0.5) as f64);
            rounds[k].1.push(g.value_at_quantile(0.5) as f64);
            rounds[k].2.push(added as f64);
        }
    }
    let echo = median(echoes);
    println!("  raw tonic echo   p50 {echo:>6.0} µs: one bare gRPC call, the least one more hop adds here");
    for ((label, _, _), (direct, gateway, added)) in pairs.iter().zip(rounds) {
        let (direct, gateway, added) = (median(direct), median(gateway), median(added));
        println!(
            "  {label:<16} p50 direct {direct:>6.0} µs, through gateway {gateway:>6.0} µs: added {:>5.0} µs \
             (p50 of the differences {added:.0} µs; target ≤ 150 µs) {}",
            gateway - direct,
            verdict(gateway - direct <= 150.0)
        );
    }
    Ok(())
}

/// One scenario one call at a time for `--seconds` after `--warmup`: its latencies (µs).
async fn alone(scenario: &Scenario, args: &Args) -> anyhow::Result<Histogram<u64>> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let mut latencies = histogram();
    while Instant::now() < end {
        if args.pair_gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.pair_gap_ms)).await;
        }
        let issued = Instant::now();
        (scenario.call)(scenario.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            .await
            .with_context(|| scenario.name)?;
        if issued >= measure_from {
            latencies.record(issued.elapsed().as_micros().max(1) as u64)?;
        }
    }
    Ok(latencies)
}

/// One round of a pair: latencies direct, through the gateway, and the median of the
/// differences between the two calls of each pair (µs).
async fn paired(
    direct: &Scenario,
    gateway: &Scenario,
    args: &Args,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, i64)> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let (mut d, mut g) = (histogram(), histogram());
    let mut differences = Vec::new();
    let mut n = 0u64;
    while Instant::now() < end {
        let measured = Instant::now() >= measure_from;
        let mut one = [0i64; 2];
        let order = if n.is_multiple_of(2) { [0, 1] } else { [1, 0] };
        for which in order {
            let scenario = if which == 0 { direct } else { gateway };
            if args.pair_gap_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.pair_gap_ms)).await;
            }
            let issued = Instant::now();
            (scenario.call)(scenario.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                .await
                .with_context(|| scenario.name)?;
            one[which] = issued.elapsed().as_micros().max(1) as i64;
        }
        n += 1;
        if measured {
            d.record(one[0] as u64)?;
            g.record(one[1] as u64)?;
            differences.push(one[1] - one[0]);
        }
    }
    differences.sort_unstable();
    let added = differences.get(differences.len() / 2).copied().unwrap_or(0);
    Ok((d, g, added))
}

/// Where complaints are submitted and cases watched, and as whom.
pub struct Visibility {
    pub intake: Channel,
    pub intake_credentials: ServiceCredentials,
    pub cases: Channel,
    pub case_credentials: ServiceCredentials,
}

/// Complaint accepted → case visible: submits `count` complaints one at a time straight to
/// intake and, for each, waits for case-workflow's CaseOpened of it on the case feed
/// (`StreamEvents`, which serves an event once the case is committed and readable). The
/// latency runs from intake's answer to the event's arrival (zero when it came first).
pub async fn accepted_to_visible(
    visibility: &Visibility,
    count: u64,
    first_id: u64,
    request_prefix: &str,
) -> anyhow::Result<Histogram<u64>> {
    let (opened_tx, mut opened) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut feed = CaseEventFeedServiceClient::new(visibility.cases.clone());
    let mut request = tonic::Request::new(StreamEventsRequest { after_position: 0 });
    visibility.case_credentials.apply(&mut request).map_err(tonic::Status::from)?;
    let mut stream = feed.stream_events(request).await.context("case feed")?.into_inner();
    let reader = tokio::spawn(async move {
        while let Ok(Some(batch)) = stream.message().await {
            let arrived = Instant::now();
            for event in batch.events {
                let Some(payload) = event.payload else { continue };
                if !payload.type_url.ends_with("redress.case.v1.CaseOpened") {
                    continue;
                }
                let complaint = CaseOpened::decode(payload.value.as_slice())
                    .ok()
                    .and_then(|opened| opened.case)
                    .map(|case| case.complaint)
                    .unwrap_or_default();
                if opened_tx.send((complaint, arrived)).is_err() {
                    return;
                }
            }
        }
    });
    let mut intake = IntakeServiceClient::new(visibility.intake.clone());
    let mut latency = histogram();
    // After a throughput run, case-workflow may still be opening the cases of a backlog: the
    // first complaint (not counted) waits for it to catch up.
    let started = Instant::now();
    for i in first_id - 1..first_id + count {
        let mut request = tonic::Request::new(SubmitComplaintRequest {
            request_id: format!("{request_prefix}-{i}"),
            complaint: Some(complaint(i)),
        });
        visibility.intake_credentials.apply(&mut request).map_err(tonic::Status::from)?;
        let name = intake.submit_complaint(request).await?.into_inner().complaint.map(|c| c.name).unwrap_or_default();
        let accepted = Instant::now();
        let wait = if i < first_id { Duration::from_secs(600) } else { Duration::from_secs(30) };
        let visible = tokio::time::timeout(wait, async {
            while let Some((complaint, arrived)) = opened.recv().await {
                if complaint == name {
                    return Some(arrived);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .with_context(|| format!("no case was opened for {name} within {} s", wait.as_secs()))?;
        if i < first_id {
            println!("  case-workflow caught up with intake's feed after {:.1} s", started.elapsed().as_secs_f64());
            continue;
        }
        latency.record(visible.saturating_duration_since(accepted).as_micros().max(1) as u64)?;
    }
    reader.abort();
    Ok(latency)
}

/// Prints the accepted → visible distribution against `target_ms` for its p99.
pub fn print_visibility(label: &str, latency: &Histogram<u64>, target_ms: f64) {
    println!(
        "  {label}: {} complaints, p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (target p99 ≤ {target_ms:.0} ms) {}",
        latency.len(),
        ms(latency, 0.5),
        ms(latency, 0.99),
        latency.max() as f64 / 1000.0,
        verdict(ms(latency, 0.99) <= target_ms)
    );
}
