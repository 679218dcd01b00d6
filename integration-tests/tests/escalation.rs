//! Special complaints through the gateway (D-ESC): a group incident from its first complaints
//! to its close, and a malicious-complaint flag that leaves the complainant every right.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redress_integration_tests::{BRANCH, BRANCH_TOKEN, Sandbox};
use redress_platform::Principal;
use redress_proto::redress::case::v1::{ClockKind, ClockStatus, GetCaseRequest, LinkType};
use redress_proto::redress::escalation::v1::{
    ApproveMaliciousFlagRequest, ApproveStatementRequest, CauseCategory, CloseIncidentRequest, DraftStatementRequest,
    EvidenceRef, FlagMaliciousComplaintRequest, GetCurrentStatementRequest, Incident, IncidentKind, IncidentMember,
    IncidentState, ListIncidentMembersRequest, ListIncidentsRequest, MaliciousFlag, MaliciousFlagState,
    MaliciousGround, RecordSystemicCauseRequest, SystemicCause, UseStatementRequest,
};
use redress_proto::redress::intake::v1::complainant::Party;
use redress_proto::redress::intake::v1::{Complaint, NaturalPerson, SubmitComplaintRequest};
use tonic::Code;
use tonic_types::StatusExt;

/// How many people tell the same problem in their own words.
const OPENINGS: [&str; 5] = [
    "我的信用卡去年刷卡次数早已达到免年费标准，",
    "按办卡时约定消费满六次免年费，我远远超过了，",
    "我这张信用卡一年消费了十几笔，本应免收年费，",
    "作为持卡人我已满足免年费条件，",
    "信用卡章程写明刷满次数免次年年费，",
];
const MIDDLES: [&str; 5] = [
    "但这个月账单还是被扣了年费。",
    "结果账单里出现一笔年费扣款。",
    "近日收到短信说已扣收信用卡年费。",
    "最近查账单发现被收取了年费。",
    "可还是被扣了六百元年费。",
];
const ENDINGS: [&str; 5] = [
    "客服说是系统升级后免年费条件没有同步。",
    "客服承认系统切换导致消费次数没识别。",
    "客服说很多持卡人都被误扣年费，正在统一处理。",
    "听说同事的信用卡也被误扣了年费。",
    "网上很多持卡人都在反映被误收年费。",
];

fn similar_complaint(n: u32) -> Complaint {
    let (phone, id) = redress_intake::testing::identity(n + 1000);
    let i = n as usize;
    let facts = format!("{}{}{}", OPENINGS[i % 5], MIDDLES[(i / 5) % 5], ENDINGS[(i + i / 5) % 5]);
    let mut complaint = redress_intake::testing::complaint(&facts);
    complaint.org_unit = BRANCH.to_owned();
    complaint.demand = ["要求退还误扣的年费", "请尽快退回年费并说明原因", "退还年费，给个说法"][i % 3].to_owned();
    if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
        *p = NaturalPerson { full_name: format!("客户{n}"), id_number: id, phone, ..p.clone() };
    }
    complaint
}

async fn submit(sandbox: &Sandbox, n: u32, complaint: Complaint) -> String {
    let request = SubmitComplaintRequest { request_id: format!("group-{n}"), complaint: Some(complaint) };
    sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap().name
}

/// Polls until `check` gives a value (at most 60 s).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn group_incident(sandbox: &Sandbox) -> Option<Incident> {
    let request = ListIncidentsRequest { kind: IncidentKind::Group as i32, ..Default::default() };
    let incidents = sandbox.escalation().list_incidents(request).await.unwrap().into_inner().incidents;
    incidents.into_iter().next()
}

async fn members(sandbox: &Sandbox, incident: &str) -> Vec<IncidentMember> {
    let request = ListIncidentMembersRequest { incident: incident.to_owned(), page_size: 1000, ..Default::default() };
    sandbox.escalation().list_incident_members(request).await.unwrap().into_inner().members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_incident_runs_end_to_end_through_the_gateway() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut complaints = Vec::new();
    for n in 0..25 {
        complaints.push(submit(&sandbox, n, similar_complaint(n)).await);
    }
    let unrelated = redress_intake::testing::complaint("网点排队两个小时，只开了一个窗口。");
    let unrelated = submit(&sandbox, 99, Complaint { org_unit: BRANCH.to_owned(), ..unrelated }).await;

    // Declared, with its evidence.
    let incident = eventually("a declared group incident", || async {
        group_incident(&sandbox).await.filter(|i| i.state() == IncidentState::Declared)
    })
    .await;
    assert_eq!(incident.org_unit, "institutions/demo-bank");
    let evidence = incident.evidence.clone().unwrap();
    assert!(evidence.complainant_count >= 10, "{evidence:?}");
    assert!(evidence.shared_terms.contains(&"年费".to_owned()), "{:?}", evidence.shared_terms);
    // Members record how they matched an earlier one (the earliest of a cluster matched none).
    let matched = evidence.matches.iter().filter(|m| m.score > 0.0 && !m.shared_terms.is_empty()).count();
    assert!(matched * 2 >= evidence.matches.len(), "{:?}", evidence.matches);

    // Every member is linked under the lead case, as its PARENT.
    let all = eventually("25 members, all linked", || async {
        let found = members(&sandbox, &incident.name).await;
        (found.len() == 25 && found.iter().skip(1).all(|m| m.linked)).then_some(found)
    })
    .await;
    assert!(all.iter().all(|m| complaints.contains(&m.complaint)), "the unrelated complaint is no member");
    assert!(!all.iter().any(|m| m.complaint == unrelated));
    let lead_case = &all[0].case;
    for member in all.iter().skip(1) {
        let case = sandbox.cases().get_case(GetCaseRequest { name: member.case.clone() }).await.unwrap().into_inner();
        let parents: Vec<_> = case.links.iter().filter(|l| l.r#type == LinkType::Parent as i32).collect();
        assert_eq!(parents.len(), 1, "linked once: {:?}", case.links);
        assert_eq!(&parents[0].case, lead_case);
    }

    // One approved statement for every channel; the one before is refused.
    let draft = |text: &str, id: &str| DraftStatementRequest {
        incident: incident.name.clone(),
        request_id: id.to_owned(),
        text: text.to_owned(),
    };
    let v1 = sandbox.escalation().draft_statement(draft("第一版：正在核实。", "s-1")).await.unwrap().into_inner();
    let approve = |name: &str| ApproveStatementRequest { name: name.to_owned(), ..Default::default() };
    sandbox.escalation().approve_statement(approve(&v1.name)).await.unwrap();
    let text = "经核实，系统升级导致部分信用卡免年费条件未同步，误扣年费将于三个工作日内全额退还。";
    let v2 = sandbox.escalation().draft_statement(draft(text, "s-2")).await.unwrap().into_inner();
    sandbox.escalation().approve_statement(approve(&v2.name)).await.unwrap();
    for member in &all {
        let request =
            GetCurrentStatementRequest {
                case: member.case.clone(), channel: "热线".to_owned(), ..Default::default()
            };
        // The branch's own handler, who may read cases but not incidents, gets it for its case.
        let current = sandbox.escalation_with(BRANCH_TOKEN).get_current_statement(request).await.unwrap().into_inner();
        assert_eq!(current.text, text);
    }
    let stale = UseStatementRequest { name: v1.name.clone(), channel: "网点".to_owned(), ..Default::default() };
    let refused = sandbox.escalation().use_statement(stale).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_error_details().error_info().unwrap().reason, "STATEMENT_SUPERSEDED");

    // A member who complains later joins and is linked too.
    let late = submit(&sandbox, 26, similar_complaint(26)).await;
    let joined = eventually("the late member linked", || async {
        members(&sandbox, &incident.name).await.into_iter().find(|m| m.complaint == late && m.linked)
    })
    .await;
    assert_eq!(joined.source, "detected");

    // Closed once its systemic cause is recorded.
    let close =
        CloseIncidentRequest {
            name: incident.name.clone(), reason: "全部退费完成".to_owned(), ..Default::default()
        };
    let refused = sandbox.escalation().close_incident(close.clone()).await.unwrap_err();
    assert_eq!(refused.get_error_details().error_info().unwrap().reason, "SYSTEMIC_CAUSE_REQUIRED");
    let cause = SystemicCause {
        category: CauseCategory::System as i32,
        description: "系统升级时免年费规则未迁移".to_owned(),
        fix: "补迁规则，批量退费，并增加升级后核对".to_owned(),
        fix_owner: "user:it-lead".to_owned(),
        ..Default::default()
    };
    let record =
        RecordSystemicCauseRequest { name: incident.name.clone(), systemic_cause: Some(cause), ..Default::default() };
    sandbox.escalation().record_systemic_cause(record).await.unwrap();
    let closed = sandbox.escalation().close_incident(close).await.unwrap().into_inner();
    assert_eq!(closed.state(), IncidentState::Closed);
    assert_eq!(closed.systemic_cause.unwrap().fix_owner, "user:it-lead");
    assert_eq!(closed.member_count, 26);
}

const APPROVER_TOKEN: &str = "integration-test-escalation-approver";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_complainants_case_keeps_its_clocks_and_gets_a_decision() {
    let approver = Principal {
        subject: "user:compliance-lead".to_owned(),
        roles: vec!["senior_manager".to_owned()],
        org_unit: "institutions/demo-bank".to_owned(),
        department: String::new(),
        permissions: ["incidents.read", "incidents.approve", "cases.read"].map(str::to_owned).to_vec(),
        staff_id: String::new(),
    };
    let data = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start_configured(data, |o| o.extra_dev_tokens.push((APPROVER_TOKEN.to_owned(), approver)))
        .await
        .unwrap();
    let case = sandbox.submit_and_open("m-1", redress_intake::testing::complaint("扬言曝光，索要十万元赔偿。")).await;
    let flag = MaliciousFlag {
        case: case.name.clone(),
        grounds: vec![MaliciousGround::ThreatsForGain as i32, MaliciousGround::UnreasonableDemands as i32],
        description: "以向媒体曝光相威胁，要求远超损失的赔偿".to_owned(),
        evidence: vec![EvidenceRef {
            uri: "s3://evidence/calls/m-1.mp3".to_owned(),
            sha256: "cd".repeat(32),
            kind: "recording".to_owned(),
            description: "通话录音".to_owned(),
        }],
        ..Default::default()
    };
    // As soon as the escalation service has followed the case's opening from case-workflow's feed.
    let request = FlagMaliciousComplaintRequest { request_id: "flag-1".to_owned(), flag: Some(flag) };
    let flagged = eventually("the case known to the escalation service", || async {
        sandbox.escalation().flag_malicious_complaint(request.clone()).await.ok().map(|r| r.into_inner())
    })
    .await;
    assert_eq!(flagged.state(), MaliciousFlagState::Proposed);

    // The proposer cannot approve it alone.
    let approve =
        ApproveMaliciousFlagRequest {
            name: flagged.name.clone(), note: "证据充分".to_owned(), ..Default::default()
        };
    let refused = sandbox.escalation().approve_malicious_flag(approve.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_error_details().error_info().unwrap().reason, "SECOND_APPROVER_REQUIRED");
    let approved = sandbox.escalation_with(APPROVER_TOKEN).approve_malicious_flag(approve).await.unwrap().into_inner();
    assert_eq!(approved.state(), MaliciousFlagState::Approved);

    // The evidence joins the case's chain and legal is asked; the clocks run on.
    let case = eventually("the evidence and the legal referral on the case", || async {
        let case = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
        let evidence = case.evidence.iter().any(|e| e.uri == "s3://evidence/calls/m-1.mp3");
        let legal = case.coordination_tasks.iter().any(|t| t.department == "legal");
        (evidence && legal).then_some(case)
    })
    .await;
    let clock = |case: &redress_proto::redress::case::v1::Case, kind: ClockKind| {
        case.clocks.iter().find(|c| c.kind == kind as i32).map(|c| c.status).unwrap()
    };
    assert_eq!(clock(&case, ClockKind::RegulatoryDecision), ClockStatus::Running as i32);
    assert_eq!(clock(&case, ClockKind::Resolution), ClockStatus::Running as i32);

    // And the complainant still gets a decision, on time.
    let decided = sandbox.decide(&case.name).await;
    assert_eq!(clock(&decided, ClockKind::RegulatoryDecision), ClockStatus::Met as i32);
    assert!(decided.breaches.is_empty());
}
