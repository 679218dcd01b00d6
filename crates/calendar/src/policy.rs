//! SLA policy (D-SLA-1, D-SLA-2).
//!
//! This module owns which period applies to which clock: the first-response
//! and resolution targets per complaint grade, and the regulatory decision
//! clock. It knows nothing about calendars; turning a period into an instant
//! is [`crate::deadline`]'s job.

use serde::{Deserialize, Serialize};

use crate::deadline::Period;

/// Complaint grade, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grade {
    General,
    Important,
    Urgent,
    Major,
}

impl Grade {
    /// Every grade, least severe first.
    pub const ALL: [Grade; 4] = [Grade::General, Grade::Important, Grade::Urgent, Grade::Major];
}

/// Clocks that start when a complaint of one grade is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeTargets {
    pub first_response: Period,
    pub resolution: Period,
}

/// Targets for every grade plus the regulatory decision clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub general: GradeTargets,
    pub important: GradeTargets,
    pub urgent: GradeTargets,
    pub major: GradeTargets,
    pub regulatory_decision: Period,
}

impl Default for SlaPolicy {
    /// D-SLA-1 grade targets and the D-SLA-2 15-calendar-day decision clock.
    fn default() -> Self {
        let targets = |hours, working_days| GradeTargets {
            first_response: Period::Hours(hours),
            resolution: Period::WorkingDays(working_days),
        };
        Self {
            general: targets(24, 7),
            important: targets(8, 5),
            urgent: targets(2, 3),
            major: targets(1, 1),
            regulatory_decision: Period::CalendarDays(15),
        }
    }
}

impl SlaPolicy {
    pub fn targets(&self, grade: Grade) -> GradeTargets {
        match grade {
            Grade::General => self.general,
            Grade::Important => self.important,
            Grade::Urgent => self.urgent,
            Grade::Major => self.major,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_d_sla_1_and_2() {
        let p = SlaPolicy::default();
        let expect = [(Grade::General, 24, 7), (Grade::Important, 8, 5), (Grade::Urgent, 2, 3), (Grade::Major, 1, 1)];
        for (grade, hours, days) in expect {
            assert_eq!(
                p.targets(grade),
                GradeTargets { first_response: Period::Hours(hours), resolution: Period::WorkingDays(days) }
            );
        }
        assert_eq!(p.regulatory_decision, Period::CalendarDays(15));
    }

    #[test]
    fn policy_parses_from_operator_toml() {
        let p = SlaPolicy::default();
        let parsed: Result<SlaPolicy, String> = toml::from_str(
            r#"
            regulatory_decision = { CalendarDays = 15 }
            general = { first_response = { Hours = 24 }, resolution = { WorkingDays = 7 } }
            important = { first_response = { Hours = 8 }, resolution = { WorkingDays = 5 } }
            urgent = { first_response = { Hours = 2 }, resolution = { WorkingDays = 3 } }
            major = { first_response = { Hours = 1 }, resolution = { WorkingDays = 1 } }
            "#,
        )
        .map_err(|e| e.to_string());
        assert_eq!(parsed, Ok(p));
    }
}
