//! List queries with only the filters a request sets.
//!
//! A list query written once for every combination of filters (`($1 IS NULL OR state = $1)`)
//! is planned once as a generic plan, which cannot know which filters are set and so scans
//! the whole table. [`ListSql`] writes only the predicates that are set, each value a bound
//! parameter (never part of the text), so each combination of filters is its own statement
//! with a plan on the index that serves it. The text suits both backends (`$n` placeholders);
//! where they differ (the byte order a unit's subtree is a range in) it is written per
//! [`Backend`].

use sqlx::Database;
use sqlx::query::QueryAs;

use crate::db::Backend;

/// A value bound to a [`ListSql`] placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Text(String),
    Bool(bool),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// A `SELECT … FROM …` with the predicates of the filters that are set, then its ordering and
/// limit; the values are bound in placeholder order by [`ListSql::query_as`].
#[derive(Debug, Clone)]
pub struct ListSql {
    backend: Backend,
    sql: String,
    values: Vec<Value>,
    predicates: usize,
}

impl ListSql {
    /// Starts from `select` (`SELECT … FROM table`, no `WHERE`).
    pub fn new(backend: Backend, select: &str) -> Self {
        Self { backend, sql: select.to_owned(), values: Vec::new(), predicates: 0 }
    }

    /// The placeholder of a newly bound `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// Adds `predicate` (SQL text with placeholders from [`ListSql::bind`] only, never a value).
    pub fn and(&mut self, predicate: &str) -> &mut Self {
        self.sql.push_str(if self.predicates == 0 { " WHERE " } else { " AND " });
        self.sql.push_str(predicate);
        self.predicates += 1;
        self
    }

    /// `column = value`, when `value` is set.
    pub fn and_eq(&mut self, column: &str, value: Option<impl Into<Value>>) -> &mut Self {
        if let Some(value) = value {
            let p = self.bind(value);
            self.and(&format!("{column} = {p}"));
        }
        self
    }

    /// `column op value` (`op` one of `<`, `<=`, `>`, `>=`), when `value` is set.
    pub fn and_cmp(&mut self, column: &str, op: &str, value: Option<impl Into<Value>>) -> &mut Self {
        debug_assert!(matches!(op, "<" | "<=" | ">" | ">="), "comparison {op}");
        if let Some(value) = value {
            let p = self.bind(value);
            self.and(&format!("{column} {op} {p}"));
        }
        self
    }

    /// The keyset condition `(key, id) op (cursor)` (`op` `<` for a descending order, `>` for
    /// an ascending one), when there is a cursor.
    pub fn and_after(
        &mut self,
        (key, id): (&str, &str),
        op: &str,
        cursor: Option<(impl Into<Value>, impl Into<Value>)>,
    ) -> &mut Self {
        debug_assert!(matches!(op, "<" | ">"), "keyset comparison {op}");
        if let Some((k, i)) = cursor {
            let (pk, pi) = (self.bind(k), self.bind(i));
            self.and(&format!("({key}, {id}) {op} ({pk}, {pi})"));
        }
        self
    }

    /// Rows of `column` within organisation unit `unit` (the unit itself or one below it), when
    /// a unit is given. Written as a range of the column in byte order (`unit` to `unit0`,
    /// since `0` follows `/`) so that an index on the column serves it; on PostgreSQL in the
    /// `"C"` collation, which such an index must use too.
    pub fn and_within(&mut self, column: &str, unit: Option<&str>) -> &mut Self {
        let Some(unit) = unit else { return self };
        let c = match self.backend {
            Backend::Sqlite => column.to_owned(),
            Backend::Postgres => format!("{column} COLLATE \"C\""),
        };
        let (own, below, end) = (self.bind(unit), self.bind(format!("{unit}/")), self.bind(format!("{unit}0")));
        self.and(&format!("{c} >= {own} AND {c} < {end} AND ({c} = {own} OR {c} >= {below})"))
    }

    /// Ends the statement with `tail` (`ORDER BY …`) and `LIMIT limit`.
    pub fn finish(mut self, tail: &str, limit: i64) -> Self {
        let p = self.bind(limit);
        self.sql.push(' ');
        self.sql.push_str(tail);
        self.sql.push_str(" LIMIT ");
        self.sql.push_str(&p);
        self
    }

    /// The statement's text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The values bound, in placeholder order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The statement with its values bound, on either backend.
    pub fn query_as<'q, DB, O>(&self) -> QueryAs<'q, DB, O, <DB as Database>::Arguments>
    where
        DB: Database,
        O: for<'r> sqlx::FromRow<'r, DB::Row>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        // The text holds placeholders and constant SQL only; every value is bound.
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(self.sql.clone()));
        for value in &self.values {
            query = match value.clone() {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_set_are_written_and_every_value_is_bound() {
        let mut q = ListSql::new(Backend::Sqlite, "SELECT id FROM cases");
        q.and_eq("state", Some(3)).and_eq("complaint", None::<String>).and_after(
            ("open_time_us", "id"),
            "<",
            Some((5_i64, "c'1")),
        );
        let q = q.finish("ORDER BY open_time_us DESC, id DESC", 10);
        assert_eq!(
            q.sql(),
            "SELECT id FROM cases WHERE state = $1 AND (open_time_us, id) < ($2, $3) \
             ORDER BY open_time_us DESC, id DESC LIMIT $4"
        );
        assert_eq!(q.values(), [Value::Int(3), Value::Int(5), Value::Text("c'1".into()), Value::Int(10)]);

        let bare = ListSql::new(Backend::Sqlite, "SELECT id FROM cases").finish("ORDER BY id", 1);
        assert_eq!(bare.sql(), "SELECT id FROM cases ORDER BY id LIMIT $1");
    }

    #[test]
    fn a_unit_scope_is_a_byte_range_in_c_collation_on_postgres() {
        let mut q = ListSql::new(Backend::Postgres, "SELECT id FROM cases");
        q.and_within("org_unit", Some("institutions/a"));
        assert_eq!(
            q.sql(),
            "SELECT id FROM cases WHERE org_unit COLLATE \"C\" >= $1 AND org_unit COLLATE \"C\" < $3 \
             AND (org_unit COLLATE \"C\" = $1 OR org_unit COLLATE \"C\" >= $2)"
        );
        assert_eq!(
            q.values(),
            [
                Value::Text("institutions/a".into()),
                Value::Text("institutions/a/".into()),
                Value::Text("institutions/a0".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_unit_scope_takes_the_unit_and_those_below_it_only() -> anyhow::Result<()> {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
        sqlx::query("CREATE TABLE t (org_unit TEXT NOT NULL)").execute(&pool).await?;
        let units = [
            "institutions/a",
            "institutions/a/branch",
            "institutions/a/branch/desk",
            "institutions/a-b",
            "institutions/a.b",
            "institutions/ab",
            "institutions/a0",
            "institutions",
            "institutions/",
            "",
        ];
        for unit in units {
            sqlx::query("INSERT INTO t (org_unit) VALUES ($1)").bind(unit).execute(&pool).await?;
        }
        let mut q = ListSql::new(Backend::Sqlite, "SELECT org_unit FROM t");
        q.and_within("org_unit", Some("institutions/a"));
        let q = q.finish("ORDER BY org_unit", 100);
        let found: Vec<(String,)> = q.query_as().fetch_all(&pool).await?;
        let found: Vec<String> = found.into_iter().map(|(u,)| u).collect();
        assert_eq!(found, ["institutions/a", "institutions/a/branch", "institutions/a/branch/desk"]);
        Ok(())
    }

    /// Every combination of `ListDeadLetters` filters, and the feed read, over tables of a
    /// realistic size: planned generically (as a cached prepared statement is), none reads its
    /// table whole.
    #[tokio::test]
    async fn the_feed_read_and_dead_letter_lists_use_indexes_on_postgres() -> anyhow::Result<()> {
        use crate::testing::plans::{plan_nodes, postgres_generic_plan, postgres_list_plan, seq_scans};
        let test = "listing::the_feed_read_and_dead_letter_lists_use_indexes_on_postgres";
        let Some(url) = crate::testing::fresh_postgres_database(test).await? else { return Ok(()) };
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await?;
        crate::events::migrate_postgres(&pool).await?;
        sqlx::raw_sql(
            "INSERT INTO outbox (position, event_id, event_type, aggregate, org_unit, occur_time_us, payload) \
             SELECT g, 'event-' || g, 'redress.intake.v1.ComplaintAccepted', 'complaints/' || (g % 40000), \
                    'institutions/i' || (g % 50) || '/branch' || (g % 7), 1700000000000000 + g * 1000, '\\x0a00'::bytea \
             FROM generate_series(1, 200000) g; \
             INSERT INTO dead_letters (consumer, position, event_id, event_type, error, payload, record_time_us, \
                                       org_unit, aggregate, replay_time_us) \
             SELECT CASE WHEN g % 3 = 0 THEN 'intake' WHEN g % 3 = 1 THEN 'escalation' ELSE 'cases' END, g, \
                    'event-' || g, 'redress.intake.v1.ComplaintAccepted', 'does not decode', '\\x00'::bytea, g, \
                    'institutions/i' || (g % 50), 'complaints/' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE g END \
             FROM generate_series(1, 50000) g; \
             ANALYZE outbox; ANALYZE dead_letters",
        )
        .execute(&pool)
        .await?;

        let read =
            postgres_generic_plan(&pool, crate::events::FEED_READ, &[Value::Int(150_000), Value::Int(500)]).await?;
        eprintln!("feed read: {:?}", plan_nodes(&read));
        assert!(!seq_scans(&read, "outbox"), "{read}");

        for consumer in [None, Some("intake")] {
            for show_replayed in [false, true] {
                for after in [None, Some(("escalation", 20_000))] {
                    for scope in [None, Some("institutions/i7")] {
                        let sql =
                            crate::dead_letters::list_sql(Backend::Postgres, consumer, show_replayed, after, scope, 51);
                        let plan = postgres_list_plan(&pool, &sql).await?;
                        eprintln!("{}: {:?}", sql.sql(), plan_nodes(&plan));
                        assert!(!seq_scans(&plan, "dead_letters"), "{}\n{plan}", sql.sql());
                    }
                }
            }
        }
        Ok(())
    }
}
