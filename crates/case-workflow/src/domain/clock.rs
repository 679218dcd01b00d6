//! SLA clocks of a case (D-SLA-1..9): how they start from a receipt, follow pauses, grade
//! changes and extensions, get met, when the sweeper must look at them again, and the breaches
//! that stay recorded whatever happens to them afterwards.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;

use redress_calendar::{DeadlineCalculator, InstitutionRegime, Institutions, Period, SlaPolicy};
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::case::v1::{Case, CaseState, ClockBreach, ClockKind, ClockStatus, ClockUnit, SlaClock};
use redress_proto::redress::common::v1::{Deadlines, Grade as ProtoGrade};

/// The calendar arithmetic and policy clocks are computed with.
#[derive(Debug, Clone)]
pub struct Clocks {
    /// Each institution's regime, calendar and zone (D-SLA-10); a case counts on its
    /// institution's.
    pub institutions: Arc<Institutions>,
    /// How long a receiving department has to assign a transferred case.
    pub handoff: Period,
    /// Share of a clock's span after which it is at risk (reminder to the owner), in percent.
    pub at_risk_percent: u8,
}

pub fn grade_of(grade: i32) -> redress_calendar::Grade {
    match ProtoGrade::try_from(grade) {
        Ok(ProtoGrade::Important) => redress_calendar::Grade::Important,
        Ok(ProtoGrade::Urgent) => redress_calendar::Grade::Urgent,
        Ok(ProtoGrade::Major) => redress_calendar::Grade::Major,
        _ => redress_calendar::Grade::General,
    }
}

fn unit_and_length(period: Period) -> (ClockUnit, i32) {
    let (unit, n) = match period {
        Period::Hours(n) => (ClockUnit::Hours, n),
        Period::WorkingDays(n) => (ClockUnit::WorkingDays, n),
        Period::CalendarDays(n) => (ClockUnit::CalendarDays, n),
    };
    (unit, i32::try_from(n).unwrap_or(i32::MAX))
}

pub fn period_of(clock: &SlaClock) -> Period {
    let n = u32::try_from(clock.length).unwrap_or(0);
    match ClockUnit::try_from(clock.unit) {
        Ok(ClockUnit::WorkingDays) => Period::WorkingDays(n),
        Ok(ClockUnit::CalendarDays) => Period::CalendarDays(n),
        _ => Period::Hours(n),
    }
}

impl Clocks {
    /// The regime of the institution the case belongs to.
    pub fn regime(&self, case: &Case) -> &InstitutionRegime {
        self.institutions.of(&case.org_unit)
    }

    /// The calculator of the case's institution.
    pub fn calculator(&self, case: &Case) -> &DeadlineCalculator {
        self.regime(case).calculator()
    }

    /// The grade targets and decision clock of the case's institution.
    pub fn policy(&self, case: &Case) -> &SlaPolicy {
        self.regime(case).policy()
    }

    /// The clocks of a case opened from a receipt: first response and resolution by grade and
    /// the regulatory decision clock, started at the receive instant.
    pub fn opening(&self, case: &mut Case) {
        let Some(start) = case.receive_time else { return };
        let policy = self.policy(case);
        let targets = policy.targets(grade_of(case.grade));
        case.clocks = [
            (ClockKind::FirstResponse, targets.first_response),
            (ClockKind::Resolution, targets.resolution),
            (ClockKind::RegulatoryDecision, policy.regulatory_decision),
        ]
        .into_iter()
        .map(|(kind, period)| new_clock(kind, period, start))
        .collect();
        self.recompute_all(case);
    }

    /// Recomputes the due time of every running clock (after pauses, grade changes,
    /// extensions) and mirrors them into `case.deadlines`.
    pub fn recompute_all(&self, case: &mut Case) {
        let pauses = closed_pauses(case);
        let paused = is_paused(case);
        let calculator = self.institutions.of(&case.org_unit).calculator();
        for clock in &mut case.clocks {
            if clock.status == ClockStatus::Running as i32 || clock.status == ClockStatus::Paused as i32 {
                if paused {
                    clock.status = ClockStatus::Paused as i32;
                    clock.due_time = None;
                    set_provisional(clock, None);
                    continue;
                }
                clock.status = ClockStatus::Running as i32;
                recompute(calculator, clock, &pauses);
            }
        }
        self.mirror_deadlines(case);
    }

    /// Changes the length of a clock and recomputes it (grade change, extension).
    pub fn set_length(&self, case: &mut Case, kind: ClockKind, period: Period) {
        let (unit, length) = unit_and_length(period);
        if let Some(clock) = clock_mut(case, kind) {
            clock.unit = unit as i32;
            clock.length = length;
        }
        self.recompute_all(case);
    }

    /// Starts (or restarts) a clock of `kind` at `start`.
    pub fn start(&self, case: &mut Case, kind: ClockKind, period: Period, start: DateTime<Utc>) {
        let clock = new_clock(kind, period, to_timestamp(start));
        match case.clocks.iter_mut().find(|c| c.kind == kind as i32) {
            Some(existing) => *existing = clock,
            None => case.clocks.push(clock),
        }
        self.recompute_all(case);
    }

    /// When a running clock becomes at risk.
    pub fn at_risk_time(&self, clock: &SlaClock) -> Option<DateTime<Utc>> {
        let start = instant(&clock.start_time)?;
        let due = instant(&clock.due_time)?;
        let span = (due - start).num_seconds().max(0);
        Some(start + TimeDelta::seconds(span * i64::from(self.at_risk_percent.min(100)) / 100))
    }

    /// When the sweeper must look at this case next (`None`: nothing left to raise).
    pub fn next_check(&self, case: &Case) -> Option<DateTime<Utc>> {
        // A closed or withdrawn case has nothing left to remind anyone of.
        if matches!(CaseState::try_from(case.state), Ok(CaseState::Closed | CaseState::Withdrawn)) {
            return None;
        }
        let tasks = case
            .coordination_tasks
            .iter()
            .filter(|t| t.complete_time.is_none() && !t.overdue)
            .filter_map(|t| instant(&t.due_time));
        case.clocks
            .iter()
            .filter(|c| c.status == ClockStatus::Running as i32)
            .filter_map(|c| {
                if !c.at_risk {
                    self.at_risk_time(c)
                } else if !c.breached {
                    instant(&c.due_time)
                } else {
                    None
                }
            })
            .chain(tasks)
            .min()
    }

    /// Keeps the receipt-shaped `deadlines` in step with the clocks.
    fn mirror_deadlines(&self, case: &mut Case) {
        let of = |kind: ClockKind| case.clocks.iter().find(|c| c.kind == kind as i32);
        let due = |kind: ClockKind| of(kind).and_then(|c| c.due_time);
        let provisional = |kind: ClockKind| of(kind).is_some_and(|c| c.provisional);
        let reason = |kind: ClockKind| of(kind).map(|c| c.provisional_reason.clone()).unwrap_or_default();
        let deadlines = Deadlines {
            first_response_due_time: due(ClockKind::FirstResponse),
            resolution_due_time: due(ClockKind::Resolution),
            regulatory_decision_due_time: due(ClockKind::RegulatoryDecision),
            time_zone: self.calculator(case).time_zone().name().to_owned(),
            grade: case.grade,
            first_response_provisional: provisional(ClockKind::FirstResponse),
            first_response_provisional_reason: reason(ClockKind::FirstResponse),
            resolution_provisional: provisional(ClockKind::Resolution),
            resolution_provisional_reason: reason(ClockKind::Resolution),
            regulatory_decision_provisional: provisional(ClockKind::RegulatoryDecision),
            regulatory_decision_provisional_reason: reason(ClockKind::RegulatoryDecision),
            ..Deadlines::default()
        };
        case.deadlines = Some(deadlines);
    }
}

/// Marks a clock's due time provisional (with why) or not. A clock stored when a missing year
/// left due times unset loses that mark too, since it now has a due time.
#[allow(deprecated)]
fn set_provisional(clock: &mut SlaClock, reason: Option<String>) {
    clock.pending_reason.clear();
    clock.provisional = reason.is_some();
    clock.provisional_reason = reason.unwrap_or_default();
}

fn new_clock(kind: ClockKind, period: Period, start: prost_types::Timestamp) -> SlaClock {
    let (unit, length) = unit_and_length(period);
    SlaClock {
        kind: kind as i32,
        unit: unit as i32,
        length,
        start_time: Some(start),
        status: ClockStatus::Running as i32,
        ..SlaClock::default()
    }
}

/// The instant of an optional timestamp (`None` when unset or out of range).
pub fn instant(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(from_timestamp)
}

pub fn clock_mut(case: &mut Case, kind: ClockKind) -> Option<&mut SlaClock> {
    case.clocks.iter_mut().find(|c| c.kind == kind as i32)
}

pub fn clock(case: &Case, kind: ClockKind) -> Option<&SlaClock> {
    case.clocks.iter().find(|c| c.kind == kind as i32)
}

/// Whether any running clock of the case counts a provisional year, so that it is recomputed
/// when the official calendar arrives. A met or stopped clock keeps the due time it had.
pub fn has_provisional(case: &Case) -> bool {
    case.clocks.iter().any(|c| c.status == ClockStatus::Running as i32 && c.provisional)
}

pub fn is_paused(case: &Case) -> bool {
    case.pauses.last().is_some_and(|p| p.resume_time.is_none())
}

fn closed_pauses(case: &Case) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    case.pauses.iter().filter_map(|p| Some((instant(&p.pause_time)?, instant(&p.resume_time)?))).collect()
}

/// Whether `clock` is running past its due time at `now`.
pub fn is_overdue(clock: &SlaClock, now: DateTime<Utc>) -> bool {
    clock.status == ClockStatus::Running as i32 && instant(&clock.due_time).is_some_and(|due| now >= due)
}

/// Records the first breach of every clock running past its due time at `now` (D-SLA-8).
///
/// Runs before anything may move a due time (an extension, a grade change, a pause, a
/// restart), so that a breach is recorded even when no sweep came between the due time and
/// the change; once recorded it is never removed.
pub fn record_breaches(case: &mut Case, now: DateTime<Utc>) {
    for clock in case.clocks.iter().filter(|c| is_overdue(c, now)) {
        let recorded = case.breaches.iter().any(|b| b.clock == clock.kind && b.clock_start_time == clock.start_time);
        if !recorded {
            case.breaches.push(ClockBreach {
                clock: clock.kind,
                clock_start_time: clock.start_time,
                due_time: clock.due_time,
                breach_time: Some(to_timestamp(now)),
            });
        }
    }
}

/// The breach recorded for the clock of `kind` as it now runs (same start), if any.
pub fn breach_of(case: &Case, kind: ClockKind) -> Option<&ClockBreach> {
    let start = clock(case, kind)?.start_time;
    case.breaches.iter().find(|b| b.clock == kind as i32 && b.clock_start_time == start)
}

/// Marks a running (or paused) clock met at `now`; late when past its due time, which is
/// recorded as its breach.
pub fn meet(case: &mut Case, kind: ClockKind, now: DateTime<Utc>) {
    record_breaches(case, now);
    if let Some(clock) = clock_mut(case, kind)
        && (clock.status == ClockStatus::Running as i32 || clock.status == ClockStatus::Paused as i32)
    {
        if is_overdue(clock, now) {
            clock.breached = true;
            clock.reminded_due_time = clock.due_time;
        }
        clock.status = ClockStatus::Met as i32;
        clock.met_time = Some(to_timestamp(now));
    }
}

/// Stops every clock not yet met (withdrawal, merge).
pub fn stop_all(case: &mut Case) {
    for clock in &mut case.clocks {
        if clock.status == ClockStatus::Running as i32 || clock.status == ClockStatus::Paused as i32 {
            clock.status = ClockStatus::Stopped as i32;
        }
    }
}

/// Recomputes one running clock's due time on its case's calculator.
fn recompute(calculator: &DeadlineCalculator, clock: &mut SlaClock, pauses: &[(DateTime<Utc>, DateTime<Utc>)]) {
    let Some(start) = instant(&clock.start_time) else { return };
    match calculator.due_with_pauses_explained(start, period_of(clock), pauses) {
        Ok(due) => {
            clock.due_time = Some(to_timestamp(due.at));
            set_provisional(clock, due.provisional.map(|p| p.reason));
            // Reminders are raised once per due time: only a new due time re-arms them
            // (a pause and resume that leave it where it was do not). A breach stays
            // recorded in `case.breaches` whatever the flags say.
            // (Clocks stored before `reminded_due_time` existed keep their flags.)
            if (clock.at_risk || clock.breached)
                && clock.reminded_due_time.is_some()
                && instant(&clock.reminded_due_time) != Some(due.at)
            {
                clock.at_risk = false;
                clock.breached = false;
                clock.reminded_due_time = None;
            }
        }
        Err(e) => {
            // Only a date outside every year a calendar can count (provisionally included):
            // nothing is guessed; the alert asks for the year file, whose reload recomputes
            // the clock.
            tracing::error!(kind = clock.kind, error = %e, "a case deadline cannot be computed");
            clock.due_time = None;
            set_provisional(clock, None);
        }
    }
}
