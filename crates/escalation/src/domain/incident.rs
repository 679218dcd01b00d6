//! Incidents (D-ESC-2, D-ESC-3): proposed → declared → closed (or dismissed), with a working
//! group, a disclosure timeline, a systemic-cause record and crisis communication in stages
//! (fact clarification → progress updates → summary), each with its due time and response
//! template.

use chrono::{DateTime, Duration, Utc};
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::escalation::v1::{
    CrisisStage, CrisisStageRecord, DetectionEvidence, Incident, IncidentKind, IncidentState, SystemicCause,
    TimelineEntry, TimelineEntryKind, WorkingGroup, WorkingGroupMember, WorkingGroupRole,
};
use serde::Deserialize;

use super::{Actor, Change, DomainError};

/// The crisis stages in order, with how long each may take and the response template used
/// when no institution template is stored (D-ESC-3).
#[derive(Debug, Clone)]
pub struct CrisisPolicy {
    pub version: String,
    stages: Vec<StagePolicy>,
}

#[derive(Debug, Clone)]
pub struct StagePolicy {
    pub stage: CrisisStage,
    pub hours: u32,
    pub template: Template,
}

/// A response template: its name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrisisFile {
    version: String,
    stages: Vec<StageEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageEntry {
    stage: String,
    hours: u32,
    template: String,
    text: String,
}

/// The shipped crisis stages and templates.
const SHIPPED_CRISIS: &str = include_str!("../../data/crisis.toml");

impl CrisisPolicy {
    pub fn shipped() -> anyhow::Result<Self> {
        Self::parse(SHIPPED_CRISIS)
    }

    /// Reads a crisis file: the three stages in order, each with hours and a template.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: CrisisFile = toml::from_str(text)?;
        let expected = [CrisisStage::FactClarification, CrisisStage::ProgressUpdates, CrisisStage::Summary];
        anyhow::ensure!(file.stages.len() == expected.len(), "crisis stages: exactly three, in order");
        let mut stages = Vec::new();
        for (entry, stage) in file.stages.into_iter().zip(expected) {
            let named = CrisisStage::from_str_name(&format!("CRISIS_STAGE_{}", entry.stage.to_uppercase()));
            anyhow::ensure!(named == Some(stage), "crisis stage {:?} is out of order or unknown", entry.stage);
            anyhow::ensure!(entry.hours > 0, "crisis stage {}: hours must be at least 1", entry.stage);
            stages.push(StagePolicy {
                stage,
                hours: entry.hours,
                template: Template { name: entry.template, text: entry.text },
            });
        }
        Ok(Self { version: file.version, stages })
    }

    pub fn stage(&self, stage: CrisisStage) -> Option<&StagePolicy> {
        self.stages.iter().find(|s| s.stage == stage)
    }

    /// The stage after `stage`.
    pub fn next(&self, stage: CrisisStage) -> Option<&StagePolicy> {
        let i = self.stages.iter().position(|s| s.stage == stage)?;
        self.stages.get(i + 1)
    }
}

/// A new incident. Detected ones start proposed; ones opened by hand are declared at once.
pub fn open(
    name: String,
    kind: IncidentKind,
    org_unit: String,
    title: String,
    summary: String,
    evidence: Option<DetectionEvidence>,
    actor: &Actor,
) -> Incident {
    let now = Some(to_timestamp(actor.now));
    Incident {
        name,
        kind: kind as i32,
        state: IncidentState::Proposed as i32,
        org_unit,
        title,
        summary,
        evidence,
        created_by: actor.subject.clone(),
        create_time: now,
        update_time: now,
        ..Incident::default()
    }
}

fn state_of(incident: &Incident) -> IncidentState {
    IncidentState::try_from(incident.state).unwrap_or(IncidentState::Unspecified)
}

fn require(incident: &Incident, action: &'static str, allowed: &[IncidentState]) -> Result<(), DomainError> {
    let current = state_of(incident);
    if allowed.contains(&current) { Ok(()) } else { Err(DomainError::IncidentState { action, current }) }
}

/// Whether the incident still takes members and changes (proposed or declared).
pub fn is_open(incident: &Incident) -> bool {
    matches!(state_of(incident), IncidentState::Proposed | IncidentState::Declared)
}

pub fn is_declared(incident: &Incident) -> bool {
    state_of(incident) == IncidentState::Declared
}

fn system_entry(incident: &mut Incident, text: String, actor: &Actor) {
    incident.timeline.push(TimelineEntry {
        kind: TimelineEntryKind::System as i32,
        time: Some(to_timestamp(actor.now)),
        text,
        recorded_by: actor.subject.clone(),
        ..TimelineEntry::default()
    });
}

/// Declares a proposed incident: the working group takes it, crisis communication starts at
/// fact clarification with its due time and template, and its members are to be linked.
pub fn declare(
    incident: &mut Incident,
    reason: String,
    first_stage: &StagePolicy,
    actor: &Actor,
) -> Result<Change, DomainError> {
    require(incident, "declaring", &[IncidentState::Proposed, IncidentState::Dismissed])?;
    incident.state = IncidentState::Declared as i32;
    incident.declared_by = actor.subject.clone();
    incident.declare_time = Some(to_timestamp(actor.now));
    // A dismissed proposal that reached the automatic threshold is declared after all.
    incident.closed_by.clear();
    incident.close_time = None;
    incident.close_reason.clear();
    enter_stage(incident, first_stage, actor.now);
    system_entry(incident, format!("事件已认定：{reason}"), actor);
    Ok(Change::new("incident.declared", [("reason", reason)]))
}

/// Dismisses a proposal.
pub fn dismiss(incident: &mut Incident, reason: String, actor: &Actor) -> Result<Change, DomainError> {
    require(incident, "dismissing", &[IncidentState::Proposed])?;
    incident.state = IncidentState::Dismissed as i32;
    incident.closed_by = actor.subject.clone();
    incident.close_time = Some(to_timestamp(actor.now));
    incident.close_reason = reason.clone();
    Ok(Change::new("incident.dismissed", [("reason", reason)]))
}

fn enter_stage(incident: &mut Incident, stage: &StagePolicy, now: DateTime<Utc>) {
    incident.stage = stage.stage as i32;
    incident.stages.push(CrisisStageRecord {
        stage: stage.stage as i32,
        start_time: Some(to_timestamp(now)),
        due_time: Some(to_timestamp(now + Duration::hours(i64::from(stage.hours)))),
        template: stage.template.name.clone(),
        template_text: stage.template.text.clone(),
        ..CrisisStageRecord::default()
    });
}

/// Replaces the working group; exactly one leader, nobody twice.
pub fn set_working_group(
    incident: &mut Incident,
    members: Vec<WorkingGroupMember>,
    actor: &Actor,
) -> Result<Change, DomainError> {
    require(incident, "setting the working group", &[IncidentState::Proposed, IncidentState::Declared])?;
    let leaders = members.iter().filter(|m| m.role == WorkingGroupRole::Leader as i32).count();
    if leaders != 1 {
        return Err(DomainError::LeaderCount { leaders });
    }
    let mut seen = std::collections::BTreeSet::new();
    for m in &members {
        if !seen.insert(m.subject.as_str()) {
            return Err(DomainError::DuplicateGroupMember { subject: m.subject.clone() });
        }
    }
    let leader = members.iter().find(|m| m.role == WorkingGroupRole::Leader as i32).map(|m| m.subject.clone());
    let size = members.len();
    incident.working_group =
        Some(WorkingGroup { members, set_by: actor.subject.clone(), set_time: Some(to_timestamp(actor.now)) });
    Ok(Change::new(
        "incident.working_group_set",
        [("leader", leader.unwrap_or_default()), ("members", size.to_string())],
    ))
}

/// Adds a disclosure, progress update or note to the timeline.
pub fn add_timeline_entry(
    incident: &mut Incident,
    mut entry: TimelineEntry,
    actor: &Actor,
) -> Result<Change, DomainError> {
    require(incident, "adding to the timeline", &[IncidentState::Proposed, IncidentState::Declared])?;
    let time = entry.time.as_ref().and_then(from_timestamp).unwrap_or(actor.now);
    if time > actor.now {
        return Err(DomainError::InTheFuture { field: "entry.time" });
    }
    entry.time = Some(to_timestamp(time));
    entry.recorded_by = actor.subject.clone();
    let kind = TimelineEntryKind::try_from(entry.kind).unwrap_or(TimelineEntryKind::Unspecified);
    let change = Change::new(
        "incident.timeline_added",
        [("kind", kind.as_str_name().to_owned()), ("channel", entry.channel.clone())],
    );
    incident.timeline.push(entry);
    Ok(change)
}

/// Records the systemic cause and its fix (it may be recorded again as understanding grows).
pub fn record_systemic_cause(
    incident: &mut Incident,
    mut cause: SystemicCause,
    actor: &Actor,
) -> Result<Change, DomainError> {
    require(incident, "recording the systemic cause", &[IncidentState::Proposed, IncidentState::Declared])?;
    cause.recorded_by = actor.subject.clone();
    cause.record_time = Some(to_timestamp(actor.now));
    let change = Change::new(
        "incident.systemic_cause_recorded",
        [("category", cause.category().as_str_name().to_owned()), ("fix_owner", cause.fix_owner.clone())],
    );
    incident.systemic_cause = Some(cause);
    Ok(change)
}

/// Completes the current crisis stage and enters the next, with its due time and template.
pub fn advance_stage(
    incident: &mut Incident,
    note: String,
    next: Option<&StagePolicy>,
    actor: &Actor,
) -> Result<Change, DomainError> {
    require(incident, "advancing the crisis stage", &[IncidentState::Declared])?;
    let Some(next) = next else { return Err(DomainError::LastStage) };
    let from = incident.stage();
    complete_stage(incident, note, actor.now);
    enter_stage(incident, next, actor.now);
    system_entry(incident, format!("危机沟通进入{}阶段", stage_label(next.stage)), actor);
    Ok(Change::new(
        "incident.stage_advanced",
        [("from", from.as_str_name().to_owned()), ("to", next.stage.as_str_name().to_owned())],
    ))
}

fn complete_stage(incident: &mut Incident, note: String, now: DateTime<Utc>) {
    if let Some(current) = incident.stages.last_mut()
        && current.complete_time.is_none()
    {
        current.complete_time = Some(to_timestamp(now));
        current.note = note;
    }
}

/// The zh-CN name of a crisis stage.
pub fn stage_label(stage: CrisisStage) -> &'static str {
    match stage {
        CrisisStage::Unspecified => "未开始",
        CrisisStage::FactClarification => "事实澄清",
        CrisisStage::ProgressUpdates => "进展通报",
        CrisisStage::Summary => "总结反思",
    }
}

/// Closes a declared incident; a group incident needs its systemic cause first.
pub fn close(incident: &mut Incident, reason: String, actor: &Actor) -> Result<Change, DomainError> {
    require(incident, "closing", &[IncidentState::Declared])?;
    if incident.kind() == IncidentKind::Group && incident.systemic_cause.is_none() {
        return Err(DomainError::SystemicCauseRequired);
    }
    complete_stage(incident, reason.clone(), actor.now);
    incident.state = IncidentState::Closed as i32;
    incident.closed_by = actor.subject.clone();
    incident.close_time = Some(to_timestamp(actor.now));
    incident.close_reason = reason.clone();
    system_entry(incident, format!("事件已关闭：{reason}"), actor);
    Ok(Change::new("incident.closed", [("reason", reason)]))
}

/// When the sweeper must look at the incident next: the due time of an open crisis stage not
/// yet marked overdue.
pub fn next_check(incident: &Incident) -> Option<DateTime<Utc>> {
    if !is_declared(incident) {
        return None;
    }
    let stage = incident.stages.last()?;
    if stage.complete_time.is_some() || stage.overdue {
        return None;
    }
    stage.due_time.as_ref().and_then(from_timestamp)
}

/// Marks the current crisis stage overdue once its due time has passed (an alert goes out
/// with it); `None` when nothing is due.
pub fn mark_stage_overdue(incident: &mut Incident, now: DateTime<Utc>) -> Option<(Change, CrisisStage)> {
    let due = next_check(incident).filter(|due| *due <= now)?;
    let stage = incident.stages.last_mut()?;
    stage.overdue = true;
    let which = CrisisStage::try_from(stage.stage).unwrap_or(CrisisStage::Unspecified);
    Some((
        Change::new(
            "incident.stage_overdue",
            [("stage", which.as_str_name().to_owned()), ("due_time", due.to_rfc3339())],
        ),
        which,
    ))
}

/// Stamps a change on the incident.
pub fn touch(incident: &mut Incident, now: DateTime<Utc>) {
    incident.update_time = Some(to_timestamp(now));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use redress_proto::redress::escalation::v1::CauseCategory;

    fn actor() -> Actor {
        Actor { subject: "user:lead".to_owned(), roles: vec![], now: Utc::now() }
    }

    fn incident(kind: IncidentKind) -> Incident {
        open("incidents/1".into(), kind, "institutions/demo".into(), "t".into(), String::new(), None, &actor())
    }

    #[test]
    fn the_shipped_crisis_policy_has_three_stages_in_order() {
        let policy = CrisisPolicy::shipped().unwrap();
        let first = policy.stage(CrisisStage::FactClarification).unwrap();
        assert!(!first.template.text.is_empty());
        assert_eq!(policy.next(CrisisStage::FactClarification).unwrap().stage, CrisisStage::ProgressUpdates);
        assert_eq!(policy.next(CrisisStage::ProgressUpdates).unwrap().stage, CrisisStage::Summary);
        assert!(policy.next(CrisisStage::Summary).is_none());
        assert!(CrisisPolicy::parse("version = \"x\"\nstages = []").is_err());
    }

    #[test]
    fn a_group_incident_closes_only_with_its_systemic_cause() {
        let policy = CrisisPolicy::shipped().unwrap();
        let mut i = incident(IncidentKind::Group);
        assert!(matches!(close(&mut i, "done".into(), &actor()), Err(DomainError::IncidentState { .. })));
        declare(&mut i, "threshold".into(), policy.stage(CrisisStage::FactClarification).unwrap(), &actor()).unwrap();
        assert_eq!(close(&mut i, "done".into(), &actor()), Err(DomainError::SystemicCauseRequired));
        let cause = SystemicCause {
            category: CauseCategory::System as i32,
            description: "批量扣费脚本错误".into(),
            fix: "修复脚本并退款".into(),
            fix_owner: "user:it".into(),
            ..SystemicCause::default()
        };
        record_systemic_cause(&mut i, cause, &actor()).unwrap();
        close(&mut i, "done".into(), &actor()).unwrap();
        assert_eq!(i.state(), IncidentState::Closed);
        assert!(i.stages.last().unwrap().complete_time.is_some());
    }

    #[test]
    fn stages_advance_in_order_with_due_times_and_an_overdue_one_is_marked_once() {
        let policy = CrisisPolicy::shipped().unwrap();
        let mut i = incident(IncidentKind::Media);
        let a = actor();
        declare(&mut i, "manual".into(), policy.stage(CrisisStage::FactClarification).unwrap(), &a).unwrap();
        let due = next_check(&i).unwrap();
        assert!(due > a.now);
        assert!(mark_stage_overdue(&mut i, a.now).is_none(), "not due yet");
        assert!(mark_stage_overdue(&mut i, due).is_some());
        assert!(mark_stage_overdue(&mut i, due).is_none(), "once");
        for note in ["澄清已发布", "进展已通报"] {
            let next = policy.next(i.stage());
            advance_stage(&mut i, note.into(), next, &a).unwrap();
        }
        assert_eq!(i.stage(), CrisisStage::Summary);
        let next = policy.next(i.stage());
        assert_eq!(advance_stage(&mut i, "x".into(), next, &a), Err(DomainError::LastStage));
        assert_eq!(i.stages.len(), 3);
        assert!(i.stages[0].overdue && i.stages[0].complete_time.is_some());
    }

    #[test]
    fn a_working_group_has_one_leader_and_nobody_twice() {
        let mut i = incident(IncidentKind::Group);
        let member = |s: &str, role: WorkingGroupRole| WorkingGroupMember {
            subject: s.into(),
            role: role as i32,
            ..WorkingGroupMember::default()
        };
        let none = vec![member("user:a", WorkingGroupRole::Legal)];
        assert_eq!(set_working_group(&mut i, none, &actor()), Err(DomainError::LeaderCount { leaders: 0 }));
        let twice = vec![member("user:a", WorkingGroupRole::Leader), member("user:a", WorkingGroupRole::Legal)];
        assert!(matches!(set_working_group(&mut i, twice, &actor()), Err(DomainError::DuplicateGroupMember { .. })));
        let ok = vec![
            member("user:a", WorkingGroupRole::Leader),
            member("user:b", WorkingGroupRole::ComplaintHandling),
            member("user:c", WorkingGroupRole::PublicRelations),
        ];
        set_working_group(&mut i, ok, &actor()).unwrap();
        assert_eq!(i.working_group.unwrap().members.len(), 3);
    }

    #[test]
    fn a_disclosure_may_not_lie_in_the_future() {
        let mut i = incident(IncidentKind::Group);
        let a = actor();
        let entry = TimelineEntry {
            kind: TimelineEntryKind::Disclosure as i32,
            time: Some(to_timestamp(a.now + Duration::hours(1))),
            text: "公告".into(),
            ..TimelineEntry::default()
        };
        assert_eq!(add_timeline_entry(&mut i, entry, &a), Err(DomainError::InTheFuture { field: "entry.time" }));
    }
}
