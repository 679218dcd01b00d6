//! Reply lint through the knowledge base (D-KB-3): case-workflow asks the knowledge base's
//! LintReply, as its own service principal, about each first response and decision notice, and
//! keeps what it found with the case. The knowledge base is a helper: when it is not configured
//! the reply is recorded as not linted, and when it cannot be reached the reply is recorded as
//! pending and linted again later ([`run_relinter`]) — a reply is never lost or refused for it.

use std::sync::Arc;
use std::time::Duration;

use redress_platform::principal::{Principal, ServiceCredentials};
use redress_proto::redress::case::v1::{Case, ReplyFinding, ReplyKind, ReplyLint, ReplyLintStatus};
use redress_proto::redress::knowledge::v1::knowledge_service_client::KnowledgeServiceClient;
use redress_proto::redress::knowledge::v1::{
    LintFinding, LintReplyRequest, LintReplyResponse, LintRuleKind, LintSeverity, ReplyKind as KbReplyKind,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::domain::workflow::{Command, LintedReply, SYSTEM_ACTOR};
use crate::store::{CaseStore, Update};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplyLintConfig {
    /// How long one LintReply call may take, in milliseconds.
    pub timeout_ms: u64,
    /// How many times a call that failed for want of the knowledge base is made, at most.
    pub attempts: u32,
    /// How often replies recorded while the knowledge base could not be reached are linted
    /// again, in milliseconds.
    pub retry_interval_ms: u64,
}

impl Default for ReplyLintConfig {
    fn default() -> Self {
        Self { timeout_ms: 2_000, attempts: 2, retry_interval_ms: 30_000 }
    }
}

/// Adds the service's signed principal (and the trace context) to every call.
#[derive(Clone)]
pub struct Credentials(ServiceCredentials);

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.0.apply(&mut request)?;
        redress_platform::telemetry::inject_current_context(&mut request);
        Ok(request)
    }
}

pub type KnowledgeClient = KnowledgeServiceClient<InterceptedService<Channel, Credentials>>;

/// Lints replies at the knowledge base, or records that they are not linted.
#[derive(Clone)]
pub struct ReplyLinter {
    client: Option<KnowledgeClient>,
    config: ReplyLintConfig,
}

impl std::fmt::Debug for ReplyLinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyLinter").field("configured", &self.client.is_some()).finish()
    }
}

impl ReplyLinter {
    /// A linter calling the knowledge base at `url` as `credentials` (over `tls`, the service's
    /// own, for an `https://` URL); with `url` empty, one that records every reply as not linted.
    pub fn new(
        url: &str,
        credentials: ServiceCredentials,
        config: ReplyLintConfig,
        tls: Option<&redress_platform::tls::Tls>,
    ) -> anyhow::Result<Self> {
        let client = match url.trim() {
            "" => None,
            url => {
                let channel = redress_platform::server::suite_endpoint(url)?.connect_lazy(tls);
                Some(
                    KnowledgeServiceClient::with_interceptor(channel, Credentials(credentials))
                        .max_decoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE)
                        .max_encoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE),
                )
            }
        };
        Ok(Self { client, config })
    }

    /// One that lints nothing (no knowledge base configured).
    pub fn not_configured() -> Self {
        Self { client: None, config: ReplyLintConfig::default() }
    }

    pub fn is_configured(&self) -> bool {
        self.client.is_some()
    }

    /// Lints `text`, a reply of `kind` on a case of `org_unit`. Never fails: a knowledge base
    /// that cannot answer gives a pending lint with the reason.
    #[tracing::instrument(skip(self, text), fields(kind = kind.as_str_name()))]
    pub async fn lint(&self, text: &str, kind: ReplyKind, org_unit: &str) -> LintedReply {
        let mut lint = ReplyLint { kind: kind as i32, reply: text.to_owned(), ..ReplyLint::default() };
        let Some(client) = &self.client else {
            lint.status = ReplyLintStatus::NotConfigured as i32;
            return LintedReply { lint, knowledge_base_blocked: false };
        };
        let request =
            LintReplyRequest { text: text.to_owned(), kind: kb_kind(kind) as i32, org_unit: org_unit.to_owned() };
        match self.call(client.clone(), request).await {
            Ok(response) => {
                let blocked = response.blocked;
                let (rules_version, findings) = findings_of(response);
                lint.status = ReplyLintStatus::Linted as i32;
                lint.rules_version = rules_version;
                lint.findings = findings;
                metrics::counter!("redress_case_reply_lints_total", "outcome" => "linted").increment(1);
                LintedReply { lint, knowledge_base_blocked: blocked }
            }
            Err(status) => {
                tracing::warn!(
                    code = ?status.code(),
                    error = status.message(),
                    "the knowledge base could not lint a reply; it is recorded as pending and linted later"
                );
                metrics::counter!("redress_case_reply_lints_total", "outcome" => "pending").increment(1);
                lint.status = ReplyLintStatus::Pending as i32;
                lint.pending_reason = format!("{:?}: {}", status.code(), status.message());
                LintedReply { lint, knowledge_base_blocked: false }
            }
        }
    }

    /// LintReply, tried again while the knowledge base is unreachable, each try bounded.
    async fn call(&self, mut client: KnowledgeClient, request: LintReplyRequest) -> Result<LintReplyResponse, Status> {
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        let mut last = Status::unavailable("not tried");
        for attempt in 0..self.config.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
            }
            let mut call = Request::new(request.clone());
            call.set_timeout(timeout);
            let answer = match tokio::time::timeout(timeout, client.lint_reply(call)).await {
                Ok(answer) => answer,
                Err(_) => Err(Status::deadline_exceeded("the knowledge base did not answer in time")),
            };
            match answer {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if retryable(status.code()) => last = status,
                Err(status) => return Err(status),
            }
        }
        Err(last)
    }
}

/// Failures another try may get past.
fn retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::ResourceExhausted)
}

fn kb_kind(kind: ReplyKind) -> KbReplyKind {
    match kind {
        ReplyKind::FirstResponse => KbReplyKind::FirstResponse,
        // A review's decision notice needs what every decision notice needs.
        ReplyKind::DecisionNotice | ReplyKind::ReviewDecisionNotice => KbReplyKind::DecisionNotice,
        ReplyKind::Unspecified => KbReplyKind::Unspecified,
    }
}

/// The knowledge base's answer as the case keeps it: the rules' version and the findings.
pub fn findings_of(response: LintReplyResponse) -> (String, Vec<ReplyFinding>) {
    let findings = response.findings.into_iter().map(finding).collect();
    (response.rules_version, findings)
}

fn finding(f: LintFinding) -> ReplyFinding {
    let range = f.range.unwrap_or_default();
    ReplyFinding {
        rule: f.rule,
        kind: name_without(LintRuleKind::try_from(f.kind).unwrap_or_default().as_str_name(), "LINT_RULE_KIND_"),
        severity: name_without(LintSeverity::try_from(f.severity).unwrap_or_default().as_str_name(), "LINT_SEVERITY_"),
        start: range.start,
        end: range.end,
        text: f.text,
        message: f.message,
        alternatives: f.alternatives,
    }
}

fn name_without(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

/// Which reply a change carries, and its text, for the changes that send one.
pub fn reply_of(command: &Command) -> Option<(ReplyKind, &str)> {
    match command {
        Command::FirstResponse { note, .. } => Some((ReplyKind::FirstResponse, note)),
        Command::Decide { notice } => Some((ReplyKind::DecisionNotice, notice)),
        Command::DecideReview { notice, .. } => Some((ReplyKind::ReviewDecisionNotice, notice)),
        _ => None,
    }
}

/// Cases looked at per pass of the relinter.
const BATCH: i64 = 100;

/// Lints again, every `interval` until `stop`, the replies recorded while the knowledge base
/// could not be reached; each lint is recorded with its case's audit entry and events.
pub async fn run_relinter(store: Arc<dyn CaseStore>, linter: ReplyLinter, interval: Duration, stop: CancellationToken) {
    loop {
        if let Err(e) = relint(store.as_ref(), &linter).await {
            tracing::warn!(error = format!("{e:#}"), "linting pending replies failed; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One pass over the cases with replies waiting to be linted; returns how many replies it
/// linted. Stops at the first reply the knowledge base still cannot lint.
pub async fn relint(store: &dyn CaseStore, linter: &ReplyLinter) -> anyhow::Result<usize> {
    if !linter.is_configured() {
        return Ok(0);
    }
    let mut linted = 0;
    let mut after = String::new();
    loop {
        let ids = store.lint_pending(&after, BATCH).await?;
        let Some(last) = ids.last() else { return Ok(linted) };
        after = last.clone();
        for id in ids {
            let Some(case) = store.get(&id).await? else { continue };
            for pending in pending_lints(&case) {
                let kind = ReplyKind::try_from(pending.kind).unwrap_or(ReplyKind::Unspecified);
                let done = linter.lint(&pending.reply, kind, &case.org_unit).await;
                if done.lint.status != ReplyLintStatus::Linted as i32 {
                    return Ok(linted);
                }
                let lint = ReplyLint { lint_id: pending.lint_id.clone(), ..done.lint };
                match store.update(system_update(&id, Command::RecordLint(Box::new(lint)))).await {
                    Ok(_) => linted += 1,
                    // Linted meanwhile by another replica.
                    Err(crate::CaseError::Workflow(crate::domain::workflow::WorkflowError::Unchanged)) => {}
                    Err(e) => return Err(anyhow::anyhow!("{e}")),
                }
            }
        }
    }
}

fn pending_lints(case: &Case) -> Vec<ReplyLint> {
    case.reply_lints.iter().filter(|l| l.status == ReplyLintStatus::Pending as i32).cloned().collect()
}

/// A change case-workflow makes itself, on any case.
fn system_update(id: &str, command: Command) -> Update {
    let subject = SYSTEM_ACTOR.strip_prefix("service:").unwrap_or(SYSTEM_ACTOR);
    Update {
        id: id.to_owned(),
        other: None,
        expected_version: None,
        request: None,
        principal: Arc::new(Principal {
            org_unit: redress_platform::principal::ROOT_ORG_UNIT.to_owned(),
            ..Principal::service(subject, &[])
        }),
        command,
    }
}

#[cfg(test)]
mod tests {
    use redress_proto::redress::knowledge::v1::TextRange;

    use super::*;

    fn kb_finding(rule: &str, kind: LintRuleKind, severity: LintSeverity, at: (i32, i32), text: &str) -> LintFinding {
        LintFinding {
            rule: rule.to_owned(),
            kind: kind as i32,
            severity: severity as i32,
            range: Some(TextRange { start: at.0, end: at.1 }),
            text: text.to_owned(),
            message: "why".to_owned(),
            alternatives: vec!["我理解您的着急".to_owned()],
        }
    }

    #[test]
    fn the_knowledge_bases_findings_are_kept_with_their_rule_version_span_and_suggestion() {
        let response = LintReplyResponse {
            findings: vec![
                kb_finding(
                    "banned.company-policy",
                    LintRuleKind::BannedPhrase,
                    LintSeverity::Error,
                    (0, 6),
                    "这是公司规定",
                ),
                kb_finding("missing.review-right", LintRuleKind::MissingElement, LintSeverity::Error, (9, 9), ""),
                kb_finding("jargon.banking", LintRuleKind::Jargon, LintSeverity::Info, (7, 9), "冲正"),
            ],
            rules_version: "2026.1".to_owned(),
            blocked: false,
        };
        let (version, findings) = findings_of(response);
        assert_eq!(version, "2026.1");
        let first = &findings[0];
        assert_eq!(
            (first.rule.as_str(), first.kind.as_str(), first.severity.as_str(), first.start, first.end),
            ("banned.company-policy", "BANNED_PHRASE", "ERROR", 0, 6)
        );
        assert_eq!(
            (first.text.as_str(), first.alternatives.as_slice()),
            ("这是公司规定", ["我理解您的着急".to_owned()].as_slice())
        );
        assert!(crate::domain::workflow::replies::is_blocking(first));
        assert_eq!((findings[1].kind.as_str(), findings[1].start, findings[1].end), ("MISSING_ELEMENT", 9, 9));
        assert!(!crate::domain::workflow::replies::is_blocking(&findings[1]));
        assert_eq!((findings[2].kind.as_str(), findings[2].severity.as_str()), ("JARGON", "INFO"));
    }

    #[test]
    fn review_decision_notices_are_linted_as_decision_notices() {
        assert_eq!(kb_kind(ReplyKind::ReviewDecisionNotice), KbReplyKind::DecisionNotice);
        assert_eq!(kb_kind(ReplyKind::DecisionNotice), KbReplyKind::DecisionNotice);
        assert_eq!(kb_kind(ReplyKind::FirstResponse), KbReplyKind::FirstResponse);
    }

    #[tokio::test]
    async fn without_a_knowledge_base_a_reply_is_recorded_as_not_linted() {
        let linted =
            ReplyLinter::not_configured().lint("这是公司规定", ReplyKind::FirstResponse, "institutions/a").await;
        assert_eq!(linted.lint.status, ReplyLintStatus::NotConfigured as i32);
        assert_eq!(linted.lint.reply, "这是公司规定");
        assert!(linted.lint.findings.is_empty() && !linted.knowledge_base_blocked);
    }

    #[tokio::test]
    async fn an_unreachable_knowledge_base_leaves_the_reply_pending_with_the_reason() {
        // Nothing listens on the discard port of loopback.
        let me = redress_platform::testing::credentials(Principal::service("case-workflow", &[]), "knowledge-base");
        let config = ReplyLintConfig { timeout_ms: 500, attempts: 2, retry_interval_ms: 1_000 };
        let linter = ReplyLinter::new("http://127.0.0.1:9", me, config, None).expect("a valid url");
        let linted = linter.lint("您好", ReplyKind::DecisionNotice, "institutions/a").await;
        assert_eq!(linted.lint.status, ReplyLintStatus::Pending as i32);
        assert!(!linted.lint.pending_reason.is_empty());
        assert_eq!(linted.lint.kind, ReplyKind::DecisionNotice as i32);
    }
}
