//! The case library for editors: typical-case candidates listed within the caller's units,
//! adopted into draft typical cases or set aside; and the dead letters of the feed they come
//! from.

use std::sync::Arc;

use redress_platform::dead_letters::Replay;
use redress_platform::error::Violations;
use redress_platform::names::{RequestId, Text, resource_id};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::now;
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use redress_proto::redress::knowledge::v1::{
    AdoptCaseCandidateRequest, Article, CandidateState, CaseCandidate, DismissCaseCandidateRequest,
    ListCaseCandidatesRequest, ListCaseCandidatesResponse,
};

use super::KnowledgeApi;
use crate::error::KbError;
use crate::store::{CandidateAction, CandidateChange, CandidateQuery, RequestKey};

fn key(
    v: &mut Violations,
    principal: &Principal,
    method: &str,
    id: &str,
    request: &impl prost::Message,
) -> Option<RequestKey> {
    use sha2::{Digest, Sha256};
    let id = RequestId::parse_required(v, "request_id", id)?;
    let mut hasher = Sha256::new();
    hasher.update(format!("{method}\0{}\0", principal.subject).as_bytes());
    hasher.update(request.encode_to_vec());
    Some(RequestKey { id: id.as_str().to_owned(), fingerprint: hex::encode(hasher.finalize()) })
}

fn decode<M: prost::Message + Default>(answer: &[u8]) -> Result<M, KbError> {
    M::decode(answer).map_err(|e| KbError::Internal(anyhow::anyhow!("stored answer does not decode: {e}")))
}

impl KnowledgeApi {
    pub(super) async fn list_case_candidates(
        &self,
        principal: &Principal,
        request: ListCaseCandidatesRequest,
    ) -> Result<ListCaseCandidatesResponse, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let state = match CandidateState::try_from(request.state) {
            Ok(CandidateState::Unspecified) => None,
            Ok(s) => Some(s as i64),
            Err(_) => {
                v.add("state", "unknown candidate state");
                None
            }
        };
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        let query = CandidateQuery { state, after, unit: principal.org_unit.clone(), limit: i64::from(page_size) + 1 };
        let mut listed = self.store()?.list_candidates(&query).await?;
        let next_page_token = paging::finish_page(&mut listed, page_size, |l| l.cursor.clone());
        Ok(ListCaseCandidatesResponse {
            candidates: listed.into_iter().map(|l| l.candidate).collect(),
            next_page_token,
        })
    }

    async fn change_candidate(
        &self,
        principal: &Principal,
        id: Option<&str>,
        action: CandidateAction,
        request: Option<RequestKey>,
    ) -> Result<Vec<u8>, KbError> {
        let change = CandidateChange {
            id: id.unwrap_or_default().to_owned(),
            principal: Arc::new(principal.clone()),
            action,
            request,
            now: now(),
        };
        self.store()?.change_candidate(change).await
    }

    pub(super) async fn adopt_case_candidate(
        &self,
        principal: &Principal,
        request: AdoptCaseCandidateRequest,
    ) -> Result<Article, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "caseCandidates").map(str::to_owned);
        let key = key(&mut v, principal, "AdoptCaseCandidate", &request.request_id, &request);
        v.into_result()?;
        let action = CandidateAction::Adopt { article_id: uuid::Uuid::now_v7().to_string() };
        decode(&self.change_candidate(principal, id.as_deref(), action, key).await?)
    }

    pub(super) async fn dismiss_case_candidate(
        &self,
        principal: &Principal,
        request: DismissCaseCandidateRequest,
    ) -> Result<CaseCandidate, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "caseCandidates").map(str::to_owned);
        Text::Reason.check(&mut v, "reason", &request.reason, true);
        let key = key(&mut v, principal, "DismissCaseCandidate", &request.request_id, &request);
        v.into_result()?;
        let action = CandidateAction::Dismiss { reason: request.reason.trim().to_owned() };
        decode(&self.change_candidate(principal, id.as_deref(), action, key).await?)
    }

    pub(super) async fn list_dead_letters(
        &self,
        principal: &Principal,
        request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, KbError> {
        self.store()?.list_dead_letters(principal, &request).await
    }

    pub(super) async fn replay_dead_letter(
        &self,
        principal: &Arc<Principal>,
        request: ReplayDeadLetterRequest,
    ) -> Result<DeadLetter, KbError> {
        let replay = Replay::parse(principal.clone(), request)?;
        Ok(self.store()?.replay_dead_letter(replay).await?.to_proto())
    }
}
