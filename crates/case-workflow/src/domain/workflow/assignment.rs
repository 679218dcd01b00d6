//! Who handles a case: assignment (the first assignee stays first-contact owner, 首问负责),
//! transfer to another department (转办) with its handoff clock, and the first response.
//! Assigning forwards a regulator referral (meets its forwarding clock) and, under review,
//! names the reviewer.

use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, ClockKind, Transfer};

use super::{Change, Context, WorkflowError, details, require_open, require_state, review, set_state, state_of};
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
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_state(case, "assigning", &ASSIGNABLE)?;
    if case.complained_staff_ids.iter().any(|s| s == &assignee) {
        return Err(WorkflowError::ConflictOfInterest { assignee });
    }
    let mut d = details([("assignee", assignee.clone()), ("department", department.clone())]);
    if state_of(case) == CaseState::UnderReview {
        review::assign_reviewer(case, &assignee, &department, ctx)?;
        d.insert("review".to_owned(), "reviewer".to_owned());
    }
    // A regulator referral is forwarded once it reaches a handling department (D-SLA-11).
    clock::meet(case, ClockKind::ReferralForwarding, ctx.now);
    if let Some(handoff) = pending_handoff(case) {
        // Only the receiving department takes a transferred case, which meets its handoff clock.
        if handoff.to_department != department {
            return Err(WorkflowError::HandoffPending { to_department: handoff.to_department.clone() });
        }
        handoff.accept_time = Some(to_timestamp(ctx.now));
        clock::meet(case, ClockKind::Handoff, ctx.now);
        d.insert("handoff".to_owned(), "accepted".to_owned());
    }
    case.assignee = assignee.clone();
    case.department = department;
    if case.first_contact_owner.is_empty() {
        case.first_contact_owner = assignee;
    }
    if matches!(state_of(case), CaseState::Accepted | CaseState::Reopened) {
        set_state(case, CaseState::Assigned);
    }
    Ok(Change::new("case.assigned", d))
}

pub(super) fn transfer(
    case: &mut Case,
    to_department: String,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_state(case, "transferring", &STAFFABLE)?;
    if case.department == to_department {
        return Err(WorkflowError::AlreadyInDepartment);
    }
    let clocks = &ctx.rules.clocks;
    let handoff_due = clocks.calculator(case).due(ctx.now, clocks.handoff).ok();
    case.transfers.push(Transfer {
        from_department: case.department.clone(),
        to_department: to_department.clone(),
        reason: reason.clone(),
        transferred_by: ctx.actor(),
        transfer_time: Some(to_timestamp(ctx.now)),
        handoff_due_time: handoff_due.map(to_timestamp),
        accept_time: None,
    });
    let from = std::mem::replace(&mut case.department, to_department.clone());
    case.assignee.clear();
    set_state(case, CaseState::Accepted);
    clocks.start(case, ClockKind::Handoff, clocks.handoff, ctx.now);
    Ok(Change::new(
        "case.transferred",
        details([("from_department", from), ("to_department", to_department), ("reason", reason)]),
    ))
}

pub(super) fn first_response(case: &mut Case, note: String, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    require_open(case, "recording the first response")?;
    if case.first_response_time.is_some() {
        return Err(WorkflowError::FirstResponseRecorded);
    }
    case.first_response_time = Some(to_timestamp(ctx.now));
    clock::meet(case, ClockKind::FirstResponse, ctx.now);
    Ok(Change::new("case.first_response", details([("note", note)])))
}

/// The transfer still waiting for the receiving department to assign the case.
fn pending_handoff(case: &mut Case) -> Option<&mut Transfer> {
    case.transfers.last_mut().filter(|t| t.accept_time.is_none())
}
