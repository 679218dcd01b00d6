//! The case lifecycle as an enforced state machine (D-CASE, D-SLA): every change to a case is
//! a [`Command`] that either applies completely, with its audit entries and events, or is
//! refused naming the state the case is in.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use redress_calendar::Period;
use redress_platform::ServiceError;
use redress_platform::events::NewEvent;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseChanged, CaseClosed, CaseLink, CaseMeasures, CaseState, ClockKind, ClockPause, ClockStatus,
    CoordinationTask, CoordinationTaskOverdue, DeadlineAtRisk, DeadlineBreached, DecisionDeadlineExtended,
    EvidenceReference, LinkType, Money, PauseReason, ReminderLevel, Resolution, ResolutionType, Survey, SurveyAnswered,
    Transfer,
};
use redress_proto::redress::common::v1::Grade;

use super::clock::{self, Clocks, instant};

/// What the caller asks of a case. Inputs are validated by the API before they get here;
/// what depends on the case (its state, clocks, people) is checked here.
#[derive(Debug, Clone)]
pub enum Command {
    Assign {
        assignee: String,
        department: String,
    },
    Transfer {
        to_department: String,
        reason: String,
    },
    Transition {
        target: CaseState,
        reason: String,
    },
    FirstResponse {
        note: String,
    },
    ChangeGrade {
        grade: Grade,
        reason: String,
    },
    Pause {
        reason: PauseReason,
        note: String,
    },
    Resume {
        note: String,
    },
    Extend {
        total_days: u32,
        reason: String,
    },
    Propose {
        kind: ResolutionType,
        compensation: Option<Money>,
        grounds: String,
    },
    Approve {
        note: String,
    },
    Decide {
        notice: String,
    },
    Survey {
        score: i32,
        resolved: bool,
        comment: String,
    },
    AddEvidence {
        uri: String,
        sha256: String,
        kind: String,
        description: String,
    },
    AddTask {
        department: String,
        owner: String,
        description: String,
        due: DateTime<Utc>,
    },
    CompleteTask {
        task_id: String,
        outcome: String,
    },
    /// Links this case to `other` (loaded with it); `kind` is how this case relates.
    Link {
        kind: LinkType,
        reason: String,
    },
}

/// Who acts and under which rules.
pub struct Context<'a> {
    pub principal: &'a Principal,
    pub now: DateTime<Utc>,
    pub rules: &'a Rules,
}

/// The workflow's configuration: clocks and authority limits.
#[derive(Debug, Clone)]
pub struct Rules {
    pub clocks: Clocks,
    /// Highest compensation (minor units) each role may grant without approval (D-CASE-3).
    pub authority_limits: HashMap<String, i64>,
}

impl Rules {
    /// The highest compensation the principal may grant: the largest limit of its roles.
    pub fn authority_limit(&self, principal: &Principal) -> i64 {
        principal.roles.iter().filter_map(|r| self.authority_limits.get(r)).copied().max().unwrap_or(0)
    }
}

/// What a change wrote: audit entries (action, details) and events, in order.
#[derive(Debug, Default)]
pub struct Effects {
    pub audit: Vec<(String, BTreeMap<String, String>)>,
    pub events: Vec<NewEvent>,
    /// Events besides CaseChanged, built with the final case once the change is complete.
    specific: Vec<Specific>,
}

#[derive(Debug)]
enum Specific {
    Extended { total_days: u32, reason: String, approved_by: String },
    SurveyAnswered,
    Closed { reason: String },
}

impl Effects {
    fn record(&mut self, action: &str, details: BTreeMap<String, String>) {
        self.audit.push((action.to_owned(), details));
    }
}

fn state_of(case: &Case) -> CaseState {
    CaseState::try_from(case.state).unwrap_or(CaseState::Unspecified)
}

fn is_terminal(state: CaseState) -> bool {
    matches!(state, CaseState::Closed | CaseState::Withdrawn)
}

/// FAILED_PRECONDITION naming the current state.
fn wrong_state(case: &Case, what: &str, allowed: &[CaseState]) -> ServiceError {
    let current = state_of(case).as_str_name();
    let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str_name()).collect();
    ServiceError::FailedPrecondition {
        reason: "INVALID_CASE_STATE",
        message: format!("{what} is not allowed in state {current}; it needs one of {}", allowed.join(", ")),
        metadata: HashMap::from([
            ("current_state".to_owned(), current.to_owned()),
            ("allowed_states".to_owned(), allowed.join(",")),
        ]),
    }
}

fn require_state(case: &Case, what: &str, allowed: &[CaseState]) -> Result<(), ServiceError> {
    if allowed.contains(&state_of(case)) { Ok(()) } else { Err(wrong_state(case, what, allowed)) }
}

fn require_open(case: &Case, what: &str) -> Result<(), ServiceError> {
    if is_terminal(state_of(case)) { Err(wrong_state(case, what, OPEN_STATES)) } else { Ok(()) }
}

const OPEN_STATES: &[CaseState] = &[
    CaseState::Accepted,
    CaseState::Assigned,
    CaseState::Investigating,
    CaseState::ResolutionProposed,
    CaseState::Decided,
    CaseState::FollowUp,
    CaseState::Reopened,
    CaseState::UnderReview,
    CaseState::InMediation,
];

fn details<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn set_state(case: &mut Case, state: CaseState) {
    if case.state != state as i32 {
        case.previous_state = case.state;
        case.state = state as i32;
    }
}

fn pending_handoff(case: &mut Case) -> Option<&mut Transfer> {
    case.transfers.last_mut().filter(|t| t.accept_time.is_none())
}

/// Applies `command` to `case` (and to `other` for links). On error nothing may be written:
/// the caller discards both cases.
pub fn execute(
    case: &mut Case,
    other: Option<&mut Case>,
    command: Command,
    ctx: &Context<'_>,
) -> Result<Effects, ServiceError> {
    let previous_state = case.state;
    let mut fx = Effects::default();
    let actor = ctx.principal.subject.clone();
    let now = ctx.now;
    let clocks = &ctx.rules.clocks;
    let (action, detail) = match command {
        Command::Assign { assignee, department } => {
            let allowed = [CaseState::Accepted, CaseState::Assigned, CaseState::Investigating, CaseState::Reopened];
            require_state(case, "assigning", &allowed)?;
            if case.complained_staff_ids.iter().any(|s| s == &assignee) {
                return Err(ServiceError::FailedPrecondition {
                    reason: "CONFLICT_OF_INTEREST",
                    message: format!("{assignee} is the subject of this complaint and cannot handle it (回避)"),
                    metadata: HashMap::from([("assignee".to_owned(), assignee)]),
                });
            }
            let mut d = details([("assignee", assignee.clone()), ("department", department.clone())]);
            if let Some(handoff) = pending_handoff(case) {
                if handoff.to_department != department {
                    return Err(ServiceError::FailedPrecondition {
                        reason: "HANDOFF_PENDING",
                        message: format!(
                            "the case was transferred to {}; that department assigns it",
                            handoff.to_department
                        ),
                        metadata: HashMap::from([("to_department".to_owned(), handoff.to_department.clone())]),
                    });
                }
                handoff.accept_time = Some(to_timestamp(now));
                clock::meet(case, ClockKind::Handoff, now);
                d.insert("handoff".to_owned(), "accepted".to_owned());
            }
            case.assignee = assignee.clone();
            case.department = department;
            if case.first_contact_owner.is_empty() {
                case.first_contact_owner = assignee;
            }
            if matches!(state_of(case), CaseState::Accepted | CaseState::Reopened) {
                set_state(case, CaseState::Assigned);
            }
            ("case.assigned", d)
        }
        Command::Transfer { to_department, reason } => {
            let allowed = [CaseState::Accepted, CaseState::Assigned, CaseState::Investigating, CaseState::Reopened];
            require_state(case, "transferring", &allowed)?;
            if case.department == to_department {
                return Err(ServiceError::invalid("to_department", "the case is already in this department"));
            }
            let handoff_due = clocks.calculator.due(now, clocks.handoff).ok();
            case.transfers.push(Transfer {
                from_department: case.department.clone(),
                to_department: to_department.clone(),
                reason: reason.clone(),
                transferred_by: actor.clone(),
                transfer_time: Some(to_timestamp(now)),
                handoff_due_time: handoff_due.map(to_timestamp),
                accept_time: None,
            });
            let from = std::mem::replace(&mut case.department, to_department.clone());
            case.assignee.clear();
            set_state(case, CaseState::Accepted);
            clocks.start(case, ClockKind::Handoff, clocks.handoff, now);
            (
                "case.transferred",
                details([("from_department", from), ("to_department", to_department), ("reason", reason)]),
            )
        }
        Command::Transition { target, reason } => {
            transition(case, target, &reason, ctx, &mut fx)?;
            ("case.transitioned", details([("to", target.as_str_name().to_owned()), ("reason", reason)]))
        }
        Command::FirstResponse { note } => {
            require_open(case, "recording the first response")?;
            if case.first_response_time.is_some() {
                return Err(ServiceError::failed_precondition(
                    "FIRST_RESPONSE_RECORDED",
                    "the first response was already recorded",
                ));
            }
            case.first_response_time = Some(to_timestamp(now));
            clock::meet(case, ClockKind::FirstResponse, now);
            ("case.first_response", details([("note", note)]))
        }
        Command::ChangeGrade { grade, reason } => {
            require_open(case, "changing the grade")?;
            if case.grade == grade as i32 {
                return Err(ServiceError::invalid("grade", "the case already has this grade"));
            }
            let from = Grade::try_from(case.grade).unwrap_or(Grade::Unspecified);
            case.grade = grade as i32;
            let targets = clocks.policy.targets(clock::grade_of(grade as i32));
            clocks.set_length(case, ClockKind::FirstResponse, targets.first_response);
            clocks.set_length(case, ClockKind::Resolution, targets.resolution);
            (
                "case.grade_changed",
                details([
                    ("from", from.as_str_name().to_owned()),
                    ("to", grade.as_str_name().to_owned()),
                    ("reason", reason),
                ]),
            )
        }
        Command::Pause { reason, note } => {
            require_open(case, "pausing the clocks")?;
            if clock::is_paused(case) {
                return Err(ServiceError::failed_precondition("CLOCKS_PAUSED", "the clocks are already paused"));
            }
            if !case.clocks.iter().any(|c| c.status == ClockStatus::Running as i32) {
                return Err(ServiceError::failed_precondition("NO_RUNNING_CLOCK", "no clock is running"));
            }
            case.pauses.push(ClockPause {
                reason: reason as i32,
                note: note.clone(),
                pause_time: Some(to_timestamp(now)),
                paused_by: actor.clone(),
                resume_time: None,
                resumed_by: String::new(),
            });
            clocks.recompute_all(case);
            ("clocks.paused", details([("reason", reason.as_str_name().to_owned()), ("note", note)]))
        }
        Command::Resume { note } => {
            let Some(pause) = case.pauses.last_mut().filter(|p| p.resume_time.is_none()) else {
                return Err(ServiceError::failed_precondition("CLOCKS_NOT_PAUSED", "the clocks are not paused"));
            };
            pause.resume_time = Some(to_timestamp(now));
            pause.resumed_by = actor.clone();
            clocks.recompute_all(case);
            ("clocks.resumed", details([("note", note)]))
        }
        Command::Extend { total_days, reason } => {
            require_open(case, "extending the decision deadline")?;
            let needed = if total_days > 30 { Permission::CasesExtendSpecial } else { Permission::CasesExtend };
            ctx.principal.require(needed)?;
            let current = clock::clock(case, ClockKind::RegulatoryDecision).cloned().unwrap_or_default();
            if current.status == ClockStatus::Met as i32 || current.status == ClockStatus::Stopped as i32 {
                return Err(ServiceError::failed_precondition(
                    "DECISION_CLOCK_DONE",
                    "the regulatory decision clock is no longer running",
                ));
            }
            if i64::from(total_days) <= i64::from(current.length) {
                return Err(ServiceError::invalid(
                    "total_days",
                    format!("must be longer than the current {} days", current.length),
                ));
            }
            clocks.set_length(case, ClockKind::RegulatoryDecision, Period::CalendarDays(total_days));
            fx.specific.push(Specific::Extended { total_days, reason: reason.clone(), approved_by: actor.clone() });
            ("decision.extended", details([("total_days", total_days.to_string()), ("reason", reason)]))
        }
        Command::Propose { kind, compensation, grounds } => {
            let allowed = [
                CaseState::Investigating,
                CaseState::ResolutionProposed,
                CaseState::UnderReview,
                CaseState::InMediation,
            ];
            require_state(case, "proposing a resolution", &allowed)?;
            let amount = compensation.as_ref().map_or(0, |m| m.amount_minor);
            let approval_required = amount > ctx.rules.authority_limit(ctx.principal);
            let currency = compensation.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default();
            case.resolution = Some(Resolution {
                r#type: kind as i32,
                compensation,
                grounds: grounds.clone(),
                proposed_by: actor.clone(),
                propose_time: Some(to_timestamp(now)),
                approval_required,
                ..Resolution::default()
            });
            set_state(case, CaseState::ResolutionProposed);
            (
                "resolution.proposed",
                details([
                    ("type", kind.as_str_name().to_owned()),
                    ("compensation_minor", amount.to_string()),
                    ("currency", currency),
                    ("approval_required", approval_required.to_string()),
                    ("grounds", grounds),
                ]),
            )
        }
        Command::Approve { note } => {
            require_state(case, "approving a resolution", &[CaseState::ResolutionProposed])?;
            ctx.principal.require(Permission::CasesApprove)?;
            let limit = ctx.rules.authority_limit(ctx.principal);
            let resolution = case
                .resolution
                .as_mut()
                .ok_or_else(|| ServiceError::failed_precondition("NO_RESOLUTION", "there is no proposed resolution"))?;
            if !resolution.approval_required || !resolution.approved_by.is_empty() {
                return Err(ServiceError::failed_precondition(
                    "APPROVAL_NOT_NEEDED",
                    "the proposed resolution needs no (further) approval",
                ));
            }
            if resolution.proposed_by == actor {
                return Err(ServiceError::PermissionDenied("a resolution cannot be approved by its proposer".into()));
            }
            let amount = resolution.compensation.as_ref().map_or(0, |m| m.amount_minor);
            if amount > limit {
                return Err(ServiceError::PermissionDenied(format!(
                    "the compensation ({amount}) exceeds the approver's authority limit ({limit})"
                )));
            }
            resolution.approved_by = actor.clone();
            resolution.approve_time = Some(to_timestamp(now));
            ("resolution.approved", details([("note", note)]))
        }
        Command::Decide { notice } => {
            require_state(case, "deciding", &[CaseState::ResolutionProposed])?;
            let resolution = case
                .resolution
                .as_mut()
                .ok_or_else(|| ServiceError::failed_precondition("NO_RESOLUTION", "there is no proposed resolution"))?;
            if resolution.approval_required && resolution.approved_by.is_empty() {
                return Err(ServiceError::failed_precondition(
                    "APPROVAL_REQUIRED",
                    "the compensation exceeds the proposer's authority limit; it must be approved first",
                ));
            }
            resolution.decided_by = actor.clone();
            resolution.decision_notice = notice.clone();
            let kind = ResolutionType::try_from(resolution.r#type).unwrap_or(ResolutionType::Unspecified);
            case.decide_time = Some(to_timestamp(now));
            if case.first_response_time.is_none() {
                // The decision notice is a response to the complainant too.
                case.first_response_time = Some(to_timestamp(now));
            }
            for kind in [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::RegulatoryDecision] {
                clock::meet(case, kind, now);
            }
            set_state(case, CaseState::Decided);
            ("case.decided", details([("type", kind.as_str_name().to_owned()), ("notice", notice)]))
        }
        Command::Survey { score, resolved, comment } => {
            require_state(case, "answering the survey", &[CaseState::Decided, CaseState::FollowUp])?;
            if case.survey.is_some() {
                return Err(ServiceError::failed_precondition("SURVEY_ANSWERED", "the survey was already answered"));
            }
            case.survey = Some(Survey { score, resolved, comment, answer_time: Some(to_timestamp(now)) });
            set_state(case, CaseState::FollowUp);
            fx.specific.push(Specific::SurveyAnswered);
            ("survey.answered", details([("score", score.to_string()), ("resolved", resolved.to_string())]))
        }
        Command::AddEvidence { uri, sha256, kind, description } => {
            if state_of(case) == CaseState::Withdrawn {
                return Err(wrong_state(case, "adding evidence", OPEN_STATES));
            }
            if case.evidence.iter().any(|e| e.sha256 == sha256 && e.uri == uri) {
                return Err(ServiceError::AlreadyExists {
                    reason: "EVIDENCE_EXISTS",
                    message: "this evidence is already referenced".to_owned(),
                });
            }
            case.evidence.push(EvidenceReference {
                uri: uri.clone(),
                sha256: sha256.clone(),
                kind: kind.clone(),
                description,
                added_by: actor.clone(),
                add_time: Some(to_timestamp(now)),
            });
            ("evidence.added", details([("uri", uri), ("sha256", sha256), ("kind", kind)]))
        }
        Command::AddTask { department, owner, description, due } => {
            require_open(case, "adding a coordination task")?;
            if due <= now {
                return Err(ServiceError::invalid("due_time", "must be in the future"));
            }
            let task_id = format!("t{}", case.coordination_tasks.len() + 1);
            case.coordination_tasks.push(CoordinationTask {
                task_id: task_id.clone(),
                department: department.clone(),
                owner: owner.clone(),
                description,
                due_time: Some(to_timestamp(due)),
                complete_time: None,
                outcome: String::new(),
                created_by: actor.clone(),
                overdue: false,
            });
            (
                "task.added",
                details([
                    ("task_id", task_id),
                    ("department", department),
                    ("owner", owner),
                    ("due_time", due.to_rfc3339()),
                ]),
            )
        }
        Command::CompleteTask { task_id, outcome } => {
            let task = case
                .coordination_tasks
                .iter_mut()
                .find(|t| t.task_id == task_id)
                .ok_or_else(|| ServiceError::invalid("task_id", "no such task on this case"))?;
            if task.complete_time.is_some() {
                return Err(ServiceError::failed_precondition("TASK_COMPLETED", "the task is already completed"));
            }
            task.complete_time = Some(to_timestamp(now));
            task.outcome = outcome.clone();
            ("task.completed", details([("task_id", task_id), ("outcome", outcome)]))
        }
        Command::Link { kind, reason } => {
            let other = other.ok_or_else(|| ServiceError::invalid("other", "the other case is required"))?;
            link(case, other, kind, &reason, ctx)?;
            ("case.linked", details([("type", kind.as_str_name().to_owned()), ("reason", reason)]))
        }
    };
    finish(case, previous_state, action, detail, &actor, ctx.rules, &mut fx);
    Ok(fx)
}

/// Records the change in the audit trail and announces it; events carry the case as changed.
fn finish(
    case: &Case,
    previous_state: i32,
    action: &str,
    detail: BTreeMap<String, String>,
    actor: &str,
    rules: &Rules,
    fx: &mut Effects,
) {
    let mut audit_details = detail.clone();
    if previous_state != case.state {
        audit_details.insert("from_state".to_owned(), name_of(previous_state));
        audit_details.insert("to_state".to_owned(), name_of(case.state));
    }
    fx.record(action, audit_details);
    let changed = CaseChanged {
        case: Some(case.clone()),
        action: action.to_owned(),
        actor: actor.to_owned(),
        previous_state,
        details: detail.into_iter().collect(),
    };
    fx.events.push(NewEvent::new(case.name.clone(), case.org_unit.clone(), &changed));
    for specific in std::mem::take(&mut fx.specific) {
        let event = match specific {
            Specific::Extended { total_days, reason, approved_by } => {
                let due_time = clock::clock(case, ClockKind::RegulatoryDecision).and_then(|c| c.due_time);
                let complainant_notice = extension_notice(case, total_days, &due_time, &reason, rules);
                NewEvent::new(
                    case.name.clone(),
                    case.org_unit.clone(),
                    &DecisionDeadlineExtended {
                        case: Some(case.clone()),
                        total_days: i32::try_from(total_days).unwrap_or(i32::MAX),
                        due_time,
                        reason,
                        approved_by,
                        complainant_notice,
                    },
                )
            }
            Specific::SurveyAnswered => NewEvent::new(
                case.name.clone(),
                case.org_unit.clone(),
                &SurveyAnswered {
                    case: Some(case.clone()),
                    survey: case.survey.clone(),
                    measures: Some(measures(case)),
                },
            ),
            Specific::Closed { reason } => NewEvent::new(
                case.name.clone(),
                case.org_unit.clone(),
                &CaseClosed { case: Some(case.clone()), reason, measures: Some(measures(case)) },
            ),
        };
        fx.events.push(event);
    }
}

/// The notice telling the complainant of an extension (D-SLA-2), in zh-CN.
fn extension_notice(
    case: &Case,
    total_days: u32,
    due: &Option<prost_types::Timestamp>,
    reason: &str,
    rules: &Rules,
) -> String {
    let tz = rules.clocks.calculator.time_zone();
    // The due instant is 24:00 of the last day, i.e. the start of the next local date.
    let last_day =
        instant(due).map(|d| (d.with_timezone(&tz) - chrono::TimeDelta::days(1)).format("%Y年%m月%d日").to_string());
    match last_day {
        Some(day) => format!(
            "您的投诉（编号 {}）情况复杂，处理期限依规延长至 {total_days} 日，我们将于 {day} 24 时前作出处理决定。延长原因：{reason}",
            case.case_number
        ),
        None => format!(
            "您的投诉（编号 {}）情况复杂，处理期限依规延长至 {total_days} 日，具体日期将另行告知。延长原因：{reason}",
            case.case_number
        ),
    }
}

fn name_of(state: i32) -> String {
    CaseState::try_from(state).unwrap_or(CaseState::Unspecified).as_str_name().to_owned()
}

fn transition(
    case: &mut Case,
    target: CaseState,
    reason: &str,
    ctx: &Context<'_>,
    fx: &mut Effects,
) -> Result<(), ServiceError> {
    let now = ctx.now;
    let clocks = &ctx.rules.clocks;
    match target {
        CaseState::Investigating => {
            let allowed = [
                CaseState::Assigned,
                CaseState::ResolutionProposed,
                CaseState::UnderReview,
                CaseState::Reopened,
                CaseState::InMediation,
            ];
            require_state(case, "moving to investigation", &allowed)?;
            if case.assignee.is_empty() {
                return Err(ServiceError::failed_precondition(
                    "UNASSIGNED",
                    "the case has no handler; assign it first",
                ));
            }
            if state_of(case) == CaseState::ResolutionProposed {
                // The proposal is dropped; a new one will be needed.
                case.resolution = None;
            }
        }
        CaseState::FollowUp => require_state(case, "starting the follow-up", &[CaseState::Decided])?,
        CaseState::UnderReview => {
            require_state(case, "a review", &[CaseState::Decided, CaseState::FollowUp])?;
            let decided = instant(&case.decide_time)
                .ok_or_else(|| ServiceError::failed_precondition("NOT_DECIDED", "the case has no decision"))?;
            // Review on request within 30 days of the decision (D-SLA-2), counted like any
            // other day period.
            let window = clocks.calculator.due(decided, Period::CalendarDays(30)).map_err(anyhow::Error::from)?;
            if now >= window {
                return Err(ServiceError::failed_precondition(
                    "REVIEW_WINDOW_PASSED",
                    format!("a review must be requested within 30 days of the decision (until {window})"),
                ));
            }
            case.review_count += 1;
            clocks.start(
                case,
                ClockKind::Resolution,
                clocks.policy.targets(clock::grade_of(case.grade)).resolution,
                now,
            );
        }
        CaseState::InMediation => {
            let allowed = [
                CaseState::Investigating,
                CaseState::ResolutionProposed,
                CaseState::Decided,
                CaseState::FollowUp,
                CaseState::UnderReview,
            ];
            require_state(case, "mediation", &allowed)?;
        }
        CaseState::Reopened => {
            require_state(case, "reopening", &[CaseState::Closed])?;
            if !case.merged_into.is_empty() {
                return Err(ServiceError::failed_precondition(
                    "MERGED",
                    format!("the case was merged into {}; reopen that one", case.merged_into),
                ));
            }
            case.reopen_count += 1;
            case.close_time = None;
            clocks.start(
                case,
                ClockKind::Resolution,
                clocks.policy.targets(clock::grade_of(case.grade)).resolution,
                now,
            );
        }
        CaseState::Withdrawn => {
            require_open(case, "withdrawal")?;
            clock::stop_all(case);
            case.close_time = Some(to_timestamp(now));
        }
        CaseState::Closed => {
            require_state(case, "closing", &[CaseState::FollowUp])?;
            clock::stop_all(case);
            case.close_time = Some(to_timestamp(now));
            set_state(case, CaseState::Closed);
            fx.specific.push(Specific::Closed { reason: reason.to_owned() });
            return Ok(());
        }
        CaseState::Accepted | CaseState::Assigned => {
            return Err(ServiceError::invalid("state", "use AssignCase or TransferCase"));
        }
        CaseState::ResolutionProposed => return Err(ServiceError::invalid("state", "use ProposeResolution")),
        CaseState::Decided => return Err(ServiceError::invalid("state", "use DecideCase")),
        CaseState::Unspecified => return Err(ServiceError::invalid("state", "required")),
    }
    set_state(case, target);
    Ok(())
}

fn link(
    case: &mut Case,
    other: &mut Case,
    kind: LinkType,
    reason: &str,
    ctx: &Context<'_>,
) -> Result<(), ServiceError> {
    let now = Some(to_timestamp(ctx.now));
    let actor = ctx.principal.subject.clone();
    if case.name == other.name {
        return Err(ServiceError::invalid("other", "a case cannot be linked to itself"));
    }
    if case.links.iter().any(|l| l.case == other.name && l.r#type == kind as i32) {
        return Err(ServiceError::AlreadyExists {
            reason: "LINK_EXISTS",
            message: format!("{} is already linked to {} this way", case.name, other.name),
        });
    }
    let back = match kind {
        LinkType::MergedInto => {
            require_open(case, "merging")?;
            if is_terminal(state_of(other)) || !other.merged_into.is_empty() {
                return Err(ServiceError::failed_precondition(
                    "SURVIVOR_CLOSED",
                    format!("{} is {}; merge into an open case", other.name, state_of(other).as_str_name()),
                ));
            }
            case.merged_into = other.name.clone();
            // Nothing is lost: the survivor keeps the duplicate's evidence and the staff it
            // names, and the duplicate stays readable, closed, pointing at the survivor.
            for e in &case.evidence {
                if !other.evidence.iter().any(|o| o.sha256 == e.sha256 && o.uri == e.uri) {
                    other.evidence.push(e.clone());
                }
            }
            for s in &case.complained_staff_ids {
                if !other.complained_staff_ids.contains(s) {
                    other.complained_staff_ids.push(s.clone());
                }
            }
            clock::stop_all(case);
            case.close_time = now;
            set_state(case, CaseState::Closed);
            LinkType::MergedFrom
        }
        LinkType::Related => LinkType::Related,
        LinkType::Parent => LinkType::Child,
        LinkType::Child => LinkType::Parent,
        LinkType::MergedFrom | LinkType::Unspecified => {
            return Err(ServiceError::invalid("type", "must be MERGED_INTO, RELATED, PARENT or CHILD"));
        }
    };
    let make = |kind: LinkType, to: &str| CaseLink {
        r#type: kind as i32,
        case: to.to_owned(),
        reason: reason.to_owned(),
        linked_by: actor.clone(),
        link_time: now,
    };
    case.links.push(make(kind, &other.name));
    other.links.push(make(back, &case.name));
    Ok(())
}

/// The other half of a link, recorded on the other case: its audit entry and event.
pub fn linked_effects(
    other: &Case,
    case_name: &str,
    kind: LinkType,
    reason: &str,
    actor: &str,
    rules: &Rules,
) -> Effects {
    let mut fx = Effects::default();
    let back = other
        .links
        .iter()
        .rev()
        .find(|l| l.case == case_name)
        .map_or(kind, |l| LinkType::try_from(l.r#type).unwrap_or(LinkType::Unspecified));
    let detail = details([
        ("type", back.as_str_name().to_owned()),
        ("case", case_name.to_owned()),
        ("reason", reason.to_owned()),
    ]);
    finish(other, other.state, "case.linked", detail, actor, rules, &mut fx);
    fx
}

/// What quality-metrics needs of a case (D-QM).
pub fn measures(case: &Case) -> CaseMeasures {
    let received = instant(&case.receive_time);
    let seconds = |t: &Option<prost_types::Timestamp>| match (received, instant(t)) {
        (Some(r), Some(t)) => (t - r).num_seconds().max(0),
        _ => 0,
    };
    let survey = case.survey.clone().unwrap_or_default();
    CaseMeasures {
        first_response_seconds: seconds(&case.first_response_time),
        decision_seconds: seconds(&case.decide_time),
        on_time: !case.clocks.iter().any(|c| c.breached),
        one_time_resolution: case.review_count == 0 && case.reopen_count == 0 && survey.resolved,
        satisfaction_score: survey.score,
        resolved: survey.resolved,
    }
}

/// Who is reminded: the owner (assignee, else the department, else the organisation unit)
/// and, for breaches, the owner's supervisor.
fn recipients(case: &Case, level: ReminderLevel) -> Vec<String> {
    let owner = if !case.assignee.is_empty() {
        format!("user:{}", case.assignee)
    } else if !case.department.is_empty() {
        format!("department:{}", case.department)
    } else {
        format!("org_unit:{}", case.org_unit)
    };
    let mut to = vec![owner];
    if level == ReminderLevel::Supervisor {
        let unit = if case.department.is_empty() { &case.org_unit } else { &case.department };
        to.push(format!("supervisor:{unit}"));
    }
    to
}

/// Raises the reminders that are due at `now` (D-SLA-7): at risk to the owner, breached to
/// the owner and the supervisor, each once per due time. Empty effects when nothing is due.
pub fn sweep(case: &mut Case, rules: &Rules, now: DateTime<Utc>) -> Effects {
    let mut fx = Effects::default();
    let mut raised = Vec::new();
    for clock in &mut case.clocks {
        if clock.status != ClockStatus::Running as i32 {
            continue;
        }
        let Some(due) = instant(&clock.due_time) else { continue };
        let kind = ClockKind::try_from(clock.kind).unwrap_or(ClockKind::Unspecified);
        if now >= due && !clock.breached {
            clock.breached = true;
            clock.at_risk = true;
            clock.reminded_due_time = clock.due_time;
            raised.push((kind, clock.due_time, ReminderLevel::Supervisor));
        } else if !clock.at_risk && rules.clocks.at_risk_time(clock).is_some_and(|t| now >= t) {
            clock.at_risk = true;
            clock.reminded_due_time = clock.due_time;
            raised.push((kind, clock.due_time, ReminderLevel::Owner));
        }
    }
    let open = !is_terminal(state_of(case));
    let mut overdue = Vec::new();
    for task in case.coordination_tasks.iter_mut().filter(|t| open && t.complete_time.is_none() && !t.overdue) {
        if instant(&task.due_time).is_some_and(|due| now >= due) {
            task.overdue = true;
            overdue.push(task.clone());
        }
    }
    for task in overdue {
        let recipients = vec![format!("user:{}", task.owner), format!("department:{}", task.department)];
        let due = instant(&task.due_time).map(|d| d.to_rfc3339()).unwrap_or_default();
        fx.record(
            "task.overdue",
            details([("task_id", task.task_id.clone()), ("due_time", due), ("recipients", recipients.join(","))]),
        );
        fx.events.push(NewEvent::new(
            case.name.clone(),
            case.org_unit.clone(),
            &CoordinationTaskOverdue { case: Some(case.clone()), task: Some(task), recipients },
        ));
        metrics::counter!("redress_case_reminders_total", "kind" => "task.overdue").increment(1);
    }
    for (kind, due_time, level) in raised {
        let to = recipients(case, level);
        let (action, event) = if level == ReminderLevel::Supervisor {
            let e = DeadlineBreached {
                case: Some(case.clone()),
                clock: kind as i32,
                due_time,
                level: level as i32,
                recipients: to.clone(),
            };
            ("deadline.breached", NewEvent::new(case.name.clone(), case.org_unit.clone(), &e))
        } else {
            let e = DeadlineAtRisk {
                case: Some(case.clone()),
                clock: kind as i32,
                due_time,
                level: level as i32,
                recipients: to.clone(),
            };
            ("deadline.at_risk", NewEvent::new(case.name.clone(), case.org_unit.clone(), &e))
        };
        let due = instant(&due_time).map(|d| d.to_rfc3339()).unwrap_or_default();
        fx.record(
            action,
            details([("clock", kind.as_str_name().to_owned()), ("due_time", due), ("recipients", to.join(","))]),
        );
        fx.events.push(event);
        metrics::counter!("redress_case_reminders_total", "kind" => action).increment(1);
    }
    fx
}
