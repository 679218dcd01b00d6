//! Reading the rollups: KPIs, breakdowns, series, Pareto charts and hotspots of a unit over a
//! period, each from the cells one query of the store returns. Shared by the API, the reports
//! and the exported gauges.

use std::collections::BTreeMap;
use std::sync::Arc;

use redress_proto::redress::metrics::v1::{AgeingBucket, Granularity, Kpi, KpiValue, Target};

use crate::domain::analysis::{self, Hotspot, ParetoRow};
use crate::domain::dims::ALL;
use crate::domain::kpi::{self, AGEING, Inputs, PeriodDenominators};
use crate::domain::measures::{self as m, Measures};
use crate::domain::period::{Days, month_start};
use crate::domain::rollup::{CellQuery, CellSet, ValueCells};
use crate::store::MetricsStore;

/// Which complaints: every one (`dimension` [`ALL`]) or those with one dimension value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dimension: i32,
    pub value: String,
}

impl Filter {
    pub fn all() -> Self {
        Self { dimension: ALL, value: String::new() }
    }
}

pub struct Reader {
    store: Arc<dyn MetricsStore>,
}

/// A breakdown row: a value and its KPIs.
pub struct Row {
    pub value: String,
    pub kpis: Vec<KpiValue>,
    pub period: Measures,
}

impl Reader {
    pub fn new(store: Arc<dyn MetricsStore>) -> Self {
        Self { store }
    }

    /// The institution's targets: its own where set, else the seed ones; with whether each is
    /// its own.
    pub async fn targets(&self, institution: &str) -> anyhow::Result<BTreeMap<i32, (Target, bool)>> {
        let mut targets: BTreeMap<i32, (Target, bool)> =
            kpi::seed_targets().into_iter().map(|(k, t)| (k, (t, false))).collect();
        for own in self.store.targets(institution).await? {
            let target = Target { kpi: own.kpi, comparator: own.comparator, threshold: own.threshold };
            targets.insert(own.kpi, (target, true));
        }
        Ok(targets)
    }

    async fn target_map(&self, unit: &str) -> anyhow::Result<BTreeMap<i32, Target>> {
        let institution = crate::domain::rollup::units_up(unit).into_iter().next().unwrap_or_default();
        Ok(self.targets(&institution).await?.into_iter().map(|(k, (t, _))| (k, t)).collect())
    }

    /// The unit's denominators over `period`: mean customers and branches of its months,
    /// premium summed; each `None` unless every month has a record.
    pub async fn denominators(&self, unit: &str, period: Days) -> anyhow::Result<PeriodDenominators> {
        let months = Days::new(month_start(period.first), month_start(period.last));
        let rows = self.store.denominators(unit, months).await?;
        let wanted = period.buckets(Granularity::Month).len();
        if rows.is_empty() || rows.len() < wanted {
            return Ok(PeriodDenominators::default());
        }
        let n = rows.len() as i64;
        let mean = |f: fn(&crate::store::StoredDenominators) -> i64| rows.iter().map(f).sum::<i64>() / n;
        Ok(PeriodDenominators {
            customers: Some(mean(|d| d.customers)).filter(|c| *c > 0),
            branches: Some(mean(|d| d.branches)).filter(|b| *b > 0),
            premium_minor: Some(rows.iter().map(|d| d.premium_minor).sum()).filter(|p: &i64| *p > 0),
        })
    }

    async fn cells(&self, q: CellQuery) -> anyhow::Result<CellSet> {
        Ok(CellSet::of(self.store.cells(&q).await?))
    }

    /// The cells a query reads, by value.
    pub async fn values(&self, q: CellQuery) -> anyhow::Result<CellSet> {
        self.cells(q).await
    }

    /// Every KPI of the unit's complaints (or those with one dimension value) over `period`,
    /// against the institution's targets, and the ageing of the cases open now (`today`).
    pub async fn kpis(
        &self,
        unit: &str,
        period: Days,
        filter: &Filter,
        today: i32,
    ) -> anyhow::Result<(Vec<KpiValue>, Vec<AgeingBucket>)> {
        let query = CellQuery::over(unit, filter.dimension, Some(filter.value.clone()), period, true, false);
        let cells = self.cells(query).await?.merged();
        let inputs = Inputs {
            period: cells.sum(period),
            through_end: cells.through(period.last),
            denominators: self.denominators(unit, period).await?,
        };
        let kpis = kpi::kpis(&inputs, &[], &self.target_map(unit).await?);
        let ageing = self.ageing(unit, filter, today).await?;
        Ok((kpis, ageing))
    }

    /// The cases open now by days since receipt.
    pub async fn ageing(&self, unit: &str, filter: &Filter, today: i32) -> anyhow::Result<Vec<AgeingBucket>> {
        let query = CellQuery {
            unit: unit.to_owned(),
            dimension: filter.dimension,
            value: Some(filter.value.clone()),
            months: Days::new(i32::MAX, i32::MAX),
            days: vec![Days::new(i32::MIN, today)],
        };
        let cells = self.cells(query).await?.merged();
        let mut buckets: Vec<AgeingBucket> =
            AGEING.iter().map(|(label, ..)| AgeingBucket { label: (*label).to_owned(), count: 0 }).collect();
        for (day, measures) in cells.days() {
            let age = today - day;
            if let Some(i) = AGEING.iter().position(|(_, from, to)| (*from..=*to).contains(&age)) {
                buckets[i].count += measures.get(m::OPEN);
            }
        }
        Ok(buckets)
    }

    /// The KPIs (every one when `kpis` is empty) of each value of `dimension` over `period`,
    /// by volume received, then resolved, largest first.
    pub async fn breakdown(&self, unit: &str, period: Days, dimension: i32, kpis: &[Kpi]) -> anyhow::Result<Vec<Row>> {
        let cells = self.cells(CellQuery::over(unit, dimension, None, period, true, false)).await?;
        let targets = self.target_map(unit).await?;
        let denominators = self.denominators(unit, period).await?;
        let mut rows: Vec<Row> = cells
            .values
            .iter()
            .map(|(value, cells)| {
                let inputs =
                    Inputs { period: cells.sum(period), through_end: cells.through(period.last), denominators };
                Row { value: value.clone(), kpis: kpi::kpis(&inputs, kpis, &targets), period: inputs.period }
            })
            .filter(|row| {
                // Values with nothing in the period and nothing open at its end are not shown.
                let open = row.kpis.iter().any(|k| k.kpi == Kpi::Backlog as i32 && k.numerator != 0);
                !row.period.is_zero() || open
            })
            .collect();
        rows.sort_by(|a, b| {
            let key = |r: &Row| (r.period.get(m::RECEIVED), r.period.get(m::RESOLVED));
            key(b).cmp(&key(a)).then_with(|| a.value.cmp(&b.value))
        });
        Ok(rows)
    }

    /// One KPI per bucket of `period`.
    pub async fn series(
        &self,
        unit: &str,
        period: Days,
        kpi: Kpi,
        granularity: Granularity,
        filter: &Filter,
    ) -> anyhow::Result<Vec<(Days, KpiValue)>> {
        let every_day = matches!(granularity, Granularity::Day | Granularity::Week);
        let query = CellQuery::over(unit, filter.dimension, Some(filter.value.clone()), period, true, every_day);
        let cells: ValueCells = self.cells(query).await?.merged();
        let targets = self.target_map(unit).await?;
        let needs_denominators =
            matches!(kpi, Kpi::VolumePer10kCustomers | Kpi::VolumePerBranch | Kpi::VolumePer100mPremium);
        let mut out = Vec::new();
        for bucket in period.buckets(granularity) {
            let denominators =
                if needs_denominators { self.denominators(unit, bucket).await? } else { PeriodDenominators::default() };
            let inputs = Inputs { period: cells.sum(bucket), through_end: cells.through(bucket.last), denominators };
            out.push((bucket, kpi::judge(kpi::compute(kpi, &inputs), targets.get(&(kpi as i32)))));
        }
        Ok(out)
    }

    /// Complaints received over `period` by each value of `dimension`.
    pub async fn volumes(&self, unit: &str, period: Days, dimension: i32) -> anyhow::Result<Vec<(String, i64)>> {
        let cells = self.cells(CellQuery::over(unit, dimension, None, period, false, false)).await?;
        Ok(cells.values.iter().map(|(value, c)| (value.clone(), c.sum(period).get(m::RECEIVED))).collect())
    }

    pub async fn pareto(&self, unit: &str, period: Days, dimension: i32) -> anyhow::Result<(i64, Vec<ParetoRow>)> {
        Ok(analysis::pareto(self.volumes(unit, period, dimension).await?))
    }

    /// Hotspots of `dimension` in the window of `window_days` ending `end`, against the mean of
    /// the `baseline_windows` windows before it.
    pub async fn hotspots(&self, unit: &str, q: &HotspotQuery) -> anyhow::Result<(Days, Days, Vec<Hotspot>)> {
        let HotspotQuery { dimension, end, window_days, baseline_windows, min_ratio, min_count } = *q;
        let window = Days::new(end - window_days + 1, end);
        let baseline = Days::new(window.first - window_days * baseline_windows, window.first - 1);
        let all = Days::new(baseline.first, end);
        let cells = self.cells(CellQuery::over(unit, dimension, None, all, false, true)).await?;
        let values = cells.values.iter().map(|(value, c)| {
            let windows = (1..=baseline_windows)
                .map(|k| {
                    let last = window.first - 1 - window_days * (k - 1);
                    c.sum(Days::new(last - window_days + 1, last)).get(m::RECEIVED)
                })
                .collect();
            (value.clone(), c.sum(window).get(m::RECEIVED), windows)
        });
        Ok((window, baseline, analysis::hotspots(values, min_ratio, min_count)))
    }
}

impl Reader {
    /// Complaints received, and how many of them recurrences, with any of `values` of
    /// `dimension` over each of two periods.
    pub async fn target_volumes(
        &self,
        unit: &str,
        dimension: i32,
        values: &[String],
        first: Days,
        second: Days,
    ) -> anyhow::Result<((i64, i64), (i64, i64))> {
        let all = Days::new(first.first.min(second.first), first.last.max(second.last));
        let cells = self.cells(CellQuery::over(unit, dimension, None, all, false, true)).await?;
        let mut out = ((0, 0), (0, 0));
        for (value, c) in cells.values.iter().filter(|(v, _)| values.contains(v)) {
            let (a, b) = (c.sum(first), c.sum(second));
            tracing::debug!(value, "measuring an action's target");
            out.0.0 += a.get(m::RECEIVED);
            out.0.1 += a.get(m::RECURRENCES);
            out.1.0 += b.get(m::RECEIVED);
            out.1.1 += b.get(m::RECURRENCES);
        }
        Ok(out)
    }
}

/// What a hotspot search looks at.
#[derive(Debug, Clone, Copy)]
pub struct HotspotQuery {
    pub dimension: i32,
    /// The last day of the recent window.
    pub end: i32,
    pub window_days: i32,
    pub baseline_windows: i32,
    pub min_ratio: f64,
    pub min_count: i64,
}
