//! The workflow's rules checked at fixed instants: the state machine, people rules, and the
//! clocks against hand-worked calendar arithmetic (2026 National Day, make-up days).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_calendar::{DeadlineCalculator, Institutions, Period, SlaPolicy, WorkingCalendar};
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseClosed, CaseMeasures, CaseReviewDecided, CaseState, ClockKind, ClockStatus, DeadlineAtRisk,
    DeadlineBreached, LinkType, Money, PauseReason, ResolutionType, ReviewOutcome,
};
use redress_proto::redress::common::v1::{Channel, Grade};

use super::clock::{self, Clocks, instant};
use super::workflow::{self, Command, Context, Rules, WorkflowError};

/// A plain year for tests that run past the shipped calendars: weekends off, no holidays.
fn plain_year(year: i32) -> String {
    format!("year = {year}\nsource = \"test: weekends only\"\n")
}

/// The rules with the shipped calendars plus plain 2027 and 2028, so tests that start from
/// the current date keep working as time passes.
pub(crate) fn rules() -> Rules {
    let extra = [plain_year(2027), plain_year(2028)];
    let extra = WorkingCalendar::from_year_toml(&[("test/2027.toml", &extra[0]), ("test/2028.toml", &extra[1])])
        .expect("test calendars");
    let calendar = WorkingCalendar::china().merged(extra);
    Rules {
        clocks: Clocks {
            institutions: Arc::new(Institutions::single(
                DeadlineCalculator::new(Arc::new(calendar), redress_calendar::DEFAULT_TIME_ZONE),
                SlaPolicy::default(),
            )),
            handoff: Period::WorkingDays(1),
            at_risk_percent: 80,
        },
        authority_limits: HashMap::from([("handler".to_owned(), 100_000), ("supervisor".to_owned(), 1_000_000)]),
        routing: Arc::new(crate::domain::routing::RoutingRules::shipped()),
        progress: workflow::Progress::default(),
        replies: workflow::ReplyRules::default(),
        audit: Arc::new(audit_keys()),
    }
}

/// The audit keys of the tests' stores.
pub(crate) fn audit_keys() -> crate::domain::audit::AuditKeys {
    crate::domain::audit::AuditKeys::new("k1", &[("k1".to_owned(), vec![7; 32])]).expect("test audit key")
}

pub(crate) fn person(subject: &str, roles: &[&str], permissions: &[Permission]) -> Principal {
    person_at("institutions/demo", subject, roles, permissions)
}

fn person_at(unit: &str, subject: &str, roles: &[&str], permissions: &[Permission]) -> Principal {
    Principal {
        subject: subject.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        org_unit: unit.to_owned(),
        // Where the tests' cases are assigned.
        department: "cards".to_owned(),
        permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
        // Staff act with their employee id: the cases they handle name complained staff.
        staff_id: format!("E-{subject}"),
    }
}

/// A handler at `unit` who may change cases and extend them to 30 and 60 days.
fn staff_at(unit: &str, subject: &str, roles: &[&str]) -> Principal {
    let permissions =
        [Permission::CasesRead, Permission::CasesWrite, Permission::CasesExtend, Permission::CasesExtendSpecial];
    person_at(unit, subject, roles, &permissions)
}

pub(crate) fn handler() -> Principal {
    person("u-handler", &["handler"], &[Permission::CasesRead, Permission::CasesWrite])
}

pub(crate) fn supervisor() -> Principal {
    person(
        "u-supervisor",
        &["supervisor"],
        &[Permission::CasesRead, Permission::CasesWrite, Permission::CasesApprove, Permission::CasesExtend],
    )
}

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A case opened for a general complaint received at `received`.
pub(crate) fn opened(received: &str, rules: &Rules) -> Case {
    let mut case = Case {
        name: "cases/0193f1a0-0000-7000-8000-000000000001".to_owned(),
        case_number: "2026092900000001".to_owned(),
        state: CaseState::Accepted as i32,
        org_unit: "institutions/demo".to_owned(),
        grade: Grade::General as i32,
        receive_time: Some(to_timestamp(at(received))),
        complained_staff_ids: vec!["e-042".to_owned()],
        ..Case::default()
    };
    rules.clocks.opening(&mut case);
    case
}

pub(crate) fn run(
    case: &mut Case,
    who: &Principal,
    when: &str,
    command: Command,
    rules: &Rules,
) -> Result<(), WorkflowError> {
    let ctx = Context { principal: who, now: at(when), rules };
    workflow::execute(case, None, command, &ctx).map(|_| ())
}

/// Takes an assigned case through investigation to a decision at `decided`, then follow-up
/// and closing at `closed`; the measures its CaseClosed event announced.
fn decide_and_close(case: &mut Case, rules: &Rules, decided: &str, closed: &str) -> CaseMeasures {
    let propose = Command::Propose { kind: ResolutionType::Explanation, compensation: None, grounds: reason("g") };
    let steps = [
        (decided, Command::Transition { target: CaseState::Investigating, reason: reason("r") }),
        (decided, propose),
        (decided, Command::Decide { notice: reason("n") }),
        (closed, Command::Transition { target: CaseState::FollowUp, reason: reason("follow up") }),
    ];
    for (when, command) in steps {
        run(case, &handler(), when, command, rules).unwrap();
    }
    let ctx = Context { principal: &handler(), now: at(closed), rules };
    let close = Command::Transition { target: CaseState::Closed, reason: reason("done") };
    let fx = workflow::execute(case, None, close, &ctx).unwrap();
    let closed = fx.events.iter().find(|e| e.event_type.ends_with(".CaseClosed")).expect("a CaseClosed event");
    let closed: CaseClosed = prost::Message::decode(closed.payload.as_slice()).unwrap();
    closed.measures.unwrap()
}

/// Which clocks' breaches a case records, with the due times they passed.
fn breaches(case: &Case) -> Vec<(ClockKind, Option<DateTime<Utc>>)> {
    case.breaches.iter().map(|b| (ClockKind::try_from(b.clock).unwrap(), instant(&b.due_time))).collect()
}

fn due(case: &Case, kind: ClockKind) -> Option<DateTime<Utc>> {
    instant(&clock::clock(case, kind).unwrap().due_time)
}

pub(crate) fn assign(case: &mut Case, rules: &Rules, when: &str) {
    let command = Command::Assign {
        assignee: "u-handler".to_owned(),
        department: "cards".to_owned(),
        assignee_staff_id: "E1001".to_owned(),
    };
    run(case, &handler(), when, command, rules).unwrap();
}

pub(crate) fn reason(s: &str) -> String {
    s.to_owned()
}

#[test]
fn clocks_follow_the_calendar_pauses_and_grade_changes() {
    let rules = rules();
    // Tue 2026-09-29 10:00 Shanghai, just before National Day (Oct 1-7; Sat Oct 10 is a
    // make-up working day).
    let mut case = opened("2026-09-29T10:00:00+08:00", &rules);
    // 24 h from the instant.
    assert_eq!(due(&case, ClockKind::FirstResponse), Some(at("2026-09-30T10:00:00+08:00")));
    // 7 working days: Sep 30, Oct 8, 9, 10 (make-up), 12, 13, 14.
    assert_eq!(due(&case, ClockKind::Resolution), Some(at("2026-10-15T00:00:00+08:00")));
    // 15 calendar days end Wed Oct 14, a working day.
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-10-15T00:00:00+08:00")));
    assert_eq!(case.deadlines.as_ref().unwrap().resolution_due_time, Some(to_timestamp(at("2026-10-14T16:00:00Z"))));

    assign(&mut case, &rules, "2026-09-29T11:00:00+08:00");
    let pause = Command::Pause { reason: PauseReason::WaitingForMaterials, note: reason("bank statement") };
    run(&mut case, &handler(), "2026-09-30T09:00:00+08:00", pause, &rules).unwrap();
    assert!(case.clocks.iter().all(|c| c.status == ClockStatus::Paused as i32 && c.due_time.is_none()));
    assert!(
        run(
            &mut case,
            &handler(),
            "2026-10-01T09:00:00+08:00",
            Command::Pause { reason: PauseReason::Other, note: reason("x") },
            &rules
        )
        .is_err()
    );
    run(&mut case, &handler(), "2026-10-09T10:00:00+08:00", Command::Resume { note: reason("received") }, &rules)
        .unwrap();
    // Oct 1..9 are not counted. Resolution: Sep 30 (1), Oct 10 (2), 12..16 (3..7).
    assert_eq!(due(&case, ClockKind::Resolution), Some(at("2026-10-17T00:00:00+08:00")));
    // Regulatory: Sep 30 (1), Oct 10 (2) .. Oct 23 (15), a Friday.
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-10-24T00:00:00+08:00")));
    // The hour clock moves by the paused time: 9 days and 1 hour.
    assert_eq!(due(&case, ClockKind::FirstResponse), Some(at("2026-10-09T11:00:00+08:00")));

    // Urgent: 2 h and 3 working days, from the same receipt and with the same pause.
    let grade = Command::ChangeGrade { grade: Grade::Urgent, reason: reason("media attention") };
    run(&mut case, &handler(), "2026-10-12T09:00:00+08:00", grade, &rules).unwrap();
    // Sep 30 (1), Oct 10 (2), Oct 12 (3).
    assert_eq!(due(&case, ClockKind::Resolution), Some(at("2026-10-13T00:00:00+08:00")));
    // Due Sep 29 12:00, before the pause began: the pause does not move it.
    assert_eq!(due(&case, ClockKind::FirstResponse), Some(at("2026-09-29T12:00:00+08:00")));
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-10-24T00:00:00+08:00")));
    // Every due time equals the calendar arithmetic with the recorded pause.
    let pauses = [(at("2026-09-30T09:00:00+08:00"), at("2026-10-09T10:00:00+08:00"))];
    let received = at("2026-09-29T10:00:00+08:00");
    let calc = rules.clocks.calculator(&case);
    assert_eq!(due(&case, ClockKind::Resolution), calc.due_with_pauses(received, Period::WorkingDays(3), &pauses).ok());

    // Extension to 30 days (needs cases.extend): Sep 30, Oct 10 .. Nov 7 (a Saturday) is day
    // 30, so it ends on Mon Nov 9.
    let extend = Command::Extend { total_days: 30, reason: reason("needs the card scheme's records") };
    assert!(matches!(
        run(&mut case, &handler(), "2026-10-13T09:00:00+08:00", extend.clone(), &rules),
        Err(WorkflowError::PermissionRequired(Permission::CasesExtend))
    ));
    run(&mut case, &supervisor(), "2026-10-13T09:00:00+08:00", extend, &rules).unwrap();
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-11-10T00:00:00+08:00")));
    // 60 days needs cases.extend.special, which a supervisor lacks.
    let extend = Command::Extend { total_days: 60, reason: reason("especially complex") };
    assert!(matches!(
        run(&mut case, &supervisor(), "2026-10-14T09:00:00+08:00", extend, &rules),
        Err(WorkflowError::PermissionRequired(Permission::CasesExtendSpecial))
    ));
}

#[test]
fn illegal_transitions_name_the_current_state() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    let err = run(
        &mut case,
        &handler(),
        "2026-11-02T11:00:00+08:00",
        Command::Transition { target: CaseState::Closed, reason: reason("done") },
        &rules,
    )
    .unwrap_err();
    assert!(err.to_string().contains("CASE_STATE_ACCEPTED"), "{err}");
    match err {
        WorkflowError::InvalidState { current, allowed, .. } => {
            assert_eq!((current, allowed.as_slice()), (CaseState::Accepted, [CaseState::FollowUp].as_slice()));
        }
        other => panic!("{other:?}"),
    }
    // Investigation needs a handler; deciding needs a proposal.
    let investigate = Command::Transition { target: CaseState::Investigating, reason: reason("start") };
    assert!(run(&mut case, &handler(), "2026-11-02T11:00:00+08:00", investigate, &rules).is_err());
    let decide = Command::Decide { notice: reason("decided") };
    assert!(run(&mut case, &handler(), "2026-11-02T11:00:00+08:00", decide, &rules).is_err());
    assert_eq!(case.state, CaseState::Accepted as i32);
}

#[test]
fn compensation_above_the_authority_limit_needs_another_approver() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, &rules, "2026-11-02T11:00:00+08:00");
    let t = "2026-11-03T10:00:00+08:00";
    run(
        &mut case,
        &handler(),
        t,
        Command::Transition { target: CaseState::Investigating, reason: reason("r") },
        &rules,
    )
    .unwrap();
    let propose = Command::Propose {
        kind: ResolutionType::ApologyCompensation,
        compensation: Some(Money { currency_code: "CNY".to_owned(), amount_minor: 500_000 }),
        grounds: reason("fee charged twice"),
    };
    run(&mut case, &handler(), t, propose, &rules).unwrap();
    assert!(case.resolution.as_ref().unwrap().approval_required);
    let decide = Command::Decide { notice: reason("refund") };
    let unapproved = run(&mut case, &handler(), t, decide.clone(), &rules);
    assert!(matches!(unapproved, Err(WorkflowError::ApprovalRequired)), "{unapproved:?}");
    // The proposer cannot approve, even holding the permission.
    let mut proposer = handler();
    proposer.permissions.push(Permission::CasesApprove.as_str().to_owned());
    let own = run(&mut case, &proposer, t, Command::Approve { note: String::new() }, &rules);
    assert!(matches!(own, Err(WorkflowError::SelfApproval)), "{own:?}");
    run(&mut case, &supervisor(), t, Command::Approve { note: reason("ok") }, &rules).unwrap();
    run(&mut case, &handler(), t, decide, &rules).unwrap();
    assert_eq!(case.state, CaseState::Decided as i32);
    assert!(case.clocks.iter().all(|c| c.status == ClockStatus::Met as i32));
}

#[test]
fn the_sweeper_reminds_the_owner_then_the_supervisor_once_each() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, &rules, "2026-11-02T11:00:00+08:00");
    // First response is due Nov 3 10:00; at risk from 80 % of the span (Nov 3 05:12).
    let next = rules.clocks.next_check(&case).unwrap();
    assert_eq!(next, at("2026-11-03T05:12:00+08:00"));
    assert!(workflow::sweep(&mut case, &rules, at("2026-11-03T05:00:00+08:00")).events.is_empty());
    let fx = workflow::sweep(&mut case, &rules, at("2026-11-03T06:00:00+08:00"));
    assert_eq!(fx.audit.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["deadline.at_risk"]);
    assert!(workflow::sweep(&mut case, &rules, at("2026-11-03T07:00:00+08:00")).events.is_empty());
    let fx = workflow::sweep(&mut case, &rules, at("2026-11-03T10:00:00+08:00"));
    assert_eq!(fx.audit[0].0, "deadline.breached");
    let breached: DeadlineBreached = prost::Message::decode(fx.events[0].payload.as_slice()).unwrap();
    assert_eq!(breached.recipients, ["user:u-handler", "supervisor:cards"]);
    assert_eq!(breached.clock, ClockKind::FirstResponse as i32);
    assert!(workflow::sweep(&mut case, &rules, at("2026-11-03T11:00:00+08:00")).events.is_empty());
    // Met late, the breach stays on record.
    let respond = Command::FirstResponse { note: reason("called back"), channel: Channel::Phone };
    run(&mut case, &handler(), "2026-11-03T12:00:00+08:00", respond, &rules).unwrap();
    let first = clock::clock(&case, ClockKind::FirstResponse).unwrap();
    assert!(first.breached && first.status == ClockStatus::Met as i32);
    assert!(!workflow::measures(&case).on_time);
}

#[test]
fn merging_keeps_the_duplicates_evidence_on_the_survivor() {
    let rules = rules();
    let mut duplicate = opened("2026-11-02T10:00:00+08:00", &rules);
    let mut survivor = opened("2026-11-02T09:00:00+08:00", &rules);
    survivor.name = "cases/0193f1a0-0000-7000-8000-000000000002".to_owned();
    let t = "2026-11-02T12:00:00+08:00";
    let evidence = Command::AddEvidence {
        uri: "s3://evidence/call.mp3".to_owned(),
        sha256: "ab".repeat(32),
        kind: "recording".to_owned(),
        description: String::new(),
    };
    run(&mut duplicate, &handler(), t, evidence, &rules).unwrap();
    let ctx = Context { principal: &handler(), now: at(t), rules: &rules };
    let merge = Command::Link { kind: LinkType::MergedInto, reason: reason("same complaint twice") };
    workflow::execute(&mut duplicate, Some(&mut survivor), merge, &ctx).unwrap();
    assert_eq!(duplicate.state, CaseState::Closed as i32);
    assert_eq!(duplicate.merged_into, survivor.name);
    assert!(duplicate.clocks.iter().all(|c| c.status == ClockStatus::Stopped as i32));
    assert_eq!(survivor.evidence.len(), 1);
    assert_eq!(survivor.links[0].r#type, LinkType::MergedFrom as i32);
    assert_eq!(survivor.state, CaseState::Accepted as i32);
    // A merged case cannot be reopened; its survivor is where work goes on.
    let reopen = Command::Transition { target: CaseState::Reopened, reason: reason("r") };
    let err = run(&mut duplicate, &handler(), t, reopen, &rules).unwrap_err();
    assert!(matches!(&err, WorkflowError::Merged { into } if *into == survivor.name), "{err}");
}

/// The lead case of a group incident is linked to by every member: its record lists the
/// first links and counts the rest, so it stays the same size however large the group grows,
/// while every member lists its own link and a second link of the same pair is still refused.
#[test]
fn a_case_linked_to_by_many_lists_a_bounded_number_and_counts_the_rest() {
    let rules = rules();
    let mut lead = opened("2026-11-02T09:00:00+08:00", &rules);
    lead.name = "cases/0193f1a0-0000-7000-8000-000000000001".to_owned();
    let t = "2026-11-02T12:00:00+08:00";
    let ctx = Context { principal: &handler(), now: at(t), rules: &rules };
    let extra = 25;
    let mut members = Vec::new();
    for n in 0..workflow::MAX_LISTED_LINKS + extra {
        let mut member = opened("2026-11-02T10:00:00+08:00", &rules);
        member.name = format!("cases/0193f1a0-0000-7000-8000-{:012}", 1000 + n);
        let link = Command::Link { kind: LinkType::Parent, reason: reason("same group incident") };
        workflow::execute(&mut member, Some(&mut lead), link, &ctx).unwrap();
        assert_eq!(member.links.len(), 1);
        assert_eq!(member.links[0].case, lead.name);
        assert_eq!(member.links[0].r#type, LinkType::Parent as i32);
        members.push(member);
    }
    assert_eq!(lead.links.len(), workflow::MAX_LISTED_LINKS);
    assert!(lead.links.iter().all(|l| l.r#type == LinkType::Child as i32));
    assert_eq!(lead.unlisted_link_count, extra as i32);
    let size = prost::Message::encoded_len(&lead);
    // Linking more members does not grow the lead's record beyond the count.
    let mut another = opened("2026-11-02T10:00:00+08:00", &rules);
    another.name = "cases/0193f1a0-0000-7000-8000-000000099999".to_owned();
    let link = Command::Link { kind: LinkType::Parent, reason: reason("same group incident") };
    workflow::execute(&mut another, Some(&mut lead), link, &ctx).unwrap();
    assert!(prost::Message::encoded_len(&lead) <= size + 1);
    // A member beyond the listed ones is linked once only, whichever side asks again.
    let last = members.last_mut().unwrap();
    let again = Command::Link { kind: LinkType::Parent, reason: reason("same group incident") };
    let err = workflow::execute(last, Some(&mut lead), again, &ctx).unwrap_err();
    assert!(matches!(err, WorkflowError::LinkExists { .. }), "{err}");
    let back = Command::Link { kind: LinkType::Child, reason: reason("same group incident") };
    let err = workflow::execute(&mut lead, Some(last), back, &ctx).unwrap_err();
    assert!(matches!(err, WorkflowError::LinkExists { .. }), "{err}");
}

#[test]
fn an_open_coordination_task_past_its_due_time_reminds_its_owner_once() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, &rules, "2026-11-02T11:00:00+08:00");
    for (owner, due) in [("u-risk", "2026-11-02T15:00:00+08:00"), ("u-legal", "2026-11-02T16:00:00+08:00")] {
        let task = Command::AddTask {
            department: "risk".to_owned(),
            owner: owner.to_owned(),
            owner_staff_id: "E3001".to_owned(),
            description: reason("pull the card's transaction log"),
            due: at(due),
        };
        run(&mut case, &handler(), "2026-11-02T12:00:00+08:00", task, &rules).unwrap();
    }
    assert_eq!(rules.clocks.next_check(&case), Some(at("2026-11-02T15:00:00+08:00")));
    let done = Command::CompleteTask { task_id: "t2".to_owned(), outcome: reason("log attached") };
    run(&mut case, &handler(), "2026-11-02T14:00:00+08:00", done, &rules).unwrap();
    let fx = workflow::sweep(&mut case, &rules, at("2026-11-02T17:00:00+08:00"));
    assert_eq!(fx.audit.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["task.overdue"]);
    assert_eq!(fx.audit[0].1["recipients"], "user:u-risk,department:risk");
    assert!(case.coordination_tasks[0].overdue && !case.coordination_tasks[1].overdue);
    assert!(workflow::sweep(&mut case, &rules, at("2026-11-02T18:00:00+08:00")).events.is_empty());
}

#[test]
fn a_pause_that_leaves_the_due_time_where_it_was_raises_no_second_reminder() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, &rules, "2026-11-02T11:00:00+08:00");
    let fx = workflow::sweep(&mut case, &rules, at("2026-11-03T10:30:00+08:00"));
    assert_eq!(fx.audit[0].0, "deadline.breached");
    // Paused and resumed within one day after the breach: the hour clock's due time, before
    // the pause, does not move.
    let pause = Command::Pause { reason: PauseReason::TestingOrAppraisal, note: reason("lab") };
    run(&mut case, &handler(), "2026-11-03T11:00:00+08:00", pause, &rules).unwrap();
    run(&mut case, &handler(), "2026-11-03T11:10:00+08:00", Command::Resume { note: reason("back") }, &rules).unwrap();
    assert_eq!(due(&case, ClockKind::FirstResponse), Some(at("2026-11-03T10:00:00+08:00")));
    let again = workflow::sweep(&mut case, &rules, at("2026-11-03T12:00:00+08:00"));
    assert!(!again.audit.iter().any(|(a, d)| a == "deadline.breached" && d["clock"] == "CLOCK_KIND_FIRST_RESPONSE"));
    // A grade change gives the clock a new due time (8 hours: Nov 2 18:00), which re-arms it.
    let grade = Command::ChangeGrade { grade: Grade::Important, reason: reason("escalated") };
    run(&mut case, &handler(), "2026-11-03T12:00:00+08:00", grade, &rules).unwrap();
    let fx = workflow::sweep(&mut case, &rules, at("2026-11-03T12:30:00+08:00"));
    assert!(fx.audit.iter().any(|(a, d)| a == "deadline.breached" && d["clock"] == "CLOCK_KIND_FIRST_RESPONSE"));
}

#[test]
fn a_withdrawn_case_with_an_open_task_needs_no_more_sweeping() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, &rules, "2026-11-02T11:00:00+08:00");
    let task = Command::AddTask {
        department: "risk".to_owned(),
        owner: "u-risk".to_owned(),
        owner_staff_id: "E3001".to_owned(),
        description: reason("log"),
        due: at("2026-11-02T15:00:00+08:00"),
    };
    run(&mut case, &handler(), "2026-11-02T12:00:00+08:00", task, &rules).unwrap();
    let withdraw = Command::Transition { target: CaseState::Withdrawn, reason: reason("settled") };
    run(&mut case, &handler(), "2026-11-02T13:00:00+08:00", withdraw, &rules).unwrap();
    assert_eq!(rules.clocks.next_check(&case), None);
}

#[test]
fn a_case_paused_on_its_last_day_resumes_with_that_day_to_run() {
    let rules = rules();
    // Mon 2026-03-09 10:00: the 15-day decision clock ends Tue 24 at 24:00.
    let mut case = opened("2026-03-09T10:00:00+08:00", &rules);
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-03-25T00:00:00+08:00")));
    let pause = Command::Pause { reason: PauseReason::WaitingForMaterials, note: reason("bank statement") };
    run(&mut case, &handler(), "2026-03-24T09:00:00+08:00", pause, &rules).unwrap();
    run(&mut case, &handler(), "2026-03-27T09:00:00+08:00", Command::Resume { note: reason("received") }, &rules)
        .unwrap();
    // Tue 24 was left when the clocks paused; Fri 27 is that day now.
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-03-28T00:00:00+08:00")));
    let fx = workflow::sweep(&mut case, &rules, at("2026-03-27T09:00:00+08:00"));
    assert!(
        !fx.audit.iter().any(|(a, d)| a == "deadline.breached" && d["clock"] == "CLOCK_KIND_REGULATORY_DECISION"),
        "{:?}",
        fx.audit
    );
    assert!(!breaches(&case).iter().any(|(kind, _)| *kind == ClockKind::RegulatoryDecision));
}

#[test]
fn an_extension_is_granted_before_the_decision_deadline_never_after() {
    let rules = rules();
    let extend = |total_days| Command::Extend { total_days, reason: reason("needs the card scheme's records") };
    // Mon 2026-03-09 10:00: the 15-day decision clock ends Tue 24 at 24:00.
    let received = opened("2026-03-09T10:00:00+08:00", &rules);
    let deadline = at("2026-03-25T00:00:00+08:00");

    // An hour before it: 30 days from Mon 03-09 end Wed 04-08.
    let mut extended = received.clone();
    run(&mut extended, &supervisor(), "2026-03-24T23:00:00+08:00", extend(30), &rules).unwrap();
    assert_eq!(due(&extended, ClockKind::RegulatoryDecision), Some(at("2026-04-09T00:00:00+08:00")));
    // At the extended deadline itself, 60 days come too late.
    let head_office = person(
        "u-head-office",
        &["senior_manager"],
        &[Permission::CasesRead, Permission::CasesWrite, Permission::CasesExtend, Permission::CasesExtendSpecial],
    );
    let err = run(&mut extended, &head_office, "2026-04-09T00:00:00+08:00", extend(60), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::ExtensionTooLate { due } if due == at("2026-04-09T00:00:00+08:00")), "{err}");

    // Past the deadline: refused whether or not a sweep has recorded the breach yet.
    let mut late = received.clone();
    let err = run(&mut late.clone(), &supervisor(), "2026-03-25T09:00:00+08:00", extend(30), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::ExtensionTooLate { due } if due == deadline), "{err}");
    workflow::sweep(&mut late, &rules, at("2026-03-25T09:00:00+08:00"));
    let err = run(&mut late, &supervisor(), "2026-03-25T10:00:00+08:00", extend(30), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::ExtensionTooLate { due } if due == deadline), "{err}");
    assert_eq!(due(&late, ClockKind::RegulatoryDecision), Some(deadline));
    let decision = late.breaches.iter().find(|b| b.clock == ClockKind::RegulatoryDecision as i32).unwrap();
    assert_eq!(instant(&decision.breach_time), Some(at("2026-03-25T09:00:00+08:00")));

    // Paused after the deadline, the clock shows no due time, and it is still too late.
    let mut paused_late = received.clone();
    let pause = Command::Pause { reason: PauseReason::TestingOrAppraisal, note: reason("lab") };
    run(&mut paused_late, &handler(), "2026-03-25T08:00:00+08:00", pause.clone(), &rules).unwrap();
    let err = run(&mut paused_late, &supervisor(), "2026-03-26T09:00:00+08:00", extend(30), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::ExtensionTooLate { due } if due == deadline), "{err}");

    // Paused before it, the clock has days left however long the pause lasts.
    let mut paused_early = received;
    run(&mut paused_early, &handler(), "2026-03-20T09:00:00+08:00", pause, &rules).unwrap();
    run(&mut paused_early, &supervisor(), "2026-03-26T09:00:00+08:00", extend(30), &rules).unwrap();
}

#[test]
fn a_downgraded_case_stays_breached_in_its_measures() {
    let rules = rules();
    // Urgent from the start: received Mon 2026-03-09 10:00, first response due at 12:00.
    let mut swept = opened("2026-03-09T10:00:00+08:00", &rules);
    let urgent = Command::ChangeGrade { grade: Grade::Urgent, reason: reason("media attention") };
    run(&mut swept, &handler(), "2026-03-09T10:05:00+08:00", urgent, &rules).unwrap();
    let first_due = at("2026-03-09T12:00:00+08:00");
    assert_eq!(due(&swept, ClockKind::FirstResponse), Some(first_due));
    // One case is swept after 12:00 (a reminder raised), the other is downgraded first.
    let mut unswept = swept.clone();
    assert!(!workflow::sweep(&mut swept, &rules, at("2026-03-09T12:30:00+08:00")).events.is_empty());
    for case in [&mut swept, &mut unswept] {
        // General again: 24 hours, due Tue 10:00, and the response comes well within that.
        let general = Command::ChangeGrade { grade: Grade::General, reason: reason("not urgent after all") };
        run(case, &handler(), "2026-03-09T13:00:00+08:00", general, &rules).unwrap();
        assert_eq!(due(case, ClockKind::FirstResponse), Some(at("2026-03-10T10:00:00+08:00")));
        let respond = Command::FirstResponse { note: reason("called back"), channel: Channel::Phone };
        run(case, &handler(), "2026-03-09T14:00:00+08:00", respond, &rules).unwrap();
        assert_eq!(breaches(case), [(ClockKind::FirstResponse, Some(first_due))]);
        assert!(!workflow::measures(case).on_time);
    }
}

#[test]
fn a_reopened_case_keeps_its_earlier_breach() {
    let rules = rules();
    let mut case = opened("2026-03-09T10:00:00+08:00", &rules);
    assign(&mut case, &rules, "2026-03-09T11:00:00+08:00");
    let respond = Command::FirstResponse { note: reason("called back"), channel: Channel::Phone };
    run(&mut case, &handler(), "2026-03-09T11:00:00+08:00", respond, &rules).unwrap();
    // Resolution in 7 working days ends Wed 03-18 at 24:00; decided Fri 20, late.
    let measures = decide_and_close(&mut case, &rules, "2026-03-20T10:00:00+08:00", "2026-03-23T10:00:00+08:00");
    assert!(!measures.on_time);
    let late = [(ClockKind::Resolution, Some(at("2026-03-19T00:00:00+08:00")))];
    assert_eq!(breaches(&case), late);

    // Reopened, the case gets a fresh resolution clock and meets it; the earlier breach stays.
    let reopen = Command::Transition { target: CaseState::Reopened, reason: reason("the fee is back") };
    run(&mut case, &handler(), "2026-03-24T10:00:00+08:00", reopen, &rules).unwrap();
    let resolution = clock::clock(&case, ClockKind::Resolution).unwrap();
    assert!(resolution.status == ClockStatus::Running as i32 && !resolution.breached);
    assign(&mut case, &rules, "2026-03-24T11:00:00+08:00");
    let measures = decide_and_close(&mut case, &rules, "2026-03-25T10:00:00+08:00", "2026-03-26T10:00:00+08:00");
    assert_eq!(case.reopen_count, 1);
    assert_eq!(breaches(&case), late);
    assert!(!measures.on_time);
}

const BRANCH: &str = "institutions/demo/branches/sh";
const SUB_BRANCH: &str = "institutions/demo/branches/sh/sub-branches/pudong";

/// A case of `unit` opened for a general complaint received through `channel` at `received`.
fn opened_at(unit: &str, channel: Channel, received: &str, rules: &Rules) -> Case {
    let mut case = opened(received, rules);
    case.org_unit = unit.to_owned();
    case.channel = channel as i32;
    workflow::opening_clocks(&mut case, rules);
    case
}

/// Takes a fresh case through assignment and investigation to a decision by `who` at `when`.
fn decided_by(case: &mut Case, who: &Principal, when: &str, rules: &Rules) {
    let steps = [
        Command::Assign {
            assignee: "u-handler".to_owned(),
            department: "cards".to_owned(),
            assignee_staff_id: "E1001".to_owned(),
        },
        Command::Transition { target: CaseState::Investigating, reason: reason("r") },
        Command::Propose { kind: ResolutionType::Explanation, compensation: None, grounds: reason("g") },
        Command::Decide { notice: reason("n") },
    ];
    for command in steps {
        run(case, who, when, command, rules).unwrap();
    }
}

/// The reminders a sweep at `when` raises for the clock of `kind`: (action, recipients).
fn reminders(case: &mut Case, rules: &Rules, when: &str, kind: ClockKind) -> Vec<(String, Vec<String>)> {
    let fx = workflow::sweep(case, rules, at(when));
    let mut raised = Vec::new();
    for event in &fx.events {
        let (action, clock, recipients) = if event.event_type.ends_with(".DeadlineAtRisk") {
            let e: DeadlineAtRisk = prost::Message::decode(event.payload.as_slice()).unwrap();
            ("deadline.at_risk", e.clock, e.recipients)
        } else if event.event_type.ends_with(".DeadlineBreached") {
            let e: DeadlineBreached = prost::Message::decode(event.payload.as_slice()).unwrap();
            ("deadline.breached", e.clock, e.recipients)
        } else {
            continue;
        };
        if clock == kind as i32 {
            raised.push((action.to_owned(), recipients));
        }
    }
    raised
}

#[test]
fn a_closed_case_is_reviewed_above_the_unit_that_decided_it() {
    let rules = rules();
    let mut case = opened_at(SUB_BRANCH, Channel::Phone, "2026-11-02T10:00:00+08:00", &rules);
    let pudong = staff_at(SUB_BRANCH, "u-pudong", &["supervisor"]);
    decided_by(&mut case, &pudong, "2026-11-03T10:00:00+08:00", &rules);
    assert_eq!(case.resolution.as_ref().unwrap().deciding_unit, SUB_BRANCH);
    for target in [CaseState::FollowUp, CaseState::Closed] {
        run(
            &mut case,
            &pudong,
            "2026-11-04T10:00:00+08:00",
            Command::Transition { target, reason: reason("r") },
            &rules,
        )
        .unwrap();
    }

    // Closing does not take the complainant's right away: asked within 30 days of the
    // decision, the review is recorded by whoever takes the request.
    let request = Command::RequestReview { reason: reason("the fee was not refunded in full") };
    run(&mut case, &pudong, "2026-11-20T10:00:00+08:00", request.clone(), &rules).unwrap();
    assert_eq!((case.state, case.previous_state), (CaseState::UnderReview as i32, CaseState::Closed as i32));
    assert_eq!((case.review_count, case.reopen_count), (1, 0));
    assert!(case.close_time.is_none() && case.assignee.is_empty() && case.department.is_empty());
    let review = case.reviews.last().unwrap();
    assert_eq!((review.deciding_unit.as_str(), review.requested_by.as_str()), (SUB_BRANCH, "u-pudong"));
    assert_eq!(review.reason, "the fee was not refunded in full");
    assert_eq!(review.decision_time, case.decide_time);
    // Its own clock: 30 days from Fri Nov 20 end Sun Dec 20, a rest day, so Mon Dec 21 at 24:00.
    assert_eq!(due(&case, ClockKind::ReviewDecision), Some(at("2026-12-22T00:00:00+08:00")));
    // Not a reopening: the clocks the decision met stay met.
    assert_eq!(clock::clock(&case, ClockKind::Resolution).unwrap().status, ClockStatus::Met as i32);

    // Until a reviewer is assigned, its reminders go to the unit above the deciding one.
    let late = reminders(&mut case.clone(), &rules, "2026-12-22T01:00:00+08:00", ClockKind::ReviewDecision);
    let above = [format!("org_unit:{BRANCH}"), format!("supervisor:{BRANCH}")];
    assert_eq!(late, [("deadline.breached".to_owned(), above.to_vec())]);

    // The deciding unit neither assigns nor decides its own review, whatever it holds.
    let t = "2026-11-23T10:00:00+08:00";
    let assign = Command::Assign {
        assignee: "u-reviewer".to_owned(),
        department: "consumer-protection".to_owned(),
        assignee_staff_id: "E1001".to_owned(),
    };
    let decide = Command::DecideReview { outcome: ReviewOutcome::Upheld, notice: reason("the fee was lawful") };
    for command in [assign.clone(), decide.clone()] {
        let err = run(&mut case, &pudong, t, command, &rules).unwrap_err();
        assert!(matches!(&err, WorkflowError::ReviewNeedsHigherUnit { deciding_unit } if deciding_unit == SUB_BRANCH));
    }
    assert_eq!(case.state, CaseState::UnderReview as i32);

    // The branch above it does.
    let branch = staff_at(BRANCH, "u-sh", &["supervisor"]);
    run(&mut case, &branch, t, assign, &rules).unwrap();
    let review = case.reviews.last().unwrap();
    assert_eq!((review.reviewer.as_str(), review.reviewer_department.as_str()), ("u-reviewer", "consumer-protection"));
    assert_eq!(review.reviewing_unit, BRANCH);
    assert_eq!((case.state, case.assignee.as_str()), (CaseState::UnderReview as i32, "u-reviewer"));
    let ctx = Context { principal: &branch, now: at("2026-12-01T10:00:00+08:00"), rules: &rules };
    let fx = workflow::execute(&mut case, None, decide, &ctx).unwrap();
    assert_eq!((case.state, case.previous_state), (CaseState::Decided as i32, CaseState::UnderReview as i32));
    let review = case.reviews.last().unwrap();
    assert_eq!((review.outcome, review.decided_by.as_str()), (ReviewOutcome::Upheld as i32, "u-sh"));
    assert_eq!(instant(&review.decide_time), Some(at("2026-12-01T10:00:00+08:00")));
    let clock = clock::clock(&case, ClockKind::ReviewDecision).unwrap();
    assert!(clock.status == ClockStatus::Met as i32 && !clock.breached);
    let decided = fx.events.iter().find(|e| e.event_type.ends_with(".CaseReviewDecided")).expect("CaseReviewDecided");
    let decided: CaseReviewDecided = prost::Message::decode(decided.payload.as_slice()).unwrap();
    assert_eq!(decided.review.unwrap().decision_notice, "the fee was lawful");

    // A decision is reviewed once.
    let again = run(&mut case, &pudong, "2026-12-02T10:00:00+08:00", request, &rules).unwrap_err();
    assert!(matches!(again, WorkflowError::AlreadyReviewed), "{again}");
}

#[test]
fn head_office_reviews_too_and_a_review_is_asked_within_thirty_days() {
    let rules = rules();
    let mut case = opened_at(BRANCH, Channel::Phone, "2026-11-02T10:00:00+08:00", &rules);
    let branch = staff_at(BRANCH, "u-sh", &["handler"]);
    decided_by(&mut case, &branch, "2026-11-03T10:00:00+08:00", &rules);
    // A review is requested as one, not reached by a move.
    let moved = Command::Transition { target: CaseState::UnderReview, reason: reason("disagree") };
    let err = run(&mut case, &branch, "2026-11-04T10:00:00+08:00", moved, &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::TransitionVia { method: "RequestCaseReview" }), "{err}");

    // Decided Tue Nov 3: 30 days end Thu Dec 3 at 24:00.
    let request = Command::RequestReview { reason: reason("disagree") };
    let late = run(&mut case.clone(), &branch, "2026-12-04T00:00:00+08:00", request.clone(), &rules).unwrap_err();
    let window_end = at("2026-12-04T00:00:00+08:00");
    assert!(matches!(late, WorkflowError::ReviewWindowPassed { until } if until == window_end), "{late}");
    run(&mut case, &branch, "2026-12-03T23:00:00+08:00", request, &rules).unwrap();

    // Under review the case is neither investigated nor proposed afresh; it ends in a review
    // decision, here by head office without assigning a reviewer first.
    let investigate = Command::Transition { target: CaseState::Investigating, reason: reason("r") };
    assert!(matches!(
        run(&mut case, &branch, "2026-12-04T10:00:00+08:00", investigate, &rules),
        Err(WorkflowError::InvalidState { current: CaseState::UnderReview, .. })
    ));
    let head_office = staff_at("institutions/demo", "u-hq", &["handler"]);
    let decide = Command::DecideReview { outcome: ReviewOutcome::Revised, notice: reason("refund the fee") };
    run(&mut case, &head_office, "2026-12-10T10:00:00+08:00", decide, &rules).unwrap();
    let review = case.reviews.last().unwrap();
    assert_eq!((review.outcome, review.reviewing_unit.as_str()), (ReviewOutcome::Revised as i32, "institutions/demo"));
    assert_eq!(case.state, CaseState::Decided as i32);
}

#[test]
fn a_decision_made_at_head_office_is_reviewed_there_and_not_below() {
    let rules = rules();
    let mut case = opened_at(BRANCH, Channel::Phone, "2026-11-02T10:00:00+08:00", &rules);
    let head_office = staff_at("institutions/demo", "u-hq", &["handler"]);
    decided_by(&mut case, &head_office, "2026-11-03T10:00:00+08:00", &rules);
    let request = Command::RequestReview { reason: reason("disagree") };
    run(&mut case, &head_office, "2026-11-04T10:00:00+08:00", request, &rules).unwrap();
    assert_eq!(case.reviews[0].deciding_unit, "institutions/demo");
    let assign = Command::Assign {
        assignee: "u-reviewer".to_owned(),
        department: "legal".to_owned(),
        assignee_staff_id: "E1001".to_owned(),
    };
    let branch = staff_at(BRANCH, "u-sh", &["supervisor"]);
    let err = run(&mut case, &branch, "2026-11-05T10:00:00+08:00", assign.clone(), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::ReviewNeedsHigherUnit { .. }), "{err}");
    run(&mut case, &head_office, "2026-11-05T10:00:00+08:00", assign, &rules).unwrap();
}

#[test]
fn a_regulator_referral_is_forwarded_within_three_working_days() {
    let rules = rules();
    // Tue 2026-09-29 10:00, before National Day (Oct 1-7): Sep 30 (1), Oct 8 (2), Oct 9 (3).
    let mut referral = opened_at(BRANCH, Channel::RegulatorReferral, "2026-09-29T10:00:00+08:00", &rules);
    assert_eq!(due(&referral, ClockKind::ReferralForwarding), Some(at("2026-10-10T00:00:00+08:00")));
    let phoned = opened_at(BRANCH, Channel::Phone, "2026-09-29T10:00:00+08:00", &rules);
    assert!(clock::clock(&phoned, ClockKind::ReferralForwarding).is_none());

    // The sweeper reminds of it like of any clock: at risk to the owner, then breached.
    let mut swept = referral.clone();
    let owner = format!("org_unit:{BRANCH}");
    let at_risk = reminders(&mut swept, &rules, "2026-10-08T09:00:00+08:00", ClockKind::ReferralForwarding);
    assert_eq!(at_risk, [("deadline.at_risk".to_owned(), vec![owner.clone()])]);
    let breached = reminders(&mut swept, &rules, "2026-10-10T09:00:00+08:00", ClockKind::ReferralForwarding);
    assert_eq!(breached, [("deadline.breached".to_owned(), vec![owner, format!("supervisor:{BRANCH}")])]);

    // Moving it between departments does not forward it; assigning a handling department does.
    let transfer = Command::Transfer {
        to_department: "cards".to_owned(),
        reason: reason("card fees"),
        to_assignee: String::new(),
        to_assignee_staff_id: String::new(),
    };
    run(&mut referral, &handler(), "2026-09-30T09:00:00+08:00", transfer, &rules).unwrap();
    let forwarding = clock::clock(&referral, ClockKind::ReferralForwarding).unwrap();
    assert_eq!(forwarding.status, ClockStatus::Running as i32);
    assign(&mut referral, &rules, "2026-09-30T10:00:00+08:00");
    let forwarding = clock::clock(&referral, ClockKind::ReferralForwarding).unwrap();
    assert_eq!(forwarding.status, ClockStatus::Met as i32);
    assert!(!forwarding.breached);
    assert!(reminders(&mut referral, &rules, "2026-10-10T09:00:00+08:00", ClockKind::ReferralForwarding).is_empty());
}

#[test]
fn sixty_days_are_approved_above_the_handling_unit_or_by_a_head_office_senior_manager() {
    let rules = rules();
    let t = "2026-03-10T10:00:00+08:00";
    let extend = |total_days| Command::Extend { total_days, reason: reason("especially complex") };
    let at_branch = opened_at(BRANCH, Channel::Phone, "2026-03-09T10:00:00+08:00", &rules);

    // The handling unit itself is refused, even holding the permission and a senior role.
    let own = staff_at(BRANCH, "u-sh", &["senior_manager"]);
    let err = run(&mut at_branch.clone(), &own, t, extend(60), &rules).unwrap_err();
    assert!(matches!(&err, WorkflowError::ExtensionNeedsHigherUnit { handling_unit } if handling_unit == BRANCH));
    // Thirty days stay its own to grant.
    run(&mut at_branch.clone(), &own, t, extend(30), &rules).unwrap();

    // Any unit above it approves: 60 days from Mon 03-09 end Fri 05-08.
    let mut extended = at_branch.clone();
    let head_office = staff_at("institutions/demo", "u-hq", &["handler"]);
    run(&mut extended, &head_office, t, extend(60), &rules).unwrap();
    assert_eq!(due(&extended, ClockKind::RegulatoryDecision), Some(at("2026-05-09T00:00:00+08:00")));

    // A case handled at head office: only a senior manager there approves.
    let at_head_office = opened_at("institutions/demo", Channel::Phone, "2026-03-09T10:00:00+08:00", &rules);
    let err = run(&mut at_head_office.clone(), &head_office, t, extend(60), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::ExtensionNeedsHigherUnit { .. }), "{err}");
    let senior = staff_at("institutions/demo", "u-ceo", &["senior_manager"]);
    run(&mut at_head_office.clone(), &senior, t, extend(60), &rules).unwrap();
}

/// The rules of [`rules`] with institutions on other regimes: `uk-bank` on FCA DISP and `wd`
/// on a regime whose decision clock counts working days and may be extended.
fn rules_with_regimes() -> Rules {
    let mut rules = rules();
    let working_days = redress_calendar::Regime::from_toml(
        "test",
        r#"
        id = "working-days"
        name = "a working-day decision clock"
        calendar = "cn"
        time_zone = "Asia/Shanghai"
        [[clocks]]
        id = "regulatory_decision"
        starts = "receipt"
        period = { WorkingDays = 7 }
        [[clocks.extensions]]
        to = { WorkingDays = 15 }
        "#,
    )
    .unwrap();
    let fca = redress_calendar::Regime::preset("fca-disp").unwrap();
    let default = Institutions::clone(&rules.clocks.institutions);
    let china = default.default_regime().calculator().clone();
    rules.clocks.institutions = Arc::new(
        default.with_institution("institutions/wd", &working_days, china, &SlaPolicy::default()).with_institution(
            "institutions/uk-bank",
            &fca,
            fca.calculator(),
            &SlaPolicy::default(),
        ),
    );
    rules
}

/// D-SLA-10: a UK case's decision clock is FCA DISP's 8 weeks, counted in Europe/London.
#[test]
fn a_case_counts_on_its_institutions_regime_and_zone() {
    let rules = rules_with_regimes();
    let case =
        opened_at("institutions/uk-bank/branches/leeds", Channel::default(), "2026-03-02T10:00:00+00:00", &rules);
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-04-28T00:00:00+01:00")));
    assert_eq!(case.deadlines.as_ref().unwrap().time_zone, "Europe/London");
    let china = opened("2026-03-02T10:00:00+08:00", &rules);
    assert_eq!(due(&china, ClockKind::RegulatoryDecision), Some(at("2026-03-18T00:00:00+08:00")));
}

/// A UK case whose decision clock reaches 2027, which has no bank-holiday file, is counted on
/// the England and Wales provisional rules and marked so, never left without a due time: Sun
/// 2026-12-20 + 56 days is Sun 2027-02-14, moved off the rest day to the end of Mon 15 February.
#[test]
fn a_uk_clock_reaching_a_year_without_a_file_is_provisional() {
    let rules = rules_with_regimes();
    let case =
        opened_at("institutions/uk-bank/branches/leeds", Channel::default(), "2026-12-20T10:00:00+00:00", &rules);
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2027-02-16T00:00:00Z")));
    let decision = clock::clock(&case, ClockKind::RegulatoryDecision).unwrap();
    assert!(decision.provisional, "{decision:?}");
    assert!(decision.provisional_reason.contains("gb-eng") && decision.provisional_reason.contains("2027"));
    assert!(clock::has_provisional(&case), "found again when the year's file is loaded");
}

/// An extension keeps the regime's unit: 7 working days extended to 15 stay working days.
#[test]
fn an_extension_on_a_working_day_regime_stays_in_working_days() {
    let rules = rules_with_regimes();
    // Mon 2026-03-02: 7 working days end Wed Mar 11; 15 end Mon Mar 23 (15 calendar days
    // would end Tue Mar 17).
    let mut case = opened_at("institutions/wd", Channel::default(), "2026-03-02T10:00:00+08:00", &rules);
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-03-12T00:00:00+08:00")));
    let who = staff_at("institutions/wd", "u-wd", &["handler"]);
    let extend = |total_days| Command::Extend { total_days, reason: reason("complex") };
    let too_long = run(&mut case, &who, "2026-03-05T09:00:00+08:00", extend(16), &rules);
    assert!(matches!(too_long, Err(WorkflowError::ExtensionTooLong { longest: 15, .. })), "{too_long:?}");
    run(&mut case, &who, "2026-03-05T09:00:00+08:00", extend(15), &rules).unwrap();
    let decision = clock::clock(&case, ClockKind::RegulatoryDecision).unwrap();
    assert_eq!(decision.unit, redress_proto::redress::case::v1::ClockUnit::WorkingDays as i32);
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-03-24T00:00:00+08:00")));
}

/// A regime without extensions (FCA DISP) refuses one with a stable reason.
#[test]
fn a_regime_without_extensions_refuses_one() {
    let rules = rules_with_regimes();
    let mut case = opened_at("institutions/uk-bank", Channel::default(), "2026-03-02T10:00:00+00:00", &rules);
    let who = staff_at("institutions/uk-bank", "u-uk", &["handler"]);
    let refused = run(
        &mut case,
        &who,
        "2026-03-05T09:00:00+00:00",
        Command::Extend { total_days: 70, reason: reason("r") },
        &rules,
    );
    let Err(error) = refused else { panic!("extended") };
    assert!(matches!(error, WorkflowError::ExtensionNotInRegime { ref regime } if regime == "fca-disp"), "{error:?}");
    assert_eq!(due(&case, ClockKind::RegulatoryDecision), Some(at("2026-04-28T00:00:00+01:00")));
}
