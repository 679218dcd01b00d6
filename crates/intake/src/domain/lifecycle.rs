//! What may happen to a complaint after it was accepted: the complainant withdraws it,
//! confirms or corrects its content when it is read back, or a handler overrides its
//! classification. Each change takes the stored record and returns the new one with the event
//! announcing it; the store applies it under a lock.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::free_text_pii;
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::intake::v1::{
    Classification, ClassificationSource, Complaint, ComplaintContentConfirmed, ComplaintReclassified, ComplaintState,
    ComplaintWithdrawn, ContentConfirmation,
};

/// Why a change to a complaint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("a complaint cannot be withdrawn before it was received")]
    WithdrawnBeforeReceipt,
    #[error("the complainant cannot have answered the read-back before the complaint was received")]
    ConfirmedBeforeReceipt,
    #[error("the complaint was withdrawn")]
    Withdrawn,
}

/// Whether `at` lies before the complaint was received.
fn before_receipt(complaint: &Complaint, at: DateTime<Utc>) -> bool {
    complaint.receive_time.as_ref().and_then(from_timestamp).is_some_and(|received| at < received)
}

/// A change to a stored complaint: the new record with its event, `None` when the complaint
/// stays as it is.
pub type Changed = Option<(Complaint, NewEvent)>;

/// The complainant's withdrawal at `at` (D-INT): the complaint ends and ComplaintWithdrawn
/// announces it. Withdrawing a withdrawn complaint changes nothing, so a retry is harmless;
/// a withdrawal dated before the complaint was received is refused either way. The reason is
/// kept, and announced, with the identifiers written into it masked (D-PII-5): the change is
/// made on the stored record, without the complainant's key.
pub fn withdrawn(mut complaint: Complaint, reason: &str, at: DateTime<Utc>) -> Result<Changed, ChangeError> {
    let reason = free_text_pii::mask(reason);
    if before_receipt(&complaint, at) {
        return Err(ChangeError::WithdrawnBeforeReceipt);
    }
    if complaint.state == ComplaintState::Withdrawn as i32 {
        return Ok(None);
    }
    complaint.state = ComplaintState::Withdrawn as i32;
    complaint.withdraw_time = Some(to_timestamp(at));
    complaint.withdraw_reason = reason.clone().into_owned();
    let event = NewEvent::new(
        complaint.name.clone(),
        complaint.org_unit.clone(),
        &ComplaintWithdrawn {
            complaint: complaint.name.clone(),
            withdraw_time: complaint.withdraw_time,
            reason: reason.into_owned(),
        },
    );
    Ok(Some((complaint, event)))
}

/// The complainant's answer to the read-back of the recorded content (D-INT-5), added after
/// the earlier ones and announced, in the request's `trace`, by ComplaintContentConfirmed,
/// which says whether there are corrections but not what they are. The recorded words stay as
/// they are (D-INT-4). Refused on a withdrawn complaint, or dated before it was received.
pub fn confirmed(
    mut complaint: Complaint,
    confirmation: ContentConfirmation,
    trace: TraceContext,
) -> Result<(Complaint, NewEvent), ChangeError> {
    if complaint.state == ComplaintState::Withdrawn as i32 {
        return Err(ChangeError::Withdrawn);
    }
    if confirmation.confirm_time.as_ref().and_then(from_timestamp).is_some_and(|at| before_receipt(&complaint, at)) {
        return Err(ChangeError::ConfirmedBeforeReceipt);
    }
    let event = ComplaintContentConfirmed {
        complaint: complaint.name.clone(),
        confirmed: confirmation.confirmed,
        method: confirmation.method,
        confirm_time: confirmation.confirm_time,
        has_corrections: !confirmation.corrections.is_empty(),
        recorded_by: confirmation.recorded_by.clone(),
    };
    let event = NewEvent::in_trace(complaint.name.clone(), complaint.org_unit.clone(), &event, trace);
    complaint.content_confirmations.push(confirmation);
    Ok((complaint, event))
}

/// A handler's override of a complaint's classification: the parts it sets, who and why.
#[derive(Debug, Clone)]
pub struct ClassificationOverride {
    pub taxonomy: String,
    pub business_type: Option<String>,
    pub cause: Option<String>,
    pub rights: Option<Vec<String>>,
    pub grade: Option<i32>,
    pub classified_by: String,
    pub reason: String,
    pub time: prost_types::Timestamp,
}

impl ClassificationOverride {
    /// The classification in force after this override of `current`: the parts it sets
    /// replace those of `current`, the others stay, so two handlers overriding different
    /// parts at once both take effect.
    pub fn apply(&self, current: Option<Classification>) -> Classification {
        let mut c = current.unwrap_or_default();
        if let Some(b) = &self.business_type {
            c.business_type.clone_from(b);
        }
        if let Some(cause) = &self.cause {
            c.cause.clone_from(cause);
        }
        if let Some(rights) = &self.rights {
            c.rights.clone_from(rights);
        }
        if let Some(grade) = self.grade {
            c.grade = grade;
        }
        c.taxonomy.clone_from(&self.taxonomy);
        c.source = ClassificationSource::Handler as i32;
        c.classified_by.clone_from(&self.classified_by);
        // A handler's reason is kept and announced with identifiers masked (D-PII-5).
        c.override_reason = free_text_pii::mask(&self.reason).into_owned();
        c.classify_time = Some(self.time);
        c
    }
}

/// The complaint with `change` applied and ComplaintReclassified announcing it. The grade
/// follows the new classification; the first automatic classification is kept.
pub fn reclassified(mut complaint: Complaint, change: &ClassificationOverride) -> (Complaint, NewEvent) {
    let previous = complaint.classification.take();
    let classification = change.apply(previous.clone());
    if complaint.automatic_classification.is_none() {
        complaint.automatic_classification.clone_from(&previous);
    }
    complaint.grade = classification.grade;
    complaint.classification = Some(classification.clone());
    let event = NewEvent::new(
        complaint.name.clone(),
        complaint.org_unit.clone(),
        &ComplaintReclassified { complaint: complaint.name.clone(), classification: Some(classification), previous },
    );
    (complaint, event)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn received(at: DateTime<Utc>) -> Complaint {
        Complaint {
            name: "complaints/c1".to_owned(),
            state: ComplaintState::Accepted as i32,
            receive_time: Some(to_timestamp(at)),
            ..Complaint::default()
        }
    }

    #[test]
    fn a_withdrawal_ends_a_complaint_once_and_never_before_its_receipt() {
        let at = redress_platform::time::now();
        let before = withdrawn(received(at), "已解决", at - TimeDelta::minutes(1));
        assert_eq!(before.unwrap_err(), ChangeError::WithdrawnBeforeReceipt);
        let (complaint, _) = withdrawn(received(at), "已解决", at).unwrap().unwrap();
        assert_eq!(complaint.state, ComplaintState::Withdrawn as i32);
        assert_eq!(complaint.withdraw_reason, "已解决");
        assert!(withdrawn(complaint, "再次", at).unwrap().is_none());
    }

    #[test]
    fn a_read_back_answer_is_added_beside_the_record_and_announced_without_its_words() {
        use prost::Message;
        use redress_proto::redress::intake::v1::ConfirmationMethod;

        let at = redress_platform::time::now();
        let mut complaint = received(at);
        complaint.facts = "多扣了 200 元年费".to_owned();
        let answer = |minutes: i64, corrections: &str| ContentConfirmation {
            confirmed: corrections.is_empty(),
            method: ConfirmationMethod::ReadBackCall as i32,
            corrections: corrections.to_owned(),
            confirm_time: Some(to_timestamp(at + TimeDelta::minutes(minutes))),
            recorded_by: "user:li".to_owned(),
            ..ContentConfirmation::default()
        };
        let early = confirmed(complaint.clone(), answer(-1, ""), TraceContext::default());
        assert_eq!(early.unwrap_err(), ChangeError::ConfirmedBeforeReceipt);
        let (once, event) = confirmed(complaint, answer(1, "金额是 300 元"), TraceContext::default()).unwrap();
        assert_eq!(once.facts, "多扣了 200 元年费", "the recorded words stay as they are");
        let (twice, _) = confirmed(once, answer(2, ""), TraceContext::default()).unwrap();
        let corrections: Vec<&str> = twice.content_confirmations.iter().map(|c| c.corrections.as_str()).collect();
        assert_eq!(corrections, ["金额是 300 元", ""], "in the order recorded");
        assert_eq!(event.event_type, "redress.intake.v1.ComplaintContentConfirmed");
        let announced = ComplaintContentConfirmed::decode(event.payload.as_slice()).unwrap();
        assert!(announced.has_corrections && !announced.confirmed);
        assert_eq!(announced.recorded_by, "user:li");
        assert!(!String::from_utf8_lossy(&event.payload).contains("300"), "the words stay out of the event");

        let (withdrawn, _) = withdrawn(twice, "已解决", at + TimeDelta::minutes(3)).unwrap().unwrap();
        let refused = confirmed(withdrawn, answer(4, ""), TraceContext::default());
        assert_eq!(refused.unwrap_err(), ChangeError::Withdrawn);
    }

    #[test]
    fn an_override_keeps_the_automatic_classification_and_sets_the_grade() {
        let mut complaint = received(redress_platform::time::now());
        complaint.classification = Some(Classification { cause: "C05".to_owned(), grade: 1, ..Default::default() });
        let change = ClassificationOverride {
            taxonomy: "banking@2026.1".to_owned(),
            business_type: None,
            cause: None,
            rights: None,
            grade: Some(3),
            classified_by: "user:h".to_owned(),
            reason: "review".to_owned(),
            time: to_timestamp(redress_platform::time::now()),
        };
        let (once, _) = reclassified(complaint, &change);
        let (twice, _) = reclassified(once, &change);
        let now = twice.classification.unwrap();
        assert_eq!((now.cause.as_str(), now.grade, twice.grade), ("C05", 3, 3));
        assert_eq!(twice.automatic_classification.unwrap().grade, 1, "the automatic one is kept");
    }
}
