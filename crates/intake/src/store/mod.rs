//! Intake's store: one trait, a SQLite implementation (group commit through the platform's
//! single writer) and a PostgreSQL implementation, held to the same conformance suite.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::CommitFailed;
use redress_platform::events::{Feed, NewEvent};
use redress_platform::telemetry::TraceContext;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::{Complaint, ComplaintAccepted};

pub use postgres::PostgresIntakeStore;
pub use sqlite::SqliteIntakeStore;

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A validated complaint ready to be recorded; the store assigns its number.
#[derive(Debug, Clone)]
pub struct NewComplaint {
    pub id: String,
    pub request_id: String,
    /// SHA-256 of the request as the caller sent it, to tell a retry from a reuse.
    pub request_hash: String,
    /// Date part of the complaint number (`yyyymmdd` in the institution's time zone).
    pub number_prefix: String,
    pub receive_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    /// The full record: every server-side field set except the number.
    pub complaint: Complaint,
    /// Trace of the request, carried into the ComplaintAccepted event.
    pub trace: TraceContext,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Recorded now.
    Created(Complaint),
    /// The same request was recorded before; this is its result.
    Replayed(Complaint),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("request_id was already used for a different complaint")]
    RequestIdReused,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Other(e.into())
    }
}

impl From<CommitFailed> for StoreError {
    fn from(e: CommitFailed) -> Self {
        Self::Other(e.into())
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Other(anyhow::Error::new(e).context("stored complaint record is corrupt"))
    }
}

/// Filters and position of one page of complaints, newest received first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub channel: Option<i32>,
    pub receive_from: Option<DateTime<Utc>>,
    pub receive_to: Option<DateTime<Utc>>,
    /// Keyset cursor: (receive time µs, id) of the last complaint of the previous page.
    pub after: Option<(i64, String)>,
    /// Only complaints owned by this organisation unit or one below it; `None` for all.
    pub scope: Option<String>,
    pub limit: i64,
}

impl ListQuery {
    fn receive_from_us(&self) -> Option<i64> {
        self.receive_from.map(to_micros)
    }

    fn receive_to_us(&self) -> Option<i64> {
        self.receive_to.map(to_micros)
    }
}

/// One page of complaints. `$n` placeholders and these functions suit SQLite and PostgreSQL
/// alike, so both stores run the same query (bound by [`list_query!`]).
const LIST: &str = "SELECT record, receive_time_us, id FROM complaints \
     WHERE ($1 IS NULL OR channel = $1) \
       AND ($2 IS NULL OR receive_time_us >= $2) \
       AND ($3 IS NULL OR receive_time_us < $3) \
       AND ($4 IS NULL OR (receive_time_us, id) < ($4, $5)) \
       AND ($7 IS NULL OR org_unit = $7 OR substr(org_unit, 1, length($7) + 1) = $7 || '/') \
     ORDER BY receive_time_us DESC, id DESC LIMIT $6";

/// [`LIST`] with the parameters of a [`ListQuery`] bound.
macro_rules! list_query {
    ($q:expr) => {{
        let q: &$crate::store::ListQuery = $q;
        let (after_us, after_id) = q.after.clone().unzip();
        sqlx::query_as::<_, $crate::store::ListedRow>($crate::store::LIST)
            .bind(q.channel)
            .bind(q.receive_from_us())
            .bind(q.receive_to_us())
            .bind(after_us)
            .bind(after_id)
            .bind(q.limit)
            .bind(q.scope.clone())
    }};
}
use list_query;

#[derive(sqlx::FromRow)]
struct ListedRow {
    record: Vec<u8>,
    receive_time_us: i64,
    id: String,
}

impl TryFrom<ListedRow> for Listed {
    type Error = StoreError;

    fn try_from(row: ListedRow) -> Result<Self, StoreError> {
        Ok(Listed { complaint: Complaint::decode(row.record.as_slice())?, cursor: (row.receive_time_us, row.id) })
    }
}

/// One complaint of a listing with its keyset cursor.
#[derive(Debug, Clone)]
pub struct Listed {
    pub complaint: Complaint,
    pub cursor: (i64, String),
}

#[async_trait]
pub trait IntakeStore: Send + Sync + 'static {
    /// Records `new` with its number, its request id and its ComplaintAccepted event in one
    /// transaction; a retried request returns the first result.
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError>;
    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError>;
    async fn list(&self, query: &ListQuery) -> Result<Vec<Listed>, StoreError>;
    /// The feed of this store's outbox.
    fn feed(&self) -> &Feed;
}

/// The complaint as recorded under `number`, and its ComplaintAccepted event.
fn numbered(new: &NewComplaint, seq: i64) -> (Complaint, Vec<u8>, NewEvent) {
    let number = format!("{}{seq:08}", new.number_prefix);
    let mut complaint = new.complaint.clone();
    complaint.complaint_number.clone_from(&number);
    if let Some(receipt) = complaint.receipt.as_mut() {
        receipt.complaint_number.clone_from(&number);
    }
    let accepted = ComplaintAccepted {
        complaint: complaint.name.clone(),
        complaint_number: number,
        channel: complaint.channel,
        receive_time: complaint.receive_time,
        org_unit: complaint.org_unit.clone(),
        grade: complaint.grade,
        deadlines: complaint.receipt.as_ref().and_then(|r| r.deadlines.clone()),
        institution: complaint.complained_party.as_ref().map(|p| p.institution.clone()).unwrap_or_default(),
        complained_staff_id: complaint.complained_party.as_ref().map(|p| p.staff_id.clone()).unwrap_or_default(),
    };
    let event = NewEvent::in_trace(complaint.name.clone(), &accepted, new.trace.clone());
    let record = complaint.encode_to_vec();
    (complaint, record, event)
}

#[cfg(test)]
mod conformance;
