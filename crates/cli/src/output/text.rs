//! `--output text`, for people: one case or complaint as labelled lines, a list as a table
//! under a header row. Columns are aligned by display width, so names and institutions in
//! Chinese (two columns a character) line up with the rest. A case or complaint shows its times
//! in the zone its days were counted in ([`Zone`]).

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, SecondsFormat};
use prost_types::Timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseReview, CaseState, ClockKind, ClockStatus, ClockUnit, ConflictCheck, ContactDirection,
    CoordinationTaskKind, LinkType, ListAuditEntriesResponse, ListCasesResponse, Money, PauseReason, ProblemScope,
    ReplyKind, ReplyLint, ReplyLintStatus, ResolutionType, ReviewOutcome, RoutingAction, SlaClock,
};
use redress_proto::redress::common::v1::{Channel, Grade};
use redress_proto::redress::intake::v1::{
    AgentRelation, Classification, ClassificationSource, Complaint, ComplaintSource, ComplaintState,
    ConfirmationMethod, EvidenceKind, IdDocumentType, ListComplaintsResponse, ListTaxonomiesResponse, NaturalPerson,
    RiskSignalKind, SubjectProcessingRestriction, complainant::Party,
};

use super::Reply;
use super::zone::Zone;
use crate::words::word;

/// What the knowledge base's reply lint found in each reply to the complainant: the rule, its
/// span in characters and the text there, or why a reply is not linted.
fn reply_lint_table(lints: &[ReplyLint], zone: &Zone) -> Table {
    let name = |n: &str, prefix: &str| n.strip_prefix(prefix).unwrap_or(n).to_ascii_lowercase().replace('_', "-");
    let mut table = Table::new(["REPLY", "KIND", "WHEN", "LINT", "FINDINGS"]);
    for l in lints {
        let kind = name(ReplyKind::try_from(l.kind).unwrap_or_default().as_str_name(), "REPLY_KIND_");
        let status = ReplyLintStatus::try_from(l.status).unwrap_or_default();
        let lint = match status {
            ReplyLintStatus::Linted => format!("rules {}", l.rules_version),
            ReplyLintStatus::Pending => format!("pending: {}", l.pending_reason),
            other => name(other.as_str_name(), "REPLY_LINT_STATUS_"),
        };
        let findings: Vec<String> = l
            .findings
            .iter()
            .map(|f| {
                let at = if f.text.is_empty() { String::new() } else { format!(" 「{}」", f.text) };
                format!("{} {} [{},{}){at}", f.rule, f.severity.to_ascii_lowercase(), f.start, f.end)
            })
            .collect();
        let findings = match (status, findings.is_empty()) {
            (ReplyLintStatus::Linted, true) => "none".to_owned(),
            (_, true) => "-".to_owned(),
            _ => findings.join("; "),
        };
        table.row([l.lint_id.clone(), kind, zone.instant(l.record_time.as_ref()), lint, findings]);
    }
    table
}

/// The reply as printed, ending in a newline.
pub(super) fn render(reply: &Reply) -> String {
    match reply {
        Reply::Case(c) => case_text(c),
        Reply::Cases(list) => cases_text(list),
        Reply::Audit(list) => audit_text(list),
        Reply::Verification { case, result } if result.intact => {
            format!("{case}: audit chain intact ({} entries)\n", result.entries)
        }
        Reply::Verification { case, result } => format!(
            "{case}: audit chain BROKEN at entry {} of {}: {}\n",
            result.first_broken_sequence, result.entries, result.reason
        ),
        Reply::Complaint(c) => complaint_text(c),
        Reply::Submitted { response, request_id } => {
            let text = response.complaint.as_ref().map(complaint_text).unwrap_or_default();
            text + &retry_text(request_id)
        }
        Reply::Confirmed { complaint, request_id } | Reply::Supplemented { complaint, request_id } => {
            complaint_text(complaint) + &retry_text(request_id)
        }
        Reply::Restriction { restriction, request_id } => restriction_text(restriction) + &retry_text(request_id),
        Reply::Complaints(list) => complaints_text(list),
        Reply::Taxonomies(list) => taxonomies_text(list),
    }
}

/// The request id a change was made with, to repeat it safely.
fn retry_text(request_id: &str) -> String {
    format!("{:<12}{request_id}  (repeat it to retry safely)\n", "request id")
}

/// Whether a person's processing is restricted (PIPL Art.44).
fn restriction_text(r: &SubjectProcessingRestriction) -> String {
    let mut s = Summary::default();
    s.row("subject", &r.subject);
    let state = if r.restricted {
        format!("restricted since {}", Zone::named("").instant(r.restrict_time.as_ref()))
    } else {
        "not restricted".to_owned()
    };
    s.row("processing", state);
    s.row("complaints", r.complaints);
    s.0
}

fn case_text(c: &Case) -> String {
    // A case names no zone of its own; its days were counted where its receipt's were.
    let zone = Zone::named(c.deadlines.as_ref().map_or("", |d| d.time_zone.as_str()));
    let mut s = Summary::default();
    s.row("case", format!("{}  no. {}", c.name, c.case_number));
    let mut state = word::<CaseState>(c.state);
    if c.previous_state != CaseState::Unspecified as i32 {
        state.push_str(&format!(" (was {})", word::<CaseState>(c.previous_state)));
    }
    s.row("state", state);
    s.row("complaint", &c.complaint);
    let assignee = with_staff_id(&c.assignee, &c.assignee_staff_id);
    let handler = match (c.assignee.is_empty(), c.department.is_empty()) {
        (true, true) => "unassigned".to_owned(),
        (true, false) => format!("unassigned, with {}", c.department),
        (false, true) => assignee,
        (false, false) => format!("{assignee} in {}", c.department),
    };
    s.row("handler", handler);
    if let Some(check) = c.conflict_check.as_ref().filter(|k| k.required) {
        conflict_text(&mut s, check, &zone);
    }
    s.row("org unit", or_dash(&c.org_unit));
    s.row("grade", word::<Grade>(c.grade));
    if c.escalation_required_time.is_some() {
        s.row("escalation", format!("required {}", zone.instant(c.escalation_required_time.as_ref())));
    }
    if c.problem_scope != ProblemScope::Unspecified as i32 {
        s.row("scope", format!("{}: {}", word::<ProblemScope>(c.problem_scope), c.problem_scope_reason));
    }
    s.row("opened", zone.instant(c.open_time.as_ref()));
    if !c.clocks.is_empty() {
        let mut clocks = Table::new(["KIND", "LENGTH", "STATUS", "DUE", "NOTE"]);
        for clock in &c.clocks {
            clocks.row(clock_row(clock, &zone));
        }
        s.table("clocks", clocks);
    }
    if let Some(pause) = c.pauses.last().filter(|p| p.resume_time.is_none()) {
        let note = if pause.note.is_empty() { String::new() } else { format!(": {}", pause.note) };
        s.row(
            "paused",
            format!("since {} ({}{note})", zone.instant(pause.pause_time.as_ref()), word::<PauseReason>(pause.reason)),
        );
    }
    // The handoff period is configured per deployment; its clock says in what unit.
    let handoff_days = c.clocks.iter().rev().find(|k| k.kind == ClockKind::Handoff as i32).is_some_and(counts_days);
    if !c.transfers.is_empty() {
        let mut transfers = Table::new(["FROM", "TO", "OWNER", "WHEN", "HANDOFF", "REASON"]);
        for t in &c.transfers {
            let handoff = match &t.accept_time {
                Some(accepted) => format!("accepted {}", zone.instant(Some(accepted))),
                None => format!("due {}", zone.due(t.handoff_due_time.as_ref(), handoff_days)),
            };
            // Without a named handler the receiving department assigns the case.
            transfers.row([
                or_dash(&t.from_department).to_owned(),
                t.to_department.clone(),
                or_dash(&with_staff_id(&t.to_assignee, &t.to_assignee_staff_id)).to_owned(),
                zone.instant(t.transfer_time.as_ref()),
                handoff,
                t.reason.clone(),
            ]);
        }
        s.table("transfers", transfers);
    }
    if !c.routings.is_empty() {
        let mut routings = Table::new(["RULE", "ACTION", "WHEN", "RECIPIENTS/TASK"]);
        for r in &c.routings {
            let task = if r.task_id.is_empty() { String::new() } else { format!("task {}", r.task_id) };
            let recipients = r.recipients.join(", ");
            routings.row([
                r.rule_id.clone(),
                word::<RoutingAction>(r.action),
                zone.instant(r.route_time.as_ref()),
                joined([recipients.as_str(), &task]),
            ]);
        }
        s.table("routings", routings);
    }
    if !c.contacts.is_empty() {
        let mut contacts = Table::new(["WHEN", "CHANNEL", "DIRECTION", "BY", "SUMMARY"]);
        for contact in &c.contacts {
            contacts.row([
                zone.instant(contact.contact_time.as_ref()),
                word::<Channel>(contact.channel),
                word::<ContactDirection>(contact.direction),
                or_dash(&with_staff_id(&contact.recorded_by, &contact.recorded_by_staff_id)).to_owned(),
                contact.summary.clone(),
            ]);
        }
        s.table("contacts", contacts);
    }
    if !c.reply_lints.is_empty() {
        s.table("reply lint", reply_lint_table(&c.reply_lints, &zone));
    }
    if c.next_contact_due_time.is_some() {
        // Counted in working days (D-SLA-5), unless the last contact agreed a sooner time.
        let mut due = zone.due(c.next_contact_due_time.as_ref(), true);
        if c.next_contact_due_provisional {
            due.push_str(" (provisional)");
        }
        s.row("contact due", due);
    }
    if let Some(r) = &c.resolution {
        let compensation = r.compensation.as_ref().map(|m| format!(", {}", money_text(m))).unwrap_or_default();
        s.row(
            "resolution",
            format!("{}{compensation}, proposed by {}", word::<ResolutionType>(r.r#type), or_dash(&r.proposed_by)),
        );
        if !r.approved_by.is_empty() {
            s.row("", format!("approved by {}", r.approved_by));
        } else if r.approval_required {
            s.row("", "awaiting approval");
        }
        s.row("", format!("grounds: {}", r.grounds));
        if !r.decided_by.is_empty() {
            s.row("decided", format!("{} by {}", zone.instant(c.decide_time.as_ref()), r.decided_by));
            s.row("", format!("notice: {}", r.decision_notice));
        }
    }
    for review in &c.reviews {
        review_text(&mut s, review, &zone);
    }
    if !c.implementation_steps.is_empty() {
        let mut steps = Table::new(["STEP", "OWNER", "DEPARTMENT", "DUE", "STATUS", "WHAT"]);
        for step in &c.implementation_steps {
            let status = match &step.complete_time {
                Some(done) => format!("done {}: {}", zone.instant(Some(done)), step.outcome),
                None if step.overdue => "overdue".to_owned(),
                None => "open".to_owned(),
            };
            steps.row([
                step.step_id.clone(),
                with_staff_id(&step.owner, &step.owner_staff_id),
                step.department.clone(),
                zone.instant(step.due_time.as_ref()),
                status,
                step.description.clone(),
            ]);
        }
        s.table("steps", steps);
    }
    if let Some(survey) = &c.survey {
        let resolved = if survey.resolved { "resolved" } else { "not resolved" };
        let comment = if survey.comment.is_empty() { String::new() } else { format!(", {:?}", survey.comment) };
        s.row("survey", format!("{}/5, {resolved}{comment}", survey.score));
    }
    if !c.links.is_empty() {
        let mut links = Table::new(["LINK", "CASE", "REASON"]);
        for link in &c.links {
            links.row([word::<LinkType>(link.r#type), link.case.clone(), link.reason.clone()]);
        }
        s.table("links", links);
    }
    if c.unlisted_link_count > 0 {
        s.row("more links", format!("{} (in the audit trail and on the linking cases)", c.unlisted_link_count));
    }
    if !c.evidence.is_empty() {
        let mut evidence = Table::new(["KIND", "URI", "SHA256"]);
        for e in &c.evidence {
            evidence.row([e.kind.clone(), e.uri.clone(), e.sha256.clone()]);
        }
        s.table("evidence", evidence);
    }
    if !c.coordination_tasks.is_empty() {
        let mut tasks = Table::new(["TASK", "KIND", "DEPARTMENT", "OWNER", "DUE", "STATUS", "WHAT"]);
        for t in &c.coordination_tasks {
            let status = match &t.complete_time {
                Some(done) => format!("done {}: {}", zone.instant(Some(done)), t.outcome),
                None if t.overdue => "overdue".to_owned(),
                None => "open".to_owned(),
            };
            // A task recorded before tasks had kinds is a coordination task.
            let kind = if t.kind == CoordinationTaskKind::Unspecified as i32 {
                CoordinationTaskKind::Coordination as i32
            } else {
                t.kind
            };
            tasks.row([
                t.task_id.clone(),
                word::<CoordinationTaskKind>(kind),
                t.department.clone(),
                with_staff_id(&t.owner, &t.owner_staff_id),
                zone.instant(t.due_time.as_ref()),
                status,
                t.description.clone(),
            ]);
        }
        s.table("tasks", tasks);
    }
    if c.close_time.is_some() {
        s.row("closed", zone.instant(c.close_time.as_ref()));
    }
    s.row("etag", &c.etag);
    s.0
}

/// The conflict-of-interest (回避) check under [`case_text`]: pending, or who confirmed it.
fn conflict_text(s: &mut Summary, check: &ConflictCheck, zone: &Zone) {
    let whom = with_staff_id(&check.assignee, &check.assignee_staff_id);
    let whom = if whom.is_empty() { String::new() } else { format!(" for {whom}") };
    if check.confirmed_by.is_empty() {
        s.row("conflict", format!("check pending{whom}: {}", check.reason));
    } else {
        s.row(
            "conflict",
            format!(
                "none{whom}, confirmed {} by {}: {}",
                zone.instant(check.confirm_time.as_ref()),
                check.confirmed_by,
                check.note
            ),
        );
    }
}

/// A review under [`case_text`]: asked when, by whom and why; who reviews it; how it ended.
fn review_text(s: &mut Summary, r: &CaseReview, zone: &Zone) {
    s.row(
        "review",
        format!("asked {} via {}: {}", zone.instant(r.request_time.as_ref()), or_dash(&r.requested_by), r.reason),
    );
    s.row("", format!("of the decision made at {}", or_dash(&r.deciding_unit)));
    if !r.reviewer.is_empty() {
        s.row("", format!("reviewer {} in {} ({})", r.reviewer, or_dash(&r.reviewer_department), r.reviewing_unit));
    }
    if r.decide_time.is_some() {
        s.row(
            "",
            format!(
                "{} {} by {}: {}",
                word::<ReviewOutcome>(r.outcome),
                zone.instant(r.decide_time.as_ref()),
                r.decided_by,
                r.decision_notice
            ),
        );
    }
}

/// A clock under [`case_text`]'s header: kind, length, status, due, and what else is worth
/// knowing about it (met, at risk or breached, why its due time is provisional).
fn clock_row(c: &SlaClock, zone: &Zone) -> [String; 5] {
    let unit = match ClockUnit::try_from(c.unit) {
        Ok(ClockUnit::Hours) => "hours".to_owned(),
        Ok(ClockUnit::WorkingDays) => "working days".to_owned(),
        Ok(ClockUnit::CalendarDays) => "calendar days".to_owned(),
        _ => word::<ClockUnit>(c.unit),
    };
    let mut notes = Vec::new();
    if c.met_time.is_some() {
        notes.push(format!("met {}", zone.instant(c.met_time.as_ref())));
    }
    if c.breached {
        notes.push("BREACHED".to_owned());
    } else if c.at_risk {
        notes.push("at risk".to_owned());
    }
    // A due time counted on a year without its official calendar may still move (D-SLA-6).
    let mut due = zone.due(c.due_time.as_ref(), counts_days(c));
    if c.provisional {
        due.push_str(" (provisional)");
        notes.push(format!("provisional: {}", c.provisional_reason));
    }
    [word::<ClockKind>(c.kind), format!("{} {unit}", c.length), word::<ClockStatus>(c.status), due, notes.join("  ")]
}

/// Whether the clock counts days, which end at 24:00 (D-SLA-5), rather than hours.
fn counts_days(c: &SlaClock) -> bool {
    matches!(ClockUnit::try_from(c.unit), Ok(ClockUnit::WorkingDays | ClockUnit::CalendarDays))
}

fn cases_text(list: &ListCasesResponse) -> String {
    if list.cases.is_empty() {
        return "no cases\n".to_owned();
    }
    let mut table = Table::new(["CASE", "NUMBER", "STATE", "GRADE", "HANDLER", "ETAG"]);
    for c in &list.cases {
        table.row([
            c.name.clone(),
            c.case_number.clone(),
            word::<CaseState>(c.state),
            word::<Grade>(c.grade),
            if c.assignee.is_empty() { "unassigned".to_owned() } else { c.assignee.clone() },
            c.etag.clone(),
        ]);
    }
    table.text() + &more(&list.next_page_token)
}

fn audit_text(list: &ListAuditEntriesResponse) -> String {
    if list.audit_entries.is_empty() {
        return "no audit entries\n".to_owned();
    }
    let mut table = Table::new(["#", "RECORDED", "ACTOR", "ACTION", "KEY", "DETAILS"]);
    for e in &list.audit_entries {
        // Sorted, as the map arrives in no particular order.
        let details: BTreeMap<_, _> = e.details.iter().collect();
        let details: Vec<String> = details.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.row([
            e.sequence.to_string(),
            time_text(e.record_time.as_ref()),
            e.actor.clone(),
            e.action.clone(),
            // An entry written before trails were keyed names no key (and does not verify).
            if e.key_id.is_empty() { "-".to_owned() } else { e.key_id.clone() },
            details.join(" "),
        ]);
    }
    table.text() + &more(&list.next_page_token)
}

fn complaint_text(c: &Complaint) -> String {
    let deadlines = c.receipt.as_ref().and_then(|r| r.deadlines.as_ref());
    let zone = Zone::named(deadlines.map_or("", |d| d.time_zone.as_str()));
    let mut s = Summary::default();
    s.row("complaint", format!("{}  no. {}", c.name, c.complaint_number));
    s.row("state", word::<ComplaintState>(c.state));
    if c.withdraw_time.is_some() || !c.withdraw_reason.is_empty() {
        s.row("withdrawn", format!("{}: {}", zone.instant(c.withdraw_time.as_ref()), c.withdraw_reason));
    }
    s.row("channel", word::<Channel>(c.channel));
    // Unspecified is recorded as a consumer's.
    let source = if c.source == ComplaintSource::Unspecified as i32 {
        ComplaintSource::ExternalConsumer as i32
    } else {
        c.source
    };
    s.row("source", word::<ComplaintSource>(source));
    s.row("received", zone.instant(c.receive_time.as_ref()));
    match c.complainant.as_ref().and_then(|c| c.party.as_ref()) {
        Some(Party::Person(p)) => s.row("complainant", person_text(p)),
        Some(Party::Organisation(o)) => {
            let contact = joined([o.contact_name.as_str(), &o.contact_phone]);
            let contact = if contact.is_empty() { contact } else { format!("contact {contact}") };
            s.row("complainant", joined([o.name.as_str(), &o.unified_social_credit_code, &contact]));
        }
        None => s.row("complainant", "-"),
    }
    if let Some(agent) = &c.agent {
        let person = agent.person.as_ref().map(person_text).unwrap_or_default();
        s.row(
            "agent",
            format!("{} {person} ({})", word::<AgentRelation>(agent.relation), agent.authorization_reference),
        );
    }
    for r in &c.representatives {
        s.row("represents", r.person.as_ref().map(person_text).unwrap_or_default());
    }
    if let Some(p) = &c.complained_party {
        let staff = match (p.staff_name.is_empty(), p.staff_id.is_empty()) {
            (true, true) => String::new(),
            (false, true) => p.staff_name.clone(),
            (true, false) => format!("staff {}", p.staff_id),
            (false, false) => format!("{} ({})", p.staff_name, p.staff_id),
        };
        s.row("against", joined([p.institution.as_str(), &p.branch, &staff]));
    }
    if !c.product.is_empty() {
        s.row("product", &c.product);
    }
    s.row("org unit", or_dash(&c.org_unit));
    if let Some(f) = &c.first_contact {
        let staff = if f.staff_id.is_empty() { String::new() } else { format!("staff {}", f.staff_id) };
        s.row("taken by", joined([staff.as_str(), &f.subject, &f.org_unit, &f.department]));
    }
    s.row("demand", &c.demand);
    s.row("facts", &c.facts);
    s.row("grade", word::<Grade>(c.grade));
    if let Some(classification) = &c.classification {
        classification_text(&mut s, "classified", classification);
    }
    if let Some(automatic) = &c.automatic_classification
        && c.classification.as_ref().is_some_and(|c| c.source == ClassificationSource::Handler as i32)
    {
        classification_text(&mut s, "automatic", automatic);
    }
    for signal in &c.risk_signals {
        s.row("risk", format!("{}: {}", word::<RiskSignalKind>(signal.kind), signal.evidence.join(", ")));
    }
    if !c.recurrence_of.is_empty() {
        s.row("repeats", &c.recurrence_of);
    }
    for e in &c.evidence {
        let hash = if e.sha256.is_empty() { String::new() } else { format!(" sha256 {}", e.sha256) };
        s.row("evidence", format!("{} {}{hash}", word::<EvidenceKind>(e.kind), e.uri));
    }
    if !c.staff_notes.is_empty() {
        s.row("staff notes", &c.staff_notes);
    }
    if !c.content_confirmations.is_empty() {
        // Corrections as returned: masked unless the caller revealed personal information.
        let mut answers = Table::new(["ANSWER", "METHOD", "WHEN", "BY", "CORRECTIONS", "NOTE"]);
        for a in &c.content_confirmations {
            answers.row([
                if a.confirmed { "confirmed" } else { "corrected" }.to_owned(),
                word::<ConfirmationMethod>(a.method),
                zone.instant(a.confirm_time.as_ref()),
                or_dash(&a.recorded_by).to_owned(),
                or_dash(&a.corrections).to_owned(),
                a.note.clone(),
            ]);
        }
        s.table("read back", answers);
    }
    if !c.personal_data_supplements.is_empty() {
        // As returned: masked unless the caller revealed personal information.
        let mut supplements = Table::new(["FIELD", "WHEN", "BY", "SUPPLEMENT"]);
        for p in &c.personal_data_supplements {
            supplements.row([
                p.field.clone(),
                zone.instant(p.record_time.as_ref()),
                or_dash(&p.recorded_by).to_owned(),
                p.text.clone(),
            ]);
        }
        s.table("supplements", supplements);
    }
    if c.personal_data_restricted {
        s.row("processing", "restricted by the complainant (PIPL Art.44): used only to handle this complaint");
    }
    if let Some(receipt) = &c.receipt {
        s.row("accepted", zone.instant(receipt.accept_time.as_ref()));
        if let Some(d) = &receipt.deadlines {
            // The first response is an hour clock; resolution counts working days and the
            // decision calendar days (D-SLA-1, D-SLA-2).
            let due = [
                ("first response", &d.first_response_due_time, false, d.first_response_provisional),
                ("resolution", &d.resolution_due_time, true, d.resolution_provisional),
                ("decision", &d.regulatory_decision_due_time, true, d.regulatory_decision_provisional),
            ];
            for (i, (what, time, days, provisional)) in due.into_iter().filter(|(_, t, _, _)| t.is_some()).enumerate() {
                let mark = if provisional { " (provisional)" } else { "" };
                s.row(if i == 0 { "due" } else { "" }, format!("{what:<15} {}{mark}", zone.due(time.as_ref(), days)));
            }
            let mut reasons = vec![
                &d.first_response_provisional_reason,
                &d.resolution_provisional_reason,
                &d.regulatory_decision_provisional_reason,
            ];
            reasons.retain(|r| !r.is_empty());
            reasons.dedup();
            for reason in reasons {
                s.row("provisional", reason);
            }
        }
    }
    s.0
}

fn person_text(p: &NaturalPerson) -> String {
    let document = if p.id_number.is_empty() {
        String::new()
    } else {
        format!("{} {}", word::<IdDocumentType>(p.id_document_type), p.id_number)
    };
    let phone = if p.phone.is_empty() { String::new() } else { format!("phone {}", p.phone) };
    joined([p.full_name.as_str(), &document, &phone, &p.email, &p.address])
}

fn classification_text(s: &mut Summary, label: &str, c: &Classification) {
    let rights = if c.rights.is_empty() { "-".to_owned() } else { c.rights.join(",") };
    s.row(
        label,
        format!(
            "business type {}  cause {}  rights {rights}  grade {}",
            or_dash(&c.business_type),
            or_dash(&c.cause),
            word::<Grade>(c.grade)
        ),
    );
    let source = format!("{} ({})", word::<ClassificationSource>(c.source), or_dash(&c.taxonomy));
    if c.source == ClassificationSource::Handler as i32 {
        // The rules and reasons are the automatic result's, printed with it.
        s.row("", format!("{source}, by {}: {}", or_dash(&c.classified_by), c.override_reason));
        return;
    }
    if c.model_version.is_empty() {
        s.row("", source);
    } else {
        let confidence = format!("confidence {:.2}/{:.2}", c.business_type_confidence, c.cause_confidence);
        s.row("", format!("{source}, {} {confidence}", c.model_version));
    }
    if !c.matched_rules.is_empty() {
        s.row("", format!("rules: {}", c.matched_rules.join("; ")));
    }
    for reason in &c.grade_reasons {
        s.row("", format!("grade: {reason}"));
    }
}

fn complaints_text(list: &ListComplaintsResponse) -> String {
    if list.complaints.is_empty() {
        return "no complaints\n".to_owned();
    }
    let mut table =
        Table::new(["COMPLAINT", "NUMBER", "STATE", "CHANNEL", "GRADE", "RECEIVED", "TYPE/CAUSE", "INSTITUTION"]);
    for c in &list.complaints {
        let class = c
            .classification
            .as_ref()
            .map_or_else(|| "-".to_owned(), |k| format!("{}/{}", or_dash(&k.business_type), or_dash(&k.cause)));
        let institution = c.complained_party.as_ref().map_or("-", |p| or_dash(&p.institution));
        table.row([
            c.name.clone(),
            c.complaint_number.clone(),
            word::<ComplaintState>(c.state),
            word::<Channel>(c.channel),
            word::<Grade>(c.grade),
            time_text(c.receive_time.as_ref()),
            class,
            institution.to_owned(),
        ]);
    }
    table.text() + &more(&list.next_page_token)
}

/// Each taxonomy on a line of its own, then its codes, one dimension after the other.
fn taxonomies_text(list: &ListTaxonomiesResponse) -> String {
    if list.taxonomies.is_empty() {
        return "no taxonomies\n".to_owned();
    }
    let mut out = String::new();
    for t in &list.taxonomies {
        let active = if t.active { ", active" } else { "" };
        out.push_str(&format!("{}@{}{active}", t.name, t.version));
        if !t.description.is_empty() {
            out.push_str(&format!(": {}", t.description));
        }
        out.push('\n');
        let mut codes = Table::new(["DIMENSION", "CODE", "NAME"]);
        for (dimension, list) in [("business type", &t.business_types), ("cause", &t.causes), ("right", &t.rights)] {
            for (i, c) in list.iter().enumerate() {
                let dimension = if i == 0 { dimension } else { "" };
                codes.row([dimension.to_owned(), c.code.clone(), c.name.clone()]);
            }
        }
        for line in codes.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Label-and-value lines with the values aligned.
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn row(&mut self, label: &str, value: impl Display) {
        self.0.push_str(&format!("{label:<12}{value}\n"));
    }

    /// A table in the value column, labelled on its header row.
    fn table(&mut self, label: &str, table: Table) {
        for (i, line) in table.lines().into_iter().enumerate() {
            self.row(if i == 0 { label } else { "" }, line);
        }
    }
}

/// A list for people: a header row, then a row per item, each column as wide as its widest
/// cell in display width and two spaces from the next. No borders, so that every line is
/// still one item for `grep` and `cut`.
struct Table(comfy_table::Table);

impl Table {
    fn new<const N: usize>(header: [&str; N]) -> Self {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::NOTHING).set_header(header);
        Self(table)
    }

    fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.0.add_row(cells);
    }

    /// The lines, without trailing blanks.
    fn lines(mut self) -> Vec<String> {
        for column in self.0.column_iter_mut() {
            column.set_padding((0, 2));
        }
        self.0.lines().map(|line| line.trim_end().to_owned()).collect()
    }

    /// The lines, each ending in a newline.
    fn text(self) -> String {
        self.lines().into_iter().map(|line| line + "\n").collect()
    }
}

/// How to ask for the next page, when there is one.
fn more(next_page_token: &str) -> String {
    if next_page_token.is_empty() { String::new() } else { format!("more: --page-token {next_page_token}\n") }
}

/// A member of staff with their employee id (工号) when known: `user:li-na (E2001)`.
fn with_staff_id(subject: &str, staff_id: &str) -> String {
    match (subject.is_empty(), staff_id.is_empty()) {
        (_, true) => subject.to_owned(),
        (true, false) => format!("staff {staff_id}"),
        (false, false) => format!("{subject} ({staff_id})"),
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Non-empty parts joined with ", ".
fn joined<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ")
}

/// A time in RFC 3339 UTC to the second, or `-` when there is none. Lists use it: their replies
/// name no zone, and a list of complaints may span institutions counting in different ones.
fn time_text(t: Option<&Timestamp>) -> String {
    let Some(t) = t else { return "-".to_owned() };
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .map_or_else(|| format!("{}s", t.seconds), |time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn money_text(m: &Money) -> String {
    let sign = if m.amount_minor < 0 { "-" } else { "" };
    let minor = m.amount_minor.unsigned_abs();
    format!("{} {sign}{}.{:02}", m.currency_code, minor / 100, minor % 100)
}

#[cfg(test)]
mod tests {
    use redress_proto::redress::case::v1::Transfer;
    use redress_proto::redress::common::v1::Deadlines;
    use redress_proto::redress::intake::v1::{ComplainedParty, Receipt, Taxonomy, TaxonomyCode};

    use super::*;

    #[test]
    fn times_are_rfc3339_utc_to_the_second() {
        let t = Timestamp { seconds: 1_781_000_000, nanos: 500_000_000 };
        assert_eq!(time_text(Some(&t)), "2026-06-09T10:13:20Z");
        assert_eq!(time_text(None), "-");
    }

    #[test]
    fn money_prints_in_yuan() {
        assert_eq!(money_text(&Money { currency_code: "CNY".to_owned(), amount_minor: 12050 }), "CNY 120.50");
        assert_eq!(money_text(&Money { currency_code: "CNY".to_owned(), amount_minor: 7 }), "CNY 0.07");
    }

    #[test]
    fn a_list_has_a_header_row_and_then_a_line_per_item() {
        let complaint = |name: &str, institution: &str, channel: Channel| Complaint {
            name: name.to_owned(),
            complaint_number: "2026060900001".to_owned(),
            channel: channel as i32,
            complained_party: Some(ComplainedParty { institution: institution.to_owned(), ..Default::default() }),
            ..Complaint::default()
        };
        let list = ListComplaintsResponse {
            complaints: vec![
                complaint("complaints/1", "示例银行", Channel::Phone),
                complaint("complaints/2", "EXAMPLE BANK", Channel::RegulatorReferral),
            ],
            next_page_token: "p2".to_owned(),
        };
        let text = complaints_text(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let columns: Vec<&str> = lines[0].split_whitespace().collect();
        let header = ["COMPLAINT", "NUMBER", "STATE", "CHANNEL", "GRADE", "RECEIVED", "TYPE/CAUSE", "INSTITUTION"];
        assert_eq!(columns, header, "{text}");
        assert!(lines[1].starts_with("complaints/1  ") && lines[1].ends_with("  示例银行"), "{text}");
        let channel = lines[0].find("CHANNEL");
        assert_eq!((lines[1].find("phone"), lines[2].find("regulator-referral")), (channel, channel), "{text}");
        assert_eq!(lines[3], "more: --page-token p2");
        assert!(text.lines().all(|l| l == l.trim_end()), "no trailing blanks: {text:?}");
    }

    #[test]
    fn chinese_cells_are_measured_by_display_width() {
        let mut table = Table::new(["INSTITUTION", "BRANCH"]);
        table.row(["示例银行股份有限公司".to_owned(), "上海分行".to_owned()]);
        table.row(["EXAMPLE BANK".to_owned(), "SH".to_owned()]);
        assert_eq!(
            table.lines(),
            ["INSTITUTION           BRANCH", "示例银行股份有限公司  上海分行", "EXAMPLE BANK          SH"]
        );
    }

    #[test]
    fn codes_in_chinese_line_up_under_their_header() {
        let code = |code: &str, name: &str| TaxonomyCode { code: code.to_owned(), name: name.to_owned() };
        let list = ListTaxonomiesResponse {
            taxonomies: vec![Taxonomy {
                name: "banking".to_owned(),
                version: "1".to_owned(),
                active: true,
                business_types: vec![code("B01", "借记卡"), code("B02", "信用卡")],
                causes: vec![code("C01", "服务态度")],
                ..Taxonomy::default()
            }],
        };
        let text = taxonomies_text(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "banking@1, active", "{text}");
        assert_eq!(lines[1], "  DIMENSION      CODE  NAME", "{text}");
        assert_eq!(lines[2], "  business type  B01   借记卡", "{text}");
        assert_eq!(lines[3], "                 B02   信用卡", "{text}");
        assert_eq!(lines[4], "  cause          C01   服务态度", "{text}");
    }

    #[test]
    fn a_cases_clocks_are_a_table_in_its_summary() {
        let clock = |kind: ClockKind, length: i32, breached: bool| SlaClock {
            kind: kind as i32,
            unit: ClockUnit::WorkingDays as i32,
            length,
            status: ClockStatus::Running as i32,
            due_time: Some(Timestamp { seconds: 1_781_000_000, nanos: 0 }),
            breached,
            ..SlaClock::default()
        };
        let case = Case {
            clocks: vec![clock(ClockKind::FirstResponse, 2, false), clock(ClockKind::Resolution, 15, true)],
            ..Case::default()
        };
        let text = case_text(&case);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("working days") || l.contains("KIND")).collect();
        assert_eq!(
            lines,
            [
                "clocks      KIND            LENGTH           STATUS   DUE                               NOTE",
                "            first-response  2 working days   running  2026-06-09 18:13 (Asia/Shanghai)",
                "            resolution      15 working days  running  2026-06-09 18:13 (Asia/Shanghai)  BREACHED",
            ],
            "{text}"
        );
    }

    /// D-SLA-6: a due time counted on a year without its official calendar reads as such.
    #[test]
    fn provisional_due_times_are_marked_with_why() {
        let due = Some(Timestamp { seconds: 1_799_078_400, nanos: 0 });
        let reason = "no official holiday arrangement is loaded for 2027".to_owned();
        let case = Case {
            clocks: vec![SlaClock {
                kind: ClockKind::RegulatoryDecision as i32,
                unit: ClockUnit::CalendarDays as i32,
                length: 15,
                status: ClockStatus::Running as i32,
                due_time: due,
                provisional: true,
                provisional_reason: reason.clone(),
                ..SlaClock::default()
            }],
            ..Case::default()
        };
        let text = case_text(&case);
        assert!(text.contains("2027-01-04 24:00 (Asia/Shanghai) (provisional)"), "{text}");
        assert!(text.contains(&format!("provisional: {reason}")), "{text}");
        let complaint = Complaint {
            receipt: Some(Receipt {
                deadlines: Some(Deadlines {
                    regulatory_decision_due_time: due,
                    regulatory_decision_provisional: true,
                    regulatory_decision_provisional_reason: reason.clone(),
                    ..Deadlines::default()
                }),
                ..Receipt::default()
            }),
            ..Complaint::default()
        };
        let text = complaint_text(&complaint);
        assert!(text.contains("decision        2027-01-04 24:00 (Asia/Shanghai) (provisional)"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("provisional") && l.ends_with(&reason)), "{text}");
    }

    /// D-SLA-5: a receipt's day deadlines end at 24:00 of their last day in the receipt's zone;
    /// the first response, an hour clock, is the instant it falls due.
    #[test]
    fn receipt_deadlines_are_shown_in_the_receipts_zone() {
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        let complaint = Complaint {
            receipt: Some(Receipt {
                accept_time: at(1_796_790_600),
                deadlines: Some(Deadlines {
                    // 2026-12-09T16:00:00Z, midnight starting the 10th in Shanghai.
                    first_response_due_time: at(1_796_832_000),
                    resolution_due_time: at(1_796_832_000),
                    regulatory_decision_due_time: at(1_797_955_200),
                    time_zone: "Asia/Shanghai".to_owned(),
                    ..Deadlines::default()
                }),
                ..Receipt::default()
            }),
            ..Complaint::default()
        };
        let text = complaint_text(&complaint);
        let due: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("due")).collect();
        assert_eq!(
            due,
            [
                "due         first response  2026-12-10 00:00 (Asia/Shanghai)",
                "            resolution      2026-12-09 24:00 (Asia/Shanghai)",
                "            decision        2026-12-22 24:00 (Asia/Shanghai)",
            ],
            "{text}"
        );
        assert!(text.contains("accepted    2026-12-09 12:30 (Asia/Shanghai)"), "{text}");
    }

    /// A case's clocks are counted where its receipt's deadlines were; an hour clock keeps its
    /// midnight as the start of the next day.
    #[test]
    fn a_cases_clocks_are_shown_in_its_receipts_zone() {
        let clock = |kind: ClockKind, unit: ClockUnit| SlaClock {
            kind: kind as i32,
            unit: unit as i32,
            length: 1,
            // 2026-03-29T23:00:00Z, midnight of the 30th in London (summer time).
            due_time: Some(Timestamp { seconds: 1_774_825_200, nanos: 0 }),
            ..SlaClock::default()
        };
        let case = Case {
            deadlines: Some(Deadlines { time_zone: "Europe/London".to_owned(), ..Deadlines::default() }),
            clocks: vec![
                clock(ClockKind::FirstResponse, ClockUnit::Hours),
                clock(ClockKind::Handoff, ClockUnit::WorkingDays),
            ],
            transfers: vec![Transfer {
                to_department: "cards".to_owned(),
                handoff_due_time: Some(Timestamp { seconds: 1_774_825_200, nanos: 0 }),
                ..Transfer::default()
            }],
            ..Case::default()
        };
        let text = case_text(&case);
        assert!(text.contains("1 hours         unspecified  2026-03-30 00:00 (Europe/London)"), "{text}");
        assert!(text.contains("1 working days  unspecified  2026-03-29 24:00 (Europe/London)"), "{text}");
        let transfers: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("transfers")).take(2).collect();
        assert!(transfers[0].contains("FROM") && transfers[0].contains("HANDOFF"), "{text}");
        assert!(
            transfers[1].contains("cards") && transfers[1].contains("due 2026-03-29 24:00 (Europe/London)"),
            "{text}"
        );
        let no_zone = Case { deadlines: None, ..case };
        assert!(case_text(&no_zone).contains("2026-03-30 07:00 (Asia/Shanghai)"));
    }

    /// Every list inside a case (transfers, links, evidence, tasks) is a table under a header row.
    #[test]
    fn lists_inside_a_case_have_header_rows() {
        use redress_proto::redress::case::v1::{CaseLink, CoordinationTask, EvidenceReference};
        let case = Case {
            links: vec![CaseLink {
                r#type: LinkType::Related as i32,
                case: "cases/b".to_owned(),
                ..CaseLink::default()
            }],
            evidence: vec![EvidenceReference {
                kind: "recording".to_owned(),
                uri: "s3://e/1.mp3".to_owned(),
                sha256: "ab".repeat(32),
                ..EvidenceReference::default()
            }],
            coordination_tasks: vec![
                CoordinationTask {
                    task_id: "t1".to_owned(),
                    department: "法务部".to_owned(),
                    owner: "user:wang".to_owned(),
                    description: "出具法律意见".to_owned(),
                    ..CoordinationTask::default()
                },
                CoordinationTask {
                    task_id: "t2".to_owned(),
                    department: "cards".to_owned(),
                    owner: "user:li".to_owned(),
                    complete_time: Some(Timestamp { seconds: 1_774_825_200, nanos: 0 }),
                    outcome: "checked".to_owned(),
                    ..CoordinationTask::default()
                },
            ],
            ..Case::default()
        };
        let text = case_text(&case);
        let after = |label: &str| -> Vec<String> {
            text.lines().skip_while(|l| !l.starts_with(label)).map(str::to_owned).collect()
        };
        let links = after("links");
        assert!(links[0].contains("LINK") && links[0].contains("REASON"), "{text}");
        assert!(links[1].contains("related") && links[1].contains("cases/b"), "{text}");
        let evidence = after("evidence");
        assert!(evidence[0].contains("KIND") && evidence[0].contains("SHA256"), "{text}");
        let tasks = after("tasks");
        assert!(tasks[0].contains("TASK") && tasks[0].contains("OWNER") && tasks[0].contains("STATUS"), "{text}");
        assert!(tasks[1].contains("t1") && tasks[1].contains("open") && tasks[1].contains("出具法律意见"), "{text}");
        assert!(
            tasks[2].contains("t2") && tasks[2].contains("done 2026-03-30") && tasks[2].contains("checked"),
            "{text}"
        );
    }

    /// The people around a case and its progress to the complainant: who handles it by employee
    /// id, the conflict check, scope and escalation, routings, contacts and the next one due,
    /// the steps carrying out the decision, a task's kind and a transfer's new owner.
    #[test]
    fn a_cases_people_and_progress_are_in_its_summary() {
        use redress_proto::redress::case::v1::{
            CaseContact, CaseRouting, CoordinationTask, ImplementationStep, Transfer,
        };
        let at = Some(Timestamp { seconds: 1_781_000_000, nanos: 0 });
        // 2026-06-12T16:00:00Z, the end of Friday 12 June in Shanghai.
        let friday = Some(Timestamp { seconds: 1_781_280_000, nanos: 0 });
        let case = Case {
            name: "cases/1".to_owned(),
            case_number: "2026060900001".to_owned(),
            complaint: "complaints/1".to_owned(),
            etag: "\"7\"".to_owned(),
            assignee: "user:li-na".to_owned(),
            assignee_staff_id: "E2001".to_owned(),
            department: "cards".to_owned(),
            conflict_check: Some(ConflictCheck {
                required: true,
                reason: "the complaint names staff by name only".to_owned(),
                assignee: "user:li-na".to_owned(),
                assignee_staff_id: "E2001".to_owned(),
                ..ConflictCheck::default()
            }),
            problem_scope: ProblemScope::Systemic as i32,
            problem_scope_reason: "同一批次年费均被重复扣收".to_owned(),
            escalation_required_time: at,
            transfers: vec![Transfer {
                from_department: "retail".to_owned(),
                to_department: "cards".to_owned(),
                to_assignee: "user:li-na".to_owned(),
                to_assignee_staff_id: "E2001".to_owned(),
                transfer_time: at,
                accept_time: at,
                reason: "卡部负责年费".to_owned(),
                ..Transfer::default()
            }],
            routings: vec![
                CaseRouting {
                    rule_id: "information-security.compliance".to_owned(),
                    action: RoutingAction::NotifyCompliance as i32,
                    recipients: vec!["department:compliance".to_owned()],
                    route_time: at,
                    ..CaseRouting::default()
                },
                CaseRouting {
                    rule_id: "litigation.legal".to_owned(),
                    action: RoutingAction::LegalOpinionTask as i32,
                    recipients: vec!["department:legal".to_owned()],
                    task_id: "t1".to_owned(),
                    route_time: at,
                    ..CaseRouting::default()
                },
            ],
            contacts: vec![CaseContact {
                contact_id: "c1".to_owned(),
                channel: Channel::Phone as i32,
                direction: ContactDirection::Outbound as i32,
                contact_time: at,
                summary: "告知正在核实".to_owned(),
                recorded_by: "user:li-na".to_owned(),
                recorded_by_staff_id: "E2001".to_owned(),
                ..CaseContact::default()
            }],
            next_contact_due_time: friday,
            next_contact_due_provisional: true,
            implementation_steps: vec![ImplementationStep {
                step_id: "s1".to_owned(),
                description: "退还年费".to_owned(),
                owner: "user:ops-zhao".to_owned(),
                owner_staff_id: "E4001".to_owned(),
                department: "operations".to_owned(),
                due_time: at,
                overdue: true,
                ..ImplementationStep::default()
            }],
            coordination_tasks: vec![
                CoordinationTask {
                    task_id: "t1".to_owned(),
                    kind: CoordinationTaskKind::LegalOpinion as i32,
                    department: "legal".to_owned(),
                    ..CoordinationTask::default()
                },
                CoordinationTask { task_id: "t2".to_owned(), ..CoordinationTask::default() },
            ],
            ..Case::default()
        };
        let text = case_text(&case);
        let after = |label: &str| -> Vec<String> {
            text.lines().skip_while(|l| !l.starts_with(label)).map(str::to_owned).collect()
        };
        assert!(text.contains("handler     user:li-na (E2001) in cards\n"), "{text}");
        assert!(
            text.contains("conflict    check pending for user:li-na (E2001): the complaint names staff by name only\n"),
            "{text}"
        );
        assert!(text.contains("escalation  required 2026-06-09 18:13 (Asia/Shanghai)\n"), "{text}");
        assert!(text.contains("scope       systemic: 同一批次年费均被重复扣收\n"), "{text}");
        let transfers = after("transfers");
        assert_eq!(
            transfers[0].split_whitespace().collect::<Vec<_>>()[1..],
            ["FROM", "TO", "OWNER", "WHEN", "HANDOFF", "REASON"]
        );
        assert!(transfers[1].contains("retail  cards  user:li-na (E2001)  2026-06-09 18:13"), "{text}");
        let routings = after("routings");
        assert_eq!(
            routings[0],
            "routings    RULE                             ACTION              WHEN                              RECIPIENTS/TASK"
        );
        assert!(routings[1].contains("information-security.compliance  notify-compliance"), "{text}");
        assert!(routings[1].ends_with("department:compliance"), "{text}");
        assert!(
            routings[2].contains("legal-opinion-task") && routings[2].ends_with("department:legal, task t1"),
            "{text}"
        );
        let contacts = after("contacts");
        assert_eq!(
            contacts[0].split_whitespace().collect::<Vec<_>>()[1..],
            ["WHEN", "CHANNEL", "DIRECTION", "BY", "SUMMARY"]
        );
        assert_eq!(
            contacts[1],
            "            2026-06-09 18:13 (Asia/Shanghai)  phone    outbound   user:li-na (E2001)  告知正在核实"
        );
        assert!(text.contains("contact due 2026-06-12 24:00 (Asia/Shanghai) (provisional)\n"), "{text}");
        let steps = after("steps");
        assert_eq!(
            steps[0].split_whitespace().collect::<Vec<_>>()[1..],
            ["STEP", "OWNER", "DEPARTMENT", "DUE", "STATUS", "WHAT"]
        );
        assert!(
            steps[1].contains("s1    user:ops-zhao (E4001)  operations") && steps[1].contains("overdue  退还年费"),
            "{text}"
        );
        let tasks = after("tasks");
        assert!(tasks[0].contains("TASK  KIND"), "{text}");
        assert!(tasks[1].contains("t1    legal-opinion  legal"), "{text}");
        assert!(tasks[2].contains("t2    coordination"), "a task from before kinds: {text}");
        assert!(text.lines().all(|l| l == l.trim_end()), "no trailing blanks: {text:?}");

        // Once confirmed, the check says by whom; a case nobody needs a check for shows none.
        let check = ConflictCheck {
            confirmed_by: "user:chen-jing".to_owned(),
            confirm_time: at,
            note: "核对排班".to_owned(),
            ..case.conflict_check.clone().unwrap_or_default()
        };
        let confirmed = case_text(&Case { conflict_check: Some(check), ..case.clone() });
        assert!(
            confirmed.contains(
                "conflict    none for user:li-na (E2001), confirmed 2026-06-09 18:13 (Asia/Shanghai) by user:chen-jing: 核对排班\n"
            ),
            "{confirmed}"
        );
        let plain = case_text(&Case::default());
        for label in ["conflict", "escalation", "scope", "routings", "contacts", "contact due", "steps"] {
            assert!(!plain.lines().any(|l| l.starts_with(label)), "{label}: {plain}");
        }
    }

    /// Who took a complaint, where it comes from, its product and the complainant's read-back
    /// answers.
    #[test]
    fn a_complaints_first_contact_source_and_read_back_are_in_its_summary() {
        use redress_proto::redress::intake::v1::{ContentConfirmation, FirstContact};
        let at = Some(Timestamp { seconds: 1_781_000_000, nanos: 0 });
        let complaint = Complaint {
            source: ComplaintSource::ExternalPartner as i32,
            product: "信用卡".to_owned(),
            first_contact: Some(FirstContact {
                subject: "user:li-na".to_owned(),
                staff_id: "E2001".to_owned(),
                org_unit: "institutions/demo-bank".to_owned(),
                department: "counter-services".to_owned(),
                recorded_by: "dev".to_owned(),
            }),
            content_confirmations: vec![
                ContentConfirmation {
                    confirmed: false,
                    method: ConfirmationMethod::ReadBackCall as i32,
                    corrections: "****".to_owned(),
                    note: "录音 R-1".to_owned(),
                    confirm_time: at,
                    recorded_by: "user:li-na".to_owned(),
                },
                ContentConfirmation {
                    confirmed: true,
                    method: ConfirmationMethod::Online as i32,
                    confirm_time: at,
                    recorded_by: "dev".to_owned(),
                    ..ContentConfirmation::default()
                },
            ],
            ..Complaint::default()
        };
        let text = complaint_text(&complaint);
        assert!(text.contains("source      external-partner\n"), "{text}");
        assert!(text.contains("product     信用卡\n"), "{text}");
        assert!(
            text.contains("taken by    staff E2001, user:li-na, institutions/demo-bank, counter-services\n"),
            "{text}"
        );
        let answers: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("read back")).collect();
        assert_eq!(
            answers,
            [
                "read back   ANSWER     METHOD          WHEN                              BY          CORRECTIONS  NOTE",
                "            corrected  read-back-call  2026-06-09 18:13 (Asia/Shanghai)  user:li-na  ****         录音 R-1",
                "            confirmed  online          2026-06-09 18:13 (Asia/Shanghai)  dev         -",
            ],
            "{text}"
        );
        // Unspecified is recorded as a consumer's; nobody named took it.
        let plain = complaint_text(&Complaint::default());
        assert!(plain.contains("source      external-consumer\n"), "{plain}");
        assert!(!plain.contains("taken by") && !plain.contains("read back"), "{plain}");
        assert!(!plain.lines().any(|l| l.starts_with("product")), "no product, no row: {plain}");
    }

    #[test]
    fn a_confirmed_complaint_prints_the_request_id_to_retry_with() {
        let reply = Reply::Confirmed { complaint: Box::default(), request_id: "r-1".to_owned() };
        assert!(render(&reply).ends_with("request id  r-1  (repeat it to retry safely)\n"));
    }

    #[test]
    fn an_audit_entry_names_the_key_its_hash_was_made_with() {
        use redress_proto::redress::case::v1::AuditEntry;
        let entry = |sequence: i64, key_id: &str| AuditEntry {
            case: "cases/1".to_owned(),
            sequence,
            action: "case.opened".to_owned(),
            actor: "service:case-workflow".to_owned(),
            details: [("grade".to_owned(), "2".to_owned())].into(),
            key_id: key_id.to_owned(),
            ..AuditEntry::default()
        };
        let list = ListAuditEntriesResponse {
            audit_entries: vec![entry(1, ""), entry(2, "audit-2026")],
            ..Default::default()
        };
        let text = audit_text(&list);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["#", "RECORDED", "ACTOR", "ACTION", "KEY", "DETAILS"], "{text}");
        assert_eq!(lines[1], ["1", "-", "service:case-workflow", "case.opened", "-", "grade=2"], "{text}");
        assert_eq!(lines[2], ["2", "-", "service:case-workflow", "case.opened", "audit-2026", "grade=2"], "{text}");
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(complaints_text(&ListComplaintsResponse::default()), "no complaints\n");
        assert_eq!(cases_text(&ListCasesResponse::default()), "no cases\n");
    }
}
