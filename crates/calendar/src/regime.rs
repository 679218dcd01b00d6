//! Regimes (D-SLA-3, D-SLA-10): the clocks a complaint regime imposes, with the calendar and
//! time zone it counts in and the complaint taxonomy (D-CLS) its institutions classify in.
//!
//! Regimes differ by regulator and country, so they are data: one TOML preset per regime,
//! parsed and validated into a [`Regime`]. Shipped presets (embedded): `cbirc` (banking and
//! insurance, D-SLA-2), `samr` (general enterprises), `fca-disp` (UK FCA DISP) and `cfpb` (US
//! CFPB). Which regime an institution follows is its configuration; this module only says
//! what each regime is. Turning a clock's period into an instant stays
//! [`crate::deadline`]'s job, against the regime's calendar and time zone.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::calendar::{CALENDAR_NAMES, WorkingCalendar};
use crate::deadline::{DeadlineCalculator, Period};
use crate::policy::{Grade, GradeTargets, SlaPolicy};

/// Preset files shipped with the crate, embedded so the library needs no files on disk.
const SHIPPED_REGIMES: &[(&str, &str)] = &[
    ("regimes/cbirc.toml", include_str!("../data/regimes/cbirc.toml")),
    ("regimes/samr.toml", include_str!("../data/regimes/samr.toml")),
    ("regimes/fca-disp.toml", include_str!("../data/regimes/fca-disp.toml")),
    ("regimes/cfpb.toml", include_str!("../data/regimes/cfpb.toml")),
];

/// The taxonomy of a regime that names none.
pub const DEFAULT_TAXONOMY: &str = "banking";

/// Ids of the shipped presets.
pub const REGIME_NAMES: [&str; 4] = ["cbirc", "samr", "fca-disp", "cfpb"];

/// Errors from loading a regime preset.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RegimeError {
    /// The preset is not well-formed TOML or does not have the expected shape.
    #[error("cannot parse regime {source_name}: {message}")]
    Parse { source_name: String, message: String },
    /// The preset parsed but violates a regime rule.
    #[error("invalid regime {source_name}: {message}")]
    Invalid { source_name: String, message: String },
}

/// The unit a clock counts in (D-SLA-4). An extension keeps its clock's unit: a clock of
/// working days is extended to more working days, never to calendar days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeriodUnit {
    Hours,
    WorkingDays,
    CalendarDays,
}

impl PeriodUnit {
    pub fn of(period: Period) -> Self {
        match period {
            Period::Hours(_) => Self::Hours,
            Period::WorkingDays(_) => Self::WorkingDays,
            Period::CalendarDays(_) => Self::CalendarDays,
        }
    }

    /// `n` of this unit.
    pub fn period(self, n: u32) -> Period {
        match self {
            Self::Hours => Period::Hours(n),
            Self::WorkingDays => Period::WorkingDays(n),
            Self::CalendarDays => Period::CalendarDays(n),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hours => "hours",
            Self::WorkingDays => "working days",
            Self::CalendarDays => "calendar days",
        }
    }
}

/// The event a clock runs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockStart {
    /// The complaint reached the institution.
    Receipt,
    /// The institution accepted the complaint for handling.
    Acceptance,
    /// The complaint was decided.
    Decision,
    /// The complainant asked for a review of the decision.
    ReviewRequest,
    /// A regulator's referral reached the institution.
    Referral,
}

/// Time a regime's own text says is not counted in a clock; the clock is paused while it
/// runs (D-SLA-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludedTime {
    /// Waiting on materials from the complainant.
    AwaitingComplainant,
    /// Testing, inspection or appraisal (检定、检验、检测、鉴定).
    TestingOrAppraisal,
}

/// A longer total length a clock may be given, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    to: Period,
    when: String,
}

impl Extension {
    /// The clock's whole length once extended, counted from the clock's start.
    pub fn to(&self) -> Period {
        self.to
    }

    /// When the regime allows it (and who approves), for people.
    pub fn when(&self) -> &str {
        &self.when
    }
}

/// One clock of a regime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegimeClock {
    id: String,
    description: String,
    starts: ClockStart,
    period: Period,
    extensions: Vec<Extension>,
    excluded_time: Vec<ExcludedTime>,
}

impl RegimeClock {
    /// Names the clock within its regime (`snake_case`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What must happen before the clock runs out, for people.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn starts(&self) -> ClockStart {
        self.starts
    }

    pub fn period(&self) -> Period {
        self.period
    }

    /// The clock's unit, which its extensions keep.
    pub fn unit(&self) -> PeriodUnit {
        PeriodUnit::of(self.period)
    }

    /// Allowed extensions, shortest first, each longer than the one before.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    pub fn excluded_time(&self) -> &[ExcludedTime] {
        &self.excluded_time
    }
}

/// A validated regime preset: its clocks, calendar and default time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regime {
    id: String,
    name: String,
    source: String,
    calendar: String,
    time_zone: Tz,
    /// The complaint taxonomy institutions on the regime classify in, unless they configure
    /// another.
    taxonomy: String,
    /// Targets per grade, in [`Grade::ALL`] order, where the regime grades complaints.
    grades: Option<[GradeTargets; 4]>,
    clocks: Vec<RegimeClock>,
}

// Wire shape of a preset; kept private so the public types only ever hold validated data.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegime {
    id: String,
    name: String,
    #[serde(default)]
    source: String,
    calendar: String,
    time_zone: String,
    #[serde(default)]
    taxonomy: Option<String>,
    grades: Option<RawGrades>,
    #[serde(default)]
    clocks: Vec<RawClock>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrades {
    general: RawGradeTargets,
    important: RawGradeTargets,
    urgent: RawGradeTargets,
    major: RawGradeTargets,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGradeTargets {
    first_response: RawPeriod,
    resolution: RawPeriod,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClock {
    id: String,
    #[serde(default)]
    description: String,
    starts: ClockStart,
    period: RawPeriod,
    #[serde(default)]
    extensions: Vec<RawExtension>,
    #[serde(default)]
    excluded_time: Vec<ExcludedTime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    to: RawPeriod,
    #[serde(default)]
    when: String,
}

/// A period as written in a preset: [`Period`]'s spellings plus `Weeks`, so a preset can say
/// what its rule says. A week is 7 calendar days; there is no working-week unit.
#[derive(Debug, Clone, Copy, Deserialize)]
enum RawPeriod {
    Hours(u32),
    WorkingDays(u32),
    CalendarDays(u32),
    Weeks(u32),
}

impl Regime {
    /// Parses and validates one preset. `source_name` only labels errors.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self, RegimeError> {
        let raw: RawRegime = toml::from_str(text).map_err(|e| RegimeError::Parse {
            source_name: source_name.to_owned(),
            message: match e.span() {
                Some(span) => format!("line {}: {}", line_of(text, span.start), e.message()),
                None => e.message().to_owned(),
            },
        })?;
        let invalid = |message: String| RegimeError::Invalid { source_name: source_name.to_owned(), message };

        if raw.id.is_empty() || !raw.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(invalid(format!("id {:?} is not lowercase letters, digits and hyphens", raw.id)));
        }
        let regime = |message: String| invalid(format!("regime {}: {message}", raw.id));
        if raw.name.trim().is_empty() {
            return Err(regime("name is empty".to_owned()));
        }
        if !CALENDAR_NAMES.contains(&raw.calendar.as_str()) {
            return Err(regime(format!("calendar {:?} is not one of {}", raw.calendar, CALENDAR_NAMES.join(", "))));
        }
        let time_zone: Tz = raw
            .time_zone
            .parse()
            .map_err(|_| regime(format!("time zone {:?} is not an IANA zone name", raw.time_zone)))?;

        let taxonomy = raw.taxonomy.unwrap_or_else(|| DEFAULT_TAXONOMY.to_owned());
        if !is_taxonomy_name(&taxonomy) {
            return Err(regime(format!(
                "taxonomy {taxonomy:?} is not lowercase letters, digits, hyphens and underscores"
            )));
        }

        let grade = |name: &str, raw: RawGradeTargets| -> Result<GradeTargets, RegimeError> {
            Ok(GradeTargets {
                first_response: period(&format!("grade {name} first response"), raw.first_response).map_err(&regime)?,
                resolution: period(&format!("grade {name} resolution"), raw.resolution).map_err(&regime)?,
            })
        };
        let grades = match raw.grades {
            None => None,
            Some(g) => Some([
                grade("general", g.general)?,
                grade("important", g.important)?,
                grade("urgent", g.urgent)?,
                grade("major", g.major)?,
            ]),
        };

        if raw.clocks.is_empty() {
            return Err(regime("has no clocks".to_owned()));
        }
        let mut ids = BTreeSet::new();
        let mut clocks = Vec::with_capacity(raw.clocks.len());
        for c in raw.clocks {
            if !is_snake_case(&c.id) {
                return Err(regime(format!("clock id {:?} is not snake_case", c.id)));
            }
            if !ids.insert(c.id.clone()) {
                return Err(regime(format!("clock {} is defined twice", c.id)));
            }
            let clock = |message: String| regime(format!("clock {}: {message}", c.id));
            let base = period("period", c.period).map_err(&clock)?;
            let mut extensions = Vec::with_capacity(c.extensions.len());
            let mut longest = base;
            for e in c.extensions {
                let to = period("extension", e.to).map_err(&clock)?;
                if PeriodUnit::of(to) != PeriodUnit::of(base) {
                    return Err(clock(format!(
                        "extension to {} is not in {}, the clock's unit",
                        describe(to),
                        PeriodUnit::of(base).name()
                    )));
                }
                if length(to) <= length(longest) {
                    return Err(clock(format!(
                        "extension to {} is not longer than {}",
                        describe(to),
                        describe(longest)
                    )));
                }
                longest = to;
                extensions.push(Extension { to, when: e.when });
            }
            let mut excluded_time = c.excluded_time;
            let listed = excluded_time.len();
            excluded_time.sort();
            excluded_time.dedup();
            if excluded_time.len() != listed {
                return Err(clock("excluded time lists a reason twice".to_owned()));
            }
            clocks.push(RegimeClock {
                id: c.id,
                description: c.description,
                starts: c.starts,
                period: base,
                extensions,
                excluded_time,
            });
        }

        Ok(Self {
            id: raw.id,
            name: raw.name,
            source: raw.source,
            calendar: raw.calendar,
            time_zone,
            taxonomy,
            grades,
            clocks,
        })
    }

    /// Every shipped preset, in [`REGIME_NAMES`] order.
    pub fn presets() -> Vec<Self> {
        // The embedded presets are validated by the crate's tests, so a failure here is a
        // build defect; skipping keeps this infallible and the preset is then not found.
        SHIPPED_REGIMES.iter().filter_map(|(name, text)| Self::from_toml(name, text).ok()).collect()
    }

    /// A shipped preset by id: `cbirc`, `samr`, `fca-disp` or `cfpb`.
    pub fn preset(id: &str) -> Option<Self> {
        Self::presets().into_iter().find(|regime| regime.id == id)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Names the regime, for people.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rules the clocks are taken from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The shipped calendar the regime counts working days on (see [`CALENDAR_NAMES`]).
    pub fn calendar_name(&self) -> &str {
        &self.calendar
    }

    /// The regime's calendar; years it has no file for are counted provisionally on the
    /// calendar's own statutory rules (see [`crate::provisional`]).
    pub fn working_calendar(&self) -> WorkingCalendar {
        // The name was checked against CALENDAR_NAMES when the preset was loaded.
        WorkingCalendar::by_name(&self.calendar).unwrap_or_default().with_provisional_years()
    }

    /// The time zone days are counted in unless the institution configures another.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The name of the complaint taxonomy institutions on the regime classify in unless they
    /// configure another (`banking` for a preset that names none).
    pub fn taxonomy(&self) -> &str {
        &self.taxonomy
    }

    /// A calculator on the regime's calendar in its default time zone.
    pub fn calculator(&self) -> DeadlineCalculator {
        DeadlineCalculator::new(Arc::new(self.working_calendar()), self.time_zone)
    }

    /// The clocks, in preset order.
    pub fn clocks(&self) -> &[RegimeClock] {
        &self.clocks
    }

    pub fn clock(&self, id: &str) -> Option<&RegimeClock> {
        self.clocks.iter().find(|clock| clock.id == id)
    }

    /// The first-response and resolution targets of a grade, where the regime grades
    /// complaints.
    pub fn grade_targets(&self, grade: Grade) -> Option<GradeTargets> {
        let index = Grade::ALL.iter().position(|g| *g == grade)?;
        self.grades.map(|targets| targets[index])
    }

    /// The [`SlaPolicy`] the services run on, for a regime that grades complaints and has a
    /// `regulatory_decision` clock (CBIRC).
    pub fn sla_policy(&self) -> Option<SlaPolicy> {
        let [general, important, urgent, major] = self.grades?;
        let regulatory_decision = self.clock("regulatory_decision")?.period;
        Some(SlaPolicy { general, important, urgent, major, regulatory_decision })
    }
}

/// A preset period as a [`Period`], refusing zero lengths.
fn period(field: &str, raw: RawPeriod) -> Result<Period, String> {
    let period = match raw {
        RawPeriod::Hours(n) => Period::Hours(n),
        RawPeriod::WorkingDays(n) => Period::WorkingDays(n),
        RawPeriod::CalendarDays(n) => Period::CalendarDays(n),
        RawPeriod::Weeks(n) => {
            Period::CalendarDays(n.checked_mul(7).ok_or_else(|| format!("{field} of {n} weeks is too long"))?)
        }
    };
    if length(period) == 0 {
        return Err(format!("{field} is 0 {}", PeriodUnit::of(period).name()));
    }
    Ok(period)
}

fn length(period: Period) -> u32 {
    match period {
        Period::Hours(n) | Period::WorkingDays(n) | Period::CalendarDays(n) => n,
    }
}

fn describe(period: Period) -> String {
    format!("{} {}", length(period), PeriodUnit::of(period).name())
}

/// A taxonomy's name as its file gives it: `banking`, `general`, an institution's own.
fn is_taxonomy_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_snake_case(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |before| before.matches('\n').count()) + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shipped_presets_are_valid() {
        for (name, text) in SHIPPED_REGIMES {
            assert!(Regime::from_toml(name, text).is_ok(), "{name}: {:?}", Regime::from_toml(name, text));
        }
        let ids: Vec<String> = Regime::presets().iter().map(|r| r.id().to_owned()).collect();
        assert_eq!(ids, REGIME_NAMES);
        let taxonomies: Vec<String> =
            REGIME_NAMES.iter().filter_map(|id| Regime::preset(id)).map(|r| r.taxonomy().to_owned()).collect();
        assert_eq!(taxonomies, ["banking", "general", "banking", "banking"]);
    }

    #[test]
    fn a_regime_names_its_taxonomy_or_classifies_in_banking() {
        let text = |taxonomy: &str| {
            format!(
                "id = \"t\"\nname = \"t\"\ncalendar = \"cn\"\ntime_zone = \"Asia/Shanghai\"\n{taxonomy}\n\
                 [[clocks]]\nid = \"c\"\nstarts = \"receipt\"\nperiod = {{ WorkingDays = 7 }}\n"
            )
        };
        assert_eq!(Regime::from_toml("t", &text("")).unwrap().taxonomy(), DEFAULT_TAXONOMY);
        assert_eq!(Regime::from_toml("t", &text("taxonomy = \"mall\"")).unwrap().taxonomy(), "mall");
        let error = Regime::from_toml("t", &text("taxonomy = \"Mall Taxonomy\"")).unwrap_err();
        assert!(error.to_string().contains("taxonomy \"Mall Taxonomy\""), "{error}");
    }
}
