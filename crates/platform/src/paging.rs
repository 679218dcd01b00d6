//! AIP-158 pagination shared by every List method: page-size defaults and limits, and opaque
//! keyset page tokens (the sort key and id of the last item returned).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Violations;

pub const DEFAULT_PAGE_SIZE: i32 = 50;
pub const MAX_PAGE_SIZE: i32 = 1000;

/// Keyset cursor: the sort key (µs) and id of the last item of the previous page.
pub type Cursor = (i64, String);

#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    t: i64,
    i: String,
}

/// The effective page size; a negative size is recorded as a violation of `page_size`.
pub fn page_size(requested: i32, v: &mut Violations) -> i32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            v.add("page_size", "must not be negative");
            DEFAULT_PAGE_SIZE
        }
        n => n.min(MAX_PAGE_SIZE),
    }
}

pub fn encode_token(cursor: &Cursor) -> String {
    let json = serde_json::to_vec(&PageToken { t: cursor.0, i: cursor.1.clone() }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The cursor of a token; an empty token is the first page, a foreign one a violation.
pub fn decode_token(token: &str, v: &mut Violations) -> Option<Cursor> {
    if token.is_empty() {
        return None;
    }
    let cursor = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<PageToken>(&bytes).ok())
        .map(|t| (t.t, t.i));
    if cursor.is_none() {
        v.add("page_token", "is not a token this service issued");
    }
    cursor
}

/// Trims a page fetched with `page_size + 1` rows and returns the next page token.
pub fn finish_page<T>(items: &mut Vec<T>, page_size: i32, cursor: impl Fn(&T) -> Cursor) -> String {
    let page_size = page_size.max(0) as usize;
    if items.len() > page_size {
        items.truncate(page_size);
        items.last().map(|last| encode_token(&cursor(last))).unwrap_or_default()
    } else {
        String::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_violations() {
        let mut v = Violations::new();
        let token = encode_token(&(42, "abc".to_owned()));
        assert_eq!(decode_token(&token, &mut v), Some((42, "abc".to_owned())));
        assert!(v.is_empty());
        assert_eq!(decode_token("garbage!", &mut v), None);
        assert!(!v.is_empty());
    }

    #[test]
    fn pages_are_trimmed_with_a_next_token_only_when_more_exist() {
        let mut items = vec![1, 2, 3];
        assert!(finish_page(&mut items, 3, |i| (*i, String::new())).is_empty());
        let mut items = vec![1, 2, 3, 4];
        let token = finish_page(&mut items, 3, |i| (i64::from(*i), "x".to_owned()));
        assert_eq!(items, [1, 2, 3]);
        assert_eq!(decode_token(&token, &mut Violations::new()), Some((3, "x".to_owned())));
    }
}
