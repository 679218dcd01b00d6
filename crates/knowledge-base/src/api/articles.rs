//! Articles and their versions: each request parsed once into domain values (every invalid
//! field reported at once), permissions and scope checked, then the store called.

use std::sync::Arc;

use prost::Message;
use redress_platform::ServiceError;
use redress_platform::error::Violations;
use redress_platform::names::{RequestId, Text, resource_id};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::now;
use redress_proto::redress::knowledge::v1::{
    Article, ArticleContent, ArticleKind, ArticleState, ArticleVersion, ArticleView, CaseOutcome, CreateArticleRequest,
    CreateArticleVersionRequest, DiffArticleVersionsRequest, DiffArticleVersionsResponse, GetArticleRequest,
    GetArticleVersionRequest, ListArticleVersionsRequest, ListArticleVersionsResponse, ListArticlesRequest,
    ListArticlesResponse, RetireArticleRequest, ReviewArticleVersionRequest, ReviewDecision,
    SubmitArticleVersionRequest, TaxonomyCodes, UpdateArticleVersionRequest, VersionState,
};
use sha2::{Digest, Sha256};

use super::KnowledgeApi;
use crate::domain::article::{self, ArticleRecord, Command, ContentField};
use crate::domain::diff;
use crate::domain::scope::{Scope, editable_by};
use crate::error::KbError;
use crate::store::{ArticleQuery, Change, RequestKey};

/// Most tags an article carries, and the longest one, in characters.
const MAX_TAGS: usize = 30;
const MAX_TAG_CHARS: usize = 50;
/// Most codes of each kind.
const MAX_CODES: usize = 30;

/// The content's fields, checked: `fields` names those given (all when `None`); a field not
/// given is left as the caller sent it.
fn check_content(
    v: &mut Violations,
    field: &str,
    content: &ArticleContent,
    fields: Option<&[ContentField]>,
) -> ArticleContent {
    let wants = |f: ContentField| fields.is_none_or(|named| named.is_empty() || named.contains(&f));
    let mut out = content.clone();
    if wants(ContentField::Title) {
        out.title = content.title.trim().to_owned();
        Text::Name.check(v, &format!("{field}.title"), &out.title, true);
    }
    if wants(ContentField::Body) {
        out.body = content.body.trim().to_owned();
        Text::Long.check(v, &format!("{field}.body"), &out.body, true);
    }
    if wants(ContentField::Tags) {
        if content.tags.len() > MAX_TAGS {
            v.add(format!("{field}.tags"), format!("at most {MAX_TAGS} tags"));
        }
        let mut tags: Vec<String> = Vec::new();
        for (i, tag) in content.tags.iter().enumerate() {
            let tag = tag.trim();
            let path = format!("{field}.tags[{i}]");
            if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS || tag.contains(['\n', '\r', '\t']) {
                v.add(path, format!("a tag is one line of 1 to {MAX_TAG_CHARS} characters"));
            } else if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        }
        out.tags = tags;
    }
    if wants(ContentField::Codes) {
        let codes = content.codes.clone().unwrap_or_default();
        for (name, list) in
            [("business_types", &codes.business_types), ("causes", &codes.causes), ("rights", &codes.rights)]
        {
            if list.len() > MAX_CODES {
                v.add(format!("{field}.codes.{name}"), format!("at most {MAX_CODES} codes"));
            }
            for (i, code) in list.iter().enumerate() {
                if !is_code(code) {
                    v.add(
                        format!("{field}.codes.{name}[{i}]"),
                        "a taxonomy code: a capital letter and 1 to 3 digits, e.g. B02",
                    );
                }
            }
        }
        out.codes = Some(TaxonomyCodes {
            business_types: dedup(&codes.business_types),
            causes: dedup(&codes.causes),
            rights: dedup(&codes.rights),
        });
    }
    if wants(ContentField::Outcome) && CaseOutcome::try_from(content.outcome).is_err() {
        v.add(format!("{field}.outcome"), "unknown case outcome");
    }
    out
}

fn is_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && (1..=3).contains(&chars.clone().count())
        && chars.all(|c| c.is_ascii_digit())
}

fn dedup(codes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for code in codes {
        if !out.contains(code) {
            out.push(code.clone());
        }
    }
    out
}

/// The id and version number of `articles/{id}/versions/{n}`.
fn version_name(v: &mut Violations, field: &str, name: &str) -> Option<(String, i32)> {
    let parsed = name.rsplit_once("/versions/").and_then(|(article, number)| {
        let number = number.parse::<i32>().ok().filter(|n| *n > 0)?;
        let id = resource_id(&mut Violations::new(), field, article, "articles")?;
        Some((id.to_owned(), number))
    });
    if parsed.is_none() {
        v.add(field, "must be articles/{id}/versions/{version}");
    }
    parsed
}

fn kind_of(v: &mut Violations, field: &str, kind: i32, required: bool) -> Option<ArticleKind> {
    match ArticleKind::try_from(kind) {
        Ok(ArticleKind::Unspecified) if required => {
            v.add(field, "required");
            None
        }
        Ok(ArticleKind::Unspecified) => None,
        Ok(kind) => Some(kind),
        Err(_) => {
            v.add(field, "unknown article kind");
            None
        }
    }
}

/// A request id and the fingerprint of who used it for what, so that a retry is recognised
/// and another request under the same id is refused.
fn request_key(
    v: &mut Violations,
    principal: &Principal,
    method: &str,
    id: &str,
    request: &impl Message,
) -> Option<RequestKey> {
    let id = RequestId::parse_required(v, "request_id", id)?;
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(principal.subject.as_bytes());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    Some(RequestKey { id: id.as_str().to_owned(), fingerprint: hex::encode(hasher.finalize()) })
}

/// Who reads articles: readers of published versions, and their editors.
const READERS: &[Permission] = &[Permission::KnowledgeRead, Permission::KnowledgeWrite, Permission::KnowledgeReview];
/// Who edits articles (and so sees their history).
const EDITORS: &[Permission] = &[Permission::KnowledgeWrite, Permission::KnowledgeReview];

/// PERMISSION_DENIED unless the caller holds one of `permissions`: checked before the request
/// is looked at, so a caller without them learns nothing from its validation.
fn require_any(principal: &Principal, permissions: &[Permission]) -> Result<(), ServiceError> {
    if permissions.iter().any(|p| principal.has(*p)) {
        return Ok(());
    }
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    Err(ServiceError::PermissionDenied(format!("one of the {} permissions is required", names.join(", "))))
}

fn decode<M: Message + Default>(answer: &[u8]) -> Result<M, KbError> {
    M::decode(answer).map_err(|e| KbError::Internal(anyhow::anyhow!("stored answer does not decode: {e}")))
}

impl KnowledgeApi {
    /// Hands a command on article `id` to the store.
    async fn change(
        &self,
        principal: &Principal,
        id: String,
        command: Command,
        request: Option<RequestKey>,
    ) -> Result<Vec<u8>, KbError> {
        let change = Change { id, principal: Arc::new(principal.clone()), command, request, now: now() };
        self.store()?.change(change).await
    }

    /// The article `name`, if the caller may see it (else NOT_FOUND).
    async fn visible(&self, principal: &Principal, field: &str, name: &str) -> Result<ArticleRecord, KbError> {
        let mut v = Violations::new();
        let id = resource_id(&mut v, field, name, "articles").map(str::to_owned);
        v.into_result()?;
        let id = id.unwrap_or_default();
        self.store()?
            .get(&id)
            .await?
            .filter(|a| article::visible_to(principal, a))
            .ok_or_else(|| KbError::NotFound { name: name.to_owned() })
    }

    /// The article `name` for its editors: NOT_FOUND when the caller may not see it,
    /// PERMISSION_DENIED when they see it but do not edit its scope.
    async fn edited(&self, principal: &Principal, field: &str, name: &str) -> Result<ArticleRecord, KbError> {
        let article = self.visible(principal, field, name).await?;
        if !article::is_editor(principal, &article) {
            return Err(ServiceError::PermissionDenied(
                "the knowledge.write or knowledge.review permission over the article's unit is required".to_owned(),
            )
            .into());
        }
        Ok(article)
    }

    pub(super) async fn create_article(
        &self,
        principal: &Principal,
        request: CreateArticleRequest,
    ) -> Result<Article, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let kind = kind_of(&mut v, "kind", request.kind, true);
        let scope = Scope::parse(&mut v, "org_unit", &request.org_unit);
        let content = match &request.content {
            Some(c) => Some(check_content(&mut v, "content", c, None)),
            None => {
                v.add("content", "required");
                None
            }
        };
        Text::Reason.check(&mut v, "change_note", &request.change_note, false);
        let key = request_key(&mut v, principal, "CreateArticle", &request.request_id, &request);
        v.into_result()?;
        let (Some(kind), Some(scope), Some(content)) = (kind, scope, content) else {
            return Err(ServiceError::invalid("request", "incomplete").into());
        };
        if !editable_by(principal, scope.as_str()) {
            return Err(ServiceError::PermissionDenied(format!(
                "the caller's unit does not cover {}; an article applies only within the author's unit",
                scope.as_str()
            ))
            .into());
        }
        let command = Command::Create { kind, scope, content, change_note: request.change_note.trim().to_owned() };
        let id = uuid::Uuid::now_v7().to_string();
        decode(&self.change(principal, id, command, key).await?)
    }

    pub(super) async fn get_article(
        &self,
        principal: &Principal,
        request: GetArticleRequest,
    ) -> Result<Article, KbError> {
        require_any(principal, READERS)?;
        let article = self.visible(principal, "name", &request.name).await?;
        let editor = request.view == ArticleView::Editor as i32 && article::is_editor(principal, &article);
        Ok(article.to_proto(editor))
    }

    pub(super) async fn list_articles(
        &self,
        principal: &Principal,
        request: ListArticlesRequest,
    ) -> Result<ListArticlesResponse, KbError> {
        let editor = principal.has(Permission::KnowledgeWrite) || principal.has(Permission::KnowledgeReview);
        if !editor {
            principal.require(Permission::KnowledgeRead)?;
        }
        let mut v = Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let kind = kind_of(&mut v, "kind", request.kind, false);
        let state = match ArticleState::try_from(request.state) {
            Ok(ArticleState::Unspecified) => None,
            Ok(s) => Some(s as i64),
            Err(_) => {
                v.add("state", "unknown article state");
                None
            }
        };
        let open_state = match VersionState::try_from(request.open_state) {
            Ok(VersionState::Unspecified) => None,
            Ok(s @ (VersionState::Draft | VersionState::InReview)) => Some(s as i64),
            Ok(_) | Err(_) => {
                v.add("open_state", "must be VERSION_STATE_DRAFT or VERSION_STATE_IN_REVIEW");
                None
            }
        };
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        let query = ArticleQuery {
            kind: kind.map(|k| k as i64),
            state,
            open_state,
            after,
            unit: principal.org_unit.clone(),
            editor,
            limit: i64::from(page_size) + 1,
        };
        let mut articles = self.store()?.list(&query).await?;
        let next_page_token =
            paging::finish_page(&mut articles, page_size, |a| (a.update_time.timestamp_micros(), a.id.clone()));
        let view_editor = request.view == ArticleView::Editor as i32;
        let articles = articles
            .iter()
            .filter(|a| article::visible_to(principal, a))
            .map(|a| a.to_proto(view_editor && article::is_editor(principal, a)))
            .collect();
        Ok(ListArticlesResponse { articles, next_page_token })
    }

    pub(super) async fn create_article_version(
        &self,
        principal: &Principal,
        request: CreateArticleVersionRequest,
    ) -> Result<ArticleVersion, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "parent", &request.parent, "articles").map(str::to_owned);
        let content = request.content.as_ref().map(|c| check_content(&mut v, "content", c, None));
        Text::Reason.check(&mut v, "change_note", &request.change_note, false);
        let key = request_key(&mut v, principal, "CreateArticleVersion", &request.request_id, &request);
        v.into_result()?;
        let command = Command::NewVersion { content, change_note: request.change_note.trim().to_owned() };
        decode(&self.change(principal, id.unwrap_or_default(), command, key).await?)
    }

    pub(super) async fn update_article_version(
        &self,
        principal: &Principal,
        request: UpdateArticleVersionRequest,
    ) -> Result<ArticleVersion, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let target = version_name(&mut v, "name", &request.name);
        let mut mask = Vec::new();
        for (i, path) in request.update_mask.iter().enumerate() {
            match ContentField::parse(path) {
                Some(field) => mask.push(field),
                None => v.add(format!("update_mask[{i}]"), "one of title, body, tags, codes, outcome"),
            }
        }
        let content = match &request.content {
            Some(c) => check_content(&mut v, "content", c, Some(&mask)),
            None => {
                v.add("content", "required");
                ArticleContent::default()
            }
        };
        Text::Reason.check(&mut v, "change_note", &request.change_note, false);
        let key = request_key(&mut v, principal, "UpdateArticleVersion", &request.request_id, &request);
        v.into_result()?;
        let (id, version) = target.unwrap_or_default();
        let command = Command::Update { version, content, mask, change_note: request.change_note.trim().to_owned() };
        decode(&self.change(principal, id, command, key).await?)
    }

    pub(super) async fn submit_article_version(
        &self,
        principal: &Principal,
        request: SubmitArticleVersionRequest,
    ) -> Result<ArticleVersion, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let target = version_name(&mut v, "name", &request.name);
        let key = request_key(&mut v, principal, "SubmitArticleVersion", &request.request_id, &request);
        v.into_result()?;
        let (id, version) = target.unwrap_or_default();
        decode(&self.change(principal, id, Command::Submit { version }, key).await?)
    }

    pub(super) async fn review_article_version(
        &self,
        principal: &Principal,
        request: ReviewArticleVersionRequest,
    ) -> Result<ArticleVersion, KbError> {
        principal.require(Permission::KnowledgeReview)?;
        let mut v = Violations::new();
        let target = version_name(&mut v, "name", &request.name);
        let approve = match ReviewDecision::try_from(request.decision) {
            Ok(ReviewDecision::Approve) => true,
            Ok(ReviewDecision::Return) => false,
            _ => {
                v.add("decision", "REVIEW_DECISION_APPROVE or REVIEW_DECISION_RETURN");
                false
            }
        };
        Text::Reason.check(&mut v, "comment", &request.comment, !approve);
        let key = request_key(&mut v, principal, "ReviewArticleVersion", &request.request_id, &request);
        v.into_result()?;
        let (id, version) = target.unwrap_or_default();
        let command = Command::Review { version, approve, comment: request.comment.trim().to_owned() };
        decode(&self.change(principal, id, command, key).await?)
    }

    pub(super) async fn retire_article(
        &self,
        principal: &Principal,
        request: RetireArticleRequest,
    ) -> Result<Article, KbError> {
        principal.require(Permission::KnowledgeWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "articles").map(str::to_owned);
        Text::Reason.check(&mut v, "reason", &request.reason, true);
        let key = request_key(&mut v, principal, "RetireArticle", &request.request_id, &request);
        v.into_result()?;
        let command = Command::Retire { reason: request.reason.trim().to_owned() };
        decode(&self.change(principal, id.unwrap_or_default(), command, key).await?)
    }

    pub(super) async fn get_article_version(
        &self,
        principal: &Principal,
        request: GetArticleVersionRequest,
    ) -> Result<ArticleVersion, KbError> {
        require_any(principal, READERS)?;
        let mut v = Violations::new();
        let target = version_name(&mut v, "name", &request.name);
        v.into_result()?;
        let (id, number) = target.unwrap_or_default();
        let article = self.visible(principal, "name", &format!("articles/{id}")).await?;
        let not_found = || KbError::NotFound { name: request.name.clone() };
        let version = article.version(number).ok_or_else(not_found)?;
        // Readers read the published version; the rest of the history is for editors.
        if version.state != VersionState::Published as i32 && !article::is_editor(principal, &article) {
            return Err(not_found());
        }
        Ok(version.clone())
    }

    pub(super) async fn list_article_versions(
        &self,
        principal: &Principal,
        request: ListArticleVersionsRequest,
    ) -> Result<ListArticleVersionsResponse, KbError> {
        require_any(principal, EDITORS)?;
        let mut v = Violations::new();
        let page_size = paging::page_size(request.page_size, &mut v);
        let before = paging::decode_token(&request.page_token, &mut v).map(|(version, _)| version);
        v.into_result()?;
        let article = self.edited(principal, "parent", &request.parent).await?;
        let mut versions: Vec<ArticleVersion> = article
            .versions
            .into_iter()
            .rev()
            .filter(|v| before.is_none_or(|b| i64::from(v.version) < b))
            .take(page_size as usize + 1)
            .collect();
        let next_page_token = paging::finish_page(&mut versions, page_size, |v| (i64::from(v.version), String::new()));
        Ok(ListArticleVersionsResponse { versions, next_page_token })
    }

    pub(super) async fn diff_article_versions(
        &self,
        principal: &Principal,
        request: DiffArticleVersionsRequest,
    ) -> Result<DiffArticleVersionsResponse, KbError> {
        require_any(principal, EDITORS)?;
        let mut v = Violations::new();
        if request.from_version <= 0 {
            v.add("from_version", "a version number, from 1");
        }
        if request.to_version <= 0 {
            v.add("to_version", "a version number, from 1");
        }
        v.into_result()?;
        let article = self.edited(principal, "parent", &request.parent).await?;
        let content = |n: i32, field: &str| {
            article
                .version(n)
                .map(|v| v.content.clone().unwrap_or_default())
                .ok_or_else(|| KbError::from(ServiceError::invalid(field, format!("the article has no version {n}"))))
        };
        let (old, new) = (content(request.from_version, "from_version")?, content(request.to_version, "to_version")?);
        Ok(DiffArticleVersionsResponse { chunks: diff::diff(&old, &new) })
    }
}
