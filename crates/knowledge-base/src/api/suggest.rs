//! Suggestions for a complaint: its words and codes (read from intake as the caller, or given), its most telling words searched in each kind a handler needs, the
//! codes weighing in, and each suggestion with why it matched.

use redress_platform::ServiceError;
use redress_platform::error::Violations;
use redress_platform::names::{Text, resource_id};
use redress_platform::principal::{CallerToken, Permission, Principal};
use redress_proto::redress::intake::v1::GetComplaintRequest;
use redress_proto::redress::knowledge::v1::{
    ArticleKind, SuggestForComplaintRequest, SuggestForComplaintResponse, Suggestion, SuggestionGroup, TaxonomyCodes,
};

use super::KnowledgeApi;
use super::search::{reader_of, to_hit};
use crate::error::KbError;
use crate::search::{Boosts, Filters, SearchQuery};

/// The kinds suggested, in the order they are answered.
const KINDS: [ArticleKind; 4] =
    [ArticleKind::Script, ArticleKind::Guide, ArticleKind::Regulation, ArticleKind::TypicalCase];
/// The complaint's words searched by.
const KEYWORDS: usize = 12;
const DEFAULT_PER_KIND: i32 = 3;
const MAX_PER_KIND: i32 = 10;

fn is_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && (1..=3).contains(&chars.clone().count())
        && chars.all(|c| c.is_ascii_digit())
}

impl KnowledgeApi {
    /// A complaint's words and codes, read from intake as the caller: the knowledge base's own
    /// token with the caller's, as the gateway signed it for the knowledge base. Intake grants
    /// the caller no more than the permission to read complaints (all the knowledge base may
    /// claim there).
    async fn complaint(&self, name: &str, caller: Option<&CallerToken>) -> Result<(String, TaxonomyCodes), KbError> {
        let Some((mut intake, credentials)) = self.intake.clone() else {
            return Err(ServiceError::failed_precondition(
                "INTAKE_NOT_CONFIGURED",
                "this knowledge base does not know where intake is (intake_url); give the complaint's text instead",
            )
            .into());
        };
        let caller = caller.ok_or_else(|| {
            ServiceError::PermissionDenied(
                "a complaint is read from intake only for a caller signed in at the gateway; give the complaint's text instead"
                    .to_owned(),
            )
        })?;
        let mut request =
            tonic::Request::new(GetComplaintRequest { name: name.to_owned(), pii_access_reason: String::new() });
        credentials.apply_on_behalf(&mut request, caller)?;
        let complaint = match intake.get_complaint(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return Err(match status.code() {
                    tonic::Code::NotFound => KbError::NotFound { name: name.to_owned() },
                    tonic::Code::PermissionDenied => {
                        ServiceError::PermissionDenied(format!("intake: {}", status.message())).into()
                    }
                    tonic::Code::Unauthenticated => ServiceError::Unauthenticated(status.message().to_owned()).into(),
                    _ => {
                        ServiceError::Unavailable(format!("intake could not be asked for {name}: {}", status.message()))
                            .into()
                    }
                });
            }
        };
        let codes = complaint
            .classification
            .map(|c| TaxonomyCodes {
                business_types: Some(c.business_type).filter(|b| !b.is_empty()).into_iter().collect(),
                causes: Some(c.cause).filter(|b| !b.is_empty()).into_iter().collect(),
                rights: c.rights,
            })
            .unwrap_or_default();
        Ok((format!("{}\n{}", complaint.demand, complaint.facts), codes))
    }

    /// Suggestions for a complaint named or given; a named complaint is read from intake on
    /// behalf of `caller` (the token the call came with, when the gateway signed it).
    pub(super) async fn suggest(
        &self,
        principal: &Principal,
        caller: Option<&CallerToken>,
        request: SuggestForComplaintRequest,
    ) -> Result<SuggestForComplaintResponse, KbError> {
        principal.require(Permission::KnowledgeRead)?;
        let mut v = Violations::new();
        let named = !request.complaint.trim().is_empty();
        if named {
            resource_id(&mut v, "complaint", request.complaint.trim(), "complaints");
            if !request.text.is_empty() {
                v.add("text", "give either a complaint's name or its text, not both");
            }
        } else {
            Text::Facts.check(&mut v, "text", &request.text, true);
        }
        let given = request.codes.clone().unwrap_or_default();
        for (name, list) in
            [("business_types", &given.business_types), ("causes", &given.causes), ("rights", &given.rights)]
        {
            for (i, code) in list.iter().enumerate() {
                if !is_code(code) {
                    v.add(
                        format!("codes.{name}[{i}]"),
                        "a taxonomy code: a capital letter and 1 to 3 digits, e.g. B02",
                    );
                }
            }
        }
        let per_kind = match request.per_kind {
            0 => DEFAULT_PER_KIND,
            n if n < 0 => {
                v.add("per_kind", "must not be negative");
                DEFAULT_PER_KIND
            }
            n => n.min(MAX_PER_KIND),
        };
        v.into_result()?;
        let (text, codes) =
            if named { self.complaint(request.complaint.trim(), caller).await? } else { (request.text.clone(), given) };
        let index = self.index()?;
        let reader = reader_of(principal);
        let boosts = Boosts {
            business_type: codes.business_types.first().cloned(),
            cause: codes.causes.first().cloned(),
            rights: codes.rights.clone(),
        };
        let (keywords, groups) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let keywords = index.keywords(&text, KEYWORDS)?;
            let mut groups = Vec::new();
            for kind in KINDS {
                let query = SearchQuery {
                    text: keywords.join(" "),
                    filters: Filters { kinds: vec![kind], ..Filters::default() },
                    boosts: boosts.clone(),
                    reader: reader.clone(),
                    offset: 0,
                    limit: per_kind as usize,
                };
                let suggestions = index
                    .search(&query)?
                    .into_iter()
                    .map(|hit| {
                        let mut reasons = Vec::new();
                        let has = |dimension: char, code: &String| hit.codes.contains(&format!("{dimension}:{code}"));
                        if let Some(code) = boosts.business_type.as_ref().filter(|c| has('b', c)) {
                            reasons.push(format!("业务类别 {code} 相同"));
                        }
                        if let Some(code) = boosts.cause.as_ref().filter(|c| has('c', c)) {
                            reasons.push(format!("投诉原因 {code} 相同"));
                        }
                        let rights: Vec<&String> = boosts.rights.iter().filter(|c| has('r', c)).collect();
                        if !rights.is_empty() {
                            reasons.push(format!(
                                "涉及权益 {}",
                                rights.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("、")
                            ));
                        }
                        if !hit.matched.is_empty() {
                            reasons.push(format!("关键词：{}", hit.matched.join("、")));
                        }
                        Suggestion { hit: Some(to_hit(hit)), reasons }
                    })
                    .collect();
                groups.push(SuggestionGroup { kind: kind as i32, suggestions });
            }
            Ok((keywords, groups))
        })
        .await
        .map_err(anyhow::Error::from)??;
        Ok(SuggestForComplaintResponse { groups, codes: Some(codes), keywords })
    }
}
