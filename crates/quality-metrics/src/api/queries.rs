//! KPIs, breakdowns, series, Pareto charts and hotspots of a unit the caller covers.

use redress_platform::error::Violations;
use redress_platform::principal::{Permission, Principal};
use redress_proto::redress::metrics::v1::{
    Breakdown, BreakdownRow, Dimension, GenerateReportRequest, GetBreakdownRequest, GetKpisRequest, GetParetoRequest,
    GetSeriesRequest, Granularity, Hotspot, Kpi, KpiReport, ListHotspotsRequest, ListHotspotsResponse, Pareto,
    ParetoRow, Report, ReportFormat, ReportKind, ReportRow, ReportTable, Series, SeriesPoint,
};

use super::MetricsApi;
use super::parse;
use crate::domain::dims::label;
use crate::domain::period::Days;
use crate::error::MetricsError;
use crate::read::{HotspotQuery, Reader};

fn label_of(dimension: i32, value: &str) -> String {
    label(Dimension::try_from(dimension).unwrap_or(Dimension::Unspecified), value)
}

impl MetricsApi {
    pub(super) async fn generate_report(
        &self,
        principal: &Principal,
        r: GenerateReportRequest,
    ) -> Result<Report, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        let kind = ReportKind::try_from(r.kind).unwrap_or(ReportKind::Unspecified);
        if kind == ReportKind::Unspecified {
            v.add("kind", "required: regulator quarterly, insurance indicators, FCA return or management");
        }
        let format = ReportFormat::try_from(r.format).unwrap_or(ReportFormat::Unspecified);
        if format == ReportFormat::Unspecified {
            v.add("format", "required: CSV, XLSX or HTML");
        }
        let days = Days::quarter(&r.quarter);
        if days.is_none() {
            v.add("quarter", "must be a quarter YYYY-Qn, e.g. 2026-Q1");
        }
        v.into_result()?;
        let (Some(unit), Some(days)) = (unit, days) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let first = crate::domain::period::date_of(days.first);
        let label = format!("{}-Q{}", chrono::Datelike::year(&first), (chrono::Datelike::month(&first) - 1) / 3 + 1);
        let today = self.today(unit.as_str())?;
        let written =
            crate::report::generate(&self.reader()?, unit.as_str(), days, &label, kind, format, today).await?;
        Ok(Report {
            kind: kind as i32,
            format: format as i32,
            org_unit: unit.into_string(),
            period: Some(days.to_proto()),
            file_name: written.file_name,
            content_type: written.content_type.to_owned(),
            content: written.content,
            tables: written
                .tables
                .into_iter()
                .map(|t| ReportTable {
                    title: t.title,
                    columns: t.columns,
                    rows: t.rows.into_iter().map(|cells| ReportRow { cells }).collect(),
                })
                .collect(),
        })
    }

    fn reader(&self) -> Result<Reader, MetricsError> {
        Ok(Reader::new(self.store()?))
    }

    /// Today in the unit's institution's zone.
    fn today(&self, unit: &str) -> Result<i32, MetricsError> {
        Ok(self.store()?.calendars().today(unit, self.clock.now()))
    }

    pub(super) async fn get_kpis(&self, principal: &Principal, r: GetKpisRequest) -> Result<KpiReport, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        let period = parse::period(&mut v, "period", r.period.as_ref());
        let filter = parse::filter(&mut v, "filter", r.filter.as_ref());
        v.into_result()?;
        let (Some(unit), Some(period)) = (unit, period) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let today = self.today(unit.as_str())?;
        let (kpis, ageing) = self.reader()?.kpis(unit.as_str(), period, &filter, today).await?;
        Ok(KpiReport {
            org_unit: unit.into_string(),
            period: Some(period.to_proto()),
            filter: parse::filter_proto(&filter),
            kpis,
            ageing,
        })
    }

    pub(super) async fn get_breakdown(
        &self,
        principal: &Principal,
        r: GetBreakdownRequest,
    ) -> Result<Breakdown, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        let period = parse::period(&mut v, "period", r.period.as_ref());
        let dimension = parse::dimension(&mut v, "dimension", r.dimension, None);
        let mut kpis = Vec::new();
        for (i, k) in r.kpis.iter().enumerate() {
            match Kpi::try_from(*k) {
                Ok(Kpi::Unspecified) | Err(_) => v.add(format!("kpis[{i}]"), "is not a KPI"),
                Ok(k) => kpis.push(k),
            }
        }
        v.into_result()?;
        let (Some(unit), Some(period), Some(dimension)) = (unit, period, dimension) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let rows = self.reader()?.breakdown(unit.as_str(), period, dimension, &kpis).await?;
        Ok(Breakdown {
            org_unit: unit.into_string(),
            period: Some(period.to_proto()),
            dimension,
            rows: rows
                .into_iter()
                .map(|row| BreakdownRow { label: label_of(dimension, &row.value), value: row.value, kpis: row.kpis })
                .collect(),
        })
    }

    pub(super) async fn get_series(&self, principal: &Principal, r: GetSeriesRequest) -> Result<Series, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        let period = parse::period(&mut v, "period", r.period.as_ref());
        let filter = parse::filter(&mut v, "filter", r.filter.as_ref());
        let kpi = match Kpi::try_from(r.kpi) {
            Ok(Kpi::Unspecified) | Err(_) => {
                v.add("kpi", "required: a KPI such as KPI_VOLUME");
                None
            }
            Ok(k) => Some(k),
        };
        let granularity = match Granularity::try_from(r.granularity) {
            Ok(Granularity::Unspecified) | Err(_) => {
                v.add("granularity", "required: day, week, month or quarter");
                None
            }
            Ok(g) => Some(g),
        };
        v.into_result()?;
        let (Some(unit), Some(period), Some(kpi), Some(granularity)) = (unit, period, kpi, granularity) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let points = self.reader()?.series(unit.as_str(), period, kpi, granularity, &filter).await?;
        Ok(Series {
            org_unit: unit.into_string(),
            kpi: kpi as i32,
            granularity: granularity as i32,
            points: points
                .into_iter()
                .map(|(days, value)| SeriesPoint { period: Some(days.to_proto()), value: Some(value) })
                .collect(),
        })
    }

    pub(super) async fn get_pareto(&self, principal: &Principal, r: GetParetoRequest) -> Result<Pareto, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        let period = parse::period(&mut v, "period", r.period.as_ref());
        let dimension = parse::dimension(&mut v, "dimension", r.dimension, Some(Dimension::Cause));
        v.into_result()?;
        let (Some(unit), Some(period), Some(dimension)) = (unit, period, dimension) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let (total, rows) = self.reader()?.pareto(unit.as_str(), period, dimension).await?;
        Ok(Pareto {
            org_unit: unit.into_string(),
            period: Some(period.to_proto()),
            dimension,
            total,
            rows: rows
                .into_iter()
                .map(|r| ParetoRow {
                    label: label_of(dimension, &r.value),
                    value: r.value,
                    count: r.count,
                    share: r.share,
                    cumulative_share: r.cumulative_share,
                    vital_few: r.vital_few,
                })
                .collect(),
        })
    }

    pub(super) async fn list_hotspots(
        &self,
        principal: &Principal,
        r: ListHotspotsRequest,
    ) -> Result<ListHotspotsResponse, MetricsError> {
        let mut v = Violations::new();
        let unit = parse::unit(principal, Permission::CasesRead, &mut v, "org_unit", &r.org_unit)?;
        let dimension = parse::dimension(&mut v, "dimension", r.dimension, Some(Dimension::Cause));
        let end = if r.end_date.is_empty() {
            None
        } else {
            let day = crate::domain::period::parse_day(&r.end_date);
            if day.is_none() {
                v.add("end_date", "must be a date YYYY-MM-DD");
            }
            day
        };
        let window_days = if r.window_days == 0 { 7 } else { r.window_days };
        if !(1..=92).contains(&window_days) {
            v.add("window_days", "must be 1..92");
        }
        let baseline_windows = if r.baseline_windows == 0 { 4 } else { r.baseline_windows };
        if !(1..=12).contains(&baseline_windows) {
            v.add("baseline_windows", "must be 1..12");
        }
        let min_ratio = if r.min_ratio == 0.0 { 1.5 } else { r.min_ratio };
        if !min_ratio.is_finite() || min_ratio < 1.0 {
            v.add("min_ratio", "must be at least 1");
        }
        let min_count = if r.min_count == 0 { 5 } else { r.min_count };
        if min_count < 1 {
            v.add("min_count", "must be at least 1");
        }
        v.into_result()?;
        let (Some(unit), Some(dimension)) = (unit, dimension) else {
            return Err(MetricsError::Internal(anyhow::anyhow!("unparsed request")));
        };
        let end = match end {
            Some(day) => day,
            None => self.today(unit.as_str())?,
        };
        let (window, baseline, found) = self
            .reader()?
            .hotspots(
                unit.as_str(),
                &HotspotQuery { dimension, end, window_days, baseline_windows, min_ratio, min_count },
            )
            .await?;
        Ok(ListHotspotsResponse {
            dimension,
            window: Some(window.to_proto()),
            baseline_period: Some(baseline.to_proto()),
            hotspots: found
                .into_iter()
                .map(|h| Hotspot {
                    label: label_of(dimension, &h.value),
                    value: h.value,
                    count: h.count,
                    baseline: h.baseline,
                    ratio: h.ratio,
                })
                .collect(),
        })
    }
}
