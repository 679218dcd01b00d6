//! Reviews of a decision (核查, D-SLA-2, D-SLA-11): the complainant may ask within 30 days of
//! the decision, even after the case was closed; a unit above the one that decided, or head
//! office, assigns the reviewer and decides within 30 days of the request. A review is a
//! record of its own with its own clock, not a reopening: the decision under review and the
//! clocks it met stay as they were.

use redress_calendar::Period;
use redress_platform::names::OrgUnit;
use redress_platform::principal::Principal;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseReview, CaseState, ClockKind, ReviewOutcome};

use super::{
    Announce, Change, Context, WorkflowError, above, at_head_office, details, require_state, set_state, state_of,
};
use crate::domain::clock::{self, instant};

/// How long after the decision the complainant may ask for a review.
const REVIEW_WINDOW: Period = Period::CalendarDays(30);
/// How long the reviewing unit has to decide, from the request.
const REVIEW_DECISION: Period = Period::CalendarDays(30);

pub(super) fn request(case: &mut Case, reason: String, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    // Closing the case does not take the complainant's right to a review away.
    require_state(case, "a review", &[CaseState::Decided, CaseState::FollowUp, CaseState::Closed])?;
    if !case.merged_into.is_empty() {
        return Err(WorkflowError::Merged { into: case.merged_into.clone() });
    }
    let decided = instant(&case.decide_time).ok_or(WorkflowError::NotDecided)?;
    let clocks = &ctx.rules.clocks;
    // Counted like any other day period (D-SLA-5).
    let window = clocks.calculator(case).due(decided, REVIEW_WINDOW)?;
    if ctx.now >= window {
        return Err(WorkflowError::ReviewWindowPassed { until: window });
    }
    // The review decision is the last word inside the institution; after it the complainant
    // turns to mediation or the regulator (D-CASE-4).
    if case.reviews.iter().any(|r| r.decision_time == case.decide_time) {
        return Err(WorkflowError::AlreadyReviewed);
    }
    let deciding_unit = deciding_unit(case);
    case.reviews.push(CaseReview {
        request_time: Some(to_timestamp(ctx.now)),
        requested_by: ctx.actor(),
        reason: reason.clone(),
        deciding_unit: deciding_unit.clone(),
        decision_time: case.decide_time,
        ..CaseReview::default()
    });
    case.review_count += 1;
    case.close_time = None;
    // The deciding unit's handler does not handle the review: the reviewing unit assigns one,
    // and until then reminders go to that unit.
    case.assignee.clear();
    case.assignee_staff_id.clear();
    case.department.clear();
    super::conflict::reassigned(case);
    clocks.start(case, ClockKind::ReviewDecision, REVIEW_DECISION, ctx.now);
    set_state(case, CaseState::UnderReview);
    Ok(Change::new("review.requested", details([("reason", reason), ("deciding_unit", deciding_unit)])))
}

/// Assigning a case under review names the reviewer, which only the reviewing unit may do.
pub(super) fn assign_reviewer(
    case: &mut Case,
    assignee: &str,
    department: &str,
    ctx: &Context<'_>,
) -> Result<(), WorkflowError> {
    let review = open_review(case);
    require_reviewing_unit(&review.deciding_unit, ctx.principal)?;
    review.reviewer = assignee.to_owned();
    review.reviewer_department = department.to_owned();
    review.reviewing_unit = ctx.principal.org_unit.clone();
    Ok(())
}

pub(super) fn decide(
    case: &mut Case,
    outcome: ReviewOutcome,
    notice: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_state(case, "deciding a review", &[CaseState::UnderReview])?;
    super::conflict::ensure_caller_may_decide(case, ctx.principal, "review decider")?;
    super::conflict::ensure_confirmed(case)?;
    let now = ctx.now;
    let review = open_review(case);
    require_reviewing_unit(&review.deciding_unit, ctx.principal)?;
    review.outcome = outcome as i32;
    review.decision_notice = notice.clone();
    review.decided_by = ctx.actor();
    review.decide_time = Some(to_timestamp(now));
    review.reviewing_unit = ctx.principal.org_unit.clone();
    clock::meet(case, ClockKind::ReviewDecision, now);
    // Decided again, on review: follow-up and closing go on from here.
    set_state(case, CaseState::Decided);
    Ok(Change::new("review.decided", details([("outcome", outcome.as_str_name().to_owned()), ("notice", notice)]))
        .announcing(Announce::ReviewDecided))
}

/// The unit a review still without a reviewer waits on: the one above the deciding unit, or
/// head office when that unit is head office itself. `None` when no review waits.
pub(super) fn awaiting_reviewer(case: &Case) -> Option<String> {
    if state_of(case) != CaseState::UnderReview {
        return None;
    }
    let review = case.reviews.last().filter(|r| r.decide_time.is_none() && r.reviewer.is_empty())?;
    let unit = OrgUnit::try_from_str(&review.deciding_unit).ok()?;
    if unit.is_institution() {
        return Some(unit.into_string());
    }
    unit.as_str().rsplitn(3, '/').nth(2).map(str::to_owned)
}

/// The review under way. A case put under review before reviews were recorded gets its
/// record now, so that it is decided like any other.
fn open_review(case: &mut Case) -> &mut CaseReview {
    if case.reviews.last().is_none_or(|r| r.decide_time.is_some()) {
        let review =
            CaseReview { deciding_unit: deciding_unit(case), decision_time: case.decide_time, ..CaseReview::default() };
        case.reviews.push(review);
    }
    let last = case.reviews.len() - 1;
    &mut case.reviews[last]
}

/// The unit that made the case's decision; the case's own for decisions recorded before the
/// deciding unit was.
fn deciding_unit(case: &Case) -> String {
    case.resolution
        .as_ref()
        .map(|r| r.deciding_unit.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| case.org_unit.clone())
}

/// A review is handled above the unit that decided, or at head office; never by the deciding
/// unit itself, whatever permissions it holds (D-SLA-11).
fn require_reviewing_unit(deciding_unit: &str, principal: &Principal) -> Result<(), WorkflowError> {
    if above(principal, deciding_unit) || at_head_office(principal, deciding_unit) {
        Ok(())
    } else {
        Err(WorkflowError::ReviewNeedsHigherUnit { deciding_unit: deciding_unit.to_owned() })
    }
}
