//! One jieba segmenter for every service that cuts Chinese text: intake's classification and
//! keyword rules, escalation's grouping, the knowledge base's search. The dictionary takes
//! about 25 MB in memory, and the embedded suite runs every service in one process, so it is
//! loaded once, on first use.

use std::sync::LazyLock;

use jieba_rs::Jieba;

/// Complaint words jieba's own dictionary lacks or would cut apart (`data/words.txt`: one a
/// line, optional frequency). A keyword must not cross them: without 银保监 jieba cuts
/// 找银保监 into single characters, where 银保 would match; a search for 年费 must find
/// 免年费 kept whole.
pub const WORDS: &str = include_str!("../data/words.txt");

static SEGMENTER: LazyLock<Jieba> = LazyLock::new(|| {
    let mut jieba = Jieba::new();
    for (word, freq) in words() {
        jieba.add_word(word, freq, None);
    }
    jieba
});

/// The words of [`WORDS`] with their frequencies; a line whose frequency is not a number
/// keeps the word at jieba's own estimate (the data is part of the build and tested).
fn words() -> impl Iterator<Item = (&'static str, Option<usize>)> {
    WORDS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|line| {
        let mut parts = line.split_whitespace();
        let word = parts.next()?;
        Some((word, parts.next().and_then(|f| f.parse().ok())))
    })
}

/// jieba with its default dictionary and [`WORDS`].
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

    #[test]
    fn every_line_of_the_word_list_is_a_word_and_a_frequency() {
        let lines = WORDS.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert!(parts.len() == 1 || (parts.len() == 2 && parts[1].parse::<usize>().is_ok()), "words.txt: {line:?}");
            assert!(segmenter().has_word(parts[0]), "{line:?}");
        }
        let words: Vec<&str> = segmenter().cut("免年费被盗刷", false).into_iter().map(|t| t.word).collect();
        assert_eq!(words, ["免年费", "被盗刷"]);
    }
}
