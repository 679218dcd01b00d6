//! The submission batch writer, on both backends: submissions queue up and each batch is
//! written in one transaction with a handful of multi-row statements (existing request ids and
//! source references, the number range, subjects, complaints, new request ids, outbox; on
//! PostgreSQL the new request ids first) and one commit. SQLite has one writer; PostgreSQL
//! several, each on its own connection, so that a batch waiting for a person's lock does not
//! hold up other people's submissions. Should a batch fail as a whole (on PostgreSQL also when
//! another process claimed one of its request ids or source references meanwhile), its
//! submissions are written one by one, so that one bad record cannot take the others down with
//! it. Every rule it applies (idempotency by request id and by source reference, subjects,
//! recurrence, numbering, sealing) is the one a single submission applies.

pub(super) mod subjects;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::CommitFailed;
use redress_platform::events::{NewEvent, Outbox};
use redress_platform::host::Supervisor;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::Complaint;
use sqlx::{PgConnection, QueryBuilder, SqliteConnection};
use tokio::sync::{Mutex, mpsc, oneshot};

use self::subjects::Subjects;
use crate::domain::acceptance::{self, SourceReference};
use crate::domain::pii::{FREE_TEXT_FORM, Keyring, WrappedKey};
use crate::domain::subjects::INDEX_FORM;
use crate::store::tx::IntakeTx;
use crate::store::{NewComplaint, ReferenceOwner, StoreError, Submitted, codes, deadlines_provisional};

/// Most submissions written in one transaction.
const MAX_BATCH: usize = 512;

pub(super) type Reply = oneshot::Sender<Result<Submitted, StoreError>>;

/// A queue of submissions waiting for a batch.
pub(super) type Queue = mpsc::Sender<(NewComplaint, Reply)>;

/// How a backend writes a batch, and a single submission when its batch failed.
#[async_trait]
pub(super) trait Writer: Send + Sync + 'static {
    /// Whether [`Writer::one`] takes another way than a batch of one, so that a batch of one
    /// that failed is written again alone (on PostgreSQL it meets a concurrent submission of
    /// its request id or reference as a single submission does).
    const ONE_IS_ANOTHER_WAY: bool;
    /// Writes `news` in one transaction: every outcome, or the error that failed them all.
    async fn batch(&self, news: Arc<Vec<NewComplaint>>) -> Result<Vec<Result<Submitted, StoreError>>, StoreError>;
    /// Writes one submission on its own.
    async fn one(&self, new: NewComplaint) -> Result<Submitted, StoreError>;
    /// Tells the store's feed that events were committed.
    fn committed(&self);
}

/// Starts `writers` batch writers that `supervisor` runs, sharing the queue it returns.
pub(super) fn start<W: Writer>(writer: W, writers: usize, supervisor: &Supervisor) -> Queue {
    let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
    let (writer, rx) = (Arc::new(writer), Arc::new(Mutex::new(rx)));
    for _ in 0..writers.max(1) {
        let batches = run_batches(writer.clone(), rx.clone(), supervisor.stopping());
        supervisor.spawn("submission-batcher", async move {
            batches.await;
            Ok(())
        });
    }
    queue
}

/// Queues `new` for the next batch and waits for its outcome.
pub(super) async fn submit(queue: &Queue, new: NewComplaint) -> Result<Submitted, StoreError> {
    let (reply, outcome) = oneshot::channel();
    queue.send((new, reply)).await.map_err(|_| anyhow::anyhow!("intake's submission writers stopped"))?;
    outcome.await.map_err(|_| anyhow::anyhow!("intake's submission writers dropped the submission"))?
}

/// Takes the next batch: waits for one submission, then takes those already queued behind it.
/// On `stop` it refuses new submissions and goes on with those already queued; `None` once the
/// queue is closed and empty.
async fn next_batch(
    rx: &Mutex<mpsc::Receiver<(NewComplaint, Reply)>>,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<Vec<(NewComplaint, Reply)>> {
    let mut rx = rx.lock().await;
    let mut closed = false;
    let first = loop {
        tokio::select! {
            biased;
            item = rx.recv() => break item?,
            () = stop.cancelled(), if !closed => {
                rx.close();
                closed = true;
            }
        }
    };
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Writes queued submissions in batches until the store is gone or `stop` fires and the queue
/// is drained.
async fn run_batches<W: Writer>(
    writer: Arc<W>,
    rx: Arc<Mutex<mpsc::Receiver<(NewComplaint, Reply)>>>,
    stop: tokio_util::sync::CancellationToken,
) {
    while let Some(batch) = next_batch(&rx, &stop).await {
        let (news, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let news = Arc::new(news);
        let outcomes = match writer.batch(news.clone()).await {
            Ok(outcomes) => outcomes,
            // The database out of reach: one by one, each would wait for it in turn. Every
            // submission of the batch is told so (UNAVAILABLE), and a retry of its request id
            // is answered as the first, whether the batch committed or not.
            Err(StoreError::Other(e)) if redress_platform::error::is_database_unavailable(&e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    size = news.len(),
                    "intake batch failed: database out of reach"
                );
                news.iter()
                    .map(|_| {
                        Err(StoreError::from(CommitFailed {
                            message: format!("{e:#}"),
                            storage_full: false,
                            unavailable: true,
                        }))
                    })
                    .collect()
            }
            Err(e) if news.len() > 1 || W::ONE_IS_ANOTHER_WAY => {
                tracing::warn!(error = %e, size = news.len(), "intake batch failed; writing its submissions one by one");
                let mut outcomes = Vec::with_capacity(news.len());
                for new in news.iter() {
                    outcomes.push(writer.one(new.clone()).await);
                }
                outcomes
            }
            Err(e) => vec![Err(e)],
        };
        if outcomes.iter().any(|o| matches!(o, Ok(Submitted::Created(_)))) {
            writer.committed();
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// A new complaint's row, as a batch writes it.
pub(super) struct ComplaintRow<'a> {
    new: &'a NewComplaint,
    complaint: Complaint,
    sealed: Sealed,
}

/// A stored complaint a new one (the `k`th new of its batch) may repeat: the subject's latest
/// of the issue received in the window.
pub(super) struct IssueLookup {
    k: usize,
    subject_id: String,
    business_type: String,
    cause: String,
    since_us: i64,
    until_us: i64,
}

/// The latest stored complaint of each issue lookup, one index descent each
/// (`complaints_by_subject_issue`), as `latest_of_issue` makes; the lookups follow as
/// `VALUES` rows (k, subject, business type, cause, since, until), then `) AS v`.
pub(super) const LATEST_OF_ISSUES: &str = "SELECT v.column1, (SELECT c.id FROM complaints c \
     WHERE c.subject_id = v.column2 AND c.business_type = v.column3 AND c.cause = v.column4 \
     AND c.receive_time_us >= v.column5 AND c.receive_time_us <= v.column6 \
     ORDER BY c.receive_time_us DESC, c.id DESC LIMIT 1) FROM (";

/// The multi-row statements of a batch, on one backend's connection in its transaction.
#[async_trait]
pub(super) trait BatchTx: IntakeTx + Outbox {
    /// The request hash and complaint record of each of `request_ids` recorded before.
    async fn recorded_requests(&mut self, request_ids: &[&str]) -> Result<Vec<(String, String, Vec<u8>)>, StoreError>;
    /// `count` new complaint-number sequence values, in increasing order.
    async fn draw_numbers(&mut self, count: usize) -> Result<Vec<i64>, StoreError>;
    /// The readable stored subjects `digests` name: digest, subject id, wrapped key, and
    /// whether the subject restricted its processing.
    async fn subjects_by_digests(
        &mut self,
        digests: &[&str],
    ) -> Result<Vec<(String, String, String, Vec<u8>, bool)>, StoreError>;
    /// The latest stored complaint each of `wanted` may repeat (see
    /// [`IntakeTx::latest_of_issue`]), by the lookup's `k`; none for those without one.
    async fn latest_of_issues(&mut self, wanted: &[IssueLookup]) -> Result<Vec<(usize, String)>, StoreError>;
    /// Locks the rows of the subjects `ids` (sorted) against other submissions locking them.
    async fn lock_subject_rows(&mut self, ids: &[&str]) -> Result<(), StoreError>;
    /// Which of the subjects `ids` an identity document knows.
    async fn subjects_with_id_document(&mut self, ids: &[&str]) -> Result<Vec<String>, StoreError>;
    async fn insert_subjects(&mut self, rows: &[(String, WrappedKey)], now_us: i64) -> Result<(), StoreError>;
    async fn insert_index_entries(&mut self, rows: &[(&'static str, String, String)]) -> Result<(), StoreError>;
    /// Whether request ids are recorded before people's locks are taken: on PostgreSQL, so that
    /// a batch takes what it takes in a single submission's order (request ids, people,
    /// references), and never holds a person's lock while it waits for a request id.
    fn claims_first(&self) -> bool;
    /// Records the request ids of `news`, in request-id order; how many were not recorded
    /// before.
    async fn claim_requests(&mut self, news: &[&NewComplaint]) -> Result<u64, StoreError>;
    /// Inserts `rows`, in source-reference order.
    async fn insert_complaints(&mut self, rows: &[ComplaintRow<'_>]) -> Result<(), StoreError>;
}

/// Implements [`BatchTx`] for one backend's connection (`$db` its database type): `$numbers`
/// draws complaint numbers, `$lock_rows` locks subjects' rows, `$with_id` starts the query
/// of which subjects an identity document knows, and `$claims_first` says whether a batch
/// records its request ids before it takes people's locks (see [`BatchTx::claims_first`]).
macro_rules! batch_tx {
    (
        $conn:ty,
        $db:ty,
        numbers = $numbers:path,
        lock_rows = $lock_rows:path,
        with_id = $with_id:expr,
        claims_first = $claims_first:expr $(,)?
    ) => {
        #[async_trait]
        impl BatchTx for $conn {
            async fn recorded_requests(
                &mut self,
                request_ids: &[&str],
            ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
                let mut rows = Vec::new();
                for chunk in request_ids.chunks(900) {
                    let mut query = QueryBuilder::<$db>::new(
                        "SELECT r.request_id, r.request_hash, c.record FROM submit_requests r \
                         JOIN complaints c ON c.id = r.complaint_id WHERE r.request_id IN (",
                    );
                    let mut ids = query.separated(", ");
                    for id in chunk {
                        ids.push_bind(*id);
                    }
                    query.push(")");
                    rows.extend(query.build_query_as::<(String, String, Vec<u8>)>().fetch_all(&mut *self).await?);
                }
                Ok(rows)
            }

            async fn draw_numbers(&mut self, count: usize) -> Result<Vec<i64>, StoreError> {
                $numbers(self, count).await
            }

            async fn subjects_by_digests(
                &mut self,
                digests: &[&str],
            ) -> Result<Vec<(String, String, String, Vec<u8>, bool)>, StoreError> {
                let mut query = QueryBuilder::<$db>::new(subjects::BY_DIGESTS);
                let mut list = query.separated(", ");
                for d in digests {
                    list.push_bind(*d);
                }
                query.push(")");
                Ok(query.build_query_as().fetch_all(&mut *self).await?)
            }

            async fn latest_of_issues(&mut self, wanted: &[IssueLookup]) -> Result<Vec<(usize, String)>, StoreError> {
                if wanted.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = QueryBuilder::<$db>::new(LATEST_OF_ISSUES);
                query.push_values(wanted, |mut row, w| {
                    row.push_bind(w.k as i64)
                        .push_bind(w.subject_id.as_str())
                        .push_bind(w.business_type.as_str())
                        .push_bind(w.cause.as_str())
                        .push_bind(w.since_us)
                        .push_bind(w.until_us);
                });
                query.push(") AS v");
                let found: Vec<(i64, Option<String>)> = query.build_query_as().fetch_all(&mut *self).await?;
                Ok(found
                    .into_iter()
                    .filter_map(|(k, id)| Some((usize::try_from(k).ok()?, format!("complaints/{}", id?))))
                    .collect())
            }

            async fn lock_subject_rows(&mut self, ids: &[&str]) -> Result<(), StoreError> {
                $lock_rows(self, ids).await
            }

            async fn subjects_with_id_document(&mut self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
                let mut query = QueryBuilder::<$db>::new($with_id);
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                Ok(query.build_query_scalar().fetch_all(&mut *self).await?)
            }

            async fn insert_subjects(&mut self, rows: &[(String, WrappedKey)], now_us: i64) -> Result<(), StoreError> {
                // Five values a row.
                for chunk in rows.chunks(400) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO subjects (id, key_id, wrapped_key, create_time_us, index_form) ",
                    );
                    query.push_values(chunk, |mut row, (id, wrapped)| {
                        row.push_bind(id.as_str())
                            .push_bind(wrapped.key_id.as_str())
                            .push_bind(wrapped.sealed.as_slice())
                            .push_bind(now_us)
                            .push_bind(INDEX_FORM);
                    });
                    query.build().execute(&mut *self).await?;
                }
                Ok(())
            }

            async fn insert_index_entries(
                &mut self,
                rows: &[(&'static str, String, String)],
            ) -> Result<(), StoreError> {
                for chunk in rows.chunks(400) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO subject_index (kind, digest, subject_id) ");
                    query.push_values(chunk, |mut row, (kind, digest, id)| {
                        row.push_bind(*kind).push_bind(digest.as_str()).push_bind(id.as_str());
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    query.build().execute(&mut *self).await?;
                }
                Ok(())
            }

            fn claims_first(&self) -> bool {
                $claims_first
            }

            async fn claim_requests(&mut self, news: &[&NewComplaint]) -> Result<u64, StoreError> {
                let mut claimed = 0;
                for chunk in in_key_order(news, |n| Some(n.request_id.as_str())).chunks(400) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO submit_requests (request_id, request_hash, complaint_id, record_time_us) ",
                    );
                    query.push_values(chunk, |mut row, new| {
                        row.push_bind(new.request_id.as_str())
                            .push_bind(new.request_hash.as_str())
                            .push_bind(new.id.as_str())
                            .push_bind(to_micros(new.create_time));
                    });
                    query.push(" ON CONFLICT (request_id) DO NOTHING");
                    claimed += query.build().execute(&mut *self).await?.rows_affected();
                }
                Ok(claimed)
            }

            async fn insert_complaints(&mut self, rows: &[ComplaintRow<'_>]) -> Result<(), StoreError> {
                // Sixteen values a row: 6,400 a statement, within the bundled SQLite's 32,766.
                for chunk in in_key_order(rows, |r| r.sealed.source_reference.as_deref()).chunks(400) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, \
                         record, create_time_us, pii, subject_id, business_type, cause, source_reference, \
                         source_reference_derived, deadlines_provisional, free_text_form) ",
                    );
                    query.push_values(chunk, |mut row, r| {
                        let (new, complaint, sealed) = (r.new, &r.complaint, &r.sealed);
                        row.push_bind(new.id.as_str())
                            .push_bind(complaint.complaint_number.as_str())
                            .push_bind(complaint.channel)
                            .push_bind(to_micros(new.receive_time))
                            .push_bind(complaint.org_unit.as_str())
                            .push_bind(complaint.state)
                            .push_bind(sealed.record.as_slice())
                            .push_bind(to_micros(new.create_time))
                            .push_bind(sealed.pii.as_slice())
                            .push_bind(sealed.subject_id.as_str())
                            .push_bind(sealed.business_type.as_deref())
                            .push_bind(sealed.cause.as_deref())
                            .push_bind(sealed.source_reference.as_deref())
                            .push_bind(true)
                            .push_bind(deadlines_provisional(complaint))
                            .push_bind(FREE_TEXT_FORM);
                    });
                    query.build().execute(&mut *self).await?;
                }
                Ok(())
            }
        }
    };
}

/// SQLite's single writer counts complaint numbers in a row of its own.
async fn numbers_sqlite(conn: &mut SqliteConnection, count: usize) -> Result<Vec<i64>, StoreError> {
    let count = i64::try_from(count).map_err(|_| anyhow::anyhow!("batch too large"))?;
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO counters (name, value) VALUES ('complaint_number', ?1) \
         ON CONFLICT (name) DO UPDATE SET value = value + ?1 RETURNING value",
    )
    .bind(count)
    .fetch_one(&mut *conn)
    .await?;
    Ok((last - count + 1..=last).collect())
}

/// PostgreSQL's writers draw from a sequence, each its own values.
async fn numbers_postgres(conn: &mut PgConnection, count: usize) -> Result<Vec<i64>, StoreError> {
    let count = i32::try_from(count).map_err(|_| anyhow::anyhow!("batch too large"))?;
    let mut drawn: Vec<i64> = sqlx::query_scalar("SELECT nextval('complaint_number_seq') FROM generate_series(1, $1)")
        .bind(count)
        .fetch_all(&mut *conn)
        .await?;
    drawn.sort_unstable();
    Ok(drawn)
}

/// SQLite has one writer: nothing to lock.
async fn no_row_lock(_: &mut SqliteConnection, _: &[&str]) -> Result<(), StoreError> {
    Ok(())
}

/// Locks the rows in id order (`FOR NO KEY UPDATE` locks them after the sort), as
/// [`IntakeTx::lock_subject`] locks one.
async fn lock_rows_postgres(conn: &mut PgConnection, ids: &[&str]) -> Result<(), StoreError> {
    sqlx::query("SELECT id FROM subjects WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(())
}

batch_tx!(
    SqliteConnection,
    sqlx::Sqlite,
    numbers = numbers_sqlite,
    lock_rows = no_row_lock,
    with_id = subjects::WITH_ID_DOCUMENT,
    // One writer: no other transaction can hold a request id, and a request id's reference
    // to its complaint is checked as it is recorded, after the complaint.
    claims_first = false,
);
batch_tx!(
    PgConnection,
    sqlx::Postgres,
    numbers = numbers_postgres,
    lock_rows = lock_rows_postgres,
    with_id = subjects::WITH_ID_DOCUMENT_POSTGRES,
    // The request id's reference to its complaint is declared DEFERRABLE INITIALLY DEFERRED.
    claims_first = true,
);

/// A subject with a business type and cause: complaints repeating an issue share it.
type IssueKey = (String, Option<String>, Option<String>);

/// A complaint's stored form.
struct Sealed {
    record: Vec<u8>,
    pii: Vec<u8>,
    subject_id: String,
    business_type: Option<String>,
    cause: Option<String>,
    source_reference: Option<String>,
}

/// What becomes of one submission of a batch.
enum Plan {
    Done(Box<Result<Submitted, StoreError>>),
    /// Insert as the nth new complaint of the batch.
    Insert(usize),
    /// Same request id as an earlier submission of this batch.
    SameAs(usize),
    /// Another request id with the source reference of an earlier submission of this batch.
    SameReference(usize),
}

/// `items` sorted by `key` (those without one first): every writer inserts rows that may meet
/// on a unique key in the same order, so that on PostgreSQL two batches (or a batch and a
/// single submission) wait for each other's row at most one way round, never in a deadlock.
fn in_key_order<T>(items: &[T], key: impl Fn(&T) -> Option<&str>) -> Vec<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).cmp(&key(b)));
    sorted
}

/// Records the request ids of `claims`. On PostgreSQL another process may have recorded one of
/// them since they were looked up: the batch fails, and its submissions are answered one by
/// one (that one as a replay).
async fn claim<C: BatchTx + ?Sized>(conn: &mut C, claims: &[&NewComplaint]) -> Result<(), StoreError> {
    if conn.claim_requests(claims).await? != claims.len() as u64 {
        return Err(anyhow::anyhow!("a request id of the batch was recorded meanwhile").into());
    }
    Ok(())
}

/// Writes `news` on `conn`, in the transaction the caller commits: every outcome, or the error
/// that failed them all.
pub(super) async fn insert_batch<C: BatchTx + ?Sized>(
    conn: &mut C,
    keyring: &Keyring,
    news: &[NewComplaint],
) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
    let mut existing: HashMap<String, (String, Complaint)> = HashMap::new();
    let request_ids: Vec<&str> = news.iter().map(|n| n.request_id.as_str()).collect();
    for (request_id, hash, record) in conn.recorded_requests(&request_ids).await? {
        existing.insert(request_id, (hash, Complaint::decode(record.as_slice())?));
    }
    let references: Vec<Option<SourceReference>> = news.iter().map(NewComplaint::source_reference).collect();
    let owners: HashMap<String, ReferenceOwner> = {
        let wanted: Vec<&str> = references.iter().flatten().map(SourceReference::as_str).collect();
        if wanted.is_empty() { HashMap::new() } else { conn.reference_owners(&wanted).await?.into_iter().collect() }
    };
    let mut plans = Vec::with_capacity(news.len());
    let mut first_in_batch: HashMap<&str, usize> = HashMap::new();
    let mut first_with_reference: HashMap<&str, usize> = HashMap::new();
    let mut fresh = Vec::new();
    for (i, (new, reference)) in news.iter().zip(&references).enumerate() {
        let reference = reference.as_ref().map(SourceReference::as_str);
        let plan = if let Some((hash, complaint)) = existing.get(new.request_id.as_str()) {
            Plan::Done(Box::new(Submitted::replay(hash, &new.request_hash, complaint.clone())))
        } else if let Some(&j) = first_in_batch.get(new.request_id.as_str()) {
            Plan::SameAs(j)
        } else if let Some(owner) = reference.and_then(|r| owners.get(r)) {
            Plan::Done(Box::new(owner.answer(new)))
        } else if let Some(&j) = reference.and_then(|r| first_with_reference.get(r)) {
            Plan::SameReference(j)
        } else {
            first_in_batch.insert(new.request_id.as_str(), i);
            if let Some(r) = reference {
                first_with_reference.insert(r, i);
            }
            fresh.push(i);
            Plan::Insert(fresh.len() - 1)
        };
        plans.push(plan);
    }
    let mut created = Vec::with_capacity(fresh.len());
    if !fresh.is_empty() {
        // On PostgreSQL request ids first, then people's locks, then complaints by reference:
        // the order a single submission takes them in.
        let claims: Vec<&NewComplaint> = fresh.iter().map(|&i| &news[i]).collect();
        if conn.claims_first() {
            claim(conn, &claims).await?;
        }
        let numbers = conn.draw_numbers(fresh.len()).await?;
        let mut rows: Vec<ComplaintRow<'_>> = Vec::with_capacity(fresh.len());
        let mut events: Vec<NewEvent> = Vec::new();
        let mut subjects = Subjects::load(conn, keyring, fresh.iter().map(|&i| &news[i].complaint)).await?;
        // Each new complaint's subject, in batch order (a subject the batch creates is known to
        // those after it), and one query for the stored complaints they may repeat.
        let mut people = Vec::with_capacity(fresh.len());
        let mut wanted = Vec::new();
        for (k, &i) in fresh.iter().enumerate() {
            let new = &news[i];
            let (subject, known) = subjects.subject_for(keyring, &new.complaint)?;
            // Only a subject known before this batch can have earlier complaints stored. A
            // subject that restricted its processing has no complaint matched (nor matched
            // against), in the batch or before it.
            let restricted = known && subjects.restricted(&subject.id);
            if known
                && !restricted
                && let (Some(business_type), Some(cause)) = codes(&new.complaint)
            {
                wanted.push(IssueLookup {
                    k,
                    subject_id: subject.id.clone(),
                    business_type,
                    cause,
                    since_us: to_micros(new.recurrence_since),
                    until_us: to_micros(new.receive_time),
                });
            }
            people.push((subject, restricted));
        }
        let mut stored_earlier: HashMap<usize, String> = HashMap::new();
        for chunk in wanted.chunks(400) {
            stored_earlier.extend(conn.latest_of_issues(chunk).await?);
        }
        // Complaints of this batch by (subject, business type, cause): the latest one, for
        // recurrences within the batch.
        let mut in_batch: HashMap<IssueKey, (DateTime<Utc>, String)> = HashMap::new();
        for (k, (&i, (subject, restricted))) in fresh.iter().zip(people).enumerate() {
            let new = &news[i];
            let (business_type, cause) = codes(&new.complaint);
            let key = (subject.id.clone(), business_type.clone(), cause.clone());
            let mut earlier = stored_earlier.remove(&k);
            if !restricted {
                if let Some((at, name)) = in_batch.get(&key)
                    && acceptance::repeats(new.recurrence_since, new.receive_time, *at)
                {
                    earlier = Some(name.clone());
                }
                in_batch.insert(key, (new.receive_time, new.complaint.name.clone()));
            }
            let number = acceptance::complaint_number(&new.number_prefix, numbers[k]);
            let (complaint, announced) = acceptance::accepted(&new.complaint, number, earlier, restricted, &new.trace);
            let (record, pii) = subject.seal(&complaint)?;
            let source_reference = references[i].as_ref().map(|r| r.as_str().to_owned());
            let sealed = Sealed { record, pii, subject_id: subject.id, business_type, cause, source_reference };
            rows.push(ComplaintRow { new, complaint, sealed });
            events.extend(announced);
        }
        subjects.write(conn).await?;
        conn.insert_complaints(&rows).await?;
        if !conn.claims_first() {
            claim(conn, &claims).await?;
        }
        conn.append_events(&events).await?;
        created = rows.into_iter().map(|r| r.complaint).collect();
    }
    let mut outcomes: Vec<Result<Submitted, StoreError>> = Vec::with_capacity(news.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let outcome = match plan {
            Plan::Done(outcome) => *outcome,
            Plan::Insert(k) => Ok(Submitted::Created(created[k].clone())),
            Plan::SameAs(j) => match &outcomes[j] {
                Ok(Submitted::Created(c) | Submitted::Replayed(c)) => {
                    Submitted::replay(&news[j].request_hash, &news[i].request_hash, c.clone())
                }
                Err(_) => Err(StoreError::RequestIdReused),
            },
            // The earlier one was recorded by this batch, its request with it.
            Plan::SameReference(j) => match &outcomes[j] {
                Ok(Submitted::Created(c) | Submitted::Replayed(c)) => {
                    Submitted::by_reference(Some(&news[j].request_hash), &news[i].request_hash, c.clone())
                }
                Err(_) => Err(anyhow::anyhow!("the submission first carrying the reference failed").into()),
            },
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use std::sync::Arc;

    use redress_platform::db::{Backend, DatabaseConfig};
    use redress_platform::host::Supervisor;
    use sqlx::{Connection, PgConnection, SqliteConnection};

    use crate::store::{NewComplaint, Submitted};

    redress_platform::conformance_suite!(
        open = database;
        one_batch_resolves_its_people_requests_and_repeats_among_themselves,
    );

    async fn database(config: &DatabaseConfig) -> DatabaseConfig {
        config.clone()
    }

    /// A writer whose batches all fail with `error`, counting the submissions it is then asked
    /// to write alone.
    struct Failing {
        error: fn() -> sqlx::Error,
        alone: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl super::Writer for Failing {
        const ONE_IS_ANOTHER_WAY: bool = true;

        async fn batch(
            &self,
            _: Arc<Vec<NewComplaint>>,
        ) -> Result<Vec<Result<Submitted, crate::store::StoreError>>, crate::store::StoreError> {
            Err((self.error)().into())
        }

        async fn one(&self, _: NewComplaint) -> Result<Submitted, crate::store::StoreError> {
            self.alone.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err((self.error)().into())
        }

        fn committed(&self) {}
    }

    /// Submits five complaints at once to a writer failing with `error`: what each was told,
    /// and how many were written alone after their batch failed.
    async fn through_failing_writer(error: fn() -> sqlx::Error) -> (Vec<crate::store::StoreError>, usize) {
        let alone = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let queue = super::start(Failing { error, alone: alone.clone() }, 1, &Supervisor::detached());
        let submissions = (0..5).map(|n| {
            let queue = queue.clone();
            async move { super::submit(&queue, by_phone(&format!("f-{n}"), "13911112222", 0)).await }
        });
        let outcomes = futures_util::future::join_all(submissions).await;
        (outcomes.into_iter().map(|o| o.unwrap_err()).collect(), alone.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// A batch that fails because the database is out of reach is not written again one by
    /// one (each would wait for the database in turn): every submission in it is told at once,
    /// as UNAVAILABLE. Any other failure of a batch has its submissions written alone.
    #[tokio::test]
    async fn a_batch_failing_for_an_unreachable_database_is_not_written_again_one_by_one() {
        let (errors, alone) = through_failing_writer(|| sqlx::Error::PoolTimedOut).await;
        assert_eq!(alone, 0, "written alone after the database was found out of reach");
        for e in &errors {
            let crate::store::StoreError::Other(e) = e else { panic!("{e:?}") };
            assert!(redress_platform::error::is_database_unavailable(e), "{e:#}");
        }
        let (_, alone) = through_failing_writer(|| sqlx::Error::RowNotFound).await;
        assert_eq!(alone, 5, "another failure has every submission written alone");
    }

    /// Whether the rows a batch writes are taken in key order on PostgreSQL: a batch writing
    /// `later` and `earlier` (in that order) while another transaction holds `earlier`'s key
    /// waits for it holding none of `later`'s, so that transaction may take `later`'s at once
    /// (here within 100 ms, well before PostgreSQL would break a deadlock, after a second).
    /// `holds` writes a row with one complaint's key in the other transaction.
    async fn taken_in_key_order(name: &str, later: NewComplaint, earlier: NewComplaint, holds: HoldsKey) {
        let Some(db) = redress_platform::testing::TestDatabase::postgres(name).await.unwrap() else { return };
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let _store = crate::open_store(&db.config, keyring.clone(), &Supervisor::detached()).await.unwrap();
        let pool = sqlx::PgPool::connect(&db.config.url).await.unwrap();
        let mut holder = pool.begin().await.unwrap();
        holds(&mut holder, &keyring, &earlier).await;
        let config = db.config.clone();
        let written = [later.clone(), earlier];
        let batch = tokio::spawn(async move { write(&config, &written).await.len() });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            assert!(!batch.is_finished(), "the batch went past a key another transaction holds");
            assert!(std::time::Instant::now() < deadline, "the batch never waited for the key held");
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_locks WHERE NOT granted \
                 AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if waiting == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        sqlx::query("SET LOCAL lock_timeout = '100ms'").execute(&mut *holder).await.unwrap();
        holds(&mut holder, &keyring, &later).await;
        holder.rollback().await.unwrap();
        assert_eq!(batch.await.unwrap(), 2);
        pool.close().await;
    }

    type HoldsKey = for<'a> fn(
        &'a mut sqlx::PgConnection,
        &'a crate::domain::pii::Keyring,
        &'a NewComplaint,
    ) -> futures_util::future::BoxFuture<'a, ()>;

    /// Holds `new`'s request id: what a single submission of it takes first.
    pub(in crate::store) fn holds_request_id<'a>(
        conn: &'a mut sqlx::PgConnection,
        _: &'a crate::domain::pii::Keyring,
        new: &'a NewComplaint,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO submit_requests (request_id, request_hash, complaint_id, record_time_us) \
                 VALUES ($1, 'other', 'not-yet-written', 0)",
            )
            .bind(new.request_id.as_str())
            .execute(&mut *conn)
            .await
            .unwrap();
        })
    }

    /// Holds `new`'s source reference: writes a complaint with it, as another batch would,
    /// of a person of its own (so that no person's lock is shared with the batch).
    fn holds_reference<'a>(
        conn: &'a mut sqlx::PgConnection,
        keyring: &'a crate::domain::pii::Keyring,
        new: &'a NewComplaint,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        static PEOPLE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        Box::pin(async move {
            let person = PEOPLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut holder = by_phone(&format!("{}-holder", new.request_id), &format!("1395555{person:04}"), 0);
            holder.complaint.external_reference.clone_from(&new.complaint.external_reference);
            let outcomes = super::insert_batch(&mut *conn, keyring, std::slice::from_ref(&holder)).await.unwrap();
            assert!(matches!(outcomes[0], Ok(Submitted::Created(_))), "{outcomes:?}");
        })
    }

    /// A batch records its request ids in request-id order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_records_its_request_ids_in_order() {
        let (earlier, later) = (by_phone("order-a", "13911112222", 0), by_phone("order-b", "13933334444", 0));
        assert!(earlier.request_id.as_str() < later.request_id.as_str());
        taken_in_key_order("batch_request_ids_in_order", later, earlier, holds_request_id).await;
    }

    /// A batch writes its complaints in source-reference order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_writes_its_complaints_in_reference_order() {
        let with_reference = |request_id: &str, phone: &str, reference: &str| {
            let mut new = by_phone(request_id, phone, 0);
            new.complaint.external_reference = reference.to_owned();
            new
        };
        // Request ids in the other order, so that only the references' order can keep them apart.
        let earlier = with_reference("order-d", "13911112222", "REF-1");
        let later = with_reference("order-c", "13933334444", "REF-2");
        taken_in_key_order("batch_references_in_order", later, earlier, holds_reference).await;
    }

    /// A classified complaint by the person with `phone`, received `minutes_ago`.
    fn by_phone(request_id: &str, phone: &str, minutes_ago: i64) -> NewComplaint {
        let mut new = crate::store::conformance_support::classified_by_phone(request_id, phone);
        new.receive_time -= chrono::TimeDelta::minutes(minutes_ago);
        new.complaint.receive_time = Some(redress_platform::time::to_timestamp(new.receive_time));
        new
    }

    /// Writes `news` as one batch on a connection of its own, in one transaction.
    async fn write(config: &DatabaseConfig, news: &[NewComplaint]) -> Vec<Result<Submitted, crate::store::StoreError>> {
        let keyring = crate::domain::pii::test_keyring();
        macro_rules! in_one_transaction {
            ($conn:expr) => {{
                let mut conn = $conn;
                let mut tx = conn.begin().await.unwrap();
                let outcomes = super::insert_batch(&mut *tx, &keyring, news).await.unwrap();
                tx.commit().await.unwrap();
                outcomes
            }};
        }
        match Backend::of(&config.url).unwrap() {
            Backend::Sqlite => in_one_transaction!(SqliteConnection::connect(&config.url).await.unwrap()),
            Backend::Postgres => in_one_transaction!(PgConnection::connect(&config.url).await.unwrap()),
        }
    }

    fn created(
        outcome: &Result<Submitted, crate::store::StoreError>,
    ) -> &redress_proto::redress::intake::v1::Complaint {
        match outcome {
            Ok(Submitted::Created(c)) => c,
            other => panic!("not created: {other:?}"),
        }
    }

    /// Two complaints of one person in one batch make one subject, the later repeats the
    /// earlier, a second submission of a request in the batch replays the first, another
    /// person is another subject, and every new complaint has a number of its own: on both
    /// backends, through the same multi-row statements.
    async fn one_batch_resolves_its_people_requests_and_repeats_among_themselves(config: DatabaseConfig) {
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let store = crate::open_store(&config, keyring, &Supervisor::detached()).await.unwrap();
        let earlier = by_phone("b-earlier", "13911112222", 5);
        let mut retry = earlier.clone();
        retry.id = uuid::Uuid::now_v7().to_string();
        let news = [earlier, by_phone("b-later", "139-1111-2222", 1), retry, by_phone("b-other", "13933334444", 1)];
        let outcomes = write(&config, &news).await;
        assert_eq!(outcomes.len(), 4);
        let (earlier, later, other) = (created(&outcomes[0]), created(&outcomes[1]), created(&outcomes[3]));
        match &outcomes[2] {
            Ok(Submitted::Replayed(c)) => assert_eq!(c.name, earlier.name),
            other => panic!("the retry in the batch is not a replay: {other:?}"),
        }
        assert!(earlier.recurrence_of.is_empty());
        assert_eq!(later.recurrence_of, earlier.name, "the later complaint of the batch repeats the earlier");
        assert!(other.recurrence_of.is_empty());
        let subject = |c: &redress_proto::redress::intake::v1::Complaint| {
            let store = store.clone();
            let id = c.name.strip_prefix("complaints/").unwrap().to_owned();
            async move { store.subject_of(&id).await.unwrap().unwrap() }
        };
        assert_eq!(subject(earlier).await, subject(later).await, "one phone however written, one subject");
        assert_ne!(subject(earlier).await, subject(other).await);
        let numbers = [&earlier.complaint_number, &later.complaint_number, &other.complaint_number];
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "numbers drawn in batch order: {numbers:?}");
        for c in [earlier, later, other] {
            let id = c.name.strip_prefix("complaints/").unwrap();
            assert_eq!(store.get(id).await.unwrap().unwrap().complaint_number, c.complaint_number);
        }
        // Written again, the whole batch is answered from what it recorded.
        let again = write(&config, &news).await;
        assert!(again.iter().all(|o| matches!(o, Ok(Submitted::Replayed(_)))), "{again:?}");
    }
}
