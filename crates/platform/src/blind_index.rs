//! Blind indexes of personal identifiers (D-PII): keyed HMAC-SHA256 digests of normalised
//! identifiers, scoped to the institution, never the identifiers themselves. Every service that
//! must recognise a person without holding who they are computes them here, with the one
//! configured key (`pii.index_key`), so the same person has the same digest everywhere.

use anyhow::Context;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The kind of identifier an identity document number (with its type) is.
pub const ID_DOCUMENT: &str = "id";
/// The kind of identifier a phone number is.
pub const PHONE: &str = "phone";

/// The blind-index key. It never rotates: the digests made with it are stored.
#[derive(Clone)]
pub struct BlindIndexKey(Hmac<Sha256>);

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(<redacted>)")
    }
}

impl BlindIndexKey {
    /// A key of at least 32 bytes.
    pub fn new(key: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(key.len() >= 32, "the blind-index key must be at least 32 bytes");
        Ok(Self(<Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| anyhow::anyhow!("{e}"))?))
    }

    /// A key given as base64 (how configuration carries it).
    pub fn from_base64(secret: &str) -> anyhow::Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(secret.trim()).context("not base64")?;
        Self::new(&bytes)
    }

    /// A keyed digest of arbitrary bytes under a kind: lower-case hex.
    pub fn digest(&self, kind: &str, bytes: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The blind index of an identifier of `kind`, normalised first.
    pub fn blind_index(&self, kind: &str, value: &str) -> String {
        self.digest(kind, normalise(value).as_bytes())
    }

    /// The blind index of an identifier of `kind` ([`ID_DOCUMENT`], [`PHONE`]) naming a person at
    /// `institution` (`institutions/{id}`): a person is a data subject of each institution
    /// separately.
    pub fn identifier(&self, kind: &str, institution: &str, value: &str) -> String {
        self.blind_index(&format!("{kind}@{institution}"), value)
    }
}

/// Identifiers compare without spaces, dashes or case ("138-1234 5678" = "13812345678").
pub fn normalise(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect()
}

/// The value of an identity document identifier: the document type's number and the number.
pub fn id_document(document_type: i32, number: &str) -> String {
    format!("{document_type}:{number}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_normalised_keyed_and_scoped_to_the_institution() {
        let key = BlindIndexKey::new(&[7; 32]).unwrap();
        let a = key.identifier(PHONE, "institutions/acme", "138-1234 5678");
        assert_eq!(a, key.identifier(PHONE, "institutions/acme", "13812345678"));
        assert_ne!(a, key.identifier(PHONE, "institutions/other", "13812345678"));
        assert_ne!(a, key.identifier(ID_DOCUMENT, "institutions/acme", "13812345678"));
        assert_ne!(a, BlindIndexKey::new(&[8; 32]).unwrap().identifier(PHONE, "institutions/acme", "13812345678"));
        assert_eq!(a.len(), 64);
        assert!(BlindIndexKey::new(&[1; 16]).is_err());
        assert!(format!("{key:?}").contains("redacted"));
    }
}
