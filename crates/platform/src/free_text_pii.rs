//! Personal information inside free text (D-PII-5): resident identity numbers, mainland mobile
//! and landline numbers, bank-card numbers and e-mail addresses written into a complaint's
//! facts, a note or a decision. [`find`] says where they are, [`mask`] rewrites them the way
//! structured personal fields are masked (a few leading and trailing digits kept).
//!
//! Numbers are found by their structure and checksums, not by their length alone, so that the
//! numbers a complaint is full of stay readable: amounts (`12000.00元`, `1,200,000`), dates
//! (`2026-12-03`, `20261203`), times, percentages, complaint and case numbers
//! (`YYYYMMDD` + sequence), policy and transaction references that fail the Luhn check, and
//! codes glued to letters (`TX20261203…`, `P-…`). A digit run is split into groups at single
//! spaces or dashes (`138 1234 5678`, `6222-0202-…`); an identifier is a run of consecutive
//! groups that passes one of the checks, longest first:
//!
//! * resident identity number: 18 characters, a real birth date, ISO 7064 MOD 11-2 check
//!   character (digit or `X`);
//! * bank card: 13–19 digits, an issuer prefix cards use (3, 4, 5, 6, 8, 9 or 2221–2720), Luhn;
//! * mobile: `1[3-9]` + 9 digits, optionally after `+86`/`86`;
//! * landline: a 3-digit (`010`, `02x`) or 4-digit (`0[3-9]xx`) area code and an 8-digit (or,
//!   after a 4-digit code, 7-digit) local number not starting with 0;
//! * e-mail: `local@domain.tld`.
//!
//! Written by hand rather than with regular expressions: the decisions are about neighbouring
//! characters and checksums, which a pattern language without look-around cannot express.
//! ASCII and full-width digits are both read.

use std::borrow::Cow;
use std::ops::Range;

/// What kind of identifier a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    ResidentId,
    Mobile,
    Landline,
    BankCard,
    Email,
}

impl PiiKind {
    /// The kind's name in test data and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResidentId => "id",
            Self::Mobile => "mobile",
            Self::Landline => "landline",
            Self::BankCard => "card",
            Self::Email => "email",
        }
    }

    /// The kind named `name` (see [`PiiKind::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::ResidentId, Self::Mobile, Self::Landline, Self::BankCard, Self::Email]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// An identifier found in a text: its kind and its byte range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finding {
    pub kind: PiiKind,
    pub range: Range<usize>,
}

/// Every identifier in `text`, in order, none overlapping.
pub fn find(text: &str) -> Vec<Finding> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut found = emails(text, &chars);
    let numbers: Vec<Finding> =
        numbers(text, &chars).into_iter().filter(|n| !found.iter().any(|e| overlaps(&e.range, &n.range))).collect();
    found.extend(numbers);
    found.sort_by_key(|f| f.range.start);
    found
}

/// Whether `text` holds any identifier.
pub fn contains(text: &str) -> bool {
    !find(text).is_empty()
}

/// `text` with every identifier masked: digits replaced by `*` except the first and last few
/// (ID number 1 and 1, phone 3 and 4, card 4 and 4), separators kept; an e-mail address keeps
/// the first character of its local part and its domain. Borrowed when there is nothing to
/// mask. Masking masked text changes nothing.
pub fn mask(text: &str) -> Cow<'_, str> {
    let found = find(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.range.start]);
        out.push_str(&masked(f.kind, &text[f.range.clone()]));
        at = f.range.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Masks `text` in place; whether it changed.
pub fn mask_in_place(text: &mut String) -> bool {
    match mask(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(masked) => {
            *text = masked;
            true
        }
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The masked form of one identifier.
fn masked(kind: PiiKind, value: &str) -> String {
    match kind {
        PiiKind::Email => {
            let (user, domain) = value.split_once('@').unwrap_or((value, ""));
            let mut chars = user.chars();
            let first = chars.next().map(String::from).unwrap_or_default();
            format!("{first}{}@{domain}", "*".repeat(chars.count()))
        }
        PiiKind::ResidentId => keep_digits(value, 1, 1, 0),
        PiiKind::Mobile => {
            // The country code is not the person's: kept, then the number masked as 3 + 4.
            let digits = value.chars().filter(|c| digit(*c).is_some() || matches!(c, 'X' | 'x')).count();
            keep_digits(value, 3, 4, digits.saturating_sub(11))
        }
        PiiKind::Landline => keep_digits(value, 3, 4, 0),
        PiiKind::BankCard => keep_digits(value, 4, 4, 0),
    }
}

/// Replaces the digits (and a check `X`) of `value` with `*`, except `skip` leading ones (a
/// country code) and then `head` leading and `tail` trailing ones.
fn keep_digits(value: &str, head: usize, tail: usize, skip: usize) -> String {
    let is_digit = |c: char| digit(c).is_some() || matches!(c, 'X' | 'x');
    let total = value.chars().filter(|c| is_digit(*c)).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !is_digit(c) {
                return c;
            }
            seen += 1;
            let k = seen - 1;
            if k < skip + head || k >= total.saturating_sub(tail) { c } else { '*' }
        })
        .collect()
}

/// The value of an ASCII or full-width digit.
fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        _ => None,
    }
}

/// A character that may stand between the digit groups of one number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\u{a0}' | '\u{3000}' | '－')
}

/// A character that, touching a digit run, makes it part of a code (`TX2026…`, `P-123`).
fn is_code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

// ---- e-mail addresses -------------------------------------------------------------------

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-')
}

fn emails(text: &str, chars: &[(usize, char)]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for (i, &(at, c)) in chars.iter().enumerate() {
        if c != '@' || out.last().is_some_and(|f| f.range.end > at) {
            continue;
        }
        let mut start = i;
        while start > 0 && is_local_char(chars[start - 1].1) {
            start -= 1;
        }
        // A local part does not start with a dot.
        while start < i && chars[start].1 == '.' {
            start += 1;
        }
        let mut end = i + 1;
        while end < chars.len() && is_domain_char(chars[end].1) {
            end += 1;
        }
        // A sentence's full stop or a dash after the address is not part of it.
        while end > i + 1 && matches!(chars[end - 1].1, '.' | '-') {
            end -= 1;
        }
        if start == i || end == i + 1 {
            continue;
        }
        let domain = &text[at + 1..chars.get(end).map_or(text.len(), |c| c.0)];
        let labels: Vec<&str> = domain.split('.').collect();
        let tld = labels.last().copied().unwrap_or_default();
        let well_formed = labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
            && tld.len() >= 2
            && tld.chars().all(|c| c.is_ascii_alphabetic());
        if well_formed {
            let range = chars[start].0..chars.get(end).map_or(text.len(), |c| c.0);
            out.push(Finding { kind: PiiKind::Email, range });
        }
    }
    out
}

// ---- numbers ----------------------------------------------------------------------------

/// One group of consecutive digits in a run.
#[derive(Debug)]
struct Group {
    /// Byte range in the text.
    range: Range<usize>,
    digits: Vec<u8>,
}

/// A run of digit groups with single separators between them, as found in the text.
struct Run {
    groups: Vec<Group>,
    /// Byte range of a `+` right before the run (`+86 …`).
    plus: Option<Range<usize>>,
    /// Byte range of an `X`/`x` right after the last group (an ID number's check character).
    check_x: Option<Range<usize>>,
    /// The first (last) group touches a code: no identifier may include it.
    glued_start: bool,
    glued_end: bool,
}

fn numbers(text: &str, chars: &[(usize, char)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if digit(chars[i].1).is_none() {
            i += 1;
            continue;
        }
        let (run, next) = run_at(text, chars, i);
        i = next;
        if let Some(run) = run {
            out.extend(identifiers_in(&run));
        }
    }
    out
}

/// The run starting at the digit `chars[start]`, and where scanning goes on; `None` for a
/// number that is an amount or a decimal (a `.` or thousands `,` between digits).
fn run_at(text: &str, chars: &[(usize, char)], start: usize) -> (Option<Run>, usize) {
    let end_of = |k: usize| chars.get(k).map_or(text.len(), |c| c.0);
    let mut groups = Vec::new();
    let mut k = start;
    let mut amount = false;
    loop {
        let group_start = k;
        let mut digits = Vec::new();
        while let Some(d) = chars.get(k).and_then(|c| digit(c.1)) {
            digits.push(d);
            k += 1;
        }
        groups.push(Group { range: chars[group_start].0..end_of(k), digits });
        let next_is_digit = |at: usize| chars.get(at).is_some_and(|c| digit(c.1).is_some());
        match chars.get(k).map(|c| c.1) {
            Some(c) if is_separator(c) && next_is_digit(k + 1) => k += 1,
            // 12000.00, 3.5%: a decimal.
            Some('.' | '．') if next_is_digit(k + 1) => {
                amount = true;
                k += 1;
            }
            // 1,200,000: a thousands separator is followed by exactly three digits.
            Some(',') if next_is_digit(k + 1) => {
                let three = (1..=3).all(|n| next_is_digit(k + n)) && !next_is_digit(k + 4);
                if three {
                    amount = true;
                    k += 1;
                } else {
                    break;
                }
            }
            _ => break,
        }
    }
    if amount {
        return (None, k);
    }
    let before = start.checked_sub(1).map(|p| chars[p].1);
    let before2 = start.checked_sub(2).map(|p| chars[p].1);
    let plus = (before == Some('+') || before == Some('＋')).then(|| chars[start - 1].0..chars[start].0);
    // Touching letters, or joined to them by a dash, slash, dot or underscore: part of a code.
    let joined = |c: Option<char>| c.is_some_and(|c| matches!(c, '-' | '_' | '/' | '.' | '#'));
    let glued_start = before.is_some_and(is_code_char) || (joined(before) && before2.is_some_and(is_code_char));
    let mut check_x = None;
    let mut after = k;
    if matches!(chars.get(k).map(|c| c.1), Some('X' | 'x')) && !chars.get(k + 1).is_some_and(|c| is_code_char(c.1)) {
        check_x = Some(chars[k].0..end_of(k + 1));
        after = k + 1;
    }
    let a1 = chars.get(after).map(|c| c.1);
    let a2 = chars.get(after + 1).map(|c| c.1);
    let glued_end = a1.is_some_and(is_code_char) || (joined(a1) && a2.is_some_and(|c| c.is_ascii_alphabetic()));
    (Some(Run { groups, plus, check_x, glued_start, glued_end }), k)
}

/// The identifiers of a run: from each group on, the longest run of groups that is one.
fn identifiers_in(run: &Run) -> Vec<Finding> {
    let n = run.groups.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if i == 0 && run.glued_start {
            i += 1;
            continue;
        }
        // The groups from i that hold at most 19 digits together (no identifier is longer):
        // found walking up, so a long run of short groups costs linear time, not cubic.
        let mut reach = i;
        let mut count = 0;
        while reach < n && count + run.groups[reach].digits.len() <= 19 {
            count += run.groups[reach].digits.len();
            reach += 1;
        }
        let mut matched = None;
        for j in (i..reach).rev() {
            let last = j == n - 1;
            if last && run.glued_end && run.check_x.is_none() {
                continue;
            }
            let digits: Vec<u8> = run.groups[i..=j].iter().flat_map(|g| g.digits.iter().copied()).collect();
            let x = if last { run.check_x.clone() } else { None };
            if let Some(found) = identify(run, i, j, &digits, x) {
                matched = Some((j, found));
                break;
            }
        }
        match matched {
            Some((j, found)) => {
                out.push(found);
                i = j + 1;
            }
            None => i += 1,
        }
    }
    out
}

/// What the groups `i..=j` of `run` (their `digits`, and a check `X` after them) are.
fn identify(run: &Run, i: usize, j: usize, digits: &[u8], x: Option<Range<usize>>) -> Option<Finding> {
    let start = run.groups[i].range.start;
    let end = run.groups[j].range.end;
    if let Some(x) = x {
        // Followed by a letter X: only an ID number may end here.
        return (digits.len() == 17 && is_resident_id(digits, true))
            .then_some(Finding { kind: PiiKind::ResidentId, range: start..x.end });
    }
    if digits.len() == 18 && is_resident_id(&digits[..17], false) && check_char(&digits[..17]) == Some(digits[17]) {
        return Some(Finding { kind: PiiKind::ResidentId, range: start..end });
    }
    // +86 / 86 then a mobile number.
    if digits.len() == 13 && digits.starts_with(&[8, 6]) && is_mobile(&digits[2..]) {
        let start = match (&run.plus, i) {
            (Some(plus), 0) => plus.start,
            _ => start,
        };
        return Some(Finding { kind: PiiKind::Mobile, range: start..end });
    }
    if digits.len() == 11 && is_mobile(digits) {
        return Some(Finding { kind: PiiKind::Mobile, range: start..end });
    }
    if is_landline(digits, run.groups[i].digits.len(), j > i) {
        return Some(Finding { kind: PiiKind::Landline, range: start..end });
    }
    if is_bank_card(digits) {
        return Some(Finding { kind: PiiKind::BankCard, range: start..end });
    }
    None
}

fn is_mobile(digits: &[u8]) -> bool {
    digits.len() == 11 && digits[0] == 1 && (3..=9).contains(&digits[1])
}

/// A landline number: area code and local number, `first_group` digits before the first
/// separator (when `grouped`), which must be the area code.
fn is_landline(digits: &[u8], first_group: usize, grouped: bool) -> bool {
    if digits.len() < 10 || digits[0] != 0 || digits[1] == 0 {
        return false;
    }
    // 010 and 02x are three digits with 8-digit local numbers; the rest four digits.
    let area = if matches!(digits[1], 1 | 2) { 3 } else { 4 };
    if digits[1] == 1 && digits[2] != 0 {
        return false;
    }
    let local = digits.len() - area;
    let local_ok = if area == 3 { local == 8 } else { (7..=8).contains(&local) };
    local_ok && digits[area] != 0 && (!grouped || first_group == area)
}

/// The GB 11643 check character of the first 17 digits, as a digit value (`X` = 10).
fn check_char(first17: &[u8]) -> Option<u8> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [u8; 11] = [1, 0, 10, 9, 8, 7, 6, 5, 4, 3, 2];
    if first17.len() != 17 {
        return None;
    }
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(d, w)| u32::from(*d) * w).sum();
    Some(CHECK[(sum % 11) as usize])
}

/// Whether the first 17 digits of an ID number carry a real birth date and, when `x_check`,
/// call for the check character `X`.
fn is_resident_id(first17: &[u8], x_check: bool) -> bool {
    if first17.len() != 17 || first17[0] == 0 {
        return false;
    }
    let number = |r: Range<usize>| first17[r].iter().fold(0u32, |n, d| n * 10 + u32::from(*d));
    let (y, m, d) = (number(6..10), number(10..12), number(12..14));
    let real_date = (1900..=2100).contains(&y) && chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some();
    real_date && (!x_check || check_char(first17) == Some(10))
}

/// Checks an 18-character resident identity number (GB 11643): digits, a real birth date from
/// 1900 on, and the ISO 7064 MOD 11-2 check character (digit or `X`).
pub fn is_valid_resident_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let first17: Vec<u8> = bytes[..17].iter().map(|b| b - b'0').collect();
    let check = match bytes[17] {
        b'0'..=b'9' => bytes[17] - b'0',
        b'X' | b'x' => 10,
        _ => return false,
    };
    is_resident_id(&first17, false) && check_char(&first17) == Some(check)
}

/// Whether `digits` pass the Luhn check.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A bank-card number: 13–19 digits, an issuer prefix cards carry, the Luhn check, and not a
/// date-led number (complaint numbers are `YYYYMMDD` and a sequence).
fn is_bank_card(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let prefix4 = digits[..4].iter().fold(0u32, |n, d| n * 10 + u32::from(*d));
    let issuer = matches!(digits[0], 3 | 4 | 5 | 6 | 8 | 9) || (2221..=2720).contains(&prefix4);
    issuer && luhn(digits) && !date_led(digits)
}

/// Whether a number starts with a date of this century or the last (`20261203…`).
fn date_led(digits: &[u8]) -> bool {
    let number = |r: Range<usize>| digits[r].iter().fold(0u32, |n, d| n * 10 + u32::from(*d));
    let (y, m, d) = (number(0..4), number(4..6), number(6..8));
    (1900..=2099).contains(&y) && chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        find(text).into_iter().map(|f| (f.kind, &text[f.range])).collect()
    }

    #[test]
    fn a_long_run_of_short_digit_groups_is_read_group_by_group() {
        // 20,000 one-digit groups: every start looks only as far as 19 digits reach.
        let run = "1 ".repeat(20_000);
        assert!(find(&run).is_empty());
        let text = format!("{run}手机 13812345678");
        assert_eq!(kinds(&text), [(PiiKind::Mobile, "13812345678")]);
    }

    #[test]
    fn finds_each_kind_in_its_usual_spellings() {
        use PiiKind::*;
        assert_eq!(kinds("我的手机13812345678，"), [(Mobile, "13812345678")]);
        assert_eq!(kinds("电话 +86 138 1234 5678 联系"), [(Mobile, "+86 138 1234 5678")]);
        assert_eq!(kinds("电话8613812345678"), [(Mobile, "8613812345678")]);
        assert_eq!(kinds("座机010-12345678转8"), [(Landline, "010-12345678")]);
        assert_eq!(kinds("座机0755 1234 5678"), [(Landline, "0755 1234 5678")]);
        assert_eq!(kinds("身份证11010519491231002X。"), [(ResidentId, "11010519491231002X")]);
        assert_eq!(kinds("卡号6222 0202 0011 2233 446"), [(BankCard, "6222 0202 0011 2233 446")]);
        assert_eq!(kinds("邮箱wang.li@example.cn。"), [(Email, "wang.li@example.cn")]);
    }

    #[test]
    fn leaves_amounts_dates_references_and_codes_alone() {
        for text in [
            "扣款12000.00元",
            "损失1,200,000元",
            "2026-12-03 10:30",
            "20261203",
            "投诉编号2026120300000042",
            "流水号6222020200112233445",
            "订单52012345678",
            "参考号TX6222020200112233446",
            "年化3.65%",
        ] {
            assert_eq!(kinds(text), [], "{text}");
        }
    }

    #[test]
    fn masks_keep_a_few_digits_and_are_idempotent() {
        let text = "手机138-1234-5678，卡6222020200112233446，身份证11010519491231002X，邮箱wang.li@example.cn";
        let masked = mask(text);
        assert_eq!(
            masked,
            "手机138-****-5678，卡6222***********3446，身份证1****************X，邮箱w******@example.cn"
        );
        assert_eq!(mask(&masked), masked);
        assert_eq!(mask("+86 13812345678"), "+86 138****5678");
        assert!(matches!(mask("无个人信息"), Cow::Borrowed(_)));
    }

    #[test]
    fn resident_id_checker() {
        assert!(is_valid_resident_id("11010519491231002X"));
        assert!(is_valid_resident_id("11010519491231002x"));
        assert!(!is_valid_resident_id("110105194912310021"));
        assert!(!is_valid_resident_id("11010519491331002X"));
        assert!(is_valid_resident_id("320106199003074515"));
        assert!(!is_valid_resident_id("440524188001010014"));
    }
}
