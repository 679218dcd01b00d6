//! The access log of personal information (D-PII-4) as a tamper-evident chain. Every entry's
//! hash is an HMAC-SHA256, under a key kept outside the database (`pii.access_log_keys`), of
//! its own fields and the previous entry's hash, and the log keeps the length and head hash of
//! its chain, sealed with an HMAC under the same keys. So editing, removing or inserting
//! entries is detected, and so is a chain rebuilt, or cut short with an earlier head written
//! back, by someone who can write the database but does not hold the key.
//!
//! Each entry names the key it was chained under, so keys can be rotated: entries chained
//! under a retired key verify while that key stays configured. Entries written before the log
//! was chained carry no position, and a head written before heads were sealed carries no
//! seal. Only when the operator asks for it (`pii.chain_legacy_access_log`) does opening the
//! store append such entries (those recorded before the first chained one) to the chain and
//! seal such a head, over a chain that verifies: nothing in the database decides it, since
//! whoever can write the database could fake that. An entry outside the chain recorded after
//! the first chained one is a break.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest accepted key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The key id of the key derived from the blind-index key when no access-log key is
/// configured.
pub const DERIVED_KEY_ID: &str = "index";

/// The keys the access log is chained under: the active one, which chains new entries, and
/// retired ones, kept to verify the entries chained under them.
#[derive(Clone)]
pub struct AccessLogKeys {
    active: String,
    keys: BTreeMap<String, Hmac<Sha256>>,
    /// Whether opening the store chains entries recorded before the chain existed and seals a
    /// head written before heads were sealed (`pii.chain_legacy_access_log`).
    chain_legacy: bool,
}

impl std::fmt::Debug for AccessLogKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogKeys")
            .field("active", &self.active)
            .field("ids", &self.keys.keys())
            .field("chain_legacy", &self.chain_legacy)
            .finish()
    }
}

impl AccessLogKeys {
    /// `keys` by id (each at least [`MIN_KEY_BYTES`] bytes), new entries chained under `active`.
    pub fn new(active: &str, keys: &[(String, Vec<u8>)]) -> Result<Self, String> {
        if active.is_empty() {
            return Err("the active access-log key id is empty".to_owned());
        }
        let mut ring = BTreeMap::new();
        for (id, key) in keys {
            if id.is_empty() || key.len() < MIN_KEY_BYTES {
                return Err(format!("access-log key {id:?} must have an id and at least {MIN_KEY_BYTES} bytes"));
            }
            let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| format!("access-log key {id}: {e}"))?;
            ring.insert(id.clone(), mac);
        }
        if !ring.contains_key(active) {
            return Err(format!("the active access-log key {active:?} is not among the access-log keys"));
        }
        Ok(Self { active: active.to_owned(), keys: ring, chain_legacy: false })
    }

    /// The key used when none is configured: derived from the blind-index key (itself kept
    /// outside the database), under id [`DERIVED_KEY_ID`].
    pub fn derived(index_key: &[u8]) -> Result<Self, String> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(index_key).map_err(|e| e.to_string())?;
        mac.update(b"redress.pii-access-log.key.v1");
        let key = mac.finalize().into_bytes().to_vec();
        Self::new(DERIVED_KEY_ID, &[(DERIVED_KEY_ID.to_owned(), key)])
    }

    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// The same keys, with entries recorded before the chain existed chained and a head
    /// written before heads were sealed sealed when the store opens (`yes`), or not.
    pub fn chaining_legacy(self, yes: bool) -> Self {
        Self { chain_legacy: yes, ..self }
    }

    /// Whether opening the store chains legacy entries and seals a legacy head.
    pub fn chains_legacy(&self) -> bool {
        self.chain_legacy
    }

    /// The seal of a head (`length` entries ending in `head`) under the active key, as stored:
    /// `<key id>:<hex HMAC>`.
    pub fn seal_head(&self, length: i64, head: &str) -> String {
        let mac = self.keys.get(&self.active).expect("the active key is in the ring");
        format!("{}:{}", self.active, hex::encode(head_mac(mac, length, head).finalize().into_bytes()))
    }

    /// Whether the head's seal verifies under the key it names. The head of a log never
    /// written to (no entries, no seal) needs none.
    pub fn check_seal(&self, head: &ChainHead) -> Result<(), Broken> {
        if (head.length, head.head.as_str(), head.seal.as_str()) == (0, "", "") {
            return Ok(());
        }
        let fail = |reason: String| Err(Broken { position: head.length + 1, reason });
        let Some((id, mac)) = head.seal.rsplit_once(':') else {
            return fail(format!("the head the log records ({} entries) is not sealed", head.length));
        };
        let Some(key) = self.keys.get(id) else {
            return fail(format!(
                "the head the log records is sealed under access-log key {id:?}, which is not configured"
            ));
        };
        // Compared in constant time, so the time taken tells nothing of how much of a forged
        // seal is right.
        let verified =
            hex::decode(mac).is_ok_and(|mac| head_mac(key, head.length, &head.head).verify_slice(&mac).is_ok());
        if !verified {
            return fail(format!(
                "the head the log records ({} entries) does not match its seal: entries may have been removed \
                 from the end",
                head.length
            ));
        }
        Ok(())
    }
}

/// The length and head hash of the access log's chain, and their seal.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ChainHead {
    pub length: i64,
    pub head: String,
    pub seal: String,
}

impl ChainHead {
    /// The head after `entry` was chained onto this one, sealed under the active key when this
    /// one's seal verifies; otherwise it keeps this one's seal, so an append cannot make a head
    /// cut short or unsealed in the database verify again.
    pub fn after(&self, keys: &AccessLogKeys, entry: &LogEntry) -> Self {
        let seal = match keys.check_seal(self) {
            Ok(()) => keys.seal_head(entry.chain_position, &entry.hash),
            Err(broken) => {
                tracing::error!(reason = %broken.reason, "the access log's head does not verify; it stays unsealed");
                self.seal.clone()
            }
        };
        Self { length: entry.chain_position, head: entry.hash.clone(), seal }
    }
}

/// The keyed hash of the chain's head: its length and the hash it ends in.
/// The HMAC of a head, to finalize into a seal or verify one against.
fn head_mac(mac: &Hmac<Sha256>, length: i64, head: &str) -> Hmac<Sha256> {
    let mut mac = mac.clone();
    field(&mut mac, b"redress.pii-access.head.v1");
    mac.update(&length.to_le_bytes());
    field(&mut mac, head.as_bytes());
    mac
}

/// One entry of the access log, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LogEntry {
    /// Place in the chain, from 1.
    pub chain_position: i64,
    pub complaint_id: Option<String>,
    pub subject_id: String,
    pub actor: String,
    pub action: String,
    pub reason: String,
    pub access_time_us: i64,
    pub previous_hash: String,
    pub hash: String,
    pub key_id: String,
}

/// Length-prefixed, so that no two different entries hash the same bytes.
fn field(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_le_bytes());
    mac.update(bytes);
}

/// The keyed hash of an entry's canonical content and the hash before it.
fn keyed_hash(mac: &Hmac<Sha256>, e: &LogEntry) -> String {
    let mut mac = mac.clone();
    field(&mut mac, b"redress.pii-access.v1");
    mac.update(&e.chain_position.to_le_bytes());
    match &e.complaint_id {
        Some(id) => {
            mac.update(&[1]);
            field(&mut mac, id.as_bytes());
        }
        None => mac.update(&[0]),
    }
    field(&mut mac, e.subject_id.as_bytes());
    field(&mut mac, e.actor.as_bytes());
    field(&mut mac, e.action.as_bytes());
    field(&mut mac, e.reason.as_bytes());
    mac.update(&e.access_time_us.to_le_bytes());
    field(&mut mac, e.previous_hash.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl LogEntry {
    /// Chains the entry after the log's head (`length` entries ending in `head`) under the
    /// active key: its position, previous hash, hash and key id are set.
    pub fn chain(&mut self, keys: &AccessLogKeys, length: i64, head: &str) {
        self.chain_position = length + 1;
        head.clone_into(&mut self.previous_hash);
        let mac = keys.keys.get(&keys.active).expect("the active key is in the ring");
        self.hash = keyed_hash(mac, self);
        keys.active.clone_into(&mut self.key_id);
    }
}

/// Where the chain stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Position of the first entry that does not verify (the expected one when missing).
    pub position: i64,
    pub reason: String,
}

/// Verifies a chain read in pages, in position order: feed every page to [`Verifier::page`],
/// then [`Verifier::finish`] with the head the log records.
pub struct Verifier<'k> {
    keys: &'k AccessLogKeys,
    checked: i64,
    previous: String,
    broken: Option<Broken>,
}

impl<'k> Verifier<'k> {
    pub fn new(keys: &'k AccessLogKeys) -> Self {
        Self { keys, checked: 0, previous: String::new(), broken: None }
    }

    /// Checks the next entries; once one fails, the rest are only counted.
    pub fn page(&mut self, entries: &[LogEntry]) {
        for entry in entries {
            self.checked += 1;
            if self.broken.is_some() {
                continue;
            }
            let expected = self.checked;
            let fail = |reason: String| Some(Broken { position: expected, reason });
            self.broken = if entry.chain_position != expected {
                fail(format!("entry {expected} is missing (found {} in its place)", entry.chain_position))
            } else if entry.previous_hash != self.previous {
                fail("does not link to the previous entry".to_owned())
            } else {
                match self.keys.keys.get(&entry.key_id) {
                    None => {
                        fail(format!("is chained under access-log key {:?}, which is not configured", entry.key_id))
                    }
                    Some(mac) if keyed_hash(mac, entry) != entry.hash => {
                        fail("content no longer matches its hash".to_owned())
                    }
                    Some(_) => None,
                }
            };
            self.previous.clone_from(&entry.hash);
        }
    }

    /// Entries checked so far.
    pub fn checked(&self) -> i64 {
        self.checked
    }

    /// The verdict, against the head the log records (`length` entries ending in `head`).
    pub fn finish(self, length: i64, head: &str) -> Result<(), Broken> {
        if let Some(broken) = self.broken {
            return Err(broken);
        }
        if self.checked != length || self.previous != head {
            return Err(Broken {
                position: self.checked.min(length) + 1,
                reason: format!("the log records {length} entries ending in {head:?}, the chain has {}", self.checked),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn keys(byte: u8) -> AccessLogKeys {
        AccessLogKeys::new("a1", &[("a1".to_owned(), vec![byte; 32])]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn chain(keys: &AccessLogKeys, n: i64) -> Vec<LogEntry> {
        let mut entries: Vec<LogEntry> = Vec::new();
        for i in 0..n {
            let head = entries.last().map(|e| e.hash.clone()).unwrap_or_default();
            let mut entry = LogEntry {
                chain_position: 0,
                complaint_id: (i % 2 == 0).then(|| format!("c{i}")),
                subject_id: "s1".to_owned(),
                actor: "user:dpo".to_owned(),
                action: "read".to_owned(),
                reason: format!("reason {i}"),
                access_time_us: 1_000 + i,
                previous_hash: String::new(),
                hash: String::new(),
                key_id: String::new(),
            };
            entry.chain(keys, entries.len() as i64, &head);
            entries.push(entry);
        }
        entries
    }

    fn verify(keys: &AccessLogKeys, entries: &[LogEntry], length: i64, head: &str) -> Result<(), Broken> {
        let mut verifier = Verifier::new(keys);
        for page in entries.chunks(2) {
            verifier.page(page);
        }
        verifier.finish(length, head)
    }

    #[test]
    fn an_untouched_chain_verifies_and_every_change_is_detected() {
        let keys = keys(1);
        let entries = chain(&keys, 5);
        let head = entries[4].hash.clone();
        assert_eq!(verify(&keys, &entries, 5, &head), Ok(()));
        assert_eq!(verify(&keys, &[], 0, ""), Ok(()));

        let mut altered = entries.clone();
        altered[2].reason = "nothing to see".to_owned();
        assert_eq!(verify(&keys, &altered, 5, &head).map_err(|b| b.position), Err(3));

        let mut unlinked = entries.clone();
        unlinked[3].complaint_id = Some("c1".to_owned());
        assert_eq!(verify(&keys, &unlinked, 5, &head).map_err(|b| b.position), Err(4));

        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify(&keys, &removed, 5, &head).map_err(|b| b.position), Err(2));

        assert_eq!(verify(&keys, &entries[..4], 5, &head).map_err(|b| b.position), Err(5), "truncated");
    }

    #[test]
    fn a_chain_rebuilt_without_the_key_does_not_verify() {
        let keys = keys(1);
        let mut entries = chain(&keys, 3);
        entries[1].actor = "user:someone-else".to_owned();
        // Rebuilt with a key of the forger's own, head included.
        let forger = keys_with_id("a1", 2);
        let mut head = String::new();
        for (i, entry) in entries.iter_mut().enumerate() {
            entry.chain(&forger, i as i64, &head);
            head.clone_from(&entry.hash);
        }
        assert_eq!(verify(&keys, &entries, 3, &head).map_err(|b| b.position), Err(1));
    }

    #[test]
    fn a_head_cut_short_unsealed_or_sealed_without_the_key_does_not_verify() {
        let keys = keys(1);
        let entries = chain(&keys, 4);
        let sealed = |n: usize| {
            let (length, head) = (n as i64, entries[n - 1].hash.clone());
            ChainHead { seal: keys.seal_head(length, &head), length, head }
        };
        assert_eq!(keys.check_seal(&sealed(4)), Ok(()));
        assert_eq!(keys.check_seal(&ChainHead::default()), Ok(()), "a log never written to");
        // The newest entry removed and the head before it written back: with the seal as it
        // was, without one, or with one of the forger's own.
        let cut = ChainHead { seal: sealed(4).seal, ..sealed(3) };
        let forger = keys_with_id("a1", 2);
        let forged = ChainHead { seal: forger.seal_head(3, &cut.head), ..cut.clone() };
        let unsealed = ChainHead { seal: String::new(), ..cut.clone() };
        for head in [&cut, &forged, &unsealed] {
            assert_eq!(keys.check_seal(head).map_err(|b| b.position), Err(4), "{head:?}");
        }
        let emptied = ChainHead { seal: sealed(4).seal, length: 0, head: String::new() };
        assert!(keys.check_seal(&emptied).is_err());
        // An append after the cut keeps the stale seal; after an intact head it seals.
        let mut next = LogEntry { reason: "after the cut".to_owned(), ..entries[3].clone() };
        next.chain(&keys, 3, &cut.head);
        assert!(keys.check_seal(&cut.after(&keys, &next)).is_err());
        let mut next = entries[3].clone();
        next.chain(&keys, 4, &entries[3].hash);
        assert_eq!(keys.check_seal(&sealed(4).after(&keys, &next)), Ok(()));
    }

    fn keys_with_id(id: &str, byte: u8) -> AccessLogKeys {
        AccessLogKeys::new(id, &[(id.to_owned(), vec![byte; 32])]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn entries_under_a_retired_key_verify_while_it_is_configured() {
        let old = keys_with_id("a1", 1);
        let entries = chain(&old, 2);
        let head = entries[1].hash.clone();
        let rotated =
            AccessLogKeys::new("a2", &[("a1".to_owned(), vec![1; 32]), ("a2".to_owned(), vec![2; 32])]).unwrap();
        assert_eq!(verify(&rotated, &entries, 2, &head), Ok(()));
        let without = keys_with_id("a2", 2);
        assert!(verify(&without, &entries, 2, &head).unwrap_err().reason.contains("not configured"));
        assert!(AccessLogKeys::new("a1", &[("a1".to_owned(), vec![1; 16])]).is_err());
        assert_ne!(AccessLogKeys::derived(&[5; 32]).unwrap().active_id(), "");
    }
}
