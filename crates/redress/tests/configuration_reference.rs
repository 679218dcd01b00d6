//! docs/CONFIGURATION.md names every setting of every service in production mode: each key of
//! each service's configuration (as its defaults serialize) appears in the service's section.
#![allow(clippy::unwrap_used)]

use serde_json::Value;

/// Every leaf key of `value`, dotted, with its default as JSON.
fn leaves(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (key, value) in fields {
                let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                leaves(value, &here, out);
            }
        }
        other => out.push((path.to_owned(), other.to_string())),
    }
}

fn settings<T: serde::Serialize + Default>() -> Vec<(String, String)> {
    let mut out = Vec::new();
    leaves(&serde_json::to_value(T::default()).unwrap(), "", &mut out);
    out
}

fn all() -> Vec<(&'static str, Vec<(String, String)>)> {
    vec![
        ("gateway", settings::<redress_gateway::GatewayConfig>()),
        ("intake", settings::<redress_intake::IntakeConfig>()),
        ("case-workflow", settings::<redress_case_workflow::CaseWorkflowConfig>()),
        ("quality-metrics", settings::<redress_quality_metrics::QualityMetricsConfig>()),
        ("escalation", settings::<redress_escalation::EscalationConfig>()),
        ("knowledge-base", settings::<redress_knowledge_base::KnowledgeConfig>()),
    ]
}

fn reference() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIGURATION.md")).unwrap()
}

/// Whether the reference names `key`: as itself, or as a map of it or of a table above it
/// (`auth.roles.<role>` names `auth.roles.handler`).
fn names(doc: &str, key: &str) -> bool {
    if doc.contains(&format!("`{key}`")) {
        return true;
    }
    let segments: Vec<_> = key.split('.').collect();
    (1..=segments.len()).any(|n| doc.contains(&format!("`{}.<", segments[..n].join("."))))
}

#[test]
fn every_setting_of_every_service_is_in_the_reference() {
    let doc = reference();
    let mut missing = Vec::new();
    for (service, keys) in all() {
        assert!(doc.contains(&format!("`redress serve {service}`")), "no section for {service}");
        for (key, default) in keys {
            if !names(&doc, &key) {
                missing.push(format!("{service}: {key} (default {default})"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/CONFIGURATION.md does not name:\n{}", missing.join("\n"));
}

/// Each row's environment variable is its setting's: `REDRESS_`, then the dotted path in upper
/// case with `__` between the parts.
#[test]
fn every_row_names_the_environment_variable_of_its_setting() {
    let doc = reference();
    let mut rows = 0;
    for line in doc.lines() {
        let cells: Vec<_> = line.split(" | ").collect();
        if cells.len() < 4 || !cells[1].starts_with("`REDRESS_") {
            continue;
        }
        let key = cells[0].trim_start_matches("| ").trim_matches('`');
        let expected = format!("`REDRESS_{}`", key.replace('.', "__").to_uppercase());
        assert_eq!(cells[1], expected, "{line}");
        rows += 1;
    }
    assert!(rows > 50, "the tables were read ({rows} rows)");
}

/// And no row names a setting no service has (a renamed or removed one).
#[test]
fn every_setting_in_the_reference_exists() {
    let doc = reference();
    let keys: Vec<String> = all().into_iter().flat_map(|(_, keys)| keys.into_iter().map(|(k, _)| k)).collect();
    let mut unknown = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let setting = line[3..].split('`').next().unwrap();
        if !setting.contains('.') && !setting.contains('_') {
            continue; // a claim, permission or role, not a setting
        }
        let known = match setting.split_once(".<") {
            Some((map, _)) => keys.iter().any(|k| k == map || k.starts_with(&format!("{map}."))),
            None => keys.iter().any(|k| k == setting || k.starts_with(&format!("{setting}."))),
        };
        if !known && line.split(" | ").nth(1).is_some_and(|env| env.starts_with("`REDRESS_") || env == "file only") {
            unknown.push(setting.to_owned());
        }
    }
    assert!(unknown.is_empty(), "docs/CONFIGURATION.md names settings no service has: {unknown:?}");
}

#[test]
fn the_permissions_and_the_default_role_set_are_those_of_the_gateway() {
    let doc = reference();
    for permission in redress_platform::principal::Permission::ALL {
        assert!(doc.contains(&format!("| `{}` |", permission.as_str())), "{} is not listed", permission.as_str());
    }
    for (role, permissions) in redress_gateway::default_roles() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{role}` | `")))
            .unwrap_or_else(|| panic!("no row for the role {role}"));
        let listed: std::collections::BTreeSet<_> = row
            .trim_end_matches(" |")
            .split(" | ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|p| p.trim_matches('`').to_owned())
            .collect();
        let expected: std::collections::BTreeSet<_> = permissions.into_iter().collect();
        assert_eq!(listed, expected, "role {role}");
    }
}

#[test]
fn the_ports_are_those_serve_mode_listens_on() {
    let doc = reference();
    for service in redress::serve::Service::ALL {
        let row = format!("| {} | `{}` |", service.name(), service.default_listen_addr());
        assert!(doc.contains(&row), "{row}");
    }
}
