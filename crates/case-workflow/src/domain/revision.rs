//! Revising a case's deadlines once the official calendar of a year they counted provisionally
//! is loaded (D-SLA-6): the running clocks and the contact the complainant is owed are
//! recomputed on the rules now in force, and a regulatory decision deadline that moved is
//! reissued to the complainant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_proto::redress::case::v1::{Case, CaseChanged, ClockKind, DecisionDeadlineRevised};

use super::clock::{self, instant};
use super::workflow::{Effects, Rules};

/// The audit and CaseChanged action of a revision.
pub const REVISED: &str = "deadlines.revised";

/// Recomputes the case's running clocks on `rules`: the audit entry and events of what moved,
/// or `None` when nothing did, the case then left exactly as it was.
pub fn revise(case: &mut Case, rules: &Rules, actor: &str, now: DateTime<Utc>) -> Option<Effects> {
    let before = case.clone();
    // What ran out before the revision is a breach whatever the revision does to the clocks.
    clock::record_breaches(case, now);
    rules.clocks.recompute_all(case);
    let mut details = BTreeMap::new();
    let mut decision_moved = None;
    for (old, new) in before.clocks.iter().zip(&case.clocks) {
        if old.due_time == new.due_time && old.provisional == new.provisional {
            continue;
        }
        let kind = ClockKind::try_from(new.kind).unwrap_or(ClockKind::Unspecified);
        let name = kind.as_str_name().trim_start_matches("CLOCK_KIND_").to_lowercase();
        details.insert(format!("{name}.previous_due_time"), rfc3339(&old.due_time));
        details.insert(format!("{name}.due_time"), rfc3339(&new.due_time));
        details.insert(format!("{name}.provisional"), new.provisional.to_string());
        if kind == ClockKind::RegulatoryDecision && old.due_time != new.due_time {
            decision_moved = Some(old.due_time);
        }
        if kind == ClockKind::Handoff
            && let Some(transfer) = case.transfers.last_mut().filter(|t| t.accept_time.is_none())
        {
            transfer.handoff_due_time = new.due_time;
        }
    }
    // The contact the complainant is owed is counted on the same calendar. A case written
    // before it was kept has none to move (it gets one at its next change).
    rules.refresh_contact_due(case);
    if before.next_contact_due_time.is_some()
        && (before.next_contact_due_time != case.next_contact_due_time
            || before.next_contact_due_provisional != case.next_contact_due_provisional)
    {
        details.insert("contact.previous_due_time".to_owned(), rfc3339(&before.next_contact_due_time));
        details.insert("contact.due_time".to_owned(), rfc3339(&case.next_contact_due_time));
        details.insert("contact.provisional".to_owned(), case.next_contact_due_provisional.to_string());
    }
    if details.is_empty() {
        *case = before;
        return None;
    }
    let mut fx = Effects::default();
    fx.audit.push((REVISED.to_owned(), details.clone()));
    let changed = CaseChanged {
        case: Some(case.clone()),
        action: REVISED.to_owned(),
        actor: actor.to_owned(),
        previous_state: case.state,
        details: details.into_iter().collect(),
    };
    fx.events.push(NewEvent::new(case.name.clone(), case.org_unit.clone(), &changed));
    if let Some(previous_due_time) = decision_moved {
        let due_time = clock::clock(case, ClockKind::RegulatoryDecision).and_then(|c| c.due_time);
        let revised = DecisionDeadlineRevised {
            case: Some(case.clone()),
            previous_due_time,
            due_time,
            complainant_notice: notice(case, &due_time, rules),
        };
        fx.events.push(NewEvent::new(case.name.clone(), case.org_unit.clone(), &revised));
    }
    Some(fx)
}

/// The notice telling the complainant the decision deadline now stands on the official
/// holiday arrangement, in zh-CN.
fn notice(case: &Case, due: &Option<prost_types::Timestamp>, rules: &Rules) -> String {
    let tz = rules.clocks.calculator(case).time_zone();
    // The due instant is 24:00 of the last day, i.e. the start of the next local date.
    match instant(due).map(|d| (d.with_timezone(&tz) - chrono::TimeDelta::days(1)).format("%Y年%m月%d日")) {
        Some(day) => format!(
            "您的投诉（编号 {}）的处理期限已按国务院公布的节假日安排重新确定，我们将于 {day} 24 时前作出处理决定。",
            case.case_number
        ),
        None => format!(
            "您的投诉（编号 {}）的处理期限已按国务院公布的节假日安排重新确定，具体日期将另行告知。",
            case.case_number
        ),
    }
}

fn rfc3339(t: &Option<prost_types::Timestamp>) -> String {
    instant(t).map(|t| t.to_rfc3339()).unwrap_or_default()
}
