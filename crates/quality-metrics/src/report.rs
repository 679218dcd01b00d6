//! Reports of a quarter (D-QM-4): their figures read once from the rollups, their tables built
//! by `domain::report`, written as CSV, an XLSX workbook (rust_xlsxwriter) or an HTML page
//! whose charts are SVG drawn by plotters.

use std::collections::BTreeMap;

use plotters::prelude::*;
use redress_proto::redress::metrics::v1::{Dimension, Granularity, Kpi, ReportFormat, ReportKind};

use crate::domain::dims::DIMENSIONS;
use crate::domain::measures as m;
use crate::domain::period::Days;
use crate::domain::report::{self, Quarter, Table};
use crate::domain::rollup::CellQuery;
use crate::read::{Filter, Reader};

/// A written report.
pub struct Written {
    pub tables: Vec<Table>,
    pub file_name: String,
    pub content_type: &'static str,
    pub content: Vec<u8>,
}

/// What one report needs of the read models.
pub async fn quarter(reader: &Reader, unit: &str, days: Days) -> anyhow::Result<Quarter> {
    let all = reader.values(CellQuery::over(unit, 0, Some(String::new()), days, true, false)).await?.merged();
    let mut by = BTreeMap::new();
    for d in [Dimension::Channel, Dimension::BusinessType, Dimension::Cause, Dimension::OrgUnit] {
        debug_assert!(DIMENSIONS.contains(&d));
        let cells = reader.values(CellQuery::over(unit, d as i32, None, days, false, false)).await?;
        by.insert(d as i32, cells.values.iter().map(|(v, c)| (v.clone(), c.sum(days))).collect());
    }
    let open = |t: &m::Measures| t.get(m::RECEIVED) - t.get(m::RESOLVED);
    Ok(Quarter {
        totals: all.sum(days),
        open_at_start: open(&all.through(days.first - 1)),
        open_at_end: open(&all.through(days.last)),
        by,
        denominators: reader.denominators(unit, days).await?,
    })
}

fn kind_name(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::RegulatorQuarterly => "regulator-quarterly",
        ReportKind::InsuranceIndicators => "insurance-indicators",
        ReportKind::FcaReturn => "fca-return",
        ReportKind::Management | ReportKind::Unspecified => "management",
    }
}

fn title(kind: ReportKind, unit: &str, label: &str) -> String {
    let what = match kind {
        ReportKind::RegulatorQuarterly => "消费投诉统计季报（JR/T 0169）",
        ReportKind::InsuranceIndicators => "投诉处理指标（GB/T 43568-2023 附录A）",
        ReportKind::FcaReturn => "Complaints return (FCA DISP 1.10 style)",
        ReportKind::Management | ReportKind::Unspecified => "Complaint quality report",
    };
    format!("{what} — {unit} — {label}")
}

/// Builds and writes a report of `unit` for the quarter `label` (its `days`).
pub async fn generate(
    reader: &Reader,
    unit: &str,
    days: Days,
    label: &str,
    kind: ReportKind,
    format: ReportFormat,
    today: i32,
) -> anyhow::Result<Written> {
    let q = quarter(reader, unit, days).await?;
    let mut charts = Vec::new();
    let tables = match kind {
        ReportKind::RegulatorQuarterly => report::regulator_quarterly(&q),
        ReportKind::InsuranceIndicators => report::insurance_indicators(&q),
        ReportKind::FcaReturn => report::fca_return(&q),
        ReportKind::Management | ReportKind::Unspecified => {
            let (kpis, _) = reader.kpis(unit, days, &Filter::all(), today).await?;
            let (_, pareto) = reader.pareto(unit, days, Dimension::Cause as i32).await?;
            let weeks = reader.series(unit, days, Kpi::Volume, Granularity::Week, &Filter::all()).await?;
            let mut pareto_table = Table {
                title: "Pareto of causes".to_owned(),
                columns: ["Cause", "Name", "Complaints", "Share (%)", "Cumulative (%)"].map(str::to_owned).to_vec(),
                rows: Vec::new(),
            };
            for r in &pareto {
                let name = crate::domain::dims::label(Dimension::Cause, &r.value);
                let cells = vec![
                    r.value.clone(),
                    name,
                    r.count.to_string(),
                    report::two(r.share),
                    report::two(r.cumulative_share),
                ];
                pareto_table.rows.push(cells);
            }
            let mut trend = Table {
                title: "Complaints received by week".to_owned(),
                columns: ["Week from", "Week to", "Complaints"].map(str::to_owned).to_vec(),
                rows: Vec::new(),
            };
            for (week, v) in &weeks {
                let p = week.to_proto();
                trend.rows.push(vec![p.start_date, p.end_date, v.numerator.to_string()]);
            }
            if format == ReportFormat::Html {
                let bars: Vec<(String, i64, f64)> =
                    pareto.iter().map(|r| (r.value.clone(), r.count, r.cumulative_share)).collect();
                charts.push(pareto_svg(&bars)?);
                let points: Vec<(String, i64)> =
                    weeks.iter().map(|(w, v)| (w.to_proto().start_date, v.numerator)).collect();
                charts.push(trend_svg(&points)?);
            }
            vec![report::kpi_table(&kpis), pareto_table, trend]
        }
    };
    if format == ReportFormat::Html && kind == ReportKind::RegulatorQuarterly {
        let causes: Vec<(String, i64)> =
            q.by.get(&(Dimension::Cause as i32))
                .map(|v| v.iter().map(|(c, m)| (c.clone(), m.get(m::RECEIVED))).collect())
                .unwrap_or_default();
        let (_, pareto) = crate::domain::analysis::pareto(causes);
        let bars: Vec<(String, i64, f64)> =
            pareto.iter().map(|r| (r.value.clone(), r.count, r.cumulative_share)).collect();
        charts.push(pareto_svg(&bars)?);
    }
    let heading = title(kind, unit, label);
    let base = format!("{}-{label}", kind_name(kind));
    let (content, content_type, extension) = match format {
        ReportFormat::Csv | ReportFormat::Unspecified => (csv(&heading, &tables)?, "text/csv; charset=utf-8", "csv"),
        ReportFormat::Xlsx => {
            (xlsx(&heading, &tables)?, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")
        }
        ReportFormat::Html => (html(&heading, &tables, &charts).into_bytes(), "text/html; charset=utf-8", "html"),
    };
    Ok(Written { tables, file_name: format!("{base}.{extension}"), content_type, content })
}

/// The heading, then one section per table after a blank line: its title, its headings, its
/// rows.
pub fn csv(heading: &str, tables: &[Table]) -> anyhow::Result<Vec<u8>> {
    let section = |records: &mut dyn Iterator<Item = Vec<String>>| -> anyhow::Result<Vec<u8>> {
        let mut out = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
        for record in records {
            out.write_record(&record)?;
        }
        out.into_inner().map_err(|e| anyhow::anyhow!("writing csv: {e}"))
    };
    let mut file = section(&mut std::iter::once(vec![heading.to_owned()]))?;
    for table in tables {
        file.push(b'\n');
        let head = [vec![table.title.clone()], table.columns.clone()];
        file.extend(section(&mut head.into_iter().chain(table.rows.iter().cloned()))?);
    }
    Ok(file)
}

/// One sheet per table: the report's heading, the table's title, its headings (bold) and rows;
/// cells that are numbers are written as numbers.
pub fn xlsx(heading: &str, tables: &[Table]) -> anyhow::Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    for (i, table) in tables.iter().enumerate() {
        let sheet = book.add_worksheet();
        sheet.set_name(format!("{}", i + 1))?;
        sheet.write_string_with_format(0, 0, heading, &bold)?;
        sheet.write_string_with_format(1, 0, &table.title, &bold)?;
        for (c, column) in table.columns.iter().enumerate() {
            sheet.write_string_with_format(2, c as u16, column, &bold)?;
            sheet.set_column_width(c as u16, 18)?;
        }
        for (r, row) in table.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32 + 3, c as u16);
                match cell.parse::<f64>() {
                    Ok(n) if !cell.is_empty() => sheet.write_number(r, c, n)?,
                    _ => sheet.write_string(r, c, cell)?,
                };
            }
        }
    }
    Ok(book.save_to_buffer()?)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A page a manager can open: the tables and the charts, nothing fetched from elsewhere.
pub fn html(heading: &str, tables: &[Table], charts: &[String]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{0}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #999;padding:4px 8px;text-align:right}}th{{background:#eee}}\
         td:first-child{{text-align:left}}</style></head><body><h1>{0}</h1>\n",
        escape(heading)
    );
    for chart in charts {
        page.push_str("<figure>");
        page.push_str(chart);
        page.push_str("</figure>\n");
    }
    for table in tables {
        page.push_str(&format!("<h2>{}</h2><table><tr>", escape(&table.title)));
        for c in &table.columns {
            page.push_str(&format!("<th>{}</th>", escape(c)));
        }
        page.push_str("</tr>");
        for row in &table.rows {
            page.push_str("<tr>");
            for cell in row {
                page.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            page.push_str("</tr>");
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body></html>\n");
    page
}

fn drawn<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// A Pareto chart: complaints per value as bars, largest first, and the cumulative share as a
/// line on a 0–100 % scale.
pub fn pareto_svg(bars: &[(String, i64, f64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(drawn)?;
        let n = bars.len().max(1) as i32;
        let top = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("Pareto of causes", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .right_y_label_area_size(40)
            .build_cartesian_2d(0..n, 0..top + top / 10 + 1)
            .map_err(drawn)?
            .set_secondary_coord(0..n, 0.0..100.0);
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|x| labels.get(*x as usize).cloned().unwrap_or_default())
            .y_desc("Complaints")
            .draw()
            .map_err(drawn)?;
        chart.configure_secondary_axes().y_desc("Cumulative %").draw().map_err(drawn)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let x = i as i32;
                Rectangle::new([(x, 0), (x + 1, b.1)], BLUE.mix(0.6).filled())
            }))
            .map_err(drawn)?;
        chart
            .draw_secondary_series(LineSeries::new(
                bars.iter().enumerate().map(|(i, b)| (i as i32, b.2)),
                RED.stroke_width(2),
            ))
            .map_err(drawn)?;
        root.present().map_err(drawn)?;
    }
    Ok(svg)
}

/// A trend line: complaints received per bucket.
pub fn trend_svg(points: &[(String, i64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(drawn)?;
        let n = points.len().max(1) as i32;
        let top = points.iter().map(|p| p.1).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("Complaints received by week", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0..n, 0..top + top / 10 + 1)
            .map_err(drawn)?;
        let labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(points.len().clamp(1, 8))
            .x_label_formatter(&|x| labels.get(*x as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(drawn)?;
        chart
            .draw_series(LineSeries::new(points.iter().enumerate().map(|(i, p)| (i as i32, p.1)), BLUE.stroke_width(2)))
            .map_err(drawn)?;
        root.present().map_err(drawn)?;
    }
    Ok(svg)
}
