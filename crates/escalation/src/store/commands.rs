//! The store's writes: each runs one operation of `ops` in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::principal::Principal;
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::escalation::v1::{
    Alert, Escalation, Incident, IncidentMember, MaliciousFlag, Mention, ResponseTemplate, Statement, StatementUse,
    Vip, Watchlist,
};

use redress_platform::time::to_micros;
use tokio_util::sync::CancellationToken;

use super::ops::{self, Attempt, RequestKey};
use super::special;
use super::tx::FORGET_BATCH;
use super::{DueAction, EscalationStore};
use crate::error::EscalationError;

type Result<T> = std::result::Result<T, EscalationError>;

/// Transactions of [`FORGET_BATCH`] bands one turn of forgetting takes at most, and the pause
/// between them, in which the writer's other work has the store.
const FORGET_TURN: usize = 64;
pub(super) const FORGET_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
/// How long after a band falls out of what matching reads it is forgotten at the earliest: a
/// match that read the clock before retention did (in the same group of writes, or on another
/// replica whose clock lags) still finds what it may read.
const FORGET_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// Runs `$op(tx, args…)` as one write, with the store's rules and clock when asked.
macro_rules! write {
    ($store:expr, |$tx:ident, $rules:ident, $now:ident| $body:expr) => {{
        let $rules = $store.rules.clone();
        let $now = $store.now();
        $store.write(Box::new(move |$tx| Box::pin(async move { $body }))).await
    }};
}

impl EscalationStore {
    /// Applies a batch of the feed `consumer` follows; returns the new position.
    pub async fn apply(&self, consumer: &'static str, events: Vec<Event>) -> Result<i64> {
        write!(self, |tx, rules, now| ops::apply_batch(tx, consumer, &events, &rules, now).await)
    }

    /// Applies a dead letter again and marks it replayed, at most once.
    pub async fn replay_dead_letter(&self, replay: Replay) -> Result<DeadLetter> {
        write!(self, |tx, rules, now| ops::replay(tx, &replay, &rules, now).await)
    }

    pub async fn create_incident(&self, new: ops::NewIncident) -> Result<Incident> {
        write!(self, |tx, rules, now| ops::create_incident(tx, new, &rules, now).await)
    }

    pub async fn update_incident(&self, update: ops::IncidentUpdate) -> Result<Incident> {
        write!(self, |tx, rules, now| ops::update_incident(tx, update, &rules, now).await)
    }

    pub async fn add_member(&self, new: ops::NewMember) -> Result<IncidentMember> {
        write!(self, |tx, _rules, now| ops::add_member(tx, new, now).await)
    }

    pub async fn classify_member(&self, c: ops::Classification) -> Result<IncidentMember> {
        write!(self, |tx, _rules, now| ops::classify_member(tx, c, now).await)
    }

    pub async fn draft_statement(
        &self,
        incident: String,
        text: String,
        request: RequestKey,
        principal: Arc<Principal>,
    ) -> Result<Statement> {
        write!(self, |tx, _rules, now| ops::draft_statement(tx, incident, text, request, principal, now).await)
    }

    pub async fn approve_statement(
        &self,
        incident: String,
        version: i32,
        request: Option<RequestKey>,
        principal: Arc<Principal>,
    ) -> Result<Statement> {
        write!(self, |tx, rules, now| ops::approve_statement(tx, incident, version, request, principal, &rules, now)
            .await)
    }

    pub async fn use_statement(&self, u: ops::Use) -> Result<StatementUse> {
        write!(self, |tx, _rules, now| ops::use_statement(tx, u, now).await)
    }

    pub async fn raise_escalation(&self, r: ops::ManualRaise) -> Result<Escalation> {
        write!(self, |tx, rules, now| ops::raise_escalation(tx, r, &rules, now).await)
    }

    pub async fn acknowledge_escalation(&self, a: ops::Acknowledgement) -> Result<Escalation> {
        write!(self, |tx, rules, now| ops::acknowledge_escalation(tx, a, &rules, now).await)
    }

    pub async fn acknowledge_alert(
        &self,
        id: String,
        request: Option<RequestKey>,
        principal: Arc<Principal>,
    ) -> Result<Alert> {
        write!(self, |tx, _rules, now| ops::acknowledge_alert(tx, id, request, principal, now).await)
    }

    /// Records how a request to CaseService went.
    pub async fn finish_action(&self, due: DueAction, attempt: Attempt, lead_case: String) -> Result<()> {
        write!(self, |tx, _rules, now| ops::finish_action(tx, due, attempt, lead_case, now).await)
    }

    pub async fn create_watchlist(
        &self,
        w: Watchlist,
        request: RequestKey,
        principal: Arc<Principal>,
    ) -> Result<Watchlist> {
        write!(self, |tx, _rules, now| special::create_watchlist(tx, w, request, principal, now).await)
    }

    pub async fn update_watchlist(&self, u: special::WatchlistUpdate) -> Result<Watchlist> {
        write!(self, |tx, _rules, now| special::update_watchlist(tx, u, now).await)
    }

    pub async fn delete_watchlist(&self, id: String, principal: Arc<Principal>) -> Result<()> {
        write!(self, |tx, _rules, _now| special::delete_watchlist(tx, id, principal).await)
    }

    pub async fn report_mention(&self, m: Mention, request: RequestKey, principal: Arc<Principal>) -> Result<Mention> {
        write!(self, |tx, _rules, now| special::report_mention(tx, m, request, principal, now).await)
    }

    pub async fn attach_mention(
        &self,
        mention: String,
        incident: String,
        request: Option<RequestKey>,
        principal: Arc<Principal>,
    ) -> Result<Mention> {
        write!(self, |tx, _rules, now| special::attach_mention(tx, mention, incident, request, principal, now).await)
    }

    pub async fn create_template(
        &self,
        t: ResponseTemplate,
        request: RequestKey,
        principal: Arc<Principal>,
    ) -> Result<ResponseTemplate> {
        write!(self, |tx, _rules, now| special::create_template(tx, t, request, principal, now).await)
    }

    pub async fn register_vip(
        &self,
        row: special::Registration,
        request: Option<RequestKey>,
        principal: Arc<Principal>,
    ) -> Result<Vip> {
        write!(self, |tx, _rules, now| special::register_vip(tx, row, request, principal, now).await)
    }

    pub async fn register_vips(&self, rows: Vec<special::Registration>, principal: Arc<Principal>) -> Result<Vec<Vip>> {
        write!(self, |tx, _rules, now| special::register_vips(tx, rows, principal, now).await)
    }

    pub async fn delete_vip(&self, id: String, principal: Arc<Principal>) -> Result<()> {
        write!(self, |tx, _rules, _now| special::delete_vip(tx, id, principal).await)
    }

    pub async fn flag_malicious(
        &self,
        f: MaliciousFlag,
        request: RequestKey,
        principal: Arc<Principal>,
    ) -> Result<MaliciousFlag> {
        write!(self, |tx, _rules, now| special::flag_malicious(tx, f, request, principal, now).await)
    }

    pub async fn decide_flag(&self, d: special::FlagDecision) -> Result<MaliciousFlag> {
        write!(self, |tx, rules, now| special::decide_flag(tx, d, &rules, now).await)
    }

    /// Matches an accepted complaint against the recent ones of its institution, in one
    /// transaction with taking it off the queue (see `ops::match_complaint`).
    pub async fn match_complaint(&self, input: ops::MatchInput) -> Result<Option<ops::MatchOutcome>> {
        write!(self, |tx, rules, now| ops::match_complaint(tx, input, &rules, now).await)
    }

    /// Matches complaints one after another, in the order given, in one transaction: each
    /// sees the clusters the ones before it formed, and all are taken off the queue together
    /// or none is. One commit for many matches is what lets matching keep up with a flood.
    pub async fn match_complaints(&self, inputs: Vec<ops::MatchInput>) -> Result<Vec<Option<ops::MatchOutcome>>> {
        write!(self, |tx, rules, now| {
            let mut outcomes = Vec::with_capacity(inputs.len());
            for input in inputs {
                outcomes.push(ops::match_complaint(tx, input, &rules, now).await?);
            }
            Ok(outcomes)
        })
    }

    /// Forgets the bands of complaints received longer ago than the grouping rules keep
    /// candidates ([`GroupingConfig::kept`](crate::domain::grouping::GroupingConfig::kept)),
    /// oldest first, [`FORGET_BATCH`] to a transaction, one turn of at most [`FORGET_TURN`]
    /// of them; returns how many, and whether none is left (a turn that `stop` cut short or
    /// that ran out of transactions leaves the rest to the next).
    pub async fn forget_candidates(&self, stop: &CancellationToken) -> Result<(u64, bool)> {
        let mut forgotten = 0;
        for turn in 0..FORGET_TURN {
            if turn > 0 {
                tokio::select! {
                    () = stop.cancelled() => return Ok((forgotten, false)),
                    () = tokio::time::sleep(FORGET_PAUSE) => {}
                }
            }
            let n = write!(self, |tx, rules, now| {
                tx.forget_candidates(to_micros(rules.grouping.kept_since(now) - FORGET_GRACE)).await
            })?;
            forgotten += n;
            if n < FORGET_BATCH {
                return Ok((forgotten, true));
            }
        }
        Ok((forgotten, false))
    }

    /// Raises what the ladder's timers and the crisis stages' due times call for by `now`, on
    /// at most `limit` records of each; each record in a transaction of its own. Returns how
    /// many it looked at (0 also when another replica holds the sweep).
    pub async fn sweep(&self, now: DateTime<Utc>, limit: i64) -> anyhow::Result<usize> {
        let swept = self
            .exclusively(super::SWEEP_LOCK, || async {
                let (escalations, incidents) = self.due(now, limit).await?;
                let looked = escalations.len().max(incidents.len());
                for id in escalations {
                    write!(self, |tx, rules, _now| ops::sweep_escalation(tx, id, &rules, now).await)?;
                }
                for id in incidents {
                    write!(self, |tx, _rules, _now| ops::sweep_incident(tx, id, now).await)?;
                }
                Ok(looked)
            })
            .await?;
        Ok(swept.unwrap_or(0))
    }
}
