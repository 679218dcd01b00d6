//! Domain errors and their one mapping to `google.rpc.Status` (AIP-193): an `ErrorInfo` with a
//! stable reason, `BadRequest` field violations for invalid input, and a zh-CN
//! `LocalizedMessage` for people.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every Redress error.
pub const ERROR_DOMAIN: &str = "redress";

/// One invalid field of a request: its path (e.g. `complaint.complainant.person.phone`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Collects every violation of a request so that all of them are reported at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was violated, else an `InvalidArgument` naming every field.
    pub fn into_result(self) -> Result<(), ServiceError> {
        if self.0.is_empty() { Ok(()) } else { Err(ServiceError::InvalidArgument(self.0)) }
    }
}

impl From<Violations> for ServiceError {
    fn from(v: Violations) -> Self {
        Self::InvalidArgument(v.0)
    }
}

/// The small set of kinds of failure a Redress API reports; each maps to exactly one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    Unauthenticated,
    PermissionDenied,
    /// A bound on what one caller or all callers may hold at once was reached.
    ResourceExhausted,
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn code(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::Aborted => Code::Aborted,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::ResourceExhausted => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }

    /// The zh-CN text people see for a failure of this kind, unless the error says better.
    pub fn localized(self) -> &'static str {
        match self {
            Self::InvalidArgument => "请求内容有误，请检查后重试",
            Self::NotFound => "未找到所请求的记录",
            Self::AlreadyExists => "记录已存在",
            Self::FailedPrecondition => "当前状态下无法完成该操作",
            Self::Aborted => "记录已被他人修改，请刷新后重试",
            Self::Unauthenticated => "身份验证失败，请重新登录",
            Self::PermissionDenied => "您没有执行该操作的权限",
            Self::ResourceExhausted => "请求过多，请稍后重试",
            Self::Unavailable => "服务暂时不可用，请稍后重试",
            Self::Internal => "系统内部错误，请稍后重试",
        }
    }
}

/// A service's own error: each service has one enum implementing this trait, and
/// [`to_status`] turns any of them into a `google.rpc.Status` the same way (quickwit's
/// `ServiceError` pattern). Domain code returns domain errors; only this mapping knows gRPC.
pub trait ApiError: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
    /// Stable machine-readable reason (`ErrorInfo.reason`), e.g. `INVALID_CASE_STATE`.
    fn reason(&self) -> &'static str;
    /// zh-CN text for people (`LocalizedMessage`).
    fn localized(&self) -> String {
        self.kind().localized().to_owned()
    }
    /// The invalid fields, for `InvalidArgument` (`BadRequest` violations).
    fn violations(&self) -> Vec<FieldViolation> {
        Vec::new()
    }
    /// Facts a caller may act on (`ErrorInfo.metadata`), e.g. the current state.
    fn metadata(&self) -> HashMap<String, String> {
        HashMap::new()
    }
}

/// The one mapping of an API error to `google.rpc.Status` (AIP-193). Internal causes, and those
/// of a database out of reach, stay in the logs; callers get an opaque message.
pub fn to_status<E: ApiError + ?Sized>(err: &E) -> Status {
    let kind = err.kind();
    let mut details = ErrorDetails::new();
    for v in err.violations() {
        details.add_bad_request_violation(v.field, v.description);
    }
    let mut localized = err.localized();
    let message = if kind == ErrorKind::Internal {
        tracing::error!(error = %DisplayChain(err), "internal error");
        "internal error".to_owned()
    } else if err.reason() == DATABASE_UNAVAILABLE {
        tracing::warn!(error = %DisplayChain(err), "database unavailable");
        "database unavailable; retry later".to_owned()
    } else if err.reason() == TRANSACTION_CONFLICT {
        tracing::warn!(error = %DisplayChain(err), "transaction conflict");
        localized = "与同时进行的操作冲突，未作任何更改，请重试".to_owned();
        "the database aborted the call's transaction for a concurrent one; nothing was changed, retry it".to_owned()
    } else if err.reason() == STORAGE_FULL {
        tracing::warn!(error = %DisplayChain(err), "storage full");
        localized = "存储空间不足，请稍后重试".to_owned();
        "storage full; retry later".to_owned()
    } else {
        err.to_string()
    };
    details.set_error_info(err.reason(), ERROR_DOMAIN, err.metadata());
    details.set_localized_message("zh-CN", localized);
    Status::with_error_details(kind.code(), message, details)
}

/// An error with its sources, as `{:#}` prints an `anyhow::Error`.
struct DisplayChain<'a, E: ?Sized>(&'a E);

impl<E: std::error::Error + ?Sized> fmt::Display for DisplayChain<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// `ErrorInfo.reason` of a call that failed because the database is out of reach (UNAVAILABLE:
/// retry it).
pub const DATABASE_UNAVAILABLE: &str = "DATABASE_UNAVAILABLE";

/// `ErrorInfo.reason` of a call that failed because the disk holding the service's database is
/// full (RESOURCE_EXHAUSTED: nothing was written; retry once space is freed).
pub const STORAGE_FULL: &str = "STORAGE_FULL";

/// `ErrorInfo.reason` of a call whose transaction the database aborted for a concurrent one (a
/// deadlock it broke, or a serialization failure): ABORTED, nothing was written; the same call
/// may simply be sent again.
pub const TRANSACTION_CONFLICT: &str = "TRANSACTION_CONFLICT";

/// The kind of an unexpected failure (a service's `Internal(anyhow::Error)`): UNAVAILABLE when
/// the database is out of reach ([`is_database_unavailable`]), ABORTED when it aborted the
/// transaction for a concurrent one ([`is_transaction_conflict`]), RESOURCE_EXHAUSTED when its
/// disk is full ([`is_storage_full`]), else INTERNAL.
pub fn internal_kind(err: &anyhow::Error) -> ErrorKind {
    if is_database_unavailable(err) {
        ErrorKind::Unavailable
    } else if is_transaction_conflict(err) {
        ErrorKind::Aborted
    } else if is_storage_full(err) {
        ErrorKind::ResourceExhausted
    } else {
        ErrorKind::Internal
    }
}

/// The reason going with [`internal_kind`]: `DATABASE_UNAVAILABLE`, `TRANSACTION_CONFLICT`,
/// `STORAGE_FULL` or `INTERNAL`.
pub fn internal_reason(err: &anyhow::Error) -> &'static str {
    if is_database_unavailable(err) {
        DATABASE_UNAVAILABLE
    } else if is_transaction_conflict(err) {
        TRANSACTION_CONFLICT
    } else if is_storage_full(err) {
        STORAGE_FULL
    } else {
        "INTERNAL"
    }
}

/// Whether the database aborted the failed transaction for a concurrent one: PostgreSQL's
/// `serialization_failure` (40001) or `deadlock_detected` (40P01). Looks through `err`'s whole
/// chain.
pub fn is_transaction_conflict(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(|e| match e {
            sqlx::Error::Database(db) => db.code().is_some_and(|code| matches!(&*code, "40001" | "40P01")),
            _ => false,
        })
    })
}

/// Whether a failure is the disk holding the database being full: SQLite's `SQLITE_FULL`, a batch
/// of the SQLite writer that could not commit for it, PostgreSQL's `disk_full` (53100), or
/// `ENOSPC`/`EDQUOT` from the file system. Looks through `err`'s whole chain.
pub fn is_storage_full(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            sqlx_storage_full(e)
        } else if let Some(e) = cause.downcast_ref::<crate::db::CommitFailed>() {
            e.storage_full
        } else {
            cause.downcast_ref::<std::io::Error>().is_some_and(io_storage_full)
        }
    })
}

pub(crate) fn sqlx_storage_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => io_storage_full(io),
        // SQLITE_FULL (13; SQLite reports it for ENOSPC), and PostgreSQL's disk_full.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| matches!(&*code, "13" | "53100")),
        _ => false,
    }
}

fn io_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// Whether a failure is the database being out of reach (unreachable, restarting, shutting
/// down, its pool exhausted or closed, a SQLite write batch that could not begin) rather than a
/// fault: such a call may succeed when retried,
/// so it is reported as UNAVAILABLE, never INTERNAL. Looks through `err`'s whole chain.
pub fn is_database_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            sqlx_unavailable(e)
        } else if let Some(e) = cause.downcast_ref::<crate::db::CommitFailed>() {
            e.unavailable
        } else {
            cause.downcast_ref::<std::io::Error>().is_some_and(io_unavailable)
        }
    })
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => io_unavailable(io),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| sqlstate_unavailable(&code)),
        _ => false,
    }
}

/// Connection exceptions (class 08) and the server shutting down or starting
/// (`admin_shutdown` 57P01, `crash_shutdown` 57P02, `cannot_connect_now` 57P03).
fn sqlstate_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

fn io_unavailable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::UnexpectedEof
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable
    )
}

/// The small set of failures a Redress API can report. Each maps to exactly one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{resource} {name} not found")]
    NotFound { resource: &'static str, name: String },
    #[error("{message}")]
    AlreadyExists { reason: &'static str, message: String },
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String, metadata: HashMap<String, String> },
    #[error("{message}")]
    Aborted { reason: &'static str, message: String },
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{message}")]
    ResourceExhausted { reason: &'static str, message: String },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Field violations as one line, `field: why; field: why`, for error messages.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition { reason, message: message.into(), metadata: HashMap::new() }
    }

    /// Stable machine-readable reason (`ErrorInfo.reason`).
    pub fn reason(&self) -> &'static str {
        ApiError::reason(self)
    }

    pub fn code(&self) -> Code {
        self.kind().code()
    }
}

impl ApiError for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Self::FailedPrecondition { .. } => ErrorKind::FailedPrecondition,
            Self::Aborted { .. } => ErrorKind::Aborted,
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Self::ResourceExhausted { .. } => ErrorKind::ResourceExhausted,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Internal(e) => internal_kind(e),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::AlreadyExists { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::Aborted { reason, .. }
            | Self::ResourceExhausted { reason, .. } => reason,
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(e) => internal_reason(e),
        }
    }

    fn localized(&self) -> String {
        match self {
            Self::InvalidArgument(v) => {
                let fields = v.iter().map(|v| v.field.as_str()).collect::<Vec<_>>().join("、");
                format!("请求内容有误，请检查以下字段：{fields}")
            }
            other => other.kind().localized().to_owned(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::InvalidArgument(v) => v.clone(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        match self {
            Self::NotFound { resource, name } => {
                HashMap::from([("resource".to_owned(), (*resource).to_owned()), ("name".to_owned(), name.clone())])
            }
            Self::FailedPrecondition { metadata, .. } => metadata.clone(),
            _ => HashMap::new(),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        to_status(&err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_every_field_and_carries_zh_cn_text() {
        let mut v = Violations::new();
        v.add("complaint.channel", "must be set");
        v.add("request_id", "must not be empty");
        let status: Status = v.into_result().unwrap_err().into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
        assert_eq!(fields, ["complaint.channel", "request_id"]);
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
        assert_eq!(details.error_info().unwrap().domain, ERROR_DOMAIN);
        let localized = details.localized_message().unwrap();
        assert_eq!(localized.locale, "zh-CN");
        assert!(localized.message.contains("complaint.channel"));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status = ServiceError::Internal(anyhow::anyhow!("disk on fire at /var/x")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("disk"));
    }

    /// A database error as a store returns it: `sqlx::Error` in an `anyhow::Error`, perhaps
    /// under context.
    fn store_failure(e: sqlx::Error) -> ServiceError {
        ServiceError::Internal(anyhow::Error::new(e).context("reading the case"))
    }

    #[derive(Debug)]
    struct PgCode(&'static str);

    impl fmt::Display for PgCode {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "database error {}", self.0)
        }
    }

    impl std::error::Error for PgCode {}

    impl sqlx::error::DatabaseError for PgCode {
        fn message(&self) -> &str {
            "database error"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn database(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(PgCode(code)))
    }

    #[test]
    fn an_unreachable_or_restarting_database_is_unavailable_and_retryable() {
        let io = |kind| sqlx::Error::Io(std::io::Error::from(kind));
        let failures = [
            ("pool timed out", sqlx::Error::PoolTimedOut),
            ("pool closed", sqlx::Error::PoolClosed),
            ("refused", io(std::io::ErrorKind::ConnectionRefused)),
            ("reset", io(std::io::ErrorKind::ConnectionReset)),
            ("eof", io(std::io::ErrorKind::UnexpectedEof)),
            ("admin shutdown", database("57P01")),
            ("crash shutdown", database("57P02")),
            ("cannot connect now", database("57P03")),
            ("connection failure", database("08006")),
            ("connection does not exist", database("08003")),
        ];
        for (what, e) in failures {
            let status: Status = store_failure(e).into();
            assert_eq!(status.code(), Code::Unavailable, "{what}");
            assert_eq!(status.get_error_details().error_info().unwrap().reason, DATABASE_UNAVAILABLE, "{what}");
            assert!(!status.message().contains("reading the case"), "{what}: causes stay in the logs");
        }
        let direct: Status = ServiceError::Internal(sqlx::Error::PoolTimedOut.into()).into();
        assert_eq!(direct.code(), Code::Unavailable);
    }

    #[test]
    fn a_transaction_the_database_aborted_for_a_concurrent_one_is_aborted_with_its_reason() {
        for (what, code) in [("deadlock detected", "40P01"), ("serialization failure", "40001")] {
            let status: Status = store_failure(database(code)).into();
            assert_eq!(status.code(), Code::Aborted, "{what}");
            let details = status.get_error_details();
            assert_eq!(details.error_info().unwrap().reason, TRANSACTION_CONFLICT, "{what}");
            assert!(details.localized_message().unwrap().message.contains("请重试"), "{what}");
            assert!(!status.message().contains("reading the case"), "{what}: causes stay in the logs");
        }
        // A unique violation is not one: the call's own conflict is the service's to explain.
        assert_eq!(Status::from(store_failure(database("23505"))).code(), Code::Internal);
    }

    #[test]
    fn a_full_disk_is_resource_exhausted_with_its_reason() {
        let failures = [
            ("SQLITE_FULL", store_failure(database("13"))),
            ("PostgreSQL disk_full", store_failure(database("53100"))),
            ("ENOSPC", store_failure(sqlx::Error::Io(std::io::Error::from_raw_os_error(28)))),
            (
                "a batch of the writer",
                ServiceError::Internal(
                    anyhow::Error::new(crate::db::CommitFailed {
                        message: "(code: 13) database or disk is full".to_owned(),
                        storage_full: true,
                        unavailable: false,
                    })
                    .context("submitting"),
                ),
            ),
        ];
        for (what, e) in failures {
            let status: Status = e.into();
            assert_eq!(status.code(), Code::ResourceExhausted, "{what}");
            let details = status.get_error_details();
            assert_eq!(details.error_info().unwrap().reason, STORAGE_FULL, "{what}");
            assert!(details.localized_message().unwrap().message.contains("存储空间不足"), "{what}");
            assert!(!status.message().contains("reading the case"), "{what}: causes stay in the logs");
        }
        let other = ServiceError::Internal(
            crate::db::CommitFailed { message: "disk I/O error".to_owned(), storage_full: false, unavailable: false }
                .into(),
        );
        assert_eq!(Status::from(other).code(), Code::Internal);
    }

    #[test]
    fn other_database_failures_stay_internal() {
        let failures = [
            ("unique violation", database("23505")),
            ("syntax", database("42601")),
            ("row not found", sqlx::Error::RowNotFound),
            (
                "permission denied on a file",
                sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            ),
        ];
        for (what, e) in failures {
            let status: Status = store_failure(e).into();
            assert_eq!(status.code(), Code::Internal, "{what}");
        }
    }
}
