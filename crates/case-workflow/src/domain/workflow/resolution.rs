//! How a case is resolved (D-CASE-3): a proposal, approval by someone else when its
//! compensation exceeds the proposer's authority, the decision that meets the clocks, and the
//! complainant's survey answer.

use redress_platform::principal::Permission;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, ClockKind, Money, Resolution, ResolutionType, Survey};

use super::{Announce, Change, Context, WorkflowError, acting_unit, conflict, details, require_state, set_state};
use crate::domain::clock;

pub(super) fn propose(
    case: &mut Case,
    kind: ResolutionType,
    compensation: Option<Money>,
    grounds: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    let allowed = [CaseState::Investigating, CaseState::ResolutionProposed, CaseState::InMediation];
    require_state(case, "proposing a resolution", &allowed)?;
    conflict::ensure_caller_may_decide(case, ctx.principal, "proposer")?;
    conflict::ensure_confirmed(case)?;
    let amount = compensation.as_ref().map_or(0, |m| m.amount_minor);
    let approval_required = amount > ctx.rules.authority_limit(ctx.principal);
    let currency = compensation.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default();
    case.resolution = Some(Resolution {
        r#type: kind as i32,
        compensation,
        grounds: grounds.clone(),
        proposed_by: ctx.actor(),
        propose_time: Some(to_timestamp(ctx.now)),
        approval_required,
        ..Resolution::default()
    });
    set_state(case, CaseState::ResolutionProposed);
    Ok(Change::new(
        "resolution.proposed",
        details([
            ("type", kind.as_str_name().to_owned()),
            ("compensation_minor", amount.to_string()),
            ("currency", currency),
            ("approval_required", approval_required.to_string()),
            ("grounds", grounds),
        ]),
    ))
}

/// Approval by another person holding `cases.approve` whose own limit covers the compensation.
pub(super) fn approve(case: &mut Case, note: String, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    require_state(case, "approving a resolution", &[CaseState::ResolutionProposed])?;
    if !ctx.principal.has(Permission::CasesApprove) {
        return Err(WorkflowError::PermissionRequired(Permission::CasesApprove));
    }
    conflict::ensure_caller_may_decide(case, ctx.principal, "approver")?;
    let limit = ctx.rules.authority_limit(ctx.principal);
    let resolution = proposed(case)?;
    if !resolution.approval_required || !resolution.approved_by.is_empty() {
        return Err(WorkflowError::ApprovalNotNeeded);
    }
    let actor = ctx.actor();
    if resolution.proposed_by == actor {
        return Err(WorkflowError::SelfApproval);
    }
    let amount = resolution.compensation.as_ref().map_or(0, |m| m.amount_minor);
    if amount > limit {
        return Err(WorkflowError::AuthorityExceeded { amount, limit });
    }
    resolution.approved_by = actor;
    resolution.approve_time = Some(to_timestamp(ctx.now));
    Ok(Change::new("resolution.approved", details([("note", note)])))
}

pub(super) fn decide(case: &mut Case, notice: String, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    require_state(case, "deciding", &[CaseState::ResolutionProposed])?;
    conflict::ensure_caller_may_decide(case, ctx.principal, "decider")?;
    conflict::ensure_confirmed(case)?;
    let now = ctx.now;
    // A review of this decision is handled above this unit (D-SLA-11).
    let deciding_unit = acting_unit(ctx.principal, &case.org_unit);
    let resolution = proposed(case)?;
    if resolution.approval_required && resolution.approved_by.is_empty() {
        return Err(WorkflowError::ApprovalRequired);
    }
    resolution.decided_by = ctx.actor();
    resolution.decision_notice = notice.clone();
    resolution.deciding_unit = deciding_unit;
    let kind = ResolutionType::try_from(resolution.r#type).unwrap_or(ResolutionType::Unspecified);
    case.decide_time = Some(to_timestamp(now));
    if case.first_response_time.is_none() {
        // The decision notice is a response to the complainant too.
        case.first_response_time = Some(to_timestamp(now));
    }
    for kind in [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::RegulatoryDecision] {
        clock::meet(case, kind, now);
    }
    set_state(case, CaseState::Decided);
    Ok(Change::new("case.decided", details([("type", kind.as_str_name().to_owned()), ("notice", notice)])))
}

/// The complainant's answer moves the case to follow-up; closing is from there.
pub(super) fn survey(
    case: &mut Case,
    score: i32,
    resolved: bool,
    comment: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_state(case, "answering the survey", &[CaseState::Decided, CaseState::FollowUp])?;
    if case.survey.is_some() {
        return Err(WorkflowError::SurveyAnswered);
    }
    case.survey = Some(Survey { score, resolved, comment, answer_time: Some(to_timestamp(ctx.now)) });
    set_state(case, CaseState::FollowUp);
    Ok(Change::new("survey.answered", details([("score", score.to_string()), ("resolved", resolved.to_string())]))
        .announcing(Announce::SurveyAnswered))
}

fn proposed(case: &mut Case) -> Result<&mut Resolution, WorkflowError> {
    case.resolution.as_mut().ok_or(WorkflowError::NoResolution)
}
