//! The mutating half of CaseService: each request is validated completely (every violation at
//! once) and turned into a workflow [`Command`], which the store applies with its audit
//! entries and events in one transaction.

use std::sync::Arc;

use prost::Message;
use redress_platform::error::Violations;
use redress_platform::names::{RequestId, Text, resource_id};
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::from_timestamp;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, AddEvidenceRequest, AnswerSurveyRequest, ApproveResolutionRequest, AssignCaseRequest,
    Case, CaseState, ChangeCaseGradeRequest, CompleteCoordinationTaskRequest, ConfirmNoConflictRequest,
    DecideCaseRequest, DecideCaseReviewRequest, ExtendDecisionDeadlineRequest, LinkCasesRequest, LinkType, Money,
    PauseCaseClocksRequest, PauseReason, ProblemScope, ProposeResolutionRequest, RecordFirstResponseRequest,
    RequestCaseReviewRequest, ResolutionType, ResumeCaseClocksRequest, ReviewOutcome, SetProblemScopeRequest,
    TransferCaseRequest, TransitionCaseRequest,
};
use redress_proto::redress::case::v1::{
    AddImplementationStepRequest, CompleteImplementationStepRequest, ContactDirection, RecordContactRequest,
};
use redress_proto::redress::common::v1::{Channel, Grade};
use sha2::{Digest, Sha256};

use super::CaseApi;
use crate::domain::workflow::{Command, NewContact, NewStep};
use crate::error::CaseError;
use crate::store::{RequestKey, Update};

/// Largest compensation accepted, in minor units (100 billion yuan).
const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

/// A request that changes a case: the case it names, how it guards against lost updates and
/// retries, and the workflow command it asks for.
pub(super) trait ChangeRequest: Message {
    /// Its gRPC method, part of the request id's fingerprint.
    const METHOD: &'static str;
    /// The case it changes, with its etag and request id.
    fn target(&self) -> Target<'_>;
    /// The command it asks for, recording every invalid field in `v`; `None` when a field the
    /// command needs is invalid.
    fn command(&self, v: &mut Violations) -> Option<Command>;
}

/// The parts every change request shares.
pub(super) struct Target<'a> {
    name: &'a str,
    /// The case version the caller read (AIP-154); empty to change whatever is current.
    etag: &'a str,
    /// Makes a retry return the first result (AIP-155); empty for no deduplication.
    request_id: &'a str,
    /// The other case of a link.
    other: Option<&'a str>,
}

impl CaseApi {
    /// Validates a change request, then runs its command through the store.
    pub(super) async fn change<R: ChangeRequest>(
        &self,
        principal: &Arc<Principal>,
        request: R,
    ) -> Result<Case, CaseError> {
        principal.require(Permission::CasesWrite)?;
        let mut v = Violations::new();
        let command = request.command(&mut v);
        let target = request.target();
        let id = resource_id(&mut v, "name", target.name, "cases");
        let other = target.other.map(|other| resource_id(&mut v, "other", other, "cases"));
        let expected_version = version_of(&mut v, target.etag);
        let request_id = RequestId::parse_optional(&mut v, "request_id", target.request_id);
        v.into_result()?;
        let (Some(id), Some(command)) = (id, command) else {
            return Err(CaseError::Internal(anyhow::anyhow!("a valid request produced no command")));
        };
        // Kept, announced and audited only with the identifiers in its text masked (D-PII-5).
        let command = crate::domain::free_text::masked(command);
        let command = self.linted(principal, id, command).await?;
        let update = Update {
            id: id.to_owned(),
            other: other.flatten().map(str::to_owned),
            expected_version,
            request: request_id.map(|id| request_key(&id, principal, R::METHOD, &request)),
            principal: principal.clone(),
            command,
        };
        self.store()?.update(update).await
    }
}

impl CaseApi {
    /// A change that sends the complainant a reply, with the reply linted at the knowledge base
    /// for the case's institution; any other change as it is. The case is read first for its
    /// organisation unit: one the caller may not see is not found, and is not linted.
    async fn linted(&self, principal: &Principal, id: &str, command: Command) -> Result<Command, CaseError> {
        let Some((kind, text)) = crate::lint::reply_of(&command) else { return Ok(command) };
        let case = self.store()?.get(id).await?;
        let case = case.filter(|c| principal.covers(&c.org_unit));
        let Some(case) = case else { return Err(CaseError::NotFound { name: format!("cases/{id}") }) };
        let reply = self.linter.lint(text, kind, &case.org_unit).await;
        Ok(Command::Linted { command: Box::new(command), reply: Box::new(reply) })
    }
}

/// The request id with a fingerprint of the caller, the method and the request, so that a
/// retry is told apart from the same id reused for another request.
fn request_key(id: &RequestId, principal: &Principal, method: &str, request: &impl Message) -> RequestKey {
    let mut hasher = Sha256::new();
    for part in [principal.subject.as_bytes(), method.as_bytes(), &request.encode_to_vec()] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    RequestKey { id: id.as_str().to_owned(), fingerprint: hex::encode(hasher.finalize()) }
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

/// The value of a required proto enum field (`what` names its kind), recording a violation
/// when it is unset or unknown.
fn required<E: TryFrom<i32> + Default + PartialEq>(
    v: &mut Violations,
    field: &str,
    what: &str,
    value: i32,
) -> Option<E> {
    match E::try_from(value) {
        Ok(known) if known != E::default() => Some(known),
        _ => {
            v.add(field, format!("required: a known {what}"));
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

/// The [`ChangeRequest`] method name and target of a request that names one case in `name`,
/// with `etag` and `request_id`.
macro_rules! one_case {
    ($method:literal) => {
        const METHOD: &'static str = $method;

        fn target(&self) -> Target<'_> {
            Target { name: &self.name, etag: &self.etag, request_id: &self.request_id, other: None }
        }
    };
}

impl ChangeRequest for AssignCaseRequest {
    one_case!("AssignCase");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Name.check(v, "assignee", &self.assignee, true);
        Text::Name.check(v, "department", &self.department, true);
        Text::Name.check(v, "assignee_staff_id", &self.assignee_staff_id, false);
        Some(Command::Assign {
            assignee: self.assignee.clone(),
            department: self.department.clone(),
            assignee_staff_id: self.assignee_staff_id.trim().to_owned(),
        })
    }
}

impl ChangeRequest for TransferCaseRequest {
    one_case!("TransferCase");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Name.check(v, "to_department", &self.to_department, true);
        Text::Reason.check(v, "reason", &self.reason, true);
        Text::Name.check(v, "to_assignee", &self.to_assignee, false);
        Text::Name.check(v, "to_assignee_staff_id", &self.to_assignee_staff_id, false);
        if self.to_assignee.is_empty() && !self.to_assignee_staff_id.is_empty() {
            v.add("to_assignee_staff_id", "names the employee id of to_assignee, which is not given");
        }
        Some(Command::Transfer {
            to_department: self.to_department.clone(),
            reason: self.reason.clone(),
            to_assignee: self.to_assignee.clone(),
            to_assignee_staff_id: self.to_assignee_staff_id.trim().to_owned(),
        })
    }
}

impl ChangeRequest for TransitionCaseRequest {
    one_case!("TransitionCase");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "reason", &self.reason, true);
        let target: Option<CaseState> = required(v, "state", "case state", self.state);
        target.map(|target| Command::Transition { target, reason: self.reason.clone() })
    }
}

impl ChangeRequest for RecordFirstResponseRequest {
    one_case!("RecordFirstResponse");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "note", &self.note, true);
        let channel = match Channel::try_from(self.channel) {
            Ok(channel) => channel,
            Err(_) => {
                v.add("channel", "must be a known channel");
                Channel::Unspecified
            }
        };
        Some(Command::FirstResponse { note: self.note.clone(), channel })
    }
}

impl ChangeRequest for ChangeCaseGradeRequest {
    one_case!("ChangeCaseGrade");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "reason", &self.reason, true);
        let grade: Option<Grade> = required(v, "grade", "grade", self.grade);
        grade.map(|grade| Command::ChangeGrade { grade, reason: self.reason.clone() })
    }
}

impl ChangeRequest for PauseCaseClocksRequest {
    one_case!("PauseCaseClocks");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        let reason: Option<PauseReason> = required(v, "reason", "pause reason", self.reason);
        // A pause for another reason says which.
        Text::Reason.check(v, "note", &self.note, reason == Some(PauseReason::Other));
        reason.map(|reason| Command::Pause { reason, note: self.note.clone() })
    }
}

impl ChangeRequest for ResumeCaseClocksRequest {
    one_case!("ResumeCaseClocks");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "note", &self.note, false);
        Some(Command::Resume { note: self.note.clone() })
    }
}

impl ChangeRequest for ExtendDecisionDeadlineRequest {
    one_case!("ExtendDecisionDeadline");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "reason", &self.reason, true);
        if self.total_days != 30 && self.total_days != 60 {
            v.add("total_days", "must be 30 (complex) or 60 (especially complex)");
        }
        Some(Command::Extend { total_days: self.total_days.unsigned_abs(), reason: self.reason.clone() })
    }
}

impl ChangeRequest for ProposeResolutionRequest {
    one_case!("ProposeResolution");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Notice.check(v, "grounds", &self.grounds, true);
        let kind: Option<ResolutionType> = required(v, "type", "resolution type", self.r#type);
        if let Some(money) = &self.compensation {
            check_money(v, money);
        }
        kind.map(|kind| Command::Propose {
            kind,
            compensation: self.compensation.clone(),
            grounds: self.grounds.clone(),
        })
    }
}

impl ChangeRequest for ApproveResolutionRequest {
    one_case!("ApproveResolution");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "note", &self.note, false);
        Some(Command::Approve { note: self.note.clone() })
    }
}

impl ChangeRequest for DecideCaseRequest {
    one_case!("DecideCase");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Notice.check(v, "decision_notice", &self.decision_notice, true);
        Some(Command::Decide { notice: self.decision_notice.clone() })
    }
}

impl ChangeRequest for AnswerSurveyRequest {
    one_case!("AnswerSurvey");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        if !(1..=5).contains(&self.score) {
            v.add("score", "must be 1 to 5");
        }
        Text::Notice.check(v, "comment", &self.comment, false);
        Some(Command::Survey { score: self.score, resolved: self.resolved, comment: self.comment.clone() })
    }
}

impl ChangeRequest for AddEvidenceRequest {
    one_case!("AddEvidence");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Name.check(v, "kind", &self.kind, true);
        Text::Uri.check(v, "uri", &self.uri, true);
        if !self.uri.is_empty() && !self.uri.contains(':') {
            v.add("uri", "must be an absolute URI, e.g. s3://bucket/key");
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            v.add("sha256", "must be 64 lower-case hex digits");
        }
        Text::Reason.check(v, "description", &self.description, false);
        Some(Command::AddEvidence {
            uri: self.uri.clone(),
            sha256: self.sha256.clone(),
            kind: self.kind.clone(),
            description: self.description.clone(),
        })
    }
}

impl ChangeRequest for LinkCasesRequest {
    const METHOD: &'static str = "LinkCases";

    fn target(&self) -> Target<'_> {
        Target { name: &self.name, etag: &self.etag, request_id: &self.request_id, other: Some(&self.other) }
    }

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "reason", &self.reason, true);
        let kind = match LinkType::try_from(self.r#type) {
            Ok(k @ (LinkType::MergedInto | LinkType::Related | LinkType::Parent | LinkType::Child)) => Some(k),
            _ => {
                v.add("type", "must be MERGED_INTO, RELATED, PARENT or CHILD");
                None
            }
        };
        if self.other == self.name && !self.name.is_empty() {
            v.add("other", "a case cannot be linked to itself");
        }
        kind.map(|kind| Command::Link { kind, reason: self.reason.clone() })
    }
}

impl ChangeRequest for AddCoordinationTaskRequest {
    one_case!("AddCoordinationTask");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Name.check(v, "department", &self.department, true);
        Text::Name.check(v, "owner", &self.owner, true);
        Text::Name.check(v, "owner_staff_id", &self.owner_staff_id, false);
        Text::Reason.check(v, "description", &self.description, true);
        let due = self.due_time.as_ref().and_then(from_timestamp);
        if due.is_none() {
            v.add("due_time", "required");
        }
        due.map(|due| Command::AddTask {
            department: self.department.clone(),
            owner: self.owner.clone(),
            owner_staff_id: self.owner_staff_id.trim().to_owned(),
            description: self.description.clone(),
            due,
        })
    }
}

impl ChangeRequest for CompleteCoordinationTaskRequest {
    one_case!("CompleteCoordinationTask");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Name.check(v, "task_id", &self.task_id, true);
        Text::Reason.check(v, "outcome", &self.outcome, true);
        Some(Command::CompleteTask { task_id: self.task_id.clone(), outcome: self.outcome.clone() })
    }
}

impl ChangeRequest for RequestCaseReviewRequest {
    one_case!("RequestCaseReview");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "reason", &self.reason, true);
        Some(Command::RequestReview { reason: self.reason.clone() })
    }
}

impl ChangeRequest for DecideCaseReviewRequest {
    one_case!("DecideCaseReview");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Notice.check(v, "decision_notice", &self.decision_notice, true);
        let outcome: Option<ReviewOutcome> = required(v, "outcome", "review outcome", self.outcome);
        outcome.map(|outcome| Command::DecideReview { outcome, notice: self.decision_notice.clone() })
    }
}

impl ChangeRequest for ConfirmNoConflictRequest {
    one_case!("ConfirmNoConflict");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "note", &self.note, true);
        Some(Command::ConfirmNoConflict { note: self.note.clone() })
    }
}

impl ChangeRequest for SetProblemScopeRequest {
    one_case!("SetProblemScope");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "reason", &self.reason, true);
        let scope: Option<ProblemScope> = required(v, "scope", "problem scope", self.scope);
        scope.map(|scope| Command::SetProblemScope { scope, reason: self.reason.clone() })
    }
}

/// An optional timestamp field: `None` when unset, recording a violation when out of range.
fn optional_time(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let value = value?;
    let time = from_timestamp(value);
    if time.is_none() {
        v.add(field, "is not a valid time");
    }
    time
}

impl ChangeRequest for RecordContactRequest {
    one_case!("RecordContact");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        let channel: Option<Channel> = required(v, "channel", "channel", self.channel);
        let direction: Option<ContactDirection> = required(v, "direction", "contact direction", self.direction);
        // Staff wording of what was said; the complainant's identity is the complaint's.
        Text::Reason.check(v, "summary", &self.summary, true);
        let contact_time = optional_time(v, "contact_time", self.contact_time.as_ref());
        let next_contact_due = optional_time(v, "next_contact_due_time", self.next_contact_due_time.as_ref());
        Some(Command::RecordContact(NewContact {
            channel: channel?,
            direction: direction?,
            contact_time,
            summary: self.summary.clone(),
            next_contact_due,
        }))
    }
}

impl ChangeRequest for AddImplementationStepRequest {
    one_case!("AddImplementationStep");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Reason.check(v, "description", &self.description, true);
        Text::Name.check(v, "owner", &self.owner, true);
        Text::Name.check(v, "owner_staff_id", &self.owner_staff_id, false);
        Text::Name.check(v, "department", &self.department, true);
        let due = self.due_time.as_ref().and_then(from_timestamp);
        if due.is_none() {
            v.add("due_time", "required");
        }
        Some(Command::AddImplementationStep(NewStep {
            description: self.description.clone(),
            owner: self.owner.clone(),
            owner_staff_id: self.owner_staff_id.trim().to_owned(),
            department: self.department.clone(),
            due: due?,
        }))
    }
}

impl ChangeRequest for CompleteImplementationStepRequest {
    one_case!("CompleteImplementationStep");

    fn command(&self, v: &mut Violations) -> Option<Command> {
        Text::Name.check(v, "step_id", &self.step_id, true);
        Text::Reason.check(v, "outcome", &self.outcome, true);
        Some(Command::CompleteImplementationStep { step_id: self.step_id.clone(), outcome: self.outcome.clone() })
    }
}
