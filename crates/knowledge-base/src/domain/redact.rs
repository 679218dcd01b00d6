//! Personal information taken out of free text before it becomes knowledge (D-PII-1, D-PII-5):
//! phone numbers, identity-card numbers (checked by their checksum), bank-card numbers (checked
//! by Luhn), e-mail addresses, and people named with an honorific (王先生) or after a label
//! (姓名：…). What is found is replaced by a word saying what it was.

/// What replaces each kind of personal information.
pub const PHONE: &str = "［电话］";
pub const ID_NUMBER: &str = "［身份证号］";
pub const CARD: &str = "［卡号］";
pub const EMAIL: &str = "［邮箱］";
pub const PERSON: &str = "客户";

/// Honorifics that follow a surname (or a full name) in Chinese.
const HONORIFICS: [&str; 5] = ["先生", "女士", "小姐", "阿姨", "大爷"];
/// Labels after which a name follows.
const NAME_LABELS: [&str; 4] = ["姓名：", "姓名:", "客户名：", "联系人："];

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { *d })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether 18 characters are a mainland identity-card number (GB 11643 checksum).
fn is_id_number(chars: &[char]) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if chars.len() != 18 || !chars[..17].iter().all(char::is_ascii_digit) {
        return false;
    }
    let sum: u32 = chars[..17].iter().zip(WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    chars[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

fn is_email_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

/// `text` with the personal information it contains replaced.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // E-mail: the address around an '@' with a dot after it.
        if c == '@' {
            let start = (0..i).rev().take_while(|&j| is_email_char(chars[j])).last();
            let end = (i + 1..chars.len()).take_while(|&j| is_email_char(chars[j])).last();
            if let (Some(start), Some(end)) = (start, end)
                && chars[i + 1..=end].contains(&'.')
            {
                // The local part was already copied: take it back.
                for _ in start..i {
                    out.pop();
                }
                out.push_str(EMAIL);
                i = end + 1;
                continue;
            }
        }
        if c.is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            // A run of digits, spaces or hyphens inside a number (card numbers are written in
            // groups), possibly ending in X (identity cards).
            let mut end = i;
            let mut digits = Vec::new();
            let mut raw = Vec::new();
            while end < chars.len() {
                let d = chars[end];
                if d.is_ascii_digit() {
                    digits.push(d.to_digit(10).unwrap_or(0));
                    raw.push(d);
                } else if (d == ' ' || d == '-') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
                } else if (d == 'X' || d == 'x') && digits.len() == 17 {
                    raw.push(d);
                    end += 1;
                    break;
                } else {
                    break;
                }
                end += 1;
            }
            let replacement = if is_id_number(&raw) {
                Some(ID_NUMBER)
            } else if raw.len() == 11 && raw[0] == '1' && ('3'..='9').contains(&raw[1]) {
                Some(PHONE)
            } else if (13..=19).contains(&digits.len()) && raw.len() == digits.len() && luhn(&digits) {
                Some(CARD)
            } else if raw.first() == Some(&'0') && (10..=12).contains(&digits.len()) {
                // A landline with its area code.
                Some(PHONE)
            } else {
                None
            };
            if let Some(replacement) = replacement {
                out.push_str(replacement);
            } else {
                out.extend(&chars[i..end]);
            }
            i = end.max(i + 1);
            continue;
        }
        if let Some(label) = NAME_LABELS.iter().find(|l| chars[i..].starts_with(&l.chars().collect::<Vec<_>>())) {
            let after = i + label.chars().count();
            let name_len = chars[after..].iter().take(4).take_while(|c| is_han(**c)).count();
            out.push_str(label);
            out.push_str(PERSON);
            i = after + name_len;
            continue;
        }
        out.push(c);
        i += 1;
    }
    replace_honorifics(&out)
}

fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// "王先生", "李女士": a surname (one or two characters) before an honorific becomes "客户".
fn replace_honorifics(text: &str) -> String {
    let mut out = text.to_owned();
    for honorific in HONORIFICS {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(honorific) {
            let before = &rest[..at];
            let name: Vec<char> = before.chars().rev().take(1).take_while(|c| is_han(*c)).collect();
            let keep = before.len() - name.iter().map(|c| c.len_utf8()).sum::<usize>();
            result.push_str(&before[..keep]);
            result.push_str(if name.is_empty() { honorific } else { PERSON });
            rest = &rest[at + honorific.len()..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_identity_and_card_numbers_emails_and_names_are_taken_out() {
        let text = "王先生（手机13812345678，身份证11010519491231002X）反映尾号卡6222 0212 3456 7894被扣款，\
                    邮箱wang.li@example.com，座机010-62345678，姓名：李小红。";
        let redacted = redact(text);
        for gone in [
            "13812345678",
            "11010519491231002X",
            "6222 0212 3456 7894",
            "wang.li@example.com",
            "62345678",
            "王先生",
            "李小红",
        ] {
            assert!(!redacted.contains(gone), "{gone} remains in {redacted}");
        }
        assert_eq!(
            redacted,
            "客户（手机［电话］，身份证［身份证号］）反映尾号卡［卡号］被扣款，邮箱［邮箱］，座机［电话］，姓名：客户。"
        );
    }

    #[test]
    fn numbers_that_are_not_personal_stay() {
        for text in ["年费300元，5个工作日内退还", "2026年3月15日", "投诉编号20261125000042", "30日内申请核查"]
        {
            assert_eq!(redact(text), text);
        }
    }
}
