//! Reads, the same SQL on either backend's pool.

use redress_platform::db::Pool;
use redress_proto::redress::metrics::v1::{ConsumerStatus, ReadModelStatus};

use super::{CELLS, STATUS_POSITIONS, StoredDenominators, StoredTarget};
use crate::domain::measures::Measures;
use crate::domain::period::Days;
use crate::domain::rollup::{Cell, CellQuery};

/// Runs `$query` (a function of a pool) on whichever backend `$pool` is.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $query:expr) => {
        match $pool {
            Pool::Sqlite($p) => $query,
            Pool::Postgres($p) => $query,
        }
    };
}

pub(crate) async fn position(pool: &Pool, consumer: &str) -> anyhow::Result<(i64, i64)> {
    const READ: &str = "SELECT (SELECT position FROM consumer_positions WHERE consumer = $1), \
        (SELECT epoch FROM read_model_state WHERE singleton = 1)";
    let (position, epoch): (Option<i64>, Option<i64>) =
        on_pool!(pool, |p| sqlx::query_as(READ).bind(consumer).fetch_one(p).await?);
    Ok((position.unwrap_or(0), epoch.unwrap_or(0)))
}

#[derive(sqlx::FromRow)]
struct CellRow {
    value: String,
    grain: i32,
    day: i32,
    measures: Vec<u8>,
}

pub(crate) async fn cells(pool: &Pool, q: &CellQuery) -> anyhow::Result<Vec<Cell>> {
    let mut sql = CELLS.to_owned();
    for (i, _) in q.days.iter().enumerate() {
        let n = 6 + 2 * i;
        sql.push_str(&format!(" OR (grain = 0 AND day BETWEEN ${n} AND ${})", n + 1));
    }
    sql.push(')');
    let sql = sqlx::AssertSqlSafe(sql);
    let rows: Vec<CellRow> = on_pool!(pool, |p| {
        let mut query = sqlx::query_as(sql)
            .bind(q.unit.clone())
            .bind(q.dimension)
            .bind(q.value.clone())
            .bind(q.months.first)
            .bind(q.months.last);
        for days in &q.days {
            query = query.bind(days.first).bind(days.last);
        }
        query.fetch_all(p).await?
    });
    rows.into_iter()
        .map(|r| Ok(Cell { value: r.value, grain: r.grain, day: r.day, measures: Measures::decode(&r.measures)? }))
        .collect()
}

pub(crate) async fn targets(pool: &Pool, institution: &str) -> anyhow::Result<Vec<StoredTarget>> {
    const READ: &str = "SELECT kpi, comparator, threshold, update_time_us, updated_by FROM targets \
        WHERE institution = $1 ORDER BY kpi";
    Ok(on_pool!(pool, |p| sqlx::query_as(READ).bind(institution).fetch_all(p).await?))
}

pub(crate) async fn denominators(pool: &Pool, org_unit: &str, months: Days) -> anyhow::Result<Vec<StoredDenominators>> {
    const READ: &str = "SELECT org_unit, month, customers, branches, premium_minor, update_time_us, updated_by \
        FROM denominators WHERE org_unit = $1 AND month BETWEEN $2 AND $3 ORDER BY month";
    Ok(on_pool!(pool, |p| sqlx::query_as(READ)
        .bind(org_unit)
        .bind(months.first)
        .bind(months.last)
        .fetch_all(p)
        .await?))
}

pub(crate) async fn status(pool: &Pool) -> anyhow::Result<ReadModelStatus> {
    const SIZES: &str = "SELECT (SELECT COUNT(*) FROM facts), (SELECT COUNT(*) FROM cells), \
        (SELECT rebuilds FROM read_model_state WHERE singleton = 1)";
    let positions: Vec<(String, i64, i64)> = on_pool!(pool, |p| sqlx::query_as(STATUS_POSITIONS).fetch_all(p).await?);
    let (facts, cells, rebuilds): (i64, i64, Option<i64>) =
        on_pool!(pool, |p| sqlx::query_as(SIZES).fetch_one(p).await?);
    Ok(ReadModelStatus {
        consumers: positions
            .into_iter()
            .map(|(consumer, position, dead_letters)| ConsumerStatus { consumer, position, dead_letters })
            .collect(),
        facts,
        cells,
        rebuilds: rebuilds.unwrap_or(0),
    })
}
