//! Root causes and improvement actions in the store: each change in one transaction with its
//! event and the request id that asked for it, written once over [`MetricsTx`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use redress_platform::events::NewEvent;
use redress_platform::principal::Principal;
use redress_platform::time::{to_micros, to_timestamp};
use redress_proto::redress::metrics::v1::{
    ActionStatus, ImprovementAction, ImprovementActionChanged, ImprovementActionReminder, RootCause, RootCauseRecorded,
};

use super::RequestKey;
use super::tx::{ActionRow, MetricsTx};
use crate::domain::fact::Calendars;
use crate::domain::improvement;
use crate::domain::period::parse_day;
use crate::error::MetricsError;

/// A change to the root causes or improvement actions.
#[derive(Debug, Clone)]
pub enum Improvement {
    /// A root cause, named and timed.
    RootCause(RootCause),
    /// A new action, named, timed and planned.
    CreateAction(ImprovementAction),
    UpdateAction(ActionUpdate),
    /// Sends the reminder an action owes at `now`, if it still owes one.
    Remind {
        id: String,
        now: DateTime<Utc>,
    },
}

/// A change to an action's fields (the update mask's) or status.
#[derive(Debug, Clone)]
pub struct ActionUpdate {
    pub id: String,
    pub expected_version: Option<i64>,
    pub mask: Vec<String>,
    pub values: ImprovementAction,
    pub status: ActionStatus,
    pub principal: Arc<Principal>,
    pub now: DateTime<Utc>,
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn id_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Applies a change; returns the record it leaves (encoded), or `None` for a reminder no
/// longer owed. A retried request id returns the first result.
pub(crate) async fn improve<T: MetricsTx + ?Sized>(
    tx: &mut T,
    request: Option<RequestKey>,
    change: Improvement,
    calendars: &dyn Calendars,
) -> Result<Option<Vec<u8>>, MetricsError> {
    if let Some(key) = &request
        && let Some((fingerprint, response)) = tx.load_request(&key.id).await?
    {
        return if fingerprint == key.fingerprint { Ok(Some(response)) } else { Err(MetricsError::RequestIdReused) };
    }
    let response = match change {
        Improvement::RootCause(r) => {
            let at = r.create_time.as_ref().map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000);
            let record = r.encode_to_vec();
            tx.insert_root_cause(id_of(&r.name), &r.org_unit, at, &record).await?;
            let event = NewEvent::new(r.name.clone(), r.org_unit.clone(), &RootCauseRecorded { root_cause: Some(r) });
            tx.append_events(&[event]).await?;
            Some(record)
        }
        Improvement::CreateAction(a) => {
            let a = save(tx, a, 0, calendars).await?;
            let changed = ImprovementActionChanged { action: Some(a.clone()), changed: vec!["created".to_owned()] };
            tx.append_events(&[NewEvent::new(a.name.clone(), a.org_unit.clone(), &changed)]).await?;
            Some(a.encode_to_vec())
        }
        Improvement::UpdateAction(u) => Some(update(tx, u, calendars).await?.encode_to_vec()),
        Improvement::Remind { id, now } => remind(tx, &id, now, calendars).await?.map(|a| a.encode_to_vec()),
    };
    if let (Some(key), Some(response)) = (&request, &response) {
        tx.save_request(key, response).await?;
    }
    Ok(response)
}

/// Writes an action at the version after `loaded` (its etag and next reminder set).
async fn save<T: MetricsTx + ?Sized>(
    tx: &mut T,
    mut a: ImprovementAction,
    loaded: i64,
    calendars: &dyn Calendars,
) -> Result<ImprovementAction, MetricsError> {
    let version = loaded + 1;
    a.etag = etag(version);
    let next_check_us = improvement::next_reminder_day(&a).map(|day| to_micros(calendars.day_start(&a.org_unit, day)));
    let row = ActionRow {
        id: id_of(&a.name).to_owned(),
        org_unit: a.org_unit.clone(),
        status: a.status,
        due_day: parse_day(&a.due_date).unwrap_or_default(),
        next_check_us,
        version,
        record: a.encode_to_vec(),
    };
    tx.save_action(&row).await?;
    Ok(a)
}

async fn load<T: MetricsTx + ?Sized>(tx: &mut T, id: &str) -> Result<Option<(i64, ImprovementAction)>, MetricsError> {
    let Some((version, record)) = tx.load_action(id).await? else { return Ok(None) };
    Ok(Some((version, ImprovementAction::decode(record.as_slice()).map_err(anyhow::Error::from)?)))
}

async fn update<T: MetricsTx + ?Sized>(
    tx: &mut T,
    u: ActionUpdate,
    calendars: &dyn Calendars,
) -> Result<ImprovementAction, MetricsError> {
    let name = format!("improvementActions/{}", u.id);
    let Some((version, mut a)) = load(tx, &u.id).await?.filter(|(_, a)| u.principal.covers(&a.org_unit)) else {
        return Err(MetricsError::NotFound { name });
    };
    if let Some(expected) = u.expected_version
        && expected != version
    {
        return Err(MetricsError::EtagMismatch { expected, current: version });
    }
    let today = calendars.today(&a.org_unit, u.now);
    for field in &u.mask {
        match field.as_str() {
            "owner" => a.owner = u.values.owner.clone(),
            "department" => a.department = u.values.department.clone(),
            "title" => a.title = u.values.title.clone(),
            "description" => a.description = u.values.description.clone(),
            "due_date" => improvement::set_due(&mut a, parse_day(&u.values.due_date).unwrap_or(today))?,
            "status" => improvement::move_to(&mut a, u.status, today)?,
            _ => {}
        }
    }
    a.update_time = Some(to_timestamp(u.now));
    let a = save(tx, a, version, calendars).await?;
    let changed = ImprovementActionChanged { action: Some(a.clone()), changed: u.mask.clone() };
    tx.append_events(&[NewEvent::new(a.name.clone(), a.org_unit.clone(), &changed)]).await?;
    Ok(a)
}

async fn remind<T: MetricsTx + ?Sized>(
    tx: &mut T,
    id: &str,
    now: DateTime<Utc>,
    calendars: &dyn Calendars,
) -> Result<Option<ImprovementAction>, MetricsError> {
    let Some((version, mut a)) = load(tx, id).await? else { return Ok(None) };
    let today = calendars.today(&a.org_unit, now);
    let Some(overdue) = improvement::reminder_due(&a, today) else { return Ok(None) };
    improvement::mark_reminded(&mut a, overdue);
    let a = save(tx, a, version, calendars).await?;
    let reminder = ImprovementActionReminder {
        recipients: improvement::recipients(&a, overdue),
        action: Some(a.clone()),
        overdue,
    };
    tx.append_events(&[NewEvent::new(a.name.clone(), a.org_unit.clone(), &reminder)]).await?;
    metrics::counter!("redress_improvement_action_reminders_total", "overdue" => overdue.to_string()).increment(1);
    Ok(Some(a))
}
