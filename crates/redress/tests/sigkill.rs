//! Durability of the embedded suite: SIGKILL during a burst of submissions loses nothing that
//! was acknowledged, and after a restart each acknowledged complaint has exactly one case.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redress_integration_tests::{Bearer, TOKEN};
use redress_proto::redress::case::v1::ListCasesRequest;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{GetComplaintRequest, SubmitComplaintRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

async fn start(data_dir: &std::path::Path) -> (Child, Channel) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["dev", "--gateway-addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir"])
        .arg(data_dir)
        .env("REDRESS_DEV_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        if let Some(addr) = line.strip_prefix("redress gateway listening on ") {
            break addr.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let started = Instant::now();
    loop {
        let request = tonic_health::pb::HealthCheckRequest { service: redress_proto::services::INTAKE.to_owned() };
        if health.check(request).await.unwrap().into_inner().status == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, channel)
}

fn request(i: usize) -> SubmitComplaintRequest {
    SubmitComplaintRequest {
        request_id: format!("burst-{i}"),
        complaint: Some(redress_intake::testing::complaint(&format!("第{i}笔交易被重复扣费。"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, channel) = start(dir.path()).await;
    let acknowledged = Arc::new(Mutex::new(HashMap::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let channel = channel.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let mut client = IntakeServiceClient::with_interceptor(channel, Bearer(Some(TOKEN.to_owned())));
            for i in 0.. {
                let n = w * 1_000_000 + i;
                match client.submit_complaint(request(n)).await {
                    Ok(r) => {
                        let name = r.into_inner().complaint.unwrap().name;
                        acknowledged.lock().unwrap().insert(n, name);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let started = Instant::now();
    // A loaded machine (a debug build, two cores) may need more than half a minute for the burst.
    while acknowledged.lock().unwrap().len() < 1000 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("burst: {} acks in {:?}", acknowledged.lock().unwrap().len(), started.elapsed());
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 1000, "burst too small: {}", acknowledged.len());

    let restart = Instant::now();
    let (_child, channel) = start(dir.path()).await;
    eprintln!("restart took {:?}", restart.elapsed());
    let mut intake = IntakeServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    for (n, name) in &acknowledged {
        let complaint = intake
            .get_complaint(GetComplaintRequest { name: name.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(complaint.facts, format!("第{n}笔交易被重复扣费。"));
        // A retry after the crash still answers with the acknowledged complaint.
        let again = intake.submit_complaint(request(*n)).await.unwrap().into_inner();
        assert_eq!(&again.complaint.unwrap().name, name);
    }
    let mut cases = CaseServiceClient::with_interceptor(channel, Bearer(Some(TOKEN.to_owned())));
    let expected: HashSet<_> = acknowledged.values().cloned().collect();
    let started = Instant::now();
    loop {
        let mut per_complaint: HashMap<String, usize> = HashMap::new();
        let mut page_token = String::new();
        loop {
            let page = ListCasesRequest { page_size: 1000, page_token: page_token.clone(), ..Default::default() };
            let page = cases.list_cases(page).await.unwrap().into_inner();
            for case in page.cases {
                *per_complaint.entry(case.complaint).or_default() += 1;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert!(per_complaint.values().all(|n| *n == 1), "a complaint has more than one case");
        if expected.iter().all(|name| per_complaint.contains_key(name)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "acknowledged complaints without a case");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every DeadlineBreached on the case feed so far, counted per case and clock.
async fn breaches(channel: &Channel) -> HashMap<(String, i32), usize> {
    use redress_proto::redress::case::v1::case_event_feed_service_client::CaseEventFeedServiceClient;
    use redress_proto::redress::case::v1::{DeadlineBreached, StreamEventsRequest};

    let mut feed = CaseEventFeedServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let mut stream = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let mut counted = HashMap::new();
    // The feed follows new events forever; stop once it has been quiet for a moment.
    while let Ok(Ok(Some(batch))) = tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
        for event in batch.events {
            if event.event_type == "redress.case.v1.DeadlineBreached" {
                let breach: DeadlineBreached = event.payload.as_ref().unwrap().to_msg().unwrap();
                *counted.entry((event.aggregate, breach.clock)).or_default() += 1;
            }
        }
    }
    counted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_sweeper_raises_breaches_neither_loses_nor_repeats_one() {
    const COMPLAINTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, channel) = start(dir.path()).await;
    // Complaints received five weeks ago: all three clocks of each case have run out.
    let received = std::time::SystemTime::now() - Duration::from_secs(35 * 24 * 3600);
    let received = received.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut intake = IntakeServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    for i in 0..COMPLAINTS {
        let mut r = request(i);
        r.request_id = format!("late-{i}");
        let at = r.complaint.as_mut().unwrap().receive_time.get_or_insert_with(Default::default);
        (at.seconds, at.nanos) = (received, 0);
        intake.submit_complaint(r).await.unwrap();
    }
    // Kill as soon as the sweeper has started raising breaches.
    let started = Instant::now();
    loop {
        let raised = breaches(&channel).await.len();
        if raised > 0 {
            eprintln!("killing with {raised} of {} breaches raised", 3 * COMPLAINTS);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no breach raised");
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let (_child, channel) = start(dir.path()).await;
    let started = Instant::now();
    loop {
        let counted = breaches(&channel).await;
        assert!(counted.values().all(|n| *n == 1), "a breach was raised twice");
        if counted.len() == 3 * COMPLAINTS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "breaches missing: {} of {}",
            counted.len(),
            3 * COMPLAINTS
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
