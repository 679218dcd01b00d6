//! Example data for tests and benchmarks, here and in the crates that drive intake: a
//! complete, valid complaint and as many distinct, valid identities as a run needs. Nothing
//! in the service itself uses it.

use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::intake::v1::{
    Complainant, ComplainedParty, Complaint, IdDocumentType, NaturalPerson, complainant::Party,
};

/// A phone complaint by a natural person against a bank branch, with `facts` as its facts.
pub fn complaint(facts: &str) -> Complaint {
    Complaint {
        channel: Channel::Phone as i32,
        complainant: Some(Complainant {
            party: Some(Party::Person(NaturalPerson {
                full_name: "王小明".to_owned(),
                id_document_type: IdDocumentType::ResidentId as i32,
                id_number: "11010519491231002X".to_owned(),
                phone: "13812345678".to_owned(),
                ..Default::default()
            })),
        }),
        complained_party: Some(ComplainedParty {
            institution: "示例银行".to_owned(),
            branch: "上海分行".to_owned(),
            ..Default::default()
        }),
        demand: "退还多收的信用卡年费并书面说明原因".to_owned(),
        facts: facts.to_owned(),
        org_unit: "institutions/demo-bank/branches/shanghai".to_owned(),
        ..Default::default()
    }
}

/// The `n`th of many distinct, valid identities for tests and benchmarks: a mobile number
/// and an 18-digit resident ID number with a correct check digit.
pub fn identity(n: u32) -> (String, String) {
    let phone = format!("139{:08}", n % 100_000_000);
    let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default()
        + chrono::Days::new(u64::from(n / 1000 % 20_000));
    let body = format!("110105{}{:03}", birth.format("%Y%m%d"), n % 1000);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    (phone, format!("{body}{}", CHECK[(sum % 11) as usize] as char))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identities_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in [0, 1, 999, 1000, 123_456, 4_000_000] {
            let (phone, id) = super::identity(n);
            assert!(crate::domain::identifiers::is_valid_mainland_phone(&phone), "{phone}");
            assert!(crate::domain::identifiers::is_valid_resident_id(&id), "{id}");
            assert!(seen.insert(id));
        }
    }
}
