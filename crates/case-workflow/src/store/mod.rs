//! Case-workflow's store: one trait, SQLite and PostgreSQL implementations, one conformance
//! suite. Opening cases from intake events happens here, in the same transaction as the
//! consumer position, so a redelivered event can never open a second case.

mod ops;
mod postgres;
mod sqlite;
mod tx;

use async_trait::async_trait;
use prost::Message;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_platform::db::Backend;
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::events::{EventSink, Feed, NewEvent};
use redress_platform::listing::ListSql;
use redress_platform::paging::Cursor;
use redress_platform::principal::Principal;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseClassification, CaseRiskSignal, CaseState, LinkType};
use redress_proto::redress::common::v1::Grade;
use redress_proto::redress::common::v1::{Event, ListDeadLettersRequest, ListDeadLettersResponse};
use redress_proto::redress::intake::v1::{
    Classification, ComplaintAccepted, ComplaintReclassified, ComplaintWithdrawn, RiskSignal, RiskSignalKind,
};

use crate::calendars::LiveRules;
use crate::domain::audit::AuditRecord;
use crate::domain::revision;
use crate::domain::workflow::{self, Command, Context, Effects, FirstContact, OpeningFacts, Rules, WorkflowError};
use crate::error::CaseError;

pub use postgres::PostgresCaseStore;
pub use sqlite::SqliteCaseStore;

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Consumer name under which intake's feed position is stored.
pub const INTAKE_CONSUMER: &str = "intake";

#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub state: Option<i32>,
    pub complaint: Option<String>,
    pub after: Option<Cursor>,
    /// Only cases owned by this organisation unit or one below it; `None` for all.
    pub scope: Option<String>,
    pub limit: i64,
}

/// The statement of one page of cases, with only the filters `q` sets (so that each
/// combination is planned on the index that serves it: `cases_by_state`, the unique complaint,
/// `cases_by_org_unit_time`, `cases_by_open_time`).
pub(crate) fn list_sql(backend: Backend, q: &CaseQuery) -> ListSql {
    let mut sql = ListSql::new(backend, "SELECT record, open_time_us, id FROM cases");
    sql.and_eq("state", q.state)
        .and_eq("complaint", q.complaint.as_deref())
        .and_after(("open_time_us", "id"), "<", q.after.clone())
        .and_within("org_unit", q.scope.as_deref());
    sql.finish("ORDER BY open_time_us DESC, id DESC", q.limit)
}

#[derive(sqlx::FromRow)]
struct ListedRow {
    record: Vec<u8>,
    open_time_us: i64,
    id: String,
}

impl TryFrom<ListedRow> for ListedCase {
    type Error = anyhow::Error;

    fn try_from(row: ListedRow) -> anyhow::Result<Self> {
        Ok(ListedCase { case: Case::decode(row.record.as_slice())?, cursor: (row.open_time_us, row.id) })
    }
}

#[derive(Debug, Clone)]
pub struct ListedCase {
    pub case: Case,
    pub cursor: Cursor,
}

#[async_trait]
pub trait CaseStore: EventSink + Send + Sync + 'static {
    async fn get(&self, id: &str) -> anyhow::Result<Option<Case>>;
    async fn list(&self, query: &CaseQuery) -> anyhow::Result<Vec<ListedCase>>;
    /// The events case-workflow's consumers passed over as unappliable (`ListDeadLetters`).
    async fn list_dead_letters(
        &self,
        principal: &Principal,
        request: &ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, CaseError> {
        Ok(redress_platform::dead_letters::list(self.feed().pool(), principal, request).await?)
    }
    /// Applies a dead letter again and marks it replayed, at most once (`ReplayDeadLetter`).
    async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter, CaseError>;
    /// Forgets request ids first used before `before` (retention); returns how many.
    async fn prune_requests(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let cutoff = redress_platform::time::to_micros(before);
        self.feed().pool().delete_in_batches(PRUNE_REQUESTS, cutoff).await
    }
    /// The audit trail of a case, `None` when there is no such case.
    async fn audit_trail(&self, id: &str) -> anyhow::Result<Option<AuditTrail>>;
    /// Applies one change to a case (and the other case of a link) with its audit entries and
    /// events, all or nothing; a retried request id returns the first result.
    async fn update(&self, update: Update) -> Result<Case, CaseError>;
    /// Raises the reminders due by `now` on at most `limit` cases; returns how many cases it
    /// looked at (0 also when another replica holds the sweep).
    async fn sweep(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize>;
    /// Recomputes, on the rules now in force, every case with a running clock counted on a
    /// provisional year, in batches, each case in a transaction of its own with the events of
    /// what moved (D-SLA-6).
    async fn revise_provisional(&self) -> anyhow::Result<Revised> {
        let pool = self.feed().pool().clone();
        let page = |after: String| {
            let pool = pool.clone();
            async move { pool.ids_after(PROVISIONAL_CASES, &after, REVISION_PAGE).await }
        };
        ops::revise_provisional(page, |id| self.revise_case(id)).await
    }
    /// Cases with a reply waiting to be linted (the knowledge base could not be reached when it
    /// was recorded), after `after` in id order, `limit` at most.
    async fn lint_pending(&self, after: &str, limit: i64) -> anyhow::Result<Vec<String>> {
        self.feed().pool().ids_after(LINT_PENDING_CASES, after, limit).await
    }
    /// Chains the audit entries written before trails were keyed again under the active key,
    /// once for the database, and seals the heads written before heads were sealed, in one
    /// transaction that also records it (run when the store opens, only when the operator set
    /// `audit.rechain_legacy`). A trail that no longer verifies as stored is left as it is and
    /// reported, so that verification keeps showing where it broke.
    async fn key_unkeyed_trails(&self) -> anyhow::Result<RechainedTrails>;
    /// Recomputes one case's provisional clocks in a transaction of its own; whether it moved.
    async fn revise_case(&self, id: String) -> Result<bool, CaseError>;
    /// The rules the store applies, and its clock.
    fn rules(&self) -> &LiveRules;
    fn feed(&self) -> &Feed;
}

pub use redress_platform::revisions::Revised;

/// Cases with a running provisional clock after `$1` in id order, `$2` at most.
pub(crate) const PROVISIONAL_CASES: &str = "SELECT id FROM cases WHERE provisional AND id > $1 ORDER BY id LIMIT $2";

/// Cases with a reply waiting to be linted after `$1` in id order, `$2` at most.
pub(crate) const LINT_PENDING_CASES: &str = "SELECT id FROM cases WHERE lint_pending AND id > $1 ORDER BY id LIMIT $2";

/// What chaining one case's unkeyed audit entries again under the active key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rechained {
    /// The entries were chained again.
    Rechained,
    /// The head, written before heads were sealed, was sealed.
    Sealed,
    /// Nothing to do: no such case, or no unkeyed entries (another replica chained them).
    Nothing,
    /// The trail did not verify as stored, so it was left as it is.
    Broken(crate::domain::audit::Broken),
}

/// What chaining the unkeyed audit trails again did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RechainedTrails {
    /// Cases whose trails were chained again under the active key.
    pub rechained: usize,
    /// Cases whose heads were sealed (heads written before they were sealed).
    pub sealed: usize,
    /// Cases whose trails did not verify as stored, left unkeyed.
    pub broken: Vec<String>,
    /// Whether the database had been keyed before (nothing was chained again).
    pub already_keyed: bool,
}

/// How many cases one page of a revision reads.
pub(crate) const REVISION_PAGE: i64 = 200;

/// One change to a case.
#[derive(Debug, Clone)]
pub struct Update {
    /// The case's id.
    pub id: String,
    /// The other case's id, for links.
    pub other: Option<String>,
    /// The version the caller's etag names, when it gave one.
    pub expected_version: Option<i64>,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
    pub command: Command,
}

/// A request id with the fingerprint of the caller and request that first used it.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub id: String,
    pub fingerprint: String,
}

/// Forgets up to 5,000 request ids older than `$1` (both backends).
const PRUNE_REQUESTS: &str = "DELETE FROM case_requests WHERE request_id IN \
    (SELECT request_id FROM case_requests WHERE record_time_us < $1 LIMIT 5000)";

/// A case as stored, with what the write must check and continue.
#[derive(sqlx::FromRow)]
pub(crate) struct LoadedRow {
    record: Vec<u8>,
    version: i64,
    audit_length: i64,
    audit_head: String,
    audit_seal: String,
}

/// The stored first result of a request id.
pub(crate) const LOAD_REQUEST: &str = "SELECT fingerprint, response FROM case_requests WHERE request_id = $1";

pub(crate) const SAVE_REQUEST: &str = "INSERT INTO case_requests \
    (request_id, case_id, fingerprint, response, record_time_us) VALUES ($1, $2, $3, $4, $5)";

/// Writes a changed case; `$8` is the version it was loaded at.
pub(crate) const SAVE: &str = "UPDATE cases SET record = $2, state = $3, version = $4, next_check_us = $5, \
    audit_length = $6, audit_head = $7, provisional = $9, lint_pending = $10, audit_seal = $11 \
    WHERE id = $1 AND version = $8";

/// Cases the sweeper must look at by `$1`, earliest first.
pub(crate) const DUE_FOR_SWEEP: &str = "SELECT id FROM cases WHERE next_check_us IS NOT NULL AND next_check_us <= $1 \
    ORDER BY next_check_us LIMIT $2";

/// One case row to write.
pub(crate) struct RowWrite {
    pub id: String,
    pub record: Vec<u8>,
    pub state: i32,
    pub version: i64,
    pub loaded_version: i64,
    pub next_check_us: Option<i64>,
    /// Whether a running clock counts a provisional year (found again when calendars load).
    pub provisional: bool,
    /// Whether a reply waits to be linted (found again by the relinter).
    pub lint_pending: bool,
    pub audit_length: i64,
    pub audit_head: String,
    /// The head's seal ([`crate::domain::audit::reseal`]).
    pub audit_seal: String,
    pub entries: Vec<AuditRecord>,
}

/// Everything one change writes.
pub(crate) struct Plan {
    pub rows: Vec<RowWrite>,
    pub events: Vec<NewEvent>,
    pub response: Case,
}

/// [`SAVE`] bound for a row.
macro_rules! save_row {
    ($row:expr) => {{
        let row: &$crate::store::RowWrite = $row;
        sqlx::query($crate::store::SAVE)
            .bind(row.id.clone())
            .bind(row.record.clone())
            .bind(row.state)
            .bind(row.version)
            .bind(row.next_check_us)
            .bind(row.audit_length)
            .bind(row.audit_head.clone())
            .bind(row.loaded_version)
            .bind(row.provisional)
            .bind(row.lint_pending)
            .bind(row.audit_seal.clone())
    }};
}
use save_row;

/// A loaded case.
pub(crate) struct Loaded {
    id: String,
    case: Case,
    version: i64,
    audit_length: i64,
    audit_head: String,
    audit_seal: String,
}

impl Loaded {
    pub(crate) fn from_row(id: &str, row: LoadedRow) -> Result<Self, CaseError> {
        Ok(Self {
            id: id.to_owned(),
            case: Case::decode(row.record.as_slice()).map_err(anyhow::Error::from)?,
            version: row.version,
            audit_length: row.audit_length,
            audit_head: row.audit_head,
            audit_seal: row.audit_seal,
        })
    }
}

fn not_found(id: &str) -> CaseError {
    CaseError::NotFound { name: format!("cases/{id}") }
}

/// The stored result of a request id: `Some(case)` for a retry of the same request, an error
/// for the id reused with another request, `None` for a new id.
pub(crate) fn replay(key: &RequestKey, stored: Option<(String, Vec<u8>)>) -> Result<Option<Case>, CaseError> {
    match stored {
        None => Ok(None),
        Some((fingerprint, response)) if fingerprint == key.fingerprint => {
            Ok(Some(Case::decode(response.as_slice()).map_err(anyhow::Error::from)?))
        }
        Some(_) => Err(CaseError::RequestIdReused),
    }
}

/// Plans a change: checks scope and etag, runs the command, chains the audit entries.
pub(crate) fn plan_update(
    primary: Option<Loaded>,
    other: Option<Option<Loaded>>,
    update: Update,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Plan, CaseError> {
    let principal = update.principal.clone();
    // Outside the caller's organisation unit a case does not exist for the caller.
    let visible =
        |l: Option<Loaded>, id: &str| l.filter(|l| principal.covers(&l.case.org_unit)).ok_or_else(|| not_found(id));
    let mut primary = visible(primary, &update.id)?;
    let mut other = match (other, &update.other) {
        (Some(o), Some(id)) => Some(visible(o, id)?),
        _ => None,
    };
    if let Some(expected) = update.expected_version
        && expected != primary.version
    {
        return Err(CaseError::EtagMismatch { expected, current: primary.version });
    }
    for l in std::iter::once(&mut primary).chain(other.as_mut()) {
        l.case.etag = etag(l.version + 1);
        l.case.update_time = Some(to_timestamp(now));
    }
    let link = match &update.command {
        Command::Link { kind, reason } => Some((*kind, reason.clone())),
        _ => None,
    };
    let ctx = Context { principal: &principal, now, rules };
    let effects = workflow::execute(&mut primary.case, other.as_mut().map(|o| &mut o.case), update.command, &ctx)?;
    let mut events = Vec::new();
    let mut rows = vec![row_write(&primary, effects, &principal.subject, rules, now, &mut events)];
    if let (Some(o), Some((kind, reason))) = (other, link) {
        let fx = workflow::linked_effects(&o.case, &primary.case.name, kind, &reason, &principal.subject, rules);
        rows.push(row_write(&o, fx, &principal.subject, rules, now, &mut events));
    }
    Ok(Plan { rows, events, response: primary.case })
}

/// Plans the sweep of one case; `None` when there is no such case.
pub(crate) fn plan_sweep(loaded: Option<Loaded>, rules: &Rules, now: DateTime<Utc>) -> Option<Plan> {
    let mut l = loaded?;
    let unchanged = l.case.clone();
    // The events carry the case as written, so its new etag is set before sweeping.
    l.case.etag = etag(l.version + 1);
    l.case.update_time = Some(to_timestamp(now));
    let effects = workflow::sweep(&mut l.case, rules, now);
    if effects.audit.is_empty() {
        // Nothing to raise (the case changed since it was listed): the record and its version
        // stay; only the next check moves.
        l.case = unchanged;
    }
    let mut events = Vec::new();
    let row = row_write(&l, effects, SYSTEM_ACTOR, rules, now, &mut events);
    Some(Plan { rows: vec![row], events, response: l.case })
}

/// Plans the revision of one case's clocks on the rules now in force; `None` when there is no
/// such case. A case with nothing moved keeps its record and version; only its mark of
/// provisional clocks is written again.
pub(crate) fn plan_revision(loaded: Option<Loaded>, rules: &Rules, now: DateTime<Utc>) -> Option<Plan> {
    let mut l = loaded?;
    let unchanged = l.case.clone();
    l.case.etag = etag(l.version + 1);
    l.case.update_time = Some(to_timestamp(now));
    let effects = match revision::revise(&mut l.case, rules, SYSTEM_ACTOR, now) {
        Some(effects) => effects,
        None => {
            l.case = unchanged;
            Effects::default()
        }
    };
    let mut events = Vec::new();
    let row = row_write(&l, effects, SYSTEM_ACTOR, rules, now, &mut events);
    Some(Plan { rows: vec![row], events, response: l.case })
}

fn row_write(
    l: &Loaded,
    effects: Effects,
    actor: &str,
    rules: &Rules,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> RowWrite {
    let mut previous = (l.audit_length, l.audit_head.clone());
    let mut entries = Vec::with_capacity(effects.audit.len());
    for (action, details) in effects.audit {
        let prev = if previous.0 == 0 { None } else { Some((previous.0, previous.1.as_str())) };
        let record = AuditRecord::after(&rules.audit, &l.id, prev, &action, actor, now.timestamp_micros(), details);
        previous = (record.sequence, record.hash.clone());
        entries.push(record);
    }
    events.extend(effects.events);
    let loaded = (l.audit_length, l.audit_head.as_str(), l.audit_seal.as_str());
    let audit_seal = crate::domain::audit::reseal(&rules.audit, &l.id, loaded, previous.0, &previous.1);
    RowWrite {
        id: l.id.clone(),
        record: l.case.encode_to_vec(),
        state: l.case.state,
        version: if entries.is_empty() { l.version } else { l.version + 1 },
        loaded_version: l.version,
        next_check_us: rules.next_check(&l.case).map(|t| t.timestamp_micros()),
        provisional: rules.has_provisional(&l.case),
        lint_pending: workflow::replies::lint_pending(&l.case),
        audit_length: previous.0,
        audit_head: previous.1,
        audit_seal,
        entries,
    }
}

/// A case to open for an accepted complaint, with its events (CaseOpened first) and the first
/// entries of its audit trail (`case.opened` first).
struct Opening {
    case: Case,
    open_time_us: i64,
    record: Vec<u8>,
    events: Vec<NewEvent>,
    audit: Vec<AuditRecord>,
    /// The seal of the trail's head after `audit`.
    audit_seal: String,
    next_check_us: Option<i64>,
    provisional: bool,
    /// A recurrence: the link to the earlier complaint's case, made once this case exists.
    link: Option<Follow>,
}

pub use crate::domain::workflow::SYSTEM_ACTOR;
/// The service name behind [`SYSTEM_ACTOR`].
const SERVICE_SUBJECT: &str = "case-workflow";

/// Appends an audit entry (with its details as a JSON object, keys sorted); bound by
/// [`insert_audit!`].
const INSERT_AUDIT: &str = "INSERT INTO audit_entries \
    (case_id, sequence, action, actor, record_time_us, details, previous_hash, hash, key_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// [`INSERT_AUDIT`] with a case id and an [`AuditRecord`] bound.
macro_rules! insert_audit {
    ($case_id:expr, $a:expr) => {{
        let a: &$crate::domain::audit::AuditRecord = $a;
        sqlx::query($crate::store::INSERT_AUDIT)
            .bind($case_id.to_owned())
            .bind(a.sequence)
            .bind(a.action.clone())
            .bind(a.actor.clone())
            .bind(a.record_time_us)
            .bind(serde_json::to_string(&a.details).unwrap_or_default())
            .bind(a.previous_hash.clone())
            .bind(a.hash.clone())
            .bind(a.key_id.clone())
    }};
}
use insert_audit;

/// A case's head and trail in sequence order, in one statement (so from one snapshot on
/// either backend); a case without entries yields one row with the entry columns NULL.
const AUDIT_TRAIL: &str = "SELECT c.audit_length, c.audit_head, c.audit_seal, e.sequence, e.action, e.actor, e.record_time_us, \
    e.details, e.previous_hash, e.hash, e.key_id \
    FROM cases c LEFT JOIN audit_entries e ON e.case_id = c.id WHERE c.id = $1 ORDER BY e.sequence";

#[derive(sqlx::FromRow)]
struct AuditRow {
    audit_length: i64,
    audit_head: String,
    audit_seal: String,
    sequence: Option<i64>,
    action: Option<String>,
    actor: Option<String>,
    record_time_us: Option<i64>,
    details: Option<String>,
    previous_hash: Option<String>,
    hash: Option<String>,
    key_id: Option<String>,
}

/// The trail of [`AUDIT_TRAIL`]'s rows; `None` when the case does not exist.
fn trail_from(rows: Vec<AuditRow>) -> anyhow::Result<Option<AuditTrail>> {
    let Some(first) = rows.first() else { return Ok(None) };
    let (length, head, seal) = (first.audit_length, first.audit_head.clone(), first.audit_seal.clone());
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(sequence) = row.sequence else { continue };
        entries.push(AuditRecord {
            sequence,
            action: row.action.unwrap_or_default(),
            actor: row.actor.unwrap_or_default(),
            record_time_us: row.record_time_us.unwrap_or_default(),
            details: serde_json::from_str(row.details.as_deref().unwrap_or("{}"))?,
            previous_hash: row.previous_hash.unwrap_or_default(),
            hash: row.hash.unwrap_or_default(),
            key_id: row.key_id.unwrap_or_default(),
        });
    }
    Ok(Some(AuditTrail { entries, length, head, seal }))
}

/// A case's audit trail as stored, with the length and head hash the case records of it and
/// their seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTrail {
    pub entries: Vec<AuditRecord>,
    pub length: i64,
    pub head: String,
    pub seal: String,
}

/// What one intake event means for cases.
enum Effect {
    Open(Box<Opening>),
    /// Intake changed the complaint (a handler's reclassification, a withdrawal): the case
    /// follows.
    Follow(Follow),
    Nothing,
    /// It cannot be applied, now or on any retry (why): it is recorded as a dead letter and
    /// passed over so that the events behind it still apply.
    Unappliable(String),
}

/// A change intake asks of a complaint's case: a reclassification's grade, or a withdrawal.
#[derive(Debug, Clone)]
pub(crate) struct Follow {
    pub complaint: String,
    /// The complaint whose case is the other side of a link, for links.
    pub other: Option<String>,
    pub command: Command,
}

pub(crate) fn follow_for(event: &Event) -> anyhow::Result<Option<Follow>> {
    let Some(payload) = event.payload.as_ref() else { return Ok(None) };
    if event.event_type == <ComplaintReclassified as prost::Name>::full_name() {
        let changed = ComplaintReclassified::decode(payload.value.as_slice())?;
        let Some(classification) = changed.classification else { return Ok(None) };
        let grade = Grade::try_from(classification.grade).unwrap_or(Grade::Unspecified);
        let reason =
            format!("reclassified at intake by {}: {}", classification.classified_by, classification.override_reason);
        let command = Command::Reclassify { classification: case_classification(&classification), grade, reason };
        return Ok(Some(Follow { complaint: changed.complaint, other: None, command }));
    }
    if event.event_type == <ComplaintWithdrawn as prost::Name>::full_name() {
        let withdrawn = ComplaintWithdrawn::decode(payload.value.as_slice())?;
        let reason = format!("withdrawn by the complainant: {}", withdrawn.reason);
        let command = Command::Transition { target: CaseState::Withdrawn, reason };
        return Ok(Some(Follow { complaint: withdrawn.complaint, other: None, command }));
    }
    Ok(None)
}

/// The change intake asks of a case, as a workflow update by case-workflow itself; `None`
/// when the case does not take it (it already has that grade, or is closed).
pub(crate) fn plan_follow(
    loaded: Option<Loaded>,
    other: Option<Option<Loaded>>,
    follow: &Follow,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Option<Plan> {
    let loaded = loaded?;
    let other_id = match &other {
        Some(Some(o)) => Some(o.id.clone()),
        Some(None) => return None,
        None => None,
    };
    let update = Update {
        id: loaded.id.clone(),
        other: other_id,
        expected_version: None,
        request: None,
        // Case-workflow itself, acting on every case.
        principal: Arc::new(Principal {
            org_unit: redress_platform::principal::ROOT_ORG_UNIT.to_owned(),
            ..Principal::service(SERVICE_SUBJECT, &[])
        }),
        command: follow.command.clone(),
    };
    match plan_update(Some(loaded), other, update, rules, now) {
        Ok(plan) => Some(plan),
        // Intake announced what the case already has (a redelivery, the same grade again).
        Err(CaseError::Workflow(WorkflowError::Unchanged)) => None,
        Err(e) => {
            tracing::info!(complaint = %follow.complaint, error = %e, "intake's change not applied to the case");
            None
        }
    }
}

/// The earlier complaint an accepted complaint repeats, if it is a ComplaintAccepted that does.
pub(crate) fn recurrence_of(event: &Event) -> Option<String> {
    if event.event_type != <ComplaintAccepted as prost::Name>::full_name() {
        return None;
    }
    let accepted = ComplaintAccepted::decode(event.payload.as_ref()?.value.as_slice()).ok()?;
    Some(accepted.recurrence_of).filter(|r| !r.is_empty())
}

fn effect_of(event: &Event, rules: &Rules, now: DateTime<Utc>) -> Effect {
    let effect = match follow_for(event) {
        Ok(Some(follow)) => return Effect::Follow(follow),
        Ok(None) => opening_for(event, rules, now).map(|o| o.map(|o| Effect::Open(Box::new(o)))),
        Err(e) => Err(e),
    };
    match effect {
        Ok(Some(effect)) => effect,
        Ok(None) => Effect::Nothing,
        Err(e) => Effect::Unappliable(format!("{e:#}")),
    }
}

fn opening_for(event: &Event, rules: &Rules, opened: DateTime<Utc>) -> anyhow::Result<Option<Opening>> {
    let Some(payload) = event.payload.as_ref() else {
        return Ok(None);
    };
    if event.event_type != <ComplaintAccepted as prost::Name>::full_name() {
        return Ok(None);
    }
    let accepted = ComplaintAccepted::decode(payload.value.as_slice())?;
    let span = tracing::info_span!("case.open", complaint = %accepted.complaint);
    redress_platform::telemetry::set_parent_from_trace_context(&span, &event.traceparent, &event.tracestate);
    let _entered = span.enter();
    let id = uuid::Uuid::now_v7().to_string();
    let classification = accepted.classification.as_ref().map(case_classification);
    let risk_signals = accepted.risk_signals.iter().map(case_risk_signal).collect();
    let mut case = Case {
        name: format!("cases/{id}"),
        case_number: accepted.complaint_number.clone(),
        complaint: accepted.complaint.clone(),
        state: CaseState::Accepted as i32,
        assignee: String::new(),
        department: String::new(),
        org_unit: accepted.org_unit.clone(),
        channel: accepted.channel,
        grade: accepted.grade,
        deadlines: accepted.deadlines.clone(),
        receive_time: accepted.receive_time,
        open_time: Some(to_timestamp(opened)),
        update_time: Some(to_timestamp(opened)),
        etag: etag(1),
        institution: accepted.institution.clone(),
        complained_staff_ids: if accepted.complained_staff_id.is_empty() {
            Vec::new()
        } else {
            vec![accepted.complained_staff_id.clone()]
        },
        classification,
        risk_signals,
        ..Case::default()
    };
    let facts = OpeningFacts {
        first_contact: accepted.first_contact.as_ref().map(|c| FirstContact {
            subject: c.subject.clone(),
            staff_id: c.staff_id.clone(),
            department: c.department.clone(),
        }),
        complained_staff_named_only: accepted.complained_staff_named_only,
    };
    let effects = workflow::open(&mut case, facts, rules, opened);
    let next_check_us = rules.next_check(&case).map(|t| t.timestamp_micros());
    let provisional = rules.has_provisional(&case);
    let record = case.encode_to_vec();
    let mut audit: Vec<AuditRecord> = Vec::with_capacity(effects.audit.len());
    for (action, details) in effects.audit {
        let previous = audit.last().map(|a| (a.sequence, a.hash.as_str()));
        let at = opened.timestamp_micros();
        let entry = AuditRecord::after(&rules.audit, &id, previous, &action, SYSTEM_ACTOR, at, details);
        audit.push(entry);
    }
    let head = audit.last().map(|a| (a.sequence, a.hash.as_str())).unwrap_or((0, ""));
    let audit_seal = rules.audit.seal_head(&id, head.0, head.1);
    let link = (!accepted.recurrence_of.is_empty()).then(|| Follow {
        complaint: accepted.complaint.clone(),
        other: Some(accepted.recurrence_of.clone()),
        command: Command::Link {
            kind: LinkType::Related,
            reason: format!("recurrence of {} (same complainant and issue)", accepted.recurrence_of),
        },
    });
    Ok(Some(Opening {
        case,
        open_time_us: opened.timestamp_micros(),
        record,
        events: effects.events,
        audit,
        audit_seal,
        next_check_us,
        provisional,
        link,
    }))
}

/// The classification codes a case keeps of intake's classification (no free text).
fn case_classification(c: &Classification) -> CaseClassification {
    CaseClassification {
        taxonomy: c.taxonomy.clone(),
        business_type: c.business_type.clone(),
        cause: c.cause.clone(),
        rights: c.rights.clone(),
    }
}

/// An early-warning signal as a case keeps it: its kind without the enum prefix.
fn case_risk_signal(s: &RiskSignal) -> CaseRiskSignal {
    let kind = RiskSignalKind::try_from(s.kind).unwrap_or(RiskSignalKind::Unspecified).as_str_name();
    CaseRiskSignal {
        kind: kind.strip_prefix("RISK_SIGNAL_KIND_").unwrap_or(kind).to_owned(),
        evidence: s.evidence.clone(),
    }
}

/// Counts what a consumer batch or replay did and wakes the feed's readers when it announced
/// anything.
fn applied(feed: &Feed, applied: &ops::Applied) {
    if applied.opened > 0 {
        metrics::counter!("redress_cases_opened_total").increment(applied.opened as u64);
    }
    if applied.announced() {
        feed.notify_committed();
    }
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn case_id(case: &Case) -> &str {
    case.name.strip_prefix("cases/").unwrap_or(&case.name)
}

#[cfg(test)]
mod audit_conformance;
#[cfg(test)]
mod conformance;
#[cfg(test)]
mod plans;
#[cfg(test)]
mod reply_conformance;
