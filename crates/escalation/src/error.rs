//! The escalation service's error and its one mapping to gRPC (through the platform's
//! `to_status`): each refusal has a stable reason, zh-CN text, and the facts a caller may act
//! on.

use std::collections::HashMap;

use redress_platform::db::CommitFailed;
use redress_platform::error::{ApiError, ErrorKind, FieldViolation, ServiceError, to_status};

use crate::domain::DomainError;
use crate::domain::malicious::FlagError;

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// The VIP register needs the blind-index key (`pii.index_key`), which is not configured.
    #[error("the VIP register is not configured: pii.index_key is missing")]
    VipRegisterUnconfigured,
    #[error("{resource} {name} not found")]
    NotFound { resource: &'static str, name: String },
    /// The etag the caller sent is not the current one (AIP-154).
    #[error("etag {given:?} is stale; the record is at {current:?}")]
    EtagMismatch { given: String, current: String },
    /// A request id reused with another request (AIP-155).
    #[error("invalid argument: request_id: was used for another request")]
    RequestIdReused,
    #[error(transparent)]
    Platform(#[from] ServiceError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for EscalationError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<CommitFailed> for EscalationError {
    fn from(e: CommitFailed) -> Self {
        Self::Internal(e.into())
    }
}

impl From<prost::DecodeError> for EscalationError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Internal(anyhow::Error::new(e).context("stored record does not decode"))
    }
}

impl EscalationError {
    pub fn not_found(resource: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound { resource, name: name.into() }
    }
}

/// How a domain refusal is reported: an invalid field, or a refusal of a kind with a reason.
enum Reported {
    Field(&'static str),
    Refused(ErrorKind, &'static str),
}

fn reported(e: &DomainError) -> Reported {
    use DomainError as D;
    use ErrorKind::*;
    use Reported::*;
    match e {
        D::IncidentState { .. } => Refused(FailedPrecondition, "INVALID_INCIDENT_STATE"),
        D::SystemicCauseRequired => Refused(FailedPrecondition, "SYSTEMIC_CAUSE_REQUIRED"),
        D::LeaderCount { .. } | D::DuplicateGroupMember { .. } => Field("members"),
        D::LastStage => Refused(FailedPrecondition, "LAST_CRISIS_STAGE"),
        D::StatementNotApproved { .. } => Refused(FailedPrecondition, "STATEMENT_NOT_APPROVED"),
        D::StatementSuperseded { .. } => Refused(FailedPrecondition, "STATEMENT_SUPERSEDED"),
        D::StatementNotDraft { .. } => Refused(FailedPrecondition, "STATEMENT_NOT_DRAFT"),
        D::ApproverRoleRequired { .. } => Refused(PermissionDenied, "APPROVER_ROLE_REQUIRED"),
        D::NoApprovedStatement { .. } => Refused(FailedPrecondition, "NO_APPROVED_STATEMENT"),
        D::AlreadyMember { .. } => Refused(AlreadyExists, "ALREADY_MEMBER"),
        D::LevelNotAbove { .. } => Field("level"),
        D::TopOfLadder => Refused(FailedPrecondition, "TOP_OF_LADDER"),
        D::AcknowledgeRoleRequired { .. } => Refused(PermissionDenied, "ACKNOWLEDGE_ROLE_REQUIRED"),
        D::AlreadyAcknowledged => Refused(FailedPrecondition, "ALREADY_ACKNOWLEDGED"),
        D::EscalationClosed => Refused(FailedPrecondition, "ESCALATION_CLOSED"),
        D::AlertAcknowledged => Refused(FailedPrecondition, "ALERT_ACKNOWLEDGED"),
        D::InTheFuture { field } | D::InThePast { field } => Field(field),
    }
}

/// zh-CN text of the refusals people meet most.
fn localized_refusal(e: &DomainError) -> Option<&'static str> {
    use DomainError as D;
    Some(match e {
        D::SystemicCauseRequired => "群体性事件须先记录系统性原因及整改措施，才能关闭",
        D::StatementNotApproved { .. } => "该口径尚未审批，不能对外使用",
        D::StatementSuperseded { .. } => "该口径已被新版本取代，请使用现行统一口径",
        D::NoApprovedStatement { .. } => "该事件尚无经审批的统一口径",
        D::ApproverRoleRequired { .. } => "审批统一口径需要具备相应角色",
        D::AcknowledgeRoleRequired { .. } => "确认该层级的升级需要具备相应角色",
        D::TopOfLadder => "已升级至最高层级",
        _ => return None,
    })
}

impl ApiError for EscalationError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Domain(e) => match reported(e) {
                Reported::Field(_) => ErrorKind::InvalidArgument,
                Reported::Refused(kind, _) => kind,
            },
            Self::Flag(_) | Self::VipRegisterUnconfigured => ErrorKind::FailedPrecondition,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::EtagMismatch { .. } => ErrorKind::Aborted,
            Self::RequestIdReused => ErrorKind::InvalidArgument,
            Self::Platform(e) => e.kind(),
            Self::Internal(e) => redress_platform::error::internal_kind(e),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Domain(e) => match reported(e) {
                Reported::Field(_) => "INVALID_ARGUMENT",
                Reported::Refused(_, reason) => reason,
            },
            Self::Flag(FlagError::SecondApproverRequired { .. }) => "SECOND_APPROVER_REQUIRED",
            Self::Flag(FlagError::NotProposed { .. }) => "FLAG_NOT_PROPOSED",
            Self::VipRegisterUnconfigured => "VIP_REGISTER_UNCONFIGURED",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::EtagMismatch { .. } => "ETAG_MISMATCH",
            Self::RequestIdReused => "INVALID_ARGUMENT",
            Self::Platform(e) => ApiError::reason(e),
            Self::Internal(e) => redress_platform::error::internal_reason(e),
        }
    }

    fn localized(&self) -> String {
        match self {
            Self::Platform(e) => e.localized(),
            Self::Domain(e) if localized_refusal(e).is_some() => localized_refusal(e).unwrap_or_default().to_owned(),
            Self::Flag(FlagError::SecondApproverRequired { .. }) => "恶意投诉认定须由提出人以外的第二人审批".to_owned(),
            _ if self.kind() == ErrorKind::InvalidArgument => {
                ServiceError::InvalidArgument(self.violations()).localized()
            }
            _ => self.kind().localized().to_owned(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Domain(e) => match reported(e) {
                Reported::Field(field) => vec![FieldViolation::new(field, e.to_string())],
                Reported::Refused(..) => Vec::new(),
            },
            Self::RequestIdReused => vec![FieldViolation::new("request_id", "was used for another request")],
            Self::Platform(e) => e.violations(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let pairs = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        match self {
            Self::Domain(DomainError::IncidentState { current, .. }) => {
                pairs(&[("current_state", current.as_str_name())])
            }
            Self::Domain(DomainError::StatementSuperseded { current, .. }) => pairs(&[("current", current)]),
            Self::Domain(DomainError::ApproverRoleRequired { roles })
            | Self::Domain(DomainError::AcknowledgeRoleRequired { roles, .. }) => pairs(&[("roles", &roles.join(","))]),
            Self::NotFound { resource, name } => pairs(&[("resource", resource), ("name", name)]),
            Self::EtagMismatch { current, .. } => pairs(&[("current_etag", current)]),
            Self::Flag(FlagError::SecondApproverRequired { proposer }) => pairs(&[("proposed_by", proposer)]),
            Self::Platform(e) => e.metadata(),
            _ => HashMap::new(),
        }
    }
}

impl From<EscalationError> for tonic::Status {
    fn from(e: EscalationError) -> Self {
        to_status(&e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn a_superseded_statement_is_refused_naming_the_current_one() {
        let e = EscalationError::Domain(DomainError::StatementSuperseded {
            name: "incidents/1/statements/1".into(),
            current: "incidents/1/statements/2".into(),
        });
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "STATEMENT_SUPERSEDED");
        assert_eq!(info.metadata["current"], "incidents/1/statements/2");
    }

    #[test]
    fn a_field_refusal_names_the_field() {
        let status = tonic::Status::from(EscalationError::Domain(DomainError::LeaderCount { leaders: 2 }));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let v = status.get_error_details().bad_request().cloned().unwrap();
        assert_eq!(v.field_violations[0].field, "members");
    }
}
