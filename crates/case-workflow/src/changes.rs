//! The mutating half of CaseService: validates each request completely (every violation at
//! once), turns it into a workflow [`Command`] and hands it to the store, which applies it
//! with its audit entries and events in one transaction.

use std::sync::Arc;

use prost::Message;
use redress_platform::ServiceError;
use redress_platform::error::Violations;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::from_timestamp;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, AddEvidenceRequest, AnswerSurveyRequest, ApproveResolutionRequest, AssignCaseRequest,
    Case, CaseState, ChangeCaseGradeRequest, CompleteCoordinationTaskRequest, DecideCaseRequest,
    ExtendDecisionDeadlineRequest, LinkCasesRequest, LinkType, Money, PauseCaseClocksRequest, PauseReason,
    ProposeResolutionRequest, RecordFirstResponseRequest, ResolutionType, ResumeCaseClocksRequest, TransferCaseRequest,
    TransitionCaseRequest,
};
use redress_proto::redress::common::v1::Grade;
use sha2::{Digest, Sha256};

use crate::api::CaseApi;
use crate::domain::workflow::Command;
use crate::store::{RequestKey, Update};

/// Longest accepted names of people and departments, reasons, and notices (characters).
const MAX_NAME: usize = 200;
const MAX_REASON: usize = 2000;
const MAX_NOTICE: usize = 10_000;
const MAX_REQUEST_ID: usize = 128;
/// Largest compensation accepted, in minor units (100 billion yuan).
const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

/// The parts every change request shares.
struct Target<'a> {
    name: &'a str,
    etag: &'a str,
    request_id: &'a str,
    /// The other case of a link.
    other: Option<&'a str>,
}

fn check_text(v: &mut Violations, field: &str, value: &str, required: bool, max: usize) {
    if value.trim().is_empty() {
        if required {
            v.add(field, "required");
        }
    } else if value.chars().count() > max {
        v.add(field, format!("at most {max} characters"));
    } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        v.add(field, "must not contain control characters");
    }
}

fn check_name(v: &mut Violations, field: &str, value: &str) {
    check_text(v, field, value, true, MAX_NAME);
    if value.contains(['\n', '\r', '\t']) {
        v.add(field, "must be one line");
    }
}

fn case_id<'a>(v: &mut Violations, field: &str, name: &'a str) -> &'a str {
    match name.strip_prefix("cases/").filter(|id| uuid::Uuid::try_parse(id).is_ok()) {
        Some(id) => id,
        None => {
            v.add(field, "must be cases/{case_id}");
            ""
        }
    }
}

/// The version an etag names (`"N"` as the case carries it).
fn version_of(v: &mut Violations, etag: &str) -> Option<i64> {
    if etag.is_empty() {
        return None;
    }
    let version = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).and_then(|n| n.parse::<i64>().ok());
    match version {
        Some(n) if n >= 1 => Some(n),
        _ => {
            v.add("etag", "is not an etag of a case");
            None
        }
    }
}

fn check_money(v: &mut Violations, money: &Money) {
    let code = &money.currency_code;
    if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
        v.add("compensation.currency_code", "must be an ISO 4217 code such as CNY");
    }
    if money.amount_minor < 0 {
        v.add("compensation.amount_minor", "must not be negative");
    } else if money.amount_minor > MAX_AMOUNT_MINOR {
        v.add("compensation.amount_minor", "is implausibly large");
    }
}

impl CaseApi {
    /// Validates the shared parts, then runs the command through the store.
    async fn change<R: Message>(
        &self,
        principal: &Arc<Principal>,
        method: &str,
        request: &R,
        target: Target<'_>,
        mut v: Violations,
        command: Option<Command>,
    ) -> Result<Case, ServiceError> {
        principal.require(Permission::CasesWrite)?;
        let id = case_id(&mut v, "name", target.name).to_owned();
        let other = target.other.map(|o| case_id(&mut v, "other", o).to_owned());
        let expected_version = version_of(&mut v, target.etag);
        if target.request_id.len() > MAX_REQUEST_ID || target.request_id.chars().any(char::is_control) {
            v.add("request_id", format!("at most {MAX_REQUEST_ID} printable characters"));
        }
        v.into_result()?;
        let Some(command) = command else {
            return Err(ServiceError::Internal(anyhow::anyhow!("a valid request produced no command")));
        };
        let request = (!target.request_id.is_empty()).then(|| {
            let mut hasher = Sha256::new();
            for part in [principal.subject.as_bytes(), method.as_bytes(), &request.encode_to_vec()] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            RequestKey { id: target.request_id.to_owned(), fingerprint: hex::encode(hasher.finalize()) }
        });
        let store = self.store()?;
        store.update(Update { id, other, expected_version, request, principal: principal.clone(), command }).await
    }

    pub async fn assign(&self, p: &Arc<Principal>, r: AssignCaseRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_name(&mut v, "assignee", &r.assignee);
        check_name(&mut v, "department", &r.department);
        let command = Command::Assign { assignee: r.assignee.clone(), department: r.department.clone() };
        self.change(
            p,
            "AssignCase",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn transfer(&self, p: &Arc<Principal>, r: TransferCaseRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_name(&mut v, "to_department", &r.to_department);
        check_text(&mut v, "reason", &r.reason, true, MAX_REASON);
        let command = Command::Transfer { to_department: r.to_department.clone(), reason: r.reason.clone() };
        self.change(
            p,
            "TransferCase",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn transition(&self, p: &Arc<Principal>, r: TransitionCaseRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "reason", &r.reason, true, MAX_REASON);
        let target = match CaseState::try_from(r.state) {
            Ok(CaseState::Unspecified) | Err(_) => {
                v.add("state", "required: a known case state");
                None
            }
            Ok(s) => Some(s),
        };
        let command = target.map(|target| Command::Transition { target, reason: r.reason.clone() });
        self.change(
            p,
            "TransitionCase",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            command,
        )
        .await
    }

    pub async fn first_response(
        &self,
        p: &Arc<Principal>,
        r: RecordFirstResponseRequest,
    ) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "note", &r.note, true, MAX_REASON);
        let command = Command::FirstResponse { note: r.note.clone() };
        self.change(
            p,
            "RecordFirstResponse",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn change_grade(&self, p: &Arc<Principal>, r: ChangeCaseGradeRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "reason", &r.reason, true, MAX_REASON);
        let grade = match Grade::try_from(r.grade) {
            Ok(Grade::Unspecified) | Err(_) => {
                v.add("grade", "required: a known grade");
                None
            }
            Ok(g) => Some(g),
        };
        let command = grade.map(|grade| Command::ChangeGrade { grade, reason: r.reason.clone() });
        self.change(
            p,
            "ChangeCaseGrade",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            command,
        )
        .await
    }

    pub async fn pause(&self, p: &Arc<Principal>, r: PauseCaseClocksRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        let reason = match PauseReason::try_from(r.reason) {
            Ok(PauseReason::Unspecified) | Err(_) => {
                v.add("reason", "required: a known pause reason");
                None
            }
            Ok(reason) => Some(reason),
        };
        check_text(&mut v, "note", &r.note, reason == Some(PauseReason::Other), MAX_REASON);
        let command = reason.map(|reason| Command::Pause { reason, note: r.note.clone() });
        self.change(
            p,
            "PauseCaseClocks",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            command,
        )
        .await
    }

    pub async fn resume(&self, p: &Arc<Principal>, r: ResumeCaseClocksRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "note", &r.note, false, MAX_REASON);
        let command = Command::Resume { note: r.note.clone() };
        self.change(
            p,
            "ResumeCaseClocks",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn extend(&self, p: &Arc<Principal>, r: ExtendDecisionDeadlineRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "reason", &r.reason, true, MAX_REASON);
        if r.total_days != 30 && r.total_days != 60 {
            v.add("total_days", "must be 30 (complex) or 60 (especially complex)");
        }
        let command = Command::Extend { total_days: r.total_days.unsigned_abs(), reason: r.reason.clone() };
        self.change(
            p,
            "ExtendDecisionDeadline",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn propose(&self, p: &Arc<Principal>, r: ProposeResolutionRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "grounds", &r.grounds, true, MAX_NOTICE);
        let kind = match ResolutionType::try_from(r.r#type) {
            Ok(ResolutionType::Unspecified) | Err(_) => {
                v.add("type", "required: a known resolution type");
                None
            }
            Ok(kind) => Some(kind),
        };
        if let Some(money) = &r.compensation {
            check_money(&mut v, money);
        }
        let command = kind.map(|kind| Command::Propose {
            kind,
            compensation: r.compensation.clone(),
            grounds: r.grounds.clone(),
        });
        self.change(
            p,
            "ProposeResolution",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            command,
        )
        .await
    }

    pub async fn approve(&self, p: &Arc<Principal>, r: ApproveResolutionRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "note", &r.note, false, MAX_REASON);
        let command = Command::Approve { note: r.note.clone() };
        self.change(
            p,
            "ApproveResolution",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn decide(&self, p: &Arc<Principal>, r: DecideCaseRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "decision_notice", &r.decision_notice, true, MAX_NOTICE);
        let command = Command::Decide { notice: r.decision_notice.clone() };
        self.change(
            p,
            "DecideCase",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn survey(&self, p: &Arc<Principal>, r: AnswerSurveyRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        if !(1..=5).contains(&r.score) {
            v.add("score", "must be 1 to 5");
        }
        check_text(&mut v, "comment", &r.comment, false, MAX_NOTICE);
        let command = Command::Survey { score: r.score, resolved: r.resolved, comment: r.comment.clone() };
        self.change(
            p,
            "AnswerSurvey",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn add_evidence(&self, p: &Arc<Principal>, r: AddEvidenceRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_name(&mut v, "kind", &r.kind);
        check_text(&mut v, "uri", &r.uri, true, MAX_REASON);
        if !r.uri.is_empty() && !r.uri.contains(':') {
            v.add("uri", "must be an absolute URI, e.g. s3://bucket/key");
        }
        if r.sha256.len() != 64 || !r.sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            v.add("sha256", "must be 64 lower-case hex digits");
        }
        check_text(&mut v, "description", &r.description, false, MAX_REASON);
        let command = Command::AddEvidence {
            uri: r.uri.clone(),
            sha256: r.sha256.clone(),
            kind: r.kind.clone(),
            description: r.description.clone(),
        };
        self.change(
            p,
            "AddEvidence",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }

    pub async fn link(&self, p: &Arc<Principal>, r: LinkCasesRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_text(&mut v, "reason", &r.reason, true, MAX_REASON);
        let kind = match LinkType::try_from(r.r#type) {
            Ok(k @ (LinkType::MergedInto | LinkType::Related | LinkType::Parent | LinkType::Child)) => Some(k),
            _ => {
                v.add("type", "must be MERGED_INTO, RELATED, PARENT or CHILD");
                None
            }
        };
        if r.other == r.name && !r.name.is_empty() {
            v.add("other", "a case cannot be linked to itself");
        }
        let command = kind.map(|kind| Command::Link { kind, reason: r.reason.clone() });
        self.change(
            p,
            "LinkCases",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: Some(&r.other) },
            v,
            command,
        )
        .await
    }

    pub async fn add_task(&self, p: &Arc<Principal>, r: AddCoordinationTaskRequest) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_name(&mut v, "department", &r.department);
        check_name(&mut v, "owner", &r.owner);
        check_text(&mut v, "description", &r.description, true, MAX_REASON);
        let due = r.due_time.as_ref().and_then(from_timestamp);
        if due.is_none() {
            v.add("due_time", "required");
        }
        let command = due.map(|due| Command::AddTask {
            department: r.department.clone(),
            owner: r.owner.clone(),
            description: r.description.clone(),
            due,
        });
        self.change(
            p,
            "AddCoordinationTask",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            command,
        )
        .await
    }

    pub async fn complete_task(
        &self,
        p: &Arc<Principal>,
        r: CompleteCoordinationTaskRequest,
    ) -> Result<Case, ServiceError> {
        let mut v = Violations::new();
        check_name(&mut v, "task_id", &r.task_id);
        check_text(&mut v, "outcome", &r.outcome, true, MAX_REASON);
        let command = Command::CompleteTask { task_id: r.task_id.clone(), outcome: r.outcome.clone() };
        self.change(
            p,
            "CompleteCoordinationTask",
            &r,
            Target { name: &r.name, etag: &r.etag, request_id: &r.request_id, other: None },
            v,
            Some(command),
        )
        .await
    }
}
