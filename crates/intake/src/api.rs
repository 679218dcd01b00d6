//! gRPC surface of intake: maps protos to domain calls and domain errors to `Status`, here
//! and nowhere else.

use std::sync::Arc;

use anyhow::Context;
use prost::Message;
use redress_calendar::{DeadlineCalculator, SlaPolicy};
use redress_platform::ServiceError;
use redress_platform::error::Violations;
use redress_platform::events::{FeedStream, serve_stream};
use redress_platform::names::{OrgUnit, RequestId};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::ready::Ready;
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{from_micros, from_timestamp, now, to_timestamp};
use redress_proto::redress::common::v1::{Channel, Grade as ProtoGrade};
use redress_proto::redress::intake::v1::WithdrawComplaintRequest;
use redress_proto::redress::intake::v1::intake_event_feed_service_server::IntakeEventFeedService;
use redress_proto::redress::intake::v1::intake_service_server::IntakeService;
use redress_proto::redress::intake::v1::personal_data_service_server::PersonalDataService;
use redress_proto::redress::intake::v1::{
    Complaint, ComplaintState, CorrectPersonalDataRequest, ErasePersonalDataRequest, ErasePersonalDataResponse,
    ExportPersonalDataRequest, ExportPersonalDataResponse, GetComplaintRequest, IdDocumentType, ListComplaintsRequest,
    ListComplaintsResponse, ListPersonalDataAccessesRequest, ListPersonalDataAccessesResponse, ListTaxonomiesRequest,
    ListTaxonomiesResponse, OverrideClassificationRequest, PersonIdentifier, PersonalDataAccess, Receipt,
    RiskSignalKind, StreamEventsRequest, StreamEventsResponse, SubmitComplaintRequest, SubmitComplaintResponse,
    person_identifier,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::domain::classify::{Classifier, Taxonomy};
use crate::domain::deadlines::{grade_from_proto, receipt_deadlines};
use crate::domain::lifecycle::ChangeError;
use crate::domain::pii::Keyring;
use crate::domain::subjects;
use crate::domain::{mask, validate_submission};
use crate::store::{
    ClassificationOverride, Identifier, IntakeStore, ListQuery, NewComplaint, PiiAccess, StoreError, Submitted,
};

#[derive(Clone)]
pub struct IntakeApi {
    store: Ready<Arc<dyn IntakeStore>>,
    deadlines: DeadlineCalculator,
    policy: SlaPolicy,
    keyring: Arc<Keyring>,
    classifier: Arc<Classifier>,
    taxonomies: Arc<Vec<Taxonomy>>,
    recurrence_window: chrono::TimeDelta,
    shutdown: CancellationToken,
}

impl IntakeApi {
    pub fn new(
        store: Ready<Arc<dyn IntakeStore>>,
        deadlines: DeadlineCalculator,
        policy: SlaPolicy,
        keyring: Arc<Keyring>,
        shutdown: CancellationToken,
    ) -> Self {
        let classifier = Arc::new(Classifier::banking());
        let taxonomies = Arc::new(vec![classifier.taxonomy().clone(), Taxonomy::general()]);
        let recurrence_window = chrono::TimeDelta::days(90);
        Self { store, deadlines, policy, keyring, classifier, taxonomies, recurrence_window, shutdown }
    }

    /// Adds an institution's own taxonomies (listed by ListTaxonomies; classification stays in
    /// the banking taxonomy, the only one with a trained model).
    pub fn with_taxonomies(mut self, extra: Vec<Taxonomy>) -> Self {
        let mut all: Vec<Taxonomy> = self.taxonomies.iter().cloned().collect();
        for t in extra {
            all.retain(|existing| existing.id() != t.id());
            all.push(t);
        }
        self.taxonomies = Arc::new(all);
        self
    }

    /// How far back an earlier complaint of the same person and issue makes a new one a
    /// recurrence (default 90 days).
    pub fn with_recurrence_window(mut self, days: u32) -> Self {
        self.recurrence_window = chrono::TimeDelta::days(i64::from(days));
        self
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.request_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        request: SubmitComplaintRequest,
    ) -> Result<SubmitComplaintResponse, ServiceError> {
        principal.require(Permission::ComplaintsCreate)?;
        let now = now();
        let receive_time = validate_submission(&request, now)?;
        let mut v = Violations::new();
        let request_id = RequestId::parse_required(&mut v, "request_id", &request.request_id);
        v.into_result()?;
        let Some(request_id) = request_id else { return Err(ServiceError::invalid("request_id", "required")) };
        let org_unit = request.complaint.as_ref().map(|c| c.org_unit.as_str()).unwrap_or_default();
        if !principal.covers(org_unit) {
            return Err(ServiceError::PermissionDenied(format!(
                "complaint.org_unit {org_unit} lies outside the caller's organisation unit"
            )));
        }
        // Keyed, so the stored fingerprint cannot be used to guess the personal data it covers.
        let request_hash =
            self.keyring.digest("request", &request.complaint.as_ref().map(Message::encode_to_vec).unwrap_or_default());
        let mut complaint = request.complaint.unwrap_or_default();
        // The complainant's own words decide the classification; staff notes do not.
        let text = format!("{}\n{}", complaint.demand, complaint.facts);
        let decision = self.classifier.classify(&text, complaint.interaction.as_ref());
        let mut classification = decision.classification;
        classification.classify_time = Some(to_timestamp(now));
        let grade = grade_from_proto(classification.grade);
        let deadlines = receipt_deadlines(&self.deadlines, &self.policy, receive_time, grade)
            .context("deadline computation failed")?;
        for pending in &deadlines.pending_deadlines {
            let year = pending.missing_calendar_year;
            tracing::error!(
                year,
                deadline = pending.deadline,
                "no working-day calendar loaded for {year}: a receipt deadline is pending until an operator adds it"
            );
            metrics::counter!("redress_receipt_deadlines_pending_total", "missing_calendar_year" => year.to_string())
                .increment(1);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let name = format!("complaints/{id}");
        for signal in &decision.signals {
            let kind = RiskSignalKind::try_from(signal.kind).unwrap_or_default().as_str_name();
            metrics::counter!("redress_risk_signals_total", "kind" => kind).increment(1);
        }
        complaint.risk_signals = decision.signals;
        complaint.classification = Some(classification);
        complaint.automatic_classification = None;
        complaint.name.clone_from(&name);
        complaint.complaint_number.clear();
        complaint.receive_time = Some(to_timestamp(receive_time));
        complaint.grade = deadlines.grade;
        complaint.state = ComplaintState::Accepted as i32;
        complaint.create_time = Some(to_timestamp(now));
        complaint.receipt = Some(Receipt {
            complaint_number: String::new(),
            complaint: name,
            accept_time: Some(to_timestamp(receive_time)),
            deadlines: Some(deadlines),
        });
        let new = NewComplaint {
            id,
            request_id,
            request_hash,
            number_prefix: now.with_timezone(&self.deadlines.time_zone()).format("%Y%m%d").to_string(),
            receive_time,
            create_time: now,
            complaint,
            trace: TraceContext::current(),
            recurrence_since: receive_time - self.recurrence_window,
        };
        let store = self.store.get()?;
        let mut complaint = match store.submit(new).await {
            Ok(Submitted::Created(c)) => {
                tracing::info!(complaint = %c.name, number = %c.complaint_number, "complaint accepted");
                let channel = Channel::try_from(c.channel).unwrap_or_default().as_str_name();
                metrics::counter!("redress_complaints_accepted_total", "channel" => channel).increment(1);
                c
            }
            // Stored with personal information masked; a caller allowed to see it gets it back
            // as first returned, and the read is recorded.
            Ok(Submitted::Replayed(c)) if principal.has(Permission::PiiRead) => {
                let id = c.name.strip_prefix("complaints/").unwrap_or_default();
                let access = PiiAccess {
                    actor: principal.subject.clone(),
                    action: "read",
                    reason: "submission retried".to_owned(),
                };
                store.reveal(id, &access).await.map_err(store_error)?.unwrap_or(c)
            }
            Ok(Submitted::Replayed(c)) => c,
            Err(e) => return Err(store_error(e)),
        };
        redact(principal, &mut complaint);
        Ok(SubmitComplaintResponse { receipt: complaint.receipt.clone(), complaint: Some(complaint) })
    }

    pub async fn get(&self, principal: &Principal, request: GetComplaintRequest) -> Result<Complaint, ServiceError> {
        principal.require(Permission::ComplaintsRead)?;
        let id = parse_name(&request.name)?;
        let reason = request.pii_access_reason.trim();
        if reason.chars().count() > MAX_REASON {
            return Err(ServiceError::invalid("pii_access_reason", format!("at most {MAX_REASON} characters")));
        }
        if !reason.is_empty() {
            principal.require(Permission::PiiRead)?;
        }
        let store = self.store.get()?;
        let complaint = store
            .get(id)
            .await
            .map_err(store_error)?
            // Outside the caller's organisation unit it does not exist for the caller.
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        if reason.is_empty() {
            return Ok(complaint);
        }
        let access = PiiAccess { actor: principal.subject.clone(), action: "read", reason: reason.to_owned() };
        let clear = store.reveal(id, &access).await.map_err(store_error)?;
        clear.ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })
    }

    /// The institution of a data-subject request, which the caller must cover.
    fn institution(principal: &Principal, institution: &str, v: &mut Violations) -> Option<OrgUnit> {
        if institution.is_empty() {
            v.add("institution", "required, e.g. institutions/acme-bank");
            return None;
        }
        match OrgUnit::try_from_str(institution) {
            Ok(unit) if unit.is_institution() && principal.covers(unit.as_str()) => Some(unit),
            Ok(unit) if unit.is_institution() => {
                v.add("institution", "lies outside the caller's organisation unit");
                None
            }
            _ => {
                v.add("institution", "must be institutions/{institution_id}");
                None
            }
        }
    }

    fn identifier(
        institution: Option<OrgUnit>,
        person: Option<&PersonIdentifier>,
        v: &mut Violations,
    ) -> Option<Identifier> {
        match person.and_then(|p| p.identifier.as_ref()) {
            Some(person_identifier::Identifier::IdDocument(doc)) => {
                if doc.number.trim().is_empty() {
                    v.add("person.id_document.number", "required");
                }
                match IdDocumentType::try_from(doc.r#type) {
                    Ok(IdDocumentType::Unspecified) | Err(_) => v.add("person.id_document.type", "required"),
                    Ok(_) => {}
                }
                let value = subjects::id_document(doc.r#type, &doc.number);
                Some(Identifier { institution: institution?, kind: subjects::ID_DOCUMENT, value })
            }
            Some(person_identifier::Identifier::Phone(phone)) if !phone.trim().is_empty() => {
                Some(Identifier { institution: institution?, kind: subjects::PHONE, value: phone.clone() })
            }
            _ => {
                v.add("person", "an identity document or a phone number is required");
                None
            }
        }
    }

    fn reason(reason: &str, v: &mut Violations) -> String {
        if reason.trim().is_empty() {
            v.add("reason", "required");
        } else if reason.chars().count() > MAX_REASON {
            v.add("reason", format!("at most {MAX_REASON} characters"));
        }
        reason.trim().to_owned()
    }

    pub async fn export_personal_data(
        &self,
        principal: &Principal,
        request: ExportPersonalDataRequest,
    ) -> Result<ExportPersonalDataResponse, ServiceError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let institution = Self::institution(principal, &request.institution, &mut v);
        let identifier = Self::identifier(institution, request.person.as_ref(), &mut v);
        let reason = Self::reason(&request.reason, &mut v);
        v.into_result()?;
        let Some(identifier) = identifier else { return Err(ServiceError::invalid("person", "required")) };
        let access = PiiAccess { actor: principal.subject.clone(), action: "export", reason };
        let complaints = self.store.get()?.export(&identifier, &access).await.map_err(store_error)?;
        let subject = self.subject_of(&complaints).await?;
        Ok(ExportPersonalDataResponse { subject, complaints })
    }

    /// The subject name of exported complaints (they share one).
    async fn subject_of(&self, complaints: &[Complaint]) -> Result<String, ServiceError> {
        let Some(first) = complaints.first() else { return Ok(String::new()) };
        let id = first.name.strip_prefix("complaints/").unwrap_or_default();
        let subject = self.store.get()?.subject_of(id).await.map_err(store_error)?;
        Ok(subject.map(|s| format!("subjects/{s}")).unwrap_or_default())
    }

    pub async fn correct_personal_data(
        &self,
        principal: &Principal,
        request: CorrectPersonalDataRequest,
    ) -> Result<Complaint, ServiceError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let id = parse_name(&request.name).map(str::to_owned);
        if id.is_err() {
            v.add("name", "must be complaints/{complaint_id}");
        }
        crate::domain::validate::complainant(&mut v, "complainant", request.complainant.as_ref());
        let reason = Self::reason(&request.reason, &mut v);
        v.into_result()?;
        let id = id?;
        let store = self.store.get()?;
        store
            .get(&id)
            .await
            .map_err(store_error)?
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        let access = PiiAccess { actor: principal.subject.clone(), action: "correct", reason };
        let complainant = request.complainant.unwrap_or_default();
        store
            .correct(&id, complainant, &access)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })
    }

    pub async fn erase_personal_data(
        &self,
        principal: &Principal,
        request: ErasePersonalDataRequest,
    ) -> Result<ErasePersonalDataResponse, ServiceError> {
        principal.require(Permission::PiiManage)?;
        let mut v = Violations::new();
        let institution = Self::institution(principal, &request.institution, &mut v);
        let identifier = Self::identifier(institution, request.person.as_ref(), &mut v);
        let reason = Self::reason(&request.reason, &mut v);
        v.into_result()?;
        let Some(identifier) = identifier else { return Err(ServiceError::invalid("person", "required")) };
        let access = PiiAccess { actor: principal.subject.clone(), action: "erase", reason };
        let erased = self.store.get()?.erase(&identifier, &access).await.map_err(store_error)?;
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
    ) -> Result<ListPersonalDataAccessesResponse, ServiceError> {
        principal.require(Permission::PiiManage)?;
        let id = request
            .subject
            .strip_prefix("subjects/")
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
            .ok_or_else(|| ServiceError::invalid("subject", "must be subjects/{subject_id}"))?;
        let store = self.store.get()?;
        // A subject belongs to one institution; outside it, the subject does not exist for
        // the caller.
        let units = store.subject_units(id).await.map_err(store_error)?;
        if units.is_empty() || !units.iter().all(|u| principal.covers(u)) {
            return Err(ServiceError::NotFound { resource: "subject", name: request.subject.clone() });
        }
        let accesses = store.pii_accesses(id).await.map_err(store_error)?;
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

    pub async fn withdraw(
        &self,
        principal: &Principal,
        request: WithdrawComplaintRequest,
    ) -> Result<Complaint, ServiceError> {
        principal.require(Permission::ComplaintsCreate)?;
        let mut v = Violations::new();
        let id = parse_name(&request.name).map(str::to_owned);
        if id.is_err() {
            v.add("name", "must be complaints/{complaint_id}");
        }
        let reason = Self::reason(&request.reason, &mut v);
        let now = now();
        let at = match request.withdraw_time.as_ref() {
            None => now,
            Some(t) => match from_timestamp(t) {
                Some(t) if t <= now + chrono::TimeDelta::minutes(5) => t,
                Some(_) => {
                    v.add("withdraw_time", "must not lie in the future");
                    now
                }
                None => {
                    v.add("withdraw_time", "is not a valid timestamp");
                    now
                }
            },
        };
        v.into_result()?;
        let id = id?;
        let store = self.store.get()?;
        store
            .get(&id)
            .await
            .map_err(store_error)?
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        let withdrawn = store
            .withdraw(&id, &reason, at)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        tracing::info!(complaint = %withdrawn.name, "complaint withdrawn");
        Ok(withdrawn)
    }

    pub async fn override_classification(
        &self,
        principal: &Principal,
        request: OverrideClassificationRequest,
    ) -> Result<Complaint, ServiceError> {
        principal.require(Permission::ComplaintsClassify)?;
        let mut v = Violations::new();
        let id = parse_name(&request.name).map(str::to_owned);
        if id.is_err() {
            v.add("name", "must be complaints/{complaint_id}");
        }
        let taxonomy = self.classifier.taxonomy();
        if !request.business_type.is_empty() && !taxonomy.has_business_type(&request.business_type) {
            v.add("business_type", format!("not a business type of {}", taxonomy.id()));
        }
        if !request.cause.is_empty() && !taxonomy.has_cause(&request.cause) {
            v.add("cause", format!("not a cause of {}", taxonomy.id()));
        }
        for (i, right) in request.rights.iter().enumerate() {
            if !taxonomy.has_right(right) {
                v.add(format!("rights[{i}]"), format!("not a right of {}", taxonomy.id()));
            }
        }
        let grade = match ProtoGrade::try_from(request.grade) {
            Ok(g) => g,
            Err(_) => {
                v.add("grade", "unknown grade");
                ProtoGrade::Unspecified
            }
        };
        let reason = Self::reason(&request.reason, &mut v);
        v.into_result()?;
        let id = id?;
        let store = self.store.get()?;
        store
            .get(&id)
            .await
            .map_err(store_error)?
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        // Merged with the classification in force inside the store's write, so two handlers
        // overriding different parts at once both take effect.
        let change = ClassificationOverride {
            taxonomy: taxonomy.id(),
            business_type: Some(request.business_type).filter(|b| !b.is_empty()),
            cause: Some(request.cause).filter(|c| !c.is_empty()),
            rights: Some(request.rights).filter(|r| !r.is_empty()),
            grade: (grade != ProtoGrade::Unspecified).then_some(grade as i32),
            classified_by: principal.subject.clone(),
            reason,
            time: to_timestamp(now()),
        };
        let updated = store
            .reclassify(&id, change)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound { resource: "complaint", name: request.name.clone() })?;
        tracing::info!(complaint = %updated.name, "classification overridden");
        Ok(updated)
    }

    pub fn list_taxonomies(&self, principal: &Principal) -> Result<ListTaxonomiesResponse, ServiceError> {
        principal.require(Permission::ComplaintsRead)?;
        let active = self.classifier.taxonomy().id();
        Ok(ListTaxonomiesResponse {
            taxonomies: self.taxonomies.iter().map(|t| t.to_proto(t.id() == active)).collect(),
        })
    }

    pub async fn list(
        &self,
        principal: &Principal,
        request: ListComplaintsRequest,
    ) -> Result<ListComplaintsResponse, ServiceError> {
        principal.require(Permission::ComplaintsRead)?;
        let mut v = redress_platform::error::Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let channel = match Channel::try_from(request.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(c) => Some(c as i32),
            Err(_) => {
                v.add("channel", "unknown channel");
                None
            }
        };
        let mut time = |field: &str, t: Option<&prost_types::Timestamp>| {
            t.and_then(|t| {
                let parsed = from_timestamp(t);
                if parsed.is_none() {
                    v.add(field, "is not a valid timestamp");
                }
                parsed
            })
        };
        let receive_from = time("receive_time_from", request.receive_time_from.as_ref());
        let receive_to = time("receive_time_to", request.receive_time_to.as_ref());
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        let query = ListQuery {
            channel,
            receive_from,
            receive_to,
            after,
            scope: principal.scope(),
            limit: i64::from(page_size) + 1,
        };
        let mut listed = self.store.get()?.list(&query).await.map_err(store_error)?;
        let next_page_token = paging::finish_page(&mut listed, page_size, |l| l.cursor.clone());
        let complaints = listed
            .into_iter()
            .map(|l| {
                let mut c = l.complaint;
                redact(principal, &mut c);
                c
            })
            .collect();
        Ok(ListComplaintsResponse { complaints, next_page_token })
    }
}

fn redact(principal: &Principal, complaint: &mut Complaint) {
    if !principal.has(Permission::PiiRead) {
        mask::complaint(complaint);
    }
}

fn parse_name(name: &str) -> Result<&str, ServiceError> {
    name.strip_prefix("complaints/")
        .filter(|id| uuid::Uuid::try_parse(id).is_ok())
        .ok_or_else(|| ServiceError::invalid("name", "must be complaints/{complaint_id}"))
}

fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::RequestIdReused => {
            ServiceError::invalid("request_id", "was already used for a different complaint")
        }
        StoreError::Erased => ServiceError::failed_precondition(
            "PERSONAL_DATA_ERASED",
            "the complainant's personal information was erased",
        ),
        StoreError::Refused(ChangeError::WithdrawnBeforeReceipt) => {
            ServiceError::invalid("withdraw_time", "must not be before the complaint was received")
        }
        StoreError::Other(e) => ServiceError::Internal(e),
    }
}

/// Longest reason accepted for an access to personal information.
const MAX_REASON: usize = 500;

fn principal_of<T>(request: &Request<T>) -> Result<Arc<Principal>, Status> {
    Ok(Principal::of(request)?)
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn submit_complaint(
        &self,
        request: Request<SubmitComplaintRequest>,
    ) -> Result<Response<SubmitComplaintResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.submit(&principal, request.into_inner()).await?))
    }

    async fn get_complaint(&self, request: Request<GetComplaintRequest>) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.get(&principal, request.into_inner()).await?))
    }

    async fn list_complaints(
        &self,
        request: Request<ListComplaintsRequest>,
    ) -> Result<Response<ListComplaintsResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.list(&principal, request.into_inner()).await?))
    }

    async fn withdraw_complaint(
        &self,
        request: Request<WithdrawComplaintRequest>,
    ) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.withdraw(&principal, request.into_inner()).await?))
    }

    async fn override_classification(
        &self,
        request: Request<OverrideClassificationRequest>,
    ) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.override_classification(&principal, request.into_inner()).await?))
    }

    async fn list_taxonomies(
        &self,
        request: Request<ListTaxonomiesRequest>,
    ) -> Result<Response<ListTaxonomiesResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.list_taxonomies(&principal)?))
    }
}

#[tonic::async_trait]
impl PersonalDataService for IntakeApi {
    async fn export_personal_data(
        &self,
        request: Request<ExportPersonalDataRequest>,
    ) -> Result<Response<ExportPersonalDataResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.export_personal_data(&principal, request.into_inner()).await?))
    }

    async fn correct_personal_data(
        &self,
        request: Request<CorrectPersonalDataRequest>,
    ) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.correct_personal_data(&principal, request.into_inner()).await?))
    }

    async fn erase_personal_data(
        &self,
        request: Request<ErasePersonalDataRequest>,
    ) -> Result<Response<ErasePersonalDataResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.erase_personal_data(&principal, request.into_inner()).await?))
    }

    async fn list_personal_data_accesses(
        &self,
        request: Request<ListPersonalDataAccessesRequest>,
    ) -> Result<Response<ListPersonalDataAccessesResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.list_personal_data_accesses(&principal, request.into_inner()).await?))
    }
}

type EventStream = FeedStream<StreamEventsResponse>;

#[tonic::async_trait]
impl IntakeEventFeedService for IntakeApi {
    type StreamEventsStream = EventStream;

    async fn stream_events(&self, request: Request<StreamEventsRequest>) -> Result<Response<EventStream>, Status> {
        let principal = principal_of(&request)?;
        let (feed, after) = (self.store.get()?.feed(), request.get_ref().after_position);
        let stream =
            serve_stream(feed, principal, after, self.shutdown.clone(), |events| StreamEventsResponse { events });
        Ok(Response::new(stream.await?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use redress_calendar::WorkingCalendar;
    use redress_platform::testing::TestDatabase;

    use super::*;

    async fn api(calendar: WorkingCalendar, db: &TestDatabase) -> IntakeApi {
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let store = crate::open_store(&db.config, keyring.clone(), &redress_platform::host::Supervisor::detached())
            .await
            .unwrap();
        let calculator = DeadlineCalculator::new(Arc::new(calendar), chrono_tz::Asia::Shanghai);
        IntakeApi::new(Ready::from(store), calculator, SlaPolicy::default(), keyring, CancellationToken::new())
    }

    fn clerk() -> Principal {
        Principal {
            subject: "user:clerk".to_owned(),
            roles: vec![],
            org_unit: "institutions/demo-bank".to_owned(),
            permissions: vec!["complaints.create".to_owned()],
        }
    }

    fn request(receive: chrono::DateTime<chrono::Utc>) -> SubmitComplaintRequest {
        let mut complaint = crate::testing::complaint("事实");
        complaint.receive_time = Some(to_timestamp(receive));
        SubmitComplaintRequest { request_id: "r1".to_owned(), complaint: Some(complaint) }
    }

    #[tokio::test]
    async fn a_missing_calendar_leaves_deadlines_pending_but_records_the_complaint() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let only_2025 =
            WorkingCalendar::from_year_toml(&[("2025.toml", include_str!("../../calendar/data/cn/2025.toml"))])
                .unwrap();
        let api = api(only_2025, &db).await;
        // Sunday 2025-12-28 10:00 in Shanghai: the 24-hour clock ends in 2025, the 7-working-day
        // and 15-day clocks need 2026.
        let receive = chrono::Utc.with_ymd_and_hms(2025, 12, 28, 2, 0, 0).unwrap();
        let response = api.submit(&clerk(), request(receive)).await.unwrap();
        let deadlines = response.receipt.unwrap().deadlines.unwrap();
        assert_eq!(
            deadlines.first_response_due_time,
            Some(to_timestamp(chrono::Utc.with_ymd_and_hms(2025, 12, 29, 2, 0, 0).unwrap()))
        );
        assert_eq!(deadlines.resolution_due_time, None);
        assert_eq!(deadlines.regulatory_decision_due_time, None);
        let pending: Vec<_> =
            deadlines.pending_deadlines.iter().map(|p| (p.deadline.as_str(), p.missing_calendar_year)).collect();
        assert_eq!(pending, [("resolution_due_time", 2026), ("regulatory_decision_due_time", 2026)]);
        assert!(!response.complaint.unwrap().complaint_number.is_empty(), "the complaint is recorded");
    }

    #[tokio::test]
    async fn receipts_carry_the_official_calendar_deadlines() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db).await;
        // Thursday 2026-09-24 18:00 Shanghai, just before the Mid-Autumn holiday (Sep 25–27) and
        // National Day (Oct 1–7, make-up working day Sat Oct 10).
        let receive = chrono::Utc.with_ymd_and_hms(2026, 9, 24, 10, 0, 0).unwrap();
        let deadlines = api.submit(&clerk(), request(receive)).await.unwrap().receipt.unwrap().deadlines.unwrap();
        let shanghai_midnight = |y, m, d| {
            to_timestamp(
                chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().with_timezone(&chrono::Utc),
            )
        };
        // Working days after Sep 24: Sep 28, 29, 30, Oct 8, 9, 10 (make-up Saturday), 12 → 24:00 Oct 12.
        assert_eq!(deadlines.resolution_due_time, Some(shanghai_midnight(2026, 10, 13)));
        // 15 days after Sep 24 is Oct 9, a Friday and a working day → 24:00 Oct 9.
        assert_eq!(deadlines.regulatory_decision_due_time, Some(shanghai_midnight(2026, 10, 10)));
        assert!(deadlines.pending_deadlines.is_empty());
    }

    #[tokio::test]
    async fn a_subjects_access_log_is_visible_only_within_its_institution() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db).await;
        api.submit(&clerk(), request(now())).await.unwrap();
        let dpo = |unit: &str| Principal {
            subject: "user:dpo".to_owned(),
            roles: vec![],
            org_unit: unit.to_owned(),
            permissions: vec!["pii.manage".to_owned()],
        };
        let export = ExportPersonalDataRequest {
            person: Some(PersonIdentifier {
                identifier: Some(person_identifier::Identifier::Phone("13812345678".to_owned())),
            }),
            institution: "institutions/demo-bank".to_owned(),
            reason: "access request".to_owned(),
        };
        let subject = api.export_personal_data(&dpo("institutions/demo-bank"), export).await.unwrap().subject;
        let request = || ListPersonalDataAccessesRequest { subject: subject.clone() };
        let err = api.list_personal_data_accesses(&dpo("institutions/other-bank"), request()).await.unwrap_err();
        assert!(matches!(err, ServiceError::NotFound { .. }), "{err:?}");
        let log = api.list_personal_data_accesses(&dpo("institutions/demo-bank"), request()).await.unwrap();
        assert_eq!(log.accesses.len(), 1);
    }
}
