//! The single queries quality-metrics' operations are made of, inside one transaction of
//! either backend. Every operation is written once over [`MetricsTx`] in `ops`; the two
//! backends differ only in how read-model writers are serialised.

use async_trait::async_trait;
use prost::Message;
use redress_platform::consumer::ConsumerTx;
use redress_platform::events::Outbox;
use sqlx::{PgConnection, SqliteConnection};

use super::{RequestKey, StoredDenominators};
use crate::domain::fact::Fact;
use crate::domain::measures::Measures;
use crate::domain::rollup::CellKey;

/// Rows a multi-row statement carries at most (5 bound values a cell key).
const CHUNK: usize = 150;

/// One transaction of a metrics store.
#[async_trait]
pub(crate) trait MetricsTx: Outbox + ConsumerTx {
    /// Serialises the writers of the read models (both consumers and a rebuild) until the
    /// transaction ends (PostgreSQL; SQLite's writer holds the whole database).
    async fn lock_read_models(&mut self) -> Result<(), sqlx::Error>;
    async fn epoch(&mut self) -> Result<i64, sqlx::Error>;
    /// The layout the read models were built in, and whether they hold any fact.
    async fn layout(&mut self) -> Result<(i64, bool), sqlx::Error>;
    async fn set_layout(&mut self, layout: i64) -> Result<(), sqlx::Error>;
    async fn load_facts(&mut self, complaints: &[String]) -> anyhow::Result<Vec<Fact>>;
    async fn save_facts(&mut self, facts: &[&Fact]) -> Result<(), sqlx::Error>;
    async fn load_cells(&mut self, keys: &[CellKey]) -> anyhow::Result<Vec<(CellKey, Measures)>>;
    /// Writes cells (replacing what they held) and removes those that count nothing.
    async fn save_cells(&mut self, cells: &[(CellKey, Measures)]) -> Result<(), sqlx::Error>;
    /// Drops the read models, resets `consumers` to the start of their feeds and bumps the epoch.
    async fn drop_read_models(&mut self, consumers: &[&str]) -> Result<(), sqlx::Error>;
    async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>, sqlx::Error>;
    async fn save_request(&mut self, key: &RequestKey, response: &[u8]) -> Result<(), sqlx::Error>;
    async fn set_target(
        &mut self,
        institution: &str,
        kpi: i32,
        target: Option<(i32, f64)>,
        by: &str,
    ) -> Result<(), sqlx::Error>;
    async fn set_denominators(&mut self, d: &StoredDenominators) -> Result<(), sqlx::Error>;
    async fn insert_root_cause(
        &mut self,
        id: &str,
        org_unit: &str,
        at_us: i64,
        record: &[u8],
    ) -> Result<(), sqlx::Error>;
    /// An action with its version, locked until the transaction ends (PostgreSQL).
    async fn load_action(&mut self, id: &str) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error>;
    /// Inserts (`version` 1) or replaces an action.
    async fn save_action(&mut self, row: &ActionRow) -> Result<(), sqlx::Error>;
    /// Records institutions the read models hold complaints of.
    async fn note_institutions(&mut self, units: &[String]) -> Result<(), sqlx::Error>;
}

/// An improvement action as stored.
pub(crate) struct ActionRow {
    pub id: String,
    pub org_unit: String,
    pub status: i32,
    pub due_day: i32,
    pub next_check_us: Option<i64>,
    pub version: i64,
    pub record: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct CellRow {
    unit: String,
    dimension: i32,
    grain: i32,
    day: i32,
    value: String,
    measures: Vec<u8>,
}

/// Implements [`MetricsTx`] for one backend's connection (`$db` its sqlx database); `$lock`
/// serialises read-model writers.
macro_rules! metrics_tx {
    ($conn:ty, $db:ty, lock = $lock:path, for_update = $for_update:literal) => {
        #[async_trait]
        impl MetricsTx for $conn {
            async fn lock_read_models(&mut self) -> Result<(), sqlx::Error> {
                $lock(self).await
            }

            async fn epoch(&mut self) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar("SELECT epoch FROM read_model_state WHERE singleton = 1").fetch_one(&mut *self).await
            }

            async fn layout(&mut self) -> Result<(i64, bool), sqlx::Error> {
                sqlx::query_as(
                    "SELECT layout, EXISTS (SELECT 1 FROM facts) FROM read_model_state WHERE singleton = 1",
                )
                .fetch_one(&mut *self)
                .await
            }

            async fn set_layout(&mut self, layout: i64) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE read_model_state SET layout = $1 WHERE singleton = 1")
                    .bind(layout)
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }

            async fn load_facts(&mut self, complaints: &[String]) -> anyhow::Result<Vec<Fact>> {
                let mut out = Vec::with_capacity(complaints.len());
                for chunk in complaints.chunks(CHUNK * 5) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("SELECT record FROM facts WHERE complaint IN (");
                    let mut list = q.separated(", ");
                    for c in chunk {
                        list.push_bind(c.clone());
                    }
                    q.push(")");
                    let rows: Vec<Vec<u8>> = q.build_query_scalar().fetch_all(&mut *self).await?;
                    for row in rows {
                        out.push(Fact::decode(row.as_slice())?);
                    }
                }
                Ok(out)
            }

            async fn save_facts(&mut self, facts: &[&Fact]) -> Result<(), sqlx::Error> {
                for chunk in facts.chunks(CHUNK * 2) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO facts (complaint, org_unit, record) ");
                    q.push_values(chunk, |mut row, fact| {
                        let unit = fact.counted.as_ref().map(|c| c.org_unit.clone()).unwrap_or_default();
                        row.push_bind(fact.complaint.clone()).push_bind(unit).push_bind(fact.encode_to_vec());
                    });
                    q.push(
                        " ON CONFLICT (complaint) DO UPDATE SET org_unit = excluded.org_unit, record = excluded.record",
                    );
                    q.build().execute(&mut *self).await?;
                }
                Ok(())
            }

            async fn load_cells(&mut self, keys: &[CellKey]) -> anyhow::Result<Vec<(CellKey, Measures)>> {
                let mut out = Vec::with_capacity(keys.len());
                for chunk in keys.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT unit, dimension, grain, day, value, measures FROM cells \
                         WHERE (unit, dimension, grain, day, value) IN (",
                    );
                    let mut first = true;
                    for k in chunk {
                        q.push(if first { "(" } else { ", (" });
                        first = false;
                        let mut row = q.separated(", ");
                        row.push_bind(k.unit.clone())
                            .push_bind(k.dimension)
                            .push_bind(k.grain)
                            .push_bind(k.day)
                            .push_bind(k.value.clone());
                        q.push(")");
                    }
                    q.push(")");
                    let rows: Vec<CellRow> = q.build_query_as().fetch_all(&mut *self).await?;
                    for r in rows {
                        let key = CellKey { unit: r.unit, dimension: r.dimension, value: r.value, grain: r.grain, day: r.day };
                        out.push((key, Measures::decode(&r.measures)?));
                    }
                }
                Ok(out)
            }

            async fn save_cells(&mut self, cells: &[(CellKey, Measures)]) -> Result<(), sqlx::Error> {
                let (empty, kept): (Vec<_>, Vec<_>) = cells.iter().partition(|(_, m)| m.is_zero());
                for chunk in kept.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO cells (unit, dimension, grain, day, value, measures) ",
                    );
                    q.push_values(chunk, |mut row, (k, m)| {
                        row.push_bind(k.unit.clone())
                            .push_bind(k.dimension)
                            .push_bind(k.grain)
                            .push_bind(k.day)
                            .push_bind(k.value.clone())
                            .push_bind(m.encode());
                    });
                    q.push(
                        " ON CONFLICT (unit, dimension, grain, day, value) DO UPDATE SET measures = excluded.measures",
                    );
                    q.build().execute(&mut *self).await?;
                }
                for (k, _) in empty {
                    sqlx::query(
                        "DELETE FROM cells WHERE unit = $1 AND dimension = $2 AND grain = $3 AND day = $4 AND value = $5",
                    )
                    .bind(k.unit.clone())
                    .bind(k.dimension)
                    .bind(k.grain)
                    .bind(k.day)
                    .bind(k.value.clone())
                    .execute(&mut *self)
                    .await?;
                }
                Ok(())
            }

            async fn drop_read_models(&mut self, consumers: &[&str]) -> Result<(), sqlx::Error> {
                sqlx::query("DELETE FROM facts").execute(&mut *self).await?;
                sqlx::query("DELETE FROM cells").execute(&mut *self).await?;
                for consumer in consumers {
                    sqlx::query("UPDATE consumer_positions SET position = 0 WHERE consumer = $1")
                        .bind(*consumer)
                        .execute(&mut *self)
                        .await?;
                    sqlx::query("DELETE FROM dead_letters WHERE consumer = $1").bind(*consumer).execute(&mut *self).await?;
                }
                sqlx::query("UPDATE read_model_state SET epoch = epoch + 1, rebuilds = rebuilds + 1 WHERE singleton = 1")
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
                sqlx::query_as("SELECT fingerprint, response FROM metrics_requests WHERE request_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await
            }

            async fn save_request(&mut self, key: &RequestKey, response: &[u8]) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO metrics_requests (request_id, fingerprint, response, record_time_us) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&key.id)
                .bind(&key.fingerprint)
                .bind(response)
                .bind(redress_platform::time::to_micros(redress_platform::time::now()))
                .execute(&mut *self)
                .await
                .map(|_| ())
            }

            async fn set_target(
                &mut self,
                institution: &str,
                kpi: i32,
                target: Option<(i32, f64)>,
                by: &str,
            ) -> Result<(), sqlx::Error> {
                let Some((comparator, threshold)) = target else {
                    return sqlx::query("DELETE FROM targets WHERE institution = $1 AND kpi = $2")
                        .bind(institution)
                        .bind(kpi)
                        .execute(&mut *self)
                        .await
                        .map(|_| ());
                };
                sqlx::query(
                    "INSERT INTO targets (institution, kpi, comparator, threshold, update_time_us, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (institution, kpi) DO UPDATE SET \
                     comparator = excluded.comparator, threshold = excluded.threshold, \
                     update_time_us = excluded.update_time_us, updated_by = excluded.updated_by",
                )
                .bind(institution)
                .bind(kpi)
                .bind(comparator)
                .bind(threshold)
                .bind(redress_platform::time::to_micros(redress_platform::time::now()))
                .bind(by)
                .execute(&mut *self)
                .await
                .map(|_| ())
            }

            async fn insert_root_cause(
                &mut self,
                id: &str,
                org_unit: &str,
                at_us: i64,
                record: &[u8],
            ) -> Result<(), sqlx::Error> {
                sqlx::query("INSERT INTO root_causes (id, org_unit, create_time_us, record) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(org_unit)
                    .bind(at_us)
                    .bind(record)
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }

            async fn load_action(&mut self, id: &str) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
                sqlx::query_as(concat!("SELECT version, record FROM improvement_actions WHERE id = $1", $for_update))
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await
            }

            async fn save_action(&mut self, row: &ActionRow) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO improvement_actions (id, org_unit, status, due_day, next_check_us, version, record) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET org_unit = excluded.org_unit, \
                     status = excluded.status, due_day = excluded.due_day, next_check_us = excluded.next_check_us, \
                     version = excluded.version, record = excluded.record",
                )
                .bind(&row.id)
                .bind(&row.org_unit)
                .bind(row.status)
                .bind(row.due_day)
                .bind(row.next_check_us)
                .bind(row.version)
                .bind(&row.record)
                .execute(&mut *self)
                .await
                .map(|_| ())
            }

            async fn note_institutions(&mut self, units: &[String]) -> Result<(), sqlx::Error> {
                for unit in units {
                    sqlx::query("INSERT INTO metric_institutions (unit) VALUES ($1) ON CONFLICT DO NOTHING")
                        .bind(unit)
                        .execute(&mut *self)
                        .await?;
                }
                Ok(())
            }

            async fn set_denominators(&mut self, d: &StoredDenominators) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO denominators \
                     (org_unit, month, customers, branches, premium_minor, update_time_us, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_unit, month) DO UPDATE SET \
                     customers = excluded.customers, branches = excluded.branches, \
                     premium_minor = excluded.premium_minor, update_time_us = excluded.update_time_us, \
                     updated_by = excluded.updated_by",
                )
                .bind(&d.org_unit)
                .bind(d.month)
                .bind(d.customers)
                .bind(d.branches)
                .bind(d.premium_minor)
                .bind(d.update_time_us)
                .bind(&d.updated_by)
                .execute(&mut *self)
                .await
                .map(|_| ())
            }
        }
    };
}

/// SQLite's single writer holds the whole database: nothing to lock.
async fn no_lock(_: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    Ok(())
}

/// One writer of the read models at a time, across replicas and consumers ("redrsqmx").
async fn lock_postgres(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(8243105135697423736)").execute(&mut *conn).await.map(|_| ())
}

metrics_tx!(SqliteConnection, sqlx::Sqlite, lock = no_lock, for_update = "");
metrics_tx!(PgConnection, sqlx::Postgres, lock = lock_postgres, for_update = " FOR UPDATE");
