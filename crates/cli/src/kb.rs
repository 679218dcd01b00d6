//! `redress kb …`: the knowledge base from the command line — search it, read an article, get
//! suggestions for a complaint, lint a draft reply, publish (or return) a version in review,
//! and import articles as drafts sent to review. One KnowledgeService call per invocation
//! (an import makes two per article); lists print under a header row.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use redress_proto::redress::knowledge::v1::knowledge_service_client::KnowledgeServiceClient;
use redress_proto::redress::knowledge::v1::{
    Article, ArticleContent, ArticleKind, ArticleView, CaseOutcome, CreateArticleRequest, GetArticleRequest,
    LintReplyRequest, LintReplyResponse, LintSeverity, ReplyKind, ReviewArticleVersionRequest, ReviewDecision,
    SearchArticlesRequest, SearchArticlesResponse, SearchHit, SubmitArticleVersionRequest, SuggestForComplaintRequest,
    SuggestForComplaintResponse, TaxonomyCodes,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::output::{self, Format};
use crate::{Authenticated, Failure, Global, changed, connect, gateway_url, print, read, report, resource_name, usage};

/// Exit code of `lint` when the reply has a finding of severity error (or is blocked).
const EXIT_LINT_ERRORS: u8 = 3;

/// Search the knowledge base, read articles, get suggestions for a complaint, lint replies,
/// publish versions and import articles, through a running gateway.
#[derive(Args)]
pub struct KbArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: KbCommand,
}

#[derive(Subcommand)]
enum KbCommand {
    /// Search the published articles you may read, best first.
    Search {
        /// What to look for, e.g. "客户说年费扣错了".
        query: String,
        /// Only articles of these kinds.
        #[arg(long = "kind", value_enum)]
        kinds: Vec<Kind>,
        /// Hits per page (default 10, at most 50).
        #[arg(long)]
        page_size: Option<i32>,
        /// Token of the next page, as a previous page printed it.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Show one article (with its open version when you edit it).
    Get {
        /// The article: `articles/{id}` or its bare id.
        article: String,
    },
    /// Scripts, guides, regulations and typical cases for a complaint, each with why.
    Suggest {
        /// The complaint (`complaints/{id}` or its bare id), read from intake as you.
        #[arg(long, conflicts_with = "text")]
        complaint: Option<String>,
        /// Or the complaint's words.
        #[arg(long, required_unless_present = "complaint")]
        text: Option<String>,
        /// With --text: its business type code, e.g. B02.
        #[arg(long)]
        business_type: Option<String>,
        /// With --text: its cause code, e.g. C05.
        #[arg(long)]
        cause: Option<String>,
        /// Suggestions of each kind (default 3).
        #[arg(long)]
        per_kind: Option<i32>,
    },
    /// Check a draft reply for banned phrases, negative wording, blame, jargon and missing
    /// elements (exit code 3 when a finding is an error).
    Lint {
        /// The reply's text; or give --file.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Read the reply from this file (`-` for stdin).
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
        /// What the reply is.
        #[arg(long = "as", value_enum, default_value_t = Reply::General)]
        reply: Reply,
        /// The unit the reply is sent for (an institution may block banned phrases).
        #[arg(long)]
        org_unit: Option<String>,
    },
    /// Publish a version in review (you must not be one of its authors), or return it.
    Publish {
        /// The version: `articles/{id}/versions/{n}`.
        version: String,
        /// Return it to its authors with this comment instead of publishing it.
        #[arg(long = "return", value_name = "COMMENT")]
        return_with: Option<String>,
        /// Request id, to retry safely (default: a new one).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Import articles from a file (the starter pack's TOML format) as drafts sent to review.
    Import {
        /// The file: `[[articles]]` tables with slug, kind, title, body, tags, codes, outcome.
        file: PathBuf,
        /// The unit the articles apply to (`/` for the whole platform).
        #[arg(long)]
        org_unit: String,
    },
}

/// An article kind as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Faq,
    Script,
    Guide,
    Regulation,
    TypicalCase,
    MediaTemplate,
    RiskEntry,
}

impl From<Kind> for ArticleKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Faq => Self::Faq,
            Kind::Script => Self::Script,
            Kind::Guide => Self::Guide,
            Kind::Regulation => Self::Regulation,
            Kind::TypicalCase => Self::TypicalCase,
            Kind::MediaTemplate => Self::MediaTemplate,
            Kind::RiskEntry => Self::RiskEntry,
        }
    }
}

/// What a reply is, as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Reply {
    General,
    FirstResponse,
    DecisionNotice,
}

type Client = KnowledgeServiceClient<Authenticated>;

/// Runs one `redress kb` command and says how it went in the exit code.
pub async fn run(args: KbArgs) -> ExitCode {
    let gateway = gateway_url(&args.global.gateway);
    let outcome = execute(&gateway, args).await;
    report(outcome, &gateway)
}

fn kind_word(kind: i32) -> &'static str {
    match ArticleKind::try_from(kind) {
        Ok(ArticleKind::Faq) => "faq",
        Ok(ArticleKind::Script) => "script",
        Ok(ArticleKind::Guide) => "guide",
        Ok(ArticleKind::Regulation) => "regulation",
        Ok(ArticleKind::TypicalCase) => "typical-case",
        Ok(ArticleKind::MediaTemplate) => "media-template",
        Ok(ArticleKind::RiskEntry) => "risk-entry",
        _ => "unknown",
    }
}

/// A table under a header row, columns aligned by display width.
fn table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header(header);
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.lines().map(|line| line.trim_end().to_owned() + "\n").collect()
}

/// A snippet with its highlighted words in 【】.
fn highlighted(hit: &SearchHit) -> String {
    let Some(snippet) = &hit.snippet else { return String::new() };
    let chars: Vec<char> = snippet.text.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    for range in &snippet.highlights {
        let (start, end) = (range.start.max(0) as usize, range.end.max(0) as usize);
        if start < at || end > chars.len() {
            continue;
        }
        out.extend(&chars[at..start]);
        out.push('【');
        out.extend(&chars[start..end]);
        out.push('】');
        at = end;
    }
    out.extend(&chars[at..]);
    out.replace('\n', " ")
}

fn search_text(answer: &SearchArticlesResponse) -> String {
    if answer.hits.is_empty() {
        return "no articles found\n".to_owned();
    }
    let rows = answer
        .hits
        .iter()
        .enumerate()
        .map(|(i, hit)| {
            [
                (i + 1).to_string(),
                hit.title.clone(),
                kind_word(hit.kind).to_owned(),
                format!("{:.2}", hit.score),
                hit.article.clone(),
            ]
        })
        .collect();
    let mut text = table(["#", "TITLE", "KIND", "SCORE", "ARTICLE"], rows);
    for (i, hit) in answer.hits.iter().enumerate() {
        text.push_str(&format!("{}. {}\n", i + 1, highlighted(hit)));
    }
    if !answer.next_page_token.is_empty() {
        text.push_str(&format!("more: --page-token {}\n", answer.next_page_token));
    }
    text
}

fn article_text(article: &Article) -> String {
    let mut text = format!(
        "article     {}\nkind        {}\nunit        {}\n",
        article.name,
        kind_word(article.kind),
        article.org_unit
    );
    let version = |label: &str, v: &redress_proto::redress::knowledge::v1::ArticleVersion| {
        let content = v.content.clone().unwrap_or_default();
        format!(
            "{label:<12}{} (version {}, by {})\ntags        {}\n\n{}\n\n",
            content.title,
            v.version,
            v.authors.join(", "),
            content.tags.join("、"),
            content.body
        )
    };
    if let Some(published) = &article.published {
        text.push_str(&version("published", published));
    }
    if let Some(open) = &article.open {
        text.push_str(&version("open", open));
    }
    text
}

fn suggest_text(answer: &SuggestForComplaintResponse) -> String {
    let mut text = format!("keywords: {}\n", answer.keywords.join("、"));
    for group in &answer.groups {
        text.push_str(&format!("\n{}\n", kind_word(group.kind)));
        if group.suggestions.is_empty() {
            text.push_str("  (none)\n");
            continue;
        }
        let rows = group
            .suggestions
            .iter()
            .map(|s| {
                let hit = s.hit.clone().unwrap_or_default();
                [hit.title, s.reasons.join("；"), hit.article]
            })
            .collect();
        text.push_str(&table(["TITLE", "WHY", "ARTICLE"], rows));
    }
    text
}

fn lint_text(answer: &LintReplyResponse) -> String {
    if answer.findings.is_empty() {
        return format!("no findings (rules {})\n", answer.rules_version);
    }
    let rows = answer
        .findings
        .iter()
        .map(|f| {
            let severity = match LintSeverity::try_from(f.severity) {
                Ok(LintSeverity::Error) => "error",
                Ok(LintSeverity::Warning) => "warning",
                _ => "info",
            };
            let range = f.range.map(|r| format!("{}..{}", r.start, r.end)).unwrap_or_default();
            let text = if f.text.is_empty() { "(missing)".to_owned() } else { f.text.clone() };
            [severity.to_owned(), f.rule.clone(), range, text, f.alternatives.first().cloned().unwrap_or_default()]
        })
        .collect();
    let mut text = table(["SEVERITY", "RULE", "AT", "TEXT", "SAY INSTEAD"], rows);
    text.push_str(&format!(
        "rules {}{}\n",
        answer.rules_version,
        if answer.blocked { "; BLOCKED: must not be sent" } else { "" }
    ));
    text
}

/// A file of articles to import, in the starter pack's format.
#[derive(Deserialize)]
struct ImportFile {
    articles: Vec<ImportArticle>,
}

#[derive(Deserialize)]
struct ImportArticle {
    slug: String,
    kind: String,
    title: String,
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    outcome: Option<String>,
}

impl ImportArticle {
    fn request(&self, org_unit: &str, request_id: String) -> Result<CreateArticleRequest, Failure> {
        let kind = Kind::from_str(&self.kind.replace('_', "-"), true)
            .map_err(|_| usage(format!("article {}: unknown kind {:?}", self.slug, self.kind)))?;
        let mut codes = TaxonomyCodes::default();
        for code in &self.codes {
            match code.chars().next() {
                Some('B' | 'G') => codes.business_types.push(code.clone()),
                Some('C' | 'K') => codes.causes.push(code.clone()),
                _ => codes.rights.push(code.clone()),
            }
        }
        let outcome = match self.outcome.as_deref() {
            Some("success") => CaseOutcome::Success,
            Some("failure") => CaseOutcome::Failure,
            _ => CaseOutcome::Unspecified,
        };
        let content = ArticleContent {
            title: self.title.trim().to_owned(),
            body: self.body.trim().to_owned(),
            tags: self.tags.clone(),
            codes: Some(codes),
            outcome: outcome as i32,
        };
        Ok(CreateArticleRequest {
            kind: ArticleKind::from(kind) as i32,
            org_unit: org_unit.to_owned(),
            content: Some(content),
            change_note: format!("imported ({})", self.slug),
            request_id,
        })
    }
}

async fn execute(gateway: &str, args: KbArgs) -> Result<ExitCode, Failure> {
    let KbArgs { global: Global { token, output: format, ca_file, .. }, command } = args;
    let mut client: Client = KnowledgeServiceClient::new(connect(gateway, token.as_deref(), ca_file.as_deref())?);
    match command {
        KbCommand::Search { query, kinds, page_size, page_token } => {
            let request = SearchArticlesRequest {
                query,
                kinds: kinds.into_iter().map(|k| ArticleKind::from(k) as i32).collect(),
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
                codes: None,
            };
            let answer = read(client.search_articles(request).await)?;
            print(&match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => search_text(&answer),
            })?;
        }
        KbCommand::Get { article } => {
            let request =
                GetArticleRequest { name: resource_name("articles/", &article), view: ArticleView::Editor as i32 };
            let article = read(client.get_article(request).await)?;
            print(&match format {
                Format::Json => output::message_json(&article)?,
                Format::Text => article_text(&article),
            })?;
        }
        KbCommand::Suggest { complaint, text, business_type, cause, per_kind } => {
            let codes = TaxonomyCodes {
                business_types: business_type.into_iter().collect(),
                causes: cause.into_iter().collect(),
                rights: Vec::new(),
            };
            let request = SuggestForComplaintRequest {
                complaint: complaint.map(|c| resource_name("complaints/", &c)).unwrap_or_default(),
                text: text.unwrap_or_default(),
                codes: Some(codes),
                per_kind: per_kind.unwrap_or_default(),
            };
            let answer = read(client.suggest_for_complaint(request).await)?;
            print(&match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => suggest_text(&answer),
            })?;
        }
        KbCommand::Lint { text, file, reply, org_unit } => {
            let text = match (text, file) {
                (Some(text), _) => text,
                (None, Some(path)) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())
                    .map_err(|e| Failure::Other(format!("cannot read stdin: {e}")))?,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| Failure::Other(format!("cannot read {}: {e}", path.display())))?,
                (None, None) => return Err(usage("give the reply's text or --file")),
            };
            let kind = match reply {
                Reply::General => ReplyKind::Unspecified,
                Reply::FirstResponse => ReplyKind::FirstResponse,
                Reply::DecisionNotice => ReplyKind::DecisionNotice,
            };
            let request = LintReplyRequest { text, kind: kind as i32, org_unit: org_unit.unwrap_or_default() };
            let answer = read(client.lint_reply(request).await)?;
            print(&match format {
                Format::Json => output::message_json(&answer)?,
                Format::Text => lint_text(&answer),
            })?;
            let errors = answer.blocked || answer.findings.iter().any(|f| f.severity == LintSeverity::Error as i32);
            return Ok(if errors { ExitCode::from(EXIT_LINT_ERRORS) } else { ExitCode::SUCCESS });
        }
        KbCommand::Publish { version, return_with, request_id } => {
            let request_id = request_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let decision = if return_with.is_some() { ReviewDecision::Return } else { ReviewDecision::Approve };
            let request = ReviewArticleVersionRequest {
                name: version.trim().to_owned(),
                decision: decision as i32,
                comment: return_with.unwrap_or_default(),
                request_id: request_id.clone(),
            };
            let reviewed = changed(client.review_article_version(request).await, request_id)?;
            print(&match format {
                Format::Json => output::message_json(&reviewed)?,
                Format::Text => {
                    let title = reviewed.content.as_ref().map(|c| c.title.clone()).unwrap_or_default();
                    let state = if decision == ReviewDecision::Approve { "published" } else { "returned to draft" };
                    format!("{}  {state}: {title}\n", reviewed.name)
                }
            })?;
        }
        KbCommand::Import { file, org_unit } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::Other(format!("cannot read {}: {e}", file.display())))?;
            let parsed: ImportFile =
                toml::from_str(&text).map_err(|e| usage(format!("{} is not an article file: {e}", file.display())))?;
            // Request ids derived from the file and the article: importing the same file again
            // (after a failure half-way) creates nothing twice.
            let digest = hex::encode(Sha256::digest(text.as_bytes()));
            let mut rows = Vec::new();
            for article in &parsed.articles {
                let id = format!("import-{}-{}", &digest[..16], article.slug);
                let created = changed(
                    client.create_article(article.request(&org_unit, format!("{id}-create"))?).await,
                    format!("{id}-create"),
                )?;
                let submit = SubmitArticleVersionRequest {
                    name: format!("{}/versions/1", created.name),
                    request_id: format!("{id}-submit"),
                };
                let submitted = match client.submit_article_version(submit).await {
                    Ok(_) => "in review".to_owned(),
                    // Submitted by an earlier run of the same import: nothing to do.
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => "in review".to_owned(),
                    Err(status) => return Err(Failure::Status { status, request_id: Some(format!("{id}-submit")) }),
                };
                rows.push([article.slug.clone(), created.name, submitted]);
            }
            print(&match format {
                Format::Json => {
                    let items: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|[slug, article, state]| serde_json::json!({ "slug": slug, "article": article, "state": state }))
                        .collect();
                    format!("{}\n", serde_json::Value::Array(items))
                }
                Format::Text if rows.is_empty() => "no articles in the file\n".to_owned(),
                Format::Text => table(["SLUG", "ARTICLE", "STATE"], rows),
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use redress_proto::redress::knowledge::v1::{Snippet, TextRange};

    use super::*;

    #[test]
    fn a_snippet_shows_its_matches_in_brackets() {
        let hit = SearchHit {
            snippet: Some(Snippet {
                text: "免年费条件已满足\n仍被扣年费".to_owned(),
                highlights: vec![TextRange { start: 1, end: 3 }, TextRange { start: 12, end: 14 }],
            }),
            ..SearchHit::default()
        };
        assert_eq!(highlighted(&hit), "免【年费】条件已满足 仍被扣【年费】");
    }

    #[test]
    fn lists_print_under_a_header_row() {
        let text = table(["A", "B"], vec![["年费".to_owned(), "x".to_owned()]]);
        assert_eq!(text.lines().next(), Some("A     B"));
        assert_eq!(text.lines().count(), 2);
    }
}
