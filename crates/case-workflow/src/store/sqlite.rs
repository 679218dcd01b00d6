//! SQLite implementation: reads from the pool; every write is one of the operations in `ops`
//! on the group-commit writer's connection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::{Backend, Sqlite};
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::{EventSink, Feed};
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;

use super::{AUDIT_TRAIL, AuditTrail, CaseQuery, CaseStore, DUE_FOR_SWEEP, INTAKE_CONSUMER, ListedCase, Update, ops};
use crate::calendars::LiveRules;
use crate::error::CaseError;

#[derive(Clone)]
pub struct SqliteCaseStore {
    db: Sqlite,
    feed: Feed,
    rules: LiveRules,
}

impl SqliteCaseStore {
    pub async fn open(db: Sqlite, rules: LiveRules) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        redress_platform::events::migrate_sqlite(&db.pool).await?;
        let feed = Feed::sqlite(db.pool.clone());
        Ok(Self { db, feed, rules })
    }
}

#[async_trait]
impl EventSink for SqliteCaseStore {
    async fn position(&self) -> anyhow::Result<i64> {
        let p: Option<i64> = sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = ?")
            .bind(INTAKE_CONSUMER)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(p.unwrap_or(0))
    }

    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64> {
        let (rules, now) = (self.rules.current(), self.rules.now());
        let applied = self
            .db
            .writer
            .write(move |conn| Box::pin(async move { ops::apply_batch(conn, &events, &rules, now).await }))
            .await?;
        super::applied(&self.feed, &applied);
        Ok(applied.position)
    }
}

#[async_trait]
impl CaseStore for SqliteCaseStore {
    async fn get(&self, id: &str) -> anyhow::Result<Option<Case>> {
        let record: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM cases WHERE id = ?").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(record.map(|r| Case::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &CaseQuery) -> anyhow::Result<Vec<ListedCase>> {
        let rows: Vec<super::ListedRow> =
            super::list_sql(Backend::Sqlite, q).query_as().fetch_all(&self.db.pool).await?;
        rows.into_iter().map(ListedCase::try_from).collect()
    }

    async fn audit_trail(&self, id: &str) -> anyhow::Result<Option<AuditTrail>> {
        super::trail_from(sqlx::query_as(AUDIT_TRAIL).bind(id).fetch_all(&self.db.pool).await?)
    }

    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, CaseError> {
        let (rules, now) = (self.rules.current(), self.rules.now());
        let (dead, applied) = self
            .db
            .writer
            .write(move |conn| Box::pin(async move { ops::replay(conn, &replay, &rules, now).await }))
            .await?;
        super::applied(&self.feed, &applied);
        Ok(dead)
    }

    async fn update(&self, update: Update) -> Result<Case, CaseError> {
        let (rules, now) = (self.rules.current(), self.rules.now());
        let (response, changed) = self
            .db
            .writer
            .write(move |conn| Box::pin(async move { ops::update(conn, update, &rules, now).await }))
            .await?;
        if changed {
            self.feed.notify_committed();
        }
        Ok(response)
    }

    async fn sweep(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize> {
        let due: Vec<String> =
            sqlx::query_scalar(DUE_FOR_SWEEP).bind(now.timestamp_micros()).bind(limit).fetch_all(&self.db.pool).await?;
        let swept = due.len();
        for id in due {
            let rules = self.rules.current();
            let raised = self
                .db
                .writer
                .write(move |conn| Box::pin(async move { ops::sweep_case(conn, &id, &rules, now).await }))
                .await?;
            if raised {
                self.feed.notify_committed();
            }
        }
        Ok(swept)
    }

    async fn key_unkeyed_trails(&self) -> anyhow::Result<super::RechainedTrails> {
        let (keys, now) = (self.rules.current().audit.clone(), self.rules.now());
        Ok(self.db.writer.write(move |conn| Box::pin(async move { ops::key_trails(conn, &keys, now).await })).await?)
    }

    async fn revise_case(&self, id: String) -> Result<bool, CaseError> {
        let (rules, now) = (self.rules.current(), self.rules.now());
        let revised = self
            .db
            .writer
            .write(move |conn| Box::pin(async move { ops::revise_case(conn, &id, &rules, now).await }))
            .await?;
        if revised {
            self.feed.notify_committed();
        }
        Ok(revised)
    }

    fn rules(&self) -> &LiveRules {
        &self.rules
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
