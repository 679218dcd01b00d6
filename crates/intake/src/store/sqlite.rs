//! SQLite implementation. Submissions queue up and are written in batches: one transaction,
//! a handful of multi-row statements, one fsync for the whole batch (group commit through the
//! platform's single writer). Should a batch fail as a whole, its submissions are retried one
//! by one so that one bad record cannot take the others down with it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use redress_platform::db::Sqlite;
use redress_platform::events::{Feed, NewEvent};
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::Complaint;
use sqlx::{QueryBuilder, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{IntakeStore, ListQuery, Listed, NewComplaint, StoreError, Submitted, numbered};

/// Most submissions written in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Submitted, StoreError>>;

#[derive(Clone)]
pub struct SqliteIntakeStore {
    db: Sqlite,
    feed: Feed,
    queue: mpsc::Sender<(NewComplaint, Reply)>,
}

impl SqliteIntakeStore {
    pub async fn open(db: Sqlite) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        let feed = Feed::sqlite(db.pool.clone());
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run_batches(db.clone(), feed.clone(), rx));
        Ok(Self { db, feed, queue })
    }
}

async fn run_batches(db: Sqlite, feed: Feed, mut rx: mpsc::Receiver<(NewComplaint, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (news, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let news = Arc::new(news);
        let written = write(&db, news.clone()).await;
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            Err(e) if news.len() > 1 => {
                tracing::warn!(error = %e, size = news.len(), "intake batch failed; writing its submissions one by one");
                let mut outcomes = Vec::with_capacity(news.len());
                for new in news.iter() {
                    let one = write(&db, Arc::new(vec![new.clone()])).await;
                    outcomes.push(
                        one.and_then(|mut v| v.pop().unwrap_or_else(|| Err(anyhow::anyhow!("empty batch").into()))),
                    );
                }
                outcomes
            }
            Err(e) => vec![Err(e)],
        };
        if outcomes.iter().any(|o| matches!(o, Ok(Submitted::Created(_)))) {
            feed.notify_committed();
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

async fn write(db: &Sqlite, news: Arc<Vec<NewComplaint>>) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
    db.writer.write(move |conn| Box::pin(async move { insert_batch(conn, &news).await })).await
}

/// What becomes of one submission of a batch.
enum Plan {
    Done(Box<Result<Submitted, StoreError>>),
    /// Insert as the nth new complaint of the batch.
    Insert(usize),
    /// Same request id as an earlier submission of this batch.
    SameAs(usize),
}

async fn insert_batch(
    conn: &mut SqliteConnection,
    news: &[NewComplaint],
) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
    let mut existing: HashMap<String, (String, Complaint)> = HashMap::new();
    for chunk in news.chunks(900) {
        let mut query = QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT r.request_id, r.request_hash, c.record FROM submit_requests r \
             JOIN complaints c ON c.id = r.complaint_id WHERE r.request_id IN (",
        );
        let mut ids = query.separated(", ");
        for new in chunk {
            ids.push_bind(new.request_id.as_str());
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            let record: Vec<u8> = row.try_get(2)?;
            existing.insert(row.try_get(0)?, (row.try_get(1)?, Complaint::decode(record.as_slice())?));
        }
    }
    let mut plans = Vec::with_capacity(news.len());
    let mut first_in_batch: HashMap<&str, usize> = HashMap::new();
    let mut fresh = Vec::new();
    for (i, new) in news.iter().enumerate() {
        let plan = if let Some((hash, complaint)) = existing.get(&new.request_id) {
            Plan::Done(Box::new(if *hash == new.request_hash {
                Ok(Submitted::Replayed(complaint.clone()))
            } else {
                Err(StoreError::RequestIdReused)
            }))
        } else if let Some(&j) = first_in_batch.get(new.request_id.as_str()) {
            Plan::SameAs(j)
        } else {
            first_in_batch.insert(&new.request_id, i);
            fresh.push(i);
            Plan::Insert(fresh.len() - 1)
        };
        plans.push(plan);
    }
    let mut created = Vec::with_capacity(fresh.len());
    if !fresh.is_empty() {
        let count = fresh.len() as i64;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, value) VALUES ('complaint_number', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = value + ?1 RETURNING value",
        )
        .bind(count)
        .fetch_one(&mut *conn)
        .await?;
        let rows: Vec<(&NewComplaint, Complaint, Vec<u8>, NewEvent)> = fresh
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let (complaint, record, event) = numbered(&news[i], last - count + 1 + k as i64);
                (&news[i], complaint, record, event)
            })
            .collect();
        for chunk in rows.chunks(500) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us) ",
            );
            query.push_values(chunk, |mut row, (new, complaint, record, _)| {
                row.push_bind(new.id.as_str())
                    .push_bind(complaint.complaint_number.as_str())
                    .push_bind(complaint.channel)
                    .push_bind(to_micros(new.receive_time))
                    .push_bind(complaint.org_unit.as_str())
                    .push_bind(complaint.state)
                    .push_bind(record.as_slice())
                    .push_bind(to_micros(new.create_time));
            });
            query.build().execute(&mut *conn).await?;
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO submit_requests (request_id, request_hash, complaint_id) ",
            );
            query.push_values(chunk, |mut row, (new, ..)| {
                row.push_bind(new.request_id.as_str()).push_bind(new.request_hash.as_str()).push_bind(new.id.as_str());
            });
            query.build().execute(&mut *conn).await?;
        }
        let events: Vec<NewEvent> = rows.iter().map(|(.., event)| event.clone()).collect();
        NewEvent::append_all_sqlite(&events, conn).await?;
        created = rows.into_iter().map(|(new, complaint, ..)| (new.request_hash.clone(), complaint)).collect();
    }
    let mut outcomes: Vec<Result<Submitted, StoreError>> = Vec::with_capacity(news.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let outcome = match plan {
            Plan::Done(outcome) => *outcome,
            Plan::Insert(k) => Ok(Submitted::Created(created[k].1.clone())),
            Plan::SameAs(j) => match &outcomes[j] {
                Ok(Submitted::Created(c) | Submitted::Replayed(c)) if news[i].request_hash == news[j].request_hash => {
                    Ok(Submitted::Replayed(c.clone()))
                }
                _ => Err(StoreError::RequestIdReused),
            },
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[async_trait]
impl IntakeStore for SqliteIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((new, reply)).await.map_err(|_| anyhow::anyhow!("intake writer stopped"))?;
        outcome.await.map_err(|_| anyhow::anyhow!("intake writer dropped the submission"))?
    }

    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError> {
        let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Listed>, StoreError> {
        let rows = super::list_query!(q).fetch_all(&self.db.pool).await?;
        rows.into_iter().map(Listed::try_from).collect()
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
