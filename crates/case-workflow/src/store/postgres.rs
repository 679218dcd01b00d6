//! PostgreSQL implementation. The consumer position row is locked for the whole batch, so two
//! replicas consuming at once apply each event once between them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::ServiceError;
use redress_platform::events::{EventSink, Feed};
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;
use sqlx::PgConnection;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    AUDIT_TRAIL, AuditTrail, CaseQuery, CaseStore, DEAD_LETTERS, DUE_FOR_SWEEP, DeadLetter, Effect, INTAKE_CONSUMER,
    LOAD_LOCKED, LOAD_REQUEST, ListedCase, Loaded, LoadedRow, Plan, SAVE_REQUEST, Update, UpdateError, case_id,
    effect_of, follow_for,
};
use crate::domain::workflow::Rules;

#[derive(Clone)]
pub struct PostgresCaseStore {
    pool: PgPool,
    feed: Feed,
    rules: Arc<Rules>,
}

/// Advisory lock key held by the one replica that sweeps deadlines (ASCII "redrswep").
const SWEEP_LOCK: i64 = 0x7265_6472_7377_6570;

impl PostgresCaseStore {
    pub async fn open(pool: PgPool, rules: Arc<Rules>, shutdown: CancellationToken) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        let feed = Feed::postgres(pool.clone(), shutdown);
        Ok(Self { pool, feed, rules })
    }

    /// Loads and locks a case row until the transaction ends.
    async fn load(tx: &mut PgConnection, id: &str) -> Result<Option<Loaded>, UpdateError> {
        let row: Option<LoadedRow> = sqlx::query_as(LOAD_LOCKED).bind(id).fetch_optional(&mut *tx).await?;
        Ok(row.map(|r| Loaded::from_row(id, r)).transpose()?)
    }

    async fn write_plan(tx: &mut PgConnection, plan: &Plan) -> Result<(), UpdateError> {
        for row in &plan.rows {
            let saved = super::save_row!(row).execute(&mut *tx).await?.rows_affected();
            if saved != 1 {
                return Err(anyhow::anyhow!("case {} changed while it was being written", row.id).into());
            }
            for entry in &row.entries {
                super::insert_audit!(row.id.as_str(), entry).execute(&mut *tx).await?;
            }
        }
        for event in &plan.events {
            event.append_postgres(&mut *tx).await?;
        }
        Ok(())
    }

    async fn update_in(&self, update: Update) -> Result<(Case, bool), UpdateError> {
        let mut tx = self.pool.begin().await?;
        // Lock the rows first (in id order, so two links never deadlock), then look for the
        // request id: a concurrent retry waits here and then finds the first result.
        let mut ids: Vec<&String> = std::iter::once(&update.id).chain(update.other.as_ref()).collect();
        ids.sort();
        let mut loaded = std::collections::HashMap::new();
        for id in ids {
            loaded.insert(id.clone(), Self::load(&mut tx, id).await?);
        }
        if let Some(key) = &update.request {
            let stored: Option<(String, Vec<u8>)> =
                sqlx::query_as(LOAD_REQUEST).bind(&key.id).fetch_optional(&mut *tx).await?;
            if let Some(case) = super::replay(key, stored)? {
                return Ok((case, false));
            }
        }
        let primary = loaded.remove(&update.id).flatten();
        let other = update.other.as_ref().map(|id| loaded.remove(id).flatten());
        let request = update.request.clone();
        let plan = super::plan_update(primary, other, update, &self.rules)?;
        Self::write_plan(&mut tx, &plan).await?;
        if let Some(key) = request {
            sqlx::query(SAVE_REQUEST)
                .bind(&key.id)
                .bind(&plan.rows[0].id)
                .bind(&key.fingerprint)
                .bind(plan.response.encode_to_vec())
                .bind(redress_platform::time::to_micros(redress_platform::time::now()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((plan.response, true))
    }

    /// Applies one of intake's changes to case `id` (and, for a link, to the other complaint's
    /// case), locking the rows in id order; 1 when it changed anything.
    async fn follow(&self, tx: &mut PgConnection, id: &str, follow: &super::Follow) -> anyhow::Result<usize> {
        let other_id: Option<Option<String>> = match &follow.other {
            Some(complaint) => {
                Some(sqlx::query_scalar(super::CASE_OF_COMPLAINT).bind(complaint).fetch_optional(&mut *tx).await?)
            }
            None => None,
        };
        let mut loaded = std::collections::BTreeMap::new();
        let mut ids = vec![id.to_owned()];
        if let Some(Some(other)) = &other_id {
            ids.push(other.clone());
        }
        ids.sort();
        ids.dedup();
        for i in &ids {
            loaded.insert(i.clone(), Self::load(tx, i).await.map_err(|e| anyhow::Error::from(e.0))?);
        }
        let primary = loaded.remove(id).flatten();
        let other = other_id.map(|o| o.and_then(|o| loaded.remove(&o).flatten()));
        let Some(plan) = super::plan_follow(primary, other, follow, &self.rules) else { return Ok(0) };
        Self::write_plan(tx, &plan).await.map_err(|e| anyhow::Error::from(e.0))?;
        Ok(1)
    }

    async fn sweep_locked(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize> {
        let due: Vec<String> =
            sqlx::query_scalar(DUE_FOR_SWEEP).bind(now.timestamp_micros()).bind(limit).fetch_all(&self.pool).await?;
        let mut swept = 0;
        for id in due {
            let mut tx = self.pool.begin().await?;
            let loaded = Self::load(&mut tx, &id).await.map_err(|e| anyhow::Error::from(e.0))?;
            if let Some(plan) = super::plan_sweep(loaded, &self.rules, now) {
                Self::write_plan(&mut tx, &plan).await.map_err(|e| anyhow::Error::from(e.0))?;
                tx.commit().await?;
                if !plan.events.is_empty() {
                    self.feed.notify_committed();
                }
            }
            swept += 1;
        }
        Ok(swept)
    }
}

#[async_trait]
impl EventSink for PostgresCaseStore {
    async fn position(&self) -> anyhow::Result<i64> {
        let p: Option<i64> = sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = $1")
            .bind(INTAKE_CONSUMER)
            .fetch_optional(&self.pool)
            .await?;
        Ok(p.unwrap_or(0))
    }

    async fn apply(&self, events: Vec<Event>) -> anyhow::Result<i64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO consumer_positions (consumer, position) VALUES ($1, 0) ON CONFLICT DO NOTHING")
            .bind(INTAKE_CONSUMER)
            .execute(&mut *tx)
            .await?;
        let mut position: i64 =
            sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = $1 FOR UPDATE")
                .bind(INTAKE_CONSUMER)
                .fetch_one(&mut *tx)
                .await?;
        let mut opened = 0;
        let mut followed = 0;
        let applied_up_to = position;
        // Cases this batch changes are locked up front in id order, the order changes to two
        // cases (links) lock them in, so the two never deadlock.
        let followed_complaints: Vec<String> = events
            .iter()
            .filter(|e| e.position > applied_up_to)
            .flat_map(|e| match follow_for(e) {
                Ok(Some(f)) => vec![f.complaint],
                // A recurrence links the new case to the earlier complaint's case.
                _ => super::recurrence_of(e).into_iter().collect(),
            })
            .collect();
        if !followed_complaints.is_empty() {
            sqlx::query("SELECT id FROM cases WHERE complaint = ANY($1) ORDER BY id FOR UPDATE")
                .bind(&followed_complaints)
                .fetch_all(&mut *tx)
                .await?;
        }
        for event in events.iter().filter(|e| e.position > applied_up_to) {
            let o = match effect_of(event, &self.rules) {
                Effect::Open(o) => o,
                Effect::Follow(follow) => {
                    let id: Option<String> = sqlx::query_scalar(super::CASE_OF_COMPLAINT)
                        .bind(&follow.complaint)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(id) = id {
                        followed += self.follow(&mut tx, &id, &follow).await?;
                    }
                    position = event.position;
                    continue;
                }
                Effect::Nothing => {
                    position = event.position;
                    continue;
                }
                Effect::DeadLetter(d) => {
                    super::insert_dead_letter!(&d).execute(&mut *tx).await?;
                    position = event.position;
                    continue;
                }
            };
            let inserted = sqlx::query(
                "INSERT INTO cases (id, case_number, complaint, state, open_time_us, version, record, org_unit, \
                 audit_length, audit_head, next_check_us) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10) ON CONFLICT (complaint) DO NOTHING",
            )
            .bind(case_id(&o.case))
            .bind(&o.case.case_number)
            .bind(&o.case.complaint)
            .bind(o.case.state)
            .bind(o.open_time_us)
            .bind(&o.record)
            .bind(&o.case.org_unit)
            .bind(o.audit.sequence)
            .bind(&o.audit.hash)
            .bind(o.next_check_us)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                super::insert_audit!(case_id(&o.case), &o.audit).execute(&mut *tx).await?;
                o.event.append_postgres(&mut tx).await?;
                opened += 1;
                if let Some(link) = &o.link {
                    followed += self.follow(&mut tx, case_id(&o.case), link).await?;
                }
            }
            position = event.position;
        }
        sqlx::query("UPDATE consumer_positions SET position = $2 WHERE consumer = $1")
            .bind(INTAKE_CONSUMER)
            .bind(position)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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
impl CaseStore for PostgresCaseStore {
    async fn get(&self, id: &str) -> anyhow::Result<Option<Case>> {
        let record: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM cases WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(record.map(|r| Case::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &CaseQuery) -> anyhow::Result<Vec<ListedCase>> {
        let rows = super::list_query!(q).fetch_all(&self.pool).await?;
        rows.into_iter().map(ListedCase::try_from).collect()
    }

    async fn audit_trail(&self, id: &str) -> anyhow::Result<Option<AuditTrail>> {
        super::trail_from(sqlx::query_as(AUDIT_TRAIL).bind(id).fetch_all(&self.pool).await?)
    }

    async fn dead_letters(&self, limit: i64) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(sqlx::query_as(DEAD_LETTERS).bind(INTAKE_CONSUMER).bind(limit).fetch_all(&self.pool).await?)
    }

    async fn update(&self, update: Update) -> Result<Case, ServiceError> {
        let (case, changed) = self.update_in(update).await.map_err(|e| e.0)?;
        if changed {
            self.feed.notify_committed();
        }
        Ok(case)
    }

    async fn sweep(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize> {
        // One replica sweeps at a time. The lock belongs to a transaction held open for the
        // sweep, so it is released however the sweep ends: commit, error, cancellation (the
        // dropped transaction rolls back) or a dead process (its connection closes).
        let mut lock = self.pool.begin().await?;
        let held: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut *lock).await?;
        if !held {
            return Ok(0);
        }
        let swept = self.sweep_locked(now, limit).await;
        lock.rollback().await?;
        swept
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use redress_platform::testing::TestDatabase;
    use redress_platform::time::{now, to_timestamp};
    use redress_proto::redress::common::v1::Event;
    use redress_proto::redress::intake::v1::ComplaintAccepted;
    use tokio_util::sync::CancellationToken;

    use super::SWEEP_LOCK;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_one_replica_sweeps_at_a_time() {
        let Some(db) = TestDatabase::postgres("only_one_replica_sweeps_at_a_time").await.unwrap() else { return };
        let rules = Arc::new(crate::domain::tests::rules());
        let store = crate::open_store(&db.config, rules, CancellationToken::new()).await.unwrap();
        let accepted = ComplaintAccepted {
            complaint: "complaints/1".to_owned(),
            complaint_number: "1".to_owned(),
            org_unit: "institutions/demo".to_owned(),
            grade: 1,
            receive_time: Some(to_timestamp(now() - chrono::TimeDelta::days(30))),
            ..Default::default()
        };
        let event = Event {
            position: 1,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
            payload: Some(prost_types::Any::from_msg(&accepted).unwrap()),
            ..Default::default()
        };
        store.apply(vec![event]).await.unwrap();
        // Another replica is sweeping: it holds the lock.
        let other = sqlx::PgPool::connect(&db.config.url).await.unwrap();
        let mut held = other.begin().await.unwrap();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SWEEP_LOCK)
            .fetch_one(&mut *held)
            .await
            .unwrap();
        assert!(got);
        assert_eq!(store.sweep(now(), 10).await.unwrap(), 0, "stands back while another sweeps");
        // That replica dies mid-sweep: its transaction ends and the lock with it.
        drop(held);
        other.close().await;
        assert_eq!(store.sweep(now(), 10).await.unwrap(), 1);
    }
}
