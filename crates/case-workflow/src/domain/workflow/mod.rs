//! The case lifecycle as an enforced state machine (D-CASE, D-SLA): every change to a case is
//! a [`Command`] that either applies completely, with its audit entries and events, or is
//! refused naming the state the case is in.
//!
//! This module holds the commands and their dispatch; each group of commands lives in its own
//! file: people ([`assignment`]), the lifecycle moves ([`lifecycle`]), SLA clocks ([`clocks`]),
//! the resolution ([`resolution`]), reviews of a decision ([`review`]), links between cases
//! ([`links`]), coordination tasks and evidence ([`tasks`]) and the reminders the sweeper
//! raises ([`sweep`]).

mod assignment;
mod clocks;
mod error;
mod lifecycle;
mod links;
mod resolution;
mod review;
mod sweep;
mod tasks;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::names::OrgUnit;
use redress_platform::principal::Principal;
use redress_proto::redress::case::v1::{
    Case, CaseChanged, CaseClosed, CaseMeasures, CaseReviewDecided, CaseState, ClockKind, DecisionDeadlineExtended,
    LinkType, Money, PauseReason, ResolutionType, ReviewOutcome, SurveyAnswered,
};
use redress_proto::redress::common::v1::Grade;

use super::clock::{self, Clocks, instant};

pub use clocks::opening_clocks;
pub use error::{WorkflowError, state_names};
pub use links::linked_effects;
pub use sweep::sweep;

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
    /// The complainant asks for a review (核查) of the decision.
    RequestReview {
        reason: String,
    },
    /// The reviewing unit decides the open review.
    DecideReview {
        outcome: ReviewOutcome,
        notice: String,
    },
}

/// Who acts and under which rules.
pub struct Context<'a> {
    pub principal: &'a Principal,
    pub now: DateTime<Utc>,
    pub rules: &'a Rules,
}

impl Context<'_> {
    fn actor(&self) -> String {
        self.principal.subject.clone()
    }
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

/// The role of a head-office senior manager, who may approve 60-day extensions (D-SLA-2).
pub const SENIOR_MANAGER_ROLE: &str = "senior_manager";

/// Whether the principal belongs to a unit strictly above `unit`: one that covers it and is
/// not it (the platform-wide principal is above every unit).
fn above(principal: &Principal, unit: &str) -> bool {
    principal.covers(unit) && principal.org_unit != unit
}

/// Whether the principal belongs to the head office of `unit`'s institution (the institution
/// unit itself).
fn at_head_office(principal: &Principal, unit: &str) -> bool {
    OrgUnit::try_from_str(unit).is_ok_and(|u| u.institution().as_str() == principal.org_unit)
}

/// The unit the principal acts at on a case owned by `case_unit`: its own, or the case's when
/// it acts platform-wide or has no unit (a service).
fn acting_unit(principal: &Principal, case_unit: &str) -> String {
    match OrgUnit::try_from_str(&principal.org_unit) {
        Ok(unit) => unit.into_string(),
        Err(_) => case_unit.to_owned(),
    }
}

/// What a change wrote: audit entries (action, details) and events, in order.
#[derive(Debug, Default)]
pub struct Effects {
    pub audit: Vec<(String, BTreeMap<String, String>)>,
    pub events: Vec<NewEvent>,
}

impl Effects {
    fn record(&mut self, action: &str, details: BTreeMap<String, String>) {
        self.audit.push((action.to_owned(), details));
    }
}

/// What one command did to a case: its audit action and details, and the event it announces
/// besides CaseChanged.
struct Change {
    action: &'static str,
    details: BTreeMap<String, String>,
    announce: Option<Announce>,
}

impl Change {
    fn new(action: &'static str, details: BTreeMap<String, String>) -> Self {
        Self { action, details, announce: None }
    }

    fn announcing(self, announce: Announce) -> Self {
        Self { announce: Some(announce), ..self }
    }
}

/// Events besides CaseChanged, built with the final case once the change is complete.
#[derive(Debug)]
enum Announce {
    Extended { total_days: u32, reason: String, approved_by: String },
    SurveyAnswered,
    Closed { reason: String },
    ReviewDecided,
}

/// Applies `command` to `case` (and to `other` for links). On error nothing may be written:
/// the caller discards both cases.
pub fn execute(
    case: &mut Case,
    mut other: Option<&mut Case>,
    command: Command,
    ctx: &Context<'_>,
) -> Result<Effects, WorkflowError> {
    let previous_state = case.state;
    // What ran out before this change is a breach whatever the change does to the clocks.
    clock::record_breaches(case, ctx.now);
    if let Some(other) = other.as_deref_mut() {
        clock::record_breaches(other, ctx.now);
    }
    let change = match command {
        Command::Assign { assignee, department } => assignment::assign(case, assignee, department, ctx)?,
        Command::Transfer { to_department, reason } => assignment::transfer(case, to_department, reason, ctx)?,
        Command::FirstResponse { note } => assignment::first_response(case, note, ctx)?,
        Command::Transition { target, reason } => lifecycle::transition(case, target, reason, ctx)?,
        Command::ChangeGrade { grade, reason } => clocks::change_grade(case, grade, reason, ctx)?,
        Command::Pause { reason, note } => clocks::pause(case, reason, note, ctx)?,
        Command::Resume { note } => clocks::resume(case, note, ctx)?,
        Command::Extend { total_days, reason } => clocks::extend(case, total_days, reason, ctx)?,
        Command::Propose { kind, compensation, grounds } => {
            resolution::propose(case, kind, compensation, grounds, ctx)?
        }
        Command::Approve { note } => resolution::approve(case, note, ctx)?,
        Command::Decide { notice } => resolution::decide(case, notice, ctx)?,
        Command::Survey { score, resolved, comment } => resolution::survey(case, score, resolved, comment, ctx)?,
        Command::AddEvidence { uri, sha256, kind, description } => {
            tasks::add_evidence(case, uri, sha256, kind, description, ctx)?
        }
        Command::AddTask { department, owner, description, due } => {
            tasks::add_task(case, department, owner, description, due, ctx)?
        }
        Command::CompleteTask { task_id, outcome } => tasks::complete_task(case, task_id, outcome, ctx)?,
        Command::Link { kind, reason } => {
            let other = other.ok_or(WorkflowError::OtherCaseMissing)?;
            links::link(case, other, kind, reason, ctx)?
        }
        Command::RequestReview { reason } => review::request(case, reason, ctx)?,
        Command::DecideReview { outcome, notice } => review::decide(case, outcome, notice, ctx)?,
    };
    Ok(finish(case, previous_state, change, &ctx.principal.subject, ctx.rules))
}

fn state_of(case: &Case) -> CaseState {
    CaseState::try_from(case.state).unwrap_or(CaseState::Unspecified)
}

fn is_terminal(state: CaseState) -> bool {
    matches!(state, CaseState::Closed | CaseState::Withdrawn)
}

/// The refusal of `action` in the state the case is in, naming the states that allow it.
fn wrong_state(case: &Case, action: &'static str, allowed: &[CaseState]) -> WorkflowError {
    WorkflowError::InvalidState { action, current: state_of(case), allowed: allowed.to_vec() }
}

fn require_state(case: &Case, action: &'static str, allowed: &[CaseState]) -> Result<(), WorkflowError> {
    if allowed.contains(&state_of(case)) { Ok(()) } else { Err(wrong_state(case, action, allowed)) }
}

fn require_open(case: &Case, action: &'static str) -> Result<(), WorkflowError> {
    if is_terminal(state_of(case)) { Err(wrong_state(case, action, OPEN_STATES)) } else { Ok(()) }
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

fn name_of(state: i32) -> String {
    CaseState::try_from(state).unwrap_or(CaseState::Unspecified).as_str_name().to_owned()
}

/// Records the change in the audit trail and announces it; events carry the case as changed.
fn finish(case: &Case, previous_state: i32, change: Change, actor: &str, rules: &Rules) -> Effects {
    let Change { action, details, announce } = change;
    let mut fx = Effects::default();
    let mut audit_details = details.clone();
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
        details: details.into_iter().collect(),
    };
    fx.events.push(NewEvent::new(case.name.clone(), case.org_unit.clone(), &changed));
    let Some(announce) = announce else { return fx };
    let event = match announce {
        Announce::Extended { total_days, reason, approved_by } => {
            let due_time = clock::clock(case, ClockKind::RegulatoryDecision).and_then(|c| c.due_time);
            let complainant_notice = clocks::extension_notice(case, total_days, &due_time, &reason, rules);
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
        Announce::SurveyAnswered => NewEvent::new(
            case.name.clone(),
            case.org_unit.clone(),
            &SurveyAnswered { case: Some(case.clone()), survey: case.survey.clone(), measures: Some(measures(case)) },
        ),
        Announce::Closed { reason } => NewEvent::new(
            case.name.clone(),
            case.org_unit.clone(),
            &CaseClosed { case: Some(case.clone()), reason, measures: Some(measures(case)) },
        ),
        Announce::ReviewDecided => NewEvent::new(
            case.name.clone(),
            case.org_unit.clone(),
            &CaseReviewDecided { case: Some(case.clone()), review: case.reviews.last().cloned() },
        ),
    };
    fx.events.push(event);
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
        // Records written before breaches were kept have only the clocks' flags.
        on_time: case.breaches.is_empty() && !case.clocks.iter().any(|c| c.breached),
        one_time_resolution: case.review_count == 0 && case.reopen_count == 0 && survey.resolved,
        satisfaction_score: survey.score,
        resolved: survey.resolved,
    }
}
