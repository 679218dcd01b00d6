//! The tamper-evident audit trail of a case (D-CASE-2). Every entry's hash is an
//! HMAC-SHA256, under a key kept outside the database, of its own fields and the previous
//! entry's hash, and the case keeps the length and head hash of its trail, sealed with an
//! HMAC under the same keys. So editing, removing, inserting or truncating stored entries is
//! detected, and so is a trail rebuilt, or cut short with an earlier head written back, by
//! someone who can write the database but does not hold the key.
//!
//! Each entry names the key it was chained under (`key_id`), so keys can be rotated: entries
//! chained under a retired key verify as long as that key stays configured. Entries written
//! before the trail was keyed carry no key id, and heads written before they were sealed
//! carry no seal; [`verify`] refuses both. Only when the operator asks for it
//! (`audit.rechain_legacy`) does opening the store chain such entries again under the active
//! key ([`rechain`]) and seal such heads, and only where the trail still verifies as stored:
//! nothing in the database decides it, since whoever can write the database could fake that.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The keys an audit trail is chained under: the active one, which chains new entries, and
/// retired ones, kept to verify the entries chained under them.
#[derive(Clone)]
pub struct AuditKeys {
    active: String,
    keys: BTreeMap<String, Hmac<Sha256>>,
    /// Whether opening the store chains entries written before keying again under the active
    /// key and seals heads written before sealing (`audit.rechain_legacy`).
    rechain_legacy: bool,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys")
            .field("active", &self.active)
            .field("ids", &self.keys.keys())
            .field("rechain_legacy", &self.rechain_legacy)
            .finish()
    }
}

/// Shortest accepted key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

impl AuditKeys {
    /// `keys` by id (each at least [`MIN_KEY_BYTES`] bytes), new entries chained under `active`.
    pub fn new(active: &str, keys: &[(String, Vec<u8>)]) -> anyhow::Result<Self> {
        anyhow::ensure!(!active.is_empty(), "the active audit key id is empty");
        let mut ring = BTreeMap::new();
        for (id, key) in keys {
            anyhow::ensure!(!id.is_empty(), "an audit key has an empty id");
            anyhow::ensure!(
                key.len() >= MIN_KEY_BYTES,
                "audit key {id} has {} bytes, at least {MIN_KEY_BYTES} are required",
                key.len()
            );
            let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| anyhow::anyhow!("audit key {id}: {e}"))?;
            ring.insert(id.clone(), mac);
        }
        anyhow::ensure!(ring.contains_key(active), "the active audit key {active} is not among the audit keys");
        Ok(Self { active: active.to_owned(), keys: ring, rechain_legacy: false })
    }

    /// The same keys, with entries and heads written before keying chained again and sealed
    /// when the store opens (`yes`), or not.
    pub fn rechaining_legacy(self, yes: bool) -> Self {
        Self { rechain_legacy: yes, ..self }
    }

    /// Whether opening the store chains legacy entries again and seals legacy heads.
    pub fn rechains_legacy(&self) -> bool {
        self.rechain_legacy
    }

    /// The seal of `case_id`'s head (`length` entries ending in `head`) under the active key,
    /// as stored: `<key id>:<hex HMAC>`.
    pub fn seal_head(&self, case_id: &str, length: i64, head: &str) -> String {
        let mac = self.mac(&self.active).expect("the active key is in the ring");
        format!("{}:{}", self.active, hex::encode(head_mac(mac, case_id, length, head).finalize().into_bytes()))
    }

    /// Whether `seal` is the seal of `case_id`'s head under the key it names; why not.
    fn check_seal(&self, case_id: &str, length: i64, head: &str, seal: &str) -> Result<(), String> {
        let Some((id, mac)) = seal.rsplit_once(':') else {
            return Err(format!("the head the case records ({length} entries) is not sealed"));
        };
        let Some(key) = self.mac(id) else {
            return Err(format!("the head the case records is sealed under audit key {id}, which is not configured"));
        };
        // Compared in constant time, so the time taken tells nothing of how much of a forged
        // seal is right.
        let verified =
            hex::decode(mac).is_ok_and(|mac| head_mac(key, case_id, length, head).verify_slice(&mac).is_ok());
        if !verified {
            return Err(format!(
                "the head the case records ({length} entries) does not match its seal: \
                 entries may have been removed from the end"
            ));
        }
        Ok(())
    }

    /// The id new entries are chained under.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    fn mac(&self, id: &str) -> Option<&Hmac<Sha256>> {
        self.keys.get(id)
    }
}

/// One recorded entry of a case's trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub sequence: i64,
    pub action: String,
    pub actor: String,
    pub record_time_us: i64,
    pub details: BTreeMap<String, String>,
    pub previous_hash: String,
    pub hash: String,
    /// The key the entry's hash was made with; empty for an entry chained before the trail
    /// was keyed (a plain SHA-256, which anyone can recompute).
    pub key_id: String,
}

/// Length-prefixed, so that no two different entries hash the same bytes.
fn field(out: &mut impl FnMut(&[u8]), bytes: &[u8]) {
    out(&(bytes.len() as u64).to_le_bytes());
    out(bytes);
}

/// Feeds an entry's fields to `out`, after the `label` of its scheme.
#[allow(clippy::too_many_arguments)]
fn entry_bytes(
    out: &mut impl FnMut(&[u8]),
    label: &[u8],
    case_id: &str,
    sequence: i64,
    action: &str,
    actor: &str,
    record_time_us: i64,
    details: &BTreeMap<String, String>,
    previous_hash: &str,
) {
    field(out, label);
    field(out, case_id.as_bytes());
    out(&sequence.to_le_bytes());
    field(out, action.as_bytes());
    field(out, actor.as_bytes());
    out(&record_time_us.to_le_bytes());
    out(&(details.len() as u64).to_le_bytes());
    for (key, value) in details {
        field(out, key.as_bytes());
        field(out, value.as_bytes());
    }
    field(out, previous_hash.as_bytes());
}

/// The unkeyed hash entries had before the trail was keyed; only read, to chain such entries
/// again under a key.
fn legacy_hash(case_id: &str, e: &AuditRecord) -> String {
    let mut hasher = Sha256::new();
    let label = b"redress.audit.v1";
    let details = &e.details;
    entry_bytes(
        &mut |b| hasher.update(b),
        label,
        case_id,
        e.sequence,
        &e.action,
        &e.actor,
        e.record_time_us,
        details,
        &e.previous_hash,
    );
    hex::encode(hasher.finalize())
}

/// The keyed hash of an entry of `case_id`'s trail.
#[allow(clippy::too_many_arguments)]
fn keyed_hash(
    mac: &Hmac<Sha256>,
    case_id: &str,
    sequence: i64,
    action: &str,
    actor: &str,
    record_time_us: i64,
    details: &BTreeMap<String, String>,
    previous_hash: &str,
) -> String {
    let mut mac = mac.clone();
    entry_bytes(
        &mut |b| mac.update(b),
        b"redress.audit.v2",
        case_id,
        sequence,
        action,
        actor,
        record_time_us,
        details,
        previous_hash,
    );
    hex::encode(mac.finalize().into_bytes())
}

/// The keyed hash of `case_id`'s head: the length of its trail and the hash it ends in, to
/// finalize into a seal or verify one against.
fn head_mac(mac: &Hmac<Sha256>, case_id: &str, length: i64, head: &str) -> Hmac<Sha256> {
    let mut mac = mac.clone();
    let mut out = |b: &[u8]| mac.update(b);
    field(&mut out, b"redress.audit.head.v1");
    field(&mut out, case_id.as_bytes());
    out(&length.to_le_bytes());
    field(&mut out, head.as_bytes());
    mac
}

/// The seal to store with `case_id`'s head after an append moved it from `loaded` (length,
/// head and seal as read) to `length` entries ending in `head`. A loaded head whose seal does
/// not verify keeps that seal, so an append cannot make a head cut short or unsealed in the
/// database verify again.
pub fn reseal(keys: &AuditKeys, case_id: &str, loaded: (i64, &str, &str), length: i64, head: &str) -> String {
    let (loaded_length, loaded_head, loaded_seal) = loaded;
    if (loaded_length, loaded_head) == (length, head) {
        return loaded_seal.to_owned();
    }
    match keys.check_seal(case_id, loaded_length, loaded_head, loaded_seal) {
        Ok(()) => keys.seal_head(case_id, length, head),
        Err(why) => {
            tracing::error!(case = %case_id, reason = %why, "audit trail head does not verify; it stays unsealed");
            loaded_seal.to_owned()
        }
    }
}

impl AuditRecord {
    /// The entry that follows `previous` (or starts the trail) in `case_id`'s trail, chained
    /// under the active key.
    pub fn after(
        keys: &AuditKeys,
        case_id: &str,
        previous: Option<(i64, &str)>,
        action: &str,
        actor: &str,
        record_time_us: i64,
        details: BTreeMap<String, String>,
    ) -> Self {
        let (sequence, previous_hash) = previous.map_or((1, String::new()), |(s, h)| (s + 1, h.to_owned()));
        let mut record = Self {
            sequence,
            action: action.to_owned(),
            actor: actor.to_owned(),
            record_time_us,
            details,
            previous_hash,
            hash: String::new(),
            key_id: String::new(),
        };
        record.seal(keys, case_id);
        record
    }

    /// Chains the entry under the active key (after its `previous_hash` is set).
    fn seal(&mut self, keys: &AuditKeys, case_id: &str) {
        let mac = keys.mac(&keys.active).expect("the active key is in the ring");
        self.hash = keyed_hash(
            mac,
            case_id,
            self.sequence,
            &self.action,
            &self.actor,
            self.record_time_us,
            &self.details,
            &self.previous_hash,
        );
        self.key_id = keys.active.clone();
    }
}

/// Where a trail stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Sequence of the first entry that does not verify (the expected one when missing).
    pub sequence: i64,
    pub reason: String,
}

/// Checks `entries` (in stored order) against each other and against the head the case
/// recorded (`length` entries ending in `head`, sealed with `seal`), each entry under the key it
/// names. An entry without a key, or under a key not configured, does not verify, nor does a
/// head without a seal that verifies; where entries without a key were also altered, the first
/// altered one is reported.
pub fn verify(
    keys: &AuditKeys,
    case_id: &str,
    entries: &[AuditRecord],
    length: i64,
    head: &str,
    seal: &str,
) -> Result<(), Broken> {
    verify_entries(keys, case_id, entries, length, head)?;
    keys.check_seal(case_id, length, head, seal).map_err(|reason| Broken { sequence: length + 1, reason })
}

/// [`verify`] but for the head's seal.
fn verify_entries(
    keys: &AuditKeys,
    case_id: &str,
    entries: &[AuditRecord],
    length: i64,
    head: &str,
) -> Result<(), Broken> {
    check(keys, case_id, entries, length, head)?;
    match entries.iter().find(|e| e.key_id.is_empty()) {
        Some(unkeyed) => {
            Err(Broken { sequence: unkeyed.sequence, reason: "is not chained under an audit key".to_owned() })
        }
        None => Ok(()),
    }
}

/// The seal for a head written before heads were sealed, when its trail verifies as stored
/// under the configured keys; `Ok(None)` when it is sealed already. Run only when the operator
/// asks for it (`audit.rechain_legacy`).
pub fn seal_legacy_head(
    keys: &AuditKeys,
    case_id: &str,
    entries: &[AuditRecord],
    length: i64,
    head: &str,
    seal: &str,
) -> Result<Option<String>, Broken> {
    if keys.check_seal(case_id, length, head, seal).is_ok() {
        return Ok(None);
    }
    verify_entries(keys, case_id, entries, length, head)?;
    Ok(Some(keys.seal_head(case_id, length, head)))
}

/// Checks the links and hashes of `entries` and the recorded head, an entry without a key
/// against its unkeyed hash.
fn check(keys: &AuditKeys, case_id: &str, entries: &[AuditRecord], length: i64, head: &str) -> Result<(), Broken> {
    let mut previous = String::new();
    for (i, entry) in entries.iter().enumerate() {
        let expected = i as i64 + 1;
        if entry.sequence != expected {
            return Err(Broken {
                sequence: expected,
                reason: format!("entry {expected} is missing (found {} in its place)", entry.sequence),
            });
        }
        if entry.previous_hash != previous {
            return Err(Broken { sequence: expected, reason: "does not link to the previous entry".to_owned() });
        }
        let recomputed = if entry.key_id.is_empty() {
            legacy_hash(case_id, entry)
        } else {
            let Some(mac) = keys.mac(&entry.key_id) else {
                return Err(Broken {
                    sequence: expected,
                    reason: format!("is chained under audit key {}, which is not configured", entry.key_id),
                });
            };
            keyed_hash(
                mac,
                case_id,
                entry.sequence,
                &entry.action,
                &entry.actor,
                entry.record_time_us,
                &entry.details,
                &entry.previous_hash,
            )
        };
        if recomputed != entry.hash {
            return Err(Broken { sequence: expected, reason: "content no longer matches its hash".to_owned() });
        }
        previous.clone_from(&entry.hash);
    }
    let found = entries.len() as i64;
    if found != length || previous != head {
        return Err(Broken {
            sequence: found.min(length) + 1,
            reason: format!("the case records {length} entries ending in {head}, the trail has {found}"),
        });
    }
    Ok(())
}

/// Chains a trail's entries made before the trail was keyed again under the active key, from
/// the first of them on (every later entry's link changes with it); the entries and the new
/// head, or `None` when there is nothing to chain again. A trail that does not verify as
/// stored (under its keys, or unkeyed where it has none) is left as it is, so that
/// verification keeps reporting where it broke.
pub fn rechain(
    keys: &AuditKeys,
    case_id: &str,
    entries: &[AuditRecord],
    length: i64,
    head: &str,
) -> Result<Option<(Vec<AuditRecord>, String)>, Broken> {
    let Some(first) = entries.iter().position(|e| e.key_id.is_empty()) else { return Ok(None) };
    check(keys, case_id, entries, length, head)?;
    let mut previous = if first == 0 { String::new() } else { entries[first - 1].hash.clone() };
    let mut changed = Vec::with_capacity(entries.len() - first);
    for entry in &entries[first..] {
        let mut entry = entry.clone();
        entry.previous_hash = previous.clone();
        entry.seal(keys, case_id);
        previous.clone_from(&entry.hash);
        changed.push(entry);
    }
    Ok(Some((changed, previous)))
}

/// `entries` chained the way trails were before they were keyed: plain SHA-256, no key id (what
/// a database written before keying holds, and what someone without the key can compute).
#[cfg(test)]
pub(crate) fn unkeyed_chain(case_id: &str, entries: &[AuditRecord]) -> Vec<AuditRecord> {
    let mut previous = String::new();
    entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.previous_hash = previous.clone();
            e.key_id = String::new();
            e.hash = legacy_hash(case_id, &e);
            previous.clone_from(&e.hash);
            e
        })
        .collect()
}

/// `entries` chained under `keys`' active key, as someone holding those keys would.
#[cfg(test)]
pub(crate) fn chain_under(keys: &AuditKeys, case_id: &str, entries: &[AuditRecord]) -> Vec<AuditRecord> {
    let mut previous = String::new();
    entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.previous_hash = previous.clone();
            e.seal(keys, case_id);
            previous.clone_from(&e.hash);
            e
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::new("k1", &[("k1".to_owned(), vec![7; 32])]).unwrap()
    }

    fn trail_under(keys: &AuditKeys, n: i64) -> Vec<AuditRecord> {
        let mut entries: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let previous = entries.last().map(|e| (e.sequence, e.hash.as_str()));
            let details = BTreeMap::from([("step".to_owned(), i.to_string())]);
            let entry = AuditRecord::after(keys, "c1", previous, "case.step", "user:li", 1_000 + i, details);
            entries.push(entry);
        }
        entries
    }

    fn trail(n: i64) -> Vec<AuditRecord> {
        trail_under(&keys(), n)
    }

    /// The head of `entries` and its seal under `keys`.
    fn head(keys: &AuditKeys, entries: &[AuditRecord]) -> (i64, String, String) {
        let (length, hash) = (entries.len() as i64, entries.last().map(|e| e.hash.clone()).unwrap_or_default());
        let seal = keys.seal_head("c1", length, &hash);
        (length, hash, seal)
    }

    fn unkeyed(entries: &[AuditRecord]) -> Vec<AuditRecord> {
        unkeyed_chain("c1", entries)
    }

    #[test]
    fn an_untouched_trail_verifies() {
        let entries = trail(4);
        let (length, hash, seal) = head(&keys(), &entries);
        assert_eq!(verify(&keys(), "c1", &entries, length, &hash, &seal), Ok(()));
        let (_, _, empty) = head(&keys(), &[]);
        assert_eq!(verify(&keys(), "c1", &[], 0, "", &empty), Ok(()));
        assert!(entries.iter().all(|e| e.key_id == "k1"));
    }

    #[test]
    fn altering_removing_inserting_or_truncating_is_detected() {
        let keys = keys();
        let entries = trail(4);
        let (length, hash, seal) = head(&keys, &entries);

        let mut altered = entries.clone();
        altered[1].details.insert("step".to_owned(), "forged".to_owned());
        assert_eq!(verify(&keys, "c1", &altered, length, &hash, &seal).map_err(|b| b.sequence), Err(2));

        let mut actor = entries.clone();
        actor[2].actor = "user:someone-else".to_owned();
        assert_eq!(verify(&keys, "c1", &actor, length, &hash, &seal).map_err(|b| b.sequence), Err(3));

        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify(&keys, "c1", &removed, length, &hash, &seal).map_err(|b| b.sequence), Err(2));

        let mut inserted = entries.clone();
        let forged = AuditRecord::after(&keys, "c1", Some((1, &entries[0].hash)), "case.step", "x", 1, BTreeMap::new());
        inserted.insert(1, forged);
        assert!(verify(&keys, "c1", &inserted, length, &hash, &seal).is_err());

        let truncated = &entries[..3];
        assert_eq!(verify(&keys, "c1", truncated, length, &hash, &seal).map_err(|b| b.sequence), Err(4));

        // The same entries are not valid for another case.
        assert!(verify(&keys, "c2", &entries, length, &hash, &seal).is_err());
    }

    #[test]
    fn a_trail_rebuilt_without_the_key_is_detected() {
        let keys = keys();
        let mut entries = trail(3);
        entries[1].details.insert("step".to_owned(), "forged".to_owned());
        // Rebuilt as plain SHA-256, the way the trail was chained before it was keyed.
        let plain = unkeyed(&entries);
        let (length, hash, seal) = head(&keys, &plain);
        let broken = verify(&keys, "c1", &plain, length, &hash, &seal).unwrap_err();
        assert_eq!((broken.sequence, broken.reason.as_str()), (1, "is not chained under an audit key"));
        // Rebuilt under a key of the forger's choosing, named as the real one.
        let guessed = AuditKeys::new("k1", &[("k1".to_owned(), vec![8; 32])]).unwrap();
        let forged = trail_under(&guessed, 3);
        let (length, hash, seal) = head(&keys, &forged);
        assert_eq!(verify(&keys, "c1", &forged, length, &hash, &seal).map_err(|b| b.sequence), Err(1));
        // Under a key id that is not configured.
        let other = AuditKeys::new("k9", &[("k9".to_owned(), vec![8; 32])]).unwrap();
        let forged = trail_under(&other, 2);
        let (length, hash, seal) = head(&keys, &forged);
        let broken = verify(&keys, "c1", &forged, length, &hash, &seal).unwrap_err();
        assert!(broken.reason.contains("k9, which is not configured"), "{}", broken.reason);
    }

    #[test]
    fn entries_under_a_retired_key_verify_while_it_stays_configured() {
        let old = keys();
        let mut entries = trail_under(&old, 2);
        let rotated = AuditKeys::new("k2", &[("k1".to_owned(), vec![7; 32]), ("k2".to_owned(), vec![9; 32])]).unwrap();
        let previous = entries.last().map(|e| (e.sequence, e.hash.clone())).unwrap();
        entries.push(AuditRecord::after(
            &rotated,
            "c1",
            Some((previous.0, &previous.1)),
            "case.step",
            "user:li",
            5,
            BTreeMap::new(),
        ));
        assert_eq!(entries[2].key_id, "k2");
        let (length, hash, seal) = head(&rotated, &entries);
        assert_eq!(verify(&rotated, "c1", &entries, length, &hash, &seal), Ok(()));
        let dropped = AuditKeys::new("k2", &[("k2".to_owned(), vec![9; 32])]).unwrap();
        assert_eq!(verify(&dropped, "c1", &entries, length, &hash, &seal).map_err(|b| b.sequence), Err(1));
    }

    #[test]
    fn an_unkeyed_trail_is_chained_again_only_when_it_still_verifies() {
        let keys = keys();
        let plain = unkeyed(&trail(3));
        let (length, hash, _) = head(&keys, &plain);
        let (rechained, new_head) = rechain(&keys, "c1", &plain, length, &hash).unwrap().unwrap();
        assert_eq!(
            verify(&keys, "c1", &rechained, length, &new_head, &keys.seal_head("c1", length, &new_head)),
            Ok(())
        );
        assert_eq!(
            rechained.iter().map(|e| (&e.action, &e.details)).collect::<Vec<_>>(),
            plain.iter().map(|e| (&e.action, &e.details)).collect::<Vec<_>>()
        );
        // Nothing to do for a keyed trail.
        assert_eq!(rechain(&keys, "c1", &rechained, length, &new_head), Ok(None));
        // A trail already altered before keying stays broken instead of being sealed.
        let mut altered = plain.clone();
        altered[1].actor = "user:someone-else".to_owned();
        assert_eq!(rechain(&keys, "c1", &altered, length, &hash).map_err(|b| b.sequence), Err(2));
    }

    #[test]
    fn a_trail_cut_short_with_an_earlier_head_written_back_is_detected() {
        let keys = keys();
        let entries = trail(4);
        let (_, _, seal) = head(&keys, &entries);
        // The newest entry removed, and the head of the three before it written back with the
        // seal left as it was, emptied, or made under a key of the forger's own.
        let cut = &entries[..3];
        let (length, hash) = (3, cut[2].hash.clone());
        let forger = AuditKeys::new("k1", &[("k1".to_owned(), vec![8; 32])]).unwrap();
        for (stale, why) in [
            (seal.clone(), "does not match its seal"),
            (String::new(), "is not sealed"),
            (forger.seal_head("c1", length, &hash), "does not match its seal"),
        ] {
            let broken = verify(&keys, "c1", cut, length, &hash, &stale).unwrap_err();
            assert_eq!(broken.sequence, 4);
            assert!(broken.reason.contains(why), "{}", broken.reason);
        }
        // An append after the cut does not seal it again: the stale seal is kept.
        let next = AuditRecord::after(&keys, "c1", Some((3, &hash)), "case.step", "user:li", 9, BTreeMap::new());
        let resealed = reseal(&keys, "c1", (length, &hash, &seal), 4, &next.hash);
        assert_eq!(resealed, seal);
        let appended: Vec<AuditRecord> = cut.iter().cloned().chain([next.clone()]).collect();
        assert!(verify(&keys, "c1", &appended, 4, &next.hash, &resealed).is_err());
        // An append to an intact trail seals the new head.
        let next = AuditRecord::after(&keys, "c1", Some((4, &entries[3].hash)), "case.step", "u", 9, BTreeMap::new());
        let resealed = reseal(&keys, "c1", (4, &entries[3].hash, &seal), 5, &next.hash);
        let appended: Vec<AuditRecord> = entries.iter().cloned().chain([next.clone()]).collect();
        assert_eq!(verify(&keys, "c1", &appended, 5, &next.hash, &resealed), Ok(()));
    }

    #[test]
    fn an_unsealed_head_is_sealed_only_over_a_trail_that_verifies() {
        let keys = keys();
        let entries = trail(3);
        let (length, hash, seal) = head(&keys, &entries);
        assert_eq!(seal_legacy_head(&keys, "c1", &entries, length, &hash, ""), Ok(Some(seal.clone())));
        assert_eq!(seal_legacy_head(&keys, "c1", &entries, length, &hash, &seal), Ok(None));
        let plain = unkeyed(&entries);
        let (length, hash, _) = head(&keys, &plain);
        assert_eq!(seal_legacy_head(&keys, "c1", &plain, length, &hash, "").map_err(|b| b.sequence), Err(1));
    }

    #[test]
    fn keys_are_checked() {
        assert!(AuditKeys::new("k1", &[("k1".to_owned(), vec![7; 16])]).is_err());
        assert!(AuditKeys::new("k2", &[("k1".to_owned(), vec![7; 32])]).is_err());
        assert!(AuditKeys::new("", &[]).is_err());
        assert!(!format!("{:?}", keys()).contains("7, 7"));
    }
}
