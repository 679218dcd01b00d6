//! The VIP green channel (D-ESC-4): a register per institution fed from its CRM, matched on
//! the same keyed blind indexes intake keeps of complainants, never on identifiers in clear.
//! The CRM sends identifiers in clear and they are digested here, phones in E.164 as intake
//! digests them. The register keeps only digests, so those made before phones were
//! canonicalised cannot be re-indexed: a complainant is also matched on the digests their
//! phone had then, in its usual spellings, until the CRM imports its register again.

use redress_platform::blind_index::{BlindIndexKey, ID_DOCUMENT, PHONE, id_document};
use redress_proto::redress::escalation::v1::VipIdentifier;
use redress_proto::redress::escalation::v1::vip_identifier::Identifier;
use redress_proto::redress::intake::v1::Complaint;
use redress_proto::redress::intake::v1::complainant::Party;

use super::actions::CaseRequest;

/// The blind indexes of a VIP's identifiers at `institution`, as (kind, digest).
pub fn register_digests(
    key: &BlindIndexKey,
    institution: &str,
    identifiers: &[VipIdentifier],
) -> Vec<(&'static str, String)> {
    identifiers
        .iter()
        .filter_map(|i| match i.identifier.as_ref()? {
            Identifier::IdDocument(d) => {
                Some((ID_DOCUMENT, key.identifier(ID_DOCUMENT, institution, &id_document(d.r#type, &d.number))))
            }
            Identifier::Phone(p) => Some((PHONE, key.identifier(PHONE, institution, p))),
        })
        .collect()
}

/// The blind indexes of a complaint's complainant at `institution`: identity document and
/// phone of a person, the contact phone of an organisation, as intake indexes them.
pub fn complainant_digests(key: &BlindIndexKey, institution: &str, complaint: &Complaint) -> Vec<String> {
    let mut out = Vec::new();
    match complaint.complainant.as_ref().and_then(|c| c.party.as_ref()) {
        Some(Party::Person(p)) => {
            if !p.id_number.is_empty() {
                out.push(key.identifier(ID_DOCUMENT, institution, &id_document(p.id_document_type, &p.id_number)));
            }
            if !p.phone.is_empty() {
                out.push(key.identifier(PHONE, institution, &p.phone));
            }
        }
        Some(Party::Organisation(o)) if !o.contact_phone.is_empty() => {
            out.push(key.identifier(PHONE, institution, &o.contact_phone));
        }
        _ => {}
    }
    out
}

/// The digests a complainant is looked up by in the register: [`complainant_digests`] first,
/// then those their phone had before phones were canonicalised, which a register imported
/// then still holds.
pub fn match_digests(key: &BlindIndexKey, institution: &str, complaint: &Complaint) -> Vec<String> {
    let mut out = complainant_digests(key, institution, complaint);
    let phone = match complaint.complainant.as_ref().and_then(|c| c.party.as_ref()) {
        Some(Party::Person(p)) => p.phone.as_str(),
        Some(Party::Organisation(o)) => o.contact_phone.as_str(),
        None => "",
    };
    if !phone.is_empty() {
        for earlier in key.earlier_phone_identifiers(institution, phone) {
            if !out.contains(&earlier) {
                out.push(earlier);
            }
        }
    }
    out
}

/// Where a VIP's complaint goes: the senior team, a senior manager, the account manager.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VipRouting {
    /// The senior team's department, which takes the case at once.
    pub senior_team_department: String,
    /// The senior manager attached to every VIP case (a subject or `role:…`).
    pub senior_manager: String,
    /// Hours the senior team has for its first step.
    pub senior_team_hours: u32,
    /// Hours the account manager has to follow up.
    pub follow_up_hours: u32,
}

impl Default for VipRouting {
    fn default() -> Self {
        Self {
            senior_team_department: "vip-service".to_owned(),
            senior_manager: "role:senior_manager".to_owned(),
            senior_team_hours: 2,
            follow_up_hours: 24,
        }
    }
}

/// The tasks a VIP's case gets: the senior team with a senior manager attached, and the
/// account manager's follow-up.
pub fn tasks(routing: &VipRouting, tier: &str, account_manager: &str, department: &str) -> Vec<CaseRequest> {
    vec![
        CaseRequest::AddTask {
            department: routing.senior_team_department.clone(),
            owner: routing.senior_manager.clone(),
            description: format!("重要客户（{tier}）投诉：绿色通道，由资深团队立即处理，高层管理人员参与"),
            due_in_hours: routing.senior_team_hours,
        },
        CaseRequest::AddTask {
            department: if department.is_empty() {
                routing.senior_team_department.clone()
            } else {
                department.to_owned()
            },
            owner: account_manager.to_owned(),
            description: "重要客户投诉：客户经理跟进回访，了解客户诉求并维护关系".to_owned(),
            due_in_hours: routing.follow_up_hours,
        },
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use redress_proto::redress::escalation::v1::IdentityDocument;
    use redress_proto::redress::intake::v1::{Complainant, NaturalPerson};

    #[test]
    fn a_registered_identifier_and_a_complainant_meet_on_the_same_digest() {
        let key = BlindIndexKey::new(&[3; 32]).unwrap();
        let ids = [
            VipIdentifier { identifier: Some(Identifier::Phone("138 1234 5678".into())) },
            VipIdentifier {
                identifier: Some(Identifier::IdDocument(IdentityDocument {
                    r#type: 1,
                    number: "11010519491231002x".into(),
                })),
            },
        ];
        let registered = register_digests(&key, "institutions/demo", &ids);
        let complaint = Complaint {
            complainant: Some(Complainant {
                party: Some(Party::Person(NaturalPerson {
                    id_document_type: 1,
                    id_number: "11010519491231002X".into(),
                    phone: "13812345678".into(),
                    ..NaturalPerson::default()
                })),
            }),
            ..Complaint::default()
        };
        let found = complainant_digests(&key, "institutions/demo", &complaint);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|d| registered.iter().any(|(_, r)| r == d)));
        assert!(
            complainant_digests(&key, "institutions/other", &complaint)
                .iter()
                .all(|d| !registered.iter().any(|(_, r)| r == d))
        );
        // The CRM writes the number its own way: the same digest.
        for spelling in ["+86 138 1234 5678", "008613812345678", "86-138-1234-5678"] {
            let crm = [VipIdentifier { identifier: Some(Identifier::Phone(spelling.into())) }];
            assert_eq!(register_digests(&key, "institutions/demo", &crm)[0].1, found[1], "{spelling}");
        }
    }

    #[test]
    fn a_register_digested_before_phones_were_canonical_still_matches() {
        let key = BlindIndexKey::new(&[3; 32]).unwrap();
        let complaint = Complaint {
            complainant: Some(Complainant {
                party: Some(Party::Person(NaturalPerson {
                    phone: "+8613812345678".into(),
                    ..NaturalPerson::default()
                })),
            }),
            ..Complaint::default()
        };
        let found = match_digests(&key, "institutions/demo", &complaint);
        assert_eq!(found[..1], complainant_digests(&key, "institutions/demo", &complaint)[..]);
        // What registering "138-1234-5678" or "86 138 1234 5678" stored then: the number
        // without spaces or dashes, digested as it was.
        for written in ["13812345678", "8613812345678", "008613812345678"] {
            let then = key.digest("phone@institutions/demo", written.as_bytes());
            assert!(found.contains(&then), "{written}");
        }
        let someone_else = key.digest("phone@institutions/demo", b"13812345679");
        assert!(!found.contains(&someone_else));
    }
}
