//! The submission batch writer: submissions queue up and each batch is written in one
//! transaction with a handful of multi-row statements (existing request ids and source
//! references, the number range, subjects, complaints, request ids, outbox) and one fsync.
//! Should a batch fail as a whole, its submissions are written one by one so that one bad
//! record cannot take the others down with it. Every rule it applies (idempotency by request id and by source
//! reference, subjects, recurrence, numbering, sealing) is the one PostgreSQL's path applies.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::db::Sqlite;
use redress_platform::events::{Feed, NewEvent};
use redress_platform::host::Supervisor;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::Complaint;
use sqlx::{QueryBuilder, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::subjects::Subjects;
use crate::domain::acceptance::{self, SourceReference};
use crate::domain::pii::{FREE_TEXT_FORM, Keyring};
use crate::store::tx::IntakeTx;
use crate::store::{NewComplaint, ReferenceOwner, StoreError, Submitted, codes, deadlines_provisional, ops};

/// Most submissions written in one transaction.
const MAX_BATCH: usize = 512;

pub(super) type Reply = oneshot::Sender<Result<Submitted, StoreError>>;

/// Starts the writer that `supervisor` runs; submissions go to the queue it returns.
pub(super) fn start(
    db: Sqlite,
    feed: Feed,
    keyring: Arc<Keyring>,
    supervisor: &Supervisor,
) -> mpsc::Sender<(NewComplaint, Reply)> {
    let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
    let batches = run_batches(db, feed, keyring, rx, supervisor.stopping());
    supervisor.spawn("submission-batcher", async move {
        batches.await;
        Ok(())
    });
    queue
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
        let mut in_batch: HashMap<IssueKey, (DateTime<Utc>, String)> = HashMap::new();
        for (k, &i) in fresh.iter().enumerate() {
            let new = &news[i];
            let (subject, known) = subjects.subject_for(keyring, &new.complaint)?;
            let (business_type, cause) = codes(&new.complaint);
            let key = (subject.id.clone(), business_type.clone(), cause.clone());
            // Only a subject known before this batch can have earlier complaints stored.
            // A subject that restricted its processing has no complaint matched (nor matched
            // against), in the batch or before it.
            let restricted = known && subjects.restricted(&subject.id);
            let mut earlier = if known { ops::recurrence_of(conn, &subject.id, restricted, new).await? } else { None };
            if !restricted {
                if let Some((at, name)) = in_batch.get(&key)
                    && acceptance::repeats(new.recurrence_since, new.receive_time, *at)
                {
                    earlier = Some(name.clone());
                }
                in_batch.insert(key, (new.receive_time, new.complaint.name.clone()));
            }
            let number = acceptance::complaint_number(&new.number_prefix, last - count + 1 + k as i64);
            let (complaint, events) = acceptance::accepted(&new.complaint, number, earlier, restricted, &new.trace);
            let (record, pii) = subject.seal(&complaint)?;
            let source_reference = references[i].as_ref().map(|r| r.as_str().to_owned());
            let sealed = Sealed { record, pii, subject_id: subject.id, business_type, cause, source_reference };
            rows.push((new, complaint, sealed, events));
        }
        subjects.write(conn).await?;
        for chunk in rows.chunks(400) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, \
                 create_time_us, pii, subject_id, business_type, cause, source_reference, source_reference_derived, \
                 deadlines_provisional, free_text_form) ",
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
                    .push_bind(sealed.cause.as_deref())
                    .push_bind(sealed.source_reference.as_deref())
                    .push_bind(true)
                    .push_bind(deadlines_provisional(complaint))
                    .push_bind(FREE_TEXT_FORM);
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
