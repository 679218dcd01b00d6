//! SQLite implementation: reads from the pool, writes through the group-commit writer.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_platform::ServiceError;
use sqlx::SqliteConnection;

use async_trait::async_trait;
use prost::Message;
use redress_platform::db::{CommitFailed, Sqlite};
use redress_platform::events::{EventSink, Feed, NewEvent};
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;
use sqlx::QueryBuilder;

use super::{
    AUDIT_TRAIL, AuditTrail, CaseQuery, CaseStore, DEAD_LETTERS, DUE_FOR_SWEEP, DeadLetter, Effect, INTAKE_CONSUMER,
    LOAD, LOAD_REQUEST, ListedCase, Loaded, LoadedRow, Opening, Plan, SAVE_REQUEST, Update, UpdateError, case_id,
    effect_of,
};
use crate::domain::workflow::Rules;

#[derive(Clone)]
pub struct SqliteCaseStore {
    db: Sqlite,
    feed: Feed,
    rules: Arc<Rules>,
}

impl SqliteCaseStore {
    pub async fn open(db: Sqlite, rules: Arc<Rules>) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        let feed = Feed::sqlite(db.pool.clone());
        Ok(Self { db, feed, rules })
    }

    /// Writes a plan's rows, audit entries and events on the writer's connection.
    async fn write_plan(conn: &mut SqliteConnection, plan: &Plan) -> Result<(), UpdateError> {
        for row in &plan.rows {
            let saved = super::save_row!(row).execute(&mut *conn).await?.rows_affected();
            if saved != 1 {
                return Err(anyhow::anyhow!("case {} changed while it was being written", row.id).into());
            }
            for entry in &row.entries {
                super::insert_audit!(row.id.as_str(), entry).execute(&mut *conn).await?;
            }
        }
        NewEvent::append_all_sqlite(&plan.events, conn).await?;
        Ok(())
    }

    async fn load(conn: &mut SqliteConnection, id: &str) -> Result<Option<Loaded>, UpdateError> {
        let row: Option<LoadedRow> = sqlx::query_as(LOAD).bind(id).fetch_optional(&mut *conn).await?;
        Ok(row.map(|r| Loaded::from_row(id, r)).transpose()?)
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
        let rules = self.rules.clone();
        let (position, opened, followed) = self
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
                    let mut follows: Vec<super::Follow> = Vec::new();
                    let mut dead = Vec::new();
                    let applied_up_to = position;
                    for event in events.iter().filter(|e| e.position > applied_up_to) {
                        match effect_of(event, &rules) {
                            Effect::Open(o) => openings.push(*o),
                            Effect::Follow(f) => follows.push(f),
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
                             audit_length, audit_head, next_check_us) ",
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
                                .push_bind(o.audit.hash.as_str())
                                .push_bind(o.next_check_us);
                        });
                        query.push(" ON CONFLICT (complaint) DO NOTHING RETURNING id");
                        let inserted: HashSet<String> =
                            query.build_query_scalar::<String>().fetch_all(&mut *conn).await?.into_iter().collect();
                        let opened_now: Vec<&Opening> =
                            chunk.iter().filter(|o| inserted.contains(case_id(&o.case))).collect();
                        // Only a case opened now links to the case it repeats (once).
                        follows.extend(opened_now.iter().filter_map(|o| o.link.clone()));
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
                    // After the openings: intake's later changes always follow a complaint's acceptance.
                    let mut followed = 0;
                    for follow in &follows {
                        let id: Option<String> = sqlx::query_scalar(super::CASE_OF_COMPLAINT)
                            .bind(&follow.complaint)
                            .fetch_optional(&mut *conn)
                            .await?;
                        let Some(id) = id else { continue };
                        let loaded = Self::load(conn, &id).await.map_err(|e| WriteError(e.0.into()))?;
                        let other = match &follow.other {
                            Some(complaint) => {
                                let other_id: Option<String> = sqlx::query_scalar(super::CASE_OF_COMPLAINT)
                                    .bind(complaint)
                                    .fetch_optional(&mut *conn)
                                    .await?;
                                match other_id {
                                    Some(other_id) => Some(
                                        Self::load(conn, &other_id).await.map_err(|e| WriteError(e.0.into()))?,
                                    ),
                                    None => Some(None),
                                }
                            }
                            None => None,
                        };
                        if let Some(plan) = super::plan_follow(loaded, other, follow, &rules) {
                            Self::write_plan(conn, &plan).await.map_err(|e| WriteError(e.0.into()))?;
                            followed += 1;
                        }
                    }
                    sqlx::query(
                        "INSERT INTO consumer_positions (consumer, position) VALUES (?, ?) \
                         ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
                    )
                    .bind(INTAKE_CONSUMER)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?;
                    Ok::<_, WriteError>((position, opened, followed))
                })
            })
            .await
            .map_err(|e| e.0)?;
        if opened > 0 {
            metrics::counter!("redress_cases_opened_total").increment(opened as u64);
        }
        if opened + followed > 0 {
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

    async fn update(&self, update: Update) -> Result<Case, ServiceError> {
        let rules = self.rules.clone();
        let (response, changed) = self
            .db
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(key) = &update.request {
                        let stored: Option<(String, Vec<u8>)> =
                            sqlx::query_as(LOAD_REQUEST).bind(&key.id).fetch_optional(&mut *conn).await?;
                        if let Some(case) = super::replay(key, stored)? {
                            return Ok((case, false));
                        }
                    }
                    let primary = Self::load(conn, &update.id).await?;
                    let other = match &update.other {
                        Some(id) => Some(Self::load(conn, id).await?),
                        None => None,
                    };
                    let request = update.request.clone();
                    let plan = super::plan_update(primary, other, update, &rules)?;
                    Self::write_plan(conn, &plan).await?;
                    if let Some(key) = request {
                        sqlx::query(SAVE_REQUEST)
                            .bind(&key.id)
                            .bind(&plan.rows[0].id)
                            .bind(&key.fingerprint)
                            .bind(plan.response.encode_to_vec())
                            .bind(redress_platform::time::to_micros(redress_platform::time::now()))
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok::<_, UpdateError>((plan.response, true))
                })
            })
            .await
            .map_err(|e| e.0)?;
        if changed {
            self.feed.notify_committed();
        }
        Ok(response)
    }

    async fn sweep(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize> {
        let due: Vec<String> =
            sqlx::query_scalar(DUE_FOR_SWEEP).bind(now.timestamp_micros()).bind(limit).fetch_all(&self.db.pool).await?;
        let mut swept = 0;
        for id in due {
            let rules = self.rules.clone();
            let raised = self
                .db
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        let loaded = Self::load(conn, &id).await?;
                        let Some(plan) = super::plan_sweep(loaded, &rules, now) else { return Ok(false) };
                        Self::write_plan(conn, &plan).await?;
                        Ok::<_, UpdateError>(!plan.events.is_empty())
                    })
                })
                .await
                .map_err(|e| anyhow::Error::from(e.0))?;
            if raised {
                self.feed.notify_committed();
            }
            swept += 1;
        }
        Ok(swept)
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
