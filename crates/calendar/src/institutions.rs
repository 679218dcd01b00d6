//! Institutions' regimes (D-SLA-10): which regime, calendar and time zone each institution
//! counts its clocks on, and which complaint taxonomy it classifies in (D-CLS), as configured,
//! and the clocks the services run resolved from it.
//!
//! Both services read the same [`RegimeConfig`] and resolve it into [`Institutions`] at
//! start-up and on every calendar reload, so a complaint and its case are always counted on
//! the same calendar. The service-level `time_zone`, `sla` and `calendars_dir` keep
//! configuring the default regime, so a deployment without institutions behaves as before.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono_tz::Tz;
use redress_platform::names::OrgUnit;
use serde::{Deserialize, Serialize};

use crate::calendar::{CALENDAR_NAMES, CalendarError, WorkingCalendar};
use crate::deadline::{DeadlineCalculator, Period};
use crate::policy::SlaPolicy;
use crate::regime::{Extension, PeriodUnit, REGIME_NAMES, Regime, RegimeClock};

/// The clock of each preset the suite's regulatory decision clock follows: the one that ends
/// with the complaint answered (or, for SAMR, accepted or rejected).
const DECISION_CLOCKS: &[(&str, &str)] = &[
    ("cbirc", "regulatory_decision"),
    ("samr", "acceptance_decision"),
    ("fca-disp", "final_response"),
    ("cfpb", "final_response"),
];

/// The regime every institution not listed follows, and the institutions that follow another
/// (or count in another zone or calendar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegimeConfig {
    /// A preset id (see [`REGIME_NAMES`]); `cbirc` unless configured.
    pub default: String,
    /// By institution, `institutions/{id}` (or just `{id}`).
    pub institutions: BTreeMap<String, InstitutionConfig>,
}

impl Default for RegimeConfig {
    fn default() -> Self {
        Self { default: "cbirc".to_owned(), institutions: BTreeMap::new() }
    }
}

/// One institution's regime; the zone, calendar and taxonomy default to the preset's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstitutionConfig {
    pub regime: String,
    /// IANA zone name; empty for the preset's.
    pub time_zone: String,
    /// Calendar name (see [`CALENDAR_NAMES`]); empty for the preset's.
    pub calendar: String,
    /// The complaint taxonomy its complaints are classified in, `name` or `name@version`;
    /// empty for the preset's. The service that classifies checks that it exists.
    pub taxonomy: String,
}

/// A configuration that does not resolve, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegimeConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("calendars_dir: {0}")]
    Calendars(#[from] CalendarError),
}

/// How one institution's clocks are counted.
#[derive(Debug, Clone)]
pub struct InstitutionRegime {
    regime_id: String,
    /// The taxonomy its complaints are classified in (`name` or `name@version`).
    taxonomy: String,
    /// The regime clock the regulatory decision clock follows.
    decision: Option<RegimeClock>,
    calculator: DeadlineCalculator,
    policy: SlaPolicy,
}

impl InstitutionRegime {
    /// The regime's preset id.
    pub fn regime_id(&self) -> &str {
        &self.regime_id
    }

    /// The complaint taxonomy the institution classifies in, `name` or `name@version`: its own
    /// if configured, else its regime's.
    pub fn taxonomy(&self) -> &str {
        &self.taxonomy
    }

    pub fn calculator(&self) -> &DeadlineCalculator {
        &self.calculator
    }

    /// First response and resolution by grade, and the regulatory decision clock, in the
    /// regime's terms.
    pub fn policy(&self) -> &SlaPolicy {
        &self.policy
    }

    /// The regime clock the regulatory decision clock follows.
    pub fn decision_clock(&self) -> Option<&RegimeClock> {
        self.decision.as_ref()
    }

    /// The unit the decision clock counts in, which an extension keeps.
    pub fn decision_unit(&self) -> PeriodUnit {
        PeriodUnit::of(self.policy.regulatory_decision)
    }

    /// The extensions the regime allows the decision clock, shortest first; none for a
    /// regime that allows none.
    pub fn decision_extensions(&self) -> &[Extension] {
        self.decision_clock().map(RegimeClock::extensions).unwrap_or_default()
    }
}

/// Every institution's regime, and the default one for the rest.
#[derive(Debug, Clone)]
pub struct Institutions {
    default: InstitutionRegime,
    /// By canonical institution (`institutions/{id}`).
    by_institution: BTreeMap<String, InstitutionRegime>,
}

impl Institutions {
    /// Everything on the default regime with `calculator` and `policy` (tests, tools).
    pub fn single(calculator: DeadlineCalculator, policy: SlaPolicy) -> Self {
        let cbirc = Regime::preset("cbirc");
        let decision = cbirc.as_ref().and_then(|r| decision_clock(r).cloned());
        let taxonomy = cbirc.as_ref().map_or(crate::regime::DEFAULT_TAXONOMY, Regime::taxonomy).to_owned();
        let default = InstitutionRegime { regime_id: "cbirc".to_owned(), taxonomy, decision, calculator, policy };
        Self { default, by_institution: BTreeMap::new() }
    }

    /// The regime of the institution `org_unit` belongs to; the default for a unit that names
    /// no configured institution.
    pub fn of(&self, org_unit: &str) -> &InstitutionRegime {
        OrgUnit::try_from_str(org_unit)
            .ok()
            .and_then(|unit| self.by_institution.get(unit.institution().as_str()))
            .unwrap_or(&self.default)
    }

    pub fn default_regime(&self) -> &InstitutionRegime {
        &self.default
    }

    /// The taxonomies institutions classify in: the default regime's and every configured
    /// institution's, sorted, each once.
    pub fn taxonomies(&self) -> Vec<&str> {
        let mut taxonomies: Vec<&str> = std::iter::once(&self.default)
            .chain(self.by_institution.values())
            .map(InstitutionRegime::taxonomy)
            .collect();
        taxonomies.sort_unstable();
        taxonomies.dedup();
        taxonomies
    }

    /// The official years loaded for any calendar in use, ascending.
    pub fn official_years(&self) -> Vec<i32> {
        let mut years: Vec<i32> = std::iter::once(&self.default)
            .chain(self.by_institution.values())
            .flat_map(|r| r.calculator.calendar().years())
            .collect();
        years.sort_unstable();
        years.dedup();
        years
    }

    /// These institutions with `institution` (canonical, `institutions/{id}`) on `regime`,
    /// counted with `calculator`, on `sla`'s grade targets.
    pub fn with_institution(
        mut self,
        institution: &str,
        regime: &Regime,
        calculator: DeadlineCalculator,
        sla: &SlaPolicy,
    ) -> Self {
        let resolved = InstitutionRegime {
            regime_id: regime.id().to_owned(),
            taxonomy: regime.taxonomy().to_owned(),
            decision: decision_clock(regime).cloned(),
            calculator,
            policy: policy_of(regime, sla),
        };
        self.by_institution.insert(institution.to_owned(), resolved);
        self
    }

    /// The default calculator replaced (tests that swap the calendar in force).
    pub fn with_default_calculator(mut self, calculator: DeadlineCalculator) -> Self {
        self.default.calculator = calculator;
        self
    }
}

/// The grade targets of `sla` with `regime`'s decision clock.
fn policy_of(regime: &Regime, sla: &SlaPolicy) -> SlaPolicy {
    // CBIRC's decision clock stays the `sla` key's, as it always was.
    match decision_clock(regime) {
        Some(clock) if regime.id() != "cbirc" => SlaPolicy { regulatory_decision: clock.period(), ..sla.clone() },
        _ => sla.clone(),
    }
}

/// The regime clock of `regime` the regulatory decision clock follows.
pub fn decision_clock(regime: &Regime) -> Option<&RegimeClock> {
    let id = DECISION_CLOCKS.iter().find(|(r, _)| *r == regime.id()).map_or("regulatory_decision", |(_, c)| *c);
    regime.clock(id)
}

/// Where the calendars come from: the institutions' regimes, the default zone, the directory
/// of year files and the grade targets. Both services load from one, so a complaint and its
/// case are counted on the same calendars after every reload.
#[derive(Debug, Clone)]
pub struct CalendarSource {
    pub regimes: RegimeConfig,
    pub time_zone: String,
    pub calendars_dir: String,
    pub sla: SlaPolicy,
}

impl CalendarSource {
    /// Every institution's calendar as it is on disk now; a file that does not load is
    /// refused whole.
    pub fn load(&self) -> Result<Institutions, redress_platform::ServiceError> {
        self.regimes.resolve(&self.time_zone, &self.calendars_dir, &self.sla).map_err(|e| {
            redress_platform::ServiceError::failed_precondition(
                "CALENDARS_INVALID",
                format!("the calendars do not load: {e}"),
            )
        })
    }
}

impl RegimeConfig {
    /// The taxonomy each key of the configuration makes institutions classify in, with the key
    /// that decides it (`regimes.default`, `regimes.institutions.{id}.regime` or
    /// `…taxonomy`), so the service that classifies can name the key whose taxonomy it cannot
    /// serve. Regimes that are not presets are left out ([`Self::resolve`] refuses them).
    pub fn taxonomies(&self) -> Vec<(String, String)> {
        let preset_taxonomy = |id: &str| Regime::preset(id).map(|r| r.taxonomy().to_owned());
        let mut out: Vec<(String, String)> =
            preset_taxonomy(&self.default).map(|t| ("regimes.default".to_owned(), t)).into_iter().collect();
        for (id, institution) in &self.institutions {
            let key = format!("regimes.institutions.{id}");
            match institution.taxonomy.trim() {
                "" => out.extend(preset_taxonomy(&institution.regime).map(|t| (format!("{key}.regime"), t))),
                name => out.push((format!("{key}.taxonomy"), name.to_owned())),
            }
        }
        out
    }

    /// Resolves the configuration. `time_zone` and `sla` are the service-level keys, which
    /// configure the default regime; `calendars_dir` adds year files: `*.toml` directly
    /// inside it are China's (`cn`), and a subdirectory named after a calendar (`cn`,
    /// `gb-eng`, `us`) holds that calendar's.
    pub fn resolve(
        &self,
        time_zone: &str,
        calendars_dir: &str,
        sla: &SlaPolicy,
    ) -> Result<Institutions, RegimeConfigError> {
        let extra = extra_calendars(calendars_dir)?;
        let calendar = |name: &str| -> WorkingCalendar {
            let shipped = WorkingCalendar::by_name(name).unwrap_or_default().with_provisional_years();
            match extra.get(name) {
                Some(years) => shipped.merged(years.clone()),
                None => shipped,
            }
        };
        let preset = |key: &str, id: &str| -> Result<Regime, RegimeConfigError> {
            Regime::preset(id).ok_or_else(|| RegimeConfigError::Invalid {
                key: key.to_owned(),
                message: format!("unknown regime {id:?}; one of {}", REGIME_NAMES.join(", ")),
            })
        };
        let zone = |key: &str, name: &str| -> Result<Tz, RegimeConfigError> {
            name.parse().map_err(|_| RegimeConfigError::Invalid {
                key: key.to_owned(),
                message: format!("{name:?} is not an IANA time zone"),
            })
        };
        let policy_of = |regime: &Regime| policy_of(regime, sla);

        let default_regime = preset("regimes.default", &self.default)?;
        let default = InstitutionRegime {
            calculator: DeadlineCalculator::new(
                Arc::new(calendar(default_regime.calendar_name())),
                zone("time_zone", time_zone)?,
            ),
            policy: policy_of(&default_regime),
            regime_id: default_regime.id().to_owned(),
            taxonomy: default_regime.taxonomy().to_owned(),
            decision: decision_clock(&default_regime).cloned(),
        };

        let mut by_institution = BTreeMap::new();
        for (id, institution) in &self.institutions {
            let key = format!("regimes.institutions.{id}");
            let qualified = if id.contains('/') { id.clone() } else { format!("institutions/{id}") };
            let unit = OrgUnit::try_from_str(&qualified).ok().filter(OrgUnit::is_institution).ok_or_else(|| {
                RegimeConfigError::Invalid {
                    key: key.clone(),
                    message: format!("{id:?} is not an institution (institutions/{{id}})"),
                }
            })?;
            let regime = preset(&format!("{key}.regime"), &institution.regime)?;
            let time_zone = match institution.time_zone.as_str() {
                "" => regime.time_zone(),
                name => zone(&format!("{key}.time_zone"), name)?,
            };
            let calendar_name = match institution.calendar.as_str() {
                "" => regime.calendar_name().to_owned(),
                name if CALENDAR_NAMES.contains(&name) => name.to_owned(),
                name => {
                    return Err(RegimeConfigError::Invalid {
                        key: format!("{key}.calendar"),
                        message: format!("unknown calendar {name:?}; one of {}", CALENDAR_NAMES.join(", ")),
                    });
                }
            };
            let taxonomy = match institution.taxonomy.trim() {
                "" => regime.taxonomy().to_owned(),
                name if name.chars().any(char::is_whitespace) => {
                    return Err(RegimeConfigError::Invalid {
                        key: format!("{key}.taxonomy"),
                        message: format!("{name:?} is not a taxonomy name (name or name@version)"),
                    });
                }
                name => name.to_owned(),
            };
            let resolved = InstitutionRegime {
                calculator: DeadlineCalculator::new(Arc::new(calendar(&calendar_name)), time_zone),
                policy: policy_of(&regime),
                regime_id: regime.id().to_owned(),
                taxonomy,
                decision: decision_clock(&regime).cloned(),
            };
            if by_institution.insert(unit.as_str().to_owned(), resolved).is_some() {
                return Err(RegimeConfigError::Invalid {
                    key,
                    message: format!("{} is configured twice", unit.as_str()),
                });
            }
        }
        Ok(Institutions { default, by_institution })
    }
}

/// The year files of `calendars_dir` by calendar name (see [`RegimeConfig::resolve`]).
fn extra_calendars(calendars_dir: &str) -> Result<BTreeMap<String, WorkingCalendar>, CalendarError> {
    let mut extra = BTreeMap::new();
    if calendars_dir.is_empty() {
        return Ok(extra);
    }
    let dir = Path::new(calendars_dir);
    let mut china = WorkingCalendar::load_dir(dir)?;
    for name in CALENDAR_NAMES {
        let sub = dir.join(name);
        if sub.is_dir() {
            let loaded = WorkingCalendar::load_dir(&sub)?;
            if name == "cn" {
                china = checked_union(china, loaded, &sub)?;
            } else {
                extra.insert(name.to_owned(), loaded);
            }
        }
    }
    extra.insert("cn".to_owned(), china);
    Ok(extra)
}

/// Two sets of China year files, refusing a year given in both places.
fn checked_union(a: WorkingCalendar, b: WorkingCalendar, sub: &Path) -> Result<WorkingCalendar, CalendarError> {
    if let Some(year) = b.years().into_iter().find(|y| a.year(*y).is_some()) {
        return Err(CalendarError::Invalid {
            source_name: sub.display().to_string(),
            message: format!("year {year}: already loaded from another file"),
        });
    }
    Ok(a.merged(b))
}

/// A period's length in its unit.
pub fn length(period: Period) -> u32 {
    match period {
        Period::Hours(n) | Period::WorkingDays(n) | Period::CalendarDays(n) => n,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(text: &str) -> RegimeConfig {
        toml::from_str(text).unwrap()
    }

    fn resolve(text: &str) -> Result<Institutions, RegimeConfigError> {
        config(text).resolve("Asia/Shanghai", "", &SlaPolicy::default())
    }

    #[test]
    fn institutions_resolve_to_their_preset_zone_calendar_and_decision_clock() {
        let institutions = resolve(
            r#"
            [institutions."institutions/uk-bank"]
            regime = "fca-disp"
            [institutions.us-bank]
            regime = "cfpb"
            time_zone = "America/Chicago"
            [institutions.shop]
            regime = "samr"
            "#,
        )
        .unwrap();
        let uk = institutions.of("institutions/uk-bank/branches/leeds");
        assert_eq!((uk.regime_id(), uk.calculator().time_zone()), ("fca-disp", chrono_tz::Europe::London));
        assert_eq!(uk.policy().regulatory_decision, Period::CalendarDays(56));
        let us = institutions.of("INSTITUTIONS/US-BANK");
        assert_eq!((us.regime_id(), us.calculator().time_zone()), ("cfpb", chrono_tz::America::Chicago));
        assert_eq!(us.policy().regulatory_decision, Period::CalendarDays(60));
        assert_eq!(institutions.of("institutions/shop").policy().regulatory_decision, Period::WorkingDays(7));
        let other = institutions.of("institutions/cn-bank");
        assert_eq!((other.regime_id(), other.policy()), ("cbirc", &SlaPolicy::default()));
        assert_eq!(other.decision_extensions().len(), 2);
        assert!(uk.decision_extensions().is_empty());
    }

    #[test]
    fn an_institution_classifies_in_its_regimes_taxonomy_unless_it_names_its_own() {
        let text = r#"
            default = "cbirc"
            [institutions.shop]
            regime = "samr"
            [institutions.mall]
            regime = "samr"
            taxonomy = "mall@2026.1"
            [institutions.uk-bank]
            regime = "fca-disp"
            "#;
        let institutions = resolve(text).unwrap();
        let taxonomy = |unit: &str| institutions.of(unit).taxonomy().to_owned();
        assert_eq!(taxonomy("institutions/shop/stores/s1"), "general");
        assert_eq!(taxonomy("institutions/mall"), "mall@2026.1");
        assert_eq!(taxonomy("institutions/uk-bank"), "banking");
        assert_eq!(taxonomy("institutions/cn-bank"), "banking");
        assert_eq!(
            Institutions::single(institutions.default_regime().calculator().clone(), SlaPolicy::default())
                .of("institutions/x")
                .taxonomy(),
            "banking"
        );
        assert_eq!(institutions.taxonomies(), ["banking", "general", "mall@2026.1"]);
        let keys = config(text).taxonomies();
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, t)| (k.as_str(), t.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("regimes.default", "banking"),
                ("regimes.institutions.mall.taxonomy", "mall@2026.1"),
                ("regimes.institutions.shop.regime", "general"),
                ("regimes.institutions.uk-bank.regime", "banking"),
            ]
        );
        let error = resolve("[institutions.x]\nregime = \"samr\"\ntaxonomy = \"my mall\"").unwrap_err();
        assert!(error.to_string().starts_with("regimes.institutions.x.taxonomy:"), "{error}");
    }

    #[test]
    fn a_key_that_does_not_resolve_is_named() {
        let error = |text: &str| resolve(text).unwrap_err().to_string();
        assert!(error("default = \"fsa\"").starts_with("regimes.default: unknown regime"));
        assert!(
            error("[institutions.x]\nregime = \"ofgem\"").starts_with("regimes.institutions.x.regime: unknown regime")
        );
        assert!(
            error("[institutions.x]\nregime = \"cfpb\"\ncalendar = \"fr\"")
                .starts_with("regimes.institutions.x.calendar: unknown calendar")
        );
        assert!(
            error("[institutions.x]\nregime = \"cfpb\"\ntime_zone = \"Mars/Olympus\"")
                .starts_with("regimes.institutions.x.time_zone:")
        );
        assert!(
            error("[institutions.\"institutions/x/branches/y\"]\nregime = \"cfpb\"").contains("not an institution")
        );
        let zone = RegimeConfig::default().resolve("Nowhere/Else", "", &SlaPolicy::default()).unwrap_err();
        assert!(zone.to_string().starts_with("time_zone:"), "{zone}");
    }

    #[test]
    fn calendars_dir_adds_years_to_each_calendar() {
        let dir = std::env::temp_dir().join(format!("redress-regimes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("gb-eng")).unwrap();
        let year = |y: i32| format!("year = {y}\nsource = \"test\"\n");
        std::fs::write(dir.join("2027.toml"), year(2027)).unwrap();
        std::fs::write(dir.join("gb-eng").join("2028.toml"), year(2028)).unwrap();
        let institutions = config("[institutions.uk]\nregime = \"fca-disp\"")
            .resolve("Asia/Shanghai", &dir.display().to_string(), &SlaPolicy::default())
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(institutions.default_regime().calculator().calendar().years(), [2025, 2026, 2027]);
        assert_eq!(institutions.of("institutions/uk").calculator().calendar().years(), [2025, 2026, 2028]);
        assert_eq!(institutions.official_years(), [2025, 2026, 2027, 2028]);
    }
}
