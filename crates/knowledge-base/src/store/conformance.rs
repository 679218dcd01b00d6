//! One conformance suite for both knowledge stores (PostgreSQL when `REDRESS_TEST_POSTGRES_URL`
//! is set; otherwise those runs report that they skipped).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prost::Message;
use redress_platform::db::DatabaseConfig;
use redress_platform::principal::{Permission, Principal};
use redress_platform::testing::committed_events;
use redress_platform::time::now;
use redress_proto::redress::knowledge::v1::{
    Article, ArticleAction, ArticleChanged, ArticleContent, ArticleKind, ArticleState, ArticleVersion, VersionState,
};

use super::{ArticleQuery, Change, KnowledgeStore, RequestKey};
use crate::domain::article::{Command, plan_seeded};
use crate::domain::scope::Scope;
use crate::error::KbError;

async fn open(config: &DatabaseConfig) -> Arc<dyn KnowledgeStore> {
    crate::open_store(config, &redress_platform::host::Supervisor::detached()).await.expect("store opens")
}

fn person(subject: &str, unit: &str, permissions: &[Permission]) -> Arc<Principal> {
    Arc::new(Principal {
        subject: subject.to_owned(),
        roles: vec!["editor".to_owned()],
        org_unit: unit.to_owned(),
        department: String::new(),
        permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
        staff_id: String::new(),
    })
}

fn author(unit: &str) -> Arc<Principal> {
    person("user:author", unit, &[Permission::KnowledgeRead, Permission::KnowledgeWrite])
}

fn reviewer(unit: &str) -> Arc<Principal> {
    person("user:reviewer", unit, &[Permission::KnowledgeRead, Permission::KnowledgeReview])
}

fn content(title: &str) -> ArticleContent {
    ArticleContent {
        title: title.to_owned(),
        body: "客户反映信用卡年费扣收。先核实免年费条件。再告知处理时限。".to_owned(),
        tags: vec!["年费".to_owned()],
        ..Default::default()
    }
}

async fn run(store: &dyn KnowledgeStore, id: &str, who: &Arc<Principal>, command: Command) -> Result<Vec<u8>, KbError> {
    store.change(Change { id: id.to_owned(), principal: who.clone(), command, request: None, now: now() }).await
}

async fn create(store: &dyn KnowledgeStore, unit: &str, title: &str) -> Article {
    let id = uuid::Uuid::now_v7().to_string();
    let scope = if unit == "/" {
        Scope::Platform
    } else {
        Scope::Unit(redress_platform::names::OrgUnit::try_from_str(unit).unwrap())
    };
    let command =
        Command::Create { kind: ArticleKind::Faq, scope, content: content(title), change_note: String::new() };
    let who = author(if unit == "/" { "/" } else { unit });
    Article::decode(run(store, &id, &who, command).await.unwrap().as_slice()).unwrap()
}

fn id_of(article: &Article) -> String {
    article.name.trim_start_matches("articles/").to_owned()
}

async fn publish(store: &dyn KnowledgeStore, id: &str, unit: &str, version: i32) -> ArticleVersion {
    run(store, id, &author(unit), Command::Submit { version }).await.unwrap();
    let review = Command::Review { version, approve: true, comment: String::new() };
    ArticleVersion::decode(run(store, id, &reviewer(unit), review).await.unwrap().as_slice()).unwrap()
}

async fn a_version_is_reviewed_by_someone_else_and_published_versions_never_change(store: Arc<dyn KnowledgeStore>) {
    let unit = "institutions/acme";
    let article = create(store.as_ref(), unit, "信用卡年费怎么减免").await;
    let id = id_of(&article);
    assert_eq!(article.state, ArticleState::Draft as i32);
    run(store.as_ref(), &id, &author(unit), Command::Submit { version: 1 }).await.unwrap();
    // The author also holding the review permission still cannot publish their own draft.
    let both = person("user:author", unit, &[Permission::KnowledgeWrite, Permission::KnowledgeReview]);
    let own = Command::Review { version: 1, approve: true, comment: String::new() };
    let refused = run(store.as_ref(), &id, &both, own).await.unwrap_err();
    assert!(matches!(refused, KbError::Article(crate::domain::article::ArticleError::ReviewerIsAuthor)), "{refused:?}");
    let writer_only = Command::Review { version: 1, approve: true, comment: String::new() };
    let refused =
        run(store.as_ref(), &id, &person("user:other", unit, &[Permission::KnowledgeWrite]), writer_only).await;
    assert!(matches!(refused, Err(KbError::Platform(_))), "reviewing needs knowledge.review");
    let review = Command::Review { version: 1, approve: true, comment: "可以发布".to_owned() };
    let published =
        ArticleVersion::decode(run(store.as_ref(), &id, &reviewer(unit), review).await.unwrap().as_slice()).unwrap();
    assert_eq!(published.state, VersionState::Published as i32);
    assert_eq!(published.reviewer, "user:reviewer");

    let new = Command::NewVersion {
        content: Some(content("信用卡年费减免条件")), change_note: "改标题".to_owned()
    };
    run(store.as_ref(), &id, &author(unit), new).await.unwrap();
    publish(store.as_ref(), &id, unit, 2).await;
    let stored = store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.published_version(), 2);
    let first = stored.version(1).unwrap();
    assert_eq!(first.state, VersionState::Retired as i32);
    assert_eq!(first.content, published.content, "a published version keeps its content for ever");
    assert_eq!(first.publish_time, published.publish_time);

    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let actions: Vec<i32> = events
        .iter()
        .map(|e| e.payload.as_ref().unwrap().to_msg::<ArticleChanged>().unwrap())
        .filter(|c| c.article == article.name)
        .map(|c| c.action)
        .collect();
    use ArticleAction as A;
    assert_eq!(
        actions,
        [A::Created, A::Submitted, A::Published, A::VersionCreated, A::Submitted, A::Published].map(|a| a as i32)
    );
    assert!(events.iter().all(|e| e.org_unit == unit && e.aggregate == article.name));
}

async fn an_institutions_articles_are_invisible_to_another_institution(store: Arc<dyn KnowledgeStore>) {
    let acme = create(store.as_ref(), "institutions/acme", "甲机构的话术").await;
    publish(store.as_ref(), &id_of(&acme), "institutions/acme", 1).await;
    let branch = create(store.as_ref(), "institutions/acme/branches/sh", "上海分行的操作指引").await;
    publish(store.as_ref(), &id_of(&branch), "institutions/acme/branches/sh", 1).await;
    let other = create(store.as_ref(), "institutions/zeta", "乙机构的话术").await;
    publish(store.as_ref(), &id_of(&other), "institutions/zeta", 1).await;
    let platform = create(store.as_ref(), "/", "平台通用的法规解读").await;
    publish(store.as_ref(), &id_of(&platform), "/", 1).await;
    let draft = create(store.as_ref(), "institutions/acme", "甲机构未发布的草稿").await;

    let listed = |unit: &str, editor: bool| {
        let store = store.clone();
        let query = ArticleQuery { unit: unit.to_owned(), editor, limit: 100, ..ArticleQuery::default() };
        async move {
            let mut names: Vec<String> = store.list(&query).await.unwrap().iter().map(|a| a.name()).collect();
            names.sort();
            names
        }
    };
    let sorted = |names: &[&Article]| {
        let mut names: Vec<String> = names.iter().map(|a| a.name.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(listed("institutions/acme/branches/sh", false).await, sorted(&[&acme, &branch, &platform]));
    assert_eq!(listed("institutions/acme/branches/bj", false).await, sorted(&[&acme, &platform]));
    assert_eq!(listed("institutions/acme", false).await, sorted(&[&acme, &branch, &platform]));
    assert_eq!(listed("institutions/zeta", false).await, sorted(&[&other, &platform]));
    assert_eq!(listed("institutions/acme", true).await, sorted(&[&acme, &branch, &platform, &draft]));
    assert_eq!(listed("/", true).await.len(), 5);
    assert_eq!(listed("", false).await, sorted(&[&platform]));

    // Another institution's editor cannot touch it, and does not learn it exists.
    let outsider = author("institutions/zeta");
    let new = Command::NewVersion { content: None, change_note: String::new() };
    let refused = run(store.as_ref(), &id_of(&acme), &outsider, new).await.unwrap_err();
    assert!(matches!(refused, KbError::NotFound { .. }), "{refused:?}");
    // A reader below the unit sees it but cannot change it.
    let reader = person(
        "user:reader",
        "institutions/acme/branches/sh",
        &[Permission::KnowledgeRead, Permission::KnowledgeWrite],
    );
    let refused =
        run(store.as_ref(), &id_of(&acme), &reader, Command::Retire { reason: "x".to_owned() }).await.unwrap_err();
    assert!(matches!(refused, KbError::Platform(redress_platform::ServiceError::PermissionDenied(_))), "{refused:?}");
}

async fn a_retried_request_returns_the_first_result_and_a_reused_id_is_refused(store: Arc<dyn KnowledgeStore>) {
    let unit = "institutions/acme";
    let article = create(store.as_ref(), unit, "重复提交").await;
    let id = id_of(&article);
    let key = RequestKey { id: "r-1".to_owned(), fingerprint: "f-1".to_owned() };
    let submit = |key: RequestKey| Change {
        id: id.clone(),
        principal: author(unit),
        command: Command::Submit { version: 1 },
        request: Some(key),
        now: now(),
    };
    let first = store.change(submit(key.clone())).await.unwrap();
    let again = store.change(submit(key.clone())).await.unwrap();
    assert_eq!(first, again, "a retry answers as the first call did");
    let other = RequestKey { id: "r-1".to_owned(), fingerprint: "f-2".to_owned() };
    assert!(matches!(store.change(submit(other)).await, Err(KbError::RequestIdReused)));
    let submitted = committed_events(store.feed(), 0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            e.payload.as_ref().unwrap().to_msg::<ArticleChanged>().unwrap().action == ArticleAction::Submitted as i32
        })
        .count();
    assert_eq!(submitted, 1, "the retry changed nothing again");
}

async fn seeded_articles_are_published_once_and_paged_for_the_index(store: Arc<dyn KnowledgeStore>) {
    let plans = |n: usize| {
        (0..n)
            .map(|i| {
                let id = format!("00000000-0000-7000-8000-{i:012}");
                plan_seeded(
                    &id,
                    ArticleKind::Script,
                    &Scope::Platform,
                    content(&format!("话术{i}")),
                    ("starter", "service:knowledge-base"),
                    now(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(store.seed(plans(25)).await.unwrap(), 25);
    assert_eq!(store.seed(plans(30)).await.unwrap(), 5, "articles already stored are passed over");
    assert_eq!(store.count().await.unwrap(), 30);
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = store.published_after(&after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        seen.extend(page);
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
    assert!(seen.iter().all(|p| p.version.state == VersionState::Published as i32 && p.kind == ArticleKind::Script));
    let one = store.published(&seen[3].id).await.unwrap().unwrap();
    assert_eq!(one, seen[3]);
    // A draft has nothing published yet.
    let draft = create(store.as_ref(), "institutions/acme", "草稿").await;
    assert_eq!(store.published(&id_of(&draft)).await.unwrap(), None);
}

async fn lists_filter_by_kind_state_and_review_queue_with_pages(store: Arc<dyn KnowledgeStore>) {
    let unit = "institutions/acme";
    let mut in_review = Vec::new();
    for i in 0..5 {
        let article = create(store.as_ref(), unit, &format!("待审{i}")).await;
        run(store.as_ref(), &id_of(&article), &author(unit), Command::Submit { version: 1 }).await.unwrap();
        in_review.push(article.name);
    }
    for i in 0..3 {
        let article = create(store.as_ref(), unit, &format!("已发布{i}")).await;
        publish(store.as_ref(), &id_of(&article), unit, 1).await;
    }
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let query = ArticleQuery {
            open_state: Some(VersionState::InReview as i64),
            unit: unit.to_owned(),
            editor: true,
            after: after.clone(),
            limit: 2,
            ..ArticleQuery::default()
        };
        let page = store.list(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.update_time.timestamp_micros(), last.id.clone()));
        names.extend(page.iter().map(|a| a.name()));
    }
    in_review.reverse();
    assert_eq!(names, in_review, "the review queue, most recently changed first");
    let published = ArticleQuery {
        state: Some(ArticleState::Published as i64),
        kind: Some(ArticleKind::Faq as i64),
        unit: unit.to_owned(),
        limit: 100,
        ..ArticleQuery::default()
    };
    assert_eq!(store.list(&published).await.unwrap().len(), 3);
    let scripts = ArticleQuery { kind: Some(ArticleKind::Script as i64), ..published };
    assert!(store.list(&scripts).await.unwrap().is_empty());
}

redress_platform::conformance_suite!(
    open = open;
    a_version_is_reviewed_by_someone_else_and_published_versions_never_change,
    an_institutions_articles_are_invisible_to_another_institution,
    a_retried_request_returns_the_first_result_and_a_reused_id_is_refused,
    seeded_articles_are_published_once_and_paged_for_the_index,
    lists_filter_by_kind_state_and_review_queue_with_pages,
    notable_closed_cases_become_candidates_once_and_a_broken_event_waits_as_a_dead_letter,
    an_editor_adopts_a_candidate_into_a_draft_typical_case_of_its_unit,
);

mod case_library {
    use prost::Message;
    use redress_platform::principal::Permission;
    use redress_platform::testing::committed_events;
    use redress_proto::redress::common::v1::{Event, ListDeadLettersRequest, ReplayDeadLetterRequest};
    use redress_proto::redress::knowledge::v1::{Article, ArticleKind, ArticleState, CandidateState, CaseCandidate};

    use super::super::{CandidateAction, CandidateChange, CandidateQuery, KnowledgeStore};
    use super::{author, person};
    use crate::domain::candidates::tests::closed;
    use crate::error::KbError;

    fn event(position: i64, closed: &redress_proto::redress::case::v1::CaseClosed) -> Event {
        let case = closed.case.as_ref().unwrap();
        Event {
            position,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: "redress.case.v1.CaseClosed".to_owned(),
            aggregate: case.name.clone(),
            org_unit: case.org_unit.clone(),
            payload: Some(prost_types::Any::from_msg(closed).unwrap()),
            ..Default::default()
        }
    }

    fn with_case(
        mut c: redress_proto::redress::case::v1::CaseClosed,
        n: u32,
        unit: &str,
    ) -> redress_proto::redress::case::v1::CaseClosed {
        let case = c.case.as_mut().unwrap();
        case.name = format!("cases/0199aaaa-0000-7000-8000-{n:012}");
        case.org_unit = unit.to_owned();
        c
    }

    async fn candidates(store: &dyn KnowledgeStore, unit: &str) -> Vec<CaseCandidate> {
        let query = CandidateQuery { unit: unit.to_owned(), limit: 100, ..CandidateQuery::default() };
        store.list_candidates(&query).await.unwrap().into_iter().map(|l| l.candidate).collect()
    }

    pub(super) async fn notable_closed_cases_become_candidates_once_and_a_broken_event_waits_as_a_dead_letter(
        store: std::sync::Arc<dyn KnowledgeStore>,
    ) {
        let sh = "institutions/acme/branches/sh";
        let notable = with_case(closed(1, false), 1, sh);
        let ordinary = with_case(closed(4, false), 2, sh);
        let other = with_case(closed(5, false), 3, "institutions/zeta");
        let mut broken = event(4, &with_case(closed(5, false), 4, sh));
        broken.payload.as_mut().unwrap().value = vec![0xff, 0xff];
        let batch = vec![event(1, &notable), event(2, &ordinary), event(3, &other), broken];
        assert_eq!(store.apply(batch.clone()).await.unwrap(), 4);
        assert_eq!(store.apply(batch).await.unwrap(), 4, "a redelivered batch changes nothing");
        assert_eq!(store.position().await.unwrap(), 4);
        assert_eq!(candidates(store.as_ref(), "/").await.len(), 2);
        let acme = candidates(store.as_ref(), "institutions/acme").await;
        assert_eq!(acme.len(), 1, "candidates are listed within the caller's units");
        assert_eq!(acme[0].case, notable.case.as_ref().unwrap().name);
        assert!(!acme[0].summary.contains("13812345678"));

        let admin = person("user:ops", "/", &[Permission::EventsAdmin]);
        let dead = store.list_dead_letters(&admin, &ListDeadLettersRequest::default()).await.unwrap().dead_letters;
        assert_eq!(dead.len(), 1);
        let fixed = prost_types::Any::from_msg(&with_case(closed(5, false), 4, sh)).unwrap();
        let replay = redress_platform::dead_letters::Replay::parse(
            admin.clone(),
            ReplayDeadLetterRequest { name: dead[0].name.clone(), payload: Some(fixed) },
        )
        .unwrap();
        store.replay_dead_letter(replay).await.unwrap();
        assert_eq!(
            candidates(store.as_ref(), "institutions/acme").await.len(),
            2,
            "the replayed case is a candidate now"
        );
    }

    pub(super) async fn an_editor_adopts_a_candidate_into_a_draft_typical_case_of_its_unit(
        store: std::sync::Arc<dyn KnowledgeStore>,
    ) {
        let sh = "institutions/acme/branches/sh";
        store
            .apply(vec![event(1, &with_case(closed(1, false), 1, sh)), event(2, &with_case(closed(2, false), 2, sh))])
            .await
            .unwrap();
        let listed = candidates(store.as_ref(), sh).await;
        let id = |c: &CaseCandidate| c.name.trim_start_matches("caseCandidates/").to_owned();
        let change = |who, id: String, action| CandidateChange {
            id,
            principal: who,
            action,
            request: None,
            now: redress_platform::time::now(),
        };
        // Another institution's editor does not see it.
        let outsider = author("institutions/zeta");
        let adopt = CandidateAction::Adopt { article_id: uuid::Uuid::now_v7().to_string() };
        let refused = store.change_candidate(change(outsider, id(&listed[0]), adopt.clone())).await.unwrap_err();
        assert!(matches!(refused, KbError::NotFound { .. }), "{refused:?}");
        let answer = store.change_candidate(change(author(sh), id(&listed[0]), adopt.clone())).await.unwrap();
        let article = Article::decode(answer.as_slice()).unwrap();
        assert_eq!(
            (article.kind, article.org_unit.as_str(), article.state),
            (ArticleKind::TypicalCase as i32, sh, ArticleState::Draft as i32)
        );
        assert!(article.open.as_ref().unwrap().content.as_ref().unwrap().title.starts_with("典型案例："));
        let again = store.change_candidate(change(author(sh), id(&listed[0]), adopt)).await.unwrap_err();
        assert!(matches!(again, KbError::Candidate(_)), "{again:?}");
        let dismiss = CandidateAction::Dismiss { reason: "同类案例已有".to_owned() };
        let dismissed = CaseCandidate::decode(
            store.change_candidate(change(author(sh), id(&listed[1]), dismiss)).await.unwrap().as_slice(),
        )
        .unwrap();
        assert_eq!(dismissed.state, CandidateState::Dismissed as i32);
        let states: Vec<i32> = candidates(store.as_ref(), sh).await.iter().map(|c| c.state).collect();
        assert!(
            states.contains(&(CandidateState::Adopted as i32)) && states.contains(&(CandidateState::Dismissed as i32))
        );
        let created = committed_events(store.feed(), 0, 10).await.unwrap();
        assert_eq!(created.len(), 1, "the adopted draft announces itself; the candidates do not");
    }
}

use case_library::{
    an_editor_adopts_a_candidate_into_a_draft_typical_case_of_its_unit,
    notable_closed_cases_become_candidates_once_and_a_broken_event_waits_as_a_dead_letter,
};
