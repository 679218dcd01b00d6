//! The tamper-evident audit trail of a case (D-CASE-2). Every entry's hash covers its own
//! fields and the previous entry's hash, and the case keeps the length and head hash of its
//! trail, so editing, removing, inserting or truncating stored entries is detected.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

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
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    // Length-prefixed, so that no two different entries hash the same bytes.
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The hash of an entry of `case_id`'s trail.
pub fn entry_hash(
    case_id: &str,
    sequence: i64,
    action: &str,
    actor: &str,
    record_time_us: i64,
    details: &BTreeMap<String, String>,
    previous_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    field(&mut hasher, b"redress.audit.v1");
    field(&mut hasher, case_id.as_bytes());
    hasher.update(sequence.to_le_bytes());
    field(&mut hasher, action.as_bytes());
    field(&mut hasher, actor.as_bytes());
    hasher.update(record_time_us.to_le_bytes());
    hasher.update((details.len() as u64).to_le_bytes());
    for (key, value) in details {
        field(&mut hasher, key.as_bytes());
        field(&mut hasher, value.as_bytes());
    }
    field(&mut hasher, previous_hash.as_bytes());
    hex::encode(hasher.finalize())
}

impl AuditRecord {
    /// The entry that follows `previous` (or starts the trail) in `case_id`'s trail.
    pub fn after(
        case_id: &str,
        previous: Option<(i64, &str)>,
        action: &str,
        actor: &str,
        record_time_us: i64,
        details: BTreeMap<String, String>,
    ) -> Self {
        let (sequence, previous_hash) = previous.map_or((1, String::new()), |(s, h)| (s + 1, h.to_owned()));
        let hash = entry_hash(case_id, sequence, action, actor, record_time_us, &details, &previous_hash);
        Self {
            sequence,
            action: action.to_owned(),
            actor: actor.to_owned(),
            record_time_us,
            details,
            previous_hash,
            hash,
        }
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
/// recorded (`length` entries ending in `head`).
pub fn verify(case_id: &str, entries: &[AuditRecord], length: i64, head: &str) -> Result<(), Broken> {
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
        let recomputed = entry_hash(
            case_id,
            entry.sequence,
            &entry.action,
            &entry.actor,
            entry.record_time_us,
            &entry.details,
            &entry.previous_hash,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: i64) -> Vec<AuditRecord> {
        let mut entries: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let previous = entries.last().map(|e| (e.sequence, e.hash.as_str()));
            let details = BTreeMap::from([("step".to_owned(), i.to_string())]);
            let entry = AuditRecord::after("c1", previous, "case.step", "user:li", 1_000 + i, details);
            entries.push(entry);
        }
        entries
    }

    fn head(entries: &[AuditRecord]) -> (i64, String) {
        (entries.len() as i64, entries.last().map(|e| e.hash.clone()).unwrap_or_default())
    }

    #[test]
    fn an_untouched_trail_verifies() {
        let entries = trail(4);
        let (length, hash) = head(&entries);
        assert_eq!(verify("c1", &entries, length, &hash), Ok(()));
        assert_eq!(verify("c1", &[], 0, ""), Ok(()));
    }

    #[test]
    fn altering_removing_inserting_or_truncating_is_detected() {
        let entries = trail(4);
        let (length, hash) = head(&entries);

        let mut altered = entries.clone();
        altered[1].details.insert("step".to_owned(), "forged".to_owned());
        assert_eq!(verify("c1", &altered, length, &hash).map_err(|b| b.sequence), Err(2));

        let mut actor = entries.clone();
        actor[2].actor = "user:someone-else".to_owned();
        assert_eq!(verify("c1", &actor, length, &hash).map_err(|b| b.sequence), Err(3));

        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify("c1", &removed, length, &hash).map_err(|b| b.sequence), Err(2));

        let mut inserted = entries.clone();
        let forged = AuditRecord::after("c1", Some((1, &entries[0].hash)), "case.step", "x", 1, BTreeMap::new());
        inserted.insert(1, forged);
        assert!(verify("c1", &inserted, length, &hash).is_err());

        let truncated = &entries[..3];
        assert_eq!(verify("c1", truncated, length, &hash).map_err(|b| b.sequence), Err(4));

        // The same entries are not valid for another case.
        assert!(verify("c2", &entries, length, &hash).is_err());
    }
}
