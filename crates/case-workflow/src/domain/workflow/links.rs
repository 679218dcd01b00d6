//! Links between two cases, changed together: RELATED both ways, PARENT/CHILD as a pair, and
//! MERGED_INTO, which closes the duplicate and hands its evidence and complained staff to the
//! survivor.

use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseLink, CaseState, LinkType};

use super::{
    Change, Context, Effects, Rules, WorkflowError, conflict, details, finish, implementation, is_terminal,
    require_open, set_state, state_of,
};
use crate::domain::clock;

/// Links a case lists in its record. Links beyond these are counted
/// (`unlisted_link_count`), recorded in the audit trail and listed on the other case, so a
/// case that many cases link to (the lead of a group incident) keeps a record of bounded size.
pub const MAX_LISTED_LINKS: usize = 100;

/// Lists a link on `case`, or counts it once `case` lists [`MAX_LISTED_LINKS`].
fn list(case: &mut Case, link: CaseLink) {
    if case.links.len() < MAX_LISTED_LINKS {
        case.links.push(link);
    } else {
        case.unlisted_link_count = case.unlisted_link_count.saturating_add(1);
    }
}

/// How `other` relates to a case that relates to it as `kind`.
pub fn back_of(kind: LinkType) -> LinkType {
    match kind {
        LinkType::MergedInto => LinkType::MergedFrom,
        LinkType::MergedFrom => LinkType::MergedInto,
        LinkType::Parent => LinkType::Child,
        LinkType::Child => LinkType::Parent,
        LinkType::Related => LinkType::Related,
        LinkType::Unspecified => LinkType::Unspecified,
    }
}

/// Links `case` to `other`; `kind` is how `case` relates to `other`.
pub(super) fn link(
    case: &mut Case,
    other: &mut Case,
    kind: LinkType,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    let now = Some(to_timestamp(ctx.now));
    if case.name == other.name {
        return Err(WorkflowError::SelfLink);
    }
    // Either side may list the link only (the other side stopped listing at its bound).
    if case.links.iter().any(|l| l.case == other.name && l.r#type == kind as i32)
        || other.links.iter().any(|l| l.case == case.name && l.r#type == back_of(kind) as i32)
    {
        return Err(WorkflowError::LinkExists { case: case.name.clone(), other: other.name.clone() });
    }
    let back = match kind {
        LinkType::MergedInto => {
            merge(case, other)?;
            case.close_time = now;
            LinkType::MergedFrom
        }
        LinkType::Related => LinkType::Related,
        LinkType::Parent => LinkType::Child,
        LinkType::Child => LinkType::Parent,
        LinkType::MergedFrom | LinkType::Unspecified => {
            return Err(WorkflowError::NotLinkable);
        }
    };
    let make = |kind: LinkType, to: &str| CaseLink {
        r#type: kind as i32,
        case: to.to_owned(),
        reason: reason.clone(),
        linked_by: ctx.actor(),
        link_time: now,
    };
    list(case, make(kind, &other.name));
    list(other, make(back, &case.name));
    Ok(Change::new("case.linked", details([("type", kind.as_str_name().to_owned()), ("reason", reason)])))
}

/// Closes `duplicate` into the open case `survivor`.
fn merge(duplicate: &mut Case, survivor: &mut Case) -> Result<(), WorkflowError> {
    require_open(duplicate, "merging")?;
    // Merging closes the duplicate: not while a step carrying out its decision is open.
    implementation::ensure_none_open(duplicate)?;
    if is_terminal(state_of(survivor)) || !survivor.merged_into.is_empty() {
        return Err(WorkflowError::SurvivorClosed { survivor: survivor.name.clone(), state: state_of(survivor) });
    }
    duplicate.merged_into = survivor.name.clone();
    // Nothing is lost: the survivor keeps the duplicate's evidence and the staff it names, and
    // the duplicate stays readable, closed, pointing at the survivor.
    for e in &duplicate.evidence {
        if !survivor.evidence.iter().any(|o| o.sha256 == e.sha256 && o.uri == e.uri) {
            survivor.evidence.push(e.clone());
        }
    }
    for s in &duplicate.complained_staff_ids {
        if !survivor.complained_staff_ids.contains(s) {
            survivor.complained_staff_ids.push(s.clone());
        }
    }
    // 回避 holds for the merged case as a whole: its handler may not be anyone either complaint
    // is about, and a complaint naming staff by name only asks the survivor for confirmation.
    if conflict::is_complained(survivor, &survivor.assignee_staff_id) {
        return Err(WorkflowError::ConflictOfInterest {
            staff_id: survivor.assignee_staff_id.trim().to_owned(),
            role: "assignee",
        });
    }
    if duplicate.conflict_check.as_ref().is_some_and(|c| c.required) {
        conflict::require_check(survivor, conflict::NAMED_ONLY_REASON);
    }
    clock::stop_all(duplicate);
    set_state(duplicate, CaseState::Closed);
    Ok(())
}

/// The other half of a link, recorded on the other case: its audit entry and event.
pub fn linked_effects(
    other: &Case,
    case_name: &str,
    kind: LinkType,
    reason: &str,
    actor: &str,
    rules: &Rules,
) -> Effects {
    let back = other
        .links
        .iter()
        .rev()
        .find(|l| l.case == case_name)
        .map_or(back_of(kind), |l| LinkType::try_from(l.r#type).unwrap_or(LinkType::Unspecified));
    let detail = details([
        ("type", back.as_str_name().to_owned()),
        ("case", case_name.to_owned()),
        ("reason", reason.to_owned()),
    ]);
    finish(other, other.state, Change::new("case.linked", detail), actor, rules)
}
