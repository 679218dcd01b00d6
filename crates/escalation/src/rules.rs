//! The rules the service applies, read once at start-up from the shipped data files (or the
//! operator's replacements) and the configuration.

use crate::domain::early_warning::EarlyWarningRules;
use crate::domain::incident::CrisisPolicy;
use crate::domain::ladder::LadderPolicy;

#[derive(Debug, Clone)]
pub struct Rules {
    pub ladder: LadderPolicy,
    pub crisis: CrisisPolicy,
    pub early_warning: EarlyWarningRules,
    /// Roles that approve a statement (统一口径).
    pub statement_approver_roles: Vec<String>,
}

impl Rules {
    /// The shipped rules with the given approving roles.
    pub fn shipped(statement_approver_roles: Vec<String>) -> anyhow::Result<Self> {
        Ok(Self {
            ladder: LadderPolicy::shipped()?,
            crisis: CrisisPolicy::shipped()?,
            early_warning: EarlyWarningRules::shipped()?,
            statement_approver_roles,
        })
    }
}
