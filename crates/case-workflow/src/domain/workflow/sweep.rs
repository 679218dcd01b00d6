//! The reminders the deadline sweeper raises (D-SLA-7): a clock at risk to its owner, a breach
//! to the owner and the supervisor, an overdue coordination task or implementation step to its
//! owner and department, the contact the complainant is owed to the owner and a case left
//! unassigned to its channel's monitor ([`progress`]); each once per due time.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_proto::redress::case::v1::{
    Case, ClockKind, ClockStatus, CoordinationTaskOverdue, DeadlineAtRisk, DeadlineBreached, ReminderLevel,
};

use super::{Effects, Rules, details, implementation, is_terminal, progress, review, state_of};
use crate::domain::clock::{self, instant};

/// Raises the reminders that are due at `now`. Empty effects when nothing is due.
pub fn sweep(case: &mut Case, rules: &Rules, now: DateTime<Utc>) -> Effects {
    let mut fx = Effects::default();
    clock::record_breaches(case, now);
    // Everything due is marked before any event carries the case.
    let steps_overdue = implementation::mark_overdue(case, now);
    let progress_due = progress::mark(case, rules, now);
    let mut raised = Vec::new();
    for clock in &mut case.clocks {
        if clock.status != ClockStatus::Running as i32 {
            continue;
        }
        let Some(due) = instant(&clock.due_time) else { continue };
        let kind = ClockKind::try_from(clock.kind).unwrap_or(ClockKind::Unspecified);
        if now >= due && !clock.breached {
            clock.breached = true;
            clock.at_risk = true;
            clock.reminded_due_time = clock.due_time;
            raised.push((kind, clock.due_time, ReminderLevel::Supervisor));
        } else if !clock.at_risk && rules.clocks.at_risk_time(clock).is_some_and(|t| now >= t) {
            clock.at_risk = true;
            clock.reminded_due_time = clock.due_time;
            raised.push((kind, clock.due_time, ReminderLevel::Owner));
        }
    }
    let open = !is_terminal(state_of(case));
    let mut overdue = Vec::new();
    for task in case.coordination_tasks.iter_mut().filter(|t| open && t.complete_time.is_none() && !t.overdue) {
        if instant(&task.due_time).is_some_and(|due| now >= due) {
            task.overdue = true;
            overdue.push(task.clone());
        }
    }
    for task in overdue {
        let recipients = vec![person(&task.owner), format!("department:{}", task.department)];
        let due = instant(&task.due_time).map(|d| d.to_rfc3339()).unwrap_or_default();
        fx.record(
            "task.overdue",
            details([("task_id", task.task_id.clone()), ("due_time", due), ("recipients", recipients.join(","))]),
        );
        fx.events.push(NewEvent::new(
            case.name.clone(),
            case.org_unit.clone(),
            &CoordinationTaskOverdue { case: Some(case.clone()), task: Some(task), recipients },
        ));
        metrics::counter!("redress_case_reminders_total", "kind" => "task.overdue").increment(1);
    }
    for (kind, due_time, level) in raised {
        let recipients = recipients(case, level);
        let due = instant(&due_time).map(|d| d.to_rfc3339()).unwrap_or_default();
        let breached = level == ReminderLevel::Supervisor;
        let action = if breached { "deadline.breached" } else { "deadline.at_risk" };
        fx.record(
            action,
            details([
                ("clock", kind.as_str_name().to_owned()),
                ("due_time", due),
                ("recipients", recipients.join(",")),
            ]),
        );
        let (case_now, clock, level) = (Some(case.clone()), kind as i32, level as i32);
        let (name, org_unit) = (case.name.clone(), case.org_unit.clone());
        fx.events.push(if breached {
            NewEvent::new(name, org_unit, &DeadlineBreached { case: case_now, clock, due_time, level, recipients })
        } else {
            NewEvent::new(name, org_unit, &DeadlineAtRisk { case: case_now, clock, due_time, level, recipients })
        });
        metrics::counter!("redress_case_reminders_total", "kind" => action).increment(1);
    }
    implementation::announce_overdue(case, steps_overdue, &mut fx);
    progress::announce(case, progress_due, rules, &mut fx);
    fx
}

/// A person (or queue) as a recipient: a subject that already names its kind (`user:li`,
/// `staff:E1001`, `queue:legal`) as it is, a bare one (`li`) as `user:li`.
pub(super) fn person(subject: &str) -> String {
    let named = subject.split_once(':').is_some_and(|(kind, rest)| {
        !kind.is_empty() && !rest.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    });
    if named { subject.to_owned() } else { format!("user:{subject}") }
}

/// Who is reminded: the owner (assignee, else the department, else the organisation unit —
/// for a review still without a reviewer, the unit that is to review it) and, for breaches,
/// the owner's supervisor.
pub(super) fn recipients(case: &Case, level: ReminderLevel) -> Vec<String> {
    let unit = review::awaiting_reviewer(case).unwrap_or_else(|| case.org_unit.clone());
    let owner = if !case.assignee.is_empty() {
        person(&case.assignee)
    } else if !case.department.is_empty() {
        format!("department:{}", case.department)
    } else {
        format!("org_unit:{unit}")
    };
    let mut to = vec![owner];
    if level == ReminderLevel::Supervisor {
        let unit = if case.department.is_empty() { &unit } else { &case.department };
        to.push(format!("supervisor:{unit}"));
    }
    to
}

#[cfg(test)]
mod tests {
    use super::person;

    #[test]
    fn a_subject_is_named_once_as_a_recipient() {
        assert_eq!(person("li-na"), "user:li-na");
        assert_eq!(person("user:li-na"), "user:li-na");
        assert_eq!(person("staff:E1001"), "staff:E1001");
        assert_eq!(person("queue:legal"), "queue:legal");
        // Not a kind: an empty or odd prefix is part of a bare subject.
        assert_eq!(person(":x"), "user::x");
        assert_eq!(person("Mr:x"), "user:Mr:x");
    }
}
