//! Detection quality of personal information in free text, over realistic complaint sentences
//! (tests/data/free_text_pii.txt): every marked identifier is found with its kind and exact
//! span, and nothing else is, amounts, dates, complaint numbers and references failing their
//! checksums included. Prints precision and recall.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use redress_platform::free_text_pii::{self, PiiKind};

const DATA: &str = include_str!("data/free_text_pii.txt");

/// A sentence without its marks, and the identifiers they marked (kind, byte range).
fn parse(line: &str) -> (String, HashSet<(PiiKind, usize, usize)>) {
    let mut text = String::new();
    let mut expected = HashSet::new();
    let mut rest = line;
    while let Some(open) = rest.find('⟦') {
        text.push_str(&rest[..open]);
        let inner = &rest[open + '⟦'.len_utf8()..];
        let close = inner.find('⟧').unwrap_or_else(|| panic!("unclosed mark in {line}"));
        let (kind, value) = inner[..close].split_once('|').unwrap_or_else(|| panic!("mark without kind in {line}"));
        let kind = PiiKind::parse(kind).unwrap_or_else(|| panic!("unknown kind {kind:?} in {line}"));
        expected.insert((kind, text.len(), text.len() + value.len()));
        text.push_str(value);
        rest = &inner[close + '⟧'.len_utf8()..];
    }
    text.push_str(rest);
    (text, expected)
}

#[test]
fn every_marked_identifier_and_nothing_else_is_found() {
    let lines: Vec<&str> = DATA.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).collect();
    assert!(lines.len() >= 200, "{} sentences", lines.len());
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let (mut with, mut without) = (0, 0);
    let mut failures = Vec::new();
    for line in &lines {
        let (text, expected) = parse(line);
        if expected.is_empty() {
            without += 1
        } else {
            with += 1
        }
        let found: HashSet<(PiiKind, usize, usize)> =
            free_text_pii::find(&text).into_iter().map(|f| (f.kind, f.range.start, f.range.end)).collect();
        let hits = found.intersection(&expected).count();
        tp += hits;
        fp += found.len() - hits;
        fn_ += expected.len() - hits;
        if found != expected {
            let show = |set: &HashSet<(PiiKind, usize, usize)>| {
                let mut v: Vec<String> =
                    set.iter().map(|(k, s, e)| format!("{}:{}", k.as_str(), &text[*s..*e])).collect();
                v.sort();
                v
            };
            failures.push(format!("{text}\n  expected {:?}\n  found    {:?}", show(&expected), show(&found)));
        }
        // Masked, no identifier is left to find, and masking again changes nothing.
        let masked = free_text_pii::mask(&text);
        assert!(free_text_pii::find(&masked).is_empty(), "{masked}");
        assert_eq!(free_text_pii::mask(&masked), masked);
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    println!(
        "{} sentences ({with} with identifiers, {without} without): {tp} found, {fp} false, {fn_} missed; \
         precision {precision:.4}, recall {recall:.4}",
        lines.len()
    );
    assert!(with >= 100 && without >= 100, "both kinds of sentence are represented");
    assert!(failures.is_empty(), "{} sentences not as marked:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn masks_leave_only_the_kept_digits() {
    let text = "本人手机13812345678，身份证11010519491231002X，卡号6222 0202 0011 2233 446，座机010-62345678";
    let masked = free_text_pii::mask(text);
    assert_eq!(masked, "本人手机138****5678，身份证1****************X，卡号6222 **** **** ***3 446，座机010-****5678");
}
