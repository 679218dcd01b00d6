//! The VIP register meets complainants on intake's own blind indexes: for the same key,
//! person and institution, the escalation service computes exactly the digests intake
//! stores, so matching needs no identifier in clear anywhere but in memory.

#![allow(clippy::unwrap_used)]

use redress_escalation::domain::vip::{complainant_digests, register_digests};
use redress_intake::PiiConfig;
use redress_platform::blind_index::BlindIndexKey;
use redress_proto::redress::escalation::v1::vip_identifier::Identifier;
use redress_proto::redress::escalation::v1::{IdentityDocument, VipIdentifier};
use redress_proto::redress::intake::v1::complainant::Party;
use redress_proto::redress::intake::v1::{Complainant, Complaint, NaturalPerson, Organisation};

#[test]
fn escalation_computes_the_digests_intake_stores() {
    let pii = PiiConfig::generate();
    let keyring = pii.keyring().unwrap();
    let key = BlindIndexKey::from_base64(pii.index_key.expose()).unwrap();
    let person = Complaint {
        org_unit: "institutions/demo-bank/branches/beijing".to_owned(),
        complainant: Some(Complainant {
            party: Some(Party::Person(NaturalPerson {
                full_name: "张三".to_owned(),
                id_document_type: 1,
                id_number: "11010519491231002X".to_owned(),
                phone: "138-1234-5678".to_owned(),
                ..NaturalPerson::default()
            })),
        }),
        ..Complaint::default()
    };
    let company = Complaint {
        org_unit: "institutions/demo-bank".to_owned(),
        complainant: Some(Complainant {
            party: Some(Party::Organisation(Organisation {
                name: "示例贸易有限公司".to_owned(),
                contact_phone: "010-12345678".to_owned(),
                ..Organisation::default()
            })),
        }),
        ..Complaint::default()
    };
    for complaint in [&person, &company] {
        let intake: Vec<String> =
            redress_intake::domain::subjects::digests(&keyring, complaint).into_iter().map(|(_, d)| d).collect();
        assert!(!intake.is_empty());
        assert_eq!(complainant_digests(&key, "institutions/demo-bank", complaint), intake);
    }
    // A VIP registered from the CRM with the same identifiers, spelled its own way.
    let registered = register_digests(
        &key,
        "institutions/demo-bank",
        &[
            VipIdentifier { identifier: Some(Identifier::Phone("13812345678".to_owned())) },
            VipIdentifier {
                identifier: Some(Identifier::IdDocument(IdentityDocument {
                    r#type: 1,
                    number: "11010519491231002x".to_owned(),
                })),
            },
        ],
    );
    let intake: Vec<String> =
        redress_intake::domain::subjects::digests(&keyring, &person).into_iter().map(|(_, d)| d).collect();
    assert!(intake.iter().all(|d| registered.iter().any(|(_, r)| r == d)));
    // However either side writes the phone, both index it in E.164: the same digest.
    let (_, registered_phone) = &registered[0];
    for spelling in ["+86 138 1234 5678", "86 13812345678", "008613812345678", "13812345678"] {
        let mut complaint = person.clone();
        if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
            p.phone = spelling.to_owned();
        }
        let intake = redress_intake::domain::subjects::digests(&keyring, &complaint);
        assert_eq!(&intake[1].1, registered_phone, "{spelling}");
        assert_eq!(complainant_digests(&key, "institutions/demo-bank", &complaint)[1], intake[1].1);
    }
}
