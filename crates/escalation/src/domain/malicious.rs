//! Malicious complaints (D-ESC-5): a flag with its grounds and evidence, proposed by one person
//! and approved by another. An approved flag preserves the evidence on the case's evidence
//! chain and asks the legal department for a referral; it never touches the complainant's
//! rights: the case's clocks, decision and review go on as for any complaint.

use redress_platform::time::to_timestamp;
use redress_proto::redress::escalation::v1::{MaliciousFlag, MaliciousFlagState};

use super::actions::CaseRequest;
use super::{Actor, Change};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// The four-eyes rule: whoever proposed a flag cannot approve it.
    #[error("a flag is approved by a second person, not by {proposer} who proposed it")]
    SecondApproverRequired { proposer: String },
    #[error("the flag is {}; only a proposed flag is decided", state.as_str_name())]
    NotProposed { state: MaliciousFlagState },
}

/// Where the legal referral goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LegalReferral {
    pub department: String,
    pub owner: String,
    pub hours: u32,
}

impl Default for LegalReferral {
    fn default() -> Self {
        Self { department: "legal".to_owned(), owner: "department:legal".to_owned(), hours: 72 }
    }
}

fn require_proposed(flag: &MaliciousFlag) -> Result<(), FlagError> {
    match flag.state() {
        MaliciousFlagState::Proposed => Ok(()),
        state => Err(FlagError::NotProposed { state }),
    }
}

/// Approves a proposed flag by a second person; returns the requests to CaseService: each
/// evidence reference onto the case's evidence chain, and the legal referral task.
pub fn approve(
    flag: &mut MaliciousFlag,
    note: String,
    referral: &LegalReferral,
    actor: &Actor,
) -> Result<(Change, Vec<CaseRequest>), FlagError> {
    require_proposed(flag)?;
    if flag.proposed_by == actor.subject {
        return Err(FlagError::SecondApproverRequired { proposer: flag.proposed_by.clone() });
    }
    flag.state = MaliciousFlagState::Approved as i32;
    flag.decided_by = actor.subject.clone();
    flag.decide_time = Some(to_timestamp(actor.now));
    flag.decision_note = note;
    let mut requests: Vec<CaseRequest> = flag
        .evidence
        .iter()
        .map(|e| CaseRequest::AddEvidence {
            uri: e.uri.clone(),
            sha256: e.sha256.clone(),
            kind: e.kind.clone(),
            description: format!("恶意投诉认定证据：{}", e.description),
        })
        .collect();
    let grounds: Vec<&str> = flag.grounds().map(|g| g.as_str_name().trim_start_matches("MALICIOUS_GROUND_")).collect();
    requests.push(CaseRequest::AddTask {
        department: referral.department.clone(),
        owner: referral.owner.clone(),
        description: format!(
            "疑似恶意投诉（{}），请法律部门评估并依法处理；投诉人的各项权利不受影响",
            grounds.join("、")
        ),
        due_in_hours: referral.hours,
    });
    Ok((Change::new("malicious.approved", [("grounds", grounds.join(","))]), requests))
}

/// Rejects a proposed flag.
pub fn reject(flag: &mut MaliciousFlag, reason: String, actor: &Actor) -> Result<Change, FlagError> {
    require_proposed(flag)?;
    flag.state = MaliciousFlagState::Rejected as i32;
    flag.decided_by = actor.subject.clone();
    flag.decide_time = Some(to_timestamp(actor.now));
    flag.decision_note = reason.clone();
    Ok(Change::new("malicious.rejected", [("reason", reason)]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use redress_proto::redress::escalation::v1::{EvidenceRef, MaliciousGround};

    fn flag() -> MaliciousFlag {
        MaliciousFlag {
            state: MaliciousFlagState::Proposed as i32,
            grounds: vec![MaliciousGround::ThreatsForGain as i32],
            evidence: vec![EvidenceRef {
                uri: "s3://e/1.mp3".into(),
                sha256: "ab".repeat(32),
                kind: "recording".into(),
                description: "通话".into(),
            }],
            proposed_by: "user:a".into(),
            ..MaliciousFlag::default()
        }
    }

    fn actor(subject: &str) -> Actor {
        Actor { subject: subject.into(), roles: vec![], now: chrono::Utc::now() }
    }

    #[test]
    fn the_proposer_cannot_approve_and_an_approval_preserves_evidence_and_refers_to_legal() {
        let mut f = flag();
        assert_eq!(
            approve(&mut f, "ok".into(), &LegalReferral::default(), &actor("user:a")).unwrap_err(),
            FlagError::SecondApproverRequired { proposer: "user:a".into() }
        );
        assert_eq!(f.state(), MaliciousFlagState::Proposed);
        let (_, requests) = approve(&mut f, "证据充分".into(), &LegalReferral::default(), &actor("user:b")).unwrap();
        assert!(matches!(requests[0], CaseRequest::AddEvidence { .. }));
        assert!(matches!(&requests[1], CaseRequest::AddTask { department, .. } if department == "legal"));
        assert!(requests.iter().all(|r| !matches!(r, CaseRequest::ChangeGrade { .. })), "no clock is touched");
        assert!(matches!(reject(&mut f, "x".into(), &actor("user:c")), Err(FlagError::NotProposed { .. })));
    }
}
