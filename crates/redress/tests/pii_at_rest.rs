//! Personal information never reaches the disk or the logs in clear: the real binary takes
//! 1,000 complaints with distinct phone and ID numbers, in their fields and written into their
//! facts, demand and staff notes with card numbers, landlines and e-mail addresses (D-PII-5),
//! serves clear reads with a reason, and erases a tenth of the complainants; then every file
//! of its data directory and everything it logged are searched for them, and the sealed
//! personal information is opened with the data directory's keys: what was erased is gone.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redress_intake::domain::pii::{self, WrappedKey};
use redress_integration_tests::{Bearer, TOKEN};
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::person_identifier::Identifier;
use redress_proto::redress::intake::v1::personal_data_service_client::PersonalDataServiceClient;
use redress_proto::redress::intake::v1::{
    Complaint, ErasePersonalDataRequest, GetComplaintRequest, PersonIdentifier, SubmitComplaintRequest,
    complainant::Party,
};
use sqlx::Row;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic::transport::Channel;

const COMPLAINTS: u32 = 1000;
/// Complainants `0..ERASED` are erased.
const ERASED: u32 = 100;

/// What complaint `n`'s free text carries, as written: its phone (spaced), ID number, a bank
/// card (Luhn-valid), a landline and an e-mail address.
fn written(n: u32) -> Vec<String> {
    let (phone, id_number) = redress_intake::testing::identity(n);
    let spaced = format!("{} {} {}", &phone[..3], &phone[3..7], &phone[7..]);
    let body = format!("622202{n:012}");
    let check = (0..10u8)
        .find(|c| {
            let digits: Vec<u8> = format!("{body}{c}").bytes().map(|b| b - b'0').collect();
            redress_platform::free_text_pii::luhn(&digits)
        })
        .unwrap();
    vec![spaced, id_number, format!("{body}{check}"), format!("021-6{n:07}"), format!("kehu{n}@example.cn")]
}

fn free_text_complaint(n: u32) -> Complaint {
    let (phone, id_number) = redress_intake::testing::identity(n);
    let [spaced, id_in_text, card, landline, email] = <[String; 5]>::try_from(written(n)).unwrap();
    let mut complaint = redress_intake::testing::complaint(&format!(
        "本人身份证{id_in_text}，手机{spaced}，座机{landline}。卡号{card}于2026-11-28被扣款12000.00元，\
         投诉编号2026112500000042，至今未退。"
    ));
    complaint.demand = format!("退还12000.00元至{card}，结果发到{email}");
    complaint.staff_notes = format!("客户另留手机{phone}");
    if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
        (p.phone, p.id_number) = (phone, id_number);
    }
    complaint
}

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
                let complaint = free_text_complaint(n);
                let request = SubmitComplaintRequest { request_id: format!("pii-{n}"), complaint: Some(complaint) };
                names.push((n, intake.submit_complaint(request).await.unwrap().into_inner().complaint.unwrap().name));
            }
            names
        }));
    }
    let mut names = Vec::new();
    for w in writers {
        names.extend(w.await.unwrap());
    }
    names.sort();
    eprintln!("{} complaints in {:?}", names.len(), started.elapsed());
    // Clear reads, with a reason, are served and logged about without the values.
    for (_, name) in names.iter().take(20) {
        let request = GetComplaintRequest { name: name.clone(), pii_access_reason: "回访核实".to_owned() };
        let complaint = intake.get_complaint(request).await.unwrap().into_inner();
        let Some(Party::Person(p)) = complaint.complainant.unwrap().party else { panic!() };
        assert!(p.phone.starts_with("139") && !p.phone.contains('*'));
    }
    // Free text: masked without a reason, as written with one.
    for (n, name) in names.iter().take(20) {
        let [_, _, card, ..] = <[String; 5]>::try_from(written(*n)).unwrap();
        let read = |reason: &str| GetComplaintRequest { name: name.clone(), pii_access_reason: reason.to_owned() };
        let masked = intake.get_complaint(read("")).await.unwrap().into_inner();
        assert!(!masked.facts.contains(&card) && masked.facts.contains("12000.00元"), "{}", masked.facts);
        let clear = intake.get_complaint(read("回访核实")).await.unwrap().into_inner();
        assert!(clear.facts.contains(&card) && clear.demand.contains(&card), "{}", clear.facts);
    }
    // The first complainants exercise their right to erasure.
    let mut personal_data =
        PersonalDataServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    for n in 0..ERASED {
        let (phone, _) = redress_intake::testing::identity(n);
        let request = ErasePersonalDataRequest {
            person: Some(PersonIdentifier { identifier: Some(Identifier::Phone(phone)) }),
            institution: "institutions/demo-bank".to_owned(),
            reason: format!("删除请求 D-{n}"),
        };
        let erased = personal_data.erase_personal_data(request).await.unwrap().into_inner();
        assert_eq!(erased.erased_complaints, 1, "complainant {n}");
    }
    // Erased, the free text shows its masked words, even to a reader allowed to see personal
    // information.
    for (n, name) in names.iter().take(5) {
        let [_, _, card, ..] = <[String; 5]>::try_from(written(*n)).unwrap();
        let request = GetComplaintRequest { name: name.clone(), pii_access_reason: "回访核实".to_owned() };
        let read = intake.get_complaint(request).await.unwrap().into_inner();
        assert!(!read.facts.contains(&card) && read.facts.contains("12000.00元"), "{}", read.facts);
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
        for needle in [phone, id_number].into_iter().chain(written(n)) {
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

    // Opened with the data directory's keys, every sealed complaint gives back the words its
    // complainant wrote, and nothing of an erased complainant's is left to open.
    let keyring = dev_keyring(&dir.path().join("pii-keys"));
    let url = format!("sqlite://{}?mode=ro", dir.path().join("intake.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT c.id, c.record, c.pii, c.subject_id, s.key_id, s.wrapped_key FROM complaints c \
         LEFT JOIN subjects s ON s.id = c.subject_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(rows.len(), COMPLAINTS as usize);
    let erased_needles: Vec<String> = (0..ERASED).flat_map(written).collect();
    let (mut opened, mut gone) = (0, 0);
    for row in rows {
        let id: String = row.get(0);
        let record: Vec<u8> = row.get(1);
        let masked_card = "卡号6222***".as_bytes();
        assert!(record.windows(masked_card.len()).any(|w| w == masked_card), "{id}: the record keeps the card masked");
        // The sealed part alone: what the keys give back.
        let mut complaint = Complaint::default();
        let sealed: Option<Vec<u8>> = row.get(2);
        let wrapped: Option<Vec<u8>> = row.get(5);
        match (sealed, wrapped) {
            (Some(sealed), Some(wrapped)) => {
                let subject: String = row.get(3);
                let wrapped = WrappedKey { key_id: row.get(4), sealed: wrapped };
                pii::unseal(&keyring, &mut complaint, &id, &subject, &wrapped, &sealed).unwrap();
                assert!(
                    complaint.facts.contains("卡号622202") && !complaint.facts.contains('*'),
                    "{}",
                    complaint.facts
                );
                for needle in &erased_needles {
                    assert!(!complaint.facts.contains(needle.as_str()) && !complaint.demand.contains(needle.as_str()));
                }
                opened += 1;
            }
            (None, None) => gone += 1,
            (sealed, wrapped) => panic!("{id}: sealed {:?}, key {:?}", sealed.is_some(), wrapped.is_some()),
        }
    }
    assert_eq!((opened, gone), (COMPLAINTS - ERASED, ERASED));
}

/// The keyring of a development data directory's `pii-keys` file.
fn dev_keyring(path: &std::path::Path) -> pii::Keyring {
    let mut config = redress_intake::PiiConfig::default();
    for line in std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('=').unwrap();
        let value = redress_platform::config::Secret::new(value.trim());
        match key.trim() {
            "active_key_id" => config.active_key_id = value.expose().to_owned(),
            "index_key" => config.index_key = value,
            other => {
                config.master_keys.insert(other.strip_prefix("master_key.").unwrap().to_owned(), value);
            }
        }
    }
    config.keyring().unwrap()
}
