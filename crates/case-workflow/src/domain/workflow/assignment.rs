//! Who handles a case: assignment (the first assignee stays first-contact owner, 首问负责),
//! transfer to another department (转办) with its handoff clock, told to the complainant, and
//! the first response, logged as a contact.
//! Assigning forwards a regulator referral (meets its forwarding clock) and, under review,
//! names the reviewer. A complained member of staff is never assigned (回避, [`conflict`]), and
//! a new assignee asks again for a pending manual confirmation.

use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, ClockKind, ContactDirection, Transfer};
use redress_proto::redress::common::v1::Channel;

use super::{
    Announce, Change, Context, WorkflowError, conflict, details, progress, require_open, require_state, review,
    set_state, state_of,
};
use crate::domain::clock;

/// The states a case can be transferred in.
const STAFFABLE: [CaseState; 4] =
    [CaseState::Accepted, CaseState::Assigned, CaseState::Investigating, CaseState::Reopened];
/// The states a case can be assigned in: those, and under review (to its reviewer). A review
/// is never transferred: it stays with the unit handling it.
const ASSIGNABLE: [CaseState; 5] =
    [CaseState::Accepted, CaseState::Assigned, CaseState::Investigating, CaseState::Reopened, CaseState::UnderReview];

pub(super) fn assign(
    case: &mut Case,
    assignee: String,
    department: String,
    assignee_staff_id: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_state(case, "assigning", &ASSIGNABLE)?;
    conflict::ensure_not_complained(case, &assignee_staff_id, "assignee_staff_id", "assignee")?;
    let mut d = details([
        ("assignee", assignee.clone()),
        ("assignee_staff_id", assignee_staff_id.clone()),
        ("department", department.clone()),
    ]);
    if state_of(case) == CaseState::UnderReview {
        review::assign_reviewer(case, &assignee, &department, ctx)?;
        d.insert("review".to_owned(), "reviewer".to_owned());
    }
    // A regulator referral is forwarded once it reaches a handling department (D-SLA-11).
    clock::meet(case, ClockKind::ReferralForwarding, ctx.now);
    if let Some(handoff) = pending_handoff(case) {
        // Only the receiving department takes a transferred case, which meets its handoff clock:
        // the caller works there (the department the identity provider states for them, never
        // one a request names) and keeps the case there.
        if ctx.principal.department != handoff.to_department || handoff.to_department != department {
            return Err(WorkflowError::HandoffPending { to_department: handoff.to_department.clone() });
        }
        handoff.accept_time = Some(to_timestamp(ctx.now));
        clock::meet(case, ClockKind::Handoff, ctx.now);
        d.insert("handoff".to_owned(), "accepted".to_owned());
    }
    case.assignee = assignee.clone();
    case.assignee_staff_id = assignee_staff_id;
    case.department = department;
    conflict::reassigned(case);
    if case.first_contact_owner.is_empty() {
        case.first_contact_owner = assignee;
    }
    if matches!(state_of(case), CaseState::Accepted | CaseState::Reopened) {
        set_state(case, CaseState::Assigned);
    }
    Ok(Change::new("case.assigned", d))
}

/// Where a transfer sends the case: a department and, optionally, the handler there who owns
/// it from now on.
#[derive(Debug, Clone)]
pub(super) struct TransferTo {
    pub department: String,
    /// Empty: the receiving department assigns it.
    pub assignee: String,
    pub assignee_staff_id: String,
}

/// Transfers the case (转办) with a reason the complainant is told (CaseTransferred). Without a
/// named handler the case waits, accepted, for the receiving department to assign it within
/// the handoff clock; with one, that handler owns it at once and the handoff is complete.
pub(super) fn transfer(
    case: &mut Case,
    to: TransferTo,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_state(case, "transferring", &STAFFABLE)?;
    let TransferTo { department: to_department, assignee: to_assignee, assignee_staff_id: to_assignee_staff_id } = to;
    if case.department == to_department {
        return Err(WorkflowError::AlreadyInDepartment);
    }
    progress::ensure_reason_for_complainant(&reason)?;
    let named = !to_assignee.is_empty();
    if named {
        conflict::ensure_not_complained(case, &to_assignee_staff_id, "to_assignee_staff_id", "assignee")?;
    }
    let now = Some(to_timestamp(ctx.now));
    let clocks = &ctx.rules.clocks;
    let handoff_due = clocks.calculator(case).due(ctx.now, clocks.handoff).ok();
    case.transfers.push(Transfer {
        from_department: case.department.clone(),
        to_department: to_department.clone(),
        reason: reason.clone(),
        transferred_by: ctx.actor(),
        transfer_time: now,
        handoff_due_time: handoff_due.map(to_timestamp),
        accept_time: if named { now } else { None },
        to_assignee: to_assignee.clone(),
        to_assignee_staff_id: to_assignee_staff_id.clone(),
    });
    let from = std::mem::replace(&mut case.department, to_department.clone());
    case.assignee.clone_from(&to_assignee);
    case.assignee_staff_id.clone_from(&to_assignee_staff_id);
    conflict::reassigned(case);
    clocks.start(case, ClockKind::Handoff, clocks.handoff, ctx.now);
    let mut d = details([("from_department", from), ("to_department", to_department), ("reason", reason)]);
    if named {
        // The named handler took it over as it was handed: the handoff is done, and a
        // regulator referral has reached a handling department (D-SLA-11).
        clock::meet(case, ClockKind::Handoff, ctx.now);
        clock::meet(case, ClockKind::ReferralForwarding, ctx.now);
        if case.first_contact_owner.is_empty() {
            case.first_contact_owner.clone_from(&to_assignee);
        }
        set_state(case, CaseState::Assigned);
        d.insert("to_assignee".to_owned(), to_assignee);
        d.insert("to_assignee_staff_id".to_owned(), to_assignee_staff_id);
    } else {
        set_state(case, CaseState::Accepted);
    }
    Ok(Change::new("case.transferred", d).announcing(Announce::Transferred))
}

/// Records the first response, which is a contact with the complainant too (D-CASE-8).
pub(super) fn first_response(
    case: &mut Case,
    note: String,
    channel: Channel,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "recording the first response")?;
    if case.first_response_time.is_some() {
        return Err(WorkflowError::FirstResponseRecorded);
    }
    case.first_response_time = Some(to_timestamp(ctx.now));
    clock::meet(case, ClockKind::FirstResponse, ctx.now);
    let contact_id = progress::log(case, channel, ContactDirection::Outbound, ctx.now, note.clone(), None, ctx);
    Ok(Change::new("case.first_response", details([("note", note), ("contact_id", contact_id)])))
}

/// The transfer still waiting for the receiving department to assign the case.
fn pending_handoff(case: &mut Case) -> Option<&mut Transfer> {
    case.transfers.last_mut().filter(|t| t.accept_time.is_none())
}
