//! Query plans of the statements a store issues, for tests that prove a query reads an index:
//! the generic plan PostgreSQL caches for a prepared statement (which cannot know the values
//! bound), and SQLite's `EXPLAIN QUERY PLAN` (planned before any value is bound).

use sqlx::{PgPool, Row, SqlitePool};

use crate::listing::{ListSql, Value};

/// The generic plan of `sql` on PostgreSQL (`EXPLAIN (FORMAT JSON)` of the statement prepared
/// and executed under `plan_cache_mode = force_generic_plan`), as PostgreSQL plans it once a
/// prepared statement has been run a few times whatever the values.
pub async fn postgres_generic_plan(pool: &PgPool, sql: &str, values: &[Value]) -> anyhow::Result<serde_json::Value> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE redress_plan AS {sql}"))).execute(&mut *conn).await?;
    let execute = if values.is_empty() {
        "EXPLAIN (FORMAT JSON) EXECUTE redress_plan".to_owned()
    } else {
        format!(
            "EXPLAIN (FORMAT JSON) EXECUTE redress_plan({})",
            values.iter().map(literal).collect::<Vec<_>>().join(", ")
        )
    };
    let plan = sqlx::query(sqlx::AssertSqlSafe(execute)).fetch_one(&mut *conn).await;
    sqlx::raw_sql("DEALLOCATE redress_plan; RESET plan_cache_mode").execute(&mut *conn).await?;
    // The plan is of type json, whose binary form is its text.
    let text: String = plan?.try_get_unchecked(0)?;
    Ok(serde_json::from_str(&text)?)
}

/// [`postgres_generic_plan`] of a built list statement.
pub async fn postgres_list_plan(pool: &PgPool, sql: &ListSql) -> anyhow::Result<serde_json::Value> {
    postgres_generic_plan(pool, sql.sql(), sql.values()).await
}

/// A value as a SQL literal, for `EXECUTE` in tests only.
fn literal(value: &Value) -> String {
    match value {
        Value::Int(v) => v.to_string(),
        Value::Text(v) => format!("'{}'", v.replace('\'', "''")),
        Value::Bool(v) => v.to_string(),
    }
}

/// Every node of a PostgreSQL JSON plan, as `(node type, relation)` (relation empty for nodes
/// that read none).
pub fn plan_nodes(plan: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(node: &serde_json::Value, out: &mut Vec<(String, String)>) {
        let text = |key: &str| node.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        if node.get("Node Type").is_some() {
            out.push((text("Node Type"), text("Relation Name")));
        }
        if let Some(children) = node.get("Plans").and_then(|p| p.as_array()) {
            children.iter().for_each(|child| walk(child, out));
        }
    }
    let mut out = Vec::new();
    let roots = plan.as_array().map(|a| a.as_slice()).unwrap_or_default();
    for root in roots {
        if let Some(node) = root.get("Plan") {
            walk(node, &mut out);
        }
    }
    out
}

/// Whether a PostgreSQL JSON plan reads `table` by a sequential scan.
pub fn seq_scans(plan: &serde_json::Value, table: &str) -> bool {
    plan_nodes(plan).iter().any(|(node, relation)| node == "Seq Scan" && relation == table)
}

/// The lines (`detail`) of SQLite's `EXPLAIN QUERY PLAN` of `sql`.
pub async fn sqlite_query_plan(pool: &SqlitePool, sql: &str) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(_, _, _, detail)| detail).collect())
}

/// Whether a SQLite query plan reads `table` whole without an index (`SCAN table`, not
/// `SCAN table USING INDEX …`).
pub fn sqlite_scans_without_index(plan: &[String], table: &str) -> bool {
    plan.iter().any(|line| line == &format!("SCAN {table}"))
}
