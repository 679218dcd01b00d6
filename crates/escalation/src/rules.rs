//! The rules the service applies, read once at start-up from the shipped data files (or the
//! operator's replacements) and the configuration.

use crate::domain::early_warning::EarlyWarningRules;
use crate::domain::grouping::GroupingConfig;
use crate::domain::incident::CrisisPolicy;
use crate::domain::ladder::LadderPolicy;
use crate::domain::malicious::LegalReferral;
use crate::domain::vip::VipRouting;

#[derive(Debug, Clone)]
pub struct Rules {
    pub ladder: LadderPolicy,
    pub crisis: CrisisPolicy,
    pub early_warning: EarlyWarningRules,
    /// Roles that approve a statement (统一口径).
    pub statement_approver_roles: Vec<String>,
    /// When similar complaints become an incident.
    pub grouping: GroupingConfig,
    /// Where a VIP's complaint goes.
    pub vip: VipRouting,
    /// Where an approved malicious-complaint flag is referred.
    pub legal: LegalReferral,
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
            vip: VipRouting::default(),
            legal: LegalReferral::default(),
            ladder: LadderPolicy::shipped()?,
            crisis: CrisisPolicy::shipped()?,
            early_warning: EarlyWarningRules::shipped()?,
            statement_approver_roles,
        })
    }
}
