//! Why a record refuses a change. Each refusal names what the caller can act on; how it is
//! reported to a caller is decided once, in `crate::error`.

use redress_proto::redress::escalation::v1::{EscalationLevel, IncidentState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The change is not allowed in the state the incident is in.
    #[error("{action} is not allowed for an incident that is {}", current.as_str_name())]
    IncidentState { action: &'static str, current: IncidentState },
    /// A group incident closes once its systemic cause is recorded (D-ESC-2).
    #[error("record the systemic cause before closing a group incident")]
    SystemicCauseRequired,
    /// A working group has exactly one leader.
    #[error("a working group has exactly one leader, not {leaders}")]
    LeaderCount { leaders: usize },
    #[error("{subject} is listed twice in the working group")]
    DuplicateGroupMember { subject: String },
    /// The crisis communication is at its last stage.
    #[error("the summary is the last crisis stage")]
    LastStage,
    /// Only the statement in force may be used; a draft is not approved yet.
    #[error("{name} is a draft; only the approved statement may be used")]
    StatementNotApproved { name: String },
    /// Only the statement in force may be used; this one was replaced.
    #[error("{name} was superseded by {current}; use the current statement")]
    StatementSuperseded { name: String, current: String },
    /// Approving an approved or superseded statement.
    #[error("{name} is not a draft")]
    StatementNotDraft { name: String },
    /// A statement is approved by one of the configured roles (D-ESC-2).
    #[error("approving a statement needs one of the roles {}", roles.join(", "))]
    ApproverRoleRequired { roles: Vec<String> },
    /// There is no approved statement yet.
    #[error("{incident} has no approved statement yet")]
    NoApprovedStatement { incident: String },
    /// The complaint is a member already.
    #[error("{complaint} is already a member of {incident}")]
    AlreadyMember { complaint: String, incident: String },
    /// Raising an escalation to a level not above the one reached.
    #[error("the escalation is at {}; raise it to a level above", current.as_str_name())]
    LevelNotAbove { current: EscalationLevel },
    /// Raising an escalation that reached the top of the ladder.
    #[error("the escalation reached the top of the ladder")]
    TopOfLadder,
    /// Acknowledging a step needs one of the roles the ladder gives it.
    #[error("acknowledging the {} step needs one of the roles {}", level.as_str_name(), roles.join(", "))]
    AcknowledgeRoleRequired { level: EscalationLevel, roles: Vec<String> },
    #[error("the current step is already acknowledged")]
    AlreadyAcknowledged,
    #[error("the escalation is closed: its case ended")]
    EscalationClosed,
    #[error("the alert is already acknowledged")]
    AlertAcknowledged,
    /// A time that may not lie in the future.
    #[error("must not lie in the future")]
    InTheFuture { field: &'static str },
    /// A time that must lie in the future.
    #[error("must lie in the future")]
    InThePast { field: &'static str },
}
