//! Reply lint: the draft checked against the rules in force, the finding spans in characters of
//! the draft as sent, and whether the institution blocks replies with banned phrases.

use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, Text};
use redress_platform::principal::{Permission, Principal};
use redress_proto::redress::knowledge::v1::{
    LintFinding, LintReplyRequest, LintReplyResponse, LintRule, LintRuleKind, LintSeverity, ListLintRulesRequest,
    ListLintRulesResponse, ReplyKind as PbReplyKind, TextRange,
};

use super::KnowledgeApi;
use crate::domain::lint::{Finding, ReplyKind, RuleKind, Severity};
use crate::error::KbError;

fn severity(s: Severity) -> LintSeverity {
    match s {
        Severity::Info => LintSeverity::Info,
        Severity::Warning => LintSeverity::Warning,
        Severity::Error => LintSeverity::Error,
    }
}

fn rule_kind(k: RuleKind) -> LintRuleKind {
    match k {
        RuleKind::BannedPhrase => LintRuleKind::BannedPhrase,
        RuleKind::NegativeWording => LintRuleKind::NegativeWording,
        RuleKind::Blame => LintRuleKind::Blame,
        RuleKind::Jargon => LintRuleKind::Jargon,
        RuleKind::OverPromise => LintRuleKind::OverPromise,
        RuleKind::MissingElement => LintRuleKind::MissingElement,
    }
}

fn reply_kind(k: ReplyKind) -> PbReplyKind {
    match k {
        ReplyKind::General => PbReplyKind::Unspecified,
        ReplyKind::FirstResponse => PbReplyKind::FirstResponse,
        ReplyKind::DecisionNotice => PbReplyKind::DecisionNotice,
    }
}

fn to_finding(f: Finding) -> LintFinding {
    let at = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    LintFinding {
        rule: f.rule,
        kind: rule_kind(f.kind) as i32,
        severity: severity(f.severity) as i32,
        range: Some(TextRange { start: at(f.start), end: at(f.end) }),
        text: f.text,
        message: f.message,
        alternatives: f.alternatives,
    }
}

impl KnowledgeApi {
    pub(super) async fn lint_reply(
        &self,
        principal: &Principal,
        request: LintReplyRequest,
    ) -> Result<LintReplyResponse, KbError> {
        principal.require(Permission::KnowledgeRead)?;
        let mut v = Violations::new();
        Text::Notice.check(&mut v, "text", &request.text, true);
        let kind = match PbReplyKind::try_from(request.kind) {
            Ok(PbReplyKind::Unspecified) => ReplyKind::General,
            Ok(PbReplyKind::FirstResponse) => ReplyKind::FirstResponse,
            Ok(PbReplyKind::DecisionNotice) => ReplyKind::DecisionNotice,
            Err(_) => {
                v.add("kind", "unknown reply kind");
                ReplyKind::General
            }
        };
        let unit = if request.org_unit.trim().is_empty() {
            None
        } else {
            OrgUnit::parse(&mut v, "org_unit", &request.org_unit)
        };
        v.into_result()?;
        let lexicon = &self.lexicon;
        let findings = self.rules.lint(&request.text, kind, |c| lexicon.normalize_char(c));
        let banned = findings.iter().any(|f| f.kind == RuleKind::BannedPhrase && f.severity == Severity::Error);
        let blocked = banned && unit.is_some_and(|u| self.blocking.contains(u.institution().as_str()));
        if !findings.is_empty() {
            metrics::counter!("redress_knowledge_lint_findings_total").increment(findings.len() as u64);
        }
        Ok(LintReplyResponse {
            findings: findings.into_iter().map(to_finding).collect(),
            rules_version: self.rules.version.clone(),
            blocked,
        })
    }

    pub(super) async fn list_lint_rules(
        &self,
        principal: &Principal,
        _request: ListLintRulesRequest,
    ) -> Result<ListLintRulesResponse, KbError> {
        principal.require(Permission::KnowledgeRead)?;
        let rules = self
            .rules
            .rules
            .iter()
            .map(|r| LintRule {
                id: r.id.clone(),
                kind: rule_kind(r.kind) as i32,
                severity: severity(r.severity) as i32,
                phrases: r.phrases.clone(),
                message: r.message.clone(),
                alternatives: r.alternatives.clone(),
                reply_kinds: r.reply_kinds.iter().map(|k| reply_kind(*k) as i32).collect(),
            })
            .collect();
        Ok(ListLintRulesResponse { rules, version: self.rules.version.clone() })
    }
}
