//! PostgreSQL implementation. The consumer position row is locked for the whole batch, so two
//! replicas consuming at once apply each event once between them.

use async_trait::async_trait;
use prost::Message;
use redress_platform::events::{EventSink, Feed};
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    AUDIT_TRAIL, AuditTrail, CaseQuery, CaseStore, DEAD_LETTERS, DeadLetter, Effect, INTAKE_CONSUMER, ListedCase,
    case_id, effect_of,
};

#[derive(Clone)]
pub struct PostgresCaseStore {
    pool: PgPool,
    feed: Feed,
}

impl PostgresCaseStore {
    pub async fn open(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        let feed = Feed::postgres(pool.clone(), shutdown);
        Ok(Self { pool, feed })
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
        let applied_up_to = position;
        for event in events.iter().filter(|e| e.position > applied_up_to) {
            let o = match effect_of(event) {
                Effect::Open(o) => o,
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
                 audit_length, audit_head) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9) ON CONFLICT (complaint) DO NOTHING",
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
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                super::insert_audit!(case_id(&o.case), &o.audit).execute(&mut *tx).await?;
                o.event.append_postgres(&mut tx).await?;
                opened += 1;
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

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
