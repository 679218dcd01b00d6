#![allow(clippy::unwrap_used)]

use redress_proto::redress::knowledge::v1::{ArticleContent, ArticleKind, ArticleVersion, TaxonomyCodes, VersionState};

use super::*;

pub(crate) fn published(
    id: &str,
    kind: ArticleKind,
    org_unit: &str,
    title: &str,
    body: &str,
    tags: &[&str],
    codes: &[&str],
) -> Published {
    let (mut business_types, mut causes) = (Vec::new(), Vec::new());
    for code in codes {
        if code.starts_with('C') { causes.push((*code).to_owned()) } else { business_types.push((*code).to_owned()) }
    }
    Published {
        id: id.to_owned(),
        kind,
        org_unit: org_unit.to_owned(),
        version: ArticleVersion {
            version: 1,
            state: VersionState::Published as i32,
            content: Some(ArticleContent {
                title: title.to_owned(),
                body: body.to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                codes: Some(TaxonomyCodes { business_types, causes, rights: vec![] }),
                outcome: 0,
            }),
            ..Default::default()
        },
    }
}

fn index() -> SearchIndex {
    let index = SearchIndex::in_memory(Lexicon::shipped().unwrap()).unwrap();
    for article in [
        published(
            "fee",
            ArticleKind::Faq,
            "/",
            "信用卡年费能否减免",
            "持卡人满足免年费条件后仍被扣收年费的，可申请退还。核实交易次数后，在五个工作日内退回。",
            &["年费", "减免"],
            &["B02", "C05"],
        ),
        published(
            "fraud",
            ArticleKind::Guide,
            "/",
            "银行卡被盗刷的处理步骤",
            "客户反映卡片被盗刷时，先协助挂失止付，再调取交易记录，告知报警和争议处理流程。",
            &["盗刷", "挂失"],
            &["B01", "C09"],
        ),
        published(
            "acme",
            ArticleKind::Script,
            "institutions/acme",
            "甲银行年费话术",
            "向客户解释本行年费政策时，先表示理解，再说明减免办法。",
            &["年费"],
            &["B02"],
        ),
        published(
            "zeta",
            ArticleKind::Script,
            "institutions/zeta",
            "乙银行年费话术",
            "乙银行的年费减免口径。",
            &["年费"],
            &["B02"],
        ),
    ] {
        index.add(&article).unwrap();
    }
    index.commit(7).unwrap();
    index
}

fn search(index: &SearchIndex, text: &str, reader: Reader) -> Vec<String> {
    let query = SearchQuery {
        text: text.to_owned(),
        filters: Filters::default(),
        boosts: Boosts::default(),
        reader,
        offset: 0,
        limit: 10,
    };
    index.search(&query).unwrap().into_iter().map(|h| h.id).collect()
}

#[test]
fn chinese_text_is_found_by_its_words_synonyms_and_misspellings() {
    let index = index();
    assert_eq!(search(&index, "信用卡年费怎么减免", Reader::All).first().map(String::as_str), Some("fee"));
    assert_eq!(
        search(&index, "卡被人刷了怎么办", Reader::All).first().map(String::as_str),
        Some("fraud"),
        "a synonym group"
    );
    assert_eq!(search(&index, "账户管理费能退吗", Reader::NoUnit).first().map(String::as_str), Some("fee"));
    assert_eq!(
        search(&index, "年废", Reader::NoUnit).first().map(String::as_str),
        Some("fee"),
        "a misspelling of the same sound"
    );
    assert!(search(&index, "信用卡年費", Reader::NoUnit).contains(&"fee".to_owned()), "traditional characters");
    assert!(search(&index, "火星探测", Reader::All).is_empty());
}

#[test]
fn readers_find_only_what_their_scope_shows() {
    let index = index();
    let acme = search(&index, "年费话术", Reader::Unit("institutions/acme/branches/sh".to_owned()));
    assert!(acme.contains(&"acme".to_owned()) && acme.contains(&"fee".to_owned()), "{acme:?}");
    assert!(!acme.contains(&"zeta".to_owned()), "another institution's article is never found: {acme:?}");
    assert!(!search(&index, "年费话术", Reader::NoUnit).iter().any(|id| id == "acme" || id == "zeta"));
    assert_eq!(search(&index, "年费话术", Reader::All).len(), 3);
}

#[test]
fn filters_keep_only_the_kinds_and_codes_asked_for_and_snippets_highlight() {
    let index = index();
    let query = SearchQuery {
        text: "年费".to_owned(),
        filters: Filters {
            kinds: vec![ArticleKind::Faq],
            business_types: vec!["B02".to_owned()],
            ..Filters::default()
        },
        boosts: Boosts::default(),
        reader: Reader::All,
        offset: 0,
        limit: 10,
    };
    let hits = index.search(&query).unwrap();
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["fee"]);
    let hit = &hits[0];
    assert!(!hit.highlights.is_empty());
    for (start, end) in &hit.highlights {
        let highlighted: String = hit.snippet.chars().skip(*start).take(end - start).collect();
        assert_eq!(highlighted, "年费", "{}", hit.snippet);
    }
    assert!(hit.matched.contains(&"年费".to_owned()));
    let paged = SearchQuery { offset: 1, limit: 1, filters: Filters::default(), ..query };
    assert_eq!(index.search(&paged).unwrap().len(), 1);
}

/// The ids and titles a search answers, for comparing two indexes.
fn answers(index: &SearchIndex, text: &str) -> Vec<(String, String, i32)> {
    let query = SearchQuery {
        text: text.to_owned(),
        filters: Filters::default(),
        boosts: Boosts::default(),
        reader: Reader::All,
        offset: 0,
        limit: 10,
    };
    index.search(&query).unwrap().into_iter().map(|h| (h.id, h.title, h.version)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_index_directory_is_rebuilt_from_the_store_and_answers_the_same() {
    use crate::domain::article::{Command, plan_seeded};
    use crate::domain::scope::Scope;
    use crate::store::{Change, KnowledgeStore};
    use redress_platform::principal::{Permission, Principal};

    let db = redress_platform::testing::TestDatabase::sqlite("rebuild").unwrap();
    let store: std::sync::Arc<dyn KnowledgeStore> =
        crate::open_store(&db.config, &redress_platform::host::Supervisor::detached()).await.unwrap();
    let plans = ["信用卡年费减免", "银行卡盗刷处理", "理财产品误导销售"]
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let content = ArticleContent {
                title: (*title).to_owned(),
                body: format!("{title}的处理要点。"),
                ..Default::default()
            };
            let id = format!("00000000-0000-7000-8000-{i:012}");
            plan_seeded(
                &id,
                ArticleKind::Faq,
                &Scope::Platform,
                content,
                ("starter", "service:knowledge-base"),
                redress_platform::time::now(),
            )
        })
        .collect();
    store.seed(plans).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let dir_name = path.display().to_string();

    let (index, position) = crate::open_index(&dir_name, Lexicon::shipped().unwrap(), &store).await.unwrap();
    assert_eq!(index.len(), 3);
    // A new version is published; following the feed brings it into the index.
    let editor = |subject: &str, permission: Permission| {
        std::sync::Arc::new(Principal {
            subject: subject.to_owned(),
            org_unit: "/".to_owned(),
            permissions: vec![permission.as_str().to_owned()],
            ..Principal::default()
        })
    };
    let id = "00000000-0000-7000-8000-000000000000".to_owned();
    let change = |who, command| Change {
        id: id.clone(),
        principal: who,
        command,
        request: None,
        now: redress_platform::time::now(),
    };
    let content = ArticleContent {
        title: "信用卡年费减免条件".to_owned(),
        body: "满足条件的年费可以退还。".to_owned(),
        ..Default::default()
    };
    store
        .change(change(
            editor("user:a", Permission::KnowledgeWrite),
            Command::NewVersion { content: Some(content), change_note: String::new() },
        ))
        .await
        .unwrap();
    store.change(change(editor("user:a", Permission::KnowledgeWrite), Command::Submit { version: 2 })).await.unwrap();
    store
        .change(change(
            editor("user:r", Permission::KnowledgeReview),
            Command::Review { version: 2, approve: true, comment: String::new() },
        ))
        .await
        .unwrap();
    let events = store.feed().read_after(position, 100).await.unwrap();
    super::follow::apply(&index, &store, &events).await.unwrap();
    let before = answers(&index, "年费");
    assert_eq!(before.first().map(|(_, title, version)| (title.as_str(), *version)), Some(("信用卡年费减免条件", 2)));
    let everything = answers(&index, "处理");
    drop(index);

    // Restarted with its directory: reused, nothing to rebuild.
    let (index, again) = crate::open_index(&dir_name, Lexicon::shipped().unwrap(), &store).await.unwrap();
    assert_eq!(again, events.last().unwrap().position);
    assert_eq!(answers(&index, "年费"), before);
    drop(index);

    // Restarted without it: rebuilt from the store, the same answers.
    std::fs::remove_dir_all(&path).unwrap();
    let (index, _) = crate::open_index(&dir_name, Lexicon::shipped().unwrap(), &store).await.unwrap();
    assert_eq!(answers(&index, "年费"), before);
    assert_eq!(answers(&index, "处理"), everything);
}

#[test]
fn equal_scores_come_back_in_the_order_of_their_ids_whatever_the_segments() {
    let index = SearchIndex::in_memory(Lexicon::shipped().unwrap()).unwrap();
    // The same text under three ids, each committed alone (its own segment), the last id first.
    for (position, id) in ["c", "b", "a"].into_iter().enumerate() {
        index.add(&published(id, ArticleKind::Faq, "/", "年费减免", "年费可以减免。", &[], &[])).unwrap();
        index.commit(position as i64 + 1).unwrap();
    }
    assert!(index.segments() >= 2, "{} segments", index.segments());
    let query = SearchQuery {
        text: "年费".to_owned(),
        filters: Filters::default(),
        boosts: Boosts::default(),
        reader: Reader::All,
        offset: 0,
        limit: 10,
    };
    let hits = index.search(&query).unwrap();
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(hits.windows(2).all(|w| w[0].score == w[1].score), "{hits:?}");
}
