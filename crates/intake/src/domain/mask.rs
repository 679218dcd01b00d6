//! Masking of personal information for callers without the PII permission (D-PII-2). Masked
//! values keep just enough to recognise a record on the phone, never enough to identify; the
//! complainant's own free text kept as personal (the corrections they gave when the record was
//! read back, the supplements they added to their personal information) is masked whole. The other free text (demand, facts, notes, descriptions, reasons)
//! stays readable with the identifiers written into it masked (D-PII-5).

use redress_platform::free_text_pii;
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

/// Free text with the identifiers written into it masked.
pub fn free_text(value: &str) -> String {
    free_text_pii::mask(value).into_owned()
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
    free_text: &'a dyn Fn(&str) -> String,
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
    for supplement in &mut c.personal_data_supplements {
        supplement.text = (r.text)(&supplement.text);
    }
    free_texts(c, r.free_text);
}

/// Rewrites every free-text field of a complaint that may carry identifiers (the one list of
/// them): the complainant's demand and facts, staff notes, evidence descriptions, the reason
/// of a withdrawal, the staff notes of read-backs and the reasons of classification overrides.
pub fn free_texts(c: &mut Complaint, rewrite: &dyn Fn(&str) -> String) {
    c.demand = rewrite(&c.demand);
    c.facts = rewrite(&c.facts);
    c.staff_notes = rewrite(&c.staff_notes);
    c.withdraw_reason = rewrite(&c.withdraw_reason);
    for evidence in &mut c.evidence {
        evidence.description = rewrite(&evidence.description);
    }
    for confirmation in &mut c.content_confirmations {
        confirmation.note = rewrite(&confirmation.note);
    }
    for classification in [c.classification.as_mut(), c.automatic_classification.as_mut()].into_iter().flatten() {
        classification.override_reason = rewrite(&classification.override_reason);
    }
}

/// Masks every personal field of a complaint in place.
pub fn complaint(c: &mut Complaint) {
    rewrite(
        c,
        &Rewrite {
            name: &name,
            id_number: &id_number,
            phone: &phone,
            email: &email,
            address: &address,
            text: &text,
            free_text: &free_text,
        },
    );
}

/// Replaces every non-empty personal field with `marker` (erasure); free text keeps its words,
/// the identifiers in it masked.
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
            free_text: &free_text,
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

    #[test]
    fn identifiers_in_free_text_are_masked_the_rest_of_the_words_stay() {
        use redress_proto::redress::intake::v1::{Classification, ContentConfirmation, EvidenceReference};

        let mut c = Complaint {
            demand: "退还 12000.00 元到卡 6222020200112233446".to_owned(),
            facts: "2026-12-03 我用 13812345678 致电，投诉编号 2026120300000042".to_owned(),
            staff_notes: "客户邮箱 wang.li@example.cn".to_owned(),
            withdraw_reason: "已和解，身份证 11010519491231002X".to_owned(),
            evidence: vec![EvidenceReference {
                description: "座机 010-62345678 通话录音".to_owned(),
                ..Default::default()
            }],
            content_confirmations: vec![ContentConfirmation {
                note: "回拨 13912345678".to_owned(),
                ..Default::default()
            }],
            classification: Some(Classification {
                override_reason: "客户 13700001111 补充".to_owned(),
                ..Default::default()
            }),
            ..Complaint::default()
        };
        complaint(&mut c);
        assert_eq!(c.demand, "退还 12000.00 元到卡 6222***********3446");
        assert_eq!(c.facts, "2026-12-03 我用 138****5678 致电，投诉编号 2026120300000042");
        assert_eq!(c.staff_notes, "客户邮箱 w******@example.cn");
        assert_eq!(c.withdraw_reason, "已和解，身份证 1****************X");
        assert_eq!(c.evidence[0].description, "座机 010-****5678 通话录音");
        assert_eq!(c.content_confirmations[0].note, "回拨 139****5678");
        assert_eq!(c.classification.as_ref().map(|c| c.override_reason.as_str()), Some("客户 137****1111 补充"));
        let masked = c.clone();
        replace_all(&mut c, "[已删除]");
        assert_eq!(c, masked, "erasure leaves masked free text as it is");
    }
}
