//! PostgreSQL implementation: every write is one of the operations in `ops` in a transaction
//! of its own; the article's row is locked for it, so two replicas changing one article at
//! once apply one change after the other.

use async_trait::async_trait;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::{EventSink, Feed};
use redress_platform::host::Supervisor;
use redress_proto::redress::common::v1::Event;
use sqlx::PgPool;

use super::{
    ArticleQuery, ArticleRow, CASE_CONSUMER, CONSUMER_POSITION, COUNT, CandidateChange, Change, KnowledgeStore,
    LOAD_ARTICLE, LOAD_VERSIONS, ops,
};
use crate::domain::article::{ArticleRecord, Plan};
use crate::error::KbError;

#[derive(Clone)]
pub struct PostgresKnowledgeStore {
    pool: PgPool,
    feed: Feed,
}

impl PostgresKnowledgeStore {
    pub async fn open(pool: PgPool, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        redress_platform::events::migrate_postgres(&pool).await?;
        let feed = Feed::postgres(pool.clone(), supervisor);
        Ok(Self { pool, feed })
    }
}

#[async_trait]
impl EventSink for PostgresKnowledgeStore {
    async fn position(&self) -> anyhow::Result<i64> {
        let p: Option<i64> =
            sqlx::query_scalar(CONSUMER_POSITION).bind(CASE_CONSUMER).fetch_optional(&self.pool).await?;
        Ok(p.unwrap_or(0))
    }

    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64> {
        let mut tx = self.pool.begin().await?;
        let (position, _) = ops::apply_case_events(&mut *tx, &events, redress_platform::time::now()).await?;
        tx.commit().await?;
        Ok(position)
    }
}

#[async_trait]
impl KnowledgeStore for PostgresKnowledgeStore {
    async fn get(&self, id: &str) -> anyhow::Result<Option<ArticleRecord>> {
        let row: Option<ArticleRow> = sqlx::query_as(LOAD_ARTICLE).bind(id).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let versions: Vec<Vec<u8>> = sqlx::query_scalar(LOAD_VERSIONS).bind(id).fetch_all(&self.pool).await?;
        Ok(Some(row.with_versions(versions)?))
    }

    async fn list(&self, query: &ArticleQuery) -> anyhow::Result<Vec<ArticleRecord>> {
        let rows: Vec<ArticleRow> =
            super::list_sql(redress_platform::db::Backend::Postgres, query).query_as().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let versions: Vec<Vec<u8>> = sqlx::query_scalar(LOAD_VERSIONS).bind(&row.id).fetch_all(&self.pool).await?;
            out.push(row.with_versions(versions)?);
        }
        Ok(out)
    }

    async fn change(&self, change: Change) -> Result<Vec<u8>, KbError> {
        let mut tx = self.pool.begin().await?;
        let outcome = ops::change(&mut *tx, change).await?;
        if outcome.written {
            tx.commit().await?;
            self.feed.notify_committed();
        }
        Ok(outcome.answer)
    }

    async fn seed(&self, plans: Vec<Plan>) -> Result<usize, KbError> {
        let mut tx = self.pool.begin().await?;
        let written = ops::seed(&mut *tx, &plans).await?;
        tx.commit().await?;
        if written > 0 {
            self.feed.notify_committed();
        }
        Ok(written)
    }

    async fn count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(COUNT).fetch_one(&self.pool).await?)
    }

    async fn change_candidate(&self, change: CandidateChange) -> Result<Vec<u8>, KbError> {
        let mut tx = self.pool.begin().await?;
        let outcome = ops::change_candidate(&mut *tx, change).await?;
        if outcome.written {
            tx.commit().await?;
            self.feed.notify_committed();
        }
        Ok(outcome.answer)
    }

    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, KbError> {
        let mut tx = self.pool.begin().await?;
        let dead = ops::replay(&mut *tx, &replay, redress_platform::time::now()).await?;
        tx.commit().await?;
        Ok(dead)
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
