//! The escalation service's store operations, written once over [`EscTx`]: load and lock,
//! run the pure domain function, save the records with their events and requests to
//! CaseService. Each runs inside one transaction that its backend opens and commits.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::consumer::{self, ApplyEvent, Effect};
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::NewEvent;
use redress_platform::principal::Principal;
use redress_platform::time::{from_timestamp, to_micros, to_timestamp};
use redress_proto::redress::case::v1::{Case, CaseChanged, CaseClosed, CaseOpened, CaseState, EscalationRequired};
use redress_proto::redress::common::v1::{Event, Grade};
use redress_proto::redress::escalation::v1::{
    Alert, AlertKind, AlertRaised, CaseLinkedToIncident, DetectionEvidence, Escalation, EscalationLevel,
    EscalationRaised, Incident, IncidentChanged, IncidentDeclared, IncidentKind, IncidentMember, IncidentState,
    MemberMatch, Statement, StatementApproved, StatementUse, SystemicCause, TimelineEntry, WorkingGroupMember,
};
use redress_proto::redress::intake::v1::{ComplaintAccepted, ComplaintProcessingRestricted, RiskSignalRaised};

use super::tx::EscTx;
use super::{CASE_CONSUMER, CaseFacts, FingerprintRow, INTAKE_CONSUMER, Known, Stored};
use crate::domain::actions::{CaseAction, CaseRequest, id_of};
use crate::domain::early_warning::{self, Signalled};
use crate::domain::grouping::{self, Fingerprint, GroupingConfig};
use crate::domain::incident::{self, stage_label};
use crate::domain::ladder::{self, Raise, Target};
use crate::domain::{Actor, Change, DomainError, statement};
use crate::error::EscalationError;
use crate::rules::Rules;

type Result<T> = std::result::Result<T, EscalationError>;

/// A request id with the fingerprint of the caller and request that first used it.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub id: String,
    pub fingerprint: String,
}

/// The stored first result of a request id, if it was used before by the same request.
pub(crate) async fn replayed<M: Message + Default>(tx: &mut dyn EscTx, key: Option<&RequestKey>) -> Result<Option<M>> {
    let Some(key) = key else { return Ok(None) };
    match tx.load_request(&key.id).await? {
        Some((fingerprint, response)) if fingerprint == key.fingerprint => Ok(Some(M::decode(response.as_slice())?)),
        Some(_) => Err(EscalationError::RequestIdReused),
        None => Ok(None),
    }
}

pub(crate) async fn remember<M: Message>(
    tx: &mut dyn EscTx,
    key: Option<&RequestKey>,
    response: &M,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Some(key) = key {
        tx.save_request(&key.id, &key.fingerprint, &response.encode_to_vec(), to_micros(now)).await?;
    }
    Ok(())
}

pub(crate) fn new_name(collection: &str) -> String {
    format!("{collection}/{}", uuid::Uuid::now_v7())
}

fn details(change: &Change) -> std::collections::HashMap<String, String> {
    change.details.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn incident_changed(incident: &Incident, change: &Change, actor: &Actor) -> NewEvent {
    NewEvent::new(
        &incident.name,
        &incident.org_unit,
        &IncidentChanged {
            incident: Some(incident.clone()),
            action: change.action.to_owned(),
            actor: actor.subject.clone(),
            details: details(change),
        },
    )
}

pub(crate) fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The storage form of a record's next check.
pub(crate) fn check_us(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(to_micros)
}

/// What a command on an incident asks.
#[derive(Debug, Clone)]
pub enum IncidentCommand {
    Declare { reason: String },
    Dismiss { reason: String },
    SetWorkingGroup { members: Vec<WorkingGroupMember> },
    AddTimelineEntry { entry: TimelineEntry },
    RecordSystemicCause { cause: SystemicCause },
    AdvanceStage { note: String },
    Close { reason: String },
}

/// One change to an incident, as the API parsed it.
#[derive(Debug, Clone)]
pub struct IncidentUpdate {
    pub id: String,
    pub expected_version: Option<i64>,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
    pub command: IncidentCommand,
}

/// Loads and locks an incident the principal may see.
pub(crate) async fn incident_in_scope(tx: &mut dyn EscTx, id: &str, principal: &Principal) -> Result<Stored<Incident>> {
    let name = format!("incidents/{id}");
    tx.load_incident(id)
        .await?
        .filter(|s| principal.covers(&s.record.org_unit))
        .ok_or_else(|| EscalationError::not_found("incident", name))
}

/// Saves an incident loaded at `version` with its events.
pub(crate) async fn save_incident(
    tx: &mut dyn EscTx,
    incident: &mut Incident,
    version: i64,
    events: &[NewEvent],
) -> Result<()> {
    incident.etag = etag(version + 1);
    tx.save_incident(incident, version, check_us(incident::next_check(incident))).await?;
    // The events carry the incident as saved.
    let events: Vec<NewEvent> = events.to_vec();
    tx.append_events(&events).await?;
    Ok(())
}

/// Applies one change to an incident with its events and requests to CaseService.
pub async fn update_incident(
    tx: &mut dyn EscTx,
    update: IncidentUpdate,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Incident> {
    let Stored { record: mut incident, version } = incident_in_scope(tx, &update.id, &update.principal).await?;
    if let Some(done) = replayed::<Incident>(tx, update.request.as_ref()).await? {
        return Ok(done);
    }
    if let Some(expected) = update.expected_version
        && expected != version
    {
        return Err(EscalationError::EtagMismatch { given: etag(expected), current: etag(version) });
    }
    let actor = Actor::of(&update.principal, now);
    let declared_before = incident::is_declared(&incident);
    let change = match update.command {
        IncidentCommand::Declare { reason } => {
            let first = super::special::stage_with_template(tx, &incident.org_unit, first_stage(rules)?).await?;
            incident::declare(&mut incident, reason, &first, &actor)?
        }
        IncidentCommand::Dismiss { reason } => incident::dismiss(&mut incident, reason, &actor)?,
        IncidentCommand::SetWorkingGroup { members } => incident::set_working_group(&mut incident, members, &actor)?,
        IncidentCommand::AddTimelineEntry { entry } => incident::add_timeline_entry(&mut incident, entry, &actor)?,
        IncidentCommand::RecordSystemicCause { cause } => {
            incident::record_systemic_cause(&mut incident, cause, &actor)?
        }
        IncidentCommand::AdvanceStage { note } => {
            let next = match rules.crisis.next(incident.stage()) {
                Some(next) => Some(super::special::stage_with_template(tx, &incident.org_unit, next).await?),
                None => None,
            };
            incident::advance_stage(&mut incident, note, next.as_ref(), &actor)?
        }
        IncidentCommand::Close { reason } => incident::close(&mut incident, reason, &actor)?,
    };
    if !declared_before && incident::is_declared(&incident) {
        link_members(tx, &mut incident, now).await?;
    }
    incident::touch(&mut incident, now);
    incident.etag = etag(version + 1);
    let event = announce(&incident, &change, &actor);
    save_incident(tx, &mut incident, version, &[event]).await?;
    remember(tx, update.request.as_ref(), &incident, now).await?;
    Ok(incident)
}

/// The event of a change: IncidentDeclared for a declaration, IncidentChanged otherwise.
fn announce(incident: &Incident, change: &Change, actor: &Actor) -> NewEvent {
    if change.action == "incident.declared" {
        NewEvent::new(&incident.name, &incident.org_unit, &IncidentDeclared { incident: Some(incident.clone()) })
    } else {
        incident_changed(incident, change, actor)
    }
}

pub(crate) fn first_stage(rules: &Rules) -> Result<&crate::domain::incident::StagePolicy> {
    use redress_proto::redress::escalation::v1::CrisisStage;
    rules
        .crisis
        .stage(CrisisStage::FactClarification)
        .ok_or_else(|| EscalationError::Internal(anyhow::anyhow!("the crisis policy has no first stage")))
}

/// Asks CaseService to link every member but the lead under the lead's case (a declared
/// incident), and notes the lead case when it is known.
async fn link_members(tx: &mut dyn EscTx, incident: &mut Incident, now: DateTime<Utc>) -> Result<()> {
    let members = tx.members(&incident.name).await?;
    let Some(lead) = members.first() else { return Ok(()) };
    let lead_complaint = lead.complaint.clone();
    if incident.lead_case.is_empty()
        && let Some(case) = tx.complaint(&lead_complaint).await?.and_then(|k| k.case)
    {
        incident.lead_case = case;
    }
    for member in members.iter().skip(1) {
        record_link(tx, incident, &member.complaint, &lead_complaint, now).await?;
    }
    Ok(())
}

async fn record_link(
    tx: &mut dyn EscTx,
    incident: &Incident,
    complaint: &str,
    lead: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let org_unit = tx.complaint(complaint).await?.map(|k| k.org_unit).unwrap_or_else(|| incident.org_unit.clone());
    let action = CaseAction {
        key: format!("link:{}:{}", id_of(&incident.name), id_of(complaint)),
        complaint: complaint.to_owned(),
        org_unit,
        request: CaseRequest::LinkParent {
            incident: incident.name.clone(),
            lead_complaint: lead.to_owned(),
            reason: format!("{}：{}", kind_label(incident.kind()), incident.title),
        },
    };
    tx.insert_action(&action, to_micros(now)).await?;
    Ok(())
}

pub(crate) fn kind_label(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::Unspecified => "事件",
        IncidentKind::Group => "群体性投诉事件",
        IncidentKind::Media => "舆情事件",
        IncidentKind::Vip => "重要客户投诉",
        IncidentKind::Malicious => "恶意投诉事件",
    }
}

/// A new incident opened by hand: declared at once.
pub struct NewIncident {
    pub kind: IncidentKind,
    pub org_unit: String,
    pub title: String,
    pub summary: String,
    pub request: RequestKey,
    pub principal: Arc<Principal>,
}

pub async fn create_incident(
    tx: &mut dyn EscTx,
    new: NewIncident,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Incident> {
    if let Some(done) = replayed::<Incident>(tx, Some(&new.request)).await? {
        return Ok(done);
    }
    let actor = Actor::of(&new.principal, now);
    let mut incident =
        incident::open(new_name("incidents"), new.kind, new.org_unit, new.title, new.summary, None, &actor);
    let first = super::special::stage_with_template(tx, &incident.org_unit, first_stage(rules)?).await?;
    let change = incident::declare(&mut incident, "人工立项".to_owned(), &first, &actor)?;
    incident.etag = etag(1);
    tx.insert_incident(&incident, check_us(incident::next_check(&incident))).await?;
    tx.append_events(&[announce(&incident, &change, &actor)]).await?;
    remember(tx, Some(&new.request), &incident, now).await?;
    Ok(incident)
}

/// Adds a member to an incident: by hand, or by detection (`matched`).
pub struct NewMember {
    pub incident: String,
    pub complaint: String,
    pub source: &'static str,
    pub matched: Option<MemberMatch>,
    pub reason: String,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn add_member(tx: &mut dyn EscTx, new: NewMember, now: DateTime<Utc>) -> Result<IncidentMember> {
    let Stored { record: mut incident, version } = incident_in_scope(tx, &new.incident, &new.principal).await?;
    if let Some(done) = replayed::<IncidentMember>(tx, new.request.as_ref()).await? {
        return Ok(done);
    }
    if !incident::is_open(&incident) {
        return Err(DomainError::IncidentState { action: "adding a member", current: incident.state() }.into());
    }
    let known = tx
        .complaint(&new.complaint)
        .await?
        .filter(|k| !k.org_unit.is_empty() && new.principal.covers(&k.org_unit))
        .ok_or_else(|| EscalationError::not_found("complaint", new.complaint.clone()))?;
    let actor = Actor::of(&new.principal, now);
    let member = join(tx, &mut incident, &known, new.source, new.matched, &actor).await?;
    let change = Change::new(
        "incident.member_joined",
        [("complaint", new.complaint.clone()), ("source", new.source.to_owned()), ("reason", new.reason)],
    );
    incident::touch(&mut incident, now);
    let event = incident_changed(&incident, &change, &actor);
    save_incident(tx, &mut incident, version, &[event]).await?;
    remember(tx, new.request.as_ref(), &member, now).await?;
    Ok(member)
}

/// Makes `known` a member of `incident` (locked by the caller, saved by the caller): counts,
/// the lead, and the link under the lead once the incident is declared.
pub(crate) async fn join(
    tx: &mut dyn EscTx,
    incident: &mut Incident,
    known: &Known,
    source: &str,
    matched: Option<MemberMatch>,
    actor: &Actor,
) -> Result<IncidentMember> {
    let lead = tx.lead_member(&incident.name).await?;
    let member = IncidentMember {
        incident: incident.name.clone(),
        complaint: known.complaint.clone(),
        case: known.case.clone().unwrap_or_default(),
        source: if lead.is_none() { "lead".to_owned() } else { source.to_owned() },
        r#match: matched,
        join_time: Some(to_timestamp(actor.now)),
        linked: false,
        labels: Default::default(),
        updated_by: actor.subject.clone(),
    };
    let key = if known.complainant_key.is_empty() { known.complaint.as_str() } else { known.complainant_key.as_str() };
    let new_complainant = !tx.has_complainant(&incident.name, key).await?;
    if !tx.insert_member(&member, key).await? {
        return Err(
            DomainError::AlreadyMember { complaint: known.complaint.clone(), incident: incident.name.clone() }.into()
        );
    }
    // Counted as they join (indexed look-ups), not recounted: a join costs the same at any size.
    incident.member_count = incident.member_count.saturating_add(1);
    if new_complainant {
        incident.complainant_count = incident.complainant_count.saturating_add(1);
    }
    match lead {
        None => {
            incident.lead_case = known.case.clone().unwrap_or_default();
        }
        Some(lead) if incident::is_declared(incident) => {
            record_link(tx, incident, &known.complaint, &lead, actor.now).await?;
        }
        Some(_) => {}
    }
    Ok(member)
}

/// Sets or removes a member's labels.
pub struct Classification {
    pub incident: String,
    pub complaint: String,
    pub labels: Vec<(String, String)>,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn classify_member(tx: &mut dyn EscTx, c: Classification, now: DateTime<Utc>) -> Result<IncidentMember> {
    let Stored { record: incident, .. } = incident_in_scope(tx, &c.incident, &c.principal).await?;
    if let Some(done) = replayed::<IncidentMember>(tx, c.request.as_ref()).await? {
        return Ok(done);
    }
    let mut member = tx
        .load_member(&incident.name, &c.complaint)
        .await?
        .ok_or_else(|| EscalationError::not_found("incident member", c.complaint.clone()))?;
    for (k, v) in &c.labels {
        if v.is_empty() {
            member.labels.remove(k);
        } else {
            member.labels.insert(k.clone(), v.clone());
        }
    }
    member.updated_by = c.principal.subject.clone();
    tx.save_member(&member).await?;
    let actor = Actor::of(&c.principal, now);
    let keys: Vec<&str> = c.labels.iter().map(|(k, _)| k.as_str()).collect();
    let change =
        Change::new("incident.member_classified", [("complaint", c.complaint.clone()), ("labels", keys.join(","))]);
    tx.append_events(&[incident_changed(&incident, &change, &actor)]).await?;
    remember(tx, c.request.as_ref(), &member, now).await?;
    Ok(member)
}

/// Drafts a new statement version.
pub async fn draft_statement(
    tx: &mut dyn EscTx,
    incident_id: String,
    text: String,
    request: RequestKey,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Statement> {
    let Stored { record: incident, .. } = incident_in_scope(tx, &incident_id, &principal).await?;
    if let Some(done) = replayed::<Statement>(tx, Some(&request)).await? {
        return Ok(done);
    }
    if !incident::is_open(&incident) {
        return Err(DomainError::IncidentState { action: "drafting a statement", current: incident.state() }.into());
    }
    let existing = tx.statements(&incident.name).await?;
    let (statement, _) = statement::draft(&incident.name, &existing, text, &Actor::of(&principal, now));
    tx.put_statement(&statement, true).await?;
    remember(tx, Some(&request), &statement, now).await?;
    Ok(statement)
}

/// Approves a draft; the version in force until now is superseded, and every channel gets
/// the new one.
pub async fn approve_statement(
    tx: &mut dyn EscTx,
    incident_id: String,
    version: i32,
    request: Option<RequestKey>,
    principal: Arc<Principal>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Statement> {
    let Stored { record: mut incident, version: incident_version } =
        incident_in_scope(tx, &incident_id, &principal).await?;
    if let Some(done) = replayed::<Statement>(tx, request.as_ref()).await? {
        return Ok(done);
    }
    if !incident::is_open(&incident) {
        return Err(DomainError::IncidentState { action: "approving a statement", current: incident.state() }.into());
    }
    let mut all = tx.statements(&incident.name).await?;
    if !all.iter().any(|s| s.version == version) {
        return Err(EscalationError::not_found("statement", statement::name(&incident.name, version)));
    }
    let actor = Actor::of(&principal, now);
    let (changed, change) = statement::approve(&mut all, version, &rules.statement_approver_roles, &actor)?;
    for s in &changed {
        tx.put_statement(s, false).await?;
    }
    let approved = changed[0].clone();
    incident.current_statement = approved.name.clone();
    incident.timeline.push(TimelineEntry {
        kind: redress_proto::redress::escalation::v1::TimelineEntryKind::System as i32,
        time: Some(to_timestamp(now)),
        text: format!("统一口径第{}版已审批，各渠道统一使用", approved.version),
        recorded_by: actor.subject.clone(),
        statement: approved.name.clone(),
        ..TimelineEntry::default()
    });
    incident::touch(&mut incident, now);
    let event = NewEvent::new(
        &incident.name,
        &incident.org_unit,
        &StatementApproved { statement: Some(approved.clone()), superseded: change.details["superseded"].clone() },
    );
    save_incident(tx, &mut incident, incident_version, &[event]).await?;
    remember(tx, request.as_ref(), &approved, now).await?;
    Ok(approved)
}

/// Records a use of a statement on a channel; only the one in force may be used.
pub struct Use {
    pub incident: String,
    pub version: i32,
    pub channel: String,
    pub case: String,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn use_statement(tx: &mut dyn EscTx, u: Use, now: DateTime<Utc>) -> Result<StatementUse> {
    let name = format!("incidents/{}", u.incident);
    let incident = tx.load_incident(&u.incident).await?.map(|s| s.record);
    // A member case's handler uses the statement for their case, within their own unit.
    let member_case = if u.case.is_empty() {
        None
    } else {
        tx.complaint_of_case(&u.case).await?.filter(|k| u.principal.covers(&k.org_unit))
    };
    let member_of = match &member_case {
        Some(k) => tx.incidents_of(&k.complaint).await?.contains(&name),
        None => false,
    };
    let Some(_) = incident.filter(|i| u.principal.covers(&i.org_unit) || member_of) else {
        return Err(EscalationError::not_found("incident", name));
    };
    if let Some(done) = replayed::<StatementUse>(tx, u.request.as_ref()).await? {
        return Ok(done);
    }
    let statement = tx
        .statements(&name)
        .await?
        .into_iter()
        .find(|s| s.version == u.version)
        .ok_or_else(|| EscalationError::not_found("statement", statement::name(&name, u.version)))?;
    statement::check_use(&statement)?;
    let used = StatementUse {
        statement: Some(statement),
        channel: u.channel,
        case: u.case,
        used_by: u.principal.subject.clone(),
        use_time: Some(to_timestamp(now)),
    };
    tx.insert_statement_use(&uuid::Uuid::now_v7().to_string(), &used).await?;
    remember(tx, u.request.as_ref(), &used, now).await?;
    Ok(used)
}

/// Raises a case's escalation by hand.
pub struct ManualRaise {
    pub case: String,
    pub level: Option<EscalationLevel>,
    pub reason: String,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn raise_escalation(
    tx: &mut dyn EscTx,
    r: ManualRaise,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Escalation> {
    let known = tx
        .complaint_of_case(&r.case)
        .await?
        .filter(|k| r.principal.covers(&k.org_unit))
        .ok_or_else(|| EscalationError::not_found("case", r.case.clone()))?;
    if let Some(done) = replayed::<Escalation>(tx, r.request.as_ref()).await? {
        return Ok(done);
    }
    let how = r.level.map_or(Raise::Next, Raise::To);
    let raised = raise_for(tx, &known, how, r.reason, &Actor::of(&r.principal, now), rules).await?;
    let escalation =
        raised.ok_or_else(|| EscalationError::Internal(anyhow::anyhow!("a manual raise raised nothing")))?;
    remember(tx, r.request.as_ref(), &escalation, now).await?;
    Ok(escalation)
}

fn target_of(known: &Known) -> Target {
    Target {
        complaint: known.complaint.clone(),
        case: known.case.clone().unwrap_or_default(),
        org_unit: known.org_unit.clone(),
        grade: known.grade,
        assignee: known.assignee.clone(),
        department: known.department.clone(),
    }
}

/// Raises the escalation of `known`'s case as `how` says, with its event and, at the top,
/// the request for the regulator report. `None` when the level was reached already.
pub(crate) async fn raise_for(
    tx: &mut dyn EscTx,
    known: &Known,
    how: Raise,
    reason: String,
    actor: &Actor,
    rules: &Rules,
) -> Result<Option<Escalation>> {
    let existing = tx.escalation_of(&known.complaint).await?;
    let version = existing.as_ref().map(|s| s.version);
    let target = target_of(known);
    let Some(raised) =
        ladder::raise(&rules.ladder, existing.map(|s| s.record), new_name("escalations"), &target, how, reason, actor)?
    else {
        return Ok(None);
    };
    Ok(Some(write_raised(tx, raised, version, actor).await?))
}

async fn write_raised(
    tx: &mut dyn EscTx,
    raised: ladder::Raised,
    version: Option<i64>,
    actor: &Actor,
) -> Result<Escalation> {
    let ladder::Raised { mut escalation, step, previous, report_task } = raised;
    escalation.etag = etag(version.map_or(1, |v| v + 1));
    tx.put_escalation(&escalation, version, check_us(ladder::next_check(&escalation))).await?;
    if let Some(request) = report_task {
        let action = CaseAction {
            key: format!("report:{}:{}", id_of(&escalation.name), escalation.steps.len()),
            complaint: escalation.complaint.clone(),
            org_unit: escalation.org_unit.clone(),
            request,
        };
        tx.insert_action(&action, to_micros(actor.now)).await?;
    }
    let event =
        EscalationRaised { escalation: Some(escalation.clone()), step: Some(step), previous_level: previous as i32 };
    tx.append_events(&[NewEvent::new(&escalation.name, &escalation.org_unit, &event)]).await?;
    Ok(escalation)
}

/// Acknowledges an escalation's current step.
pub struct Acknowledgement {
    pub id: String,
    pub expected_version: Option<i64>,
    pub note: String,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn acknowledge_escalation(
    tx: &mut dyn EscTx,
    a: Acknowledgement,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Escalation> {
    let Stored { record: mut escalation, version } = tx
        .load_escalation(&a.id)
        .await?
        .filter(|s| a.principal.covers(&s.record.org_unit))
        .ok_or_else(|| EscalationError::not_found("escalation", format!("escalations/{}", a.id)))?;
    if let Some(done) = replayed::<Escalation>(tx, a.request.as_ref()).await? {
        return Ok(done);
    }
    if let Some(expected) = a.expected_version
        && expected != version
    {
        return Err(EscalationError::EtagMismatch { given: etag(expected), current: etag(version) });
    }
    ladder::acknowledge(&rules.ladder, &mut escalation, a.note, &Actor::of(&a.principal, now))?;
    escalation.etag = etag(version + 1);
    tx.put_escalation(&escalation, Some(version), check_us(ladder::next_check(&escalation))).await?;
    remember(tx, a.request.as_ref(), &escalation, now).await?;
    Ok(escalation)
}

pub async fn acknowledge_alert(
    tx: &mut dyn EscTx,
    id: String,
    request: Option<RequestKey>,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Alert> {
    let mut alert = tx
        .load_alert(&id)
        .await?
        .filter(|a| principal.covers(&a.org_unit))
        .ok_or_else(|| EscalationError::not_found("alert", format!("alerts/{id}")))?;
    if let Some(done) = replayed::<Alert>(tx, request.as_ref()).await? {
        return Ok(done);
    }
    if !alert.acknowledged_by.is_empty() {
        return Err(DomainError::AlertAcknowledged.into());
    }
    alert.acknowledged_by = principal.subject.clone();
    alert.acknowledge_time = Some(to_timestamp(now));
    tx.save_alert(&alert).await?;
    remember(tx, request.as_ref(), &alert, now).await?;
    Ok(alert)
}

/// Records an alert once per cause, with its event; whether it was new.
pub(crate) async fn raise_alert(tx: &mut dyn EscTx, alert: &Alert, cause: &str) -> Result<bool> {
    if !tx.insert_alert(alert, cause).await? {
        return Ok(false);
    }
    tx.append_events(&[NewEvent::new(&alert.name, &alert.org_unit, &AlertRaised { alert: Some(alert.clone()) })])
        .await?;
    Ok(true)
}

/// The sweep of one escalation: calls in the next level when its step timed out.
pub async fn sweep_escalation(tx: &mut dyn EscTx, id: String, rules: &Rules, now: DateTime<Utc>) -> Result<bool> {
    let Some(Stored { record, version }) = tx.load_escalation(&id).await? else { return Ok(false) };
    let known = tx.complaint(&record.complaint).await?.unwrap_or_default();
    let target = Target { org_unit: record.org_unit.clone(), case: record.case.clone(), ..target_of(&known) };
    let actor = Actor::service(now);
    match ladder::sweep(&rules.ladder, &record, &target, &actor)? {
        Some(raised) => {
            write_raised(tx, raised, Some(version), &actor).await?;
            Ok(true)
        }
        None => {
            // Nothing due (acknowledged meanwhile): look again when it is.
            tx.put_escalation(&record, Some(version), check_us(ladder::next_check(&record))).await?;
            Ok(false)
        }
    }
}

/// The sweep of one incident: marks an overdue crisis stage and alerts the working group.
pub async fn sweep_incident(tx: &mut dyn EscTx, id: String, now: DateTime<Utc>) -> Result<bool> {
    let Some(Stored { record: mut incident, version }) = tx.load_incident(&id).await? else { return Ok(false) };
    let Some((change, stage)) = incident::mark_stage_overdue(&mut incident, now) else {
        tx.save_incident(&incident, version, check_us(incident::next_check(&incident))).await?;
        return Ok(false);
    };
    let actor = Actor::service(now);
    let mut recipients: Vec<String> = incident
        .working_group
        .iter()
        .flat_map(|g| g.members.iter().map(|m| crate::domain::user_recipient(&m.subject)))
        .collect();
    if recipients.is_empty() {
        recipients.push(format!("org_unit:{}", incident.org_unit));
    }
    let alert = Alert {
        name: new_name("alerts"),
        kind: AlertKind::CrisisStageOverdue as i32,
        org_unit: incident.org_unit.clone(),
        recipients,
        reason: format!("{}阶段的对外沟通已超过时限：{}", stage_label(stage), incident.title),
        evidence: change.details.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        incident: incident.name.clone(),
        create_time: Some(to_timestamp(now)),
        ..Alert::default()
    };
    raise_alert(tx, &alert, &format!("stage-overdue:{}:{}", id, incident.stages.len())).await?;
    incident::touch(&mut incident, now);
    let event = incident_changed(&incident, &change, &actor);
    save_incident(tx, &mut incident, version, &[event]).await?;
    Ok(true)
}

/// How an attempt at a request to CaseService went.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// Done (or found done: a retry answered with the first result, a link that exists).
    Done,
    /// Refused for a reason retrying cannot fix.
    Refused(String),
    /// Failed for now; try again at the given time.
    Retry(String, DateTime<Utc>),
}

/// Records an attempt; a link done marks the member linked and announces it.
pub async fn finish_action(
    tx: &mut dyn EscTx,
    due: super::DueAction,
    attempt: Attempt,
    lead_case: String,
    now: DateTime<Utc>,
) -> Result<()> {
    let now_us = to_micros(now);
    match attempt {
        Attempt::Retry(why, at) => {
            tx.finish_action(&due.key, 0, &why, to_micros(at), now_us).await?;
            return Ok(());
        }
        Attempt::Refused(why) => {
            if tx.finish_action(&due.key, 2, &why, now_us, now_us).await? {
                tracing::warn!(action = %due.key, error = %why, "case service refused a request; it is not retried");
                metrics::counter!("redress_escalation_case_requests_refused_total", "kind" => due.request.kind())
                    .increment(1);
            }
            return Ok(());
        }
        Attempt::Done => {
            if !tx.finish_action(&due.key, 1, "", now_us, now_us).await? {
                // Another replica finished it, and announced it.
                return Ok(());
            }
        }
    }
    let CaseRequest::LinkParent { incident: incident_name, .. } = &due.request else { return Ok(()) };
    let id = id_of(incident_name).to_owned();
    let Some(Stored { record: mut incident, version }) = tx.load_incident(&id).await? else { return Ok(()) };
    if let Some(mut member) = tx.load_member(incident_name, &due.complaint).await? {
        member.linked = true;
        member.case = due.case.clone();
        tx.save_member(&member).await?;
    }
    if incident.lead_case.is_empty() {
        incident.lead_case = lead_case.clone();
    }
    let event = CaseLinkedToIncident {
        incident: incident.name.clone(),
        complaint: due.complaint.clone(),
        case: due.case.clone(),
        lead_case,
        kind: incident.kind,
    };
    let event = NewEvent::new(&incident.name, &incident.org_unit, &event);
    save_incident(tx, &mut incident, version, &[event]).await
}

/// The text of a complaint to match, as intake holds it.
#[derive(Debug, Clone)]
pub struct MatchInput {
    pub complaint: String,
    pub facts: String,
    pub demand: String,
    /// The blind indexes of the complainant, when the institution keeps a VIP register.
    pub digests: Vec<String>,
}

/// What matching a complaint did.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOutcome {
    pub cluster: String,
    /// The incident the cluster is (or became), if any.
    pub incident: Option<String>,
    /// The complaint it matched best and how well ("" and 0 when none).
    pub matched_with: String,
    pub score: f64,
}

fn member_match(row: &FingerprintRow) -> MemberMatch {
    MemberMatch {
        complaint: row.complaint.clone(),
        matched_with: row.matched_with.clone(),
        score: row.score,
        shared_terms: row.shared_terms.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
    }
}

/// The evidence of a cluster's decision: its members, how each matched, what they share.
fn evidence(
    rule: String,
    complainants: i64,
    burst: i64,
    members: &[FingerprintRow],
    config: &GroupingConfig,
) -> DetectionEvidence {
    let tokens: Vec<Vec<String>> = members.iter().map(FingerprintRow::tokens).collect();
    DetectionEvidence {
        rule,
        complainant_count: i32::try_from(complainants).unwrap_or(i32::MAX),
        burst_count: i32::try_from(burst).unwrap_or(i32::MAX),
        shared_terms: grouping::shared_terms(tokens.iter().map(Vec::as_slice), 8),
        matches: members.iter().take(200).map(member_match).collect(),
        method: config.matching.method(),
    }
}

/// Matches an accepted complaint against the recent ones of its institution (D-ESC-2): it
/// joins the cluster of what it matches (merging clusters it bridges that have no incident
/// yet); a cluster that reaches the thresholds is proposed or declared as an incident, and a
/// member of one that already is joins it (and is linked under its lead case once declared).
/// Matched once: a complaint matched before is only taken off the queue.
pub async fn match_complaint(
    tx: &mut dyn EscTx,
    input: MatchInput,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Option<MatchOutcome>> {
    tx.dequeue_match(&input.complaint).await?;
    if tx.fingerprinted(&input.complaint).await? {
        return Ok(None);
    }
    let Some(known) = tx.complaint(&input.complaint).await?.filter(|k| k.accepted.is_some()) else { return Ok(None) };
    // A complainant who restricted the processing of their personal information (PIPL
    // Art.44) is not looked up in the VIP register: their information serves only to handle
    // the complaint itself.
    if !input.digests.is_empty() && !known.restricted {
        super::special::route_vip(tx, &known, &input.digests, rules, now).await?;
    }
    let accepted = known.accepted.clone().unwrap_or_default();
    let config = &rules.grouping;
    let institution = crate::domain::institution_of(&known.org_unit);
    let receive = accepted.receive_time.as_ref().and_then(from_timestamp).unwrap_or(now);
    let class = accepted.classification.clone().unwrap_or_default();
    let fp = grouping::fingerprint(&input.facts, &input.demand, &class.business_type, &class.cause, &config.matching);
    let window = config.window();
    // Only what retention keeps is compared, whenever it last ran: a complaint that reaches
    // matching more than `late_days` after its receive time (backdated, imported, or held up)
    // sees only complaints received since the cutoff, and one received before the cutoff
    // stores no bands (retention would forget them at its next pass).
    let kept_since = config.kept_since(now);
    let from = (receive - window).max(kept_since);
    let candidates = tx.candidates(&institution, &fp.buckets, to_micros(from), to_micros(receive + window)).await?;
    let mut scored = Vec::new();
    for c in candidates.into_iter().filter(|c| c.complaint != input.complaint) {
        let other = Fingerprint {
            tokens: c.tokens(),
            buckets: Vec::new(),
            business_type: c.business_type.clone(),
            cause: c.cause.clone(),
        };
        let (score, shared) = grouping::similarity(&fp, &other, &config.matching);
        if grouping::matches(score, &shared, &config.matching) {
            scored.push((c, score, shared));
        }
    }
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (c, _, _) in &scored {
        *counts.entry(c.cluster.clone()).or_default() += 1;
    }
    let mut matched = Vec::new();
    for (cluster, count) in counts {
        let incident = match tx.cluster(&cluster).await?.flatten() {
            Some(name) => tx.load_incident(id_of(&name)).await?.map(|s| s.record.state()),
            None => None,
        };
        matched.push(grouping::Matched { cluster, incident, count });
    }
    let target = match grouping::choose(&matched) {
        Some(m) => m.cluster.clone(),
        None => {
            let id = id_of(&input.complaint).to_owned();
            tx.insert_cluster(&id, &institution).await?;
            id
        }
    };
    for m in matched.iter().filter(|m| m.cluster != target && m.incident.is_none()) {
        tx.merge_cluster(&m.cluster, &target).await?;
    }
    let best = scored
        .iter()
        .filter(|(c, _, _)| matched.iter().any(|m| m.cluster == c.cluster))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.complaint.cmp(&a.0.complaint)));
    let row = FingerprintRow {
        complaint: input.complaint.clone(),
        institution: institution.clone(),
        receive_time_us: to_micros(receive),
        cluster: target.clone(),
        complainant_key: if known.complainant_key.is_empty() {
            known.complaint.clone()
        } else {
            known.complainant_key.clone()
        },
        tokens: fp.tokens.join(" "),
        business_type: class.business_type.clone(),
        cause: class.cause.clone(),
        matched_with: best.map(|b| b.0.complaint.clone()).unwrap_or_default(),
        score: best.map(|b| b.1).unwrap_or_default(),
        shared_terms: best.map(|b| b.2.join(" ")).unwrap_or_default(),
    };
    let bands: &[i64] = if receive >= kept_since { &fp.buckets } else { &[] };
    tx.insert_fingerprint(&row, bands).await?;
    let merged = matched.iter().any(|m| m.cluster != target && m.incident.is_none());
    let incident = grow(tx, &row, merged, receive, rules, now).await?;
    Ok(Some(MatchOutcome { cluster: target, incident, matched_with: row.matched_with, score: row.score }))
}

/// What a cluster that grew calls for: its incident takes the new members (and is declared
/// once it reaches the declaring threshold), or it becomes an incident at the thresholds.
async fn grow(
    tx: &mut dyn EscTx,
    row: &FingerprintRow,
    merged: bool,
    receive: DateTime<Utc>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let (cluster, institution) = (row.cluster.as_str(), row.institution.as_str());
    let config = &rules.grouping;
    let actor = Actor::service(now);
    let existing = match tx.cluster(cluster).await?.flatten() {
        Some(name) => match tx.load_incident(id_of(&name)).await? {
            Some(stored) => Some(stored),
            None => return Ok(None),
        },
        None => None,
    };
    // A declared incident's cluster needs no counting any more: it only takes members.
    let decided =
        existing.as_ref().is_some_and(|s| matches!(s.record.state(), IncidentState::Declared | IncidentState::Closed));
    let (complainants, burst) = if decided {
        (0, 0)
    } else {
        tx.cluster_counts(cluster, to_micros(receive - config.burst_window()), to_micros(receive)).await?
    };
    let threshold = if decided {
        grouping::Threshold::Below
    } else {
        grouping::threshold(
            u32::try_from(complainants).unwrap_or(u32::MAX),
            u32::try_from(burst).unwrap_or(u32::MAX),
            config,
        )
    };
    let fresh = existing.is_none();
    let (mut incident, version) = match existing {
        Some(Stored { record, version }) => (record, Some(version)),
        None => {
            let (grouping::Threshold::Propose(_) | grouping::Threshold::Declare(_)) = &threshold else {
                return Ok(None);
            };
            let members = tx.cluster_members(cluster).await?;
            let tokens: Vec<Vec<String>> = members.iter().map(FingerprintRow::tokens).collect();
            let terms = grouping::shared_terms(tokens.iter().map(Vec::as_slice), 3);
            let title = format!("疑似群体性投诉：{}", terms.join("、"));
            let summary = format!("{} 位投诉人反映相似问题（{}）", complainants, institution);
            let incident = incident::open(
                new_name("incidents"),
                IncidentKind::Group,
                institution.to_owned(),
                title,
                summary,
                None,
                &actor,
            );
            tx.set_cluster_incident(cluster, &incident.name).await?;
            (incident, None)
        }
    };
    if incident.state() == IncidentState::Closed {
        return Ok(Some(incident.name));
    }
    // The members who join: the whole cluster when the incident is new or clusters merged
    // (earliest first, those not members yet), else just this complaint.
    let members = if fresh || merged || !matches!(threshold, grouping::Threshold::Below) {
        tx.cluster_members(cluster).await?
    } else {
        vec![row.clone()]
    };
    let mut joined = Vec::new();
    for member in &members {
        if !fresh && tx.load_member(&incident.name, &member.complaint).await?.is_some() {
            continue;
        }
        let Some(known) = tx.complaint(&member.complaint).await? else { continue };
        join(tx, &mut incident, &known, "detected", Some(member_match(member)), &actor).await?;
        joined.push(member.complaint.clone());
    }
    let rule = match &threshold {
        grouping::Threshold::Propose(r) | grouping::Threshold::Declare(r) => r.clone(),
        grouping::Threshold::Below => String::new(),
    };
    let mut events = Vec::new();
    let declare = matches!(threshold, grouping::Threshold::Declare(_))
        && matches!(incident.state(), IncidentState::Proposed | IncidentState::Dismissed);
    if version.is_none() || declare {
        incident.evidence = Some(evidence(rule.clone(), complainants, burst, &members, config));
    }
    if version.is_none() {
        let alert = Alert {
            name: new_name("alerts"),
            kind: AlertKind::IncidentProposed as i32,
            org_unit: incident.org_unit.clone(),
            recipients: vec![format!("org_unit:{}", incident.org_unit), "role:senior_manager".to_owned()],
            reason: format!("{}：{}", incident.title, rule),
            evidence: incident.evidence.as_ref().map(|e| e.shared_terms.clone()).unwrap_or_default(),
            incident: incident.name.clone(),
            create_time: Some(to_timestamp(now)),
            ..Alert::default()
        };
        raise_alert(tx, &alert, &format!("incident-proposed:{}", id_of(&incident.name))).await?;
        if !declare {
            let change =
                Change::new("incident.proposed", [("rule", rule.clone()), ("members", members.len().to_string())]);
            events.push(incident_changed(&incident, &change, &actor));
        }
    } else if !joined.is_empty() && incident.state() != IncidentState::Dismissed {
        let change = Change::new(
            "incident.member_joined",
            [
                ("complaint", joined.join(",")),
                ("source", "detected".to_owned()),
                ("members", incident.member_count.to_string()),
            ],
        );
        events.push(incident_changed(&incident, &change, &actor));
    }
    if declare {
        let first = super::special::stage_with_template(tx, &incident.org_unit, first_stage(rules)?).await?;
        let change = incident::declare(&mut incident, rule, &first, &actor)?;
        link_members(tx, &mut incident, now).await?;
        events.push(announce(&incident, &change, &actor));
    }
    incident::touch(&mut incident, now);
    match version {
        None => {
            incident.etag = etag(1);
            tx.insert_incident(&incident, check_us(incident::next_check(&incident))).await?;
            tx.append_events(&events).await?;
        }
        Some(version) => save_incident(tx, &mut incident, version, &events).await?,
    }
    Ok(Some(incident.name))
}

/// Applies a batch of a followed feed strictly in order after the stored position.
pub async fn apply_batch(
    tx: &mut dyn EscTx,
    consumer: &'static str,
    events: &[Event],
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<i64> {
    let mut feeds = Feeds { consumer, rules, now };
    consumer::apply_in_order(tx, consumer, events, &mut feeds).await
}

/// Applies a dead letter again, or returns it unchanged when it was replayed before.
pub async fn replay(tx: &mut dyn EscTx, replay: &Replay, rules: &Rules, now: DateTime<Utc>) -> Result<DeadLetter> {
    let consumer = match replay.consumer.as_str() {
        INTAKE_CONSUMER => INTAKE_CONSUMER,
        CASE_CONSUMER => CASE_CONSUMER,
        _ => return Err(replay.not_found().into()),
    };
    let mut feeds = Feeds { consumer, rules, now };
    consumer::replay(tx, replay, &mut feeds).await
}

/// What the followed feeds' events mean for the escalation service.
struct Feeds<'a> {
    consumer: &'static str,
    rules: &'a Rules,
    now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl<'a> ApplyEvent<dyn EscTx + 'a> for Feeds<'_> {
    type Error = EscalationError;

    async fn apply(&mut self, tx: &mut (dyn EscTx + 'a), event: &Event) -> Result<Effect> {
        let payload = event.payload.as_ref().map(|p| p.value.as_slice()).unwrap_or_default();
        macro_rules! decode {
            ($ty:ty) => {
                match <$ty>::decode(payload) {
                    Ok(m) => m,
                    Err(e) => return Ok(Effect::Unappliable(format!("{} does not decode: {e}", event.event_type))),
                }
            };
        }
        match (self.consumer, event.event_type.as_str()) {
            (INTAKE_CONSUMER, "redress.intake.v1.ComplaintAccepted") => {
                let accepted = decode!(ComplaintAccepted);
                accept(tx, &accepted, payload).await?;
                tx.enqueue_match(&accepted.complaint, event.position, &accepted.org_unit).await?;
            }
            // The complainant restricted the processing of their personal information, or lifted
            // that: a complaint not matched yet is matched (or not) against the VIP register by
            // what holds when it is.
            (INTAKE_CONSUMER, "redress.intake.v1.ComplaintProcessingRestricted") => {
                let changed = decode!(ComplaintProcessingRestricted);
                tx.record_restriction(&changed.complaint, &changed.org_unit, changed.restricted).await?;
            }
            (INTAKE_CONSUMER, "redress.intake.v1.RiskSignalRaised") => {
                let raised = decode!(RiskSignalRaised);
                early_warning(tx, &raised, self.rules, self.now).await?;
            }
            (CASE_CONSUMER, "redress.case.v1.CaseOpened") => {
                let case = decode!(CaseOpened).case.unwrap_or_default();
                follow_case(tx, &case, self.rules, self.now).await?;
                if !case.complaint.is_empty() && !case.name.is_empty() {
                    note_case_of_member(tx, &case.complaint, &case.name).await?;
                }
            }
            (CASE_CONSUMER, "redress.case.v1.CaseChanged") => {
                let case = decode!(CaseChanged).case.unwrap_or_default();
                follow_case(tx, &case, self.rules, self.now).await?;
            }
            (CASE_CONSUMER, "redress.case.v1.CaseClosed") => {
                let case = decode!(CaseClosed).case.unwrap_or_default();
                follow_case(tx, &case, self.rules, self.now).await?;
            }
            (CASE_CONSUMER, "redress.case.v1.EscalationRequired") => {
                let required = decode!(EscalationRequired);
                let case = required.case.clone().unwrap_or_default();
                // Recorded without the generic major-grade step: this one says why.
                follow_case_as(tx, &case, false, self.rules, self.now).await?;
                let known = tx.complaint(&case.complaint).await?.unwrap_or_default();
                if !known.complaint.is_empty() && known.case_open {
                    let reason = if required.reason.is_empty() {
                        ladder::grade_reason(Grade::Major)
                    } else {
                        format!("{}（{}）", ladder::grade_reason(Grade::Major), required.reason)
                    };
                    let how = Raise::AtLeast(EscalationLevel::SeniorManagement);
                    raise_for(tx, &known, how, reason, &Actor::service(self.now), self.rules).await?;
                }
            }
            // Everything else on these feeds means nothing here.
            _ => {}
        }
        Ok(Effect::Applied)
    }
}

/// Records an accepted complaint with the key of its complainant: the first complaint of the
/// chain of repeats intake found by blind index.
async fn accept(tx: &mut dyn EscTx, accepted: &ComplaintAccepted, payload: &[u8]) -> Result<()> {
    let key = if accepted.recurrence_of.is_empty() {
        accepted.complaint.clone()
    } else {
        match tx.complaint(&accepted.recurrence_of).await? {
            Some(earlier) if !earlier.complainant_key.is_empty() => earlier.complainant_key,
            _ => accepted.recurrence_of.clone(),
        }
    };
    tx.record_accepted(&accepted.complaint, &accepted.org_unit, accepted.grade, &key, payload).await
}

/// Early-warning signals: an alert to the front line and supervisor, and what the rules ask.
async fn early_warning(tx: &mut dyn EscTx, raised: &RiskSignalRaised, rules: &Rules, now: DateTime<Utc>) -> Result<()> {
    let known = tx.complaint(&raised.complaint).await?.unwrap_or_else(|| Known {
        complaint: raised.complaint.clone(),
        org_unit: raised.org_unit.clone(),
        grade: raised.grade,
        ..Known::default()
    });
    let signalled = Signalled {
        complaint: raised.complaint.clone(),
        org_unit: raised.org_unit.clone(),
        grade: known.grade.max(raised.grade),
        front_line: known
            .accepted
            .as_ref()
            .and_then(|a| a.first_contact.as_ref())
            .map(|f| f.subject.clone())
            .unwrap_or_default(),
    };
    let actor = Actor::service(now);
    let warning = early_warning::assess(&rules.early_warning, new_name("alerts"), &signalled, &raised.signals, &actor);
    if !raise_alert(tx, &warning.alert, &format!("early-warning:{}", raised.complaint)).await? {
        return Ok(());
    }
    let mut grade = signalled.grade;
    if let Some(request) = warning.grade_change {
        if let CaseRequest::ChangeGrade { grade: to, .. } = &request {
            grade = *to;
        }
        let action = CaseAction {
            key: format!("grade:{}:early-warning", id_of(&raised.complaint)),
            complaint: raised.complaint.clone(),
            org_unit: raised.org_unit.clone(),
            request,
        };
        tx.insert_action(&action, to_micros(now)).await?;
    }
    if warning.escalate {
        let known = Known { org_unit: raised.org_unit.clone(), grade, ..known };
        let start = rules.ladder.start(grade);
        let reason = format!("预警规则 {} 要求升级处理", warning.matched.join("、"));
        raise_for(tx, &known, Raise::AtLeast(start), reason, &actor, rules).await?;
    }
    Ok(())
}

/// Where a case stands, from its feed; a major case reaches senior management at once, and an
/// ended case's escalation closes.
async fn follow_case(tx: &mut dyn EscTx, case: &Case, rules: &Rules, now: DateTime<Utc>) -> Result<()> {
    follow_case_as(tx, case, true, rules, now).await
}

/// A complaint matched into an incident before its case opened learns its case now: its
/// membership names it, and an incident it leads names it as its lead case (the other members
/// learn theirs when linked under it).
async fn note_case_of_member(tx: &mut dyn EscTx, complaint: &str, case: &str) -> Result<()> {
    for incident_name in tx.incidents_of(complaint).await? {
        let Some(mut member) = tx.load_member(&incident_name, complaint).await? else { continue };
        if !member.case.is_empty() {
            continue;
        }
        member.case = case.to_owned();
        tx.save_member(&member).await?;
        if tx.lead_member(&incident_name).await?.as_deref() == Some(complaint)
            && let Some(Stored { record: mut incident, version }) = tx.load_incident(id_of(&incident_name)).await?
            && incident.lead_case.is_empty()
        {
            incident.lead_case = case.to_owned();
            save_incident(tx, &mut incident, version, &[]).await?;
        }
    }
    Ok(())
}

/// [`follow_case`], raising a major case itself only when `raise_major`.
async fn follow_case_as(
    tx: &mut dyn EscTx,
    case: &Case,
    raise_major: bool,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<()> {
    if case.complaint.is_empty() || case.name.is_empty() {
        return Ok(());
    }
    let state = CaseState::try_from(case.state).unwrap_or(CaseState::Unspecified);
    let facts = CaseFacts {
        case: case.name.clone(),
        org_unit: case.org_unit.clone(),
        grade: case.grade,
        assignee: case.assignee.clone(),
        department: case.department.clone(),
        open: !matches!(state, CaseState::Closed | CaseState::Withdrawn) && case.merged_into.is_empty(),
    };
    tx.record_case(&case.complaint, &facts).await?;
    let known = tx.complaint(&case.complaint).await?.unwrap_or_default();
    if let Some(Stored { record: mut escalation, version }) = tx.escalation_of(&case.complaint).await? {
        let mut changed = escalation.case.is_empty();
        escalation.case = case.name.clone();
        if !facts.open {
            changed |= ladder::close(&mut escalation, "case ended", now).is_some();
        }
        if changed {
            escalation.etag = etag(version + 1);
            tx.put_escalation(&escalation, Some(version), check_us(ladder::next_check(&escalation))).await?;
        }
    }
    if raise_major && facts.open && case.grade == Grade::Major as i32 {
        let reason = ladder::grade_reason(Grade::Major);
        raise_for(tx, &known, Raise::AtLeast(EscalationLevel::SeniorManagement), reason, &Actor::service(now), rules)
            .await?;
    }
    Ok(())
}
