//! IntakeService and the event feed: submitting, reading and listing complaints, the
//! complainant's withdrawal, a handler's override of the classification, the taxonomies.

use std::sync::Arc;

use anyhow::Context;
use prost::Message;
use redress_platform::error::Violations;
use redress_platform::events::serve_stream;
use redress_platform::names::Text;
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::common::v1::{Channel, Grade as ProtoGrade};
use redress_proto::redress::intake::v1::{
    Complaint, ComplaintState, GetComplaintRequest, ListComplaintsRequest, ListComplaintsResponse,
    ListTaxonomiesResponse, OverrideClassificationRequest, Receipt, RiskSignalKind, StreamEventsRequest,
    StreamEventsResponse, SubmitComplaintRequest, SubmitComplaintResponse, WithdrawComplaintRequest,
};

use super::{EventStream, IntakeApi, complaint_id, parsed, reason, redact};
use crate::domain::deadlines::{grade_from_proto, is_provisional, receipt_deadlines};
use crate::domain::lifecycle::ClassificationOverride;
use crate::domain::validate::{self, validate_submission};
use crate::error::IntakeError;
use crate::store::{ListQuery, NewComplaint, PiiAccess, StoreError, Submitted};

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
        let request_hash =
            self.keyring.digest("request", &request.complaint.as_ref().map(Message::encode_to_vec).unwrap_or_default());
        let mut complaint = request.complaint.unwrap_or_default();
        // The complainant's own words decide the classification; staff notes do not.
        let text = format!("{}\n{}", complaint.demand, complaint.facts);
        let decision = self.classifier.classify(&text, complaint.interaction.as_ref());
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
                tracing::info!(complaint = %c.name, number = %c.complaint_number, "complaint accepted");
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
        let access = PiiAccess { actor: principal.subject.clone(), action: "read", reason: reason.to_owned() };
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
        tracing::info!(complaint = %withdrawn.name, "complaint withdrawn");
        Ok(withdrawn)
    }

    pub async fn override_classification(
        &self,
        principal: &Principal,
        request: OverrideClassificationRequest,
    ) -> Result<Complaint, IntakeError> {
        principal.require(Permission::ComplaintsClassify)?;
        let mut v = Violations::new();
        let id = complaint_id(&mut v, &request.name);
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
        let reason = reason(&mut v, &request.reason);
        let id = parsed(v, id)?;
        self.complaint_in_scope(principal, id, &request.name).await?;
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
        tracing::info!(complaint = %updated.name, "classification overridden");
        Ok(updated)
    }

    pub fn list_taxonomies(&self, principal: &Principal) -> Result<ListTaxonomiesResponse, IntakeError> {
        principal.require(Permission::ComplaintsRead)?;
        let active = self.classifier.taxonomy().id();
        Ok(ListTaxonomiesResponse {
            taxonomies: self.taxonomies.iter().map(|t| t.to_proto(t.id() == active)).collect(),
        })
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
}
