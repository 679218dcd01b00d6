//! Progress to the complainant (D-CASE-8) and nothing left unattended (D-INT-5) on both
//! stores: the reminders of the contact owed, of implementation steps and of cases left
//! unassigned are found through the sweeper's index and raised once, however often it sweeps;
//! a case with an open step is not closed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_platform::ApiError;
use redress_platform::testing::committed_events;
use redress_proto::redress::case::v1::{
    Case, CaseState, ComplainantContactDue, ContactDirection, ImplementationStepOverdue, ResolutionType,
    UnassignedCaseReminder,
};
use redress_proto::redress::common::v1::Channel;

use super::{accepted_at, change, id_of, open, text, to};
use crate::domain::tests::handler;
use crate::domain::workflow::{Command, NewContact, NewStep};
use crate::store::CaseStore;

redress_platform::conformance_suite!(
    open = open;
    the_contact_owed_and_an_unassigned_case_are_reminded_once_through_the_index,
    an_implementation_step_is_reminded_once_and_holds_the_case_open,
);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The cases of complaints 1..=n received (and opened) at `when`, in complaint order.
async fn open_cases(store: &Arc<dyn CaseStore>, n: u32, when: DateTime<Utc>) -> Vec<Case> {
    store.rules().clock().set(when);
    store.apply((1..=n).map(|i| accepted_at(i64::from(i), i, when)).collect()).await.unwrap();
    let mut cases = store.list(&crate::store::CaseQuery { limit: 100, ..Default::default() }).await.unwrap();
    cases.sort_by(|a, b| a.case.complaint.cmp(&b.case.complaint));
    cases.into_iter().map(|c| c.case).collect()
}

/// Runs `command` on `case` as the handler at `when`.
async fn act(store: &Arc<dyn CaseStore>, case: &Case, when: &str, command: Command) -> Case {
    store.rules().clock().set(at(when));
    change(store, case, &handler(), command.clone()).await.unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn assign() -> Command {
    Command::Assign { assignee: text("u-handler"), department: text("cards"), assignee_staff_id: text("E1001") }
}

/// One pass of the sweeper at `when`.
async fn sweep(store: &Arc<dyn CaseStore>, when: &str) {
    store.sweep(at(when), 500).await.unwrap();
}

/// The payloads of the feed's events of `type_name` (e.g. "ComplainantContactDue").
async fn announced<M: prost::Message + prost::Name + Default>(store: &Arc<dyn CaseStore>) -> Vec<M> {
    let events = committed_events(store.feed(), 0, 10_000).await.unwrap();
    events
        .iter()
        .filter(|e| e.event_type == M::full_name())
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect()
}

async fn the_contact_owed_and_an_unassigned_case_are_reminded_once_through_the_index(store: Arc<dyn CaseStore>) {
    // Mon 2026-03-02 10:00 in Shanghai: five working days are Mar 3, 4, 5, 6 and 9.
    let cases = open_cases(&store, 3, at("2026-03-02T10:00:00+08:00")).await;
    let (silent, contacted, unassigned) = (&cases[0], &cases[1], &cases[2]);
    let silent = act(&store, silent, "2026-03-02T10:10:00+08:00", assign()).await;
    let contacted = act(&store, contacted, "2026-03-02T10:10:00+08:00", assign()).await;
    let call = Command::RecordContact(NewContact {
        channel: Channel::Phone,
        direction: ContactDirection::Outbound,
        contact_time: None,
        summary: text("说明调查进展"),
        next_contact_due: None,
    });
    let contacted = act(&store, &contacted, "2026-03-04T10:00:00+08:00", call).await;
    // Mar 5, 6, 9, 10, 11.
    assert_eq!(
        contacted.next_contact_due_time,
        Some(redress_platform::time::to_timestamp(at("2026-03-12T00:00:00+08:00")))
    );

    // An hour after opening only the case nobody took is reported, to the default monitor.
    sweep(&store, "2026-03-02T11:00:00+08:00").await;
    sweep(&store, "2026-03-02T11:30:00+08:00").await;
    let reported: Vec<UnassignedCaseReminder> = announced(&store).await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].case.as_ref().unwrap().name, unassigned.name);
    assert_eq!(reported[0].recipients, ["supervisor:institutions/demo"]);

    sweep(&store, "2026-03-09T23:59:00+08:00").await;
    assert!(announced::<ComplainantContactDue>(&store).await.is_empty(), "not before five working days");
    for when in ["2026-03-10T00:00:00+08:00", "2026-03-10T09:00:00+08:00", "2026-03-11T09:00:00+08:00"] {
        sweep(&store, when).await;
    }
    let due: Vec<ComplainantContactDue> = announced(&store).await;
    let mut reminded: Vec<(String, Vec<String>)> =
        due.iter().map(|d| (d.case.as_ref().unwrap().name.clone(), d.recipients.clone())).collect();
    reminded.sort();
    let mut expected = vec![
        (silent.name.clone(), vec![text("user:u-handler")]),
        (unassigned.name.clone(), vec![text("org_unit:institutions/demo")]),
    ];
    expected.sort();
    assert_eq!(reminded, expected, "once each; none for the case contacted in time");
    let stored = store.get(&id_of(&silent)).await.unwrap().unwrap();
    assert_eq!(
        stored.contact_reminded_due_time,
        Some(redress_platform::time::to_timestamp(at("2026-03-10T00:00:00+08:00")))
    );
    // Its reminder comes when its own five working days have passed.
    sweep(&store, "2026-03-12T00:00:00+08:00").await;
    let due: Vec<ComplainantContactDue> = announced(&store).await;
    assert_eq!(due.iter().filter(|d| d.case.as_ref().unwrap().name == contacted.name).count(), 1);
    assert_eq!(due.len(), 3);
}

async fn an_implementation_step_is_reminded_once_and_holds_the_case_open(store: Arc<dyn CaseStore>) {
    let case = open_cases(&store, 1, at("2026-03-02T10:00:00+08:00")).await.remove(0);
    let mut case = act(&store, &case, "2026-03-02T10:10:00+08:00", assign()).await;
    for command in [
        to(CaseState::Investigating),
        Command::Propose { kind: ResolutionType::ApologyCompensation, compensation: None, grounds: text("fee") },
        Command::Decide { notice: text("we refund the fee") },
    ] {
        case = act(&store, &case, "2026-03-03T10:00:00+08:00", command).await;
    }
    let step = Command::AddImplementationStep(NewStep {
        description: text("refund the annual fee"),
        owner: text("u-ops"),
        owner_staff_id: text("E2002"),
        department: text("operations"),
        due: at("2026-03-31T18:00:00+08:00"),
    });
    let case = act(&store, &case, "2026-03-03T11:00:00+08:00", step).await;
    let case = act(&store, &case, "2026-03-04T10:00:00+08:00", to(CaseState::FollowUp)).await;
    // Every clock is met: what wakes the sweeper is the contact owed while the refund is
    // carried out (five working days from the decision: Mar 4, 5, 6, 9, 10).
    sweep(&store, "2026-03-10T23:00:00+08:00").await;
    assert!(announced::<ComplainantContactDue>(&store).await.is_empty());
    sweep(&store, "2026-03-11T01:00:00+08:00").await;
    let due: Vec<ComplainantContactDue> = announced(&store).await;
    assert_eq!(due.len(), 1, "found through the index");

    let err = change(&store, &case, &handler(), to(CaseState::Closed)).await.unwrap_err();
    assert_eq!((err.kind().code(), err.reason()), (tonic::Code::FailedPrecondition, "IMPLEMENTATION_OPEN"));
    assert_eq!(err.metadata()["open_steps"], "s1");
    let stored = store.get(&id_of(&case)).await.unwrap().unwrap();
    assert_eq!(stored.state, CaseState::FollowUp as i32, "a refusal writes nothing");

    for when in ["2026-03-31T18:00:00+08:00", "2026-04-01T09:00:00+08:00"] {
        sweep(&store, when).await;
    }
    let overdue: Vec<ImplementationStepOverdue> = announced(&store).await;
    assert_eq!(overdue.len(), 1, "once");
    assert_eq!(overdue[0].recipients, ["user:u-ops", "department:operations"]);
    let stored = store.get(&id_of(&case)).await.unwrap().unwrap();
    assert!(stored.implementation_steps[0].overdue);

    let done = Command::CompleteImplementationStep { step_id: text("s1"), outcome: text("refunded") };
    let case = act(&store, &stored, "2026-04-01T10:00:00+08:00", done).await;
    let closed = act(&store, &case, "2026-04-01T11:00:00+08:00", to(CaseState::Closed)).await;
    assert_eq!(closed.state, CaseState::Closed as i32);
    let trail = store.audit_trail(&id_of(&closed)).await.unwrap().unwrap();
    let actions: Vec<&str> = trail.entries.iter().map(|e| e.action.as_str()).collect();
    for action in
        ["implementation.step_added", "contact.due", "implementation.step_overdue", "implementation.step_completed"]
    {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}
