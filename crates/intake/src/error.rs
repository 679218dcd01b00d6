//! What an intake call fails with. Store errors and refused domain rules become an
//! [`IntakeError`] here and nowhere else; `to_status` is its one way to gRPC.

use std::collections::HashMap;

use redress_platform::error::{Violations, to_status};
use redress_platform::names::OrgUnit;
use redress_platform::{ApiError, ErrorKind, FieldViolation, ServiceError};

use crate::domain::lifecycle::ChangeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Invalid input: every violated field at once.
    #[error("invalid argument: {}", redress_platform::error::describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such resource, or none the caller may see (outside its organisation unit).
    #[error("{resource} {name} not found")]
    NotFound { resource: &'static str, name: String },
    /// A complaint filed for an organisation unit the caller does not cover.
    #[error("permission denied: complaint.org_unit {0} lies outside the caller's organisation unit")]
    OutsideOrgUnit(OrgUnit),
    /// The complainant's personal information was erased, so there is nothing to change.
    #[error("the complainant's personal information was erased")]
    PersonalDataErased,
    /// The complaint was withdrawn, so what the change records no longer applies.
    #[error("the complaint was withdrawn")]
    ComplaintWithdrawn,
    /// What the platform's plumbing refused: the caller's identity or permission, a service
    /// still starting, a feed position already pruned.
    #[error(transparent)]
    Platform(ServiceError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntakeError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A submission whose `complaint.external_reference` identifies another complaint of its
    /// institution: named when the caller may see it.
    pub fn reference_taken(complaint: Option<&str>) -> Self {
        let description = match complaint {
            Some(name) => format!("already identifies complaint {name}, recorded from another request"),
            None => "already identifies a complaint outside the caller's organisation unit".to_owned(),
        };
        Self::invalid("complaint.external_reference", description)
    }

    pub fn complaint_not_found(name: &str) -> Self {
        Self::NotFound { resource: "complaint", name: name.to_owned() }
    }
}

impl ApiError for IntakeError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::OutsideOrgUnit(_) => ErrorKind::PermissionDenied,
            Self::PersonalDataErased | Self::ComplaintWithdrawn => ErrorKind::FailedPrecondition,
            Self::Platform(e) => e.kind(),
            Self::Internal(e) => redress_platform::error::internal_kind(e),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::OutsideOrgUnit(_) => "PERMISSION_DENIED",
            Self::PersonalDataErased => "PERSONAL_DATA_ERASED",
            Self::ComplaintWithdrawn => "COMPLAINT_WITHDRAWN",
            Self::Platform(e) => ApiError::reason(e),
            Self::Internal(e) => redress_platform::error::internal_reason(e),
        }
    }

    fn localized(&self) -> String {
        match self {
            Self::InvalidArgument(v) => {
                let fields = v.iter().map(|v| v.field.as_str()).collect::<Vec<_>>().join("、");
                format!("请求内容有误，请检查以下字段：{fields}")
            }
            Self::ComplaintWithdrawn => "投诉已撤回，不能再记录内容确认".to_owned(),
            Self::Platform(e) => e.localized(),
            other => other.kind().localized().to_owned(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::InvalidArgument(v) => v.clone(),
            Self::Platform(e) => e.violations(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        match self {
            Self::NotFound { resource, name } => {
                HashMap::from([("resource".to_owned(), (*resource).to_owned()), ("name".to_owned(), name.clone())])
            }
            Self::ComplaintWithdrawn => HashMap::from([("state".to_owned(), "COMPLAINT_STATE_WITHDRAWN".to_owned())]),
            Self::Platform(e) => e.metadata(),
            _ => HashMap::new(),
        }
    }
}

impl From<IntakeError> for tonic::Status {
    fn from(err: IntakeError) -> Self {
        to_status(&err)
    }
}

impl From<ServiceError> for IntakeError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidArgument(v) => Self::InvalidArgument(v),
            ServiceError::NotFound { resource, name } => Self::NotFound { resource, name },
            ServiceError::Internal(e) => Self::Internal(e),
            other => Self::Platform(other),
        }
    }
}

impl From<Violations> for IntakeError {
    fn from(v: Violations) -> Self {
        ServiceError::from(v).into()
    }
}

impl From<StoreError> for IntakeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RequestIdReused => Self::invalid("request_id", "was already used for a different complaint"),
            StoreError::ReferenceTaken { complaint, .. } => Self::reference_taken(Some(&complaint)),
            StoreError::Erased => Self::PersonalDataErased,
            StoreError::Refused(ChangeError::WithdrawnBeforeReceipt) => {
                Self::invalid("withdraw_time", "must not be before the complaint was received")
            }
            StoreError::Refused(ChangeError::ConfirmedBeforeReceipt) => {
                Self::invalid("confirmation.confirm_time", "must not be before the complaint was received")
            }
            StoreError::Refused(ChangeError::Withdrawn) => Self::ComplaintWithdrawn,
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn store_errors_keep_their_codes_reasons_and_fields() {
        let reused = IntakeError::from(StoreError::RequestIdReused);
        assert_eq!((reused.kind(), reused.reason()), (ErrorKind::InvalidArgument, "INVALID_ARGUMENT"));
        assert_eq!(reused.violations()[0].field, "request_id");
        assert!(reused.localized().contains("request_id"));
        let taken = IntakeError::from(StoreError::ReferenceTaken {
            complaint: "complaints/1".to_owned(),
            org_unit: "institutions/acme".to_owned(),
        });
        assert_eq!(taken.kind(), ErrorKind::InvalidArgument);
        assert_eq!(taken.violations()[0].field, "complaint.external_reference");
        assert!(taken.violations()[0].description.contains("complaints/1"));
        let erased = IntakeError::from(StoreError::Erased);
        assert_eq!(tonic::Status::from(erased).code(), Code::FailedPrecondition);
        let withdrawn = IntakeError::from(StoreError::Refused(ChangeError::Withdrawn));
        assert_eq!((withdrawn.kind(), withdrawn.reason()), (ErrorKind::FailedPrecondition, "COMPLAINT_WITHDRAWN"));
        let early = IntakeError::from(StoreError::Refused(ChangeError::ConfirmedBeforeReceipt));
        assert_eq!(early.violations()[0].field, "confirmation.confirm_time");
        let internal = tonic::Status::from(IntakeError::from(StoreError::Other(anyhow::anyhow!("disk at /var/x"))));
        assert_eq!(internal.code(), Code::Internal);
        assert!(!internal.message().contains("/var/x"), "internal causes stay in the logs");
        let unreachable = StoreError::Other(anyhow::Error::new(sqlx::Error::PoolTimedOut).context("submitting"));
        let status = tonic::Status::from(IntakeError::from(unreachable));
        assert_eq!(status.code(), Code::Unavailable, "a database out of reach is worth a retry");
    }

    #[test]
    fn what_the_platform_refuses_keeps_its_code_and_reason() {
        let denied = IntakeError::from(ServiceError::PermissionDenied("pii.manage is required".to_owned()));
        assert_eq!(denied.reason(), "PERMISSION_DENIED");
        assert_eq!(tonic::Status::from(denied).code(), Code::PermissionDenied);
    }
}
