//! Support for tests that need a real database: a fresh SQLite file per test, and a fresh
//! PostgreSQL database per test when `REDRESS_TEST_POSTGRES_URL` names a server.

use anyhow::Context;
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

/// Environment variable naming the PostgreSQL server used by conformance tests.
pub const POSTGRES_URL_ENV: &str = "REDRESS_TEST_POSTGRES_URL";

/// A database URL for a new, empty PostgreSQL database, or `None` (and a note on stderr)
/// when no server is configured.
pub async fn fresh_postgres_database(test: &str) -> anyhow::Result<Option<String>> {
    let Ok(server) = std::env::var(POSTGRES_URL_ENV) else {
        eprintln!("skipped: {test} on PostgreSQL ({POSTGRES_URL_ENV} is not set)");
        return Ok(None);
    };
    let name = format!("redress_test_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPoolOptions::new().max_connections(1).connect(&server).await.context("connecting to test server")?;
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    admin.close().await;
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server.as_str(), String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    Ok(Some(format!("{base}/{name}{query}")))
}

/// A URL for a new SQLite file in `dir`.
pub fn sqlite_url(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}/{name}.db", dir.display())
}
