//! Who a complainant is (D-PII): a data subject of each institution separately, since rights
//! are exercised against the institution. A subject is found by the blind-index digests of
//! its identifiers, scoped to the institution, and a person with an identity document is
//! never taken for someone else who shares their phone.

use redress_platform::names::OrgUnit;
use redress_proto::redress::intake::v1::{Complaint, complainant::Party};

use super::acceptance::institution_of;
use super::pii::Keyring;

/// The kind of identifier an identity document number (with its type) is.
pub const ID_DOCUMENT: &str = "id";
/// The kind of identifier a phone number is.
pub const PHONE: &str = "phone";

/// An identifier naming a person at one institution: its kind ([`ID_DOCUMENT`], whose value
/// is [`id_document`], or [`PHONE`]) and value. Its `Debug` hides the value.
#[derive(Clone)]
pub struct Identifier {
    pub institution: OrgUnit,
    pub kind: &'static str,
    pub value: String,
}

impl Identifier {
    /// The blind-index digest this identifier is found under.
    pub fn digest(&self, keyring: &Keyring) -> String {
        index_digest(keyring, self.kind, self.institution.as_str(), &self.value)
    }
}

impl std::fmt::Debug for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identifier")
            .field("institution", &self.institution)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The value of an identity document identifier: the document type's number and the
/// document number.
pub fn id_document(document_type: i32, number: &str) -> String {
    format!("{document_type}:{number}")
}

/// The identifiers a complainant is found by, as (kind, value): the identity document
/// number (with its type) and the phone, for natural persons; the contact phone for
/// organisations.
pub fn identifiers(complaint: &Complaint) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match complaint.complainant.as_ref().and_then(|c| c.party.as_ref()) {
        Some(Party::Person(p)) => {
            if !p.id_number.is_empty() {
                out.push((ID_DOCUMENT, id_document(p.id_document_type, &p.id_number)));
            }
            if !p.phone.is_empty() {
                out.push((PHONE, p.phone.clone()));
            }
        }
        Some(Party::Organisation(o)) if !o.contact_phone.is_empty() => {
            out.push((PHONE, o.contact_phone.clone()));
        }
        Some(Party::Organisation(_)) | None => {}
    }
    out
}

fn index_digest(keyring: &Keyring, kind: &str, institution: &str, value: &str) -> String {
    keyring.blind_index(&format!("{kind}@{institution}"), value)
}

/// The blind-index digests of a complaint's complainant, as (kind, digest), scoped to the
/// institution the complaint's organisation unit belongs to.
pub fn digests(keyring: &Keyring, complaint: &Complaint) -> Vec<(&'static str, String)> {
    let identifiers = identifiers(complaint);
    if identifiers.is_empty() {
        return Vec::new();
    }
    let institution = institution_of(&complaint.org_unit);
    identifiers.into_iter().map(|(kind, value)| (kind, index_digest(keyring, kind, &institution, &value))).collect()
}

/// Whether a stored subject, found by an identifier of `kind`, is the complainant: an
/// identity document always decides; a shared phone does not make a complainant with an
/// identity document the same person as a subject known by one.
pub fn same_person(kind: &str, complainant_has_id: bool, subject_has_id: bool) -> bool {
    kind == ID_DOCUMENT || !complainant_has_id || !subject_has_id
}

/// Whether the complainant of `digests` is known by an identity document.
pub fn has_id_document(digests: &[(&str, String)]) -> bool {
    digests.iter().any(|(kind, _)| *kind == ID_DOCUMENT)
}
