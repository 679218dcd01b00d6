//! Configuration from an optional TOML file overlaid by `REDRESS_*` environment variables
//! (12-factor). Nested keys use a double underscore: `REDRESS_DATABASE__URL` sets `database.url`.
//!
//! Environment variable names are case-insensitive and lowercased into keys, key ids included:
//! `REDRESS_PII__MASTER_KEYS__K1` sets the key with id `k1`. So that a configuration file and the
//! environment name the same keys, key ids are lower case everywhere: an upper-case key id in a
//! table of keys (`keys`, `master_keys`, `access_log_keys`, …) or in an `…active_key_id` is
//! refused, naming the setting.

use std::path::Path;

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Loads `T` from its defaults, then `file` (if given), then the environment.
pub fn load<T>(file: Option<&Path>) -> anyhow::Result<T>
where
    T: DeserializeOwned + Serialize + Default,
{
    load_with(file, &[])
}

/// As [`load`], with `defaults` (dotted key, value) overriding `T`'s own defaults, under the file
/// and the environment: a mode's defaults, such as the listen port of `redress serve`.
pub fn load_with<T>(file: Option<&Path>, defaults: &[(&str, &str)]) -> anyhow::Result<T>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    for (key, value) in defaults {
        figment = figment.merge(Serialized::default(key, value));
    }
    let figment = figment.merge(given(file)?);
    check_key_ids(&figment)?;
    figment.extract().context("invalid configuration")
}

/// Whether `key` (dotted, e.g. `database.url`) is set by `file` or the environment rather than
/// left to a default.
pub fn is_given(file: Option<&Path>, key: &str) -> anyhow::Result<bool> {
    Ok(given(file)?.find_value(key).is_ok_and(|v| v.as_str().is_none_or(|s| !s.trim().is_empty())))
}

/// What the operator gives: `file` (if any), overlaid by the environment.
fn given(file: Option<&Path>) -> anyhow::Result<Figment> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        anyhow::ensure!(file.exists(), "config file {} does not exist", file.display());
        figment = figment.merge(Toml::file(file));
    }
    Ok(figment.merge(Env::prefixed("REDRESS_").split("__")))
}

/// Refuses upper-case key ids (see the module documentation).
fn check_key_ids(figment: &Figment) -> anyhow::Result<()> {
    let data = figment.data().context("invalid configuration")?;
    for dict in data.values() {
        check_dict(dict, "")?;
    }
    Ok(())
}

fn check_dict(dict: &Dict, path: &str) -> anyhow::Result<()> {
    for (key, value) in dict {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let is_key_table = key == "keys" || key.ends_with("_keys");
        match value {
            Value::Dict(_, entries) if is_key_table => {
                for id in entries.keys() {
                    ensure_lower_case(&format!("{here}.{id}"), id)?;
                }
            }
            Value::Dict(_, entries) => check_dict(entries, &here)?,
            Value::String(_, id) if key.ends_with("active_key_id") => ensure_lower_case(&here, id)?,
            _ => {}
        }
    }
    Ok(())
}

fn ensure_lower_case(setting: &str, id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !id.chars().any(char::is_uppercase),
        "{setting}: key id {id:?} must be lower case (write {lower:?}); environment variable names \
         are lowercased, so REDRESS_…__{upper} names key id {lower:?} too",
        lower = id.to_lowercase(),
        upper = id.to_uppercase(),
    );
    Ok(())
}

/// A secret value: usable by code, never printed by `Debug` or serialized back out in clear.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(<empty>)" } else { "Secret(<redacted>)" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Defaults are serialized to seed figment; a real secret never is.
        s.serialize_str("")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(toml: &str) -> anyhow::Result<()> {
        check_key_ids(&Figment::from(Toml::string(toml)))
    }

    #[test]
    fn lower_case_key_ids_are_accepted() {
        check("[pii]\nactive_key_id = \"k2\"\nmaster_keys = { k1 = \"a\", k2 = \"b\" }\n[audit.keys]\nk1 = \"c\"")
            .unwrap();
    }

    #[test]
    fn an_upper_case_key_id_in_a_table_of_keys_is_refused_naming_the_setting() {
        for toml in ["[audit.keys]\nK1 = \"c\"", "[pii.master_keys]\nKey2 = \"a\"", "[pii.access_log_keys]\nL1 = \"a\""]
        {
            let e = check(toml).unwrap_err().to_string();
            assert!(e.contains("must be lower case"), "{e}");
        }
        let e = check("[pii.master_keys]\nK1 = \"a\"").unwrap_err().to_string();
        assert!(e.contains("pii.master_keys.K1") && e.contains("\"k1\""), "{e}");
    }

    #[test]
    fn an_upper_case_active_key_id_is_refused_naming_the_setting() {
        let e = check("[audit]\nactive_key_id = \"K1\"").unwrap_err().to_string();
        assert!(e.contains("audit.active_key_id"), "{e}");
        let e = check("[pii]\naccess_log_active_key_id = \"L1\"").unwrap_err().to_string();
        assert!(e.contains("pii.access_log_active_key_id"), "{e}");
    }

    /// A list in the environment is written as the configuration reference shows it, quoted
    /// items in brackets (`REDRESS_CORS_ALLOWED_ORIGINS='["https://app.example"]'`).
    #[test]
    fn a_list_of_urls_in_the_environment_reads_as_documented() {
        let value: Value = r#"["https://app.example", "http://localhost:8080"]"#.parse().unwrap();
        let origins: Vec<String> = value.deserialize().unwrap();
        assert_eq!(origins, ["https://app.example", "http://localhost:8080"]);
    }

    #[test]
    fn other_tables_keep_their_keys_as_written() {
        check("[workflow.institutions.\"institutions/Demo\"]\nblock_banned_phrases = true\n[auth.roles]\nHandler = []")
            .unwrap();
    }
}
