//! Personal information at rest (D-PII): envelope encryption per complainant and blind
//! indexes.
//!
//! Each complainant (data subject) has a random 256-bit data key. It is stored only wrapped
//! (AES-256-GCM) by a master key named by its key id, so master keys rotate without touching
//! the data, and destroying the wrapped data key erases the subject. A complaint's personal
//! fields (complainant, agent, representatives, the corrections the complainant gave at the
//! read-back, and the free text that carries identifiers, D-PII-5) are sealed with the
//! subject's data key, the additional data binding the
//! ciphertext to the complaint and subject, so a sealed value copied to another row does not
//! open. Lookups go through blind indexes: keyed HMAC-SHA256 digests of normalised
//! identifiers (phones in E.164), never the identifiers themselves, computed by the
//! platform's `blind_index` as every other service computes them.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use prost::Message;
use redress_platform::blind_index::BlindIndexKey;
use redress_proto::redress::intake::v1::{Complaint, ContentConfirmation, EvidenceReference, PersonalDataSupplement};

use super::access_log::AccessLogKeys;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("no master key with id {0:?} is configured")]
    UnknownKey(String),
    #[error("personal information does not decrypt (wrong key, or the data was altered)")]
    Decrypt,
    #[error("invalid key material: {0}")]
    InvalidKey(String),
    #[error("sealed personal information is corrupt: {0}")]
    Corrupt(String),
}

/// The master keys (by id), which one wraps new data keys, the blind-index key and the keys
/// the access log is chained under.
#[derive(Clone)]
pub struct Keyring {
    active: String,
    masters: HashMap<String, Aes256Gcm>,
    index: BlindIndexKey,
    access_log: AccessLogKeys,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.masters.keys().collect();
        ids.sort();
        f.debug_struct("Keyring").field("active", &self.active).field("key_ids", &ids).finish_non_exhaustive()
    }
}

/// A data key wrapped by a master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: String,
    /// Nonce followed by the ciphertext of the data key.
    pub sealed: Vec<u8>,
}

/// A subject's data key in clear; only ever in memory.
#[derive(Clone)]
pub struct DataKey(Aes256Gcm);

impl Keyring {
    /// `masters` maps key ids to 32-byte keys; `active` wraps new data keys; `index_key` (at
    /// least 32 bytes) keys the blind indexes and never rotates (the digests are stored). The
    /// access log is chained under a key derived from `index_key` until
    /// [`Keyring::with_access_log_keys`] configures its own.
    pub fn new(active: &str, masters: &[(String, Vec<u8>)], index_key: &[u8]) -> Result<Self, PiiError> {
        let mut map = HashMap::new();
        for (id, key) in masters {
            if key.len() != 32 {
                return Err(PiiError::InvalidKey(format!("master key {id:?} must be 32 bytes, not {}", key.len())));
            }
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| PiiError::InvalidKey(e.to_string()))?;
            map.insert(id.clone(), cipher);
        }
        if !map.contains_key(active) {
            return Err(PiiError::UnknownKey(active.to_owned()));
        }
        let index = BlindIndexKey::new(index_key).map_err(|e| PiiError::InvalidKey(e.to_string()))?;
        let access_log = AccessLogKeys::derived(index_key).map_err(PiiError::InvalidKey)?;
        Ok(Self { active: active.to_owned(), masters: map, index, access_log })
    }

    /// Chains the access log under `keys` (by id, each at least 32 bytes), new entries under
    /// `active`, instead of the key derived from the blind-index key.
    pub fn with_access_log_keys(self, active: &str, keys: &[(String, Vec<u8>)]) -> Result<Self, PiiError> {
        Ok(Self { access_log: AccessLogKeys::new(active, keys).map_err(PiiError::InvalidKey)?, ..self })
    }

    /// The same keys, with the access log's entries recorded before it was chained chained,
    /// and a head written before heads were sealed sealed, when the store opens (`yes`).
    pub fn chaining_legacy_access_log(self, yes: bool) -> Self {
        Self { access_log: self.access_log.chaining_legacy(yes), ..self }
    }

    /// The keys the access log is chained under.
    pub fn access_log(&self) -> &AccessLogKeys {
        &self.access_log
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// A fresh data key for a new subject, and its wrapped form to store.
    pub fn new_data_key(&self, subject_id: &str) -> Result<(DataKey, WrappedKey), PiiError> {
        let raw: [u8; 32] = rand::random();
        let wrapped = self.wrap(subject_id, &raw)?;
        Ok((DataKey(Aes256Gcm::new(&Key::<Aes256Gcm>::from(raw))), wrapped))
    }

    fn wrap(&self, subject_id: &str, raw: &[u8; 32]) -> Result<WrappedKey, PiiError> {
        let master = self.masters.get(&self.active).ok_or_else(|| PiiError::UnknownKey(self.active.clone()))?;
        let aad = wrap_aad(subject_id, &self.active);
        Ok(WrappedKey { key_id: self.active.clone(), sealed: seal_with(master, &aad, raw)? })
    }

    /// The subject's data key.
    pub fn unwrap(&self, subject_id: &str, wrapped: &WrappedKey) -> Result<DataKey, PiiError> {
        let master = self.masters.get(&wrapped.key_id).ok_or_else(|| PiiError::UnknownKey(wrapped.key_id.clone()))?;
        let raw = open_with(master, &wrap_aad(subject_id, &wrapped.key_id), &wrapped.sealed)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| PiiError::Corrupt("a data key is not 32 bytes".to_owned()))?;
        Ok(DataKey(Aes256Gcm::new(&Key::<Aes256Gcm>::from(raw))))
    }

    /// Re-wraps a data key with the active master key (rotation); `None` when it already is.
    pub fn rewrap(&self, subject_id: &str, wrapped: &WrappedKey) -> Result<Option<WrappedKey>, PiiError> {
        if wrapped.key_id == self.active {
            return Ok(None);
        }
        let master = self.masters.get(&wrapped.key_id).ok_or_else(|| PiiError::UnknownKey(wrapped.key_id.clone()))?;
        let raw = open_with(master, &wrap_aad(subject_id, &wrapped.key_id), &wrapped.sealed)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| PiiError::Corrupt("a data key is not 32 bytes".to_owned()))?;
        self.wrap(subject_id, &raw).map(Some)
    }

    /// The blind index of an identifier of `kind` ("id", "phone") naming a person at
    /// `institution`: lower-case hex of a keyed HMAC over the normalised value (a phone in
    /// E.164), the digest every service computes (`redress_platform::blind_index`).
    pub fn identifier(&self, kind: &str, institution: &str, value: &str) -> String {
        self.index.identifier(kind, institution, value)
    }

    /// A keyed digest of arbitrary bytes (e.g. a request fingerprint that must not reveal the
    /// personal information it covers).
    pub fn digest(&self, kind: &str, bytes: &[u8]) -> String {
        self.index.digest(kind, bytes)
    }
}

fn wrap_aad(subject_id: &str, key_id: &str) -> Vec<u8> {
    format!("redress.subject-key.v1\0{subject_id}\0{key_id}").into_bytes()
}

/// The additional data binding a complaint's sealed personal information to its row.
fn complaint_aad(complaint_id: &str, subject_id: &str) -> Vec<u8> {
    format!("redress.complaint-pii.v1\0{complaint_id}\0{subject_id}").into_bytes()
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PiiError> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| PiiError::Corrupt("encryption failed".to_owned()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PiiError> {
    if sealed.len() < NONCE_LEN {
        return Err(PiiError::Corrupt("too short".to_owned()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| PiiError::Corrupt("bad nonce".to_owned()))?;
    cipher.decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad }).map_err(|_| PiiError::Decrypt)
}

impl DataKey {
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PiiError> {
        seal_with(&self.0, aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PiiError> {
        open_with(&self.0, aad, sealed)
    }
}

/// The personal part of a complaint: complainant, agent and representatives as submitted, the
/// corrections the complainant gave when the record was read back (their own words), and
/// every free-text field whose words carry identifiers (D-PII-5), in clear; the record keeps
/// those fields with the identifiers masked. Encoded as a `Complaint` holding only those
/// fields (a free-text field left empty when it holds no identifier; evidence, confirmations
/// and supplements in the record's order). Supplements to personal information (Art.46) are
/// kept whole, as corrections are.
fn personal_part(complaint: &Complaint) -> Complaint {
    let mut personal = Complaint {
        complainant: complaint.complainant.clone(),
        agent: complaint.agent.clone(),
        representatives: complaint.representatives.clone(),
        content_confirmations: complaint
            .content_confirmations
            .iter()
            .map(|c| ContentConfirmation {
                corrections: c.corrections.clone(),
                note: c.note.clone(),
                ..ContentConfirmation::default()
            })
            .collect(),
        personal_data_supplements: complaint
            .personal_data_supplements
            .iter()
            .map(|s| PersonalDataSupplement { text: s.text.clone(), ..PersonalDataSupplement::default() })
            .collect(),
        demand: complaint.demand.clone(),
        facts: complaint.facts.clone(),
        staff_notes: complaint.staff_notes.clone(),
        withdraw_reason: complaint.withdraw_reason.clone(),
        evidence: complaint
            .evidence
            .iter()
            .map(|e| EvidenceReference { description: e.description.clone(), ..EvidenceReference::default() })
            .collect(),
        ..Complaint::default()
    };
    // Only the words that masking changes need keeping twice.
    super::mask::free_texts(&mut personal, &|text| {
        if redress_platform::free_text_pii::contains(text) { text.to_owned() } else { String::new() }
    });
    personal
}

/// Puts the personal part (decrypted) back into a stored complaint.
fn restore(complaint: &mut Complaint, personal: Complaint) {
    complaint.complainant = personal.complainant;
    complaint.agent = personal.agent;
    complaint.representatives = personal.representatives;
    for (stored, sealed) in complaint.content_confirmations.iter_mut().zip(personal.content_confirmations) {
        stored.corrections = sealed.corrections;
        restore_text(&mut stored.note, sealed.note);
    }
    for (stored, sealed) in complaint.personal_data_supplements.iter_mut().zip(personal.personal_data_supplements) {
        stored.text = sealed.text;
    }
    restore_text(&mut complaint.demand, personal.demand);
    restore_text(&mut complaint.facts, personal.facts);
    restore_text(&mut complaint.staff_notes, personal.staff_notes);
    restore_text(&mut complaint.withdraw_reason, personal.withdraw_reason);
    for (stored, sealed) in complaint.evidence.iter_mut().zip(personal.evidence) {
        restore_text(&mut stored.description, sealed.description);
    }
}

/// A free-text field sealed in clear replaces its masked form (one sealed empty had nothing
/// to mask, or was sealed before free text was).
fn restore_text(stored: &mut String, sealed: String) {
    if !sealed.is_empty() {
        *stored = sealed;
    }
}

fn decode_personal(bytes: &[u8]) -> Result<Complaint, PiiError> {
    Complaint::decode(bytes).map_err(|e| PiiError::Corrupt(e.to_string()))
}

/// The stored form of a complaint in clear, for subject `subject_id` whose data key is `key`:
/// the record with its personal fields masked, so that gets and lists never decrypt, and the
/// personal part sealed, bound to the complaint and the subject.
pub fn seal(complaint: &Complaint, subject_id: &str, key: &DataKey) -> Result<(Vec<u8>, Vec<u8>), PiiError> {
    let id = complaint.name.strip_prefix("complaints/").unwrap_or(&complaint.name);
    let sealed = key.seal(&complaint_aad(id, subject_id), &personal_part(complaint).encode_to_vec())?;
    let mut masked = complaint.clone();
    super::mask::complaint(&mut masked);
    Ok((masked.encode_to_vec(), sealed))
}

/// The form of free-text checking [`seal`] gives a record (`complaints.free_text_form`): every
/// free-text field's identifiers masked in the record, the words as written sealed. Complaints
/// recorded before identifiers in free text were detected are of form 0.
pub const FREE_TEXT_FORM: i32 = 1;

/// Whether a stored record's free text holds identifiers in clear, as records written before
/// they were detected may.
pub fn holds_clear_free_text(record: &Complaint) -> bool {
    let found = std::cell::Cell::new(false);
    super::mask::free_texts(&mut record.clone(), &|text| {
        if !found.get() && redress_platform::free_text_pii::contains(text) {
            found.set(true);
        }
        text.to_owned()
    });
    found.get()
}

/// Puts the personal part sealed by [`seal`] back into the stored record of complaint
/// `complaint_id`, with the subject's wrapped data key.
pub fn unseal(
    keyring: &Keyring,
    record: &mut Complaint,
    complaint_id: &str,
    subject_id: &str,
    wrapped: &WrappedKey,
    sealed: &[u8],
) -> Result<(), PiiError> {
    let key = keyring.unwrap(subject_id, wrapped)?;
    let personal = key.open(&complaint_aad(complaint_id, subject_id), sealed)?;
    restore(record, decode_personal(&personal)?);
    Ok(())
}

/// What is left of a complainant's personal fields once the subject is erased.
pub const ERASED: &str = "[已删除]";

/// Replaces every personal field of a stored (masked) complaint with [`ERASED`]; free text
/// keeps its masked words, the only form of it left once the key is destroyed.
pub fn erase(complaint: &mut Complaint) {
    crate::domain::mask::replace_all(complaint, ERASED);
}

/// A fixed keyring for tests.
#[cfg(test)]
pub fn test_keyring() -> Keyring {
    #[allow(clippy::unwrap_used)]
    Keyring::new("k1", &[("k1".to_owned(), vec![7u8; 32])], &[5u8; 32]).unwrap()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn keyring(active: &str) -> Keyring {
        let masters = vec![("k1".to_owned(), vec![1u8; 32]), ("k2".to_owned(), vec![2u8; 32])];
        Keyring::new(active, &masters, &[9u8; 32]).unwrap()
    }

    #[test]
    fn sealed_values_open_only_on_their_own_row() {
        let ring = keyring("k1");
        let (key, wrapped) = ring.new_data_key("s1").unwrap();
        let sealed = key.seal(&complaint_aad("c1", "s1"), b"13812345678").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"13812345678"));
        let key = ring.unwrap("s1", &wrapped).unwrap();
        assert_eq!(key.open(&complaint_aad("c1", "s1"), &sealed).unwrap(), b"13812345678");
        assert!(matches!(key.open(&complaint_aad("c2", "s1"), &sealed), Err(PiiError::Decrypt)));
        // A wrapped key moved to another subject does not unwrap.
        assert!(matches!(ring.unwrap("s2", &wrapped), Err(PiiError::Decrypt)));
    }

    #[test]
    fn rotation_rewraps_under_the_active_key_and_old_keys_still_open() {
        let old = keyring("k1");
        let (key, wrapped) = old.new_data_key("s1").unwrap();
        let sealed = key.seal(b"aad", b"secret").unwrap();
        let new = keyring("k2");
        assert_eq!(new.unwrap("s1", &wrapped).unwrap().open(b"aad", &sealed).unwrap(), b"secret");
        let rewrapped = new.rewrap("s1", &wrapped).unwrap().unwrap();
        assert_eq!(rewrapped.key_id, "k2");
        assert_eq!(new.unwrap("s1", &rewrapped).unwrap().open(b"aad", &sealed).unwrap(), b"secret");
        assert!(new.rewrap("s1", &rewrapped).unwrap().is_none());
        let only_k1 = Keyring::new("k1", &[("k1".to_owned(), vec![1u8; 32])], &[9u8; 32]).unwrap();
        assert!(matches!(only_k1.unwrap("s1", &rewrapped), Err(PiiError::UnknownKey(_))));
    }

    #[test]
    fn corrections_are_sealed_with_the_complainant_and_masked_in_the_record() {
        let ring = keyring("k1");
        let (key, wrapped) = ring.new_data_key("s1").unwrap();
        let mut complaint = crate::testing::complaint("facts");
        complaint.name = "complaints/c1".to_owned();
        complaint.content_confirmations = vec![
            ContentConfirmation { confirmed: true, ..ContentConfirmation::default() },
            ContentConfirmation {
                corrections: "手机号应为 13900001111".to_owned(), ..ContentConfirmation::default()
            },
        ];
        let (record, sealed) = seal(&complaint, "s1", &key).unwrap();
        assert!(!record.windows(11).any(|w| w == b"13900001111"), "the record keeps no correction in clear");
        let mut stored = Complaint::decode(record.as_slice()).unwrap();
        assert_eq!(stored.content_confirmations[1].corrections, crate::domain::mask::MASKED_TEXT);
        assert!(stored.content_confirmations[0].confirmed, "the rest of a confirmation stays in the record");
        unseal(&ring, &mut stored, "c1", "s1", &wrapped, &sealed).unwrap();
        assert_eq!(stored, complaint);
    }

    #[test]
    fn identifiers_in_free_text_are_sealed_masked_in_the_record_and_only_masked_once_erased() {
        let ring = keyring("k1");
        let (key, wrapped) = ring.new_data_key("s1").unwrap();
        let mut complaint = crate::testing::complaint("卡号 6222020200112233446 被扣 300.00 元");
        complaint.name = "complaints/c1".to_owned();
        complaint.demand = "退款".to_owned();
        complaint.staff_notes = "客户另留邮箱 wang.li@example.cn".to_owned();
        let (record, sealed) = seal(&complaint, "s1", &key).unwrap();
        for clear in [&b"6222020200112233446"[..], b"wang.li@"] {
            assert!(!record.windows(clear.len()).any(|w| w == clear), "the record keeps no identifier in clear");
        }
        let mut stored = Complaint::decode(record.as_slice()).unwrap();
        assert_eq!(stored.facts, "卡号 6222***********3446 被扣 300.00 元");
        assert_eq!(stored.demand, "退款");
        assert!(holds_clear_free_text(&complaint) && !holds_clear_free_text(&stored));
        let masked = stored.clone();
        unseal(&ring, &mut stored, "c1", "s1", &wrapped, &sealed).unwrap();
        assert_eq!(stored, complaint, "the key restores the words as written");
        let mut erased = masked.clone();
        erase(&mut erased);
        assert_eq!((erased.facts, erased.staff_notes), (masked.facts, masked.staff_notes));
    }

    #[test]
    fn blind_indexes_are_keyed_and_normalised() {
        let ring = keyring("k1");
        let a = ring.identifier("phone", "institutions/acme", "138-1234 5678");
        for spelling in ["13812345678", "+86 138 1234 5678", "86 13812345678", "008613812345678"] {
            assert_eq!(a, ring.identifier("phone", "institutions/acme", spelling), "{spelling}");
        }
        assert_ne!(a, ring.identifier("id", "institutions/acme", "13812345678"));
        let other = Keyring::new("k1", &[("k1".to_owned(), vec![1u8; 32])], &[8u8; 32]).unwrap();
        assert_ne!(a, other.identifier("phone", "institutions/acme", "13812345678"));
        assert!(!a.contains("5678"));
        let platform = BlindIndexKey::new(&[9u8; 32]).unwrap();
        assert_eq!(a, platform.identifier("phone", "institutions/acme", "+8613812345678"));
    }

    #[test]
    fn bad_key_material_is_refused() {
        assert!(Keyring::new("k1", &[("k1".to_owned(), vec![1u8; 16])], &[9u8; 32]).is_err());
        assert!(Keyring::new("k9", &[("k1".to_owned(), vec![1u8; 32])], &[9u8; 32]).is_err());
        assert!(Keyring::new("k1", &[("k1".to_owned(), vec![1u8; 32])], &[9u8; 8]).is_err());
    }
}
