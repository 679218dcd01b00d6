//! `redress case …`: one CaseService call per invocation, its input checked before the call and
//! its outcome told by the exit code (0 done, 1 refused or failed, 2 bad usage, 3 audit chain
//! broken).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{
    AddCoordinationTaskRequest, AddEvidenceRequest, AddImplementationStepRequest, AnswerSurveyRequest,
    ApproveResolutionRequest, AssignCaseRequest, CaseState, ChangeCaseGradeRequest, CompleteCoordinationTaskRequest,
    CompleteImplementationStepRequest, ConfirmNoConflictRequest, ContactDirection, DecideCaseRequest,
    DecideCaseReviewRequest, ExtendDecisionDeadlineRequest, GetCaseRequest, LinkCasesRequest, LinkType,
    ListAuditEntriesRequest, ListCasesRequest, Money, PauseCaseClocksRequest, PauseReason, ProblemScope,
    ProposeResolutionRequest, RecordContactRequest, RecordFirstResponseRequest, RequestCaseReviewRequest,
    ResolutionType, ResumeCaseClocksRequest, ReviewOutcome, SetProblemScopeRequest, TransferCaseRequest,
    TransitionCaseRequest, VerifyAuditChainRequest,
};
use redress_proto::redress::common::v1::{Channel, Grade};
use sha2::{Digest, Sha256};

use crate::output::{self, Reply};
use crate::{
    Authenticated, Failure, Global, Severity, Via, changed, connect, gateway_url, parse_time, print, read, report,
    resource_name, usage,
};

/// Exit code of `verify` when the audit chain does not verify.
const EXIT_CHAIN_BROKEN: u8 = 3;

/// Drive a case by hand through a running gateway.
#[derive(Args)]
pub struct CaseArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: CaseCommand,
}

#[derive(Subcommand)]
enum CaseCommand {
    /// Show one case.
    Get {
        /// The case: `cases/{id}` or its bare id.
        case: String,
    },
    /// List cases, newest opened first.
    List {
        /// Only cases in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Only the case of this complaint: `complaints/{id}` or its bare id.
        #[arg(long)]
        complaint: Option<String>,
        /// Cases per page (default 50, at most 1000).
        #[arg(long)]
        page_size: Option<i32>,
        /// Token of the next page, as a previous page printed it.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Assign the case to a handler in a department.
    Assign {
        #[command(flatten)]
        change: Change,
        /// Handler (user subject).
        #[arg(long)]
        assignee: String,
        /// Department handling the case.
        #[arg(long)]
        department: String,
        /// The handler's employee id (工号); needed when the complaint names staff (回避).
        #[arg(long, default_value = "", hide_default_value = true)]
        assignee_staff_id: String,
    },
    /// Transfer the case to another department (转办).
    ///
    /// The complainant is told why and who now handles it. A named `--to-assignee` owns the case
    /// at once; otherwise the receiving department assigns it within the handoff clock.
    Transfer {
        #[command(flatten)]
        change: Change,
        /// Receiving department.
        #[arg(long)]
        to_department: String,
        /// Why the receiving department is better placed; told to the complainant.
        #[arg(long)]
        reason: String,
        /// The handler in the receiving department who owns the case from now on (user subject);
        /// without one, the receiving department assigns it.
        #[arg(long, default_value = "", hide_default_value = true)]
        to_assignee: String,
        /// That handler's employee id (工号); needed when the complaint names staff (回避).
        #[arg(long, default_value = "", hide_default_value = true, requires = "to_assignee")]
        to_assignee_staff_id: String,
    },
    /// Move the case to another state.
    Transition {
        #[command(flatten)]
        change: Change,
        /// Target state.
        #[arg(long, value_enum)]
        state: State,
        /// Why (for mediation: the mediating body).
        #[arg(long)]
        reason: String,
    },
    /// Ask for or decide a review (核查) of the decision.
    ///
    /// While the case is under review, `case assign` names the reviewer. Only a unit above the
    /// one that decided, or head office, assigns or decides a review.
    Review {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// Extend the regulatory decision clock (60 days: by a unit above the handling unit or a
    /// head-office senior manager).
    Extend {
        #[command(flatten)]
        change: Change,
        /// New total length in calendar days: 30 (complex) or 60 (especially complex).
        #[arg(long)]
        days: i32,
        /// Why the case is complex.
        #[arg(long)]
        reason: String,
    },
    /// Pause the case's running clocks.
    Pause {
        #[command(flatten)]
        change: Change,
        /// Why.
        #[arg(long, value_enum)]
        reason: Pause,
        /// Details (required with `--reason other`).
        #[arg(long, default_value = "", hide_default_value = true)]
        note: String,
    },
    /// Resume the case's clocks.
    Resume {
        #[command(flatten)]
        change: Change,
        /// What ended the pause.
        #[arg(long, default_value = "", hide_default_value = true)]
        note: String,
    },
    /// Propose a resolution.
    Propose {
        #[command(flatten)]
        change: Change,
        /// Type of resolution.
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        kind: Resolution,
        /// Compensation in yuan, at most two decimals (e.g. 120.50).
        #[arg(long, value_name = "AMOUNT", value_parser = parse_yuan, allow_negative_numbers = true)]
        compensation: Option<i64>,
        /// Grounds (处理依据), told to the complainant.
        #[arg(long)]
        grounds: String,
    },
    /// Approve the proposed resolution.
    Approve {
        #[command(flatten)]
        change: Change,
        /// Approval note.
        #[arg(long, default_value = "", hide_default_value = true)]
        note: String,
    },
    /// Decide the case on the proposed resolution.
    Decide {
        #[command(flatten)]
        change: Change,
        /// The decision notice as told to the complainant (处理决定告知).
        #[arg(long)]
        notice: String,
    },
    /// Record the complainant's satisfaction survey (回访).
    Survey {
        #[command(flatten)]
        change: Change,
        /// Satisfaction, 1 (very dissatisfied) to 5 (very satisfied).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=5))]
        score: i32,
        /// The complainant considers the problem resolved.
        #[arg(long)]
        resolved: bool,
        /// Comment, verbatim.
        #[arg(long, default_value = "", hide_default_value = true)]
        comment: String,
    },
    /// Add an evidence reference with its content hash.
    Evidence {
        #[command(flatten)]
        change: Change,
        /// Where the evidence is kept, e.g. s3://evidence/2026/abc.mp3.
        #[arg(long)]
        uri: String,
        /// Lower-case hex SHA-256 of its content.
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        sha256: Option<String>,
        /// A local copy of the evidence, to compute its SHA-256 from.
        #[arg(long)]
        file: Option<PathBuf>,
        /// What it is, e.g. recording, document, system_log, transaction_receipt.
        #[arg(long)]
        kind: String,
        /// Description.
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
    },
    /// Link the case to another.
    Link {
        #[command(flatten)]
        change: Change,
        /// The other case: `cases/{id}` or its bare id.
        #[arg(long)]
        other: String,
        /// How this case relates to the other.
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        kind: Link,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Record the first response to the complainant; it is logged as a contact too.
    Respond {
        #[command(flatten)]
        change: Change,
        /// How and what was responded.
        #[arg(long)]
        note: String,
        /// How the complainant was reached.
        #[arg(long, value_enum)]
        channel: Option<Via>,
    },
    /// Log a contact with the complainant (及时反馈处理进展).
    ///
    /// The next one is owed within the configured working days, or by `--next-contact` when
    /// that is sooner; the case's owner is reminded when it is not made.
    Contact {
        #[command(flatten)]
        change: Change,
        /// How the complainant was reached, or reached the institution.
        #[arg(long, value_enum)]
        channel: Via,
        /// Which way the contact went.
        #[arg(long, value_enum)]
        direction: Direction,
        /// What was said or agreed, in staff wording.
        #[arg(long)]
        summary: String,
        /// When it took place, RFC 3339 (default now); not in the future, not before the case
        /// was opened.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<prost_types::Timestamp>,
        /// By when the complainant is to be contacted next, as agreed, RFC 3339; after the
        /// contact.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        next_contact: Option<prost_types::Timestamp>,
    },
    /// Change the case's severity grade.
    Grade {
        #[command(flatten)]
        change: Change,
        /// New grade.
        #[arg(long, value_enum)]
        grade: Severity,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Add or complete a cross-department coordination task (D-CASE-1).
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Add or complete a step carrying out the decided resolution (方案实施与跟进).
    Step {
        #[command(subcommand)]
        command: StepCommand,
    },
    /// Confirm that the handler is not the member of staff the complaint names (回避).
    ///
    /// Needed when the complaint names staff by name only, before a resolution is proposed or
    /// decided, and again for every new handler. Needs the approve permission and an employee
    /// id; the handler cannot confirm for themselves.
    ConfirmNoConflict {
        #[command(flatten)]
        change: Change,
        /// How it was established, e.g. rosters and employee ids checked.
        #[arg(long)]
        note: String,
    },
    /// Record whether the problem behind the case is systemic or individual, and why.
    Scope {
        #[command(flatten)]
        change: Change,
        /// Systemic (affects others too) or individual (this complainant's alone).
        #[arg(long, value_enum)]
        scope: Scope,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List the case's audit trail.
    Audit {
        /// The case: `cases/{id}` or its bare id.
        case: String,
        /// Entries per page (default 50, at most 1000).
        #[arg(long)]
        page_size: Option<i32>,
        /// Token of the next page, as a previous page printed it.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Verify the case's audit hash chain (exit code 3 when broken).
    Verify {
        /// The case: `cases/{id}` or its bare id.
        case: String,
    },
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// Record the complainant's request for a review, within 30 days of the decision (also of a
    /// closed case).
    Request {
        #[command(flatten)]
        change: Change,
        /// Why the complainant disagrees with the decision.
        #[arg(long)]
        reason: String,
    },
    /// Decide the open review; the case is decided again.
    Decide {
        #[command(flatten)]
        change: Change,
        /// How the review ends.
        #[arg(long, value_enum)]
        outcome: Outcome,
        /// The review decision as told to the complainant, with its grounds.
        #[arg(long)]
        notice: String,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Ask another department for help by a due time; its owner is reminded when it runs late.
    Add {
        #[command(flatten)]
        change: Change,
        /// Department asked to help.
        #[arg(long)]
        department: String,
        /// Owner of the task (user subject).
        #[arg(long)]
        owner: String,
        /// The owner's employee id (工号); needed when the complaint names staff (回避).
        #[arg(long, default_value = "", hide_default_value = true)]
        owner_staff_id: String,
        /// What is asked.
        #[arg(long)]
        description: String,
        /// By when, RFC 3339; must lie in the future.
        #[arg(long, value_parser = parse_time)]
        due: prost_types::Timestamp,
    },
    /// Complete an open task with what came of it.
    Complete {
        #[command(flatten)]
        change: Change,
        /// The task id, as `get` lists it.
        #[arg(long)]
        task: String,
        /// What came of it.
        #[arg(long)]
        outcome: String,
    },
}

#[derive(Subcommand)]
enum StepCommand {
    /// Add a step once the case is decided, with its owner, department and due time.
    ///
    /// Its owner is reminded when it runs late, and the case cannot be closed while it is open.
    Add {
        #[command(flatten)]
        change: Change,
        /// What is to be done.
        #[arg(long)]
        description: String,
        /// Owner of the step (user subject).
        #[arg(long)]
        owner: String,
        /// The owner's employee id (工号).
        #[arg(long, default_value = "", hide_default_value = true)]
        owner_staff_id: String,
        /// The owner's department.
        #[arg(long)]
        department: String,
        /// By when, RFC 3339; must lie in the future.
        #[arg(long, value_parser = parse_time)]
        due: prost_types::Timestamp,
    },
    /// Complete an open step with what came of it.
    Complete {
        #[command(flatten)]
        change: Change,
        /// The step id, as `get` lists it.
        #[arg(long)]
        step: String,
        /// What came of it.
        #[arg(long)]
        outcome: String,
    },
}

/// What every change of a case takes.
#[derive(Args)]
struct Change {
    /// The case: `cases/{id}` or its bare id.
    case: String,
    /// Change only if the case still has this etag (as `get` prints it; quotes optional).
    #[arg(long)]
    etag: Option<String>,
    /// Idempotency key: a call repeated with the same id changes the case once. Random when unset.
    #[arg(long)]
    request_id: Option<String>,
}

/// The shared fields of a change request, resolved from [`Change`].
struct Target {
    name: String,
    etag: String,
    request_id: String,
}

impl Change {
    fn target(self) -> Target {
        let etag = self.etag.map(|e| e.trim().to_owned()).unwrap_or_default();
        // The shell eats the quotes of `--etag "3"`; the case's etag is `"3"`.
        let etag = if etag.is_empty() || etag.starts_with('"') || etag.starts_with("W/") {
            etag
        } else {
            format!("\"{etag}\"")
        };
        Target {
            name: resource_name("cases/", &self.case),
            etag,
            request_id: self.request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum State {
    Accepted,
    Assigned,
    Investigating,
    ResolutionProposed,
    Decided,
    FollowUp,
    Closed,
    Withdrawn,
    Reopened,
    UnderReview,
    InMediation,
}

impl From<State> for CaseState {
    fn from(state: State) -> Self {
        match state {
            State::Accepted => CaseState::Accepted,
            State::Assigned => CaseState::Assigned,
            State::Investigating => CaseState::Investigating,
            State::ResolutionProposed => CaseState::ResolutionProposed,
            State::Decided => CaseState::Decided,
            State::FollowUp => CaseState::FollowUp,
            State::Closed => CaseState::Closed,
            State::Withdrawn => CaseState::Withdrawn,
            State::Reopened => CaseState::Reopened,
            State::UnderReview => CaseState::UnderReview,
            State::InMediation => CaseState::InMediation,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Pause {
    WaitingForMaterials,
    TestingOrAppraisal,
    Other,
}

impl From<Pause> for PauseReason {
    fn from(reason: Pause) -> Self {
        match reason {
            Pause::WaitingForMaterials => PauseReason::WaitingForMaterials,
            Pause::TestingOrAppraisal => PauseReason::TestingOrAppraisal,
            Pause::Other => PauseReason::Other,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Resolution {
    Explanation,
    ApologyCompensation,
    ProcessFix,
    SystemFix,
    MediationOutcome,
    NotUpheld,
}

impl From<Resolution> for ResolutionType {
    fn from(kind: Resolution) -> Self {
        match kind {
            Resolution::Explanation => ResolutionType::Explanation,
            Resolution::ApologyCompensation => ResolutionType::ApologyCompensation,
            Resolution::ProcessFix => ResolutionType::ProcessFix,
            Resolution::SystemFix => ResolutionType::SystemFix,
            Resolution::MediationOutcome => ResolutionType::MediationOutcome,
            Resolution::NotUpheld => ResolutionType::NotUpheld,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Outcome {
    /// The decision stands.
    Upheld,
    /// The decision is changed, as the notice says.
    Revised,
}

impl From<Outcome> for ReviewOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Upheld => ReviewOutcome::Upheld,
            Outcome::Revised => ReviewOutcome::Revised,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Link {
    MergedInto,
    Related,
    Parent,
    Child,
}

impl From<Link> for LinkType {
    fn from(kind: Link) -> Self {
        match kind {
            Link::MergedInto => LinkType::MergedInto,
            Link::Related => LinkType::Related,
            Link::Parent => LinkType::Parent,
            Link::Child => LinkType::Child,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Direction {
    /// The institution reached the complainant.
    Outbound,
    /// The complainant reached the institution.
    Inbound,
}

impl From<Direction> for ContactDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::Outbound => ContactDirection::Outbound,
            Direction::Inbound => ContactDirection::Inbound,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Scope {
    /// This complainant's problem alone (个案问题).
    Individual,
    /// A problem of a product, process or system that affects others too (系统性问题).
    Systemic,
}

impl From<Scope> for ProblemScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Individual => ProblemScope::Individual,
            Scope::Systemic => ProblemScope::Systemic,
        }
    }
}

/// An amount in yuan with at most two decimals ("120.50") in fen (12050).
fn parse_yuan(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("must not be negative".to_owned());
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(fraction)) {
        return Err("expected an amount in yuan such as 120 or 120.50".to_owned());
    }
    if fraction.len() > 2 {
        return Err("at most two decimals (fen)".to_owned());
    }
    let fen: i64 = format!("{fraction:0<2}").parse().map_err(|_| "not a number".to_owned())?;
    whole
        .parse::<i64>()
        .ok()
        .and_then(|yuan| yuan.checked_mul(100))
        .and_then(|minor| minor.checked_add(fen))
        .ok_or_else(|| "too large".to_owned())
}

type Client = CaseServiceClient<Authenticated>;

/// Runs one `redress case` command and says how it went in the exit code.
pub async fn run(args: CaseArgs) -> ExitCode {
    let gateway = gateway_url(&args.global.gateway);
    let outcome = execute(&gateway, args).await;
    report(outcome, &gateway)
}

async fn execute(gateway: &str, args: CaseArgs) -> Result<ExitCode, Failure> {
    let CaseArgs { global: Global { token, output: format, ca_file, .. }, command } = args;
    let client = CaseServiceClient::new(connect(gateway, token.as_deref(), ca_file.as_deref())?);
    let reply = call(client, command).await?;
    let broken = matches!(&reply, Reply::Verification { result, .. } if !result.intact);
    print(&output::render(&reply, format)?)?;
    Ok(if broken { ExitCode::from(EXIT_CHAIN_BROKEN) } else { ExitCode::SUCCESS })
}

async fn call(mut client: Client, command: CaseCommand) -> Result<Reply, Failure> {
    let case = match command {
        CaseCommand::Get { case } => {
            read(client.get_case(GetCaseRequest { name: resource_name("cases/", &case) }).await)?
        }
        CaseCommand::List { state, complaint, page_size, page_token } => {
            let request = ListCasesRequest {
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
                state: state.map_or(CaseState::Unspecified, CaseState::from).into(),
                complaint: complaint.map(|c| resource_name("complaints/", &c)).unwrap_or_default(),
            };
            return Ok(Reply::Cases(read(client.list_cases(request).await)?));
        }
        CaseCommand::Audit { case, page_size, page_token } => {
            let request = ListAuditEntriesRequest {
                case: resource_name("cases/", &case),
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
            };
            return Ok(Reply::Audit(read(client.list_audit_entries(request).await)?));
        }
        CaseCommand::Verify { case } => {
            let case = resource_name("cases/", &case);
            let result = read(client.verify_audit_chain(VerifyAuditChainRequest { case: case.clone() }).await)?;
            return Ok(Reply::Verification { case, result });
        }
        CaseCommand::Assign { change, assignee, department, assignee_staff_id } => {
            let Target { name, etag, request_id } = change.target();
            let request = AssignCaseRequest {
                name,
                etag,
                request_id: request_id.clone(),
                assignee,
                department,
                assignee_staff_id,
            };
            changed(client.assign_case(request).await, request_id)?
        }
        CaseCommand::Transfer { change, to_department, reason, to_assignee, to_assignee_staff_id } => {
            let Target { name, etag, request_id } = change.target();
            let request = TransferCaseRequest {
                name,
                etag,
                request_id: request_id.clone(),
                to_department,
                reason,
                to_assignee,
                to_assignee_staff_id,
            };
            changed(client.transfer_case(request).await, request_id)?
        }
        CaseCommand::Transition { change, state, reason } => {
            let Target { name, etag, request_id } = change.target();
            let state = CaseState::from(state).into();
            let request = TransitionCaseRequest { name, etag, request_id: request_id.clone(), state, reason };
            changed(client.transition_case(request).await, request_id)?
        }
        CaseCommand::Review { command: ReviewCommand::Request { change, reason } } => {
            let Target { name, etag, request_id } = change.target();
            let request = RequestCaseReviewRequest { name, etag, request_id: request_id.clone(), reason };
            changed(client.request_case_review(request).await, request_id)?
        }
        CaseCommand::Review { command: ReviewCommand::Decide { change, outcome, notice } } => {
            let Target { name, etag, request_id } = change.target();
            let request = DecideCaseReviewRequest {
                name,
                etag,
                request_id: request_id.clone(),
                outcome: ReviewOutcome::from(outcome).into(),
                decision_notice: notice,
            };
            changed(client.decide_case_review(request).await, request_id)?
        }
        CaseCommand::Extend { change, days, reason } => {
            let Target { name, etag, request_id } = change.target();
            let request =
                ExtendDecisionDeadlineRequest { name, etag, request_id: request_id.clone(), total_days: days, reason };
            changed(client.extend_decision_deadline(request).await, request_id)?
        }
        CaseCommand::Pause { change, reason, note } => {
            let Target { name, etag, request_id } = change.target();
            let reason = PauseReason::from(reason).into();
            let request = PauseCaseClocksRequest { name, etag, request_id: request_id.clone(), reason, note };
            changed(client.pause_case_clocks(request).await, request_id)?
        }
        CaseCommand::Resume { change, note } => {
            let Target { name, etag, request_id } = change.target();
            let request = ResumeCaseClocksRequest { name, etag, request_id: request_id.clone(), note };
            changed(client.resume_case_clocks(request).await, request_id)?
        }
        CaseCommand::Propose { change, kind, compensation, grounds } => {
            let Target { name, etag, request_id } = change.target();
            let compensation = compensation.map(|amount_minor| Money { currency_code: "CNY".to_owned(), amount_minor });
            let request = ProposeResolutionRequest {
                name,
                etag,
                request_id: request_id.clone(),
                r#type: ResolutionType::from(kind).into(),
                compensation,
                grounds,
            };
            changed(client.propose_resolution(request).await, request_id)?
        }
        CaseCommand::Approve { change, note } => {
            let Target { name, etag, request_id } = change.target();
            let request = ApproveResolutionRequest { name, etag, request_id: request_id.clone(), note };
            changed(client.approve_resolution(request).await, request_id)?
        }
        CaseCommand::Decide { change, notice } => {
            let Target { name, etag, request_id } = change.target();
            let request = DecideCaseRequest { name, etag, request_id: request_id.clone(), decision_notice: notice };
            changed(client.decide_case(request).await, request_id)?
        }
        CaseCommand::Survey { change, score, resolved, comment } => {
            let Target { name, etag, request_id } = change.target();
            let request = AnswerSurveyRequest { name, etag, request_id: request_id.clone(), score, resolved, comment };
            changed(client.answer_survey(request).await, request_id)?
        }
        CaseCommand::Evidence { change, uri, sha256, file, kind, description } => {
            let sha256 = match (sha256, file) {
                (Some(sha256), _) => sha256.trim().to_ascii_lowercase(),
                (None, Some(file)) => sha256_of(file).await?,
                (None, None) => return Err(usage("--sha256 or --file is required")),
            };
            let Target { name, etag, request_id } = change.target();
            let request =
                AddEvidenceRequest { name, etag, request_id: request_id.clone(), uri, sha256, kind, description };
            changed(client.add_evidence(request).await, request_id)?
        }
        CaseCommand::Link { change, other, kind, reason } => {
            let Target { name, etag, request_id } = change.target();
            let request = LinkCasesRequest {
                name,
                etag,
                request_id: request_id.clone(),
                other: resource_name("cases/", &other),
                r#type: LinkType::from(kind).into(),
                reason,
            };
            changed(client.link_cases(request).await, request_id)?
        }
        CaseCommand::Respond { change, note, channel } => {
            let Target { name, etag, request_id } = change.target();
            let channel = channel.map_or(Channel::Unspecified, Channel::from).into();
            let request = RecordFirstResponseRequest { name, etag, request_id: request_id.clone(), note, channel };
            changed(client.record_first_response(request).await, request_id)?
        }
        CaseCommand::Contact { change, channel, direction, summary, at, next_contact } => {
            if let (Some(at), Some(next)) = (&at, &next_contact)
                && (next.seconds, next.nanos) <= (at.seconds, at.nanos)
            {
                return Err(usage("--next-contact must lie after --at, when the contact took place"));
            }
            let Target { name, etag, request_id } = change.target();
            let request = RecordContactRequest {
                name,
                etag,
                request_id: request_id.clone(),
                channel: Channel::from(channel).into(),
                direction: ContactDirection::from(direction).into(),
                contact_time: at,
                summary,
                next_contact_due_time: next_contact,
            };
            changed(client.record_contact(request).await, request_id)?
        }
        CaseCommand::Step {
            command: StepCommand::Add { change, description, owner, owner_staff_id, department, due },
        } => {
            let Target { name, etag, request_id } = change.target();
            let request = AddImplementationStepRequest {
                name,
                etag,
                request_id: request_id.clone(),
                description,
                owner,
                owner_staff_id,
                department,
                due_time: Some(due),
            };
            changed(client.add_implementation_step(request).await, request_id)?
        }
        CaseCommand::Step { command: StepCommand::Complete { change, step, outcome } } => {
            let Target { name, etag, request_id } = change.target();
            let request = CompleteImplementationStepRequest {
                name,
                etag,
                request_id: request_id.clone(),
                step_id: step,
                outcome,
            };
            changed(client.complete_implementation_step(request).await, request_id)?
        }
        CaseCommand::ConfirmNoConflict { change, note } => {
            let Target { name, etag, request_id } = change.target();
            let request = ConfirmNoConflictRequest { name, etag, request_id: request_id.clone(), note };
            changed(client.confirm_no_conflict(request).await, request_id)?
        }
        CaseCommand::Scope { change, scope, reason } => {
            let Target { name, etag, request_id } = change.target();
            let scope = ProblemScope::from(scope).into();
            let request = SetProblemScopeRequest { name, etag, request_id: request_id.clone(), scope, reason };
            changed(client.set_problem_scope(request).await, request_id)?
        }
        CaseCommand::Task {
            command: TaskCommand::Add { change, department, owner, owner_staff_id, description, due },
        } => {
            let Target { name, etag, request_id } = change.target();
            let request = AddCoordinationTaskRequest {
                name,
                etag,
                request_id: request_id.clone(),
                department,
                owner,
                owner_staff_id,
                description,
                due_time: Some(due),
            };
            changed(client.add_coordination_task(request).await, request_id)?
        }
        CaseCommand::Task { command: TaskCommand::Complete { change, task, outcome } } => {
            let Target { name, etag, request_id } = change.target();
            let request =
                CompleteCoordinationTaskRequest { name, etag, request_id: request_id.clone(), task_id: task, outcome };
            changed(client.complete_coordination_task(request).await, request_id)?
        }
        CaseCommand::Grade { change, grade, reason } => {
            let Target { name, etag, request_id } = change.target();
            let grade = Grade::from(grade).into();
            let request = ChangeCaseGradeRequest { name, etag, request_id: request_id.clone(), grade, reason };
            changed(client.change_case_grade(request).await, request_id)?
        }
    };
    Ok(Reply::Case(Box::new(case)))
}

/// Lower-case hex SHA-256 of a file's bytes, read off the async runtime.
async fn sha256_of(path: PathBuf) -> Result<String, Failure> {
    let shown = path.display().to_string();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| Failure::Other(format!("hashing {shown} stopped: {e}")))?;
    hashed.map_err(|e| Failure::Other(format!("cannot read {shown}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_become_fen() {
        assert_eq!(parse_yuan("120.50"), Ok(12050));
        assert_eq!(parse_yuan("120.5"), Ok(12050));
        assert_eq!(parse_yuan("120"), Ok(12000));
        assert_eq!(parse_yuan("0.07"), Ok(7));
        assert_eq!(parse_yuan(" 3.00 "), Ok(300));
    }

    #[test]
    fn amounts_that_are_not_whole_fen_or_are_negative_are_refused() {
        assert_eq!(parse_yuan("1.234"), Err("at most two decimals (fen)".to_owned()));
        assert_eq!(parse_yuan("-1"), Err("must not be negative".to_owned()));
        for bad in ["", ".5", "1.", "1,5", "1e3", "abc", "1.2.3", "+1"] {
            assert!(parse_yuan(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_yuan("99999999999999999999"), Err("too large".to_owned()));
        assert_eq!(parse_yuan("92233720368547758.08"), Err("too large".to_owned()));
    }

    #[test]
    fn an_etag_without_its_quotes_gets_them_back() {
        let change = |etag: Option<&str>| Change {
            case: "x".to_owned(),
            etag: etag.map(str::to_owned),
            request_id: Some("r".to_owned()),
        };
        assert_eq!(change(Some("3")).target().etag, "\"3\"");
        assert_eq!(change(Some("\"3\"")).target().etag, "\"3\"");
        assert_eq!(change(None).target().etag, "");
    }

    #[test]
    fn every_change_gets_its_own_request_id_unless_one_is_given() {
        let change = |request_id: Option<&str>| Change {
            case: "x".to_owned(),
            etag: None,
            request_id: request_id.map(str::to_owned),
        };
        assert_ne!(change(None).target().request_id, change(None).target().request_id);
        assert_eq!(change(Some("retry-1")).target().request_id, "retry-1");
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        case: CaseArgs,
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    /// The command `redress case <args>` parses to, or clap's refusal.
    fn parsed(args: &[&str]) -> Result<CaseCommand, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from([&["redress"], args].concat()).map(|cli| cli.case.command)
    }

    #[test]
    fn a_transfer_names_its_new_owner_or_leaves_it_to_the_department() {
        let plain = parsed(&["transfer", "c", "--to-department", "cards", "--reason", "r"]);
        assert!(
            matches!(plain, Ok(CaseCommand::Transfer { ref to_assignee, .. }) if to_assignee.is_empty()),
            "{:?}",
            plain.err()
        );
        let owned = ["transfer", "c", "--to-department", "cards", "--reason", "r", "--to-assignee", "user:wang"];
        let owned = parsed(&[&owned[..], &["--to-assignee-staff-id", "E2001"]].concat());
        assert!(
            matches!(owned, Ok(CaseCommand::Transfer { ref to_assignee, ref to_assignee_staff_id, .. })
                if to_assignee == "user:wang" && to_assignee_staff_id == "E2001"),
            "{:?}",
            owned.err()
        );
        let staff_id_alone = ["transfer", "c", "--to-department", "d", "--reason", "r", "--to-assignee-staff-id", "E1"];
        let refused = parsed(&staff_id_alone).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("--to-assignee <TO_ASSIGNEE>"), "{refused}");
    }

    #[test]
    fn a_contact_takes_its_channel_and_direction_by_word_and_its_times_in_rfc3339() {
        let args = ["contact", "c", "--channel", "phone", "--direction", "inbound", "--summary", "s"];
        let contact = parsed(&[&args[..], &["--at", "2026-06-09T10:13:20+08:00"]].concat());
        assert!(
            matches!(
                contact,
                Ok(CaseCommand::Contact {
                    channel: Via::Phone,
                    direction: Direction::Inbound,
                    at: Some(_),
                    next_contact: None,
                    ..
                })
            ),
            "{:?}",
            contact.err()
        );
        for bad in [&["--direction", "sideways"][..], &["--next-contact", "tomorrow"]] {
            let args = ["contact", "c", "--channel", "phone", "--direction", "outbound", "--summary", "s"];
            assert!(parsed(&[&args[..], bad].concat()).is_err(), "{bad:?}");
        }
        let scope = parsed(&["scope", "c", "--scope", "systemic", "--reason", "r"]);
        assert!(matches!(scope, Ok(CaseCommand::Scope { scope: Scope::Systemic, .. })), "{:?}", scope.err());
        let step = ["step", "add", "c", "--description", "d", "--owner", "o", "--department", "ops", "--due", "soon"];
        assert!(parsed(&step).is_err());
    }
}
