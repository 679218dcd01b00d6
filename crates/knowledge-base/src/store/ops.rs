//! The knowledge base's store operations, written once over [`KbTx`]: load and lock, check
//! who may do it, plan, write. Each runs inside one transaction that its backend opens and
//! commits.

use prost::Message;
use redress_platform::ServiceError;

use super::Change;
use super::tx::KbTx;
use crate::domain::article::{self, Answer, ArticleRecord, Command, Plan};
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
