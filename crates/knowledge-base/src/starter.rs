//! The starter pack (`data/starter/articles.toml`): articles written for Redress from its domain
//! brief and source texts, in every kind, loaded as published, platform-wide articles into a
//! knowledge base that starts empty with `starter_content` on.

use chrono::{DateTime, Utc};
use redress_proto::redress::knowledge::v1::{
    ArticleContent, ArticleKind, ArticleVersion, CaseOutcome, TaxonomyCodes, VersionState,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::article::{Plan, plan_seeded};
use crate::domain::scope::Scope;
use crate::store::Published;

const ARTICLES: &str = include_str!("../data/starter/articles.toml");

/// Who wrote the pack and who published it (two different subjects, as for any article).
pub const AUTHOR: &str = "redress:starter-pack";
pub const PUBLISHER: &str = "service:knowledge-base";

#[derive(Deserialize)]
struct Pack {
    version: String,
    articles: Vec<StarterArticle>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StarterArticle {
    pub slug: String,
    kind: String,
    pub title: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    outcome: Option<String>,
    body: String,
}

impl StarterArticle {
    pub fn kind(&self) -> anyhow::Result<ArticleKind> {
        Ok(match self.kind.as_str() {
            "faq" => ArticleKind::Faq,
            "script" => ArticleKind::Script,
            "guide" => ArticleKind::Guide,
            "regulation" => ArticleKind::Regulation,
            "typical_case" => ArticleKind::TypicalCase,
            "media_template" => ArticleKind::MediaTemplate,
            "risk_entry" => ArticleKind::RiskEntry,
            other => anyhow::bail!("starter article {}: unknown kind {other}", self.slug),
        })
    }

    pub fn content(&self) -> anyhow::Result<ArticleContent> {
        let mut codes = TaxonomyCodes::default();
        for code in &self.codes {
            match code.chars().next() {
                Some('B' | 'G') => codes.business_types.push(code.clone()),
                Some('C' | 'K') => codes.causes.push(code.clone()),
                Some('R') => codes.rights.push(code.clone()),
                _ => anyhow::bail!("starter article {}: {code} is no taxonomy code", self.slug),
            }
        }
        let outcome = match self.outcome.as_deref() {
            None => CaseOutcome::Unspecified,
            Some("success") => CaseOutcome::Success,
            Some("failure") => CaseOutcome::Failure,
            Some(other) => anyhow::bail!("starter article {}: unknown outcome {other}", self.slug),
        };
        Ok(ArticleContent {
            title: self.title.trim().to_owned(),
            body: self.body.trim().to_owned(),
            tags: self.tags.clone(),
            codes: Some(codes),
            outcome: outcome as i32,
        })
    }

    /// The article's id: a UUID derived from its slug, so loading the pack twice writes it once.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(format!("redress-starter:{}", self.slug).as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8: custom
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        uuid::Uuid::from_bytes(bytes).to_string()
    }

    /// The article as the index would hold it, under `id`.
    pub fn published(&self, id: String) -> anyhow::Result<Published> {
        Ok(Published {
            id,
            kind: self.kind()?,
            org_unit: "/".to_owned(),
            version: ArticleVersion {
                version: 1,
                state: VersionState::Published as i32,
                content: Some(self.content()?),
                ..ArticleVersion::default()
            },
        })
    }
}

/// The pack's articles and its version.
pub fn pack() -> anyhow::Result<(String, Vec<StarterArticle>)> {
    let pack: Pack = toml::from_str(ARTICLES).map_err(|e| anyhow::anyhow!("starter articles: {e}"))?;
    Ok((pack.version, pack.articles))
}

/// The pack as articles to seed, published at `now`.
pub fn plans(now: DateTime<Utc>) -> anyhow::Result<Vec<Plan>> {
    let (_, articles) = pack()?;
    articles
        .iter()
        .map(|a| Ok(plan_seeded(&a.id(), a.kind()?, &Scope::Platform, a.content()?, (AUTHOR, PUBLISHER), now)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_pack_has_sixty_articles_or_more_of_every_kind_with_unique_slugs() {
        let (version, articles) = pack().unwrap();
        assert!(!version.is_empty());
        assert!(articles.len() >= 60, "{} articles", articles.len());
        let mut slugs: Vec<&str> = articles.iter().map(|a| a.slug.as_str()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), articles.len(), "slugs are unique");
        let kinds: std::collections::BTreeSet<i32> = articles.iter().map(|a| a.kind().unwrap() as i32).collect();
        assert_eq!(kinds.len(), 7, "every kind is in the pack");
        for article in &articles {
            let content = article.content().unwrap();
            assert!(!content.title.is_empty() && content.body.chars().count() >= 60, "{}", article.slug);
            assert!(uuid::Uuid::try_parse(&article.id()).is_ok());
        }
        assert_eq!(plans(redress_platform::time::now()).unwrap().len(), articles.len());
    }
}
