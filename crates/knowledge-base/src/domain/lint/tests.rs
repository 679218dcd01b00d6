#![allow(clippy::unwrap_used)]

use serde::Deserialize;

use super::*;
use crate::search::text::Lexicon;

const REPLIES: &str = include_str!("../../../data/lint/replies.toml");

#[derive(Deserialize)]
struct Table {
    replies: Vec<Reply>,
    recommended: Vec<String>,
}

#[derive(Deserialize)]
struct Reply {
    kind: ReplyKind,
    text: String,
    findings: Vec<Expected>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Expected {
    rule: String,
    start: usize,
    end: usize,
    text: String,
}

#[test]
fn every_reply_of_the_table_gives_exactly_its_findings_and_spans() {
    let rules = Rules::shipped().unwrap();
    let lexicon = Lexicon::shipped().unwrap();
    let table: Table = toml::from_str(REPLIES).unwrap();
    assert!(table.replies.len() >= 40, "the table has {} replies", table.replies.len());
    let mut failures = Vec::new();
    for reply in &table.replies {
        let got: Vec<Expected> = rules
            .lint(&reply.text, reply.kind, |c| lexicon.normalize_char(c))
            .into_iter()
            .map(|f| Expected { rule: f.rule, start: f.start, end: f.end, text: f.text })
            .collect();
        if got != reply.findings {
            failures.push(format!("{}\n  expected {:?}\n  got      {:?}", reply.text, reply.findings, got));
        }
    }
    assert!(failures.is_empty(), "{} replies differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_seeds_recommended_phrasings_give_no_finding() {
    let rules = Rules::shipped().unwrap();
    let lexicon = Lexicon::shipped().unwrap();
    let table: Table = toml::from_str(REPLIES).unwrap();
    for text in &table.recommended {
        let findings = rules.lint(text, ReplyKind::General, |c| lexicon.normalize_char(c));
        assert!(findings.is_empty(), "{text}: {findings:?}");
    }
}

#[test]
fn a_finding_carries_its_severity_message_and_alternatives() {
    let rules = Rules::shipped().unwrap();
    let findings = rules.lint("您别着急", ReplyKind::General, |c| c);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Error);
    assert_eq!(findings[0].kind, RuleKind::BannedPhrase);
    assert!(findings[0].alternatives.contains(&"我理解您的着急".to_owned()));
    assert!(!rules.version.is_empty());
}
