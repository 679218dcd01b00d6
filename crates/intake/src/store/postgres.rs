//! PostgreSQL implementation. The request id is claimed first, so two concurrent submissions
//! of one request serialise on its unique key and the loser replays the winner's result.

use async_trait::async_trait;
use prost::Message;
use redress_platform::events::Feed;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::Complaint;
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;

use super::{IntakeStore, ListQuery, Listed, NewComplaint, StoreError, Submitted, numbered};

#[derive(Clone)]
pub struct PostgresIntakeStore {
    pool: PgPool,
    feed: Feed,
}

impl PostgresIntakeStore {
    pub async fn open(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        let feed = Feed::postgres(pool.clone(), shutdown);
        Ok(Self { pool, feed })
    }

    async fn replay(&self, request_id: &str, request_hash: &str) -> Result<Option<Submitted>, StoreError> {
        let row = sqlx::query(
            "SELECT r.request_hash, c.record FROM submit_requests r JOIN complaints c ON c.id = r.complaint_id \
             WHERE r.request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.try_get(0)?;
        if hash != request_hash {
            return Err(StoreError::RequestIdReused);
        }
        let record: Vec<u8> = row.try_get(1)?;
        Ok(Some(Submitted::Replayed(Complaint::decode(record.as_slice())?)))
    }
}

#[async_trait]
impl IntakeStore for PostgresIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        if let Some(done) = self.replay(&new.request_id, &new.request_hash).await? {
            return Ok(done);
        }
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO submit_requests (request_id, request_hash, complaint_id) VALUES ($1, $2, $3) \
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(&new.request_id)
        .bind(&new.request_hash)
        .bind(&new.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return self
                .replay(&new.request_id, &new.request_hash)
                .await?
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("claimed request vanished")));
        }
        let seq: i64 = sqlx::query_scalar("SELECT nextval('complaint_number_seq')").fetch_one(&mut *tx).await?;
        let (complaint, record, event) = numbered(&new, seq);
        sqlx::query(
            "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&new.id)
        .bind(&complaint.complaint_number)
        .bind(complaint.channel)
        .bind(to_micros(new.receive_time))
        .bind(&complaint.org_unit)
        .bind(complaint.state)
        .bind(record)
        .bind(to_micros(new.create_time))
        .execute(&mut *tx)
        .await?;
        event.append_postgres(&mut tx).await?;
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(Submitted::Created(complaint))
    }

    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError> {
        let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Listed>, StoreError> {
        let rows = super::list_query!(q).fetch_all(&self.pool).await?;
        rows.into_iter().map(Listed::try_from).collect()
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
