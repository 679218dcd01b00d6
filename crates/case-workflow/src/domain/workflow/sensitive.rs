//! What a case's classification and grade call for beyond its handler (D-CASE-9, D-SLA-7):
//! sensitive complaints routed by rule (compliance notified, a legal opinion asked), each rule
//! once per case; a major grade escalated to senior management once per case, in the change
//! that gives the grade; the classification intake changes; and whether the problem is
//! systemic or individual.

use chrono::{DateTime, Utc};
use redress_calendar::Period;
use redress_platform::events::NewEvent;
use redress_platform::names::OrgUnit;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseClassification, CaseRouting, CoordinationTask, CoordinationTaskKind, EscalationRequired, ProblemScope,
    RoutingAction, SensitiveComplaintRouted,
};
use redress_proto::redress::common::v1::Grade;

use super::{Announce, AuditEntry, Change, Context, Rules, WorkflowError, clocks, details, require_open};
use crate::domain::routing::{RoutingRule, RuleAction};

/// Fires every routing rule the case matches and has not fired yet: records it on the case
/// (and adds a legal-opinion task) and returns what to announce.
pub(super) fn route(case: &mut Case, rules: &Rules, now: DateTime<Utc>) -> Vec<Announce> {
    let due: Vec<RoutingRule> = rules.routing.due_for(case).cloned().collect();
    let mut announced = Vec::new();
    for rule in due {
        let mut routing = CaseRouting {
            rule_id: rule.id.clone(),
            rules_version: rules.routing.version.clone(),
            action: rule.action.proto() as i32,
            recipients: rule.recipients.clone(),
            task_id: String::new(),
            route_time: Some(to_timestamp(now)),
        };
        if rule.action == RuleAction::LegalOpinionTask {
            let department = rule.department.clone();
            let due = rules.clocks.calculator(case).due(now, Period::WorkingDays(rule.due_working_days)).ok();
            let task_id = super::tasks::next_task_id(case);
            let description =
                if rule.task.is_empty() { format!("legal opinion ({})", rule.id) } else { rule.task.clone() };
            case.coordination_tasks.push(CoordinationTask {
                task_id: task_id.clone(),
                department: department.clone(),
                // The department's queue owns it until someone there takes it.
                owner: queue_of(&department),
                description,
                due_time: due.map(to_timestamp),
                created_by: super::SYSTEM_ACTOR.to_owned(),
                kind: CoordinationTaskKind::LegalOpinion as i32,
                ..CoordinationTask::default()
            });
            if routing.recipients.is_empty() {
                routing.recipients = vec![format!("department:{department}")];
            }
            routing.task_id = task_id;
        }
        case.routings.push(routing.clone());
        metrics::counter!("redress_case_routings_total", "rule" => rule.id.clone()).increment(1);
        announced.push(Announce::Routed(routing));
    }
    announced
}

/// The owner of a task a department's queue holds.
pub(crate) fn queue_of(department: &str) -> String {
    format!("queue:{department}")
}

/// The audit entry and event of a routing.
pub(super) fn routed(case: &Case, routing: CaseRouting) -> (Option<AuditEntry>, NewEvent) {
    let action = RoutingAction::try_from(routing.action).unwrap_or(RoutingAction::Unspecified);
    let audit = details([
        ("rule_id", routing.rule_id.clone()),
        ("rules_version", routing.rules_version.clone()),
        ("action", action.as_str_name().to_owned()),
        ("recipients", routing.recipients.join(",")),
        ("task_id", routing.task_id.clone()),
    ]);
    let event = SensitiveComplaintRouted {
        case: Some(case.clone()),
        rule_id: routing.rule_id,
        action: routing.action,
        recipients: routing.recipients,
        task_id: routing.task_id,
        route_time: routing.route_time,
    };
    (Some(("routing.applied", audit)), NewEvent::new(case.name.clone(), case.org_unit.clone(), &event))
}

/// A case of grade major escalates to senior management once (D-SLA-7, D-ESC-6): the first time
/// it is major, the time is recorded and the escalation announced with the change.
pub(super) fn escalate(case: &mut Case, reason: String, now: DateTime<Utc>) -> Option<Announce> {
    if case.grade != Grade::Major as i32 || case.escalation_required_time.is_some() {
        return None;
    }
    case.escalation_required_time = Some(to_timestamp(now));
    metrics::counter!("redress_case_escalations_required_total").increment(1);
    Some(Announce::EscalationRequired { reason })
}

/// Who is told of a major case: senior managers, and the senior management of the case's
/// institution.
fn escalation_recipients(case: &Case) -> Vec<String> {
    let institution = OrgUnit::try_from_str(&case.org_unit)
        .map(|u| u.institution().as_str().to_owned())
        .unwrap_or_else(|_| case.org_unit.clone());
    vec!["role:senior_manager".to_owned(), format!("senior_management:{institution}")]
}

/// The audit entry and event of an escalation.
pub(super) fn escalation_required(case: &Case, reason: String) -> (Option<AuditEntry>, NewEvent) {
    let recipients = escalation_recipients(case);
    let grade = Grade::try_from(case.grade).unwrap_or(Grade::Unspecified);
    let audit = details([
        ("grade", grade.as_str_name().to_owned()),
        ("reason", reason.clone()),
        ("recipients", recipients.join(",")),
    ]);
    let event = EscalationRequired {
        case: Some(case.clone()),
        grade: case.grade,
        reason,
        recipients,
        raise_time: case.escalation_required_time,
    };
    (Some(("escalation.required", audit)), NewEvent::new(case.name.clone(), case.org_unit.clone(), &event))
}

/// Intake changed the classification: the codes are stored, the grade follows (clocks and
/// escalation with it), and the routing rules are evaluated on the new codes.
pub(super) fn reclassify(
    case: &mut Case,
    classification: CaseClassification,
    grade: Grade,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "reclassifying")?;
    let codes_changed = case.classification.clone().unwrap_or_default() != classification;
    let grade_changed = grade != Grade::Unspecified && case.grade != grade as i32;
    if !codes_changed && !grade_changed {
        return Err(WorkflowError::Unchanged);
    }
    let codes = [
        ("taxonomy", classification.taxonomy.clone()),
        ("business_type", classification.business_type.clone()),
        ("cause", classification.cause.clone()),
        ("rights", classification.rights.join(",")),
    ];
    case.classification = Some(classification);
    let mut change = if grade_changed {
        clocks::change_grade(case, grade, reason, ctx)?
    } else {
        Change::new("case.reclassified", details([("reason", reason)]))
    };
    if codes_changed {
        change.details.extend(codes.map(|(k, v)| (k.to_owned(), v)));
    }
    let routed = route(case, ctx.rules, ctx.now);
    Ok(change.announcing_all(routed))
}

/// `SetProblemScope`: systemic or individual, with the reason (D-CASE-9).
/// Allowed in every state: the scope is often judged when the case is analysed after closing
/// (分析与改进).
pub(super) fn set_problem_scope(case: &mut Case, scope: ProblemScope, reason: String) -> Result<Change, WorkflowError> {
    let from = ProblemScope::try_from(case.problem_scope).unwrap_or(ProblemScope::Unspecified);
    case.problem_scope = scope as i32;
    case.problem_scope_reason = reason.clone();
    Ok(Change::new(
        "case.scope_set",
        details([
            ("from", from.as_str_name().to_owned()),
            ("scope", scope.as_str_name().to_owned()),
            ("reason", reason),
        ]),
    ))
}
