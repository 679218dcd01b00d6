//! The single queries case-workflow's operations are made of, inside one transaction of
//! either backend. Every operation (a change, a sweep, a consumer batch, a replay) is written
//! once over [`CaseTx`] in `ops`; the two backends differ only in the SQL they lock with.

use async_trait::async_trait;
use redress_platform::consumer::ConsumerTx;
use redress_platform::events::Outbox;
use sqlx::{PgConnection, SqliteConnection};

use super::{AuditTrail, Loaded, LoadedRow, Opening, Plan, RequestKey, case_id};
use crate::domain::audit::AuditRecord;
use crate::error::CaseError;

/// One transaction of a case store.
#[async_trait]
pub(crate) trait CaseTx: Outbox + ConsumerTx {
    /// A case, locked until the transaction ends (PostgreSQL; SQLite's writer holds the whole
    /// database).
    async fn load(&mut self, id: &str) -> Result<Option<Loaded>, CaseError>;
    /// Locks the cases of these complaints in id order, the order changes to two cases lock
    /// them in, so that a batch and a link never deadlock.
    async fn lock_cases_of(&mut self, complaints: &[String]) -> Result<(), CaseError>;
    async fn case_of_complaint(&mut self, complaint: &str) -> Result<Option<String>, CaseError>;
    /// Inserts an opening's case with its first audit entry and event; `false` (and nothing
    /// written) when the complaint has a case already.
    async fn insert_opening(&mut self, opening: &Opening) -> Result<bool, CaseError>;
    /// Writes a plan's rows (checking each was not changed meanwhile), audit entries and events.
    async fn write_plan(&mut self, plan: &Plan) -> Result<(), CaseError>;
    /// The stored first result of a request id: its fingerprint and response.
    async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>, CaseError>;
    async fn save_request(&mut self, key: &RequestKey, case_id: &str, response: &[u8]) -> Result<(), CaseError>;
    /// A case's audit trail as stored (after [`CaseTx::load`] has locked the case).
    async fn trail(&mut self, id: &str) -> Result<Option<AuditTrail>, CaseError>;
    /// Writes entries chained again (their links, hashes and key ids, none when only the head
    /// is sealed) and the case's new head and seal.
    async fn rechain(&mut self, id: &str, entries: &[AuditRecord], head: &str, seal: &str) -> Result<(), CaseError>;
    /// Whether the audit trails' keying was recorded.
    async fn keying_recorded(&mut self) -> Result<bool, CaseError>;
    /// Whether any audit entry is chained under a key.
    async fn any_keyed_entry(&mut self) -> Result<bool, CaseError>;
    /// Cases with audit entries chained without a key, in id order.
    async fn unkeyed_cases(&mut self) -> Result<Vec<String>, CaseError>;
    /// Cases whose head carries no seal, in id order.
    async fn unsealed_cases(&mut self) -> Result<Vec<String>, CaseError>;
    /// Records that the trails were keyed (locking out a second keying running at once).
    async fn record_keying(&mut self, key_id: &str, time_us: i64, rechained: i64) -> Result<(), CaseError>;
}

/// Implements [`CaseTx`] for one backend's connection; `$lock` is appended to the reads that
/// must lock what they read, and `$lock_cases` locks a list of complaints' cases.
macro_rules! case_tx {
    ($conn:ty, lock = $lock:literal, lock_cases = $lock_cases:path) => {
        #[async_trait]
        impl CaseTx for $conn {
            async fn load(&mut self, id: &str) -> Result<Option<Loaded>, CaseError> {
                let row: Option<LoadedRow> = sqlx::query_as(concat!(
                    "SELECT record, version, audit_length, audit_head, audit_seal FROM cases WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|r| Loaded::from_row(id, r)).transpose()?)
            }

            async fn lock_cases_of(&mut self, complaints: &[String]) -> Result<(), CaseError> {
                $lock_cases(self, complaints).await
            }

            async fn case_of_complaint(&mut self, complaint: &str) -> Result<Option<String>, CaseError> {
                Ok(sqlx::query_scalar("SELECT id FROM cases WHERE complaint = $1")
                    .bind(complaint)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn insert_opening(&mut self, o: &Opening) -> Result<bool, CaseError> {
                let inserted = sqlx::query(
                    "INSERT INTO cases (id, case_number, complaint, state, open_time_us, version, record, org_unit, \
                     audit_length, audit_head, next_check_us, provisional, audit_seal) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (complaint) DO NOTHING",
                )
                .bind(case_id(&o.case))
                .bind(&o.case.case_number)
                .bind(&o.case.complaint)
                .bind(o.case.state)
                .bind(o.open_time_us)
                .bind(&o.record)
                .bind(&o.case.org_unit)
                .bind(o.audit.last().map_or(0, |a| a.sequence))
                .bind(o.audit.last().map(|a| a.hash.clone()).unwrap_or_default())
                .bind(o.next_check_us)
                .bind(o.provisional)
                .bind(&o.audit_seal)
                .execute(&mut *self)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                for entry in &o.audit {
                    super::insert_audit!(case_id(&o.case), entry).execute(&mut *self).await?;
                }
                self.append_events(&o.events).await?;
                Ok(true)
            }

            async fn write_plan(&mut self, plan: &Plan) -> Result<(), CaseError> {
                for row in &plan.rows {
                    let saved = super::save_row!(row).execute(&mut *self).await?.rows_affected();
                    if saved != 1 {
                        return Err(anyhow::anyhow!("case {} changed while it was being written", row.id).into());
                    }
                    for entry in &row.entries {
                        super::insert_audit!(row.id.as_str(), entry).execute(&mut *self).await?;
                    }
                }
                self.append_events(&plan.events).await?;
                Ok(())
            }

            async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>, CaseError> {
                Ok(sqlx::query_as(super::LOAD_REQUEST).bind(id).fetch_optional(&mut *self).await?)
            }

            async fn save_request(
                &mut self,
                key: &RequestKey,
                case_id: &str,
                response: &[u8],
            ) -> Result<(), CaseError> {
                sqlx::query(super::SAVE_REQUEST)
                    .bind(&key.id)
                    .bind(case_id)
                    .bind(&key.fingerprint)
                    .bind(response)
                    .bind(redress_platform::time::to_micros(redress_platform::time::now()))
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn trail(&mut self, id: &str) -> Result<Option<AuditTrail>, CaseError> {
                let rows = sqlx::query_as(super::AUDIT_TRAIL).bind(id).fetch_all(&mut *self).await?;
                Ok(super::trail_from(rows)?)
            }

            async fn rechain(
                &mut self,
                id: &str,
                entries: &[AuditRecord],
                head: &str,
                seal: &str,
            ) -> Result<(), CaseError> {
                for e in entries {
                    sqlx::query(
                        "UPDATE audit_entries SET previous_hash = $3, hash = $4, key_id = $5 \
                         WHERE case_id = $1 AND sequence = $2",
                    )
                    .bind(id)
                    .bind(e.sequence)
                    .bind(&e.previous_hash)
                    .bind(&e.hash)
                    .bind(&e.key_id)
                    .execute(&mut *self)
                    .await?;
                }
                sqlx::query("UPDATE cases SET audit_head = $2, audit_seal = $3 WHERE id = $1")
                    .bind(id)
                    .bind(head)
                    .bind(seal)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn keying_recorded(&mut self) -> Result<bool, CaseError> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_keying").fetch_one(&mut *self).await?;
                Ok(n > 0)
            }

            async fn any_keyed_entry(&mut self) -> Result<bool, CaseError> {
                let keyed: Option<String> = sqlx::query_scalar("SELECT case_id FROM audit_entries WHERE key_id <> '' LIMIT 1")
                    .fetch_optional(&mut *self)
                    .await?;
                Ok(keyed.is_some())
            }

            async fn unkeyed_cases(&mut self) -> Result<Vec<String>, CaseError> {
                Ok(sqlx::query_scalar("SELECT DISTINCT case_id FROM audit_entries WHERE key_id = '' ORDER BY case_id")
                    .fetch_all(&mut *self)
                    .await?)
            }

            async fn unsealed_cases(&mut self) -> Result<Vec<String>, CaseError> {
                Ok(sqlx::query_scalar("SELECT id FROM cases WHERE audit_seal = '' ORDER BY id")
                    .fetch_all(&mut *self)
                    .await?)
            }

            async fn record_keying(&mut self, key_id: &str, time_us: i64, rechained: i64) -> Result<(), CaseError> {
                sqlx::query(
                    "INSERT INTO audit_keying (id, key_id, keyed_time_us, rechained_cases) VALUES (1, $1, $2, $3)",
                )
                .bind(key_id)
                .bind(time_us)
                .bind(rechained)
                .execute(&mut *self)
                .await?;
                Ok(())
            }
        }
    };
}

/// SQLite's single writer holds the whole database: nothing to lock.
async fn no_row_locks(_: &mut SqliteConnection, _: &[String]) -> Result<(), CaseError> {
    Ok(())
}

async fn lock_cases_postgres(conn: &mut PgConnection, complaints: &[String]) -> Result<(), CaseError> {
    sqlx::query("SELECT id FROM cases WHERE complaint = ANY($1) ORDER BY id FOR UPDATE")
        .bind(complaints)
        .fetch_all(&mut *conn)
        .await?;
    Ok(())
}

case_tx!(SqliteConnection, lock = "", lock_cases = no_row_locks);
case_tx!(PgConnection, lock = " FOR UPDATE", lock_cases = lock_cases_postgres);
