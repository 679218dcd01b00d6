//! Who a complainant is (D-PII): a data subject of each institution separately, since rights
//! are exercised against the institution. A subject is found by the blind-index digests of
//! its identifiers, scoped to the institution (a phone in its E.164 form, however it was
//! written), and a person with an identity document is never taken for someone else who
//! shares their phone.

use redress_platform::names::OrgUnit;
use redress_proto::redress::intake::v1::{Complaint, complainant::Party};

use super::acceptance::institution_of;
use super::pii::Keyring;

pub use redress_platform::blind_index::{ID_DOCUMENT, PHONE, id_document};

/// The form of the blind indexes this version writes (`subjects.index_form`): 2, phones in
/// E.164. Subjects recorded in an older form are re-indexed when the store opens.
pub const INDEX_FORM: i32 = 2;

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
    keyring.identifier(kind, institution, value)
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

/// Of the subjects that carry a phone of `subject` (in id order, each with whether it is known
/// by an identity document), those that prove to be one person with it: each joins unless it
/// and one already joined (or `subject` itself) both have an identity document, since then
/// the documents decide and they differ (a document's digest names one subject).
pub fn one_person(subject_has_id: bool, sharing_a_phone: &[(String, bool)]) -> Vec<&str> {
    let mut has_id = subject_has_id;
    let mut joined = Vec::new();
    for (other, other_has_id) in sharing_a_phone {
        if same_person(PHONE, has_id, *other_has_id) {
            has_id |= *other_has_id;
            joined.push(other.as_str());
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_sharing_a_phone_are_one_person_unless_their_documents_differ() {
        let others = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
            list.iter().map(|(id, has_id)| ((*id).to_owned(), *has_id)).collect()
        };
        let none = others(&[("a", false), ("b", false)]);
        assert_eq!(one_person(false, &none), ["a", "b"]);
        assert_eq!(one_person(true, &none), ["a", "b"]);
        // One document among them: all join; a second document stays apart.
        let two = others(&[("a", true), ("b", false), ("c", true)]);
        assert_eq!(one_person(false, &two), ["a", "b"]);
        assert_eq!(one_person(true, &two), ["b"]);
        assert!(one_person(true, &others(&[("a", true)])).is_empty());
    }
}
