//! The case lifecycle as an enforced state machine (D-CASE, D-SLA): every change to a case is
//! a [`Command`] that either applies completely, with its audit entries and events, or is
//! refused naming the state the case is in.
//!
//! This module holds the commands and their dispatch; each group of commands lives in its own
//! file: people ([`assignment`]) and conflicts of interest ([`conflict`]), the lifecycle moves
//! ([`lifecycle`]), SLA clocks ([`clocks`]), the resolution ([`resolution`]), reviews of a
//! decision ([`review`]), links between cases ([`links`]), coordination tasks and evidence
//! ([`tasks`]), the reminders the sweeper raises ([`sweep`]), how a case opens ([`opening`])
//! and the sensitive routings and escalation its classification and grade call for
//! ([`sensitive`]), progress to the complainant: contacts, their reminders and a transfer's
//! notice ([`progress`]), the steps carrying out a decision ([`implementation`]), and what the
//! reply lint found in the replies to the complainant ([`replies`]).

mod assignment;
mod clocks;
pub(crate) mod conflict;
mod error;
mod implementation;
mod lifecycle;
mod links;
mod opening;
mod progress;
pub mod replies;
mod resolution;
mod review;
mod sensitive;
mod sweep;
mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::names::OrgUnit;
use redress_platform::principal::Principal;
use redress_proto::redress::case::v1::{
    Case, CaseChanged, CaseClassification, CaseClosed, CaseMeasures, CaseReviewDecided, CaseRouting, CaseState,
    ClockKind, DecisionDeadlineExtended, LinkType, Money, PauseReason, ProblemScope, ResolutionType, ReviewOutcome,
    SurveyAnswered,
};
use redress_proto::redress::common::v1::{Channel, Grade};

use super::clock::{self, Clocks, instant};
use super::routing::RoutingRules;

pub use clocks::opening_clocks;
pub use error::{WorkflowError, state_names};
pub use implementation::NewStep;
pub use links::{MAX_LISTED_LINKS, linked_effects};
pub use opening::{FirstContact, OpeningFacts, open};
pub use progress::{NewContact, Progress, default_channel_monitors};
pub use replies::{LintedReply, ReplyRules};
pub use sweep::sweep;

/// What the caller asks of a case. Inputs are validated by the API before they get here;
/// what depends on the case (its state, clocks, people) is checked here.
#[derive(Debug, Clone)]
pub enum Command {
    Assign {
        assignee: String,
        department: String,
        /// The handler's employee id; empty when the request named none.
        assignee_staff_id: String,
    },
    Transfer {
        to_department: String,
        reason: String,
        /// The handler who owns the case from the transfer on; empty for the receiving
        /// department to assign it.
        to_assignee: String,
        /// That handler's employee id; empty when the request named none.
        to_assignee_staff_id: String,
    },
    Transition {
        target: CaseState,
        reason: String,
    },
    FirstResponse {
        note: String,
        /// How the complainant was reached (unspecified when not said).
        channel: Channel,
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
        /// The owner's employee id; empty when the request named none.
        owner_staff_id: String,
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
    /// Someone else confirms the assignee is not the staff member a complaint names by name
    /// only (回避).
    ConfirmNoConflict {
        note: String,
    },
    /// Records whether the problem is systemic or individual (D-CASE-9).
    SetProblemScope {
        scope: ProblemScope,
        reason: String,
    },
    /// Intake changed the complaint's classification: its codes and, unless unspecified, its
    /// grade. The routing rules are evaluated again on the new codes.
    Reclassify {
        classification: CaseClassification,
        grade: Grade,
        reason: String,
    },
    /// Logs a contact with the complainant (D-CASE-8).
    RecordContact(NewContact),
    /// Adds a step carrying out the decided resolution (方案实施与跟进).
    AddImplementationStep(NewStep),
    CompleteImplementationStep {
        step_id: String,
        outcome: String,
    },
    /// A reply to the complainant (a first response or a decision notice, `command`) with what
    /// the reply lint found in it (D-KB-3): kept with the case, or the change refused where the
    /// institution blocks banned phrases.
    Linted {
        command: Box<Command>,
        reply: Box<LintedReply>,
    },
    /// The lint of a reply that was recorded while the knowledge base could not be reached.
    RecordLint(Box<redress_proto::redress::case::v1::ReplyLint>),
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

/// The workflow's configuration: clocks, authority limits and sensitive-complaint routing.
#[derive(Debug, Clone)]
pub struct Rules {
    pub clocks: Clocks,
    /// Highest compensation (minor units) each role may grant without approval (D-CASE-3).
    pub authority_limits: HashMap<String, i64>,
    /// Which sensitive complaints are routed where (D-CASE-9).
    pub routing: Arc<RoutingRules>,
    /// How progress to the complainant is watched (D-CASE-8, D-INT-5).
    pub progress: Progress,
    /// Which institutions refuse replies with banned phrases (D-KB-3).
    pub replies: ReplyRules,
    /// The keys audit trails are chained under (D-CASE-2).
    pub audit: Arc<crate::domain::audit::AuditKeys>,
}

impl Rules {
    /// The highest compensation the principal may grant: the largest limit of its roles.
    pub fn authority_limit(&self, principal: &Principal) -> i64 {
        principal.roles.iter().filter_map(|r| self.authority_limits.get(r)).copied().max().unwrap_or(0)
    }

    /// When the sweeper must look at the case next (`None`: nothing left to raise): a clock
    /// at risk or due, a coordination task or implementation step due, the contact the
    /// complainant is owed, a case left unassigned.
    pub fn next_check(&self, case: &Case) -> Option<DateTime<Utc>> {
        [self.clocks.next_check(case), implementation::next_check(case), progress::next_check(case, self)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether a due time of the case counts a year whose official calendar is not loaded
    /// (a running clock's, or the contact the complainant is owed), so that it is recomputed
    /// when that calendar arrives (D-SLA-6).
    pub fn has_provisional(&self, case: &Case) -> bool {
        clock::has_provisional(case) || progress::contact_due(case, self).is_some_and(|d| d.provisional.is_some())
    }

    /// Writes into the case the contact its complainant is owed next, as the case stands.
    pub fn refresh_contact_due(&self, case: &mut Case) {
        progress::refresh(case, self);
    }
}

/// The actor recorded for what case-workflow does on its own: opening a case, following
/// intake, reminders, routings.
pub const SYSTEM_ACTOR: &str = "service:case-workflow";

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

/// What one command did to a case: its audit action and details, and the events it announces
/// besides CaseChanged.
struct Change {
    action: &'static str,
    details: BTreeMap<String, String>,
    announce: Vec<Announce>,
}

impl Change {
    fn new(action: &'static str, details: BTreeMap<String, String>) -> Self {
        Self { action, details, announce: Vec::new() }
    }

    fn announcing(mut self, announce: Announce) -> Self {
        self.announce.push(announce);
        self
    }

    fn announcing_all(mut self, announce: impl IntoIterator<Item = Announce>) -> Self {
        self.announce.extend(announce);
        self
    }
}

/// Events besides CaseChanged, built with the final case once the change is complete. A
/// routing and an escalation have audit entries of their own, after the change's.
#[derive(Debug)]
enum Announce {
    Extended {
        total_days: u32,
        reason: String,
        approved_by: String,
    },
    SurveyAnswered,
    Closed {
        reason: String,
    },
    ReviewDecided,
    /// A sensitive-complaint routing rule fired (D-CASE-9).
    Routed(CaseRouting),
    /// The case is of grade major: senior management is told at once (D-SLA-7).
    EscalationRequired {
        reason: String,
    },
    /// The case was transferred: the complainant is told why and who now handles it.
    Transferred,
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
    let (command, reply) = match command {
        Command::Linted { command, reply } => (*command, Some(reply)),
        command => (command, None),
    };
    let mut change = match command {
        Command::Assign { assignee, department, assignee_staff_id } => {
            assignment::assign(case, assignee, department, assignee_staff_id, ctx)?
        }
        Command::Transfer { to_department, reason, to_assignee, to_assignee_staff_id } => {
            let to = assignment::TransferTo {
                department: to_department,
                assignee: to_assignee,
                assignee_staff_id: to_assignee_staff_id,
            };
            assignment::transfer(case, to, reason, ctx)?
        }
        Command::FirstResponse { note, channel } => assignment::first_response(case, note, channel, ctx)?,
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
        Command::AddTask { department, owner, owner_staff_id, description, due } => {
            tasks::add_task(case, tasks::NewTask { department, owner, owner_staff_id, description, due }, ctx)?
        }
        Command::CompleteTask { task_id, outcome } => tasks::complete_task(case, task_id, outcome, ctx)?,
        Command::Link { kind, reason } => {
            let other = other.ok_or(WorkflowError::OtherCaseMissing)?;
            links::link(case, other, kind, reason, ctx)?
        }
        Command::RequestReview { reason } => review::request(case, reason, ctx)?,
        Command::DecideReview { outcome, notice } => review::decide(case, outcome, notice, ctx)?,
        Command::ConfirmNoConflict { note } => conflict::confirm(case, note, ctx)?,
        Command::SetProblemScope { scope, reason } => sensitive::set_problem_scope(case, scope, reason)?,
        Command::Reclassify { classification, grade, reason } => {
            sensitive::reclassify(case, classification, grade, reason, ctx)?
        }
        Command::RecordContact(contact) => progress::record(case, contact, ctx)?,
        Command::AddImplementationStep(step) => implementation::add_step(case, step, ctx)?,
        Command::CompleteImplementationStep { step_id, outcome } => {
            implementation::complete_step(case, step_id, outcome, ctx)?
        }
        Command::RecordLint(lint) => replies::complete(case, *lint, ctx)?,
        // A reply is linted once, as the change it is part of.
        Command::Linted { .. } => return Err(WorkflowError::Unchanged),
    };
    if let Some(reply) = reply {
        replies::admit(case, &reply, &ctx.rules.replies)?;
        replies::record(case, *reply, &mut change, ctx);
    }
    // The contact the complainant is owed follows every change (state, contacts, steps).
    progress::refresh(case, ctx.rules);
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
    for announce in announce {
        let (audit, event) = announced(case, announce, rules);
        if let Some((action, details)) = audit {
            fx.record(action, details);
        }
        fx.events.push(event);
    }
    fx
}

/// An audit entry: its action and details.
type AuditEntry = (&'static str, BTreeMap<String, String>);

/// The event of an announcement, and the audit entry of its own it has (routings, escalation).
fn announced(case: &Case, announce: Announce, rules: &Rules) -> (Option<AuditEntry>, NewEvent) {
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
        Announce::Routed(routing) => return sensitive::routed(case, routing),
        Announce::EscalationRequired { reason } => return sensitive::escalation_required(case, reason),
        Announce::Transferred => progress::transferred(case),
    };
    (None, event)
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
