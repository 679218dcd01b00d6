//! KPIs as Prometheus gauges: every institution the read models hold, its quarter-to-date KPIs
//! against their targets, its backlog by age and its month-to-date volume by channel, cause
//! and incident, refreshed by a supervised task. The Grafana dashboards in `deploy/grafana/`
//! query exactly these names ([`EXPORTED`]); a test checks that they do.

use std::sync::Arc;
use std::time::Duration;

use chrono::Datelike;
use redress_platform::time::Clock;
use redress_proto::redress::metrics::v1::{Dimension, Kpi};
use tokio_util::sync::CancellationToken;

use crate::domain::measures as m;
use crate::domain::period::{Days, date_of, month_start};
use crate::domain::rollup::CellQuery;
use crate::read::{Filter, Reader};
use crate::store::MetricsStore;

/// A KPI's value over the quarter to date (`institution`, `kpi`).
pub const KPI: &str = "redress_quality_kpi";
/// Its numerator and denominator.
pub const KPI_NUMERATOR: &str = "redress_quality_kpi_numerator";
pub const KPI_DENOMINATOR: &str = "redress_quality_kpi_denominator";
/// Its target's threshold.
pub const KPI_TARGET: &str = "redress_quality_kpi_target";
/// 1 when it meets its target, 0 when it misses (absent without a target or data).
pub const KPI_MEETS_TARGET: &str = "redress_quality_kpi_meets_target";
/// Cases open now by age (`institution`, `age`).
pub const BACKLOG: &str = "redress_quality_backlog";
/// Complaints received this month (`institution`, `dimension`, `value`).
pub const RECEIVED_MONTH: &str = "redress_quality_received_month_to_date";
/// Improvement actions open and overdue (`institution`).
pub const ACTIONS_OPEN: &str = "redress_quality_actions_open";
pub const ACTIONS_OVERDUE: &str = "redress_quality_actions_overdue";

/// Every metric name quality-metrics exports, its gauges and the platform's consumer metrics
/// it feeds.
pub const EXPORTED: &[&str] = &[
    KPI,
    KPI_NUMERATOR,
    KPI_DENOMINATOR,
    KPI_TARGET,
    KPI_MEETS_TARGET,
    BACKLOG,
    RECEIVED_MONTH,
    ACTIONS_OPEN,
    ACTIONS_OVERDUE,
    "redress_consumer_position",
    "redress_consumer_events_total",
    "redress_consumer_failures_total",
    "redress_consumer_dead_letters_total",
    "redress_improvement_action_reminders_total",
    "redress_metrics_facts_changed_total",
];

fn kpi_label(k: i32) -> String {
    Kpi::try_from(k).map(|k| k.as_str_name().trim_start_matches("KPI_").to_lowercase()).unwrap_or_default()
}

/// Sets every gauge of one institution, as of `now`.
pub async fn export(store: &Arc<dyn MetricsStore>, institution: &str, clock: &Clock) -> anyhow::Result<()> {
    let reader = Reader::new(store.clone());
    let today = store.calendars().today(institution, clock.now());
    let date = date_of(today);
    let quarter = Days::quarter(&format!("{}-Q{}", date.year(), (date.month() - 1) / 3 + 1))
        .map_or(Days::new(today, today), |q| Days::new(q.first, today));
    let (kpis, ageing) = reader.kpis(institution, quarter, &Filter::all(), today).await?;
    let unit = institution.to_owned();
    for k in &kpis {
        let labels = [("institution", unit.clone()), ("kpi", kpi_label(k.kpi))];
        metrics::gauge!(KPI, &labels).set(k.value);
        metrics::gauge!(KPI_NUMERATOR, &labels).set(k.numerator as f64);
        metrics::gauge!(KPI_DENOMINATOR, &labels).set(k.denominator as f64);
        if let Some(target) = &k.target {
            metrics::gauge!(KPI_TARGET, &labels).set(target.threshold);
            if k.status == redress_proto::redress::metrics::v1::TargetStatus::Meets as i32
                || k.status == redress_proto::redress::metrics::v1::TargetStatus::Misses as i32
            {
                metrics::gauge!(KPI_MEETS_TARGET, &labels).set(if k.meets_target { 1.0 } else { 0.0 });
            }
        }
    }
    for bucket in ageing {
        metrics::gauge!(BACKLOG, "institution" => unit.clone(), "age" => bucket.label).set(bucket.count as f64);
    }
    let month = Days::new(month_start(today), today);
    for d in [Dimension::Channel, Dimension::Cause, Dimension::Incident] {
        let cells = reader.values(CellQuery::over(institution, d as i32, None, month, false, false)).await?;
        let name = d.as_str_name().trim_start_matches("DIMENSION_").to_lowercase();
        for (value, c) in &cells.values {
            let labels = [("institution", unit.clone()), ("dimension", name.clone()), ("value", value.clone())];
            metrics::gauge!(RECEIVED_MONTH, &labels).set(c.sum(month).get(m::RECEIVED) as f64);
        }
    }
    let scope = Some(institution.to_owned());
    let (mut open, mut overdue) = (0, 0);
    let mut after = None;
    loop {
        let page = store.actions(scope.clone(), None, after.clone(), 500).await?;
        for (a, _) in &page {
            open += i64::from(crate::domain::improvement::is_open(a));
            overdue += i64::from(a.overdue && crate::domain::improvement::is_open(a));
        }
        match page.last() {
            Some((_, cursor)) if page.len() == 500 => after = Some(cursor.clone()),
            _ => break,
        }
    }
    metrics::gauge!(ACTIONS_OPEN, "institution" => unit.clone()).set(open as f64);
    metrics::gauge!(ACTIONS_OVERDUE, "institution" => unit).set(overdue as f64);
    Ok(())
}

/// Refreshes the gauges of every institution every `interval` until `stop`.
pub async fn run(store: Arc<dyn MetricsStore>, clock: Clock, interval: Duration, stop: CancellationToken) {
    loop {
        match store.institutions().await {
            Ok(institutions) => {
                for institution in institutions {
                    if let Err(e) = export(&store, &institution, &clock).await {
                        tracing::warn!(institution, error = format!("{e:#}"), "exporting KPI gauges failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "listing institutions for KPI gauges failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
