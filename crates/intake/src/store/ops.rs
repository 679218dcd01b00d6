//! Intake's store operations, written once over [`IntakeTx`]: load (and lock), apply the
//! domain's rules, save. Each runs inside one transaction that its backend opens and commits:
//! SQLite's group-commit writer, or a PostgreSQL transaction.

use std::future::Future;

use prost::Message;
use redress_platform::telemetry::TraceContext;
use redress_proto::redress::intake::v1::{Complainant, Complaint, ContentConfirmation};

use super::tx::IntakeTx;
use super::{
    Erased, Identifier, NewComplaint, PiiAccess, RequestKey, Rewrite, SealedRow, StoreError, Subject, Submitted, codes,
};
use crate::domain::acceptance::SourceReference;
use crate::domain::lifecycle;
use crate::domain::pii::{self, Keyring};
use crate::domain::subjects;

/// The complaint with its personal information in clear, the access recorded.
pub(crate) async fn reveal<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    id: &str,
    access: &PiiAccess,
) -> Result<Option<Complaint>, StoreError> {
    let Some(row) = tx.sealed(id).await? else { return Ok(None) };
    let complaint = row.open(keyring)?;
    // Erased information reveals nothing, so there is no access to record.
    if let Some((subject, ..)) = row.readable_subject() {
        tx.record_access(Some(id), subject, access).await?;
    }
    Ok(Some(complaint))
}

/// Every complaint of the person `identifier` names, in clear, each access recorded.
pub(crate) async fn export<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    identifier: &Identifier,
    access: &PiiAccess,
) -> Result<Vec<Complaint>, StoreError> {
    let Some((subject, _)) = tx.find_subject(identifier.kind, &identifier.digest(keyring)).await? else {
        return Ok(Vec::new());
    };
    let rows = tx.sealed_of_subject(&subject).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(row.open(keyring)?);
        tx.record_access(Some(&row.id), &subject, access).await?;
    }
    Ok(out)
}

/// Replaces a complaint's complainant, re-sealed for the subject the correction names and
/// re-indexed; the corrected complaint in clear.
pub(crate) async fn correct<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    id: &str,
    complainant: Complainant,
    access: &PiiAccess,
) -> Result<Option<Complaint>, StoreError> {
    // Subjects change under one lock, taken first (as erasure does), so a correction and an
    // erasure of the same person run one after the other and the correction sees the erasure.
    tx.lock_subjects().await?;
    let Some(row) = tx.lock_sealed(id).await? else { return Ok(None) };
    let Some((old_subject, ..)) = row.readable_subject() else { return Err(StoreError::Erased) };
    let old_subject = old_subject.to_owned();
    let mut complaint = row.open(keyring)?;
    complaint.complainant = Some(complainant);
    // The corrected complainant may be someone else: the complaint moves to the subject its
    // new identifiers name (found, or new), and the old subject keeps only the identifiers
    // its remaining complaints still carry.
    let subject = subject_for(tx, keyring, &complaint).await?;
    let (record, sealed) = subject.seal(&complaint)?;
    tx.save_sealed(id, &record, Some(&sealed), &subject.id).await?;
    let remaining = tx.sealed_of_subject(&old_subject).await?;
    tx.prune_index(&old_subject, &live_digests(keyring, &remaining)?).await?;
    // An identifier the old subject gave up now names the corrected complainant.
    for (kind, digest) in subjects::digests(keyring, &complaint) {
        tx.insert_index(kind, &digest, &subject.id).await?;
    }
    tx.record_access(Some(id), &subject.id, access).await?;
    if subject.id != old_subject {
        tx.record_access(Some(id), &old_subject, access).await?;
    }
    Ok(Some(complaint))
}

/// Erases the person `identifier` names: their data key is destroyed, their index entries
/// deleted and their complaints' personal fields blanked; the complaints remain.
pub(crate) async fn erase<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    identifier: &Identifier,
    access: &PiiAccess,
) -> Result<Option<Erased>, StoreError> {
    tx.lock_subjects().await?;
    let Some((subject, _)) = tx.find_subject(identifier.kind, &identifier.digest(keyring)).await? else {
        return Ok(None);
    };
    let rows = tx.sealed_of_subject(&subject).await?;
    for row in &rows {
        let mut complaint = Complaint::decode(row.record.as_slice())?;
        pii::erase(&mut complaint);
        tx.save_sealed(&row.id, &complaint.encode_to_vec(), None, &subject).await?;
    }
    tx.destroy_key(&subject).await?;
    tx.prune_index(&subject, &[]).await?;
    tx.record_access(None, &subject, access).await?;
    Ok(Some(Erased { subject_id: subject, complaints: rows.len() as i64 }))
}

/// Applies `change` to a locked complaint and saves it with its event; the complaint, and
/// whether it changed.
pub(crate) async fn rewrite<T: IntakeTx + ?Sized>(
    tx: &mut T,
    id: &str,
    change: Rewrite,
) -> Result<(Option<Complaint>, bool), StoreError> {
    let Some(current) = tx.lock_record(id).await? else { return Ok((None, false)) };
    let Some((complaint, event)) = change(current.clone())? else { return Ok((Some(current), false)) };
    tx.save_record(id, &complaint).await?;
    tx.append_events(std::slice::from_ref(&event)).await?;
    Ok((Some(complaint), true))
}

/// Adds the complainant's answer to a read-back to a locked complaint, re-sealing its personal
/// part with the corrections, and records the request id and the event with it; the complaint
/// as stored (masked). A retry of the request returns it as it is now and records nothing.
pub(crate) async fn confirm<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    id: &str,
    request: &RequestKey,
    confirmation: ContentConfirmation,
    trace: TraceContext,
) -> Result<Option<Complaint>, StoreError> {
    // Locked first, so a concurrent retry waits here and then finds the request recorded.
    let Some(row) = tx.lock_sealed(id).await? else { return Ok(None) };
    if let Some(hash) = tx.change_request(request.id.as_str()).await? {
        return if hash == request.hash {
            Ok(Some(Complaint::decode(row.record.as_slice())?))
        } else {
            Err(StoreError::RequestIdReused)
        };
    }
    let corrected = !confirmation.corrections.is_empty();
    let (stored, event) = match row.readable_subject() {
        Some((subject, wrapped, _)) => {
            let (complaint, event) = lifecycle::confirmed(row.open(keyring)?, confirmation, trace)?;
            let subject = Subject { id: subject.to_owned(), key: keyring.unwrap(subject, &wrapped)? };
            let (record, sealed) = subject.seal(&complaint)?;
            tx.save_sealed(id, &record, Some(&sealed), &subject.id).await?;
            (Complaint::decode(record.as_slice())?, event)
        }
        // Erased: the answer is recorded only when it holds nothing personal to keep.
        None => {
            let current = Complaint::decode(row.record.as_slice())?;
            let (complaint, event) = lifecycle::confirmed(current, confirmation, trace)?;
            if corrected {
                return Err(StoreError::Erased);
            }
            tx.save_record(id, &complaint).await?;
            (complaint, event)
        }
    };
    // Taken meanwhile by a change of another complaint (this one is locked): another request.
    if !tx.insert_change_request(request, id).await? {
        return Err(StoreError::RequestIdReused);
    }
    tx.append_events(std::slice::from_ref(&event)).await?;
    Ok(Some(stored))
}

/// The subject a complaint's complainant is, found by blind index or created, with every
/// identifier of the complaint naming it. Creation is serialised so that concurrent first
/// complaints of one person agree.
pub(crate) async fn subject_for<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    complaint: &Complaint,
) -> Result<Subject, StoreError> {
    let digests = subjects::digests(keyring, complaint);
    if !digests.is_empty() {
        tx.lock_subjects().await?;
    }
    let has_id = subjects::has_id_document(&digests);
    let mut found = None;
    for (kind, digest) in &digests {
        let Some((id, wrapped)) = tx.find_subject(kind, digest).await? else { continue };
        if subjects::same_person(kind, has_id, tx.subject_has_id(&id).await?) {
            found = Some(Subject { key: keyring.unwrap(&id, &wrapped)?, id });
            break;
        }
    }
    let subject = match found {
        Some(subject) => subject,
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            let (key, wrapped) = keyring.new_data_key(&id)?;
            tx.insert_subject(&id, &wrapped).await?;
            Subject { id, key }
        }
    };
    for (kind, digest) in digests {
        tx.insert_index(kind, &digest, &subject.id).await?;
    }
    Ok(subject)
}

/// The latest stored complaint that `new`, filed by `subject_id`, repeats (D-CASE-5).
pub(crate) async fn recurrence_of<T: IntakeTx + ?Sized>(
    tx: &mut T,
    subject_id: &str,
    new: &NewComplaint,
) -> Result<Option<String>, StoreError> {
    let (Some(business_type), Some(cause)) = codes(&new.complaint) else { return Ok(None) };
    tx.latest_of_issue(subject_id, &business_type, &cause, new.recurrence_since, new.receive_time).await
}

/// What `new`, whose request id is unknown, gets when its source reference identifies a
/// stored complaint (see [`Submitted::by_reference`]); `None` when it identifies none.
pub(crate) async fn answer_by_reference<T: IntakeTx + ?Sized>(
    tx: &mut T,
    new: &NewComplaint,
) -> Result<Option<Submitted>, StoreError> {
    let Some(reference) = new.source_reference() else { return Ok(None) };
    let owners = tx.reference_owners(&[reference.as_str()]).await?;
    owners.into_iter().next().map(|(_, owner)| owner.answer(new)).transpose()
}

/// Every blind-index digest the (readable) complaints of `rows` carry.
fn live_digests(keyring: &Keyring, rows: &[SealedRow]) -> Result<Vec<String>, StoreError> {
    let mut live = Vec::new();
    for row in rows.iter().filter(|r| r.readable_subject().is_some()) {
        for (_, digest) in subjects::digests(keyring, &row.open(keyring)?) {
            if !live.contains(&digest) {
                live.push(digest);
            }
        }
    }
    Ok(live)
}

/// Seals one batch of complaints recorded before personal information was encrypted at
/// rest; how many it sealed.
pub(crate) async fn seal_unsealed<T: IntakeTx + ?Sized>(tx: &mut T, keyring: &Keyring) -> Result<usize, StoreError> {
    let rows = tx.unsealed().await?;
    for (id, complaint) in &rows {
        let subject = subject_for(tx, keyring, complaint).await?;
        let (record, sealed) = subject.seal(complaint)?;
        tx.save_sealed(id, &record, Some(&sealed), &subject.id).await?;
    }
    Ok(rows.len())
}

/// Seals the personal information of every complaint recorded before it was encrypted at
/// rest; `batch` runs [`seal_unsealed`] in a transaction of its own.
pub(crate) async fn seal_legacy<F, Fut>(mut batch: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, StoreError>>,
{
    loop {
        let sealed = batch().await?;
        if sealed == 0 {
            return Ok(());
        }
        tracing::info!(complaints = sealed, "sealed personal information of earlier complaints");
    }
}

/// Derives the source reference of a batch of complaints recorded without one (before it was
/// kept, or by an earlier version still running), earliest recorded first; how many it
/// looked at. Should two share an institution and external reference, the one holding it
/// keeps it (the earliest, unless a later one was submitted while the earlier waited here)
/// and the others are reported: they stay as recorded, found by their names.
pub(crate) async fn derive_references<T: IntakeTx + ?Sized>(tx: &mut T) -> Result<usize, StoreError> {
    tx.lock_references().await?;
    let rows = tx.underived_references().await?;
    for (id, complaint) in &rows {
        let mut reference = SourceReference::of(complaint);
        if let Some(r) = &reference
            && let Some(holder) = tx.reference_holder(r.as_str()).await?
            && holder != *id
        {
            tracing::warn!(
                complaint = %id,
                holder = %holder,
                "a complaint repeats the external reference of another of its institution, which keeps it"
            );
            reference = None;
        }
        tx.set_source_reference(id, reference.as_ref().map(SourceReference::as_str)).await?;
    }
    Ok(rows.len())
}

/// Derives the source reference of every complaint recorded without one; `batch` runs
/// [`derive_references`] in a transaction of its own.
pub(crate) async fn derive_legacy_references<F, Fut>(mut batch: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, StoreError>>,
{
    loop {
        match batch().await {
            Ok(0) => return Ok(()),
            Ok(derived) => tracing::info!(complaints = derived, "derived the source references of earlier complaints"),
            // A submission committed meanwhile took a reference the batch was giving an
            // earlier complaint; done again, the batch finds it held.
            Err(e) if e.is_reference_conflict() => {
                tracing::warn!(error = %e, "a source reference was taken while being derived; deriving again");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What one batch of re-wrapping did.
#[derive(Debug, Default)]
pub(crate) struct Rewrapped {
    /// The last subject looked at; `None` when none was left.
    pub last: Option<String>,
    pub done: usize,
    /// Master key ids of the subjects whose data keys could not be re-wrapped.
    pub skipped: Vec<String>,
}

/// Re-wraps, under the active master key, the data keys of a batch of subjects after
/// `after` that another key wraps. A subject whose key cannot be unwrapped (its master key is
/// not configured, or the wrapping is damaged) is left as it is and reported.
pub(crate) async fn rewrap_stale<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    after: &str,
) -> Result<Rewrapped, StoreError> {
    let stale = tx.stale_keys(keyring.active_key_id(), after).await?;
    let mut batch = Rewrapped { last: stale.last().map(|(id, _)| id.clone()), ..Rewrapped::default() };
    for (id, old) in stale {
        match keyring.rewrap(&id, &old) {
            Ok(Some(new)) => {
                tx.rewrap(&id, &old.key_id, &new).await?;
                batch.done += 1;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(subject = %id, key_id = %old.key_id, error = %e, "a subject's data key cannot be re-wrapped");
                batch.skipped.push(old.key_id);
            }
        }
    }
    Ok(batch)
}

/// Re-wraps every subject's data key under the active master key (after a rotation), so a
/// retired master key can be removed once this has run without reporting failures; `batch`
/// runs [`rewrap_stale`] after the given subject in a transaction of its own.
pub(crate) async fn rewrap_keys<F, Fut>(mut batch: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Rewrapped, StoreError>>,
{
    let mut after = String::new();
    let mut skipped = Vec::new();
    loop {
        let Rewrapped { last, done, skipped: skips } = batch(after.clone()).await?;
        skipped.extend(skips);
        if done > 0 {
            tracing::info!(subjects = done, "re-wrapped data keys under the active master key");
        }
        match last {
            Some(last) => after = last,
            None => break,
        }
    }
    if !skipped.is_empty() {
        // Their personal information stays readable only while their master keys stay
        // configured.
        skipped.sort();
        let failures = skipped.len();
        skipped.dedup();
        tracing::error!(
            subjects = failures,
            key_ids = ?skipped,
            "data keys of some subjects could not be re-wrapped: keep their master keys configured"
        );
        metrics::counter!("redress_pii_rewrap_failures_total").increment(failures as u64);
    }
    Ok(())
}
