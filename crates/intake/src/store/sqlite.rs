//! SQLite implementation. Submissions queue up and are written in batches: one transaction,
//! a handful of multi-row statements, one fsync for the whole batch (group commit through the
//! platform's single writer). Should a batch fail as a whole, its submissions are retried one
//! by one so that one bad record cannot take the others down with it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use redress_platform::db::Sqlite;
use redress_platform::events::{Feed, NewEvent};
use redress_platform::host::Supervisor;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::{Complainant, Complaint};
use sqlx::{QueryBuilder, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{
    ACCESSES, DELETE_INDEX, ERASE_SUBJECT, Erased, FIND_SUBJECT, Identifier, IntakeStore, LOAD_SEALED,
    LOAD_SEALED_OF_SUBJECT, ListQuery, Listed, NewComplaint, PiiAccess, PiiAccessRecord, SealedRow, StoreError,
    Subject, Submitted, UPDATE_SEALED, numbered,
};
use crate::domain::pii::{DataKey, Keyring, WrappedKey};

/// Most submissions written in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Submitted, StoreError>>;

#[derive(Clone)]
pub struct SqliteIntakeStore {
    db: Sqlite,
    feed: Feed,
    queue: mpsc::Sender<(NewComplaint, Reply)>,
    keyring: Arc<Keyring>,
}

impl SqliteIntakeStore {
    pub async fn open(db: Sqlite, keyring: Arc<Keyring>, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        redress_platform::events::migrate_sqlite(&db.pool).await?;
        let feed = Feed::sqlite(db.pool.clone());
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let batches = run_batches(db.clone(), feed.clone(), keyring.clone(), rx, supervisor.stopping());
        supervisor.spawn("submission-batcher", async move {
            batches.await;
            Ok(())
        });
        let store = Self { db, feed, queue, keyring };
        store.seal_legacy().await?;
        store.rewrap_keys().await?;
        Ok(store)
    }

    /// Seals the personal information of complaints recorded before it was encrypted at rest.
    async fn seal_legacy(&self) -> anyhow::Result<()> {
        loop {
            let keyring = self.keyring.clone();
            let sealed = self
                .db
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        let rows: Vec<(String, Vec<u8>)> =
                            sqlx::query_as("SELECT id, record FROM complaints WHERE subject_id IS NULL LIMIT 200")
                                .fetch_all(&mut *conn)
                                .await?;
                        for (id, record) in &rows {
                            let complaint = Complaint::decode(record.as_slice())?;
                            let subject = subject_for(conn, &keyring, &complaint).await?;
                            let (record, pii) = super::seal(&complaint, &subject)?;
                            sqlx::query(UPDATE_SEALED)
                                .bind(id)
                                .bind(record)
                                .bind(pii)
                                .bind(&subject.id)
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok::<_, StoreError>(rows.len())
                    })
                })
                .await?;
            if sealed == 0 {
                return Ok(());
            }
            tracing::info!(complaints = sealed, "sealed personal information of earlier complaints");
        }
    }

    /// Re-wraps every subject's data key under the active master key (after a rotation), so
    /// a retired master key can be removed once this has run without reporting failures.
    async fn rewrap_keys(&self) -> anyhow::Result<()> {
        let mut after = String::new();
        let mut skipped = Vec::new();
        loop {
            let keyring = self.keyring.clone();
            let from = after.clone();
            let (last, done, skips) = self
                .db
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        let stale: Vec<(String, String, Vec<u8>)> = sqlx::query_as(super::STALE_WRAPPED)
                            .bind(keyring.active_key_id())
                            .bind(&from)
                            .fetch_all(&mut *conn)
                            .await?;
                        let last = stale.last().map(|(id, ..)| id.clone());
                        let mut skips = Vec::new();
                        let fresh = super::rewrapped(&keyring, stale, &mut skips);
                        let done = fresh.len();
                        for (id, old_key_id, new) in fresh {
                            sqlx::query(super::REWRAP)
                                .bind(&id)
                                .bind(&new.key_id)
                                .bind(&new.sealed)
                                .bind(&old_key_id)
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok::<_, StoreError>((last, done, skips))
                    })
                })
                .await?;
            skipped.extend(skips);
            if done > 0 {
                tracing::info!(subjects = done, "re-wrapped data keys under the active master key");
            }
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        report_unwrappable(&skipped);
        Ok(())
    }

    /// Runs `f` on the writer's connection, in the next group commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
                Arc<Keyring>,
            ) -> futures_util::future::BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let keyring = self.keyring.clone();
        self.db.writer.write(move |conn| f(conn, keyring)).await
    }
}

/// The subjects of a batch of complaints: those found by blind index with one query, and
/// those created by the batch (written with [`Subjects::write`]).
struct Subjects {
    /// Digest → subject id, for every digest known before the batch or added by it.
    by_digest: HashMap<String, String>,
    /// Subject id → wrapped key, as stored.
    stored: HashMap<String, WrappedKey>,
    /// Unwrapped or new keys, by subject id.
    keys: HashMap<String, DataKey>,
    new_subjects: Vec<(String, WrappedKey)>,
    new_index: Vec<(&'static str, String, String)>,
    /// Subjects known by an identity document.
    with_id: HashSet<String>,
}

impl Subjects {
    async fn load<'c>(
        conn: &mut SqliteConnection,
        keyring: &Keyring,
        complaints: impl Iterator<Item = &'c Complaint>,
    ) -> Result<Self, StoreError> {
        let digests: Vec<String> = complaints.flat_map(|c| super::digests(keyring, c)).map(|(_, d)| d).collect();
        let mut subjects = Self {
            by_digest: HashMap::new(),
            stored: HashMap::new(),
            keys: HashMap::new(),
            new_subjects: Vec::new(),
            new_index: Vec::new(),
            with_id: HashSet::new(),
        };
        for chunk in digests.chunks(500) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT i.digest, s.id, s.key_id, s.wrapped_key FROM subject_index i \
                 JOIN subjects s ON s.id = i.subject_id WHERE s.wrapped_key IS NOT NULL AND i.digest IN (",
            );
            let mut list = query.separated(", ");
            for d in chunk {
                list.push_bind(d.as_str());
            }
            query.push(")");
            let rows: Vec<(String, String, String, Vec<u8>)> = query.build_query_as().fetch_all(&mut *conn).await?;
            for (digest, id, key_id, sealed) in rows {
                subjects.stored.insert(id.clone(), WrappedKey { key_id, sealed });
                subjects.by_digest.insert(digest, id);
            }
        }
        let found: Vec<String> = subjects.stored.keys().cloned().collect();
        for chunk in found.chunks(500) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT DISTINCT subject_id FROM subject_index WHERE kind = 'id' AND subject_id IN (",
            );
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            query.push(")");
            let with_id: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
            subjects.with_id.extend(with_id);
        }
        Ok(subjects)
    }

    /// The complaint's subject, and whether it was known before this batch.
    fn subject_for(&mut self, keyring: &Keyring, complaint: &Complaint) -> Result<(Subject, bool), StoreError> {
        let digests = super::digests(keyring, complaint);
        let has_id = digests.iter().any(|(kind, _)| *kind == "id");
        // A person with an identity document is not someone else who shares their phone.
        let found = digests.iter().find_map(|(kind, d)| {
            self.by_digest.get(d).filter(|id| *kind == "id" || !has_id || !self.with_id.contains(*id)).cloned()
        });
        let (id, known) = match found {
            Some(id) => {
                let known = self.stored.contains_key(&id);
                (id, known)
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                let (key, wrapped) = keyring.new_data_key(&id).map_err(|e| anyhow::anyhow!(e))?;
                self.keys.insert(id.clone(), key);
                self.new_subjects.push((id.clone(), wrapped));
                (id, false)
            }
        };
        let key = match self.keys.get(&id) {
            Some(key) => key.clone(),
            None => {
                let wrapped = self.stored.get(&id).ok_or_else(|| anyhow::anyhow!("subject {id} has no key"))?;
                let key = keyring.unwrap(&id, wrapped).map_err(|e| anyhow::anyhow!(e))?;
                self.keys.insert(id.clone(), key.clone());
                key
            }
        };
        for (kind, digest) in digests {
            if kind == "id" {
                self.with_id.insert(id.clone());
            }
            if !self.by_digest.contains_key(&digest) {
                self.by_digest.insert(digest.clone(), id.clone());
                self.new_index.push((kind, digest, id.clone()));
            }
        }
        Ok((Subject { id, key }, known))
    }

    /// Writes the subjects and index entries the batch created.
    async fn write(self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        let now = to_micros(redress_platform::time::now());
        for chunk in self.new_subjects.chunks(200) {
            let mut query =
                QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO subjects (id, key_id, wrapped_key, create_time_us) ");
            query.push_values(chunk, |mut row, (id, wrapped)| {
                row.push_bind(id.as_str())
                    .push_bind(wrapped.key_id.as_str())
                    .push_bind(wrapped.sealed.as_slice())
                    .push_bind(now);
            });
            query.build().execute(&mut *conn).await?;
        }
        for chunk in self.new_index.chunks(300) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO subject_index (kind, digest, subject_id) ");
            query.push_values(chunk, |mut row, (kind, digest, id)| {
                row.push_bind(*kind).push_bind(digest.as_str()).push_bind(id.as_str());
            });
            query.push(" ON CONFLICT DO NOTHING");
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// The subject of one complaint, written at once (for sealing earlier records).
async fn subject_for(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    complaint: &Complaint,
) -> Result<Subject, StoreError> {
    let mut subjects = Subjects::load(conn, keyring, std::iter::once(complaint)).await?;
    let (subject, _) = subjects.subject_for(keyring, complaint)?;
    subjects.write(conn).await?;
    Ok(subject)
}

/// Tells the operator about subjects whose keys could not be re-wrapped (their personal
/// information stays readable only while their master key stays configured).
fn report_unwrappable(skipped: &[String]) {
    if !skipped.is_empty() {
        let mut ids: Vec<&String> = skipped.iter().collect();
        ids.sort();
        ids.dedup();
        tracing::error!(
            subjects = skipped.len(),
            key_ids = ?ids,
            "data keys of some subjects could not be re-wrapped: keep their master keys configured"
        );
        metrics::counter!("redress_pii_rewrap_failures_total").increment(skipped.len() as u64);
    }
}

/// The live subject a blind-index digest names.
async fn find_subject(conn: &mut SqliteConnection, kind: &str, digest: &str) -> Result<Option<String>, StoreError> {
    let row: Option<(String, String, Vec<u8>)> =
        sqlx::query_as(FIND_SUBJECT).bind(kind).bind(digest).fetch_optional(&mut *conn).await?;
    Ok(row.map(|(id, ..)| id))
}

async fn record_access(
    conn: &mut SqliteConnection,
    complaint_id: Option<&str>,
    subject_id: &str,
    access: &PiiAccess,
) -> Result<(), StoreError> {
    super::insert_access!(complaint_id, subject_id, access).execute(&mut *conn).await?;
    Ok(())
}

/// Writes queued submissions in batches until the store is gone or `stop` fires; on `stop` it
/// refuses new submissions and writes those already queued.
async fn run_batches(
    db: Sqlite,
    feed: Feed,
    keyring: Arc<Keyring>,
    mut rx: mpsc::Receiver<(NewComplaint, Reply)>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut closed = false;
    loop {
        let next = tokio::select! {
            biased;
            item = rx.recv() => item,
            () = stop.cancelled(), if !closed => {
                rx.close();
                closed = true;
                continue;
            }
        };
        let Some(first) = next else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (news, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let news = Arc::new(news);
        let written = write(&db, &keyring, news.clone()).await;
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            Err(e) if news.len() > 1 => {
                tracing::warn!(error = %e, size = news.len(), "intake batch failed; writing its submissions one by one");
                let mut outcomes = Vec::with_capacity(news.len());
                for new in news.iter() {
                    let one = write(&db, &keyring, Arc::new(vec![new.clone()])).await;
                    outcomes.push(
                        one.and_then(|mut v| v.pop().unwrap_or_else(|| Err(anyhow::anyhow!("empty batch").into()))),
                    );
                }
                outcomes
            }
            Err(e) => vec![Err(e)],
        };
        if outcomes.iter().any(|o| matches!(o, Ok(Submitted::Created(_)))) {
            feed.notify_committed();
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

async fn write(
    db: &Sqlite,
    keyring: &Arc<Keyring>,
    news: Arc<Vec<NewComplaint>>,
) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
    let keyring = keyring.clone();
    db.writer.write(move |conn| Box::pin(async move { insert_batch(conn, &keyring, &news).await })).await
}

/// A subject with a business type and cause: complaints repeating an issue share it.
type IssueKey = (String, Option<String>, Option<String>);

/// A complaint's stored form.
struct Sealed {
    record: Vec<u8>,
    pii: Vec<u8>,
    subject_id: String,
    business_type: Option<String>,
    cause: Option<String>,
}

/// What becomes of one submission of a batch.
enum Plan {
    Done(Box<Result<Submitted, StoreError>>),
    /// Insert as the nth new complaint of the batch.
    Insert(usize),
    /// Same request id as an earlier submission of this batch.
    SameAs(usize),
}

async fn insert_batch(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    news: &[NewComplaint],
) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
    let mut existing: HashMap<String, (String, Complaint)> = HashMap::new();
    for chunk in news.chunks(900) {
        let mut query = QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT r.request_id, r.request_hash, c.record FROM submit_requests r \
             JOIN complaints c ON c.id = r.complaint_id WHERE r.request_id IN (",
        );
        let mut ids = query.separated(", ");
        for new in chunk {
            ids.push_bind(new.request_id.as_str());
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            let record: Vec<u8> = row.try_get(2)?;
            existing.insert(row.try_get(0)?, (row.try_get(1)?, Complaint::decode(record.as_slice())?));
        }
    }
    let mut plans = Vec::with_capacity(news.len());
    let mut first_in_batch: HashMap<&str, usize> = HashMap::new();
    let mut fresh = Vec::new();
    for (i, new) in news.iter().enumerate() {
        let plan = if let Some((hash, complaint)) = existing.get(&new.request_id) {
            Plan::Done(Box::new(if *hash == new.request_hash {
                Ok(Submitted::Replayed(complaint.clone()))
            } else {
                Err(StoreError::RequestIdReused)
            }))
        } else if let Some(&j) = first_in_batch.get(new.request_id.as_str()) {
            Plan::SameAs(j)
        } else {
            first_in_batch.insert(&new.request_id, i);
            fresh.push(i);
            Plan::Insert(fresh.len() - 1)
        };
        plans.push(plan);
    }
    let mut created = Vec::with_capacity(fresh.len());
    if !fresh.is_empty() {
        let count = fresh.len() as i64;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, value) VALUES ('complaint_number', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = value + ?1 RETURNING value",
        )
        .bind(count)
        .fetch_one(&mut *conn)
        .await?;
        let mut rows: Vec<(&NewComplaint, Complaint, Sealed, Vec<NewEvent>)> = Vec::with_capacity(fresh.len());
        let mut subjects = Subjects::load(conn, keyring, fresh.iter().map(|&i| &news[i].complaint)).await?;
        // Complaints of this batch by (subject, business type, cause): the latest one, for
        // recurrences within the batch.
        let mut in_batch: HashMap<IssueKey, (i64, String)> = HashMap::new();
        for (k, &i) in fresh.iter().enumerate() {
            let new = &news[i];
            let (subject, known) = subjects.subject_for(keyring, &new.complaint)?;
            let (business_type, cause) = super::codes(&new.complaint);
            let receive_us = to_micros(new.receive_time);
            let key = (subject.id.clone(), business_type.clone(), cause.clone());
            // Only a subject known before this batch can have earlier complaints stored.
            let mut earlier: Option<String> = match (&business_type, &cause) {
                (Some(b), Some(c)) if known => sqlx::query_scalar(super::RECURRENCE)
                    .bind(&subject.id)
                    .bind(b)
                    .bind(c)
                    .bind(to_micros(new.recurrence_since))
                    .bind(receive_us)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|id: String| format!("complaints/{id}")),
                _ => None,
            };
            if let Some((at, name)) = in_batch.get(&key)
                && *at >= to_micros(new.recurrence_since)
                && *at <= receive_us
            {
                earlier = Some(name.clone());
            }
            in_batch.insert(key, (receive_us, new.complaint.name.clone()));
            let (complaint, events) = numbered(new, last - count + 1 + k as i64, earlier);
            let (record, pii) = super::seal(&complaint, &subject)?;
            rows.push((new, complaint, Sealed { record, pii, subject_id: subject.id, business_type, cause }, events));
        }
        subjects.write(conn).await?;
        for chunk in rows.chunks(400) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, \
                 create_time_us, pii, subject_id, business_type, cause) ",
            );
            query.push_values(chunk, |mut row, (new, complaint, sealed, _)| {
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
                    .push_bind(sealed.cause.as_deref());
            });
            query.build().execute(&mut *conn).await?;
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO submit_requests (request_id, request_hash, complaint_id, record_time_us) ",
            );
            query.push_values(chunk, |mut row, (new, ..)| {
                row.push_bind(new.request_id.as_str())
                    .push_bind(new.request_hash.as_str())
                    .push_bind(new.id.as_str())
                    .push_bind(to_micros(new.create_time));
            });
            query.build().execute(&mut *conn).await?;
        }
        let events: Vec<NewEvent> = rows.iter().flat_map(|(.., events)| events.iter().cloned()).collect();
        NewEvent::append_all_sqlite(&events, conn).await?;
        created = rows.into_iter().map(|(new, complaint, ..)| (new.request_hash.clone(), complaint)).collect();
    }
    let mut outcomes: Vec<Result<Submitted, StoreError>> = Vec::with_capacity(news.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let outcome = match plan {
            Plan::Done(outcome) => *outcome,
            Plan::Insert(k) => Ok(Submitted::Created(created[k].1.clone())),
            Plan::SameAs(j) => match &outcomes[j] {
                Ok(Submitted::Created(c) | Submitted::Replayed(c)) if news[i].request_hash == news[j].request_hash => {
                    Ok(Submitted::Replayed(c.clone()))
                }
                _ => Err(StoreError::RequestIdReused),
            },
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[async_trait]
impl IntakeStore for SqliteIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((new, reply)).await.map_err(|_| anyhow::anyhow!("intake writer stopped"))?;
        outcome.await.map_err(|_| anyhow::anyhow!("intake writer dropped the submission"))?
    }

    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError> {
        let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Listed>, StoreError> {
        let rows = super::list_query!(q).fetch_all(&self.db.pool).await?;
        rows.into_iter().map(Listed::try_from).collect()
    }

    async fn reveal(&self, id: &str, access: &PiiAccess) -> Result<Option<Complaint>, StoreError> {
        let (id, access) = (id.to_owned(), access.clone());
        self.write(move |conn, keyring| {
            Box::pin(async move {
                let Some(row) =
                    sqlx::query_as::<_, SealedRow>(LOAD_SEALED).bind(&id).fetch_optional(&mut *conn).await?
                else {
                    return Ok(None);
                };
                let complaint = row.open(&keyring)?;
                // Erased information reveals nothing, so there is no access to record.
                if let (Some(subject), Some(_), Some(_)) = (&row.subject_id, &row.pii, &row.wrapped_key) {
                    record_access(conn, Some(&id), subject, &access).await?;
                }
                Ok(Some(complaint))
            })
        })
        .await
    }

    async fn export(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Vec<Complaint>, StoreError> {
        let digest = identifier.digest(&self.keyring);
        let (kind, access) = (identifier.kind, access.clone());
        self.write(move |conn, keyring| {
            Box::pin(async move {
                let Some(subject) = find_subject(conn, kind, &digest).await? else {
                    return Ok(Vec::new());
                };
                let rows: Vec<SealedRow> =
                    sqlx::query_as(LOAD_SEALED_OF_SUBJECT).bind(&subject).fetch_all(&mut *conn).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(row.open(&keyring)?);
                    record_access(conn, Some(&row.id), &subject, &access).await?;
                }
                Ok(out)
            })
        })
        .await
    }

    async fn correct(
        &self,
        id: &str,
        complainant: Complainant,
        access: &PiiAccess,
    ) -> Result<Option<Complaint>, StoreError> {
        let (id, access) = (id.to_owned(), access.clone());
        self.write(move |conn, keyring| {
            Box::pin(async move {
                let Some(row) =
                    sqlx::query_as::<_, SealedRow>(LOAD_SEALED).bind(&id).fetch_optional(&mut *conn).await?
                else {
                    return Ok(None);
                };
                let (Some(old_subject), Some(_), Some(_), Some(_)) =
                    (&row.subject_id, &row.key_id, &row.wrapped_key, &row.pii)
                else {
                    return Err(StoreError::Erased);
                };
                let mut complaint = row.open(&keyring)?;
                complaint.complainant = Some(complainant);
                // The corrected complainant may be someone else: the complaint moves to the
                // subject its new identifiers name (found, or new), and the old subject keeps
                // only the identifiers its remaining complaints still carry.
                let subject = subject_for(conn, &keyring, &complaint).await?;
                let (record, pii) = super::seal(&complaint, &subject)?;
                sqlx::query(UPDATE_SEALED)
                    .bind(&id)
                    .bind(record)
                    .bind(pii)
                    .bind(&subject.id)
                    .execute(&mut *conn)
                    .await?;
                let remaining: Vec<SealedRow> =
                    sqlx::query_as(LOAD_SEALED_OF_SUBJECT).bind(old_subject).fetch_all(&mut *conn).await?;
                let live = super::live_digests(&keyring, &remaining)?;
                let mut prune = QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM subject_index WHERE subject_id = ");
                prune.push_bind(old_subject.as_str());
                if !live.is_empty() {
                    prune.push(" AND digest NOT IN (");
                    let mut list = prune.separated(", ");
                    for d in &live {
                        list.push_bind(d.as_str());
                    }
                    prune.push(")");
                }
                prune.build().execute(&mut *conn).await?;
                // An identifier the old subject gave up now names the corrected complainant.
                for (kind, digest) in super::digests(&keyring, &complaint) {
                    sqlx::query(super::INSERT_INDEX)
                        .bind(kind)
                        .bind(&digest)
                        .bind(&subject.id)
                        .execute(&mut *conn)
                        .await?;
                }
                record_access(conn, Some(&id), &subject.id, &access).await?;
                if subject.id != *old_subject {
                    record_access(conn, Some(&id), old_subject, &access).await?;
                }
                Ok(Some(complaint))
            })
        })
        .await
    }

    async fn erase(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Option<Erased>, StoreError> {
        let digest = identifier.digest(&self.keyring);
        let (kind, access) = (identifier.kind, access.clone());
        self.write(move |conn, _| {
            Box::pin(async move {
                let Some(subject) = find_subject(conn, kind, &digest).await? else {
                    return Ok(None);
                };
                let rows: Vec<SealedRow> =
                    sqlx::query_as(LOAD_SEALED_OF_SUBJECT).bind(&subject).fetch_all(&mut *conn).await?;
                for row in &rows {
                    let mut complaint = Complaint::decode(row.record.as_slice())?;
                    crate::domain::pii::erase(&mut complaint);
                    sqlx::query(UPDATE_SEALED)
                        .bind(&row.id)
                        .bind(complaint.encode_to_vec())
                        .bind(None::<Vec<u8>>)
                        .bind(&subject)
                        .execute(&mut *conn)
                        .await?;
                }
                let now = to_micros(redress_platform::time::now());
                sqlx::query(ERASE_SUBJECT).bind(&subject).bind(now).execute(&mut *conn).await?;
                sqlx::query(DELETE_INDEX).bind(&subject).execute(&mut *conn).await?;
                record_access(conn, None, &subject, &access).await?;
                Ok(Some(Erased { subject_id: subject, complaints: rows.len() as i64 }))
            })
        })
        .await
    }

    async fn rewrite(&self, id: &str, change: super::Rewrite) -> Result<Option<Complaint>, StoreError> {
        let id = id.to_owned();
        let (complaint, changed) = self
            .write(move |conn, _| {
                Box::pin(async move {
                    let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = ?")
                        .bind(&id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some(record) = record else { return Ok((None, false)) };
                    let current = Complaint::decode(record.as_slice())?;
                    let Some((complaint, event)) = change(current.clone()) else { return Ok((Some(current), false)) };
                    super::rewrite_query!(&id, &complaint).execute(&mut *conn).await?;
                    event.append_sqlite(conn).await?;
                    Ok((Some(complaint), true))
                })
            })
            .await?;
        if changed {
            self.feed.notify_committed();
        }
        Ok(complaint)
    }

    async fn subject_units(&self, subject_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(super::SUBJECT_UNITS).bind(subject_id).fetch_all(&self.db.pool).await?)
    }

    async fn subject_of(&self, complaint_id: &str) -> Result<Option<String>, StoreError> {
        let subject: Option<Option<String>> =
            sqlx::query_scalar(super::SUBJECT_OF).bind(complaint_id).fetch_optional(&self.db.pool).await?;
        Ok(subject.flatten())
    }

    async fn pii_accesses(&self, subject_id: &str) -> Result<Vec<PiiAccessRecord>, StoreError> {
        Ok(sqlx::query_as(ACCESSES).bind(subject_id).fetch_all(&self.db.pool).await?)
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use prost::Message;
    use redress_platform::testing::TestDatabase;

    use crate::store::PiiAccess;

    /// A complaint recorded in clear before encryption at rest is sealed when the store opens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_from_before_encryption_are_sealed_on_open() {
        let db = TestDatabase::sqlite("legacy").unwrap();
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let store = crate::open_store(&db.config, keyring.clone(), &redress_platform::host::Supervisor::detached())
            .await
            .unwrap();
        drop(store);
        let id = uuid::Uuid::now_v7().to_string();
        let mut legacy = crate::testing::complaint("旧系统记录");
        legacy.name = format!("complaints/{id}");
        let pool = sqlx::SqlitePool::connect(&db.config.url).await.unwrap();
        sqlx::query(
            "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, create_time_us) \
             VALUES (?, '2025010100000001', 3, 0, ?, 1, ?, 0)",
        )
        .bind(&id)
        .bind(&legacy.org_unit)
        .bind(legacy.encode_to_vec())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store =
            crate::open_store(&db.config, keyring, &redress_platform::host::Supervisor::detached()).await.unwrap();
        let stored = store.get(&id).await.unwrap().unwrap();
        let Some(redress_proto::redress::intake::v1::complainant::Party::Person(p)) = stored.complainant.unwrap().party
        else {
            panic!()
        };
        assert_eq!(p.phone, "138****5678");
        let access = PiiAccess { actor: "user:dpo".to_owned(), action: "read", reason: "check".to_owned() };
        assert_eq!(store.reveal(&id, &access).await.unwrap().unwrap(), legacy);
        let pool = sqlx::SqlitePool::connect(&db.config.url).await.unwrap();
        let record: Vec<u8> =
            sqlx::query_scalar("SELECT record FROM complaints WHERE id = ?").bind(&id).fetch_one(&pool).await.unwrap();
        assert!(!record.windows(11).any(|w| w == b"13812345678"), "no clear phone left in the record");
    }

    /// After a rotation, data keys are re-wrapped under the new master key when the store
    /// opens, after which the retired key is no longer needed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_rewraps_every_subject_under_the_active_key() {
        use crate::domain::pii::Keyring;
        use crate::store::Submitted;

        let db = TestDatabase::sqlite("rotation").unwrap();
        let k1 = ("k1".to_owned(), vec![1u8; 32]);
        let k2 = ("k2".to_owned(), vec![2u8; 32]);
        let index = [9u8; 32];
        let old = Arc::new(Keyring::new("k1", std::slice::from_ref(&k1), &index).unwrap());
        let store = crate::open_store(&db.config, old, &redress_platform::host::Supervisor::detached()).await.unwrap();
        let mut new = crate::store::conformance_support::personal_new("rot-1");
        new.recurrence_since = new.receive_time;
        let Submitted::Created(created) = store.submit(new).await.unwrap() else { panic!() };
        drop(store);

        // Started with the old key missing: the store still opens (and reports the subjects it
        // could not re-wrap), nothing is lost.
        let missing = Arc::new(Keyring::new("k2", std::slice::from_ref(&k2), &index).unwrap());
        drop(crate::open_store(&db.config, missing, &redress_platform::host::Supervisor::detached()).await.unwrap());
        let both = Arc::new(Keyring::new("k2", &[k1, k2.clone()], &index).unwrap());
        drop(crate::open_store(&db.config, both, &redress_platform::host::Supervisor::detached()).await.unwrap());
        let pool = sqlx::SqlitePool::connect(&db.config.url).await.unwrap();
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT key_id FROM subjects").fetch_all(&pool).await.unwrap();
        assert_eq!(ids, ["k2"]);
        pool.close().await;

        let only_new = Arc::new(Keyring::new("k2", &[k2], &index).unwrap());
        let store =
            crate::open_store(&db.config, only_new, &redress_platform::host::Supervisor::detached()).await.unwrap();
        let id = created.name.strip_prefix("complaints/").unwrap();
        let access = PiiAccess { actor: "user:dpo".to_owned(), action: "read", reason: "check".to_owned() };
        assert_eq!(store.reveal(id, &access).await.unwrap().unwrap(), created);
    }
}
