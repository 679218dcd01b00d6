//! The API over a real store and index: search as readers of different units, lint with an
//! institution that blocks banned phrases, and suggestions for a complaint's text.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use redress_platform::ServiceError;
use redress_platform::principal::{Permission, Principal};
use redress_platform::ready::Ready;
use redress_proto::redress::knowledge::v1::{
    ArticleKind, LintReplyRequest, ReplyKind, SearchArticlesRequest, SuggestForComplaintRequest, TaxonomyCodes,
};
use tokio_util::sync::CancellationToken;

use super::{KnowledgeApi, Settings};
use crate::domain::lint::Rules;
use crate::error::KbError;
use crate::search::text::Lexicon;

struct Fixture {
    api: KnowledgeApi,
    _db: redress_platform::testing::TestDatabase,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let db = redress_platform::testing::TestDatabase::sqlite("api").unwrap();
    let store = crate::open_store(&db.config, &redress_platform::host::Supervisor::detached()).await.unwrap();
    store.seed(crate::starter::plans(redress_platform::time::now()).unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lexicon = Lexicon::shipped().unwrap();
    let (index, _) =
        crate::open_index(&dir.path().join("index").display().to_string(), lexicon.clone(), &store).await.unwrap();
    let settings = Settings {
        lexicon,
        rules: Arc::new(Rules::shipped().unwrap()),
        blocking: BTreeSet::from(["institutions/strict".to_owned()]),
        intake: None,
    };
    let api = KnowledgeApi::new(Ready::from(store), Ready::from(index), settings, CancellationToken::new());
    Fixture { api, _db: db, _dir: dir }
}

fn reader(unit: &str) -> Principal {
    Principal {
        subject: "user:handler".to_owned(),
        org_unit: unit.to_owned(),
        permissions: vec![Permission::KnowledgeRead.as_str().to_owned()],
        ..Principal::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_pages_through_hits_and_refuses_bad_input_by_field() {
    let f = fixture().await;
    let request = |token: &str| SearchArticlesRequest {
        query: "投诉".to_owned(),
        page_size: 5,
        page_token: token.to_owned(),
        ..Default::default()
    };
    let first = f.api.search_articles(&reader("institutions/acme"), request("")).await.unwrap();
    assert_eq!(first.hits.len(), 5);
    assert!(first.took.is_some());
    let second = f.api.search_articles(&reader("institutions/acme"), request(&first.next_page_token)).await.unwrap();
    assert!(second.hits.iter().all(|h| !first.hits.iter().any(|g| g.article == h.article)), "pages do not repeat hits");
    let other = SearchArticlesRequest {
        query: "年费".to_owned(),
        page_token: first.next_page_token.clone(),
        ..Default::default()
    };
    let refused = f.api.search_articles(&reader("/"), other).await.unwrap_err();
    assert!(
        matches!(&refused, KbError::Platform(ServiceError::InvalidArgument(v)) if v[0].field == "page_token"),
        "{refused:?}"
    );
    let empty = f
        .api
        .search_articles(&reader("/"), SearchArticlesRequest { kinds: vec![99], ..Default::default() })
        .await
        .unwrap_err();
    let KbError::Platform(ServiceError::InvalidArgument(violations)) = empty else { panic!("{empty:?}") };
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["query", "kinds[0]"]);
    let nobody = Principal { permissions: vec![], ..reader("/") };
    assert!(matches!(
        f.api.search_articles(&nobody, request("")).await,
        Err(KbError::Platform(ServiceError::PermissionDenied(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_answers_findings_and_blocks_banned_phrases_where_the_institution_says_so() {
    let f = fixture().await;
    let lint = |unit: &str| LintReplyRequest {
        text: "这是公司规定，您别着急。".to_owned(),
        kind: ReplyKind::Unspecified as i32,
        org_unit: unit.to_owned(),
    };
    let strict = f.api.lint_reply(&reader("/"), lint("institutions/strict/branches/a")).await.unwrap();
    assert_eq!(
        strict.findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
        ["banned.company-policy", "banned.calm-down"]
    );
    assert!(strict.blocked);
    assert!(!f.api.lint_reply(&reader("/"), lint("institutions/easy")).await.unwrap().blocked);
    assert!(!f.api.lint_reply(&reader("/"), lint("")).await.unwrap().blocked);
    let bad = f
        .api
        .lint_reply(&reader("/"), LintReplyRequest { text: String::new(), kind: 7, org_unit: "banks/x".to_owned() })
        .await
        .unwrap_err();
    let KbError::Platform(ServiceError::InvalidArgument(violations)) = bad else { panic!("{bad:?}") };
    assert_eq!(violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["text", "kind", "org_unit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_for_a_complaints_text_come_by_kind_with_reasons() {
    let f = fixture().await;
    let request = SuggestForComplaintRequest {
        text: "本人信用卡今年已经刷够了免年费的次数，银行还是扣了300元年费，打客服电话对方说这是公司规定不给退，要求退还年费。".to_owned(),
        codes: Some(TaxonomyCodes { business_types: vec!["B02".to_owned()], causes: vec!["C05".to_owned()], rights: vec!["R4".to_owned()] }),
        ..Default::default()
    };
    let answer = f.api.suggest(&reader("institutions/acme"), None, request).await.unwrap();
    let kinds: Vec<i32> = answer.groups.iter().map(|g| g.kind).collect();
    assert_eq!(
        kinds,
        [ArticleKind::Script, ArticleKind::Guide, ArticleKind::Regulation, ArticleKind::TypicalCase].map(|k| k as i32)
    );
    assert!(answer.keywords.contains(&"年费".to_owned()), "{:?}", answer.keywords);
    let titles: Vec<Vec<String>> = answer
        .groups
        .iter()
        .map(|g| g.suggestions.iter().map(|s| s.hit.as_ref().unwrap().title.clone()).collect())
        .collect();
    assert!(answer.groups.iter().all(|g| g.suggestions.len() <= 3), "{titles:?}");
    assert!(
        answer.groups.iter().filter(|g| !g.suggestions.is_empty()).count() >= 3,
        "{titles:?} by {:?}",
        answer.keywords
    );
    for group in &answer.groups {
        for s in &group.suggestions {
            assert_eq!(s.hit.as_ref().unwrap().kind, group.kind);
            assert!(!s.reasons.is_empty(), "every suggestion says why");
        }
    }
    // The fee-disclosure regulation shares the complaint's cause code, and says so.
    let regulation =
        answer.groups[2].suggestions.iter().find(|s| s.hit.as_ref().unwrap().title.contains("收费必须事先公示"));
    let regulation = regulation.unwrap_or_else(|| panic!("{titles:?}"));
    assert!(regulation.reasons.iter().any(|r| r.contains("C05")), "{:?}", regulation.reasons);
    let named = SuggestForComplaintRequest { complaint: "complaints/not-a-uuid".to_owned(), ..Default::default() };
    assert!(matches!(
        f.api.suggest(&reader("/"), None, named).await,
        Err(KbError::Platform(ServiceError::InvalidArgument(_)))
    ));
    let unknown =
        SuggestForComplaintRequest { complaint: format!("complaints/{}", uuid::Uuid::now_v7()), ..Default::default() };
    let refused = f.api.suggest(&reader("/"), None, unknown).await.unwrap_err();
    assert!(refused.to_string().contains("intake_url"), "{refused}");
}
