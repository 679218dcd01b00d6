//! What accepting a complaint records (D-INT): its number, the reference it is known by in
//! the system it came from, whether it repeats an earlier complaint (D-CASE-5), and the events
//! that announce it.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::names::OrgUnit;
use redress_platform::telemetry::TraceContext;
use redress_proto::redress::intake::v1::{Complaint, ComplaintAccepted, RiskSignalRaised};

/// The complaint number: the day of recording (`yyyymmdd` in the institution's time zone)
/// followed by an 8-digit suite-wide sequence.
pub fn complaint_number(day: &str, seq: i64) -> String {
    format!("{day}{seq:08}")
}

/// The institution an organisation unit belongs to. Units are stored canonical since the API
/// edge parses them; an earlier record's spelling is made canonical here, and a unit that does
/// not parse stands for itself, as it did when that record was stored.
pub fn institution_of(org_unit: &str) -> String {
    OrgUnit::try_from_str(org_unit).map_or_else(|_| org_unit.to_owned(), |unit| unit.institution().into_string())
}

/// Who a complaint is in the system it came from: its institution and the caller's external
/// reference. One complaint of an institution holds a reference for ever, so a submission
/// carrying it again (an import run once more, however late) finds that complaint rather than
/// recording a second one; another institution's reference is another one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceReference(String);

impl SourceReference {
    /// The reference of `complaint`; `None` when it has no external reference.
    pub fn of(complaint: &Complaint) -> Option<Self> {
        let reference = complaint.external_reference.as_str();
        if reference.trim().is_empty() {
            return None;
        }
        // An institution (`institutions/{id}`) holds no space, so the first one ends it.
        Some(Self(format!("{} {reference}", institution_of(&complaint.org_unit))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an earlier complaint of the same person about the same business type and cause,
/// received at `earlier`, makes one received at `received` a recurrence: it was received in
/// the window from `since` up to `received`, both included.
pub fn repeats(since: DateTime<Utc>, received: DateTime<Utc>, earlier: DateTime<Utc>) -> bool {
    since <= earlier && earlier <= received
}

/// The complaint as recorded under `number` (a recurrence of `recurrence_of`, a complaint
/// name, when it repeats one; `restricted` when its complainant restricted the processing of
/// their personal information), and its events in the request's trace: ComplaintAccepted,
/// then RiskSignalRaised when early-warning signals were raised.
pub fn accepted(
    complaint: &Complaint,
    number: String,
    recurrence_of: Option<String>,
    restricted: bool,
    trace: &TraceContext,
) -> (Complaint, Vec<NewEvent>) {
    let mut complaint = complaint.clone();
    complaint.recurrence_of = recurrence_of.unwrap_or_default();
    complaint.personal_data_restricted = restricted;
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
        first_contact: complaint.first_contact.clone(),
        complained_staff_named_only: party.is_some_and(|p| p.staff_id.is_empty() && !p.staff_name.is_empty()),
        source: complaint.source,
        product: complaint.product.clone(),
        personal_data_restricted: restricted,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(org_unit: &str, external_reference: &str) -> Complaint {
        Complaint {
            org_unit: org_unit.to_owned(),
            external_reference: external_reference.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn a_source_reference_is_the_institution_and_the_external_reference() {
        let of = |unit, reference| SourceReference::of(&with(unit, reference)).map(|r| r.as_str().to_owned());
        assert_eq!(of("institutions/acme/branches/sh", "cfpb:1").as_deref(), Some("institutions/acme cfpb:1"));
        assert_eq!(of("Institutions/ACME/", "cfpb:1"), of("institutions/acme/branches/bj", "cfpb:1"));
        assert_ne!(of("institutions/acme", "cfpb:1"), of("institutions/other", "cfpb:1"));
        assert_eq!(of("institutions/acme", ""), None);
        assert_eq!(of("institutions/acme", "  "), None, "blank is no reference, as validation has it");
    }
}
