//! Who sees and who edits an article (属地管理). An article applies to the whole platform or to
//! an organisation unit and the units below it. A reader sees what applies to their own unit
//! (platform-wide articles, those of the units above theirs and of their own) and what their
//! unit oversees (the units below it); an editor changes only what their unit covers.

use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, ROOT_ORG_UNIT};
use redress_platform::principal::Principal;

/// What an article applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every institution.
    Platform,
    /// A unit and the units below it.
    Unit(OrgUnit),
}

impl Scope {
    /// Parses a scope: `/` for the whole platform, or an organisation unit.
    pub fn parse(v: &mut Violations, field: &str, value: &str) -> Option<Self> {
        match value.trim() {
            "" => {
                v.add(field, "required: an organisation unit such as institutions/acme, or / for the whole platform");
                None
            }
            ROOT_ORG_UNIT => Some(Self::Platform),
            other => OrgUnit::parse(v, field, other).map(Self::Unit),
        }
    }

    /// The scope as stored: `/` or the canonical unit.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Platform => ROOT_ORG_UNIT,
            Self::Unit(unit) => unit.as_str(),
        }
    }
}

/// Whether `unit` lies strictly above `below` (`institutions/a` above `institutions/a/branches/x`).
fn is_above(unit: &str, below: &str) -> bool {
    below.strip_prefix(unit).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `principal` may read the published version of an article that applies to `scope`.
pub fn readable_by(principal: &Principal, scope: &str) -> bool {
    let own = principal.org_unit.as_str();
    if scope == ROOT_ORG_UNIT || own == ROOT_ORG_UNIT {
        return true;
    }
    !own.is_empty() && (principal.covers(scope) || is_above(scope, own))
}

/// Whether `principal`'s unit covers an article that applies to `scope`, so that they may
/// write or review it (platform-wide articles: only principals of the whole platform).
pub fn editable_by(principal: &Principal, scope: &str) -> bool {
    if scope == ROOT_ORG_UNIT { principal.org_unit == ROOT_ORG_UNIT } else { principal.covers(scope) }
}

/// The units (and `/`) whose articles apply to `unit`: itself, every unit above it, and the
/// platform — what a reader at `unit` sees besides the units below it.
pub fn applying_to(unit: &str) -> Vec<String> {
    let mut units = vec![ROOT_ORG_UNIT.to_owned()];
    let segments: Vec<&str> = unit.split('/').collect();
    for end in (2..=segments.len()).step_by(2) {
        units.push(segments[..end].join("/"));
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unit: &str) -> Principal {
        Principal { subject: "user:x".to_owned(), org_unit: unit.to_owned(), ..Principal::default() }
    }

    #[test]
    fn readers_see_their_line_of_units_and_never_another_institution() {
        let branch = at("institutions/a/branches/x");
        assert!(readable_by(&branch, "/"));
        assert!(readable_by(&branch, "institutions/a"));
        assert!(readable_by(&branch, "institutions/a/branches/x"));
        assert!(readable_by(&branch, "institutions/a/branches/x/departments/cards"));
        assert!(!readable_by(&branch, "institutions/a/branches/y"));
        assert!(!readable_by(&branch, "institutions/b"));
        assert!(!readable_by(&branch, "institutions/a-2"));
        let head = at("institutions/a");
        assert!(readable_by(&head, "institutions/a/branches/y"));
        assert!(!readable_by(&at(""), "institutions/a"));
        assert!(readable_by(&at(""), "/"));
        assert!(readable_by(&at("/"), "institutions/b"));
    }

    #[test]
    fn editors_change_only_what_their_unit_covers() {
        assert!(editable_by(&at("institutions/a"), "institutions/a/branches/x"));
        assert!(!editable_by(&at("institutions/a/branches/x"), "institutions/a"));
        assert!(!editable_by(&at("institutions/a"), "/"));
        assert!(editable_by(&at("/"), "/"));
    }

    #[test]
    fn scopes_parse_to_the_platform_or_a_canonical_unit() {
        let mut v = Violations::new();
        assert_eq!(Scope::parse(&mut v, "org_unit", "/"), Some(Scope::Platform));
        assert_eq!(
            Scope::parse(&mut v, "org_unit", " Institutions/A/ ").map(|s| s.as_str().to_owned()).as_deref(),
            Some("institutions/a")
        );
        assert!(v.is_empty());
        assert_eq!(Scope::parse(&mut v, "org_unit", ""), None);
        assert_eq!(Scope::parse(&mut v, "org_unit", "banks/a"), None);
        assert!(!v.is_empty());
        assert_eq!(applying_to("institutions/a/branches/x"), ["/", "institutions/a", "institutions/a/branches/x"]);
    }
}
