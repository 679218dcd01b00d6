//! Searching the published articles: the request parsed and checked, the reader's scope
//! applied, the index searched off the async workers.

use std::time::Instant;

use redress_platform::error::Violations;
use redress_platform::names::{ROOT_ORG_UNIT, Text};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_proto::redress::knowledge::v1::{
    ArticleKind, SearchArticlesRequest, SearchArticlesResponse, SearchHit, Snippet, TextRange,
};
use sha2::{Digest, Sha256};

use super::KnowledgeApi;
use crate::error::KbError;
use crate::search::{Boosts, Filters, Hit, Reader, SearchQuery};

/// Hits per page by default, at most, and how deep pages go.
const DEFAULT_PAGE: i32 = 10;
const MAX_PAGE: i32 = 50;
const MAX_OFFSET: usize = 1_000;
/// Longest query, in characters.
const MAX_QUERY: usize = 500;

/// Who is searching, as the index filters it.
pub(super) fn reader_of(principal: &Principal) -> Reader {
    match principal.org_unit.as_str() {
        ROOT_ORG_UNIT => Reader::All,
        "" => Reader::NoUnit,
        unit => Reader::Unit(unit.to_owned()),
    }
}

pub(super) fn kinds(v: &mut Violations, field: &str, kinds: &[i32]) -> Vec<ArticleKind> {
    let mut out = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        match ArticleKind::try_from(*k) {
            Ok(ArticleKind::Unspecified) | Err(_) => v.add(format!("{field}[{i}]"), "unknown article kind"),
            Ok(kind) => out.push(kind),
        }
    }
    out
}

/// What identifies a search across its pages, so that a token is not reused for another.
fn fingerprint(request: &SearchArticlesRequest) -> String {
    let mut hasher = Sha256::new();
    hasher.update(request.query.as_bytes());
    hasher.update(format!("{:?}{:?}", request.kinds, request.codes).as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

pub(super) fn to_hit(hit: Hit) -> SearchHit {
    let range = |(start, end): (usize, usize)| TextRange {
        start: i32::try_from(start).unwrap_or(i32::MAX),
        end: i32::try_from(end).unwrap_or(i32::MAX),
    };
    SearchHit {
        article: format!("articles/{}", hit.id),
        version: hit.version,
        kind: hit.kind as i32,
        org_unit: hit.org_unit,
        title: hit.title,
        tags: hit.tags,
        snippet: Some(Snippet { text: hit.snippet, highlights: hit.highlights.into_iter().map(range).collect() }),
        score: hit.score,
        matched_terms: hit.matched,
    }
}

impl KnowledgeApi {
    pub(super) async fn search_articles(
        &self,
        principal: &Principal,
        request: SearchArticlesRequest,
    ) -> Result<SearchArticlesResponse, KbError> {
        // `took` is the time spent here: checking the request, searching, making the answer.
        let started = Instant::now();
        principal.require(Permission::KnowledgeRead)?;
        let mut v = Violations::new();
        if request.query.trim().is_empty() {
            v.add("query", "required: the words to look for");
        } else if request.query.chars().count() > MAX_QUERY {
            v.add("query", format!("at most {MAX_QUERY} characters"));
        }
        Text::Long.check(&mut v, "query", &request.query, false);
        let kinds = kinds(&mut v, "kinds", &request.kinds);
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => {
                v.add("page_size", "must not be negative");
                DEFAULT_PAGE
            }
            n => n.min(MAX_PAGE),
        };
        let fingerprint = fingerprint(&request);
        let offset = match paging::decode_token(&request.page_token, &mut v) {
            None => 0,
            Some((offset, print)) if print == fingerprint && (0..=MAX_OFFSET as i64).contains(&offset) => {
                offset as usize
            }
            Some(_) => {
                v.add("page_token", "belongs to another search");
                0
            }
        };
        let codes = request.codes.clone().unwrap_or_default();
        v.into_result()?;
        let query = SearchQuery {
            text: request.query.clone(),
            filters: Filters {
                kinds,
                business_types: codes.business_types,
                causes: codes.causes,
                rights: codes.rights,
            },
            boosts: Boosts::default(),
            reader: reader_of(principal),
            offset,
            limit: page_size as usize,
        };
        let index = self.index()?;
        let (hits, more) =
            tokio::task::spawn_blocking(move || index.search_page(&query)).await.map_err(anyhow::Error::from)??;
        let next_page_token = if more && offset + (page_size as usize) < MAX_OFFSET {
            paging::encode_token(&((offset + page_size as usize) as i64, fingerprint))
        } else {
            String::new()
        };
        let hits = hits.into_iter().map(to_hit).collect();
        let took = started.elapsed();
        metrics::histogram!("redress_knowledge_search_seconds").record(took.as_secs_f64());
        Ok(SearchArticlesResponse {
            hits,
            next_page_token,
            took: Some(prost_types::Duration {
                seconds: took.as_secs() as i64,
                nanos: i32::try_from(took.subsec_nanos()).unwrap_or_default(),
            }),
        })
    }
}
