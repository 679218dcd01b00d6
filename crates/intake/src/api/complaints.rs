//! IntakeService and the event feed: submitting, reading and listing complaints, the
//! complainant's withdrawal and answer to the read-back of the record, a handler's override of
//! the classification, the taxonomies.

use std::sync::Arc;

use anyhow::Context;
use prost::Message;
use redress_platform::error::Violations;
use redress_platform::events::serve_stream;
use redress_platform::free_text_pii;
use redress_platform::names::{RequestId, Text};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::common::v1::{Channel, Grade as ProtoGrade};
use redress_proto::redress::intake::v1::{
    Complaint, ComplaintState, ConfirmComplaintContentRequest, GetComplaintRequest, Interaction, ListComplaintsRequest,
    ListComplaintsResponse, ListTaxonomiesResponse, OverrideClassificationRequest, Receipt, RiskSignalKind,
    StreamEventsRequest, StreamEventsResponse, SubmitComplaintRequest, SubmitComplaintResponse,
    WithdrawComplaintRequest,
};

use super::{EventStream, IntakeApi, complaint_id, parsed, reason, redact};
use crate::domain::contact::{self, recorded_first_contact};
use crate::domain::deadlines::{grade_from_proto, is_provisional, receipt_deadlines};
use crate::domain::lifecycle::ClassificationOverride;
use crate::domain::validate::{self, validate_submission};
use crate::error::IntakeError;
use crate::store::{ListQuery, NewComplaint, PiiAccess, RequestKey, StoreError, Submitted};

/// Complaint text (demand and facts, UTF-8 bytes) up to which it is masked and classified on the
/// async worker; longer text is read on the blocking pool.
const INLINE_TEXT_BYTES: usize = 8 * 1024;

impl IntakeApi {
    #[tracing::instrument(skip_all, fields(request_id = %request.request_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        request: SubmitComplaintRequest,
    ) -> Result<SubmitComplaintResponse, IntakeError> {
        principal.require(Permission::ComplaintsCreate)?;
        let now = self.clock.now();
        let submission = validate_submission(&request, now)?;
        if !principal.covers(submission.org_unit.as_str()) {
            return Err(IntakeError::OutsideOrgUnit(submission.org_unit));
        }
        // Keyed, so the stored fingerprint cannot be used to guess the personal data it covers.
        // It covers the complaint as sent, its first contact and source included; a first
        // contact taken from the caller is not part of it, so a retry (or an import run again)
        // by another account returns the first result.
        let request_hash =
            self.keyring.digest("request", &request.complaint.as_ref().map(Message::encode_to_vec).unwrap_or_default());
        let mut complaint = request.complaint.unwrap_or_default();
        // The complainant's own words decide the classification; staff notes do not. Read with
        // identifiers masked, so none becomes a "top token" of the classification, which is
        // announced and kept in clear.
        let text = format!("{}\n{}", complaint.demand, complaint.facts);
        let classifier = self.classifier_for(submission.org_unit.as_str())?;
        let read = move |text: String, interaction: Option<Interaction>| {
            classifier.classify(&free_text_pii::mask(&text), interaction.as_ref())
        };
        // Masking and segmenting a long account (facts run to 200 000 characters) is long CPU
        // work: off the async workers, so that other calls are not held up behind it.
        let decision = if text.len() > INLINE_TEXT_BYTES {
            let interaction = complaint.interaction;
            tokio::task::spawn_blocking(move || read(text, interaction)).await.context("classifying the complaint")?
        } else {
            read(text, complaint.interaction)
        };
        let mut classification = decision.classification;
        classification.classify_time = Some(to_timestamp(now));
        let receive_time = submission.receive_time;
        let institutions = self.deadlines.current();
        let regime = institutions.of(submission.org_unit.as_str());
        let grade = grade_from_proto(classification.grade);
        // Every calendar counts a year without a file provisionally, so a complaint is never
        // refused for want of one; only a date outside every countable year fails here.
        let deadlines = receipt_deadlines(regime.calculator(), regime.policy(), receive_time, grade)
            .context("deadline computation failed")?;
        if is_provisional(&deadlines) {
            // Counted on a year whose official arrangement is not loaded: recomputed, and the
            // complainant told of a moved decision deadline, once it is.
            metrics::counter!("redress_receipt_deadlines_provisional_total").increment(1);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let name = format!("complaints/{id}");
        for signal in &decision.signals {
            let kind = RiskSignalKind::try_from(signal.kind).unwrap_or_default().as_str_name();
            metrics::counter!("redress_risk_signals_total", "kind" => kind).increment(1);
        }
        complaint.first_contact = recorded_first_contact(submission.first_contact, principal, &submission.org_unit);
        complaint.source = submission.source as i32;
        complaint.product = submission.product;
        // A confirmation answers the read-back of the record, so it follows it.
        complaint.content_confirmations.clear();
        complaint.org_unit = submission.org_unit.into_string();
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
            request_id: submission.request_id,
            request_hash,
            number_prefix: now.with_timezone(&regime.calculator().time_zone()).format("%Y%m%d").to_string(),
            receive_time,
            create_time: now,
            complaint,
            trace: TraceContext::current(),
            recurrence_since: receive_time - self.recurrence_window,
        };
        let external_reference = new.complaint.external_reference.clone();
        let store = self.store()?;
        let submitted = store.submit(new).await.map_err(|e| match e {
            // Refused for a complaint the caller may not see: it learns that the reference is
            // taken, which the uniqueness itself discloses, but not which complaint has it.
            StoreError::ReferenceTaken { org_unit, .. } if !principal.covers(&org_unit) => {
                IntakeError::reference_taken(None)
            }
            e => e.into(),
        })?;
        let mut complaint = match submitted {
            Submitted::Created(c) => {
                tracing::debug!(complaint = %c.name, number = %c.complaint_number, "complaint accepted");
                let channel = Channel::try_from(c.channel).unwrap_or_default().as_str_name();
                metrics::counter!("redress_complaints_accepted_total", "channel" => channel).increment(1);
                c
            }
            // A replay is a read: a complaint of a unit the caller does not cover is not returned.
            // Only a source reference can lead to one (a request with the same hash names the
            // same unit), once its first request was forgotten.
            Submitted::Replayed(c) if !principal.covers(&c.org_unit) => {
                return Err(if !external_reference.trim().is_empty() && c.external_reference == external_reference {
                    IntakeError::reference_taken(None)
                } else {
                    StoreError::RequestIdReused.into()
                });
            }
            // Stored with personal information masked; a caller allowed to see it gets it back
            // as first returned, and the read is recorded.
            Submitted::Replayed(c) if principal.has(Permission::PiiRead) => {
                let id = c.name.strip_prefix("complaints/").unwrap_or_default();
                let access = PiiAccess {
                    actor: principal.subject.clone(),
                    action: "read",
                    reason: "submission retried".to_owned(),
                };
                store.reveal(id, &access).await?.unwrap_or(c)
            }
            Submitted::Replayed(c) => c,
        };
        redact(principal, &mut complaint);
        Ok(SubmitComplaintResponse { receipt: complaint.receipt.clone(), complaint: Some(complaint) })
    }

    pub async fn get(&self, principal: &Principal, request: GetComplaintRequest) -> Result<Complaint, IntakeError> {
        principal.require(Permission::ComplaintsRead)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
        Text::Reason.check(&mut v, "pii_access_reason", &request.pii_access_reason, false);
        let id = parsed(v, id)?;
        let reason = request.pii_access_reason.trim();
        if !reason.is_empty() {
            principal.require(Permission::PiiRead)?;
        }
        let complaint = self.complaint_in_scope(principal, id, &request.name).await?;
        if reason.is_empty() {
            return Ok(complaint);
        }
        let reason = free_text_pii::mask(reason).into_owned();
        let access = PiiAccess { actor: principal.subject.clone(), action: "read", reason };
        let clear = self.store()?.reveal(id, &access).await?;
        clear.ok_or_else(|| IntakeError::complaint_not_found(&request.name))
    }

    pub async fn list(
        &self,
        principal: &Principal,
        request: ListComplaintsRequest,
    ) -> Result<ListComplaintsResponse, IntakeError> {
        principal.require(Permission::ComplaintsRead)?;
        let mut v = Violations::new();
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
        let mut listed = self.store()?.list(&query).await?;
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

    pub async fn withdraw(
        &self,
        principal: &Principal,
        request: WithdrawComplaintRequest,
    ) -> Result<Complaint, IntakeError> {
        principal.require(Permission::ComplaintsCreate)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
        let reason = reason(&mut v, &request.reason);
        let at = validate::past_instant(&mut v, "withdraw_time", request.withdraw_time.as_ref(), self.clock.now());
        let id = parsed(v, id)?;
        self.complaint_in_scope(principal, id, &request.name).await?;
        let withdrawn = self
            .store()?
            .withdraw(id, &reason, at)
            .await?
            .ok_or_else(|| IntakeError::complaint_not_found(&request.name))?;
        tracing::debug!(complaint = %withdrawn.name, "complaint withdrawn");
        Ok(withdrawn)
    }

    /// Records the complainant's answer to the read-back of a complaint's recorded content
    /// (D-INT-5); the complaint is returned as stored, personal information masked.
    pub async fn confirm_content(
        &self,
        principal: &Principal,
        request: ConfirmComplaintContentRequest,
    ) -> Result<Complaint, IntakeError> {
        principal.require(Permission::ComplaintsCreate)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
        let request_id = RequestId::parse_required(&mut v, "request_id", &request.request_id);
        let now = self.clock.now();
        let confirmation =
            contact::confirmation(&mut v, "confirmation", request.confirmation.as_ref(), &principal.subject, now);
        let parts = id.zip(request_id).zip(confirmation);
        let ((id, request_id), confirmation) = parsed(v, parts)?;
        self.complaint_in_scope(principal, id, &request.name).await?;
        // Keyed, as the corrections may hold personal information; the caller is part of it, as
        // it is the one the answer is recorded by.
        let mut fingerprint = Vec::new();
        for part in [principal.subject.as_bytes(), &request.encode_to_vec()] {
            fingerprint.extend_from_slice(&(part.len() as u64).to_le_bytes());
            fingerprint.extend_from_slice(part);
        }
        let key = RequestKey { id: request_id, hash: self.keyring.digest("confirm-content", &fingerprint) };
        let confirmed = self
            .store()?
            .confirm(id, key, confirmation, TraceContext::current())
            .await?
            .ok_or_else(|| IntakeError::complaint_not_found(&request.name))?;
        tracing::debug!(complaint = %confirmed.name, "complaint content confirmed");
        Ok(confirmed)
    }

    pub async fn override_classification(
        &self,
        principal: &Principal,
        request: OverrideClassificationRequest,
    ) -> Result<Complaint, IntakeError> {
        principal.require(Permission::ComplaintsClassify)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
        // The codes come from the taxonomy the complaint is classified in, so it is read first.
        let complaint = match id {
            Some(id) => Some(self.complaint_in_scope(principal, id, &request.name).await?),
            None => None,
        };
        let taxonomy = complaint.as_ref().map(|c| self.taxonomy_of(c)).transpose()?;
        if let Some(taxonomy) = taxonomy {
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
        }
        let grade = match ProtoGrade::try_from(request.grade) {
            Ok(g) => g,
            Err(_) => {
                v.add("grade", "unknown grade");
                ProtoGrade::Unspecified
            }
        };
        let reason = reason(&mut v, &request.reason);
        let (id, taxonomy) = parsed(v, id.zip(taxonomy))?;
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
            time: to_timestamp(self.clock.now()),
        };
        let updated = self
            .store()?
            .reclassify(id, change)
            .await?
            .ok_or_else(|| IntakeError::complaint_not_found(&request.name))?;
        tracing::debug!(complaint = %updated.name, "classification overridden");
        Ok(updated)
    }

    pub fn list_taxonomies(&self, principal: &Principal) -> Result<ListTaxonomiesResponse, IntakeError> {
        principal.require(Permission::ComplaintsRead)?;
        // Active: with a model, and some institution classifies in it.
        let institutions = self.deadlines.current();
        Ok(ListTaxonomiesResponse { taxonomies: self.catalogue.to_proto(institutions.taxonomies()) })
    }

    /// The events after `after_position` that the caller's organisation unit covers, then
    /// those committed from now on, until the caller or the service stops.
    pub async fn stream_events(
        &self,
        principal: Arc<Principal>,
        request: StreamEventsRequest,
    ) -> Result<EventStream, IntakeError> {
        let feed = self.store()?.feed();
        let respond = |events| StreamEventsResponse { events };
        Ok(serve_stream(feed, principal, request.after_position, self.shutdown.clone(), respond).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use redress_calendar::WorkingCalendar;
    use redress_platform::testing::TestDatabase;
    use redress_platform::time::now;
    use redress_platform::{ApiError, ErrorKind};

    use super::super::test_support::{api, clerk, clerk_of, submission};
    use super::*;

    #[tokio::test]
    async fn a_taken_reference_is_refused_and_answered_only_within_the_callers_units() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        let with = |request_id: &str, unit: &str, facts: &str| {
            let mut request = submission(now());
            request.request_id = request_id.to_owned();
            let complaint = request.complaint.as_mut().unwrap();
            (complaint.org_unit, complaint.facts, complaint.external_reference) =
                (unit.to_owned(), facts.to_owned(), "crm:1".to_owned());
            request
        };
        let (sh, bj) = ("institutions/demo-bank/branches/sh", "institutions/demo-bank/branches/bj");
        let first = api.submit(&clerk(), with("r1", sh, "事实")).await.unwrap().complaint.unwrap();
        let refused = |err: IntakeError| {
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            let violation = err.violations().remove(0);
            assert_eq!(violation.field, "complaint.external_reference");
            violation.description
        };
        // Another request with the reference: the caller learns which complaint holds it...
        let err = api.submit(&clerk(), with("r2", sh, "其他事实")).await.unwrap_err();
        assert!(refused(err).contains(&first.name));
        // ...unless it may not see that complaint.
        let err = api.submit(&clerk_of(bj), with("r3", bj, "其他事实")).await.unwrap_err();
        assert!(!refused(err).contains(&first.name));

        // Once the first request is forgotten the reference alone finds the complaint, which
        // only a caller covering its unit gets back.
        api.store().unwrap().prune_requests(now() + chrono::TimeDelta::days(1)).await.unwrap();
        let err = api.submit(&clerk_of(bj), with("r4", bj, "其他事实")).await.unwrap_err();
        assert!(!refused(err).contains(&first.name));
        let again = api.submit(&clerk(), with("r5", sh, "其他事实")).await.unwrap().complaint.unwrap();
        assert_eq!((again.name, again.facts), (first.name, first.facts));
    }

    #[tokio::test]
    async fn a_long_account_is_classified_off_the_workers_as_it_would_be_inline() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        let mut request = submission(now());
        let complaint = request.complaint.as_mut().unwrap();
        complaint.facts = "信用卡被盗刷了，银行客服一直推诿不处理，我的电话是13800138000。".repeat(300);
        let text = format!("{}\n{}", complaint.demand, complaint.facts);
        assert!(text.len() > INLINE_TEXT_BYTES);
        let classifier = api.classifier_for(&complaint.org_unit).unwrap();
        let expected = classifier.classify(&free_text_pii::mask(&text), complaint.interaction.as_ref()).classification;
        let mut classified = api.submit(&clerk(), request).await.unwrap().complaint.unwrap().classification.unwrap();
        assert!(classified.classify_time.is_some());
        classified.classify_time = None;
        assert_eq!(classified, expected);
    }

    #[tokio::test]
    async fn a_year_without_a_calendar_gives_provisional_deadlines_and_records_the_complaint() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let only_2025 =
            WorkingCalendar::from_year_toml(&[("2025.toml", include_str!("../../../calendar/data/cn/2025.toml"))])
                .unwrap();
        let api = api(only_2025.with_provisional_years(), &db.config).await;
        // Sunday 2025-12-28 10:00 in Shanghai: the 24-hour clock ends in 2025, the 7-working-day
        // and 15-day clocks count 2026, here without its file.
        let receive = chrono::Utc.with_ymd_and_hms(2025, 12, 28, 2, 0, 0).unwrap();
        let response = api.submit(&clerk(), submission(receive)).await.unwrap();
        let deadlines = response.receipt.unwrap().deadlines.unwrap();
        let utc = |m, d, h| {
            Some(to_timestamp(chrono::Utc.with_ymd_and_hms(if m == 12 { 2025 } else { 2026 }, m, d, h, 0, 0).unwrap()))
        };
        assert_eq!(deadlines.first_response_due_time, utc(12, 29, 2));
        assert!(!deadlines.first_response_provisional);
        // Mon 29, Tue 30, Wed 31, then provisional 2026 (New Year's Day only): Fri 2, Mon 5,
        // Tue 6, Wed 7 January.
        assert_eq!(deadlines.resolution_due_time, utc(1, 7, 16));
        // 15 days: Mon 2026-01-12.
        assert_eq!(deadlines.regulatory_decision_due_time, utc(1, 12, 16));
        assert!(deadlines.resolution_provisional && deadlines.regulatory_decision_provisional);
        assert!(deadlines.regulatory_decision_provisional_reason.contains("2026"));
        #[allow(deprecated)]
        let pending = deadlines.pending_deadlines;
        assert!(pending.is_empty(), "no deadline is left pending");
        assert!(!response.complaint.unwrap().complaint_number.is_empty(), "the complaint is recorded");
    }

    #[tokio::test]
    async fn receipts_carry_the_official_calendar_deadlines() {
        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        // Thursday 2026-09-24 18:00 Shanghai, just before the Mid-Autumn holiday (Sep 25–27) and
        // National Day (Oct 1–7, make-up working day Sat Oct 10).
        let receive = chrono::Utc.with_ymd_and_hms(2026, 9, 24, 10, 0, 0).unwrap();
        let deadlines = api.submit(&clerk(), submission(receive)).await.unwrap().receipt.unwrap().deadlines.unwrap();
        let shanghai_midnight = |y, m, d| {
            to_timestamp(
                chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().with_timezone(&chrono::Utc),
            )
        };
        // Working days after Sep 24: Sep 28, 29, 30, Oct 8, 9, 10 (make-up Saturday), 12 → 24:00 Oct 12.
        assert_eq!(deadlines.resolution_due_time, Some(shanghai_midnight(2026, 10, 13)));
        // 15 days after Sep 24 is Oct 9, a Friday and a working day → 24:00 Oct 9.
        assert_eq!(deadlines.regulatory_decision_due_time, Some(shanghai_midnight(2026, 10, 10)));
        assert!(!deadlines.resolution_provisional && !deadlines.regulatory_decision_provisional);
    }

    /// A front-line clerk of the demo bank's Shanghai branch with an employee id.
    fn staff_clerk() -> Principal {
        Principal {
            subject: "user:zhang".to_owned(),
            org_unit: "institutions/demo-bank/branches/shanghai".to_owned(),
            permissions: vec!["complaints.create".to_owned()],
            staff_id: "E1001".to_owned(),
            ..Principal::default()
        }
    }

    fn fields(err: IntakeError) -> Vec<String> {
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        err.violations().into_iter().map(|v| v.field).collect()
    }

    #[tokio::test]
    async fn the_first_contact_is_the_named_member_of_staff_else_the_calling_one_and_the_source_is_kept() {
        use redress_proto::redress::intake::v1::{ComplaintAccepted, ComplaintSource, FirstContact};

        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        let by_staff = api.submit(&staff_clerk(), submission(now())).await.unwrap().complaint.unwrap();
        let expected = FirstContact {
            subject: "user:zhang".to_owned(),
            staff_id: "E1001".to_owned(),
            org_unit: "institutions/demo-bank/branches/shanghai".to_owned(),
            department: String::new(),
            recorded_by: "user:zhang".to_owned(),
        };
        assert_eq!(by_staff.first_contact.as_ref(), Some(&expected));
        assert_eq!(by_staff.source, ComplaintSource::ExternalConsumer as i32);

        // A channel system names the member of staff; a system naming nobody records nobody.
        let mut named = submission(now());
        named.request_id = "r2".to_owned();
        let complaint = named.complaint.as_mut().unwrap();
        complaint.first_contact = Some(FirstContact {
            staff_id: " E2002 ".to_owned(),
            department: "客服中心".to_owned(),
            recorded_by: "forged".to_owned(),
            ..FirstContact::default()
        });
        complaint.source = ComplaintSource::ExternalPartner as i32;
        let named = api.submit(&clerk(), named).await.unwrap().complaint.unwrap();
        let contact = named.first_contact.unwrap();
        assert_eq!(
            (contact.staff_id.as_str(), contact.org_unit.as_str(), contact.recorded_by.as_str()),
            ("E2002", "institutions/demo-bank/branches/shanghai", "user:clerk")
        );
        assert_eq!(named.source, ComplaintSource::ExternalPartner as i32);
        let mut nobody = submission(now());
        nobody.request_id = "r3".to_owned();
        let nobody = api.submit(&clerk(), nobody).await.unwrap().complaint.unwrap();
        assert_eq!(nobody.first_contact, None);

        // Shown on reads and carried to case-workflow.
        let id = by_staff.name.strip_prefix("complaints/").unwrap();
        assert_eq!(api.store().unwrap().get(id).await.unwrap().unwrap().first_contact, Some(expected.clone()));
        let events = redress_platform::testing::committed_events(api.store().unwrap().feed(), 0, 100).await.unwrap();
        let accepted: ComplaintAccepted = events[0].payload.as_ref().unwrap().to_msg().unwrap();
        assert_eq!(accepted.first_contact, Some(expected));
        assert_eq!(accepted.source, ComplaintSource::ExternalConsumer as i32);

        // Bad inputs name their fields.
        let mut bad = submission(now());
        bad.request_id = "r4".to_owned();
        let complaint = bad.complaint.as_mut().unwrap();
        complaint.first_contact =
            Some(FirstContact { org_unit: "institutions/other-bank".to_owned(), ..FirstContact::default() });
        complaint.source = 9;
        assert_eq!(
            fields(api.submit(&staff_clerk(), bad).await.unwrap_err()),
            ["complaint.first_contact.staff_id", "complaint.first_contact.org_unit", "complaint.source"]
        );
    }

    #[tokio::test]
    async fn the_product_is_kept_trimmed_shown_on_reads_and_announced() {
        use redress_proto::redress::intake::v1::ComplaintAccepted;

        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        let receive = now();
        let with = |request_id: &str, product: &str| {
            let mut request = submission(receive);
            request.request_id = request_id.to_owned();
            request.complaint.as_mut().unwrap().product = product.to_owned();
            request
        };
        let card = api.submit(&clerk(), with("p1", " 信用卡 ")).await.unwrap().complaint.unwrap();
        assert_eq!(card.product, "信用卡");
        let none = api.submit(&clerk(), with("p2", "")).await.unwrap().complaint.unwrap();
        assert_eq!(none.product, "");

        // Gets and lists return it.
        let reader = Principal { permissions: vec!["complaints.read".to_owned()], ..clerk() };
        let got =
            api.get(&reader, GetComplaintRequest { name: card.name.clone(), ..Default::default() }).await.unwrap();
        assert_eq!(got.product, "信用卡");
        let listed = api.list(&reader, ListComplaintsRequest::default()).await.unwrap().complaints;
        let mut products: Vec<(String, String)> = listed.into_iter().map(|c| (c.name, c.product)).collect();
        products.sort();
        let mut expected = vec![(card.name.clone(), "信用卡".to_owned()), (none.name.clone(), String::new())];
        expected.sort();
        assert_eq!(products, expected);

        // Carried on ComplaintAccepted for the metrics.
        let events = redress_platform::testing::committed_events(api.store().unwrap().feed(), 0, 100).await.unwrap();
        let accepted: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.event_type == "redress.intake.v1.ComplaintAccepted")
            .map(|e| e.payload.as_ref().unwrap().to_msg::<ComplaintAccepted>().unwrap())
            .map(|a| (a.complaint, a.product))
            .collect();
        assert_eq!(accepted, [(card.name.clone(), "信用卡".to_owned()), (none.name, String::new())]);

        // A retry names the same product; another one is another request.
        let retried = api.submit(&clerk(), with("p1", " 信用卡 ")).await.unwrap().complaint.unwrap();
        assert_eq!(retried.name, card.name);
        assert_eq!(fields(api.submit(&clerk(), with("p1", "借记卡")).await.unwrap_err()), ["request_id"]);
        // One line, at most 200 characters.
        for bad in ["信用卡\n借记卡".to_owned(), "险".repeat(201)] {
            assert_eq!(fields(api.submit(&clerk(), with("p3", &bad)).await.unwrap_err()), ["complaint.product"]);
        }
    }

    #[tokio::test]
    async fn a_retry_must_name_the_same_first_contact_and_source() {
        use redress_proto::redress::intake::v1::{ComplaintSource, FirstContact};

        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        let receive = now();
        let named = |staff_id: &str, source: ComplaintSource| {
            let mut request = submission(receive);
            let complaint = request.complaint.as_mut().unwrap();
            complaint.first_contact = Some(FirstContact { staff_id: staff_id.to_owned(), ..FirstContact::default() });
            complaint.source = source as i32;
            request
        };
        let first = api.submit(&clerk(), named("E1", ComplaintSource::InternalStaff)).await.unwrap();
        let retried = api.submit(&clerk(), named("E1", ComplaintSource::InternalStaff)).await.unwrap();
        assert_eq!(retried.complaint.unwrap().name, first.complaint.unwrap().name);
        for other in [named("E2", ComplaintSource::InternalStaff), named("E1", ComplaintSource::ExternalConsumer)] {
            assert_eq!(fields(api.submit(&clerk(), other).await.unwrap_err()), ["request_id"]);
        }
    }

    #[tokio::test]
    async fn a_read_back_answer_is_validated_scoped_idempotent_and_refused_once_withdrawn() {
        use redress_proto::redress::intake::v1::{ConfirmationMethod, ContentConfirmation};

        let db = TestDatabase::sqlite("intake").unwrap();
        let api = api(WorkingCalendar::china(), &db.config).await;
        let complaint = api.submit(&staff_clerk(), submission(now())).await.unwrap().complaint.unwrap();
        let request = |request_id: &str, confirmation: Option<ContentConfirmation>| ConfirmComplaintContentRequest {
            name: complaint.name.clone(),
            request_id: request_id.to_owned(),
            confirmation,
        };
        let correction = ContentConfirmation {
            confirmed: false,
            method: ConfirmationMethod::ReadBackCall as i32,
            corrections: "年费是 300 元，不是 200 元".to_owned(),
            ..ContentConfirmation::default()
        };
        let stored = api.confirm_content(&staff_clerk(), request("c1", Some(correction.clone()))).await.unwrap();
        let answer = &stored.content_confirmations[0];
        assert_eq!(answer.corrections, crate::domain::mask::MASKED_TEXT, "returned masked");
        assert_eq!(answer.recorded_by, "user:zhang");
        assert!(answer.confirm_time.is_some(), "now when not given");
        // A retry returns the complaint; the id with another request is refused.
        let retried = api.confirm_content(&staff_clerk(), request("c1", Some(correction.clone()))).await.unwrap();
        assert_eq!(retried.content_confirmations.len(), 1);
        let other = ContentConfirmation { corrections: "另一处更正".to_owned(), ..correction.clone() };
        assert_eq!(
            fields(api.confirm_content(&staff_clerk(), request("c1", Some(other))).await.unwrap_err()),
            ["request_id"]
        );

        // Every bad field at once.
        let unexplained = ContentConfirmation {
            method: ConfirmationMethod::Other as i32,
            corrections: String::new(),
            ..correction.clone()
        };
        let bad = ConfirmComplaintContentRequest {
            name: "complaints/x".to_owned(),
            request_id: String::new(),
            confirmation: Some(unexplained),
        };
        assert_eq!(
            fields(api.confirm_content(&staff_clerk(), bad).await.unwrap_err()),
            ["name", "request_id", "confirmation.corrections", "confirmation.note"]
        );
        assert_eq!(
            fields(api.confirm_content(&staff_clerk(), request("c2", None)).await.unwrap_err()),
            ["confirmation"]
        );
        let early = ContentConfirmation {
            confirmed: true,
            corrections: String::new(),
            confirm_time: Some(to_timestamp(now() - chrono::TimeDelta::days(1))),
            ..correction.clone()
        };
        assert_eq!(
            fields(api.confirm_content(&staff_clerk(), request("c3", Some(early))).await.unwrap_err()),
            ["confirmation.confirm_time"]
        );

        // Needs complaints.create, and the complaint's unit.
        let reader = Principal { permissions: vec!["complaints.read".to_owned()], ..staff_clerk() };
        let denied = api.confirm_content(&reader, request("c4", Some(correction.clone()))).await.unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        let elsewhere = clerk_of("institutions/demo-bank/branches/beijing");
        let hidden = api.confirm_content(&elsewhere, request("c5", Some(correction.clone()))).await.unwrap_err();
        assert_eq!(hidden.kind(), ErrorKind::NotFound);

        let withdraw = WithdrawComplaintRequest {
            name: complaint.name.clone(),
            reason: "已协商解决".to_owned(),
            withdraw_time: None,
        };
        api.withdraw(&staff_clerk(), withdraw).await.unwrap();
        let refused = api.confirm_content(&staff_clerk(), request("c6", Some(correction))).await.unwrap_err();
        assert_eq!((refused.kind(), refused.reason()), (ErrorKind::FailedPrecondition, "COMPLAINT_WITHDRAWN"));
    }
}
