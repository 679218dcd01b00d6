//! Progress to the complainant (及时反馈处理进展, D-CASE-8) and nothing left unattended
//! (D-INT-5): every contact with the complainant is logged; an open case owes the complainant
//! a contact every `no_contact_working_days` working days (or by the next contact agreed); a
//! case nobody has picked up is reported to the monitor of the channel it came in by. The
//! sweeper raises both reminders, each once. A transfer tells the complainant why and who now
//! handles the complaint, never that it is "not our department" (D-CASE-1).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use redress_calendar::{Due, Period};
use redress_platform::events::NewEvent;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseContact, CaseState, CaseTransferred, ComplainantContactDue, ContactDirection, ReminderLevel,
    UnassignedCaseReminder,
};
use redress_proto::redress::common::v1::Channel;

use super::{Change, Context, Effects, Rules, WorkflowError, details, implementation, require_open, state_of, sweep};
use crate::domain::clock::instant;

/// The `channel_monitors` entry for every channel not listed by name.
pub const DEFAULT_MONITOR: &str = "default";
/// Stands, in a monitor recipient, for the organisation unit of the case.
pub const ORG_UNIT_PLACEHOLDER: &str = "{org_unit}";

/// How progress to the complainant is watched.
#[derive(Debug, Clone)]
pub struct Progress {
    /// How long an open case may go without contact with the complainant (working days,
    /// counted on the case's institution's calendar).
    pub no_contact: Period,
    /// How long after opening a case may stay unassigned before its channel's monitor is told.
    pub unassigned_after: TimeDelta,
    /// Who monitors each channel (proto name, e.g. `CHANNEL_PHONE`; [`DEFAULT_MONITOR`] for
    /// the others). [`ORG_UNIT_PLACEHOLDER`] in a recipient is the case's organisation unit.
    pub channel_monitors: BTreeMap<String, Vec<String>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            no_contact: Period::WorkingDays(5),
            unassigned_after: TimeDelta::minutes(60),
            channel_monitors: default_channel_monitors(),
        }
    }
}

/// Unless configured otherwise, the supervisor of the unit owning a case monitors every channel.
pub fn default_channel_monitors() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(DEFAULT_MONITOR.to_owned(), vec![format!("supervisor:{ORG_UNIT_PLACEHOLDER}")])])
}

impl Progress {
    /// Who monitors `channel` for a case owned by `org_unit`: the channel's entry, else the
    /// default one, else the unit's supervisor.
    pub fn monitors(&self, channel: i32, org_unit: &str) -> Vec<String> {
        let name = Channel::try_from(channel).unwrap_or(Channel::Unspecified).as_str_name();
        let configured = self.channel_monitors.get(name).or_else(|| self.channel_monitors.get(DEFAULT_MONITOR));
        match configured.filter(|m| !m.is_empty()) {
            Some(monitors) => monitors.iter().map(|m| m.replace(ORG_UNIT_PLACEHOLDER, org_unit)).collect(),
            None => vec![format!("supervisor:{org_unit}")],
        }
    }

    /// Checks a configuration of channel monitors: keys are channel names or
    /// [`DEFAULT_MONITOR`], recipients `kind:who`.
    pub fn check_monitors(monitors: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
        for (channel, recipients) in monitors {
            let known = channel == DEFAULT_MONITOR
                || Channel::from_str_name(channel).is_some_and(|c| c != Channel::Unspecified);
            if !known {
                return Err(format!("{channel:?} is neither a channel (e.g. CHANNEL_PHONE) nor {DEFAULT_MONITOR:?}"));
            }
            if recipients.is_empty() {
                return Err(format!("{channel}: names no recipient"));
            }
            for r in recipients {
                let well_formed = r.split_once(':').is_some_and(|(kind, who)| !kind.is_empty() && !who.is_empty());
                if !well_formed {
                    return Err(format!("{channel}: {r:?} is not a recipient such as \"user:hotline-lead\""));
                }
            }
        }
        Ok(())
    }
}

/// A contact with the complainant to log, as the caller stated it.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub channel: Channel,
    pub direction: ContactDirection,
    /// When it took place; now when `None`.
    pub contact_time: Option<DateTime<Utc>>,
    /// Staff wording of what was said or agreed.
    pub summary: String,
    /// By when the complainant is to be contacted next, as agreed.
    pub next_contact_due: Option<DateTime<Utc>>,
}

/// `RecordContact`: logs a contact on an open case (any state but closed or withdrawn: a
/// call during follow-up or while a decision is carried out is a contact too).
pub(super) fn record(case: &mut Case, contact: NewContact, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    require_open(case, "recording a contact")?;
    let at = contact.contact_time.unwrap_or(ctx.now);
    if at > ctx.now {
        return Err(WorkflowError::ContactInTheFuture);
    }
    if let Some(opened) = instant(&case.open_time).filter(|opened| at < *opened) {
        return Err(WorkflowError::ContactBeforeOpening { opened });
    }
    if contact.next_contact_due.is_some_and(|next| next <= at) {
        return Err(WorkflowError::NextContactNotAfterContact);
    }
    let (channel, direction) = (contact.channel, contact.direction);
    let id = log(case, channel, direction, at, contact.summary, contact.next_contact_due, ctx);
    // The summary is free text in staff wording; the trail keeps what identifies the contact.
    let mut d = details([
        ("contact_id", id),
        ("channel", channel.as_str_name().to_owned()),
        ("direction", direction.as_str_name().to_owned()),
        ("contact_time", at.to_rfc3339()),
    ]);
    if let Some(next) = contact.next_contact_due {
        d.insert("next_contact_due_time".to_owned(), next.to_rfc3339());
    }
    Ok(Change::new("contact.recorded", d))
}

/// Logs a contact made at `at` by the caller (`RecordContact`, and the first response); its id.
pub(super) fn log(
    case: &mut Case,
    channel: Channel,
    direction: ContactDirection,
    at: DateTime<Utc>,
    summary: String,
    next_contact_due: Option<DateTime<Utc>>,
    ctx: &Context<'_>,
) -> String {
    let contact_id = format!("c{}", case.contacts.len() + 1);
    case.contacts.push(CaseContact {
        contact_id: contact_id.clone(),
        channel: channel as i32,
        direction: direction as i32,
        contact_time: Some(to_timestamp(at)),
        summary,
        recorded_by: ctx.actor(),
        recorded_by_staff_id: ctx.principal.staff_id.clone(),
        record_time: Some(to_timestamp(ctx.now)),
        next_contact_due_time: next_contact_due.map(to_timestamp),
    });
    // A contact recorded late, after a later one, does not move the last contact back.
    if instant(&case.last_contact_time).is_none_or(|last| at >= last) {
        case.last_contact_time = Some(to_timestamp(at));
    }
    contact_id
}

/// Whether the complainant is owed contact: while the complaint is being handled (accepted to
/// proposed, reopened, under review, in mediation) and, once decided, while a step carrying
/// the decision out is open. A closed or withdrawn case owes none.
fn owes_contact(case: &Case) -> bool {
    match state_of(case) {
        CaseState::Accepted
        | CaseState::Assigned
        | CaseState::Investigating
        | CaseState::ResolutionProposed
        | CaseState::Reopened
        | CaseState::UnderReview
        | CaseState::InMediation => true,
        CaseState::Decided | CaseState::FollowUp => implementation::any_open(case),
        CaseState::Closed | CaseState::Withdrawn | CaseState::Unspecified => false,
    }
}

/// By when the complainant is owed the next contact (`None` while none is owed): the
/// configured working days after the later of the opening, the last contact and the last word
/// the complainant had otherwise (the first response, also of a case recorded before contacts
/// were; the decision notice), counted on the case's institution's calendar, provisional years
/// included (D-SLA-5, D-SLA-6); or the next contact the latest contact agreed, when sooner.
pub fn contact_due(case: &Case, rules: &Rules) -> Option<Due> {
    if !owes_contact(case) {
        return None;
    }
    let told = [&case.open_time, &case.last_contact_time, &case.first_response_time, &case.decide_time];
    let since = told.into_iter().filter_map(instant).max();
    let counted =
        since.and_then(|since| match rules.clocks.calculator(case).due_explained(since, rules.progress.no_contact) {
            Ok(due) => Some(due),
            Err(e) => {
                tracing::error!(case = %case.name, error = %e, "a contact due time cannot be computed");
                None
            }
        });
    // The latest contact (by when it took place) says when the next one was agreed.
    let agreed =
        case.contacts.iter().max_by_key(|c| instant(&c.contact_time)).and_then(|c| instant(&c.next_contact_due_time));
    match (counted, agreed) {
        (Some(counted), Some(agreed)) if agreed < counted.at => Some(Due { at: agreed, provisional: None }),
        (None, Some(agreed)) => Some(Due { at: agreed, provisional: None }),
        (counted, _) => counted,
    }
}

/// Writes the contact due time into the case as it stands now.
pub fn refresh(case: &mut Case, rules: &Rules) {
    let due = contact_due(case, rules);
    case.next_contact_due_time = due.as_ref().map(|d| to_timestamp(d.at));
    case.next_contact_due_provisional = due.is_some_and(|d| d.provisional.is_some());
}

/// When a case still unassigned is reported to its channel's monitor; `None` once reported or
/// when it was ever picked up (assigned, or transferred on).
fn unassigned_reminder_at(case: &Case, rules: &Rules) -> Option<DateTime<Utc>> {
    let waiting = state_of(case) == CaseState::Accepted
        && case.assignee.is_empty()
        && case.transfers.is_empty()
        && case.unassigned_reminder_time.is_none();
    if !waiting {
        return None;
    }
    instant(&case.open_time).and_then(|opened| opened.checked_add_signed(rules.progress.unassigned_after))
}

/// When the sweeper must look at the case for these reminders.
pub fn next_check(case: &Case, rules: &Rules) -> Option<DateTime<Utc>> {
    let contact =
        contact_due(case, rules).map(|due| due.at).filter(|due| instant(&case.contact_reminded_due_time) != Some(*due));
    contact.into_iter().chain(unassigned_reminder_at(case, rules)).min()
}

/// What the sweeper is to announce of these reminders, marked on the case already.
#[derive(Debug, Default)]
pub(super) struct Reminders {
    contact: Option<DateTime<Utc>>,
    unassigned: bool,
}

/// Marks the reminders due at `now` on the case (before any event carries it); what to
/// announce with [`announce`].
pub(super) fn mark(case: &mut Case, rules: &Rules, now: DateTime<Utc>) -> Reminders {
    refresh(case, rules);
    let mut due = Reminders::default();
    if let Some(at) = instant(&case.next_contact_due_time)
        && now >= at
        && case.contact_reminded_due_time != case.next_contact_due_time
    {
        case.contact_reminded_due_time = case.next_contact_due_time;
        due.contact = Some(at);
    }
    if unassigned_reminder_at(case, rules).is_some_and(|at| now >= at) {
        case.unassigned_reminder_time = Some(to_timestamp(now));
        due.unassigned = true;
    }
    due
}

/// Announces what [`mark`] found due: ComplainantContactDue to the owner, and
/// UnassignedCaseReminder to the channel's monitor.
pub(super) fn announce(case: &Case, due: Reminders, rules: &Rules, fx: &mut Effects) {
    let (name, org_unit) = (case.name.clone(), case.org_unit.clone());
    if let Some(at) = due.contact {
        let recipients = sweep::recipients(case, ReminderLevel::Owner);
        let last = instant(&case.last_contact_time).map(|t| t.to_rfc3339()).unwrap_or_default();
        fx.record(
            "contact.due",
            details([("due_time", at.to_rfc3339()), ("last_contact_time", last), ("recipients", recipients.join(","))]),
        );
        let event = ComplainantContactDue {
            case: Some(case.clone()),
            due_time: Some(to_timestamp(at)),
            last_contact_time: case.last_contact_time,
            level: ReminderLevel::Owner as i32,
            recipients,
        };
        fx.events.push(NewEvent::new(name.clone(), org_unit.clone(), &event));
        metrics::counter!("redress_case_reminders_total", "kind" => "contact.due").increment(1);
    }
    if due.unassigned {
        let recipients = rules.progress.monitors(case.channel, &case.org_unit);
        let channel = Channel::try_from(case.channel).unwrap_or(Channel::Unspecified);
        fx.record(
            "case.unassigned",
            details([("channel", channel.as_str_name().to_owned()), ("recipients", recipients.join(","))]),
        );
        let event = UnassignedCaseReminder { case: Some(case.clone()), channel: case.channel, recipients };
        fx.events.push(NewEvent::new(name, org_unit, &event));
        metrics::counter!("redress_case_reminders_total", "kind" => "case.unassigned").increment(1);
    }
}

/// Wording that tells the complainant the complaint is not this department's business, which
/// a complainant is never told (D-CASE-1); compared without case.
const DEFLECTING: &[&str] = &[
    "不归我",
    "不归本部门",
    "不属于本部门",
    "不属于我们",
    "非本部门",
    "不是本部门",
    "不是我们部门",
    "管不了",
    "不关我们",
    "与本部门无关",
    "not my department",
    "not our department",
    "not my responsibility",
    "not our responsibility",
];

/// A transfer's reason is told to the complainant: it says why the receiving department is
/// better placed, never that the giving one is not responsible.
pub(super) fn ensure_reason_for_complainant(reason: &str) -> Result<(), WorkflowError> {
    let lower = reason.to_lowercase();
    match DEFLECTING.iter().find(|p| lower.contains(*p)) {
        Some(phrase) => Err(WorkflowError::DeflectingReason { phrase: (*phrase).to_owned() }),
        None => Ok(()),
    }
}

/// CaseTransferred for the case's last transfer, with the notice for the complainant.
pub(super) fn transferred(case: &Case) -> NewEvent {
    let transfer = case.transfers.last().cloned().unwrap_or_default();
    let complainant_notice =
        transfer_notice(case, &transfer.to_department, !transfer.to_assignee.is_empty(), &transfer.reason);
    let event = CaseTransferred { case: Some(case.clone()), transfer: Some(transfer), complainant_notice };
    NewEvent::new(case.name.clone(), case.org_unit.clone(), &event)
}

/// The notice telling the complainant who now handles the complaint and why (zh-CN). The
/// handler is named by role, not by name; the deadlines stay as they were.
fn transfer_notice(case: &Case, department: &str, handler_named: bool, reason: &str) -> String {
    let who = if handler_named { format!("{department}的专责处理人员") } else { department.to_owned() };
    let reason = reason.trim().trim_end_matches(['。', '.', '；', ';']);
    format!(
        "您的投诉（编号 {}）已转由{who}继续办理。转办原因：{reason}。原定的处理期限不变，办理进展我们会及时告知您。",
        case.case_number
    )
}
