//! The case library: a closed case with a notable outcome becomes a typical-case candidate,
//! summed up from the case with personal information removed; an editor adopts it (a draft
//! typical case) or sets it aside.

use chrono::{DateTime, Utc};
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::case::v1::{CaseClosed, CaseState, LinkType, ResolutionType, ReviewOutcome};
use redress_proto::redress::common::v1::{Channel, Grade};
use redress_proto::redress::knowledge::v1::{
    ArticleContent, CandidateState, CaseCandidate, CaseOutcome, NotableOutcome,
};
use sha2::{Digest, Sha256};

use super::redact::redact;

/// Why a candidate refuses a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    #[error("the candidate was already {0}")]
    NotOpen(&'static str),
}

/// Why a closed case is notable, if it is.
pub fn notable(closed: &CaseClosed) -> Vec<NotableOutcome> {
    let Some(case) = &closed.case else { return Vec::new() };
    let mut out = Vec::new();
    let score = closed.measures.as_ref().map_or(0, |m| m.satisfaction_score);
    if (1..=2).contains(&score) {
        out.push(NotableOutcome::LowSatisfaction);
    } else if score >= 5 {
        out.push(NotableOutcome::HighSatisfaction);
    }
    if case.review_count > 0 || !case.reviews.is_empty() {
        out.push(NotableOutcome::Reviewed);
    }
    let mediated = case.previous_state == CaseState::InMediation as i32
        || case.resolution.as_ref().is_some_and(|r| r.r#type == ResolutionType::MediationOutcome as i32);
    if mediated {
        out.push(NotableOutcome::Mediated);
    }
    if case.links.iter().any(|l| l.r#type == LinkType::Parent as i32 || l.r#type == LinkType::Child as i32) {
        out.push(NotableOutcome::GroupMember);
    }
    out
}

/// The candidate's id: derived from the case, so a redelivered CaseClosed proposes it once.
pub fn candidate_id(case: &str) -> String {
    let digest = Sha256::digest(format!("redress-case-candidate:{case}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

fn grade_word(grade: i32) -> &'static str {
    match Grade::try_from(grade) {
        Ok(Grade::General) => "一般",
        Ok(Grade::Important) => "重要",
        Ok(Grade::Urgent) => "紧急",
        Ok(Grade::Major) => "重大",
        _ => "未分级",
    }
}

fn channel_word(channel: i32) -> &'static str {
    match Channel::try_from(channel) {
        Ok(Channel::Counter) => "营业网点",
        Ok(Channel::Phone) => "电话",
        Ok(Channel::Online) => "网上投诉平台",
        Ok(Channel::MobileApp) => "手机客户端",
        Ok(Channel::SocialMedia) => "社交媒体",
        Ok(Channel::RegulatorReferral) => "监管转办",
        Ok(Channel::Letter) => "信函",
        Ok(Channel::Visit) => "上门",
        _ => "其他渠道",
    }
}

fn resolution_word(kind: i32) -> &'static str {
    match ResolutionType::try_from(kind) {
        Ok(ResolutionType::Explanation) => "说明解释",
        Ok(ResolutionType::ApologyCompensation) => "道歉赔偿",
        Ok(ResolutionType::ProcessFix) => "流程优化",
        Ok(ResolutionType::SystemFix) => "系统改进",
        Ok(ResolutionType::MediationOutcome) => "调解结果",
        Ok(ResolutionType::NotUpheld) => "投诉不成立",
        _ => "未记录处理方式",
    }
}

fn notable_word(outcome: NotableOutcome) -> &'static str {
    match outcome {
        NotableOutcome::LowSatisfaction => "客户很不满意",
        NotableOutcome::HighSatisfaction => "客户非常满意",
        NotableOutcome::Reviewed => "客户申请了核查",
        NotableOutcome::Mediated => "经第三方调解",
        NotableOutcome::GroupMember => "属于群体性事件",
        NotableOutcome::Unspecified => "",
    }
}

/// The candidate a closed case makes, or `None` when nothing about it is notable.
pub fn candidate_of(closed: &CaseClosed, now: DateTime<Utc>) -> Option<CaseCandidate> {
    let outcomes = notable(closed);
    let case = closed.case.as_ref()?;
    if outcomes.is_empty() || case.name.is_empty() {
        return None;
    }
    let measures = closed.measures.unwrap_or_default();
    let mut lines = Vec::new();
    let days = match (
        case.receive_time.as_ref().and_then(from_timestamp),
        case.close_time.as_ref().and_then(from_timestamp),
    ) {
        (Some(from), Some(to)) => format!("，{}天结案", (to - from).num_days().max(0)),
        _ => String::new(),
    };
    lines.push(format!("案件概况：{}投诉，来自{}{days}。", grade_word(case.grade), channel_word(case.channel)));
    if let Some(r) = &case.resolution {
        let compensation = r
            .compensation
            .as_ref()
            .filter(|m| m.amount_minor > 0)
            .map(|m| format!("，补偿{}.{:02}元", m.amount_minor / 100, m.amount_minor % 100))
            .unwrap_or_default();
        lines.push(format!("处理方式：{}{compensation}。", resolution_word(r.r#type)));
        if !r.grounds.trim().is_empty() {
            lines.push(format!("处理依据：{}", redact(r.grounds.trim())));
        }
        if !r.decision_notice.trim().is_empty() {
            lines.push(format!("处理决定：{}", redact(r.decision_notice.trim())));
        }
    }
    for review in &case.reviews {
        let outcome = match ReviewOutcome::try_from(review.outcome) {
            Ok(ReviewOutcome::Upheld) => "维持原决定",
            Ok(ReviewOutcome::Revised) => "变更原决定",
            _ => "核查中",
        };
        let notice = if review.decision_notice.trim().is_empty() {
            String::new()
        } else {
            format!("：{}", redact(review.decision_notice.trim()))
        };
        lines.push(format!("核查：{outcome}{notice}"));
    }
    if measures.satisfaction_score > 0 {
        let resolved = if measures.resolved { "认为问题已解决" } else { "认为问题未解决" };
        let comment = case
            .survey
            .as_ref()
            .map(|s| s.comment.trim())
            .filter(|c| !c.is_empty())
            .map(|c| format!("；客户评价：{}", redact(c)))
            .unwrap_or_default();
        lines.push(format!("回访：满意度{}/5，{resolved}{comment}。", measures.satisfaction_score));
    }
    let why: Vec<&str> = outcomes.iter().map(|o| notable_word(*o)).collect();
    lines.push(format!("值得关注：{}。", why.join("、")));
    lines.push("经验教训：（请编辑补充）".to_owned());
    let failure = outcomes.contains(&NotableOutcome::LowSatisfaction)
        || (outcomes.contains(&NotableOutcome::Reviewed) && !outcomes.contains(&NotableOutcome::HighSatisfaction));
    let outcome = if failure {
        CaseOutcome::Failure
    } else if outcomes.contains(&NotableOutcome::HighSatisfaction) {
        CaseOutcome::Success
    } else {
        CaseOutcome::Unspecified
    };
    let kind = case.resolution.as_ref().map_or("未记录处理方式", |r| resolution_word(r.r#type));
    Some(CaseCandidate {
        name: format!("caseCandidates/{}", candidate_id(&case.name)),
        case: case.name.clone(),
        org_unit: case.org_unit.clone(),
        notable_outcomes: outcomes.iter().map(|o| *o as i32).collect(),
        title: format!("案例候选：{}投诉，{}（{}）", grade_word(case.grade), kind, why.join("、")),
        summary: lines.join("\n"),
        outcome: outcome as i32,
        state: CandidateState::Open as i32,
        grade: case.grade,
        create_time: Some(to_timestamp(now)),
        update_time: Some(to_timestamp(now)),
        ..CaseCandidate::default()
    })
}

fn state_word(state: i32) -> &'static str {
    match CandidateState::try_from(state) {
        Ok(CandidateState::Adopted) => "adopted",
        Ok(CandidateState::Dismissed) => "dismissed",
        _ => "closed",
    }
}

/// The draft content an adopted candidate starts from.
pub fn draft_of(candidate: &CaseCandidate) -> ArticleContent {
    ArticleContent {
        title: candidate.title.replacen("案例候选：", "典型案例：", 1),
        body: candidate.summary.clone(),
        tags: vec!["案例库".to_owned()],
        codes: None,
        outcome: candidate.outcome,
    }
}

/// The candidate adopted as `article` by `actor`.
pub fn adopt(
    mut candidate: CaseCandidate,
    article: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<CaseCandidate, CandidateError> {
    if candidate.state != CandidateState::Open as i32 {
        return Err(CandidateError::NotOpen(state_word(candidate.state)));
    }
    candidate.state = CandidateState::Adopted as i32;
    candidate.article = article.to_owned();
    candidate.decided_by = actor.to_owned();
    candidate.update_time = Some(to_timestamp(now));
    Ok(candidate)
}

/// The candidate set aside by `actor`.
pub fn dismiss(
    mut candidate: CaseCandidate,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<CaseCandidate, CandidateError> {
    if candidate.state != CandidateState::Open as i32 {
        return Err(CandidateError::NotOpen(state_word(candidate.state)));
    }
    candidate.state = CandidateState::Dismissed as i32;
    candidate.decided_by = actor.to_owned();
    candidate.dismiss_reason = reason.to_owned();
    candidate.update_time = Some(to_timestamp(now));
    Ok(candidate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use redress_proto::redress::case::v1::{Case, CaseLink, CaseMeasures, Resolution, Survey};

    use super::*;

    pub(crate) fn closed(score: i32, linked: bool) -> CaseClosed {
        CaseClosed {
            case: Some(Case {
                name: "cases/0199aaaa-0000-7000-8000-000000000001".to_owned(),
                org_unit: "institutions/acme/branches/sh".to_owned(),
                grade: Grade::Important as i32,
                channel: Channel::Phone as i32,
                resolution: Some(Resolution {
                    r#type: ResolutionType::ApologyCompensation as i32,
                    grounds: "王先生反映13812345678号码收到催收短信，经核实确系外包机构违规。".to_owned(),
                    decision_notice: "向客户致歉，补偿200元，已于3个工作日内到账。".to_owned(),
                    ..Resolution::default()
                }),
                survey: Some(Survey {
                    score,
                    resolved: true,
                    comment: "处理及时，联系我邮箱li@example.com".to_owned(),
                    ..Survey::default()
                }),
                links: if linked {
                    vec![CaseLink { r#type: LinkType::Parent as i32, ..CaseLink::default() }]
                } else {
                    vec![]
                },
                ..Case::default()
            }),
            reason: "已办结".to_owned(),
            measures: Some(CaseMeasures { satisfaction_score: score, resolved: true, ..CaseMeasures::default() }),
        }
    }

    #[test]
    fn only_notable_cases_become_candidates_without_personal_information() {
        assert!(
            candidate_of(&closed(4, false), redress_platform::time::now()).is_none(),
            "an ordinary case is not notable"
        );
        let candidate = candidate_of(&closed(5, true), redress_platform::time::now()).unwrap();
        assert_eq!(
            candidate.notable_outcomes,
            [NotableOutcome::HighSatisfaction as i32, NotableOutcome::GroupMember as i32]
        );
        assert_eq!(candidate.outcome, CaseOutcome::Success as i32);
        for gone in ["13812345678", "王先生", "li@example.com"] {
            assert!(!candidate.summary.contains(gone), "{gone} in {}", candidate.summary);
        }
        assert!(candidate.summary.contains("补偿"), "{}", candidate.summary);
        let low = candidate_of(&closed(1, false), redress_platform::time::now()).unwrap();
        assert_eq!(low.outcome, CaseOutcome::Failure as i32);
        assert_eq!(low.name, candidate.name, "one candidate per case");
    }

    #[test]
    fn a_candidate_is_adopted_or_dismissed_once() {
        let now = redress_platform::time::now();
        let candidate = candidate_of(&closed(1, false), now).unwrap();
        let adopted = adopt(candidate.clone(), "articles/x", "user:editor", now).unwrap();
        assert_eq!(adopted.state, CandidateState::Adopted as i32);
        assert_eq!(dismiss(adopted, "重复", "user:editor", now), Err(CandidateError::NotOpen("adopted")));
        assert!(draft_of(&candidate).title.starts_with("典型案例："));
    }
}
