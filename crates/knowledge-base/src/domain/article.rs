//! Articles and their versions: draft → in review → published → retired, reviewed by someone
//! who is not one of the version's authors; a published version never changes again (only its
//! state moves to retired). Every change is planned here from what was loaded and returns what
//! to write: the article, the versions it touched, the event and the response.

use chrono::{DateTime, Utc};
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::to_timestamp;
use redress_proto::redress::knowledge::v1::{
    Article, ArticleAction, ArticleChanged, ArticleContent, ArticleKind, ArticleState, ArticleVersion, VersionState,
};

use super::scope::{Scope, editable_by, readable_by};

/// An article as stored: its fixed attributes and every version, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleRecord {
    /// The id in `articles/{id}`.
    pub id: String,
    pub kind: ArticleKind,
    /// `/` or the canonical unit the article applies to.
    pub org_unit: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Bumped by every change; a write checks it was not changed meanwhile.
    pub revision: i64,
    pub versions: Vec<ArticleVersion>,
}

/// A field of an article's content, as `update_mask` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentField {
    Title,
    Body,
    Tags,
    Codes,
    Outcome,
}

impl ContentField {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "title" => Self::Title,
            "body" => Self::Body,
            "tags" => Self::Tags,
            "codes" => Self::Codes,
            "outcome" => Self::Outcome,
            _ => return None,
        })
    }
}

/// What a caller asks of an article.
#[derive(Debug, Clone)]
pub enum Command {
    /// A new article with its first version as a draft.
    Create { kind: ArticleKind, scope: Scope, content: ArticleContent, change_note: String },
    /// A new draft from the published (or latest) content, or from `content`.
    NewVersion { content: Option<ArticleContent>, change_note: String },
    /// New content for a draft: the fields `mask` names (all when empty).
    Update { version: i32, content: ArticleContent, mask: Vec<ContentField>, change_note: String },
    /// A draft goes to review.
    Submit { version: i32 },
    /// A reviewer publishes the version, or returns it to draft with a comment.
    Review { version: i32, approve: bool, comment: String },
    /// The published version is retired; readers no longer see the article.
    Retire { reason: String },
}

/// What a command answers: the article, or the version it concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Article,
    Version(i32),
}

impl Command {
    /// The permission the command needs.
    pub fn permission(&self) -> Permission {
        match self {
            Self::Review { .. } => Permission::KnowledgeReview,
            _ => Permission::KnowledgeWrite,
        }
    }
}

/// Why an article refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArticleError {
    #[error("version {version} of the article does not exist")]
    NoSuchVersion { version: i32 },
    #[error("version {version} is still open ({state}); publish or return it first")]
    OpenVersionExists { version: i32, state: &'static str },
    #[error("version {version} is {state}; only a draft can be changed or sent to review")]
    NotDraft { version: i32, state: &'static str },
    #[error("version {version} is {state}; only a version in review can be reviewed")]
    NotInReview { version: i32, state: &'static str },
    #[error("a reviewer cannot review a version they wrote or changed")]
    ReviewerIsAuthor,
    #[error("the article has no published version to retire")]
    NothingPublished,
    #[error("a comment is required when a version is returned to its authors")]
    CommentRequired,
    #[error("an outcome is only for typical cases")]
    OutcomeNotTypicalCase,
}

/// The name of a version state, for messages.
pub fn state_word(state: i32) -> &'static str {
    match VersionState::try_from(state) {
        Ok(VersionState::Draft) => "a draft",
        Ok(VersionState::InReview) => "in review",
        Ok(VersionState::Published) => "published",
        Ok(VersionState::Retired) => "retired",
        _ => "in an unknown state",
    }
}

impl ArticleRecord {
    pub fn name(&self) -> String {
        format!("articles/{}", self.id)
    }

    pub fn version(&self, version: i32) -> Option<&ArticleVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    fn version_mut(&mut self, version: i32) -> Option<&mut ArticleVersion> {
        self.versions.iter_mut().find(|v| v.version == version)
    }

    pub fn published(&self) -> Option<&ArticleVersion> {
        self.versions.iter().rev().find(|v| v.state == VersionState::Published as i32)
    }

    /// The draft or version in review, if any.
    pub fn open(&self) -> Option<&ArticleVersion> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.state == VersionState::Draft as i32 || v.state == VersionState::InReview as i32)
    }

    pub fn latest(&self) -> Option<&ArticleVersion> {
        self.versions.last()
    }

    pub fn latest_version(&self) -> i32 {
        self.latest().map_or(0, |v| v.version)
    }

    pub fn published_version(&self) -> i32 {
        self.published().map_or(0, |v| v.version)
    }

    pub fn state(&self) -> ArticleState {
        if self.published().is_some() {
            ArticleState::Published
        } else if self.versions.iter().any(|v| v.publish_time.is_some()) {
            ArticleState::Retired
        } else {
            ArticleState::Draft
        }
    }

    /// The state of the open version (0 when none), as stored for queue queries.
    pub fn open_state(&self) -> i32 {
        self.open().map_or(0, |v| v.state)
    }

    /// The article as `principal` may see it: the published version, and the open one too
    /// when `editor` (the caller may edit it).
    pub fn to_proto(&self, editor: bool) -> Article {
        Article {
            name: self.name(),
            kind: self.kind as i32,
            org_unit: self.org_unit.clone(),
            state: self.state() as i32,
            published_version: self.published_version(),
            latest_version: self.latest_version(),
            published: self.published().cloned(),
            open: if editor { self.open().cloned() } else { None },
            create_time: Some(to_timestamp(self.create_time)),
            update_time: Some(to_timestamp(self.update_time)),
        }
    }
}

/// Whether `principal` may read the article: its published version within their scope, or
/// any of it when they may edit it. Not being able to read it is "not found".
pub fn visible_to(principal: &Principal, article: &ArticleRecord) -> bool {
    (principal.has(Permission::KnowledgeRead)
        && article.published().is_some()
        && readable_by(principal, &article.org_unit))
        || is_editor(principal, article)
}

/// Whether `principal` writes or reviews articles of the article's scope (and so sees its
/// drafts and history).
pub fn is_editor(principal: &Principal, article: &ArticleRecord) -> bool {
    (principal.has(Permission::KnowledgeWrite) || principal.has(Permission::KnowledgeReview))
        && editable_by(principal, &article.org_unit)
}

/// What a change writes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub article: ArticleRecord,
    /// Whether the article is new (inserted rather than updated).
    pub created: bool,
    /// The revision the article was loaded at (0 when new).
    pub loaded_revision: i64,
    /// Versions to write, by number.
    pub changed_versions: Vec<i32>,
    pub event: ArticleChanged,
    pub answer: Answer,
}

fn version_name(id: &str, version: i32) -> String {
    format!("articles/{id}/versions/{version}")
}

/// A new version with `content`, written by `author`.
fn new_version(
    id: &str,
    version: i32,
    content: ArticleContent,
    author: &str,
    note: String,
    now: DateTime<Utc>,
) -> ArticleVersion {
    ArticleVersion {
        name: version_name(id, version),
        version,
        state: VersionState::Draft as i32,
        content: Some(content),
        authors: vec![author.to_owned()],
        change_note: note,
        create_time: Some(to_timestamp(now)),
        update_time: Some(to_timestamp(now)),
        ..ArticleVersion::default()
    }
}

/// Plans the creation of article `id` (the caller checked permission and scope).
pub fn plan_create(id: &str, command: Command, actor: &str, now: DateTime<Utc>) -> Result<Plan, ArticleError> {
    let Command::Create { kind, scope, content, change_note } = command else {
        unreachable!("plan_create takes Create")
    };
    check_outcome(kind, &content)?;
    let article = ArticleRecord {
        id: id.to_owned(),
        kind,
        org_unit: scope.as_str().to_owned(),
        create_time: now,
        update_time: now,
        revision: 1,
        versions: vec![new_version(id, 1, content, actor, change_note, now)],
    };
    let event = changed(&article, 1, ArticleAction::Created, actor);
    Ok(Plan { article, created: true, loaded_revision: 0, changed_versions: vec![1], event, answer: Answer::Article })
}

/// Plans a published article as it enters the store whole (starter content, bulk loads):
/// written by `author`, reviewed by `reviewer`.
pub fn plan_seeded(
    id: &str,
    kind: ArticleKind,
    scope: &Scope,
    content: ArticleContent,
    (author, reviewer): (&str, &str),
    now: DateTime<Utc>,
) -> Plan {
    let mut version = new_version(id, 1, content, author, String::new(), now);
    version.state = VersionState::Published as i32;
    version.reviewer = reviewer.to_owned();
    version.submit_time = Some(to_timestamp(now));
    version.publish_time = Some(to_timestamp(now));
    let article = ArticleRecord {
        id: id.to_owned(),
        kind,
        org_unit: scope.as_str().to_owned(),
        create_time: now,
        update_time: now,
        revision: 1,
        versions: vec![version],
    };
    let event = changed(&article, 1, ArticleAction::Published, reviewer);
    Plan { article, created: true, loaded_revision: 0, changed_versions: vec![1], event, answer: Answer::Article }
}

fn check_outcome(kind: ArticleKind, content: &ArticleContent) -> Result<(), ArticleError> {
    if content.outcome != 0 && kind != ArticleKind::TypicalCase {
        return Err(ArticleError::OutcomeNotTypicalCase);
    }
    Ok(())
}

fn changed(article: &ArticleRecord, version: i32, action: ArticleAction, actor: &str) -> ArticleChanged {
    ArticleChanged {
        article: article.name(),
        version,
        action: action as i32,
        kind: article.kind as i32,
        org_unit: article.org_unit.clone(),
        actor: actor.to_owned(),
        published_version: article.published_version(),
    }
}

/// Plans a change to an existing article by `actor` (the caller checked the permission and
/// that the actor may edit the article's scope).
pub fn plan_change(
    loaded: ArticleRecord,
    command: Command,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Plan, ArticleError> {
    let loaded_revision = loaded.revision;
    let mut article = loaded;
    let stamp = Some(to_timestamp(now));
    // Versions written besides the one concerned: the one a publication replaces.
    let mut replaced = Vec::new();
    let (version, action, answer) = match command {
        Command::Create { .. } => unreachable!("plan_change does not create"),
        Command::NewVersion { content, change_note } => {
            if let Some(open) = article.open() {
                return Err(ArticleError::OpenVersionExists { version: open.version, state: state_word(open.state) });
            }
            let content = match content {
                Some(content) => content,
                None => article.published().or(article.latest()).and_then(|v| v.content.clone()).unwrap_or_default(),
            };
            check_outcome(article.kind, &content)?;
            let number = article.latest_version() + 1;
            article.versions.push(new_version(&article.id, number, content, actor, change_note, now));
            (number, ArticleAction::VersionCreated, Answer::Version(number))
        }
        Command::Update { version, content, mask, change_note } => {
            check_outcome(article.kind, &content)?;
            let draft = draft_mut(&mut article, version)?;
            let current = draft.content.get_or_insert_with(ArticleContent::default);
            let all = mask.is_empty();
            let wants = |f: ContentField| all || mask.contains(&f);
            if wants(ContentField::Title) {
                current.title = content.title;
            }
            if wants(ContentField::Body) {
                current.body = content.body;
            }
            if wants(ContentField::Tags) {
                current.tags = content.tags;
            }
            if wants(ContentField::Codes) {
                current.codes = content.codes;
            }
            if wants(ContentField::Outcome) {
                current.outcome = content.outcome;
            }
            if !change_note.is_empty() {
                draft.change_note = change_note;
            }
            if !draft.authors.iter().any(|a| a == actor) {
                draft.authors.push(actor.to_owned());
            }
            draft.update_time = stamp;
            (version, ArticleAction::DraftUpdated, Answer::Version(version))
        }
        Command::Submit { version } => {
            let draft = draft_mut(&mut article, version)?;
            draft.state = VersionState::InReview as i32;
            draft.submit_time = stamp;
            draft.update_time = stamp;
            (version, ArticleAction::Submitted, Answer::Version(version))
        }
        Command::Review { version, approve, comment } => {
            let Some(v) = article.version(version) else { return Err(ArticleError::NoSuchVersion { version }) };
            if v.state != VersionState::InReview as i32 {
                return Err(ArticleError::NotInReview { version, state: state_word(v.state) });
            }
            if v.authors.iter().any(|a| a == actor) {
                return Err(ArticleError::ReviewerIsAuthor);
            }
            if !approve && comment.trim().is_empty() {
                return Err(ArticleError::CommentRequired);
            }
            if approve {
                // The version published before is replaced; its content stays as it was.
                for older in article.versions.iter_mut().filter(|v| v.state == VersionState::Published as i32) {
                    older.state = VersionState::Retired as i32;
                    older.retire_time = stamp;
                    replaced.push(older.version);
                }
            }
            let Some(v) = article.version_mut(version) else { return Err(ArticleError::NoSuchVersion { version }) };
            v.reviewer = actor.to_owned();
            v.review_comment = comment;
            v.update_time = stamp;
            let action = if approve {
                v.state = VersionState::Published as i32;
                v.publish_time = stamp;
                ArticleAction::Published
            } else {
                v.state = VersionState::Draft as i32;
                ArticleAction::Returned
            };
            (version, action, Answer::Version(version))
        }
        Command::Retire { reason } => {
            let Some(published) = article.published().map(|v| v.version) else {
                return Err(ArticleError::NothingPublished);
            };
            if let Some(v) = article.version_mut(published) {
                v.state = VersionState::Retired as i32;
                v.retire_time = stamp;
                v.review_comment = if v.review_comment.is_empty() {
                    format!("retired: {reason}")
                } else {
                    format!("{}; retired: {reason}", v.review_comment)
                };
            }
            (published, ArticleAction::Retired, Answer::Article)
        }
    };
    article.revision = loaded_revision + 1;
    article.update_time = now;
    let changed_versions = std::iter::once(version).chain(replaced).collect();
    let event = changed(&article, version, action, actor);
    Ok(Plan { article, created: false, loaded_revision, changed_versions, event, answer })
}

fn draft_mut(article: &mut ArticleRecord, version: i32) -> Result<&mut ArticleVersion, ArticleError> {
    let Some(v) = article.version_mut(version) else { return Err(ArticleError::NoSuchVersion { version }) };
    if v.state != VersionState::Draft as i32 {
        return Err(ArticleError::NotDraft { version, state: state_word(v.state) });
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use redress_proto::redress::knowledge::v1::TaxonomyCodes;

    use super::*;

    fn content(title: &str) -> ArticleContent {
        ArticleContent {
            title: title.to_owned(),
            body: "正文。".to_owned(),
            tags: vec!["年费".to_owned()],
            codes: Some(TaxonomyCodes { business_types: vec!["B02".to_owned()], ..Default::default() }),
            outcome: 0,
        }
    }

    fn created() -> ArticleRecord {
        let command = Command::Create {
            kind: ArticleKind::Faq,
            scope: Scope::Platform,
            content: content("信用卡年费"),
            change_note: String::new(),
        };
        plan_create("a1", command, "user:author", redress_platform::time::now()).unwrap().article
    }

    fn step(article: ArticleRecord, command: Command, actor: &str) -> Result<ArticleRecord, ArticleError> {
        plan_change(article, command, actor, redress_platform::time::now()).map(|p| p.article)
    }

    #[test]
    fn a_version_goes_from_draft_through_review_to_published_and_the_old_one_retires() {
        let a = created();
        assert_eq!(a.state(), ArticleState::Draft);
        let a = step(a, Command::Submit { version: 1 }, "user:author").unwrap();
        let a =
            step(a, Command::Review { version: 1, approve: true, comment: String::new() }, "user:reviewer").unwrap();
        assert_eq!(a.state(), ArticleState::Published);
        let published = a.published().cloned().unwrap();
        let a = step(a, Command::NewVersion { content: None, change_note: "更新".to_owned() }, "user:author").unwrap();
        assert_eq!(a.open().unwrap().content, published.content, "a new draft starts from the published content");
        let update = Command::Update {
            version: 2,
            content: content("信用卡年费减免"),
            mask: vec![ContentField::Title],
            change_note: String::new(),
        };
        let a = step(a, update, "user:editor").unwrap();
        assert_eq!(a.version(2).unwrap().authors, ["user:author", "user:editor"]);
        assert_eq!(a.version(1).unwrap(), &published, "the published version did not change");
        let a = step(a, Command::Submit { version: 2 }, "user:author").unwrap();
        let refused =
            step(a.clone(), Command::Review { version: 2, approve: true, comment: String::new() }, "user:editor");
        assert_eq!(refused, Err(ArticleError::ReviewerIsAuthor), "whoever changed a draft is one of its authors");
        let plan = plan_change(
            a,
            Command::Review { version: 2, approve: true, comment: String::new() },
            "user:reviewer",
            redress_platform::time::now(),
        )
        .unwrap();
        assert_eq!(plan.changed_versions, [2, 1]);
        let a = plan.article;
        assert_eq!(a.published_version(), 2);
        assert_eq!(a.version(1).unwrap().state, VersionState::Retired as i32);
        assert_eq!(a.version(1).unwrap().content, published.content, "a retired version keeps its content");
        let a = step(a, Command::Retire { reason: "已过时".to_owned() }, "user:author").unwrap();
        assert_eq!(a.state(), ArticleState::Retired);
        assert_eq!(
            step(a, Command::Retire { reason: "x".to_owned() }, "user:author"),
            Err(ArticleError::NothingPublished)
        );
    }

    #[test]
    fn an_author_cannot_publish_their_own_draft_and_a_return_needs_a_comment() {
        let a = step(created(), Command::Submit { version: 1 }, "user:author").unwrap();
        let own = Command::Review { version: 1, approve: true, comment: String::new() };
        assert_eq!(step(a.clone(), own, "user:author"), Err(ArticleError::ReviewerIsAuthor));
        let bare = Command::Review { version: 1, approve: false, comment: " ".to_owned() };
        assert_eq!(step(a.clone(), bare, "user:reviewer"), Err(ArticleError::CommentRequired));
        let back = Command::Review { version: 1, approve: false, comment: "请补充依据".to_owned() };
        let a = step(a, back, "user:reviewer").unwrap();
        assert_eq!(a.version(1).unwrap().state, VersionState::Draft as i32);
        assert_eq!(a.version(1).unwrap().review_comment, "请补充依据");
    }

    #[test]
    fn only_drafts_change_and_one_version_is_open_at_a_time() {
        let a = step(created(), Command::Submit { version: 1 }, "user:author").unwrap();
        let update = Command::Update { version: 1, content: content("x"), mask: vec![], change_note: String::new() };
        assert!(matches!(step(a.clone(), update, "user:author"), Err(ArticleError::NotDraft { .. })));
        let again = Command::NewVersion { content: None, change_note: String::new() };
        assert!(matches!(
            step(a.clone(), again, "user:author"),
            Err(ArticleError::OpenVersionExists { version: 1, .. })
        ));
        assert_eq!(
            step(a, Command::Submit { version: 9 }, "user:author"),
            Err(ArticleError::NoSuchVersion { version: 9 })
        );
    }

    #[test]
    fn an_outcome_belongs_to_typical_cases_only() {
        let mut c = content("案例");
        c.outcome = 1;
        let command =
            Command::Create { kind: ArticleKind::Faq, scope: Scope::Platform, content: c, change_note: String::new() };
        assert_eq!(
            plan_create("a2", command, "user:a", redress_platform::time::now()).unwrap_err(),
            ArticleError::OutcomeNotTypicalCase
        );
    }
}
