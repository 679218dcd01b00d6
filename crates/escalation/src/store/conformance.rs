//! One suite of store tests, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Duration;
use redress_platform::db::DatabaseConfig;
use redress_platform::dead_letters::Replay;
use redress_platform::host::Supervisor;
use redress_platform::principal::Principal;
use redress_platform::testing::committed_events;
use redress_platform::time::{Clock, now, to_timestamp};
use redress_proto::redress::case::v1::{Case, CaseChanged, CaseOpened, CaseState};
use redress_proto::redress::common::v1::{Event, Grade, ReplayDeadLetterRequest};
use redress_proto::redress::escalation::v1::{
    AlertKind, CauseCategory, EscalationLevel, Incident, IncidentKind, IncidentState, StatementState, SystemicCause,
};
use redress_proto::redress::intake::v1::{
    ComplaintAccepted, ComplaintProcessingRestricted, FirstContact, RiskSignal, RiskSignalKind, RiskSignalRaised,
};

use super::ops::{self, Attempt, IncidentCommand, IncidentUpdate, RequestKey};
use super::{CASE_CONSUMER, EscalationStore, INTAKE_CONSUMER, ListQuery};
use crate::domain::DomainError;
use crate::domain::actions::CaseRequest;
use crate::error::EscalationError;
use crate::rules::Rules;

const UNIT: &str = "institutions/demo/branches/sh";

async fn open(config: &DatabaseConfig) -> Arc<EscalationStore> {
    let rules = Arc::new(Rules::shipped(vec!["senior_manager".to_owned()]).unwrap());
    Arc::new(EscalationStore::open(config, rules, Clock::system(), &Supervisor::detached()).await.unwrap())
}

fn event<M: prost::Name>(position: i64, aggregate: &str, payload: &M) -> Event {
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: M::full_name(),
        aggregate: aggregate.to_owned(),
        org_unit: UNIT.to_owned(),
        payload: Some(prost_types::Any { type_url: M::type_url(), value: payload.encode_to_vec() }),
        ..Event::default()
    }
}

fn complaint(n: u32) -> String {
    format!("complaints/0196a8f0-0000-7000-8000-{n:012}")
}

fn case_of(n: u32) -> String {
    format!("cases/0196a8f0-0000-7000-9000-{n:012}")
}

fn accepted(n: u32, grade: Grade) -> ComplaintAccepted {
    ComplaintAccepted {
        complaint: complaint(n),
        org_unit: UNIT.to_owned(),
        grade: grade as i32,
        receive_time: Some(to_timestamp(now())),
        institution: "示例银行".to_owned(),
        first_contact: Some(FirstContact { subject: "user:li".to_owned(), ..FirstContact::default() }),
        ..ComplaintAccepted::default()
    }
}

fn case(n: u32, grade: Grade, state: CaseState) -> Case {
    Case {
        name: case_of(n),
        complaint: complaint(n),
        org_unit: UNIT.to_owned(),
        grade: grade as i32,
        state: state as i32,
        assignee: "user:li".to_owned(),
        department: "cards".to_owned(),
        ..Case::default()
    }
}

fn staff(roles: &[&str]) -> Arc<Principal> {
    Arc::new(Principal {
        subject: "user:lead".to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        org_unit: "institutions/demo".to_owned(),
        department: String::new(),
        permissions: vec![],
        staff_id: String::new(),
    })
}

/// Opens complaints 1..=n with their cases.
async fn complaints_with_cases(store: &EscalationStore, n: u32) {
    let intake: Vec<Event> =
        (1..=n).map(|i| event(i64::from(i), &complaint(i), &accepted(i, Grade::General))).collect();
    store.apply(INTAKE_CONSUMER, intake).await.unwrap();
    let cases: Vec<Event> = (1..=n)
        .map(|i| {
            event(i64::from(i), &case_of(i), &CaseOpened { case: Some(case(i, Grade::General, CaseState::Accepted)) })
        })
        .collect();
    store.apply(CASE_CONSUMER, cases).await.unwrap();
}

async fn event_types(store: &EscalationStore) -> Vec<String> {
    committed_events(store.feed(), 0, 10_000).await.unwrap().into_iter().map(|e| e.event_type).collect()
}

async fn complaints_and_cases_are_known_from_either_feed_in_either_order(store: Arc<EscalationStore>) {
    // The case feed tells of complaint 1 first, intake after; complaint 2 the other way round.
    let opened = CaseOpened { case: Some(case(1, Grade::Important, CaseState::Assigned)) };
    store.apply(CASE_CONSUMER, vec![event(1, &case_of(1), &opened)]).await.unwrap();
    store
        .apply(
            INTAKE_CONSUMER,
            vec![
                event(1, &complaint(1), &accepted(1, Grade::General)),
                event(2, &complaint(2), &accepted(2, Grade::Urgent)),
            ],
        )
        .await
        .unwrap();
    let one = store.known(&complaint(1)).await.unwrap().unwrap();
    assert_eq!(one.case.as_deref(), Some(case_of(1).as_str()));
    assert_eq!(one.grade, Grade::Important as i32, "the case's grade is newer than intake's");
    assert!(one.accepted.is_some());
    assert_eq!(one.complainant_key, complaint(1));
    let two = store.known(&complaint(2)).await.unwrap().unwrap();
    assert_eq!((two.case, two.grade), (None, Grade::Urgent as i32));
    assert_eq!(store.position(INTAKE_CONSUMER).await.unwrap(), 2);
    assert_eq!(store.position(CASE_CONSUMER).await.unwrap(), 1);
    // A repeat of complaint 1 counts as the same complainant.
    let repeat = ComplaintAccepted { recurrence_of: complaint(1), ..accepted(3, Grade::General) };
    store.apply(INTAKE_CONSUMER, vec![event(3, &complaint(3), &repeat)]).await.unwrap();
    assert_eq!(store.known(&complaint(3)).await.unwrap().unwrap().complainant_key, complaint(1));
    // Events at or below the stored position are passed over.
    store.apply(INTAKE_CONSUMER, vec![event(2, &complaint(9), &accepted(9, Grade::General))]).await.unwrap();
    assert!(store.known(&complaint(9)).await.unwrap().is_none());
}

async fn a_major_case_reaches_senior_management_at_once_and_climbs_when_unacknowledged(store: Arc<EscalationStore>) {
    let opened = CaseOpened { case: Some(case(1, Grade::Major, CaseState::Accepted)) };
    store.apply(CASE_CONSUMER, vec![event(1, &case_of(1), &opened)]).await.unwrap();
    let changed = CaseChanged { case: Some(case(1, Grade::Major, CaseState::Assigned)), ..CaseChanged::default() };
    store.apply(CASE_CONSUMER, vec![event(2, &case_of(1), &changed)]).await.unwrap();
    let all = store.escalations(&ListQuery { limit: 10, ..ListQuery::default() }, 0, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].level(), EscalationLevel::SeniorManagement);
    assert_eq!(all[0].steps.len(), 1, "the major grade seen again raises nothing");
    assert_eq!(all[0].case, case_of(1));
    let raised = event_types(&store).await.iter().filter(|t| t.ends_with("EscalationRaised")).count();
    assert_eq!(raised, 1);
    // Its hour passes unacknowledged: the regulator report, once.
    let later = now() + Duration::minutes(61);
    assert_eq!(store.sweep(now(), 100).await.unwrap(), 0);
    assert_eq!(store.sweep(later, 100).await.unwrap(), 1);
    assert_eq!(store.sweep(later, 100).await.unwrap(), 0, "swept once");
    let e = store.escalation(crate::domain::actions::id_of(&all[0].name)).await.unwrap().unwrap();
    assert_eq!(e.level(), EscalationLevel::RegulatorReport);
    assert_eq!(e.steps[1].raised_by, "service:escalation");
    assert!(!e.steps[1].reason.is_empty());
    let due = store.due_actions(later, 10).await.unwrap();
    assert!(matches!(due.as_slice(), [a] if matches!(a.request, CaseRequest::AddTask { .. })), "{due:?}");
    // The case closes: so does its escalation.
    let closed = CaseChanged { case: Some(case(1, Grade::Major, CaseState::Closed)), ..CaseChanged::default() };
    store.apply(CASE_CONSUMER, vec![event(3, &case_of(1), &closed)]).await.unwrap();
    let e = store.escalation(crate::domain::actions::id_of(&all[0].name)).await.unwrap().unwrap();
    assert_eq!(e.state(), redress_proto::redress::escalation::v1::EscalationState::Closed);
}

async fn escalation_required_reaches_senior_management_once_with_its_reason(store: Arc<EscalationStore>) {
    complaints_with_cases(&store, 1).await;
    let required = redress_proto::redress::case::v1::EscalationRequired {
        case: Some(case(1, Grade::Major, CaseState::Assigned)),
        grade: Grade::Major as i32,
        reason: "改为重大：涉及人身安全".to_owned(),
        recipients: vec!["role:senior_manager".to_owned()],
        raise_time: Some(to_timestamp(now())),
    };
    store.apply(CASE_CONSUMER, vec![event(2, &case_of(1), &required), event(3, &case_of(1), &required)]).await.unwrap();
    let all = store.escalations(&ListQuery { limit: 10, ..ListQuery::default() }, 0, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].level(), EscalationLevel::SeniorManagement);
    assert_eq!(all[0].steps.len(), 1);
    assert!(all[0].steps[0].reason.contains("涉及人身安全"), "{:?}", all[0].steps[0]);
}

async fn an_acknowledged_step_does_not_climb(store: Arc<EscalationStore>) {
    complaints_with_cases(&store, 1).await;
    let raise = ops::ManualRaise {
        case: case_of(1),
        level: None,
        reason: "客户情绪激动".to_owned(),
        request: None,
        principal: staff(&["handler"]),
    };
    let e = store.raise_escalation(raise).await.unwrap();
    assert_eq!(e.level(), EscalationLevel::Handler);
    let ack = |roles: &[&str]| ops::Acknowledgement {
        id: crate::domain::actions::id_of(&e.name).to_owned(),
        expected_version: None,
        note: "已联系客户".to_owned(),
        request: None,
        principal: staff(roles),
    };
    let acked = store.acknowledge_escalation(ack(&["handler"])).await.unwrap();
    assert_eq!(acked.steps[0].acknowledged_by, "user:lead");
    assert!(matches!(
        store.acknowledge_escalation(ack(&["handler"])).await,
        Err(EscalationError::Domain(DomainError::AlreadyAcknowledged))
    ));
    assert_eq!(store.sweep(now() + Duration::days(30), 100).await.unwrap(), 0);
}

async fn early_warning_alerts_once_regrades_and_escalates_by_rule(store: Arc<EscalationStore>) {
    complaints_with_cases(&store, 1).await;
    let signals = vec![
        RiskSignal { kind: RiskSignalKind::EscalationThreat as i32, evidence: vec!["12378".to_owned()] },
        RiskSignal { kind: RiskSignalKind::HeatedWording as i32, evidence: vec!["忍无可忍".to_owned()] },
    ];
    let raised = RiskSignalRaised {
        complaint: complaint(1),
        org_unit: UNIT.to_owned(),
        signals,
        grade: Grade::Important as i32,
        ..RiskSignalRaised::default()
    };
    store.apply(INTAKE_CONSUMER, vec![event(2, &complaint(1), &raised)]).await.unwrap();
    // Announced again later (a replay upstream): still one alert.
    store.apply(INTAKE_CONSUMER, vec![event(3, &complaint(1), &raised)]).await.unwrap();
    let alerts = store.alerts(&ListQuery { limit: 10, ..ListQuery::default() }).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind(), AlertKind::EarlyWarning);
    assert_eq!(alerts[0].recipients, ["user:li".to_owned(), format!("supervisor:{UNIT}")]);
    let due = store.due_actions(now(), 10).await.unwrap();
    assert!(
        matches!(due.as_slice(), [a] if matches!(a.request, CaseRequest::ChangeGrade { grade, .. } if grade == Grade::Urgent as i32)),
        "{due:?}"
    );
    let e = store.escalations(&ListQuery { limit: 10, ..ListQuery::default() }, 0, None).await.unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].level(), EscalationLevel::Supervisor, "an urgent case starts at the supervisor");
    let types = event_types(&store).await;
    assert_eq!(types.iter().filter(|t| t.ends_with("AlertRaised")).count(), 1);
}

/// A group incident declared by `lead` (request `request_id`) with complaints `members` added
/// by hand, in order; and its id.
async fn declared_with_members(
    store: &EscalationStore,
    lead: &Arc<Principal>,
    request_id: &str,
    members: std::ops::RangeInclusive<u32>,
) -> (Incident, String) {
    let new = ops::NewIncident {
        kind: IncidentKind::Group,
        org_unit: "institutions/demo".to_owned(),
        title: "信用卡年费误扣".to_owned(),
        summary: String::new(),
        request: RequestKey { id: request_id.to_owned(), fingerprint: "f".to_owned() },
        principal: lead.clone(),
    };
    let incident = store.create_incident(new).await.unwrap();
    let id = crate::domain::actions::id_of(&incident.name).to_owned();
    for n in members {
        let member = ops::NewMember {
            incident: id.clone(),
            complaint: complaint(n),
            source: "manual",
            matched: None,
            reason: "同一原因".to_owned(),
            request: None,
            principal: lead.clone(),
        };
        store.add_member(member).await.unwrap();
    }
    (incident, id)
}

async fn an_incident_runs_from_declaration_to_close_with_one_statement_in_force(store: Arc<EscalationStore>) {
    complaints_with_cases(&store, 3).await;
    let lead = staff(&["senior_manager"]);
    let (incident, id) = declared_with_members(&store, &lead, "r-1", 1..=3).await;
    assert_eq!(incident.state(), IncidentState::Declared);
    let again = ops::NewMember {
        incident: id.clone(),
        complaint: complaint(2),
        source: "manual",
        matched: None,
        reason: "x".to_owned(),
        request: None,
        principal: lead.clone(),
    };
    assert!(matches!(store.add_member(again).await, Err(EscalationError::Domain(DomainError::AlreadyMember { .. }))));
    let incident = store.incident(&id).await.unwrap().unwrap();
    assert_eq!((incident.member_count, incident.complainant_count), (3, 3));
    assert_eq!(incident.lead_case, case_of(1));
    // Members 2 and 3 are to be linked under the lead's case, each once.
    let due = store.due_actions(now(), 10).await.unwrap();
    assert_eq!(due.len(), 2);
    for d in &due {
        store.finish_action(d.clone(), Attempt::Done, case_of(1)).await.unwrap();
        store.finish_action(d.clone(), Attempt::Done, case_of(1)).await.unwrap();
    }
    assert!(store.due_actions(now(), 10).await.unwrap().is_empty());
    let linked = event_types(&store).await.iter().filter(|t| t.ends_with("CaseLinkedToIncident")).count();
    assert_eq!(linked, 2, "each link announced once");
    let members = store.members(&incident.name, 0, 10).await.unwrap();
    assert!(members.iter().skip(1).all(|(_, m)| m.linked));
    // Statements: draft, approve, draft again, approve; the first is superseded and refused.
    let draft = |text: &str, rid: &str| {
        store.draft_statement(
            id.clone(),
            text.to_owned(),
            RequestKey { id: rid.to_owned(), fingerprint: text.to_owned() },
            lead.clone(),
        )
    };
    let v1 = draft("第一版口径", "d-1").await.unwrap();
    assert_eq!(draft("第一版口径", "d-1").await.unwrap().version, 1, "a retried draft is the first one");
    assert!(matches!(
        store.approve_statement(id.clone(), 1, None, staff(&["handler"])).await,
        Err(EscalationError::Domain(DomainError::ApproverRoleRequired { .. }))
    ));
    store.approve_statement(id.clone(), v1.version, None, lead.clone()).await.unwrap();
    draft("第二版口径", "d-2").await.unwrap();
    let v2 = store.approve_statement(id.clone(), 2, None, lead.clone()).await.unwrap();
    assert_eq!(v2.state(), StatementState::Approved);
    let statements = store.statements(&incident.name).await.unwrap();
    assert_eq!(statements[1].state(), StatementState::Superseded);
    assert_eq!(store.incident(&id).await.unwrap().unwrap().current_statement, v2.name);
    let use_of = |version| ops::Use {
        incident: id.clone(),
        version,
        channel: "热线".to_owned(),
        case: String::new(),
        request: None,
        principal: lead.clone(),
    };
    assert!(matches!(
        store.use_statement(use_of(1)).await,
        Err(EscalationError::Domain(DomainError::StatementSuperseded { .. }))
    ));
    assert_eq!(store.use_statement(use_of(2)).await.unwrap().statement.unwrap().text, "第二版口径");
    // Closing needs the systemic cause.
    let update = |command| IncidentUpdate {
        id: id.clone(),
        expected_version: None,
        request: None,
        principal: lead.clone(),
        command,
    };
    let close = || update(IncidentCommand::Close { reason: "全部处理完毕".to_owned() });
    assert!(matches!(
        store.update_incident(close()).await,
        Err(EscalationError::Domain(DomainError::SystemicCauseRequired))
    ));
    let cause = SystemicCause {
        category: CauseCategory::System as i32,
        description: "年费减免规则未同步".to_owned(),
        fix: "修复规则同步并批量退费".to_owned(),
        fix_owner: "user:it-lead".to_owned(),
        ..SystemicCause::default()
    };
    store.update_incident(update(IncidentCommand::RecordSystemicCause { cause })).await.unwrap();
    let stale = IncidentUpdate { expected_version: Some(1), ..close() };
    assert!(matches!(store.update_incident(stale).await, Err(EscalationError::EtagMismatch { .. })));
    let closed = store.update_incident(close()).await.unwrap();
    assert_eq!(closed.state(), IncidentState::Closed);
    let types = event_types(&store).await;
    assert!(types.iter().any(|t| t.ends_with("IncidentDeclared")));
    assert_eq!(types.iter().filter(|t| t.ends_with("StatementApproved")).count(), 2);
}

async fn an_unappliable_event_waits_as_a_dead_letter_until_replayed(store: Arc<EscalationStore>) {
    let mut garbled = event(1, &complaint(1), &accepted(1, Grade::General));
    garbled.payload.as_mut().unwrap().value = vec![0xff, 0xff, 0xff];
    let later = event(2, &complaint(2), &accepted(2, Grade::General));
    store.apply(INTAKE_CONSUMER, vec![garbled, later]).await.unwrap();
    assert!(store.known(&complaint(1)).await.unwrap().is_none());
    assert!(store.known(&complaint(2)).await.unwrap().is_some(), "the next aggregate's events go on");
    let root = Arc::new(Principal {
        org_unit: "/".to_owned(),
        permissions: vec!["events.admin".to_owned()],
        ..Principal::default()
    });
    let corrected = prost_types::Any::from_msg(&accepted(1, Grade::General)).unwrap();
    let request =
        ReplayDeadLetterRequest { name: "consumers/intake/deadLetters/1".to_owned(), payload: Some(corrected) };
    let dead = store.replay_dead_letter(Replay::parse(root.clone(), request.clone()).unwrap()).await.unwrap();
    assert!(dead.replay_time_us.is_some());
    assert!(store.known(&complaint(1)).await.unwrap().is_some());
    let again = store.replay_dead_letter(Replay::parse(root, request).unwrap()).await.unwrap();
    assert_eq!(again.replay_time_us, dead.replay_time_us, "applied at most once");
}

/// Complaints that join an incident before their cases open (escalation follows intake's feed
/// ahead of case-workflow's): once the cases open, the members name them, the incident names
/// its lead case, and the other members are linked under it.
async fn members_that_joined_before_their_cases_opened_learn_them(store: Arc<EscalationStore>) {
    let intake: Vec<Event> =
        (1..=2).map(|i| event(i64::from(i), &complaint(i), &accepted(i, Grade::General))).collect();
    store.apply(INTAKE_CONSUMER, intake).await.unwrap();
    let (incident, id) = declared_with_members(&store, &staff(&["senior_manager"]), "r-early", 1..=2).await;
    let members = store.members(&incident.name, 0, 10).await.unwrap();
    assert!(members.iter().all(|(_, m)| m.case.is_empty()), "no case is open yet");
    assert!(store.incident(&id).await.unwrap().unwrap().lead_case.is_empty());

    let cases: Vec<Event> = (1..=2)
        .map(|i| {
            event(i64::from(i), &case_of(i), &CaseOpened { case: Some(case(i, Grade::General, CaseState::Accepted)) })
        })
        .collect();
    store.apply(CASE_CONSUMER, cases).await.unwrap();
    let members = store.members(&incident.name, 0, 10).await.unwrap();
    let named: Vec<&str> = members.iter().map(|(_, m)| m.case.as_str()).collect();
    assert_eq!(named, [case_of(1), case_of(2)]);
    assert_eq!(store.incident(&id).await.unwrap().unwrap().lead_case, case_of(1));
    let due = store.due_actions(now(), 10).await.unwrap();
    assert_eq!(due.len(), 1, "the second member is to be linked under the lead's case: {due:?}");
    assert_eq!(due[0].case, case_of(2));
}

redress_platform::conformance_suite!(
    open = open;
    members_that_joined_before_their_cases_opened_learn_them,
    complaints_and_cases_are_known_from_either_feed_in_either_order,
    a_major_case_reaches_senior_management_at_once_and_climbs_when_unacknowledged,
    an_acknowledged_step_does_not_climb,
    escalation_required_reaches_senior_management_once_with_its_reason,
    early_warning_alerts_once_regrades_and_escalates_by_rule,
    an_incident_runs_from_declaration_to_close_with_one_statement_in_force,
    an_unappliable_event_waits_as_a_dead_letter_until_replayed,
);

/// Matching, with thresholds small enough to cross in a few complaints.
mod matching {
    use super::*;
    use crate::domain::grouping::GroupingConfig;
    use crate::store::MatchInput;

    async fn open_small(config: &DatabaseConfig) -> Arc<EscalationStore> {
        let grouping = GroupingConfig { propose_at: 2, declare_at: 3, ..GroupingConfig::default() };
        let rules = Arc::new(Rules::with(vec!["senior_manager".to_owned()], grouping).unwrap());
        Arc::new(EscalationStore::open(config, rules, Clock::system(), &Supervisor::detached()).await.unwrap())
    }

    const FEE: &str = "信用卡去年消费满了免年费的次数，这个月账单还是被扣了年费，客服说系统升级后免年费条件没同步";

    fn input(n: u32, facts: &str) -> MatchInput {
        MatchInput {
            complaint: complaint(n),
            facts: facts.to_owned(),
            demand: "要求退还年费".to_owned(),
            digests: vec![],
        }
    }

    async fn similar_complaints_are_proposed_then_declared_and_a_late_one_joins_and_is_linked(
        store: Arc<EscalationStore>,
    ) {
        complaints_with_cases(&store, 5).await;
        assert_eq!(store.pending_matches(10).await.unwrap().len(), 5);
        let first = store.match_complaint(input(1, FEE)).await.unwrap().unwrap();
        assert_eq!((first.incident.clone(), first.matched_with.as_str()), (None, ""));
        let unrelated =
            store.match_complaint(input(2, "手机银行升级后无法登录，人脸识别一直失败")).await.unwrap().unwrap();
        assert_ne!(unrelated.cluster, first.cluster);
        let second = store.match_complaint(input(3, &format!("{FEE}。"))).await.unwrap().unwrap();
        assert_eq!(second.cluster, first.cluster);
        assert_eq!(second.matched_with, complaint(1));
        let incident = second.incident.clone().unwrap();
        let id = crate::domain::actions::id_of(&incident).to_owned();
        assert_eq!(store.incident(&id).await.unwrap().unwrap().state(), IncidentState::Proposed);
        let third = store.match_complaint(input(4, FEE)).await.unwrap().unwrap();
        assert_eq!(third.incident.as_deref(), Some(incident.as_str()));
        let declared = store.incident(&id).await.unwrap().unwrap();
        assert_eq!(declared.state(), IncidentState::Declared);
        assert_eq!(declared.declared_by, "service:escalation");
        assert_eq!(declared.lead_case, case_of(1));
        let evidence = declared.evidence.unwrap();
        assert_eq!(evidence.complainant_count, 3);
        assert!(evidence.shared_terms.contains(&"年费".to_owned()), "{:?}", evidence.shared_terms);
        let links = |due: Vec<super::super::DueAction>| {
            due.into_iter().filter(|d| matches!(d.request, CaseRequest::LinkParent { .. })).count()
        };
        assert_eq!(links(store.due_actions(now(), 100).await.unwrap()), 2, "members 3 and 4 under the lead's case");
        // A late one joins and is linked; matching it again changes nothing.
        store.match_complaint(input(5, FEE)).await.unwrap().unwrap();
        assert!(store.match_complaint(input(5, FEE)).await.unwrap().is_none());
        assert_eq!(links(store.due_actions(now(), 100).await.unwrap()), 3);
        let members = store.members(&incident, 0, 10).await.unwrap();
        assert_eq!(members.len(), 4);
        assert_eq!(members[0].1.source, "lead");
        assert!(members[1].1.r#match.as_ref().is_some_and(|m| m.score > 0.3 && !m.shared_terms.is_empty()));
        assert!(store.pending_matches(10).await.unwrap().is_empty());
        let types = event_types(&store).await;
        assert_eq!(types.iter().filter(|t| t.ends_with("IncidentDeclared")).count(), 1);
        assert!(types.iter().any(|t| t.ends_with("IncidentChanged")));
    }

    async fn a_flood_of_like_complaints_is_matched_against_the_newest_of_each_bucket(store: Arc<EscalationStore>) {
        let bound = crate::store::tx::CANDIDATES_PER_BUCKET as u32;
        let flood = bound + 16;
        complaints_with_cases(&store, flood).await;
        let mut clusters = std::collections::BTreeSet::new();
        for n in 1..=flood {
            clusters.insert(store.match_complaint(input(n, FEE)).await.unwrap().unwrap().cluster);
        }
        assert_eq!(clusters.len(), 1, "the whole flood is one cluster");
        // One more like complaint reads the newest of each bucket it falls in, not the flood.
        let like = input(flood + 1, FEE);
        let fingerprint =
            crate::domain::grouping::fingerprint(&like.facts, &like.demand, "", "", &store.rules().grouping.matching);
        let institution = crate::domain::institution_of(UNIT);
        let read = store
            .write(Box::new(move |tx| {
                Box::pin(async move { tx.candidates(&institution, &fingerprint.buckets, 0, i64::MAX).await })
            }))
            .await
            .unwrap();
        assert_eq!(read.len(), bound as usize);
        assert!(read.iter().all(|c| c.complaint != complaint(1)), "the oldest of the flood is not read");
    }

    async fn complaints_matched_in_one_transaction_see_the_ones_before_them(store: Arc<EscalationStore>) {
        complaints_with_cases(&store, 5).await;
        let inputs = vec![
            input(1, FEE),
            input(2, "手机银行升级后无法登录，人脸识别一直失败"),
            input(3, &format!("{FEE}。")),
            input(4, FEE),
            input(1, FEE),
        ];
        let outcomes = store.match_complaints(inputs).await.unwrap();
        assert_eq!(outcomes.len(), 5);
        let first = outcomes[0].clone().unwrap();
        assert_eq!(first.matched_with, "");
        assert_ne!(outcomes[1].as_ref().unwrap().cluster, first.cluster);
        let (third, fourth) = (outcomes[2].clone().unwrap(), outcomes[3].clone().unwrap());
        assert_eq!(
            (third.cluster.as_str(), third.matched_with.as_str()),
            (first.cluster.as_str(), complaint(1).as_str())
        );
        assert_eq!(fourth.cluster, first.cluster);
        assert!(outcomes[4].is_none(), "a complaint matched earlier in the batch is not matched again");
        let incident = fourth.incident.unwrap();
        let declared = store.incident(crate::domain::actions::id_of(&incident)).await.unwrap().unwrap();
        assert_eq!(declared.state(), IncidentState::Declared);
        let pending: Vec<String> = store.pending_matches(10).await.unwrap().into_iter().map(|p| p.0).collect();
        assert_eq!(pending, [complaint(5)], "only the complaint not in the batch is still queued");
    }

    /// Complaint `n`, received at `at`.
    async fn received(store: &EscalationStore, n: u32, at: chrono::DateTime<chrono::Utc>) {
        let accepted = ComplaintAccepted { receive_time: Some(to_timestamp(at)), ..accepted(n, Grade::General) };
        store.apply(INTAKE_CONSUMER, vec![event(i64::from(n), &complaint(n), &accepted)]).await.unwrap();
    }

    /// Every complaint that has bands stored in the buckets of [`FEE`]'s, whenever received.
    async fn with_fee_bands(store: &EscalationStore) -> std::collections::BTreeSet<String> {
        let like = input(0, FEE);
        let fingerprint =
            crate::domain::grouping::fingerprint(&like.facts, &like.demand, "", "", &store.rules().grouping.matching);
        let institution = crate::domain::institution_of(UNIT);
        let read = store
            .write(Box::new(move |tx| {
                Box::pin(async move { tx.candidates(&institution, &fingerprint.buckets, i64::MIN, i64::MAX).await })
            }))
            .await
            .unwrap();
        read.into_iter().map(|c| c.complaint).collect()
    }

    /// Retention forgets the bands of complaints received longer ago than a window and the
    /// lateness allowed after it (14 + 30 days here) and an hour's grace, and keeps the rest; a forgotten
    /// complaint's fingerprint and group stay (it is not matched again, its incident keeps it).
    async fn retention_forgets_the_bands_of_complaints_no_longer_anyones_candidates(store: Arc<EscalationStore>) {
        let t = now();
        store.clock().set(t);
        received(&store, 1, t - Duration::days(20)).await;
        received(&store, 2, t - Duration::days(10)).await;
        assert_eq!(store.match_complaint(input(1, FEE)).await.unwrap().unwrap().matched_with, "");
        let second = store.match_complaint(input(2, FEE)).await.unwrap().unwrap();
        assert_eq!(second.matched_with, complaint(1));
        let incident = second.incident.unwrap();
        received(&store, 3, t - Duration::days(19) - Duration::minutes(30)).await;
        store.match_complaint(input(3, FEE)).await.unwrap().unwrap();
        // 25 days on, complaint 1 was received 45 days ago, complaint 2 35, and complaint 3 44
        // and a half hour: past what matching reads, but within the hour's grace.
        store.clock().set(t + Duration::days(25));
        let stop = tokio_util::sync::CancellationToken::new();
        store.prune(t, &stop).await.unwrap();
        assert_eq!(with_fee_bands(&store).await, [complaint(2), complaint(3)].into());
        assert_eq!(store.forget_candidates(&stop).await.unwrap(), (0, true), "nothing left to forget");
        assert!(store.match_complaint(input(1, FEE)).await.unwrap().is_none(), "its fingerprint stays");
        assert_eq!(store.members(&incident, 0, 10).await.unwrap().len(), 3, "its incident keeps it");
    }

    /// What a late complaint is compared with does not hang on when retention last ran: one
    /// matched more than 30 days after its receive time sees only complaints received in the
    /// last 44 days, one received before those 44 days stores no bands, and one matched in
    /// time sees its whole window.
    async fn a_late_complaint_is_compared_only_with_what_retention_keeps(store: Arc<EscalationStore>) {
        let t = now();
        // Complaint 1, received 45 days before t, was matched 35 days after it, within the 44
        // days (its bands are stored), and retention has not run since it fell out of them.
        store.clock().set(t - Duration::days(10));
        received(&store, 1, t - Duration::days(45)).await;
        store.match_complaint(input(1, FEE)).await.unwrap().unwrap();
        store.clock().set(t);
        received(&store, 2, t - Duration::days(43)).await;
        assert_eq!(store.match_complaint(input(2, FEE)).await.unwrap().unwrap().matched_with, "", "1 is too old");
        received(&store, 3, t - Duration::days(44) - Duration::hours(1)).await;
        let late = store.match_complaint(input(3, FEE)).await.unwrap().unwrap();
        assert_eq!(late.matched_with, complaint(2), "complaint 1, 23 hours from it, is no longer compared");
        // Received 29 days before t (in time), 14 days after complaint 2: at the window's edge.
        received(&store, 4, t - Duration::days(29)).await;
        let edge = store.match_complaint(input(4, FEE)).await.unwrap().unwrap();
        assert_eq!(edge.matched_with, complaint(2));
        assert_eq!(with_fee_bands(&store).await, [complaint(1), complaint(2), complaint(4)].into());
    }

    /// Forgetting runs in transactions of a bounded size and turns that `stop` cuts short,
    /// and the next turn goes on where the last left off.
    async fn forgetting_many_bands_goes_a_transaction_at_a_time(store: Arc<EscalationStore>) {
        let t = now();
        store.clock().set(t);
        let many = 70;
        for n in 1..=many {
            received(&store, n, t - Duration::days(20)).await;
        }
        store.match_complaints((1..=many).map(|n| input(n, FEE)).collect()).await.unwrap();
        let like = input(0, FEE);
        let mut bands =
            crate::domain::grouping::fingerprint(&like.facts, &like.demand, "", "", &store.rules().grouping.matching)
                .buckets;
        bands.sort_unstable();
        bands.dedup();
        let stored = u64::from(many) * bands.len() as u64;
        assert!(stored > crate::store::tx::FORGET_BATCH, "{stored} bands: more than one transaction's");
        store.clock().set(t + Duration::days(30));
        let stopped = tokio_util::sync::CancellationToken::new();
        stopped.cancel();
        let (first, done) = store.forget_candidates(&stopped).await.unwrap();
        assert_eq!((first, done), (crate::store::tx::FORGET_BATCH, false), "one transaction, then the stop");
        let rest = store.forget_candidates(&tokio_util::sync::CancellationToken::new()).await.unwrap();
        assert_eq!(rest, (stored - first, true));
        assert!(with_fee_bands(&store).await.is_empty());
    }

    redress_platform::conformance_suite!(
        open = open_small;
        similar_complaints_are_proposed_then_declared_and_a_late_one_joins_and_is_linked,
        a_flood_of_like_complaints_is_matched_against_the_newest_of_each_bucket,
        complaints_matched_in_one_transaction_see_the_ones_before_them,
        retention_forgets_the_bands_of_complaints_no_longer_anyones_candidates,
        a_late_complaint_is_compared_only_with_what_retention_keeps,
        forgetting_many_bands_goes_a_transaction_at_a_time,
    );
}

mod special_complaints {
    use super::*;
    use crate::domain::vip::register_digests;
    use crate::store::{FlagDecision, MatchInput, Registration};
    use redress_platform::blind_index::BlindIndexKey;
    use redress_proto::redress::escalation::v1::vip_identifier::Identifier;
    use redress_proto::redress::escalation::v1::{
        EvidenceRef, MaliciousFlag, MaliciousFlagState, MaliciousGround, Mention, Vip, VipIdentifier, Watchlist,
    };

    fn key(id: &str) -> RequestKey {
        RequestKey { id: id.to_owned(), fingerprint: id.to_owned() }
    }

    async fn mentions_alert_once_per_watchlist_and_window_and_open_one_media_incident(store: Arc<EscalationStore>) {
        let watchlist = Watchlist {
            org_unit: "institutions/demo".to_owned(),
            display_name: "理财舆情".to_owned(),
            keywords: vec!["爆雷".to_owned(), "维权".to_owned()],
            entities: vec!["示例银行".to_owned()],
            volume_threshold: 2,
            volume_window_minutes: 60,
            incident_reach: 100_000,
            ..Watchlist::default()
        };
        let w = store.create_watchlist(watchlist, key("w-1"), staff(&["pr"])).await.unwrap();
        let mention = |text: &str, reach| Mention {
            org_unit: UNIT.to_owned(),
            source: "微博".to_owned(),
            url: "https://weibo.example/1".to_owned(),
            publish_time: Some(to_timestamp(now())),
            text: text.to_owned(),
            reach,
            ..Mention::default()
        };
        let reporter = staff(&["monitor"]);
        let quiet =
            store.report_mention(mention("示例银行网点服务不错", 50), key("m-0"), reporter.clone()).await.unwrap();
        assert!(quiet.watchlists.is_empty() && quiet.incident.is_empty());
        let first =
            store.report_mention(mention("示例银行理财爆雷了", 500), key("m-1"), reporter.clone()).await.unwrap();
        assert_eq!(first.watchlists, std::slice::from_ref(&w.name));
        assert!(first.incident.is_empty(), "a small reach opens no incident");
        assert_eq!(
            store.report_mention(mention("示例银行理财爆雷了", 500), key("m-1"), reporter.clone()).await.unwrap(),
            first
        );
        let loud = store
            .report_mention(mention("示例银行理财爆雷，大家维权", 200_000), key("m-2"), reporter.clone())
            .await
            .unwrap();
        assert!(!loud.incident.is_empty());
        let third = store.report_mention(mention("又见示例银行维权", 10), key("m-3"), reporter.clone()).await.unwrap();
        assert_eq!(third.incident, loud.incident, "the volume joins the same incident");
        let alerts = store.alerts(&ListQuery { limit: 100, ..ListQuery::default() }).await.unwrap();
        let count = |kind: AlertKind| alerts.iter().filter(|a| a.kind() == kind).count();
        assert_eq!(count(AlertKind::MentionKeyword), 3);
        assert_eq!(count(AlertKind::MentionVolume), 1, "one volume alert per window");
        let incident = store.incident(crate::domain::actions::id_of(&loud.incident)).await.unwrap().unwrap();
        assert_eq!((incident.kind(), incident.state()), (IncidentKind::Media, IncidentState::Proposed));
        assert_eq!(incident.mention_count, 2);
        let types = event_types(&store).await;
        assert_eq!(types.iter().filter(|t| t.ends_with("MentionAlert")).count(), 4);
    }

    async fn a_vips_complaint_goes_to_the_senior_team_at_once_matched_on_blind_indexes(store: Arc<EscalationStore>) {
        let index = BlindIndexKey::new(&[9; 32]).unwrap();
        let ids = [VipIdentifier { identifier: Some(Identifier::Phone("139 0000 1111".to_owned())) }];
        let vip = Vip {
            org_unit: "institutions/demo".to_owned(),
            crm_reference: "CRM-001".to_owned(),
            tier: "私人银行".to_owned(),
            account_manager: "user:zhao".to_owned(),
            ..Vip::default()
        };
        let digests: Vec<String> =
            register_digests(&index, "institutions/demo", &ids).into_iter().map(|(_, d)| d).collect();
        let registered = store
            .register_vip(Registration { vip: vip.clone(), digests: digests.clone() }, None, staff(&["crm"]))
            .await
            .unwrap();
        // Registered again from the CRM: the same VIP, updated.
        let again =
            store.register_vips(vec![Registration { vip, digests: digests.clone() }], staff(&["crm"])).await.unwrap();
        assert_eq!(again[0].name, registered.name);
        assert!(store.institution_has_vips("institutions/demo").await.unwrap());
        complaints_with_cases(&store, 2).await;
        let input = |n, digests: Vec<String>| MatchInput {
            complaint: complaint(n),
            facts: "理财收益不对".to_owned(),
            demand: "说明".to_owned(),
            digests,
        };
        store.match_complaint(input(1, digests.clone())).await.unwrap();
        store.match_complaint(input(2, vec!["not-a-vip".to_owned()])).await.unwrap();
        let escalations = store.escalations(&ListQuery { limit: 10, ..ListQuery::default() }, 0, None).await.unwrap();
        assert_eq!(escalations.len(), 1);
        assert_eq!(escalations[0].complaint, complaint(1));
        assert_eq!(escalations[0].level(), EscalationLevel::SeniorManagement);
        let tasks: Vec<_> = store.due_actions(now(), 10).await.unwrap();
        assert_eq!(tasks.len(), 2, "{tasks:?}");
        assert!(tasks.iter().any(|t| matches!(&t.request, CaseRequest::AddTask { owner, .. } if owner == "user:zhao")));
        let alerts = store.alerts(&ListQuery { limit: 10, ..ListQuery::default() }).await.unwrap();
        assert_eq!(alerts.iter().filter(|a| a.kind() == AlertKind::Vip).count(), 1);
    }

    /// A complaint whose complainant restricted the processing of their personal information
    /// (intake's `personal_data_restricted`) is handled, but not looked up in the VIP register.
    async fn a_vip_who_restricted_processing_is_not_matched_against_the_register(store: Arc<EscalationStore>) {
        let index = BlindIndexKey::new(&[9; 32]).unwrap();
        let ids = [VipIdentifier { identifier: Some(Identifier::Phone("139 0000 1111".to_owned())) }];
        let vip = Vip {
            org_unit: "institutions/demo".to_owned(),
            crm_reference: "CRM-001".to_owned(),
            account_manager: "user:zhao".to_owned(),
            ..Vip::default()
        };
        let digests: Vec<String> =
            register_digests(&index, "institutions/demo", &ids).into_iter().map(|(_, d)| d).collect();
        store.register_vip(Registration { vip, digests: digests.clone() }, None, staff(&["crm"])).await.unwrap();
        let intake: Vec<Event> = (1..=2)
            .map(|i| {
                let accepted = ComplaintAccepted { personal_data_restricted: i == 1, ..accepted(i, Grade::General) };
                event(i64::from(i), &complaint(i), &accepted)
            })
            .collect();
        store.apply(INTAKE_CONSUMER, intake).await.unwrap();
        let cases: Vec<Event> = (1..=2)
            .map(|i| {
                event(
                    i64::from(i),
                    &case_of(i),
                    &CaseOpened { case: Some(case(i, Grade::General, CaseState::Accepted)) },
                )
            })
            .collect();
        store.apply(CASE_CONSUMER, cases).await.unwrap();
        for n in 1..=2 {
            let input = MatchInput {
                complaint: complaint(n),
                facts: format!("理财收益不对 {n}"),
                demand: "说明".to_owned(),
                digests: digests.clone(),
            };
            store.match_complaint(input).await.unwrap();
        }
        let escalations = store.escalations(&ListQuery { limit: 10, ..ListQuery::default() }, 0, None).await.unwrap();
        let escalated: Vec<&str> = escalations.iter().map(|e| e.complaint.as_str()).collect();
        assert_eq!(escalated, [complaint(2).as_str()], "only the complaint of the unrestricted VIP");
    }

    /// A restriction intake announces after acceptance (ComplaintProcessingRestricted) keeps a
    /// complaint not matched yet out of the VIP register; one lifted again lets it be matched.
    async fn a_restriction_announced_after_acceptance_keeps_the_complaint_from_the_register(
        store: Arc<EscalationStore>,
    ) {
        let index = BlindIndexKey::new(&[9; 32]).unwrap();
        let ids = [VipIdentifier { identifier: Some(Identifier::Phone("139 0000 2222".to_owned())) }];
        let vip = Vip {
            org_unit: "institutions/demo".to_owned(),
            crm_reference: "CRM-002".to_owned(),
            account_manager: "user:zhao".to_owned(),
            ..Vip::default()
        };
        let digests: Vec<String> =
            register_digests(&index, "institutions/demo", &ids).into_iter().map(|(_, d)| d).collect();
        store.register_vip(Registration { vip, digests: digests.clone() }, None, staff(&["crm"])).await.unwrap();
        complaints_with_cases(&store, 3).await;
        let changed = |n: u32, restricted: bool| ComplaintProcessingRestricted {
            complaint: complaint(n),
            org_unit: UNIT.to_owned(),
            restricted,
            change_time: Some(to_timestamp(now())),
        };
        // Complaint 1's complainant restricts processing; complaint 3's restricts and lifts it.
        let changes = [changed(1, true), changed(3, true), changed(3, false)];
        let intake: Vec<Event> =
            changes.iter().enumerate().map(|(i, c)| event(4 + i as i64, &c.complaint, c)).collect();
        store.apply(INTAKE_CONSUMER, intake).await.unwrap();
        assert!(store.known(&complaint(1)).await.unwrap().unwrap().restricted);
        assert!(!store.known(&complaint(3)).await.unwrap().unwrap().restricted);
        for n in 1..=3 {
            let input = MatchInput {
                complaint: complaint(n),
                facts: format!("信用卡年费争议 {n}"),
                demand: "退费".to_owned(),
                digests: digests.clone(),
            };
            store.match_complaint(input).await.unwrap();
        }
        let escalations = store.escalations(&ListQuery { limit: 10, ..ListQuery::default() }, 0, None).await.unwrap();
        let mut escalated: Vec<&str> = escalations.iter().map(|e| e.complaint.as_str()).collect();
        escalated.sort_unstable();
        assert_eq!(escalated, [complaint(2).as_str(), complaint(3).as_str()], "not the restricted complaint");
    }

    async fn a_malicious_flag_needs_a_second_approver_and_touches_no_clock(store: Arc<EscalationStore>) {
        complaints_with_cases(&store, 1).await;
        let flag = MaliciousFlag {
            case: case_of(1),
            grounds: vec![MaliciousGround::ThreatsForGain as i32],
            description: "以曝光相威胁索要高额赔偿".to_owned(),
            evidence: vec![EvidenceRef {
                uri: "s3://evidence/call.mp3".to_owned(),
                sha256: "ab".repeat(32),
                kind: "recording".to_owned(),
                description: "通话录音".to_owned(),
            }],
            ..MaliciousFlag::default()
        };
        let proposer = Arc::new(Principal { subject: "user:a".to_owned(), ..(*staff(&["handler"])).clone() });
        let flagged = store.flag_malicious(flag, key("f-1"), proposer.clone()).await.unwrap();
        assert_eq!(flagged.state(), MaliciousFlagState::Proposed);
        assert!(store.due_actions(now(), 10).await.unwrap().is_empty(), "a proposal alone does nothing");
        let id = crate::domain::actions::id_of(&flagged.name).to_owned();
        let decide = |principal: Arc<Principal>| FlagDecision {
            id: id.clone(),
            approve: true,
            note: "同意".to_owned(),
            request: None,
            principal,
        };
        let refused = store.decide_flag(decide(proposer)).await.unwrap_err();
        assert_eq!(redress_platform::error::ApiError::reason(&refused), "SECOND_APPROVER_REQUIRED");
        let approved = store.decide_flag(decide(staff(&["senior_manager"]))).await.unwrap();
        assert_eq!(approved.state(), MaliciousFlagState::Approved);
        let due = store.due_actions(now(), 10).await.unwrap();
        assert!(matches!(due[0].request, CaseRequest::AddEvidence { .. }));
        assert!(matches!(&due[1].request, CaseRequest::AddTask { department, .. } if department == "legal"));
        assert!(
            due.iter().all(|d| !matches!(d.request, CaseRequest::ChangeGrade { .. } | CaseRequest::LinkParent { .. }))
        );
        assert!(event_types(&store).await.iter().any(|t| t.ends_with("MaliciousFlagApproved")));
    }

    /// A unit's VIP list holds its own VIPs and those of the units below it, a full page at a
    /// time, however many VIPs the units above it or beside it have registered since.
    async fn the_vip_register_lists_a_units_vips_a_page_at_a_time(store: Arc<EscalationStore>) {
        let register = |unit: &str, n: usize| Registration {
            vip: Vip {
                org_unit: unit.to_owned(),
                crm_reference: format!("CRM-{unit}-{n}"),
                tier: "私人银行".to_owned(),
                ..Vip::default()
            },
            digests: vec![format!("digest-{unit}-{n}")],
        };
        let branch = "institutions/demo/branches/a";
        let mut rows: Vec<Registration> = (0..3).map(|n| register(branch, n)).collect();
        rows.push(register("institutions/demo/branches/a/desks/1", 0));
        // Registered later, so newer: the units above and beside the branch.
        rows.extend((0..3).map(|n| register("institutions/demo", n)));
        rows.extend((0..3).map(|n| register("institutions/demo/branches/ab", n)));
        store.register_vips(rows, staff(&["crm"])).await.unwrap();

        let page = |scope: Option<&str>, after: Option<String>| ListQuery {
            scope: scope.map(str::to_owned),
            after: after.map(|id| (0, id)),
            limit: 3,
            ..ListQuery::default()
        };
        let id = |vip: &Vip| crate::domain::actions::id_of(&vip.name).to_owned();
        let first = store.vips(&page(Some(branch), None)).await.unwrap();
        let units: Vec<&str> = first.iter().map(|v| v.org_unit.as_str()).collect();
        assert_eq!(units, ["institutions/demo/branches/a/desks/1", branch, branch], "{first:?}");
        let rest = store.vips(&page(Some(branch), first.last().map(id))).await.unwrap();
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert_eq!(rest[0].crm_reference, format!("CRM-{branch}-0"));

        let mut everyone = Vec::new();
        let mut after = None;
        loop {
            let got = store.vips(&page(Some("institutions/demo"), after)).await.unwrap();
            after = got.last().map(id);
            everyone.extend(got);
            if after.is_none() {
                break;
            }
        }
        assert_eq!(everyone.len(), 10, "the institution's unit sees every VIP below it");
        assert_eq!(store.vips(&page(None, None)).await.unwrap().len(), 3);
    }

    redress_platform::conformance_suite!(
        open = open;
        the_vip_register_lists_a_units_vips_a_page_at_a_time,
        mentions_alert_once_per_watchlist_and_window_and_open_one_media_incident,
        a_vips_complaint_goes_to_the_senior_team_at_once_matched_on_blind_indexes,
        a_vip_who_restricted_processing_is_not_matched_against_the_register,
        a_restriction_announced_after_acceptance_keeps_the_complaint_from_the_register,
        a_malicious_flag_needs_a_second_approver_and_touches_no_clock,
    );
}
