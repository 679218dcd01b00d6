//! Root causes and improvement actions (D-CASE-7, D-CASE-9): what a valid analysis is, how an
//! action moves between statuses, when its owner is reminded, and how its effect is measured.

use redress_proto::redress::metrics::v1::{ActionStatus, FishboneCategory, ImprovementAction, RootCause};

use super::period::{Days, format_day, parse_day};

/// Most answers a Why chain has.
pub const MAX_WHYS: usize = 7;
/// Days before its due date an action's owner is reminded.
pub const REMIND_DAYS: i32 = 3;

/// What is wrong with a root cause as submitted: `(field, why)` for each problem.
pub fn check_root_cause(r: &RootCause) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut bad = |field: &str, why: &str| out.push((field.to_owned(), why.to_owned()));
    if r.r#case.is_empty() == r.incident.is_empty() {
        bad("root_cause.case", "exactly one of case and incident is required");
    }
    if !r.r#case.is_empty() && !r.r#case.starts_with("cases/") {
        bad("root_cause.case", "must be cases/{id}");
    }
    if r.whys.is_empty() || r.whys.len() > MAX_WHYS {
        bad("root_cause.whys", "1 to 7 answers, each asking the next why");
    }
    for (i, why) in r.whys.iter().enumerate() {
        if why.trim().is_empty() {
            out.push((format!("root_cause.whys[{i}]"), "must not be empty".to_owned()));
        }
    }
    for (i, f) in r.factors.iter().enumerate() {
        if matches!(FishboneCategory::try_from(f.category), Ok(FishboneCategory::Unspecified) | Err(_)) {
            out.push((
                format!("root_cause.factors[{i}].category"),
                "people, process, system, environment or policy".to_owned(),
            ));
        }
        if f.description.trim().is_empty() {
            out.push((format!("root_cause.factors[{i}].description"), "required".to_owned()));
        }
    }
    out
}

/// Why an action refuses a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("the action is {0} and changes no more")]
    Closed(&'static str),
    #[error("an action moves from {from} to {to} only as planned → in progress → done, or to cancelled while open")]
    Transition { from: &'static str, to: &'static str },
}

fn status_name(s: ActionStatus) -> &'static str {
    match s {
        ActionStatus::Unspecified => "unspecified",
        ActionStatus::Planned => "planned",
        ActionStatus::InProgress => "in progress",
        ActionStatus::Done => "done",
        ActionStatus::Cancelled => "cancelled",
    }
}

fn status_of(a: &ImprovementAction) -> ActionStatus {
    ActionStatus::try_from(a.status).unwrap_or(ActionStatus::Unspecified)
}

/// Whether the action still needs doing.
pub fn is_open(a: &ImprovementAction) -> bool {
    matches!(status_of(a), ActionStatus::Planned | ActionStatus::InProgress)
}

/// Moves an action to `to` on `today`.
pub fn move_to(a: &mut ImprovementAction, to: ActionStatus, today: i32) -> Result<(), ActionError> {
    let from = status_of(a);
    if !is_open(a) {
        return Err(ActionError::Closed(status_name(from)));
    }
    let allowed = matches!(
        (from, to),
        (ActionStatus::Planned, ActionStatus::InProgress | ActionStatus::Done | ActionStatus::Cancelled)
            | (ActionStatus::InProgress, ActionStatus::Done | ActionStatus::Cancelled)
    );
    if !allowed {
        return Err(ActionError::Transition { from: status_name(from), to: status_name(to) });
    }
    a.status = to as i32;
    if to == ActionStatus::Done {
        a.done_date = format_day(today);
    }
    if !is_open(a) {
        a.overdue = false;
    }
    Ok(())
}

/// Changes the due date: the reminders for it are due again.
pub fn set_due(a: &mut ImprovementAction, due: i32) -> Result<(), ActionError> {
    if !is_open(a) {
        return Err(ActionError::Closed(status_name(status_of(a))));
    }
    a.due_date = format_day(due);
    a.due_reminded = false;
    a.overdue = false;
    Ok(())
}

/// A reminder an open action is owed on `today`: `Some(false)` that it falls due soon,
/// `Some(true)` that it is overdue.
pub fn reminder_due(a: &ImprovementAction, today: i32) -> Option<bool> {
    let due = parse_day(&a.due_date)?;
    if !is_open(a) {
        return None;
    }
    if today > due && !a.overdue {
        return Some(true);
    }
    (today >= due - REMIND_DAYS && today <= due && !a.due_reminded).then_some(false)
}

/// Records that the reminder was sent.
pub fn mark_reminded(a: &mut ImprovementAction, overdue: bool) {
    if overdue {
        a.overdue = true;
        a.due_reminded = true;
    } else {
        a.due_reminded = true;
    }
}

/// The next day an open action may owe a reminder (`None` when it owes none any more).
pub fn next_reminder_day(a: &ImprovementAction) -> Option<i32> {
    let due = parse_day(&a.due_date)?;
    if !is_open(a) || a.overdue {
        return None;
    }
    Some(if a.due_reminded { due + 1 } else { due - REMIND_DAYS })
}

/// Whom a reminder goes to.
pub fn recipients(a: &ImprovementAction, overdue: bool) -> Vec<String> {
    let mut out = vec![format!("user:{}", a.owner.trim_start_matches("user:"))];
    if overdue {
        let over = if a.department.is_empty() { a.org_unit.clone() } else { a.department.clone() };
        out.push(format!("supervisor:{over}"));
    }
    out
}

/// The windows an effect compares: `window` days before the day an action was done, and from
/// that day (cut at `today`); `None` before it is done.
pub fn effect_windows(a: &ImprovementAction, window: i32, today: i32) -> Option<(Days, Days)> {
    let done = parse_day(&a.done_date)?;
    let before = Days::new(done - window, done - 1);
    let after = Days::new(done, (done + window - 1).min(today.max(done)));
    Some((before, after))
}

/// Percent change of `after` against `before` (daily rates); 0 when before had none.
pub fn change_percent(before: f64, after: f64) -> f64 {
    if before > 0.0 { 100.0 * (after - before) / before } else { 0.0 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use redress_proto::redress::metrics::v1::Factor;

    fn d(s: &str) -> i32 {
        parse_day(s).unwrap_or_default()
    }

    fn action(due: &str) -> ImprovementAction {
        ImprovementAction {
            owner: "user:li".to_owned(),
            department: "cards".to_owned(),
            due_date: due.to_owned(),
            status: ActionStatus::Planned as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_root_cause_names_one_subject_and_a_chain_of_whys() {
        let good = RootCause {
            r#case: "cases/1".to_owned(),
            whys: vec!["扣费规则未告知".to_owned(), "合同条款模板陈旧".to_owned()],
            factors: vec![Factor { category: FishboneCategory::Process as i32, description: "未复核".to_owned() }],
            ..Default::default()
        };
        assert!(check_root_cause(&good).is_empty());
        let bad = RootCause {
            incident: "incidents/1".to_owned(),
            whys: vec![String::new()],
            factors: vec![Factor::default()],
            ..good
        };
        let fields: Vec<String> = check_root_cause(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "root_cause.case",
                "root_cause.whys[0]",
                "root_cause.factors[0].category",
                "root_cause.factors[0].description"
            ]
        );
    }

    #[test]
    fn actions_move_forward_only_and_close_for_good() {
        let mut a = action("2026-05-10");
        move_to(&mut a, ActionStatus::InProgress, d("2026-05-01")).unwrap();
        assert!(move_to(&mut a, ActionStatus::Planned, d("2026-05-01")).is_err());
        move_to(&mut a, ActionStatus::Done, d("2026-05-02")).unwrap();
        assert_eq!(a.done_date, "2026-05-02");
        assert_eq!(move_to(&mut a, ActionStatus::Cancelled, d("2026-05-03")), Err(ActionError::Closed("done")));
        assert!(set_due(&mut a, d("2026-06-01")).is_err());
    }

    #[test]
    fn owners_are_reminded_before_the_due_date_and_once_overdue() {
        let mut a = action("2026-05-10");
        assert_eq!(next_reminder_day(&a), Some(d("2026-05-07")));
        assert_eq!(reminder_due(&a, d("2026-05-06")), None);
        assert_eq!(reminder_due(&a, d("2026-05-07")), Some(false));
        mark_reminded(&mut a, false);
        assert_eq!(reminder_due(&a, d("2026-05-10")), None);
        assert_eq!(next_reminder_day(&a), Some(d("2026-05-11")));
        assert_eq!(reminder_due(&a, d("2026-05-11")), Some(true));
        assert_eq!(recipients(&a, true), ["user:li", "supervisor:cards"]);
        mark_reminded(&mut a, true);
        assert_eq!((reminder_due(&a, d("2026-05-20")), next_reminder_day(&a)), (None, None));
        // A new due date is reminded of again.
        set_due(&mut a, d("2026-06-01")).unwrap();
        assert_eq!(reminder_due(&a, d("2026-05-30")), Some(false));
    }

    #[test]
    fn effects_compare_equal_windows_around_the_day_done() {
        let mut a = action("2026-05-10");
        assert!(effect_windows(&a, 30, d("2026-06-01")).is_none());
        move_to(&mut a, ActionStatus::Done, d("2026-05-01")).unwrap();
        let (before, after) = effect_windows(&a, 30, d("2026-06-30")).unwrap();
        assert_eq!(
            (before, after),
            (Days::new(d("2026-04-01"), d("2026-04-30")), Days::new(d("2026-05-01"), d("2026-05-30")))
        );
        let (_, cut) = effect_windows(&a, 30, d("2026-05-10")).unwrap();
        assert_eq!(cut.count(), 10);
        assert_eq!(change_percent(2.0, 1.0), -50.0);
    }
}
