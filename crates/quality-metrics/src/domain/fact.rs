//! The fact of one complaint: what the feeds said of it (intake's acceptance, classification and
//! withdrawal; case-workflow's case as last announced), and what it was last counted as.
//!
//! Each feed fills its own part, in whatever order the two feeds are consumed, so the fact is
//! the same whichever arrived first. What a fact counts for ([`Counted`]) is derived from both
//! parts and kept with it, so that a change is counted as the difference between what it was
//! counted as and what it counts as now.

use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::time::{from_micros, from_timestamp};
use redress_proto::redress::case::v1::{Case, CaseState, LinkType, ResolutionType};
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::escalation::v1::CaseLinkedToIncident;
use redress_proto::redress::intake::v1::{
    ComplaintAccepted, ComplaintProcessingRestricted, ComplaintReclassified, ComplaintWithdrawn,
};
use redress_proto::redress::metrics::v1::Dimension;

use super::dims::{self, ALL, DIMENSIONS};
use super::measures::{self as m, Measures};

/// One complaint as the feeds described it.
#[derive(Clone, PartialEq, Message)]
pub struct Fact {
    #[prost(string, tag = "1")]
    pub complaint: String,
    /// Intake's part is known (ComplaintAccepted applied).
    #[prost(bool, tag = "2")]
    pub accepted: bool,
    #[prost(string, tag = "3")]
    pub org_unit: String,
    #[prost(int32, tag = "4")]
    pub channel: i32,
    #[prost(int64, tag = "5")]
    pub receive_us: i64,
    #[prost(int32, tag = "6")]
    pub grade: i32,
    #[prost(string, tag = "7")]
    pub business_type: String,
    #[prost(string, tag = "8")]
    pub cause: String,
    #[prost(string, repeated, tag = "9")]
    pub rights: Vec<String>,
    #[prost(int32, tag = "10")]
    pub source: i32,
    /// It repeats an earlier complaint (same complainant, same issue).
    #[prost(bool, tag = "11")]
    pub recurrence: bool,
    /// When intake recorded its withdrawal (0: not withdrawn).
    #[prost(int64, tag = "12")]
    pub withdraw_us: i64,
    /// Case-workflow's part, as its latest event showed the case.
    #[prost(message, optional, tag = "13")]
    pub case: Option<CaseFacts>,
    /// What the fact was last counted as in the rollups.
    #[prost(message, optional, tag = "14")]
    pub counted: Option<Counted>,
    /// The incident escalation linked it to, "incidents/{id}" (escalation's part).
    #[prost(string, tag = "15")]
    pub incident: String,
    /// The product or service complained about, as intake recorded it.
    #[prost(string, tag = "16")]
    pub product: String,
    /// The complainant restricted the processing of their personal information (PIPL Art.44):
    /// the complaint is counted, under its unit and days, and kept out of every other
    /// breakdown; the fact keeps none of the values it would be broken down by.
    #[prost(bool, tag = "17")]
    pub restricted: bool,
}

/// What the metrics need of a case.
#[derive(Clone, PartialEq, Message)]
pub struct CaseFacts {
    #[prost(string, tag = "1")]
    pub name: String,
    /// The case's version (its etag): an older announcement never replaces a newer one.
    #[prost(int64, tag = "2")]
    pub version: i64,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(string, tag = "4")]
    pub org_unit: String,
    #[prost(int32, tag = "5")]
    pub channel: i32,
    #[prost(int32, tag = "6")]
    pub grade: i32,
    #[prost(int64, tag = "7")]
    pub receive_us: i64,
    #[prost(string, tag = "8")]
    pub department: String,
    #[prost(string, tag = "9")]
    pub handler: String,
    #[prost(int64, tag = "10")]
    pub first_response_us: i64,
    #[prost(int64, tag = "11")]
    pub decide_us: i64,
    #[prost(int64, tag = "12")]
    pub close_us: i64,
    #[prost(int32, tag = "13")]
    pub resolution_type: i32,
    #[prost(int64, tag = "14")]
    pub compensation_minor: i64,
    #[prost(int32, tag = "15")]
    pub survey_score: i32,
    #[prost(bool, tag = "16")]
    pub survey_resolved: bool,
    #[prost(int32, tag = "17")]
    pub review_count: i32,
    #[prost(int32, tag = "18")]
    pub reopen_count: i32,
    /// Breaches recorded (D-SLA-8).
    #[prost(int32, tag = "19")]
    pub breaches: i32,
    /// Merged into another case as its duplicate.
    #[prost(bool, tag = "20")]
    pub merged: bool,
    /// The incident (parent case) it belongs to.
    #[prost(string, tag = "21")]
    pub incident: String,
}

impl CaseFacts {
    /// Keeps of a restricted complaint's case (PIPL Art.44) only what counting it needs: its
    /// unit, state and the times that place it on days, and the counts of its breaches, reviews
    /// and reopenings. Its handler, department, channel, grade, incident, resolution,
    /// compensation and the complainant's survey answers are forgotten.
    fn restrict(&mut self) {
        (self.channel, self.grade, self.resolution_type, self.compensation_minor) = (0, 0, 0, 0);
        (self.survey_score, self.survey_resolved) = (0, false);
        for value in [&mut self.department, &mut self.handler, &mut self.incident] {
            value.clear();
        }
    }
}

/// What a fact counts for: its unit, its dimension values, the days it is counted on and its
/// counters.
#[derive(Clone, PartialEq, Message)]
pub struct Counted {
    #[prost(string, tag = "1")]
    pub org_unit: String,
    #[prost(message, repeated, tag = "2")]
    pub dims: Vec<DimValue>,
    /// Local day of receipt, days since 1970-01-01.
    #[prost(int32, tag = "3")]
    pub receive_day: i32,
    #[prost(bool, tag = "4")]
    pub resolved: bool,
    /// Local day of resolution, when resolved.
    #[prost(int32, tag = "5")]
    pub resolve_day: i32,
    /// The counters ([`Measures`]).
    #[prost(bytes = "vec", tag = "6")]
    pub measures: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Message)]
pub struct DimValue {
    #[prost(int32, tag = "1")]
    pub dimension: i32,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// What one event of a followed feed says of a complaint.
#[derive(Debug, Clone)]
pub enum Change {
    Accepted(Box<ComplaintAccepted>),
    Reclassified(Box<ComplaintReclassified>),
    Withdrawn(ComplaintWithdrawn),
    Case(Box<Case>),
    /// Escalation linked the complaint's case under an incident.
    Incident(String),
    /// Intake announced the complainant's restriction of processing (true) or its lifting.
    Restricted(bool),
}

/// Case-workflow's events, each carrying the case after the change as its field 1.
const CASE_EVENTS: &[&str] = &[
    "redress.case.v1.CaseOpened",
    "redress.case.v1.CaseChanged",
    "redress.case.v1.DecisionDeadlineExtended",
    "redress.case.v1.DecisionDeadlineRevised",
    "redress.case.v1.DeadlineAtRisk",
    "redress.case.v1.DeadlineBreached",
    "redress.case.v1.CoordinationTaskOverdue",
    "redress.case.v1.SurveyAnswered",
    "redress.case.v1.CaseClosed",
    "redress.case.v1.CaseReviewDecided",
    "redress.case.v1.SensitiveComplaintRouted",
    "redress.case.v1.EscalationRequired",
];

/// The case an event of case-workflow carries (prost skips the other fields).
#[derive(Clone, PartialEq, Message)]
struct CarriesCase {
    #[prost(message, optional, tag = "1")]
    case: Option<Case>,
}

impl Change {
    /// The complaint an event is about and what it says of it; `Ok(None)` for events that say
    /// nothing the metrics count; `Err` (why) for one that cannot be read.
    pub fn of(event: &Event) -> Result<Option<(String, Change)>, String> {
        let Some(payload) = event.payload.as_ref() else { return Ok(None) };
        let bytes = payload.value.as_slice();
        let bad = |e: prost::DecodeError| format!("{} does not decode: {e}", event.event_type);
        let change = match event.event_type.as_str() {
            "redress.intake.v1.ComplaintAccepted" => {
                let accepted = ComplaintAccepted::decode(bytes).map_err(bad)?;
                (accepted.complaint.clone(), Change::Accepted(Box::new(accepted)))
            }
            "redress.intake.v1.ComplaintReclassified" => {
                let changed = ComplaintReclassified::decode(bytes).map_err(bad)?;
                (changed.complaint.clone(), Change::Reclassified(Box::new(changed)))
            }
            "redress.intake.v1.ComplaintWithdrawn" => {
                let withdrawn = ComplaintWithdrawn::decode(bytes).map_err(bad)?;
                (withdrawn.complaint.clone(), Change::Withdrawn(withdrawn))
            }
            "redress.intake.v1.ComplaintProcessingRestricted" => {
                let changed = ComplaintProcessingRestricted::decode(bytes).map_err(bad)?;
                (changed.complaint.clone(), Change::Restricted(changed.restricted))
            }
            "redress.escalation.v1.CaseLinkedToIncident" => {
                let linked = CaseLinkedToIncident::decode(bytes).map_err(bad)?;
                (linked.complaint.clone(), Change::Incident(linked.incident))
            }
            t if CASE_EVENTS.contains(&t) => {
                let Some(case) = CarriesCase::decode(bytes).map_err(bad)?.case else { return Ok(None) };
                (case.complaint.clone(), Change::Case(Box::new(case)))
            }
            _ => return Ok(None),
        };
        if change.0.is_empty() {
            return Err(format!("{} names no complaint", event.event_type));
        }
        Ok(Some(change))
    }
}

fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().and_then(from_timestamp).map_or(0, |t| t.timestamp_micros())
}

/// The version an etag (`"N"`) names.
fn version_of(etag: &str) -> i64 {
    etag.trim_matches('"').parse().unwrap_or(0)
}

impl Fact {
    pub fn new(complaint: &str) -> Self {
        Self { complaint: complaint.to_owned(), ..Self::default() }
    }

    /// Marks the fact restricted and forgets every value it would be broken down by but its
    /// unit and days, and of its case all but what counting it needs (see
    /// [`CaseFacts::restricted`]). Lifting the restriction later does not bring them back: a
    /// complaint counted while restricted stays counted by its unit only (a later
    /// reclassification or case event fills them again).
    fn restrict(&mut self) {
        self.restricted = true;
        (self.channel, self.grade, self.source, self.recurrence) = (0, 0, 0, false);
        for value in [&mut self.business_type, &mut self.cause, &mut self.product, &mut self.incident] {
            value.clear();
        }
        self.rights.clear();
        if let Some(case) = self.case.as_mut() {
            case.restrict();
        }
    }

    /// Applies what an event says; whether anything changed.
    pub fn apply(&mut self, change: &Change) -> bool {
        let before = self.clone();
        match change {
            Change::Accepted(a) if a.personal_data_restricted => {
                self.accepted = true;
                self.org_unit = a.org_unit.clone();
                self.receive_us = micros(&a.receive_time);
                self.restrict();
            }
            Change::Accepted(a) => {
                self.accepted = true;
                self.org_unit = a.org_unit.clone();
                self.channel = a.channel;
                self.receive_us = micros(&a.receive_time);
                self.grade = a.grade;
                self.source = a.source;
                self.product = a.product.clone();
                self.recurrence = !a.recurrence_of.is_empty();
                if let Some(c) = &a.classification {
                    self.business_type = c.business_type.clone();
                    self.cause = c.cause.clone();
                    self.rights = c.rights.clone();
                }
            }
            Change::Reclassified(_) if self.restricted => {}
            Change::Restricted(true) => self.restrict(),
            Change::Restricted(false) => self.restricted = false,
            Change::Reclassified(r) => {
                if let Some(c) = &r.classification {
                    self.business_type = c.business_type.clone();
                    self.cause = c.cause.clone();
                    self.rights = c.rights.clone();
                    if c.grade != 0 {
                        self.grade = c.grade;
                    }
                }
            }
            Change::Withdrawn(w) => self.withdraw_us = micros(&w.withdraw_time).max(1),
            Change::Incident(_) if self.restricted => {}
            Change::Incident(incident) => self.incident = incident.clone(),
            Change::Case(case) => {
                let version = version_of(&case.etag);
                if self.case.as_ref().is_some_and(|known| known.version > version) {
                    return false;
                }
                let mut facts = case_facts(case, version);
                if self.restricted {
                    facts.restrict();
                }
                self.case = Some(facts);
            }
        }
        *self != before
    }

    /// What the fact counts for now, on `calendars`; `None` while nothing places it (no unit
    /// or receipt known yet).
    pub fn count(&self, calendars: &dyn Calendars) -> Option<Counted> {
        let case = self.case.as_ref();
        let org_unit = case.map(|c| c.org_unit.as_str()).filter(|u| !u.is_empty()).unwrap_or(&self.org_unit);
        let receive_us = if self.accepted { self.receive_us } else { case.map_or(0, |c| c.receive_us) };
        if org_unit.is_empty() || receive_us == 0 {
            return None;
        }
        let received = from_micros(receive_us);
        let channel = if self.accepted { self.channel } else { case.map_or(0, |c| c.channel) };
        let grade = case.map(|c| c.grade).filter(|g| *g != 0).unwrap_or(self.grade);
        let value = |d: Dimension| -> Vec<String> {
            match d {
                // Counted under its unit only, whatever the case shows (PIPL Art.44).
                Dimension::OrgUnit => vec![org_unit.to_owned()],
                _ if self.restricted => vec![String::new()],
                Dimension::Channel => vec![dims::channel_value(channel)],
                Dimension::BusinessType => vec![self.business_type.clone()],
                Dimension::Cause => vec![self.cause.clone()],
                Dimension::Right if self.rights.is_empty() => vec![String::new()],
                Dimension::Right => {
                    let mut rights = self.rights.clone();
                    rights.sort();
                    rights.dedup();
                    rights
                }
                Dimension::Grade => vec![dims::grade_value(grade)],
                Dimension::Department => vec![case.map(|c| c.department.clone()).unwrap_or_default()],
                Dimension::Handler => vec![case.map(|c| c.handler.clone()).unwrap_or_default()],
                // Escalation's incident when it linked one, else the case's parent link.
                Dimension::Incident if !self.incident.is_empty() => vec![self.incident.clone()],
                Dimension::Incident => vec![case.map(|c| c.incident.clone()).unwrap_or_default()],
                Dimension::Source => vec![dims::source_value(self.source)],
                Dimension::Product => vec![self.product.clone()],
                Dimension::Unspecified => vec![String::new()],
            }
        };
        let mut dim_values = vec![DimValue { dimension: ALL, value: String::new() }];
        for d in DIMENSIONS {
            dim_values.extend(value(d).into_iter().map(|value| DimValue { dimension: d as i32, value }));
        }

        let mut measures = Measures::default();
        measures.set(m::RECEIVED, 1);
        measures.set(m::RECURRENCES, i64::from(self.recurrence));
        if let Some(first) = case.map(|c| c.first_response_us).filter(|t| *t > 0) {
            measures.set(m::RESPONDED, 1);
            measures.set(m::RESPONSE_SECONDS, ((first - receive_us) / 1_000_000).max(0));
        }
        let resolution = self.resolution();
        match &resolution {
            None => measures.set(m::OPEN, 1),
            Some(r) => count_resolution(&mut measures, r, case, self.restricted, received, org_unit, calendars),
        }
        Some(Counted {
            org_unit: org_unit.to_owned(),
            dims: dim_values,
            receive_day: calendars.local_day(org_unit, received),
            resolved: resolution.is_some(),
            resolve_day: resolution.as_ref().map_or(0, |r| calendars.local_day(org_unit, from_micros(r.at_us))),
            measures: measures.encode(),
        })
    }

    /// How the complaint was resolved, if it is: its case decided, closed or withdrawn, or (while
    /// the case is not known) withdrawn at intake.
    fn resolution(&self) -> Option<Resolution> {
        let Some(case) = &self.case else {
            return (self.withdraw_us > 0).then_some(Resolution { at_us: self.withdraw_us, kind: Ended::Withdrawn });
        };
        let state = CaseState::try_from(case.state).unwrap_or(CaseState::Unspecified);
        let kind = match state {
            CaseState::Withdrawn => Ended::Withdrawn,
            CaseState::Closed if case.merged => Ended::Merged,
            CaseState::Decided | CaseState::FollowUp | CaseState::Closed if case.decide_us > 0 => Ended::Decided,
            CaseState::Closed => Ended::Closed,
            _ => return None,
        };
        let at_us = match kind {
            Ended::Decided => case.decide_us,
            _ => case.close_us.max(case.decide_us),
        };
        // A case resolved before its close time was announced counts from its receipt.
        Some(Resolution { at_us: at_us.max(case.receive_us), kind })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Decided,
    Closed,
    Withdrawn,
    Merged,
}

struct Resolution {
    at_us: i64,
    kind: Ended,
}

fn count_resolution(
    measures: &mut Measures,
    r: &Resolution,
    case: Option<&CaseFacts>,
    restricted: bool,
    received: DateTime<Utc>,
    org_unit: &str,
    calendars: &dyn Calendars,
) {
    let resolved = from_micros(r.at_us);
    measures.set(m::RESOLVED, 1);
    measures.set(m::WITHDRAWN, i64::from(r.kind == Ended::Withdrawn));
    if calendars.within_business_days(org_unit, received, resolved, 3) {
        measures.set(m::WITHIN_3_BUSINESS_DAYS, 1);
    }
    if resolved - received <= chrono::TimeDelta::weeks(8) {
        measures.set(m::WITHIN_8_WEEKS, 1);
    }
    if let Some(c) = case {
        measures.set(m::ON_TIME, i64::from(c.breaches == 0));
        measures.set(m::REVIEWED, i64::from(c.review_count > 0));
        measures.set(m::REOPENED, i64::from(c.reopen_count > 0));
        if c.survey_score > 0 {
            measures.set(m::SURVEYED, 1);
            measures.set(m::SATISFIED, i64::from(c.survey_score >= 4));
            measures.set(m::SCORE_SUM, i64::from(c.survey_score));
        }
    } else {
        measures.set(m::ON_TIME, 1);
    }
    // A restricted complaint's resolution and survey are not kept: it counts as resolved, on
    // time or not, but in no rate of decisions.
    if r.kind == Ended::Decided
        && !restricted
        && let Some(c) = case
    {
        measures.set(m::DECIDED, 1);
        let kind = ResolutionType::try_from(c.resolution_type).unwrap_or(ResolutionType::Unspecified);
        let favourable = matches!(
            kind,
            ResolutionType::ApologyCompensation | ResolutionType::ProcessFix | ResolutionType::SystemFix
        );
        measures.set(m::UPHELD, i64::from(favourable || c.compensation_minor > 0));
        if c.compensation_minor > 0 {
            measures.set(m::REDRESS_CASES, 1);
            measures.set(m::REDRESS_MINOR, c.compensation_minor);
        }
        let once = c.review_count == 0 && c.reopen_count == 0 && c.survey_resolved;
        measures.set(m::ONE_TIME, i64::from(once));
    }
    if matches!(r.kind, Ended::Decided | Ended::Closed) {
        let seconds = (resolved - received).num_seconds().max(0);
        measures.set(m::TIMED, 1);
        measures.set(m::RESOLVE_SECONDS, seconds);
        measures.set(m::RESOLVE_HISTOGRAM + m::bucket_of(seconds), 1);
    }
}

fn case_facts(case: &Case, version: i64) -> CaseFacts {
    let resolution = case.resolution.clone().unwrap_or_default();
    let survey = case.survey.clone().unwrap_or_default();
    let incident =
        case.links.iter().find(|l| l.r#type == LinkType::Parent as i32).map(|l| l.r#case.clone()).unwrap_or_default();
    let flagged = case.clocks.iter().filter(|c| c.breached).count();
    CaseFacts {
        name: case.name.clone(),
        version,
        state: case.state,
        org_unit: case.org_unit.clone(),
        channel: case.channel,
        grade: case.grade,
        receive_us: micros(&case.receive_time),
        department: case.department.clone(),
        handler: case.assignee.clone(),
        first_response_us: micros(&case.first_response_time),
        decide_us: micros(&case.decide_time),
        close_us: micros(&case.close_time),
        resolution_type: resolution.r#type,
        compensation_minor: resolution.compensation.map_or(0, |c| c.amount_minor),
        survey_score: survey.score,
        survey_resolved: survey.resolved,
        review_count: case.review_count,
        reopen_count: case.reopen_count,
        // Records written before breaches were kept have only the clocks' flags.
        breaches: i32::try_from(case.breaches.len().max(flagged)).unwrap_or(i32::MAX),
        merged: !case.merged_into.is_empty(),
        incident,
    }
}

/// The institution calendars the metrics count days on.
pub trait Calendars: Send + Sync {
    /// The day (since 1970-01-01) an instant falls on in the unit's institution's zone.
    fn local_day(&self, org_unit: &str, t: DateTime<Utc>) -> i32;
    /// Whether `to` is by the end of the `n`th business day after the day of `from`, on the
    /// institution's working-day calendar.
    fn within_business_days(&self, org_unit: &str, from: DateTime<Utc>, to: DateTime<Utc>, n: u32) -> bool;
    /// Today in the unit's institution's zone.
    fn today(&self, org_unit: &str, now: DateTime<Utc>) -> i32 {
        self.local_day(org_unit, now)
    }
    /// The instant a day (since 1970-01-01) begins in the unit's institution's zone.
    fn day_start(&self, org_unit: &str, day: i32) -> DateTime<Utc>;
}

impl Calendars for redress_calendar::Institutions {
    fn local_day(&self, org_unit: &str, t: DateTime<Utc>) -> i32 {
        super::period::day_number(self.of(org_unit).calculator().acceptance_date(t))
    }

    fn within_business_days(&self, org_unit: &str, from: DateTime<Utc>, to: DateTime<Utc>, n: u32) -> bool {
        let calculator = self.of(org_unit).calculator();
        calculator.due(from, redress_calendar::Period::WorkingDays(n)).is_ok_and(|due| to <= due)
    }

    fn day_start(&self, org_unit: &str, day: i32) -> DateTime<Utc> {
        let calculator = self.of(org_unit).calculator();
        calculator.end_of_day(super::period::date_of(day - 1)).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl Counted {
    pub fn measures(&self) -> Measures {
        Measures::decode(&self.measures).unwrap_or_default()
    }
}

#[cfg(test)]
mod restriction_tests {
    use redress_proto::redress::intake::v1::Classification;

    use super::*;

    struct Utc0;

    impl Calendars for Utc0 {
        fn local_day(&self, _: &str, t: DateTime<Utc>) -> i32 {
            (t.timestamp().div_euclid(86_400)) as i32
        }

        fn within_business_days(&self, _: &str, _: DateTime<Utc>, _: DateTime<Utc>, _: u32) -> bool {
            true
        }

        fn day_start(&self, _: &str, day: i32) -> DateTime<Utc> {
            DateTime::from_timestamp(i64::from(day) * 86_400, 0).unwrap_or_default()
        }
    }

    fn accepted(restricted: bool) -> Change {
        Change::Accepted(Box::new(ComplaintAccepted {
            complaint: "complaints/c1".to_owned(),
            org_unit: "institutions/demo/branches/sh".to_owned(),
            channel: 3,
            grade: 2,
            receive_time: Some(prost_types::Timestamp { seconds: 1_764_000_000, nanos: 0 }),
            classification: Some(Classification {
                business_type: "B02".to_owned(),
                cause: "C05".to_owned(),
                rights: vec!["R4".to_owned()],
                ..Classification::default()
            }),
            product: "信用卡".to_owned(),
            recurrence_of: "complaints/c0".to_owned(),
            personal_data_restricted: restricted,
            ..ComplaintAccepted::default()
        }))
    }

    /// The dimension values a fact is counted under, other than the total and its unit.
    fn breakdown(fact: &Fact) -> Vec<String> {
        let counted = fact.count(&Utc0).expect("placed");
        assert_eq!(Measures::decode(counted.measures.as_slice()).unwrap_or_default().get(m::RECEIVED), 1);
        counted
            .dims
            .iter()
            .filter(|d| d.dimension != ALL && d.dimension != Dimension::OrgUnit as i32)
            .map(|d| d.value.clone())
            .filter(|v| !v.is_empty())
            .collect()
    }

    #[test]
    fn a_restricted_complaint_is_counted_by_its_unit_and_days_only() {
        let mut open = Fact::new("complaints/c1");
        open.apply(&accepted(false));
        assert!(breakdown(&open).contains(&"B02".to_owned()), "an unrestricted complaint is broken down");

        let mut restricted = Fact::new("complaints/c1");
        restricted.apply(&accepted(true));
        assert!(breakdown(&restricted).is_empty(), "{:?}", restricted.count(&Utc0));
        assert_eq!((restricted.business_type.as_str(), restricted.product.as_str()), ("", ""), "nothing kept");
        assert!(!restricted.recurrence);
        let counted = restricted.count(&Utc0).expect("placed");
        assert_eq!(counted.org_unit, "institutions/demo/branches/sh");

        // Restricted after it was counted: the breakdown is forgotten too.
        open.apply(&Change::Restricted(true));
        assert!(breakdown(&open).is_empty());
        assert!(!open.apply(&Change::Reclassified(Box::default())), "a reclassification adds nothing back");
    }

    /// A decided case with its handler, department, compensation and survey answer.
    fn decided_case(etag: &str) -> Change {
        use redress_proto::redress::case::v1::{Money, Resolution, Survey};
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        Change::Case(Box::new(Case {
            name: "cases/k1".to_owned(),
            complaint: "complaints/c1".to_owned(),
            etag: etag.to_owned(),
            state: CaseState::Closed as i32,
            org_unit: "institutions/demo/branches/sh".to_owned(),
            channel: 3,
            grade: 2,
            receive_time: at(1_764_000_000),
            department: "信用卡中心".to_owned(),
            assignee: "user:wang".to_owned(),
            first_response_time: at(1_764_003_600),
            decide_time: at(1_764_086_400),
            close_time: at(1_764_172_800),
            resolution: Some(Resolution {
                r#type: ResolutionType::ApologyCompensation as i32,
                compensation: Some(Money { currency_code: "CNY".to_owned(), amount_minor: 50_000 }),
                ..Resolution::default()
            }),
            survey: Some(Survey { score: 5, resolved: true, ..Survey::default() }),
            review_count: 1,
            ..Case::default()
        }))
    }

    /// What a restricted complaint's case keeps: unit, state, the times and counts that place
    /// and count it, nothing the complainant or the handling could be told by.
    fn assert_case_kept_for_counting_only(fact: &Fact) {
        let case = fact.case.as_ref().expect("the case is known");
        assert_eq!(case.org_unit, "institutions/demo/branches/sh");
        assert_eq!(
            (case.decide_us, case.close_us, case.review_count),
            (1_764_086_400_000_000, 1_764_172_800_000_000, 1)
        );
        assert_eq!((case.department.as_str(), case.handler.as_str()), ("", ""), "{case:?}");
        assert_eq!((case.channel, case.grade, case.resolution_type, case.compensation_minor), (0, 0, 0, 0));
        assert_eq!((case.survey_score, case.survey_resolved), (0, false));
        let counted = fact.count(&Utc0).expect("placed");
        let measures = counted.measures();
        assert_eq!((measures.get(m::RECEIVED), measures.get(m::RESOLVED), measures.get(m::TIMED)), (1, 1, 1));
        for kept_out in [m::DECIDED, m::UPHELD, m::REDRESS_MINOR, m::SURVEYED, m::SCORE_SUM] {
            assert_eq!(measures.get(kept_out), 0, "measure {kept_out}");
        }
    }

    #[test]
    fn a_restricted_complaints_case_keeps_only_what_counting_needs() {
        // The case was known before the restriction arrived.
        let mut fact = Fact::new("complaints/c1");
        fact.apply(&accepted(false));
        fact.apply(&decided_case("\"3\""));
        assert_eq!(
            fact.count(&Utc0).expect("placed").measures().get(m::REDRESS_MINOR),
            50_000,
            "counted in full before"
        );
        assert!(fact.apply(&Change::Restricted(true)));
        assert_case_kept_for_counting_only(&fact);
        // A later announcement of the case keeps no more.
        fact.apply(&decided_case("\"4\""));
        assert_case_kept_for_counting_only(&fact);

        // Restricted at acceptance, the case told after.
        let mut fact = Fact::new("complaints/c1");
        fact.apply(&accepted(true));
        fact.apply(&decided_case("\"3\""));
        assert_case_kept_for_counting_only(&fact);
    }
}
