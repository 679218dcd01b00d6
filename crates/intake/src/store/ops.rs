//! Intake's store operations, written once over [`IntakeTx`]: load (and lock), apply the
//! domain's rules, save. Each runs inside one transaction that its backend opens and commits:
//! SQLite's group-commit writer, or a PostgreSQL transaction.

use std::future::Future;

use prost::Message;
use redress_platform::events::NewEvent;
use redress_platform::telemetry::TraceContext;
use redress_platform::time::{now, to_micros, to_timestamp};
use redress_proto::redress::intake::v1::{
    Complainant, Complaint, ComplaintProcessingRestricted, ContentConfirmation, PersonalDataSupplement,
};

use super::tx::IntakeTx;
use super::{
    AccessLogVerdict, Erased, Identifier, NewComplaint, PiiAccess, RequestKey, Restriction, Rewrite, SealedRow,
    StoreError, Subject, Submitted, codes,
};
use crate::domain::acceptance::SourceReference;
use crate::domain::access_log::{AccessLogKeys, Broken, LogEntry, Verifier};
use crate::domain::lifecycle;
use crate::domain::pii::{self, Keyring, PiiError};
use crate::domain::subjects::{self, ID_DOCUMENT, PHONE};

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
        record_access(tx, keyring, Some(id), subject, access).await?;
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
        record_access(tx, keyring, Some(&row.id), &subject, access).await?;
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
    let old_restriction = tx.subject_restriction(&old_subject).await?;
    let subject = subject_for(tx, keyring, &complaint).await?;
    // A restriction follows the person (PIPL Art.44): the subject the complaint moves to is
    // restricted from when the old one was, unless it is already.
    if let Some(since) = old_restriction
        && subject.id != old_subject
    {
        restrict_complaints_of(tx, &subject.id, since).await?;
    }
    // The complaint follows the restriction of the subject it now belongs to.
    let restricted = tx.subject_restriction(&subject.id).await?.is_some();
    if complaint.personal_data_restricted != restricted {
        complaint.personal_data_restricted = restricted;
        tx.append_events(&[restriction_event(&complaint, restricted, TraceContext::default())]).await?;
    }
    let (record, sealed) = subject.seal(&complaint)?;
    tx.save_sealed(id, &record, Some(&sealed), &subject.id).await?;
    let remaining = tx.sealed_of_subject(&old_subject).await?;
    tx.prune_index(&old_subject, &live_digests(keyring, &remaining)?).await?;
    // An identifier the old subject gave up now names the corrected complainant.
    for (kind, digest) in subjects::digests(keyring, &complaint) {
        tx.insert_index(kind, &digest, &subject.id).await?;
    }
    record_access(tx, keyring, Some(id), &subject.id, access).await?;
    if subject.id != old_subject {
        record_access(tx, keyring, Some(id), &old_subject, access).await?;
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
    record_access(tx, keyring, None, &subject, access).await?;
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
            // No key is left to seal the note with: only its masked words are kept.
            let mut confirmation = confirmation;
            redress_platform::free_text_pii::mask_in_place(&mut confirmation.note);
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
/// identifier of the complaint naming it. Complaints sharing an identifier are serialised
/// (their identifiers locked before the lookup), so concurrent complaints of one person agree
/// on one subject and the later one sees the earlier; complaints of other people go on
/// meanwhile.
pub(crate) async fn subject_for<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    complaint: &Complaint,
) -> Result<Subject, StoreError> {
    let digests = subjects::digests(keyring, complaint);
    if !digests.is_empty() {
        tx.lock_identifiers(&digests).await?;
    }
    let has_id = subjects::has_id_document(&digests);
    let mut found = None;
    for (kind, digest) in &digests {
        let Some((id, wrapped)) = tx.find_subject(kind, digest).await? else { continue };
        if *kind != ID_DOCUMENT && has_id {
            // Found by a phone: whether it is known by an identity document decides. Another
            // person's complaint, with other identifiers (not locked here), may be giving it
            // one through another of its phones; that one holds the subject locked.
            tx.lock_subject(&id).await?;
        }
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

/// The latest stored complaint that `new`, filed by `subject_id`, repeats (D-CASE-5); none
/// while the subject restricted its processing (`restricted`), whose personal information then
/// serves only to handle the complaint itself.
pub(crate) async fn recurrence_of<T: IntakeTx + ?Sized>(
    tx: &mut T,
    subject_id: &str,
    restricted: bool,
    new: &NewComplaint,
) -> Result<Option<String>, StoreError> {
    if restricted {
        return Ok(None);
    }
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
    // A batch finds the subjects of many people: it runs alone, as a merge does, rather than
    // taking their identifiers one complaint after another.
    tx.lock_subjects().await?;
    let rows = tx.unsealed().await?;
    for (id, complaint) in &rows {
        let subject = subject_for(tx, keyring, complaint).await?;
        let (record, sealed) = subject.seal(complaint)?;
        tx.save_sealed(id, &record, Some(&sealed), &subject.id).await?;
        tx.set_free_text_form(id).await?;
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

/// Complaints one batch of free-text sealing looks at.
const FREE_TEXT_BATCH: i64 = 200;

/// What one batch of free-text sealing did.
#[derive(Debug, Default)]
pub(crate) struct FreeTextSealed {
    /// The last complaint looked at; `None` when none was left.
    pub last: Option<String>,
    /// Complaints whose free text held identifiers in clear: now masked in the record and,
    /// while their subject's key lives, sealed in clear with it.
    pub sealed: usize,
    /// Complaints left as they were because their personal information does not open.
    pub skipped: usize,
}

/// Seals the free text of a batch of complaints after `after` recorded before identifiers in
/// free text were detected, as a submission now seals it: the complaint opened with its
/// subject's key and sealed again, the identifiers masked in the record and the words as
/// written in the personal part. A complaint whose subject was erased has only the masked
/// words left in its record. Nothing else of a complaint changes, no event is announced (the
/// complaint did not change) and no access is recorded (no one read anything). Each complaint
/// is marked in the same transaction, so an interrupted run resumes with those not done yet.
pub(crate) async fn seal_free_text<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    after: &str,
) -> Result<FreeTextSealed, StoreError> {
    let rows = tx.unchecked_free_text(after, FREE_TEXT_BATCH).await?;
    let mut batch = FreeTextSealed { last: rows.last().map(|r| r.id.clone()), ..FreeTextSealed::default() };
    for row in &rows {
        let stored = Complaint::decode(row.record.as_slice())?;
        if pii::holds_clear_free_text(&stored) {
            let subject_id = row.subject_id.as_deref().unwrap_or_default();
            match row.readable_subject() {
                Some((subject, wrapped, sealed)) => {
                    let mut complaint = stored;
                    let opened = keyring.unwrap(subject, &wrapped).and_then(|key| {
                        pii::unseal(keyring, &mut complaint, &row.id, subject, &wrapped, sealed).map(|()| key)
                    });
                    let key = match opened {
                        Ok(key) => key,
                        Err(e) => {
                            tracing::error!(complaint = %row.id, error = %e,
                                "a complaint's personal information does not open; its free text stays as recorded");
                            batch.skipped += 1;
                            continue;
                        }
                    };
                    let subject = Subject { id: subject.to_owned(), key };
                    let (record, sealed) = subject.seal(&complaint)?;
                    tx.save_sealed(&row.id, &record, Some(&sealed), &subject.id).await?;
                }
                None => {
                    let mut masked = stored;
                    crate::domain::mask::free_texts(&mut masked, &crate::domain::mask::free_text);
                    tx.save_sealed(&row.id, &masked.encode_to_vec(), row.pii.as_deref(), subject_id).await?;
                }
            }
            batch.sealed += 1;
        }
        tx.set_free_text_form(&row.id).await?;
    }
    Ok(batch)
}

/// Seals the free text of every complaint recorded before identifiers in free text were
/// detected; `batch` runs [`seal_free_text`] after the given complaint in a transaction of
/// its own.
pub(crate) async fn seal_legacy_free_text<F, Fut>(mut batch: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<FreeTextSealed, StoreError>>,
{
    let mut after = String::new();
    let mut skipped = 0;
    loop {
        let FreeTextSealed { last, sealed, skipped: skips } = batch(after.clone()).await?;
        skipped += skips;
        if sealed > 0 {
            tracing::info!(complaints = sealed, "sealed identifiers written into the free text of earlier complaints");
        }
        match last {
            Some(last) => after = last,
            None => break,
        }
    }
    if skipped > 0 {
        // Their free text stays in clear in the record until their key opens again.
        tracing::error!(
            complaints = skipped,
            "the free text of some complaints could not be sealed: their personal information does not open"
        );
        metrics::counter!("redress_pii_free_text_failures_total").increment(skipped as u64);
    }
    Ok(())
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

/// Subjects one batch of re-indexing looks at.
const REINDEX_BATCH: i64 = 100;

/// What one batch of re-indexing did.
#[derive(Debug, Default)]
pub(crate) struct Reindexed {
    /// The last subject looked at; `None` when none was left.
    pub last: Option<String>,
    /// Subjects whose blind indexes are now canonical (survivors of merges among them).
    pub reindexed: usize,
    /// Subjects merged into another.
    pub merged: usize,
    /// Subjects left as they were because their personal information does not open.
    pub skipped: usize,
}

/// A complaint of a subject being re-indexed: its stored record and, while its personal
/// information can be opened, the complaint in clear.
struct Opened {
    id: String,
    record: Vec<u8>,
    pii: Option<Complaint>,
}

/// A subject being re-indexed or merged, with its complaints opened.
struct Member {
    id: String,
    wrapped: pii::WrappedKey,
    complaints: Vec<Opened>,
}

/// Opens complaints of a subject; a key that does not unwrap or a value that does not open
/// fails the whole subject, before anything is written.
fn open_rows(keyring: &Keyring, rows: Vec<SealedRow>) -> Result<Vec<Opened>, PiiError> {
    rows.into_iter()
        .map(|row| {
            let pii = match row.readable_subject() {
                Some((subject, wrapped, sealed)) => {
                    let mut complaint =
                        Complaint::decode(row.record.as_slice()).map_err(|e| PiiError::Corrupt(e.to_string()))?;
                    pii::unseal(keyring, &mut complaint, &row.id, subject, &wrapped, sealed)?;
                    Some(complaint)
                }
                None => None,
            };
            Ok(Opened { id: row.id, record: row.record, pii })
        })
        .collect()
}

/// Every blind-index digest, as (kind, digest), the opened complaints of `members` carry.
fn carried_digests(keyring: &Keyring, members: &[Member]) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for complaint in members.iter().flat_map(|m| &m.complaints).filter_map(|c| c.pii.as_ref()) {
        for (kind, digest) in subjects::digests(keyring, complaint) {
            if !out.iter().any(|(_, d)| *d == digest) {
                out.push((kind, digest));
            }
        }
    }
    out
}

/// The subject a merge leaves, and why, as the access log records it.
fn merge_access(merged: &str, survivor: &str) -> PiiAccess {
    PiiAccess {
        actor: "service:intake".to_owned(),
        action: "merge",
        reason: format!(
            "数据主体合并：电话号码按 E.164 规范后相同且身份证件不冲突，subjects/{merged} 并入 subjects/{survivor}"
        ),
    }
}

/// Re-indexes subject `id` in the canonical form, from the identifiers its complaints carry,
/// merging into one the subjects that prove to be the same person: those carrying one of its
/// phones, unless both are known by (differing) identity documents. The survivor is the
/// earliest created; the others' complaints are re-sealed under its key (their AAD names it),
/// their keys destroyed and their index entries deleted, each moved complaint recorded in the
/// access log of both. Returns how many subjects were merged into the survivor, or the reason
/// the subject's personal information cannot be opened (then nothing was written).
async fn reindex_subject<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    id: &str,
) -> Result<Result<usize, PiiError>, StoreError> {
    // Merged into another earlier in this batch: re-indexed with it.
    let Some(wrapped) = tx.subject_key(id).await? else { return Ok(Ok(0)) };
    let rows = tx.lock_sealed_of_subject(id).await?;
    let complaints = match open_rows(keyring, rows) {
        Ok(opened) => opened,
        Err(e) => return Ok(Err(e)),
    };
    let mut members = vec![Member { id: id.to_owned(), wrapped, complaints }];
    let own = carried_digests(keyring, &members);
    let mut sharing: Vec<(String, pii::WrappedKey)> = Vec::new();
    for (_, digest) in own.iter().filter(|(kind, _)| *kind == PHONE) {
        if let Some((other, wrapped)) = tx.find_subject(PHONE, digest).await?
            && other != id
            && !sharing.iter().any(|(s, _)| *s == other)
        {
            sharing.push((other, wrapped));
        }
    }
    sharing.sort_by(|a, b| a.0.cmp(&b.0));
    let mut with_id = Vec::with_capacity(sharing.len());
    for (other, _) in &sharing {
        with_id.push((other.clone(), tx.subject_has_id(other).await?));
    }
    let has_id = tx.subject_has_id(id).await?;
    for other in subjects::one_person(has_id, &with_id) {
        let Some((_, wrapped)) = sharing.iter().find(|(s, _)| s == other) else { continue };
        let rows = tx.lock_sealed_of_subject(other).await?;
        match open_rows(keyring, rows) {
            Ok(complaints) => members.push(Member { id: other.to_owned(), wrapped: wrapped.clone(), complaints }),
            Err(e) => return Ok(Err(e)),
        }
    }
    // Subject ids are time-ordered: the earliest created survives.
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let survivor = match keyring.unwrap(&members[0].id, &members[0].wrapped) {
        Ok(key) => Subject { id: members[0].id.clone(), key },
        Err(e) => return Ok(Err(e)),
    };
    for member in &members[1..] {
        let access = merge_access(&member.id, &survivor.id);
        for complaint in &member.complaints {
            match &complaint.pii {
                Some(clear) => {
                    let (record, sealed) = survivor.seal(clear)?;
                    tx.save_sealed(&complaint.id, &record, Some(&sealed), &survivor.id).await?;
                }
                None => tx.save_sealed(&complaint.id, &complaint.record, None, &survivor.id).await?,
            }
            record_access(tx, keyring, Some(&complaint.id), &survivor.id, &access).await?;
            record_access(tx, keyring, Some(&complaint.id), &member.id, &access).await?;
        }
        tx.prune_index(&member.id, &[]).await?;
        tx.merge_subject(&member.id, &survivor.id).await?;
    }
    // A restriction follows the person (PIPL Art.44): the survivor is restricted from the
    // earliest restriction among the merged subjects, and every complaint it now holds with it.
    let mut restricted_since: Option<i64> = None;
    for member in &members {
        if let Some(since) = tx.subject_restriction(&member.id).await? {
            restricted_since = Some(restricted_since.map_or(since, |earlier| earlier.min(since)));
        }
    }
    if let Some(since) = restricted_since {
        restrict_complaints_of(tx, &survivor.id, since).await?;
    }
    let carried = carried_digests(keyring, &members);
    for (kind, digest) in &carried {
        tx.insert_index(kind, digest, &survivor.id).await?;
    }
    let keep: Vec<String> = carried.into_iter().map(|(_, digest)| digest).collect();
    tx.prune_index(&survivor.id, &keep).await?;
    tx.set_index_form(&survivor.id).await?;
    Ok(Ok(members.len() - 1))
}

/// Re-indexes, in the canonical form, a batch of live subjects after `after` whose blind
/// indexes are in an older form (see [`reindex_subject`]), under the lock that serialises
/// changes to subjects. A subject whose personal information does not open is left as it is
/// and reported.
pub(crate) async fn reindex_stale<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    after: &str,
) -> Result<Reindexed, StoreError> {
    tx.lock_subjects().await?;
    let stale = tx.stale_subjects(after, REINDEX_BATCH).await?;
    let mut batch = Reindexed { last: stale.last().cloned(), ..Reindexed::default() };
    for id in stale {
        match reindex_subject(tx, keyring, &id).await? {
            Ok(merged) => {
                batch.reindexed += 1;
                batch.merged += merged;
            }
            Err(e) => {
                tracing::error!(subject = %id, error = %e, "a subject cannot be re-indexed: its personal information does not open");
                batch.skipped += 1;
            }
        }
    }
    Ok(batch)
}

/// Re-indexes every subject recorded with blind indexes of an older form (phones as written)
/// in the canonical one (phones in E.164), merging the subjects that prove to be one person;
/// `batch` runs [`reindex_stale`] after the given subject in a transaction of its own, so a
/// merge is whole or not at all and an interrupted run resumes where it stopped.
pub(crate) async fn reindex_subjects<F, Fut>(mut batch: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Reindexed, StoreError>>,
{
    let mut after = String::new();
    let mut skipped = 0;
    loop {
        let Reindexed { last, reindexed, merged, skipped: skips } = batch(after.clone()).await?;
        skipped += skips;
        if reindexed > 0 {
            tracing::info!(subjects = reindexed, merged, "re-indexed subjects with phones in E.164");
        }
        match last {
            Some(last) => after = last,
            None => break,
        }
    }
    if skipped > 0 {
        // Found only by identifiers written as before until their master keys are configured
        // and the store opens again.
        tracing::error!(
            subjects = skipped,
            "some subjects could not be re-indexed: their personal information does not open"
        );
        metrics::counter!("redress_pii_reindex_failures_total").increment(skipped as u64);
    }
    Ok(())
}

/// Records an access to a subject's personal information in the access log, chained after its
/// head under the active access-log key (D-PII-4).
pub(crate) async fn record_access<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    complaint_id: Option<&str>,
    subject_id: &str,
    access: &PiiAccess,
) -> Result<(), StoreError> {
    let at = tx.lock_access_chain().await?;
    let mut entry = LogEntry {
        chain_position: 0,
        complaint_id: complaint_id.map(str::to_owned),
        subject_id: subject_id.to_owned(),
        actor: access.actor.clone(),
        action: access.action.to_owned(),
        reason: access.reason.clone(),
        access_time_us: to_micros(now()),
        previous_hash: String::new(),
        hash: String::new(),
        key_id: String::new(),
    };
    entry.chain(keyring.access_log(), at.length, &at.head);
    tx.insert_access(&entry).await?;
    tx.set_access_chain(&at.after(keyring.access_log(), &entry)).await?;
    Ok(())
}

/// Appends a batch of access-log entries recorded outside the chain before row `before` (the
/// first chained entry when the migration began; all when there was none) to it, in the order
/// they were recorded; how many. A head written before heads were sealed (no seal) is sealed
/// first, once the chain up to it verifies; when it does not, or the head has a seal that does
/// not verify, nothing is chained or sealed. Run only when the operator asks for it
/// (`pii.chain_legacy_access_log`).
pub(crate) async fn chain_unchained<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    before: Option<i64>,
) -> Result<usize, StoreError> {
    let keys = keyring.access_log();
    let mut at = tx.lock_access_chain().await?;
    let mut sealed = false;
    match keys.check_seal(&at) {
        Ok(()) => {}
        Err(_) if at.seal.is_empty() => {
            // Every chained entry, so that entries beyond the head break it too.
            let verifier = verify_chain(tx, keys, i64::MAX).await?;
            if let Err(broken) = verifier.finish(at.length, &at.head) {
                tracing::error!(position = broken.position, reason = %broken.reason,
                    "the personal-data access log does not verify as stored; it is not sealed and nothing is chained");
                return Ok(0);
            }
            at.seal = keys.seal_head(at.length, &at.head);
            sealed = true;
        }
        Err(broken) => {
            tracing::error!(position = broken.position, reason = %broken.reason,
                "the personal-data access log's head does not verify; nothing is chained");
            return Ok(0);
        }
    }
    let rows = tx.unchained_accesses(before, 500).await?;
    for (id, mut entry) in rows.iter().cloned() {
        entry.chain(keys, at.length, &at.head);
        tx.chain_access(id, &entry).await?;
        at = at.after(keys, &entry);
    }
    if sealed || !rows.is_empty() {
        tx.set_access_chain(&at).await?;
    }
    Ok(rows.len())
}

/// Chains every access-log entry recorded outside the chain before its first chained entry;
/// `first` reads that entry's row id, `batch` runs [`chain_unchained`] in a transaction of its
/// own.
pub(crate) async fn chain_access_log<FF, FFut, F, Fut>(first: FF, mut batch: F) -> anyhow::Result<()>
where
    FF: FnOnce() -> FFut,
    FFut: Future<Output = Result<Option<i64>, StoreError>>,
    F: FnMut(Option<i64>) -> Fut,
    Fut: Future<Output = Result<usize, StoreError>>,
{
    let before = first().await?;
    let mut total = 0;
    loop {
        let chained = batch(before).await?;
        if chained == 0 {
            tracing::warn!(
                entries = total,
                "pii.chain_legacy_access_log is set: earlier entries of the personal-data access log were chained \
                 and its head sealed; remove the setting now, while it is set, entries inserted in the database \
                 could be chained"
            );
            return Ok(());
        }
        total += chained;
        tracing::info!(entries = chained, "chained earlier entries of the personal-data access log");
    }
}

/// Entries one page of verification reads.
const VERIFY_PAGE: i64 = 1_000;

/// Recomputes the chain's entries up to position `until`, page by page.
async fn verify_chain<'k, T: IntakeTx + ?Sized>(
    tx: &mut T,
    keys: &'k AccessLogKeys,
    until: i64,
) -> Result<Verifier<'k>, StoreError> {
    let mut verifier = Verifier::new(keys);
    let mut after = 0;
    loop {
        let page = tx.chained_accesses(after, until, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.chain_position;
        verifier.page(&page);
    }
    Ok(verifier)
}

/// Recomputes the access log's chain, page by page, up to the head it recorded when the
/// verification began (entries chained meanwhile are left to the next one), and checks the
/// head's seal, that no chained entry lies beyond it, and that no entry recorded after the
/// chain began is outside it; the first break found, by position.
pub(crate) async fn verify_access_log(
    tx: &mut dyn IntakeTx,
    keyring: &Keyring,
) -> Result<AccessLogVerdict, StoreError> {
    let keys = keyring.access_log();
    let unchained = tx.count_unchained().await?;
    let Some((at, beyond)) = tx.access_chain().await? else {
        let reason = "the head the log records (its length and last hash) is missing".to_owned();
        return Ok(AccessLogVerdict { entries: 0, unchained, broken: Some(Broken { position: 1, reason }) });
    };
    let verifier = verify_chain(tx, keys, at.length).await?;
    let entries = verifier.checked();
    let mut broken = verifier.finish(at.length, &at.head).err();
    if broken.is_none() && beyond > 0 {
        let reason = format!("{beyond} chained entries lie beyond the head the log records");
        broken = Some(Broken { position: at.length + 1, reason });
    }
    if broken.is_none() {
        broken = keys.check_seal(&at).err();
    }
    if let Some(position) = tx.first_unchained_after_chain().await?
        && broken.as_ref().is_none_or(|b| position < b.position)
    {
        let reason = "an entry recorded after the chain began is outside it".to_owned();
        broken = Some(Broken { position, reason });
    }
    Ok(AccessLogVerdict { entries, unchained, broken })
}

/// The event announcing that a complaint's processing is restricted, or no longer.
fn restriction_event(complaint: &Complaint, restricted: bool, trace: TraceContext) -> NewEvent {
    let event = ComplaintProcessingRestricted {
        complaint: complaint.name.clone(),
        org_unit: complaint.org_unit.clone(),
        restricted,
        change_time: Some(to_timestamp(now())),
    };
    NewEvent::in_trace(complaint.name.clone(), complaint.org_unit.clone(), &event, trace)
}

/// Restricts `subject` from `since_us` unless it is restricted already, and marks every one
/// of its complaints not marked yet, each announced with ComplaintProcessingRestricted: how a
/// restriction follows its person to the subject their complaints end up with (a correction
/// moving a complaint, a merge of subjects).
async fn restrict_complaints_of<T: IntakeTx + ?Sized>(
    tx: &mut T,
    subject: &str,
    since_us: i64,
) -> Result<(), StoreError> {
    if tx.subject_restriction(subject).await?.is_none() {
        tx.set_restriction(subject, Some(since_us)).await?;
    }
    let mut events = Vec::new();
    for row in tx.lock_sealed_of_subject(subject).await? {
        let mut complaint = Complaint::decode(row.record.as_slice())?;
        if complaint.personal_data_restricted {
            continue;
        }
        complaint.personal_data_restricted = true;
        tx.save_record(&row.id, &complaint).await?;
        events.push(restriction_event(&complaint, true, TraceContext::default()));
    }
    if !events.is_empty() {
        tx.append_events(&events).await?;
    }
    Ok(())
}

/// Restricts (`restrict`) or lifts the restriction of the processing of the person
/// `identifier` names (PIPL Art.44): the subject's complaints are marked, each announced with
/// ComplaintProcessingRestricted, and the request recorded in the access log. A retry of
/// `request` returns the state as it is; the same id with another request is
/// [`StoreError::RequestIdReused`]. `None` when nothing is held about the person.
pub(crate) async fn restrict<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    identifier: &Identifier,
    restrict: bool,
    request: &RequestKey,
    access: &PiiAccess,
    trace: TraceContext,
) -> Result<Option<Restriction>, StoreError> {
    tx.lock_subjects().await?;
    let Some((subject, _)) = tx.find_subject(identifier.kind, &identifier.digest(keyring)).await? else {
        return Ok(None);
    };
    let rows = tx.lock_sealed_of_subject(&subject).await?;
    let complaints = rows.len() as i64;
    let since = tx.subject_restriction(&subject).await?;
    if let Some(hash) = tx.subject_request(request.id.as_str()).await? {
        return if hash == request.hash {
            Ok(Some(Restriction { subject_id: subject, since_us: since, complaints }))
        } else {
            Err(StoreError::RequestIdReused)
        };
    }
    let since = match (since, restrict) {
        (Some(at), true) => Some(at),
        (None, false) => None,
        (_, restrict) => {
            let since = restrict.then(|| to_micros(now()));
            tx.set_restriction(&subject, since).await?;
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut complaint = Complaint::decode(row.record.as_slice())?;
                complaint.personal_data_restricted = restrict;
                tx.save_record(&row.id, &complaint).await?;
                events.push(restriction_event(&complaint, restrict, trace.clone()));
            }
            tx.append_events(&events).await?;
            since
        }
    };
    if !tx.insert_subject_request(request, &subject).await? {
        return Err(StoreError::RequestIdReused);
    }
    record_access(tx, keyring, None, &subject, access).await?;
    Ok(Some(Restriction { subject_id: subject, since_us: since, complaints }))
}

/// Adds a supplement to a locked complaint's personal information (PIPL Art.46), sealed with
/// the complainant's key, the request id and the access recorded with it; the complaint in
/// clear. A retry of `request` returns the complaint (the read recorded) and adds nothing.
pub(crate) async fn supplement<T: IntakeTx + ?Sized>(
    tx: &mut T,
    keyring: &Keyring,
    id: &str,
    request: &RequestKey,
    supplement: PersonalDataSupplement,
    access: &PiiAccess,
) -> Result<Option<Complaint>, StoreError> {
    // As a correction: after any erasure of the same person, never meanwhile.
    tx.lock_subjects().await?;
    let Some(row) = tx.lock_sealed(id).await? else { return Ok(None) };
    let Some((subject, wrapped, _)) = row.readable_subject() else { return Err(StoreError::Erased) };
    let subject = Subject { id: subject.to_owned(), key: keyring.unwrap(subject, &wrapped)? };
    let mut complaint = row.open(keyring)?;
    if let Some(hash) = tx.change_request(request.id.as_str()).await? {
        if hash != request.hash {
            return Err(StoreError::RequestIdReused);
        }
        let read = PiiAccess { action: "read", ..access.clone() };
        record_access(tx, keyring, Some(id), &subject.id, &read).await?;
        return Ok(Some(complaint));
    }
    complaint.personal_data_supplements.push(supplement);
    let (record, sealed) = subject.seal(&complaint)?;
    tx.save_sealed(id, &record, Some(&sealed), &subject.id).await?;
    if !tx.insert_change_request(request, id).await? {
        return Err(StoreError::RequestIdReused);
    }
    record_access(tx, keyring, Some(id), &subject.id, access).await?;
    Ok(Some(complaint))
}
