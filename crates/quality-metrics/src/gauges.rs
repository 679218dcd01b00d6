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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone, Utc};
    use metrics_exporter_prometheus::PrometheusBuilder;
    use redress_platform::principal::Principal;
    use redress_platform::ready::Ready;
    use redress_platform::testing::TestDatabase;
    use redress_proto::redress::metrics::v1::improvement_service_server::ImprovementService;
    use redress_proto::redress::metrics::v1::quality_metrics_service_server::QualityMetricsService;
    use redress_proto::redress::metrics::v1::{
        ActionTarget, Comparator, CreateImprovementActionRequest, GetBreakdownRequest, GetKpisRequest,
        ImprovementAction, ListImprovementActionsRequest, Period, TargetStatus,
    };
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::MetricsApi;
    use crate::store::{CASE_CONSUMER, INTAKE_CONSUMER, Improvement, Write};

    const BANK: &str = "institutions/bank";

    /// The scraped samples: (metric, labels) → value.
    type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

    /// The samples of Prometheus' text format (labels as written, unescaped).
    fn samples(text: &str) -> Samples {
        let mut out = Samples::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, mut rest) = series.split_once('{').unwrap_or((series, "}"));
            let mut labels = BTreeMap::new();
            while let Some((key, after)) = rest.split_once("=\"") {
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().unwrap() {
                        (_, '\\') => value.push(match chars.next().unwrap().1 {
                            'n' => '\n',
                            c => c,
                        }),
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(key.trim_start_matches(',').to_owned(), value);
                rest = &after[end + 1..];
            }
            out.insert((name.to_owned(), labels), value.parse().unwrap());
        }
        out
    }

    fn sample(all: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        all.get(&(name.to_owned(), labels)).copied()
    }

    /// Every sample of `name` for `institution`, by its other labels.
    fn family(all: &Samples, name: &str) -> BTreeMap<Vec<String>, f64> {
        all.iter()
            .filter(|((n, labels), _)| n == name && labels.get("institution").map(String::as_str) == Some(BANK))
            .map(|((_, labels), v)| {
                (labels.iter().filter(|(k, _)| *k != "institution").map(|(_, v)| v.clone()).collect(), *v)
            })
            .collect()
    }

    fn manager() -> Principal {
        Principal {
            subject: "user:quality".to_owned(),
            org_unit: BANK.to_owned(),
            permissions: ["cases.read", "cases.write"].map(str::to_owned).to_vec(),
            ..Principal::default()
        }
    }

    fn request<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(Arc::new(manager()));
        request
    }

    fn period(first: &str, last: &str) -> Option<Period> {
        Some(Period { start_date: first.to_owned(), end_date: last.to_owned() })
    }

    /// Noon in Shanghai on `day`.
    fn noon(day: &str) -> DateTime<Utc> {
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        Utc.from_utc_datetime(&date.and_hms_opt(4, 0, 0).unwrap())
    }

    /// The gauges of an institution are the KPIs, ageing, month-to-date volumes and action
    /// counts the API answers for the same day: known complaints and cases, targets met and
    /// missed, one action overdue.
    #[tokio::test]
    async fn the_gauges_are_what_the_api_answers() {
        let db = TestDatabase::sqlite("gauges").unwrap();
        let calendars = crate::store::conformance_calendars();
        let store =
            crate::open_store(&db.config, calendars, &redress_platform::host::Supervisor::detached()).await.unwrap();
        let (intake, cases) = crate::store::conformance_scenario();
        for (consumer, events) in [(INTAKE_CONSUMER, intake), (CASE_CONSUMER, cases)] {
            let (_, epoch) = store.position(consumer).await.unwrap();
            store.apply(consumer, epoch, events).await.unwrap();
        }
        let targets = vec![
            (Kpi::Satisfaction as i32, Some((Comparator::AtLeast as i32, 85.0))),
            (Kpi::WithdrawalRate as i32, Some((Comparator::AtMost as i32, 10.0))),
        ];
        store
            .write(None, Write::Targets { institution: BANK.to_owned(), targets, by: "user:head".to_owned() })
            .await
            .unwrap();
        let clock = Clock::fixed(noon("2026-03-31"));
        let api = MetricsApi::new(Ready::from(store.clone()), CancellationToken::new()).with_clock(clock.clone());
        for (id, due) in [("a1", "2026-03-20"), ("a2", "2026-06-30")] {
            let action = ImprovementAction {
                title: "年费扣收前短信告知".to_owned(),
                owner: "user:li".to_owned(),
                department: "cards".to_owned(),
                due_date: due.to_owned(),
                target: Some(ActionTarget { org_unit: BANK.to_owned(), dimension: 0, values: vec!["C05".to_owned()] }),
                ..Default::default()
            };
            let create = CreateImprovementActionRequest { request_id: id.to_owned(), action: Some(action) };
            api.create_improvement_action(request(create)).await.unwrap();
        }
        for id in store.actions_to_remind(clock.now(), 10).await.unwrap() {
            store.improve(None, Improvement::Remind { id, now: clock.now() }).await.unwrap();
        }

        let recorder = PrometheusBuilder::new().build_recorder();
        let scraped = {
            let _local = metrics::set_default_local_recorder(&recorder);
            assert_eq!(store.institutions().await.unwrap(), [BANK]);
            export(&store, BANK, &clock).await.unwrap();
            samples(&recorder.handle().render())
        };

        // The quarter to date (31 March is its last day) as GetKpis answers it.
        let asked =
            GetKpisRequest { org_unit: BANK.to_owned(), period: period("2026-01-01", "2026-03-31"), filter: None };
        let report = api.get_kpis(request(asked)).await.unwrap().into_inner();
        assert_eq!(family(&scraped, KPI).len(), report.kpis.len());
        let (mut meets, mut misses) = (0, 0);
        for k in &report.kpis {
            let labels = [("institution", BANK), ("kpi", &kpi_label(k.kpi))];
            let value = sample(&scraped, KPI, &labels).unwrap();
            assert!(value == k.value || (value.is_nan() && k.value.is_nan()), "{k:?}: {value}");
            assert_eq!(sample(&scraped, KPI_NUMERATOR, &labels), Some(k.numerator as f64), "{k:?}");
            assert_eq!(sample(&scraped, KPI_DENOMINATOR, &labels), Some(k.denominator as f64), "{k:?}");
            assert_eq!(sample(&scraped, KPI_TARGET, &labels), k.target.as_ref().map(|t| t.threshold), "{k:?}");
            let judged = k.status == TargetStatus::Meets as i32 || k.status == TargetStatus::Misses as i32;
            let expected = judged.then_some(if k.meets_target { 1.0 } else { 0.0 });
            assert_eq!(sample(&scraped, KPI_MEETS_TARGET, &labels), expected, "{k:?}");
            meets += i32::from(judged && k.meets_target);
            misses += i32::from(judged && !k.meets_target);
        }
        assert!(meets > 0 && misses > 0, "targets both met and missed: {meets}, {misses}");
        // What the facts say: three complaints received in the quarter, half withdrawn of two resolved.
        assert_eq!(sample(&scraped, KPI, &[("institution", BANK), ("kpi", "volume")]), Some(3.0));
        assert_eq!(sample(&scraped, KPI, &[("institution", BANK), ("kpi", "withdrawal_rate")]), Some(50.0));
        assert_eq!(sample(&scraped, KPI_MEETS_TARGET, &[("institution", BANK), ("kpi", "withdrawal_rate")]), Some(0.0));

        let backlog: BTreeMap<Vec<String>, f64> =
            report.ageing.iter().map(|b| (vec![b.label.clone()], b.count as f64)).collect();
        assert_eq!(family(&scraped, BACKLOG), backlog);
        assert_eq!(backlog.values().sum::<f64>(), 1.0, "complaint 3 is open");

        // March to date by channel, cause and incident, as GetBreakdown answers it.
        let mut month = BTreeMap::new();
        for d in [Dimension::Channel, Dimension::Cause, Dimension::Incident] {
            let asked = GetBreakdownRequest {
                org_unit: BANK.to_owned(),
                period: period("2026-03-01", "2026-03-31"),
                dimension: d as i32,
                kpis: vec![Kpi::Volume as i32],
            };
            let name = d.as_str_name().trim_start_matches("DIMENSION_").to_lowercase();
            for row in api.get_breakdown(request(asked)).await.unwrap().into_inner().rows {
                month.insert(vec![name.clone(), row.value], row.kpis[0].numerator as f64);
            }
        }
        let mut received = family(&scraped, RECEIVED_MONTH);
        received.retain(|_, n| *n > 0.0);
        month.retain(|_, n| *n > 0.0);
        assert_eq!(received, month);
        assert_eq!(received.len(), 3, "complaint 3 by its channel, cause and incident: {received:?}");

        let listed = ListImprovementActionsRequest::default();
        let actions = api.list_improvement_actions(request(listed)).await.unwrap().into_inner().actions;
        let open = actions.iter().filter(|a| crate::domain::improvement::is_open(a)).count() as f64;
        let overdue = actions.iter().filter(|a| a.overdue && crate::domain::improvement::is_open(a)).count() as f64;
        assert_eq!((open, overdue), (2.0, 1.0));
        assert_eq!(sample(&scraped, ACTIONS_OPEN, &[("institution", BANK)]), Some(open));
        assert_eq!(sample(&scraped, ACTIONS_OVERDUE, &[("institution", BANK)]), Some(overdue));
    }
}
