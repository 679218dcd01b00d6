//! Reply lint (D-KB-3): finds in a draft reply the phrases that make a complaint worse —
//! banned phrases, negative wording out of context, blame, jargon, promises that cannot be
//! kept — and the elements a reply of its kind lacks, each with its character span and what to
//! say instead. The rules are versioned data (`data/lint/rules.toml`).

use serde::Deserialize;

const RULES: &str = include_str!("../../data/lint/rules.toml");

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// What a rule looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    BannedPhrase,
    NegativeWording,
    Blame,
    Jargon,
    OverPromise,
    MissingElement,
}

/// What a reply is, for the elements it must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    General,
    FirstResponse,
    DecisionNotice,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    pub severity: Severity,
    pub phrases: Vec<String>,
    #[serde(default)]
    pub except_within: Vec<String>,
    #[serde(default)]
    pub unless_followed_by: Vec<String>,
    #[serde(default)]
    pub reply_kinds: Vec<ReplyKind>,
    pub message: String,
    #[serde(default)]
    pub alternatives: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rules {
    pub version: String,
    pub rules: Vec<Rule>,
}

/// One thing the lint found: the rule, and where (characters `start..end` of the reply; for a
/// missing element, the end of the reply, where it would be added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: String,
    pub kind: RuleKind,
    pub severity: Severity,
    pub start: usize,
    pub end: usize,
    /// The reply's own text at the span (empty for a missing element).
    pub text: String,
    pub message: String,
    pub alternatives: Vec<String>,
}

/// Characters that end a sentence, for "followed by in the same sentence".
fn ends_sentence(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '!' | '?' | '；' | ';' | '\n')
}

/// Every start (in characters) of `needle` in `haystack`, left to right, not overlapping.
fn occurrences(haystack: &[char], needle: &[char]) -> Vec<usize> {
    let mut out = Vec::new();
    if needle.is_empty() || needle.len() > haystack.len() {
        return out;
    }
    let mut i = 0;
    while i + needle.len() <= haystack.len() {
        if haystack[i..i + needle.len()] == *needle {
            out.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

fn contains(haystack: &[char], needle: &str) -> bool {
    let needle: Vec<char> = needle.chars().collect();
    !occurrences(haystack, &needle).is_empty()
}

impl Rules {
    /// The shipped rules.
    pub fn shipped() -> anyhow::Result<Self> {
        let rules: Self = toml::from_str(RULES).map_err(|e| anyhow::anyhow!("lint rules: {e}"))?;
        for rule in &rules.rules {
            anyhow::ensure!(!rule.phrases.is_empty(), "lint rule {} has no phrases", rule.id);
            anyhow::ensure!(
                (rule.kind == RuleKind::MissingElement) != rule.reply_kinds.is_empty(),
                "lint rule {}: reply_kinds go with missing_element rules, and only with them",
                rule.id
            );
        }
        Ok(rules)
    }

    /// Lints `original`, whose characters `normalize` maps one for one to the form the rules
    /// are written in (simplified, half-width, lower-case). Findings are in reply order; where
    /// two would overlap, the more severe (then the longer) is kept.
    pub fn lint(&self, original: &str, kind: ReplyKind, normalize: impl Fn(char) -> char) -> Vec<Finding> {
        let chars: Vec<char> = original.chars().collect();
        let text: Vec<char> = chars.iter().map(|c| normalize(*c)).collect();
        let mut found: Vec<Finding> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.kind != RuleKind::MissingElement) {
            for phrase in &rule.phrases {
                let needle: Vec<char> = phrase.chars().collect();
                for start in occurrences(&text, &needle) {
                    let end = start + needle.len();
                    if excepted(&text, start, end, rule) {
                        continue;
                    }
                    found.push(finding(rule, start, end, chars[start..end].iter().collect()));
                }
            }
        }
        // The most severe, then the longest, of overlapping findings is kept.
        found.sort_by(|a, b| {
            b.severity.cmp(&a.severity).then((b.end - b.start).cmp(&(a.end - a.start))).then(a.start.cmp(&b.start))
        });
        let mut kept: Vec<Finding> = Vec::new();
        for f in found {
            if !kept.iter().any(|k| f.start < k.end && k.start < f.end) {
                kept.push(f);
            }
        }
        kept.sort_by(|a, b| a.start.cmp(&b.start).then(a.rule.cmp(&b.rule)));
        for rule in self.rules.iter().filter(|r| r.kind == RuleKind::MissingElement && r.reply_kinds.contains(&kind)) {
            if !rule.phrases.iter().any(|p| contains(&text, p)) {
                kept.push(finding(rule, chars.len(), chars.len(), String::new()));
            }
        }
        kept
    }
}

/// Whether the match at `start..end` is excused: it lies inside one of the rule's longer
/// harmless phrases, or the same sentence goes on to say what can be done.
fn excepted(text: &[char], start: usize, end: usize, rule: &Rule) -> bool {
    let within = rule.except_within.iter().any(|phrase| {
        let needle: Vec<char> = phrase.chars().collect();
        let from = start.saturating_sub(needle.len());
        let to = (end + needle.len()).min(text.len());
        occurrences(&text[from..to], &needle).iter().any(|&at| from + at <= start && from + at + needle.len() >= end)
    });
    if within {
        return true;
    }
    let sentence_end = text[end..].iter().position(|c| ends_sentence(*c)).map_or(text.len(), |p| end + p);
    rule.unless_followed_by.iter().any(|phrase| contains(&text[end..sentence_end], phrase))
}

fn finding(rule: &Rule, start: usize, end: usize, text: String) -> Finding {
    Finding {
        rule: rule.id.clone(),
        kind: rule.kind,
        severity: rule.severity,
        start,
        end,
        text,
        message: rule.message.clone(),
        alternatives: rule.alternatives.clone(),
    }
}

#[cfg(test)]
mod tests;
