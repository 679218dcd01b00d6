//! SQLite implementation: reads from the pool; every write is one of the operations in `ops`
//! on the group-commit writer's connection.

use async_trait::async_trait;
use redress_platform::db::Sqlite;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::{EventSink, Feed};
use redress_proto::redress::common::v1::Event;

use super::{
    ArticleQuery, ArticleRow, CASE_CONSUMER, CONSUMER_POSITION, COUNT, CandidateChange, Change, KnowledgeStore,
    LOAD_ARTICLE, LOAD_VERSIONS, ops,
};
use crate::domain::article::{ArticleRecord, Plan};
use crate::error::KbError;

#[derive(Clone)]
pub struct SqliteKnowledgeStore {
    db: Sqlite,
    feed: Feed,
}

impl SqliteKnowledgeStore {
    pub async fn open(db: Sqlite) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        redress_platform::events::migrate_sqlite(&db.pool).await?;
        let feed = Feed::sqlite(db.pool.clone());
        Ok(Self { db, feed })
    }
}

#[async_trait]
impl EventSink for SqliteKnowledgeStore {
    async fn position(&self) -> anyhow::Result<i64> {
        let p: Option<i64> =
            sqlx::query_scalar(CONSUMER_POSITION).bind(CASE_CONSUMER).fetch_optional(&self.db.pool).await?;
        Ok(p.unwrap_or(0))
    }

    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64> {
        let now = redress_platform::time::now();
        let (position, _) = self
            .db
            .writer
            .write(move |conn| Box::pin(async move { ops::apply_case_events(conn, &events, now).await }))
            .await?;
        Ok(position)
    }
}

#[async_trait]
impl KnowledgeStore for SqliteKnowledgeStore {
    async fn get(&self, id: &str) -> anyhow::Result<Option<ArticleRecord>> {
        let row: Option<ArticleRow> = sqlx::query_as(LOAD_ARTICLE).bind(id).fetch_optional(&self.db.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let versions: Vec<Vec<u8>> = sqlx::query_scalar(LOAD_VERSIONS).bind(id).fetch_all(&self.db.pool).await?;
        Ok(Some(row.with_versions(versions)?))
    }

    async fn list(&self, query: &ArticleQuery) -> anyhow::Result<Vec<ArticleRecord>> {
        let rows: Vec<ArticleRow> =
            super::list_sql(redress_platform::db::Backend::Sqlite, query).query_as().fetch_all(&self.db.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let versions: Vec<Vec<u8>> =
                sqlx::query_scalar(LOAD_VERSIONS).bind(&row.id).fetch_all(&self.db.pool).await?;
            out.push(row.with_versions(versions)?);
        }
        Ok(out)
    }

    async fn change(&self, change: Change) -> Result<Vec<u8>, KbError> {
        let outcome =
            self.db.writer.write(move |conn| Box::pin(async move { ops::change(conn, change).await })).await?;
        if outcome.written {
            self.feed.notify_committed();
        }
        Ok(outcome.answer)
    }

    async fn seed(&self, plans: Vec<Plan>) -> Result<usize, KbError> {
        let written = self.db.writer.write(move |conn| Box::pin(async move { ops::seed(conn, &plans).await })).await?;
        if written > 0 {
            self.feed.notify_committed();
        }
        Ok(written)
    }

    async fn count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(COUNT).fetch_one(&self.db.pool).await?)
    }

    async fn change_candidate(&self, change: CandidateChange) -> Result<Vec<u8>, KbError> {
        let outcome = self
            .db
            .writer
            .write(move |conn| Box::pin(async move { ops::change_candidate(conn, change).await }))
            .await?;
        if outcome.written {
            self.feed.notify_committed();
        }
        Ok(outcome.answer)
    }

    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, KbError> {
        let now = redress_platform::time::now();
        self.db.writer.write(move |conn| Box::pin(async move { ops::replay(conn, &replay, now).await })).await
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
