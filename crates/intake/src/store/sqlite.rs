//! SQLite implementation: reads from the pool, writes through the group-commit writer.

use async_trait::async_trait;
use prost::Message;
use redress_platform::db::Sqlite;
use redress_platform::events::Feed;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::Complaint;
use sqlx::Row;

use super::{IntakeStore, ListQuery, Listed, NewComplaint, StoreError, Submitted, numbered};

#[derive(Clone)]
pub struct SqliteIntakeStore {
    db: Sqlite,
    feed: Feed,
}

impl SqliteIntakeStore {
    pub async fn open(db: Sqlite) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        let feed = Feed::sqlite(db.pool.clone());
        Ok(Self { db, feed })
    }

    async fn replay(&self, request_id: &str, request_hash: &str) -> Result<Option<Submitted>, StoreError> {
        let row = sqlx::query(
            "SELECT r.request_hash, c.record FROM submit_requests r JOIN complaints c ON c.id = r.complaint_id \
             WHERE r.request_id = ?",
        )
        .bind(request_id)
        .fetch_optional(&self.db.pool)
        .await?;
        replayed(row.as_ref(), request_hash)
    }
}

fn replayed(row: Option<&sqlx::sqlite::SqliteRow>, request_hash: &str) -> Result<Option<Submitted>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let hash: String = row.try_get(0)?;
    if hash != request_hash {
        return Err(StoreError::RequestIdReused);
    }
    let record: Vec<u8> = row.try_get(1)?;
    Ok(Some(Submitted::Replayed(Complaint::decode(record.as_slice())?)))
}

#[async_trait]
impl IntakeStore for SqliteIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        // Retries are answered from a reader without queueing for the writer.
        if let Some(done) = self.replay(&new.request_id, &new.request_hash).await? {
            return Ok(done);
        }
        let result = self
            .db
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT r.request_hash, c.record FROM submit_requests r \
                         JOIN complaints c ON c.id = r.complaint_id WHERE r.request_id = ?",
                    )
                    .bind(&new.request_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(done) = replayed(row.as_ref(), &new.request_hash)? {
                        return Ok(done);
                    }
                    let seq: i64 = sqlx::query_scalar(
                        "INSERT INTO counters (name, value) VALUES ('complaint_number', 1) \
                         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                    )
                    .fetch_one(&mut *conn)
                    .await?;
                    let (complaint, record, event) = numbered(&new, seq);
                    sqlx::query(
                        "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&new.id)
                    .bind(&complaint.complaint_number)
                    .bind(complaint.channel)
                    .bind(to_micros(new.receive_time))
                    .bind(&complaint.org_unit)
                    .bind(complaint.state)
                    .bind(record)
                    .bind(to_micros(new.create_time))
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("INSERT INTO submit_requests (request_id, request_hash, complaint_id) VALUES (?, ?, ?)")
                        .bind(&new.request_id)
                        .bind(&new.request_hash)
                        .bind(&new.id)
                        .execute(&mut *conn)
                        .await?;
                    event.append_sqlite(conn).await?;
                    Ok(Submitted::Created(complaint))
                })
            })
            .await;
        if matches!(result, Ok(Submitted::Created(_))) {
            self.feed.notify_committed();
        }
        result
    }

    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError> {
        let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Listed>, StoreError> {
        let (after_us, after_id) = q.after.clone().unzip();
        let rows = sqlx::query(
            "SELECT record, receive_time_us, id FROM complaints \
             WHERE (?1 IS NULL OR channel = ?1) \
               AND (?2 IS NULL OR receive_time_us >= ?2) \
               AND (?3 IS NULL OR receive_time_us < ?3) \
               AND (?4 IS NULL OR receive_time_us < ?4 OR (receive_time_us = ?4 AND id < ?5)) \
             ORDER BY receive_time_us DESC, id DESC LIMIT ?6",
        )
        .bind(q.channel)
        .bind(q.from_us())
        .bind(q.to_us())
        .bind(after_us)
        .bind(after_id)
        .bind(q.limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let record: Vec<u8> = row.try_get(0)?;
                Ok(Listed {
                    complaint: Complaint::decode(record.as_slice())?,
                    cursor: (row.try_get(1)?, row.try_get(2)?),
                })
            })
            .collect()
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
