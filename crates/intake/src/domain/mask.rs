//! Masking of personal information for callers without the PII permission (D-PII-2). Masked
//! values keep just enough to recognise a record on the phone, never enough to identify; the
//! complainant's own free text kept as personal (the corrections they gave when the record was
//! read back) is masked whole.

use redress_proto::redress::intake::v1::{Complaint, NaturalPerson, complainant::Party};

/// Keeps the first `head` and last `tail` characters, masking the rest with `*`.
fn keep(value: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

pub fn name(value: &str) -> String {
    if value.is_empty() { String::new() } else { keep(value, 1, 0) }
}

pub fn phone(value: &str) -> String {
    keep(value, 3, 4)
}

pub fn id_number(value: &str) -> String {
    keep(value, 1, 1)
}

pub fn email(value: &str) -> String {
    match value.split_once('@') {
        Some((user, domain)) => format!("{}@{domain}", keep(user, 1, 0)),
        None => keep(value, 1, 0),
    }
}

/// What a masked free text shows: that there is one, nothing of it.
pub const MASKED_TEXT: &str = "[已隐藏]";

pub fn text(value: &str) -> String {
    if value.is_empty() { String::new() } else { MASKED_TEXT.to_owned() }
}

pub fn address(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let shown = chars.len().min(6);
    let mut out: String = chars[..shown].iter().collect();
    if chars.len() > shown {
        out.push_str("****");
    }
    out
}

/// How each kind of personal field is rewritten.
struct Rewrite<'a> {
    name: &'a dyn Fn(&str) -> String,
    id_number: &'a dyn Fn(&str) -> String,
    phone: &'a dyn Fn(&str) -> String,
    email: &'a dyn Fn(&str) -> String,
    address: &'a dyn Fn(&str) -> String,
    text: &'a dyn Fn(&str) -> String,
}

fn person(p: &mut NaturalPerson, r: &Rewrite<'_>) {
    p.full_name = (r.name)(&p.full_name);
    p.id_number = (r.id_number)(&p.id_number);
    p.phone = (r.phone)(&p.phone);
    p.email = (r.email)(&p.email);
    p.address = (r.address)(&p.address);
}

/// Rewrites every personal field of a complaint in place (the one list of what is personal).
fn rewrite(c: &mut Complaint, r: &Rewrite<'_>) {
    if let Some(complainant) = c.complainant.as_mut() {
        match complainant.party.as_mut() {
            Some(Party::Person(p)) => person(p, r),
            Some(Party::Organisation(o)) => {
                o.legal_representative = (r.name)(&o.legal_representative);
                o.contact_name = (r.name)(&o.contact_name);
                o.contact_phone = (r.phone)(&o.contact_phone);
            }
            None => {}
        }
    }
    if let Some(p) = c.agent.as_mut().and_then(|a| a.person.as_mut()) {
        person(p, r);
    }
    for p in c.representatives.iter_mut().filter_map(|rep| rep.person.as_mut()) {
        person(p, r);
    }
    for confirmation in &mut c.content_confirmations {
        confirmation.corrections = (r.text)(&confirmation.corrections);
    }
}

/// Masks every personal field of a complaint in place.
pub fn complaint(c: &mut Complaint) {
    rewrite(
        c,
        &Rewrite { name: &name, id_number: &id_number, phone: &phone, email: &email, address: &address, text: &text },
    );
}

/// Replaces every non-empty personal field with `marker` (erasure).
pub fn replace_all(c: &mut Complaint, marker: &str) {
    let replace = |v: &str| if v.is_empty() { String::new() } else { marker.to_owned() };
    rewrite(
        c,
        &Rewrite {
            name: &replace,
            id_number: &replace,
            phone: &replace,
            email: &replace,
            address: &replace,
            text: &replace,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_recognisable_fragments() {
        assert_eq!(phone("13812345678"), "138****5678");
        assert_eq!(id_number("11010519491231002X"), "1****************X");
        assert_eq!(name("张三丰"), "张**");
        assert_eq!(email("wang.li@example.cn"), "w******@example.cn");
        assert_eq!(address("上海市浦东新区世纪大道100号"), "上海市浦东新****");
        assert_eq!(phone("123"), "***");
        assert_eq!(text("我叫张三，电话 13812345678"), MASKED_TEXT);
        assert_eq!(text(""), "");
    }

    #[test]
    fn corrections_are_masked_and_erased_whole_and_the_rest_of_a_confirmation_stays() {
        use redress_proto::redress::intake::v1::ContentConfirmation;

        let confirmation = |corrections: &str| ContentConfirmation {
            corrections: corrections.to_owned(),
            note: "录音 R-1".to_owned(),
            ..ContentConfirmation::default()
        };
        let mut c = Complaint {
            content_confirmations: vec![confirmation("我的卡号是 6222020200112233445"), confirmation("")],
            ..Complaint::default()
        };
        complaint(&mut c);
        assert_eq!(c.content_confirmations[0].corrections, MASKED_TEXT);
        assert_eq!(c.content_confirmations[1].corrections, "");
        assert_eq!(c.content_confirmations[0].note, "录音 R-1", "staff notes are not the complainant's");
        replace_all(&mut c, "[已删除]");
        assert_eq!(c.content_confirmations[0].corrections, "[已删除]");
    }
}
