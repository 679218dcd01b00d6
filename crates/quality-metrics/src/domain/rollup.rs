//! Rollups: cells of counters by organisation unit × dimension value × day, and the same by
//! month, so that a query over a quarter reads a handful of month cells per value and never a
//! fact. A fact counts in the cells of its own unit and of every unit above it (a query of a
//! unit reads that unit's cells alone), under every dimension value it has, on its day of
//! receipt and (once resolved) of resolution.

use std::collections::{BTreeMap, HashMap};

use super::fact::Counted;
use super::measures::Measures;
use super::period::{Days, month_end, month_start};

/// Day cells.
pub const DAY: i32 = 0;
/// Month cells, keyed by the month's first day.
pub const MONTH: i32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub unit: String,
    pub dimension: i32,
    pub value: String,
    pub grain: i32,
    pub day: i32,
}

/// A unit and every unit above it up to its institution, the institution first.
pub fn units_up(unit: &str) -> Vec<String> {
    let segments: Vec<&str> = unit.split('/').collect();
    (2..=segments.len()).step_by(2).map(|n| segments[..n].join("/")).collect()
}

/// The change to the cells when a fact counted as `old` comes to count as `new`, added to
/// `deltas` (one batch's changes merge there, so each cell is written once per batch).
pub fn add_difference(old: Option<&Counted>, new: Option<&Counted>, deltas: &mut HashMap<CellKey, Measures>) {
    if old == new {
        return;
    }
    let mut own: HashMap<CellKey, Measures> = HashMap::new();
    if let Some(old) = old {
        contribute(old, false, &mut own);
    }
    if let Some(new) = new {
        contribute(new, true, &mut own);
    }
    for (key, delta) in own {
        if !delta.is_zero() {
            deltas.entry(key).or_default().add(&delta);
        }
    }
}

fn contribute(counted: &Counted, plus: bool, out: &mut HashMap<CellKey, Measures>) {
    let all = counted.measures();
    let mut anchors = vec![(counted.receive_day, all.part(true))];
    if counted.resolved {
        anchors.push((counted.resolve_day, all.part(false)));
    }
    for unit in units_up(&counted.org_unit) {
        for dv in &counted.dims {
            for (day, measures) in &anchors {
                for (grain, key_day) in [(DAY, *day), (MONTH, month_start(*day))] {
                    let key = CellKey {
                        unit: unit.clone(),
                        dimension: dv.dimension,
                        value: dv.value.clone(),
                        grain,
                        day: key_day,
                    };
                    let cell = out.entry(key).or_default();
                    if plus {
                        cell.add(measures);
                    } else {
                        cell.sub(measures);
                    }
                }
            }
        }
    }
}

/// One stored cell as a query reads it.
#[derive(Debug, Clone)]
pub struct Cell {
    pub value: String,
    pub grain: i32,
    pub day: i32,
    pub measures: Measures,
}

/// Which cells of a unit and dimension a query reads: month cells from `months.first` to
/// `months.last` (month starts), and day cells in `days`.
#[derive(Debug, Clone)]
pub struct CellQuery {
    pub unit: String,
    pub dimension: i32,
    /// Only this value; every value when `None`.
    pub value: Option<String>,
    pub months: Days,
    pub days: Vec<Days>,
}

impl CellQuery {
    /// The cells that answer sums over `period` and, with `history`, running totals (the
    /// backlog) through any of its days; with `every_day`, day cells for all of it (series by
    /// day or week).
    pub fn over(
        unit: &str,
        dimension: i32,
        value: Option<String>,
        period: Days,
        history: bool,
        every_day: bool,
    ) -> Self {
        let first_month = month_start(period.first);
        let months = Days::new(if history { i32::MIN } else { first_month }, month_start(period.last));
        let mut days = Vec::new();
        if every_day {
            days.push(Days::new(first_month, period.last));
        } else {
            if period.first != first_month || month_end(period.first) > period.last {
                days.push(Days::new(first_month, month_end(period.first).min(period.last)));
            }
            let last_month = month_start(period.last);
            if period.last != month_end(period.last) && last_month > first_month {
                days.push(Days::new(last_month, period.last));
            }
        }
        Self { unit: unit.to_owned(), dimension, value, months, days }
    }
}

/// The cells of one dimension value.
#[derive(Debug, Default, Clone)]
pub struct ValueCells {
    days: BTreeMap<i32, Measures>,
    months: BTreeMap<i32, Measures>,
}

impl ValueCells {
    /// The counters over `period`: full months from month cells, the rest from day cells.
    pub fn sum(&self, period: Days) -> Measures {
        let mut total = Measures::default();
        let mut start = period.first;
        while start <= period.last {
            let end = month_end(start).min(period.last);
            if start == month_start(start) && end == month_end(start) {
                if let Some(m) = self.months.get(&start) {
                    total.add(m);
                }
            } else {
                for m in self.days.range(start..=end).map(|(_, m)| m) {
                    total.add(m);
                }
            }
            start = end + 1;
        }
        total
    }

    /// The counters of everything up to and including `through`.
    pub fn through(&self, through: i32) -> Measures {
        let mut total = Measures::default();
        let this_month = month_start(through);
        let whole = through == month_end(through);
        let months = if whole { self.months.range(..=this_month) } else { self.months.range(..this_month) };
        for (_, m) in months {
            total.add(m);
        }
        if !whole {
            for (_, m) in self.days.range(this_month..=through) {
                total.add(m);
            }
        }
        total
    }

    /// Day cells with anything in them, by day.
    pub fn days(&self) -> impl Iterator<Item = (&i32, &Measures)> {
        self.days.iter()
    }
}

/// Cells read for a query, by value.
#[derive(Debug, Default, Clone)]
pub struct CellSet {
    pub values: BTreeMap<String, ValueCells>,
}

impl CellSet {
    pub fn of(cells: Vec<Cell>) -> Self {
        let mut set = CellSet::default();
        for cell in cells {
            let value = set.values.entry(cell.value).or_default();
            let map = if cell.grain == MONTH { &mut value.months } else { &mut value.days };
            map.entry(cell.day).or_default().add(&cell.measures);
        }
        set
    }

    /// Everything together (for a query of one value, that value).
    pub fn merged(&self) -> ValueCells {
        let mut all = ValueCells::default();
        for v in self.values.values() {
            for (d, m) in &v.days {
                all.days.entry(*d).or_default().add(m);
            }
            for (d, m) in &v.months {
                all.months.entry(*d).or_default().add(m);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::fact::DimValue;
    use crate::domain::measures::{RECEIVED, RESOLVED};
    use crate::domain::period::parse_day;

    fn d(s: &str) -> i32 {
        parse_day(s).unwrap()
    }

    fn counted(unit: &str, channel: &str, received: &str, resolved: Option<&str>) -> Counted {
        let mut m = Measures::default();
        m.set(RECEIVED, 1);
        m.set(RESOLVED, i64::from(resolved.is_some()));
        Counted {
            org_unit: unit.to_owned(),
            dims: vec![
                DimValue { dimension: 0, value: String::new() },
                DimValue { dimension: 1, value: channel.to_owned() },
            ],
            receive_day: d(received),
            resolved: resolved.is_some(),
            resolve_day: resolved.map_or(0, d),
            measures: m.encode(),
        }
    }

    #[test]
    fn units_up_start_at_the_institution() {
        assert_eq!(units_up("institutions/a"), vec!["institutions/a"]);
        assert_eq!(units_up("institutions/a/branches/b"), vec!["institutions/a", "institutions/a/branches/b"]);
    }

    #[test]
    fn a_change_moves_only_what_changed() {
        let mut deltas = HashMap::new();
        let open = counted("institutions/a/branches/b", "PHONE", "2026-01-30", None);
        add_difference(None, Some(&open), &mut deltas);
        // 2 units × 2 dimension values × (day + month).
        assert_eq!(deltas.len(), 8);
        let mut deltas = HashMap::new();
        let closed = counted("institutions/a/branches/b", "PHONE", "2026-01-30", Some("2026-02-02"));
        add_difference(Some(&open), Some(&closed), &mut deltas);
        assert_eq!(deltas.len(), 8, "only the resolution day's cells change");
        assert!(deltas.keys().all(|k| k.day == d("2026-02-02") || k.day == d("2026-02-01")));
        assert!(deltas.values().all(|m| m.get(RESOLVED) == 1 && m.get(RECEIVED) == 0));
        let mut none = HashMap::new();
        add_difference(Some(&closed), Some(&closed), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn sums_use_month_cells_for_whole_months_and_day_cells_for_the_rest() {
        let mut deltas = HashMap::new();
        for (received, resolved) in [("2026-01-30", Some("2026-02-02")), ("2026-02-10", None), ("2026-03-31", None)] {
            add_difference(None, Some(&counted("institutions/a", "PHONE", received, resolved)), &mut deltas);
        }
        let cells: Vec<Cell> = deltas
            .into_iter()
            .filter(|(k, _)| k.dimension == 0)
            .map(|(k, m)| Cell { value: k.value, grain: k.grain, day: k.day, measures: m })
            .collect();
        let all = CellSet::of(cells).merged();
        assert_eq!(all.sum(Days::new(d("2026-01-01"), d("2026-03-31"))).get(RECEIVED), 3);
        assert_eq!(all.sum(Days::new(d("2026-01-31"), d("2026-03-30"))).get(RECEIVED), 1);
        assert_eq!(all.sum(Days::new(d("2026-02-01"), d("2026-02-28"))).get(RESOLVED), 1);
        let backlog = |day: &str| {
            let m = all.through(d(day));
            m.get(RECEIVED) - m.get(RESOLVED)
        };
        assert_eq!(backlog("2026-01-31"), 1);
        assert_eq!(backlog("2026-02-02"), 0);
        assert_eq!(backlog("2026-02-28"), 1);
        assert_eq!(backlog("2026-03-31"), 2);
    }

    #[test]
    fn a_query_over_whole_months_reads_no_day_cells() {
        let q = CellQuery::over("institutions/a", 0, None, Days::new(d("2026-01-01"), d("2026-03-31")), false, false);
        assert!(q.days.is_empty());
        assert_eq!(q.months, Days::new(d("2026-01-01"), d("2026-03-01")));
        let q = CellQuery::over("institutions/a", 0, None, Days::new(d("2026-01-05"), d("2026-03-20")), true, false);
        assert_eq!(
            q.days,
            vec![Days::new(d("2026-01-01"), d("2026-01-31")), Days::new(d("2026-03-01"), d("2026-03-20"))]
        );
        assert_eq!(q.months.first, i32::MIN);
    }
}
