//! gRPC surface of the knowledge base, the only place protos meet the domain: [`articles`]
//! validates each call on articles and their versions and hands it to the store.

mod articles;
mod candidates;
mod lint;
mod search;
mod suggest;

use std::collections::BTreeSet;
use std::sync::Arc;

use redress_platform::events::{FeedStream, serve_stream};
use redress_platform::principal::{CallerToken, Principal, ServiceCredentials};
use redress_platform::ready::Ready;
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::knowledge::v1::knowledge_event_feed_service_server::KnowledgeEventFeedService;
use redress_proto::redress::knowledge::v1::knowledge_service_server::KnowledgeService;
use redress_proto::redress::knowledge::v1::{
    AdoptCaseCandidateRequest, CaseCandidate, DismissCaseCandidateRequest, ListCaseCandidatesRequest,
    ListCaseCandidatesResponse, SuggestForComplaintRequest, SuggestForComplaintResponse,
};
use redress_proto::redress::knowledge::v1::{
    Article, ArticleVersion, CreateArticleRequest, CreateArticleVersionRequest, DiffArticleVersionsRequest,
    DiffArticleVersionsResponse, GetArticleRequest, GetArticleVersionRequest, LintReplyRequest, LintReplyResponse,
    ListArticleVersionsRequest, ListArticleVersionsResponse, ListArticlesRequest, ListArticlesResponse,
    ListLintRulesRequest, ListLintRulesResponse, RetireArticleRequest, ReviewArticleVersionRequest,
    SearchArticlesRequest, SearchArticlesResponse, StreamEventsRequest, StreamEventsResponse,
    SubmitArticleVersionRequest, UpdateArticleVersionRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::domain::lint::Rules;
use crate::error::KbError;
use crate::search::SearchIndex;
use crate::search::text::Lexicon;
use crate::store::KnowledgeStore;

type EventStream = FeedStream<StreamEventsResponse>;

#[derive(Clone)]
pub struct KnowledgeApi {
    store: Ready<Arc<dyn KnowledgeStore>>,
    index: Ready<Arc<SearchIndex>>,
    lexicon: Arc<Lexicon>,
    rules: Arc<Rules>,
    /// Institutions whose replies must not go out with a banned phrase.
    blocking: Arc<BTreeSet<String>>,
    /// Intake, where named complaints are read (on behalf of the caller), and the service's
    /// credentials for it.
    intake: Option<(IntakeServiceClient<Channel>, ServiceCredentials)>,
    shutdown: CancellationToken,
}

/// What the API reads besides the store and the index: the text analysis, the lint rules, and
/// which institutions block replies with banned phrases.
pub struct Settings {
    pub lexicon: Arc<Lexicon>,
    pub rules: Arc<Rules>,
    pub blocking: BTreeSet<String>,
    /// Intake's channel, when the knowledge base knows where intake is, and the knowledge
    /// base's credentials for calls to intake.
    pub intake: Option<(Channel, ServiceCredentials)>,
}

impl KnowledgeApi {
    pub fn new(
        store: Ready<Arc<dyn KnowledgeStore>>,
        index: Ready<Arc<SearchIndex>>,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Self {
        let Settings { lexicon, rules, blocking, intake } = settings;
        let intake = intake.map(|(channel, credentials)| {
            let client = IntakeServiceClient::new(channel)
                .max_decoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE)
                .max_encoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE);
            (client, credentials)
        });
        Self { store, index, lexicon, rules, blocking: Arc::new(blocking), intake, shutdown }
    }

    /// The store, once it is open (UNAVAILABLE until then).
    fn store(&self) -> Result<Arc<dyn KnowledgeStore>, KbError> {
        Ok(self.store.get()?.clone())
    }

    /// The search index, once it is built (UNAVAILABLE until then).
    fn index(&self) -> Result<Arc<SearchIndex>, KbError> {
        Ok(self.index.get()?.clone())
    }

    async fn stream_events(
        &self,
        principal: &Arc<Principal>,
        request: StreamEventsRequest,
    ) -> Result<EventStream, KbError> {
        let store = self.store()?;
        Ok(serve_stream(store.feed(), principal.clone(), request.after_position, self.shutdown.clone(), |events| {
            StreamEventsResponse { events }
        })
        .await?)
    }
}

/// Implements a gRPC service on [`KnowledgeApi`]: each method takes the principal the
/// interceptor verified and hands it, with the request, to the handler named after `=>`.
macro_rules! delegate {
    ($service:ident {
        $(type $assoc:ident = $assoc_ty:ty;)*
        $(fn $method:ident($request:ty) -> $response:ty => $handler:ident;)*
    } $($extra:item)*) => {
        #[tonic::async_trait]
        impl $service for KnowledgeApi {
            $(type $assoc = $assoc_ty;)*
            $(
                async fn $method(&self, request: Request<$request>) -> Result<Response<$response>, Status> {
                    let principal = Principal::of(&request)?;
                    Ok(Response::new(self.$handler(&principal, request.into_inner()).await?))
                }
            )*

            $($extra)*
        }
    };
}

delegate!(KnowledgeService {
    fn create_article(CreateArticleRequest) -> Article => create_article;
    fn get_article(GetArticleRequest) -> Article => get_article;
    fn list_articles(ListArticlesRequest) -> ListArticlesResponse => list_articles;
    fn create_article_version(CreateArticleVersionRequest) -> ArticleVersion => create_article_version;
    fn update_article_version(UpdateArticleVersionRequest) -> ArticleVersion => update_article_version;
    fn submit_article_version(SubmitArticleVersionRequest) -> ArticleVersion => submit_article_version;
    fn review_article_version(ReviewArticleVersionRequest) -> ArticleVersion => review_article_version;
    fn retire_article(RetireArticleRequest) -> Article => retire_article;
    fn get_article_version(GetArticleVersionRequest) -> ArticleVersion => get_article_version;
    fn list_article_versions(ListArticleVersionsRequest) -> ListArticleVersionsResponse => list_article_versions;
    fn diff_article_versions(DiffArticleVersionsRequest) -> DiffArticleVersionsResponse => diff_article_versions;
    fn search_articles(SearchArticlesRequest) -> SearchArticlesResponse => search_articles;
    fn lint_reply(LintReplyRequest) -> LintReplyResponse => lint_reply;
    fn list_lint_rules(ListLintRulesRequest) -> ListLintRulesResponse => list_lint_rules;
    fn list_case_candidates(ListCaseCandidatesRequest) -> ListCaseCandidatesResponse => list_case_candidates;
    fn adopt_case_candidate(AdoptCaseCandidateRequest) -> Article => adopt_case_candidate;
    fn dismiss_case_candidate(DismissCaseCandidateRequest) -> CaseCandidate => dismiss_case_candidate;
}
            async fn suggest_for_complaint(
                &self,
                request: Request<SuggestForComplaintRequest>,
            ) -> Result<Response<SuggestForComplaintResponse>, Status> {
                let principal = Principal::of(&request)?;
                let caller = CallerToken::of(&request);
                Ok(Response::new(self.suggest(&principal, caller.as_ref(), request.into_inner()).await?))
            }
);

delegate!(KnowledgeEventFeedService {
    type StreamEventsStream = EventStream;
    fn stream_events(StreamEventsRequest) -> EventStream => stream_events;
    fn list_dead_letters(ListDeadLettersRequest) -> ListDeadLettersResponse => list_dead_letters;
    fn replay_dead_letter(ReplayDeadLetterRequest) -> DeadLetter => replay_dead_letter;
});

#[cfg(test)]
mod tests;
