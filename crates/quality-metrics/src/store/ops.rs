//! Quality-metrics' store operations, written once over [`MetricsTx`]: a consumer batch, a
//! dead-letter replay, a rebuild and the writes of the service's own records.

use std::collections::HashMap;

use async_trait::async_trait;
use redress_platform::ServiceError;
use redress_platform::consumer::{ApplyEvent, Effect, apply_in_order};
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_proto::redress::common::v1::Event;

use super::tx::MetricsTx;
use super::{CONSUMERS, Rebuilt, RequestKey, Write};
use crate::domain::fact::{Calendars, Change, Fact};
use crate::domain::measures::Measures;
use crate::domain::rollup::{CellKey, add_difference};
use crate::error::MetricsError;

/// The facts a batch touches, loaded once and written once.
struct Applier<'a> {
    calendars: &'a dyn Calendars,
    facts: HashMap<String, Fact>,
    changed: Vec<String>,
}

/// Why applying failed: the database, or an event that can never be applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Platform(#[from] ServiceError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<ApplyError> for MetricsError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Platform(e) => Self::Platform(e),
            ApplyError::Internal(e) => Self::Internal(e),
        }
    }
}

impl<'a> Applier<'a> {
    fn new(calendars: &'a dyn Calendars) -> Self {
        Self { calendars, facts: HashMap::new(), changed: Vec::new() }
    }

    /// Loads the facts of these complaints not loaded yet.
    async fn load<T: MetricsTx + ?Sized>(&mut self, tx: &mut T, complaints: Vec<String>) -> anyhow::Result<()> {
        let mut missing: Vec<String> = complaints.into_iter().filter(|c| !self.facts.contains_key(c)).collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        for fact in tx.load_facts(&missing).await? {
            self.facts.insert(fact.complaint.clone(), fact);
        }
        for complaint in missing {
            self.facts.entry(complaint.clone()).or_insert_with(|| Fact::new(&complaint));
        }
        Ok(())
    }

    /// Counts every changed fact anew and writes the facts and the cells they move.
    async fn flush<T: MetricsTx + ?Sized>(mut self, tx: &mut T) -> anyhow::Result<usize> {
        let mut deltas: HashMap<CellKey, Measures> = HashMap::new();
        let mut written = Vec::with_capacity(self.changed.len());
        self.changed.sort();
        self.changed.dedup();
        for complaint in &self.changed {
            let Some(fact) = self.facts.get_mut(complaint) else { continue };
            let now = fact.count(self.calendars);
            add_difference(fact.counted.as_ref(), now.as_ref(), &mut deltas);
            fact.counted = now;
            written.push(complaint.clone());
        }
        let facts: Vec<&Fact> = written.iter().filter_map(|c| self.facts.get(c)).collect();
        tx.save_facts(&facts).await?;
        let mut keys: Vec<CellKey> = deltas.keys().cloned().collect();
        keys.sort();
        let mut cells: HashMap<CellKey, Measures> = tx.load_cells(&keys).await?.into_iter().collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut cell = cells.remove(&key).unwrap_or_default();
            if let Some(delta) = deltas.get(&key) {
                cell.add(delta);
            }
            out.push((key, cell));
        }
        tx.save_cells(&out).await?;
        let mut institutions: Vec<String> = out
            .iter()
            .filter(|(k, _)| k.dimension == 0 && k.unit.matches('/').count() == 1)
            .map(|(k, _)| k.unit.clone())
            .collect();
        institutions.sort();
        institutions.dedup();
        tx.note_institutions(&institutions).await?;
        Ok(facts.len())
    }
}

#[async_trait]
impl<T: MetricsTx + ?Sized> ApplyEvent<T> for Applier<'_> {
    type Error = ApplyError;

    async fn apply(&mut self, tx: &mut T, event: &Event) -> Result<Effect, ApplyError> {
        let (complaint, change) = match Change::of(event) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(Effect::Applied),
            Err(why) => return Ok(Effect::Unappliable(why)),
        };
        self.load(tx, vec![complaint.clone()]).await?;
        let fact = self.facts.entry(complaint.clone()).or_insert_with(|| Fact::new(&complaint));
        if fact.apply(&change) {
            self.changed.push(complaint);
        }
        Ok(Effect::Applied)
    }
}

/// Applies a batch of `consumer`'s feed and stores its position; refused when the read models
/// were rebuilt since `epoch` (the consumer then resumes from the start).
pub(crate) async fn apply_batch<T: MetricsTx + ?Sized>(
    tx: &mut T,
    consumer: &str,
    epoch: i64,
    events: &[Event],
    calendars: &dyn Calendars,
) -> anyhow::Result<i64> {
    tx.lock_read_models().await?;
    if tx.epoch().await? != epoch {
        return Err(Rebuilt.into());
    }
    let mut applier = Applier::new(calendars);
    // One read for the batch's facts instead of one per event.
    let named = events.iter().filter_map(|e| Change::of(e).ok().flatten().map(|(c, _)| c)).collect();
    applier.load(tx, named).await?;
    let position = apply_in_order(tx, consumer, events, &mut applier).await.map_err(|e| match e {
        ApplyError::Platform(e) => anyhow::Error::from(e),
        ApplyError::Internal(e) => e,
    })?;
    let facts = applier.flush(tx).await?;
    if facts > 0 {
        metrics::counter!("redress_metrics_facts_changed_total", "consumer" => consumer.to_owned())
            .increment(facts as u64);
    }
    Ok(position)
}

/// Applies a dead letter again (and what waited behind it) with its mark as replayed.
pub(crate) async fn replay<T: MetricsTx + ?Sized>(
    tx: &mut T,
    replay: &Replay,
    calendars: &dyn Calendars,
) -> Result<DeadLetter, MetricsError> {
    tx.lock_read_models().await?;
    let mut applier = Applier::new(calendars);
    let dead = redress_platform::consumer::replay(tx, replay, &mut applier).await?;
    applier.flush(tx).await?;
    Ok(dead)
}

/// What the read models count a fact under: bumped whenever that changes (a dimension added),
/// so that read models built before are replayed from the feeds rather than mixed with new
/// counts. 1: the product dimension.
pub(crate) const LAYOUT: i64 = 1;

/// Brings read models built in an older layout to [`LAYOUT`] by dropping them (the consumers
/// then replay their feeds from the start); empty ones only take the layout. Whether they were
/// dropped.
pub(crate) async fn upgrade_layout<T: MetricsTx + ?Sized>(tx: &mut T) -> anyhow::Result<bool> {
    tx.lock_read_models().await?;
    let (layout, holds_facts) = tx.layout().await?;
    if layout >= LAYOUT {
        return Ok(false);
    }
    if holds_facts {
        tx.drop_read_models(CONSUMERS).await?;
    }
    tx.set_layout(LAYOUT).await?;
    Ok(holds_facts)
}

/// Drops the read models; the consumers replay their feeds from the start.
pub(crate) async fn rebuild<T: MetricsTx + ?Sized>(tx: &mut T) -> anyhow::Result<()> {
    tx.lock_read_models().await?;
    tx.drop_read_models(CONSUMERS).await?;
    Ok(())
}

/// Writes one of the service's own records, once per request id.
pub(crate) async fn write<T: MetricsTx + ?Sized>(
    tx: &mut T,
    request: Option<RequestKey>,
    write: Write,
) -> Result<bool, MetricsError> {
    if let Some(key) = &request
        && let Some((fingerprint, _)) = tx.load_request(&key.id).await?
    {
        return if fingerprint == key.fingerprint { Ok(true) } else { Err(MetricsError::RequestIdReused) };
    }
    match &write {
        Write::Targets { institution, targets, by } => {
            for (kpi, target) in targets {
                tx.set_target(institution, *kpi, *target, by).await?;
            }
        }
        Write::Denominators(d) => tx.set_denominators(d).await?,
    }
    if let Some(key) = &request {
        tx.save_request(key, &[]).await?;
    }
    Ok(false)
}
