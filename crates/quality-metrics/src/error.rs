//! Everything a quality-metrics call can fail with, and the one place it is mapped to what a
//! gRPC caller sees.

use std::collections::HashMap;

use redress_platform::ServiceError;
use redress_platform::error::{ApiError, ErrorKind, FieldViolation, Violations};

use crate::domain::improvement::ActionError;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The request id was first used for another request (AIP-155).
    #[error("invalid argument: request_id: was already used for a different request")]
    RequestIdReused,
    /// No such record, or none within the caller's organisation unit.
    #[error("{name} not found")]
    NotFound { name: String },
    /// The caller changed a record from a stale read.
    #[error("the action changed since etag \"{expected}\"; read it again (current etag \"{current}\")")]
    EtagMismatch { expected: i64, current: i64 },
    /// An action refuses the change.
    #[error("{0}")]
    Action(#[from] crate::domain::improvement::ActionError),
    /// An effect is measured from the day an action was done.
    #[error("the action is not done yet; its effect is measured from the day it is")]
    ActionNotDone,
    /// What platform plumbing refuses: invalid requests, missing credentials or permissions,
    /// a store not yet open, dead letters, a pruned feed.
    #[error(transparent)]
    Platform(#[from] ServiceError),
    /// Anything unexpected (the database, a record that no longer decodes): logged, never
    /// shown to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Violations> for MetricsError {
    fn from(v: Violations) -> Self {
        Self::Platform(v.into())
    }
}

impl From<sqlx::Error> for MetricsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<redress_platform::db::CommitFailed> for MetricsError {
    fn from(e: redress_platform::db::CommitFailed) -> Self {
        Self::Internal(e.into())
    }
}

impl From<MetricsError> for tonic::Status {
    fn from(err: MetricsError) -> Self {
        redress_platform::error::to_status(&err)
    }
}

impl ApiError for MetricsError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::RequestIdReused => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::EtagMismatch { .. } => ErrorKind::Aborted,
            Self::Action(ActionError::Closed(_)) | Self::ActionNotDone => ErrorKind::FailedPrecondition,
            Self::Action(ActionError::Transition { .. }) => ErrorKind::InvalidArgument,
            Self::Platform(e) => e.kind(),
            Self::Internal(e) => redress_platform::error::internal_kind(e),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::RequestIdReused | Self::Action(ActionError::Transition { .. }) => "INVALID_ARGUMENT",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::EtagMismatch { .. } => "ETAG_MISMATCH",
            Self::Action(ActionError::Closed(_)) => "ACTION_CLOSED",
            Self::ActionNotDone => "ACTION_NOT_DONE",
            Self::Platform(e) => e.reason(),
            Self::Internal(e) => redress_platform::error::internal_reason(e),
        }
    }

    fn localized(&self) -> String {
        match self {
            Self::Platform(e) => e.localized(),
            other => other.kind().localized().to_owned(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::RequestIdReused => {
                vec![FieldViolation::new("request_id", "was already used for a different request")]
            }
            Self::Action(e @ ActionError::Transition { .. }) => vec![FieldViolation::new("status", e.to_string())],
            Self::Platform(e) => e.violations(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        match self {
            Self::Platform(e) => e.metadata(),
            _ => HashMap::new(),
        }
    }
}
