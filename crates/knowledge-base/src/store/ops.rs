//! The knowledge base's store operations, written once over [`KbTx`]: load and lock, check
//! who may do it, plan, write. Each runs inside one transaction that its backend opens and
//! commits.

use chrono::{DateTime, Utc};
use prost::{Message, Name};
use redress_platform::ServiceError;
use redress_platform::consumer::{self, ApplyEvent, Effect};
use redress_platform::dead_letters::{DeadLetter, Replay};
use redress_platform::names::OrgUnit;
use redress_platform::principal::Permission;
use redress_proto::redress::case::v1::CaseClosed;
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::knowledge::v1::ArticleKind;

use super::tx::KbTx;
use super::{CASE_CONSUMER, CandidateAction, CandidateChange, Change};
use crate::domain::article::{self, Answer, ArticleRecord, Command, Plan};
use crate::domain::candidates;
use crate::domain::scope::{Scope, editable_by};
use crate::error::KbError;

/// The encoded answer of a change, and whether anything was written.
pub(crate) struct Outcome {
    pub answer: Vec<u8>,
    pub written: bool,
}

/// One change to an article. The request id is looked up after the article is locked, so a
/// concurrent retry waits and then finds the first result.
pub(crate) async fn change<T: KbTx + ?Sized>(tx: &mut T, change: Change) -> Result<Outcome, KbError> {
    let Change { id, principal, command, request, now } = change;
    let loaded = match command {
        Command::Create { .. } => None,
        _ => {
            let name = format!("articles/{id}");
            let Some(loaded) = tx.load(&id).await?.filter(|a| article::visible_to(&principal, a)) else {
                return Err(KbError::NotFound { name });
            };
            if !article::is_editor(&principal, &loaded) {
                return Err(ServiceError::PermissionDenied(format!(
                    "{name} belongs to {}, which the caller's unit does not cover",
                    loaded.org_unit
                ))
                .into());
            }
            Some(loaded)
        }
    };
    principal.require(command.permission())?;
    if let Some(key) = &request
        && let Some((fingerprint, answer)) = tx.load_request(&key.id).await?
    {
        if fingerprint != key.fingerprint {
            return Err(KbError::RequestIdReused);
        }
        return Ok(Outcome { answer, written: false });
    }
    let plan = match loaded {
        None => article::plan_create(&id, command, &principal.subject, now)?,
        Some(loaded) => article::plan_change(loaded, command, &principal.subject, now)?,
    };
    tx.write(&plan).await?;
    let answer = answer_of(&plan.article, plan.answer);
    if let Some(key) = &request {
        tx.save_request(key, &answer).await?;
    }
    Ok(Outcome { answer, written: true })
}

/// What a change answers, encoded: the article as its editors see it, or the version.
fn answer_of(article: &ArticleRecord, answer: Answer) -> Vec<u8> {
    match answer {
        Answer::Article => article.to_proto(true).encode_to_vec(),
        Answer::Version(n) => article.version(n).map(Message::encode_to_vec).unwrap_or_default(),
    }
}

/// Writes whole published articles, passing over ids already stored.
pub(crate) async fn seed<T: KbTx + ?Sized>(tx: &mut T, plans: &[Plan]) -> Result<usize, KbError> {
    let mut written = 0;
    for plan in plans {
        if tx.load(&plan.article.id).await?.is_some() {
            continue;
        }
        tx.write(plan).await?;
        written += 1;
    }
    Ok(written)
}

/// An adoption or dismissal of a candidate: the candidate locked, its scope checked, the
/// request id looked up, then the draft (for an adoption) and the candidate written.
pub(crate) async fn change_candidate<T: KbTx + ?Sized>(
    tx: &mut T,
    change: CandidateChange,
) -> Result<Outcome, KbError> {
    let CandidateChange { id, principal, action, request, now } = change;
    let name = format!("caseCandidates/{id}");
    // Candidates are for the editors of their unit; to anyone else they do not exist.
    let Some(candidate) = tx.load_candidate(&id).await?.filter(|c| editable_by(&principal, &c.org_unit)) else {
        return Err(KbError::NotFound { name });
    };
    principal.require(Permission::KnowledgeWrite)?;
    if let Some(key) = &request
        && let Some((fingerprint, answer)) = tx.load_request(&key.id).await?
    {
        if fingerprint != key.fingerprint {
            return Err(KbError::RequestIdReused);
        }
        return Ok(Outcome { answer, written: false });
    }
    let actor = principal.subject.as_str();
    let answer = match action {
        CandidateAction::Adopt { article_id } => {
            let unit = OrgUnit::try_from_str(&candidate.org_unit)
                .map_err(|e| anyhow::anyhow!("candidate {name} has no organisation unit: {e}"))?;
            let content = candidates::draft_of(&candidate);
            let change_note = format!("由案例库候选 {name} 生成");
            let command =
                Command::Create { kind: ArticleKind::TypicalCase, scope: Scope::Unit(unit), content, change_note };
            let plan = article::plan_create(&article_id, command, actor, now)?;
            let adopted = candidates::adopt(candidate, &plan.article.name(), actor, now)?;
            tx.write(&plan).await?;
            tx.save_candidate(&adopted).await?;
            plan.article.to_proto(true).encode_to_vec()
        }
        CandidateAction::Dismiss { reason } => {
            let dismissed = candidates::dismiss(candidate, &reason, actor, now)?;
            tx.save_candidate(&dismissed).await?;
            dismissed.encode_to_vec()
        }
    };
    if let Some(key) = &request {
        tx.save_request(key, &answer).await?;
    }
    Ok(Outcome { answer, written: true })
}

/// What case-workflow's events mean for the knowledge base: a closed case with a notable
/// outcome becomes a candidate; every other event is passed over.
struct CaseEvents {
    now: DateTime<Utc>,
    proposed: usize,
}

#[async_trait::async_trait]
impl<T: KbTx + ?Sized> ApplyEvent<T> for CaseEvents {
    type Error = KbError;

    async fn apply(&mut self, tx: &mut T, event: &Event) -> Result<Effect, KbError> {
        if event.event_type != CaseClosed::full_name() {
            return Ok(Effect::Applied);
        }
        let closed = match event.payload.as_ref().map(|p| p.to_msg::<CaseClosed>()) {
            Some(Ok(closed)) => closed,
            Some(Err(e)) => return Ok(Effect::Unappliable(format!("CaseClosed does not decode: {e}"))),
            None => return Ok(Effect::Unappliable("CaseClosed without a payload".to_owned())),
        };
        if let Some(candidate) = candidates::candidate_of(&closed, self.now)
            && tx.insert_candidate(&candidate).await?
        {
            self.proposed += 1;
        }
        Ok(Effect::Applied)
    }
}

/// Applies a batch of case-workflow's events after the stored position, in feed order, and
/// stores the new position, all in the caller's transaction; returns it and how many
/// candidates were proposed.
pub(crate) async fn apply_case_events<T: KbTx + ?Sized>(
    tx: &mut T,
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<(i64, usize), KbError> {
    let mut apply = CaseEvents { now, proposed: 0 };
    let position = consumer::apply_in_order(tx, CASE_CONSUMER, events, &mut apply).await?;
    if apply.proposed > 0 {
        metrics::counter!("redress_knowledge_case_candidates_total").increment(apply.proposed as u64);
    }
    Ok((position, apply.proposed))
}

/// Applies a dead letter of case-workflow's feed again and marks it replayed.
pub(crate) async fn replay<T: KbTx + ?Sized>(
    tx: &mut T,
    replay: &Replay,
    now: DateTime<Utc>,
) -> Result<DeadLetter, KbError> {
    let mut apply = CaseEvents { now, proposed: 0 };
    consumer::replay(tx, replay, &mut apply).await
}
