//! Carrying out the decided resolution (方案实施与跟进, D-CASE-8): after a decision the case
//! gets steps with an owner, a department and a due time; an open step past its due time
//! reminds its owner once, like a coordination task, and a case is not closed while a step is
//! open.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, ImplementationStep, ImplementationStepOverdue};

use super::{
    Change, Context, Effects, WorkflowError, details, is_terminal, require_open, require_state, state_of, sweep,
};
use crate::domain::clock::instant;

/// A step to add, as the caller stated it.
#[derive(Debug, Clone)]
pub struct NewStep {
    pub description: String,
    pub owner: String,
    /// The owner's employee id; empty when the request named none.
    pub owner_staff_id: String,
    pub department: String,
    pub due: DateTime<Utc>,
}

/// `AddImplementationStep`: only once the case is decided, before it is closed.
pub(super) fn add_step(case: &mut Case, step: NewStep, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    require_state(case, "adding an implementation step", &[CaseState::Decided, CaseState::FollowUp])?;
    if step.due <= ctx.now {
        return Err(WorkflowError::DueInThePast);
    }
    let step_id = format!("s{}", case.implementation_steps.len() + 1);
    let NewStep { description, owner, owner_staff_id, department, due } = step;
    case.implementation_steps.push(ImplementationStep {
        step_id: step_id.clone(),
        description,
        owner: owner.clone(),
        owner_staff_id: owner_staff_id.clone(),
        department: department.clone(),
        due_time: Some(to_timestamp(due)),
        complete_time: None,
        outcome: String::new(),
        created_by: ctx.actor(),
        overdue: false,
    });
    Ok(Change::new(
        "implementation.step_added",
        details([
            ("step_id", step_id),
            ("owner", owner),
            ("owner_staff_id", owner_staff_id),
            ("department", department),
            ("due_time", due.to_rfc3339()),
        ]),
    ))
}

/// `CompleteImplementationStep`: on any open case (a review or mediation may come between
/// the decision and the step's completion).
pub(super) fn complete_step(
    case: &mut Case,
    step_id: String,
    outcome: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "completing an implementation step")?;
    let step = case.implementation_steps.iter_mut().find(|s| s.step_id == step_id).ok_or(WorkflowError::NoSuchStep)?;
    if step.complete_time.is_some() {
        return Err(WorkflowError::StepCompleted);
    }
    step.complete_time = Some(to_timestamp(ctx.now));
    step.outcome = outcome.clone();
    Ok(Change::new("implementation.step_completed", details([("step_id", step_id), ("outcome", outcome)])))
}

fn open_steps(case: &Case) -> impl Iterator<Item = &ImplementationStep> {
    case.implementation_steps.iter().filter(|s| s.complete_time.is_none())
}

/// Whether a step carrying out the decision is still open.
pub(super) fn any_open(case: &Case) -> bool {
    open_steps(case).next().is_some()
}

/// Refuses to close a case while a step carrying out its decision is open.
pub(super) fn ensure_none_open(case: &Case) -> Result<(), WorkflowError> {
    let open: Vec<String> = open_steps(case).map(|s| s.step_id.clone()).collect();
    if open.is_empty() { Ok(()) } else { Err(WorkflowError::ImplementationOpen { steps: open }) }
}

/// When the sweeper must look at the case for an overdue step.
pub fn next_check(case: &Case) -> Option<DateTime<Utc>> {
    if is_terminal(state_of(case)) {
        return None;
    }
    open_steps(case).filter(|s| !s.overdue).filter_map(|s| instant(&s.due_time)).min()
}

/// Marks the open steps past their due time at `now` overdue (before any event carries the
/// case); the steps to announce with [`announce_overdue`].
pub(super) fn mark_overdue(case: &mut Case, now: DateTime<Utc>) -> Vec<ImplementationStep> {
    if is_terminal(state_of(case)) {
        return Vec::new();
    }
    let mut overdue = Vec::new();
    for step in case.implementation_steps.iter_mut().filter(|s| s.complete_time.is_none() && !s.overdue) {
        if instant(&step.due_time).is_some_and(|due| now >= due) {
            step.overdue = true;
            overdue.push(step.clone());
        }
    }
    overdue
}

/// ImplementationStepOverdue to each overdue step's owner and department.
pub(super) fn announce_overdue(case: &Case, overdue: Vec<ImplementationStep>, fx: &mut Effects) {
    for step in overdue {
        let recipients = vec![sweep::person(&step.owner), format!("department:{}", step.department)];
        let due = instant(&step.due_time).map(|d| d.to_rfc3339()).unwrap_or_default();
        fx.record(
            "implementation.step_overdue",
            details([("step_id", step.step_id.clone()), ("due_time", due), ("recipients", recipients.join(","))]),
        );
        fx.events.push(NewEvent::new(
            case.name.clone(),
            case.org_unit.clone(),
            &ImplementationStepOverdue { case: Some(case.clone()), step: Some(step), recipients },
        ));
        metrics::counter!("redress_case_reminders_total", "kind" => "implementation.step_overdue").increment(1);
    }
}
