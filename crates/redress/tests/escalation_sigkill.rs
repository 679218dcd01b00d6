//! Durability of group-complaint detection: SIGKILL during a burst of similar complaints, while
//! the escalation service matches them and links their cases under the incident's lead case.
//! After a restart every acknowledged complaint was matched (each is a member of the one
//! incident) and no case was linked twice.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redress_integration_tests::{Bearer, TOKEN};
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{GetCaseRequest, LinkType};
use redress_proto::redress::escalation::v1::escalation_service_client::EscalationServiceClient;
use redress_proto::redress::escalation::v1::{IncidentKind, ListIncidentMembersRequest, ListIncidentsRequest};
use redress_proto::redress::intake::v1::complainant::Party;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{NaturalPerson, SubmitComplaintRequest};
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
    for service in [redress_proto::services::INTAKE, redress_proto::services::ESCALATION] {
        loop {
            let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
            if health.check(request).await.unwrap().into_inner().status == 1 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not serving");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (child, channel)
}

const OPENINGS: [&str; 4] = [
    "我的信用卡去年刷卡次数早已达到免年费标准，",
    "按办卡时约定消费满六次免年费，我远远超过了，",
    "我这张信用卡一年消费了十几笔，本应免收年费，",
    "信用卡章程写明刷满次数免次年年费，",
];
const ENDINGS: [&str; 4] = [
    "但这个月账单还是被扣了年费，客服说是系统升级后免年费条件没有同步。",
    "结果账单里出现一笔年费扣款，客服承认系统切换导致消费次数没识别。",
    "近日收到短信说已扣收信用卡年费，听说很多持卡人都被误扣。",
    "最近查账单发现被收取了年费，网上很多人都在反映被误收年费。",
];

fn request(n: usize) -> SubmitComplaintRequest {
    let facts = format!("{}{}", OPENINGS[n % 4], ENDINGS[(n / 4) % 4]);
    let mut complaint = redress_intake::testing::complaint(&facts);
    let (phone, id) = redress_intake::testing::identity(n as u32);
    if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
        *p = NaturalPerson { id_number: id, phone, ..p.clone() };
    }
    SubmitComplaintRequest { request_id: format!("group-burst-{n}"), complaint: Some(complaint) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_misses_no_complaint_and_links_no_case_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, channel) = start(dir.path()).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let channel = channel.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let mut client = IntakeServiceClient::with_interceptor(channel, Bearer(Some(TOKEN.to_owned())));
            for i in 0.. {
                match client.submit_complaint(request(w * 10_000 + i)).await {
                    Ok(r) => acknowledged.lock().unwrap().push(r.into_inner().complaint.unwrap().name),
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once the incident is declared and its cases are being linked.
    let mut escalation = EscalationServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let started = Instant::now();
    loop {
        let request = ListIncidentsRequest { kind: IncidentKind::Group as i32, ..Default::default() };
        let declared = escalation.list_incidents(request).await.unwrap().into_inner().incidents;
        if acknowledged.lock().unwrap().len() >= 200 && !declared.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no incident during the burst");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!("killed after {} acknowledged complaints", acknowledged.len());

    let (_child, channel) = start(dir.path()).await;
    let mut escalation = EscalationServiceClient::with_interceptor(channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let mut cases = CaseServiceClient::with_interceptor(channel, Bearer(Some(TOKEN.to_owned())));
    let started = Instant::now();
    let members = loop {
        let request = ListIncidentsRequest { kind: IncidentKind::Group as i32, ..Default::default() };
        let incidents = escalation.list_incidents(request).await.unwrap().into_inner().incidents;
        assert_eq!(incidents.len(), 1, "one group, one incident");
        let request =
            ListIncidentMembersRequest { incident: incidents[0].name.clone(), page_size: 1000, ..Default::default() };
        let members = escalation.list_incident_members(request).await.unwrap().into_inner().members;
        let all_in = acknowledged.iter().all(|c| members.iter().any(|m| &m.complaint == c));
        if all_in && members.iter().skip(1).all(|m| m.linked) {
            break members;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "complaints not matched or not linked after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lead = members[0].case.clone();
    for member in members.iter().skip(1) {
        let case = cases.get_case(GetCaseRequest { name: member.case.clone() }).await.unwrap().into_inner();
        let parents = case.links.iter().filter(|l| l.r#type == LinkType::Parent as i32).count();
        assert_eq!(parents, 1, "{} is linked {parents} times", case.name);
    }
    let lead = cases.get_case(GetCaseRequest { name: lead }).await.unwrap().into_inner();
    let mut children: HashMap<&str, usize> = HashMap::new();
    for link in lead.links.iter().filter(|l| l.r#type == LinkType::Child as i32) {
        *children.entry(link.case.as_str()).or_default() += 1;
    }
    assert!(children.values().all(|n| *n == 1), "a case linked twice under the lead");
    // The lead lists its first links and counts the rest (each member lists its own, above).
    assert_eq!(children.len(), (members.len() - 1).min(100));
    assert_eq!(children.len() + lead.unlisted_link_count as usize, members.len() - 1);
}
