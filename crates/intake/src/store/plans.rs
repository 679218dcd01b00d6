//! The complaint list reads its indexes whatever filters a caller sets: the exact statements
//! the store issues, planned over a realistic number of complaints.

use chrono::{DateTime, Utc};
use redress_platform::db::Backend;
use redress_platform::testing::plans::{
    plan_nodes, postgres_list_plan, seq_scans, sqlite_query_plan, sqlite_scans_without_index,
};

use super::{ListQuery, list_sql};

fn at(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

/// Every combination of `ListComplaints` filters (channel, received from, received before,
/// page token, the caller's unit).
fn every_filter_combination() -> Vec<ListQuery> {
    let mut queries = Vec::new();
    for channel in [None, Some(3)] {
        for receive_from in [None, at(1_700_020_000)] {
            for receive_to in [None, at(1_700_080_000)] {
                for after in [None, Some((1_700_050_000_000_000, "c-1050000".to_owned()))] {
                    for scope in [None, Some("institutions/i7".to_owned())] {
                        queries.push(ListQuery {
                            channel,
                            receive_from,
                            receive_to,
                            after: after.clone(),
                            scope: scope.clone(),
                            limit: 51,
                        });
                    }
                }
            }
        }
    }
    queries
}

/// 100,000 complaints from 6 channels, owned by 350 units (50 institutions with 7 branches
/// each), one a second.
const FILL: &str = "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, \
        create_time_us) \
    SELECT 'c-' || CAST(1000000 + g AS TEXT), 'n' || g, 1 + g % 6, 1700000000000000 + CAST(g AS BIGINT) * 1000000, \
           'institutions/i' || (g % 50) || '/branch' || (g % 7), 1, x'0a00', 1700000000000000 + CAST(g AS BIGINT) * 1000000 \
    FROM series";

#[tokio::test]
async fn complaint_lists_use_indexes_on_postgres() -> anyhow::Result<()> {
    let test = "store::plans::complaint_lists_use_indexes_on_postgres";
    let Some(url) = redress_platform::testing::fresh_postgres_database(test).await? else { return Ok(()) };
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await?;
    redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
    let fill = format!(
        "WITH series AS (SELECT g FROM generate_series(1, 100000) g) {}; ANALYZE complaints",
        FILL.replace("x'0a00'", "'\\x0a00'::bytea")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill)).execute(&pool).await?;

    for query in every_filter_combination() {
        let sql = list_sql(Backend::Postgres, &query);
        let plan = postgres_list_plan(&pool, &sql).await?;
        eprintln!("{}: {:?}", sql.sql(), plan_nodes(&plan));
        assert!(!seq_scans(&plan, "complaints"), "{query:?}: {}\n{plan}", sql.sql());
    }
    Ok(())
}

#[tokio::test]
async fn complaint_lists_use_indexes_on_sqlite() -> anyhow::Result<()> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    redress_platform::db::migrate_sqlite(&pool, &super::SQLITE_MIGRATIONS).await?;
    let fill = format!(
        "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < 20000) {FILL}; ANALYZE"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill)).execute(&pool).await?;

    for query in every_filter_combination() {
        let sql = list_sql(Backend::Sqlite, &query);
        let plan = sqlite_query_plan(&pool, sql.sql()).await?;
        eprintln!("{}: {plan:?}", sql.sql());
        assert!(!sqlite_scans_without_index(&plan, "complaints"), "{query:?}: {}\n{plan:?}", sql.sql());
    }
    Ok(())
}

/// The submit batch's subject look-ups read only the entries of the people submitting, with or
/// without statistics: without them (a store that never ran `ANALYZE`) SQLite would otherwise
/// search `subject_index` by `kind = 'id'` alone, every identity document in the store.
#[tokio::test]
async fn subject_lookups_of_a_submission_read_only_its_people_on_sqlite() -> anyhow::Result<()> {
    use super::batch::subjects::{BY_DIGESTS, WITH_ID_DOCUMENT};
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    redress_platform::db::migrate_sqlite(&pool, &super::SQLITE_MIGRATIONS).await?;
    sqlx::raw_sql(
        "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < 20000) \
         INSERT INTO subjects (id, key_id, wrapped_key, create_time_us) SELECT 's-' || g, 'k', x'00', 0 FROM series; \
         INSERT INTO subject_index (kind, digest, subject_id) SELECT 'id', 'i-' || substr(id, 3), id FROM subjects; \
         INSERT INTO subject_index (kind, digest, subject_id) SELECT 'phone', 'p-' || substr(id, 3), id FROM subjects",
    )
    .execute(&pool)
    .await?;
    let statements =
        [(format!("{WITH_ID_DOCUMENT}?, ?, ?)"), "(subject_id=?)"), (format!("{BY_DIGESTS}?, ?, ?)"), "(digest=?)")];
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("ANALYZE").execute(&pool).await?;
        }
        for (sql, key) in &statements {
            let plan = sqlite_query_plan(&pool, sql).await?;
            let reads: Vec<&String> = plan.iter().filter(|line| line.contains("subject_index")).collect();
            assert!(
                !reads.is_empty() && reads.iter().all(|line| line.starts_with("SEARCH") && line.ends_with(key)),
                "analyzed: {analyzed}: {sql}\n{plan:?}"
            );
        }
    }
    Ok(())
}

/// The submit batch finds the complaints its returning people may repeat through the issue
/// index, one descent each, whatever the store holds.
#[tokio::test]
async fn recurrence_lookups_of_a_batch_descend_the_issue_index_on_sqlite() -> anyhow::Result<()> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    redress_platform::db::migrate_sqlite(&pool, &super::SQLITE_MIGRATIONS).await?;
    let fill = format!(
        "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < 20000) {FILL}; \
         UPDATE complaints SET subject_id = 's-' || (rowid % 5000), business_type = 'B0' || (rowid % 3), \
         cause = 'C0' || (rowid % 7)"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill)).execute(&pool).await?;
    let sql = format!("{}VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)) AS v", super::batch::LATEST_OF_ISSUES);
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("ANALYZE").execute(&pool).await?;
        }
        let plan = sqlite_query_plan(&pool, &sql).await?;
        eprintln!("{sql}: {plan:?}");
        let reads: Vec<&String> = plan.iter().filter(|line| line.contains(" c ") || line.ends_with(" c")).collect();
        assert!(
            !reads.is_empty()
                && reads.iter().all(|line| line.starts_with("SEARCH") && line.contains("complaints_by_subject_issue")),
            "analyzed: {analyzed}\n{plan:?}"
        );
    }
    Ok(())
}
