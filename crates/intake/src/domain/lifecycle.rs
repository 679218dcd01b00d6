//! What may happen to a complaint after it was accepted: the complainant withdraws it, or a
//! handler overrides its classification. Each change takes the stored record and returns the
//! new one with the event announcing it; the store applies it under a lock.

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::intake::v1::{
    Classification, ClassificationSource, Complaint, ComplaintReclassified, ComplaintState, ComplaintWithdrawn,
};

/// Why a change to a complaint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("a complaint cannot be withdrawn before it was received")]
    WithdrawnBeforeReceipt,
}

/// A change to a stored complaint: the new record with its event, `None` when the complaint
/// stays as it is.
pub type Changed = Option<(Complaint, NewEvent)>;

/// The complainant's withdrawal at `at` (D-INT): the complaint ends and ComplaintWithdrawn
/// announces it. Withdrawing a withdrawn complaint changes nothing, so a retry is harmless;
/// a withdrawal dated before the complaint was received is refused either way.
pub fn withdrawn(mut complaint: Complaint, reason: &str, at: DateTime<Utc>) -> Result<Changed, ChangeError> {
    if complaint.receive_time.as_ref().and_then(from_timestamp).is_some_and(|received| at < received) {
        return Err(ChangeError::WithdrawnBeforeReceipt);
    }
    if complaint.state == ComplaintState::Withdrawn as i32 {
        return Ok(None);
    }
    complaint.state = ComplaintState::Withdrawn as i32;
    complaint.withdraw_time = Some(to_timestamp(at));
    complaint.withdraw_reason = reason.to_owned();
    let event = NewEvent::new(
        complaint.name.clone(),
        complaint.org_unit.clone(),
        &ComplaintWithdrawn {
            complaint: complaint.name.clone(),
            withdraw_time: complaint.withdraw_time,
            reason: reason.to_owned(),
        },
    );
    Ok(Some((complaint, event)))
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
        c.override_reason.clone_from(&self.reason);
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
