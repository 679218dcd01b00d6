//! The KPIs (D-QM-1, D-QM-2) from summed counters, each with its numerator, denominator and
//! target, and the seed targets.

use std::collections::BTreeMap;

use redress_proto::redress::metrics::v1::{Comparator, Kpi, KpiValue, Target, TargetStatus};

use super::measures::{self as m, Measures};

/// Every KPI, in the order reports show them.
pub const ALL_KPIS: [Kpi; 16] = [
    Kpi::Volume,
    Kpi::Resolved,
    Kpi::Satisfaction,
    Kpi::OneTimeResolution,
    Kpi::OnTime,
    Kpi::Recurrence,
    Kpi::FirstResponseTime,
    Kpi::TimeToResolveP50,
    Kpi::TimeToResolveP90,
    Kpi::Backlog,
    Kpi::UpheldRate,
    Kpi::RedressPaid,
    Kpi::VolumePer10kCustomers,
    Kpi::VolumePerBranch,
    Kpi::VolumePer100mPremium,
    Kpi::WithdrawalRate,
];

/// The seed targets (D-QM-1, D-SLA-1, D-SLA-2): satisfaction ≥ 90%, one-time resolution
/// ≥ 95%, on time ≥ 98%, recurrence < 5%, first response within 24 hours on average, nine in
/// ten cases resolved within the 15-day regulatory decision period.
pub fn seed_targets() -> BTreeMap<i32, Target> {
    [
        (Kpi::Satisfaction, Comparator::AtLeast, 90.0),
        (Kpi::OneTimeResolution, Comparator::AtLeast, 95.0),
        (Kpi::OnTime, Comparator::AtLeast, 98.0),
        (Kpi::Recurrence, Comparator::LessThan, 5.0),
        (Kpi::FirstResponseTime, Comparator::AtMost, 24.0),
        (Kpi::TimeToResolveP90, Comparator::AtMost, 360.0),
    ]
    .into_iter()
    .map(|(kpi, comparator, threshold)| {
        (kpi as i32, Target { kpi: kpi as i32, comparator: comparator as i32, threshold })
    })
    .collect()
}

/// The denominators over a period: the months' mean customers and branches, and their premium
/// summed; `None` where a month of the period has none recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeriodDenominators {
    pub customers: Option<i64>,
    pub branches: Option<i64>,
    pub premium_minor: Option<i64>,
}

/// What the KPIs of one set of cells are computed from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The counters over the period.
    pub period: Measures,
    /// The counters of everything through the period's last day (for the backlog).
    pub through_end: Measures,
    pub denominators: PeriodDenominators,
}

/// A ratio: `scale × numerator / denominator`.
fn ratio(kpi: Kpi, numerator: i64, denominator: i64, scale: f64, unit: &str) -> KpiValue {
    let value = if denominator > 0 { scale * numerator as f64 / denominator as f64 } else { 0.0 };
    KpiValue { kpi: kpi as i32, value, numerator, denominator, unit: unit.to_owned(), ..KpiValue::default() }
}

fn count(kpi: Kpi, n: i64, unit: &str) -> KpiValue {
    KpiValue {
        kpi: kpi as i32,
        value: n as f64,
        numerator: n,
        denominator: 1,
        unit: unit.to_owned(),
        ..KpiValue::default()
    }
}

/// One KPI from `inputs`, without its target.
pub fn compute(kpi: Kpi, inputs: &Inputs) -> KpiValue {
    let p = &inputs.period;
    let received = p.get(m::RECEIVED);
    match kpi {
        Kpi::Volume | Kpi::Unspecified => count(Kpi::Volume, received, "count"),
        Kpi::Resolved => count(kpi, p.get(m::RESOLVED), "count"),
        Kpi::Satisfaction => ratio(kpi, p.get(m::SATISFIED), p.get(m::SURVEYED), 100.0, "percent"),
        Kpi::OneTimeResolution => ratio(kpi, p.get(m::ONE_TIME), p.get(m::DECIDED), 100.0, "percent"),
        Kpi::OnTime => ratio(kpi, p.get(m::ON_TIME), p.get(m::RESOLVED), 100.0, "percent"),
        Kpi::Recurrence => ratio(kpi, p.get(m::RECURRENCES), received, 100.0, "percent"),
        Kpi::FirstResponseTime => ratio(kpi, p.get(m::RESPONSE_SECONDS), p.get(m::RESPONDED), 1.0 / 3600.0, "hours"),
        Kpi::TimeToResolveP50 | Kpi::TimeToResolveP90 => {
            let percent = if kpi == Kpi::TimeToResolveP50 { 50 } else { 90 };
            let total: i64 = p.histogram().iter().sum();
            match p.percentile(percent) {
                Some((hours, within)) => KpiValue {
                    kpi: kpi as i32,
                    value: hours as f64,
                    numerator: within,
                    denominator: total,
                    unit: "hours".to_owned(),
                    ..KpiValue::default()
                },
                None => ratio(kpi, 0, 0, 1.0, "hours"),
            }
        }
        Kpi::Backlog => {
            let t = &inputs.through_end;
            count(kpi, t.get(m::RECEIVED) - t.get(m::RESOLVED), "count")
        }
        Kpi::UpheldRate => ratio(kpi, p.get(m::UPHELD), p.get(m::DECIDED), 100.0, "percent"),
        Kpi::RedressPaid => KpiValue {
            kpi: kpi as i32,
            value: p.get(m::REDRESS_MINOR) as f64,
            numerator: p.get(m::REDRESS_MINOR),
            denominator: p.get(m::REDRESS_CASES),
            unit: "minor_units".to_owned(),
            ..KpiValue::default()
        },
        Kpi::VolumePer10kCustomers => {
            ratio(kpi, received, inputs.denominators.customers.unwrap_or(0), 10_000.0, "per_10k")
        }
        Kpi::VolumePerBranch => ratio(kpi, received, inputs.denominators.branches.unwrap_or(0), 1.0, "per_branch"),
        Kpi::VolumePer100mPremium => {
            // Premium is in minor units: 100 million major units are 10^10 minor units.
            ratio(kpi, received, inputs.denominators.premium_minor.unwrap_or(0), 1e10, "per_100m")
        }
        Kpi::WithdrawalRate => ratio(kpi, p.get(m::WITHDRAWN), p.get(m::RESOLVED), 100.0, "percent"),
    }
}

/// Whether a KPI of this kind has data at all: ratios need a denominator.
fn has_data(value: &KpiValue) -> bool {
    match Kpi::try_from(value.kpi).unwrap_or(Kpi::Unspecified) {
        Kpi::Volume | Kpi::Resolved | Kpi::Backlog | Kpi::RedressPaid => true,
        _ => value.denominator > 0,
    }
}

/// Sets the KPI's target and whether it meets it.
pub fn judge(mut value: KpiValue, target: Option<&Target>) -> KpiValue {
    let comparator = target
        .map_or(Comparator::Unspecified, |t| Comparator::try_from(t.comparator).unwrap_or(Comparator::Unspecified));
    value.target = target.filter(|_| comparator != Comparator::Unspecified).cloned();
    let Some(target) = &value.target else {
        value.status = TargetStatus::NoTarget as i32;
        return value;
    };
    if !has_data(&value) {
        value.status = TargetStatus::NoData as i32;
        return value;
    }
    // Compared at the precision shown (a 95.0000001 caused by floating point meets 95).
    let v = (value.value * 1e9).round() / 1e9;
    let meets = match comparator {
        Comparator::AtLeast => v >= target.threshold,
        Comparator::MoreThan => v > target.threshold,
        Comparator::AtMost => v <= target.threshold,
        Comparator::LessThan => v < target.threshold,
        Comparator::Unspecified => false,
    };
    value.meets_target = meets;
    value.status = if meets { TargetStatus::Meets } else { TargetStatus::Misses } as i32;
    value
}

/// The KPIs asked for (every one when `kpis` is empty), judged against `targets`.
pub fn kpis(inputs: &Inputs, kpis: &[Kpi], targets: &BTreeMap<i32, Target>) -> Vec<KpiValue> {
    let list: &[Kpi] = if kpis.is_empty() { &ALL_KPIS } else { kpis };
    list.iter().map(|k| judge(compute(*k, inputs), targets.get(&(*k as i32)))).collect()
}

/// Ageing buckets of the current backlog: open cases by days since receipt.
pub const AGEING: [(&str, i32, i32); 5] =
    [("0-7d", 0, 7), ("8-15d", 8, 15), ("16-30d", 16, 30), ("31-60d", 31, 60), (">60d", 61, i32::MAX)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_show_numerator_denominator_and_target() {
        let mut p = Measures::default();
        p.set(m::SURVEYED, 20);
        p.set(m::SATISFIED, 18);
        p.set(m::RECEIVED, 40);
        p.set(m::RECURRENCES, 2);
        let inputs = Inputs { period: p, ..Inputs::default() };
        let targets = seed_targets();
        let all = kpis(&inputs, &[], &targets);
        assert_eq!(all.len(), ALL_KPIS.len());
        let satisfaction = &all[2];
        assert_eq!((satisfaction.numerator, satisfaction.denominator), (18, 20));
        assert!((satisfaction.value - 90.0).abs() < 1e-9);
        assert!(satisfaction.meets_target, "90% meets at least 90%");
        let recurrence = &all[5];
        assert_eq!(recurrence.value, 5.0);
        assert!(!recurrence.meets_target, "5% is not less than 5%");
        assert_eq!(recurrence.status, TargetStatus::Misses as i32);
        let on_time = &all[4];
        assert_eq!(on_time.status, TargetStatus::NoData as i32);
        let volume = &all[0];
        assert_eq!(volume.status, TargetStatus::NoTarget as i32);
    }

    #[test]
    fn normalised_volume_divides_by_the_denominators() {
        let mut p = Measures::default();
        p.set(m::RECEIVED, 30);
        let inputs = Inputs {
            period: p,
            denominators: PeriodDenominators {
                customers: Some(200_000),
                branches: Some(12),
                premium_minor: Some(3 * 10_000_000_000),
            },
            ..Inputs::default()
        };
        assert_eq!(compute(Kpi::VolumePer10kCustomers, &inputs).value, 1.5);
        assert_eq!(compute(Kpi::VolumePerBranch, &inputs).value, 2.5);
        assert_eq!(compute(Kpi::VolumePer100mPremium, &inputs).value, 10.0);
    }
}
