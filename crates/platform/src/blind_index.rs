//! Blind indexes of personal identifiers (D-PII): keyed HMAC-SHA256 digests of normalised
//! identifiers, scoped to the institution, never the identifiers themselves. Every service that
//! must recognise a person without holding who they are computes them here, with the one
//! configured key (`pii.index_key`), so the same person has the same digest everywhere.
//!
//! A phone is digested in its canonical form, E.164 (`+8613812345678`), read as a mainland
//! China number when it carries no country code, so `+86 138 1234 5678`, `86 13812345678`,
//! `008613812345678` and `138-1234-5678` are one identifier, and so are `010-12345678` and
//! `+86 10 1234 5678`. Identity documents compare without spaces, dashes or case.

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

    /// The blind index of an identifier of `kind` ([`ID_DOCUMENT`], [`PHONE`]) naming a person at
    /// `institution` (`institutions/{id}`): a person is a data subject of each institution
    /// separately. A phone is digested in its [canonical form](canonical_phone), anything else
    /// [normalised](normalise).
    pub fn identifier(&self, kind: &str, institution: &str, value: &str) -> String {
        let value = if kind == PHONE { canonical_phone(value) } else { normalise(value) };
        self.digest(&scope(kind, institution), value.as_bytes())
    }

    /// The blind indexes a phone had at `institution` before phones were canonicalised (spaces
    /// and dashes removed, nothing else), for each usual way of writing it: as given, national
    /// (`13812345678`, `01012345678`), `+86…`, `86…` and `0086…`. A register that keeps only
    /// digests made then, and cannot be re-indexed for want of the numbers, still meets the
    /// person on one of them. Empty for a value that is not a phone number.
    pub fn earlier_phone_identifiers(&self, institution: &str, value: &str) -> Vec<String> {
        let Ok(number) = parse_phone(value) else { return Vec::new() };
        let code = number.code().value();
        let significant = number.national().to_string();
        let national: String = number
            .format()
            .mode(phonenumber::Mode::National)
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let mut spellings = vec![
            normalise(value),
            national,
            format!("+{code}{significant}"),
            format!("{code}{significant}"),
            format!("00{code}{significant}"),
        ];
        spellings.dedup();
        let mut out: Vec<String> = Vec::with_capacity(spellings.len());
        for spelling in spellings {
            let digest = self.digest(&scope(PHONE, institution), spelling.as_bytes());
            if !out.contains(&digest) {
                out.push(digest);
            }
        }
        out
    }
}

/// The kind a digest is made under: the identifier's kind at one institution.
fn scope(kind: &str, institution: &str) -> String {
    format!("{kind}@{institution}")
}

/// Identifiers other than phones compare without spaces, dashes or case
/// ("11010519491231002x" = "110105 19491231002X").
pub fn normalise(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect()
}

/// The region a phone number without a country code is read in.
const DEFAULT_REGION: phonenumber::country::Id = phonenumber::country::Id::CN;

/// A phone number's canonical form: E.164 (`+8613812345678`, a landline `+861012345678`),
/// read as a mainland China number when it carries no country code (`138…`, `010-…`), also
/// when written `86…` or `0086…`; an extension follows as `;ext=123`, also one written after
/// a landline as `010-12345678-123`. Full-width digits count as digits. A value that is no
/// phone number at all is only [normalised](normalise), so it still names whoever gave it.
pub fn canonical_phone(value: &str) -> String {
    match parse_phone(value) {
        Ok(number) => {
            let mut canonical = number.format().mode(phonenumber::Mode::E164).to_string();
            if let Some(extension) = number.extension() {
                canonical.push_str(";ext=");
                canonical.push_str(extension);
            }
            canonical
        }
        Err(_) => normalise(value),
    }
}

/// Whether `value` is a valid mainland China number (country code 86) in any spelling
/// [`canonical_phone`] reads that is written with digits, spaces, `+`, `-` and parentheses only
/// (full-width ones too): `13812345678`, `+86 138 1234 5678`, `+86-138-1234-5678`, `0086138…`,
/// `86 138…`, `(010) 1234 5678`. Letters (vanity numbers, `x123` extensions) are not accepted.
pub fn is_mainland_phone(value: &str) -> bool {
    let value = half_width(value);
    value.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '（' | '）'))
        && parse_phone(&value).is_ok_and(|number| number.code().value() == 86 && phonenumber::is_valid(&number))
}

/// Parses a phone number as [`canonical_phone`] reads it.
fn parse_phone(value: &str) -> Result<phonenumber::PhoneNumber, phonenumber::ParseError> {
    let value = half_width(value.trim());
    let number = phonenumber::parse(Some(DEFAULT_REGION), &value)?;
    if phonenumber::is_valid(&number) {
        return Ok(number);
    }
    // A landline with its extension after a second dash (`010-12345678-123`), as intake
    // accepts it, reads as one long number; the number before the extension is the phone.
    if let Some((line, extension)) = value.rsplit_once('-')
        && line.contains('-')
        && !extension.is_empty()
        && extension.len() <= 6
        && extension.bytes().all(|b| b.is_ascii_digit())
        && let Ok(line) = phonenumber::parse(Some(DEFAULT_REGION), format!("{line} ext. {extension}"))
        && phonenumber::is_valid(&line)
    {
        return Ok(line);
    }
    Ok(number)
}

/// Full-width digits and plus sign (as typed with a Chinese input method) as ASCII.
fn half_width(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' => char::from(b'0' + (c as u32 - 0xFF10) as u8),
            '\u{FF0B}' => '+',
            '\u{FF0D}' => '-',
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
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
        let id = id_document(1, "11010519491231002x");
        assert_eq!(
            key.identifier(ID_DOCUMENT, "institutions/acme", &id),
            key.identifier(ID_DOCUMENT, "institutions/acme", "1:110105 19491231002X")
        );
    }

    #[test]
    fn every_spelling_of_a_phone_is_one_identifier() {
        let key = BlindIndexKey::new(&[7; 32]).unwrap();
        let mobile = ["+86 138 1234 5678", "86 13812345678", "008613812345678", "138-1234-5678", "+86-13812345678"];
        for spelling in mobile.into_iter().chain(["8613812345678", "０１３８ １２３４ ５６７８", "(+86) 13812345678"])
        {
            assert_eq!(canonical_phone(spelling), "+8613812345678", "{spelling}");
            assert_eq!(
                key.identifier(PHONE, "institutions/acme", spelling),
                key.identifier(PHONE, "institutions/acme", "13812345678")
            );
        }
        for landline in ["010-12345678", "01012345678", "+86 10 1234 5678", "0086 10 12345678", "(010)12345678"] {
            assert_eq!(canonical_phone(landline), "+861012345678", "{landline}");
        }
        assert_eq!(canonical_phone("0755-1234567"), "+867551234567");
        assert_eq!(canonical_phone("010-12345678-123"), "+861012345678;ext=123");
        assert_eq!(canonical_phone("010 12345678 ext. 123"), "+861012345678;ext=123");
        assert_eq!(canonical_phone("+852 2123 4567"), "+85221234567");
        // Another number, another identifier; not a number at all, only normalised.
        assert_ne!(canonical_phone("13812345679"), canonical_phone("13812345678"));
        assert_ne!(canonical_phone("13812345678"), canonical_phone("+852 1381 2345 678"));
        assert_eq!(canonical_phone("not a-phone"), "NOTAPHONE");
    }

    #[test]
    fn earlier_digests_of_a_phone_cover_its_usual_spellings() {
        let key = BlindIndexKey::new(&[7; 32]).unwrap();
        // Digests made before phones were canonicalised: the spelling without spaces or dashes.
        let earlier = |spelling: &str| key.digest("phone@institutions/acme", normalise(spelling).as_bytes());
        let found = key.earlier_phone_identifiers("institutions/acme", "+86 138 1234 5678");
        for spelling in ["13812345678", "+8613812345678", "86 13812345678", "008613812345678", "138-1234-5678"] {
            assert!(found.contains(&earlier(spelling)), "{spelling}");
        }
        assert!(!found.contains(&earlier("13812345679")));
        let landline = key.earlier_phone_identifiers("institutions/acme", "+861012345678");
        assert!(landline.contains(&earlier("010-12345678")));
        assert!(landline.contains(&earlier("+86 10 12345678")));
        assert!(key.earlier_phone_identifiers("institutions/acme", "not a phone").is_empty());
        assert!(key.earlier_phone_identifiers("institutions/other", "13812345678").iter().all(|d| !found.contains(d)));
    }
}
