//! Sensitive-complaint routing rules (D-CASE-9) as versioned data: which complaints notify
//! compliance (上报合规部门) and which ask the legal department for an opinion, by the case's
//! classification codes and the early-warning signals intake raised. The shipped set is
//! `data/routing.toml`; an institution may configure its own file in the same format
//! (`workflow.routing_rules_file`).
//!
//! A rule fires when any of its `when` conditions holds; a condition holds when every
//! criterion it states does: the taxonomy (name, without version), and the business type,
//! cause, any right, or a signal of a kind (with, when listed, evidence containing any of the
//! phrases) among those listed. Parsing and matching are pure; reading the file is the
//! service's.

use std::collections::HashSet;

use redress_proto::redress::case::v1::{Case, RoutingAction};
use serde::Deserialize;

/// The rule set shipped with the service.
pub const SHIPPED: &str = include_str!("../../data/routing.toml");

/// A versioned set of routing rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRules {
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// `SensitiveComplaintRouted` to the rule's recipients.
    NotifyCompliance,
    /// A LEGAL_OPINION coordination task for the rule's department, due in its working days.
    LegalOpinionTask,
}

impl RuleAction {
    pub fn proto(self) -> RoutingAction {
        match self {
            Self::NotifyCompliance => RoutingAction::NotifyCompliance,
            Self::LegalOpinionTask => RoutingAction::LegalOpinionTask,
        }
    }
}

/// One rule: an id stable across versions (a case records the ids that fired), the action and
/// its parameters, and the conditions it fires on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub action: RuleAction,
    /// Who is notified, e.g. "department:compliance".
    #[serde(default)]
    pub recipients: Vec<String>,
    /// The department a legal-opinion task goes to; its queue owns the task.
    #[serde(default)]
    pub department: String,
    /// Working days the task is due in.
    #[serde(default)]
    pub due_working_days: u32,
    /// What the task asks.
    #[serde(default)]
    pub task: String,
    pub when: Vec<Condition>,
}

/// One condition of a rule: every criterion it states must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Taxonomy name, e.g. "banking" (a classification "banking@2026.1" is of it).
    pub taxonomy: Option<String>,
    #[serde(default)]
    pub business_types: Vec<String>,
    #[serde(default)]
    pub causes: Vec<String>,
    /// Any of these rights infringed.
    #[serde(default)]
    pub rights: Vec<String>,
    /// A signal of this kind, as intake names it without the prefix, e.g. "ESCALATION_THREAT".
    pub signal: Option<String>,
    /// With `signal`: its evidence contains any of these phrases.
    #[serde(default)]
    pub evidence: Vec<String>,
}

impl RoutingRules {
    /// The shipped rule set.
    pub fn shipped() -> Self {
        // Checked by a test; a broken shipped file is a build defect, and no rules is the
        // fallback that never refuses a case.
        Self::parse("data/routing.toml", SHIPPED).unwrap_or_else(|_| Self::none())
    }

    /// No rules at all.
    pub fn none() -> Self {
        Self { version: String::new(), description: String::new(), rules: Vec::new() }
    }

    /// Parses and checks a rule file; the error names the file and the rule or line at fault.
    pub fn parse(source: &str, text: &str) -> anyhow::Result<Self> {
        let rules: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        rules.check().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        Ok(rules)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.version.trim().is_empty(), "version is required");
        let mut ids = HashSet::new();
        for rule in &self.rules {
            let id = &rule.id;
            anyhow::ensure!(!id.trim().is_empty(), "a rule has no id");
            anyhow::ensure!(ids.insert(id.as_str()), "rule {id} is defined twice");
            anyhow::ensure!(!rule.when.is_empty(), "rule {id} has no `when` condition");
            for c in &rule.when {
                let stated = c.taxonomy.is_some()
                    || !c.business_types.is_empty()
                    || !c.causes.is_empty()
                    || !c.rights.is_empty()
                    || c.signal.is_some();
                anyhow::ensure!(stated, "rule {id} has a condition that states nothing");
                anyhow::ensure!(
                    c.evidence.is_empty() || c.signal.is_some(),
                    "rule {id} lists evidence without a signal"
                );
                anyhow::ensure!(
                    c.taxonomy.is_some()
                        || c.signal.is_some()
                            && c.business_types.is_empty()
                            && c.causes.is_empty()
                            && c.rights.is_empty(),
                    "rule {id} names codes without their taxonomy (codes are per taxonomy)"
                );
            }
            match rule.action {
                RuleAction::NotifyCompliance => {
                    anyhow::ensure!(!rule.recipients.is_empty(), "rule {id} notifies nobody (recipients)");
                }
                RuleAction::LegalOpinionTask => {
                    anyhow::ensure!(!rule.department.trim().is_empty(), "rule {id} needs a department");
                    anyhow::ensure!(rule.due_working_days > 0, "rule {id} needs due_working_days of at least 1");
                }
            }
        }
        Ok(())
    }

    /// The rules `case` matches that have not fired for it yet, in file order.
    pub fn due_for<'a>(&'a self, case: &'a Case) -> impl Iterator<Item = &'a RoutingRule> + 'a {
        self.rules.iter().filter(move |r| !case.routings.iter().any(|f| f.rule_id == r.id) && r.matches(case))
    }
}

impl RoutingRule {
    pub fn matches(&self, case: &Case) -> bool {
        self.when.iter().any(|c| c.holds(case))
    }
}

impl Condition {
    fn holds(&self, case: &Case) -> bool {
        let class = case.classification.clone().unwrap_or_default();
        let taxonomy = class.taxonomy.split('@').next().unwrap_or_default();
        let any_of = |listed: &[String], value: &str| listed.is_empty() || listed.iter().any(|l| l == value);
        self.taxonomy.as_ref().is_none_or(|t| t == taxonomy)
            && any_of(&self.business_types, &class.business_type)
            && any_of(&self.causes, &class.cause)
            && (self.rights.is_empty() || class.rights.iter().any(|r| self.rights.contains(r)))
            && self.signal.as_ref().is_none_or(|kind| {
                case.risk_signals.iter().any(|s| {
                    &s.kind == kind
                        && (self.evidence.is_empty()
                            || s.evidence.iter().any(|e| self.evidence.iter().any(|p| e.contains(p.as_str()))))
                })
            })
    }
}
