//! PostgreSQL implementation: every write is one of the operations in `ops` in a transaction
//! of its own. Read-model writers take one advisory lock, so the consumers of two feeds (and
//! replicas) never read and write the same cells at once.

use std::sync::Arc;

use async_trait::async_trait;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::Feed;
use redress_platform::host::Supervisor;
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::metrics::v1::ReadModelStatus;
use sqlx::PgPool;

use super::{
    Improvement, MetricsStore, RequestKey, StoredDenominators, StoredTarget, Write, improvement, ops, queries,
};
use crate::domain::fact::Calendars;
use crate::domain::period::Days;
use crate::domain::rollup::{Cell, CellQuery};
use crate::error::MetricsError;

#[derive(Clone)]
pub struct PostgresMetricsStore {
    pool: PgPool,
    feed: Feed,
    calendars: Arc<dyn Calendars>,
}

impl PostgresMetricsStore {
    pub async fn open(pool: PgPool, calendars: Arc<dyn Calendars>, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        redress_platform::events::migrate_postgres(&pool).await?;
        let mut tx = pool.begin().await?;
        let replay = ops::upgrade_layout(&mut *tx).await?;
        tx.commit().await?;
        super::log_layout_upgrade(replay);
        let feed = Feed::postgres(pool.clone(), supervisor);
        Ok(Self { pool, feed, calendars })
    }
}

#[async_trait]
impl MetricsStore for PostgresMetricsStore {
    async fn position(&self, consumer: &str) -> anyhow::Result<(i64, i64)> {
        queries::position(self.feed.pool(), consumer).await
    }

    async fn apply(&self, consumer: &str, epoch: i64, events: Vec<Event>) -> anyhow::Result<i64> {
        let mut tx = self.pool.begin().await?;
        let position = ops::apply_batch(&mut *tx, consumer, epoch, &events, self.calendars.as_ref()).await?;
        tx.commit().await?;
        Ok(position)
    }

    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, MetricsError> {
        let mut tx = self.pool.begin().await?;
        let dead = ops::replay(&mut *tx, &replay, self.calendars.as_ref()).await?;
        tx.commit().await?;
        Ok(dead)
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
        let mut tx = self.pool.begin().await?;
        let replayed = ops::write(&mut *tx, request, write).await?;
        tx.commit().await?;
        Ok(replayed)
    }

    async fn improve(&self, request: Option<RequestKey>, change: Improvement) -> Result<Option<Vec<u8>>, MetricsError> {
        let mut tx = self.pool.begin().await?;
        let changed = improvement::improve(&mut *tx, request, change, self.calendars.as_ref()).await?;
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(changed)
    }

    async fn status(&self) -> anyhow::Result<ReadModelStatus> {
        queries::status(self.feed.pool()).await
    }

    async fn rebuild(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        ops::rebuild(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    fn calendars(&self) -> &Arc<dyn Calendars> {
        &self.calendars
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
