//! A complete, valid complaint, for tests, benchmarks and examples.

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
