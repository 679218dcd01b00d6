//! PostgreSQL implementation: every write is one of the operations in `ops` in a transaction
//! of its own. The consumer position row is locked for the whole batch, so two replicas
//! consuming at once apply each event once between them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::Backend;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::{EventSink, Feed};
use redress_platform::host::Supervisor;
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;
use sqlx::PgPool;

use super::{AUDIT_TRAIL, AuditTrail, CaseQuery, CaseStore, DUE_FOR_SWEEP, INTAKE_CONSUMER, ListedCase, Update, ops};
use crate::calendars::LiveRules;
use crate::error::CaseError;

#[derive(Clone)]
pub struct PostgresCaseStore {
    pool: PgPool,
    feed: Feed,
    rules: LiveRules,
}

/// Advisory lock key held by the one replica that sweeps deadlines (ASCII "redrswep").
const SWEEP_LOCK: i64 = 0x7265_6472_7377_6570;

impl PostgresCaseStore {
    pub async fn open(pool: PgPool, rules: LiveRules, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        redress_platform::events::migrate_postgres(&pool).await?;
        let feed = Feed::postgres(pool.clone(), supervisor);
        Ok(Self { pool, feed, rules })
    }

    async fn sweep_locked(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize> {
        let due: Vec<String> =
            sqlx::query_scalar(DUE_FOR_SWEEP).bind(now.timestamp_micros()).bind(limit).fetch_all(&self.pool).await?;
        let swept = due.len();
        let rules = self.rules.current();
        for id in due {
            let mut tx = self.pool.begin().await?;
            let raised = ops::sweep_case(&mut *tx, &id, &rules, now).await?;
            tx.commit().await?;
            if raised {
                self.feed.notify_committed();
            }
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
        let applied = ops::apply_batch(&mut *tx, &events, &self.rules.current(), self.rules.now()).await?;
        tx.commit().await?;
        super::applied(&self.feed, &applied);
        Ok(applied.position)
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
        let rows: Vec<super::ListedRow> =
            super::list_sql(Backend::Postgres, q).query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(ListedCase::try_from).collect()
    }

    async fn audit_trail(&self, id: &str) -> anyhow::Result<Option<AuditTrail>> {
        super::trail_from(sqlx::query_as(AUDIT_TRAIL).bind(id).fetch_all(&self.pool).await?)
    }

    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, CaseError> {
        let mut tx = self.pool.begin().await?;
        let (dead, applied) = ops::replay(&mut *tx, &replay, &self.rules.current(), self.rules.now()).await?;
        tx.commit().await?;
        super::applied(&self.feed, &applied);
        Ok(dead)
    }

    async fn update(&self, update: Update) -> Result<Case, CaseError> {
        let run = async {
            let mut tx = self.pool.begin().await?;
            let (case, changed) = ops::update(&mut *tx, update, &self.rules.current(), self.rules.now()).await?;
            if changed {
                tx.commit().await?;
            }
            Ok::<_, CaseError>((case, changed))
        };
        let (case, changed) = run.await?;
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

    async fn key_unkeyed_trails(&self) -> anyhow::Result<super::RechainedTrails> {
        let (keys, now) = (self.rules.current().audit.clone(), self.rules.now());
        let mut tx = self.pool.begin().await?;
        // Replicas starting at once key the trails one after the other; the second finds it done.
        sqlx::query("LOCK TABLE audit_keying IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        let done = ops::key_trails(&mut *tx, &keys, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn revise_case(&self, id: String) -> Result<bool, CaseError> {
        let (rules, now) = (self.rules.current(), self.rules.now());
        let mut tx = self.pool.begin().await?;
        let revised = ops::revise_case(&mut *tx, &id, &rules, now).await?;
        tx.commit().await?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use redress_platform::testing::TestDatabase;
    use redress_platform::time::{now, to_timestamp};
    use redress_proto::redress::common::v1::Event;
    use redress_proto::redress::intake::v1::ComplaintAccepted;

    use super::SWEEP_LOCK;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_one_replica_sweeps_at_a_time() {
        let Some(db) = TestDatabase::postgres("only_one_replica_sweeps_at_a_time").await.unwrap() else { return };
        let rules = Arc::new(crate::domain::tests::rules());
        let store =
            crate::open_store(&db.config, rules, &redress_platform::host::Supervisor::detached()).await.unwrap();
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
