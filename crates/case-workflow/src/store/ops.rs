//! Case-workflow's store operations, written once over [`CaseTx`]: load and lock, run the
//! pure planning function, save. Each runs inside one transaction that its backend opens
//! and commits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::consumer;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_proto::redress::case::v1::Case;
use redress_proto::redress::common::v1::Event;

use super::tx::CaseTx;
use super::{Effect, Follow, INTAKE_CONSUMER, Rechained, Update, effect_of, follow_for, recurrence_of};
use crate::domain::workflow::Rules;
use crate::error::CaseError;

/// What a batch of events (or a replay) changed.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The consumer's position after the batch.
    pub position: i64,
    pub opened: usize,
    /// Cases changed by intake's follow-ups (reclassification, withdrawal, recurrence link).
    pub followed: usize,
}

impl Applied {
    /// Whether anything was written that announces an event.
    pub fn announced(&self) -> bool {
        self.opened + self.followed > 0
    }
}

/// One change to a case (and the other case of a link): lock the rows in id order, then look
/// for the request id, so a concurrent retry waits and then finds the first result. Returns
/// the case and whether anything was written.
pub(crate) async fn update<T: CaseTx + ?Sized>(
    tx: &mut T,
    update: Update,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(Case, bool), CaseError> {
    let mut ids: Vec<&String> = std::iter::once(&update.id).chain(update.other.as_ref()).collect();
    ids.sort();
    let mut loaded = std::collections::HashMap::new();
    for id in ids {
        loaded.insert(id.clone(), tx.load(id).await?);
    }
    if let Some(key) = &update.request
        && let Some(case) = super::replay(key, tx.load_request(&key.id).await?)?
    {
        return Ok((case, false));
    }
    let primary = loaded.remove(&update.id).flatten();
    let other = update.other.as_ref().map(|id| loaded.remove(id).flatten());
    let request = update.request.clone();
    let plan = super::plan_update(primary, other, update, rules, now)?;
    tx.write_plan(&plan).await?;
    if let Some(key) = request {
        tx.save_request(&key, &plan.rows[0].id, &plan.response.encode_to_vec()).await?;
    }
    Ok((plan.response, true))
}

/// The sweep of one case: raises what is due by `now`; whether it announced anything.
pub(crate) async fn sweep_case<T: CaseTx + ?Sized>(
    tx: &mut T,
    id: &str,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<bool, CaseError> {
    replan(tx, id, |loaded| super::plan_sweep(loaded, rules, now)).await
}

/// The revision of one case's clocks on the rules now in force (D-SLA-6): whether they moved
/// (and their events were written).
pub(crate) async fn revise_case<T: CaseTx + ?Sized>(
    tx: &mut T,
    id: &str,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<bool, CaseError> {
    replan(tx, id, |loaded| super::plan_revision(loaded, rules, now)).await
}

/// Loads and locks a case, plans what `plan` makes of it, and writes that; whether it
/// announced anything.
async fn replan<T: CaseTx + ?Sized>(
    tx: &mut T,
    id: &str,
    plan: impl FnOnce(Option<super::Loaded>) -> Option<super::Plan> + Send,
) -> Result<bool, CaseError> {
    let Some(plan) = plan(tx.load(id).await?) else { return Ok(false) };
    tx.write_plan(&plan).await?;
    Ok(!plan.events.is_empty())
}

/// Revises every case with a provisional clock: `page` lists the next ids after the one given
/// (keyset, so a case that stays provisional is passed over), `revise` runs [`revise_case`] in
/// a transaction of its own.
pub(crate) async fn revise_provisional<P, PF, R, RF>(mut page: P, mut revise: R) -> anyhow::Result<super::Revised>
where
    P: FnMut(String) -> PF,
    PF: std::future::Future<Output = anyhow::Result<Vec<String>>>,
    R: FnMut(String) -> RF,
    RF: std::future::Future<Output = Result<bool, CaseError>>,
{
    let mut done = super::Revised::default();
    let mut after = String::new();
    loop {
        let ids = page(after.clone()).await?;
        let Some(last) = ids.last().cloned() else { return Ok(done) };
        for id in ids {
            done.recomputed += 1;
            if revise(id).await? {
                done.revised += 1;
            }
        }
        after = last;
    }
}

/// Chains a case's audit entries written before the trail was keyed again under the active
/// key, once their unkeyed chain verifies, and seals the new head; all in the caller's
/// transaction.
async fn rechain_case<T: CaseTx + ?Sized>(
    tx: &mut T,
    id: &str,
    keys: &crate::domain::audit::AuditKeys,
) -> Result<Rechained, CaseError> {
    if tx.load(id).await?.is_none() {
        return Ok(Rechained::Nothing);
    }
    let Some(trail) = tx.trail(id).await? else { return Ok(Rechained::Nothing) };
    match crate::domain::audit::rechain(keys, id, &trail.entries, trail.length, &trail.head) {
        Ok(None) => Ok(Rechained::Nothing),
        Ok(Some((entries, head))) => {
            tx.rechain(id, &entries, &head, &keys.seal_head(id, trail.length, &head)).await?;
            Ok(Rechained::Rechained)
        }
        Err(broken) => Ok(Rechained::Broken(broken)),
    }
}

/// Seals a case's head written before heads were sealed, once its trail verifies under the
/// configured keys; all in the caller's transaction.
async fn seal_case<T: CaseTx + ?Sized>(
    tx: &mut T,
    id: &str,
    keys: &crate::domain::audit::AuditKeys,
) -> Result<Rechained, CaseError> {
    if tx.load(id).await?.is_none() {
        return Ok(Rechained::Nothing);
    }
    let Some(trail) = tx.trail(id).await? else { return Ok(Rechained::Nothing) };
    let (entries, length, head) = (&trail.entries, trail.length, &trail.head);
    match crate::domain::audit::seal_legacy_head(keys, id, entries, length, head, &trail.seal) {
        Ok(None) => Ok(Rechained::Nothing),
        Ok(Some(seal)) => {
            tx.rechain(id, &[], head, &seal).await?;
            Ok(Rechained::Sealed)
        }
        Err(broken) => Ok(Rechained::Broken(broken)),
    }
}

/// What the operator asks for with `audit.rechain_legacy`, all in the caller's transaction:
/// chains every trail's unkeyed entries again under the active key, once for the database, and
/// records that it was done; then seals every head written before heads were sealed whose
/// trail verifies. Once recorded, nothing is chained again: an unkeyed entry found later was
/// written by someone without the key. When the record is missing although keyed entries
/// exist, it was removed from the database, and nothing is chained either (that would seal
/// whatever was rewritten meanwhile).
pub(crate) async fn key_trails<T: CaseTx + ?Sized>(
    tx: &mut T,
    keys: &crate::domain::audit::AuditKeys,
    now: DateTime<Utc>,
) -> Result<super::RechainedTrails, CaseError> {
    let mut done = super::RechainedTrails::default();
    if tx.keying_recorded().await? {
        done.already_keyed = true;
    } else {
        key_unkeyed(tx, keys, &mut done).await?;
        tx.record_keying(keys.active_id(), now.timestamp_micros(), done.rechained as i64).await?;
    }
    for id in tx.unsealed_cases().await? {
        match seal_case(tx, &id, keys).await? {
            Rechained::Sealed | Rechained::Rechained => done.sealed += 1,
            Rechained::Nothing => {}
            Rechained::Broken(broken) => {
                if !done.broken.contains(&id) {
                    tracing::error!(case = %id, sequence = broken.sequence, reason = %broken.reason,
                        "audit trail did not verify as stored; its head is left unsealed");
                    done.broken.push(id);
                }
            }
        }
    }
    Ok(done)
}

/// The keying of [`key_trails`]: chains unkeyed trails again unless any entry is keyed.
async fn key_unkeyed<T: CaseTx + ?Sized>(
    tx: &mut T,
    keys: &crate::domain::audit::AuditKeys,
    done: &mut super::RechainedTrails,
) -> Result<(), CaseError> {
    let unkeyed = tx.unkeyed_cases().await?;
    if tx.any_keyed_entry().await? {
        if !unkeyed.is_empty() {
            tracing::error!(
                cases = unkeyed.len(),
                "the record of keying the audit trails is missing while keyed entries exist; \
                 unkeyed entries are not chained again and do not verify"
            );
        }
        done.already_keyed = true;
        done.broken = unkeyed;
        return Ok(());
    }
    for id in unkeyed {
        match rechain_case(tx, &id, keys).await? {
            Rechained::Rechained | Rechained::Sealed => done.rechained += 1,
            Rechained::Nothing => {}
            Rechained::Broken(broken) => {
                tracing::error!(case = %id, sequence = broken.sequence, reason = %broken.reason,
                    "audit trail did not verify as stored before keying; left unkeyed");
                done.broken.push(id);
            }
        }
    }
    Ok(())
}

/// Applies a batch of intake's events strictly in feed order after the stored position, and
/// stores the new position: all in the caller's transaction.
pub(crate) async fn apply_batch<T: CaseTx + ?Sized>(
    tx: &mut T,
    events: &[Event],
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Applied, CaseError> {
    // Cases this batch changes are locked up front, in id order.
    let changed: Vec<String> = events
        .iter()
        .flat_map(|e| match follow_for(e) {
            Ok(Some(f)) => vec![f.complaint],
            _ => recurrence_of(e).into_iter().collect(),
        })
        .collect();
    if !changed.is_empty() {
        tx.lock_cases_of(&changed).await?;
    }
    let mut intake = IntakeEvents { rules, now, applied: Applied::default() };
    let position = consumer::apply_in_order(tx, INTAKE_CONSUMER, events, &mut intake).await?;
    Ok(Applied { position, ..intake.applied })
}

/// Applies a dead letter again and marks it replayed, or returns it unchanged when it was
/// replayed before. Still failing writes nothing.
pub(crate) async fn replay<T: CaseTx + ?Sized>(
    tx: &mut T,
    replay: &Replay,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(DeadLetter, Applied), CaseError> {
    let mut intake = IntakeEvents { rules, now, applied: Applied::default() };
    let dead = consumer::replay(tx, replay, &mut intake).await?;
    Ok((dead, intake.applied))
}

/// What intake's events mean for cases, and what applying them changed.
struct IntakeEvents<'a> {
    rules: &'a Rules,
    now: DateTime<Utc>,
    applied: Applied,
}

#[async_trait::async_trait]
impl<T: CaseTx + ?Sized> consumer::ApplyEvent<T> for IntakeEvents<'_> {
    type Error = CaseError;

    async fn apply(&mut self, tx: &mut T, event: &Event) -> Result<consumer::Effect, CaseError> {
        match effect_of(event, self.rules, self.now) {
            // It cannot be applied, now or on any retry: it becomes a dead letter.
            Effect::Unappliable(why) => Ok(consumer::Effect::Unappliable(why)),
            effect => {
                apply_effect(tx, effect, self.rules, self.now, &mut self.applied).await?;
                Ok(consumer::Effect::Applied)
            }
        }
    }
}

async fn apply_effect<T: CaseTx + ?Sized>(
    tx: &mut T,
    effect: Effect,
    rules: &Rules,
    now: DateTime<Utc>,
    applied: &mut Applied,
) -> Result<(), CaseError> {
    match effect {
        Effect::Open(opening) => {
            // A complaint that has a case already is passed over and announces nothing; only a
            // case opened now links to the case it repeats (once).
            if tx.insert_opening(&opening).await? {
                applied.opened += 1;
                if let Some(link) = &opening.link {
                    applied.followed += follow(tx, link, rules, now).await?;
                }
            }
        }
        Effect::Follow(f) => applied.followed += follow(tx, &f, rules, now).await?,
        Effect::Nothing | Effect::Unappliable(_) => {}
    }
    Ok(())
}

/// Applies one of intake's changes to the complaint's case (and, for a link, to the other
/// complaint's case), loading the rows in id order; 1 when it changed anything.
async fn follow<T: CaseTx + ?Sized>(
    tx: &mut T,
    follow: &Follow,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<usize, CaseError> {
    let Some(id) = tx.case_of_complaint(&follow.complaint).await? else { return Ok(0) };
    let other_id = match &follow.other {
        Some(complaint) => Some(tx.case_of_complaint(complaint).await?),
        None => None,
    };
    let mut ids = vec![id.clone()];
    if let Some(Some(other)) = &other_id {
        ids.push(other.clone());
    }
    ids.sort();
    ids.dedup();
    let mut loaded = BTreeMap::new();
    for i in &ids {
        loaded.insert(i.clone(), tx.load(i).await?);
    }
    let primary = loaded.remove(&id).flatten();
    let other = other_id.map(|o| o.and_then(|o| loaded.remove(&o).flatten()));
    let Some(plan) = super::plan_follow(primary, other, follow, rules, now) else { return Ok(0) };
    tx.write_plan(&plan).await?;
    Ok(1)
}
