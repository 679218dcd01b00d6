//! Intake's store: one trait, a SQLite implementation (group commit through the platform's
//! single writer) and a PostgreSQL implementation, held to the same conformance suite. Every
//! operation but submission is written once, in `ops`, over the single queries of `tx`.

mod batch;
mod ops;
mod postgres;
mod sqlite;
mod tx;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::{Backend, CommitFailed};
use redress_platform::events::Feed;
use redress_platform::listing::ListSql;
use redress_platform::names::RequestId;
use redress_platform::telemetry::TraceContext;
use redress_proto::redress::intake::v1::{Complainant, Complaint, ContentConfirmation, PersonalDataSupplement};

use crate::domain::acceptance::SourceReference;
pub use crate::domain::lifecycle::ClassificationOverride;
use crate::domain::lifecycle::{self, ChangeError};
use crate::domain::pii::{self, DataKey, Keyring, PiiError, WrappedKey};
pub use crate::domain::subjects::Identifier;
pub use postgres::PostgresIntakeStore;
pub use sqlite::SqliteIntakeStore;
use tx::Reader;

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A validated complaint ready to be recorded; the store assigns its number. It holds personal
/// information in clear, so its `Debug` shows only identifiers.
#[derive(Clone)]
pub struct NewComplaint {
    pub id: String,
    pub request_id: RequestId,
    /// Keyed digest of the request as the caller sent it, to tell a retry from a reuse.
    pub request_hash: String,
    /// Date part of the complaint number (`yyyymmdd` in the institution's time zone).
    pub number_prefix: String,
    pub receive_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    /// The full record: every server-side field set except the number.
    pub complaint: Complaint,
    /// Trace of the request, carried into the ComplaintAccepted event.
    pub trace: TraceContext,
    /// Earlier complaints received from this instant on can make this one a recurrence.
    pub recurrence_since: DateTime<Utc>,
}

impl NewComplaint {
    /// Who the complaint is in the system it came from, when the caller said.
    fn source_reference(&self) -> Option<SourceReference> {
        SourceReference::of(&self.complaint)
    }
}

impl std::fmt::Debug for NewComplaint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewComplaint")
            .field("id", &self.id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Recorded now.
    Created(Complaint),
    /// The same request was recorded before; this is its result.
    Replayed(Complaint),
}

impl Submitted {
    /// The answer to a request whose id was recorded before with `stored_hash` and `stored`
    /// as its result (AIP-155): a retry of the same request gets that result back; the same
    /// id with another request is refused.
    fn replay(stored_hash: &str, request_hash: &str, stored: Complaint) -> Result<Self, StoreError> {
        if stored_hash == request_hash { Ok(Self::Replayed(stored)) } else { Err(StoreError::RequestIdReused) }
    }

    /// The answer to a request whose id is new but whose source reference identifies `owner`,
    /// a complaint recorded by a request of hash `owner_hash` (`None` once retention forgot
    /// that request). The same request under another id gets `owner` back and records
    /// nothing. Another request is refused while the first is remembered, as a reference
    /// reused by mistake most likely is; after that the reference alone decides, since it
    /// names the complaint in the caller's own system (a source row edited since its import
    /// is the complaint already recorded, not a new one).
    fn by_reference(owner_hash: Option<&str>, request_hash: &str, owner: Complaint) -> Result<Self, StoreError> {
        match owner_hash {
            Some(hash) if hash != request_hash => {
                Err(StoreError::ReferenceTaken { complaint: owner.name, org_unit: owner.org_unit })
            }
            _ => Ok(Self::Replayed(owner)),
        }
    }
}

/// The complaint a source reference identifies, with the hash of the request that recorded
/// it while retention keeps that request.
#[derive(Debug)]
struct ReferenceOwner {
    request_hash: Option<String>,
    complaint: Complaint,
}

impl ReferenceOwner {
    /// What `new`, whose request id is unknown, gets (see [`Submitted::by_reference`]).
    fn answer(&self, new: &NewComplaint) -> Result<Submitted, StoreError> {
        Submitted::by_reference(self.request_hash.as_deref(), &new.request_hash, self.complaint.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("request_id was already used for a different complaint")]
    RequestIdReused,
    /// The complaint's external reference already identifies `complaint` (owned by
    /// `org_unit`) of the same institution, recorded from another request.
    #[error("external_reference already identifies {complaint}")]
    ReferenceTaken { complaint: String, org_unit: String },
    #[error("the complainant's personal information was erased")]
    Erased,
    /// A change the domain's rules refuse.
    #[error(transparent)]
    Refused(#[from] ChangeError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The unique index of source references (see the 0006 migrations).
const SOURCE_REFERENCE_INDEX: &str = "complaints_by_source_reference";

impl StoreError {
    /// Whether a write failed because another complaint holds the source reference it gave:
    /// on PostgreSQL, one committed by a concurrent transaction after this one looked.
    fn is_reference_conflict(&self) -> bool {
        let Self::Other(e) = self else { return false };
        let database = e.downcast_ref::<sqlx::Error>().and_then(sqlx::Error::as_database_error);
        database.and_then(|d| d.constraint()) == Some(SOURCE_REFERENCE_INDEX)
    }
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

impl From<PiiError> for StoreError {
    fn from(e: PiiError) -> Self {
        Self::Other(e.into())
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

/// The statement of one page of complaints, with only the filters `q` sets (so that each
/// combination is planned on the index that serves it: `complaints_by_channel`,
/// `complaints_by_org_unit_time`, `complaints_by_receive_time`).
pub(crate) fn list_sql(backend: Backend, q: &ListQuery) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record, receive_time_us, id FROM complaints");
    sql.and_eq("channel", q.channel)
        .and_cmp("receive_time_us", ">=", q.receive_from.map(redress_platform::time::to_micros))
        .and_cmp("receive_time_us", "<", q.receive_to.map(redress_platform::time::to_micros))
        .and_after(("receive_time_us", "id"), "<", q.after.clone())
        .and_within("org_unit", q.scope.as_deref());
    sql.finish("ORDER BY receive_time_us DESC, id DESC", q.limit)
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
    /// transaction; a retried request returns the first result, and so does one under another
    /// id whose source reference identifies a complaint (see [`Submitted::by_reference`]). The
    /// complainant's personal information is stored sealed with the subject's key; the record
    /// keeps it masked.
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError>;
    /// The complaint as stored: personal information masked (or erased).
    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError> {
        Reader::of(self.feed()).await?.conn().record(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Vec<Listed>, StoreError> {
        Reader::of(self.feed()).await?.conn().list(query).await
    }
    /// The complaint with its personal information in clear, recording the access (who, why)
    /// in the same transaction. Erased personal information stays erased.
    async fn reveal(&self, id: &str, access: &PiiAccess) -> Result<Option<Complaint>, StoreError>;
    /// Every complaint of the person an identifier names, in clear, each access recorded.
    async fn export(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Vec<Complaint>, StoreError>;
    /// Replaces a complaint's complainant with `to` (a correction), re-sealed and re-indexed;
    /// returns the corrected complaint in clear.
    async fn correct(&self, id: &str, to: Complainant, access: &PiiAccess) -> Result<Option<Complaint>, StoreError>;
    /// Erases the person an identifier names: destroys their key, blanks their personal
    /// fields and index entries. The complaints remain (and count); returns how many.
    async fn erase(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Option<Erased>, StoreError>;
    /// Restricts (`restrict`) or lifts the restriction of the processing of the person an
    /// identifier names (PIPL Art.44), marking their complaints and announcing each with
    /// ComplaintProcessingRestricted (in `trace`), `request` and the access recorded in the
    /// same transaction. A retry of `request` returns the state as it is; the same id with
    /// another request is [`StoreError::RequestIdReused`]. `None` when nothing is held.
    async fn restrict(
        &self,
        identifier: &Identifier,
        restrict: bool,
        request: RequestKey,
        access: &PiiAccess,
        trace: TraceContext,
    ) -> Result<Option<Restriction>, StoreError>;
    /// Adds a supplement to a complaint's personal information (PIPL Art.46), sealed with the
    /// complainant's key, `request` and the access recorded with it; the complaint in clear.
    /// A retry of `request` returns the complaint and adds nothing. [`StoreError::Erased`]
    /// once the complainant was erased; `None` when there is no such complaint.
    async fn supplement(
        &self,
        id: &str,
        request: RequestKey,
        supplement: PersonalDataSupplement,
        access: &PiiAccess,
    ) -> Result<Option<Complaint>, StoreError>;
    /// Recomputes the access log's keyed hash chain (see [`ops::verify_access_log`]).
    async fn verify_access_log(&self) -> Result<AccessLogVerdict, StoreError>;
    /// Records the complainant's withdrawal and announces ComplaintWithdrawn; a withdrawn
    /// complaint is returned as is. `None` when there is no such complaint.
    async fn withdraw(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<Option<Complaint>, StoreError> {
        let reason = reason.to_owned();
        let rewritten = self.rewrite(id, Box::new(move |c| lifecycle::withdrawn(c, &reason, at))).await?;
        Ok(announced(self.feed(), rewritten))
    }
    /// Adds the complainant's answer to the read-back of the recorded content and announces it
    /// with ComplaintContentConfirmed (in `trace`), with `request` recorded in the same
    /// transaction; its corrections are sealed with the complainant's personal information.
    /// Returns the complaint as stored (personal information masked); a retry of `request`
    /// returns it without recording anything, the same id with another request is
    /// [`StoreError::RequestIdReused`]. Corrections for a complainant whose personal
    /// information was erased are [`StoreError::Erased`]. `None` when there is no such
    /// complaint.
    async fn confirm(
        &self,
        id: &str,
        request: RequestKey,
        confirmation: ContentConfirmation,
        trace: TraceContext,
    ) -> Result<Option<Complaint>, StoreError>;
    /// Replaces a complaint's classification (a handler's override) and announces it with
    /// ComplaintReclassified; the automatic classification is kept. `None` when there is no
    /// such complaint.
    async fn reclassify(&self, id: &str, change: ClassificationOverride) -> Result<Option<Complaint>, StoreError> {
        let rewritten = self.rewrite(id, Box::new(move |c| Ok(Some(lifecycle::reclassified(c, &change))))).await?;
        Ok(announced(self.feed(), rewritten))
    }
    /// Changes a stored complaint after acceptance: `change` gets the stored (masked) record,
    /// under a lock, and returns the new one with its event, or `None` to leave it as it is.
    /// Returns the complaint (`None` when there is no such complaint) and whether it changed,
    /// that is whether an event was committed.
    async fn rewrite(&self, id: &str, change: Rewrite) -> Result<(Option<Complaint>, bool), StoreError>;
    /// Applies `revise` to every complaint whose receipt has a provisional deadline, in pages,
    /// each complaint locked and rewritten in a transaction of its own with the event `revise`
    /// gives (D-SLA-6). A complaint `revise` leaves as it is writes nothing.
    async fn revise_deadlines(&self, revise: Revise) -> Result<Revised, StoreError> {
        let mut done = Revised::default();
        let mut after = String::new();
        loop {
            let ids = Reader::of(self.feed()).await?.conn().provisional_receipts(&after, REVISION_PAGE).await?;
            let Some(last) = ids.last().cloned() else { return Ok(done) };
            for id in ids {
                done.recomputed += 1;
                let revise = revise.clone();
                let (_, changed) = self.rewrite(&id, Box::new(move |c| Ok(revise(c)))).await?;
                if changed {
                    done.revised += 1;
                    self.feed().notify_committed();
                }
            }
            after = last;
        }
    }
    /// The organisation units of a subject's complaints.
    async fn subject_units(&self, subject_id: &str) -> Result<Vec<String>, StoreError> {
        Reader::of(self.feed()).await?.conn().subject_units(subject_id).await
    }
    /// The subject whose personal information a complaint holds.
    async fn subject_of(&self, complaint_id: &str) -> Result<Option<String>, StoreError> {
        Reader::of(self.feed()).await?.conn().subject_of(complaint_id).await
    }
    /// Who accessed a subject's personal information, newest first.
    async fn pii_accesses(&self, subject_id: &str) -> Result<Vec<PiiAccessRecord>, StoreError> {
        Reader::of(self.feed()).await?.conn().accesses(subject_id).await
    }
    /// Forgets request ids first used before `before` (retention); returns how many it forgot.
    /// A complaint with a source reference stays found by it, so a re-run import still records
    /// no row twice.
    async fn prune_requests(&self, before: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
        let cutoff = redress_platform::time::to_micros(before);
        let pool = self.feed().pool();
        Ok(pool.delete_in_batches(PRUNE_REQUESTS, cutoff).await?
            + pool.delete_in_batches(PRUNE_CHANGE_REQUESTS, cutoff).await?
            + pool.delete_in_batches(PRUNE_SUBJECT_REQUESTS, cutoff).await?)
    }
    /// The feed of this store's outbox (its pool also serves the store's reads).
    fn feed(&self) -> &Feed;
}

/// Forgets up to 5,000 request ids older than `$1` (`$n` placeholders suit both backends).
const PRUNE_REQUESTS: &str = "DELETE FROM submit_requests WHERE request_id IN \
    (SELECT request_id FROM submit_requests WHERE record_time_us < $1 LIMIT 5000)";

/// Forgets up to 5,000 request ids of changes older than `$1`.
const PRUNE_CHANGE_REQUESTS: &str = "DELETE FROM change_requests WHERE request_id IN \
    (SELECT request_id FROM change_requests WHERE record_time_us < $1 LIMIT 5000)";

/// Forgets up to 5,000 request ids of data-subject requests older than `$1`.
const PRUNE_SUBJECT_REQUESTS: &str = "DELETE FROM subject_requests WHERE request_id IN \
    (SELECT request_id FROM subject_requests WHERE record_time_us < $1 LIMIT 5000)";

/// The request id of a change to a recorded complaint, with a keyed digest of the caller and
/// the request that first used it, so a retry is told apart from the id reused for another
/// request.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub id: RequestId,
    pub hash: String,
}

/// The complaint a rewrite left; the feed is told when the rewrite committed an event.
fn announced(feed: &Feed, (complaint, changed): (Option<Complaint>, bool)) -> Option<Complaint> {
    if changed {
        feed.notify_committed();
    }
    complaint
}

/// A change to a stored complaint's record, with its event (see [`IntakeStore::rewrite`]).
pub type Rewrite = Box<dyn FnOnce(Complaint) -> Result<lifecycle::Changed, ChangeError> + Send>;

/// Whether a data subject's processing is restricted (PIPL Art.44).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub subject_id: String,
    /// Since when (µs), while restricted.
    pub since_us: Option<i64>,
    /// The subject's complaints.
    pub complaints: i64,
}

/// What verifying the access log's chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogVerdict {
    /// Entries in the chain.
    pub entries: i64,
    /// Entries outside it.
    pub unchained: i64,
    /// Where it does not verify.
    pub broken: Option<crate::domain::access_log::Broken>,
}

/// Why and by whom personal information is read or changed.
#[derive(Debug, Clone)]
pub struct PiiAccess {
    pub actor: String,
    /// "read", "export", "correct", "supplement", "erase", "merge", "restrict" or "lift".
    pub action: &'static str,
    pub reason: String,
}

/// A recorded access.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PiiAccessRecord {
    pub complaint_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub reason: String,
    pub access_time_us: i64,
}

/// The result of an erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub subject_id: String,
    pub complaints: i64,
}

/// A data subject with its data key in clear.
struct Subject {
    id: String,
    key: DataKey,
}

impl Subject {
    /// The stored form of `complaint` for this subject (see [`pii::seal`]).
    fn seal(&self, complaint: &Complaint) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        Ok(pii::seal(complaint, &self.id, &self.key)?)
    }
}

/// A stored complaint with what is needed to open its personal information.
#[derive(sqlx::FromRow)]
struct SealedRow {
    id: String,
    record: Vec<u8>,
    pii: Option<Vec<u8>>,
    subject_id: Option<String>,
    key_id: Option<String>,
    wrapped_key: Option<Vec<u8>>,
}

impl SealedRow {
    /// The subject whose personal information this complaint holds, while it can still be
    /// opened: `None` once the subject was erased (or before the record was sealed).
    fn readable_subject(&self) -> Option<(&str, WrappedKey, &[u8])> {
        match (&self.subject_id, &self.key_id, &self.wrapped_key, &self.pii) {
            (Some(subject), Some(key_id), Some(sealed), Some(pii)) => {
                Some((subject.as_str(), WrappedKey { key_id: key_id.clone(), sealed: sealed.clone() }, pii.as_slice()))
            }
            _ => None,
        }
    }

    /// The complaint in clear (or as stored, when its subject was erased).
    fn open(&self, keyring: &Keyring) -> Result<Complaint, StoreError> {
        let mut complaint = Complaint::decode(self.record.as_slice())?;
        if let Some((subject, wrapped, sealed)) = self.readable_subject() {
            pii::unseal(keyring, &mut complaint, &self.id, subject, &wrapped, sealed)?;
        }
        Ok(complaint)
    }
}

/// Whether a complaint's receipt has a deadline counted on a provisional year, so that loading
/// that year's calendar finds it without reading every complaint (D-SLA-6).
fn deadlines_provisional(complaint: &Complaint) -> bool {
    let deadlines = complaint.receipt.as_ref().and_then(|r| r.deadlines.as_ref());
    deadlines.is_some_and(crate::domain::deadlines::is_provisional)
}

pub use redress_platform::revisions::Revised;

/// How many complaints one page of a revision reads.
const REVISION_PAGE: i64 = 200;

/// A recomputation of a complaint's receipt deadlines (see [`IntakeStore::revise_deadlines`]).
pub type Revise = std::sync::Arc<dyn Fn(Complaint) -> lifecycle::Changed + Send + Sync>;

/// The classification codes a complaint is stored under (for recurrence lookups).
fn codes(complaint: &Complaint) -> (Option<String>, Option<String>) {
    let c = complaint.classification.as_ref();
    (c.map(|c| c.business_type.clone()), c.map(|c| c.cause.clone()))
}

#[cfg(test)]
mod access_log_tests;
#[cfg(test)]
mod conformance;
#[cfg(test)]
mod opening;
#[cfg(test)]
mod plans;

/// Builders shared by tests outside the conformance suite.
#[cfg(test)]
pub(crate) mod conformance_support {
    use redress_platform::error::Violations;
    use redress_platform::names::RequestId;

    use super::NewComplaint;

    /// A request id for a test.
    pub(crate) fn request_id(id: &str) -> RequestId {
        RequestId::parse_required(&mut Violations::new(), "request_id", id).expect("a valid request id")
    }

    /// A complaint by the person with `phone` (and no identity document), classified (B02,
    /// C05), received now, repeating what the person filed of that issue in 90 days.
    pub(crate) fn classified_by_phone(request_id: &str, phone: &str) -> NewComplaint {
        use redress_proto::redress::intake::v1::Classification;
        use redress_proto::redress::intake::v1::complainant::Party;
        let mut new = personal_new(request_id);
        new.recurrence_since = new.receive_time - chrono::TimeDelta::days(90);
        if let Some(Party::Person(p)) = new.complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
            (p.phone, p.id_number) = (phone.to_owned(), String::new());
        }
        new.complaint.classification =
            Some(Classification { business_type: "B02".to_owned(), cause: "C05".to_owned(), ..Default::default() });
        new
    }

    /// A new complaint by a natural person, with personal data, received now.
    pub(crate) fn personal_new(request_id: &str) -> NewComplaint {
        let id = uuid::Uuid::now_v7().to_string();
        let now = redress_platform::time::now();
        let mut complaint = crate::testing::complaint("facts");
        complaint.name = format!("complaints/{id}");
        complaint.receive_time = Some(redress_platform::time::to_timestamp(now));
        NewComplaint {
            id,
            request_id: self::request_id(request_id),
            request_hash: format!("hash-{request_id}"),
            number_prefix: "20261126".to_owned(),
            receive_time: now,
            create_time: now,
            complaint,
            trace: Default::default(),
            recurrence_since: now,
        }
    }
}
