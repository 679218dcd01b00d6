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
use redress_proto::redress::intake::v1::{
    Classification, Complainant, Complaint, ComplaintAccepted, ComplaintReclassified, ComplaintState,
    ComplaintWithdrawn, RiskSignalRaised,
};

use crate::domain::mask;
use crate::domain::pii::{self, DataKey, Keyring, WrappedKey};

pub use postgres::PostgresIntakeStore;
pub use sqlite::SqliteIntakeStore;

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A validated complaint ready to be recorded; the store assigns its number. It holds personal
/// information in clear, so its `Debug` shows only identifiers.
#[derive(Clone)]
pub struct NewComplaint {
    pub id: String,
    pub request_id: String,
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("request_id was already used for a different complaint")]
    RequestIdReused,
    #[error("the complainant's personal information was erased")]
    Erased,
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
    /// transaction; a retried request returns the first result. The complainant's personal
    /// information is stored sealed with the subject's key; the record keeps it masked.
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError>;
    /// The complaint as stored: personal information masked (or erased).
    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError>;
    async fn list(&self, query: &ListQuery) -> Result<Vec<Listed>, StoreError>;
    /// The complaint with its personal information in clear, recording the access (who, why)
    /// in the same transaction. Erased personal information stays erased.
    async fn reveal(&self, id: &str, access: &PiiAccess) -> Result<Option<Complaint>, StoreError>;
    /// Every complaint of the person an identifier names, in clear, each access recorded.
    async fn export(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Vec<Complaint>, StoreError>;
    /// Replaces a complaint's complainant (a correction), re-sealed and re-indexed; returns
    /// the corrected complaint in clear.
    async fn correct(
        &self,
        id: &str,
        complainant: Complainant,
        access: &PiiAccess,
    ) -> Result<Option<Complaint>, StoreError>;
    /// Erases the person an identifier names: destroys their key, blanks their personal
    /// fields and index entries. The complaints remain (and count); returns how many.
    async fn erase(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Option<Erased>, StoreError>;
    /// Records the complainant's withdrawal and announces ComplaintWithdrawn; a withdrawn
    /// complaint is returned as is. `None` when there is no such complaint.
    async fn withdraw(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<Option<Complaint>, StoreError> {
        let reason = reason.to_owned();
        let change: Rewrite = Box::new(move |c: Complaint| withdrawn(c, &reason, at));
        self.rewrite(id, change).await
    }
    /// Replaces a complaint's classification (a handler's override) and announces it with
    /// ComplaintReclassified; the automatic classification is kept. `None` when there is no
    /// such complaint.
    async fn reclassify(&self, id: &str, change: ClassificationOverride) -> Result<Option<Complaint>, StoreError> {
        let change: Rewrite = Box::new(move |c: Complaint| Some(reclassified(c, &change)));
        self.rewrite(id, change).await
    }
    /// Changes a stored complaint after acceptance: `change` gets the stored (masked) record,
    /// under a lock, and returns the new one with its event, or `None` to leave it as it is.
    /// `None` when there is no such complaint.
    async fn rewrite(&self, id: &str, change: Rewrite) -> Result<Option<Complaint>, StoreError>;
    /// The organisation units of a subject's complaints.
    async fn subject_units(&self, subject_id: &str) -> Result<Vec<String>, StoreError>;
    /// The subject whose personal information a complaint holds.
    async fn subject_of(&self, complaint_id: &str) -> Result<Option<String>, StoreError>;
    /// Who accessed a subject's personal information, newest first.
    async fn pii_accesses(&self, subject_id: &str) -> Result<Vec<PiiAccessRecord>, StoreError>;
    /// Forgets request ids first used before `before` (retention), except those of imports,
    /// which keep a re-run import from recording a row twice however late it comes; returns
    /// how many it forgot.
    async fn prune_requests(&self, before: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
        let cutoff = redress_platform::time::to_micros(before);
        self.feed().pool().delete_in_batches(PRUNE_REQUESTS, cutoff).await
    }
    /// The feed of this store's outbox.
    fn feed(&self) -> &Feed;
}

/// Forgets up to 5,000 request ids older than `$1` (`$n` placeholders suit both backends;
/// import request ids, `import:…`, are kept).
pub(crate) const PRUNE_REQUESTS: &str = "DELETE FROM submit_requests WHERE request_id IN \
    (SELECT request_id FROM submit_requests WHERE record_time_us < $1 AND request_id NOT LIKE 'import:%' LIMIT 5000)";

/// A handler's override of a complaint's classification: the parts it sets, who and why.
#[derive(Debug, Clone)]
pub struct ClassificationOverride {
    pub taxonomy: String,
    pub business_type: Option<String>,
    pub cause: Option<String>,
    pub rights: Option<Vec<String>>,
    pub grade: Option<i32>,
    pub classified_by: String,
    pub reason: String,
    pub time: prost_types::Timestamp,
}

impl ClassificationOverride {
    /// The classification in force after this override of `current`.
    pub fn apply(&self, current: Option<Classification>) -> Classification {
        let mut c = current.unwrap_or_default();
        if let Some(b) = &self.business_type {
            c.business_type.clone_from(b);
        }
        if let Some(cause) = &self.cause {
            c.cause.clone_from(cause);
        }
        if let Some(rights) = &self.rights {
            c.rights.clone_from(rights);
        }
        if let Some(grade) = self.grade {
            c.grade = grade;
        }
        c.taxonomy.clone_from(&self.taxonomy);
        c.source = redress_proto::redress::intake::v1::ClassificationSource::Handler as i32;
        c.classified_by.clone_from(&self.classified_by);
        c.override_reason.clone_from(&self.reason);
        c.classify_time = Some(self.time);
        c
    }
}

/// A change to a stored complaint's record, with its event (see [`IntakeStore::rewrite`]).
pub type Rewrite = Box<dyn FnOnce(Complaint) -> Option<(Complaint, NewEvent)> + Send>;

/// Writes a rewritten record with the columns derived from it (both backends).
pub(crate) const REWRITE: &str =
    "UPDATE complaints SET record = $1, state = $2, business_type = $3, cause = $4 WHERE id = $5";

/// [`REWRITE`] bound for `complaint`.
macro_rules! rewrite_query {
    ($id:expr, $complaint:expr) => {{
        let complaint: &redress_proto::redress::intake::v1::Complaint = $complaint;
        let (business_type, cause) = $crate::store::codes(complaint);
        sqlx::query($crate::store::REWRITE)
            .bind(prost::Message::encode_to_vec(complaint))
            .bind(complaint.state)
            .bind(business_type)
            .bind(cause)
            .bind($id)
    }};
}
pub(crate) use rewrite_query;

/// Why and by whom personal information is read or changed.
#[derive(Debug, Clone)]
pub struct PiiAccess {
    pub actor: String,
    /// "read", "export", "correct" or "erase".
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

/// An identifier naming a person at one institution: kind ("id", whose value is
/// "{document type}:{number}", or "phone") and value. Its `Debug` hides the value.
#[derive(Clone)]
pub struct Identifier {
    pub institution: String,
    pub kind: &'static str,
    pub value: String,
}

impl std::fmt::Debug for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identifier")
            .field("institution", &self.institution)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The result of an erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub subject_id: String,
    pub complaints: i64,
}

/// A subject's id, its data key, and whether it was created by this write.
pub(crate) struct Subject {
    pub id: String,
    pub key: DataKey,
}

/// Finds the live subject behind a blind-index digest.
pub(crate) const FIND_SUBJECT: &str = "SELECT s.id, s.key_id, s.wrapped_key FROM subject_index i \
    JOIN subjects s ON s.id = i.subject_id WHERE i.kind = $1 AND i.digest = $2 AND s.wrapped_key IS NOT NULL";
pub(crate) const INSERT_SUBJECT: &str =
    "INSERT INTO subjects (id, key_id, wrapped_key, create_time_us) VALUES ($1, $2, $3, $4)";
pub(crate) const INSERT_INDEX: &str =
    "INSERT INTO subject_index (kind, digest, subject_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
pub(crate) const INSERT_ACCESS: &str = "INSERT INTO pii_access \
    (complaint_id, subject_id, actor, action, reason, access_time_us) VALUES ($1, $2, $3, $4, $5, $6)";
/// [`INSERT_ACCESS`] with a complaint id, subject id and [`PiiAccess`] bound, for either backend.
macro_rules! insert_access {
    ($complaint_id:expr, $subject_id:expr, $access:expr) => {{
        let access: &$crate::store::PiiAccess = $access;
        sqlx::query($crate::store::INSERT_ACCESS)
            .bind($complaint_id)
            .bind($subject_id)
            .bind(access.actor.clone())
            .bind(access.action)
            .bind(access.reason.clone())
            .bind(redress_platform::time::to_micros(redress_platform::time::now()))
    }};
}
pub(crate) use insert_access;

pub(crate) const LOAD_SEALED: &str = "SELECT c.id, c.record, c.pii, c.subject_id, s.key_id, s.wrapped_key \
    FROM complaints c LEFT JOIN subjects s ON s.id = c.subject_id WHERE c.id = $1";
pub(crate) const LOAD_SEALED_OF_SUBJECT: &str = "SELECT c.id, c.record, c.pii, c.subject_id, s.key_id, s.wrapped_key \
    FROM complaints c LEFT JOIN subjects s ON s.id = c.subject_id WHERE c.subject_id = $1 ORDER BY c.receive_time_us";
/// Subjects whose data key is wrapped by a master key other than `$1` (rotation), after
/// subject `$2`, in id order.
pub(crate) const STALE_WRAPPED: &str = "SELECT id, key_id, wrapped_key FROM subjects \
    WHERE wrapped_key IS NOT NULL AND key_id <> $1 AND id > $2 ORDER BY id LIMIT 500";
pub(crate) const REWRAP: &str = "UPDATE subjects SET key_id = $2, wrapped_key = $3 WHERE id = $1 AND key_id = $4";

/// New wrappings, under the active master key, of stale subjects' data keys (id, old key id,
/// new wrapping). A subject whose key cannot be unwrapped (its master key is not configured,
/// or the wrapping is damaged) is left as it is and counted in `skipped`.
pub(crate) fn rewrapped(
    keyring: &Keyring,
    stale: Vec<(String, String, Vec<u8>)>,
    skipped: &mut Vec<String>,
) -> Vec<(String, String, WrappedKey)> {
    let mut out = Vec::with_capacity(stale.len());
    for (id, key_id, sealed) in stale {
        let old = WrappedKey { key_id: key_id.clone(), sealed };
        match keyring.rewrap(&id, &old) {
            Ok(Some(new)) => out.push((id, key_id, new)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(subject = %id, key_id = %key_id, error = %e, "a subject's data key cannot be re-wrapped");
                skipped.push(key_id);
            }
        }
    }
    out
}

/// Whether a subject is known by an identity document (`$1`: subject id).
pub(crate) const SUBJECT_HAS_ID: &str = "SELECT 1 FROM subject_index WHERE subject_id = $1 AND kind = 'id' LIMIT 1";

pub(crate) const SUBJECT_UNITS: &str = "SELECT DISTINCT org_unit FROM complaints WHERE subject_id = $1";
pub(crate) const SUBJECT_OF: &str = "SELECT subject_id FROM complaints WHERE id = $1";
pub(crate) const UPDATE_SEALED: &str = "UPDATE complaints SET record = $2, pii = $3, subject_id = $4 WHERE id = $1";
pub(crate) const ERASE_SUBJECT: &str = "UPDATE subjects SET wrapped_key = NULL, erase_time_us = $2 WHERE id = $1";
pub(crate) const DELETE_INDEX: &str = "DELETE FROM subject_index WHERE subject_id = $1";
pub(crate) const ACCESSES: &str = "SELECT complaint_id, actor, action, reason, access_time_us FROM pii_access \
    WHERE subject_id = $1 ORDER BY access_time_us DESC, id DESC";

/// A stored complaint with what is needed to open its personal information.
#[derive(sqlx::FromRow)]
pub(crate) struct SealedRow {
    pub id: String,
    pub record: Vec<u8>,
    pub pii: Option<Vec<u8>>,
    pub subject_id: Option<String>,
    pub key_id: Option<String>,
    pub wrapped_key: Option<Vec<u8>>,
}

impl SealedRow {
    /// The complaint in clear (or as stored, when its subject was erased).
    pub fn open(&self, keyring: &Keyring) -> Result<Complaint, StoreError> {
        let mut complaint = Complaint::decode(self.record.as_slice())?;
        if let (Some(pii), Some(subject), Some(key_id), Some(wrapped)) =
            (&self.pii, &self.subject_id, &self.key_id, &self.wrapped_key)
        {
            let key = keyring
                .unwrap(subject, &WrappedKey { key_id: key_id.clone(), sealed: wrapped.clone() })
                .map_err(|e| anyhow::anyhow!(e))?;
            let personal = key.open(&pii::complaint_aad(&self.id, subject), pii).map_err(|e| anyhow::anyhow!(e))?;
            pii::restore(&mut complaint, pii::decode_personal(&personal).map_err(|e| anyhow::anyhow!(e))?);
        }
        Ok(complaint)
    }
}

/// The stored form of a complaint in clear: the record with personal fields masked, and the
/// personal part sealed for its subject.
pub(crate) fn seal(complaint: &Complaint, subject: &Subject) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let id = complaint.name.strip_prefix("complaints/").unwrap_or(&complaint.name);
    let personal = pii::personal_part(complaint).encode_to_vec();
    let sealed = subject.key.seal(&pii::complaint_aad(id, &subject.id), &personal).map_err(|e| anyhow::anyhow!(e))?;
    let mut masked = complaint.clone();
    mask::complaint(&mut masked);
    Ok((masked.encode_to_vec(), sealed))
}

/// The latest earlier complaint of the same subject with the same business type and cause,
/// received in [`NewComplaint::recurrence_since`, the new complaint's receive time].
pub(crate) const RECURRENCE: &str = "SELECT id FROM complaints WHERE subject_id = $1 AND business_type = $2 \
    AND cause = $3 AND receive_time_us >= $4 AND receive_time_us <= $5 ORDER BY receive_time_us DESC, id DESC LIMIT 1";

/// The classification codes a complaint is stored under (for recurrence lookups).
pub(crate) fn codes(complaint: &Complaint) -> (Option<String>, Option<String>) {
    let c = complaint.classification.as_ref();
    (c.map(|c| c.business_type.clone()), c.map(|c| c.cause.clone()))
}

/// Applies a withdrawal to a stored complaint, with its event; `None` when it already was
/// withdrawn.
pub(crate) fn withdrawn(mut complaint: Complaint, reason: &str, at: DateTime<Utc>) -> Option<(Complaint, NewEvent)> {
    if complaint.state == ComplaintState::Withdrawn as i32 {
        return None;
    }
    complaint.state = ComplaintState::Withdrawn as i32;
    complaint.withdraw_time = Some(redress_platform::time::to_timestamp(at));
    complaint.withdraw_reason = reason.to_owned();
    let event = NewEvent::new(
        complaint.name.clone(),
        complaint.org_unit.clone(),
        &ComplaintWithdrawn {
            complaint: complaint.name.clone(),
            withdraw_time: complaint.withdraw_time,
            reason: reason.to_owned(),
        },
    );
    Some((complaint, event))
}

/// Applies an override to a stored complaint; returns it with its event.
pub(crate) fn reclassified(mut complaint: Complaint, change: &ClassificationOverride) -> (Complaint, NewEvent) {
    let previous = complaint.classification.take();
    let classification = change.apply(previous.clone());
    if complaint.automatic_classification.is_none() {
        complaint.automatic_classification.clone_from(&previous);
    }
    complaint.grade = classification.grade;
    complaint.classification = Some(classification.clone());
    let event = NewEvent::new(
        complaint.name.clone(),
        complaint.org_unit.clone(),
        &ComplaintReclassified { complaint: complaint.name.clone(), classification: Some(classification), previous },
    );
    (complaint, event)
}

/// Every blind-index digest the (readable) complaints of `rows` carry.
pub(crate) fn live_digests(keyring: &Keyring, rows: &[SealedRow]) -> Result<Vec<String>, StoreError> {
    let mut live = Vec::new();
    for row in rows.iter().filter(|r| r.pii.is_some() && r.wrapped_key.is_some()) {
        for (_, digest) in digests(keyring, &row.open(keyring)?) {
            if !live.contains(&digest) {
                live.push(digest);
            }
        }
    }
    Ok(live)
}

/// The blind-index digests of a complaint's complainant. A person is a data subject of each
/// institution separately (rights are exercised against the institution), so the digests are
/// scoped to the complaint's institution.
pub(crate) fn digests(keyring: &Keyring, complaint: &Complaint) -> Vec<(&'static str, String)> {
    let institution = institution_of(&complaint.org_unit);
    pii::identifiers(complaint)
        .into_iter()
        .map(|(kind, value)| (kind, keyring.blind_index(&format!("{kind}@{institution}"), &value)))
        .collect()
}

/// The institution an organisation unit belongs to: its first two path segments
/// ("institutions/acme" of "institutions/acme/branches/sh").
pub fn institution_of(org_unit: &str) -> &str {
    match org_unit.match_indices('/').nth(1) {
        Some((i, _)) => &org_unit[..i],
        None => org_unit,
    }
}

impl Identifier {
    /// The blind-index digest this identifier is found under.
    pub(crate) fn digest(&self, keyring: &Keyring) -> String {
        keyring.blind_index(&format!("{}@{}", self.kind, self.institution), &self.value)
    }
}

/// The complaint as recorded under `number`, and its events: ComplaintAccepted, then
/// RiskSignalRaised when early-warning signals were raised.
fn numbered(new: &NewComplaint, seq: i64, recurrence_of: Option<String>) -> (Complaint, Vec<NewEvent>) {
    let number = format!("{}{seq:08}", new.number_prefix);
    let mut complaint = new.complaint.clone();
    complaint.recurrence_of = recurrence_of.unwrap_or_default();
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
        classification: complaint.classification.clone(),
        risk_signals: complaint.risk_signals.clone(),
        recurrence_of: complaint.recurrence_of.clone(),
    };
    let mut events =
        vec![NewEvent::in_trace(complaint.name.clone(), complaint.org_unit.clone(), &accepted, new.trace.clone())];
    if !complaint.risk_signals.is_empty() {
        let raised = RiskSignalRaised {
            complaint: complaint.name.clone(),
            complaint_number: complaint.complaint_number.clone(),
            org_unit: complaint.org_unit.clone(),
            signals: complaint.risk_signals.clone(),
            grade: complaint.grade,
        };
        events.push(NewEvent::in_trace(complaint.name.clone(), complaint.org_unit.clone(), &raised, new.trace.clone()));
    }
    (complaint, events)
}

#[cfg(test)]
mod conformance;

/// Builders shared by tests outside the conformance suite.
#[cfg(test)]
pub(crate) mod conformance_support {
    use super::NewComplaint;

    /// A new complaint by a natural person, with personal data, received now.
    pub(crate) fn personal_new(request_id: &str) -> NewComplaint {
        let id = uuid::Uuid::now_v7().to_string();
        let now = redress_platform::time::now();
        let mut complaint = crate::testing::complaint("facts");
        complaint.name = format!("complaints/{id}");
        complaint.receive_time = Some(redress_platform::time::to_timestamp(now));
        NewComplaint {
            id,
            request_id: request_id.to_owned(),
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
