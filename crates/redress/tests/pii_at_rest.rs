//! Personal information never reaches the disk or the logs in clear: the real binary takes
//! 1,000 complaints with distinct phone and ID numbers (and clear reads with a reason), then
//! every file of its data directory and everything it logged are searched for them.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redress_integration_tests::{Bearer, TOKEN};
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{GetComplaintRequest, SubmitComplaintRequest, complainant::Party};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic::transport::Channel;

const COMPLAINTS: u32 = 1000;

async fn wait_until_serving(channel: &Channel) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let started = Instant::now();
    loop {
        let request = tonic_health::pb::HealthCheckRequest { service: redress_proto::services::INTAKE.to_owned() };
        if health.check(request).await.unwrap().into_inner().status == 1 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn collect<R: tokio::io::AsyncBufRead + Unpin>(mut lines: tokio::io::Lines<R>, logs: Arc<Mutex<String>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        let mut logs = logs.lock().unwrap();
        logs.push_str(&line);
        logs.push('\n');
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_clear_phone_or_id_number_on_disk_or_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["dev", "--gateway-addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir"])
        .arg(dir.path())
        .env("REDRESS_DEV_TOKEN", TOKEN)
        // Everything Redress logs, at debug, plus the libraries at info.
        .env("RUST_LOG", "info,redress=debug,redress_intake=debug,redress_platform=debug,redress_gateway=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.unwrap().unwrap().unwrap();
        logs.lock().unwrap().push_str(&line);
        if let Some(addr) = line.strip_prefix("redress gateway listening on ") {
            break addr.to_owned();
        }
    };
    tokio::spawn(collect(stdout, logs.clone()));
    tokio::spawn(collect(BufReader::new(child.stderr.take().unwrap()).lines(), logs.clone()));
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut intake = IntakeServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    wait_until_serving(&channel).await;
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..16 {
        let mut intake = intake.clone();
        writers.push(tokio::spawn(async move {
            let mut names = Vec::new();
            for n in (w..COMPLAINTS).step_by(16) {
                let (phone, id_number) = redress_intake::testing::identity(n);
                let mut complaint = redress_intake::testing::complaint("网银转账被重复扣费。");
                if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
                    (p.phone, p.id_number) = (phone, id_number);
                }
                let request = SubmitComplaintRequest { request_id: format!("pii-{n}"), complaint: Some(complaint) };
                names.push(intake.submit_complaint(request).await.unwrap().into_inner().complaint.unwrap().name);
            }
            names
        }));
    }
    let mut names = Vec::new();
    for w in writers {
        names.extend(w.await.unwrap());
    }
    eprintln!("{} complaints in {:?}", names.len(), started.elapsed());
    // Clear reads, with a reason, are served and logged about without the values.
    for name in names.iter().take(20) {
        let request = GetComplaintRequest { name: name.clone(), pii_access_reason: "回访核实".to_owned() };
        let complaint = intake.get_complaint(request).await.unwrap().into_inner();
        let Some(Party::Person(p)) = complaint.complainant.unwrap().party else { panic!() };
        assert!(p.phone.starts_with("139") && !p.phone.contains('*'));
    }
    // Let case-workflow catch up and the suite flush, then stop it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = child.id().unwrap();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();

    // Every file the suite wrote, also in the directories a service keeps (a search index).
    let mut files = Vec::new();
    let mut dirs = vec![dir.path().to_owned()];
    while let Some(at) = dirs.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    assert!(
        files.iter().any(|(p, _)| p.ends_with("intake.db")),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let logs = logs.lock().unwrap().clone();
    assert!(logs.contains("complaint accepted"), "debug logs were captured");
    // Every phone and ID number submitted, searched for in one pass over each haystack.
    let mut needles: HashMap<usize, HashSet<Vec<u8>>> = HashMap::new();
    for n in 0..COMPLAINTS {
        let (phone, id_number) = redress_intake::testing::identity(n);
        for needle in [phone, id_number] {
            needles.entry(needle.len()).or_default().insert(needle.into_bytes());
        }
    }
    let find = |haystack: &[u8]| {
        needles.iter().find_map(|(len, set)| {
            haystack.windows(*len).find(|w| set.contains(*w)).map(|w| String::from_utf8_lossy(w).into_owned())
        })
    };
    assert_eq!(find(b"..13900000000..").as_deref(), Some("13900000000"), "the search finds what it looks for");
    for (path, bytes) in &files {
        assert_eq!(find(bytes), None, "in clear in {path}");
    }
    assert_eq!(find(logs.as_bytes()), None, "in clear in the logs");
    let full_name = "王小明".as_bytes();
    for (path, bytes) in &files {
        assert!(!bytes.windows(full_name.len()).any(|w| w == full_name), "a full name in clear in {path}");
    }
}
