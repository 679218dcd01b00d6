//! `redress incident …` and `redress mention …`: special complaints from the command line —
//! incidents (list, show, members, declare, dismiss, close with the systemic cause), their one
//! approved statement (draft, approve, the current one), and mentions from public-opinion
//! monitoring (report, list) with the watchlists they are matched on. One EscalationService
//! call per invocation; lists print under a header row.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use redress_proto::redress::escalation::v1::escalation_service_client::EscalationServiceClient;
use redress_proto::redress::escalation::v1::{
    ApproveStatementRequest, CauseCategory, CloseIncidentRequest, CreateWatchlistRequest, DeclareIncidentRequest,
    DismissIncidentRequest, DraftStatementRequest, GetCurrentStatementRequest, GetIncidentRequest, Incident,
    IncidentKind, IncidentState, ListIncidentMembersRequest, ListIncidentsRequest, ListMentionsRequest,
    ListWatchlistsRequest, Mention, RecordSystemicCauseRequest, ReportMentionRequest, Statement, SystemicCause,
    Watchlist,
};

use crate::output::{self, Format};
use crate::{Failure, Global, changed, connect, gateway_url, parse_time, print, read, report, resource_name, usage};

type Client = EscalationServiceClient<crate::Authenticated>;

/// Incidents (group, media, VIP, malicious) and their one approved statement, through a
/// running gateway.
#[derive(Args)]
pub struct IncidentArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: IncidentCommand,
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// List incidents, newest first.
    List {
        /// Only incidents of this kind.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only incidents in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Incidents per page (default 50).
        #[arg(long)]
        page_size: Option<i32>,
        /// Token of the next page, as a previous page printed it.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Show one incident: its evidence, working group, stages and timeline.
    Get {
        /// The incident: `incidents/{id}` or its bare id.
        incident: String,
    },
    /// List an incident's members in the order they joined.
    Members {
        /// The incident.
        incident: String,
    },
    /// Declare a proposed incident: its members are linked under its lead case.
    Declare {
        incident: String,
        #[arg(long)]
        reason: String,
        /// Request id, to retry safely (default: a new one).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Dismiss a proposed incident.
    Dismiss {
        incident: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Record the systemic cause and its fix.
    Cause {
        incident: String,
        #[arg(long, value_enum)]
        category: Category,
        /// What the cause is.
        #[arg(long)]
        description: String,
        /// What fixes it.
        #[arg(long)]
        fix: String,
        /// Who owns the fix.
        #[arg(long)]
        owner: String,
        /// By when (RFC 3339).
        #[arg(long)]
        due: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Close a declared incident (a group incident needs its systemic cause).
    Close {
        incident: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The incident's statement (统一口径).
    #[command(subcommand)]
    Statement(StatementCommand),
}

#[derive(Subcommand)]
enum StatementCommand {
    /// Draft a new version.
    Draft {
        incident: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Approve a draft: `incidents/{id}/statements/{version}`.
    Approve {
        statement: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The statement in force, for an incident or for a member case.
    Current {
        /// The incident.
        #[arg(long, conflicts_with = "case", required_unless_present = "case")]
        incident: Option<String>,
        /// A member case.
        #[arg(long)]
        case: Option<String>,
    },
}

/// Mentions from public-opinion monitoring and the watchlists they are matched on.
#[derive(Args)]
pub struct MentionArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: MentionCommand,
}

#[derive(Subcommand)]
enum MentionCommand {
    /// Report a mention (as a monitoring system does).
    Report {
        /// The unit it concerns, e.g. institutions/demo-bank.
        #[arg(long)]
        org_unit: String,
        /// Where it appeared, e.g. 微博.
        #[arg(long)]
        source: String,
        #[arg(long)]
        url: String,
        /// What it says.
        #[arg(long)]
        text: String,
        /// How many it reached.
        #[arg(long, default_value_t = 0)]
        reach: i64,
        /// When it was published (RFC 3339; default now).
        #[arg(long)]
        published: Option<String>,
        /// The monitoring system's id of the mention (default: a new one).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List mentions, newest first.
    List {
        /// Only those of this incident.
        #[arg(long)]
        incident: Option<String>,
        #[arg(long)]
        page_size: Option<i32>,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Create a watchlist of keywords (and entities) for a unit.
    Watch {
        #[arg(long)]
        org_unit: String,
        #[arg(long)]
        name: String,
        /// A keyword (repeat for more).
        #[arg(long = "keyword", required = true)]
        keywords: Vec<String>,
        /// An entity that must also be named (repeat for more).
        #[arg(long = "entity")]
        entities: Vec<String>,
        /// Matching mentions within --window minutes that raise a volume alert.
        #[arg(long, default_value_t = 0)]
        volume: i32,
        #[arg(long, default_value_t = 60)]
        window: i32,
        /// Reach at which a matching mention opens or joins a media incident.
        #[arg(long, default_value_t = 0)]
        incident_reach: i64,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List watchlists.
    Watchlists,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Group,
    Media,
    Vip,
    Malicious,
}

#[derive(Clone, Copy, ValueEnum)]
enum State {
    Proposed,
    Declared,
    Closed,
    Dismissed,
}

#[derive(Clone, Copy, ValueEnum)]
enum Category {
    People,
    Process,
    System,
    Environment,
    Policy,
}

fn table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header(header);
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.lines().map(|line| line.trim_end().to_owned() + "\n").collect()
}

fn word(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase().replace('_', "-")
}

fn incident_text(i: &Incident) -> String {
    let mut text = format!(
        "incident    {}\nkind        {}\nstate       {}\nunit        {}\ntitle       {}\nmembers     {} ({} complainants)\nlead case   {}\nstatement   {}\n",
        i.name,
        word(i.kind().as_str_name(), "INCIDENT_KIND_"),
        word(i.state().as_str_name(), "INCIDENT_STATE_"),
        i.org_unit,
        i.title,
        i.member_count,
        i.complainant_count,
        i.lead_case,
        i.current_statement,
    );
    if let Some(e) = &i.evidence {
        text.push_str(&format!("evidence    {}; shared: {}\n", e.rule, e.shared_terms.join("、")));
    }
    if let Some(stage) = i.stages.last() {
        let due = stage.due_time.as_ref().map(|t| t.to_string()).unwrap_or_default();
        text.push_str(&format!(
            "stage       {} (due {due}; template {})\n",
            word(i.stage().as_str_name(), "CRISIS_STAGE_"),
            stage.template
        ));
    }
    if let Some(cause) = &i.systemic_cause {
        text.push_str(&format!(
            "cause       {}: {} → {} ({})\n",
            word(cause.category().as_str_name(), "CAUSE_CATEGORY_"),
            cause.description,
            cause.fix,
            cause.fix_owner
        ));
    }
    if !i.timeline.is_empty() {
        text.push('\n');
        let rows = i
            .timeline
            .iter()
            .map(|e| {
                let kind =
                    redress_proto::redress::escalation::v1::TimelineEntryKind::try_from(e.kind).unwrap_or_default();
                [
                    e.time.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                    word(kind.as_str_name(), "TIMELINE_ENTRY_KIND_"),
                    e.channel.clone(),
                    e.text.replace('\n', " "),
                ]
            })
            .collect();
        text.push_str(&table(["TIME", "KIND", "CHANNEL", "TEXT"], rows));
    }
    text
}

fn statement_text(s: &Statement) -> String {
    format!(
        "statement   {}\nstate       {}\nby          {} {}\n\n{}\n",
        s.name,
        word(s.state().as_str_name(), "STATEMENT_STATE_"),
        s.approved_by,
        s.approver_role,
        s.text
    )
}

fn mention_text(m: &Mention) -> String {
    format!(
        "mention     {}\nsource      {} {}\nreach       {}\nwatchlists  {}\nmatched     {}\nincident    {}\n",
        m.name,
        m.source,
        m.url,
        m.reach,
        m.watchlists.join(", "),
        m.matched_terms.join("、"),
        m.incident
    )
}

fn new_request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn printed<M: prost::Message + prost::Name>(
    format: Format,
    message: &M,
    text: impl FnOnce(&M) -> String,
) -> Result<(), Failure> {
    print(&match format {
        Format::Json => output::message_json(message)?,
        Format::Text => text(message),
    })
}

pub async fn run_incident(args: IncidentArgs) -> ExitCode {
    let gateway = gateway_url(&args.global.gateway);
    let outcome = incident(&gateway, args).await;
    report(outcome, &gateway)
}

pub async fn run_mention(args: MentionArgs) -> ExitCode {
    let gateway = gateway_url(&args.global.gateway);
    let outcome = mention(&gateway, args).await;
    report(outcome, &gateway)
}

async fn incident(gateway: &str, args: IncidentArgs) -> Result<ExitCode, Failure> {
    let IncidentArgs { global: Global { token, output: format, ca_file, .. }, command } = args;
    let mut client: Client = EscalationServiceClient::new(connect(gateway, token.as_deref(), ca_file.as_deref())?);
    let name = |arg: &str| resource_name("incidents/", arg);
    match command {
        IncidentCommand::List { kind, state, page_size, page_token } => {
            let kind = kind.map(|k| match k {
                Kind::Group => IncidentKind::Group,
                Kind::Media => IncidentKind::Media,
                Kind::Vip => IncidentKind::Vip,
                Kind::Malicious => IncidentKind::Malicious,
            });
            let state = state.map(|s| match s {
                State::Proposed => IncidentState::Proposed,
                State::Declared => IncidentState::Declared,
                State::Closed => IncidentState::Closed,
                State::Dismissed => IncidentState::Dismissed,
            });
            let request = ListIncidentsRequest {
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
                kind: kind.map_or(0, |k| k as i32),
                state: state.map_or(0, |s| s as i32),
            };
            let answer = read(client.list_incidents(request).await)?;
            printed(format, &answer, |answer| {
                let rows = answer
                    .incidents
                    .iter()
                    .map(|i| {
                        [
                            i.name.clone(),
                            word(i.kind().as_str_name(), "INCIDENT_KIND_"),
                            word(i.state().as_str_name(), "INCIDENT_STATE_"),
                            i.member_count.to_string(),
                            i.title.clone(),
                        ]
                    })
                    .collect();
                let mut text = table(["INCIDENT", "KIND", "STATE", "MEMBERS", "TITLE"], rows);
                if !answer.next_page_token.is_empty() {
                    text.push_str(&format!("more: --page-token {}\n", answer.next_page_token));
                }
                text
            })?;
        }
        IncidentCommand::Get { incident } => {
            let found = read(client.get_incident(GetIncidentRequest { name: name(&incident) }).await)?;
            printed(format, &found, incident_text)?;
        }
        IncidentCommand::Members { incident } => {
            let request =
                ListIncidentMembersRequest { incident: name(&incident), page_size: 1000, ..Default::default() };
            let answer = read(client.list_incident_members(request).await)?;
            printed(format, &answer, |answer| {
                let rows = answer
                    .members
                    .iter()
                    .map(|m| {
                        let score = m.r#match.as_ref().map(|x| format!("{:.2}", x.score)).unwrap_or_default();
                        [
                            m.complaint.clone(),
                            m.case.clone(),
                            m.source.clone(),
                            score,
                            if m.linked { "yes" } else { "no" }.to_owned(),
                        ]
                    })
                    .collect();
                table(["COMPLAINT", "CASE", "SOURCE", "SCORE", "LINKED"], rows)
            })?;
        }
        IncidentCommand::Declare { incident, reason, request_id } => {
            let request_id = new_request_id(request_id);
            let request = DeclareIncidentRequest {
                name: name(&incident),
                reason,
                request_id: request_id.clone(),
                ..Default::default()
            };
            let done = changed(client.declare_incident(request).await, request_id)?;
            printed(format, &done, incident_text)?;
        }
        IncidentCommand::Dismiss { incident, reason, request_id } => {
            let request_id = new_request_id(request_id);
            let request = DismissIncidentRequest {
                name: name(&incident),
                reason,
                request_id: request_id.clone(),
                ..Default::default()
            };
            let done = changed(client.dismiss_incident(request).await, request_id)?;
            printed(format, &done, incident_text)?;
        }
        IncidentCommand::Cause { incident, category, description, fix, owner, due, request_id } => {
            let fix_due_time = due.map(|d| parse_time(&d).map_err(usage)).transpose()?;
            let category = match category {
                Category::People => CauseCategory::People,
                Category::Process => CauseCategory::Process,
                Category::System => CauseCategory::System,
                Category::Environment => CauseCategory::Environment,
                Category::Policy => CauseCategory::Policy,
            };
            let cause = SystemicCause {
                category: category as i32,
                description,
                fix,
                fix_owner: owner,
                fix_due_time,
                ..Default::default()
            };
            let request_id = new_request_id(request_id);
            let request = RecordSystemicCauseRequest {
                name: name(&incident),
                systemic_cause: Some(cause),
                request_id: request_id.clone(),
                ..Default::default()
            };
            let done = changed(client.record_systemic_cause(request).await, request_id)?;
            printed(format, &done, incident_text)?;
        }
        IncidentCommand::Close { incident, reason, request_id } => {
            let request_id = new_request_id(request_id);
            let request = CloseIncidentRequest {
                name: name(&incident),
                reason,
                request_id: request_id.clone(),
                ..Default::default()
            };
            let done = changed(client.close_incident(request).await, request_id)?;
            printed(format, &done, incident_text)?;
        }
        IncidentCommand::Statement(StatementCommand::Draft { incident, text, request_id }) => {
            let request_id = new_request_id(request_id);
            let request = DraftStatementRequest { incident: name(&incident), request_id: request_id.clone(), text };
            let done = changed(client.draft_statement(request).await, request_id)?;
            printed(format, &done, statement_text)?;
        }
        IncidentCommand::Statement(StatementCommand::Approve { statement, request_id }) => {
            let request_id = new_request_id(request_id);
            let request = ApproveStatementRequest { name: statement.trim().to_owned(), request_id: request_id.clone() };
            let done = changed(client.approve_statement(request).await, request_id)?;
            printed(format, &done, statement_text)?;
        }
        IncidentCommand::Statement(StatementCommand::Current { incident, case }) => {
            let request = GetCurrentStatementRequest {
                incident: incident.map(|i| name(&i)).unwrap_or_default(),
                case: case.map(|c| resource_name("cases/", &c)).unwrap_or_default(),
                channel: "cli".to_owned(),
            };
            let found = read(client.get_current_statement(request).await)?;
            printed(format, &found, statement_text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn mention(gateway: &str, args: MentionArgs) -> Result<ExitCode, Failure> {
    let MentionArgs { global: Global { token, output: format, ca_file, .. }, command } = args;
    let mut client: Client = EscalationServiceClient::new(connect(gateway, token.as_deref(), ca_file.as_deref())?);
    match command {
        MentionCommand::Report { org_unit, source, url, text, reach, published, request_id } => {
            let publish_time = match published {
                Some(p) => parse_time(&p).map_err(usage)?,
                None => {
                    let now = chrono::Utc::now();
                    prost_types::Timestamp { seconds: now.timestamp(), nanos: now.timestamp_subsec_nanos() as i32 }
                }
            };
            let mention =
                Mention { org_unit, source, url, publish_time: Some(publish_time), text, reach, ..Default::default() };
            let request_id = new_request_id(request_id);
            let request = ReportMentionRequest { request_id: request_id.clone(), mention: Some(mention) };
            let done = changed(client.report_mention(request).await, request_id)?;
            printed(format, &done, mention_text)?;
        }
        MentionCommand::List { incident, page_size, page_token } => {
            let request = ListMentionsRequest {
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
                incident: incident.map(|i| resource_name("incidents/", &i)).unwrap_or_default(),
            };
            let answer = read(client.list_mentions(request).await)?;
            printed(format, &answer, |answer| {
                let rows = answer
                    .mentions
                    .iter()
                    .map(|m| {
                        let text: String = m.text.chars().take(30).collect();
                        [
                            m.name.clone(),
                            m.source.clone(),
                            m.reach.to_string(),
                            m.incident.clone(),
                            text.replace('\n', " "),
                        ]
                    })
                    .collect();
                let mut text = table(["MENTION", "SOURCE", "REACH", "INCIDENT", "TEXT"], rows);
                if !answer.next_page_token.is_empty() {
                    text.push_str(&format!("more: --page-token {}\n", answer.next_page_token));
                }
                text
            })?;
        }
        MentionCommand::Watch { org_unit, name, keywords, entities, volume, window, incident_reach, request_id } => {
            let watchlist = Watchlist {
                org_unit,
                display_name: name,
                keywords,
                entities,
                volume_threshold: volume,
                volume_window_minutes: window,
                incident_reach,
                ..Default::default()
            };
            let request_id = new_request_id(request_id);
            let request = CreateWatchlistRequest { request_id: request_id.clone(), watchlist: Some(watchlist) };
            let done = changed(client.create_watchlist(request).await, request_id)?;
            printed(format, &done, |w| format!("watchlist   {}\nkeywords    {}\n", w.name, w.keywords.join("、")))?;
        }
        MentionCommand::Watchlists => {
            let answer = read(client.list_watchlists(ListWatchlistsRequest::default()).await)?;
            printed(format, &answer, |answer| {
                let rows = answer
                    .watchlists
                    .iter()
                    .map(|w| [w.name.clone(), w.org_unit.clone(), w.display_name.clone(), w.keywords.join("、")])
                    .collect();
                table(["WATCHLIST", "UNIT", "NAME", "KEYWORDS"], rows)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
