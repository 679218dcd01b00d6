//! Full-text search of published articles (D-KB-2): a tantivy index whose text fields are
//! segmented by jieba ([`text`]), ranked by BM25 over title, tags and body (and the pinyin of
//! title and tags, for misspellings), filtered by kind, taxonomy codes and the reader's scope,
//! with highlighted snippets.
//!
//! The index is derived data ([`follow`]): the store is the source of truth; each replica
//! builds its index from the store when it starts and then follows the service's own feed, so
//! a lost index directory costs only a rebuild.

pub mod follow;
pub mod text;

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use redress_proto::redress::knowledge::v1::{ArticleContent, ArticleKind};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::domain::scope::applying_to;
use crate::store::Published;
use text::{Lexicon, Occurrences};

/// Bumped whenever the schema or the analysis changes: an index of another version is rebuilt.
pub const INDEX_VERSION: u32 = 2;

/// Weights of the fields, and of the words a synonym group adds to a query.
const TITLE_BOOST: f32 = 3.0;
const TAGS_BOOST: f32 = 2.0;
const BODY_BOOST: f32 = 1.0;
const PINYIN_BOOST: f32 = 1.2;
const SYNONYM_WEIGHT: f32 = 0.6;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 120;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    kind: Field,
    scope: Field,
    scope_within: Field,
    codes: Field,
    version: Field,
    title: Field,
    tags: Field,
    body: Field,
    pinyin: Field,
    /// The text as written (the indexed fields hold it normalized), for hits and snippets.
    shown_title: Field,
    shown_tags: Field,
    shown_body: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |tokenizer: &str, stored: bool| {
        let indexing =
            TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(IndexRecordOption::WithFreqs);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored { options.set_stored() } else { options }
    };
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        kind: builder.add_text_field("kind", STRING | STORED),
        scope: builder.add_text_field("scope", STRING | STORED),
        scope_within: builder.add_text_field("scope_within", STRING),
        codes: builder.add_text_field("codes", STRING | STORED),
        version: builder.add_u64_field("version", STORED),
        title: builder.add_text_field("title", text("zh", false)),
        tags: builder.add_text_field("tags", text("zh", false)),
        body: builder.add_text_field("body", text("zh", false)),
        pinyin: builder.add_text_field("pinyin", text("pinyin", false)),
        shown_title: builder.add_text_field("shown_title", STORED),
        shown_tags: builder.add_text_field("shown_tags", STORED),
        shown_body: builder.add_text_field("shown_body", STORED),
    };
    (builder.build(), fields)
}

/// A code as the index keeps it: its dimension and the code, e.g. `b:B02`.
fn code_term(dimension: char, code: &str) -> String {
    format!("{dimension}:{code}")
}

/// Who is searching: the whole platform, or a reader at a unit (who sees what applies to it
/// and what lies below it), or a reader of no unit (platform-wide articles only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    All,
    Unit(String),
    NoUnit,
}

/// Filters of a search; empty lists filter nothing.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub kinds: Vec<ArticleKind>,
    pub business_types: Vec<String>,
    pub causes: Vec<String>,
    pub rights: Vec<String>,
}

/// Codes that raise an article's score without being required (suggestions for a complaint).
#[derive(Debug, Clone, Default)]
pub struct Boosts {
    pub business_type: Option<String>,
    pub cause: Option<String>,
    pub rights: Vec<String>,
}

/// One search.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: String,
    pub filters: Filters,
    pub boosts: Boosts,
    pub reader: Reader,
    pub offset: usize,
    pub limit: usize,
}

/// One article found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub kind: ArticleKind,
    pub org_unit: String,
    pub version: i32,
    pub title: String,
    pub tags: Vec<String>,
    pub codes: Vec<String>,
    pub score: f32,
    /// A passage of the body around the best matches, and the character ranges matched in it.
    pub snippet: String,
    pub highlights: Vec<(usize, usize)>,
    /// The query's words (and synonyms) the article contains, for saying why it matched.
    pub matched: Vec<String>,
}

/// The words of a query: the terms typed, and those its synonym groups add.
#[derive(Debug, Clone, Default)]
pub struct QueryWords {
    pub typed: Vec<String>,
    pub synonyms: Vec<String>,
}

pub struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    lexicon: Arc<Lexicon>,
}

/// Memory the writer may use before it flushes a segment.
const WRITER_MEMORY: usize = 200_000_000;

impl SearchIndex {
    /// Opens the index in `dir`, or creates an empty one there (also when the one found is of
    /// another version or unreadable); returns it with the feed position it was last brought up
    /// to (`None` when it is new).
    pub fn open(dir: &Path, lexicon: Arc<Lexicon>) -> anyhow::Result<(Self, Option<i64>)> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create index directory {}", dir.display()))?;
        let (schema, fields) = schema();
        let existing = Index::open_in_dir(dir).ok().and_then(|index| {
            let position = index.load_metas().ok()?.payload.as_deref().and_then(parse_payload)?;
            (index.schema() == schema).then_some((index, position))
        });
        let (index, position) = match existing {
            Some((index, position)) => (index, Some(position)),
            None => {
                // What is there is not an index of this version: start afresh.
                for entry in std::fs::read_dir(dir)? {
                    let path = entry?.path();
                    if path.is_dir() { std::fs::remove_dir_all(&path)? } else { std::fs::remove_file(&path)? }
                }
                (Index::create_in_dir(dir, schema).context("creating the search index")?, None)
            }
        };
        Self::with(index, fields, lexicon).map(|i| (i, position))
    }

    /// An index in memory (tests, the evaluation of search quality).
    pub fn in_memory(lexicon: Arc<Lexicon>) -> anyhow::Result<Self> {
        let (schema, fields) = schema();
        Self::with(Index::create_in_ram(schema), fields, lexicon)
    }

    fn with(index: Index, fields: Fields, lexicon: Arc<Lexicon>) -> anyhow::Result<Self> {
        index.tokenizers().register("zh", lexicon.analyzer());
        index.tokenizers().register("pinyin", lexicon.pinyin_analyzer());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let writer = index.writer_with_num_threads(threads, WRITER_MEMORY).context("opening the index writer")?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { reader, writer: Mutex::new(writer), fields, lexicon })
    }

    pub fn lexicon(&self) -> &Arc<Lexicon> {
        &self.lexicon
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Empties the index (before a rebuild; nothing is visible until [`SearchIndex::commit`]).
    pub fn clear(&self) -> anyhow::Result<()> {
        self.writer().delete_all_documents()?;
        Ok(())
    }

    /// Adds an article's published version to an index that does not hold it (a rebuild).
    pub fn add(&self, article: &Published) -> anyhow::Result<()> {
        self.writer().add_document(self.document(article))?;
        Ok(())
    }

    /// Puts an article's published version in the index in place of whatever was there.
    pub fn upsert(&self, article: &Published) -> anyhow::Result<()> {
        let writer = self.writer();
        writer.delete_term(Term::from_field_text(self.fields.id, &article.id));
        writer.add_document(self.document(article))?;
        Ok(())
    }

    /// Takes an article out of the index (it has no published version any more).
    pub fn remove(&self, id: &str) {
        self.writer().delete_term(Term::from_field_text(self.fields.id, id));
    }

    /// Makes the changes so far visible to searches, recording that the index reflects the
    /// feed up to `position`.
    pub fn commit(&self, position: i64) -> anyhow::Result<()> {
        {
            let mut writer = self.writer();
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&payload(position));
            prepared.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// Merges the index's segments into one and waits for it (after a rebuild, which leaves one
    /// segment per indexing thread and flush): a search then walks one posting list per term
    /// instead of one per segment, and its pruning threshold is not learnt again per segment.
    /// The merged segment keeps the last commit's feed position.
    pub fn merge_segments(&self) -> anyhow::Result<()> {
        let segments = self.reader.searcher().index().searchable_segment_ids()?;
        if segments.len() > 1 {
            let merging = self.writer().merge(&segments);
            merging.wait().context("merging the index's segments")?;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// How many segments searches walk (as of the last commit or merge).
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// How many articles the index holds (as of the last commit).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn document(&self, article: &Published) -> TantivyDocument {
        let f = &self.fields;
        let content = article.version.content.clone().unwrap_or_default();
        let normalize = |s: &str| self.lexicon.normalize(s);
        let mut document = doc!(
            f.id => article.id.as_str(),
            f.kind => (article.kind as i32).to_string(),
            f.scope => article.org_unit.as_str(),
            f.version => u64::try_from(article.version.version).unwrap_or_default(),
            f.title => normalize(&content.title),
            f.body => normalize(&content.body),
            f.pinyin => normalize(&content.title),
            f.shown_title => content.title.as_str(),
            f.shown_body => content.body.as_str(),
        );
        for unit in applying_to(&article.org_unit).into_iter().skip(1) {
            document.add_text(f.scope_within, unit);
        }
        for tag in &content.tags {
            document.add_text(f.shown_tags, tag);
            document.add_text(f.tags, normalize(tag));
            document.add_text(f.pinyin, normalize(tag));
        }
        for code in codes_of(&content) {
            document.add_text(f.codes, code);
        }
        document
    }

    /// The words a query searches for.
    pub fn words(&self, text: &str) -> QueryWords {
        let normalized = self.lexicon.normalize(text);
        let mut analyzer = self.lexicon.query_analyzer();
        let typed = Lexicon::terms(&mut analyzer, &normalized);
        let mut plain = self.lexicon.plain_analyzer();
        let mut synonyms = Vec::new();
        for (_, others) in self.lexicon.synonyms_in(&normalized) {
            for word in others {
                for term in Lexicon::terms(&mut plain, &word) {
                    if !typed.contains(&term) && !synonyms.contains(&term) {
                        synonyms.push(term);
                    }
                }
            }
        }
        QueryWords { typed, synonyms }
    }

    /// The words of `text` that tell most about it against the articles indexed (term
    /// frequency times inverse document frequency over title, tags and body); words no article
    /// has are left out, single characters weigh half. At most `n`, best first.
    pub fn keywords(&self, text: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let normalized = self.lexicon.normalize(text);
        let mut counts: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
        let mut analyzer = self.lexicon.analyzer();
        let mut stream = analyzer.token_stream(&normalized);
        while let Some(token) = stream.next() {
            *counts.entry(token.text.clone()).or_default() += 1.0;
        }
        let searcher = self.reader.searcher();
        let docs = searcher.num_docs().max(1) as f64;
        let f = &self.fields;
        let mut scored = Vec::new();
        for (word, count) in counts {
            let mut df = 0;
            for field in [f.title, f.tags, f.body] {
                df = df.max(searcher.doc_freq(&Term::from_field_text(field, &word))?);
            }
            if df == 0 {
                continue;
            }
            let idf = (1.0 + docs / df as f64).ln();
            let weight = if word.chars().count() == 1 { 0.5 } else { 1.0 };
            scored.push((count.sqrt() * idf * weight, word));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(scored.into_iter().take(n).map(|(_, word)| word).collect())
    }

    /// The scoring part of a search: every word in title, tags and body (single characters in
    /// title and tags only), synonyms weighing less, and the pinyin of the text typed.
    fn text_query(&self, text: &str, words: &QueryWords) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut add = |field: Field, term: &str, boost: f32| {
            let query = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::WithFreqs);
            clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(query), boost))));
        };
        for (words, weight) in [(&words.typed, 1.0), (&words.synonyms, SYNONYM_WEIGHT)] {
            for word in words {
                add(f.title, word, TITLE_BOOST * weight);
                add(f.tags, word, TAGS_BOOST * weight);
                // A single character (刷, 卡, 钱) tells little in a body, where nearly every
                // article has it: a posting list nearly as long as the index, for a score
                // that hardly separates them. It counts in titles and tags.
                if word.chars().nth(1).is_some() {
                    add(f.body, word, BODY_BOOST * weight);
                }
            }
        }
        let normalized = self.lexicon.normalize(text);
        for gram in self.lexicon.pinyin_grams(&normalized, &words.typed) {
            add(f.pinyin, &gram, PINYIN_BOOST);
        }
        clauses
    }

    /// The filters as required clauses that do not score.
    fn filter_clauses(&self, query: &SearchQuery) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let any_of = |field: Field, values: Vec<String>| -> Box<dyn Query> {
            let terms: Vec<(Occur, Box<dyn Query>)> = values
                .iter()
                .map(|v| {
                    let term: Box<dyn Query> =
                        Box::new(TermQuery::new(Term::from_field_text(field, v), IndexRecordOption::Basic));
                    (Occur::Should, term)
                })
                .collect();
            Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(terms)), 0.0))
        };
        let mut clauses = Vec::new();
        let filters = &query.filters;
        if !filters.kinds.is_empty() {
            let kinds = filters.kinds.iter().map(|k| (*k as i32).to_string()).collect();
            clauses.push((Occur::Must, any_of(f.kind, kinds)));
        }
        for (dimension, codes) in [('b', &filters.business_types), ('c', &filters.causes), ('r', &filters.rights)] {
            if !codes.is_empty() {
                clauses.push((Occur::Must, any_of(f.codes, codes.iter().map(|c| code_term(dimension, c)).collect())));
            }
        }
        match &query.reader {
            Reader::All => {}
            Reader::NoUnit => clauses.push((Occur::Must, any_of(f.scope, vec!["/".to_owned()]))),
            Reader::Unit(unit) => {
                // What applies to the unit (itself, the units above it, the platform) or lies below it.
                let mut scope: Vec<(Occur, Box<dyn Query>)> = applying_to(unit)
                    .into_iter()
                    .map(|u| {
                        let term: Box<dyn Query> =
                            Box::new(TermQuery::new(Term::from_field_text(f.scope, &u), IndexRecordOption::Basic));
                        (Occur::Should, term)
                    })
                    .collect();
                scope.push((
                    Occur::Should,
                    Box::new(TermQuery::new(Term::from_field_text(f.scope_within, unit), IndexRecordOption::Basic)),
                ));
                clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(scope)), 0.0))));
            }
        }
        clauses
    }

    /// Searches the published articles: the best `limit` after `offset`, with snippets.
    pub fn search(&self, query: &SearchQuery) -> anyhow::Result<Vec<Hit>> {
        self.search_page(query).map(|(hits, _)| hits)
    }

    /// The query searched for `query`: its words scored, its boosts, its filters required;
    /// `None` when there is nothing to score.
    fn query_of(&self, query: &SearchQuery, words: &QueryWords) -> Option<BooleanQuery> {
        let mut scoring = self.text_query(&query.text, words);
        let f = self.fields;
        let boost = |dimension: char, code: &str, weight: f32| -> (Occur, Box<dyn Query>) {
            let term =
                TermQuery::new(Term::from_field_text(f.codes, &code_term(dimension, code)), IndexRecordOption::Basic);
            (Occur::Should, Box::new(ConstScoreQuery::new(Box::new(term), weight)))
        };
        let has_text = !scoring.is_empty();
        if let Some(code) = &query.boosts.business_type {
            scoring.push(boost('b', code, 2.0));
        }
        if let Some(code) = &query.boosts.cause {
            scoring.push(boost('c', code, 3.0));
        }
        for code in &query.boosts.rights {
            scoring.push(boost('r', code, 0.5));
        }
        if !has_text && scoring.is_empty() {
            return None;
        }
        let mut clauses = self.filter_clauses(query);
        let text_query = BooleanQuery::new(scoring);
        // Without filters the union of term queries is searched as it is, which lets tantivy
        // skip blocks of documents that cannot reach the top (block-max WAND).
        Some(if clauses.is_empty() {
            text_query
        } else {
            clauses.push((Occur::Must, Box::new(text_query)));
            BooleanQuery::new(clauses)
        })
    }

    /// How many articles a search matches (all of them, not only the best): the work a search
    /// cannot avoid grows with this number.
    pub fn matching(&self, query: &SearchQuery) -> anyhow::Result<usize> {
        let words = self.words(&query.text);
        let Some(full) = self.query_of(query, &words) else { return Ok(0) };
        Ok(self.reader.searcher().search(&full, &tantivy::collector::Count)?)
    }

    /// Searches the published articles: the best `limit` after `offset`, with snippets, and
    /// whether more follow. Only the hits returned are read from the store of documents and get
    /// a snippet; the one after them is only counted.
    pub fn search_page(&self, query: &SearchQuery) -> anyhow::Result<(Vec<Hit>, bool)> {
        let words = self.words(&query.text);
        let Some(full) = self.query_of(query, &words) else { return Ok((Vec::new(), false)) };
        let f = self.fields;
        let searcher = self.reader.searcher();
        let limit = query.limit.max(1);
        let mut top =
            searcher.search(&full, &TopDocs::with_limit(limit + 1).and_offset(query.offset).order_by_score())?;
        let more = top.len() > limit;
        top.truncate(limit);
        // Snippets highlight the words typed and their synonyms where they stand in the body.
        let terms = words
            .typed
            .iter()
            .map(|w| (w.clone(), 1.0))
            .chain(words.synonyms.iter().map(|w| (w.clone(), SYNONYM_WEIGHT)));
        let occurrences = Occurrences::of(words.typed.iter().chain(&words.synonyms));
        let snippets = SnippetGenerator::new(terms.collect(), occurrences.analyzer(), f.body, SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let document: TantivyDocument = searcher.doc(address)?;
            hits.push(self.hit(&document, score, &snippets, &words));
        }
        // Equal scores come back in the order of the index's segments, which differs between
        // an index that followed the feed and one rebuilt from the store: they are ordered by
        // article id, so a rebuilt index answers in the same order.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        Ok((hits, more))
    }

    fn hit(&self, document: &TantivyDocument, score: f32, snippets: &SnippetGenerator, words: &QueryWords) -> Hit {
        let f = &self.fields;
        let text = |field: Field| document.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let all = |field: Field| -> Vec<String> {
            document.get_all(field).filter_map(|v| v.as_str().map(str::to_owned)).collect()
        };
        let (title, body, tags) = (text(f.shown_title), text(f.shown_body), all(f.shown_tags));
        // The snippet is cut from the body as written; its words are found in its normalized
        // form, which has the same characters at the same places.
        let normalized_body = self.lexicon.normalize(&body);
        let snippet = snippets.snippet(&normalized_body);
        let fragment = snippet.fragment();
        let to_chars = |byte: usize| fragment.get(..byte).map_or(0, |s| s.chars().count());
        let highlights: Vec<(usize, usize)> =
            snippet.highlighted().iter().map(|r| (to_chars(r.start), to_chars(r.end))).collect();
        let normalized = [self.lexicon.normalize(&title), self.lexicon.normalize(&tags.join("\n"))];
        let contains =
            |w: &String| normalized_body.contains(w.as_str()) || normalized.iter().any(|t| t.contains(w.as_str()));
        let matched = words.typed.iter().chain(&words.synonyms).filter(|w| contains(w)).cloned().collect();
        let kind = text(f.kind).parse::<i32>().ok().and_then(|k| ArticleKind::try_from(k).ok()).unwrap_or_default();
        // The fragment's characters, taken from the body as written.
        let snippet_text: String = if fragment.is_empty() {
            body.chars().take(SNIPPET_CHARS).collect()
        } else {
            let start = normalized_body.find(fragment).map_or(0, |at| normalized_body[..at].chars().count());
            body.chars().skip(start).take(fragment.chars().count()).collect()
        };
        Hit {
            id: text(f.id),
            kind,
            org_unit: text(f.scope),
            version: document
                .get_first(f.version)
                .and_then(|v| v.as_u64())
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or_default(),
            title,
            tags,
            codes: all(f.codes),
            score,
            snippet: snippet_text,
            highlights,
            matched,
        }
    }
}

/// The codes of a content, as the index keeps them.
fn codes_of(content: &ArticleContent) -> Vec<String> {
    let Some(codes) = &content.codes else { return Vec::new() };
    let mut out = Vec::new();
    out.extend(codes.business_types.iter().map(|c| code_term('b', c)));
    out.extend(codes.causes.iter().map(|c| code_term('c', c)));
    out.extend(codes.rights.iter().map(|c| code_term('r', c)));
    out
}

/// What an index commit records: the index version and the feed position it reflects.
fn payload(position: i64) -> String {
    serde_json::json!({ "version": INDEX_VERSION, "position": position }).to_string()
}

fn parse_payload(payload: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    (value.get("version")?.as_u64()? == u64::from(INDEX_VERSION)).then_some(())?;
    value.get("position")?.as_i64()
}

#[cfg(test)]
mod evaluation;
#[cfg(test)]
mod tests;
