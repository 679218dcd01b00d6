//! Progress to the complainant (D-CASE-8) and nothing left unattended (D-INT-5), at fixed
//! instants: contacts and the contact owed on the working-day calendar, a transfer's notice,
//! implementation steps, and the reminders the sweeper raises for them, each once.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_calendar::{DeadlineCalculator, Institutions, SlaPolicy};
use redress_platform::principal::Principal;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseState, CaseTransferred, ClockKind, ClockStatus, ComplainantContactDue, ContactDirection,
    ImplementationStepOverdue, LinkType, ResolutionType, UnassignedCaseReminder,
};
use redress_proto::redress::common::v1::{Channel, Grade};

use super::clock::{self, instant};
use super::tests::{handler, rules};
use super::workflow::{self, Command, Context, Effects, NewContact, NewStep, Progress, Rules, WorkflowError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A general phone complaint received and opened at `opened`, as case-workflow opens it.
fn opened(opened: &str, rules: &Rules) -> Case {
    let mut case = Case {
        name: "cases/0193f1a0-0000-7000-8000-0000000000c1".to_owned(),
        case_number: "2026030200000001".to_owned(),
        state: CaseState::Accepted as i32,
        org_unit: "institutions/demo".to_owned(),
        channel: Channel::Phone as i32,
        grade: Grade::General as i32,
        receive_time: Some(to_timestamp(at(opened))),
        open_time: Some(to_timestamp(at(opened))),
        complained_staff_ids: vec!["e-042".to_owned()],
        ..Case::default()
    };
    workflow::opening_clocks(&mut case, rules);
    case
}

fn execute(
    case: &mut Case,
    who: &Principal,
    when: &str,
    command: Command,
    rules: &Rules,
) -> Result<Effects, WorkflowError> {
    let ctx = Context { principal: who, now: at(when), rules };
    workflow::execute(case, None, command, &ctx)
}

fn run(case: &mut Case, when: &str, command: Command, rules: &Rules) {
    execute(case, &staff(), when, command, rules).unwrap_or_else(|e| panic!("{e}"));
}

/// The handler, with an employee id (cases naming complained staff need one to decide).
fn staff() -> Principal {
    Principal { staff_id: "e-100".to_owned(), ..handler() }
}

fn assign(case: &mut Case, when: &str, rules: &Rules) {
    let assign = Command::Assign {
        assignee: "u-handler".to_owned(),
        department: "cards".to_owned(),
        assignee_staff_id: "e-100".to_owned(),
    };
    run(case, when, assign, rules);
}

fn contact(when: Option<&str>, next: Option<&str>) -> Command {
    Command::RecordContact(NewContact {
        channel: Channel::Phone,
        direction: ContactDirection::Outbound,
        contact_time: when.map(at),
        summary: "告知调查进展，已调取交易记录".to_owned(),
        next_contact_due: next.map(at),
    })
}

/// The audit actions a sweep at `when` raised.
fn sweep(case: &mut Case, when: &str, rules: &Rules) -> Effects {
    workflow::sweep(case, rules, at(when))
}

fn actions(fx: &Effects) -> Vec<&str> {
    fx.audit.iter().map(|(a, _)| a.as_str()).collect()
}

fn event<M: prost::Message + Default>(fx: &Effects, type_suffix: &str) -> Option<M> {
    fx.events.iter().find(|e| e.event_type.ends_with(type_suffix)).map(|e| M::decode(e.payload.as_slice()).unwrap())
}

/// Decides an assigned case at `when` (investigate, propose an explanation, decide).
fn decide(case: &mut Case, when: &str, rules: &Rules) {
    run(case, when, Command::Transition { target: CaseState::Investigating, reason: "r".to_owned() }, rules);
    let propose =
        Command::Propose { kind: ResolutionType::ApologyCompensation, compensation: None, grounds: "g".to_owned() };
    run(case, when, propose, rules);
    run(case, when, Command::Decide { notice: "we refund the fee".to_owned() }, rules);
}

fn step(description: &str, due: &str) -> Command {
    Command::AddImplementationStep(NewStep {
        description: description.to_owned(),
        owner: "u-ops".to_owned(),
        owner_staff_id: "e-200".to_owned(),
        department: "operations".to_owned(),
        due: at(due),
    })
}

#[test]
fn a_contact_is_logged_with_who_had_it_and_moves_the_contact_owed() {
    let rules = rules();
    // Tue 2026-09-29 10:00, before National Day (Oct 1-7; Sat Oct 10 a make-up working day):
    // five working days are Sep 30, Oct 8, 9, 10 and 12.
    let mut case = opened("2026-09-29T10:00:00+08:00", &rules);
    assert_eq!(instant(&case.next_contact_due_time), Some(at("2026-10-13T00:00:00+08:00")));
    assert!(!case.next_contact_due_provisional);
    assign(&mut case, "2026-09-29T11:00:00+08:00", &rules);
    let fx = execute(&mut case, &staff(), "2026-09-30T15:00:00+08:00", contact(None, None), &rules).unwrap();
    let logged = &case.contacts[0];
    assert_eq!((logged.contact_id.as_str(), logged.recorded_by.as_str()), ("c1", "u-handler"));
    assert_eq!(logged.recorded_by_staff_id, "e-100");
    assert_eq!(logged.channel, Channel::Phone as i32);
    assert_eq!(instant(&logged.contact_time), Some(at("2026-09-30T15:00:00+08:00")));
    assert_eq!(case.last_contact_time, logged.contact_time);
    // Counted again from the contact: Oct 8, 9, 10, 12, 13.
    assert_eq!(instant(&case.next_contact_due_time), Some(at("2026-10-14T00:00:00+08:00")));
    // The trail names the contact, not what was said.
    let (action, details) = &fx.audit[0];
    assert_eq!(action, "contact.recorded");
    assert_eq!(details["channel"], "CHANNEL_PHONE");
    assert!(!details.values().any(|v| v.contains("交易记录")), "{details:?}");

    // A contact recorded late, before the last one, does not move the last contact back.
    run(&mut case, "2026-10-08T09:00:00+08:00", contact(Some("2026-09-30T09:00:00+08:00"), None), &rules);
    assert_eq!(instant(&case.last_contact_time), Some(at("2026-09-30T15:00:00+08:00")));
    assert_eq!(case.contacts.len(), 2);
}

#[test]
fn a_contact_is_refused_in_the_future_before_the_opening_or_with_a_next_contact_before_it() {
    let rules = rules();
    let mut case = opened("2026-09-29T10:00:00+08:00", &rules);
    let t = "2026-09-30T10:00:00+08:00";
    let future = execute(&mut case, &staff(), t, contact(Some("2026-09-30T10:00:01+08:00"), None), &rules);
    assert!(matches!(future, Err(WorkflowError::ContactInTheFuture)), "{future:?}");
    let before = execute(&mut case, &staff(), t, contact(Some("2026-09-29T09:59:00+08:00"), None), &rules);
    assert!(matches!(before, Err(WorkflowError::ContactBeforeOpening { .. })), "{before:?}");
    let next = execute(&mut case, &staff(), t, contact(Some(t), Some(t)), &rules);
    assert!(matches!(next, Err(WorkflowError::NextContactNotAfterContact)), "{next:?}");
    assert!(case.contacts.is_empty());
    // A closed or withdrawn case takes no contact.
    run(&mut case, t, Command::Transition { target: CaseState::Withdrawn, reason: "settled".to_owned() }, &rules);
    let closed = execute(&mut case, &staff(), t, contact(None, None), &rules);
    assert!(matches!(closed, Err(WorkflowError::InvalidState { .. })), "{closed:?}");
    assert_eq!(case.next_contact_due_time, None, "a withdrawn case owes no contact");
}

#[test]
fn no_contact_for_five_working_days_reminds_the_owner_once_and_a_contact_rearms_it() {
    let rules = rules();
    let mut case = opened("2026-09-29T10:00:00+08:00", &rules);
    assign(&mut case, "2026-09-29T11:00:00+08:00", &rules);
    let due = at("2026-10-13T00:00:00+08:00");
    // The sweeper's next look includes the contact owed (the clocks' at-risk times come first).
    assert!(rules.next_check(&case).unwrap() <= due);
    let mut met = case.clone();
    for kind in [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::RegulatoryDecision] {
        clock::meet(&mut met, kind, at("2026-09-29T12:00:00+08:00"));
    }
    assert_eq!(rules.next_check(&met), Some(due), "with every clock met, the contact owed wakes the sweeper");

    assert!(!actions(&sweep(&mut case, "2026-10-12T23:59:00+08:00", &rules)).contains(&"contact.due"));
    let fx = sweep(&mut case, "2026-10-13T00:00:00+08:00", &rules);
    let reminded: ComplainantContactDue = event(&fx, ".ComplainantContactDue").expect("a reminder");
    assert_eq!(instant(&reminded.due_time), Some(due));
    assert_eq!(reminded.recipients, ["user:u-handler"]);
    assert_eq!(reminded.last_contact_time, None);
    assert_eq!(instant(&case.contact_reminded_due_time), Some(due));
    assert!(!actions(&sweep(&mut case, "2026-10-13T09:00:00+08:00", &rules)).contains(&"contact.due"), "once");
    assert_ne!(rules.next_check(&case), Some(due));

    // A contact at last: the next is owed five working days later (Oct 14, 15, 16, 19, 20).
    run(&mut case, "2026-10-13T10:00:00+08:00", contact(None, None), &rules);
    let next = at("2026-10-21T00:00:00+08:00");
    assert_eq!(instant(&case.next_contact_due_time), Some(next));
    let fx = sweep(&mut case, "2026-10-21T08:00:00+08:00", &rules);
    assert!(actions(&fx).contains(&"contact.due"), "{:?}", actions(&fx));
}

#[test]
fn a_contact_recorded_in_time_raises_no_reminder_and_an_agreed_next_contact_comes_sooner() {
    let rules = rules();
    let mut case = opened("2026-09-29T10:00:00+08:00", &rules);
    assign(&mut case, "2026-09-29T11:00:00+08:00", &rules);
    run(&mut case, "2026-10-12T16:00:00+08:00", contact(None, None), &rules);
    let fx = sweep(&mut case, "2026-10-13T08:00:00+08:00", &rules);
    assert!(!actions(&fx).contains(&"contact.due"), "{:?}", actions(&fx));

    // Agreed with the complainant to call back on Wed Oct 14 at 10:00, sooner than 5 working days.
    let agreed = "2026-10-14T10:00:00+08:00";
    run(&mut case, "2026-10-13T09:00:00+08:00", contact(None, Some(agreed)), &rules);
    assert_eq!(instant(&case.next_contact_due_time), Some(at(agreed)));
    let fx = sweep(&mut case, "2026-10-14T10:00:00+08:00", &rules);
    let reminded: ComplainantContactDue = event(&fx, ".ComplainantContactDue").expect("a reminder");
    assert_eq!(instant(&reminded.due_time), Some(at(agreed)));
    assert_eq!(instant(&reminded.last_contact_time), Some(at("2026-10-13T09:00:00+08:00")));
}

#[test]
fn the_first_response_is_a_contact() {
    let rules = rules();
    let mut case = opened("2026-09-29T10:00:00+08:00", &rules);
    let respond = Command::FirstResponse { note: "回电说明受理情况".to_owned(), channel: Channel::Phone };
    run(&mut case, "2026-09-30T09:00:00+08:00", respond, &rules);
    assert_eq!(case.contacts.len(), 1);
    assert_eq!(case.contacts[0].direction, ContactDirection::Outbound as i32);
    assert_eq!(case.contacts[0].summary, "回电说明受理情况");
    assert_eq!(case.last_contact_time, case.first_response_time);
    // From Sep 30: Oct 8, 9, 10, 12, 13.
    assert_eq!(instant(&case.next_contact_due_time), Some(at("2026-10-14T00:00:00+08:00")));
}

#[test]
fn a_decided_case_owes_contact_only_while_its_decision_is_carried_out() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, "2026-11-02T11:00:00+08:00", &rules);
    decide(&mut case, "2026-11-03T10:00:00+08:00", &rules);
    assert_eq!(case.next_contact_due_time, None, "decided, nothing left to carry out");
    run(&mut case, "2026-11-03T11:00:00+08:00", step("refund the annual fee", "2026-11-20T18:00:00+08:00"), &rules);
    // Five working days from the decision notice, the last word to the complainant: Nov 4, 5,
    // 6, 9, 10.
    assert_eq!(instant(&case.next_contact_due_time), Some(at("2026-11-11T00:00:00+08:00")));
    let fx = sweep(&mut case, "2026-11-11T09:00:00+08:00", &rules);
    assert!(actions(&fx).contains(&"contact.due"), "{:?}", actions(&fx));
}

#[test]
fn a_contact_owed_in_a_year_without_its_calendar_is_provisional() {
    let mut rules = rules();
    // The shipped calendars only: 2027 is counted on its provisional calendar.
    rules.clocks.institutions = Arc::new(Institutions::single(DeadlineCalculator::china(), SlaPolicy::default()));
    // Mon 2026-12-28: Dec 29, 30, 31, then Mon Jan 4 and Tue Jan 5 (Jan 1 a holiday).
    let mut case = opened("2026-12-28T10:00:00+08:00", &rules);
    assert_eq!(instant(&case.next_contact_due_time), Some(at("2027-01-06T00:00:00+08:00")));
    assert!(case.next_contact_due_provisional);
    for kind in [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::RegulatoryDecision] {
        clock::meet(&mut case, kind, at("2026-12-28T11:00:00+08:00"));
    }
    assert!(!clock::has_provisional(&case));
    assert!(rules.has_provisional(&case), "found again when 2027's file is loaded");
}

#[test]
fn a_case_left_unassigned_reminds_its_channels_monitor_once() {
    let mut rules = rules();
    rules.progress = Progress {
        channel_monitors: [
            ("CHANNEL_PHONE".to_owned(), vec!["user:hotline-lead".to_owned()]),
            ("default".to_owned(), vec!["supervisor:{org_unit}".to_owned()]),
        ]
        .into(),
        ..Progress::default()
    };
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assert_eq!(rules.next_check(&case), Some(at("2026-11-02T11:00:00+08:00")));
    assert!(!actions(&sweep(&mut case, "2026-11-02T10:59:00+08:00", &rules)).contains(&"case.unassigned"));
    let fx = sweep(&mut case, "2026-11-02T11:00:00+08:00", &rules);
    let reminder: UnassignedCaseReminder = event(&fx, ".UnassignedCaseReminder").expect("a reminder");
    assert_eq!(
        (reminder.channel, reminder.recipients.as_slice()),
        (Channel::Phone as i32, ["user:hotline-lead".to_owned()].as_slice())
    );
    assert!(case.unassigned_reminder_time.is_some());
    assert!(!actions(&sweep(&mut case, "2026-11-02T12:00:00+08:00", &rules)).contains(&"case.unassigned"), "once");

    // Another channel goes to the default monitor, the unit's supervisor.
    let mut letter = opened("2026-11-02T10:00:00+08:00", &rules);
    letter.channel = Channel::Letter as i32;
    let fx = sweep(&mut letter, "2026-11-02T11:30:00+08:00", &rules);
    let reminder: UnassignedCaseReminder = event(&fx, ".UnassignedCaseReminder").unwrap();
    assert_eq!(reminder.recipients, ["supervisor:institutions/demo"]);

    // A case picked up in time raises none.
    let mut assigned = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut assigned, "2026-11-02T10:30:00+08:00", &rules);
    assert!(!actions(&sweep(&mut assigned, "2026-11-02T12:00:00+08:00", &rules)).contains(&"case.unassigned"));
}

#[test]
fn channel_monitors_name_channels_and_recipients() {
    assert_eq!(
        Progress::default().monitors(Channel::Sms as i32, "institutions/demo"),
        ["supervisor:institutions/demo"]
    );
    let good = [("CHANNEL_PHONE".to_owned(), vec!["user:hotline-lead".to_owned()])].into();
    assert_eq!(Progress::check_monitors(&good), Ok(()));
    for bad in [
        [("PHONE".to_owned(), vec!["user:a".to_owned()])],
        [("CHANNEL_PHONE".to_owned(), vec!["hotline-lead".to_owned()])],
        [("CHANNEL_PHONE".to_owned(), Vec::new())],
        [("CHANNEL_UNSPECIFIED".to_owned(), vec!["user:a".to_owned()])],
    ] {
        let bad: std::collections::BTreeMap<_, _> = bad.into();
        assert!(Progress::check_monitors(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_transfer_names_the_new_owner_and_tells_the_complainant_why() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, "2026-11-02T11:00:00+08:00", &rules);
    let transfer = |to_assignee: &str, staff_id: &str, reason: &str| Command::Transfer {
        to_department: if to_assignee.is_empty() { "card-centre" } else { "loans" }.to_owned(),
        reason: reason.to_owned(),
        to_assignee: to_assignee.to_owned(),
        to_assignee_staff_id: staff_id.to_owned(),
    };
    let t = "2026-11-03T10:00:00+08:00";
    // The complainant is never told the complaint is not this department's business.
    let deflecting = execute(&mut case, &staff(), t, transfer("", "", "这个问题不归我们部门管"), &rules);
    assert!(matches!(deflecting, Err(WorkflowError::DeflectingReason { .. })), "{deflecting:?}");
    let deflecting = execute(&mut case, &staff(), t, transfer("", "", "Not our department"), &rules);
    assert!(matches!(deflecting, Err(WorkflowError::DeflectingReason { .. })), "{deflecting:?}");
    // A handler the complaint is about cannot be named.
    let conflict = execute(&mut case, &staff(), t, transfer("u-042", "E-042", "贷款业务由信贷部专人处理"), &rules);
    assert!(matches!(conflict, Err(WorkflowError::ConflictOfInterest { .. })), "{conflict:?}");
    assert_eq!(case.department, "cards", "a refusal changes nothing");

    let fx = execute(
        &mut case,
        &staff(),
        t,
        transfer("u-loans", "e-300", "争议款项属于贷款还款，由信贷部专人核实更快"),
        &rules,
    )
    .unwrap();
    assert_eq!((case.state, case.assignee.as_str()), (CaseState::Assigned as i32, "u-loans"));
    assert_eq!((case.department.as_str(), case.assignee_staff_id.as_str()), ("loans", "e-300"));
    let recorded = case.transfers.last().unwrap();
    assert_eq!((recorded.to_assignee.as_str(), recorded.to_assignee_staff_id.as_str()), ("u-loans", "e-300"));
    assert_eq!(recorded.accept_time, recorded.transfer_time, "a named handler takes it over at once");
    assert_eq!(clock::clock(&case, ClockKind::Handoff).unwrap().status, ClockStatus::Met as i32);
    let transferred: CaseTransferred = event(&fx, ".CaseTransferred").expect("CaseTransferred");
    assert_eq!(transferred.transfer.unwrap().reason, "争议款项属于贷款还款，由信贷部专人核实更快");
    let notice = &transferred.complainant_notice;
    assert!(notice.contains("2026030200000001") && notice.contains("loans的专责处理人员"), "{notice}");
    assert!(notice.contains("转办原因：争议款项属于贷款还款，由信贷部专人核实更快。"), "{notice}");
    assert!(!notice.contains("u-loans") && !notice.contains("e-300"), "the handler is named by role: {notice}");

    // Without a named handler the receiving department assigns it.
    let to_centre = transfer("", "", "涉及信用卡分期，由信用卡中心处理");
    let fx = execute(&mut case, &staff(), "2026-11-04T10:00:00+08:00", to_centre, &rules).unwrap();
    assert_eq!((case.state, case.assignee.as_str()), (CaseState::Accepted as i32, ""));
    let notice: CaseTransferred = event(&fx, ".CaseTransferred").unwrap();
    assert!(!notice.complainant_notice.contains("专责处理人员"), "{}", notice.complainant_notice);
}

#[test]
fn a_decision_is_carried_out_in_steps_reminded_when_overdue_and_closed_only_after() {
    let rules = rules();
    let mut case = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut case, "2026-11-02T11:00:00+08:00", &rules);
    // Not before the decision.
    let early =
        execute(&mut case, &staff(), "2026-11-02T12:00:00+08:00", step("refund", "2026-11-20T18:00:00+08:00"), &rules);
    assert!(matches!(early, Err(WorkflowError::InvalidState { .. })), "{early:?}");
    decide(&mut case, "2026-11-03T10:00:00+08:00", &rules);
    let past =
        execute(&mut case, &staff(), "2026-11-03T11:00:00+08:00", step("refund", "2026-11-03T10:59:00+08:00"), &rules);
    assert!(matches!(past, Err(WorkflowError::DueInThePast)), "{past:?}");
    run(&mut case, "2026-11-03T11:00:00+08:00", step("refund the annual fee", "2026-11-05T18:00:00+08:00"), &rules);
    run(&mut case, "2026-11-03T11:00:00+08:00", step("fix the fee rule", "2026-11-30T18:00:00+08:00"), &rules);
    let first = &case.implementation_steps[0];
    assert_eq!(
        (first.step_id.as_str(), first.owner.as_str(), first.department.as_str()),
        ("s1", "u-ops", "operations")
    );
    assert_eq!((first.owner_staff_id.as_str(), first.created_by.as_str()), ("e-200", "u-handler"));
    assert_eq!(rules.next_check(&case), Some(at("2026-11-05T18:00:00+08:00")));

    let fx = sweep(&mut case, "2026-11-05T18:00:00+08:00", &rules);
    let overdue: ImplementationStepOverdue = event(&fx, ".ImplementationStepOverdue").expect("overdue");
    assert_eq!(overdue.step.unwrap().step_id, "s1");
    assert_eq!(overdue.recipients, ["user:u-ops", "department:operations"]);
    assert!(case.implementation_steps[0].overdue && !case.implementation_steps[1].overdue);
    assert!(!actions(&sweep(&mut case, "2026-11-06T09:00:00+08:00", &rules)).contains(&"implementation.step_overdue"));

    // Not closed while a step is open.
    run(
        &mut case,
        "2026-11-06T10:00:00+08:00",
        Command::Transition { target: CaseState::FollowUp, reason: "回访".to_owned() },
        &rules,
    );
    let close = Command::Transition { target: CaseState::Closed, reason: "done".to_owned() };
    let refused = execute(&mut case, &staff(), "2026-11-06T10:00:00+08:00", close.clone(), &rules);
    assert!(
        matches!(&refused, Err(WorkflowError::ImplementationOpen { steps }) if steps == &["s1", "s2"]),
        "{refused:?}"
    );
    for id in ["s1", "s2"] {
        let done = Command::CompleteImplementationStep { step_id: id.to_owned(), outcome: "done".to_owned() };
        run(&mut case, "2026-11-07T10:00:00+08:00", done, &rules);
    }
    let again = Command::CompleteImplementationStep { step_id: "s1".to_owned(), outcome: "again".to_owned() };
    let again = execute(&mut case, &staff(), "2026-11-07T10:00:00+08:00", again, &rules);
    assert!(matches!(again, Err(WorkflowError::StepCompleted)), "{again:?}");
    let unknown = Command::CompleteImplementationStep { step_id: "s9".to_owned(), outcome: "x".to_owned() };
    assert!(matches!(
        execute(&mut case, &staff(), "2026-11-07T10:00:00+08:00", unknown, &rules),
        Err(WorkflowError::NoSuchStep)
    ));
    run(&mut case, "2026-11-07T11:00:00+08:00", close, &rules);
    assert_eq!(case.state, CaseState::Closed as i32);
}

#[test]
fn a_duplicate_with_open_implementation_steps_is_not_merged_away() {
    let rules = rules();
    let mut duplicate = opened("2026-11-02T10:00:00+08:00", &rules);
    assign(&mut duplicate, "2026-11-02T11:00:00+08:00", &rules);
    decide(&mut duplicate, "2026-11-03T10:00:00+08:00", &rules);
    run(&mut duplicate, "2026-11-03T11:00:00+08:00", step("refund", "2026-11-20T18:00:00+08:00"), &rules);
    let mut survivor = opened("2026-11-02T09:00:00+08:00", &rules);
    survivor.name = "cases/0193f1a0-0000-7000-8000-0000000000c2".to_owned();
    let ctx = Context { principal: &staff(), now: at("2026-11-04T10:00:00+08:00"), rules: &rules };
    let merge = Command::Link { kind: LinkType::MergedInto, reason: "same complaint".to_owned() };
    let refused = workflow::execute(&mut duplicate, Some(&mut survivor), merge, &ctx);
    assert!(matches!(refused, Err(WorkflowError::ImplementationOpen { .. })), "{refused:?}");
}

#[test]
fn the_service_refuses_a_broken_progress_configuration() {
    let config = crate::CaseWorkflowConfig { audit: crate::AuditConfig::generate(), ..Default::default() };
    let progress = config.rules().unwrap().progress;
    assert_eq!(progress.no_contact, redress_calendar::Period::WorkingDays(5));
    assert_eq!(progress.unassigned_after, chrono::TimeDelta::minutes(60));
    let mut unknown = crate::CaseWorkflowConfig::default();
    unknown.workflow.channel_monitors.insert("PHONE".to_owned(), vec!["user:hotline-lead".to_owned()]);
    let err = unknown.rules().unwrap_err().to_string();
    assert!(err.contains("workflow.channel_monitors") && err.contains("PHONE"), "{err}");
    let mut never = crate::CaseWorkflowConfig::default();
    never.workflow.no_contact_working_days = 0;
    assert!(never.rules().unwrap_err().to_string().contains("no_contact_working_days"));
}

#[test]
fn the_service_refuses_to_start_without_an_audit_key() {
    let err = crate::CaseWorkflowConfig::default().rules().unwrap_err().to_string();
    assert!(err.contains("audit.active_key_id and audit.keys are required"), "{err}");
    let mut short = crate::CaseWorkflowConfig::default();
    short.audit.active_key_id = "k1".to_owned();
    short.audit.keys.insert("k1".to_owned(), redress_platform::config::Secret::new("c2hvcnQ="));
    let err = format!("{:#}", short.rules().unwrap_err());
    assert!(err.contains("at least 32"), "{err}");
    let mut missing = crate::CaseWorkflowConfig { audit: crate::AuditConfig::generate(), ..Default::default() };
    missing.audit.active_key_id = "k2".to_owned();
    assert!(format!("{:#}", missing.rules().unwrap_err()).contains("k2 is not among"));
}
