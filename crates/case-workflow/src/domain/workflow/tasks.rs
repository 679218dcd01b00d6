//! Work around a case: coordination tasks for other departments, with an owner and a due time
//! the sweeper watches, and references to evidence held elsewhere. A complained member of
//! staff neither owns nor completes a task of the case (回避).

use chrono::{DateTime, Utc};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, CoordinationTask, CoordinationTaskKind, EvidenceReference};

use super::{Change, Context, OPEN_STATES, WorkflowError, conflict, details, require_open, state_of, wrong_state};

/// A coordination task asked for by a handler.
pub(super) struct NewTask {
    pub department: String,
    pub owner: String,
    pub owner_staff_id: String,
    pub description: String,
    pub due: DateTime<Utc>,
}

/// The id the next task of the case gets.
pub(super) fn next_task_id(case: &Case) -> String {
    format!("t{}", case.coordination_tasks.len() + 1)
}

/// References evidence by URI and hash; a closed case still takes it, a withdrawn one not.
pub(super) fn add_evidence(
    case: &mut Case,
    uri: String,
    sha256: String,
    kind: String,
    description: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    if state_of(case) == CaseState::Withdrawn {
        return Err(wrong_state(case, "adding evidence", OPEN_STATES));
    }
    if case.evidence.iter().any(|e| e.sha256 == sha256 && e.uri == uri) {
        return Err(WorkflowError::EvidenceExists);
    }
    case.evidence.push(EvidenceReference {
        uri: uri.clone(),
        sha256: sha256.clone(),
        kind: kind.clone(),
        description,
        added_by: ctx.actor(),
        add_time: Some(to_timestamp(ctx.now)),
    });
    Ok(Change::new("evidence.added", details([("uri", uri), ("sha256", sha256), ("kind", kind)])))
}

pub(super) fn add_task(case: &mut Case, task: NewTask, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    let NewTask { department, owner, owner_staff_id, description, due } = task;
    require_open(case, "adding a coordination task")?;
    conflict::ensure_not_complained(case, &owner_staff_id, "owner_staff_id", "task owner")?;
    if due <= ctx.now {
        return Err(WorkflowError::DueInThePast);
    }
    let task_id = next_task_id(case);
    case.coordination_tasks.push(CoordinationTask {
        task_id: task_id.clone(),
        department: department.clone(),
        owner: owner.clone(),
        description,
        due_time: Some(to_timestamp(due)),
        complete_time: None,
        outcome: String::new(),
        created_by: ctx.actor(),
        overdue: false,
        owner_staff_id: owner_staff_id.clone(),
        kind: CoordinationTaskKind::Coordination as i32,
    });
    Ok(Change::new(
        "task.added",
        details([
            ("task_id", task_id),
            ("department", department),
            ("owner", owner),
            ("owner_staff_id", owner_staff_id),
            ("due_time", due.to_rfc3339()),
        ]),
    ))
}

pub(super) fn complete_task(
    case: &mut Case,
    task_id: String,
    outcome: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    // A system completing a task for a department has no staff id and passes.
    conflict::ensure_caller_not_complained(case, ctx.principal, "task completer")?;
    let task = case.coordination_tasks.iter_mut().find(|t| t.task_id == task_id).ok_or(WorkflowError::NoSuchTask)?;
    if task.complete_time.is_some() {
        return Err(WorkflowError::TaskCompleted);
    }
    task.complete_time = Some(to_timestamp(ctx.now));
    task.outcome = outcome.clone();
    Ok(Change::new("task.completed", details([("task_id", task_id), ("outcome", outcome)])))
}
