//! The lifecycle moves that carry only a reason (`TransitionCase`): investigation, follow-up,
//! mediation, reopening, withdrawal and closing. Moves that carry data (assignment, transfer,
//! proposal, decision, review) have commands of their own.

use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, ClockKind};

use super::{
    Announce, Change, Context, WorkflowError, details, implementation, require_open, require_state, set_state, state_of,
};
use crate::domain::clock;

pub(super) fn transition(
    case: &mut Case,
    target: CaseState,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    let now = ctx.now;
    let mut announce = None;
    match target {
        CaseState::Investigating => {
            // A case under review stays there until the review is decided (DecideCaseReview).
            let allowed =
                [CaseState::Assigned, CaseState::ResolutionProposed, CaseState::Reopened, CaseState::InMediation];
            require_state(case, "moving to investigation", &allowed)?;
            if case.assignee.is_empty() {
                return Err(WorkflowError::Unassigned);
            }
            if state_of(case) == CaseState::ResolutionProposed {
                // The proposal is dropped; a new one will be needed.
                case.resolution = None;
            }
        }
        CaseState::FollowUp => require_state(case, "starting the follow-up", &[CaseState::Decided])?,
        CaseState::InMediation => {
            let allowed =
                [CaseState::Investigating, CaseState::ResolutionProposed, CaseState::Decided, CaseState::FollowUp];
            require_state(case, "mediation", &allowed)?;
        }
        CaseState::Reopened => {
            require_state(case, "reopening", &[CaseState::Closed])?;
            if !case.merged_into.is_empty() {
                return Err(WorkflowError::Merged { into: case.merged_into.clone() });
            }
            case.reopen_count += 1;
            case.close_time = None;
            restart_resolution_clock(case, ctx);
        }
        CaseState::Withdrawn => {
            require_open(case, "withdrawal")?;
            clock::stop_all(case);
            case.close_time = Some(to_timestamp(now));
        }
        CaseState::Closed => {
            require_state(case, "closing", &[CaseState::FollowUp])?;
            // A decision is closed once it has been carried out (方案实施与跟进, D-CASE-8).
            implementation::ensure_none_open(case)?;
            clock::stop_all(case);
            case.close_time = Some(to_timestamp(now));
            announce = Some(Announce::Closed { reason: reason.clone() });
        }
        CaseState::Accepted | CaseState::Assigned => {
            return Err(WorkflowError::TransitionVia { method: "AssignCase or TransferCase" });
        }
        CaseState::ResolutionProposed => return Err(WorkflowError::TransitionVia { method: "ProposeResolution" }),
        CaseState::Decided => return Err(WorkflowError::TransitionVia { method: "DecideCase" }),
        // A review is recorded as one, with its own record and clock, not as a move.
        CaseState::UnderReview => return Err(WorkflowError::TransitionVia { method: "RequestCaseReview" }),
        CaseState::Unspecified => return Err(WorkflowError::StateRequired),
    }
    set_state(case, target);
    let change =
        Change::new("case.transitioned", details([("to", target.as_str_name().to_owned()), ("reason", reason)]));
    Ok(change.announcing_all(announce))
}

/// Reopening gives the case a fresh resolution clock, by its grade, from now.
fn restart_resolution_clock(case: &mut Case, ctx: &Context<'_>) {
    let clocks = &ctx.rules.clocks;
    let resolution = clocks.policy(case).targets(clock::grade_of(case.grade)).resolution;
    clocks.start(case, ClockKind::Resolution, resolution, ctx.now);
}
