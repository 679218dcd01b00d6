//! Why a case refuses a command. Each refusal names what the caller can act on (the state the
//! case is in, the department it awaits, the limit exceeded); how it is reported to a caller
//! is decided in one place, `crate::error`.

use chrono::{DateTime, Utc};
use redress_calendar::CalendarError;
use redress_platform::principal::Permission;
use redress_proto::redress::case::v1::CaseState;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The command is not allowed in the state the case is in.
    #[error("{action} is not allowed in state {}; it needs one of {}", current.as_str_name(), state_names(allowed, ", "))]
    InvalidState { action: &'static str, current: CaseState, allowed: Vec<CaseState> },
    /// Staff named in the complaint cannot handle it (回避): `role` says as what they were
    /// refused (assignee, proposer, approver, decider, task owner, …).
    #[error("staff {staff_id} is named in this complaint and cannot act on it as {role} (回避)")]
    ConflictOfInterest { staff_id: String, role: &'static str },
    /// The case names complained staff and the request names a person without an employee
    /// id, so the conflict-of-interest check cannot be made.
    #[error(
        "required: the case names complained staff, so the employee id is needed to check for a conflict of interest"
    )]
    StaffIdRequired { field: &'static str },
    /// The case names complained staff and the caller has no employee id: who stands behind
    /// the call cannot be checked, so it may not decide the complaint.
    #[error("the case names complained staff; acting as {role} needs a caller with an employee id")]
    CallerStaffIdRequired { role: &'static str },
    /// The complaint names staff by name only, and nobody confirmed yet that the current
    /// assignee is not that person.
    #[error("no one has yet confirmed that the assignee ({assignee}) is not the staff member the complaint names")]
    ConflictCheckPending { assignee: String },
    #[error("the case needs no conflict-of-interest confirmation")]
    ConflictCheckNotRequired,
    #[error("it is already confirmed that {assignee} is not the staff member the complaint names")]
    ConflictCheckConfirmed { assignee: String },
    /// The assignee cannot vouch for themselves.
    #[error("the assignee cannot confirm their own conflict-of-interest check")]
    SelfConfirmation,
    /// A change intake asked of a case that leaves it as it is.
    #[error("nothing changes")]
    Unchanged,
    /// A transferred case is assigned by the department it was transferred to.
    #[error("the case was transferred to {to_department}; that department assigns it")]
    HandoffPending { to_department: String },
    #[error("the case is already in this department")]
    AlreadyInDepartment,
    #[error("the first response was already recorded")]
    FirstResponseRecorded,
    #[error("the case already has this grade")]
    SameGrade,
    #[error("the clocks are already paused")]
    ClocksPaused,
    #[error("no clock is running")]
    NoRunningClock,
    #[error("the clocks are not paused")]
    ClocksNotPaused,
    /// The command needs a permission the acting principal lacks (extensions, approvals).
    #[error("the {} permission is required", .0.as_str())]
    PermissionRequired(Permission),
    #[error("the regulatory decision clock is no longer running")]
    DecisionClockDone,
    /// An extension is granted before the decision clock is due, never after (D-SLA-8).
    #[error("the decision deadline {due} has passed; an extension must be granted before it")]
    ExtensionTooLate { due: DateTime<Utc> },
    /// An extension must lengthen the decision clock.
    #[error("must be longer than the current {current_days} days")]
    ExtensionTooShort { current_days: i32 },
    /// The case's regime sets its decision clock with no extension (SAMR, FCA DISP, CFPB).
    #[error("the {regime} regime allows no extension of the decision deadline")]
    ExtensionNotInRegime { regime: String },
    /// An extension is at most the longest one the regime allows.
    #[error("must be at most the {regime} regime's longest extension, {longest}")]
    ExtensionTooLong { regime: String, longest: u32 },
    #[error("there is no proposed resolution")]
    NoResolution,
    #[error("the proposed resolution needs no (further) approval")]
    ApprovalNotNeeded,
    /// The four-eyes rule: the proposer of a resolution cannot approve it.
    #[error("a resolution cannot be approved by its proposer")]
    SelfApproval,
    /// The compensation exceeds what the approver may grant (D-CASE-3).
    #[error("the compensation ({amount}) exceeds the approver's authority limit ({limit})")]
    AuthorityExceeded { amount: i64, limit: i64 },
    /// The compensation exceeds the proposer's authority, and nobody has approved it yet.
    #[error("the compensation exceeds the proposer's authority limit; it must be approved first")]
    ApprovalRequired,
    #[error("the survey was already answered")]
    SurveyAnswered,
    #[error("this evidence is already referenced")]
    EvidenceExists,
    #[error("must be in the future")]
    DueInThePast,
    #[error("no such task on this case")]
    NoSuchTask,
    #[error("the task is already completed")]
    TaskCompleted,
    #[error("the other case is required")]
    OtherCaseMissing,
    #[error("a case cannot be linked to itself")]
    SelfLink,
    #[error("{case} is already linked to {other} this way")]
    LinkExists { case: String, other: String },
    #[error("must be MERGED_INTO, RELATED, PARENT or CHILD")]
    NotLinkable,
    /// A duplicate is merged into an open case only.
    #[error("{survivor} is {}; merge into an open case", state.as_str_name())]
    SurvivorClosed { survivor: String, state: CaseState },
    #[error("the case has no handler; assign it first")]
    Unassigned,
    #[error("the case has no decision")]
    NotDecided,
    /// A review is asked for within 30 days of the decision (D-SLA-2).
    #[error("a review must be requested within 30 days of the decision (until {until})")]
    ReviewWindowPassed { until: DateTime<Utc> },
    /// A decision is reviewed once; after the review decision the complainant turns to
    /// mediation or the regulator.
    #[error("this decision was already reviewed")]
    AlreadyReviewed,
    /// A review is handled by a unit above the one that decided, or by head office (D-SLA-11).
    #[error("a review of a decision made at {deciding_unit} is handled by a unit above it or by head office")]
    ReviewNeedsHigherUnit { deciding_unit: String },
    /// A 60-day extension is approved above the handling unit or by a head-office senior
    /// manager, never by the handling unit itself (D-SLA-2).
    #[error(
        "a 60-day extension of a case handled at {handling_unit} is approved by a unit above it or a head-office senior manager"
    )]
    ExtensionNeedsHigherUnit { handling_unit: String },
    /// A merged duplicate stays closed; work goes on in the case it was merged into.
    #[error("the case was merged into {into}; reopen that one")]
    Merged { into: String },
    /// `TransitionCase` does not reach this state; `method` does.
    #[error("use {method}")]
    TransitionVia { method: &'static str },
    #[error("required")]
    StateRequired,
    /// A contact is logged once it has taken place.
    #[error("must not be in the future")]
    ContactInTheFuture,
    /// A contact belongs to the case it is logged on.
    #[error("must not be before the case was opened ({opened})")]
    ContactBeforeOpening { opened: DateTime<Utc> },
    #[error("must be after contact_time")]
    NextContactNotAfterContact,
    /// A transfer's reason is told to the complainant, who is never told "not my department"
    /// (D-CASE-1).
    #[error(
        "is told to the complainant: say why the receiving department is better placed to handle it, not that this one is not responsible (\"{phrase}\")"
    )]
    DeflectingReason { phrase: String },
    #[error("no such implementation step on this case")]
    NoSuchStep,
    #[error("the implementation step is already completed")]
    StepCompleted,
    /// A case is closed once its decision has been carried out (D-CASE-8).
    #[error("implementation steps {} are still open; complete them first", steps.join(", "))]
    ImplementationOpen { steps: Vec<String> },
    /// The case's institution refuses replies with banned phrases (禁用语), and the reply has
    /// one (D-KB-3); `findings` are everything the lint found, to reword the reply by.
    #[error(
        "the reply has banned phrases ({}), which this institution does not send; reword it",
        findings.iter().filter(|f| super::replies::is_blocking(f)).map(|f| format!("「{}」", f.text)).collect::<Vec<_>>().join("")
    )]
    ReplyBlocked {
        field: &'static str,
        rules_version: String,
        findings: Vec<redress_proto::redress::case::v1::ReplyFinding>,
    },
    /// A deadline the rule needs cannot be computed: the calendar lacks a year.
    #[error("the calendar cannot count this period")]
    Calendar(#[from] CalendarError),
}

/// The proto names of `states`, joined by `separator`.
pub fn state_names(states: &[CaseState], separator: &str) -> String {
    states.iter().map(|s| s.as_str_name()).collect::<Vec<_>>().join(separator)
}
