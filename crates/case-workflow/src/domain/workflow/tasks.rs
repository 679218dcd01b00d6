//! Work around a case: coordination tasks for other departments, with an owner and a due time
//! the sweeper watches, and references to evidence held elsewhere.

use chrono::{DateTime, Utc};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseState, CoordinationTask, EvidenceReference};

use super::{Change, Context, OPEN_STATES, WorkflowError, details, require_open, state_of, wrong_state};

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

pub(super) fn add_task(
    case: &mut Case,
    department: String,
    owner: String,
    description: String,
    due: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "adding a coordination task")?;
    if due <= ctx.now {
        return Err(WorkflowError::DueInThePast);
    }
    let task_id = format!("t{}", case.coordination_tasks.len() + 1);
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
    });
    Ok(Change::new(
        "task.added",
        details([("task_id", task_id), ("department", department), ("owner", owner), ("due_time", due.to_rfc3339())]),
    ))
}

pub(super) fn complete_task(
    case: &mut Case,
    task_id: String,
    outcome: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    let task = case.coordination_tasks.iter_mut().find(|t| t.task_id == task_id).ok_or(WorkflowError::NoSuchTask)?;
    if task.complete_time.is_some() {
        return Err(WorkflowError::TaskCompleted);
    }
    task.complete_time = Some(to_timestamp(ctx.now));
    task.outcome = outcome.clone();
    Ok(Change::new("task.completed", details([("task_id", task_id), ("outcome", outcome)])))
}
