//! The data subjects of a batch of submissions: those the complainants' blind-index digests
//! already name, found with one query for the whole batch, and those the batch creates,
//! written with one statement. The matching rule is the domain's, as in a single submission
//! (`ops::subject_for`).

use std::collections::{HashMap, HashSet};

use redress_platform::time::{now, to_micros};
use redress_proto::redress::intake::v1::Complaint;

use super::BatchTx;
use crate::domain::pii::{DataKey, Keyring, WrappedKey};
use crate::domain::subjects::{self, ID_DOCUMENT};
use crate::store::{StoreError, Subject};

/// Most values bound in one statement's `IN (…)` list.
const LOOKUP_CHUNK: usize = 500;
/// Most subjects asked about in one identity-document look-up: up to this many, PostgreSQL
/// descends `subject_index_by_subject_kind` once per subject even before the table was first
/// analysed; for several hundred it would read every identity document's entry instead.
pub(in crate::store) const ID_DOCUMENT_CHUNK: usize = 100;

/// The stored subjects some digests name; the digests follow, then `)`.
pub(in crate::store) const BY_DIGESTS: &str = "SELECT i.digest, s.id, s.key_id, s.wrapped_key, \
     s.restrict_time_us IS NOT NULL FROM subject_index i JOIN subjects s ON s.id = i.subject_id \
     WHERE s.wrapped_key IS NOT NULL AND i.digest IN (";

/// Which of some subjects are known by an identity document, on PostgreSQL
/// (`subject_index_by_subject_kind`); the subject ids follow, then `)`.
pub(in crate::store) const WITH_ID_DOCUMENT_POSTGRES: &str =
    "SELECT DISTINCT subject_id FROM subject_index WHERE kind = 'id' AND subject_id IN (";

/// Which of some subjects are known by an identity document, on SQLite; the subject ids
/// follow, then `)`. Without its index named, SQLite reads the entries of every identity
/// document (`kind = 'id'` leads the primary key) and looks up each one's subject: a million
/// rows for a million people.
pub(in crate::store) const WITH_ID_DOCUMENT: &str = "SELECT DISTINCT subject_id FROM subject_index \
     INDEXED BY subject_index_by_subject WHERE kind = 'id' AND subject_id IN (";

pub(super) struct Subjects {
    /// Digest → subject id, for every digest known before the batch or added by it.
    by_digest: HashMap<String, String>,
    /// Subject id → wrapped key, as stored.
    stored: HashMap<String, WrappedKey>,
    /// Unwrapped or new keys, by subject id.
    keys: HashMap<String, DataKey>,
    new_subjects: Vec<(String, WrappedKey)>,
    new_index: Vec<(&'static str, String, String)>,
    /// Subjects known by an identity document.
    with_id: HashSet<String>,
    /// Subjects that restricted the processing of their personal information.
    restricted: HashSet<String>,
}

impl Subjects {
    /// The subjects the complainants of `complaints` may be. On PostgreSQL the batch holds
    /// the advisory locks of their digests and locks the rows of the subjects they name before
    /// asking which of them an identity document knows: another person's submission giving one
    /// of them a document (through another of its phones) holds its row until it commits.
    pub async fn load<'c, C: BatchTx + ?Sized>(
        conn: &mut C,
        keyring: &Keyring,
        complaints: impl Iterator<Item = &'c Complaint>,
    ) -> Result<Self, StoreError> {
        let digests: Vec<(&'static str, String)> = complaints.flat_map(|c| subjects::digests(keyring, c)).collect();
        let mut found = Self {
            by_digest: HashMap::new(),
            stored: HashMap::new(),
            keys: HashMap::new(),
            new_subjects: Vec::new(),
            new_index: Vec::new(),
            with_id: HashSet::new(),
            restricted: HashSet::new(),
        };
        if digests.is_empty() {
            return Ok(found);
        }
        conn.lock_identifiers(&digests).await?;
        for chunk in digests.chunks(LOOKUP_CHUNK) {
            let chunk: Vec<&str> = chunk.iter().map(|(_, d)| d.as_str()).collect();
            for (digest, id, key_id, sealed, restricted) in conn.subjects_by_digests(&chunk).await? {
                if restricted {
                    found.restricted.insert(id.clone());
                }
                found.stored.insert(id.clone(), WrappedKey { key_id, sealed });
                found.by_digest.insert(digest, id);
            }
        }
        let mut ids: Vec<&str> = found.stored.keys().map(String::as_str).collect();
        ids.sort_unstable();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            conn.lock_subject_rows(chunk).await?;
        }
        for chunk in ids.chunks(ID_DOCUMENT_CHUNK) {
            found.with_id.extend(conn.subjects_with_id_document(chunk).await?);
        }
        Ok(found)
    }

    /// Whether a subject stored before this batch restricted its processing.
    pub fn restricted(&self, subject_id: &str) -> bool {
        self.restricted.contains(subject_id)
    }

    /// The complaint's subject, and whether it was stored before this batch.
    pub fn subject_for(&mut self, keyring: &Keyring, complaint: &Complaint) -> Result<(Subject, bool), StoreError> {
        let digests = subjects::digests(keyring, complaint);
        let has_id = subjects::has_id_document(&digests);
        let found = digests.iter().find_map(|(kind, d)| {
            self.by_digest.get(d).filter(|id| subjects::same_person(kind, has_id, self.with_id.contains(*id))).cloned()
        });
        let (id, known) = match found {
            Some(id) => {
                let known = self.stored.contains_key(&id);
                (id, known)
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                let (key, wrapped) = keyring.new_data_key(&id)?;
                self.keys.insert(id.clone(), key);
                self.new_subjects.push((id.clone(), wrapped));
                (id, false)
            }
        };
        let key = match self.keys.get(&id) {
            Some(key) => key.clone(),
            None => {
                let wrapped = self.stored.get(&id).ok_or_else(|| anyhow::anyhow!("subject {id} has no key"))?;
                let key = keyring.unwrap(&id, wrapped)?;
                self.keys.insert(id.clone(), key.clone());
                key
            }
        };
        for (kind, digest) in digests {
            if kind == ID_DOCUMENT {
                self.with_id.insert(id.clone());
            }
            if !self.by_digest.contains_key(&digest) {
                self.by_digest.insert(digest.clone(), id.clone());
                self.new_index.push((kind, digest, id.clone()));
            }
        }
        Ok((Subject { id, key }, known))
    }

    /// Writes the subjects and index entries the batch created.
    pub async fn write<C: BatchTx + ?Sized>(self, conn: &mut C) -> Result<(), StoreError> {
        let now = to_micros(now());
        conn.insert_subjects(&self.new_subjects, now).await?;
        conn.insert_index_entries(&self.new_index).await
    }
}
