//! The Grafana dashboards shipped in `deploy/grafana/` are valid JSON, every panel has a query,
//! and every metric a query names is one quality-metrics exports.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

/// PromQL words that are not metric names.
const PROMQL: &[&str] = &[
    "sum",
    "by",
    "without",
    "count",
    "rate",
    "increase",
    "topk",
    "bottomk",
    "avg",
    "max",
    "min",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "label_values",
];

/// The metric names in a PromQL expression: what is left once strings, label matchers
/// `{...}`, range selectors `[...]` and the label lists of `by`/`without`/`on`/`ignoring` are
/// taken out, minus functions (followed by `(`), keywords and numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Strings, matchers and ranges out.
    let mut plain = String::new();
    let (mut depth, mut in_string) = (0, false);
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
        if depth > 0 || in_string {
            continue;
        }
    }
    // Tokens: identifiers and single punctuation.
    let mut tokens: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in plain.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            word.push(c);
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        if matches!(t, "by" | "without" | "on" | "ignoring" | "group_left" | "group_right") {
            // Skip the label list that follows.
            if tokens.get(i + 1).map(String::as_str) == Some("(") {
                while i < tokens.len() && tokens[i] != ")" {
                    i += 1;
                }
            }
        } else if t.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && tokens.get(i + 1).map(String::as_str) != Some("(")
            && !PROMQL.contains(&t)
        {
            names.insert(t.to_owned());
        }
        i += 1;
    }
    names
}

fn panels(value: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    for panel in value["panels"].as_array().into_iter().flatten() {
        out.push(panel.clone());
        panels(panel, out);
    }
}

#[test]
fn promql_metric_names_are_found() {
    let names =
        metric_names(r#"sum by (value) (redress_quality_received_month_to_date{dimension="channel", value!=""})"#);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["redress_quality_received_month_to_date"]);
    let names =
        metric_names(r#"count by (institution) (redress_quality_kpi_meets_target{institution=~"$institution"} == 0)"#);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["redress_quality_kpi_meets_target"]);
    let names = metric_names(r#"rate(redress_consumer_failures_total{consumer=~"q.*"}[5m])"#);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["redress_consumer_failures_total"]);
    assert_eq!(metric_names("up").into_iter().collect::<Vec<_>>(), ["up"]);
}

#[test]
fn every_dashboard_panel_queries_an_exported_metric() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana");
    let exported: BTreeSet<&str> = redress_quality_metrics::gauges::EXPORTED.iter().copied().collect();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        dashboards += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        assert!(dashboard["title"].is_string() && dashboard["uid"].is_string(), "{}", path.display());
        let mut all = Vec::new();
        panels(&dashboard, &mut all);
        let queried: Vec<&serde_json::Value> = all.iter().filter(|p| p["type"] != "row").collect();
        assert!(!queried.is_empty(), "{} has no panels", path.display());
        for panel in queried {
            let title = panel["title"].as_str().unwrap_or_default();
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{}: panel {title:?} has no query", path.display());
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                let names = metric_names(expr);
                assert!(!names.is_empty(), "{}: panel {title:?} queries no metric: {expr}", path.display());
                for name in names {
                    assert!(
                        exported.contains(name.as_str()),
                        "{}: panel {title:?} queries {name}, which nothing exports",
                        path.display()
                    );
                }
            }
        }
        // The template variable lists institutions from an exported metric too.
        for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(query) = variable["query"].as_str().filter(|q| q.starts_with("label_values(")) {
                let metric = query.trim_start_matches("label_values(").split(',').next().unwrap_or_default().trim();
                assert!(exported.contains(metric), "{}: variable queries {metric}", path.display());
            }
        }
    }
    assert!(dashboards >= 1, "no dashboard in {}", dir.display());
}
