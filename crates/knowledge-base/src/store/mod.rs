//! The knowledge base's store: one trait, SQLite and PostgreSQL implementations, one
//! conformance suite. Every change is one operation in `ops`, written once over the
//! per-backend transaction of `tx`: load and lock the article, plan the change, write it with
//! its event (and the request id's first result) in one transaction.

mod ops;
mod postgres;
mod sqlite;
mod tx;

#[cfg(test)]
mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::Backend;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::EventSink;
use redress_platform::events::Feed;
use redress_platform::listing::ListSql;
use redress_platform::paging::Cursor;
use redress_platform::principal::Principal;
use redress_platform::time::from_micros;
use redress_proto::redress::common::v1::{ListDeadLettersRequest, ListDeadLettersResponse};
use redress_proto::redress::knowledge::v1::{ArticleKind, ArticleVersion, CaseCandidate};

use crate::domain::article::{ArticleRecord, Command, Plan};
use crate::error::KbError;

pub use postgres::PostgresKnowledgeStore;
pub use sqlite::SqliteKnowledgeStore;

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which articles a list returns, for whom.
#[derive(Debug, Clone, Default)]
pub struct ArticleQuery {
    pub kind: Option<i64>,
    pub state: Option<i64>,
    pub open_state: Option<i64>,
    pub after: Option<Cursor>,
    /// The caller's unit (`/` for the whole platform, empty for none).
    pub unit: String,
    /// Whether the caller writes or reviews: the articles of the units they cover are listed
    /// whatever their state.
    pub editor: bool,
    pub limit: i64,
}

/// A published version with what the search index needs of its article.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub id: String,
    pub kind: ArticleKind,
    pub org_unit: String,
    pub version: ArticleVersion,
}

/// One change to an article, as the API hands it to the store.
#[derive(Debug, Clone)]
pub struct Change {
    /// The article's id (a new one for a creation).
    pub id: String,
    pub principal: Arc<Principal>,
    pub command: Command,
    pub request: Option<RequestKey>,
    pub now: DateTime<Utc>,
}

/// A request id with the fingerprint of the caller and request that first used it.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub id: String,
    pub fingerprint: String,
}

#[async_trait]
pub trait KnowledgeStore: EventSink + Send + Sync + 'static {
    /// An article with every version; `None` when there is no such article.
    async fn get(&self, id: &str) -> anyhow::Result<Option<ArticleRecord>>;
    /// A page of articles, most recently changed first.
    async fn list(&self, query: &ArticleQuery) -> anyhow::Result<Vec<ArticleRecord>>;
    /// Applies one change with its event, all or nothing, and returns the encoded answer (an
    /// `Article` or an `ArticleVersion`, as the command answers); a retried request id
    /// returns the first answer and changes nothing.
    async fn change(&self, change: Change) -> Result<Vec<u8>, KbError>;
    /// Writes whole published articles (starter content, bulk loads) in one transaction,
    /// passing over ids already stored; returns how many it wrote.
    async fn seed(&self, plans: Vec<Plan>) -> Result<usize, KbError>;
    /// How many articles are stored.
    async fn count(&self) -> anyhow::Result<i64>;
    /// The published versions of articles after `after` in id order, at most `limit`.
    async fn published_after(&self, after: &str, limit: i64) -> anyhow::Result<Vec<Published>> {
        let rows: Vec<PublishedRow> = match self.feed().pool() {
            redress_platform::db::Pool::Sqlite(p) => {
                sqlx::query_as(PUBLISHED_AFTER).bind(after).bind(limit).fetch_all(p).await?
            }
            redress_platform::db::Pool::Postgres(p) => {
                sqlx::query_as(PUBLISHED_AFTER).bind(after).bind(limit).fetch_all(p).await?
            }
        };
        rows.into_iter().map(Published::try_from).collect()
    }
    /// The published version of one article, if it has one.
    async fn published(&self, id: &str) -> anyhow::Result<Option<Published>> {
        let row: Option<PublishedRow> = match self.feed().pool() {
            redress_platform::db::Pool::Sqlite(p) => sqlx::query_as(PUBLISHED_ONE).bind(id).fetch_optional(p).await?,
            redress_platform::db::Pool::Postgres(p) => sqlx::query_as(PUBLISHED_ONE).bind(id).fetch_optional(p).await?,
        };
        row.map(Published::try_from).transpose()
    }
    /// Forgets request ids first used before `before` (retention); returns how many.
    async fn prune_requests(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let cutoff = redress_platform::time::to_micros(before);
        self.feed().pool().delete_in_batches(PRUNE_REQUESTS, cutoff).await
    }
    /// A page of typical-case candidates, newest first.
    async fn list_candidates(&self, query: &CandidateQuery) -> anyhow::Result<Vec<ListedCandidate>> {
        let rows: Vec<(Vec<u8>, i64, String)> = match self.feed().pool() {
            redress_platform::db::Pool::Sqlite(p) => {
                candidates_sql(Backend::Sqlite, query).query_as().fetch_all(p).await?
            }
            redress_platform::db::Pool::Postgres(p) => {
                candidates_sql(Backend::Postgres, query).query_as().fetch_all(p).await?
            }
        };
        rows.into_iter()
            .map(|(record, time, id)| {
                Ok(ListedCandidate {
                    candidate: <CaseCandidate as Message>::decode(record.as_slice())?,
                    cursor: (time, id),
                })
            })
            .collect()
    }
    /// Adopts or dismisses a candidate (adoption writes the draft typical case in the same
    /// transaction) and returns the encoded answer: the `Article` adopted into, or the
    /// `CaseCandidate` dismissed. A retried request id returns the first answer.
    async fn change_candidate(&self, change: CandidateChange) -> Result<Vec<u8>, KbError>;
    /// The events of case-workflow's feed passed over as unappliable (`ListDeadLetters`).
    async fn list_dead_letters(
        &self,
        principal: &Principal,
        request: &ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, KbError> {
        Ok(redress_platform::dead_letters::list(self.feed().pool(), principal, request).await?)
    }
    /// Applies a dead letter again and marks it replayed, at most once (`ReplayDeadLetter`).
    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, KbError>;
    fn feed(&self) -> &Feed;
}

/// Forgets up to 5,000 request ids older than `$1` (both backends).
const PRUNE_REQUESTS: &str = "DELETE FROM kb_requests WHERE request_id IN \
    (SELECT request_id FROM kb_requests WHERE record_time_us < $1 LIMIT 5000)";

const PUBLISHED_AFTER: &str = "SELECT a.id, a.kind, a.org_unit, v.record FROM articles a \
    JOIN article_versions v ON v.article_id = a.id AND v.version = a.published_version \
    WHERE a.published_version > 0 AND a.state = 2 AND a.id > $1 ORDER BY a.id LIMIT $2";

const PUBLISHED_ONE: &str = "SELECT a.id, a.kind, a.org_unit, v.record FROM articles a \
    JOIN article_versions v ON v.article_id = a.id AND v.version = a.published_version \
    WHERE a.published_version > 0 AND a.state = 2 AND a.id = $1";

#[derive(sqlx::FromRow)]
struct PublishedRow {
    id: String,
    kind: i64,
    org_unit: String,
    record: Vec<u8>,
}

impl TryFrom<PublishedRow> for Published {
    type Error = anyhow::Error;

    fn try_from(row: PublishedRow) -> anyhow::Result<Self> {
        Ok(Self {
            kind: kind_of(row.kind)?,
            version: ArticleVersion::decode(row.record.as_slice())?,
            id: row.id,
            org_unit: row.org_unit,
        })
    }
}

fn kind_of(kind: i64) -> anyhow::Result<ArticleKind> {
    i32::try_from(kind)
        .ok()
        .and_then(|k| ArticleKind::try_from(k).ok())
        .ok_or_else(|| anyhow::anyhow!("stored article kind {kind} is unknown"))
}

/// The statement of a page of articles, with only the filters `q` sets. A reader sees published
/// articles that apply to their unit (`/` for the whole platform, empty for none) or lie below
/// it; an editor also sees every article of the units they cover.
pub(crate) fn list_sql(backend: Backend, q: &ArticleQuery) -> ListSql {
    let mut sql =
        ListSql::new(backend, "SELECT id, kind, org_unit, create_time_us, update_time_us, revision FROM articles");
    sql.and_eq("kind", q.kind).and_eq("state", q.state).and_eq("open_state", q.open_state).and_after(
        ("update_time_us", "id"),
        "<",
        q.after.clone(),
    );
    match q.unit.as_str() {
        "/" if q.editor => {}
        "/" => {
            sql.and("state = 2");
        }
        "" => {
            sql.and("state = 2 AND org_unit = '/'");
        }
        unit => {
            let (own, below) = (sql.bind(unit), sql.bind(format!("{unit}/")));
            let within = format!("(org_unit = {own} OR substr(org_unit, 1, length({own}) + 1) = {below})");
            let published = format!(
                "(state = 2 AND (org_unit = '/' OR {within} OR substr({own}, 1, length(org_unit) + 1) = org_unit || '/'))"
            );
            if q.editor {
                sql.and(&format!("({published} OR (org_unit <> '/' AND {within}))"));
            } else {
                sql.and(&published);
            }
        }
    }
    sql.finish("ORDER BY update_time_us DESC, id DESC", q.limit)
}

/// An article's row, without its versions.
#[derive(sqlx::FromRow)]
pub(crate) struct ArticleRow {
    id: String,
    kind: i64,
    org_unit: String,
    create_time_us: i64,
    update_time_us: i64,
    revision: i64,
}

impl ArticleRow {
    /// The article with `versions` (encoded, oldest first).
    fn with_versions(self, versions: Vec<Vec<u8>>) -> anyhow::Result<ArticleRecord> {
        Ok(ArticleRecord {
            kind: kind_of(self.kind)?,
            id: self.id,
            org_unit: self.org_unit,
            create_time: from_micros(self.create_time_us),
            update_time: from_micros(self.update_time_us),
            revision: self.revision,
            versions: versions.iter().map(|r| ArticleVersion::decode(r.as_slice())).collect::<Result<_, _>>()?,
        })
    }
}

const LOAD_ARTICLE: &str =
    "SELECT id, kind, org_unit, create_time_us, update_time_us, revision FROM articles WHERE id = $1";
const LOAD_VERSIONS: &str = "SELECT record FROM article_versions WHERE article_id = $1 ORDER BY version";
const COUNT: &str = "SELECT COUNT(*) FROM articles";
const CONSUMER_POSITION: &str = "SELECT position FROM consumer_positions WHERE consumer = $1";

/// The stored first result of a request id.
const LOAD_REQUEST: &str = "SELECT fingerprint, response FROM kb_requests WHERE request_id = $1";
const SAVE_REQUEST: &str =
    "INSERT INTO kb_requests (request_id, fingerprint, response, record_time_us) VALUES ($1, $2, $3, $4)";

const INSERT_ARTICLE: &str = "INSERT INTO articles (id, kind, org_unit, state, published_version, latest_version, \
    open_state, create_time_us, update_time_us, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (id) DO NOTHING";
/// Writes a changed article; `$8` is the revision it was loaded at.
const UPDATE_ARTICLE: &str = "UPDATE articles SET state = $2, published_version = $3, latest_version = $4, \
    open_state = $5, update_time_us = $6, revision = $7 WHERE id = $1 AND revision = $8";
const INSERT_CANDIDATE: &str = "INSERT INTO case_candidates (id, case_name, org_unit, state, create_time_us, \
    update_time_us, record) VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT DO NOTHING";
const SAVE_CANDIDATE: &str = "UPDATE case_candidates SET state = $2, update_time_us = $3, record = $4 WHERE id = $1";

/// The id in a candidate's name `caseCandidates/{id}`.
fn candidate_key(candidate: &CaseCandidate) -> &str {
    candidate.name.strip_prefix("caseCandidates/").unwrap_or(&candidate.name)
}

/// The statement of a page of candidates, with only the filters `q` sets, within the caller's
/// unit (`/` for all, empty for none).
pub(crate) fn candidates_sql(backend: Backend, q: &CandidateQuery) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record, create_time_us, id FROM case_candidates");
    sql.and_eq("state", q.state).and_after(("create_time_us", "id"), "<", q.after.clone());
    match q.unit.as_str() {
        "/" => {}
        "" => {
            sql.and("1 = 0");
        }
        unit => {
            sql.and_within("org_unit", Some(unit));
        }
    }
    sql.finish("ORDER BY create_time_us DESC, id DESC", q.limit)
}

/// Which candidates a list returns.
#[derive(Debug, Clone, Default)]
pub struct CandidateQuery {
    pub state: Option<i64>,
    pub after: Option<Cursor>,
    /// The caller's unit (`/` for the whole platform).
    pub unit: String,
    pub limit: i64,
}

/// A listed candidate and its keyset cursor.
#[derive(Debug, Clone)]
pub struct ListedCandidate {
    pub candidate: CaseCandidate,
    pub cursor: Cursor,
}

/// What an editor does with a candidate.
#[derive(Debug, Clone)]
pub enum CandidateAction {
    /// Turn it into a draft typical case with this id.
    Adopt {
        article_id: String,
    },
    Dismiss {
        reason: String,
    },
}

/// One change to a candidate, as the API hands it to the store.
#[derive(Debug, Clone)]
pub struct CandidateChange {
    pub id: String,
    pub principal: Arc<Principal>,
    pub action: CandidateAction,
    pub request: Option<RequestKey>,
    pub now: DateTime<Utc>,
}

/// Consumer name under which case-workflow's feed position is stored.
pub const CASE_CONSUMER: &str = "case-workflow";

const UPSERT_VERSION: &str = "INSERT INTO article_versions (article_id, version, state, record) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (article_id, version) DO UPDATE SET state = excluded.state, \
    record = excluded.record";
