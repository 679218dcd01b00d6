//! The single queries the knowledge base's operations are made of, inside one transaction of
//! either backend. Every operation is written once over [`KbTx`] in `ops`; the two backends
//! differ only in the SQL they lock with.

use async_trait::async_trait;
use redress_platform::consumer::ConsumerTx;
use redress_platform::events::{NewEvent, Outbox};
use redress_platform::time::{now, to_micros};
use sqlx::{PgConnection, SqliteConnection};

use redress_platform::time::from_timestamp;
use redress_proto::redress::knowledge::v1::CaseCandidate;

use super::{
    ArticleRow, INSERT_ARTICLE, INSERT_CANDIDATE, LOAD_REQUEST, LOAD_VERSIONS, RequestKey, SAVE_CANDIDATE,
    SAVE_REQUEST, UPDATE_ARTICLE, UPSERT_VERSION, candidate_key,
};
use crate::domain::article::{ArticleRecord, Plan};
use crate::error::KbError;

/// One transaction of a knowledge store.
#[async_trait]
pub(crate) trait KbTx: Outbox + ConsumerTx {
    /// An article with every version, locked until the transaction ends (PostgreSQL; SQLite's
    /// writer holds the whole database).
    async fn load(&mut self, id: &str) -> Result<Option<ArticleRecord>, KbError>;
    /// Writes a plan: the article (checking it was not changed since it was loaded), the
    /// versions it touched, and its event.
    async fn write(&mut self, plan: &Plan) -> Result<(), KbError>;
    /// The stored first result of a request id: its fingerprint and answer.
    async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>, KbError>;
    async fn save_request(&mut self, key: &RequestKey, answer: &[u8]) -> Result<(), KbError>;
    /// Records a new candidate; `false` (and nothing written) when its case has one already.
    async fn insert_candidate(&mut self, candidate: &CaseCandidate) -> Result<bool, KbError>;
    /// A candidate, locked until the transaction ends (PostgreSQL).
    async fn load_candidate(&mut self, id: &str) -> Result<Option<CaseCandidate>, KbError>;
    async fn save_candidate(&mut self, candidate: &CaseCandidate) -> Result<(), KbError>;
}

/// Implements [`KbTx`] for one backend's connection; `$lock` is appended to the reads that
/// must lock what they read.
macro_rules! kb_tx {
    ($conn:ty, lock = $lock:literal) => {
        #[async_trait]
        impl KbTx for $conn {
            async fn load(&mut self, id: &str) -> Result<Option<ArticleRecord>, KbError> {
                let row: Option<ArticleRow> = sqlx::query_as(concat!(
                    "SELECT id, kind, org_unit, create_time_us, update_time_us, revision FROM articles WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *self)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let versions: Vec<Vec<u8>> = sqlx::query_scalar(LOAD_VERSIONS).bind(id).fetch_all(&mut *self).await?;
                Ok(Some(row.with_versions(versions)?))
            }

            async fn write(&mut self, plan: &Plan) -> Result<(), KbError> {
                let a = &plan.article;
                let written = if plan.created {
                    sqlx::query(INSERT_ARTICLE)
                        .bind(&a.id)
                        .bind(a.kind as i64)
                        .bind(&a.org_unit)
                        .bind(a.state() as i64)
                        .bind(i64::from(a.published_version()))
                        .bind(i64::from(a.latest_version()))
                        .bind(i64::from(a.open_state()))
                        .bind(to_micros(a.create_time))
                        .bind(to_micros(a.update_time))
                        .bind(a.revision)
                        .execute(&mut *self)
                        .await?
                } else {
                    sqlx::query(UPDATE_ARTICLE)
                        .bind(&a.id)
                        .bind(a.state() as i64)
                        .bind(i64::from(a.published_version()))
                        .bind(i64::from(a.latest_version()))
                        .bind(i64::from(a.open_state()))
                        .bind(to_micros(a.update_time))
                        .bind(a.revision)
                        .bind(plan.loaded_revision)
                        .execute(&mut *self)
                        .await?
                };
                if written.rows_affected() != 1 {
                    return Err(KbError::Conflict);
                }
                for number in &plan.changed_versions {
                    let Some(version) = a.version(*number) else { continue };
                    sqlx::query(UPSERT_VERSION)
                        .bind(&a.id)
                        .bind(i64::from(version.version))
                        .bind(i64::from(version.state))
                        .bind(prost::Message::encode_to_vec(version))
                        .execute(&mut *self)
                        .await?;
                }
                let event = NewEvent::new(a.name(), a.org_unit.clone(), &plan.event);
                self.append_events(std::slice::from_ref(&event)).await?;
                Ok(())
            }

            async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>, KbError> {
                Ok(sqlx::query_as(LOAD_REQUEST).bind(id).fetch_optional(&mut *self).await?)
            }

            async fn insert_candidate(&mut self, c: &CaseCandidate) -> Result<bool, KbError> {
                let time = c.create_time.as_ref().and_then(from_timestamp).map_or(0, to_micros);
                let inserted = sqlx::query(INSERT_CANDIDATE)
                    .bind(candidate_key(c))
                    .bind(&c.case)
                    .bind(&c.org_unit)
                    .bind(i64::from(c.state))
                    .bind(time)
                    .bind(prost::Message::encode_to_vec(c))
                    .execute(&mut *self)
                    .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn load_candidate(&mut self, id: &str) -> Result<Option<CaseCandidate>, KbError> {
                let record: Option<Vec<u8>> =
                    sqlx::query_scalar(concat!("SELECT record FROM case_candidates WHERE id = $1", $lock))
                        .bind(id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(record
                    .map(|r| <CaseCandidate as prost::Message>::decode(r.as_slice()))
                    .transpose()
                    .map_err(anyhow::Error::from)?)
            }

            async fn save_candidate(&mut self, c: &CaseCandidate) -> Result<(), KbError> {
                let time = c.update_time.as_ref().and_then(from_timestamp).map_or(0, to_micros);
                sqlx::query(SAVE_CANDIDATE)
                    .bind(candidate_key(c))
                    .bind(i64::from(c.state))
                    .bind(time)
                    .bind(prost::Message::encode_to_vec(c))
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn save_request(&mut self, key: &RequestKey, answer: &[u8]) -> Result<(), KbError> {
                sqlx::query(SAVE_REQUEST)
                    .bind(&key.id)
                    .bind(&key.fingerprint)
                    .bind(answer)
                    .bind(to_micros(now()))
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
        }
    };
}

kb_tx!(SqliteConnection, lock = "");
kb_tx!(PgConnection, lock = " FOR UPDATE");
