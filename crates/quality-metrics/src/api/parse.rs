//! Requests parsed once into typed values: units the caller covers, periods of days, filters.

use redress_platform::error::Violations;
use redress_platform::names::OrgUnit;
use redress_platform::principal::{Permission, Principal};
use redress_platform::{ServiceError, principal::ROOT_ORG_UNIT};
use redress_proto::redress::metrics::v1::{Dimension, DimensionValue, Period};

use crate::domain::dims::ALL;
use crate::domain::period::{Days, MAX_DAYS, parse_day};
use crate::read::Filter;

/// The unit a request names, after checking that the caller holds `permission` and covers it.
pub(crate) fn unit(
    principal: &Principal,
    permission: Permission,
    v: &mut Violations,
    field: &str,
    value: &str,
) -> Result<Option<OrgUnit>, ServiceError> {
    principal.require(permission)?;
    let Some(unit) = OrgUnit::parse(v, field, value) else { return Ok(None) };
    if !principal.covers(unit.as_str()) && !principal.is_service() {
        return Err(ServiceError::PermissionDenied(format!("{unit} lies outside the caller's organisation unit")));
    }
    Ok(Some(unit))
}

/// Whether the caller acts for the whole platform.
pub(crate) fn platform_wide(principal: &Principal) -> bool {
    principal.is_service() || principal.org_unit == ROOT_ORG_UNIT
}

/// Days `start_date..=end_date`, at most [`MAX_DAYS`].
pub(crate) fn period(v: &mut Violations, field: &str, period: Option<&Period>) -> Option<Days> {
    let Some(period) = period else {
        v.add(field, "required");
        return None;
    };
    let first = parse_day(&period.start_date);
    let last = parse_day(&period.end_date);
    if first.is_none() {
        v.add(format!("{field}.start_date"), "must be a date YYYY-MM-DD");
    }
    if last.is_none() {
        v.add(format!("{field}.end_date"), "must be a date YYYY-MM-DD");
    }
    let days = Days::new(first?, last?);
    if days.last < days.first {
        v.add(format!("{field}.end_date"), "must not be before start_date");
        return None;
    }
    if days.count() > MAX_DAYS {
        v.add(format!("{field}.end_date"), format!("a period covers at most {MAX_DAYS} days"));
        return None;
    }
    Some(days)
}

/// A dimension that must be given.
pub(crate) fn dimension(v: &mut Violations, field: &str, value: i32, default: Option<Dimension>) -> Option<i32> {
    match Dimension::try_from(value) {
        Ok(Dimension::Unspecified) => match default {
            Some(d) => Some(d as i32),
            None => {
                v.add(field, "required: a dimension such as DIMENSION_CHANNEL");
                None
            }
        },
        Ok(d) => Some(d as i32),
        Err(_) => {
            v.add(field, "is not a dimension");
            None
        }
    }
}

/// Every complaint, or those with one dimension value.
pub(crate) fn filter(v: &mut Violations, field: &str, filter: Option<&DimensionValue>) -> Filter {
    let Some(f) = filter else { return Filter::all() };
    match Dimension::try_from(f.dimension) {
        Ok(Dimension::Unspecified) => {
            v.add(format!("{field}.dimension"), "required when a filter is given");
            Filter::all()
        }
        Ok(d) => {
            if f.value.chars().count() > 200 {
                v.add(format!("{field}.value"), "at most 200 characters");
            }
            Filter { dimension: d as i32, value: f.value.clone() }
        }
        Err(_) => {
            v.add(format!("{field}.dimension"), "is not a dimension");
            Filter { dimension: ALL, value: String::new() }
        }
    }
}

/// A filter as the response echoes it.
pub(crate) fn filter_proto(filter: &Filter) -> Option<DimensionValue> {
    (filter.dimension != ALL).then(|| DimensionValue { dimension: filter.dimension, value: filter.value.clone() })
}
