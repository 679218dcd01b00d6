//! What changed between two versions of an article: the title and outcome as wholes, the body
//! sentence by sentence (a longest-common-subsequence diff), tags and codes item by item.

use redress_proto::redress::knowledge::v1::{ArticleContent, DiffChunk, DiffOperation};

/// The body's sentences: each ends after 。！？；, a full stop or a line break, which stays
/// with it; blank lines are dropped.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c != '\n' {
            current.push(c);
        }
        if matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n') {
            let sentence = current.trim().to_owned();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// Most sentences (or items) compared in full; beyond it the rest is reported as replaced,
/// which keeps the table small whatever a caller stores.
const MAX_ITEMS: usize = 2_000;

/// The diff of two sequences as chunks of `field`, in order.
fn diff_items(field: &str, old: &[String], new: &[String]) -> Vec<DiffChunk> {
    let chunk = |op: DiffOperation, text: &str| DiffChunk {
        field: field.to_owned(),
        operation: op as i32,
        text: text.to_owned(),
    };
    if old == new {
        return Vec::new();
    }
    if old.len() > MAX_ITEMS || new.len() > MAX_ITEMS {
        return old
            .iter()
            .map(|s| chunk(DiffOperation::Delete, s))
            .chain(new.iter().map(|s| chunk(DiffOperation::Insert, s)))
            .collect();
    }
    // lcs[i][j]: length of the longest common subsequence of old[i..] and new[j..].
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push(chunk(DiffOperation::Equal, &old[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(chunk(DiffOperation::Insert, &new[j]));
            j += 1;
        } else {
            out.push(chunk(DiffOperation::Delete, &old[i]));
            i += 1;
        }
    }
    out
}

fn codes(content: &ArticleContent) -> Vec<String> {
    let Some(codes) = &content.codes else { return Vec::new() };
    codes.business_types.iter().chain(&codes.causes).chain(&codes.rights).cloned().collect()
}

/// The chunks of every field that changed from `old` to `new`.
pub fn diff(old: &ArticleContent, new: &ArticleContent) -> Vec<DiffChunk> {
    let mut out = diff_items("title", std::slice::from_ref(&old.title), std::slice::from_ref(&new.title));
    out.extend(diff_items("body", &sentences(&old.body), &sentences(&new.body)));
    out.extend(diff_items("tags", &old.tags, &new.tags));
    out.extend(diff_items("codes", &codes(old), &codes(new)));
    out.extend(diff_items("outcome", &[old.outcome.to_string()], &[new.outcome.to_string()]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(chunks: &[DiffChunk]) -> Vec<(String, i32, String)> {
        chunks.iter().map(|c| (c.field.clone(), c.operation, c.text.clone())).collect()
    }

    #[test]
    fn a_changed_sentence_is_a_delete_and_an_insert_between_equal_ones() {
        let old = ArticleContent {
            title: "年费".to_owned(),
            body: "第一句。第二句。\n\n第三句！".to_owned(),
            ..Default::default()
        };
        let new = ArticleContent {
            title: "年费".to_owned(),
            body: "第一句。第二句改了。第三句！".to_owned(),
            tags: vec!["减免".to_owned()],
            ..Default::default()
        };
        let (eq, ins, del) = (DiffOperation::Equal as i32, DiffOperation::Insert as i32, DiffOperation::Delete as i32);
        assert_eq!(
            ops(&diff(&old, &new)),
            [
                ("body".to_owned(), eq, "第一句。".to_owned()),
                ("body".to_owned(), ins, "第二句改了。".to_owned()),
                ("body".to_owned(), del, "第二句。".to_owned()),
                ("body".to_owned(), eq, "第三句！".to_owned()),
                ("tags".to_owned(), ins, "减免".to_owned()),
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }
}
