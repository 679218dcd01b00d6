//! The people around a case, checked at fixed instants: who owns it from the first contact
//! (D-INT-5), who may not act on it (回避, D-CASE-6), which sensitive complaints are routed
//! where (D-CASE-9) and when a major grade escalates (D-SLA-7).
#![allow(clippy::unwrap_used)]

use redress_platform::principal::{Permission, Principal};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseClassification, CaseRiskSignal, CaseState, ClockKind, ClockStatus, CoordinationTaskKind,
    EscalationRequired, LinkType, ProblemScope, ResolutionType, RoutingAction, SensitiveComplaintRouted,
};
use redress_proto::redress::common::v1::{Channel, Grade};

use super::clock;
use super::routing::RoutingRules;
use super::tests::{assign, at, handler, opened, person, reason, rules, run, supervisor};
use super::workflow::{self, Command, Context, Effects, FirstContact, OpeningFacts, Rules, WorkflowError, conflict};

const RECEIVED: &str = "2026-11-02T10:00:00+08:00";
const LATER: &str = "2026-11-02T11:00:00+08:00";

/// A case as intake's ComplaintAccepted describes it, not yet opened: complaint about staff
/// `e-042`.
fn accepted(grade: Grade, classification: Option<CaseClassification>, signals: Vec<CaseRiskSignal>) -> Case {
    Case {
        name: "cases/0193f1a0-0000-7000-8000-0000000000aa".to_owned(),
        case_number: "2026110200000001".to_owned(),
        complaint: "complaints/0193f1a0-0000-7000-8000-0000000000bb".to_owned(),
        state: CaseState::Accepted as i32,
        org_unit: "institutions/demo/branches/sh".to_owned(),
        grade: grade as i32,
        receive_time: Some(to_timestamp(at(RECEIVED))),
        complained_staff_ids: vec!["e-042".to_owned()],
        classification,
        risk_signals: signals,
        ..Case::default()
    }
}

fn open(case: &mut Case, facts: OpeningFacts, rules: &Rules) -> Effects {
    workflow::open(case, facts, rules, at(RECEIVED))
}

fn contact(staff_id: &str, subject: &str, department: &str) -> Option<FirstContact> {
    Some(FirstContact { subject: subject.to_owned(), staff_id: staff_id.to_owned(), department: department.to_owned() })
}

fn banking(business_type: &str, cause: &str, rights: &[&str]) -> Option<CaseClassification> {
    Some(CaseClassification {
        taxonomy: "banking@2026.1".to_owned(),
        business_type: business_type.to_owned(),
        cause: cause.to_owned(),
        rights: rights.iter().map(|r| (*r).to_owned()).collect(),
    })
}

fn actions(fx: &Effects) -> Vec<&str> {
    fx.audit.iter().map(|(a, _)| a.as_str()).collect()
}

fn events_of<M: prost::Message + Default>(fx: &Effects, suffix: &str) -> Vec<M> {
    fx.events
        .iter()
        .filter(|e| e.event_type.ends_with(suffix))
        .map(|e| M::decode(e.payload.as_slice()).unwrap())
        .collect()
}

/// A member of staff with employee id `staff_id`, who may change and approve cases.
fn staff(subject: &str, staff_id: &str) -> Principal {
    let mut p =
        person(subject, &["supervisor"], &[Permission::CasesRead, Permission::CasesWrite, Permission::CasesApprove]);
    p.staff_id = staff_id.to_owned();
    p
}

fn execute(case: &mut Case, who: &Principal, command: Command, rules: &Rules) -> Result<Effects, WorkflowError> {
    workflow::execute(case, None, command, &Context { principal: who, now: at(LATER), rules })
}

fn assign_to(assignee: &str, staff_id: &str) -> Command {
    Command::Assign {
        assignee: assignee.to_owned(),
        department: "cards".to_owned(),
        assignee_staff_id: staff_id.to_owned(),
    }
}

fn investigate() -> Command {
    Command::Transition { target: CaseState::Investigating, reason: reason("调取流水") }
}

fn propose() -> Command {
    Command::Propose { kind: ResolutionType::Explanation, compensation: None, grounds: reason("按合同收取") }
}

fn conflict(err: Result<Effects, WorkflowError>, role: &str) {
    match err {
        Err(WorkflowError::ConflictOfInterest { staff_id, role: r }) => {
            assert_eq!((staff_id.to_lowercase().as_str(), r), ("e-042", role));
        }
        other => panic!("expected a conflict of interest as {role}, got {other:?}"),
    }
}

#[test]
fn a_complaint_taken_by_staff_opens_owned_by_them() {
    let rules = rules();
    let mut case = accepted(Grade::General, None, Vec::new());
    let fx = open(
        &mut case,
        OpeningFacts { first_contact: contact("E2001", "user:li", "counter"), ..Default::default() },
        &rules,
    );
    assert_eq!(case.state, CaseState::Assigned as i32);
    assert_eq!((case.assignee.as_str(), case.assignee_staff_id.as_str()), ("user:li", "E2001"));
    assert_eq!((case.department.as_str(), case.first_contact_owner.as_str()), ("counter", "user:li"));
    assert_eq!(actions(&fx), ["case.opened"]);
    assert_eq!(fx.audit[0].1["first_contact_owner"], "user:li");
    assert_eq!(fx.audit[0].1["state"], "CASE_STATE_ASSIGNED");
    assert!(fx.events[0].event_type.ends_with(".CaseOpened"));

    // Without a subject the owner is named by the employee id; without a department the case
    // is the person's and its department stays empty until someone names one.
    let mut case = accepted(Grade::General, None, Vec::new());
    open(&mut case, OpeningFacts { first_contact: contact(" E2002 ", "", ""), ..Default::default() }, &rules);
    assert_eq!((case.assignee.as_str(), case.assignee_staff_id.as_str()), ("staff:E2002", "E2002"));
    assert!(case.department.is_empty());
    // The owner stays until a recorded hand-over: here an assignment to the cards department.
    let mut owner = staff("staff:E2002", "E2002");
    owner.subject = "staff:E2002".to_owned();
    execute(&mut case, &owner, investigate(), &rules).unwrap();
    assert_eq!(case.assignee, "staff:E2002");
    let mut case2 = case.clone();
    execute(&mut case2, &supervisor(), assign_to("user:wang", "E2003"), &rules).unwrap();
    assert_eq!((case2.assignee.as_str(), case2.first_contact_owner.as_str()), ("user:wang", "staff:E2002"));
}

#[test]
fn a_first_contact_the_complaint_is_about_does_not_own_it() {
    let rules = rules();
    let mut case = accepted(Grade::General, None, Vec::new());
    let fx = open(
        &mut case,
        OpeningFacts { first_contact: contact("E-042", "user:zhang", "counter"), ..Default::default() },
        &rules,
    );
    assert_eq!(case.state, CaseState::Accepted as i32);
    assert!(case.assignee.is_empty() && case.assignee_staff_id.is_empty() && case.first_contact_owner.is_empty());
    assert_eq!(fx.audit[0].1["first_contact_refused"], "conflict_of_interest");
    assert_eq!(fx.audit[0].1["first_contact"], "user:zhang");
    // Without a first contact it opens unassigned as before.
    let mut case = accepted(Grade::General, None, Vec::new());
    open(&mut case, OpeningFacts::default(), &rules);
    assert_eq!(case.state, CaseState::Accepted as i32);
    assert!(case.assignee.is_empty());
}

#[test]
fn a_regulator_referral_owned_from_its_first_contact_is_forwarded_only_by_an_assignment() {
    let rules = rules();
    let mut case = accepted(Grade::General, None, Vec::new());
    case.channel = Channel::RegulatorReferral as i32;
    open(
        &mut case,
        OpeningFacts { first_contact: contact("E2001", "user:desk", "referral-desk"), ..Default::default() },
        &rules,
    );
    let forwarding = clock::clock(&case, ClockKind::ReferralForwarding).unwrap();
    assert_eq!(forwarding.status, ClockStatus::Running as i32, "the referral desk has not forwarded it yet");
    assert!(clock::clock(&case, ClockKind::Handoff).is_none());
    execute(&mut case, &supervisor(), assign_to("user:wang", "E2003"), &rules).unwrap();
    assert_eq!(clock::clock(&case, ClockKind::ReferralForwarding).unwrap().status, ClockStatus::Met as i32);
}

#[test]
fn complained_staff_are_never_assigned_and_an_unverifiable_assignee_is_refused() {
    let rules = rules();
    let mut case = opened(RECEIVED, &rules);
    // Compared by employee id, whatever the subject, ignoring case and spaces.
    conflict(execute(&mut case, &handler(), assign_to("user:anyone", " E-042 "), &rules), "assignee");
    let missing = execute(&mut case, &handler(), assign_to("user:anyone", ""), &rules);
    assert!(matches!(missing, Err(WorkflowError::StaffIdRequired { field: "assignee_staff_id" })), "{missing:?}");
    assert!(case.assignee.is_empty());
    execute(&mut case, &handler(), assign_to("user:li", "E2001"), &rules).unwrap();
    assert_eq!((case.assignee.as_str(), case.assignee_staff_id.as_str()), ("user:li", "E2001"));
    // A case that names nobody needs no staff id.
    let mut plain = opened(RECEIVED, &rules);
    plain.complained_staff_ids.clear();
    execute(&mut plain, &handler(), assign_to("user:li", ""), &rules).unwrap();
}

/// An assigned case under investigation.
fn investigating(rules: &Rules) -> Case {
    let mut case = opened(RECEIVED, rules);
    assign(&mut case, rules, LATER);
    run(&mut case, &handler(), LATER, investigate(), rules).unwrap();
    case
}

#[test]
fn complained_staff_neither_propose_approve_nor_decide_and_systems_decide_nothing_about_named_staff() {
    let rules = rules();
    let complained = staff("user:zhang", "e-042");
    let mut system = person("service:crm", &["integration"], &[Permission::CasesWrite, Permission::CasesApprove]);
    system.staff_id.clear();

    let mut case = investigating(&rules);
    conflict(execute(&mut case, &complained, propose(), &rules), "proposer");
    let refused = execute(&mut case, &system, propose(), &rules);
    assert!(matches!(refused, Err(WorkflowError::CallerStaffIdRequired { role: "proposer" })), "{refused:?}");
    execute(&mut case, &handler(), propose(), &rules).unwrap();
    conflict(execute(&mut case, &complained, Command::Decide { notice: reason("维持") }, &rules), "decider");
    let refused = execute(&mut case, &system, Command::Decide { notice: reason("维持") }, &rules);
    assert!(matches!(refused, Err(WorkflowError::CallerStaffIdRequired { role: "decider" })), "{refused:?}");
    execute(&mut case, &handler(), Command::Decide { notice: reason("维持") }, &rules).unwrap();
    assert_eq!(case.state, CaseState::Decided as i32);

    // Approval of compensation above the proposer's limit.
    let mut case = investigating(&rules);
    let compensation =
        Some(redress_proto::redress::case::v1::Money { currency_code: "CNY".to_owned(), amount_minor: 500_000 });
    let big =
        Command::Propose { kind: ResolutionType::ApologyCompensation, compensation, grounds: reason("重复扣费") };
    execute(&mut case, &handler(), big, &rules).unwrap();
    conflict(execute(&mut case, &complained, Command::Approve { note: String::new() }, &rules), "approver");
    execute(&mut case, &supervisor(), Command::Approve { note: reason("ok") }, &rules).unwrap();

    // Where the complaint names nobody, a system may decide for the institution.
    let mut plain = opened(RECEIVED, &rules);
    plain.complained_staff_ids.clear();
    assign(&mut plain, &rules, LATER);
    run(&mut plain, &handler(), LATER, investigate(), &rules).unwrap();
    execute(&mut plain, &system, propose(), &rules).unwrap();
    execute(&mut plain, &system, Command::Decide { notice: reason("维持") }, &rules).unwrap();
}

#[test]
fn complained_staff_neither_own_nor_complete_a_task() {
    let rules = rules();
    let mut case = investigating(&rules);
    let task = |owner_staff_id: &str| Command::AddTask {
        department: "risk".to_owned(),
        owner: "user:risk".to_owned(),
        owner_staff_id: owner_staff_id.to_owned(),
        description: reason("调取交易日志"),
        due: at("2026-11-04T10:00:00+08:00"),
    };
    conflict(execute(&mut case, &handler(), task("E-042"), &rules), "task owner");
    let missing = execute(&mut case, &handler(), task(""), &rules);
    assert!(matches!(missing, Err(WorkflowError::StaffIdRequired { field: "owner_staff_id" })), "{missing:?}");
    execute(&mut case, &handler(), task("E3001"), &rules).unwrap();
    let added = &case.coordination_tasks[0];
    assert_eq!((added.owner_staff_id.as_str(), added.kind), ("E3001", CoordinationTaskKind::Coordination as i32));
    let complete = Command::CompleteTask { task_id: "t1".to_owned(), outcome: reason("日志已附") };
    conflict(execute(&mut case, &staff("user:zhang", "E-042"), complete.clone(), &rules), "task completer");
    // A department's system completing the task has no staff id and may.
    let mut system = person("service:risk", &["integration"], &[Permission::CasesWrite]);
    system.staff_id.clear();
    execute(&mut case, &system, complete, &rules).unwrap();
}

#[test]
fn a_complaint_naming_staff_by_name_only_waits_for_a_confirmation_per_assignee() {
    let rules = rules();
    let mut case = accepted(Grade::General, None, Vec::new());
    case.complained_staff_ids.clear();
    let facts =
        OpeningFacts { first_contact: contact("E2001", "user:li", "counter"), complained_staff_named_only: true };
    let fx = open(&mut case, facts, &rules);
    assert_eq!(fx.audit[0].1["conflict_check"], "required");
    let check = case.conflict_check.clone().unwrap();
    assert!(check.required && check.confirm_time.is_none());
    assert_eq!((check.assignee.as_str(), check.assignee_staff_id.as_str()), ("user:li", "E2001"));

    let li = staff("user:li", "E2001");
    execute(&mut case, &li, investigate(), &rules).unwrap();
    let pending = execute(&mut case, &li, propose(), &rules);
    assert!(
        matches!(&pending, Err(WorkflowError::ConflictCheckPending { assignee }) if assignee == "user:li"),
        "{pending:?}"
    );
    // Not by the assignee, not without cases.approve.
    let confirm = Command::ConfirmNoConflict { note: reason("核对工号与姓名，非同一人") };
    let mut li_approver = li.clone();
    li_approver.permissions.push(Permission::CasesApprove.as_str().to_owned());
    assert!(matches!(execute(&mut case, &li_approver, confirm.clone(), &rules), Err(WorkflowError::SelfConfirmation)));
    assert!(matches!(
        execute(&mut case, &handler(), confirm.clone(), &rules),
        Err(WorkflowError::PermissionRequired(Permission::CasesApprove))
    ));
    let fx = execute(&mut case, &supervisor(), confirm.clone(), &rules).unwrap();
    assert_eq!(actions(&fx), ["conflict.confirmed"]);
    assert_eq!(case.conflict_check.as_ref().unwrap().confirmed_by, "u-supervisor");
    assert!(matches!(
        execute(&mut case, &supervisor(), confirm.clone(), &rules),
        Err(WorkflowError::ConflictCheckConfirmed { .. })
    ));
    execute(&mut case, &li, propose(), &rules).unwrap();

    // A new assignee asks again.
    let mut other = case.clone();
    other.state = CaseState::Investigating as i32;
    execute(&mut other, &supervisor(), assign_to("user:wang", "E2003"), &rules).unwrap();
    assert!(other.conflict_check.as_ref().unwrap().confirm_time.is_none());
    let pending = execute(&mut other, &staff("user:wang", "E2003"), propose(), &rules);
    assert!(matches!(pending, Err(WorkflowError::ConflictCheckPending { .. })), "{pending:?}");
    execute(&mut other, &supervisor(), confirm, &rules).unwrap();
    execute(&mut other, &staff("user:wang", "E2003"), propose(), &rules).unwrap();

    // Deciding waits too while pending.
    let mut waiting = case.clone();
    waiting.conflict_check.as_mut().unwrap().confirm_time = None;
    let pending = execute(&mut waiting, &li, Command::Decide { notice: reason("维持") }, &rules);
    assert!(matches!(pending, Err(WorkflowError::ConflictCheckPending { .. })), "{pending:?}");

    // A case that asks for nothing refuses a confirmation.
    let mut plain = investigating(&rules);
    let nothing = execute(&mut plain, &supervisor(), Command::ConfirmNoConflict { note: reason("x") }, &rules);
    assert!(matches!(nothing, Err(WorkflowError::ConflictCheckNotRequired)), "{nothing:?}");
}

#[test]
fn an_information_security_complaint_notifies_compliance_once() {
    let rules = rules();
    let mut case = accepted(Grade::General, banking("B08", "C10", &["R8"]), Vec::new());
    let fx = open(&mut case, OpeningFacts::default(), &rules);
    assert_eq!(actions(&fx), ["case.opened", "routing.applied"]);
    let routed: Vec<SensitiveComplaintRouted> = events_of(&fx, ".SensitiveComplaintRouted");
    assert_eq!(routed.len(), 1, "three matching conditions, one rule, one routing");
    assert_eq!(routed[0].rule_id, "information-security.compliance");
    assert_eq!(routed[0].action, RoutingAction::NotifyCompliance as i32);
    assert_eq!(routed[0].recipients, ["department:compliance"]);
    assert_eq!(case.routings.len(), 1);
    // Reclassified with the same kind of codes: the rule already fired.
    let again = Command::Reclassify {
        classification: banking("B01", "C10", &["R8"]).unwrap(),
        grade: Grade::General,
        reason: reason("r"),
    };
    let fx = execute(&mut case, &handler(), again, &rules).unwrap();
    assert_eq!(actions(&fx), ["case.reclassified"]);
    assert!(events_of::<SensitiveComplaintRouted>(&fx, ".SensitiveComplaintRouted").is_empty());
    assert_eq!(case.routings.len(), 1);
    // A general-enterprise personal-information complaint too.
    let general = Some(CaseClassification {
        taxonomy: "general@2026.1".to_owned(),
        business_type: "G05".to_owned(),
        cause: "K07".to_owned(),
        rights: vec![],
    });
    let mut case = accepted(Grade::General, general, Vec::new());
    let fx = open(&mut case, OpeningFacts::default(), &rules);
    assert_eq!(events_of::<SensitiveComplaintRouted>(&fx, ".SensitiveComplaintRouted").len(), 1);
}

#[test]
fn a_legal_risk_complaint_gets_one_legal_opinion_task_also_after_a_reclassification() {
    let rules = rules();
    let threat = CaseRiskSignal { kind: "ESCALATION_THREAT".to_owned(), evidence: vec!["律师".to_owned()] };
    let mut case = accepted(Grade::Important, banking("B02", "C05", &["R4"]), vec![threat]);
    let fx = open(&mut case, OpeningFacts::default(), &rules);
    assert_eq!(actions(&fx), ["case.opened", "routing.applied"]);
    let task = &case.coordination_tasks[0];
    assert_eq!(task.kind, CoordinationTaskKind::LegalOpinion as i32);
    assert_eq!((task.department.as_str(), task.owner.as_str()), ("legal", "queue:legal"));
    // Two working days from Mon Nov 2: the end of Wed Nov 4.
    assert_eq!(clock::instant(&task.due_time), Some(at("2026-11-05T00:00:00+08:00")));
    let routed: Vec<SensitiveComplaintRouted> = events_of(&fx, ".SensitiveComplaintRouted");
    assert_eq!((routed[0].task_id.as_str(), routed[0].recipients.clone()), ("t1", vec!["department:legal".to_owned()]));
    // The case as opened already carries the task.
    let opened: redress_proto::redress::case::v1::CaseOpened =
        prost::Message::decode(fx.events[0].payload.as_slice()).unwrap();
    assert_eq!(opened.case.unwrap().coordination_tasks.len(), 1);
    // Reclassified to contract terms, which would fire the same rule: nothing more.
    let terms = Command::Reclassify {
        classification: banking("B02", "C06", &["R4"]).unwrap(),
        grade: Grade::Unspecified,
        reason: reason("r"),
    };
    execute(&mut case, &handler(), terms, &rules).unwrap();
    assert_eq!(case.coordination_tasks.len(), 1);

    // A threat to the regulator alone is no legal risk; a reclassification to contract terms is.
    let regulator = CaseRiskSignal { kind: "ESCALATION_THREAT".to_owned(), evidence: vec!["12378".to_owned()] };
    let mut case = accepted(Grade::Important, banking("B02", "C05", &["R4"]), vec![regulator]);
    let fx = open(&mut case, OpeningFacts::default(), &rules);
    assert_eq!(actions(&fx), ["case.opened"]);
    let terms = Command::Reclassify {
        classification: banking("B02", "C06", &["R4"]).unwrap(),
        grade: Grade::Unspecified,
        reason: reason("r"),
    };
    let fx = execute(&mut case, &handler(), terms.clone(), &rules).unwrap();
    assert_eq!(actions(&fx), ["case.reclassified", "routing.applied"]);
    assert_eq!(case.coordination_tasks.len(), 1);
    // The same reclassification again changes nothing.
    assert!(matches!(execute(&mut case, &handler(), terms, &rules), Err(WorkflowError::Unchanged)));
}

#[test]
fn a_major_case_escalates_once_in_the_change_that_makes_it_major() {
    let rules = rules();
    let mut case = accepted(Grade::Major, None, Vec::new());
    let fx = open(&mut case, OpeningFacts::default(), &rules);
    assert_eq!(actions(&fx), ["case.opened", "escalation.required"]);
    let raised: Vec<EscalationRequired> = events_of(&fx, ".EscalationRequired");
    assert_eq!(raised[0].grade, Grade::Major as i32);
    assert_eq!(raised[0].case.as_ref().unwrap().grade, Grade::Major as i32);
    assert_eq!(raised[0].recipients, ["role:senior_manager", "senior_management:institutions/demo"]);
    assert_eq!(case.escalation_required_time, Some(to_timestamp(at(RECEIVED))));

    // Made major by a grade change, then down and up again: one escalation.
    let mut case = opened(RECEIVED, &rules);
    let major = Command::ChangeGrade { grade: Grade::Major, reason: reason("扬言轻生") };
    let fx = execute(&mut case, &handler(), major.clone(), &rules).unwrap();
    assert_eq!(actions(&fx), ["case.grade_changed", "escalation.required"]);
    let raised: Vec<EscalationRequired> = events_of(&fx, ".EscalationRequired");
    assert!(raised[0].reason.contains("扬言轻生"), "{}", raised[0].reason);
    let down = Command::ChangeGrade { grade: Grade::Urgent, reason: reason("情绪平复") };
    execute(&mut case, &handler(), down, &rules).unwrap();
    let fx = execute(&mut case, &handler(), major, &rules).unwrap();
    assert_eq!(actions(&fx), ["case.grade_changed"]);
    // And by a reclassification at intake.
    let mut case = opened(RECEIVED, &rules);
    let reclassified =
        Command::Reclassify { classification: CaseClassification::default(), grade: Grade::Major, reason: reason("r") };
    let fx = execute(&mut case, &handler(), reclassified, &rules).unwrap();
    assert_eq!(actions(&fx), ["case.grade_changed", "escalation.required"]);
}

#[test]
fn the_problem_scope_is_recorded_with_its_reason() {
    let rules = rules();
    let mut case = opened(RECEIVED, &rules);
    let set =
        Command::SetProblemScope { scope: ProblemScope::Systemic, reason: reason("同一批次卡片芯片故障") };
    let fx = execute(&mut case, &handler(), set, &rules).unwrap();
    assert_eq!(actions(&fx), ["case.scope_set"]);
    assert_eq!(fx.audit[0].1["scope"], "PROBLEM_SCOPE_SYSTEMIC");
    assert_eq!(
        (case.problem_scope, case.problem_scope_reason.as_str()),
        (ProblemScope::Systemic as i32, "同一批次卡片芯片故障")
    );
}

#[test]
fn routing_rules_are_checked_when_loaded() {
    let shipped = RoutingRules::parse("data/routing.toml", super::routing::SHIPPED).unwrap();
    assert_eq!(shipped, RoutingRules::shipped());
    assert!(shipped.rules.len() >= 2);
    for (text, says) in [
        (
            "version = \"1\"\n[[rules]]\nid = \"a\"\naction = \"notify_compliance\"\nwhen = [{ taxonomy = \"banking\" }]",
            "notifies nobody",
        ),
        (
            "version = \"1\"\n[[rules]]\nid = \"a\"\naction = \"legal_opinion_task\"\ndepartment = \"legal\"\nwhen = [{ signal = \"X\" }]",
            "due_working_days",
        ),
        (
            "version = \"1\"\n[[rules]]\nid = \"a\"\naction = \"notify_compliance\"\nrecipients = [\"x\"]\nwhen = [{ causes = [\"C10\"] }]",
            "taxonomy",
        ),
        (
            "version = \"1\"\n[[rules]]\nid = \"a\"\naction = \"notify_compliance\"\nrecipients = [\"x\"]\nwhen = [{}]",
            "states nothing",
        ),
        ("version = \"1\"\n[[rules]]\nid = \"a\"\naction = \"shout\"\nwhen = []", "shout"),
    ] {
        let err = RoutingRules::parse("mine.toml", text).unwrap_err().to_string();
        assert!(err.starts_with("mine.toml: ") && err.contains(says), "{err}");
    }
}

/// Merging a duplicate into a survivor carries 回避 with it: the survivor's handler may not be
/// someone the duplicate is about, and a name-only complaint asks the survivor to confirm.
#[test]
fn merging_carries_the_conflict_of_interest_to_the_survivor() {
    let rules = rules();
    let t = "2026-11-02T12:00:00+08:00";
    let merge = || Command::Link { kind: LinkType::MergedInto, reason: reason("same complaint twice") };
    let ctx = Context { principal: &handler(), now: at(t), rules: &rules };

    // The survivor is handled by E1001, whom the duplicate names: the merge is refused.
    let mut duplicate = opened("2026-11-02T10:00:00+08:00", &rules);
    duplicate.complained_staff_ids = vec!["e1001".to_owned()];
    let mut survivor = opened("2026-11-02T09:00:00+08:00", &rules);
    survivor.name = "cases/0193f1a0-0000-7000-8000-000000000002".to_owned();
    survivor.complained_staff_ids.clear();
    assign(&mut survivor, &rules, "2026-11-02T11:00:00+08:00");
    let err = workflow::execute(&mut duplicate.clone(), Some(&mut survivor.clone()), merge(), &ctx).unwrap_err();
    assert!(matches!(&err, WorkflowError::ConflictOfInterest { role: "assignee", .. }), "{err}");

    // A duplicate naming staff by name only: the survivor waits for a confirmation.
    let mut named_only = opened("2026-11-02T10:00:00+08:00", &rules);
    named_only.complained_staff_ids.clear();
    conflict::require_check(&mut named_only, conflict::NAMED_ONLY_REASON);
    assert!(survivor.conflict_check.is_none());
    workflow::execute(&mut named_only, Some(&mut survivor), merge(), &ctx).unwrap();
    let check = survivor.conflict_check.clone().unwrap();
    assert!(check.required && check.confirm_time.is_none());
    assert_eq!(check.assignee, survivor.assignee);
    assert!(conflict::ensure_confirmed(&survivor).is_err());
}

/// A transferred case is taken by its receiving department: the department the caller's
/// principal states (from the identity provider), not the one the request names.
#[test]
fn only_the_receiving_department_by_its_principal_takes_a_transferred_case() {
    let rules = rules();
    let mut case = opened(RECEIVED, &rules);
    assign(&mut case, &rules, LATER);
    let transfer = Command::Transfer {
        to_department: "loans".to_owned(),
        reason: reason("a loan fee, not a card fee"),
        to_assignee: String::new(),
        to_assignee_staff_id: String::new(),
    };
    run(&mut case, &handler(), LATER, transfer, &rules).unwrap();
    let take = |department: &str| Command::Assign {
        assignee: "u-loans".to_owned(),
        department: department.to_owned(),
        assignee_staff_id: "E2001".to_owned(),
    };
    // A handler of cards naming loans in the request: refused, the case still waits.
    assert_eq!(handler().department, "cards");
    let err = run(&mut case, &handler(), LATER, take("loans"), &rules).unwrap_err();
    assert!(matches!(err, WorkflowError::HandoffPending { ref to_department } if to_department == "loans"), "{err:?}");
    assert!(case.assignee.is_empty());
    // Nor does a principal without a department take it.
    let nowhere = Principal { department: String::new(), ..handler() };
    assert!(run(&mut case, &nowhere, LATER, take("loans"), &rules).is_err());
    // Someone of loans does, for loans only.
    let loans = Principal { department: "loans".to_owned(), subject: "u-loans-head".to_owned(), ..supervisor() };
    assert!(run(&mut case, &loans, LATER, take("cards"), &rules).is_err());
    run(&mut case, &loans, LATER, take("loans"), &rules).unwrap();
    assert_eq!((case.department.as_str(), case.assignee.as_str()), ("loans", "u-loans"));
    assert_eq!(clock::clock(&case, ClockKind::Handoff).unwrap().status, ClockStatus::Met as i32);
}
