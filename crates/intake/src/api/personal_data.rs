//! PersonalDataService: a data subject's rights (export, correction, erasure) and the record
//! of who touched their personal information. Every call needs `pii.manage` and a reason,
//! and is recorded.

use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, resource_id};
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::{from_micros, to_timestamp};
use redress_proto::redress::intake::v1::{
    Complaint, CorrectPersonalDataRequest, ErasePersonalDataRequest, ErasePersonalDataResponse,
    ExportPersonalDataRequest, ExportPersonalDataResponse, IdDocumentType, ListPersonalDataAccessesRequest,
    ListPersonalDataAccessesResponse, PersonIdentifier, PersonalDataAccess, person_identifier,
};

use super::{IntakeApi, complaint_id, parsed, reason};
use crate::domain::subjects::{self, Identifier};
use crate::domain::validate;
use crate::error::IntakeError;
use crate::store::PiiAccess;

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
    );

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
