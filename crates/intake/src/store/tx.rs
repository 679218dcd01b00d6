//! The single queries intake's store operations are made of, inside one transaction of
//! either backend (or, for reads, on a pooled connection). Every operation is written once
//! over [`IntakeTx`] in `ops`; the two backends differ only in SQL text: the suffixes that
//! lock what a transaction reads, and how a list of digests is bound.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::{Backend, Pool};
use redress_platform::events::{Feed, Outbox};
use redress_platform::time::{now, to_micros};
use redress_proto::redress::intake::v1::Complaint;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, QueryBuilder, Sqlite, SqliteConnection};

use super::{
    ListQuery, Listed, PiiAccessRecord, ReferenceOwner, RequestKey, SealedRow, StoreError, codes, deadlines_provisional,
};
use crate::domain::access_log::{ChainHead, LogEntry};
use crate::domain::pii::{FREE_TEXT_FORM, WrappedKey};
use crate::domain::subjects::INDEX_FORM;

/// One transaction of an intake store.
#[async_trait]
pub(crate) trait IntakeTx: Outbox {
    /// A complaint's stored (masked) record.
    async fn record(&mut self, id: &str) -> Result<Option<Complaint>, StoreError>;
    /// A complaint's stored record, locked until the transaction ends (PostgreSQL; SQLite's
    /// writer holds the whole database).
    async fn lock_record(&mut self, id: &str) -> Result<Option<Complaint>, StoreError>;
    /// Writes a changed record with the columns derived from it.
    async fn save_record(&mut self, id: &str, complaint: &Complaint) -> Result<(), StoreError>;
    /// One page of complaints, newest received first.
    async fn list(&mut self, query: &ListQuery) -> Result<Vec<Listed>, StoreError>;
    /// The hash of the request that first used a change's request id.
    async fn change_request(&mut self, request_id: &str) -> Result<Option<String>, StoreError>;
    /// Records a change's request id for complaint `complaint_id`; `false` when another
    /// transaction holds it.
    async fn insert_change_request(&mut self, request: &RequestKey, complaint_id: &str) -> Result<bool, StoreError>;
    /// Up to `limit` complaints after `after` in id order whose receipt has a provisional
    /// deadline.
    async fn provisional_receipts(&mut self, after: &str, limit: i64) -> Result<Vec<String>, StoreError>;
    /// The name of the latest complaint of a subject with these codes received in
    /// `[since, until]`.
    async fn latest_of_issue(
        &mut self,
        subject_id: &str,
        business_type: &str,
        cause: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// A complaint with what opens its personal information.
    async fn sealed(&mut self, id: &str) -> Result<Option<SealedRow>, StoreError>;
    /// [`IntakeTx::sealed`], locking the complaint until the transaction ends.
    async fn lock_sealed(&mut self, id: &str) -> Result<Option<SealedRow>, StoreError>;
    /// Every complaint of a subject, oldest received first.
    async fn sealed_of_subject(&mut self, subject_id: &str) -> Result<Vec<SealedRow>, StoreError>;
    /// [`IntakeTx::sealed_of_subject`], locking the complaints until the transaction ends.
    async fn lock_sealed_of_subject(&mut self, subject_id: &str) -> Result<Vec<SealedRow>, StoreError>;
    /// Stores a complaint's record and sealed personal part (`None` once erased).
    async fn save_sealed(
        &mut self,
        id: &str,
        record: &[u8],
        pii: Option<&[u8]>,
        subject_id: &str,
    ) -> Result<(), StoreError>;
    /// Up to 200 complaints recorded before personal information was sealed, locked (and
    /// passed over by other replicas) until the transaction ends.
    async fn unsealed(&mut self) -> Result<Vec<(String, Complaint)>, StoreError>;
    /// Up to `limit` sealed complaints after `after` in id order whose free text was checked
    /// in a form older than [`FREE_TEXT_FORM`], locked (and passed over while another
    /// transaction holds them) until the transaction ends.
    async fn unchecked_free_text(&mut self, after: &str, limit: i64) -> Result<Vec<SealedRow>, StoreError>;
    /// Records that a complaint's free text is in the form [`seal`](crate::domain::pii::seal)
    /// writes.
    async fn set_free_text_form(&mut self, id: &str) -> Result<(), StoreError>;

    /// The complaints that hold these source references, each with the reference.
    async fn reference_owners(&mut self, references: &[&str]) -> Result<Vec<(String, ReferenceOwner)>, StoreError>;
    /// The complaint that holds a source reference.
    async fn reference_holder(&mut self, reference: &str) -> Result<Option<String>, StoreError>;
    /// Serialises the derivation of earlier complaints' source references until the
    /// transaction ends, so that replicas starting together take the complaints in the order
    /// they were recorded.
    async fn lock_references(&mut self) -> Result<(), StoreError>;
    /// Up to 500 complaints whose source reference was not derived yet, earliest recorded
    /// first.
    async fn underived_references(&mut self) -> Result<Vec<(String, Complaint)>, StoreError>;
    /// Records a complaint's source reference (`None`: it holds none) as derived.
    async fn set_source_reference(&mut self, id: &str, reference: Option<&str>) -> Result<(), StoreError>;

    /// Serialises changes to data subjects until the transaction ends: a correction, an
    /// erasure, a restriction, a supplement, a merge or a batch sealing earlier complaints runs
    /// alone, after the submissions under way (see [`IntakeTx::lock_identifiers`]) and before
    /// any later one.
    async fn lock_subjects(&mut self) -> Result<(), StoreError>;
    /// Serialises, until the transaction ends, the submissions that share one of these
    /// blind-index digests, so two complaints of one person run one after the other and the
    /// later one finds the earlier one's subject and complaint; submissions of other people
    /// go on meanwhile. Taken before the subject is looked up, and waits for any
    /// [`IntakeTx::lock_subjects`] under way.
    async fn lock_identifiers(&mut self, digests: &[(&str, String)]) -> Result<(), StoreError>;
    /// Locks a live subject until the transaction ends (PostgreSQL), so whether it is known by
    /// an identity document is read after any submission giving it one has committed.
    async fn lock_subject(&mut self, subject_id: &str) -> Result<(), StoreError>;
    /// The live subject a blind-index digest names, with its wrapped data key.
    async fn find_subject(&mut self, kind: &str, digest: &str) -> Result<Option<(String, WrappedKey)>, StoreError>;
    /// Whether a subject is known by an identity document.
    async fn subject_has_id(&mut self, subject_id: &str) -> Result<bool, StoreError>;
    /// Records a new subject, its blind indexes in the form this version writes.
    async fn insert_subject(&mut self, id: &str, wrapped: &WrappedKey) -> Result<(), StoreError>;
    /// A live subject's wrapped data key; `None` once it was erased or merged into another.
    async fn subject_key(&mut self, subject_id: &str) -> Result<Option<WrappedKey>, StoreError>;
    /// Up to `limit` live subjects, after `after` in id order, whose blind indexes are in a
    /// form older than [`INDEX_FORM`].
    async fn stale_subjects(&mut self, after: &str, limit: i64) -> Result<Vec<String>, StoreError>;
    /// Records that a subject's blind indexes are in the form this version writes.
    async fn set_index_form(&mut self, subject_id: &str) -> Result<(), StoreError>;
    /// Records that subject `merged` was merged into `survivor`: its key is destroyed, and the
    /// subjects merged into it before name the survivor too.
    async fn merge_subject(&mut self, merged: &str, survivor: &str) -> Result<(), StoreError>;
    /// Makes a digest name a subject, unless it names one already.
    async fn insert_index(&mut self, kind: &str, digest: &str, subject_id: &str) -> Result<(), StoreError>;
    /// Deletes a subject's index entries but those whose digest is in `keep`.
    async fn prune_index(&mut self, subject_id: &str, keep: &[String]) -> Result<(), StoreError>;
    /// Destroys a subject's wrapped data key, which erases every value sealed with it.
    async fn destroy_key(&mut self, subject_id: &str) -> Result<(), StoreError>;
    /// Up to 500 subjects, after `after` in id order, whose data key is wrapped by a master
    /// key other than `active_key_id`; passed over while another replica re-wraps them.
    async fn stale_keys(&mut self, active_key_id: &str, after: &str) -> Result<Vec<(String, WrappedKey)>, StoreError>;
    /// Replaces a subject's wrapped key, unless it changed since it was read as `old_key_id`.
    async fn rewrap(&mut self, subject_id: &str, old_key_id: &str, new: &WrappedKey) -> Result<(), StoreError>;
    /// The organisation units of a subject's complaints.
    async fn subject_units(&mut self, subject_id: &str) -> Result<Vec<String>, StoreError>;
    /// The subject whose personal information a complaint holds.
    async fn subject_of(&mut self, complaint_id: &str) -> Result<Option<String>, StoreError>;

    /// The length, head hash and seal of the access log's chain, locked until the transaction
    /// ends (PostgreSQL), so entries are chained one after the other.
    async fn lock_access_chain(&mut self) -> Result<ChainHead, StoreError>;
    /// The head of the access log's chain, as committed, with how many chained entries lie
    /// beyond it (read together); `None` when the head was removed.
    async fn access_chain(&mut self) -> Result<Option<(ChainHead, i64)>, StoreError>;
    /// Records the access log's new length, head hash and seal.
    async fn set_access_chain(&mut self, head: &ChainHead) -> Result<(), StoreError>;
    /// Records an access-log entry, chained.
    async fn insert_access(&mut self, entry: &LogEntry) -> Result<(), StoreError>;
    /// Up to `limit` access-log entries recorded outside the chain, before row `before` (all
    /// when `None`), in the order recorded, each with its row id.
    async fn unchained_accesses(&mut self, before: Option<i64>, limit: i64)
    -> Result<Vec<(i64, LogEntry)>, StoreError>;
    /// The row id of the first chained access-log entry, in the order recorded.
    async fn first_chained_access(&mut self) -> Result<Option<i64>, StoreError>;
    /// Where the first entry outside the chain recorded after the first chained one would be
    /// in the chain (1 + the chained entries recorded before it), if there is one.
    async fn first_unchained_after_chain(&mut self) -> Result<Option<i64>, StoreError>;
    /// Chains the entry of row `id` as `entry` says.
    async fn chain_access(&mut self, id: i64, entry: &LogEntry) -> Result<(), StoreError>;
    /// How many access-log entries lie outside the chain.
    async fn count_unchained(&mut self) -> Result<i64, StoreError>;
    /// Up to `limit` chained entries after position `after`, up to position `until`, in order.
    async fn chained_accesses(&mut self, after: i64, until: i64, limit: i64) -> Result<Vec<LogEntry>, StoreError>;
    /// When a subject restricted its processing (µs); `None` when it has not.
    async fn subject_restriction(&mut self, subject_id: &str) -> Result<Option<i64>, StoreError>;
    /// Records (`Some` time) or lifts (`None`) a subject's restriction of processing.
    async fn set_restriction(&mut self, subject_id: &str, since_us: Option<i64>) -> Result<(), StoreError>;
    /// The subject and the hash of the request that first used a data-subject request id.
    async fn subject_request(&mut self, request_id: &str) -> Result<Option<String>, StoreError>;
    /// Records a data-subject request id for `subject_id`; `false` when another transaction
    /// holds it.
    async fn insert_subject_request(&mut self, request: &RequestKey, subject_id: &str) -> Result<bool, StoreError>;
    /// Who accessed a subject's personal information, newest first, also while it was a
    /// subject merged into this one since.
    async fn accesses(&mut self, subject_id: &str) -> Result<Vec<PiiAccessRecord>, StoreError>;
}

/// A complaint holding a source reference, with the request that recorded it while that is
/// remembered.
#[derive(sqlx::FromRow)]
struct ReferenceRow {
    source_reference: String,
    request_hash: Option<String>,
    record: Vec<u8>,
}

impl ReferenceRow {
    fn owner(self) -> Result<(String, ReferenceOwner), StoreError> {
        let complaint = Complaint::decode(self.record.as_slice())?;
        Ok((self.source_reference, ReferenceOwner { request_hash: self.request_hash, complaint }))
    }
}

/// The complaints whose source reference meets `$condition`, with their requests.
macro_rules! reference_owners_sql {
    ($condition:literal) => {
        concat!(
            "SELECT c.source_reference, r.request_hash, c.record FROM complaints c \
             LEFT JOIN submit_requests r ON r.complaint_id = c.id WHERE c.source_reference ",
            $condition
        )
    };
}

/// An access-log entry recorded outside the chain.
#[derive(sqlx::FromRow)]
struct UnchainedRow {
    id: i64,
    complaint_id: Option<String>,
    subject_id: String,
    actor: String,
    action: String,
    reason: String,
    access_time_us: i64,
}

impl UnchainedRow {
    fn entry(self) -> (i64, LogEntry) {
        let entry = LogEntry {
            chain_position: 0,
            complaint_id: self.complaint_id,
            subject_id: self.subject_id,
            actor: self.actor,
            action: self.action,
            reason: self.reason,
            access_time_us: self.access_time_us,
            previous_hash: String::new(),
            hash: String::new(),
            key_id: String::new(),
        };
        (self.id, entry)
    }
}

/// A stored complaint with the columns a listing needs.
#[derive(sqlx::FromRow)]
struct ListedRow {
    record: Vec<u8>,
    receive_time_us: i64,
    id: String,
}

/// The complaints of `$filter` with what opens their personal information.
macro_rules! sealed_sql {
    ($filter:literal $(, $suffix:literal)?) => {
        concat!(
            "SELECT c.id, c.record, c.pii, c.subject_id, s.key_id, s.wrapped_key \
             FROM complaints c LEFT JOIN subjects s ON s.id = c.subject_id ",
            $filter
            $(, $suffix)?
        )
    };
}

/// Implements [`IntakeTx`] for one backend's connection. `$lock` is appended to the reads that
/// must lock what they read, `$lock_complaint` to those joining a complaint with its subject,
/// and `$skip_locked` (`$skip_locked_complaint` joining a subject) to the batches replicas
/// share; `$lock_subjects`, `$lock_identifiers`, `$lock_subject`, `$lock_references`,
/// `$prune_index` and `$reference_owners` are the backend's own ways of serialising subjects,
/// the submissions of one person and the derivation of references, and of binding a list of
/// digests or references.
macro_rules! intake_tx {
    (
        $conn:ty,
        lock = $lock:literal,
        lock_complaint = $lock_complaint:literal,
        skip_locked = $skip_locked:literal,
        skip_locked_complaint = $skip_locked_complaint:literal,
        lock_subjects = $lock_subjects:path,
        lock_identifiers = $lock_identifiers:path,
        lock_subject = $lock_subject:path,
        lock_references = $lock_references:path,
        prune_index = $prune_index:path,
        reference_owners = $reference_owners:path,
        backend = $backend:ident $(,)?
    ) => {
        #[async_trait]
        impl IntakeTx for $conn {
            async fn record(&mut self, id: &str) -> Result<Option<Complaint>, StoreError> {
                let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await?;
                Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
            }

            async fn lock_record(&mut self, id: &str) -> Result<Option<Complaint>, StoreError> {
                let record: Option<Vec<u8>> =
                    sqlx::query_scalar(concat!("SELECT record FROM complaints WHERE id = $1", $lock))
                        .bind(id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
            }

            async fn save_record(&mut self, id: &str, complaint: &Complaint) -> Result<(), StoreError> {
                let (business_type, cause) = codes(complaint);
                sqlx::query(
                    "UPDATE complaints SET record = $1, state = $2, business_type = $3, cause = $4, \
                     deadlines_provisional = $6 WHERE id = $5",
                )
                .bind(complaint.encode_to_vec())
                .bind(complaint.state)
                .bind(business_type)
                .bind(cause)
                .bind(id)
                .bind(deadlines_provisional(complaint))
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn list(&mut self, q: &ListQuery) -> Result<Vec<Listed>, StoreError> {
                let rows: Vec<ListedRow> =
                    super::list_sql(Backend::$backend, q).query_as().fetch_all(&mut *self).await?;
                rows.into_iter()
                    .map(|row| {
                        let complaint = Complaint::decode(row.record.as_slice())?;
                        Ok(Listed { complaint, cursor: (row.receive_time_us, row.id) })
                    })
                    .collect()
            }

            async fn change_request(&mut self, request_id: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT request_hash FROM change_requests WHERE request_id = $1")
                    .bind(request_id)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn insert_change_request(
                &mut self,
                request: &RequestKey,
                complaint_id: &str,
            ) -> Result<bool, StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO change_requests (request_id, complaint_id, request_hash, record_time_us) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
                )
                .bind(request.id.as_str())
                .bind(complaint_id)
                .bind(&request.hash)
                .bind(to_micros(now()))
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn provisional_receipts(&mut self, after: &str, limit: i64) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM complaints WHERE deadlines_provisional AND id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self)
                .await?)
            }

            async fn latest_of_issue(
                &mut self,
                subject_id: &str,
                business_type: &str,
                cause: &str,
                since: DateTime<Utc>,
                until: DateTime<Utc>,
            ) -> Result<Option<String>, StoreError> {
                let id: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM complaints WHERE subject_id = $1 AND business_type = $2 AND cause = $3 \
                     AND receive_time_us >= $4 AND receive_time_us <= $5 \
                     ORDER BY receive_time_us DESC, id DESC LIMIT 1",
                )
                .bind(subject_id)
                .bind(business_type)
                .bind(cause)
                .bind(to_micros(since))
                .bind(to_micros(until))
                .fetch_optional(&mut *self)
                .await?;
                Ok(id.map(|id| format!("complaints/{id}")))
            }

            async fn sealed(&mut self, id: &str) -> Result<Option<SealedRow>, StoreError> {
                Ok(sqlx::query_as(sealed_sql!("WHERE c.id = $1")).bind(id).fetch_optional(&mut *self).await?)
            }

            async fn lock_sealed(&mut self, id: &str) -> Result<Option<SealedRow>, StoreError> {
                let sql = sealed_sql!("WHERE c.id = $1", $lock_complaint);
                Ok(sqlx::query_as(sql).bind(id).fetch_optional(&mut *self).await?)
            }

            async fn sealed_of_subject(&mut self, subject_id: &str) -> Result<Vec<SealedRow>, StoreError> {
                let sql = sealed_sql!("WHERE c.subject_id = $1 ORDER BY c.receive_time_us");
                Ok(sqlx::query_as(sql).bind(subject_id).fetch_all(&mut *self).await?)
            }

            async fn lock_sealed_of_subject(&mut self, subject_id: &str) -> Result<Vec<SealedRow>, StoreError> {
                let sql = sealed_sql!("WHERE c.subject_id = $1 ORDER BY c.receive_time_us, c.id", $lock_complaint);
                Ok(sqlx::query_as(sql).bind(subject_id).fetch_all(&mut *self).await?)
            }

            async fn save_sealed(
                &mut self,
                id: &str,
                record: &[u8],
                pii: Option<&[u8]>,
                subject_id: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE complaints SET record = $2, pii = $3, subject_id = $4 WHERE id = $1")
                    .bind(id)
                    .bind(record)
                    .bind(pii)
                    .bind(subject_id)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn unsealed(&mut self) -> Result<Vec<(String, Complaint)>, StoreError> {
                let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(concat!(
                    "SELECT id, record FROM complaints WHERE subject_id IS NULL LIMIT 200",
                    $skip_locked
                ))
                .fetch_all(&mut *self)
                .await?;
                rows.into_iter().map(|(id, record)| Ok((id, Complaint::decode(record.as_slice())?))).collect()
            }

            async fn unchecked_free_text(&mut self, after: &str, limit: i64) -> Result<Vec<SealedRow>, StoreError> {
                let sql = sealed_sql!(
                    "WHERE c.free_text_form < $1 AND c.subject_id IS NOT NULL AND c.id > $2 ORDER BY c.id LIMIT $3",
                    $skip_locked_complaint
                );
                Ok(sqlx::query_as(sql).bind(FREE_TEXT_FORM).bind(after).bind(limit).fetch_all(&mut *self).await?)
            }

            async fn set_free_text_form(&mut self, id: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE complaints SET free_text_form = $2 WHERE id = $1")
                    .bind(id)
                    .bind(FREE_TEXT_FORM)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn reference_owners(
                &mut self,
                references: &[&str],
            ) -> Result<Vec<(String, ReferenceOwner)>, StoreError> {
                let rows = $reference_owners(self, references).await?;
                rows.into_iter().map(ReferenceRow::owner).collect()
            }

            async fn reference_holder(&mut self, reference: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT id FROM complaints WHERE source_reference = $1")
                    .bind(reference)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn lock_references(&mut self) -> Result<(), StoreError> {
                $lock_references(self).await
            }

            async fn underived_references(&mut self) -> Result<Vec<(String, Complaint)>, StoreError> {
                let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                    "SELECT id, record FROM complaints WHERE NOT source_reference_derived \
                     ORDER BY create_time_us, id LIMIT 500",
                )
                .fetch_all(&mut *self)
                .await?;
                rows.into_iter().map(|(id, record)| Ok((id, Complaint::decode(record.as_slice())?))).collect()
            }

            async fn set_source_reference(&mut self, id: &str, reference: Option<&str>) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE complaints SET source_reference = $2, source_reference_derived = TRUE WHERE id = $1",
                )
                .bind(id)
                .bind(reference)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn lock_subjects(&mut self) -> Result<(), StoreError> {
                $lock_subjects(self).await
            }

            async fn lock_identifiers(&mut self, digests: &[(&str, String)]) -> Result<(), StoreError> {
                $lock_identifiers(self, digests).await
            }

            async fn lock_subject(&mut self, subject_id: &str) -> Result<(), StoreError> {
                $lock_subject(self, subject_id).await
            }

            async fn find_subject(
                &mut self,
                kind: &str,
                digest: &str,
            ) -> Result<Option<(String, WrappedKey)>, StoreError> {
                let row: Option<(String, String, Vec<u8>)> = sqlx::query_as(
                    "SELECT s.id, s.key_id, s.wrapped_key FROM subject_index i JOIN subjects s ON s.id = i.subject_id \
                     WHERE i.kind = $1 AND i.digest = $2 AND s.wrapped_key IS NOT NULL",
                )
                .bind(kind)
                .bind(digest)
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|(id, key_id, sealed)| (id, WrappedKey { key_id, sealed })))
            }

            async fn subject_has_id(&mut self, subject_id: &str) -> Result<bool, StoreError> {
                let found: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM subject_index WHERE subject_id = $1 AND kind = 'id' LIMIT 1")
                        .bind(subject_id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(found.is_some())
            }

            async fn insert_subject(&mut self, id: &str, wrapped: &WrappedKey) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO subjects (id, key_id, wrapped_key, create_time_us, index_form) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(&wrapped.key_id)
                .bind(&wrapped.sealed)
                .bind(to_micros(now()))
                .bind(INDEX_FORM)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn subject_key(&mut self, subject_id: &str) -> Result<Option<WrappedKey>, StoreError> {
                let row: Option<(String, Vec<u8>)> = sqlx::query_as(
                    "SELECT key_id, wrapped_key FROM subjects WHERE id = $1 AND wrapped_key IS NOT NULL",
                )
                .bind(subject_id)
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|(key_id, sealed)| WrappedKey { key_id, sealed }))
            }

            async fn stale_subjects(&mut self, after: &str, limit: i64) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM subjects WHERE index_form < $1 AND wrapped_key IS NOT NULL AND id > $2 \
                     ORDER BY id LIMIT $3",
                )
                .bind(INDEX_FORM)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self)
                .await?)
            }

            async fn set_index_form(&mut self, subject_id: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE subjects SET index_form = $2 WHERE id = $1")
                    .bind(subject_id)
                    .bind(INDEX_FORM)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn merge_subject(&mut self, merged: &str, survivor: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE subjects SET wrapped_key = NULL, merged_into = $2, index_form = $3 WHERE id = $1")
                    .bind(merged)
                    .bind(survivor)
                    .bind(INDEX_FORM)
                    .execute(&mut *self)
                    .await?;
                sqlx::query("UPDATE subjects SET merged_into = $2 WHERE merged_into = $1")
                    .bind(merged)
                    .bind(survivor)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn insert_index(&mut self, kind: &str, digest: &str, subject_id: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO subject_index (kind, digest, subject_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(kind)
                .bind(digest)
                .bind(subject_id)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn prune_index(&mut self, subject_id: &str, keep: &[String]) -> Result<(), StoreError> {
                $prune_index(self, subject_id, keep).await
            }

            async fn destroy_key(&mut self, subject_id: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE subjects SET wrapped_key = NULL, erase_time_us = $2 WHERE id = $1")
                    .bind(subject_id)
                    .bind(to_micros(now()))
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn stale_keys(
                &mut self,
                active_key_id: &str,
                after: &str,
            ) -> Result<Vec<(String, WrappedKey)>, StoreError> {
                let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(concat!(
                    "SELECT id, key_id, wrapped_key FROM subjects \
                     WHERE wrapped_key IS NOT NULL AND key_id <> $1 AND id > $2 ORDER BY id LIMIT 500",
                    $skip_locked
                ))
                .bind(active_key_id)
                .bind(after)
                .fetch_all(&mut *self)
                .await?;
                Ok(rows.into_iter().map(|(id, key_id, sealed)| (id, WrappedKey { key_id, sealed })).collect())
            }

            async fn rewrap(&mut self, subject_id: &str, old_key_id: &str, new: &WrappedKey) -> Result<(), StoreError> {
                sqlx::query("UPDATE subjects SET key_id = $2, wrapped_key = $3 WHERE id = $1 AND key_id = $4")
                    .bind(subject_id)
                    .bind(&new.key_id)
                    .bind(&new.sealed)
                    .bind(old_key_id)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn subject_units(&mut self, subject_id: &str) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT DISTINCT org_unit FROM complaints WHERE subject_id = $1")
                    .bind(subject_id)
                    .fetch_all(&mut *self)
                    .await?)
            }

            async fn subject_of(&mut self, complaint_id: &str) -> Result<Option<String>, StoreError> {
                let subject: Option<Option<String>> =
                    sqlx::query_scalar("SELECT subject_id FROM complaints WHERE id = $1")
                        .bind(complaint_id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(subject.flatten())
            }

            async fn lock_access_chain(&mut self) -> Result<ChainHead, StoreError> {
                Ok(sqlx::query_as(concat!("SELECT length, head, seal FROM pii_access_chain WHERE id = 1", $lock))
                    .fetch_one(&mut *self)
                    .await?)
            }

            async fn access_chain(&mut self) -> Result<Option<(ChainHead, i64)>, StoreError> {
                let row: Option<(i64, String, String, i64)> = sqlx::query_as(
                    "SELECT c.length, c.head, c.seal, \
                     (SELECT COUNT(*) FROM pii_access a WHERE a.chain_position > c.length) \
                     FROM pii_access_chain c WHERE c.id = 1",
                )
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|(length, head, seal, beyond)| (ChainHead { length, head, seal }, beyond)))
            }

            async fn set_access_chain(&mut self, head: &ChainHead) -> Result<(), StoreError> {
                sqlx::query("UPDATE pii_access_chain SET length = $1, head = $2, seal = $3 WHERE id = 1")
                    .bind(head.length)
                    .bind(&head.head)
                    .bind(&head.seal)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn insert_access(&mut self, e: &LogEntry) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO pii_access (complaint_id, subject_id, actor, action, reason, access_time_us, \
                     chain_position, previous_hash, hash, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(e.complaint_id.as_deref())
                .bind(&e.subject_id)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.reason)
                .bind(e.access_time_us)
                .bind(e.chain_position)
                .bind(&e.previous_hash)
                .bind(&e.hash)
                .bind(&e.key_id)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn unchained_accesses(
                &mut self,
                before: Option<i64>,
                limit: i64,
            ) -> Result<Vec<(i64, LogEntry)>, StoreError> {
                let rows: Vec<UnchainedRow> = sqlx::query_as(
                    "SELECT id, complaint_id, subject_id, actor, action, reason, access_time_us FROM pii_access \
                     WHERE chain_position IS NULL AND id < $1 ORDER BY id LIMIT $2",
                )
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&mut *self)
                .await?;
                Ok(rows.into_iter().map(UnchainedRow::entry).collect())
            }

            async fn chain_access(&mut self, id: i64, e: &LogEntry) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE pii_access SET chain_position = $2, previous_hash = $3, hash = $4, key_id = $5 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(e.chain_position)
                .bind(&e.previous_hash)
                .bind(&e.hash)
                .bind(&e.key_id)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn first_chained_access(&mut self) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar("SELECT MIN(id) FROM pii_access WHERE chain_position IS NOT NULL")
                    .fetch_one(&mut *self)
                    .await?)
            }

            async fn first_unchained_after_chain(&mut self) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM pii_access c WHERE c.chain_position IS NOT NULL AND c.id < u.id) + 1 \
                     FROM pii_access u WHERE u.chain_position IS NULL \
                     AND u.id > (SELECT MIN(id) FROM pii_access WHERE chain_position IS NOT NULL) \
                     ORDER BY u.id LIMIT 1",
                )
                .fetch_optional(&mut *self)
                .await?)
            }

            async fn count_unchained(&mut self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM pii_access WHERE chain_position IS NULL")
                    .fetch_one(&mut *self)
                    .await?)
            }

            async fn chained_accesses(
                &mut self,
                after: i64,
                until: i64,
                limit: i64,
            ) -> Result<Vec<LogEntry>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT chain_position, complaint_id, subject_id, actor, action, reason, access_time_us, \
                     previous_hash, hash, key_id FROM pii_access \
                     WHERE chain_position > $1 AND chain_position <= $2 ORDER BY chain_position LIMIT $3",
                )
                .bind(after)
                .bind(until)
                .bind(limit)
                .fetch_all(&mut *self)
                .await?)
            }

            async fn subject_restriction(&mut self, subject_id: &str) -> Result<Option<i64>, StoreError> {
                let since: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT restrict_time_us FROM subjects WHERE id = $1")
                        .bind(subject_id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(since.flatten())
            }

            async fn set_restriction(&mut self, subject_id: &str, since_us: Option<i64>) -> Result<(), StoreError> {
                sqlx::query("UPDATE subjects SET restrict_time_us = $2 WHERE id = $1")
                    .bind(subject_id)
                    .bind(since_us)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn subject_request(&mut self, request_id: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT request_hash FROM subject_requests WHERE request_id = $1")
                    .bind(request_id)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn insert_subject_request(
                &mut self,
                request: &RequestKey,
                subject_id: &str,
            ) -> Result<bool, StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO subject_requests (request_id, subject_id, request_hash, record_time_us) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
                )
                .bind(request.id.as_str())
                .bind(subject_id)
                .bind(&request.hash)
                .bind(to_micros(now()))
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn accesses(&mut self, subject_id: &str) -> Result<Vec<PiiAccessRecord>, StoreError> {
                // A subject merged into this one was the same person: its log is this one's.
                Ok(sqlx::query_as(
                    "SELECT complaint_id, actor, action, reason, access_time_us FROM pii_access \
                     WHERE subject_id = $1 OR subject_id IN (SELECT id FROM subjects WHERE merged_into = $1) \
                     ORDER BY access_time_us DESC, id DESC",
                )
                .bind(subject_id)
                .fetch_all(&mut *self)
                .await?)
            }
        }
    };
}

/// SQLite's single writer holds the whole database: nothing to lock.
async fn no_lock(_: &mut SqliteConnection) -> Result<(), StoreError> {
    Ok(())
}

async fn no_identifier_lock(_: &mut SqliteConnection, _: &[(&str, String)]) -> Result<(), StoreError> {
    Ok(())
}

async fn no_subject_lock(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
    Ok(())
}

/// The transaction-scoped advisory lock on data subjects (ASCII "redrsubj"): held exclusively
/// by the changes that run alone, shared by submissions.
const SUBJECT_LOCK: i64 = 0x7265_6472_7375_626a;

/// The high 16 bits of every per-identifier advisory lock key (ASCII "sd", subject digest).
/// Every other advisory lock of the suite is a constant whose high 16 bits differ (the
/// ASCII "redr…" keys start 0x7265, the feed sequencer's is below 2^48), so an identifier's
/// lock never meets one of them.
const IDENTIFIER_LOCK_TAG: i64 = 0x7364;

/// The advisory lock key of a blind-index digest: [`IDENTIFIER_LOCK_TAG`] followed by the
/// digest's first 6 bytes. Digests are keyed hashes (hex), so two identifiers share a key
/// only by a 2^-48 chance, which would make their submissions wait for each other and
/// nothing worse.
pub(crate) fn identifier_lock_key(digest: &str) -> i64 {
    let mut low = [0u8; 8];
    match digest.get(..12).and_then(|prefix| hex::decode(prefix).ok()) {
        Some(bytes) => low[2..].copy_from_slice(&bytes),
        // Not hex (never written): its first bytes as they are.
        None => {
            let bytes = &digest.as_bytes()[..digest.len().min(6)];
            low[8 - bytes.len()..].copy_from_slice(bytes);
        }
    }
    (IDENTIFIER_LOCK_TAG << 48) | i64::from_be_bytes(low)
}

/// Changes to subjects that run alone take [`SUBJECT_LOCK`] exclusively: they wait for the
/// submissions under way, and later ones wait for them.
async fn lock_subjects_postgres(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SUBJECT_LOCK).execute(&mut *conn).await?;
    Ok(())
}

/// A submission shares [`SUBJECT_LOCK`] with the others and takes one advisory lock per
/// digest, in key order, so that two submissions sharing digests never wait for each other
/// in a cycle.
async fn lock_identifiers_postgres(conn: &mut PgConnection, digests: &[(&str, String)]) -> Result<(), StoreError> {
    let mut keys: Vec<i64> = digests.iter().map(|(_, digest)| identifier_lock_key(digest)).collect();
    keys.sort_unstable();
    keys.dedup();
    // One statement: the function scan yields the keys in array order, and each row's lock is
    // taken as the row is produced.
    sqlx::query(
        "SELECT CASE WHEN n = 1 THEN pg_advisory_xact_lock_shared(k) ELSE pg_advisory_xact_lock(k) END \
         FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, n)",
    )
    .bind([SUBJECT_LOCK].into_iter().chain(keys).collect::<Vec<i64>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the subject's row against another submission locking it; inserting a row that
/// refers to the subject (which takes a key-share lock) does not wait for it.
async fn lock_subject_postgres(conn: &mut PgConnection, subject_id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT id FROM subjects WHERE id = $1 FOR NO KEY UPDATE")
        .bind(subject_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// Serialises the derivation of source references with a transaction-scoped advisory lock
/// (ASCII "redrsref").
async fn lock_references_postgres(conn: &mut PgConnection) -> Result<(), StoreError> {
    const REFERENCE_LOCK: i64 = 0x7265_6472_7372_6566;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(REFERENCE_LOCK).execute(&mut *conn).await?;
    Ok(())
}

async fn reference_owners_sqlite(
    conn: &mut SqliteConnection,
    references: &[&str],
) -> Result<Vec<ReferenceRow>, StoreError> {
    let mut rows = Vec::new();
    // Within SQLite's limit of bound parameters per statement.
    for chunk in references.chunks(900) {
        let mut query = QueryBuilder::<Sqlite>::new(reference_owners_sql!("IN ("));
        let mut list = query.separated(", ");
        for reference in chunk {
            list.push_bind(*reference);
        }
        query.push(")");
        rows.extend(query.build_query_as::<ReferenceRow>().fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

async fn reference_owners_postgres(
    conn: &mut PgConnection,
    references: &[&str],
) -> Result<Vec<ReferenceRow>, StoreError> {
    Ok(sqlx::query_as(reference_owners_sql!("= ANY($1)")).bind(references).fetch_all(&mut *conn).await?)
}

async fn prune_index_sqlite(conn: &mut SqliteConnection, subject_id: &str, keep: &[String]) -> Result<(), StoreError> {
    let mut prune = QueryBuilder::<Sqlite>::new("DELETE FROM subject_index WHERE subject_id = ");
    prune.push_bind(subject_id);
    if !keep.is_empty() {
        prune.push(" AND digest NOT IN (");
        let mut list = prune.separated(", ");
        for digest in keep {
            list.push_bind(digest.as_str());
        }
        prune.push(")");
    }
    prune.build().execute(&mut *conn).await?;
    Ok(())
}

async fn prune_index_postgres(conn: &mut PgConnection, subject_id: &str, keep: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM subject_index WHERE subject_id = $1 AND NOT (digest = ANY($2))")
        .bind(subject_id)
        .bind(keep)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

intake_tx!(
    SqliteConnection,
    lock = "",
    lock_complaint = "",
    skip_locked = "",
    skip_locked_complaint = "",
    lock_subjects = no_lock,
    lock_identifiers = no_identifier_lock,
    lock_subject = no_subject_lock,
    lock_references = no_lock,
    prune_index = prune_index_sqlite,
    reference_owners = reference_owners_sqlite,
    backend = Sqlite,
);
intake_tx!(
    PgConnection,
    lock = " FOR UPDATE",
    lock_complaint = " FOR UPDATE OF c",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    skip_locked_complaint = " FOR UPDATE OF c SKIP LOCKED",
    lock_subjects = lock_subjects_postgres,
    lock_identifiers = lock_identifiers_postgres,
    lock_subject = lock_subject_postgres,
    lock_references = lock_references_postgres,
    prune_index = prune_index_postgres,
    reference_owners = reference_owners_postgres,
    backend = Postgres,
);

/// A pooled connection of either backend, for reads outside a transaction.
pub(crate) enum Reader {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Reader {
    /// A connection from the pool the store's feed reads (on SQLite, the read pool).
    pub async fn of(feed: &Feed) -> Result<Self, StoreError> {
        Ok(match feed.pool() {
            Pool::Sqlite(pool) => Self::Sqlite(pool.acquire().await?),
            Pool::Postgres(pool) => Self::Postgres(pool.acquire().await?),
        })
    }

    pub fn conn(&mut self) -> &mut dyn IntakeTx {
        match self {
            Self::Sqlite(conn) => &mut **conn,
            Self::Postgres(conn) => &mut **conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{IDENTIFIER_LOCK_TAG, SUBJECT_LOCK, identifier_lock_key};

    #[test]
    fn an_identifier_lock_is_its_digest_under_a_tag_of_its_own() {
        let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(identifier_lock_key(digest), 0x7364_0123_4567_89ab);
        assert_eq!(identifier_lock_key(digest) >> 48, IDENTIFIER_LOCK_TAG);
        let other = "ff23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(identifier_lock_key(other), 0x7364_ff23_4567_89ab);
        // Never written, still a key under the tag.
        assert_eq!(identifier_lock_key("xy") >> 48, IDENTIFIER_LOCK_TAG);
        assert_ne!(identifier_lock_key("xy"), identifier_lock_key("xz"));
        // The suite's other advisory locks: intake's subjects and references, the feed's
        // sequencer, case-workflow's and escalation's sweeps, escalation's matcher and
        // quality-metrics' read models.
        let others: [i64; 7] = [
            SUBJECT_LOCK,
            0x7265_6472_7372_6566,
            7_262_657_373,
            0x7265_6472_7377_6570,
            0x7265_6472_7365_7363,
            0x7265_6472_7367_7270,
            8_243_105_135_697_423_736,
        ];
        assert!(others.iter().all(|key| key >> 48 != IDENTIFIER_LOCK_TAG));
    }
}
