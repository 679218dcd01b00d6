//! Checksums and formats of identifiers: the 18-digit resident identity number (GB 11643),
//! the unified social credit code (GB 32100) and mainland phone numbers.

use chrono::NaiveDate;

/// Checks an 18-digit resident identity number: digits, a real birth date, and the ISO 7064
/// MOD 11-2 check character (digit or `X`).
pub fn is_valid_resident_id(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let birth = &id[6..14];
    let (Ok(y), Ok(m), Ok(d)) = (birth[..4].parse::<i32>(), birth[4..6].parse::<u32>(), birth[6..].parse::<u32>())
    else {
        return false;
    };
    if y < 1900 || NaiveDate::from_ymd_opt(y, m, d).is_none() {
        return false;
    }
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let expected = CHECK[(sum % 11) as usize];
    bytes[17].to_ascii_uppercase() == expected
}

/// Checks an 18-character unified social credit code and its GB 32100-2015 check character.
pub fn is_valid_uscc(code: &str) -> bool {
    const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
    let bytes = code.as_bytes();
    if bytes.len() != 18 {
        return false;
    }
    let mut values = [0u32; 18];
    for (i, b) in bytes.iter().enumerate() {
        match CHARSET.iter().position(|c| c == b) {
            Some(v) => values[i] = v as u32,
            None => return false,
        }
    }
    let sum: u32 = values[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    values[17] == check
}

/// Mainland mobile (`1[3-9]` + 9 digits, optionally `+86`/`86`) or landline (area code starting
/// with 0, then 7–8 digits, optional `-` and extension), or any other spelling of a valid
/// mainland number that phones are canonicalised from for the blind index (`+86 138 1234 5678`,
/// `+86-138-1234-5678`, `0086138…`, `138 1234 5678`, full-width digits): whatever names the
/// same person there is accepted here.
pub fn is_valid_mainland_phone(phone: &str) -> bool {
    is_mainland_phone_as_written(phone) || redress_platform::blind_index::is_mainland_phone(phone)
}

fn is_mainland_phone_as_written(phone: &str) -> bool {
    let p = phone.trim();
    let p = p.strip_prefix("+86").or_else(|| p.strip_prefix("86").filter(|r| r.len() == 11)).unwrap_or(p);
    let p = p.trim_start_matches(['-', ' ']);
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if p.len() == 11 && p.starts_with('1') && digits_only(p) {
        return matches!(p.as_bytes()[1], b'3'..=b'9');
    }
    // Landline: 0AA(A)-NNNNNNN(N)[-EXT]
    let mut parts = p.split('-');
    let (Some(first), second, third) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if parts.next().is_some() {
        return false;
    }
    match (second, third) {
        (None, None) => first.starts_with('0') && digits_only(first) && (10..=12).contains(&first.len()),
        (Some(number), ext) => {
            first.starts_with('0')
                && digits_only(first)
                && (3..=4).contains(&first.len())
                && digits_only(number)
                && (7..=8).contains(&number.len())
                && ext.is_none_or(|e| digits_only(e) && e.len() <= 6)
        }
        (None, Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_ids() {
        // GB 11643 example number.
        assert!(is_valid_resident_id("11010519491231002X"));
        assert!(is_valid_resident_id("11010519491231002x"));
        assert!(!is_valid_resident_id("110105194912310021"));
        assert!(!is_valid_resident_id("11010519491331002X"), "month 13");
        assert!(!is_valid_resident_id("1101051949123100"));
        assert!(is_valid_resident_id("320106199003074515"));
        assert!(!is_valid_resident_id("440524188001010014"), "born before 1900");
    }

    #[test]
    fn credit_codes() {
        assert!(is_valid_uscc("91350100M000100Y43"));
        assert!(!is_valid_uscc("91350100M000100Y44"));
        assert!(!is_valid_uscc("91350100M000100Y4"));
        assert!(!is_valid_uscc("91350100I000100Y43"), "I is not in the charset");
    }

    #[test]
    fn phones() {
        for ok in [
            "13812345678",
            "+8613812345678",
            "8613812345678",
            "010-12345678",
            "0755-1234567",
            "021-12345678-123",
            "02112345678",
        ] {
            assert!(is_valid_mainland_phone(ok), "{ok}");
        }
        for bad in ["12812345678", "1381234567", "abc", "", "12345678", "010-123", "13812345678x"] {
            assert!(!is_valid_mainland_phone(bad), "{bad}");
        }
    }

    /// Every spelling the blind index reads as a mainland mobile is accepted, and each names the
    /// same number there.
    #[test]
    fn spellings_of_a_mobile_with_its_country_code() {
        let canonical = redress_platform::blind_index::canonical_phone("13812345678");
        for ok in [
            "+86 138 1234 5678",
            "+86 13812345678",
            "+86-138-1234-5678",
            "+86-13812345678",
            "0086138 1234 5678",
            "008613812345678",
            "86 138 1234 5678",
            "138 1234 5678",
            "138-1234-5678",
            "+８６ １３８ １２３４ ５６７８",
            " +86 (138) 1234-5678 ",
        ] {
            assert!(is_valid_mainland_phone(ok), "{ok}");
            assert_eq!(redress_platform::blind_index::canonical_phone(ok), canonical, "{ok}");
        }
        // Not mainland numbers, or not numbers: still refused.
        for bad in [
            "+86 128 1234 5678",
            "0086 138 1234 567",
            "+852 9123 4567",
            "+1 415 555 2671",
            "+86 abc",
            "+86 138 1234 5678 x12",
            "1-800-FLOWERS",
        ] {
            assert!(!is_valid_mainland_phone(bad), "{bad}");
        }
    }
}
