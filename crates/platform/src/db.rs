//! Database connections for both backends and the SQLite group-commit writer.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so a commit is durable when it returns. All
//! writes to one SQLite file go through a single [`SqliteWriter`]: it takes whatever writes are
//! queued, runs each in its own savepoint inside one `BEGIN IMMEDIATE` transaction and commits
//! once, so a burst costs one fsync per batch instead of one per request. A write that fails is
//! rolled back to its savepoint without disturbing the others in its batch.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};

use tokio_util::sync::CancellationToken;

use crate::host::Supervisor;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Pool size (readers on SQLite; all connections on PostgreSQL).
    pub max_connections: u32,
    /// SQLite only: the most memory, in MiB, the store's connections keep as page cache. The
    /// readers share a quarter of it (at least 2 MiB each), the writer has the rest; pages
    /// beyond are read again from the operating system's file cache.
    pub cache_mib: u32,
}

/// The page cache one SQLite store may keep, unless configured. The writer's share (48 MiB)
/// holds the inner pages of intake's and case-workflow's tables and indexes at a million
/// complaints (35 and 27 MiB), which every insert descends.
pub const DEFAULT_CACHE_MIB: u32 = 64;
/// The least page cache a connection is given, whatever the budget (SQLite's own default).
const MIN_CONNECTION_CACHE_KIB: u64 = 2048;

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 8, cache_mib: DEFAULT_CACHE_MIB }
    }
}

impl DatabaseConfig {
    /// The page cache of the SQLite writer and of each reader, in KiB. Writes descend every
    /// index of what they insert, and the writer is the one connection they all go through;
    /// a read touches a few pages of one index.
    fn sqlite_cache_kib(&self) -> (u64, u64) {
        let budget = u64::from(self.cache_mib) * 1024;
        let readers = u64::from(self.max_connections.max(1));
        let reader = (budget / 4 / readers).max(MIN_CONNECTION_CACHE_KIB);
        (budget.saturating_sub(reader * readers).max(MIN_CONNECTION_CACHE_KIB), reader)
    }
}

impl std::fmt::Display for DatabaseConfig {
    /// Prints the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

/// The URL with any password (in the user info or a `password=` parameter) replaced, safe
/// for logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &base[..scheme + 3], &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A store's connection pool, of either backend (for code whose SQL suits both).
#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// One keyset page of ids: `sql` selects one text column, with `$1` the last id of the
    /// previous page and `$2` the page size.
    pub async fn ids_after(&self, sql: &'static str, after: &str, limit: i64) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).bind(after).bind(limit).fetch_all(pool).await?,
            Self::Postgres(pool) => sqlx::query_scalar(sql).bind(after).bind(limit).fetch_all(pool).await?,
        })
    }

    /// Runs a bounded `DELETE` (its `$1` is `cutoff`) until it removes nothing, and returns how
    /// many rows it removed. For retention: each statement is a short transaction of its own,
    /// which on SQLite waits its turn behind the writer.
    pub async fn delete_in_batches(&self, sql: &'static str, cutoff: i64) -> anyhow::Result<u64> {
        let mut removed = 0;
        loop {
            let n = match self {
                Self::Sqlite(pool) => sqlx::query(sql).bind(cutoff).execute(pool).await?.rows_affected(),
                Self::Postgres(pool) => sqlx::query(sql).bind(cutoff).execute(pool).await?.rows_affected(),
            };
            removed += n;
            if n == 0 {
                return Ok(removed);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("unsupported database url {}: use sqlite:// or postgres://", redact_url(url))
        }
    }
}

/// How much of a SQLite file each connection reads through a memory map: all of it. A
/// reader's page cache is emptied whenever another connection has written (WAL), so under
/// writes nearly every page a reader needs is a cache miss; through the map a miss is a
/// pointer into the kernel's page cache instead of a read and a copy. That is what keeps reads
/// of a store of millions of complaints (B-trees one or two levels deeper) near the cost of
/// an empty one's. The bundled SQLite maps at most 2 GiB unless built with a higher
/// `SQLITE_MAX_MMAP_SIZE` (`.cargo/config.toml`): a store of a million complaints is 4–5 GB,
/// and its newest pages, the ones in use, lie past the first 2 GiB.
pub(crate) const MMAP_BYTES: u64 = 1 << 40;

fn sqlite_options(url: &str, cache_kib: u64) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid sqlite url {url}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // A negative size is in KiB.
        .pragma("cache_size", format!("-{cache_kib}"))
        .pragma("mmap_size", MMAP_BYTES.to_string())
        .disable_statement_logging())
}

/// A read pool and the single group-commit writer of one SQLite file.
#[derive(Clone)]
pub struct Sqlite {
    pub pool: SqlitePool,
    pub writer: SqliteWriter,
}

/// Opens a SQLite file: a read pool, and the writer that `supervisor` runs.
pub async fn connect_sqlite(config: &DatabaseConfig, supervisor: &Supervisor) -> anyhow::Result<Sqlite> {
    let (writer_cache, reader_cache) = config.sqlite_cache_kib();
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .connect_with(sqlite_options(&config.url, reader_cache)?)
        .await
        .with_context(|| format!("cannot open {}", config.url))?;
    let conn = sqlite_options(&config.url, writer_cache)?
        .connect()
        .await
        .with_context(|| format!("cannot open {}", config.url))?;
    Ok(Sqlite { pool, writer: SqliteWriter::spawn(conn, supervisor) })
}

/// How long a PostgreSQL connection may sit idle in the pool and still be handed out untested.
const IDLE_BEFORE_TEST: Duration = Duration::from_secs(1);

pub async fn connect_postgres(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&config.url)
        .with_context(|| format!("invalid postgres url {}", redact_url(&config.url)))?
        .disable_statement_logging();
    PgPoolOptions::new()
        .max_connections(config.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        // The pool tests a connection when it is released; testing it again when it is taken a
        // moment later is one more round trip per call for nothing. One that sat idle longer
        // (the server may have restarted meanwhile) is tested before it is handed out.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_TEST {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to {}", redact_url(&config.url)))
}

/// Error of a write whose batch could not be committed.
#[derive(Debug, thiserror::Error)]
#[error("write not committed: {message}")]
pub struct CommitFailed {
    pub message: String,
    /// The batch failed because the disk holding the database is full (`SQLITE_FULL`).
    pub storage_full: bool,
    /// The write never ran: its batch could not begin (the file is locked by another process,
    /// unreadable for the moment) or the writer has stopped (the service is shutting down).
    /// Nothing was written, and the same call may succeed when retried: UNAVAILABLE.
    pub unavailable: bool,
}

impl CommitFailed {
    /// A write that was never run.
    fn not_run(message: impl Into<String>) -> Self {
        Self { message: message.into(), storage_full: false, unavailable: true }
    }

    fn of(failure: &BatchFailure) -> Self {
        Self { message: failure.message.clone(), storage_full: failure.storage_full, unavailable: false }
    }
}

/// Why a batch was not committed, shared by every write in it.
struct BatchFailure {
    message: String,
    storage_full: bool,
}

impl From<sqlx::Error> for BatchFailure {
    fn from(e: sqlx::Error) -> Self {
        Self { message: e.to_string(), storage_full: crate::error::sqlx_storage_full(&e) }
    }
}

/// Hands a write its outcome once its batch has committed (`None`) or failed (`Some(error)`).
type Complete = Box<dyn FnOnce(Option<&BatchFailure>) + Send>;

struct Staged {
    rollback: bool,
    complete: Complete,
}

type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Staged> + Send>;

/// Most writes committed together in one transaction.
const MAX_BATCH: usize = 512;
/// Batches in a row that could not even begin before the writer gives up (about 5 s).
const MAX_FAILED_BEGINS: u32 = 100;

/// Serialises every write to one SQLite file and commits them in batches (group commit).
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    fn spawn(conn: SqliteConnection, supervisor: &Supervisor) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        let stop = supervisor.stopping_last();
        supervisor.spawn_last("sqlite-writer", async move {
            run_writer(conn, rx, stop).await;
            Ok(())
        });
        Self { jobs }
    }

    /// Runs `write` inside the next batch and returns its result once the batch is durable.
    /// An `Err` from `write` rolls back only this write's changes.
    pub async fn write<T, E, F>(&self, write: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<CommitFailed> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = write(conn).await;
                Staged {
                    rollback: result.is_err(),
                    complete: Box::new(move |commit_error| {
                        let outcome = match commit_error {
                            Some(e) if result.is_ok() => Err(E::from(CommitFailed::of(e))),
                            _ => result,
                        };
                        let _ = tx.send(outcome);
                    }),
                }
            })
        });
        self.jobs.send(job).await.map_err(|_| E::from(CommitFailed::not_run("the sqlite writer has stopped")))?;
        // The job was dropped without running: its batch could not begin, or the writer ended.
        rx.await.map_err(|_| E::from(CommitFailed::not_run("the sqlite write batch could not begin")))?
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut *conn).await.map(|_| ())
}

/// Commits queued writes in batches until every handle is gone or `stop` fires; on `stop` it
/// refuses new writes and commits those already queued.
async fn run_writer(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closed = false;
    let mut failed_begins = 0;
    loop {
        let next = tokio::select! {
            biased;
            job = rx.recv() => job,
            () = stop.cancelled(), if !closed => {
                rx.close();
                closed = true;
                continue;
            }
        };
        let Some(first) = next else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, jobs = batch.len(), "cannot begin sqlite write batch");
            // Dropping the jobs tells each waiter that its write did not happen.
            batch.clear();
            // A transaction left open by a failed rollback refuses every BEGIN: end it.
            let _ = exec(&mut conn, "ROLLBACK").await;
            failed_begins += 1;
            if failed_begins >= MAX_FAILED_BEGINS {
                // Ending tells the supervisor, which takes the service out of rotation and
                // lets it be restarted, instead of refusing every write while serving.
                tracing::error!(attempts = failed_begins, "the sqlite writer cannot write; stopping");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        failed_begins = 0;
        let mut staged = Vec::with_capacity(batch.len());
        let mut broken: Option<BatchFailure> = None;
        // A lone write needs no savepoint: its failure rolls back the whole transaction, and
        // SQLite skips the sub-journal it would otherwise keep for the savepoint.
        let alone = batch.len() == 1;
        for job in batch.drain(..) {
            if broken.is_some() {
                break;
            }
            if !alone && let Err(e) = exec(&mut conn, "SAVEPOINT w").await {
                broken = Some(e.into());
                break;
            }
            let s = job(&mut conn).await;
            let end = match (alone, s.rollback) {
                (true, _) => Ok(()),
                (false, true) => match exec(&mut conn, "ROLLBACK TO w").await {
                    Ok(()) => exec(&mut conn, "RELEASE w").await,
                    Err(e) => Err(e),
                },
                (false, false) => exec(&mut conn, "RELEASE w").await,
            };
            if let Err(e) = end {
                broken = Some(e.into());
            }
            staged.push(s);
        }
        if alone && staged.first().is_some_and(|s| s.rollback) {
            if let Err(e) = exec(&mut conn, "ROLLBACK").await {
                tracing::warn!(error = %e, "rollback of a failed write");
            }
            for s in staged.drain(..) {
                (s.complete)(None);
            }
            continue;
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None => exec(&mut conn, "COMMIT").await.map_err(BatchFailure::from),
        };
        if let Err(e) = &outcome {
            if e.storage_full {
                tracing::warn!(error = %e.message, jobs = staged.len(), "sqlite write batch failed: storage full");
            } else {
                tracing::error!(error = %e.message, jobs = staged.len(), "sqlite write batch failed");
            }
            if let Err(e) = exec(&mut conn, "ROLLBACK").await {
                tracing::warn!(error = %e, "rollback after failed batch");
            }
        }
        let error = outcome.err();
        for s in staged {
            (s.complete)(error.as_ref());
        }
        batch.clear();
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing sqlite writer");
    }
}

/// Runs the migrations of one backend.
pub async fn migrate_sqlite(pool: &SqlitePool, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await.context("sqlite migrations failed")
}

pub async fn migrate_postgres(pool: &PgPool, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await.context("postgres migrations failed")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(
            redact_url("postgres://h/db?user=app&password=s3cret&sslmode=require"),
            "postgres://h/db?user=app&password=***&sslmode=require"
        );
    }

    #[tokio::test]
    async fn the_built_in_sqlite_keeps_a_statements_plan_whatever_is_bound() {
        // Built with LIBSQLITE3_FLAGS from .cargo/config.toml. Without the query planner
        // stability guarantee SQLite prepares a statement again every time a value is bound to
        // its LIMIT: every list and every feed read.
        let mut conn = SqliteConnectOptions::from_str("sqlite::memory:").unwrap().connect().await.unwrap();
        let found: Option<String> = sqlx::query_scalar(
            "SELECT compile_options FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG'",
        )
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        assert_eq!(found.as_deref(), Some("ENABLE_QPSG"), "SQLite built without SQLITE_ENABLE_QPSG");
    }

    #[tokio::test]
    async fn every_connection_reads_all_of_its_file_through_a_memory_map() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let config = DatabaseConfig { url, max_connections: 2, cache_mib: 16 };
        let db = connect_sqlite(&config, &Supervisor::detached()).await.unwrap();
        let reader: i64 = sqlx::query_scalar("PRAGMA mmap_size").fetch_one(&db.pool).await.unwrap();
        let writer: i64 = db
            .writer
            .write(|conn| {
                Box::pin(async move {
                    Ok::<_, anyhow::Error>(sqlx::query_scalar("PRAGMA mmap_size").fetch_one(&mut *conn).await?)
                })
            })
            .await
            .unwrap();
        // SQLite lowers a larger size to its built-in maximum (2 GiB unless raised when it
        // was built, see .cargo/config.toml) without an error.
        let whole = i64::try_from(MMAP_BYTES).unwrap();
        assert_eq!((reader, writer), (whole, whole), "SQLite built with a lower SQLITE_MAX_MMAP_SIZE");
    }

    #[tokio::test]
    async fn a_stores_page_cache_stays_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let config = DatabaseConfig { url, max_connections: 4, cache_mib: 16 };
        let db = connect_sqlite(&config, &Supervisor::detached()).await.unwrap();
        let reader: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&db.pool).await.unwrap();
        let writer: i64 = db
            .writer
            .write(|conn| {
                Box::pin(async move {
                    Ok::<_, anyhow::Error>(sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await?)
                })
            })
            .await
            .unwrap();
        // Four readers with 2 MiB each (a quarter of 16 MiB would give them less), the writer
        // the rest (in KiB).
        assert_eq!((writer, reader), (-8192, -2048));
        let default = DatabaseConfig { max_connections: 8, ..DatabaseConfig::default() };
        assert_eq!(default.sqlite_cache_kib(), (48 * 1024, 2048));
        let large = DatabaseConfig { max_connections: 8, cache_mib: 1024, ..DatabaseConfig::default() };
        assert_eq!(large.sqlite_cache_kib(), (768 * 1024, 32 * 1024));
        let total = -writer - reader * i64::from(config.max_connections);
        assert!(total <= 16 * 1024, "{total} KiB of page cache allowed");

        // However small the budget, no connection is left with less than SQLite's default.
        let tiny = DatabaseConfig { cache_mib: 0, ..config };
        assert_eq!(tiny.sqlite_cache_kib(), (MIN_CONNECTION_CACHE_KIB, MIN_CONNECTION_CACHE_KIB));
    }

    #[tokio::test]
    async fn failed_writes_roll_back_alone_and_batches_commit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let db =
            connect_sqlite(&DatabaseConfig { url, max_connections: 2, ..Default::default() }, &Supervisor::detached())
                .await
                .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY)").execute(&db.pool).await.unwrap();
        let mut handles = Vec::new();
        for v in 0..200_i64 {
            let writer = db.writer.clone();
            handles.push(tokio::spawn(async move {
                writer
                    .write(move |conn| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t (v) VALUES (?)").bind(v).execute(&mut *conn).await?;
                            if v % 10 == 0 {
                                // A failing statement after a successful one: both must vanish.
                                sqlx::query("INSERT INTO t (v) VALUES (?)").bind(v).execute(&mut *conn).await?;
                            }
                            Ok::<_, anyhow::Error>(v)
                        })
                    })
                    .await
            }));
        }
        let mut failed = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&db.pool).await.unwrap();
        assert_eq!(n, 180);
        let tens: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE v % 10 = 0").fetch_one(&db.pool).await.unwrap();
        assert_eq!(tens, 0);
    }

    /// A write whose batch cannot begin (another process holds the file's write lock past the
    /// busy timeout) or that reaches a stopped writer was never run: nothing is written, and
    /// the caller is told to retry (UNAVAILABLE, `DATABASE_UNAVAILABLE`), not INTERNAL. The
    /// writer goes on by itself once the lock is released.
    #[tokio::test]
    async fn a_write_that_never_ran_is_unavailable_not_internal() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let supervisor = Supervisor::detached();
        let db =
            connect_sqlite(&DatabaseConfig { url: url.clone(), max_connections: 2, ..Default::default() }, &supervisor)
                .await
                .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY)").execute(&db.pool).await.unwrap();
        let insert = |writer: &SqliteWriter, v: i64| {
            let writer = writer.clone();
            async move {
                writer
                    .write(move |conn| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t (v) VALUES (?)").bind(v).execute(&mut *conn).await?;
                            Ok::<_, anyhow::Error>(())
                        })
                    })
                    .await
            }
        };
        let status_of = |e: anyhow::Error| -> tonic::Status { crate::ServiceError::Internal(e).into() };

        let mut other = sqlite_options(&url, 1024).unwrap().connect().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
        let status = status_of(insert(&db.writer, 1).await.unwrap_err());
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(
            tonic_types::StatusExt::get_error_details(&status).error_info().unwrap().reason,
            crate::error::DATABASE_UNAVAILABLE
        );
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        insert(&db.writer, 2).await.unwrap();
        let stored: Vec<i64> = sqlx::query_scalar("SELECT v FROM t").fetch_all(&db.pool).await.unwrap();
        assert_eq!(stored, [2], "the write that never ran left nothing; the next one went through");

        supervisor.stop().await;
        let status = status_of(insert(&db.writer, 3).await.unwrap_err());
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
}
