//! How a case opens for an accepted complaint: its clocks, and who owns it. Whoever took the
//! complaint owns the case from the start (首问负责, D-INT-5) until a recorded hand-over
//! (AssignCase, TransferCase): it opens ASSIGNED to them, with their employee id and
//! department, and they are its first-contact owner. Unless the complaint is about them (回避,
//! D-CASE-6): then, as without a first contact, it opens unassigned and the trail says why.
//! The routing rules are evaluated on the complaint's classification and signals, and a major
//! complaint escalates, all in the transaction that opens it.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_proto::redress::case::v1::{Case, CaseOpened, CaseState};

use super::{Effects, Rules, announced, conflict, details, opening_clocks, sensitive};

/// Who took the complaint, as intake recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstContact {
    /// Their user subject; may be empty.
    pub subject: String,
    /// Their employee id (工号).
    pub staff_id: String,
    /// Their department; may be empty.
    pub department: String,
}

impl FirstContact {
    /// The subject the case is assigned to: theirs, or one derived from the employee id
    /// (`staff:{staff_id}`) when intake recorded none, so the owner is always named the same
    /// way for the same person.
    pub fn owner(&self) -> String {
        let subject = self.subject.trim();
        if subject.is_empty() { format!("staff:{}", self.staff_id.trim()) } else { subject.to_owned() }
    }
}

/// What the accepted complaint says about the people around the case.
#[derive(Debug, Clone, Default)]
pub struct OpeningFacts {
    pub first_contact: Option<FirstContact>,
    /// The complaint names a member of staff by name only: a manual 回避 confirmation is needed.
    pub complained_staff_named_only: bool,
}

/// Opens `case` (built from the accepted complaint, state ACCEPTED, unassigned): starts its
/// clocks, gives it to its first contact, fires the routing rules it matches and escalates it
/// when major. The effects are the opening's audit entries (`case.opened` first) and events
/// (`CaseOpened` first, with the case as opened).
pub fn open(case: &mut Case, facts: OpeningFacts, rules: &Rules, now: DateTime<Utc>) -> Effects {
    opening_clocks(case, rules);
    let mut opened = details([
        ("complaint", case.complaint.clone()),
        ("case_number", case.case_number.clone()),
        ("org_unit", case.org_unit.clone()),
    ]);
    if let Some(contact) = facts.first_contact.filter(|c| !c.staff_id.trim().is_empty()) {
        let owner = contact.owner();
        opened.insert("first_contact".to_owned(), owner.clone());
        opened.insert("first_contact_staff_id".to_owned(), contact.staff_id.trim().to_owned());
        if conflict::is_complained(case, &contact.staff_id) {
            // The person who took it is the one complained about: someone else must handle it.
            opened.insert("first_contact_refused".to_owned(), "conflict_of_interest".to_owned());
        } else {
            case.assignee = owner.clone();
            case.assignee_staff_id = contact.staff_id.trim().to_owned();
            // An empty department stays empty until an assignment or transfer names one; the
            // case is the person's meanwhile, and reminders go to them.
            case.department = contact.department.trim().to_owned();
            case.first_contact_owner = owner.clone();
            case.state = CaseState::Assigned as i32;
            opened.insert("first_contact_owner".to_owned(), owner);
            opened.insert("department".to_owned(), case.department.clone());
            // A regulator referral is forwarded when it is assigned to a handling department,
            // a recorded assignment: the person who took it at the referral desk has not
            // forwarded it yet, so its forwarding clock keeps running. No transfer, no handoff.
        }
    }
    if facts.complained_staff_named_only {
        conflict::require_check(case, conflict::NAMED_ONLY_REASON);
        opened.insert("conflict_check".to_owned(), "required".to_owned());
    }
    opened.insert("state".to_owned(), super::name_of(case.state));
    let mut announce = sensitive::route(case, rules, now);
    announce.extend(sensitive::escalate(case, "opened as major".to_owned(), now));
    let mut fx = Effects::default();
    fx.record("case.opened", opened);
    fx.events.push(NewEvent::new(case.name.clone(), case.org_unit.clone(), &CaseOpened { case: Some(case.clone()) }));
    for a in announce {
        let (audit, event) = announced(case, a, rules);
        if let Some((action, details)) = audit {
            fx.record(action, details);
        }
        fx.events.push(event);
    }
    fx
}
