//! The case list and the sweep read their indexes whatever filters a caller sets: the exact
//! statements the store issues, planned over a realistic number of cases.

use redress_platform::db::Backend;
use redress_platform::listing::Value;
use redress_platform::testing::plans::{
    plan_nodes, postgres_generic_plan, postgres_list_plan, seq_scans, sqlite_query_plan, sqlite_scans_without_index,
};

use super::{CaseQuery, DUE_FOR_SWEEP, list_sql};

/// Every combination of `ListCases` filters (state, complaint, page token, the caller's unit).
fn every_filter_combination() -> Vec<CaseQuery> {
    let mut queries = Vec::new();
    for state in [None, Some(3)] {
        for complaint in [None, Some("complaints/4711".to_owned())] {
            for after in [None, Some((1_700_050_000_000_000, "case-1050000".to_owned()))] {
                for scope in [None, Some("institutions/i7".to_owned())] {
                    queries.push(CaseQuery {
                        state,
                        complaint: complaint.clone(),
                        after: after.clone(),
                        scope: scope.clone(),
                        limit: 51,
                    });
                }
            }
        }
    }
    queries
}

/// 100,000 cases in 8 states, owned by 350 units (50 institutions with 7 branches each).
const FILL: &str = "INSERT INTO cases (id, case_number, complaint, state, open_time_us, version, record, org_unit) \
    SELECT 'case-' || CAST(1000000 + g AS TEXT), 'n' || g, 'complaints/' || g, 1 + g % 8, \
           1700000000000000 + CAST(g AS BIGINT) * 1000000, 1, x'0a00', 'institutions/i' || (g % 50) || '/branch' || (g % 7) \
    FROM series";

#[tokio::test]
async fn case_lists_and_the_sweep_use_indexes_on_postgres() -> anyhow::Result<()> {
    let test = "store::plans::case_lists_and_the_sweep_use_indexes_on_postgres";
    let Some(url) = redress_platform::testing::fresh_postgres_database(test).await? else { return Ok(()) };
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await?;
    redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
    let fill = format!(
        "WITH series AS (SELECT g FROM generate_series(1, 100000) g) {}; \
         UPDATE cases SET next_check_us = open_time_us + 86400000000 WHERE state < 7; ANALYZE cases",
        FILL.replace("x'0a00'", "'\\x0a00'::bytea")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill)).execute(&pool).await?;

    for query in every_filter_combination() {
        let sql = list_sql(Backend::Postgres, &query);
        let plan = postgres_list_plan(&pool, &sql).await?;
        eprintln!("{}: {:?}", sql.sql(), plan_nodes(&plan));
        assert!(!seq_scans(&plan, "cases"), "{query:?}: {}\n{plan}", sql.sql());
    }
    let sweep =
        postgres_generic_plan(&pool, DUE_FOR_SWEEP, &[Value::Int(1_700_000_100_000_000), Value::Int(500)]).await?;
    eprintln!("{DUE_FOR_SWEEP}: {:?}", plan_nodes(&sweep));
    assert!(!seq_scans(&sweep, "cases"), "{sweep}");
    Ok(())
}

#[tokio::test]
async fn case_lists_and_the_sweep_use_indexes_on_sqlite() -> anyhow::Result<()> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    redress_platform::db::migrate_sqlite(&pool, &super::SQLITE_MIGRATIONS).await?;
    let fill = format!(
        "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < 20000) {FILL}; \
         UPDATE cases SET next_check_us = open_time_us + 86400000000 WHERE state < 7; ANALYZE"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill)).execute(&pool).await?;

    for query in every_filter_combination() {
        let sql = list_sql(Backend::Sqlite, &query);
        let plan = sqlite_query_plan(&pool, sql.sql()).await?;
        eprintln!("{}: {plan:?}", sql.sql());
        assert!(!sqlite_scans_without_index(&plan, "cases"), "{query:?}: {}\n{plan:?}", sql.sql());
    }
    let sweep = sqlite_query_plan(&pool, DUE_FOR_SWEEP).await?;
    assert!(!sqlite_scans_without_index(&sweep, "cases"), "{sweep:?}");
    Ok(())
}
