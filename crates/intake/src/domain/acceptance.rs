//! What accepting a complaint records (D-INT): its number, whether it repeats an earlier
//! complaint (D-CASE-5), and the events that announce it.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::telemetry::TraceContext;
use redress_proto::redress::intake::v1::{Complaint, ComplaintAccepted, RiskSignalRaised};

/// The complaint number: the day of recording (`yyyymmdd` in the institution's time zone)
/// followed by an 8-digit suite-wide sequence.
pub fn complaint_number(day: &str, seq: i64) -> String {
    format!("{day}{seq:08}")
}

/// Whether an earlier complaint of the same person about the same business type and cause,
/// received at `earlier`, makes one received at `received` a recurrence: it was received in
/// the window from `since` up to `received`, both included.
pub fn repeats(since: DateTime<Utc>, received: DateTime<Utc>, earlier: DateTime<Utc>) -> bool {
    since <= earlier && earlier <= received
}

/// The complaint as recorded under `number` (a recurrence of `recurrence_of`, a complaint
/// name, when it repeats one), and its events in the request's trace: ComplaintAccepted,
/// then RiskSignalRaised when early-warning signals were raised.
pub fn accepted(
    complaint: &Complaint,
    number: String,
    recurrence_of: Option<String>,
    trace: &TraceContext,
) -> (Complaint, Vec<NewEvent>) {
    let mut complaint = complaint.clone();
    complaint.recurrence_of = recurrence_of.unwrap_or_default();
    complaint.complaint_number.clone_from(&number);
    if let Some(receipt) = complaint.receipt.as_mut() {
        receipt.complaint_number.clone_from(&number);
    }
    let party = complaint.complained_party.as_ref();
    let accepted = ComplaintAccepted {
        complaint: complaint.name.clone(),
        complaint_number: number,
        channel: complaint.channel,
        receive_time: complaint.receive_time,
        org_unit: complaint.org_unit.clone(),
        grade: complaint.grade,
        deadlines: complaint.receipt.as_ref().and_then(|r| r.deadlines.clone()),
        institution: party.map(|p| p.institution.clone()).unwrap_or_default(),
        complained_staff_id: party.map(|p| p.staff_id.clone()).unwrap_or_default(),
        classification: complaint.classification.clone(),
        risk_signals: complaint.risk_signals.clone(),
        recurrence_of: complaint.recurrence_of.clone(),
    };
    let mut events =
        vec![NewEvent::in_trace(complaint.name.clone(), complaint.org_unit.clone(), &accepted, trace.clone())];
    if !complaint.risk_signals.is_empty() {
        let raised = RiskSignalRaised {
            complaint: complaint.name.clone(),
            complaint_number: complaint.complaint_number.clone(),
            org_unit: complaint.org_unit.clone(),
            signals: complaint.risk_signals.clone(),
            grade: complaint.grade,
        };
        events.push(NewEvent::in_trace(complaint.name.clone(), complaint.org_unit.clone(), &raised, trace.clone()));
    }
    (complaint, events)
}
