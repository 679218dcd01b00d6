//! One jieba segmenter for every service that cuts Chinese text with jieba's own dictionary
//! (intake's classification and keyword rules, escalation's grouping). The dictionary takes
//! about 25 MB in memory, and the embedded suite runs every service in one process, so it is
//! loaded once, on first use. The knowledge base adds its own search words and keeps its own.

use std::sync::LazyLock;

use jieba_rs::Jieba;

/// Words jieba's dictionary lacks that a keyword must not cross: without 银保监 it cuts
/// 找银保监 into single characters, where 银保 would match.
pub const EXTRA_WORDS: &[&str] = &["银保监"];

static SEGMENTER: LazyLock<Jieba> = LazyLock::new(|| {
    let mut jieba = Jieba::new();
    for word in EXTRA_WORDS {
        jieba.add_word(word, None, None);
    }
    jieba
});

/// jieba with its default dictionary and [`EXTRA_WORDS`].
pub fn segmenter() -> &'static Jieba {
    &SEGMENTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_words_stay_whole_and_every_caller_gets_the_same_dictionary() {
        let words: Vec<&str> = segmenter().cut("找银保监投诉", false).into_iter().map(|t| t.word).collect();
        assert!(words.contains(&"银保监"), "{words:?}");
        assert!(std::ptr::eq(segmenter(), segmenter()));
    }
}
