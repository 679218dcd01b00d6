//! Early-warning signals (D-ESC-1): intake's `RiskSignalRaised` alerts the front line and the
//! supervisor, and by rule raises the case's grade and sends it up the ladder.

use redress_platform::time::to_timestamp;
use redress_proto::redress::common::v1::Grade;
use redress_proto::redress::escalation::v1::{Alert, AlertKind};
use redress_proto::redress::intake::v1::{RiskSignal, RiskSignalKind};
use serde::Deserialize;

use super::actions::CaseRequest;
use super::{Actor, grade_label, grade_rank, parse_grade, user_recipient};

#[derive(Debug, Clone)]
pub struct EarlyWarningRules {
    pub version: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    all_of: Vec<RiskSignalKind>,
    min_grade: Grade,
    escalate: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: String,
    rules: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    id: String,
    all_of: Vec<String>,
    min_grade: String,
    #[serde(default)]
    escalate: bool,
}

const SHIPPED: &str = include_str!("../../data/early_warning.toml");

fn signal_kind(name: &str) -> Option<RiskSignalKind> {
    RiskSignalKind::from_str_name(&format!("RISK_SIGNAL_KIND_{}", name.to_uppercase()))
        .filter(|k| *k != RiskSignalKind::Unspecified)
}

fn signal_label(kind: RiskSignalKind) -> &'static str {
    match kind {
        RiskSignalKind::Unspecified => "预警信号",
        RiskSignalKind::RepeatContact => "多次来电",
        RiskSignalKind::LongWait => "等待过久",
        RiskSignalKind::EscalationThreat => "扬言投诉监管/媒体/诉讼",
        RiskSignalKind::HeatedWording => "情绪激烈",
    }
}

impl EarlyWarningRules {
    pub fn shipped() -> anyhow::Result<Self> {
        Self::parse(SHIPPED)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: RulesFile = toml::from_str(text)?;
        let mut rules = Vec::new();
        for r in file.rules {
            anyhow::ensure!(!r.all_of.is_empty(), "rule {}: all_of names at least one signal", r.id);
            let all_of = r
                .all_of
                .iter()
                .map(|s| signal_kind(s).ok_or_else(|| anyhow::anyhow!("rule {}: unknown signal {s:?}", r.id)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let min_grade = parse_grade(&r.min_grade)
                .ok_or_else(|| anyhow::anyhow!("rule {}: unknown grade {:?}", r.id, r.min_grade))?;
            rules.push(Rule { id: r.id, all_of, min_grade, escalate: r.escalate });
        }
        Ok(Self { version: file.version, rules })
    }
}

/// What the signals of one complaint call for.
#[derive(Debug, Clone)]
pub struct Warning {
    pub alert: Alert,
    /// The grade change the rules ask for, when they ask for a higher grade than the case has.
    pub grade_change: Option<CaseRequest>,
    /// Whether a rule sends the case up the ladder.
    pub escalate: bool,
    /// The rules that matched.
    pub matched: Vec<String>,
}

/// The complaint the signals are about, as far as the service knows it.
#[derive(Debug, Clone, Default)]
pub struct Signalled {
    pub complaint: String,
    pub org_unit: String,
    /// The grade the case has now (the higher of intake's and what the case feed said).
    pub grade: i32,
    /// Who took the complaint, when known.
    pub front_line: String,
}

/// The alert to raise for `signals`, and what the rules add to it.
pub fn assess(
    rules: &EarlyWarningRules,
    alert_name: String,
    of: &Signalled,
    signals: &[RiskSignal],
    actor: &Actor,
) -> Warning {
    let kinds: Vec<RiskSignalKind> = signals.iter().map(|s| s.kind()).collect();
    let matched: Vec<&Rule> = rules.rules.iter().filter(|r| r.all_of.iter().all(|k| kinds.contains(k))).collect();
    let target = matched.iter().map(|r| r.min_grade).max_by_key(|g| grade_rank(*g as i32));
    let grade_change =
        target.filter(|g| grade_rank(*g as i32) > grade_rank(of.grade)).map(|g| CaseRequest::ChangeGrade {
            grade: g as i32,
            reason: format!(
                "预警规则 {}（{}）：等级提升为{}",
                matched.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join("、"),
                rules.version,
                grade_label(g)
            ),
        });
    let front_line =
        if of.front_line.is_empty() { format!("org_unit:{}", of.org_unit) } else { user_recipient(&of.front_line) };
    let evidence = signals.iter().map(|s| format!("{}：{}", signal_label(s.kind()), s.evidence.join("、"))).collect();
    let alert = Alert {
        name: alert_name,
        kind: AlertKind::EarlyWarning as i32,
        org_unit: of.org_unit.clone(),
        recipients: vec![front_line, format!("supervisor:{}", of.org_unit)],
        reason: format!(
            "投诉出现预警信号，请优先处理：{}",
            kinds.iter().map(|k| signal_label(*k)).collect::<Vec<_>>().join("、")
        ),
        evidence,
        complaint: of.complaint.clone(),
        create_time: Some(to_timestamp(actor.now)),
        ..Alert::default()
    };
    Warning {
        alert,
        grade_change,
        escalate: matched.iter().any(|r| r.escalate),
        matched: matched.iter().map(|r| r.id.clone()).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signal(kind: RiskSignalKind, evidence: &str) -> RiskSignal {
        RiskSignal { kind: kind as i32, evidence: vec![evidence.to_owned()] }
    }

    fn of(grade: Grade) -> Signalled {
        Signalled {
            complaint: "complaints/1".into(),
            org_unit: "institutions/demo/branches/sh".into(),
            grade: grade as i32,
            front_line: "user:li".into(),
        }
    }

    #[test]
    fn every_signal_alerts_the_front_line_and_supervisor_and_rules_raise_the_grade() {
        let rules = EarlyWarningRules::shipped().unwrap();
        let actor = Actor::service(chrono::Utc::now());
        let w = assess(
            &rules,
            "alerts/1".into(),
            &of(Grade::General),
            &[signal(RiskSignalKind::LongWait, "600 秒")],
            &actor,
        );
        assert_eq!(w.alert.recipients, ["user:li", "supervisor:institutions/demo/branches/sh"]);
        assert!(w.grade_change.is_none() && !w.escalate);
        let both =
            [signal(RiskSignalKind::EscalationThreat, "12378"), signal(RiskSignalKind::HeatedWording, "忍无可忍")];
        let w = assess(&rules, "alerts/2".into(), &of(Grade::Important), &both, &actor);
        assert!(
            matches!(w.grade_change, Some(CaseRequest::ChangeGrade { grade, .. }) if grade == Grade::Urgent as i32)
        );
        assert!(w.escalate);
        assert_eq!(w.matched.len(), 2);
        // A case already urgent is not regraded.
        let w = assess(&rules, "alerts/3".into(), &of(Grade::Major), &both, &actor);
        assert!(w.grade_change.is_none());
    }

    #[test]
    fn unknown_signals_and_grades_are_refused() {
        assert!(
            EarlyWarningRules::parse(
                "version = \"x\"\n[[rules]]\nid = \"a\"\nall_of = [\"shouting\"]\nmin_grade = \"urgent\""
            )
            .is_err()
        );
        assert!(
            EarlyWarningRules::parse(
                "version = \"x\"\n[[rules]]\nid = \"a\"\nall_of = [\"long_wait\"]\nmin_grade = \"huge\""
            )
            .is_err()
        );
    }
}
