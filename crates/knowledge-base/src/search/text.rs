//! How Chinese text becomes search terms, from data shipped with the service
//! (`data/search/`): the stop words, the synonym groups, and the traditional characters read as
//! simplified ones. Words are cut by the suite's one segmenter, whose complaint words
//! (年费, 盗刷, 退保…) are kept whole ([`redress_platform::segmenter`]). Documents and queries go through the same
//! analysis, so a term written one way is found written the other.

use std::collections::HashMap;
use std::sync::Arc;

use jieba_rs::{Jieba, TokenizeMode};
use serde::Deserialize;
use tantivy::tokenizer::{NgramTokenizer, StopWordFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

const STOPWORDS: &str = include_str!("../../data/search/stopwords.txt");
const SYNONYMS: &str = include_str!("../../data/search/synonyms.toml");
const T2S: &str = include_str!("../../data/search/t2s.txt");

#[derive(Deserialize)]
struct SynonymFile {
    version: String,
    groups: Vec<Vec<String>>,
}

/// The shipped analysis data, loaded once.
pub struct Lexicon {
    /// Jieba in search mode and in its plain mode, over one dictionary loaded once and shared
    /// by every analyzer made from it.
    search: JiebaWords,
    plain: JiebaWords,
    stopwords: Vec<String>,
    /// Synonym groups, each member normalized.
    groups: Vec<Vec<String>>,
    pub synonyms_version: String,
    simplified: HashMap<char, char>,
}

/// Lines of a data file without comments and blank lines.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Lexicon {
    /// The shipped lexicon. The data is part of the build; a file that does not parse is a bug
    /// the tests catch, reported as an error rather than a panic.
    pub fn shipped() -> anyhow::Result<Arc<Self>> {
        let mut simplified = HashMap::new();
        for pair in lines(T2S).flat_map(str::split_whitespace) {
            let mut chars = pair.chars();
            match (chars.next(), chars.next(), chars.next()) {
                (Some(t), Some(s), None) => {
                    simplified.insert(t, s);
                }
                _ => anyhow::bail!("t2s.txt: {pair:?} is not a pair of characters"),
            }
        }
        let stopwords = lines(STOPWORDS).flat_map(str::split_whitespace).map(str::to_owned).collect();
        let file: SynonymFile = toml::from_str(SYNONYMS).map_err(|e| anyhow::anyhow!("synonyms.toml: {e}"))?;
        let jieba = redress_platform::segmenter::segmenter();
        let mut lexicon = Self {
            search: JiebaWords { jieba, mode: TokenizeMode::Search },
            plain: JiebaWords { jieba, mode: TokenizeMode::Default },
            stopwords,
            groups: Vec::new(),
            synonyms_version: file.version,
            simplified,
        };
        lexicon.groups = file.groups.iter().map(|g| g.iter().map(|w| lexicon.normalize(w)).collect()).collect();
        Ok(Arc::new(lexicon))
    }

    /// The text as it is analysed: traditional characters as simplified ones, full-width ASCII
    /// as half-width, ASCII lower-cased. One character for one, so positions do not move.
    pub fn normalize(&self, text: &str) -> String {
        text.chars().map(|c| self.normalize_char(c)).collect()
    }

    pub fn normalize_char(&self, c: char) -> char {
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        };
        self.simplified.get(&c).copied().unwrap_or(c).to_ascii_lowercase()
    }

    /// The analyzer of article text and queries: jieba in search mode (whole words and the
    /// shorter words inside them), punctuation dropped, stop words dropped.
    pub fn analyzer(&self) -> TextAnalyzer {
        TextAnalyzer::builder(self.search.clone())
            .filter(WordsOnly)
            .filter(StopWordFilter::remove(self.stopwords.clone()))
            .build()
    }

    /// The analyzer of queries: jieba in its plain mode, punctuation and stop words dropped.
    /// Articles are indexed in search mode (whole words and the shorter words inside them), so
    /// a whole word typed finds them; searched in search mode, a query would also look for
    /// every shorter word inside its words (信用 in 信用卡), each a posting list as long or
    /// longer that finds the same articles again.
    pub fn query_analyzer(&self) -> TextAnalyzer {
        TextAnalyzer::builder(self.plain.clone())
            .filter(WordsOnly)
            .filter(StopWordFilter::remove(self.stopwords.clone()))
            .build()
    }

    /// Jieba in its plain mode, whose words follow one another without overlapping: keeps a
    /// synonym whole (账户管理费, not 管理).
    pub fn plain_analyzer(&self) -> TextAnalyzer {
        TextAnalyzer::builder(self.plain.clone()).filter(WordsOnly).build()
    }

    /// The analyzer of the pinyin field: every two adjacent Han characters as their toneless
    /// pinyin, so that a word typed with a wrong character of the same sound (年废 for 年费)
    /// still matches, however the segmenter would have cut the misspelt text.
    pub fn pinyin_analyzer(&self) -> TextAnalyzer {
        // Two-character grams are always a valid configuration.
        let bigrams = NgramTokenizer::all_ngrams(2, 2).unwrap_or_else(|_| unreachable!("2..=2 grams"));
        TextAnalyzer::builder(bigrams).filter(Pinyin).build()
    }

    /// The pinyin terms a query searches for: those of every two adjacent Han characters of
    /// `text` (normalized) that are not part of a word of the query. A word the segmenter
    /// found is searched as itself; its pinyin would only add the same articles again (and a
    /// long list of them). Two characters that are no word of the query are where a wrong
    /// character of the same sound hides (年废 for 年费).
    pub fn pinyin_grams(&self, text: &str, words: &[String]) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out: Vec<String> = Vec::new();
        for pair in chars.windows(2) {
            let gram: String = pair.iter().collect();
            if words.iter().any(|w| w.contains(&gram)) {
                continue;
            }
            if let Some(pinyin) = to_pinyin(&gram)
                && !out.contains(&pinyin)
            {
                out.push(pinyin);
            }
        }
        out
    }

    /// The distinct terms `analyzer` makes of `text`, in order.
    pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            if !out.iter().any(|t| t == &token.text) {
                out.push(token.text.clone());
            }
        }
        out
    }

    /// The words of the synonym groups that `text` (normalized) contains, each with the other
    /// words of its group, which a search adds.
    pub fn synonyms_in(&self, text: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for group in &self.groups {
            if let Some(found) = group.iter().find(|w| text.contains(w.as_str())) {
                let others = group.iter().filter(|w| *w != found).cloned().collect();
                out.push((found.clone(), others));
            }
        }
        out
    }
}

/// Drops tokens that have no letter or digit (punctuation, spaces).
#[derive(Clone)]
struct WordsOnly;

impl TokenFilter for WordsOnly {
    type Tokenizer<T: Tokenizer> = Filtered<T, fn(&mut Token) -> bool>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> Self::Tokenizer<T> {
        Filtered(tokenizer, |token| token.text.chars().any(char::is_alphanumeric))
    }
}

/// Finds the words to highlight in a snippet: the places where one of a query's words (and
/// synonyms) stands in the text, left to right, the longest word where several start at one
/// place, never overlapping, as the snippet generator needs. A search already knows its
/// words, so the text of a hit is scanned for them instead of being segmented again.
#[derive(Clone)]
pub struct Occurrences {
    /// Longest first, so that 信用卡 is found before the 信用 inside it.
    words: Arc<Vec<String>>,
}

impl Occurrences {
    pub fn of<'a>(words: impl IntoIterator<Item = &'a String>) -> Self {
        let mut words: Vec<String> = words.into_iter().filter(|w| !w.is_empty()).cloned().collect();
        words.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        words.dedup();
        Self { words: Arc::new(words) }
    }

    pub fn analyzer(&self) -> TextAnalyzer {
        TextAnalyzer::builder(self.clone()).build()
    }
}

impl Tokenizer for Occurrences {
    type TokenStream<'a> = Collected;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Collected {
        let mut tokens = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let rest = &text[at..];
            match self.words.iter().find(|w| rest.starts_with(w.as_str())) {
                Some(word) => {
                    tokens.push(Token {
                        offset_from: at,
                        offset_to: at + word.len(),
                        position: tokens.len(),
                        text: word.clone(),
                        position_length: 1,
                    });
                    at += word.len();
                }
                None => at += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
        Collected { tokens: tokens.into_iter(), current: Token::default() }
    }
}

/// Jieba as a tantivy tokenizer over the suite's one dictionary: an analyzer is cloned for
/// every field of every segment and every query, and jieba's dictionary (about 25 MB in
/// memory) is not copied with it. Cutting reads the dictionary only, so clones cut at once
/// on every core without waiting for each other. Tokens carry byte offsets and, as positions,
/// character offsets with the word's length in characters (search mode's shorter words inside
/// a longer one overlap it).
#[derive(Clone)]
pub struct JiebaWords {
    jieba: &'static Jieba,
    mode: TokenizeMode,
}

/// The tokens of one text, taken in one go.
pub struct Collected {
    tokens: std::vec::IntoIter<Token>,
    current: Token,
}

impl Tokenizer for JiebaWords {
    type TokenStream<'a> = Collected;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Collected {
        let start = text.as_ptr() as usize;
        let tokens: Vec<Token> = self
            .jieba
            .tokenize(text, self.mode, true)
            .into_iter()
            .map(|t| {
                let offset_from = t.word.as_ptr() as usize - start;
                Token {
                    offset_from,
                    offset_to: offset_from + t.word.len(),
                    position: t.start,
                    position_length: t.end - t.start,
                    text: t.word.to_owned(),
                }
            })
            .collect();
        Collected { tokens: tokens.into_iter(), current: Token::default() }
    }
}

impl TokenStream for Collected {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(token) => {
                self.current = token;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

/// Rewrites each token as the toneless pinyin of its characters; a token with anything but
/// Han characters is dropped, and so is a single character (one syllable matches far too much).
#[derive(Clone)]
struct Pinyin;

impl TokenFilter for Pinyin {
    type Tokenizer<T: Tokenizer> = Filtered<T, fn(&mut Token) -> bool>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> Self::Tokenizer<T> {
        Filtered(tokenizer, |token| match to_pinyin(&token.text) {
            Some(pinyin) => {
                token.text = pinyin;
                true
            }
            None => false,
        })
    }
}

/// The toneless pinyin of a word of two or more Han characters (and nothing else).
pub fn to_pinyin(word: &str) -> Option<String> {
    use pinyin::ToPinyin;
    if word.chars().count() < 2 {
        return None;
    }
    let mut out = String::new();
    for p in word.to_pinyin() {
        out.push_str(p?.plain());
    }
    Some(out)
}

/// A tokenizer whose tokens pass through `keep`, which may rewrite them.
#[derive(Clone)]
pub struct Filtered<T, F>(T, F);

pub struct FilteredStream<S, F> {
    tail: S,
    keep: F,
}

impl<T: Tokenizer, F: Fn(&mut Token) -> bool + Clone + Send + Sync + 'static> Tokenizer for Filtered<T, F> {
    type TokenStream<'a> = FilteredStream<T::TokenStream<'a>, F>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        FilteredStream { tail: self.0.token_stream(text), keep: self.1.clone() }
    }
}

impl<S: TokenStream, F: Fn(&mut Token) -> bool> TokenStream for FilteredStream<S, F> {
    fn advance(&mut self) -> bool {
        while self.tail.advance() {
            if (self.keep)(self.tail.token_mut()) {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn traditional_and_full_width_text_reads_as_simplified() {
        let lexicon = Lexicon::shipped().unwrap();
        assert_eq!(lexicon.normalize("這是公司規定，ＡＢＣ"), "这是公司规定,abc");
        assert_eq!(lexicon.normalize("這是公司規定").chars().count(), 6);
    }

    #[test]
    fn domain_words_stay_whole_and_stop_words_go() {
        let lexicon = Lexicon::shipped().unwrap();
        let terms = Lexicon::terms(&mut lexicon.analyzer(), "我的信用卡年费怎么又被扣了？");
        assert!(terms.contains(&"年费".to_owned()), "{terms:?}");
        assert!(terms.contains(&"信用卡".to_owned()), "{terms:?}");
        assert!(!terms.iter().any(|t| t == "的" || t == "我" || t == "？"), "{terms:?}");
    }

    #[test]
    fn search_mode_adds_the_words_inside_a_word_at_their_own_places_and_plain_mode_does_not() {
        let lexicon = Lexicon::shipped().unwrap();
        let cut = |tokenizer: &JiebaWords| {
            let mut tokenizer = tokenizer.clone();
            let mut stream = tokenizer.token_stream("还信用卡");
            let mut found = Vec::new();
            while let Some(t) = stream.next() {
                found.push((t.text.clone(), t.offset_from, t.offset_to, t.position, t.position_length));
            }
            found
        };
        let search = cut(&lexicon.search);
        assert!(search.contains(&("信用卡".to_owned(), 3, 12, 1, 3)), "{search:?}");
        assert!(search.contains(&("信用".to_owned(), 3, 9, 1, 2)), "{search:?}");
        let plain = cut(&lexicon.plain);
        assert!(plain.contains(&("信用卡".to_owned(), 3, 12, 1, 3)), "{plain:?}");
        assert!(!plain.iter().any(|t| t.0 == "信用"), "{plain:?}");
        // Both modes and every analyzer made from them read the suite's one dictionary.
        assert!(std::ptr::eq(lexicon.search.jieba, lexicon.plain.jieba));
        assert!(std::ptr::eq(lexicon.plain.jieba, redress_platform::segmenter::segmenter()));
    }

    #[test]
    fn a_snippet_finds_the_longest_word_at_each_place_without_overlaps() {
        let words = ["信用".to_owned(), "信用卡".to_owned(), "年费".to_owned()];
        let mut analyzer = Occurrences::of(&words).analyzer();
        let mut stream = analyzer.token_stream("信用卡年费,信用好");
        let mut found = Vec::new();
        while let Some(token) = stream.next() {
            found.push((token.text.clone(), token.offset_from, token.offset_to));
        }
        assert_eq!(found, [("信用卡".to_owned(), 0, 9), ("年费".to_owned(), 9, 15), ("信用".to_owned(), 16, 22)]);
    }

    #[test]
    fn a_query_searches_pinyin_only_where_no_word_of_it_stands() {
        let lexicon = Lexicon::shipped().unwrap();
        let words = ["年费".to_owned()];
        assert!(lexicon.pinyin_grams("年费", &words).is_empty());
        assert_eq!(lexicon.pinyin_grams("年废", &[]), ["nianfei"]);
        assert_eq!(lexicon.pinyin_grams("卡年费", &words), ["kanian"]);
    }

    #[test]
    fn a_word_with_a_wrong_character_of_the_same_sound_has_the_same_pinyin() {
        let lexicon = Lexicon::shipped().unwrap();
        let right = Lexicon::terms(&mut lexicon.pinyin_analyzer(), "年费");
        let wrong = Lexicon::terms(&mut lexicon.pinyin_analyzer(), "年废");
        assert_eq!(right, ["nianfei"]);
        assert_eq!(wrong, right);
        assert_eq!(Lexicon::terms(&mut lexicon.pinyin_analyzer(), "卡,年费"), ["nianfei"]);
        let groups = lexicon.synonyms_in("卡被人刷了");
        assert!(
            groups.iter().any(|(found, others)| found == "被人刷" && others.contains(&"盗刷".to_owned())),
            "{groups:?}"
        );
    }
}
