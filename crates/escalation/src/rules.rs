//! The rules the service applies, read once at start-up from the shipped data files (or the
//! operator's replacements) and the configuration.

use crate::domain::early_warning::EarlyWarningRules;
use crate::domain::grouping::GroupingConfig;
use crate::domain::incident::CrisisPolicy;
use crate::domain::ladder::LadderPolicy;

#[derive(Debug, Clone)]
pub struct Rules {
    pub ladder: LadderPolicy,
    pub crisis: CrisisPolicy,
    pub early_warning: EarlyWarningRules,
    /// Roles that approve a statement (统一口径).
    pub statement_approver_roles: Vec<String>,
    /// When similar complaints become an incident.
    pub grouping: GroupingConfig,
}

impl Rules {
    /// The shipped rules with the given approving roles.
    pub fn shipped(statement_approver_roles: Vec<String>) -> anyhow::Result<Self> {
        Self::with(statement_approver_roles, GroupingConfig::default())
    }

    /// The shipped rules with the given approving roles and grouping thresholds.
    pub fn with(statement_approver_roles: Vec<String>, grouping: GroupingConfig) -> anyhow::Result<Self> {
        grouping.validate()?;
        Ok(Self {
            grouping,
            ladder: LadderPolicy::shipped()?,
            crisis: CrisisPolicy::shipped()?,
            early_warning: EarlyWarningRules::shipped()?,
            statement_approver_roles,
        })
    }
}
