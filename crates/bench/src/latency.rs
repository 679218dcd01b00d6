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

use super::{Args, Scenario, complaint, drive, median};
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
/// at concurrency 1 in interleaved rounds, and the medians of their p50s are compared
/// (target: at most 150 µs added).
pub async fn gateway_overhead(pairs: &[(&str, &Scenario, &Scenario)], args: &Args) -> anyhow::Result<()> {
    let one = Args { concurrency: 1, ..args.clone() };
    println!();
    println!("added latency of the gateway, one call at a time ({} rounds):", one.rounds);
    let mut p50s = vec![(Vec::new(), Vec::new()); pairs.len()];
    for round in 1..=one.rounds {
        println!("round {round}/{} (concurrency 1)", one.rounds);
        for (k, (_, direct, gateway)) in pairs.iter().enumerate() {
            p50s[k].0.push(drive(direct, &one).await?.latency.value_at_quantile(0.5) as f64);
            p50s[k].1.push(drive(gateway, &one).await?.latency.value_at_quantile(0.5) as f64);
        }
    }
    for ((label, _, _), (direct, gateway)) in pairs.iter().zip(p50s) {
        let (direct, gateway) = (median(direct), median(gateway));
        let added = gateway - direct;
        println!(
            "  {label:<16} p50 direct {direct:>6.0} µs, through gateway {gateway:>6.0} µs: added {added:>5.0} µs \
             (target ≤ 150 µs) {}",
            verdict(added <= 150.0)
        );
    }
    Ok(())
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
