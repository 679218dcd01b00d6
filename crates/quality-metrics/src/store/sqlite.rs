//! SQLite implementation: reads from the pool; every write is one of the operations in `ops`
//! on the group-commit writer's connection.

use std::sync::Arc;

use async_trait::async_trait;
use redress_platform::db::Sqlite;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::Feed;
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::metrics::v1::ReadModelStatus;

use super::{
    Improvement, MetricsStore, RequestKey, StoredDenominators, StoredTarget, Write, improvement, ops, queries,
};
use crate::domain::fact::Calendars;
use crate::domain::period::Days;
use crate::domain::rollup::{Cell, CellQuery};
use crate::error::MetricsError;

#[derive(Clone)]
pub struct SqliteMetricsStore {
    db: Sqlite,
    feed: Feed,
    calendars: Arc<dyn Calendars>,
}

impl SqliteMetricsStore {
    pub async fn open(db: Sqlite, calendars: Arc<dyn Calendars>) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        redress_platform::events::migrate_sqlite(&db.pool).await?;
        // The writer reads every cell a batch touches before writing it: a page cache that
        // holds the recent months' cells saves most of those reads (the store's cache budget,
        // [`crate::SQLITE_CACHE_MIB`] recommended). Consecutive batches rewrite mostly the same
        // pages (the current days' and months' cells), so the log is copied back into the
        // database every 8,192 pages (32 MiB) rather than every 1,000: each hot page is
        // checkpointed once for many commits, and fewer commits wait for a checkpoint.
        db.writer
            .write(|conn| {
                Box::pin(async move {
                    sqlx::query("PRAGMA wal_autocheckpoint = 8192").execute(&mut *conn).await?;
                    Ok::<_, MetricsError>(())
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("configuring the sqlite writer: {e}"))?;
        let replay = db.writer.write(|conn| Box::pin(async move { ops::upgrade_layout(conn).await })).await?;
        super::log_layout_upgrade(replay);
        let feed = Feed::sqlite(db.pool.clone());
        Ok(Self { db, feed, calendars })
    }
}

#[async_trait]
impl MetricsStore for SqliteMetricsStore {
    async fn position(&self, consumer: &str) -> anyhow::Result<(i64, i64)> {
        queries::position(self.feed.pool(), consumer).await
    }

    async fn apply(&self, consumer: &str, epoch: i64, events: Vec<Event>) -> anyhow::Result<i64> {
        let (consumer, calendars) = (consumer.to_owned(), self.calendars.clone());
        self.db
            .writer
            .write(move |conn| {
                Box::pin(async move { ops::apply_batch(conn, &consumer, epoch, &events, calendars.as_ref()).await })
            })
            .await
    }

    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, MetricsError> {
        let calendars = self.calendars.clone();
        self.db
            .writer
            .write(move |conn| Box::pin(async move { ops::replay(conn, &replay, calendars.as_ref()).await }))
            .await
    }

    async fn cells(&self, query: &CellQuery) -> anyhow::Result<Vec<Cell>> {
        queries::cells(self.feed.pool(), query).await
    }

    async fn targets(&self, institution: &str) -> anyhow::Result<Vec<StoredTarget>> {
        queries::targets(self.feed.pool(), institution).await
    }

    async fn denominators(&self, org_unit: &str, months: Days) -> anyhow::Result<Vec<StoredDenominators>> {
        queries::denominators(self.feed.pool(), org_unit, months).await
    }

    async fn write(&self, request: Option<RequestKey>, write: Write) -> Result<bool, MetricsError> {
        self.db.writer.write(move |conn| Box::pin(async move { ops::write(conn, request, write).await })).await
    }

    async fn improve(&self, request: Option<RequestKey>, change: Improvement) -> Result<Option<Vec<u8>>, MetricsError> {
        let calendars = self.calendars.clone();
        let changed = self
            .db
            .writer
            .write(move |conn| {
                Box::pin(async move { improvement::improve(conn, request, change, calendars.as_ref()).await })
            })
            .await?;
        self.feed.notify_committed();
        Ok(changed)
    }

    async fn status(&self) -> anyhow::Result<ReadModelStatus> {
        queries::status(self.feed.pool()).await
    }

    async fn rebuild(&self) -> anyhow::Result<()> {
        self.db.writer.write(|conn| Box::pin(async move { ops::rebuild(conn).await })).await
    }

    fn calendars(&self) -> &Arc<dyn Calendars> {
        &self.calendars
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
