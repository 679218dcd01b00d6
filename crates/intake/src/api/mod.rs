//! gRPC surface of intake: parses requests once at the edge (organisation units, request
//! ids, resource names, text limits), calls the domain and the store, and reports every
//! failure as an [`IntakeError`]. `complaints` serves complaints and their event feed,
//! `personal_data` the data-subject rights; the tonic services at the end delegate to them.

mod calendars;
mod complaints;
mod personal_data;

use std::sync::Arc;

use redress_calendar::{DeadlineCalculator, Institutions, SlaPolicy};
use redress_platform::error::Violations;
use redress_platform::events::FeedStream;
use redress_platform::names::{Text, resource_id};
use redress_platform::principal::{Permission, Principal};
use redress_platform::ready::Ready;
use redress_platform::time::Clock;
use redress_proto::redress::common::v1::{ReloadCalendarsRequest, ReloadCalendarsResponse};
use redress_proto::redress::intake::v1::intake_event_feed_service_server::IntakeEventFeedService;
use redress_proto::redress::intake::v1::intake_service_server::IntakeService;
use redress_proto::redress::intake::v1::personal_data_service_server::PersonalDataService;
use redress_proto::redress::intake::v1::{
    Complaint, ConfirmComplaintContentRequest, CorrectPersonalDataRequest, ErasePersonalDataRequest,
    ErasePersonalDataResponse, ExportPersonalDataRequest, ExportPersonalDataResponse, GetComplaintRequest,
    ListComplaintsRequest, ListComplaintsResponse, ListPersonalDataAccessesRequest, ListPersonalDataAccessesResponse,
    ListTaxonomiesRequest, ListTaxonomiesResponse, OverrideClassificationRequest, StreamEventsRequest,
    StreamEventsResponse, SubmitComplaintRequest, SubmitComplaintResponse, WithdrawComplaintRequest,
};
use redress_proto::redress::intake::v1::{
    LiftSubjectRestrictionRequest, RestrictSubjectProcessingRequest, SubjectProcessingRestriction,
    SupplementPersonalDataRequest, VerifyPersonalDataAccessLogRequest, VerifyPersonalDataAccessLogResponse,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::calendars::{CalendarSource, LiveCalculator};
use crate::domain::classify::{Catalogue, Classifier, Taxonomy};
use crate::domain::mask;
use crate::domain::pii::Keyring;
use crate::error::IntakeError;
use crate::store::IntakeStore;

#[derive(Clone)]
pub struct IntakeApi {
    store: Ready<Arc<dyn IntakeStore>>,
    deadlines: LiveCalculator,
    clock: Clock,
    calendars: Option<CalendarSource>,
    keyring: Arc<Keyring>,
    catalogue: Arc<Catalogue>,
    recurrence_window: chrono::TimeDelta,
    shutdown: CancellationToken,
}

impl IntakeApi {
    /// Every institution on `deadlines` and `policy` until [`Self::with_institutions`].
    pub fn new(
        store: Ready<Arc<dyn IntakeStore>>,
        deadlines: DeadlineCalculator,
        policy: SlaPolicy,
        keyring: Arc<Keyring>,
        shutdown: CancellationToken,
    ) -> Self {
        let catalogue = Arc::new(Catalogue::shipped());
        let recurrence_window = chrono::TimeDelta::days(90);
        let deadlines = LiveCalculator::new(Institutions::single(deadlines, policy));
        let (clock, calendars) = (Clock::system(), None);
        Self { store, deadlines, clock, calendars, keyring, catalogue, recurrence_window, shutdown }
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Counts each institution's receipts on its own regime, calendar and zone, and classifies
    /// its complaints in its taxonomy (which [`Self::with_catalogue`] must serve).
    pub fn with_institutions(self, institutions: Institutions) -> Self {
        self.deadlines.set(institutions);
        self
    }

    /// `ReloadCalendars` (and [`IntakeApi::reload_calendars_now`]) read the calendars from
    /// `source`.
    pub fn with_calendars(self, source: CalendarSource) -> Self {
        Self { calendars: Some(source), ..self }
    }

    /// The taxonomies and classifiers in place of the shipped ones (with an institution's own,
    /// see [`Catalogue::with_own`]).
    pub fn with_catalogue(self, catalogue: Catalogue) -> Self {
        Self { catalogue: Arc::new(catalogue), ..self }
    }

    /// The classifier of the taxonomy the institution of `org_unit` classifies in. Start-up
    /// checks that every configured taxonomy has one ([`Catalogue::check`]).
    fn classifier_for(&self, org_unit: &str) -> Result<Arc<Classifier>, IntakeError> {
        let institutions = self.deadlines.current();
        let taxonomy = institutions.of(org_unit).taxonomy();
        let classifier = self.catalogue.classifier(taxonomy);
        Ok(classifier.cloned().ok_or_else(|| anyhow::anyhow!("taxonomy {taxonomy} of {org_unit} has no classifier"))?)
    }

    /// The taxonomy a handler's codes for `complaint` come from: the one it is classified in,
    /// or its institution's when that version is no longer loaded (codes are stable).
    fn taxonomy_of(&self, complaint: &Complaint) -> Result<&Taxonomy, IntakeError> {
        let classified = complaint.classification.as_ref().map_or("", |c| c.taxonomy.as_str());
        let institutions = self.deadlines.current();
        let current = institutions.of(&complaint.org_unit).taxonomy();
        let taxonomy = self.catalogue.taxonomy(classified).or_else(|| self.catalogue.taxonomy(current));
        Ok(taxonomy.ok_or_else(|| anyhow::anyhow!("taxonomy {current} of {} is not loaded", complaint.org_unit))?)
    }

    /// How far back an earlier complaint of the same person and issue makes a new one a
    /// recurrence (default 90 days).
    pub fn with_recurrence_window(mut self, days: u32) -> Self {
        self.recurrence_window = chrono::TimeDelta::days(i64::from(days));
        self
    }

    /// The store, once it is open (UNAVAILABLE while the service starts).
    fn store(&self) -> Result<&Arc<dyn IntakeStore>, IntakeError> {
        Ok(self.store.get()?)
    }

    /// Complaint `id` (named `name` by the caller) as stored. Outside the caller's
    /// organisation unit it does not exist for the caller.
    async fn complaint_in_scope(&self, principal: &Principal, id: &str, name: &str) -> Result<Complaint, IntakeError> {
        self.store()?
            .get(id)
            .await?
            .filter(|c| principal.covers(&c.org_unit))
            .ok_or_else(|| IntakeError::complaint_not_found(name))
    }
}

/// Masks the personal information of a complaint for a caller not allowed to see it.
fn redact(principal: &Principal, complaint: &mut Complaint) {
    if !principal.has(Permission::PiiRead) {
        mask::complaint(complaint);
    }
}

/// The id of the complaint a request names in its `name` field.
fn complaint_id<'a>(v: &mut Violations, name: &'a str) -> Option<&'a str> {
    resource_id(v, "name", name, "complaints")
}

/// A required reason (for a change, an override, an access to personal data), trimmed.
fn reason(v: &mut Violations, reason: &str) -> String {
    Text::Reason.check(v, "reason", reason, true);
    // Kept in the access log: with the identifiers written into it masked (D-PII-5).
    redress_platform::free_text_pii::mask(reason.trim()).into_owned()
}

/// What a request's fields parsed to, once every violation of them is reported.
fn parsed<T>(v: Violations, value: Option<T>) -> Result<T, IntakeError> {
    v.into_result()?;
    value.ok_or_else(|| anyhow::anyhow!("a request field was refused without a violation").into())
}

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

    async fn confirm_complaint_content(
        &self,
        request: Request<ConfirmComplaintContentRequest>,
    ) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.confirm_content(&principal, request.into_inner()).await?))
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

    async fn reload_calendars(
        &self,
        request: Request<ReloadCalendarsRequest>,
    ) -> Result<Response<ReloadCalendarsResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.reload_calendars(&principal, request.into_inner()).await?))
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

    async fn restrict_subject_processing(
        &self,
        request: Request<RestrictSubjectProcessingRequest>,
    ) -> Result<Response<SubjectProcessingRestriction>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.restrict_subject_processing(&principal, request.into_inner()).await?))
    }

    async fn lift_subject_restriction(
        &self,
        request: Request<LiftSubjectRestrictionRequest>,
    ) -> Result<Response<SubjectProcessingRestriction>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.lift_subject_restriction(&principal, request.into_inner()).await?))
    }

    async fn supplement_personal_data(
        &self,
        request: Request<SupplementPersonalDataRequest>,
    ) -> Result<Response<Complaint>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.supplement_personal_data(&principal, request.into_inner()).await?))
    }

    async fn verify_personal_data_access_log(
        &self,
        request: Request<VerifyPersonalDataAccessLogRequest>,
    ) -> Result<Response<VerifyPersonalDataAccessLogResponse>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.verify_personal_data_access_log(&principal, request.into_inner()).await?))
    }
}

type EventStream = FeedStream<StreamEventsResponse>;

#[tonic::async_trait]
impl IntakeEventFeedService for IntakeApi {
    type StreamEventsStream = EventStream;

    async fn stream_events(&self, request: Request<StreamEventsRequest>) -> Result<Response<EventStream>, Status> {
        let principal = principal_of(&request)?;
        Ok(Response::new(self.stream_events(principal, request.into_inner()).await?))
    }
}

/// An API over a fresh store, and the callers tests use.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test_support {
    use std::sync::Arc;

    use redress_calendar::WorkingCalendar;
    use redress_platform::db::DatabaseConfig;
    use redress_platform::time::to_timestamp;

    use super::*;

    pub async fn api(calendar: WorkingCalendar, config: &DatabaseConfig) -> IntakeApi {
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let store =
            crate::open_store(config, keyring.clone(), &redress_platform::host::Supervisor::detached()).await.unwrap();
        let calculator = DeadlineCalculator::new(Arc::new(calendar), chrono_tz::Asia::Shanghai);
        IntakeApi::new(Ready::from(store), calculator, SlaPolicy::default(), keyring, CancellationToken::new())
    }

    /// A clerk of the demo bank, who may file complaints.
    pub fn clerk() -> Principal {
        clerk_of("institutions/demo-bank")
    }

    /// A clerk who may file complaints for `org_unit`.
    pub fn clerk_of(org_unit: &str) -> Principal {
        caller("user:clerk", org_unit, "complaints.create")
    }

    /// A data protection officer of `org_unit`, who handles data-subject requests.
    pub fn dpo(org_unit: &str) -> Principal {
        caller("user:dpo", org_unit, "pii.manage")
    }

    fn caller(subject: &str, org_unit: &str, permission: &str) -> Principal {
        Principal {
            subject: subject.to_owned(),
            roles: vec![],
            org_unit: org_unit.to_owned(),
            department: String::new(),
            permissions: vec![permission.to_owned()],
            staff_id: String::new(),
        }
    }

    /// A submission of the example complaint, received at `receive`.
    pub fn submission(receive: chrono::DateTime<chrono::Utc>) -> SubmitComplaintRequest {
        let mut complaint = crate::testing::complaint("事实");
        complaint.receive_time = Some(to_timestamp(receive));
        SubmitComplaintRequest { request_id: "r1".to_owned(), complaint: Some(complaint) }
    }
}
