//! Readable names of the classification codes of the shipped taxonomies (intake's data files,
//! the one source of them), for labels in breakdowns and reports. Codes of an institution's
//! own taxonomy show as their codes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

const BANKING: &str = include_str!("../../../intake/data/taxonomy/banking.toml");
const GENERAL: &str = include_str!("../../../intake/data/taxonomy/general.toml");

#[derive(serde::Deserialize, Default)]
struct File {
    #[serde(default)]
    business_types: Vec<Code>,
    #[serde(default)]
    causes: Vec<Code>,
    #[serde(default)]
    rights: Vec<Code>,
}

#[derive(serde::Deserialize)]
struct Code {
    code: String,
    name: String,
}

/// The codes of one shipped taxonomy by kind.
#[derive(Default)]
pub struct Names {
    pub business_types: BTreeMap<String, String>,
    pub causes: BTreeMap<String, String>,
    pub rights: BTreeMap<String, String>,
}

fn parse(text: &str) -> Names {
    // The files ship with the binary and are tested to parse; an unreadable one only loses labels.
    let file: File = toml::from_str(text).unwrap_or_default();
    let map = |codes: Vec<Code>| codes.into_iter().map(|c| (c.code, c.name)).collect();
    Names { business_types: map(file.business_types), causes: map(file.causes), rights: map(file.rights) }
}

/// The banking taxonomy's names (JR/T 0169 dimensions B and C, and the eight rights).
pub fn banking() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| parse(BANKING))
}

/// The general-enterprise taxonomy's names.
pub fn general() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| parse(GENERAL))
}

/// The name of a code in the banking taxonomy, else the general one.
pub fn label(code: &str) -> Option<&'static str> {
    [banking(), general()]
        .into_iter()
        .find_map(|names| {
            names.business_types.get(code).or_else(|| names.causes.get(code)).or_else(|| names.rights.get(code))
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_taxonomies_parse() {
        assert_eq!(banking().business_types.get("B02").map(String::as_str), Some("信用卡"));
        assert!(banking().causes.len() >= 10);
        assert_eq!(label("G01"), Some("商品质量"));
        assert_eq!(label("Z42"), None);
    }
}
