//! Pareto of a dimension's values and hotspots against a baseline, from counts per value.

/// One value of a Pareto chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoRow {
    pub value: String,
    pub count: i64,
    pub share: f64,
    pub cumulative_share: f64,
    pub vital_few: bool,
}

/// Values by count, largest first (ties by value), with their share and cumulative share in
/// percent; the vital few are those whose predecessors cover less than 80 percent. Values
/// without complaints are left out.
pub fn pareto(counts: impl IntoIterator<Item = (String, i64)>) -> (i64, Vec<ParetoRow>) {
    let mut counts: Vec<(String, i64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let mut before = 0;
    let rows = counts
        .into_iter()
        .map(|(value, count)| {
            let share = |n: i64| if total > 0 { 100.0 * n as f64 / total as f64 } else { 0.0 };
            let vital_few = share(before) < 80.0;
            before += count;
            ParetoRow { value, count, share: share(count), cumulative_share: share(before), vital_few }
        })
        .collect();
    (total, rows)
}

/// A value whose recent count rose beyond its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotspot {
    pub value: String,
    pub count: i64,
    pub baseline: f64,
    pub ratio: f64,
}

/// The hotspots among `(value, recent count, counts of the baseline windows)`: a recent count
/// of at least `min_count` and at least `min_ratio` times the baseline windows' mean (any
/// count qualifies over a baseline of 0). Largest ratio first, then count, then value.
pub fn hotspots(
    values: impl IntoIterator<Item = (String, i64, Vec<i64>)>,
    min_ratio: f64,
    min_count: i64,
) -> Vec<Hotspot> {
    let mut out: Vec<Hotspot> = values
        .into_iter()
        .filter_map(|(value, count, windows)| {
            let baseline =
                if windows.is_empty() { 0.0 } else { windows.iter().sum::<i64>() as f64 / windows.len() as f64 };
            let ratio = if baseline > 0.0 { count as f64 / baseline } else { count as f64 };
            (count >= min_count && (baseline == 0.0 || ratio >= min_ratio)).then_some(Hotspot {
                value,
                count,
                baseline,
                ratio,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.ratio.total_cmp(&a.ratio).then_with(|| b.count.cmp(&a.count)).then_with(|| a.value.cmp(&b.value))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_orders_and_accumulates() {
        let (total, rows) =
            pareto([("C01".to_owned(), 10), ("C05".to_owned(), 60), ("C02".to_owned(), 30), ("C09".to_owned(), 0)]);
        assert_eq!(total, 100);
        let order: Vec<&str> = rows.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(order, ["C05", "C02", "C01"]);
        assert_eq!(rows[1].cumulative_share, 90.0);
        assert_eq!(rows.iter().map(|r| r.vital_few).collect::<Vec<_>>(), [true, true, false]);
    }

    #[test]
    fn hotspots_rise_beyond_their_baseline() {
        let found = hotspots(
            [
                ("C05".to_owned(), 30, vec![10, 8, 12, 10]),
                ("C01".to_owned(), 11, vec![10, 10, 10, 10]),
                ("C07".to_owned(), 6, vec![0, 0, 0, 0]),
                ("C02".to_owned(), 3, vec![1, 0, 1, 0]),
            ],
            1.5,
            5,
        );
        let names: Vec<&str> = found.iter().map(|h| h.value.as_str()).collect();
        assert_eq!(names, ["C07", "C05"]);
        assert_eq!(found[1].baseline, 10.0);
        assert_eq!(found[1].ratio, 3.0);
    }
}
