//! Support for tests that need a real database: a fresh SQLite file per test, and a fresh
//! PostgreSQL database per test when `REDRESS_TEST_POSTGRES_URL` names a server.

pub mod plans;

use anyhow::Context;
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

/// Environment variable naming the PostgreSQL server used by conformance tests.
pub const POSTGRES_URL_ENV: &str = "REDRESS_TEST_POSTGRES_URL";

/// A database URL for a new, empty PostgreSQL database, or `None` when no server is
/// configured: the test is skipped, saying so on the terminal (a line starting `skipped:`,
/// shown even though the test passes). Under `CI=true` a missing server is an error instead,
/// so that CI never passes without the PostgreSQL tests.
pub async fn fresh_postgres_database(test: &str) -> anyhow::Result<Option<String>> {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let Some(server) = postgres_server(std::env::var(POSTGRES_URL_ENV).ok(), ci, test)? else {
        skipped(&format!("{test} on PostgreSQL ({POSTGRES_URL_ENV} is not set)"));
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

/// The PostgreSQL server to test `test` on: `url` when set; otherwise an error on CI, else
/// `None` (the test is skipped; the caller says so, so that this function's own test prints
/// no skip that the summary of a run would count).
fn postgres_server(url: Option<String>, ci: bool, test: &str) -> anyhow::Result<Option<String>> {
    match url.filter(|u| !u.trim().is_empty()) {
        Some(url) => Ok(Some(url)),
        None if ci => anyhow::bail!("{test} needs PostgreSQL: {POSTGRES_URL_ENV} is not set but CI=true"),
        None => Ok(None),
    }
}

/// Says on the terminal that a test was skipped, as `skipped: <what>`. Written to the process's
/// stderr directly, not through `eprintln!`, which the test harness captures and shows only for
/// a failing test.
pub fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "skipped: {what}");
}

/// A URL for a new SQLite file in `dir`.
pub fn sqlite_url(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}/{name}.db", dir.display())
}

/// Every event of `feed` after `after` committed so far (on PostgreSQL, sequenced first rather
/// than waiting for the background sequencer).
pub async fn committed_events(
    feed: &crate::events::Feed,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<redress_proto::redress::common::v1::Event>> {
    feed.sequence_now().await?;
    feed.read_after(after, limit).await
}

/// The database of one test: a new SQLite file in a temporary directory, or a new PostgreSQL
/// database. The directory lives as long as this value.
pub struct TestDatabase {
    pub config: crate::db::DatabaseConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn sqlite(name: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config =
            crate::db::DatabaseConfig { url: sqlite_url(dir.path(), name), max_connections: 4, ..Default::default() };
        Ok(Self { config, _dir: Some(dir) })
    }

    /// `None` (after saying so on stderr) when no PostgreSQL server is configured.
    pub async fn postgres(test: &str) -> anyhow::Result<Option<Self>> {
        let Some(url) = fresh_postgres_database(test).await? else { return Ok(None) };
        Ok(Some(Self {
            config: crate::db::DatabaseConfig { url, max_connections: 8, ..Default::default() },
            _dir: None,
        }))
    }
}

/// Declares a store conformance suite: each listed `async fn(store)` runs as a test on SQLite
/// and as a test on PostgreSQL (skipped, saying so, without `REDRESS_TEST_POSTGRES_URL`).
/// `open` names an `async fn(&DatabaseConfig) -> Store` in the invoking module.
#[macro_export]
macro_rules! conformance_suite {
    (open = $open:ident; $($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::testing::TestDatabase::sqlite(stringify!($name)).expect("test database");
                    super::$name(super::$open(&db.config).await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let Some(db) = $crate::testing::TestDatabase::postgres(test).await.expect("test database") else {
                        return;
                    };
                    super::$name(super::$open(&db.config).await).await;
                }
            )*
        }
    };
}

/// A member of staff of `org_unit`, working in `department`, holding `permissions`.
pub fn staff(subject: &str, org_unit: &str, department: &str, permissions: &[crate::Permission]) -> crate::Principal {
    crate::Principal {
        subject: subject.to_owned(),
        org_unit: org_unit.to_owned(),
        department: department.to_owned(),
        permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
        ..crate::Principal::default()
    }
}

/// Credentials signing `principal` for calls to `audience` with a fresh key of the principal's
/// service (or `test` for a person), which no service trusts unless told: for tests of clients.
pub fn credentials(principal: crate::Principal, audience: &str) -> crate::signing::ServiceCredentials {
    let signer = principal.subject.strip_prefix(crate::principal::SERVICE_SUBJECT_PREFIX).unwrap_or("test").to_owned();
    let key = std::sync::Arc::new(crate::signing::SigningKey::generate(&signer));
    crate::signing::ServiceCredentials::new(key, principal, audience)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_postgresql_skips_locally_and_fails_on_ci() {
        assert_eq!(postgres_server(None, false, "t").unwrap(), None);
        assert_eq!(postgres_server(Some(" ".to_owned()), false, "t").unwrap(), None);
        let e = postgres_server(None, true, "store::t").unwrap_err().to_string();
        assert!(e.contains("store::t") && e.contains(POSTGRES_URL_ENV) && e.contains("CI=true"), "{e}");
        let url = "postgres://u@127.0.0.1/postgres".to_owned();
        assert_eq!(postgres_server(Some(url.clone()), true, "t").unwrap(), Some(url));
    }
}
