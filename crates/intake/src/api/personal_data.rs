//! PersonalDataService: a data subject's rights (export, correction, supplement, erasure,
//! restriction of processing) and the record of who touched their personal information, kept
//! as a keyed hash chain. Every call needs `pii.manage` and a reason, and is recorded.

use prost::Message;
use redress_platform::error::ServiceError;
use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, RequestId, Text, resource_id};
use redress_platform::principal::{Permission, Principal, ROOT_ORG_UNIT};
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{from_micros, to_timestamp};
use redress_proto::redress::intake::v1::{
    Complaint, CorrectPersonalDataRequest, ErasePersonalDataRequest, ErasePersonalDataResponse,
    ExportPersonalDataRequest, ExportPersonalDataResponse, IdDocumentType, LiftSubjectRestrictionRequest,
    ListPersonalDataAccessesRequest, ListPersonalDataAccessesResponse, PersonIdentifier, PersonalDataAccess,
    PersonalDataSupplement, RestrictSubjectProcessingRequest, SubjectProcessingRestriction,
    SupplementPersonalDataRequest, VerifyPersonalDataAccessLogRequest, VerifyPersonalDataAccessLogResponse,
    person_identifier,
};

use super::{IntakeApi, complaint_id, parsed, reason};
use crate::domain::subjects::{self, Identifier};
use crate::domain::validate;
use crate::error::IntakeError;
use crate::store::{PiiAccess, RequestKey, Restriction};

/// The fields of a complaint a supplement may name (PIPL Art.46): the complainant's personal
/// information and the free text of their own words.
pub const SUPPLEMENTED_FIELDS: &[&str] = &[
    "complainant",
    "complainant.full_name",
    "complainant.id_number",
    "complainant.phone",
    "complainant.email",
    "complainant.address",
    "agent",
    "representatives",
    "demand",
    "facts",
    "evidence",
];

impl IntakeApi {
    pub async fn export_personal_data(
        &self,
        principal: &Principal,
        request: ExportPersonalDataRequest,
    ) -> Result<ExportPersonalDataResponse, IntakeError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let person = person(principal, &request.institution, request.person.as_ref(), &mut v);
        let reason = reason(&mut v, &request.reason);
        let person = parsed(v, person)?;
        let access = PiiAccess { actor: principal.subject.clone(), action: "export", reason };
        let complaints = self.store()?.export(&person, &access).await?;
        let subject = self.subject_of(&complaints).await?;
        Ok(ExportPersonalDataResponse { subject, complaints })
    }

    /// The subject name of exported complaints (they share one).
    async fn subject_of(&self, complaints: &[Complaint]) -> Result<String, IntakeError> {
        let Some(first) = complaints.first() else { return Ok(String::new()) };
        let id = first.name.strip_prefix("complaints/").unwrap_or_default();
        let subject = self.store()?.subject_of(id).await?;
        Ok(subject.map(|s| format!("subjects/{s}")).unwrap_or_default())
    }

    pub async fn correct_personal_data(
        &self,
        principal: &Principal,
        request: CorrectPersonalDataRequest,
    ) -> Result<Complaint, IntakeError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
        validate::complainant(&mut v, "complainant", request.complainant.as_ref());
        let reason = reason(&mut v, &request.reason);
        let id = parsed(v, id)?;
        self.complaint_in_scope(principal, id, &request.name).await?;
        let access = PiiAccess { actor: principal.subject.clone(), action: "correct", reason };
        let complainant = request.complainant.unwrap_or_default();
        self.store()?
            .correct(id, complainant, &access)
            .await?
            .ok_or_else(|| IntakeError::complaint_not_found(&request.name))
    }

    pub async fn erase_personal_data(
        &self,
        principal: &Principal,
        request: ErasePersonalDataRequest,
    ) -> Result<ErasePersonalDataResponse, IntakeError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let person = person(principal, &request.institution, request.person.as_ref(), &mut v);
        let reason = reason(&mut v, &request.reason);
        let person = parsed(v, person)?;
        let access = PiiAccess { actor: principal.subject.clone(), action: "erase", reason };
        let erased = self.store()?.erase(&person, &access).await?;
        if let Some(e) = &erased {
            tracing::info!(subject = %e.subject_id, complaints = e.complaints, "personal information erased");
            metrics::counter!("redress_pii_erasures_total").increment(1);
        }
        Ok(erased.map_or_else(ErasePersonalDataResponse::default, |e| ErasePersonalDataResponse {
            subject: format!("subjects/{}", e.subject_id),
            erased_complaints: e.complaints,
        }))
    }

    pub async fn list_personal_data_accesses(
        &self,
        principal: &Principal,
        request: ListPersonalDataAccessesRequest,
    ) -> Result<ListPersonalDataAccessesResponse, IntakeError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "subject", &request.subject, "subjects");
        let id = parsed(v, id)?;
        let store = self.store()?;
        // A subject belongs to one institution; outside it, the subject does not exist for
        // the caller.
        let units = store.subject_units(id).await?;
        if units.is_empty() || !units.iter().all(|u| principal.covers(u)) {
            return Err(IntakeError::NotFound { resource: "subject", name: request.subject.clone() });
        }
        let accesses = store.pii_accesses(id).await?;
        Ok(ListPersonalDataAccessesResponse {
            accesses: accesses
                .into_iter()
                .map(|a| PersonalDataAccess {
                    complaint: a.complaint_id.map(|c| format!("complaints/{c}")).unwrap_or_default(),
                    actor: a.actor,
                    action: a.action,
                    reason: a.reason,
                    access_time: Some(to_timestamp(from_micros(a.access_time_us))),
                })
                .collect(),
        })
    }
}

impl IntakeApi {
    pub async fn restrict_subject_processing(
        &self,
        principal: &Principal,
        request: RestrictSubjectProcessingRequest,
    ) -> Result<SubjectProcessingRestriction, IntakeError> {
        let RestrictSubjectProcessingRequest { request_id, person, institution, reason } = request;
        self.restriction(principal, true, "restrict-processing", &request_id, person, &institution, &reason).await
    }

    pub async fn lift_subject_restriction(
        &self,
        principal: &Principal,
        request: LiftSubjectRestrictionRequest,
    ) -> Result<SubjectProcessingRestriction, IntakeError> {
        let LiftSubjectRestrictionRequest { request_id, person, institution, reason } = request;
        self.restriction(principal, false, "lift-restriction", &request_id, person, &institution, &reason).await
    }

    /// Restricts (`restrict`) or lifts the restriction of a person's processing.
    #[allow(clippy::too_many_arguments)]
    async fn restriction(
        &self,
        principal: &Principal,
        restrict: bool,
        kind: &str,
        request_id: &str,
        person: Option<PersonIdentifier>,
        institution: &str,
        reason: &str,
    ) -> Result<SubjectProcessingRestriction, IntakeError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let request_id = RequestId::parse_required(&mut v, "request_id", request_id);
        let identifier = self::person(principal, institution, person.as_ref(), &mut v);
        let reason = self::reason(&mut v, reason);
        let (request_id, identifier) = parsed(v, request_id.zip(identifier))?;
        // Keyed, as the request names a person; the caller is part of it.
        let digest = identifier.digest(&self.keyring);
        let parts = [identifier.institution.as_str().as_bytes(), digest.as_bytes(), reason.as_bytes()];
        let hash = self.keyring.digest(kind, &fingerprint(principal, &parts));
        let key = RequestKey { id: request_id, hash };
        let action = if restrict { "restrict" } else { "lift" };
        let access = PiiAccess { actor: principal.subject.clone(), action, reason };
        let done = self
            .store()?
            .restrict(&identifier, restrict, key, &access, TraceContext::current())
            .await?
            .ok_or_else(|| IntakeError::NotFound { resource: "person", name: "person".to_owned() })?;
        tracing::info!(subject = %done.subject_id, restricted = restrict, "processing restriction of a data subject");
        Ok(restriction_of(done))
    }

    pub async fn supplement_personal_data(
        &self,
        principal: &Principal,
        request: SupplementPersonalDataRequest,
    ) -> Result<Complaint, IntakeError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
        let request_id = RequestId::parse_required(&mut v, "request_id", &request.request_id);
        let field = request.field.trim();
        if field.is_empty() {
            v.add("field", "required");
        } else if !SUPPLEMENTED_FIELDS.contains(&field) {
            v.add("field", format!("must be one of {}", SUPPLEMENTED_FIELDS.join(", ")));
        }
        Text::Reason.check(&mut v, "text", &request.text, true);
        let reason = reason(&mut v, &request.reason);
        let (id, request_id) = parsed(v, id.zip(request_id))?;
        self.complaint_in_scope(principal, id, &request.name).await?;
        let hash = self.keyring.digest("supplement", &fingerprint(principal, &[&request.encode_to_vec()]));
        let supplement = PersonalDataSupplement {
            field: field.to_owned(),
            text: request.text.trim().to_owned(),
            reason: reason.clone(),
            recorded_by: principal.subject.clone(),
            record_time: Some(to_timestamp(self.clock.now())),
        };
        let access = PiiAccess { actor: principal.subject.clone(), action: "supplement", reason };
        let key = RequestKey { id: request_id, hash };
        let supplemented = self
            .store()?
            .supplement(id, key, supplement, &access)
            .await?
            .ok_or_else(|| IntakeError::complaint_not_found(&request.name))?;
        tracing::info!(complaint = %supplemented.name, "personal information supplemented");
        Ok(supplemented)
    }

    /// Recomputes the access log's chain; a broken one is answered, logged and counted.
    pub async fn verify_personal_data_access_log(
        &self,
        principal: &Principal,
        _request: VerifyPersonalDataAccessLogRequest,
    ) -> Result<VerifyPersonalDataAccessLogResponse, IntakeError> {
        principal.require(Permission::PiiManage)?;
        // One chain holds every institution's entries: its length and where it breaks tell of
        // all of them, so only a caller of the whole platform verifies it.
        if !principal.covers(ROOT_ORG_UNIT) {
            return Err(ServiceError::PermissionDenied(
                "only a data-protection officer of the whole platform may verify the access log".to_owned(),
            )
            .into());
        }
        let verdict = self.store()?.verify_access_log().await?;
        let mut response = VerifyPersonalDataAccessLogResponse {
            intact: verdict.broken.is_none() && verdict.unchained == 0,
            entries: verdict.entries,
            first_broken_position: 0,
            reason: String::new(),
            unchained: verdict.unchained,
        };
        if let Some(broken) = verdict.broken {
            (response.first_broken_position, response.reason) = (broken.position, broken.reason);
        } else if verdict.unchained > 0 {
            response.reason = format!("{} entries are outside the chain", verdict.unchained);
        }
        if !response.intact {
            tracing::error!(position = response.first_broken_position, reason = %response.reason, "the personal-data access log does not verify");
            metrics::counter!("redress_pii_access_log_broken_total").increment(1);
        }
        Ok(response)
    }
}

/// What a restriction answers.
fn restriction_of(done: Restriction) -> SubjectProcessingRestriction {
    SubjectProcessingRestriction {
        subject: format!("subjects/{}", done.subject_id),
        restricted: done.since_us.is_some(),
        restrict_time: done.since_us.map(|us| to_timestamp(from_micros(us))),
        complaints: done.complaints,
    }
}

/// The caller and the parts of a request, length-prefixed, to be digested with a key.
fn fingerprint(principal: &Principal, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in std::iter::once(principal.subject.as_bytes()).chain(parts.iter().copied()) {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The person a data-subject request names, at the institution it is made to.
fn person(
    principal: &Principal,
    institution: &str,
    person: Option<&PersonIdentifier>,
    v: &mut Violations,
) -> Option<Identifier> {
    let institution = self::institution(principal, institution, v);
    let (kind, value) = identifier(person, v)?;
    Some(Identifier { institution: institution?, kind, value })
}

/// The institution (not a unit below one) a data-subject request is made to, which the
/// caller must cover: rights are exercised against the institution.
fn institution(principal: &Principal, institution: &str, v: &mut Violations) -> Option<OrgUnit> {
    let unit = OrgUnit::parse(v, "institution", institution)?;
    if !unit.is_institution() {
        v.add("institution", "must be institutions/{institution_id}");
        return None;
    }
    if !principal.covers(unit.as_str()) {
        v.add("institution", "lies outside the caller's organisation unit");
        return None;
    }
    Some(unit)
}

/// The identifier a person is found by: an identity document (type and number) or a phone.
fn identifier(person: Option<&PersonIdentifier>, v: &mut Violations) -> Option<(&'static str, String)> {
    match person.and_then(|p| p.identifier.as_ref()) {
        Some(person_identifier::Identifier::IdDocument(doc)) => {
            if doc.number.trim().is_empty() {
                v.add("person.id_document.number", "required");
            }
            match IdDocumentType::try_from(doc.r#type) {
                Ok(IdDocumentType::Unspecified) | Err(_) => v.add("person.id_document.type", "required"),
                Ok(_) => {}
            }
            Some((subjects::ID_DOCUMENT, subjects::id_document(doc.r#type, &doc.number)))
        }
        Some(person_identifier::Identifier::Phone(phone)) if !phone.trim().is_empty() => {
            Some((subjects::PHONE, phone.clone()))
        }
        _ => {
            v.add("person", "an identity document or a phone number is required");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use redress_calendar::WorkingCalendar;
    use redress_platform::db::DatabaseConfig;
    use redress_platform::testing::TestDatabase;
    use redress_platform::time::now;

    use redress_proto::redress::intake::v1::{
        ComplaintAccepted, ComplaintProcessingRestricted, GetComplaintRequest, SubmitComplaintRequest,
    };

    use super::super::test_support::{api, clerk, dpo, submission};
    use super::*;

    fn by_phone(phone: &str) -> Option<PersonIdentifier> {
        Some(PersonIdentifier { identifier: Some(person_identifier::Identifier::Phone(phone.to_owned())) })
    }

    #[tokio::test]
    async fn a_subjects_access_log_is_visible_only_within_its_institution() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        api.submit(&clerk(), submission(now())).await.unwrap();
        let export = ExportPersonalDataRequest {
            person: by_phone("13812345678"),
            institution: "institutions/demo-bank".to_owned(),
            reason: "access request".to_owned(),
        };
        let subject = api.export_personal_data(&dpo("institutions/demo-bank"), export).await.unwrap().subject;
        let request = || ListPersonalDataAccessesRequest { subject: subject.clone() };
        let err = api.list_personal_data_accesses(&dpo("institutions/other-bank"), request()).await.unwrap_err();
        assert!(matches!(err, IntakeError::NotFound { .. }), "{err:?}");
        let log = api.list_personal_data_accesses(&dpo("institutions/demo-bank"), request()).await.unwrap();
        assert_eq!(log.accesses.len(), 1);
    }

    async fn open(config: &DatabaseConfig) -> IntakeApi {
        api(WorkingCalendar::china(), config).await
    }

    redress_platform::conformance_suite!(
        open = open;
        a_complaint_filed_under_any_spelling_of_its_unit_is_found_by_its_institution,
        every_spelling_of_a_phone_finds_every_complaint_of_its_person,
        a_restricted_subjects_complaints_are_not_matched_and_say_so_until_lifted,
        a_supplement_is_sealed_beside_the_record_masked_and_erased_with_the_person,
    );

    fn filed(n: u32) -> SubmitComplaintRequest {
        let mut request = submission(now());
        request.request_id = format!("filed-{n}");
        request
    }

    fn restrict(request_id: &str, reason: &str) -> RestrictSubjectProcessingRequest {
        RestrictSubjectProcessingRequest {
            request_id: request_id.to_owned(),
            person: by_phone("13812345678"),
            institution: "institutions/demo-bank".to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The ComplaintAccepted and ComplaintProcessingRestricted events committed so far.
    async fn restriction_events(api: &IntakeApi) -> (Vec<ComplaintAccepted>, Vec<ComplaintProcessingRestricted>) {
        let events = redress_platform::testing::committed_events(api.store().unwrap().feed(), 0, 100).await.unwrap();
        let (mut accepted, mut restricted) = (Vec::new(), Vec::new());
        for event in events {
            let payload = event.payload.unwrap();
            match event.event_type.as_str() {
                "redress.intake.v1.ComplaintAccepted" => accepted.push(payload.to_msg().unwrap()),
                "redress.intake.v1.ComplaintProcessingRestricted" => restricted.push(payload.to_msg().unwrap()),
                _ => {}
            }
        }
        (accepted, restricted)
    }

    /// While a person's processing is restricted, their new complaint is linked to no earlier
    /// one (nor a later one to it), and their complaints and events say so; lifting it makes
    /// new complaints recurrences again. Both are idempotent on the request id and recorded.
    async fn a_restricted_subjects_complaints_are_not_matched_and_say_so_until_lifted(api: IntakeApi) {
        let dpo = dpo("institutions/demo-bank");
        let first = api.submit(&clerk(), filed(1)).await.unwrap().complaint.unwrap();
        assert!(!first.personal_data_restricted);
        let restricted =
            api.restrict_subject_processing(&dpo, restrict("restrict-1", "客户要求限制处理")).await.unwrap();
        assert!(restricted.restricted && restricted.restrict_time.is_some(), "{restricted:?}");
        assert_eq!(restricted.complaints, 1);
        // A retry answers the same; the id with another request is refused.
        let again = api.restrict_subject_processing(&dpo, restrict("restrict-1", "客户要求限制处理")).await.unwrap();
        assert_eq!(again, restricted);
        let err = api.restrict_subject_processing(&dpo, restrict("restrict-1", "另一理由")).await.unwrap_err();
        assert!(format!("{err:?}").contains("request_id"), "{err:?}");

        let second = api.submit(&clerk(), filed(2)).await.unwrap().complaint.unwrap();
        assert!(second.recurrence_of.is_empty(), "a restricted subject's complaint is not matched as a recurrence");
        assert!(second.personal_data_restricted);
        let third = api.submit(&clerk(), filed(3)).await.unwrap().complaint.unwrap();
        assert!(third.recurrence_of.is_empty(), "nor is another matched to it");
        let stored_first = api.store().unwrap().get(first.name.strip_prefix("complaints/").unwrap()).await.unwrap();
        assert!(stored_first.unwrap().personal_data_restricted, "the earlier complaint is marked too");
        let (accepted, changes) = restriction_events(&api).await;
        let flags: Vec<bool> = accepted.iter().map(|a| a.personal_data_restricted).collect();
        assert_eq!(flags, [false, true, true]);
        assert_eq!(
            changes.iter().map(|c| (c.complaint.as_str(), c.restricted)).collect::<Vec<_>>(),
            [(first.name.as_str(), true)]
        );

        let lift = LiftSubjectRestrictionRequest {
            request_id: "lift-1".to_owned(),
            person: by_phone("+86 138 1234 5678"),
            institution: "institutions/demo-bank".to_owned(),
            reason: "客户撤回限制".to_owned(),
        };
        let lifted = api.lift_subject_restriction(&dpo, lift).await.unwrap();
        assert!(!lifted.restricted && lifted.restrict_time.is_none());
        assert_eq!((lifted.subject, lifted.complaints), (restricted.subject.clone(), 3));
        let fourth = api.submit(&clerk(), filed(4)).await.unwrap().complaint.unwrap();
        assert_eq!(fourth.recurrence_of, third.name, "matched again once lifted");
        assert!(!fourth.personal_data_restricted);
        let (accepted, changes) = restriction_events(&api).await;
        assert!(!accepted[3].personal_data_restricted);
        assert_eq!(changes.iter().filter(|c| !c.restricted).count(), 3, "each complaint is announced lifted");

        let log = api
            .list_personal_data_accesses(&dpo, ListPersonalDataAccessesRequest { subject: restricted.subject })
            .await
            .unwrap();
        let actions: Vec<&str> = log.accesses.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, ["lift", "restrict"], "newest first, the retry not recorded twice");
        let platform = super::super::test_support::dpo(ROOT_ORG_UNIT);
        let verified =
            api.verify_personal_data_access_log(&platform, VerifyPersonalDataAccessLogRequest {}).await.unwrap();
        assert!(verified.intact && verified.entries == 2, "{verified:?}");
        // An institution's officer learns nothing of a log that holds other institutions' entries.
        let err = api.verify_personal_data_access_log(&dpo, VerifyPersonalDataAccessLogRequest {}).await.unwrap_err();
        assert!(format!("{err:?}").contains("whole platform"), "{err:?}");
        let err = api.restrict_subject_processing(&clerk(), restrict("restrict-2", "x")).await.unwrap_err();
        assert!(format!("{err:?}").contains("ermission"), "{err:?}");
    }

    fn supplement(request_id: &str, name: &str, field: &str, text: &str) -> SupplementPersonalDataRequest {
        SupplementPersonalDataRequest {
            name: name.to_owned(),
            request_id: request_id.to_owned(),
            field: field.to_owned(),
            text: text.to_owned(),
            reason: "客户补充信息".to_owned(),
        }
    }

    /// A supplement keeps the record as first recorded, is in clear for `pii.read` readers and
    /// masked for others, and is erased with the person.
    async fn a_supplement_is_sealed_beside_the_record_masked_and_erased_with_the_person(api: IntakeApi) {
        let dpo = dpo("institutions/demo-bank");
        let filed = api.submit(&clerk(), submission(now())).await.unwrap().complaint.unwrap();
        let text = "新住址：上海市浦东新区世纪大道 100 号，备用电话 13900001111";
        let err = api.supplement_personal_data(&dpo, supplement("s1", &filed.name, "complaint.colour", text)).await;
        assert!(format!("{:?}", err.unwrap_err()).contains("field"));
        let err = api.supplement_personal_data(&dpo, supplement("s1", &filed.name, "facts", " ")).await;
        assert!(format!("{:?}", err.unwrap_err()).contains("text"));

        let done = api.supplement_personal_data(&dpo, supplement("s1", &filed.name, "complainant.address", text)).await;
        let done = done.unwrap();
        assert_eq!(done.personal_data_supplements.len(), 1);
        assert_eq!(done.personal_data_supplements[0].text, text);
        assert_eq!(done.personal_data_supplements[0].recorded_by, "user:dpo");
        assert_eq!(done.facts, filed.facts, "the record stays as first recorded");
        let retried = api.supplement_personal_data(&dpo, supplement("s1", &filed.name, "complainant.address", text));
        assert_eq!(retried.await.unwrap().personal_data_supplements.len(), 1, "a retry adds nothing");

        let get = |reason: &str| GetComplaintRequest { name: filed.name.clone(), pii_access_reason: reason.to_owned() };
        let mut clerk = clerk();
        clerk.permissions.push("complaints.read".to_owned());
        let masked = api.get(&clerk, get("")).await.unwrap();
        assert_eq!(masked.personal_data_supplements[0].text, crate::domain::mask::MASKED_TEXT);
        assert_eq!(masked.personal_data_supplements[0].field, "complainant.address");
        let mut reader = clerk.clone();
        reader.permissions.push("pii.read".to_owned());
        let clear = api.get(&reader, get("回电核实")).await.unwrap();
        assert_eq!(clear.personal_data_supplements[0].text, text);

        let subject = api.store().unwrap().subject_of(filed.name.strip_prefix("complaints/").unwrap()).await;
        let subject = format!("subjects/{}", subject.unwrap().unwrap());
        let erase = ErasePersonalDataRequest {
            person: by_phone("13812345678"),
            institution: "institutions/demo-bank".to_owned(),
            reason: "deletion request".to_owned(),
        };
        api.erase_personal_data(&dpo, erase).await.unwrap();
        let erased = api.get(&reader, get("回电核实")).await.unwrap();
        assert_eq!(erased.personal_data_supplements[0].text, crate::domain::pii::ERASED);
        let err = api.supplement_personal_data(&dpo, supplement("s2", &filed.name, "facts", "补充")).await.unwrap_err();
        assert!(matches!(err, IntakeError::PersonalDataErased), "{err:?}");

        let log = api.list_personal_data_accesses(&dpo, ListPersonalDataAccessesRequest { subject }).await.unwrap();
        let actions: Vec<&str> = log.accesses.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, ["erase", "read", "read", "supplement"]);
        let platform = super::super::test_support::dpo(ROOT_ORG_UNIT);
        let verified =
            api.verify_personal_data_access_log(&platform, VerifyPersonalDataAccessLogRequest {}).await.unwrap();
        assert!(verified.intact, "{verified:?}");
    }

    /// A person who gave their phone as `13812345678`, `+8613812345678`, `8613812345678`,
    /// `+86-13812345678`, `+86 138 1234 5678`, `+86-138-1234-5678` and `008613812345678` (no
    /// identity document) is one data subject, exported and erased by any spelling of it:
    /// `+86 138 1234 5678`, `86 13812345678`, `008613812345678` or `138-1234-5678` finds every
    /// complaint.
    async fn every_spelling_of_a_phone_finds_every_complaint_of_its_person(api: IntakeApi) {
        let mut filed = Vec::new();
        let submitted = [
            "13812345678",
            "+8613812345678",
            "8613812345678",
            "+86-13812345678",
            "+86 138 1234 5678",
            "+86-138-1234-5678",
            "008613812345678",
        ];
        for (n, phone) in submitted.into_iter().enumerate() {
            let mut request = submission(now());
            request.request_id = format!("spelling-{n}");
            let complainant = request.complaint.as_mut().and_then(|c| c.complainant.as_mut());
            let Some(redress_proto::redress::intake::v1::complainant::Party::Person(p)) =
                complainant.and_then(|c| c.party.as_mut())
            else {
                panic!("the example complainant is a person")
            };
            (p.phone, p.id_number, p.id_document_type) = (phone.to_owned(), String::new(), 0);
            filed.push(api.submit(&clerk(), request).await.unwrap().complaint.unwrap().name);
        }
        filed.sort();
        let dpo = dpo("institutions/demo-bank");
        let mut subjects = Vec::new();
        for spelling in ["+86 138 1234 5678", "86 13812345678", "008613812345678", "138-1234-5678"] {
            let export = ExportPersonalDataRequest {
                person: by_phone(spelling),
                institution: "institutions/demo-bank".to_owned(),
                reason: "access request".to_owned(),
            };
            let exported = api.export_personal_data(&dpo, export).await.unwrap();
            let mut names: Vec<String> = exported.complaints.into_iter().map(|c| c.name).collect();
            names.sort();
            assert_eq!(names, filed, "{spelling}");
            subjects.push(exported.subject);
        }
        subjects.dedup();
        assert_eq!(subjects.len(), 1, "one subject: {subjects:?}");
        let erase = |phone: &str| ErasePersonalDataRequest {
            person: by_phone(phone),
            institution: "institutions/demo-bank".to_owned(),
            reason: "deletion request".to_owned(),
        };
        let erased = api.erase_personal_data(&dpo, erase("008613812345678")).await.unwrap();
        assert_eq!((erased.subject, erased.erased_complaints), (subjects[0].clone(), submitted.len() as i64));
        for spelling in ["138-1234-5678", "+86 138 1234 5678"] {
            let erased = api.erase_personal_data(&dpo, erase(spelling)).await.unwrap();
            assert_eq!(erased.erased_complaints, 0, "nothing of the person is left to find by {spelling}");
        }
    }

    /// Units are stored in their canonical spelling, so the person behind a complaint filed as
    /// ` Institutions/Demo-Bank/ ` is exported and erased by `institutions/demo-bank`.
    async fn a_complaint_filed_under_any_spelling_of_its_unit_is_found_by_its_institution(api: IntakeApi) {
        let mut request = submission(now());
        request.complaint.as_mut().unwrap().org_unit = " Institutions/Demo-Bank/ ".to_owned();
        let filed = api.submit(&clerk(), request).await.unwrap().complaint.unwrap();
        assert_eq!(filed.org_unit, "institutions/demo-bank");
        let dpo = dpo("institutions/demo-bank");
        let export = ExportPersonalDataRequest {
            person: by_phone("13812345678"),
            institution: "institutions/demo-bank".to_owned(),
            reason: "access request".to_owned(),
        };
        let exported = api.export_personal_data(&dpo, export).await.unwrap();
        assert_eq!(exported.complaints.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [filed.name.as_str()]);
        let erase = ErasePersonalDataRequest {
            person: by_phone("13812345678"),
            institution: "institutions/demo-bank".to_owned(),
            reason: "deletion request".to_owned(),
        };
        let erased = api.erase_personal_data(&dpo, erase).await.unwrap();
        assert_eq!((erased.subject, erased.erased_complaints), (exported.subject, 1));
    }
}
