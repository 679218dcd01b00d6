//! How `redress case` and `redress complaint` print what the gateway answered: a compact summary for people, or the
//! message as JSON for scripts (protobuf's JSON mapping with the proto field names: enums by
//! name, times in RFC 3339 UTC, 64-bit integers as strings, and every field present), and how
//! it tells an error.

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, SecondsFormat};
use clap::ValueEnum;
use prost_types::Timestamp;
use redress_proto::redress::case::v1::{
    AuditEntry, Case, CaseLink, CaseState, ClockKind, ClockPause, ClockStatus, ClockUnit, CoordinationTask,
    EvidenceReference, LinkType, ListAuditEntriesResponse, ListCasesResponse, Money, PauseReason, Resolution,
    ResolutionType, SlaClock, Survey, Transfer, VerifyAuditChainResponse,
};
use redress_proto::redress::common::v1::{Channel, Deadlines, Grade};
use redress_proto::redress::intake::v1::{
    AgentRelation, Classification, ClassificationSource, Complaint, ComplaintState, EvidenceKind, IdDocumentType,
    ListComplaintsResponse, ListTaxonomiesResponse, NaturalPerson, Receipt, RiskSignalKind, SubmitComplaintResponse,
    Taxonomy, TaxonomyCode, complainant::Party,
};
use serde_json::{Value, json};
use tonic_types::StatusExt;

/// How to print a result.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A compact summary.
    Text,
    /// The message as JSON.
    Json,
}

/// What a command answered.
pub enum Reply {
    Case(Box<Case>),
    Cases(ListCasesResponse),
    Audit(ListAuditEntriesResponse),
    Verification {
        case: String,
        result: VerifyAuditChainResponse,
    },
    Complaint(Box<Complaint>),
    /// A submitted complaint, with the request id that repeats the submission safely.
    Submitted {
        response: Box<SubmitComplaintResponse>,
        request_id: String,
    },
    Complaints(ListComplaintsResponse),
    Taxonomies(ListTaxonomiesResponse),
}

/// The reply as printed, ending in a newline.
pub fn render(reply: &Reply, format: Format) -> String {
    match format {
        Format::Json => {
            let value = match reply {
                Reply::Case(c) => case_json(c),
                Reply::Cases(list) => json!({
                    "cases": list.cases.iter().map(case_json).collect::<Vec<_>>(),
                    "next_page_token": list.next_page_token,
                }),
                Reply::Audit(list) => json!({
                    "audit_entries": list.audit_entries.iter().map(audit_entry_json).collect::<Vec<_>>(),
                    "next_page_token": list.next_page_token,
                }),
                Reply::Verification { result, .. } => json!({
                    "intact": result.intact,
                    "entries": result.entries.to_string(),
                    "first_broken_sequence": result.first_broken_sequence.to_string(),
                    "reason": result.reason,
                }),
                Reply::Complaint(c) => complaint_json(c),
                Reply::Submitted { response, request_id } => json!({
                    "complaint": response.complaint.as_ref().map(complaint_json),
                    "receipt": response.receipt.as_ref().map(receipt_json),
                    "request_id": request_id,
                }),
                Reply::Complaints(list) => json!({
                    "complaints": list.complaints.iter().map(complaint_json).collect::<Vec<_>>(),
                    "next_page_token": list.next_page_token,
                }),
                Reply::Taxonomies(list) => json!({
                    "taxonomies": list.taxonomies.iter().map(taxonomy_json).collect::<Vec<_>>(),
                }),
            };
            format!("{value:#}\n")
        }
        Format::Text => match reply {
            Reply::Case(c) => case_text(c),
            Reply::Cases(list) => cases_text(list),
            Reply::Audit(list) => audit_text(list),
            Reply::Verification { case, result } if result.intact => {
                format!("{case}: audit chain intact ({} entries)\n", result.entries)
            }
            Reply::Verification { case, result } => format!(
                "{case}: audit chain BROKEN at entry {} of {}: {}\n",
                result.first_broken_sequence, result.entries, result.reason
            ),
            Reply::Complaint(c) => complaint_text(c),
            Reply::Submitted { response, request_id } => {
                let mut text = response.complaint.as_ref().map(complaint_text).unwrap_or_default();
                text.push_str(&format!("{:<12}{request_id}  (repeat it to retry safely)\n", "request id"));
                text
            }
            Reply::Complaints(list) => complaints_text(list),
            Reply::Taxonomies(list) => taxonomies_text(list),
        },
    }
}

/// A proto enum, known by its value names (`CASE_STATE_FOLLOW_UP`).
pub trait ProtoEnum {
    /// Shared prefix of the value names.
    const PREFIX: &'static str;
    fn name_of(value: i32) -> Option<&'static str>;
    fn value_of(name: &str) -> Option<i32>;
}

macro_rules! proto_enums {
    ($($ty:ty => $prefix:literal),* $(,)?) => {
        $(impl ProtoEnum for $ty {
            const PREFIX: &'static str = $prefix;
            fn name_of(value: i32) -> Option<&'static str> {
                <$ty>::try_from(value).ok().map(|e| e.as_str_name())
            }
            fn value_of(name: &str) -> Option<i32> {
                <$ty>::from_str_name(name).map(|e| e as i32)
            }
        })*
    };
}

proto_enums! {
    CaseState => "CASE_STATE_",
    Channel => "CHANNEL_",
    Grade => "GRADE_",
    ClockKind => "CLOCK_KIND_",
    ClockUnit => "CLOCK_UNIT_",
    ClockStatus => "CLOCK_STATUS_",
    PauseReason => "PAUSE_REASON_",
    ResolutionType => "RESOLUTION_TYPE_",
    LinkType => "LINK_TYPE_",
    ComplaintState => "COMPLAINT_STATE_",
    IdDocumentType => "ID_DOCUMENT_TYPE_",
    AgentRelation => "AGENT_RELATION_",
    EvidenceKind => "EVIDENCE_KIND_",
    ClassificationSource => "CLASSIFICATION_SOURCE_",
    RiskSignalKind => "RISK_SIGNAL_KIND_",
}

/// The word the command line uses for an enum value: `CASE_STATE_FOLLOW_UP` → `follow-up`.
fn word<E: ProtoEnum>(value: i32) -> String {
    match E::name_of(value) {
        Some(name) => name.strip_prefix(E::PREFIX).unwrap_or(name).to_ascii_lowercase().replace('_', "-"),
        None => format!("unknown({value})"),
    }
}

/// The enum value a word names: `mobile-app`, `mobile_app`, `MOBILE_APP` or `CHANNEL_MOBILE_APP`.
/// The unspecified value is named by no word.
pub fn from_word<E: ProtoEnum>(text: &str) -> Option<i32> {
    let name = text.trim().to_ascii_uppercase().replace('-', "_");
    let name = if name.starts_with(E::PREFIX) { name } else { format!("{}{name}", E::PREFIX) };
    E::value_of(&name).filter(|&value| value != 0)
}

/// Every word of an enum, as [`from_word`] takes and [`word`] prints them.
pub fn words<E: ProtoEnum>() -> Vec<String> {
    (1..=100).filter(|&value| E::name_of(value).is_some()).map(word::<E>).collect()
}

/// An enum value in JSON: its name, or the number when this client does not know it.
fn enum_json<E: ProtoEnum>(value: i32) -> Value {
    E::name_of(value).map_or_else(|| json!(value), |name| json!(name))
}

fn rfc3339(t: &Timestamp, format: SecondsFormat) -> Option<String> {
    let nanos = u32::try_from(t.nanos).ok()?;
    DateTime::from_timestamp(t.seconds, nanos).map(|time| time.to_rfc3339_opts(format, true))
}

fn time_json(t: Option<&Timestamp>) -> Value {
    match t {
        None => Value::Null,
        Some(t) => rfc3339(t, SecondsFormat::AutoSi)
            .map_or_else(|| json!({ "seconds": t.seconds.to_string(), "nanos": t.nanos }), Value::String),
    }
}

fn time_text(t: Option<&Timestamp>) -> String {
    match t {
        None => "-".to_owned(),
        Some(t) => rfc3339(t, SecondsFormat::Secs).unwrap_or_else(|| format!("{}s", t.seconds)),
    }
}

fn money_json(m: &Money) -> Value {
    json!({ "currency_code": m.currency_code, "amount_minor": m.amount_minor.to_string() })
}

fn money_text(m: &Money) -> String {
    let sign = if m.amount_minor < 0 { "-" } else { "" };
    let minor = m.amount_minor.unsigned_abs();
    format!("{} {sign}{}.{:02}", m.currency_code, minor / 100, minor % 100)
}

fn deadlines_json(d: &Deadlines) -> Value {
    json!({
        "first_response_due_time": time_json(d.first_response_due_time.as_ref()),
        "resolution_due_time": time_json(d.resolution_due_time.as_ref()),
        "regulatory_decision_due_time": time_json(d.regulatory_decision_due_time.as_ref()),
        "time_zone": d.time_zone,
        "grade": enum_json::<Grade>(d.grade),
        "pending_deadlines": d.pending_deadlines.iter().map(|p| json!({
            "deadline": p.deadline,
            "reason": p.reason,
            "missing_calendar_year": p.missing_calendar_year,
        })).collect::<Vec<_>>(),
    })
}

fn clock_json(c: &SlaClock) -> Value {
    json!({
        "kind": enum_json::<ClockKind>(c.kind),
        "unit": enum_json::<ClockUnit>(c.unit),
        "length": c.length,
        "start_time": time_json(c.start_time.as_ref()),
        "due_time": time_json(c.due_time.as_ref()),
        "status": enum_json::<ClockStatus>(c.status),
        "met_time": time_json(c.met_time.as_ref()),
        "at_risk": c.at_risk,
        "breached": c.breached,
        "pending_reason": c.pending_reason,
    })
}

fn pause_json(p: &ClockPause) -> Value {
    json!({
        "reason": enum_json::<PauseReason>(p.reason),
        "note": p.note,
        "pause_time": time_json(p.pause_time.as_ref()),
        "paused_by": p.paused_by,
        "resume_time": time_json(p.resume_time.as_ref()),
        "resumed_by": p.resumed_by,
    })
}

fn transfer_json(t: &Transfer) -> Value {
    json!({
        "from_department": t.from_department,
        "to_department": t.to_department,
        "reason": t.reason,
        "transferred_by": t.transferred_by,
        "transfer_time": time_json(t.transfer_time.as_ref()),
        "handoff_due_time": time_json(t.handoff_due_time.as_ref()),
        "accept_time": time_json(t.accept_time.as_ref()),
    })
}

fn resolution_json(r: &Resolution) -> Value {
    json!({
        "type": enum_json::<ResolutionType>(r.r#type),
        "compensation": r.compensation.as_ref().map(money_json),
        "grounds": r.grounds,
        "proposed_by": r.proposed_by,
        "propose_time": time_json(r.propose_time.as_ref()),
        "approval_required": r.approval_required,
        "approved_by": r.approved_by,
        "approve_time": time_json(r.approve_time.as_ref()),
        "decided_by": r.decided_by,
        "decision_notice": r.decision_notice,
    })
}

fn survey_json(s: &Survey) -> Value {
    json!({
        "score": s.score,
        "resolved": s.resolved,
        "comment": s.comment,
        "answer_time": time_json(s.answer_time.as_ref()),
    })
}

fn link_json(l: &CaseLink) -> Value {
    json!({
        "type": enum_json::<LinkType>(l.r#type),
        "case": l.case,
        "reason": l.reason,
        "linked_by": l.linked_by,
        "link_time": time_json(l.link_time.as_ref()),
    })
}

fn task_json(t: &CoordinationTask) -> Value {
    json!({
        "task_id": t.task_id,
        "department": t.department,
        "owner": t.owner,
        "description": t.description,
        "due_time": time_json(t.due_time.as_ref()),
        "complete_time": time_json(t.complete_time.as_ref()),
        "outcome": t.outcome,
        "created_by": t.created_by,
    })
}

fn evidence_json(e: &EvidenceReference) -> Value {
    json!({
        "uri": e.uri,
        "sha256": e.sha256,
        "kind": e.kind,
        "description": e.description,
        "added_by": e.added_by,
        "add_time": time_json(e.add_time.as_ref()),
    })
}

fn case_json(c: &Case) -> Value {
    let mut value = json!({
        "name": c.name,
        "case_number": c.case_number,
        "complaint": c.complaint,
        "state": enum_json::<CaseState>(c.state),
        "previous_state": enum_json::<CaseState>(c.previous_state),
        "assignee": c.assignee,
        "department": c.department,
        "org_unit": c.org_unit,
        "channel": enum_json::<Channel>(c.channel),
        "grade": enum_json::<Grade>(c.grade),
        "deadlines": c.deadlines.as_ref().map(deadlines_json),
        "receive_time": time_json(c.receive_time.as_ref()),
        "open_time": time_json(c.open_time.as_ref()),
        "update_time": time_json(c.update_time.as_ref()),
        "etag": c.etag,
        "institution": c.institution,
        "first_contact_owner": c.first_contact_owner,
        "complained_staff_ids": c.complained_staff_ids,
    });
    let more = json!({
        "clocks": c.clocks.iter().map(clock_json).collect::<Vec<_>>(),
        "pauses": c.pauses.iter().map(pause_json).collect::<Vec<_>>(),
        "transfers": c.transfers.iter().map(transfer_json).collect::<Vec<_>>(),
        "resolution": c.resolution.as_ref().map(resolution_json),
        "survey": c.survey.as_ref().map(survey_json),
        "links": c.links.iter().map(link_json).collect::<Vec<_>>(),
        "coordination_tasks": c.coordination_tasks.iter().map(task_json).collect::<Vec<_>>(),
        "evidence": c.evidence.iter().map(evidence_json).collect::<Vec<_>>(),
        "first_response_time": time_json(c.first_response_time.as_ref()),
        "decide_time": time_json(c.decide_time.as_ref()),
        "close_time": time_json(c.close_time.as_ref()),
        "review_count": c.review_count,
        "reopen_count": c.reopen_count,
        "merged_into": c.merged_into,
    });
    if let (Value::Object(fields), Value::Object(more)) = (&mut value, more) {
        fields.extend(more);
    }
    value
}

fn audit_entry_json(e: &AuditEntry) -> Value {
    json!({
        "case": e.case,
        "sequence": e.sequence.to_string(),
        "action": e.action,
        "actor": e.actor,
        "record_time": time_json(e.record_time.as_ref()),
        "details": e.details.iter().collect::<BTreeMap<_, _>>(),
        "previous_hash": e.previous_hash,
        "hash": e.hash,
    })
}

/// Label-and-value lines with the values aligned.
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn row(&mut self, label: &str, value: impl Display) {
        self.0.push_str(&format!("{label:<12}{value}\n"));
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn clock_text(c: &SlaClock) -> String {
    let unit = match ClockUnit::try_from(c.unit) {
        Ok(ClockUnit::Hours) => "hours".to_owned(),
        Ok(ClockUnit::WorkingDays) => "working days".to_owned(),
        Ok(ClockUnit::CalendarDays) => "calendar days".to_owned(),
        _ => word::<ClockUnit>(c.unit),
    };
    let mut line = format!(
        "{:<20} {:<18} {:<8} due {}",
        word::<ClockKind>(c.kind),
        format!("{} {unit}", c.length),
        word::<ClockStatus>(c.status),
        time_text(c.due_time.as_ref()),
    );
    if c.met_time.is_some() {
        line.push_str(&format!("  met {}", time_text(c.met_time.as_ref())));
    }
    if c.breached {
        line.push_str("  BREACHED");
    } else if c.at_risk {
        line.push_str("  at risk");
    }
    if !c.pending_reason.is_empty() {
        line.push_str(&format!("  pending: {}", c.pending_reason));
    }
    line
}

fn case_text(c: &Case) -> String {
    let mut s = Summary::default();
    s.row("case", format!("{}  no. {}", c.name, c.case_number));
    let mut state = word::<CaseState>(c.state);
    if c.previous_state != CaseState::Unspecified as i32 {
        state.push_str(&format!(" (was {})", word::<CaseState>(c.previous_state)));
    }
    s.row("state", state);
    s.row("complaint", &c.complaint);
    let handler = match (c.assignee.is_empty(), c.department.is_empty()) {
        (true, true) => "unassigned".to_owned(),
        (true, false) => format!("unassigned, with {}", c.department),
        (false, true) => c.assignee.clone(),
        (false, false) => format!("{} in {}", c.assignee, c.department),
    };
    s.row("handler", handler);
    s.row("org unit", or_dash(&c.org_unit));
    s.row("grade", word::<Grade>(c.grade));
    s.row("opened", time_text(c.open_time.as_ref()));
    for (i, clock) in c.clocks.iter().enumerate() {
        s.row(if i == 0 { "clocks" } else { "" }, clock_text(clock));
    }
    if let Some(pause) = c.pauses.last().filter(|p| p.resume_time.is_none()) {
        let note = if pause.note.is_empty() { String::new() } else { format!(": {}", pause.note) };
        s.row(
            "paused",
            format!("since {} ({}{note})", time_text(pause.pause_time.as_ref()), word::<PauseReason>(pause.reason)),
        );
    }
    for t in &c.transfers {
        let handoff = match &t.accept_time {
            Some(accepted) => format!("accepted {}", time_text(Some(accepted))),
            None => format!("handoff due {}", time_text(t.handoff_due_time.as_ref())),
        };
        s.row("transfer", format!("{} -> {}, {handoff}", or_dash(&t.from_department), t.to_department));
    }
    if let Some(r) = &c.resolution {
        let compensation = r.compensation.as_ref().map(|m| format!(", {}", money_text(m))).unwrap_or_default();
        s.row(
            "resolution",
            format!("{}{compensation}, proposed by {}", word::<ResolutionType>(r.r#type), or_dash(&r.proposed_by)),
        );
        if !r.approved_by.is_empty() {
            s.row("", format!("approved by {}", r.approved_by));
        } else if r.approval_required {
            s.row("", "awaiting approval");
        }
        s.row("", format!("grounds: {}", r.grounds));
        if !r.decided_by.is_empty() {
            s.row("decided", format!("{} by {}", time_text(c.decide_time.as_ref()), r.decided_by));
            s.row("", format!("notice: {}", r.decision_notice));
        }
    }
    if let Some(survey) = &c.survey {
        let resolved = if survey.resolved { "resolved" } else { "not resolved" };
        let comment = if survey.comment.is_empty() { String::new() } else { format!(", {:?}", survey.comment) };
        s.row("survey", format!("{}/5, {resolved}{comment}", survey.score));
    }
    for link in &c.links {
        s.row("link", format!("{} {}", word::<LinkType>(link.r#type), link.case));
    }
    for e in &c.evidence {
        s.row("evidence", format!("{} {} sha256 {}", e.kind, e.uri, e.sha256));
    }
    let open = c.coordination_tasks.iter().filter(|t| t.complete_time.is_none()).count();
    if !c.coordination_tasks.is_empty() {
        s.row("tasks", format!("{open} open, {} done", c.coordination_tasks.len() - open));
    }
    if c.close_time.is_some() {
        s.row("closed", time_text(c.close_time.as_ref()));
    }
    s.row("etag", &c.etag);
    s.0
}

fn cases_text(list: &ListCasesResponse) -> String {
    let mut out = String::new();
    if list.cases.is_empty() {
        out.push_str("no cases\n");
    }
    for c in &list.cases {
        let handler = if c.assignee.is_empty() { "unassigned" } else { &c.assignee };
        out.push_str(&format!(
            "{}  {}  {:<19} {:<9} {}  {}\n",
            c.name,
            c.case_number,
            word::<CaseState>(c.state),
            word::<Grade>(c.grade),
            handler,
            c.etag
        ));
    }
    if !list.next_page_token.is_empty() {
        out.push_str(&format!("more: --page-token {}\n", list.next_page_token));
    }
    out
}

fn audit_text(list: &ListAuditEntriesResponse) -> String {
    let mut out = String::new();
    if list.audit_entries.is_empty() {
        out.push_str("no audit entries\n");
    }
    for e in &list.audit_entries {
        let details: BTreeMap<_, _> = e.details.iter().collect();
        let details: Vec<String> = details.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "#{:<3} {}  {}  {}  {}\n",
            e.sequence,
            time_text(e.record_time.as_ref()),
            e.actor,
            e.action,
            details.join(" ")
        ));
    }
    if !list.next_page_token.is_empty() {
        out.push_str(&format!("more: --page-token {}\n", list.next_page_token));
    }
    out
}

fn person_json(p: &NaturalPerson) -> Value {
    json!({
        "full_name": p.full_name,
        "id_document_type": enum_json::<IdDocumentType>(p.id_document_type),
        "id_number": p.id_number,
        "phone": p.phone,
        "email": p.email,
        "address": p.address,
    })
}

fn classification_json(c: &Classification) -> Value {
    json!({
        "taxonomy": c.taxonomy,
        "business_type": c.business_type,
        "cause": c.cause,
        "rights": c.rights,
        "grade": enum_json::<Grade>(c.grade),
        "source": enum_json::<ClassificationSource>(c.source),
        "model_version": c.model_version,
        "matched_rules": c.matched_rules,
        "top_tokens": c.top_tokens,
        "business_type_confidence": c.business_type_confidence,
        "cause_confidence": c.cause_confidence,
        "grade_reasons": c.grade_reasons,
        "classified_by": c.classified_by,
        "override_reason": c.override_reason,
        "classify_time": time_json(c.classify_time.as_ref()),
    })
}

fn receipt_json(r: &Receipt) -> Value {
    json!({
        "complaint_number": r.complaint_number,
        "complaint": r.complaint,
        "accept_time": time_json(r.accept_time.as_ref()),
        "deadlines": r.deadlines.as_ref().map(deadlines_json),
    })
}

fn complaint_json(c: &Complaint) -> Value {
    let complainant = c.complainant.as_ref().map(|complainant| match &complainant.party {
        Some(Party::Person(p)) => json!({ "person": person_json(p) }),
        Some(Party::Organisation(o)) => json!({ "organisation": {
            "name": o.name,
            "unified_social_credit_code": o.unified_social_credit_code,
            "address": o.address,
            "legal_representative": o.legal_representative,
            "contact_name": o.contact_name,
            "contact_phone": o.contact_phone,
        }}),
        None => json!({}),
    });
    let mut value = json!({
        "name": c.name,
        "complaint_number": c.complaint_number,
        "channel": enum_json::<Channel>(c.channel),
        "receive_time": time_json(c.receive_time.as_ref()),
        "complainant": complainant,
        "agent": c.agent.as_ref().map(|a| json!({
            "relation": enum_json::<AgentRelation>(a.relation),
            "person": a.person.as_ref().map(person_json),
            "authorization_reference": a.authorization_reference,
        })),
        "representatives": c.representatives.iter()
            .map(|r| json!({ "person": r.person.as_ref().map(person_json) }))
            .collect::<Vec<_>>(),
        "complained_party": c.complained_party.as_ref().map(|p| json!({
            "institution": p.institution,
            "branch": p.branch,
            "staff_name": p.staff_name,
            "staff_id": p.staff_id,
        })),
        "demand": c.demand,
        "facts": c.facts,
        "evidence": c.evidence.iter().map(|e| json!({
            "kind": enum_json::<EvidenceKind>(e.kind),
            "uri": e.uri,
            "sha256": e.sha256,
            "description": e.description,
        })).collect::<Vec<_>>(),
        "staff_notes": c.staff_notes,
        "org_unit": c.org_unit,
        "external_reference": c.external_reference,
    });
    let more = json!({
        "grade": enum_json::<Grade>(c.grade),
        "state": enum_json::<ComplaintState>(c.state),
        "create_time": time_json(c.create_time.as_ref()),
        "receipt": c.receipt.as_ref().map(receipt_json),
        "classification": c.classification.as_ref().map(classification_json),
        "automatic_classification": c.automatic_classification.as_ref().map(classification_json),
        "interaction": c.interaction.as_ref().map(|i| json!({
            "contact_count": i.contact_count,
            "wait_seconds": i.wait_seconds,
        })),
        "risk_signals": c.risk_signals.iter().map(|s| json!({
            "kind": enum_json::<RiskSignalKind>(s.kind),
            "evidence": s.evidence,
        })).collect::<Vec<_>>(),
        "recurrence_of": c.recurrence_of,
        "withdraw_time": time_json(c.withdraw_time.as_ref()),
        "withdraw_reason": c.withdraw_reason,
    });
    if let (Value::Object(fields), Value::Object(more)) = (&mut value, more) {
        fields.extend(more);
    }
    value
}

fn codes_json(codes: &[TaxonomyCode]) -> Value {
    codes.iter().map(|c| json!({ "code": c.code, "name": c.name })).collect()
}

fn taxonomy_json(t: &Taxonomy) -> Value {
    json!({
        "name": t.name,
        "version": t.version,
        "description": t.description,
        "business_types": codes_json(&t.business_types),
        "causes": codes_json(&t.causes),
        "rights": codes_json(&t.rights),
        "active": t.active,
    })
}

/// Non-empty parts joined with ", ".
fn joined<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ")
}

fn person_text(p: &NaturalPerson) -> String {
    let document = if p.id_number.is_empty() {
        String::new()
    } else {
        format!("{} {}", word::<IdDocumentType>(p.id_document_type), p.id_number)
    };
    let phone = if p.phone.is_empty() { String::new() } else { format!("phone {}", p.phone) };
    joined([p.full_name.as_str(), &document, &phone, &p.email, &p.address])
}

fn classification_text(s: &mut Summary, label: &str, c: &Classification) {
    let rights = if c.rights.is_empty() { "-".to_owned() } else { c.rights.join(",") };
    s.row(
        label,
        format!(
            "business type {}  cause {}  rights {rights}  grade {}",
            or_dash(&c.business_type),
            or_dash(&c.cause),
            word::<Grade>(c.grade)
        ),
    );
    let source = format!("{} ({})", word::<ClassificationSource>(c.source), or_dash(&c.taxonomy));
    if c.source == ClassificationSource::Handler as i32 {
        // The rules and reasons are the automatic result's, printed with it.
        s.row("", format!("{source}, by {}: {}", or_dash(&c.classified_by), c.override_reason));
        return;
    }
    if c.model_version.is_empty() {
        s.row("", source);
    } else {
        let confidence = format!("confidence {:.2}/{:.2}", c.business_type_confidence, c.cause_confidence);
        s.row("", format!("{source}, {} {confidence}", c.model_version));
    }
    if !c.matched_rules.is_empty() {
        s.row("", format!("rules: {}", c.matched_rules.join("; ")));
    }
    for reason in &c.grade_reasons {
        s.row("", format!("grade: {reason}"));
    }
}

fn complaint_text(c: &Complaint) -> String {
    let mut s = Summary::default();
    s.row("complaint", format!("{}  no. {}", c.name, c.complaint_number));
    s.row("state", word::<ComplaintState>(c.state));
    if c.withdraw_time.is_some() || !c.withdraw_reason.is_empty() {
        s.row("withdrawn", format!("{}: {}", time_text(c.withdraw_time.as_ref()), c.withdraw_reason));
    }
    s.row("channel", word::<Channel>(c.channel));
    s.row("received", time_text(c.receive_time.as_ref()));
    match c.complainant.as_ref().and_then(|c| c.party.as_ref()) {
        Some(Party::Person(p)) => s.row("complainant", person_text(p)),
        Some(Party::Organisation(o)) => {
            let contact = joined([o.contact_name.as_str(), &o.contact_phone]);
            let contact = if contact.is_empty() { contact } else { format!("contact {contact}") };
            s.row("complainant", joined([o.name.as_str(), &o.unified_social_credit_code, &contact]));
        }
        None => s.row("complainant", "-"),
    }
    if let Some(agent) = &c.agent {
        let person = agent.person.as_ref().map(person_text).unwrap_or_default();
        s.row(
            "agent",
            format!("{} {person} ({})", word::<AgentRelation>(agent.relation), agent.authorization_reference),
        );
    }
    for r in &c.representatives {
        s.row("represents", r.person.as_ref().map(person_text).unwrap_or_default());
    }
    if let Some(p) = &c.complained_party {
        let staff = match (p.staff_name.is_empty(), p.staff_id.is_empty()) {
            (true, true) => String::new(),
            (false, true) => p.staff_name.clone(),
            (true, false) => format!("staff {}", p.staff_id),
            (false, false) => format!("{} ({})", p.staff_name, p.staff_id),
        };
        s.row("against", joined([p.institution.as_str(), &p.branch, &staff]));
    }
    s.row("org unit", or_dash(&c.org_unit));
    s.row("demand", &c.demand);
    s.row("facts", &c.facts);
    s.row("grade", word::<Grade>(c.grade));
    if let Some(classification) = &c.classification {
        classification_text(&mut s, "classified", classification);
    }
    if let Some(automatic) = &c.automatic_classification
        && c.classification.as_ref().is_some_and(|c| c.source == ClassificationSource::Handler as i32)
    {
        classification_text(&mut s, "automatic", automatic);
    }
    for signal in &c.risk_signals {
        s.row("risk", format!("{}: {}", word::<RiskSignalKind>(signal.kind), signal.evidence.join(", ")));
    }
    if !c.recurrence_of.is_empty() {
        s.row("repeats", &c.recurrence_of);
    }
    for e in &c.evidence {
        let hash = if e.sha256.is_empty() { String::new() } else { format!(" sha256 {}", e.sha256) };
        s.row("evidence", format!("{} {}{hash}", word::<EvidenceKind>(e.kind), e.uri));
    }
    if !c.staff_notes.is_empty() {
        s.row("staff notes", &c.staff_notes);
    }
    if let Some(receipt) = &c.receipt {
        s.row("accepted", time_text(receipt.accept_time.as_ref()));
        if let Some(d) = &receipt.deadlines {
            let due = [
                ("first response", &d.first_response_due_time),
                ("resolution", &d.resolution_due_time),
                ("decision", &d.regulatory_decision_due_time),
            ];
            for (i, (what, time)) in due.into_iter().filter(|(_, t)| t.is_some()).enumerate() {
                s.row(if i == 0 { "due" } else { "" }, format!("{what:<15} {}", time_text(time.as_ref())));
            }
            for p in &d.pending_deadlines {
                s.row("pending", format!("{}: {}", p.deadline, p.reason));
            }
            if !d.time_zone.is_empty() {
                s.row("", format!("(days counted in {})", d.time_zone));
            }
        }
    }
    s.0
}

fn complaints_text(list: &ListComplaintsResponse) -> String {
    let mut out = String::new();
    if list.complaints.is_empty() {
        out.push_str("no complaints\n");
    }
    for c in &list.complaints {
        let class = c
            .classification
            .as_ref()
            .map_or_else(|| "-".to_owned(), |k| format!("{}/{}", or_dash(&k.business_type), or_dash(&k.cause)));
        let institution = c.complained_party.as_ref().map_or("-", |p| or_dash(&p.institution));
        out.push_str(&format!(
            "{}  {}  {:<9} {:<12} {:<9} {}  {class}  {institution}\n",
            c.name,
            c.complaint_number,
            word::<ComplaintState>(c.state),
            word::<Channel>(c.channel),
            word::<Grade>(c.grade),
            time_text(c.receive_time.as_ref()),
        ));
    }
    if !list.next_page_token.is_empty() {
        out.push_str(&format!("more: --page-token {}\n", list.next_page_token));
    }
    out
}

fn taxonomies_text(list: &ListTaxonomiesResponse) -> String {
    let mut out = String::new();
    if list.taxonomies.is_empty() {
        out.push_str("no taxonomies\n");
    }
    for t in &list.taxonomies {
        let active = if t.active { ", active" } else { "" };
        out.push_str(&format!("{}@{}{active}", t.name, t.version));
        if !t.description.is_empty() {
            out.push_str(&format!(": {}", t.description));
        }
        out.push('\n');
        for (dimension, codes) in [("business types", &t.business_types), ("causes", &t.causes), ("rights", &t.rights)]
        {
            out.push_str(&format!("  {dimension}\n"));
            for c in codes {
                out.push_str(&format!("    {:<6} {}\n", c.code, c.name));
            }
        }
    }
    out
}

/// The canonical name of a status code, as gRPC documents it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An error status for stderr: code and message, every field violation and precondition
/// failure, the error reason and localized message, and what to do next where that is clear.
pub fn status(status: &tonic::Status, gateway: &str, request_id: Option<&str>) -> String {
    use tonic::Code;
    let mut out = format!("error: {}: {}\n", code_name(status.code()), status.message());
    let details = status.get_error_details();
    for v in details.bad_request().map(|b| b.field_violations.as_slice()).unwrap_or_default() {
        out.push_str(&format!("  field {}: {}\n", v.field, v.description));
    }
    for v in details.precondition_failure().map(|p| p.violations.as_slice()).unwrap_or_default() {
        out.push_str(&format!("  precondition {} {}: {}\n", v.r#type, v.subject, v.description));
    }
    if let Some(info) = details.error_info() {
        out.push_str(&format!("  reason: {} ({})\n", info.reason, info.domain));
    }
    if let Some(localized) = details.localized_message() {
        out.push_str(&format!("  {}: {}\n", localized.locale, localized.message));
    }
    // Transport errors nest several layers that repeat one another; say each thing once.
    let mut said = vec![status.message().to_owned()];
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let text = error.to_string();
        if !said.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
            said.push(text);
        }
        cause = error.source();
    }
    match status.code() {
        Code::Unavailable => out.push_str(&format!("  is the gateway running at {gateway}?\n")),
        Code::Unauthenticated => out.push_str("  check --token (or REDRESS_TOKEN)\n"),
        _ => {}
    }
    // When the outcome is unknown the change may have been made; retrying with the same id
    // makes it at most once.
    if let Some(id) = request_id
        && matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
    {
        out.push_str(&format!("  to retry this change safely: --request-id {id}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_print_as_the_words_the_command_line_takes() {
        assert_eq!(word::<CaseState>(CaseState::FollowUp as i32), "follow-up");
        assert_eq!(word::<ClockKind>(ClockKind::RegulatoryDecision as i32), "regulatory-decision");
        assert_eq!(word::<Grade>(42), "unknown(42)");
        assert_eq!(enum_json::<CaseState>(CaseState::InMediation as i32), json!("CASE_STATE_IN_MEDIATION"));
        assert_eq!(enum_json::<CaseState>(42), json!(42));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = Timestamp { seconds: 1_781_000_000, nanos: 500_000_000 };
        assert_eq!(time_json(Some(&t)), json!("2026-06-09T10:13:20.500Z"));
        assert_eq!(time_text(Some(&t)), "2026-06-09T10:13:20Z");
        assert_eq!(time_json(None), Value::Null);
    }

    #[test]
    fn money_prints_in_yuan() {
        assert_eq!(money_text(&Money { currency_code: "CNY".to_owned(), amount_minor: 12050 }), "CNY 120.50");
        assert_eq!(money_text(&Money { currency_code: "CNY".to_owned(), amount_minor: 7 }), "CNY 0.07");
    }

    #[test]
    fn field_violations_are_listed_under_the_status() {
        let details = tonic_types::ErrorDetails::with_bad_request_violation("total_days", "must be 30 or 60");
        let status = tonic::Status::with_error_details(tonic::Code::InvalidArgument, "invalid request", details);
        let text = super::status(&status, "http://127.0.0.1:50051", Some("r-1"));
        assert!(text.starts_with("error: INVALID_ARGUMENT: invalid request\n"), "{text}");
        assert!(text.contains("  field total_days: must be 30 or 60\n"), "{text}");
        assert!(!text.contains("--request-id"), "a refused change needs no retry: {text}");
    }
}
