//! Masking of personal information for callers without the PII permission (D-PII-2). Masked
//! values keep just enough to recognise a record on the phone, never enough to identify.

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

pub fn address(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let shown = chars.len().min(6);
    let mut out: String = chars[..shown].iter().collect();
    if chars.len() > shown {
        out.push_str("****");
    }
    out
}

fn person(p: &mut NaturalPerson) {
    p.full_name = name(&p.full_name);
    p.id_number = id_number(&p.id_number);
    p.phone = phone(&p.phone);
    p.email = email(&p.email);
    p.address = address(&p.address);
}

/// Masks every personal field of a complaint in place.
pub fn complaint(c: &mut Complaint) {
    if let Some(complainant) = c.complainant.as_mut() {
        match complainant.party.as_mut() {
            Some(Party::Person(p)) => person(p),
            Some(Party::Organisation(o)) => {
                o.legal_representative = name(&o.legal_representative);
                o.contact_name = name(&o.contact_name);
                o.contact_phone = phone(&o.contact_phone);
            }
            None => {}
        }
    }
    if let Some(p) = c.agent.as_mut().and_then(|a| a.person.as_mut()) {
        person(p);
    }
    for p in c.representatives.iter_mut().filter_map(|r| r.person.as_mut()) {
        person(p);
    }
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
    }
}
