//! The tables of each report (D-QM-4), from the counters of a quarter: pure functions of what
//! the read models hold, so that a report can be checked line by line against one worked by
//! hand.

use std::collections::BTreeMap;

use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::metrics::v1::{Dimension, KpiValue};

use super::dims::label;
use super::kpi::PeriodDenominators;
use super::measures::{self as m, Measures};

/// A table of a report: a title, column headings and rows of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: &str, columns: &[&str]) -> Self {
        Self { title: title.to_owned(), columns: columns.iter().map(|c| (*c).to_owned()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// What a quarter's reports are made of.
#[derive(Debug, Clone, Default)]
pub struct Quarter {
    /// The counters over the quarter.
    pub totals: Measures,
    /// Open at the end of the day before the quarter.
    pub open_at_start: i64,
    /// Open at the end of its last day.
    pub open_at_end: i64,
    /// The counters over the quarter by value of each dimension.
    pub by: BTreeMap<i32, BTreeMap<String, Measures>>,
    pub denominators: PeriodDenominators,
}

impl Quarter {
    fn values(&self, d: Dimension) -> impl Iterator<Item = (&String, &Measures)> {
        self.by.get(&(d as i32)).into_iter().flat_map(|v| v.iter())
    }
}

/// A number with two decimals.
pub fn two(x: f64) -> String {
    format!("{x:.2}")
}

fn percent(n: i64, d: i64) -> String {
    if d > 0 { two(100.0 * n as f64 / d as f64) } else { "-".to_owned() }
}

/// The JR/T 0169 code of a channel: its stable number in redress.common.v1.Channel.
fn channel_code(name: &str) -> String {
    Channel::from_str_name(name).map_or_else(|| name.to_owned(), |c| format!("A{:02}", c as i32))
}

fn coded(d: Dimension, value: &str) -> (String, String) {
    let name = label(d, value);
    match d {
        Dimension::Channel => (channel_code(value), name),
        _ if value.is_empty() => ("-".to_owned(), "未分类".to_owned()),
        _ => (value.to_owned(), name),
    }
}

/// 消费投诉统计季报 by JR/T 0169 dimensions: the totals, then complaints received by channel
/// (A), business type (B), cause (C) and organisation unit, each with its share.
pub fn regulator_quarterly(q: &Quarter) -> Vec<Table> {
    let t = &q.totals;
    let received = t.get(m::RECEIVED);
    let mut totals = Table::new("一、总体情况", &["指标", "数值"]);
    for (name, value) in [
        ("期初未办结", q.open_at_start.to_string()),
        ("本期受理", received.to_string()),
        ("本期办结", t.get(m::RESOLVED).to_string()),
        ("其中：按时办结", t.get(m::ON_TIME).to_string()),
        ("其中：撤诉", t.get(m::WITHDRAWN).to_string()),
        ("期末未办结", q.open_at_end.to_string()),
        ("按时办结率(%)", percent(t.get(m::ON_TIME), t.get(m::RESOLVED))),
        ("重复投诉", t.get(m::RECURRENCES).to_string()),
    ] {
        totals.row(vec![name.to_owned(), value]);
    }
    let mut tables = vec![totals];
    for (title, d) in [
        ("二、按投诉业务办理渠道（维度A）", Dimension::Channel),
        ("三、按投诉业务类别（维度B）", Dimension::BusinessType),
        ("四、按投诉原因（维度C）", Dimension::Cause),
    ] {
        let mut table = Table::new(title, &["代码", "名称", "投诉量", "占比(%)"]);
        let mut rows: Vec<(String, String, i64)> = q
            .values(d)
            .filter(|(_, m)| m.get(m::RECEIVED) > 0)
            .map(|(v, m)| {
                let (code, name) = coded(d, v);
                (code, name, m.get(m::RECEIVED))
            })
            .collect();
        rows.sort();
        for (code, name, n) in rows {
            table.row(vec![code, name, n.to_string(), percent(n, received)]);
        }
        table.row(vec!["合计".to_owned(), String::new(), received.to_string(), percent(received, received)]);
        tables.push(table);
    }
    let mut units = Table::new("五、按机构", &["机构", "投诉量", "占比(%)", "办结"]);
    for (unit, measures) in q.values(Dimension::OrgUnit).filter(|(_, m)| m.get(m::RECEIVED) + m.get(m::RESOLVED) > 0) {
        let n = measures.get(m::RECEIVED);
        units.row(vec![unit.clone(), n.to_string(), percent(n, received), measures.get(m::RESOLVED).to_string()]);
    }
    tables.push(units);
    tables
}

/// The complaint-handling indicators of GB/T 43568-2023 Annex A, as the read models measure
/// them: volume, per 10,000 customers and per 100 million of premium, resolution and
/// on-time rates, mean time to resolve, satisfaction, one-time resolution and recurrence.
pub fn insurance_indicators(q: &Quarter) -> Vec<Table> {
    let t = &q.totals;
    let received = t.get(m::RECEIVED);
    let mut table = Table::new("GB/T 43568-2023 附录A 投诉处理指标", &["指标", "分子", "分母", "数值", "单位"]);
    let mut ratio = |name: &str, n: i64, d: i64, scale: f64, unit: &str| {
        let value = if d > 0 { two(scale * n as f64 / d as f64) } else { "-".to_owned() };
        table.row(vec![name.to_owned(), n.to_string(), d.to_string(), value, unit.to_owned()]);
    };
    ratio("投诉总量", received, 1, 1.0, "件");
    ratio("万人投诉量", received, q.denominators.customers.unwrap_or(0), 10_000.0, "件/万人");
    ratio("亿元保费投诉量", received, q.denominators.premium_minor.unwrap_or(0), 1e10, "件/亿元");
    ratio("投诉办结率", t.get(m::RESOLVED), q.open_at_start + received, 100.0, "%");
    ratio("按时办结率", t.get(m::ON_TIME), t.get(m::RESOLVED), 100.0, "%");
    ratio("平均办结时长", t.get(m::RESOLVE_SECONDS), t.get(m::TIMED), 1.0 / 3600.0, "小时");
    ratio("投诉处理满意度", t.get(m::SATISFIED), t.get(m::SURVEYED), 100.0, "%");
    ratio("一次性解决率", t.get(m::ONE_TIME), t.get(m::DECIDED), 100.0, "%");
    ratio("重复投诉率", t.get(m::RECURRENCES), received, 100.0, "%");
    ratio("撤诉率", t.get(m::WITHDRAWN), t.get(m::RESOLVED), 100.0, "%");
    vec![table]
}

/// The columns of an FCA-style return for one set of counters.
fn fca_row(name: String, t: &Measures, outstanding: Option<i64>) -> Vec<String> {
    let closed = t.get(m::RESOLVED);
    let within_3 = t.get(m::WITHIN_3_BUSINESS_DAYS);
    let within_8w = t.get(m::WITHIN_8_WEEKS);
    vec![
        name,
        t.get(m::RECEIVED).to_string(),
        closed.to_string(),
        outstanding.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        within_3.to_string(),
        (within_8w - within_3).max(0).to_string(),
        (closed - within_8w).to_string(),
        t.get(m::UPHELD).to_string(),
        percent(t.get(m::UPHELD), t.get(m::DECIDED)),
        two(t.get(m::REDRESS_MINOR) as f64 / 100.0),
    ]
}

const FCA_COLUMNS: [&str; 10] = [
    "Group",
    "Opened",
    "Closed",
    "Outstanding at end",
    "Closed within 3 business days",
    "Closed after 3 business days, within 8 weeks",
    "Closed after 8 weeks",
    "Upheld",
    "Upheld (% of decided)",
    "Redress paid",
];

/// An FCA-style return (DISP 1.10): complaints opened, closed and outstanding, closed within 3
/// business days, within 8 weeks or later, upheld and redress paid (major units), in all and by
/// business type (the product grouping).
pub fn fca_return(q: &Quarter) -> Vec<Table> {
    let mut all = Table::new("Complaints return", &FCA_COLUMNS);
    all.row(fca_row("All complaints".to_owned(), &q.totals, Some(q.open_at_end)));
    let mut by_product = Table::new("By product or service", &FCA_COLUMNS);
    for (value, measures) in q.values(Dimension::BusinessType) {
        let (code, name) = coded(Dimension::BusinessType, value);
        let group = if name.is_empty() { code } else { format!("{code} {name}") };
        by_product.row(fca_row(group, measures, None));
    }
    vec![all, by_product]
}

/// The management report's KPI table.
pub fn kpi_table(kpis: &[KpiValue]) -> Table {
    let mut table = Table::new("KPI", &["KPI", "Value", "Unit", "Numerator", "Denominator", "Target", "Meets"]);
    for k in kpis {
        let name = redress_proto::redress::metrics::v1::Kpi::try_from(k.kpi)
            .map(|k| k.as_str_name().trim_start_matches("KPI_").to_owned())
            .unwrap_or_default();
        let target = k.target.as_ref().map_or_else(String::new, |t| {
            let op = match t.comparator {
                1 => "≥",
                2 => ">",
                3 => "≤",
                4 => "<",
                _ => "",
            };
            format!("{op} {}", two(t.threshold))
        });
        let meets = if k.target.is_none() {
            String::new()
        } else if k.meets_target {
            "yes".to_owned()
        } else {
            "no".to_owned()
        };
        table.row(vec![
            name,
            two(k.value),
            k.unit.clone(),
            k.numerator.to_string(),
            k.denominator.to_string(),
            target,
            meets,
        ]);
    }
    table
}
