//! Everything a case-workflow call can fail with, and the one place it is mapped to what a
//! gRPC caller sees: a kind (gRPC code), a stable `ErrorInfo` reason, metadata to act on and
//! the invalid fields. Callers match on the reasons, so they never change.

use std::collections::HashMap;

use redress_platform::ServiceError;
use redress_platform::error::{ApiError, ErrorKind, FieldViolation, Violations};

use redress_proto::redress::case::v1::ReplyFinding;

use crate::domain::workflow::{WorkflowError, replies};
use crate::store::etag;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The case refuses the command.
    #[error("{}", workflow_message(.0))]
    Workflow(#[from] WorkflowError),
    /// No such case, or none within the caller's organisation unit.
    #[error("case {name} not found")]
    NotFound { name: String },
    /// The caller changed the case from a stale read; of two handlers one wins.
    #[error("the case changed since etag {}; read it again (current etag {})", etag(*.expected), etag(*.current))]
    EtagMismatch { expected: i64, current: i64 },
    /// The request id was first used for another request (AIP-155).
    #[error("{}", invalid_message("request_id", REQUEST_ID_REUSED))]
    RequestIdReused,
    /// What platform plumbing refuses: invalid requests, missing credentials or permissions,
    /// a store not yet open, dead letters.
    #[error(transparent)]
    Platform(#[from] ServiceError),
    /// Anything unexpected (the database, a record that no longer decodes): logged, never
    /// shown to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

const REQUEST_ID_REUSED: &str = "was already used for a different request";

/// One lint finding as a field violation: the rule, where, what and what to say instead.
fn finding_description(f: &ReplyFinding) -> String {
    let mut text = format!("{} [{}, {}) {} {}", f.rule, f.start, f.end, f.kind, f.severity);
    if !f.text.is_empty() {
        text.push_str(&format!(" 「{}」", f.text));
    }
    text.push_str(&format!(": {}", f.message));
    if !f.alternatives.is_empty() {
        text.push_str(&format!(" 可以说：{}", f.alternatives.join("；")));
    }
    text
}

impl From<Violations> for CaseError {
    fn from(v: Violations) -> Self {
        Self::Platform(v.into())
    }
}

impl From<sqlx::Error> for CaseError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<redress_platform::db::CommitFailed> for CaseError {
    fn from(e: redress_platform::db::CommitFailed) -> Self {
        Self::Internal(e.into())
    }
}

impl From<CaseError> for tonic::Status {
    fn from(err: CaseError) -> Self {
        redress_platform::error::to_status(&err)
    }
}

/// How a workflow refusal is reported: as an invalid field of the request, or as a refusal of
/// its own kind and reason.
enum Reported {
    Field(&'static str),
    Refused(ErrorKind, &'static str),
}

fn reported(e: &WorkflowError) -> Reported {
    use ErrorKind::{AlreadyExists, FailedPrecondition, Internal, PermissionDenied};
    use Reported::{Field, Refused};
    use WorkflowError as W;
    match e {
        W::InvalidState { .. } => Refused(FailedPrecondition, "INVALID_CASE_STATE"),
        W::ConflictOfInterest { .. } => Refused(FailedPrecondition, "CONFLICT_OF_INTEREST"),
        W::CallerStaffIdRequired { .. } => Refused(PermissionDenied, "STAFF_ID_REQUIRED"),
        W::ConflictCheckPending { .. } => Refused(FailedPrecondition, "CONFLICT_CHECK_PENDING"),
        W::ConflictCheckNotRequired => Refused(FailedPrecondition, "CONFLICT_CHECK_NOT_REQUIRED"),
        W::ConflictCheckConfirmed { .. } => Refused(FailedPrecondition, "CONFLICT_CHECK_CONFIRMED"),
        W::SelfConfirmation => Refused(PermissionDenied, "SELF_CONFIRMATION"),
        W::StaffIdRequired { field } => Field(field),
        W::Unchanged => Field("classification"),
        W::HandoffPending { .. } => Refused(FailedPrecondition, "HANDOFF_PENDING"),
        W::FirstResponseRecorded => Refused(FailedPrecondition, "FIRST_RESPONSE_RECORDED"),
        W::ClocksPaused => Refused(FailedPrecondition, "CLOCKS_PAUSED"),
        W::NoRunningClock => Refused(FailedPrecondition, "NO_RUNNING_CLOCK"),
        W::ClocksNotPaused => Refused(FailedPrecondition, "CLOCKS_NOT_PAUSED"),
        W::DecisionClockDone => Refused(FailedPrecondition, "DECISION_CLOCK_DONE"),
        W::ExtensionTooLate { .. } => Refused(FailedPrecondition, "EXTENSION_TOO_LATE"),
        W::ExtensionNotInRegime { .. } => Refused(FailedPrecondition, "EXTENSION_NOT_IN_REGIME"),
        W::NoResolution => Refused(FailedPrecondition, "NO_RESOLUTION"),
        W::ApprovalNotNeeded => Refused(FailedPrecondition, "APPROVAL_NOT_NEEDED"),
        W::ApprovalRequired => Refused(FailedPrecondition, "APPROVAL_REQUIRED"),
        W::SurveyAnswered => Refused(FailedPrecondition, "SURVEY_ANSWERED"),
        W::TaskCompleted => Refused(FailedPrecondition, "TASK_COMPLETED"),
        W::SurvivorClosed { .. } => Refused(FailedPrecondition, "SURVIVOR_CLOSED"),
        W::Unassigned => Refused(FailedPrecondition, "UNASSIGNED"),
        W::NotDecided => Refused(FailedPrecondition, "NOT_DECIDED"),
        W::ReviewWindowPassed { .. } => Refused(FailedPrecondition, "REVIEW_WINDOW_PASSED"),
        W::AlreadyReviewed => Refused(FailedPrecondition, "ALREADY_REVIEWED"),
        W::ReviewNeedsHigherUnit { .. } => Refused(PermissionDenied, "REVIEW_NEEDS_HIGHER_UNIT"),
        W::ExtensionNeedsHigherUnit { .. } => Refused(PermissionDenied, "EXTENSION_NEEDS_HIGHER_UNIT"),
        W::Merged { .. } => Refused(FailedPrecondition, "MERGED"),
        W::PermissionRequired(_) | W::SelfApproval | W::AuthorityExceeded { .. } => {
            Refused(PermissionDenied, "PERMISSION_DENIED")
        }
        W::EvidenceExists => Refused(AlreadyExists, "EVIDENCE_EXISTS"),
        W::LinkExists { .. } => Refused(AlreadyExists, "LINK_EXISTS"),
        W::Calendar(_) => Refused(Internal, "INTERNAL"),
        W::AlreadyInDepartment => Field("to_department"),
        W::SameGrade => Field("grade"),
        W::ExtensionTooShort { .. } | W::ExtensionTooLong { .. } => Field("total_days"),
        W::DueInThePast => Field("due_time"),
        W::NoSuchTask => Field("task_id"),
        W::OtherCaseMissing | W::SelfLink => Field("other"),
        W::NotLinkable => Field("type"),
        W::TransitionVia { .. } | W::StateRequired => Field("state"),
        W::ContactInTheFuture | W::ContactBeforeOpening { .. } => Field("contact_time"),
        W::NextContactNotAfterContact => Field("next_contact_due_time"),
        W::DeflectingReason { .. } => Field("reason"),
        W::NoSuchStep => Field("step_id"),
        W::StepCompleted => Refused(FailedPrecondition, "STEP_COMPLETED"),
        W::ImplementationOpen { .. } => Refused(FailedPrecondition, "IMPLEMENTATION_OPEN"),
        W::ReplyBlocked { .. } => Refused(FailedPrecondition, "REPLY_BLOCKED"),
    }
}

/// How platform words an invalid field (`ServiceError::InvalidArgument` of one violation).
fn invalid_message(field: &str, description: &str) -> String {
    format!("invalid argument: {field}: {description}")
}

/// A refusal worded as platform words a failure of its kind, so that it reads the same
/// whichever layer raised it.
fn workflow_message(e: &WorkflowError) -> String {
    match reported(e) {
        Reported::Field(field) => invalid_message(field, &e.to_string()),
        Reported::Refused(ErrorKind::PermissionDenied, _) => format!("permission denied: {e}"),
        Reported::Refused(..) => e.to_string(),
    }
}

impl ApiError for CaseError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Workflow(e) => match reported(e) {
                Reported::Field(_) => ErrorKind::InvalidArgument,
                Reported::Refused(kind, _) => kind,
            },
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::EtagMismatch { .. } => ErrorKind::Aborted,
            Self::RequestIdReused => ErrorKind::InvalidArgument,
            Self::Platform(e) => e.kind(),
            Self::Internal(e) => redress_platform::error::internal_kind(e),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Workflow(e) => match reported(e) {
                Reported::Field(_) => "INVALID_ARGUMENT",
                Reported::Refused(_, reason) => reason,
            },
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
            // Platform words a list of invalid fields once, for every service.
            _ if self.kind() == ErrorKind::InvalidArgument => {
                ServiceError::InvalidArgument(self.violations()).localized()
            }
            _ => self.kind().localized().to_owned(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            // Every finding, on the field the reply came in, so the reply can be reworded.
            Self::Workflow(WorkflowError::ReplyBlocked { field, findings, .. }) => {
                findings.iter().map(|f| FieldViolation::new(*field, finding_description(f))).collect()
            }
            Self::Workflow(e) => match reported(e) {
                Reported::Field(field) => vec![FieldViolation::new(field, e.to_string())],
                Reported::Refused(..) => Vec::new(),
            },
            Self::RequestIdReused => vec![FieldViolation::new("request_id", REQUEST_ID_REUSED)],
            Self::Platform(e) => e.violations(),
            Self::NotFound { .. } | Self::EtagMismatch { .. } | Self::Internal(_) => Vec::new(),
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let pairs = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        match self {
            Self::Workflow(WorkflowError::InvalidState { current, allowed, .. }) => pairs(&[
                ("current_state", current.as_str_name()),
                ("allowed_states", &crate::domain::workflow::state_names(allowed, ",")),
            ]),
            Self::Workflow(WorkflowError::ConflictOfInterest { staff_id, role }) => {
                pairs(&[("staff_id", staff_id), ("role", role)])
            }
            Self::Workflow(WorkflowError::CallerStaffIdRequired { role }) => pairs(&[("role", role)]),
            Self::Workflow(
                WorkflowError::ConflictCheckPending { assignee } | WorkflowError::ConflictCheckConfirmed { assignee },
            ) => pairs(&[("assignee", assignee)]),
            Self::Workflow(WorkflowError::HandoffPending { to_department }) => {
                pairs(&[("to_department", to_department)])
            }
            Self::Workflow(WorkflowError::ExtensionTooLate { due }) => pairs(&[("due_time", &due.to_rfc3339())]),
            Self::Workflow(WorkflowError::ReviewWindowPassed { until }) => {
                pairs(&[("review_window_end", &until.to_rfc3339())])
            }
            Self::Workflow(WorkflowError::ReviewNeedsHigherUnit { deciding_unit }) => {
                pairs(&[("deciding_unit", deciding_unit)])
            }
            Self::Workflow(WorkflowError::ExtensionNotInRegime { regime }) => pairs(&[("regime", regime)]),
            Self::Workflow(WorkflowError::ExtensionNeedsHigherUnit { handling_unit }) => {
                pairs(&[("handling_unit", handling_unit)])
            }
            Self::Workflow(WorkflowError::ImplementationOpen { steps }) => pairs(&[("open_steps", &steps.join(","))]),
            Self::Workflow(WorkflowError::ReplyBlocked { field, rules_version, findings }) => {
                let blocking: Vec<_> = findings.iter().filter(|f| replies::is_blocking(f)).collect();
                let rules = blocking.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>().join(",");
                let spans = blocking.iter().map(|f| format!("{}-{}", f.start, f.end)).collect::<Vec<_>>().join(",");
                pairs(&[("field", field), ("rules_version", rules_version), ("rules", &rules), ("spans", &spans)])
            }
            Self::NotFound { name } => pairs(&[("resource", "case"), ("name", name)]),
            Self::Platform(e) => e.metadata(),
            _ => HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use redress_platform::principal::Permission;
    use redress_proto::redress::case::v1::CaseState;
    use tonic::Code;

    use super::*;

    #[test]
    fn a_refused_move_names_the_current_and_the_allowed_states() {
        let refused = WorkflowError::InvalidState {
            action: "closing",
            current: CaseState::Accepted,
            allowed: vec![CaseState::FollowUp, CaseState::Decided],
        };
        let err = CaseError::from(refused);
        assert_eq!((err.kind().code(), err.reason()), (Code::FailedPrecondition, "INVALID_CASE_STATE"));
        assert_eq!(
            err.to_string(),
            "closing is not allowed in state CASE_STATE_ACCEPTED; it needs one of CASE_STATE_FOLLOW_UP, CASE_STATE_DECIDED"
        );
        let metadata = err.metadata();
        assert_eq!(metadata["current_state"], "CASE_STATE_ACCEPTED");
        assert_eq!(metadata["allowed_states"], "CASE_STATE_FOLLOW_UP,CASE_STATE_DECIDED");
        assert!(err.violations().is_empty());
    }

    #[test]
    fn refusals_keep_their_codes_reasons_and_metadata() {
        let conflict =
            CaseError::from(WorkflowError::ConflictOfInterest { staff_id: "e-042".to_owned(), role: "decider" });
        assert_eq!((conflict.kind().code(), conflict.reason()), (Code::FailedPrecondition, "CONFLICT_OF_INTEREST"));
        assert_eq!(
            (conflict.metadata()["staff_id"].as_str(), conflict.metadata()["role"].as_str()),
            ("e-042", "decider")
        );
        let unverifiable = CaseError::from(WorkflowError::StaffIdRequired { field: "assignee_staff_id" });
        assert_eq!((unverifiable.kind().code(), unverifiable.reason()), (Code::InvalidArgument, "INVALID_ARGUMENT"));
        assert_eq!(unverifiable.violations()[0].field, "assignee_staff_id");
        let system = CaseError::from(WorkflowError::CallerStaffIdRequired { role: "decider" });
        assert_eq!((system.kind().code(), system.reason()), (Code::PermissionDenied, "STAFF_ID_REQUIRED"));
        let pending = CaseError::from(WorkflowError::ConflictCheckPending { assignee: "user:li".to_owned() });
        assert_eq!((pending.kind().code(), pending.reason()), (Code::FailedPrecondition, "CONFLICT_CHECK_PENDING"));
        assert_eq!(pending.metadata()["assignee"], "user:li");
        let limit = CaseError::from(WorkflowError::AuthorityExceeded { amount: 500, limit: 100 });
        assert_eq!((limit.kind().code(), limit.reason()), (Code::PermissionDenied, "PERMISSION_DENIED"));
        assert_eq!(
            limit.to_string(),
            "permission denied: the compensation (500) exceeds the approver's authority limit (100)"
        );
        let permission = CaseError::from(WorkflowError::PermissionRequired(Permission::CasesExtend));
        assert_eq!(permission.to_string(), "permission denied: the cases.extend permission is required");
        let link =
            CaseError::from(WorkflowError::LinkExists { case: "cases/a".to_owned(), other: "cases/b".to_owned() });
        assert_eq!((link.kind().code(), link.reason()), (Code::AlreadyExists, "LINK_EXISTS"));
        let stale = CaseError::EtagMismatch { expected: 1, current: 2 };
        assert_eq!((stale.kind().code(), stale.reason()), (Code::Aborted, "ETAG_MISMATCH"));
        assert!(stale.to_string().contains(r#"etag "1""#) && stale.to_string().contains(r#"current etag "2""#));
        let due = chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(1_774_368_000);
        let late = CaseError::from(WorkflowError::ExtensionTooLate { due });
        assert_eq!((late.kind().code(), late.reason()), (Code::FailedPrecondition, "EXTENSION_TOO_LATE"));
        assert_eq!(late.metadata()["due_time"], "2026-03-24T16:00:00+00:00");
        let not_in_regime = CaseError::from(WorkflowError::ExtensionNotInRegime { regime: "fca-disp".to_owned() });
        assert_eq!(
            (not_in_regime.kind().code(), not_in_regime.reason()),
            (Code::FailedPrecondition, "EXTENSION_NOT_IN_REGIME")
        );
        assert_eq!(not_in_regime.metadata()["regime"], "fca-disp");
        let missing = CaseError::NotFound { name: "cases/x".to_owned() };
        assert_eq!((missing.kind().code(), missing.reason()), (Code::NotFound, "NOT_FOUND"));
        assert_eq!((missing.metadata()["resource"].as_str(), missing.metadata()["name"].as_str()), ("case", "cases/x"));
    }

    #[test]
    fn a_refusal_of_who_reviews_or_extends_names_the_unit_it_protects() {
        let unit = "institutions/demo/branches/sh".to_owned();
        let review = CaseError::from(WorkflowError::ReviewNeedsHigherUnit { deciding_unit: unit.clone() });
        assert_eq!((review.kind().code(), review.reason()), (Code::PermissionDenied, "REVIEW_NEEDS_HIGHER_UNIT"));
        assert_eq!(review.metadata()["deciding_unit"], unit);
        assert!(review.to_string().starts_with("permission denied: "), "{review}");
        let extension = CaseError::from(WorkflowError::ExtensionNeedsHigherUnit { handling_unit: unit.clone() });
        assert_eq!(
            (extension.kind().code(), extension.reason()),
            (Code::PermissionDenied, "EXTENSION_NEEDS_HIGHER_UNIT")
        );
        assert_eq!(extension.metadata()["handling_unit"], unit);
        let until = chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(1_774_368_000);
        let late = CaseError::from(WorkflowError::ReviewWindowPassed { until });
        assert_eq!((late.kind().code(), late.reason()), (Code::FailedPrecondition, "REVIEW_WINDOW_PASSED"));
        assert_eq!(late.metadata()["review_window_end"], "2026-03-24T16:00:00+00:00");
        let again = CaseError::from(WorkflowError::AlreadyReviewed);
        assert_eq!((again.kind().code(), again.reason()), (Code::FailedPrecondition, "ALREADY_REVIEWED"));
    }

    #[test]
    fn a_blocked_reply_is_refused_with_every_finding_on_its_field() {
        let finding = |rule: &str, kind: &str, severity: &str, at: (i32, i32), text: &str| ReplyFinding {
            rule: rule.to_owned(),
            kind: kind.to_owned(),
            severity: severity.to_owned(),
            start: at.0,
            end: at.1,
            text: text.to_owned(),
            message: "说明".to_owned(),
            alternatives: vec!["我理解您的着急".to_owned()],
        };
        let err = CaseError::from(WorkflowError::ReplyBlocked {
            field: "decision_notice",
            rules_version: "2026.1".to_owned(),
            findings: vec![
                finding("banned.calm-down", "BANNED_PHRASE", "ERROR", (0, 4), "您别着急"),
                finding("missing.review-right", "MISSING_ELEMENT", "ERROR", (20, 20), ""),
            ],
        });
        assert_eq!((err.kind().code(), err.reason()), (Code::FailedPrecondition, "REPLY_BLOCKED"));
        assert!(err.to_string().contains("「您别着急」"), "{err}");
        let metadata = err.metadata();
        assert_eq!(
            (metadata["field"].as_str(), metadata["rules_version"].as_str(), metadata["rules"].as_str()),
            ("decision_notice", "2026.1", "banned.calm-down")
        );
        assert_eq!(metadata["spans"], "0-4");
        let violations = err.violations();
        assert_eq!(violations.len(), 2);
        assert!(violations.iter().all(|v| v.field == "decision_notice"));
        assert_eq!(
            violations[0].description,
            "banned.calm-down [0, 4) BANNED_PHRASE ERROR 「您别着急」: 说明 可以说：我理解您的着急"
        );
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), Code::FailedPrecondition);
    }

    #[test]
    fn a_refusal_about_one_field_is_an_invalid_argument_naming_it() {
        for (err, field) in [
            (CaseError::from(WorkflowError::SameGrade), "grade"),
            (CaseError::from(WorkflowError::ExtensionTooShort { current_days: 30 }), "total_days"),
            (CaseError::from(WorkflowError::TransitionVia { method: "DecideCase" }), "state"),
            (CaseError::RequestIdReused, "request_id"),
        ] {
            assert_eq!((err.kind().code(), err.reason()), (Code::InvalidArgument, "INVALID_ARGUMENT"), "{err}");
            let violations = err.violations();
            assert_eq!(violations.len(), 1);
            assert_eq!(violations[0].field, field);
            assert_eq!(err.to_string(), format!("invalid argument: {field}: {}", violations[0].description));
            assert!(err.localized().contains(field), "{}", err.localized());
        }
    }

    #[test]
    fn what_the_platform_refuses_is_reported_as_the_platform_reports_it() {
        let mut v = Violations::new();
        v.add("reason", "required");
        v.add("total_days", "must be 30 (complex) or 60 (especially complex)");
        let err = CaseError::from(v);
        let fields: Vec<_> = err.violations().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["reason", "total_days"]);
        assert_eq!(err.reason(), "INVALID_ARGUMENT");
        let status = tonic::Status::from(CaseError::Internal(anyhow::anyhow!("disk on fire")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("disk"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from(CaseError::from(sqlx::Error::Io(refused)));
        assert_eq!(status.code(), Code::Unavailable, "a database out of reach is worth a retry");
    }
}
