//! Validation of a submitted complaint (D-INT-2). Every violation is collected so the caller
//! learns about all of them at once, each naming the field path.

use chrono::{DateTime, Duration, Utc};
use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, RequestId, Text};
use redress_platform::time::from_timestamp;
use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::intake::v1::{
    AgentRelation, Complainant, Complaint, ComplaintSource, EvidenceKind, FirstContact, IdDocumentType, NaturalPerson,
    SubmitComplaintRequest, complainant::Party,
};

use super::contact::named_first_contact;
use super::identifiers::{is_valid_mainland_phone, is_valid_resident_id, is_valid_uscc};

/// Most representatives of a joint complaint.
pub const MAX_REPRESENTATIVES: usize = 5;
/// Most evidence references of a complaint.
pub const MAX_EVIDENCE: usize = 100;
/// Clock skew tolerated between a caller's clock and ours.
const FUTURE_SKEW: Duration = Duration::minutes(5);

/// What validation parsed from a submission: the values past the API edge work with.
#[derive(Debug, Clone)]
pub struct Submission {
    pub request_id: RequestId,
    /// The complaint's organisation unit, in its canonical spelling.
    pub org_unit: OrgUnit,
    /// The instant the complaint counts as received.
    pub receive_time: DateTime<Utc>,
    /// The member of staff the request names as first contact, trimmed and canonical.
    pub first_contact: Option<FirstContact>,
    /// Where the complaint comes from; an external consumer when the request does not say.
    pub source: ComplaintSource,
    /// The product or service complained about, trimmed ("" when not named).
    pub product: String,
}

/// What [`validate_complaint`] parsed.
struct Parsed {
    receive_time: DateTime<Utc>,
    org_unit: Option<OrgUnit>,
    first_contact: Option<FirstContact>,
    source: ComplaintSource,
    product: String,
}

fn phone(v: &mut Violations, field: &str, value: &str) {
    if !value.is_empty() && !is_valid_mainland_phone(value) {
        v.add(field, "must be a mainland mobile number (11 digits starting 13–19) or a landline with area code");
    }
}

fn person(v: &mut Violations, path: &str, p: &NaturalPerson) {
    Text::PersonName.check(v, &format!("{path}.full_name"), &p.full_name, true);
    phone(v, &format!("{path}.phone"), &p.phone);
    Text::Short.check(v, &format!("{path}.email"), &p.email, false);
    if !p.email.is_empty() && !p.email.contains('@') {
        v.add(format!("{path}.email"), "must be an email address");
    }
    Text::Address.check(v, &format!("{path}.address"), &p.address, false);
    Text::Name.check(v, &format!("{path}.id_number"), &p.id_number, false);
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
            Text::Name.check(v, &format!("{path}.name"), &o.name, true);
            if !o.unified_social_credit_code.is_empty() && !is_valid_uscc(&o.unified_social_credit_code) {
                v.add(
                    format!("{path}.unified_social_credit_code"),
                    "must be an 18-character unified social credit code with a valid check character",
                );
            }
            Text::Address.check(v, &format!("{path}.address"), &o.address, false);
            Text::PersonName.check(v, &format!("{path}.legal_representative"), &o.legal_representative, false);
            Text::PersonName.check(v, &format!("{path}.contact_name"), &o.contact_name, false);
            phone(v, &format!("{path}.contact_phone"), &o.contact_phone);
        }
    }
}

/// Validates `request` as received at `now`; returns what it parsed.
pub fn validate_submission(request: &SubmitComplaintRequest, now: DateTime<Utc>) -> Result<Submission, Violations> {
    let mut v = Violations::new();
    let request_id = RequestId::parse_required(&mut v, "request_id", &request.request_id);
    let Some(c) = request.complaint.as_ref() else {
        v.add("complaint", "must be set");
        return Err(v);
    };
    let Parsed { receive_time, org_unit, first_contact, source, product } = validate_complaint(&mut v, c, now);
    match (request_id, org_unit) {
        (Some(request_id), Some(org_unit)) if v.is_empty() => {
            Ok(Submission { request_id, org_unit, receive_time, first_contact, source, product })
        }
        _ => Err(v),
    }
}

/// The instant an action dated `at` by the caller happened (now when not given): a valid
/// timestamp, not in the future beyond the tolerated clock skew.
pub fn past_instant(
    v: &mut Violations,
    field: &str,
    at: Option<&prost_types::Timestamp>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match at.map(from_timestamp) {
        None => now,
        Some(None) => {
            v.add(field, "is not a valid timestamp");
            now
        }
        Some(Some(t)) if t > now + FUTURE_SKEW => {
            v.add(field, "must not lie in the future");
            now
        }
        Some(Some(t)) => t,
    }
}

/// Validates a complaint; returns its receive instant, its organisation unit, the first
/// contact it names, its source and its product.
fn validate_complaint(v: &mut Violations, c: &Complaint, now: DateTime<Utc>) -> Parsed {
    match Channel::try_from(c.channel) {
        Ok(Channel::Unspecified) => v.add("complaint.channel", "must be set"),
        Err(_) => v.add("complaint.channel", "unknown channel"),
        Ok(_) => {}
    }
    let receive_time = past_instant(v, "complaint.receive_time", c.receive_time.as_ref(), now);
    let receive_time = if receive_time.timestamp() < 946_684_800 {
        v.add("complaint.receive_time", "must not be before 2000-01-01");
        now
    } else {
        receive_time
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
        Text::Short.check(v, "complaint.agent.authorization_reference", &agent.authorization_reference, true);
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
            Text::Name.check(v, "complaint.complained_party.institution", &p.institution, true);
            Text::Short.check(v, "complaint.complained_party.branch", &p.branch, false);
            Text::PersonName.check(v, "complaint.complained_party.staff_name", &p.staff_name, false);
            Text::Name.check(v, "complaint.complained_party.staff_id", &p.staff_id, false);
        }
    }
    Text::Long.check(v, "complaint.demand", &c.demand, true);
    Text::Facts.check(v, "complaint.facts", &c.facts, true);
    Text::Long.check(v, "complaint.staff_notes", &c.staff_notes, false);
    let org_unit = OrgUnit::parse(v, "complaint.org_unit", &c.org_unit);
    Text::Short.check(v, "complaint.external_reference", &c.external_reference, false);
    if c.evidence.len() > MAX_EVIDENCE {
        v.add("complaint.evidence", format!("at most {MAX_EVIDENCE} references"));
    }
    for (i, e) in c.evidence.iter().enumerate().take(MAX_EVIDENCE) {
        let path = format!("complaint.evidence[{i}]");
        match EvidenceKind::try_from(e.kind) {
            Ok(EvidenceKind::Unspecified) | Err(_) => v.add(format!("{path}.kind"), "must be set"),
            Ok(_) => {}
        }
        Text::Uri.check(v, &format!("{path}.uri"), &e.uri, true);
        if !e.sha256.is_empty() && (e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit())) {
            v.add(format!("{path}.sha256"), "must be 64 hex digits");
        }
        Text::Short.check(v, &format!("{path}.description"), &e.description, false);
    }
    let first_contact = c
        .first_contact
        .as_ref()
        .map(|given| named_first_contact(v, "complaint.first_contact", given, org_unit.as_ref()));
    let source = match ComplaintSource::try_from(c.source) {
        Ok(ComplaintSource::Unspecified) => ComplaintSource::ExternalConsumer,
        Ok(source) => source,
        Err(_) => {
            v.add("complaint.source", "unknown source");
            ComplaintSource::ExternalConsumer
        }
    };
    let product = c.product.trim();
    Text::Name.check(v, "complaint.product", product, false);
    Parsed { receive_time, org_unit, first_contact, source, product: product.to_owned() }
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

    fn fields(r: Result<Submission, Violations>) -> Vec<String> {
        match redress_platform::ServiceError::from(r.unwrap_err()) {
            redress_platform::ServiceError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_passes_and_defaults_receive_time_to_now() {
        let now = Utc::now();
        assert_eq!(validate_submission(&valid_request(), now).unwrap().receive_time, now);
    }

    #[test]
    fn the_organisation_unit_is_taken_in_its_canonical_spelling() {
        let mut r = valid_request();
        r.complaint.as_mut().unwrap().org_unit = " Institutions/Demo-Bank/ ".to_owned();
        assert_eq!(validate_submission(&r, Utc::now()).unwrap().org_unit.as_str(), "institutions/demo-bank");
        r.complaint.as_mut().unwrap().org_unit = "demo-bank".to_owned();
        assert_eq!(fields(validate_submission(&r, Utc::now())), ["complaint.org_unit"]);
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
    fn the_source_defaults_to_an_external_consumer_and_unknown_ones_are_refused() {
        let mut r = valid_request();
        assert_eq!(validate_submission(&r, Utc::now()).unwrap().source, ComplaintSource::ExternalConsumer);
        r.complaint.as_mut().unwrap().source = ComplaintSource::InternalStaff as i32;
        assert_eq!(validate_submission(&r, Utc::now()).unwrap().source, ComplaintSource::InternalStaff);
        r.complaint.as_mut().unwrap().source = 7;
        assert_eq!(fields(validate_submission(&r, Utc::now())), ["complaint.source"]);
    }

    #[test]
    fn the_product_is_optional_trimmed_one_line_and_at_most_200_characters() {
        let mut r = valid_request();
        assert_eq!(validate_submission(&r, Utc::now()).unwrap().product, "");
        r.complaint.as_mut().unwrap().product = " 信用卡 \n".to_owned();
        assert_eq!(validate_submission(&r, Utc::now()).unwrap().product, "信用卡");
        for bad in ["信用卡\n年费", &"险".repeat(201), "卡\u{7}"] {
            r.complaint.as_mut().unwrap().product = bad.to_owned();
            assert_eq!(fields(validate_submission(&r, Utc::now())), ["complaint.product"], "{bad:?}");
        }
        r.complaint.as_mut().unwrap().product = "险".repeat(200);
        assert!(validate_submission(&r, Utc::now()).is_ok());
    }

    #[test]
    fn a_named_first_contact_is_checked_against_the_complaints_institution() {
        let mut r = valid_request();
        let c = r.complaint.as_mut().unwrap();
        c.first_contact = Some(FirstContact {
            staff_id: " E2002 ".to_owned(),
            org_unit: "institutions/demo-bank/call-centres/sh".to_owned(),
            ..Default::default()
        });
        let named = validate_submission(&r, Utc::now()).unwrap().first_contact.unwrap();
        assert_eq!(
            (named.staff_id.as_str(), named.org_unit.as_str()),
            ("E2002", "institutions/demo-bank/call-centres/sh")
        );
        let c = r.complaint.as_mut().unwrap();
        c.first_contact = Some(FirstContact { org_unit: "institutions/other".to_owned(), ..Default::default() });
        assert_eq!(
            fields(validate_submission(&r, Utc::now())),
            ["complaint.first_contact.staff_id", "complaint.first_contact.org_unit"]
        );
        r.complaint.as_mut().unwrap().first_contact = None;
        assert_eq!(validate_submission(&r, Utc::now()).unwrap().first_contact, None);
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
