//! Validation of a submitted complaint (D-INT-2). Every violation is collected so the caller
//! learns about all of them at once, each naming the field path.

use chrono::{DateTime, Duration, Utc};
use redress_platform::error::Violations;
use redress_platform::time::from_timestamp;
use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::intake::v1::{
    AgentRelation, Complainant, Complaint, EvidenceKind, IdDocumentType, NaturalPerson, SubmitComplaintRequest,
    complainant::Party,
};

use super::identifiers::{is_valid_mainland_phone, is_valid_resident_id, is_valid_uscc};

pub const MAX_REQUEST_ID: usize = 128;
pub const MAX_NAME: usize = 100;
pub const MAX_SHORT_TEXT: usize = 200;
pub const MAX_ADDRESS: usize = 500;
pub const MAX_LONG_TEXT: usize = 20_000;
/// Facts may be long: imported narratives run to many thousands of characters.
pub const MAX_FACTS: usize = 200_000;
pub const MAX_REPRESENTATIVES: usize = 5;
pub const MAX_EVIDENCE: usize = 100;
pub const MAX_URI: usize = 2_000;
/// Clock skew tolerated between a caller's receive time and ours.
const FUTURE_SKEW: Duration = Duration::minutes(5);

fn text(v: &mut Violations, field: &str, value: &str, max: usize, required: bool) {
    if required && value.trim().is_empty() {
        v.add(field, "must not be empty");
    }
    let len = value.chars().count();
    if len > max {
        v.add(field, format!("must be at most {max} characters, got {len}"));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        v.add(field, "must not contain control characters");
    }
}

fn phone(v: &mut Violations, field: &str, value: &str) {
    if !value.is_empty() && !is_valid_mainland_phone(value) {
        v.add(field, "must be a mainland mobile number (11 digits starting 13–19) or a landline with area code");
    }
}

fn person(v: &mut Violations, path: &str, p: &NaturalPerson) {
    text(v, &format!("{path}.full_name"), &p.full_name, MAX_NAME, true);
    phone(v, &format!("{path}.phone"), &p.phone);
    text(v, &format!("{path}.email"), &p.email, MAX_SHORT_TEXT, false);
    if !p.email.is_empty() && !p.email.contains('@') {
        v.add(format!("{path}.email"), "must be an email address");
    }
    text(v, &format!("{path}.address"), &p.address, MAX_ADDRESS, false);
    text(v, &format!("{path}.id_number"), &p.id_number, 64, false);
    let doc = IdDocumentType::try_from(p.id_document_type);
    match doc {
        Err(_) => v.add(format!("{path}.id_document_type"), "unknown document type"),
        Ok(IdDocumentType::ResidentId) if !is_valid_resident_id(&p.id_number) => v.add(
            format!("{path}.id_number"),
            "must be an 18-digit resident identity number with a valid birth date and check digit",
        ),
        Ok(IdDocumentType::Unspecified) if !p.id_number.is_empty() => {
            v.add(format!("{path}.id_document_type"), "must be set when id_number is given")
        }
        _ => {}
    }
}

/// Validates a complainant found at `path` (a submission's, or a correction's).
pub fn complainant(v: &mut Violations, path: &str, complainant: Option<&Complainant>) {
    match complainant.and_then(|c| c.party.as_ref()) {
        None => v.add(path, "must name a person or an organisation"),
        Some(Party::Person(p)) => person(v, &format!("{path}.person"), p),
        Some(Party::Organisation(o)) => {
            let path = format!("{path}.organisation");
            text(v, &format!("{path}.name"), &o.name, MAX_SHORT_TEXT, true);
            if !o.unified_social_credit_code.is_empty() && !is_valid_uscc(&o.unified_social_credit_code) {
                v.add(
                    format!("{path}.unified_social_credit_code"),
                    "must be an 18-character unified social credit code with a valid check character",
                );
            }
            text(v, &format!("{path}.address"), &o.address, MAX_ADDRESS, false);
            text(v, &format!("{path}.legal_representative"), &o.legal_representative, MAX_NAME, false);
            text(v, &format!("{path}.contact_name"), &o.contact_name, MAX_NAME, false);
            phone(v, &format!("{path}.contact_phone"), &o.contact_phone);
        }
    }
}

/// Validates `request` as received at `now`; returns the receive instant to record.
pub fn validate_submission(request: &SubmitComplaintRequest, now: DateTime<Utc>) -> Result<DateTime<Utc>, Violations> {
    let mut v = Violations::new();
    if request.request_id.trim().is_empty() {
        v.add("request_id", "must not be empty");
    } else if request.request_id.len() > MAX_REQUEST_ID || !request.request_id.bytes().all(|b| b.is_ascii_graphic()) {
        v.add("request_id", format!("must be 1..{MAX_REQUEST_ID} printable ASCII characters"));
    }
    let Some(c) = request.complaint.as_ref() else {
        v.add("complaint", "must be set");
        return Err(v);
    };
    let receive_time = validate_complaint(&mut v, c, now);
    if v.is_empty() { Ok(receive_time) } else { Err(v) }
}

fn validate_complaint(v: &mut Violations, c: &Complaint, now: DateTime<Utc>) -> DateTime<Utc> {
    match Channel::try_from(c.channel) {
        Ok(Channel::Unspecified) => v.add("complaint.channel", "must be set"),
        Err(_) => v.add("complaint.channel", "unknown channel"),
        Ok(_) => {}
    }
    let receive_time = match c.receive_time.as_ref() {
        None => now,
        Some(t) => match from_timestamp(t) {
            None => {
                v.add("complaint.receive_time", "is not a valid timestamp");
                now
            }
            Some(t) if t > now + FUTURE_SKEW => {
                v.add("complaint.receive_time", "must not lie in the future");
                now
            }
            Some(t) if t.timestamp() < 946_684_800 => {
                v.add("complaint.receive_time", "must not be before 2000-01-01");
                now
            }
            Some(t) => t,
        },
    };
    complainant(v, "complaint.complainant", c.complainant.as_ref());
    if let Some(agent) = c.agent.as_ref() {
        match AgentRelation::try_from(agent.relation) {
            Ok(AgentRelation::Unspecified) | Err(_) => v.add("complaint.agent.relation", "must be set"),
            Ok(_) => {}
        }
        match agent.person.as_ref() {
            None => v.add("complaint.agent.person", "must be set"),
            Some(p) => person(v, "complaint.agent.person", p),
        }
        text(v, "complaint.agent.authorization_reference", &agent.authorization_reference, MAX_SHORT_TEXT, true);
    }
    if c.representatives.len() > MAX_REPRESENTATIVES {
        v.add(
            "complaint.representatives",
            format!(
                "a joint complaint has at most {MAX_REPRESENTATIVES} representatives, got {}",
                c.representatives.len()
            ),
        );
    }
    for (i, r) in c.representatives.iter().enumerate().take(MAX_REPRESENTATIVES) {
        match r.person.as_ref() {
            None => v.add(format!("complaint.representatives[{i}].person"), "must be set"),
            Some(p) => person(v, &format!("complaint.representatives[{i}].person"), p),
        }
    }
    match c.complained_party.as_ref() {
        None => v.add("complaint.complained_party", "must be set"),
        Some(p) => {
            text(v, "complaint.complained_party.institution", &p.institution, MAX_SHORT_TEXT, true);
            text(v, "complaint.complained_party.branch", &p.branch, MAX_SHORT_TEXT, false);
            text(v, "complaint.complained_party.staff_name", &p.staff_name, MAX_NAME, false);
            text(v, "complaint.complained_party.staff_id", &p.staff_id, 64, false);
        }
    }
    text(v, "complaint.demand", &c.demand, MAX_LONG_TEXT, true);
    text(v, "complaint.facts", &c.facts, MAX_FACTS, true);
    text(v, "complaint.staff_notes", &c.staff_notes, MAX_LONG_TEXT, false);
    text(v, "complaint.org_unit", &c.org_unit, MAX_SHORT_TEXT, true);
    text(v, "complaint.external_reference", &c.external_reference, MAX_SHORT_TEXT, false);
    if c.evidence.len() > MAX_EVIDENCE {
        v.add("complaint.evidence", format!("at most {MAX_EVIDENCE} references"));
    }
    for (i, e) in c.evidence.iter().enumerate().take(MAX_EVIDENCE) {
        let path = format!("complaint.evidence[{i}]");
        match EvidenceKind::try_from(e.kind) {
            Ok(EvidenceKind::Unspecified) | Err(_) => v.add(format!("{path}.kind"), "must be set"),
            Ok(_) => {}
        }
        text(v, &format!("{path}.uri"), &e.uri, MAX_URI, true);
        if !e.sha256.is_empty() && (e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit())) {
            v.add(format!("{path}.sha256"), "must be 64 hex digits");
        }
        text(v, &format!("{path}.description"), &e.description, MAX_SHORT_TEXT, false);
    }
    receive_time
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub fn valid_request() -> SubmitComplaintRequest {
        SubmitComplaintRequest {
            request_id: "req-1".to_owned(),
            complaint: Some(crate::testing::complaint("信用卡年费在已达标免年费的情况下仍被扣收。")),
        }
    }

    fn fields(r: Result<DateTime<Utc>, Violations>) -> Vec<String> {
        match redress_platform::ServiceError::from(r.unwrap_err()) {
            redress_platform::ServiceError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_passes_and_defaults_receive_time_to_now() {
        let now = Utc::now();
        assert_eq!(validate_submission(&valid_request(), now).unwrap(), now);
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let mut r = valid_request();
        r.request_id.clear();
        let c = r.complaint.as_mut().unwrap();
        c.channel = 0;
        c.demand.clear();
        if let Some(Party::Person(p)) = c.complainant.as_mut().unwrap().party.as_mut() {
            p.phone = "12345".to_owned();
            p.id_number = "110105194912310021".to_owned();
        }
        let f = fields(validate_submission(&r, Utc::now()));
        assert_eq!(
            f,
            [
                "request_id",
                "complaint.channel",
                "complaint.complainant.person.phone",
                "complaint.complainant.person.id_number",
                "complaint.demand"
            ]
        );
    }

    #[test]
    fn joint_complaints_have_at_most_five_representatives() {
        let mut r = valid_request();
        let c = r.complaint.as_mut().unwrap();
        let rep = redress_proto::redress::intake::v1::Representative {
            person: Some(NaturalPerson { full_name: "李四".to_owned(), ..Default::default() }),
        };
        c.representatives = vec![rep; 6];
        assert_eq!(fields(validate_submission(&r, Utc::now())), ["complaint.representatives"]);
    }

    #[test]
    fn future_receive_times_are_refused() {
        let mut r = valid_request();
        let now = Utc::now();
        r.complaint.as_mut().unwrap().receive_time =
            Some(redress_platform::time::to_timestamp(now + Duration::hours(1)));
        assert_eq!(fields(validate_submission(&r, now)), ["complaint.receive_time"]);
    }
}
