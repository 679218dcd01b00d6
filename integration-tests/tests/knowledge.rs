//! The knowledge base through the gateway: the starter pack searched, an article written at
//! one institution, reviewed by someone else and found only within that institution, reply
//! lint, suggestions for a complaint read from intake as the caller, the case library fed by a
//! closed case, and a search index rebuilt from the store after its directory was lost.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redress_integration_tests::{Bearer, Sandbox, TOKEN};
use redress_platform::Principal;
use redress_proto::redress::case::v1::{AnswerSurveyRequest, CaseState, TransitionCaseRequest};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::knowledge::v1::knowledge_service_client::KnowledgeServiceClient;
use redress_proto::redress::knowledge::v1::{
    ArticleContent, ArticleKind, CreateArticleRequest, GetArticleRequest, LintReplyRequest, ListCaseCandidatesRequest,
    ReplyKind, ReviewArticleVersionRequest, ReviewDecision, SearchArticlesRequest, SubmitArticleVersionRequest,
    SuggestForComplaintRequest,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Client = KnowledgeServiceClient<InterceptedService<Channel, Bearer>>;

const AUTHOR: &str = "kb-author-token";
const REVIEWER: &str = "kb-reviewer-token";
const BRANCH_READER: &str = "kb-branch-reader-token";
const OTHER_READER: &str = "kb-other-reader-token";
const KB_ONLY_READER: &str = "kb-only-reader-token";

fn person(subject: &str, unit: &str, permissions: &[&str]) -> Principal {
    Principal {
        subject: subject.to_owned(),
        roles: vec!["handler".to_owned()],
        org_unit: unit.to_owned(),
        department: String::new(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        staff_id: String::new(),
    }
}

async fn sandbox_in(dir: tempfile::TempDir) -> Sandbox {
    let sandbox = Sandbox::start_configured(dir, |options| {
        options.starter_content = true;
        options.extra_dev_tokens.extend([
            (
                AUTHOR.to_owned(),
                person(
                    "user:kb-author",
                    "institutions/demo-bank",
                    &["knowledge.read", "knowledge.write", "knowledge.review"],
                ),
            ),
            (
                REVIEWER.to_owned(),
                person("user:kb-reviewer", "institutions/demo-bank", &["knowledge.read", "knowledge.review"]),
            ),
            (
                BRANCH_READER.to_owned(),
                person(
                    "user:kb-reader",
                    "institutions/demo-bank/branches/shanghai",
                    &["knowledge.read", "complaints.read"],
                ),
            ),
            (
                OTHER_READER.to_owned(),
                person("user:kb-other", "institutions/other-bank", &["knowledge.read", "complaints.read"]),
            ),
            (
                KB_ONLY_READER.to_owned(),
                person("user:kb-only", "institutions/demo-bank/branches/shanghai", &["knowledge.read"]),
            ),
        ]);
    })
    .await
    .unwrap();
    // The knowledge base serves once its index is built from the store.
    let health = tonic_health::pb::health_client::HealthClient::new(sandbox.channel.clone());
    eventually("the knowledge base serving", || {
        let request = tonic_health::pb::HealthCheckRequest { service: redress_proto::services::KNOWLEDGE.to_owned() };
        let mut health = health.clone();
        async move {
            let check = health.check(request);
            check.await.is_ok_and(|r| {
                r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            })
        }
    })
    .await;
    sandbox
}

fn kb(sandbox: &Sandbox, token: &str) -> Client {
    KnowledgeServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(token.to_owned())))
}

async fn titles(client: &mut Client, query: &str) -> Vec<String> {
    let request = SearchArticlesRequest { query: query.to_owned(), ..Default::default() };
    client.search_articles(request).await.unwrap().into_inner().hits.into_iter().map(|h| h.title).collect()
}

/// Waits (at most 10 s) until `probe` holds.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !probe().await {
        assert!(started.elapsed() < Duration::from_secs(10), "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_is_reviewed_by_another_and_found_only_within_its_institution() {
    let sandbox = sandbox_in(tempfile::tempdir().unwrap()).await;
    let mut dev = kb(&sandbox, TOKEN);
    assert_eq!(
        titles(&mut dev, "年费能退吗").await.first().map(String::as_str),
        Some("信用卡满足免年费条件仍被扣年费，能退吗？")
    );

    let mut author = kb(&sandbox, AUTHOR);
    let content = ArticleContent {
        title: "示例银行白金卡年费减免口径".to_owned(),
        body: "白金卡年费按消费积分减免，客户质疑时先查积分。".to_owned(),
        tags: vec!["白金卡".to_owned()],
        ..Default::default()
    };
    let create = CreateArticleRequest {
        kind: ArticleKind::Script as i32,
        org_unit: "institutions/demo-bank".to_owned(),
        content: Some(content),
        request_id: "kb-1".to_owned(),
        ..Default::default()
    };
    let article = author.create_article(create).await.unwrap().into_inner();
    let version = format!("{}/versions/1", article.name);
    let submit = SubmitArticleVersionRequest { name: version.clone(), request_id: "kb-2".to_owned() };
    author.submit_article_version(submit).await.unwrap();
    let approve = |id: &str| ReviewArticleVersionRequest {
        name: version.clone(),
        decision: ReviewDecision::Approve as i32,
        request_id: id.to_owned(),
        ..Default::default()
    };
    // The author holds the review permission too, and still cannot publish their own draft.
    let refused = author.review_article_version(approve("kb-3")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(refused.get_error_details().error_info().unwrap().reason, "REVIEWER_IS_AUTHOR");
    kb(&sandbox, REVIEWER).review_article_version(approve("kb-4")).await.unwrap();

    let mut branch = kb(&sandbox, BRANCH_READER);
    eventually("the published article in the branch's search", || {
        let mut branch = branch.clone();
        async move {
            titles(&mut branch, "白金卡年费").await.contains(&"示例银行白金卡年费减免口径".to_owned())
        }
    })
    .await;
    let get = GetArticleRequest { name: article.name.clone(), ..Default::default() };
    assert_eq!(branch.get_article(get.clone()).await.unwrap().into_inner().published_version, 1);
    let mut other = kb(&sandbox, OTHER_READER);
    assert_eq!(other.get_article(get).await.unwrap_err().code(), tonic::Code::NotFound);
    assert!(!titles(&mut other, "白金卡年费").await.contains(&"示例银行白金卡年费减免口径".to_owned()));

    let lint = LintReplyRequest {
        text: "您别着急，这是公司规定。".to_owned(),
        kind: ReplyKind::Unspecified as i32,
        ..Default::default()
    };
    let findings = branch.lint_reply(lint).await.unwrap().into_inner().findings;
    assert_eq!(
        findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
        ["banned.calm-down", "banned.company-policy"]
    );
    let bad = branch.lint_reply(LintReplyRequest::default()).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad.get_error_details().bad_request().unwrap().field_violations[0].field, "text");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_read_the_complaint_as_the_caller_and_closed_cases_feed_the_case_library() {
    let sandbox = sandbox_in(tempfile::tempdir().unwrap()).await;
    let complaint = redress_intake::testing::complaint(
        "信用卡已满足免年费条件，但本期账单仍扣收年费300元，客服说这是公司规定不能退。",
    );
    let request = SubmitComplaintRequest { request_id: "kb-complaint".to_owned(), complaint: Some(complaint) };
    let submitted = sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap();

    let suggest = SuggestForComplaintRequest { complaint: submitted.name.clone(), ..Default::default() };
    let answer = kb(&sandbox, BRANCH_READER).suggest_for_complaint(suggest.clone()).await.unwrap().into_inner();
    assert_eq!(answer.groups.len(), 4);
    assert!(answer.keywords.iter().any(|k| k == "年费"), "{:?}", answer.keywords);
    assert!(answer.groups.iter().flat_map(|g| &g.suggestions).all(|s| !s.reasons.is_empty()));
    // Intake is asked as the caller: another institution's reader does not learn of the complaint.
    let refused = kb(&sandbox, OTHER_READER).suggest_for_complaint(suggest.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    // Nor does a reader of the same branch who may not read complaints: the knowledge base's
    // permission at intake is not lent to its caller.
    let refused = kb(&sandbox, KB_ONLY_READER).suggest_for_complaint(suggest).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("complaints.read"), "{refused:?}");

    // A very dissatisfied complainant: the closed case becomes a candidate for the institution's editors.
    let case = sandbox.case_of(&submitted.name).await;
    sandbox.decide(&case.name).await;
    let mut cases = sandbox.cases();
    let survey = AnswerSurveyRequest {
        name: case.name.clone(),
        score: 1,
        comment: "王先生表示很不满意".to_owned(),
        ..Default::default()
    };
    cases.answer_survey(survey).await.unwrap();
    let close = TransitionCaseRequest {
        name: case.name.clone(),
        state: CaseState::Closed as i32,
        reason: "回访完成".to_owned(),
        ..Default::default()
    };
    cases.transition_case(close).await.unwrap();
    let mut author = kb(&sandbox, AUTHOR);
    eventually("the closed case in the case library", || {
        let mut author = author.clone();
        let case = case.name.clone();
        async move {
            let listed = author.list_case_candidates(ListCaseCandidatesRequest::default()).await.unwrap().into_inner();
            listed.candidates.iter().any(|c| c.case == case && !c.summary.contains("王先生"))
        }
    })
    .await;
    let other_editor = kb(&sandbox, OTHER_READER).list_case_candidates(ListCaseCandidatesRequest::default()).await;
    assert_eq!(other_editor.unwrap_err().code(), tonic::Code::PermissionDenied);
    author.list_case_candidates(ListCaseCandidatesRequest::default()).await.unwrap();
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_directory_is_rebuilt_at_start_and_answers_the_same() {
    let sandbox = sandbox_in(tempfile::tempdir().unwrap()).await;
    let queries = ["客户说要找记者曝光", "卡被人刷了咋办", "15天处理不完能延期吗"];
    let mut before = Vec::new();
    for query in queries {
        before.push(titles(&mut kb(&sandbox, TOKEN), query).await);
    }
    let dir = sandbox.stop().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("knowledge-base-index")).unwrap();
    let sandbox = sandbox_in(dir).await;
    for (query, expected) in queries.iter().zip(before) {
        assert_eq!(titles(&mut kb(&sandbox, TOKEN), query).await, expected, "{query}");
    }
    assert!(sandbox.data_dir.path().join("knowledge-base-index").exists());
    sandbox.stop().await.unwrap();
}
