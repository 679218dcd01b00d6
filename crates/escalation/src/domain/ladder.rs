//! The escalation ladder (D-ESC-6, D-SLA-1) as data: for each grade the level an escalation
//! starts at and each level's timer; each step recorded with who, when and why; a step not
//! acknowledged in time calls in the next level.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::common::v1::Grade;
use redress_proto::redress::escalation::v1::{Escalation, EscalationLevel, EscalationState, EscalationStep};
use serde::Deserialize;

use super::actions::CaseRequest;
use super::{Actor, Change, DomainError, grade_label, institution_of, parse_grade, user_recipient};

const LEVELS: [EscalationLevel; 5] = [
    EscalationLevel::Handler,
    EscalationLevel::Supervisor,
    EscalationLevel::DepartmentHead,
    EscalationLevel::SeniorManagement,
    EscalationLevel::RegulatorReport,
];

fn level_key(level: EscalationLevel) -> &'static str {
    match level {
        EscalationLevel::Unspecified => "unspecified",
        EscalationLevel::Handler => "handler",
        EscalationLevel::Supervisor => "supervisor",
        EscalationLevel::DepartmentHead => "department_head",
        EscalationLevel::SeniorManagement => "senior_management",
        EscalationLevel::RegulatorReport => "regulator_report",
    }
}

fn parse_level(key: &str) -> Option<EscalationLevel> {
    LEVELS.into_iter().find(|l| level_key(*l) == key)
}

/// The zh-CN name of a level.
pub fn level_label(level: EscalationLevel) -> &'static str {
    match level {
        EscalationLevel::Unspecified => "未升级",
        EscalationLevel::Handler => "经办人",
        EscalationLevel::Supervisor => "主管",
        EscalationLevel::DepartmentHead => "部门负责人",
        EscalationLevel::SeniorManagement => "高级管理层",
        EscalationLevel::RegulatorReport => "监管报告",
    }
}

/// The ladder as configured.
#[derive(Debug, Clone)]
pub struct LadderPolicy {
    pub version: String,
    roles: BTreeMap<i32, Vec<String>>,
    grades: BTreeMap<i32, GradeLadder>,
    report: Report,
}

#[derive(Debug, Clone)]
struct GradeLadder {
    start: EscalationLevel,
    minutes: BTreeMap<i32, u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    department: String,
    owner: String,
    hours: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderFile {
    version: String,
    levels: BTreeMap<String, LevelEntry>,
    report: Report,
    grades: BTreeMap<String, GradeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelEntry {
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradeEntry {
    start: String,
    minutes: BTreeMap<String, u32>,
}

const SHIPPED: &str = include_str!("../../data/ladder.toml");

impl LadderPolicy {
    pub fn shipped() -> anyhow::Result<Self> {
        Self::parse(SHIPPED)
    }

    /// Reads a ladder file, refusing unknown levels or grades, a grade without a start or
    /// without a timer from its start up to senior management, and a level without roles.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: LadderFile = toml::from_str(text)?;
        let mut roles = BTreeMap::new();
        for (key, entry) in file.levels {
            let level = parse_level(&key).ok_or_else(|| anyhow::anyhow!("levels.{key}: unknown level"))?;
            anyhow::ensure!(!entry.roles.is_empty(), "levels.{key}: at least one role acknowledges it");
            roles.insert(level as i32, entry.roles);
        }
        for level in LEVELS {
            anyhow::ensure!(roles.contains_key(&(level as i32)), "levels.{} is missing", level_key(level));
        }
        let mut grades = BTreeMap::new();
        for (key, entry) in file.grades {
            let grade = parse_grade(&key).ok_or_else(|| anyhow::anyhow!("grades.{key}: unknown grade"))?;
            let start = parse_level(&entry.start)
                .ok_or_else(|| anyhow::anyhow!("grades.{key}.start: unknown level {:?}", entry.start))?;
            let mut minutes = BTreeMap::new();
            for (level, m) in entry.minutes {
                let l = parse_level(&level)
                    .ok_or_else(|| anyhow::anyhow!("grades.{key}.minutes.{level}: unknown level"))?;
                anyhow::ensure!(
                    l != EscalationLevel::RegulatorReport,
                    "grades.{key}: the regulator report has no timer"
                );
                anyhow::ensure!(m > 0, "grades.{key}.minutes.{level}: at least 1");
                minutes.insert(l as i32, m);
            }
            for level in LEVELS.into_iter().filter(|l| *l >= start && *l < EscalationLevel::RegulatorReport) {
                anyhow::ensure!(
                    minutes.contains_key(&(level as i32)),
                    "grades.{key}.minutes.{} is missing (every level from the start up to senior management is timed)",
                    level_key(level)
                );
            }
            grades.insert(grade as i32, GradeLadder { start, minutes });
        }
        for grade in [Grade::General, Grade::Important, Grade::Urgent, Grade::Major] {
            anyhow::ensure!(grades.contains_key(&(grade as i32)), "grades for {grade:?} are missing");
        }
        anyhow::ensure!(file.report.hours > 0, "report.hours: at least 1");
        Ok(Self { version: file.version, roles, grades, report: file.report })
    }

    fn ladder(&self, grade: i32) -> &GradeLadder {
        let grade = if self.grades.contains_key(&grade) { grade } else { Grade::General as i32 };
        &self.grades[&grade]
    }

    /// The level an escalation of `grade` starts at.
    pub fn start(&self, grade: i32) -> EscalationLevel {
        self.ladder(grade).start
    }

    /// How long a step at `level` waits for acknowledgement in a case of `grade`.
    pub fn timer(&self, grade: i32, level: EscalationLevel) -> Option<Duration> {
        self.ladder(grade).minutes.get(&(level as i32)).map(|m| Duration::minutes(i64::from(*m)))
    }

    pub fn roles(&self, level: EscalationLevel) -> &[String] {
        self.roles.get(&(level as i32)).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The case an escalation is about, as the service knows it from the feeds.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub complaint: String,
    pub case: String,
    pub org_unit: String,
    pub grade: i32,
    pub assignee: String,
    pub department: String,
}

/// How far to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raise {
    /// One level above the current one (the grade's start when there is none).
    Next,
    /// To this level, which must be above the current one.
    To(EscalationLevel),
    /// To this level unless it is reached already (rules: a major case reaches senior
    /// management at once).
    AtLeast(EscalationLevel),
}

/// A step taken.
#[derive(Debug, Clone)]
pub struct Raised {
    pub escalation: Escalation,
    pub step: EscalationStep,
    pub previous: EscalationLevel,
    /// The regulator report requested of compliance, when the step reached it.
    pub report_task: Option<CaseRequest>,
}

fn level_of(escalation: &Escalation) -> EscalationLevel {
    EscalationLevel::try_from(escalation.level).unwrap_or(EscalationLevel::Unspecified)
}

fn is_live(escalation: &Escalation) -> bool {
    escalation.state() != EscalationState::Closed && level_of(escalation) != EscalationLevel::Unspecified
}

/// Whom a step at `level` goes to.
pub fn recipients(level: EscalationLevel, target: &Target, policy: &LadderPolicy) -> Vec<String> {
    let unit_or_department =
        if target.department.is_empty() { target.org_unit.clone() } else { target.department.clone() };
    match level {
        EscalationLevel::Unspecified => Vec::new(),
        EscalationLevel::Handler if !target.assignee.is_empty() => vec![user_recipient(&target.assignee)],
        EscalationLevel::Handler => vec![format!("org_unit:{}", target.org_unit)],
        EscalationLevel::Supervisor => vec![format!("supervisor:{unit_or_department}")],
        EscalationLevel::DepartmentHead => vec![format!("department_head:{unit_or_department}")],
        EscalationLevel::SeniorManagement => {
            vec!["role:senior_manager".to_owned(), format!("senior_management:{}", institution_of(&target.org_unit))]
        }
        EscalationLevel::RegulatorReport => vec![
            format!("department:{}", policy.report.department),
            format!("regulator_report:{}", institution_of(&target.org_unit)),
        ],
    }
}

/// Raises `existing` (or opens a new escalation named `name` for `target`) as `how` says.
/// `Ok(None)` when an `AtLeast` raise finds the level reached already.
pub fn raise(
    policy: &LadderPolicy,
    existing: Option<Escalation>,
    name: String,
    target: &Target,
    how: Raise,
    reason: String,
    actor: &Actor,
) -> Result<Option<Raised>, DomainError> {
    let now = Some(to_timestamp(actor.now));
    let mut escalation = match existing {
        Some(e) if is_live(&e) => e,
        // A closed escalation of a case reopened, or none yet: a new ladder from the start.
        Some(e) => Escalation {
            state: EscalationState::Open as i32,
            level: EscalationLevel::Unspecified as i32,
            case: target.case.clone(),
            ..e
        },
        None => Escalation {
            name,
            complaint: target.complaint.clone(),
            case: target.case.clone(),
            org_unit: target.org_unit.clone(),
            state: EscalationState::Open as i32,
            create_time: now,
            ..Escalation::default()
        },
    };
    let previous = level_of(&escalation);
    let start = policy.start(target.grade);
    let to = match how {
        Raise::Next if previous == EscalationLevel::Unspecified => start,
        Raise::Next => {
            let next = LEVELS.into_iter().find(|l| *l > previous);
            next.ok_or(DomainError::TopOfLadder)?
        }
        Raise::To(level) if level <= previous => return Err(DomainError::LevelNotAbove { current: previous }),
        Raise::To(level) => level,
        Raise::AtLeast(level) if level <= previous => return Ok(None),
        Raise::AtLeast(level) => level,
    };
    if !target.case.is_empty() {
        escalation.case = target.case.clone();
    }
    escalation.grade = target.grade;
    escalation.level = to as i32;
    escalation.state = EscalationState::Open as i32;
    escalation.update_time = now;
    let step = EscalationStep {
        level: to as i32,
        recipients: recipients(to, target, policy),
        reason,
        raised_by: actor.subject.clone(),
        raise_time: now,
        due_time: policy.timer(target.grade, to).map(|t| to_timestamp(actor.now + t)),
        ..EscalationStep::default()
    };
    escalation.steps.push(step.clone());
    let report_task = (to == EscalationLevel::RegulatorReport).then(|| CaseRequest::AddTask {
        department: policy.report.department.clone(),
        owner: policy.report.owner.clone(),
        description: format!("投诉升级至监管报告层级，请准备并报送监管报告（升级原因：{}）", step.reason),
        due_in_hours: policy.report.hours,
    });
    Ok(Some(Raised { escalation, step, previous, report_task }))
}

/// Acknowledges the current step; its timer stops.
pub fn acknowledge(
    policy: &LadderPolicy,
    escalation: &mut Escalation,
    note: String,
    actor: &Actor,
) -> Result<Change, DomainError> {
    match escalation.state() {
        EscalationState::Closed => return Err(DomainError::EscalationClosed),
        EscalationState::Acknowledged => return Err(DomainError::AlreadyAcknowledged),
        EscalationState::Open | EscalationState::Unspecified => {}
    }
    let level = level_of(escalation);
    let roles = policy.roles(level);
    if !actor.has_any_role(roles) {
        return Err(DomainError::AcknowledgeRoleRequired { level, roles: roles.to_vec() });
    }
    let Some(step) = escalation.steps.last_mut() else { return Err(DomainError::EscalationClosed) };
    step.acknowledged_by = actor.subject.clone();
    step.acknowledge_time = Some(to_timestamp(actor.now));
    step.note = note;
    escalation.state = EscalationState::Acknowledged as i32;
    escalation.update_time = Some(to_timestamp(actor.now));
    Ok(Change::new("escalation.acknowledged", [("level", level.as_str_name().to_owned())]))
}

/// When the sweeper must look at the escalation: the due time of an open, unacknowledged step.
pub fn next_check(escalation: &Escalation) -> Option<DateTime<Utc>> {
    if escalation.state() != EscalationState::Open {
        return None;
    }
    escalation.steps.last()?.due_time.as_ref().and_then(from_timestamp)
}

/// The next level, called in because the current step was not acknowledged in time; `None`
/// when nothing is due.
pub fn sweep(
    policy: &LadderPolicy,
    escalation: &Escalation,
    target: &Target,
    actor: &Actor,
) -> Result<Option<Raised>, DomainError> {
    let Some(due) = next_check(escalation).filter(|due| *due <= actor.now) else { return Ok(None) };
    let level = level_of(escalation);
    let minutes = escalation
        .steps
        .last()
        .and_then(|s| {
            Some((from_timestamp(s.due_time.as_ref()?)? - from_timestamp(s.raise_time.as_ref()?)?).num_minutes())
        })
        .unwrap_or_default();
    let reason = format!(
        "{}层级的升级未在时限内确认（{} 分钟，到期 {}），自动升级",
        level_label(level),
        minutes,
        due.to_rfc3339()
    );
    let target = Target { grade: escalation.grade, ..target.clone() };
    raise(policy, Some(escalation.clone()), escalation.name.clone(), &target, Raise::Next, reason, actor)
}

/// Closes an escalation whose case ended.
pub fn close(escalation: &mut Escalation, why: &str, now: DateTime<Utc>) -> Option<Change> {
    if escalation.state() == EscalationState::Closed {
        return None;
    }
    escalation.state = EscalationState::Closed as i32;
    escalation.update_time = Some(to_timestamp(now));
    Some(Change::new("escalation.closed", [("why", why.to_owned())]))
}

/// Why a grade sends a case up the ladder, in words.
pub fn grade_reason(grade: Grade) -> String {
    format!("案件等级为{}，按升级阶梯上报", grade_label(grade))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target(grade: Grade) -> Target {
        Target {
            complaint: "complaints/1".into(),
            case: "cases/1".into(),
            org_unit: "institutions/demo/branches/sh".into(),
            grade: grade as i32,
            assignee: "user:li".into(),
            department: "cards".into(),
        }
    }

    fn actor(roles: &[&str], now: DateTime<Utc>) -> Actor {
        Actor { subject: "user:x".into(), roles: roles.iter().map(|r| (*r).to_owned()).collect(), now }
    }

    #[test]
    fn the_shipped_ladder_is_valid_and_a_broken_one_is_refused() {
        let p = LadderPolicy::shipped().unwrap();
        assert_eq!(p.start(Grade::Major as i32), EscalationLevel::SeniorManagement);
        assert_eq!(p.start(Grade::General as i32), EscalationLevel::Handler);
        assert_eq!(p.timer(Grade::Major as i32, EscalationLevel::SeniorManagement), Some(Duration::minutes(60)));
        let broken = SHIPPED.replace("senior_management = 60", "");
        assert!(LadderPolicy::parse(&broken).is_err(), "a major escalation at senior management needs a timer");
        assert!(LadderPolicy::parse(&SHIPPED.replace("start = \"handler\"", "start = \"boss\"")).is_err());
    }

    #[test]
    fn a_major_case_reaches_senior_management_at_once_and_climbs_when_not_acknowledged() {
        let p = LadderPolicy::shipped().unwrap();
        let now = Utc::now();
        let t = target(Grade::Major);
        let first = raise(
            &p,
            None,
            "escalations/1".into(),
            &t,
            Raise::AtLeast(EscalationLevel::SeniorManagement),
            "重大".into(),
            &actor(&[], now),
        )
        .unwrap()
        .unwrap();
        assert_eq!(first.escalation.level(), EscalationLevel::SeniorManagement);
        assert_eq!(first.step.recipients[0], "role:senior_manager");
        assert_eq!(first.step.recipients[1], "senior_management:institutions/demo");
        // The same rule again changes nothing.
        assert!(
            raise(
                &p,
                Some(first.escalation.clone()),
                String::new(),
                &t,
                Raise::AtLeast(EscalationLevel::SeniorManagement),
                "again".into(),
                &actor(&[], now)
            )
            .unwrap()
            .is_none()
        );
        // Not acknowledged within its hour: the regulator report, with a task for compliance.
        assert!(sweep(&p, &first.escalation, &t, &actor(&[], now + Duration::minutes(59))).unwrap().is_none());
        let later = actor(&[], now + Duration::minutes(61));
        let up = sweep(&p, &first.escalation, &t, &later).unwrap().unwrap();
        assert_eq!(up.escalation.level(), EscalationLevel::RegulatorReport);
        assert_eq!(up.previous, EscalationLevel::SeniorManagement);
        assert!(matches!(up.report_task, Some(CaseRequest::AddTask { .. })));
        assert_eq!(up.escalation.steps.len(), 2);
        assert!(next_check(&up.escalation).is_none(), "the top has no timer");
        let top = raise(&p, Some(up.escalation), String::new(), &t, Raise::Next, "x".into(), &later);
        assert!(matches!(top, Err(DomainError::TopOfLadder)));
    }

    #[test]
    fn an_acknowledged_step_stops_its_timer_and_needs_the_levels_role() {
        let p = LadderPolicy::shipped().unwrap();
        let now = Utc::now();
        let t = target(Grade::Urgent);
        let mut e = raise(&p, None, "escalations/1".into(), &t, Raise::Next, "预警".into(), &actor(&[], now))
            .unwrap()
            .unwrap()
            .escalation;
        assert_eq!(e.level(), EscalationLevel::Supervisor);
        assert!(matches!(
            acknowledge(&p, &mut e, "收到".into(), &actor(&["handler"], now)),
            Err(DomainError::AcknowledgeRoleRequired { .. })
        ));
        acknowledge(&p, &mut e, "收到".into(), &actor(&["supervisor"], now)).unwrap();
        assert_eq!(
            acknowledge(&p, &mut e, "again".into(), &actor(&["supervisor"], now)),
            Err(DomainError::AlreadyAcknowledged)
        );
        assert!(sweep(&p, &e, &t, &actor(&[], now + Duration::days(30))).unwrap().is_none());
        // Raised by hand, the next level's step opens with its own timer.
        let up =
            raise(&p, Some(e), String::new(), &t, Raise::Next, "需部门负责人协调".into(), &actor(&["supervisor"], now))
                .unwrap()
                .unwrap();
        assert_eq!(up.escalation.level(), EscalationLevel::DepartmentHead);
        assert_eq!(up.escalation.state(), EscalationState::Open);
        assert!(matches!(
            raise(
                &p,
                Some(up.escalation),
                String::new(),
                &t,
                Raise::To(EscalationLevel::Supervisor),
                "x".into(),
                &actor(&[], now)
            ),
            Err(DomainError::LevelNotAbove { .. })
        ));
    }
}
