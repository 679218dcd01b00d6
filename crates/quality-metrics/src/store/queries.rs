//! Reads, the same SQL on either backend's pool.

use prost::Message;
use redress_platform::db::{Backend, Pool};
use redress_platform::listing::ListSql;
use redress_platform::paging::Cursor;
use redress_proto::redress::metrics::v1::{ConsumerStatus, ImprovementAction, ReadModelStatus, RootCause};

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
    let mut n = 3;
    if q.value.is_some() {
        sql.push_str(" AND value = $3");
        n += 1;
    }
    sql.push_str(&format!(" AND ((grain = 1 AND day BETWEEN ${n} AND ${})", n + 1));
    for i in 0..q.days.len() {
        let n = n + 2 + 2 * i;
        sql.push_str(&format!(" OR (grain = 0 AND day BETWEEN ${n} AND ${})", n + 1));
    }
    sql.push(')');
    let sql = sqlx::AssertSqlSafe(sql);
    let rows: Vec<CellRow> = on_pool!(pool, |p| {
        let mut query = sqlx::query_as(sql).bind(q.unit.clone()).bind(q.dimension);
        if let Some(value) = &q.value {
            query = query.bind(value.clone());
        }
        query = query.bind(q.months.first).bind(q.months.last);
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

/// A page of root causes within `scope`, newest first, with only the filters that are set.
pub(crate) fn root_causes_sql(backend: Backend, scope: Option<&str>, after: Option<Cursor>, limit: i64) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record, create_time_us, id FROM root_causes");
    sql.and_after(("create_time_us", "id"), "<", after).and_within("org_unit", scope);
    sql.finish("ORDER BY create_time_us DESC, id DESC", limit)
}

/// A page of improvement actions within `scope`, soonest due first, with only the filters that
/// are set.
pub(crate) fn actions_sql(
    backend: Backend,
    scope: Option<&str>,
    status: Option<i32>,
    after: Option<Cursor>,
    limit: i64,
) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record, due_day, id FROM improvement_actions");
    sql.and_eq("status", status).and_after(("due_day", "id"), ">", after).and_within("org_unit", scope);
    sql.finish("ORDER BY due_day, id", limit)
}

pub(crate) async fn root_cause(pool: &Pool, id: &str) -> anyhow::Result<Option<RootCause>> {
    const READ: &str = "SELECT record FROM root_causes WHERE id = $1";
    let record: Option<Vec<u8>> = on_pool!(pool, |p| sqlx::query_scalar(READ).bind(id).fetch_optional(p).await?);
    Ok(record.map(|r| RootCause::decode(r.as_slice())).transpose()?)
}

pub(crate) async fn root_causes(
    pool: &Pool,
    scope: Option<String>,
    after: Option<Cursor>,
    limit: i64,
) -> anyhow::Result<Vec<(RootCause, Cursor)>> {
    let list = |backend| root_causes_sql(backend, scope.as_deref(), after.clone(), limit);
    let rows: Vec<(Vec<u8>, i64, String)> = match pool {
        Pool::Sqlite(p) => list(Backend::Sqlite).query_as().fetch_all(p).await?,
        Pool::Postgres(p) => list(Backend::Postgres).query_as().fetch_all(p).await?,
    };
    rows.into_iter().map(|(r, t, id)| Ok((RootCause::decode(r.as_slice())?, (t, id)))).collect()
}

pub(crate) async fn action(pool: &Pool, id: &str) -> anyhow::Result<Option<(i64, ImprovementAction)>> {
    const READ: &str = "SELECT version, record FROM improvement_actions WHERE id = $1";
    let row: Option<(i64, Vec<u8>)> = on_pool!(pool, |p| sqlx::query_as(READ).bind(id).fetch_optional(p).await?);
    Ok(row.map(|(v, r)| ImprovementAction::decode(r.as_slice()).map(|a| (v, a))).transpose()?)
}

pub(crate) async fn actions(
    pool: &Pool,
    scope: Option<String>,
    status: Option<i32>,
    after: Option<Cursor>,
    limit: i64,
) -> anyhow::Result<Vec<(ImprovementAction, Cursor)>> {
    let list = |backend| actions_sql(backend, scope.as_deref(), status, after.clone(), limit);
    let rows: Vec<(Vec<u8>, i32, String)> = match pool {
        Pool::Sqlite(p) => list(Backend::Sqlite).query_as().fetch_all(p).await?,
        Pool::Postgres(p) => list(Backend::Postgres).query_as().fetch_all(p).await?,
    };
    rows.into_iter().map(|(r, d, id)| Ok((ImprovementAction::decode(r.as_slice())?, (i64::from(d), id)))).collect()
}

pub(crate) async fn actions_to_remind(pool: &Pool, now_us: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    const DUE: &str = "SELECT id FROM improvement_actions WHERE next_check_us IS NOT NULL AND next_check_us <= $1 \
        ORDER BY next_check_us LIMIT $2";
    Ok(on_pool!(pool, |p| sqlx::query_scalar(DUE).bind(now_us).bind(limit).fetch_all(p).await?))
}

pub(crate) async fn institutions(pool: &Pool) -> anyhow::Result<Vec<String>> {
    const READ: &str = "SELECT unit FROM metric_institutions ORDER BY unit";
    Ok(on_pool!(pool, |p| sqlx::query_scalar(READ).fetch_all(p).await?))
}
