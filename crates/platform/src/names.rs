//! Values parsed once at the API edge, so that nothing past it handles raw strings: an
//! organisation unit in its one canonical form, a request id, the id a resource name carries,
//! and the one table of text limits every service validates against.

use std::fmt;

use crate::error::Violations;

/// The organisation unit of the whole platform (every institution); principals only.
pub const ROOT_ORG_UNIT: &str = "/";
/// Longest organisation unit, in characters.
const MAX_ORG_UNIT: usize = 200;

/// An organisation unit (属地), e.g. `institutions/acme/branches/sh`: `institutions/{id}`
/// followed by any number of `{kind}/{id}` levels. Its canonical form is lower-case ASCII,
/// with no surrounding, doubled or trailing slashes; every accepted spelling parses to it, so
/// the same unit is always the same string in storage, in blind indexes and in scope checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgUnit(String);

impl OrgUnit {
    /// Parses a unit, recording a violation of `field` when it is not one.
    pub fn parse(v: &mut Violations, field: &str, value: &str) -> Option<Self> {
        match Self::try_from_str(value) {
            Ok(unit) => Some(unit),
            Err(why) => {
                v.add(field, why);
                None
            }
        }
    }

    /// The canonical unit of `value`, or why it is not one.
    pub fn try_from_str(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("required, e.g. institutions/acme/branches/sh".to_owned());
        }
        if value.chars().count() > MAX_ORG_UNIT {
            return Err(format!("at most {MAX_ORG_UNIT} characters"));
        }
        let segments: Vec<String> =
            value.split('/').filter(|s| !s.is_empty()).map(|s| s.to_ascii_lowercase()).collect();
        let well_formed = segments.first().is_some_and(|s| s == "institutions")
            && segments.len().is_multiple_of(2)
            && segments.iter().all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        if !well_formed {
            return Err(
                "must be institutions/{id} followed by {kind}/{id} levels, of letters, digits, '-', '_' or '.'"
                    .to_owned(),
            );
        }
        Ok(Self(segments.join("/")))
    }

    /// The institution the unit belongs to (`institutions/acme` of `institutions/acme/branches/sh`).
    pub fn institution(&self) -> OrgUnit {
        Self(self.0.splitn(3, '/').take(2).collect::<Vec<_>>().join("/"))
    }

    /// Whether this is an institution itself rather than a unit below one.
    pub fn is_institution(&self) -> bool {
        self.0.matches('/').count() == 1
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for OrgUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for OrgUnit {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The canonical form of a principal's organisation unit: the root, a unit, or empty (a
/// principal that covers nothing, such as a service acting on its own behalf).
pub fn canonical_principal_unit(value: &str) -> Result<String, String> {
    match value.trim() {
        "" => Ok(String::new()),
        ROOT_ORG_UNIT => Ok(ROOT_ORG_UNIT.to_owned()),
        other => OrgUnit::try_from_str(other).map(OrgUnit::into_string),
    }
}

/// Longest request id (AIP-155), in bytes.
const MAX_REQUEST_ID: usize = 128;

/// A caller's request id (AIP-155): a retry with the same id returns the first result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A request id that must be given.
    pub fn parse_required(v: &mut Violations, field: &str, value: &str) -> Option<Self> {
        if value.trim().is_empty() {
            v.add(field, "required (a unique id per logical request, reused on retries)");
            return None;
        }
        Self::parse_optional(v, field, value)
    }

    /// A request id that may be left empty (the call is then not deduplicated).
    pub fn parse_optional(v: &mut Violations, field: &str, value: &str) -> Option<Self> {
        if value.is_empty() {
            return None;
        }
        if value.len() > MAX_REQUEST_ID || value.chars().any(char::is_control) || value.trim() != value {
            v.add(field, format!("at most {MAX_REQUEST_ID} printable characters without surrounding spaces"));
            return None;
        }
        Some(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id in a resource name `{collection}/{id}` (ids are UUIDs), recording a violation of
/// `field` when `name` is not one of `collection`.
pub fn resource_id<'a>(v: &mut Violations, field: &str, name: &'a str, collection: &str) -> Option<&'a str> {
    let id = name
        .strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| uuid::Uuid::try_parse(id).is_ok());
    if id.is_none() {
        v.add(field, format!("must be {collection}/{{id}}"));
    }
    id
}

/// The kinds of free text the APIs take, with the one limit (in characters) each has
/// everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// A person's name.
    PersonName,
    /// Staff, department, institution and product names and ids; one line.
    Name,
    /// Short free text: a product, a branch, a phone extension.
    Short,
    /// A postal address.
    Address,
    /// Why something was done: a transfer, an override, a pause, an access to personal data.
    Reason,
    /// A notice to the complainant, a decision's text.
    Notice,
    /// Longer free text: a demand, grounds, notes.
    Long,
    /// The complainant's account of the facts (imported narratives run long).
    Facts,
    /// A URI or document reference.
    Uri,
}

impl Text {
    pub const fn max_chars(self) -> usize {
        match self {
            Self::PersonName => 100,
            Self::Name | Self::Short => 200,
            Self::Address => 500,
            Self::Reason | Self::Uri => 2_000,
            Self::Notice => 10_000,
            Self::Long => 20_000,
            Self::Facts => 200_000,
        }
    }

    fn one_line(self) -> bool {
        matches!(self, Self::PersonName | Self::Name | Self::Uri)
    }

    /// Records what is wrong with `value` as text of this kind in `field`: missing when
    /// `required`, too long, control characters, or line breaks in one-line text.
    pub fn check(self, v: &mut Violations, field: &str, value: &str, required: bool) {
        if value.trim().is_empty() {
            if required {
                v.add(field, "required");
            }
            return;
        }
        let (len, max) = (value.chars().count(), self.max_chars());
        if len > max {
            v.add(field, format!("at most {max} characters, got {len}"));
        }
        if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
            v.add(field, "must not contain control characters");
        } else if self.one_line() && value.contains(['\n', '\r', '\t']) {
            v.add(field, "must be one line");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_unit_is_one_canonical_unit() {
        for spelling in [
            "institutions/acme/branches/sh",
            " Institutions/ACME/branches/sh ",
            "/institutions/acme/branches/sh/",
            "institutions//acme/branches//sh",
        ] {
            assert_eq!(
                OrgUnit::try_from_str(spelling).unwrap().as_str(),
                "institutions/acme/branches/sh",
                "{spelling}"
            );
        }
        let unit = OrgUnit::try_from_str("institutions/acme/branches/sh").unwrap();
        assert_eq!(unit.institution().as_str(), "institutions/acme");
        assert!(!unit.is_institution() && unit.institution().is_institution());
    }

    #[test]
    fn what_is_not_a_unit_is_refused() {
        for bad in
            ["", "/", "acme", "institutions", "institutions/acme/branches", "banks/acme", "institutions/示例银行"]
        {
            assert!(OrgUnit::try_from_str(bad).is_err(), "{bad:?}");
        }
        assert_eq!(canonical_principal_unit("/").unwrap(), "/");
        assert_eq!(canonical_principal_unit("").unwrap(), "");
        assert!(canonical_principal_unit("institutions").is_err());
    }

    #[test]
    fn request_ids_and_resource_names_are_checked_once() {
        let mut v = Violations::new();
        assert!(RequestId::parse_required(&mut v, "request_id", "").is_none());
        assert!(RequestId::parse_optional(&mut v, "request_id", "").is_none());
        assert!(RequestId::parse_optional(&mut v, "request_id", " padded").is_none());
        assert!(RequestId::parse_optional(&mut v, "request_id", &"x".repeat(129)).is_none());
        assert_eq!(RequestId::parse_optional(&mut v, "request_id", "r-1").unwrap().as_str(), "r-1");
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(resource_id(&mut v, "name", &format!("cases/{id}"), "cases"), Some(id.as_str()));
        assert_eq!(resource_id(&mut v, "name", &format!("complaints/{id}"), "cases"), None);
        assert_eq!(resource_id(&mut v, "name", "cases/not-a-uuid", "cases"), None);
        assert!(!v.is_empty());
    }

    #[test]
    fn one_table_of_text_limits() {
        let mut v = Violations::new();
        Text::Reason.check(&mut v, "reason", &"理".repeat(2_000), true);
        assert!(v.is_empty(), "2,000 characters of reason are fine everywhere");
        Text::Reason.check(&mut v, "reason", &"理".repeat(2_001), true);
        Text::Name.check(&mut v, "assignee", "a\nb", true);
        Text::Long.check(&mut v, "notes", "bell\u{7}", false);
        Text::Long.check(&mut v, "notes", "  ", true);
        assert_eq!(v.into_result().unwrap_err().to_string().matches(';').count(), 3, "four violations");
    }
}
