//! SQLite implementation: reads from the pool, writes through the group-commit writer.

use std::collections::HashSet;

use async_trait::async_trait;
use prost::Message;
use redress_platform::db::{CommitFailed, Sqlite};
use redress_platform::events::{EventSink, Feed, NewEvent};
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;
use sqlx::QueryBuilder;

use super::{
    AUDIT_TRAIL, AuditTrail, CaseQuery, CaseStore, DEAD_LETTERS, DeadLetter, Effect, INTAKE_CONSUMER, ListedCase,
    Opening, case_id, effect_of,
};

#[derive(Clone)]
pub struct SqliteCaseStore {
    db: Sqlite,
    feed: Feed,
}

impl SqliteCaseStore {
    pub async fn open(db: Sqlite) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        let feed = Feed::sqlite(db.pool.clone());
        Ok(Self { db, feed })
    }
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct WriteError(#[from] anyhow::Error);

impl From<CommitFailed> for WriteError {
    fn from(e: CommitFailed) -> Self {
        Self(e.into())
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.into())
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
        let (position, opened) = self
            .db
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let stored: Option<i64> =
                        sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = ?")
                            .bind(INTAKE_CONSUMER)
                            .fetch_optional(&mut *conn)
                            .await?;
                    let mut position = stored.unwrap_or(0);
                    let mut openings = Vec::new();
                    let mut dead = Vec::new();
                    let applied_up_to = position;
                    for event in events.iter().filter(|e| e.position > applied_up_to) {
                        match effect_of(event) {
                            Effect::Open(o) => openings.push(*o),
                            Effect::DeadLetter(d) => dead.push(d),
                            Effect::Nothing => {}
                        }
                        position = event.position;
                    }
                    for d in &dead {
                        super::insert_dead_letter!(d).execute(&mut *conn)
                        .await?;
                    }
                    let mut opened = 0;
                    for chunk in openings.chunks(500) {
                        // RETURNING names only the cases actually inserted: a complaint that
                        // already has one is passed over and announces nothing.
                        let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                            "INSERT INTO cases (id, case_number, complaint, state, open_time_us, version, record, org_unit, \
                             audit_length, audit_head) ",
                        );
                        query.push_values(chunk, |mut row, o| {
                            row.push_bind(case_id(&o.case))
                                .push_bind(o.case.case_number.as_str())
                                .push_bind(o.case.complaint.as_str())
                                .push_bind(o.case.state)
                                .push_bind(o.open_time_us)
                                .push_bind(1_i64)
                                .push_bind(o.record.as_slice())
                                .push_bind(o.case.org_unit.as_str())
                                .push_bind(o.audit.sequence)
                                .push_bind(o.audit.hash.as_str());
                        });
                        query.push(" ON CONFLICT (complaint) DO NOTHING RETURNING id");
                        let inserted: HashSet<String> =
                            query.build_query_scalar::<String>().fetch_all(&mut *conn).await?.into_iter().collect();
                        let opened_now: Vec<&Opening> =
                            chunk.iter().filter(|o| inserted.contains(case_id(&o.case))).collect();
                        if !opened_now.is_empty() {
                            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                                "INSERT INTO audit_entries (case_id, sequence, action, actor, record_time_us, details, \
                                 previous_hash, hash) ",
                            );
                            query.push_values(&opened_now, |mut row, o| {
                                let a = &o.audit;
                                row.push_bind(case_id(&o.case))
                                    .push_bind(a.sequence)
                                    .push_bind(a.action.as_str())
                                    .push_bind(a.actor.as_str())
                                    .push_bind(a.record_time_us)
                                    .push_bind(serde_json::to_string(&a.details).unwrap_or_default())
                                    .push_bind(a.previous_hash.as_str())
                                    .push_bind(a.hash.as_str());
                            });
                            query.build().execute(&mut *conn).await?;
                        }
                        let events: Vec<NewEvent> = opened_now.iter().map(|o| o.event.clone()).collect();
                        NewEvent::append_all_sqlite(&events, conn).await?;
                        opened += events.len();
                    }
                    sqlx::query(
                        "INSERT INTO consumer_positions (consumer, position) VALUES (?, ?) \
                         ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
                    )
                    .bind(INTAKE_CONSUMER)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?;
                    Ok::<_, WriteError>((position, opened))
                })
            })
            .await
            .map_err(|e| e.0)?;
        if opened > 0 {
            metrics::counter!("redress_cases_opened_total").increment(opened as u64);
            self.feed.notify_committed();
        }
        Ok(position)
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
        let rows = super::list_query!(q).fetch_all(&self.db.pool).await?;
        rows.into_iter().map(ListedCase::try_from).collect()
    }

    async fn audit_trail(&self, id: &str) -> anyhow::Result<Option<AuditTrail>> {
        super::trail_from(sqlx::query_as(AUDIT_TRAIL).bind(id).fetch_all(&self.db.pool).await?)
    }

    async fn dead_letters(&self, limit: i64) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(sqlx::query_as(DEAD_LETTERS).bind(INTAKE_CONSUMER).bind(limit).fetch_all(&self.db.pool).await?)
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
