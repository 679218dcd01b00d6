//! Commands on a case's SLA clocks: a grade change re-lengths them, pauses stop them counting,
//! and an extension, granted before the clock is due, lengthens the regulatory decision clock
//! (D-SLA-2) and tells the complainant. Also the clocks a case opens with, which for a
//! regulator referral include forwarding it (D-SLA-11).

use redress_calendar::Period;
use redress_calendar::institutions::length;
use redress_platform::principal::Permission;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, ClockKind, ClockPause, ClockStatus, PauseReason};
use redress_proto::redress::common::v1::{Channel, Grade};

use super::{
    Announce, Change, Context, Rules, SENIOR_MANAGER_ROLE, WorkflowError, above, at_head_office, details, require_open,
};
use crate::domain::clock::{self, instant};

/// How long a regulator referral (监管转办) may take to reach a handling department (D-SLA-11).
const REFERRAL_FORWARDING: Period = Period::WorkingDays(3);

/// The clocks of a case opened from a receipt: those every case has and, for a regulator
/// referral, forwarding it to a handling department, from the receipt as well.
pub fn opening_clocks(case: &mut Case, rules: &Rules) {
    rules.clocks.opening(case);
    if case.channel == Channel::RegulatorReferral as i32
        && let Some(received) = instant(&case.receive_time)
    {
        rules.clocks.start(case, ClockKind::ReferralForwarding, REFERRAL_FORWARDING, received);
    }
    // From its opening the complainant is owed contact (D-CASE-8).
    super::progress::refresh(case, rules);
}

pub(super) fn change_grade(
    case: &mut Case,
    grade: Grade,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "changing the grade")?;
    if case.grade == grade as i32 {
        return Err(WorkflowError::SameGrade);
    }
    let from = Grade::try_from(case.grade).unwrap_or(Grade::Unspecified);
    case.grade = grade as i32;
    let clocks = &ctx.rules.clocks;
    // The clocks keep their start; only their length follows the grade.
    let targets = clocks.policy(case).targets(clock::grade_of(grade as i32));
    clocks.set_length(case, ClockKind::FirstResponse, targets.first_response);
    clocks.set_length(case, ClockKind::Resolution, targets.resolution);
    // A case that becomes major escalates to senior management in this same change (D-SLA-7).
    let escalation = super::sensitive::escalate(case, format!("grade changed to major: {reason}"), ctx.now);
    Ok(Change::new(
        "case.grade_changed",
        details([("from", from.as_str_name().to_owned()), ("to", grade.as_str_name().to_owned()), ("reason", reason)]),
    )
    .announcing_all(escalation))
}

pub(super) fn pause(
    case: &mut Case,
    reason: PauseReason,
    note: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "pausing the clocks")?;
    if clock::is_paused(case) {
        return Err(WorkflowError::ClocksPaused);
    }
    if !case.clocks.iter().any(|c| c.status == ClockStatus::Running as i32) {
        return Err(WorkflowError::NoRunningClock);
    }
    case.pauses.push(ClockPause {
        reason: reason as i32,
        note: note.clone(),
        pause_time: Some(to_timestamp(ctx.now)),
        paused_by: ctx.actor(),
        resume_time: None,
        resumed_by: String::new(),
    });
    ctx.rules.clocks.recompute_all(case);
    Ok(Change::new("clocks.paused", details([("reason", reason.as_str_name().to_owned()), ("note", note)])))
}

pub(super) fn resume(case: &mut Case, note: String, ctx: &Context<'_>) -> Result<Change, WorkflowError> {
    let Some(pause) = case.pauses.last_mut().filter(|p| p.resume_time.is_none()) else {
        return Err(WorkflowError::ClocksNotPaused);
    };
    pause.resume_time = Some(to_timestamp(ctx.now));
    pause.resumed_by = ctx.actor();
    ctx.rules.clocks.recompute_all(case);
    Ok(Change::new("clocks.resumed", details([("note", note)])))
}

/// Extends the regulatory decision clock to `total_days`, counted in the unit of the regime's
/// decision clock (working days stay working days), up to the regime's longest extension. Up
/// to the first extension (CBIRC: 30 days) needs `cases.extend`; beyond it (60)
/// `cases.extend.special` and a principal above the handling unit (or a head-office senior
/// manager). A regime without extensions refuses.
pub(super) fn extend(
    case: &mut Case,
    total_days: u32,
    reason: String,
    ctx: &Context<'_>,
) -> Result<Change, WorkflowError> {
    require_open(case, "extending the decision deadline")?;
    let regime = ctx.rules.clocks.regime(case);
    let (Some(decision), Some(first), Some(longest)) =
        (regime.decision_clock(), regime.decision_extensions().first(), regime.decision_extensions().last())
    else {
        return Err(WorkflowError::ExtensionNotInRegime { regime: regime.regime_id().to_owned() });
    };
    let unit = decision.unit();
    let (first, longest) = (length(first.to()), length(longest.to()));
    if total_days > longest {
        return Err(WorkflowError::ExtensionTooLong { regime: regime.regime_id().to_owned(), longest });
    }
    let needed = if total_days > first { Permission::CasesExtendSpecial } else { Permission::CasesExtend };
    if !ctx.principal.has(needed) {
        return Err(WorkflowError::PermissionRequired(needed));
    }
    // The especially complex extension is approved above the unit handling the case or by a
    // head-office senior manager, never by the handling unit itself (D-SLA-2, D-SLA-11).
    let approver = ctx.principal;
    if total_days > first
        && !(above(approver, &case.org_unit)
            || (at_head_office(approver, &case.org_unit) && approver.roles.iter().any(|r| r == SENIOR_MANAGER_ROLE)))
    {
        return Err(WorkflowError::ExtensionNeedsHigherUnit { handling_unit: case.org_unit.clone() });
    }
    let current = clock::clock(case, ClockKind::RegulatoryDecision).cloned().unwrap_or_default();
    if current.status == ClockStatus::Met as i32 || current.status == ClockStatus::Stopped as i32 {
        return Err(WorkflowError::DecisionClockDone);
    }
    // An extension is granted before the clock it extends is due (D-SLA-8): once it ran out,
    // the breach is recorded (by `execute`, before any command) and a longer clock would only
    // hide it.
    if let Some(due) = clock::breach_of(case, ClockKind::RegulatoryDecision).and_then(|b| instant(&b.due_time)) {
        return Err(WorkflowError::ExtensionTooLate { due });
    }
    if i64::from(total_days) <= i64::from(current.length) {
        return Err(WorkflowError::ExtensionTooShort { current_days: current.length });
    }
    ctx.rules.clocks.set_length(case, ClockKind::RegulatoryDecision, unit.period(total_days));
    let announce = Announce::Extended { total_days, reason: reason.clone(), approved_by: ctx.actor() };
    Ok(Change::new("decision.extended", details([("total_days", total_days.to_string()), ("reason", reason)]))
        .announcing(announce))
}

/// The notice telling the complainant of an extension (D-SLA-2), in zh-CN.
pub(super) fn extension_notice(
    case: &Case,
    total_days: u32,
    due: &Option<prost_types::Timestamp>,
    reason: &str,
    rules: &Rules,
) -> String {
    let tz = rules.clocks.calculator(case).time_zone();
    // The extension keeps the clock's unit, and so does what the complainant is told.
    let working_days = clock::clock(case, ClockKind::RegulatoryDecision)
        .is_some_and(|c| c.unit == redress_proto::redress::case::v1::ClockUnit::WorkingDays as i32);
    let days = if working_days { "个工作日" } else { "日" };
    // The due instant is 24:00 of the last day, i.e. the start of the next local date.
    let last_day =
        instant(due).map(|d| (d.with_timezone(&tz) - chrono::TimeDelta::days(1)).format("%Y年%m月%d日").to_string());
    match last_day {
        Some(day) => format!(
            "您的投诉（编号 {}）情况复杂，处理期限依规延长至 {total_days} {days}，我们将于 {day} 24 时前作出处理决定。延长原因：{reason}",
            case.case_number
        ),
        None => format!(
            "您的投诉（编号 {}）情况复杂，处理期限依规延长至 {total_days} {days}，具体日期将另行告知。延长原因：{reason}",
            case.case_number
        ),
    }
}
