//! Everything a knowledge-base call can fail with, and the one place it is mapped to what a
//! gRPC caller sees: a kind (gRPC code), a stable `ErrorInfo` reason and the invalid fields.

use std::collections::HashMap;

use redress_platform::ServiceError;
use redress_platform::error::{ApiError, ErrorKind, FieldViolation, Violations};

use crate::domain::article::ArticleError;
use crate::domain::candidates::CandidateError;

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The article refuses the command.
    #[error("{0}")]
    Article(#[from] ArticleError),
    /// The typical-case candidate refuses the change.
    #[error("{0}")]
    Candidate(#[from] CandidateError),
    /// No such article, or none the caller may see.
    #[error("{name} not found")]
    NotFound { name: String },
    /// The article changed between reading and writing it; the caller tries again.
    #[error("the article changed while it was being written; try again")]
    Conflict,
    /// The request id was first used for another request (AIP-155).
    #[error("invalid argument: request_id: was already used for a different request")]
    RequestIdReused,
    /// What platform plumbing refuses: invalid requests, missing credentials or permissions,
    /// a store not yet open.
    #[error(transparent)]
    Platform(#[from] ServiceError),
    /// Anything unexpected: logged, never shown to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Violations> for KbError {
    fn from(v: Violations) -> Self {
        Self::Platform(v.into())
    }
}

impl From<sqlx::Error> for KbError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<redress_platform::db::CommitFailed> for KbError {
    fn from(e: redress_platform::db::CommitFailed) -> Self {
        Self::Internal(e.into())
    }
}

impl From<KbError> for tonic::Status {
    fn from(err: KbError) -> Self {
        redress_platform::error::to_status(&err)
    }
}

impl ApiError for KbError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Article(e) => match e {
                ArticleError::ReviewerIsAuthor => ErrorKind::PermissionDenied,
                ArticleError::CommentRequired | ArticleError::OutcomeNotTypicalCase => ErrorKind::InvalidArgument,
                _ => ErrorKind::FailedPrecondition,
            },
            Self::Candidate(_) => ErrorKind::FailedPrecondition,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Conflict => ErrorKind::Aborted,
            Self::RequestIdReused => ErrorKind::InvalidArgument,
            Self::Platform(e) => e.kind(),
            Self::Internal(e) => redress_platform::error::internal_kind(e),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Article(e) => match e {
                ArticleError::NoSuchVersion { .. } => "NO_SUCH_VERSION",
                ArticleError::OpenVersionExists { .. } => "OPEN_VERSION_EXISTS",
                ArticleError::NotDraft { .. } => "NOT_DRAFT",
                ArticleError::NotInReview { .. } => "NOT_IN_REVIEW",
                ArticleError::ReviewerIsAuthor => "REVIEWER_IS_AUTHOR",
                ArticleError::NothingPublished => "NOTHING_PUBLISHED",
                ArticleError::CommentRequired | ArticleError::OutcomeNotTypicalCase => "INVALID_ARGUMENT",
            },
            Self::Candidate(_) => "CANDIDATE_NOT_OPEN",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::Conflict => "CONCURRENT_CHANGE",
            Self::RequestIdReused => "INVALID_ARGUMENT",
            Self::Platform(e) => e.reason(),
            Self::Internal(e) => redress_platform::error::internal_reason(e),
        }
    }

    fn localized(&self) -> String {
        match self {
            Self::Article(ArticleError::ReviewerIsAuthor) => "作者不能审核自己编写或修改的版本".to_owned(),
            Self::Article(ArticleError::OpenVersionExists { .. }) => "该文章已有未发布的版本，请先完成审核".to_owned(),
            Self::Article(ArticleError::NotDraft { .. }) => "只有草稿可以修改或提交审核".to_owned(),
            Self::Article(ArticleError::NotInReview { .. }) => "只有待审核的版本可以审核".to_owned(),
            Self::Article(ArticleError::NothingPublished) => "该文章没有已发布的版本".to_owned(),
            Self::Candidate(_) => "该案例候选已处理".to_owned(),
            Self::Platform(e) => e.localized(),
            other => other.kind().localized().to_owned(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Article(ArticleError::CommentRequired) => vec![FieldViolation::new("comment", self.to_string())],
            Self::Article(ArticleError::OutcomeNotTypicalCase) => {
                vec![FieldViolation::new("content.outcome", self.to_string())]
            }
            Self::RequestIdReused => {
                vec![FieldViolation::new("request_id", "was already used for a different request")]
            }
            Self::Platform(e) => e.violations(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        match self {
            Self::Article(
                ArticleError::NoSuchVersion { version }
                | ArticleError::OpenVersionExists { version, .. }
                | ArticleError::NotDraft { version, .. }
                | ArticleError::NotInReview { version, .. },
            ) => HashMap::from([("version".to_owned(), version.to_string())]),
            Self::NotFound { name } => HashMap::from([("name".to_owned(), name.clone())]),
            Self::Platform(e) => e.metadata(),
            _ => HashMap::new(),
        }
    }
}
