//! Conflict of interest (回避, D-CASE-6): staff the complaint is about never handle it. They
//! are compared in one namespace, the employee id (工号) complaints name staff in
//! (`Case.complained_staff_ids`), never by user subject: the assignee and a task owner by the
//! staff id the request names, the proposer, approver, decider and confirmer by the staff id
//! of the verified caller (`Principal.staff_id`). Ids match ignoring case and surrounding
//! spaces, so a differently typed id never slips past the check.
//!
//! A caller without a staff id is a system acting for the institution. It may take no step
//! that decides the complaint (propose, approve, decide, decide a review, confirm) on a case
//! that names complained staff, since who stands behind it cannot be checked; it may record
//! the outcome of a coordination task, which decides nothing.
//!
//! A complaint that names staff by name only cannot be compared by id: the case carries a
//! [`ConflictCheck`] and someone else holding `cases.approve` confirms, for each assignee,
//! that they are not the person named, before a resolution is proposed or a decision made.

use redress_platform::principal::{Permission, Principal};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, ConflictCheck};

use super::{Change, Context, WorkflowError, details};

/// Why a case asks for a manual confirmation.
pub(crate) const NAMED_ONLY_REASON: &str = "the complaint names a member of staff by name only (no employee id)";

fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// Whether `staff_id` is among the staff the complaint is about.
pub(crate) fn is_complained(case: &Case, staff_id: &str) -> bool {
    case.complained_staff_ids.iter().any(|s| same_id(s, staff_id))
}

/// Refuses `staff_id`, named by the request in `field` for `role` (the assignee, a task
/// owner), when the complaint is about them; when the case names complained staff and no
/// staff id is given, the check cannot be made and `field` is required.
pub(crate) fn ensure_not_complained(
    case: &Case,
    staff_id: &str,
    field: &'static str,
    role: &'static str,
) -> Result<(), WorkflowError> {
    if staff_id.trim().is_empty() {
        if case.complained_staff_ids.is_empty() {
            return Ok(());
        }
        return Err(WorkflowError::StaffIdRequired { field });
    }
    if is_complained(case, staff_id) {
        return Err(WorkflowError::ConflictOfInterest { staff_id: staff_id.trim().to_owned(), role });
    }
    Ok(())
}

/// Refuses a caller the complaint is about, acting as `role` on a step that decides the
/// complaint; a caller without a staff id is refused when the case names complained staff.
pub(crate) fn ensure_caller_may_decide(
    case: &Case,
    principal: &Principal,
    role: &'static str,
) -> Result<(), WorkflowError> {
    if principal.staff_id.trim().is_empty() {
        if case.complained_staff_ids.is_empty() {
            return Ok(());
        }
        return Err(WorkflowError::CallerStaffIdRequired { role });
    }
    ensure_caller_not_complained(case, principal, role)
}

/// Refuses a caller the complaint is about; a caller without a staff id (a system) passes.
pub(crate) fn ensure_caller_not_complained(
    case: &Case,
    principal: &Principal,
    role: &'static str,
) -> Result<(), WorkflowError> {
    if is_complained(case, &principal.staff_id) {
        return Err(WorkflowError::ConflictOfInterest { staff_id: principal.staff_id.trim().to_owned(), role });
    }
    Ok(())
}

/// The case has a new assignee (or none, after a transfer): a required confirmation is asked
/// again, for whoever handles it now.
pub(crate) fn reassigned(case: &mut Case) {
    let (assignee, staff_id) = (case.assignee.clone(), case.assignee_staff_id.clone());
    if let Some(check) = case.conflict_check.as_mut().filter(|c| c.required) {
        check.assignee = assignee;
        check.assignee_staff_id = staff_id;
        check.confirmed_by.clear();
        check.confirm_time = None;
        check.note.clear();
    }
}

/// Asks for a manual confirmation (a complaint naming staff by name only), for the case's
/// current assignee.
pub(crate) fn require_check(case: &mut Case, reason: &str) {
    if case.conflict_check.as_ref().is_some_and(|c| c.required) {
        return;
    }
    case.conflict_check = Some(ConflictCheck { required: true, reason: reason.to_owned(), ..ConflictCheck::default() });
    reassigned(case);
}

/// Refuses a step that needs the confirmation while it is pending for the current assignee.
pub(crate) fn ensure_confirmed(case: &Case) -> Result<(), WorkflowError> {
    match &case.conflict_check {
        Some(check) if check.required => {
            let confirmed =
                check.confirm_time.is_some() && !case.assignee.is_empty() && check.assignee == case.assignee;
            if confirmed {
                Ok(())
            } else {
                Err(WorkflowError::ConflictCheckPending { assignee: case.assignee.clone() })
            }
        }
        _ => Ok(()),
    }
}

/// `ConfirmNoConflict`: someone holding `cases.approve`, other than the assignee and not
/// complained about, confirms the assignee is not the person the complaint names.
pub(super) fn confirm(case: &mut Case, note: String, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    super::require_open(case, "confirming no conflict of interest")?;
    let principal = ctx.principal;
    if !principal.has(Permission::CasesApprove) {
        return Err(WorkflowError::PermissionRequired(Permission::CasesApprove));
    }
    if principal.staff_id.trim().is_empty() {
        return Err(WorkflowError::CallerStaffIdRequired { role: "confirmer" });
    }
    ensure_caller_not_complained(case, principal, "confirmer")?;
    if !case.conflict_check.as_ref().is_some_and(|c| c.required) {
        return Err(WorkflowError::ConflictCheckNotRequired);
    }
    if case.assignee.is_empty() {
        return Err(WorkflowError::Unassigned);
    }
    if ensure_confirmed(case).is_ok() {
        return Err(WorkflowError::ConflictCheckConfirmed { assignee: case.assignee.clone() });
    }
    if principal.subject == case.assignee || same_id(&principal.staff_id, &case.assignee_staff_id) {
        return Err(WorkflowError::SelfConfirmation);
    }
    let (assignee, staff_id) = (case.assignee.clone(), case.assignee_staff_id.clone());
    let check = case.conflict_check.get_or_insert_with(ConflictCheck::default);
    check.assignee = assignee.clone();
    check.assignee_staff_id = staff_id.clone();
    check.confirmed_by = ctx.actor();
    check.confirm_time = Some(to_timestamp(ctx.now));
    check.note = note.clone();
    Ok(Change::new(
        "conflict.confirmed",
        details([("assignee", assignee), ("assignee_staff_id", staff_id), ("note", note)]),
    ))
}
