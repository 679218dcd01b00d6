//! `redress metrics …`: quality metrics from the command line — KPIs against targets, a
//! breakdown by one dimension, the Pareto of causes, quarterly reports written to a file,
//! root causes and improvement actions, and the rebuild of the read models. One call per
//! invocation; lists print under a header row.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use redress_proto::redress::metrics::v1::improvement_service_client::ImprovementServiceClient;
use redress_proto::redress::metrics::v1::quality_metrics_service_client::QualityMetricsServiceClient;
use redress_proto::redress::metrics::v1::{
    ActionStatus, ActionTarget, CreateImprovementActionRequest, CreateRootCauseRequest, Dimension, DimensionValue,
    Factor, FishboneCategory, GenerateReportRequest, GetActionEffectRequest, GetBreakdownRequest, GetKpisRequest,
    GetParetoRequest, ImprovementAction, KpiValue, ListImprovementActionsRequest, ListRootCausesRequest, Period,
    RebuildReadModelsRequest, ReportFormat, ReportKind, RootCause, UpdateImprovementActionRequest,
};

use crate::output::{self, Format};
use crate::{Failure, Global, changed, connect, gateway_url, print, read, report, resource_name, usage};

/// KPIs, breakdowns, Pareto charts, reports, root causes and improvement actions, through a
/// running gateway.
#[derive(Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: MetricsCommand,
}

/// The days a figure covers: a quarter, or a first and last day.
#[derive(Args, Clone)]
struct Days {
    /// A quarter, e.g. 2026-Q1.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    quarter: Option<String>,
    /// First day, YYYY-MM-DD.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Last day, YYYY-MM-DD.
    #[arg(long, requires = "from")]
    to: Option<String>,
}

#[derive(Subcommand)]
enum MetricsCommand {
    /// Every KPI of a unit over a period with its numerator, denominator and target.
    Kpis {
        /// The unit, e.g. institutions/acme.
        #[arg(long)]
        unit: String,
        #[command(flatten)]
        days: Days,
        /// Only complaints with a dimension value, e.g. channel=CHANNEL_PHONE or cause=C05.
        #[arg(long)]
        filter: Option<String>,
    },
    /// KPIs by each value of one dimension.
    Breakdown {
        #[arg(long)]
        unit: String,
        #[command(flatten)]
        days: Days,
        /// The dimension.
        #[arg(long, value_enum)]
        by: By,
    },
    /// Values of a dimension (causes by default) by volume, with the cumulative share.
    Pareto {
        #[arg(long)]
        unit: String,
        #[command(flatten)]
        days: Days,
        #[arg(long, value_enum, default_value_t = By::Cause)]
        by: By,
    },
    /// Writes a quarterly report to a file.
    Report {
        #[arg(long)]
        unit: String,
        /// The quarter, e.g. 2026-Q1.
        #[arg(long)]
        quarter: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long = "as", value_enum, default_value_t = Written::Csv)]
        written: Written,
        /// Where to write it; the report's own file name in the current directory when unset.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Root causes: record one (5-Why, fishbone factors) or list them.
    Rca {
        #[command(subcommand)]
        command: RcaCommand,
    },
    /// Improvement actions: add, list, move their status, measure their effect.
    Actions {
        #[command(subcommand)]
        command: ActionCommand,
    },
    /// Drops the read models and replays the feeds from their start.
    Rebuild,
}

#[derive(Subcommand)]
enum RcaCommand {
    /// Record a root-cause analysis of a case.
    Add {
        #[arg(long)]
        unit: String,
        /// The case analysed.
        #[arg(long)]
        case: String,
        #[arg(long)]
        problem: String,
        /// Each answer of the 5-Why chain, in order.
        #[arg(long = "why", required = true)]
        whys: Vec<String>,
        /// A contributing factor as category:description, e.g. process:未复核扣费.
        #[arg(long = "factor")]
        factors: Vec<String>,
        /// A cause code it explains.
        #[arg(long = "cause")]
        causes: Vec<String>,
        #[arg(long)]
        systemic: bool,
        /// Idempotency key; a fresh one when unset.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List root causes, newest first.
    List,
}

#[derive(Subcommand)]
enum ActionCommand {
    /// Add an improvement action for some causes of a unit.
    Add {
        #[arg(long)]
        unit: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        department: Option<String>,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: String,
        /// The cause codes it targets.
        #[arg(long = "cause", required = true)]
        causes: Vec<String>,
        /// The root cause it answers.
        #[arg(long)]
        root_cause: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List actions by due date.
    List {
        #[arg(long, value_enum)]
        status: Option<Status>,
    },
    /// Move an action's status.
    Status {
        action: String,
        #[arg(value_enum)]
        status: Status,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The change in volume and recurrence of a done action's target.
    Effect {
        action: String,
        /// Days in each window (default 90).
        #[arg(long)]
        window: Option<i32>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum By {
    Channel,
    BusinessType,
    Cause,
    Right,
    Grade,
    Department,
    OrgUnit,
    Handler,
    Incident,
    Source,
    Product,
}

impl From<By> for Dimension {
    fn from(by: By) -> Self {
        match by {
            By::Channel => Dimension::Channel,
            By::BusinessType => Dimension::BusinessType,
            By::Cause => Dimension::Cause,
            By::Right => Dimension::Right,
            By::Grade => Dimension::Grade,
            By::Department => Dimension::Department,
            By::OrgUnit => Dimension::OrgUnit,
            By::Handler => Dimension::Handler,
            By::Incident => Dimension::Incident,
            By::Source => Dimension::Source,
            By::Product => Dimension::Product,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Regulator,
    Insurance,
    Fca,
    Management,
}

#[derive(Clone, Copy, ValueEnum)]
enum Written {
    Csv,
    Xlsx,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum Status {
    Planned,
    InProgress,
    Done,
    Cancelled,
}

impl From<Status> for ActionStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Planned => ActionStatus::Planned,
            Status::InProgress => ActionStatus::InProgress,
            Status::Done => ActionStatus::Done,
            Status::Cancelled => ActionStatus::Cancelled,
        }
    }
}

/// Runs one `redress metrics` command and says how it went in the exit code.
pub async fn run(args: MetricsArgs) -> ExitCode {
    let gateway = gateway_url(&args.global.gateway);
    let outcome = execute(&gateway, args).await;
    report(outcome, &gateway)
}

/// A table under a header row, columns aligned by display width.
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

fn period(days: &Days) -> Result<Period, Failure> {
    if let Some(q) = &days.quarter {
        let (year, n) =
            q.split_once(['-', 'Q', 'q']).map(|(y, n)| (y, n.trim_start_matches(['Q', 'q']))).unwrap_or_default();
        let (Ok(year), Ok(n)) = (year.parse::<i32>(), n.parse::<u32>()) else {
            return Err(usage(format!("--quarter {q:?}: expected YYYY-Qn, e.g. 2026-Q1")));
        };
        if !(1..=4).contains(&n) {
            return Err(usage(format!("--quarter {q:?}: a year has quarters 1 to 4")));
        }
        let last = [31, 30, 30, 31][(n - 1) as usize];
        let (first_month, last_month) = ((n - 1) * 3 + 1, n * 3);
        return Ok(Period {
            start_date: format!("{year}-{first_month:02}-01"),
            end_date: format!("{year}-{last_month:02}-{last}"),
        });
    }
    match (&days.from, &days.to) {
        (Some(from), Some(to)) => Ok(Period { start_date: from.clone(), end_date: to.clone() }),
        _ => Err(usage("give --quarter YYYY-Qn, or --from and --to")),
    }
}

fn kpi_name(k: i32) -> String {
    redress_proto::redress::metrics::v1::Kpi::try_from(k)
        .map(|k| k.as_str_name().trim_start_matches("KPI_").to_lowercase())
        .unwrap_or_default()
}

fn kpi_rows(kpis: &[KpiValue]) -> Vec<[String; 6]> {
    kpis.iter()
        .map(|k| {
            let target = k.target.as_ref().map_or_else(String::new, |t| {
                let op = ["", "≥", ">", "≤", "<"].get(t.comparator as usize).copied().unwrap_or_default();
                format!("{op} {}", t.threshold)
            });
            let meets = match (&k.target, k.meets_target) {
                (None, _) => String::new(),
                (Some(_), true) => "yes".to_owned(),
                (Some(_), false) => "no".to_owned(),
            };
            [
                kpi_name(k.kpi),
                format!("{:.2} {}", k.value, k.unit),
                k.numerator.to_string(),
                k.denominator.to_string(),
                target,
                meets,
            ]
        })
        .collect()
}

fn new_request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn action_rows(actions: &[ImprovementAction]) -> Vec<[String; 6]> {
    actions
        .iter()
        .map(|a| {
            let status = ActionStatus::try_from(a.status)
                .map(|s| s.as_str_name().trim_start_matches("ACTION_STATUS_").to_lowercase())
                .unwrap_or_default();
            let flag = if a.overdue { "overdue" } else { "" };
            [a.name.clone(), a.title.clone(), a.owner.clone(), a.due_date.clone(), status, flag.to_owned()]
        })
        .collect()
}

async fn execute(gateway: &str, args: MetricsArgs) -> Result<ExitCode, Failure> {
    let MetricsArgs { global: Global { token, output: format, ca_file, .. }, command } = args;
    let channel = connect(gateway, token.as_deref(), ca_file.as_deref())?;
    let mut metrics = QualityMetricsServiceClient::new(channel.clone());
    let mut improvement = ImprovementServiceClient::new(channel);
    let text = match command {
        MetricsCommand::Kpis { unit, days, filter } => {
            let filter = match filter {
                None => None,
                Some(f) => {
                    let (by, value) = f.split_once('=').ok_or_else(|| usage("--filter: expected DIMENSION=VALUE"))?;
                    let by =
                        By::from_str(by, true).map_err(|_| usage(format!("--filter: {by:?} is not a dimension")))?;
                    Some(DimensionValue { dimension: Dimension::from(by) as i32, value: value.to_owned() })
                }
            };
            let request = GetKpisRequest { org_unit: unit, period: Some(period(&days)?), filter };
            let answer = read(metrics.get_kpis(request).await)?;
            match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => {
                    let mut text =
                        table(["KPI", "VALUE", "NUMERATOR", "DENOMINATOR", "TARGET", "MEETS"], kpi_rows(&answer.kpis));
                    text.push('\n');
                    let ageing = answer.ageing.iter().map(|b| [b.label.clone(), b.count.to_string()]).collect();
                    text.push_str(&table(["OPEN NOW, AGED", "CASES"], ageing));
                    text
                }
            }
        }
        MetricsCommand::Breakdown { unit, days, by } => {
            let request = GetBreakdownRequest {
                org_unit: unit,
                period: Some(period(&days)?),
                dimension: Dimension::from(by) as i32,
                kpis: Vec::new(),
            };
            let answer = read(metrics.get_breakdown(request).await)?;
            match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => {
                    let pick = |row: &redress_proto::redress::metrics::v1::BreakdownRow, kpi: i32| {
                        row.kpis.iter().find(|k| k.kpi == kpi).map_or_else(String::new, |k| format!("{:.2}", k.value))
                    };
                    use redress_proto::redress::metrics::v1::Kpi;
                    let rows = answer
                        .rows
                        .iter()
                        .map(|r| {
                            [
                                if r.value.is_empty() { "-".to_owned() } else { r.value.clone() },
                                r.label.clone(),
                                pick(r, Kpi::Volume as i32),
                                pick(r, Kpi::Resolved as i32),
                                pick(r, Kpi::OnTime as i32),
                                pick(r, Kpi::Satisfaction as i32),
                                pick(r, Kpi::Backlog as i32),
                            ]
                        })
                        .collect();
                    table(["VALUE", "LABEL", "RECEIVED", "RESOLVED", "ON TIME %", "SATISFIED %", "BACKLOG"], rows)
                }
            }
        }
        MetricsCommand::Pareto { unit, days, by } => {
            let request = GetParetoRequest {
                org_unit: unit,
                period: Some(period(&days)?),
                dimension: Dimension::from(by) as i32,
            };
            let answer = read(metrics.get_pareto(request).await)?;
            match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => {
                    let rows = answer
                        .rows
                        .iter()
                        .map(|r| {
                            [
                                r.value.clone(),
                                r.label.clone(),
                                r.count.to_string(),
                                format!("{:.2}", r.share),
                                format!("{:.2}", r.cumulative_share),
                                if r.vital_few { "*".to_owned() } else { String::new() },
                            ]
                        })
                        .collect();
                    table(["VALUE", "LABEL", "COMPLAINTS", "SHARE %", "CUMULATIVE %", "VITAL FEW"], rows)
                }
            }
        }
        MetricsCommand::Report { unit, quarter, kind, written, out } => {
            let kind = match kind {
                Kind::Regulator => ReportKind::RegulatorQuarterly,
                Kind::Insurance => ReportKind::InsuranceIndicators,
                Kind::Fca => ReportKind::FcaReturn,
                Kind::Management => ReportKind::Management,
            };
            let written = match written {
                Written::Csv => ReportFormat::Csv,
                Written::Xlsx => ReportFormat::Xlsx,
                Written::Html => ReportFormat::Html,
            };
            let request = GenerateReportRequest { org_unit: unit, kind: kind as i32, format: written as i32, quarter };
            let answer = read(metrics.generate_report(request).await)?;
            let path = out.unwrap_or_else(|| PathBuf::from(&answer.file_name));
            std::fs::write(&path, &answer.content)
                .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
            format!("wrote {} ({} bytes)\n", path.display(), answer.content.len())
        }
        MetricsCommand::Rca {
            command: RcaCommand::Add { unit, case, problem, whys, factors, causes, systemic, request_id },
        } => {
            let mut parsed = Vec::new();
            for f in factors {
                let (category, description) =
                    f.split_once(':').ok_or_else(|| usage(format!("--factor {f:?}: expected CATEGORY:DESCRIPTION")))?;
                let category = match category.trim().to_lowercase().as_str() {
                    "people" => FishboneCategory::People,
                    "process" => FishboneCategory::Process,
                    "system" => FishboneCategory::System,
                    "environment" => FishboneCategory::Environment,
                    "policy" => FishboneCategory::Policy,
                    other => {
                        return Err(usage(format!(
                            "--factor: {other:?} is not people, process, system, environment or policy"
                        )));
                    }
                };
                parsed.push(Factor { category: category as i32, description: description.trim().to_owned() });
            }
            let root = RootCause {
                org_unit: unit,
                r#case: resource_name("cases/", &case),
                problem,
                whys,
                factors: parsed,
                cause_codes: causes,
                systemic,
                ..Default::default()
            };
            let request_id = new_request_id(request_id);
            let request = CreateRootCauseRequest { request_id: request_id.clone(), root_cause: Some(root) };
            let recorded = changed(improvement.create_root_cause(request).await, request_id)?;
            match format {
                Format::Json => output::message_json(&recorded)?,
                Format::Text => format!("recorded {}\n", recorded.name),
            }
        }
        MetricsCommand::Rca { command: RcaCommand::List } => {
            let answer = read(improvement.list_root_causes(ListRootCausesRequest::default()).await)?;
            match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => {
                    let rows = answer
                        .root_causes
                        .iter()
                        .map(|r| {
                            let subject = if r.r#case.is_empty() { r.incident.clone() } else { r.r#case.clone() };
                            [
                                r.name.clone(),
                                subject,
                                r.whys.last().cloned().unwrap_or_default(),
                                r.cause_codes.join(" "),
                            ]
                        })
                        .collect();
                    table(["ROOT CAUSE", "OF", "ROOT", "CAUSES"], rows)
                }
            }
        }
        MetricsCommand::Actions { command } => match command {
            ActionCommand::Add { unit, title, owner, department, due, causes, root_cause, request_id } => {
                let action = ImprovementAction {
                    title,
                    owner,
                    department: department.unwrap_or_default(),
                    due_date: due,
                    root_cause: root_cause.map(|r| resource_name("rootCauses/", &r)).unwrap_or_default(),
                    target: Some(ActionTarget { org_unit: unit, dimension: Dimension::Cause as i32, values: causes }),
                    ..Default::default()
                };
                let request_id = new_request_id(request_id);
                let request = CreateImprovementActionRequest { request_id: request_id.clone(), action: Some(action) };
                let created = changed(improvement.create_improvement_action(request).await, request_id)?;
                match format {
                    Format::Json => output::message_json(&created)?,
                    Format::Text => table(["ACTION", "TITLE", "OWNER", "DUE", "STATUS", ""], action_rows(&[created])),
                }
            }
            ActionCommand::List { status } => {
                let request = ListImprovementActionsRequest {
                    status: status.map_or(0, |s| ActionStatus::from(s) as i32),
                    ..Default::default()
                };
                let answer = read(improvement.list_improvement_actions(request).await)?;
                match format {
                    Format::Json => output::message_json(&answer)?,
                    Format::Text => {
                        table(["ACTION", "TITLE", "OWNER", "DUE", "STATUS", ""], action_rows(&answer.actions))
                    }
                }
            }
            ActionCommand::Status { action, status, request_id } => {
                let request_id = new_request_id(request_id);
                let request = UpdateImprovementActionRequest {
                    action: Some(ImprovementAction {
                        name: resource_name("improvementActions/", &action),
                        ..Default::default()
                    }),
                    update_mask: vec!["status".to_owned()],
                    status: ActionStatus::from(status) as i32,
                    request_id: request_id.clone(),
                    ..Default::default()
                };
                let updated = changed(improvement.update_improvement_action(request).await, request_id)?;
                match format {
                    Format::Json => output::message_json(&updated)?,
                    Format::Text => table(["ACTION", "TITLE", "OWNER", "DUE", "STATUS", ""], action_rows(&[updated])),
                }
            }
            ActionCommand::Effect { action, window } => {
                let request = GetActionEffectRequest {
                    name: resource_name("improvementActions/", &action),
                    window_days: window.unwrap_or_default(),
                };
                let e = read(improvement.get_action_effect(request).await)?;
                match format {
                    Format::Json => output::message_json(&e)?,
                    Format::Text => {
                        let span = |p: &Option<Period>| {
                            p.as_ref().map_or_else(String::new, |p| format!("{} .. {}", p.start_date, p.end_date))
                        };
                        table(
                            ["WINDOW", "DAYS", "COMPLAINTS", "PER DAY", "RECURRENCE %"],
                            vec![
                                [
                                    "before".to_owned(),
                                    span(&e.before),
                                    e.volume_before.to_string(),
                                    format!("{:.2}", e.daily_before),
                                    format!("{:.2}", e.recurrence_before),
                                ],
                                [
                                    "after".to_owned(),
                                    span(&e.after),
                                    e.volume_after.to_string(),
                                    format!("{:.2}", e.daily_after),
                                    format!("{:.2}", e.recurrence_after),
                                ],
                            ],
                        ) + &format!("daily volume change: {:+.2} %\n", e.volume_change_percent)
                    }
                }
            }
        },
        MetricsCommand::Rebuild => {
            let status = read(metrics.rebuild_read_models(RebuildReadModelsRequest {}).await)?;
            match format {
                Format::Json => output::message_json(&status)?,
                Format::Text => {
                    format!("read models dropped (rebuild {}); the consumers replay their feeds\n", status.rebuilds)
                }
            }
        }
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_name_their_days() {
        let days = |q: &str| Days { quarter: Some(q.to_owned()), from: None, to: None };
        let p = period(&days("2026-Q1")).ok().unwrap_or_default();
        assert_eq!((p.start_date.as_str(), p.end_date.as_str()), ("2026-01-01", "2026-03-31"));
        let p = period(&days("2026q4")).ok().unwrap_or_default();
        assert_eq!((p.start_date.as_str(), p.end_date.as_str()), ("2026-10-01", "2026-12-31"));
        assert!(period(&days("2026-Q5")).is_err());
    }

    #[test]
    fn lists_print_under_a_header_row() {
        let a = ImprovementAction {
            name: "improvementActions/1".to_owned(),
            title: "短信告知".to_owned(),
            owner: "user:li".to_owned(),
            due_date: "2026-06-30".to_owned(),
            status: ActionStatus::InProgress as i32,
            ..Default::default()
        };
        let text = table(["ACTION", "TITLE", "OWNER", "DUE", "STATUS", ""], action_rows(&[a]));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ACTION") && lines[1].contains("in_progress"), "{text}");
    }
}
