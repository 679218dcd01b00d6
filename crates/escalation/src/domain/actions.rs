//! What the service asks of cases. It never writes case-workflow's store: each request is
//! recorded here first, in the transaction that decided it, under a key that names it once
//! (so deciding it twice records it once), and is then carried out through CaseService with
//! the key as its request id, so that a retry after a crash is answered with the first result
//! and a case is never linked, regraded or given a task twice.

use serde::{Deserialize, Serialize};

/// One request to CaseService, for the case of `complaint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum CaseRequest {
    /// Links the case under the case of `lead_complaint` as its PARENT.
    LinkParent { incident: String, lead_complaint: String, reason: String },
    /// Raises the case's grade (never lowers it).
    ChangeGrade { grade: i32, reason: String },
    /// Adds a coordination task.
    AddTask { department: String, owner: String, description: String, due_in_hours: u32 },
    /// Adds an evidence reference to the case's evidence chain.
    AddEvidence { uri: String, sha256: String, kind: String, description: String },
}

impl CaseRequest {
    /// A short name of the kind, for the store and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LinkParent { .. } => "link_parent",
            Self::ChangeGrade { .. } => "change_grade",
            Self::AddTask { .. } => "add_task",
            Self::AddEvidence { .. } => "add_evidence",
        }
    }
}

/// A request to carry out, under its once-only key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseAction {
    /// Names the request once: e.g. `link:{incident id}:{complaint id}`. Also the suffix of
    /// the CaseService request id.
    pub key: String,
    /// The complaint whose case it concerns.
    pub complaint: String,
    /// The organisation unit of the complaint.
    pub org_unit: String,
    pub request: CaseRequest,
}

/// The id part of a resource name (`incidents/{id}` → `{id}`).
pub fn id_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The CaseService request id of an action (at most 128 characters, AIP-155).
pub fn request_id(key: &str) -> String {
    let id = format!("escalation:{key}");
    if id.len() <= 128 {
        id
    } else {
        use sha2::{Digest, Sha256};
        format!("escalation:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_stored_form() {
        let r = CaseRequest::LinkParent {
            incident: "incidents/1".into(),
            lead_complaint: "complaints/2".into(),
            reason: "群体性投诉".into(),
        };
        let stored = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<CaseRequest>(&stored).unwrap(), r);
    }

    #[test]
    fn request_ids_stay_within_the_limit() {
        assert_eq!(request_id("link:a:b"), "escalation:link:a:b");
        assert!(request_id(&"x".repeat(300)).len() <= 128);
    }
}
