//! Incidents, their members and their statements.

use std::sync::Arc;

use prost::Message;
use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, Text, resource_id};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::from_timestamp;
use redress_proto::redress::escalation::v1::{
    AddIncidentMemberRequest, AddTimelineEntryRequest, AdvanceCrisisStageRequest, ApproveStatementRequest,
    CauseCategory, ClassifyIncidentMemberRequest, CloseIncidentRequest, CreateIncidentRequest, DeclareIncidentRequest,
    DismissIncidentRequest, DraftStatementRequest, GetCurrentStatementRequest, GetIncidentRequest, Incident,
    IncidentKind, IncidentMember, IncidentState, ListIncidentMembersRequest, ListIncidentMembersResponse,
    ListIncidentsRequest, ListIncidentsResponse, ListStatementsRequest, ListStatementsResponse,
    RecordSystemicCauseRequest, SetWorkingGroupRequest, Statement, StatementUse, TimelineEntryKind,
    UseStatementRequest, WorkingGroupRole,
};

use super::{EscalationApi, request_key, version_of};
use crate::domain::{DomainError, statement};
use crate::error::EscalationError;
use crate::store::ListQuery;
use crate::store::ops::{self, IncidentCommand, IncidentUpdate};

/// Most labels a member may carry.
const MAX_LABELS: usize = 20;

/// A request that changes an incident: its target and the command it asks for.
pub(super) trait IncidentChange: Message {
    const METHOD: &'static str;
    /// The permission it needs.
    const PERMISSION: Permission = Permission::IncidentsWrite;
    /// The incident's name, etag and request id.
    fn target(&self) -> (&str, &str, &str);
    /// The command, recording every invalid field in `v`.
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand>;
}

fn reason(v: &mut Violations, field: &str, value: &str) -> String {
    Text::Reason.check(v, field, value, true);
    value.trim().to_owned()
}

impl IncidentChange for DeclareIncidentRequest {
    const METHOD: &'static str = "DeclareIncident";
    const PERMISSION: Permission = Permission::IncidentsApprove;
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        Some(IncidentCommand::Declare { reason: reason(v, "reason", &self.reason) })
    }
}

impl IncidentChange for DismissIncidentRequest {
    const METHOD: &'static str = "DismissIncident";
    const PERMISSION: Permission = Permission::IncidentsApprove;
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        Some(IncidentCommand::Dismiss { reason: reason(v, "reason", &self.reason) })
    }
}

impl IncidentChange for SetWorkingGroupRequest {
    const METHOD: &'static str = "SetWorkingGroup";
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        if self.members.is_empty() {
            v.add("members", "required: the leader at least");
        }
        if self.members.len() > 100 {
            v.add("members", "at most 100");
        }
        for (i, m) in self.members.iter().enumerate() {
            Text::Name.check(v, &format!("members[{i}].subject"), &m.subject, true);
            if matches!(WorkingGroupRole::try_from(m.role), Err(_) | Ok(WorkingGroupRole::Unspecified)) {
                v.add(
                    format!("members[{i}].role"),
                    "must be one of LEADER, COMPLAINT_HANDLING, BUSINESS, LEGAL, PUBLIC_RELATIONS",
                );
            }
            Text::Name.check(v, &format!("members[{i}].department"), &m.department, false);
            Text::Reason.check(v, &format!("members[{i}].responsibility"), &m.responsibility, false);
        }
        Some(IncidentCommand::SetWorkingGroup { members: self.members.clone() })
    }
}

impl IncidentChange for AddTimelineEntryRequest {
    const METHOD: &'static str = "AddTimelineEntry";
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        let Some(entry) = &self.entry else {
            v.add("entry", "required");
            return None;
        };
        match TimelineEntryKind::try_from(entry.kind) {
            Ok(TimelineEntryKind::Disclosure | TimelineEntryKind::Progress | TimelineEntryKind::Note) => {}
            _ => v.add("entry.kind", "must be DISCLOSURE, PROGRESS or NOTE"),
        }
        if entry.time.as_ref().is_some_and(|t| from_timestamp(t).is_none()) {
            v.add("entry.time", "is not a valid timestamp");
        }
        Text::Name.check(v, "entry.channel", &entry.channel, entry.kind == TimelineEntryKind::Disclosure as i32);
        Text::Notice.check(v, "entry.text", &entry.text, true);
        if !entry.statement.is_empty() && statement::parse_name(&entry.statement).is_none() {
            v.add("entry.statement", "must be incidents/{id}/statements/{version}");
        }
        Some(IncidentCommand::AddTimelineEntry { entry: entry.clone() })
    }
}

impl IncidentChange for RecordSystemicCauseRequest {
    const METHOD: &'static str = "RecordSystemicCause";
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        let Some(cause) = &self.systemic_cause else {
            v.add("systemic_cause", "required");
            return None;
        };
        if matches!(CauseCategory::try_from(cause.category), Err(_) | Ok(CauseCategory::Unspecified)) {
            v.add("systemic_cause.category", "must be PEOPLE, PROCESS, SYSTEM, ENVIRONMENT or POLICY");
        }
        Text::Long.check(v, "systemic_cause.description", &cause.description, true);
        Text::Long.check(v, "systemic_cause.fix", &cause.fix, true);
        Text::Name.check(v, "systemic_cause.fix_owner", &cause.fix_owner, true);
        if cause.fix_due_time.as_ref().is_some_and(|t| from_timestamp(t).is_none()) {
            v.add("systemic_cause.fix_due_time", "is not a valid timestamp");
        }
        Some(IncidentCommand::RecordSystemicCause { cause: cause.clone() })
    }
}

impl IncidentChange for AdvanceCrisisStageRequest {
    const METHOD: &'static str = "AdvanceCrisisStage";
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        Some(IncidentCommand::AdvanceStage { note: reason(v, "note", &self.note) })
    }
}

impl IncidentChange for CloseIncidentRequest {
    const METHOD: &'static str = "CloseIncident";
    fn target(&self) -> (&str, &str, &str) {
        (&self.name, &self.etag, &self.request_id)
    }
    fn command(&self, v: &mut Violations) -> Option<IncidentCommand> {
        Some(IncidentCommand::Close { reason: reason(v, "reason", &self.reason) })
    }
}

fn incident_id<'a>(v: &mut Violations, field: &str, name: &'a str) -> Option<&'a str> {
    resource_id(v, field, name, "incidents")
}

fn complaint_name(v: &mut Violations, field: &str, name: &str) -> Option<String> {
    resource_id(v, field, name, "complaints").map(|_| name.to_owned())
}

fn case_name(v: &mut Violations, field: &str, name: &str) -> Option<String> {
    resource_id(v, field, name, "cases").map(|_| name.to_owned())
}

/// `Ok(())` when nothing was violated.
fn checked(v: Violations) -> Result<(), EscalationError> {
    Ok(v.into_result()?)
}

/// An internal error for a parse that recorded no violation yet produced nothing.
fn unparsed() -> EscalationError {
    EscalationError::Internal(anyhow::anyhow!("a valid request produced nothing"))
}

impl EscalationApi {
    /// The incident `id` if the caller may see it.
    async fn visible_incident(&self, principal: &Principal, id: &str) -> Result<Incident, EscalationError> {
        self.store()?
            .incident(id)
            .await?
            .filter(|i| principal.covers(&i.org_unit))
            .ok_or_else(|| EscalationError::not_found("incident", format!("incidents/{id}")))
    }

    pub(super) async fn get_incident(
        &self,
        principal: &Principal,
        request: GetIncidentRequest,
    ) -> Result<Incident, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let id = incident_id(&mut v, "name", &request.name);
        checked(v)?;
        self.visible_incident(principal, id.ok_or_else(unparsed)?).await
    }

    pub(super) async fn list_incidents(
        &self,
        principal: &Principal,
        request: ListIncidentsRequest,
    ) -> Result<ListIncidentsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        if IncidentKind::try_from(request.kind).is_err() {
            v.add("kind", "unknown kind");
        }
        if IncidentState::try_from(request.state).is_err() {
            v.add("state", "unknown state");
        }
        checked(v)?;
        if principal.org_unit.is_empty() {
            return Ok(ListIncidentsResponse::default());
        }
        let query = ListQuery {
            scope: principal.scope(),
            kind: i64::from(request.kind),
            state: i64::from(request.state),
            after,
            limit: i64::from(size) + 1,
            ..ListQuery::default()
        };
        let mut incidents = self.store()?.incidents(&query).await?;
        let next_page_token =
            paging::finish_page(&mut incidents, size, |i| (0, crate::domain::actions::id_of(&i.name).to_owned()));
        Ok(ListIncidentsResponse { incidents, next_page_token })
    }

    pub(super) async fn create_incident(
        &self,
        principal: &Arc<Principal>,
        request: CreateIncidentRequest,
    ) -> Result<Incident, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, true, principal, "CreateIncident", &request);
        let incident = request.incident.clone().unwrap_or_default();
        if request.incident.is_none() {
            v.add("incident", "required");
        }
        let kind = match IncidentKind::try_from(incident.kind) {
            Ok(IncidentKind::Unspecified) | Err(_) => {
                v.add("incident.kind", "must be GROUP, MEDIA, VIP or MALICIOUS");
                None
            }
            Ok(kind) => Some(kind),
        };
        let unit = OrgUnit::parse(&mut v, "incident.org_unit", &incident.org_unit);
        Text::Name.check(&mut v, "incident.title", &incident.title, true);
        Text::Long.check(&mut v, "incident.summary", &incident.summary, false);
        checked(v)?;
        let (Some(key), Some(kind), Some(unit)) = (key, kind, unit) else { return Err(unparsed()) };
        if !principal.covers(unit.as_str()) {
            return Err(EscalationError::Platform(redress_platform::ServiceError::PermissionDenied(format!(
                "{unit} is outside the caller's organisation unit"
            ))));
        }
        let new = ops::NewIncident {
            kind,
            org_unit: unit.into_string(),
            title: incident.title.trim().to_owned(),
            summary: incident.summary.trim().to_owned(),
            request: key,
            principal: principal.clone(),
        };
        self.store()?.create_incident(new).await
    }

    /// Validates a change request and runs its command through the store.
    pub(super) async fn change_incident<R: IncidentChange>(
        &self,
        principal: &Arc<Principal>,
        request: R,
    ) -> Result<Incident, EscalationError> {
        principal.require(R::PERMISSION)?;
        let mut v = Violations::new();
        let command = request.command(&mut v);
        let (name, etag, request_id) = request.target();
        let id = incident_id(&mut v, "name", name);
        let expected_version = version_of(&mut v, etag);
        let key = request_key(&mut v, request_id, false, principal, R::METHOD, &request);
        checked(v)?;
        let (Some(id), Some(command)) = (id, command) else { return Err(unparsed()) };
        let update =
            IncidentUpdate { id: id.to_owned(), expected_version, request: key, principal: principal.clone(), command };
        self.store()?.update_incident(update).await
    }

    pub(super) async fn add_member(
        &self,
        principal: &Arc<Principal>,
        request: AddIncidentMemberRequest,
    ) -> Result<IncidentMember, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let id = incident_id(&mut v, "incident", &request.incident);
        let complaint = complaint_name(&mut v, "complaint", &request.complaint);
        let why = reason(&mut v, "reason", &request.reason);
        let key = request_key(&mut v, &request.request_id, false, principal, "AddIncidentMember", &request);
        checked(v)?;
        let (Some(id), Some(complaint)) = (id, complaint) else { return Err(unparsed()) };
        let new = ops::NewMember {
            incident: id.to_owned(),
            complaint,
            source: "manual",
            matched: None,
            reason: why,
            request: key,
            principal: principal.clone(),
        };
        self.store()?.add_member(new).await
    }

    pub(super) async fn list_members(
        &self,
        principal: &Principal,
        request: ListIncidentMembersRequest,
    ) -> Result<ListIncidentMembersResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let id = incident_id(&mut v, "incident", &request.incident);
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        checked(v)?;
        let incident = self.visible_incident(principal, id.ok_or_else(unparsed)?).await?;
        let after_seq = after.map(|c| c.0).unwrap_or(0);
        let mut rows = self.store()?.members(&incident.name, after_seq, i64::from(size) + 1).await?;
        let next_page_token = paging::finish_page(&mut rows, size, |(seq, _)| (*seq, String::new()));
        Ok(ListIncidentMembersResponse { members: rows.into_iter().map(|(_, m)| m).collect(), next_page_token })
    }

    pub(super) async fn classify_member(
        &self,
        principal: &Arc<Principal>,
        request: ClassifyIncidentMemberRequest,
    ) -> Result<IncidentMember, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let id = incident_id(&mut v, "incident", &request.incident);
        let complaint = complaint_name(&mut v, "complaint", &request.complaint);
        if request.labels.is_empty() {
            v.add("labels", "required");
        }
        if request.labels.len() > MAX_LABELS {
            v.add("labels", format!("at most {MAX_LABELS}"));
        }
        let mut labels: Vec<(String, String)> = Vec::new();
        for (k, value) in &request.labels {
            Text::Name.check(&mut v, "labels", k, true);
            Text::Short.check(&mut v, &format!("labels[{k}]"), value, false);
            labels.push((k.trim().to_owned(), value.trim().to_owned()));
        }
        labels.sort();
        let key = request_key(&mut v, &request.request_id, false, principal, "ClassifyIncidentMember", &request);
        checked(v)?;
        let (Some(id), Some(complaint)) = (id, complaint) else { return Err(unparsed()) };
        let c = ops::Classification {
            incident: id.to_owned(),
            complaint,
            labels,
            request: key,
            principal: principal.clone(),
        };
        self.store()?.classify_member(c).await
    }

    pub(super) async fn draft_statement(
        &self,
        principal: &Arc<Principal>,
        request: DraftStatementRequest,
    ) -> Result<Statement, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let id = incident_id(&mut v, "incident", &request.incident);
        Text::Notice.check(&mut v, "text", &request.text, true);
        let key = request_key(&mut v, &request.request_id, true, principal, "DraftStatement", &request);
        checked(v)?;
        let (Some(id), Some(key)) = (id, key) else { return Err(unparsed()) };
        self.store()?.draft_statement(id.to_owned(), request.text.trim().to_owned(), key, principal.clone()).await
    }

    pub(super) async fn approve_statement(
        &self,
        principal: &Arc<Principal>,
        request: ApproveStatementRequest,
    ) -> Result<Statement, EscalationError> {
        principal.require(Permission::IncidentsApprove)?;
        let mut v = Violations::new();
        let parsed = statement::parse_name(&request.name);
        if parsed.is_none() {
            v.add("name", "must be incidents/{id}/statements/{version}");
        }
        let key = request_key(&mut v, &request.request_id, false, principal, "ApproveStatement", &request);
        checked(v)?;
        let (incident, version) = parsed.ok_or_else(unparsed)?;
        let id = crate::domain::actions::id_of(incident).to_owned();
        self.store()?.approve_statement(id, version, key, principal.clone()).await
    }

    /// The incident the request names, directly or through a member case within the caller's
    /// unit (a member case's handler gets its statement whatever unit the incident belongs to).
    async fn incident_for(
        &self,
        principal: &Principal,
        incident: &str,
        case: &str,
    ) -> Result<Incident, EscalationError> {
        let mut v = Violations::new();
        if incident.is_empty() == case.is_empty() {
            v.add("incident", "name the incident or a member case (exactly one)");
        }
        let id = (!incident.is_empty()).then(|| incident_id(&mut v, "incident", incident)).flatten();
        let case = (!case.is_empty()).then(|| case_name(&mut v, "case", case)).flatten();
        checked(v)?;
        if let Some(id) = id {
            principal.require(Permission::IncidentsRead)?;
            return self.visible_incident(principal, id).await;
        }
        let case = case.ok_or_else(unparsed)?;
        if !principal.has(Permission::IncidentsRead) {
            principal.require(Permission::CasesRead)?;
        }
        let store = self.store()?;
        let not_found = || EscalationError::not_found("case", case.clone());
        let known = store.known_case(&case).await?.filter(|k| principal.covers(&k.org_unit)).ok_or_else(not_found)?;
        // Of the incidents the case belongs to, the declared (or closed) one that speaks for it.
        let mut found = None;
        for name in store.incidents_of(&known.complaint).await? {
            let Some(incident) = store.incident(crate::domain::actions::id_of(&name)).await? else { continue };
            let speaks = matches!(incident.state(), IncidentState::Declared | IncidentState::Closed);
            let declared = |i: &Incident| crate::store::micros(i.declare_time.as_ref());
            if speaks && found.as_ref().is_none_or(|f: &Incident| declared(f) < declared(&incident)) {
                found = Some(incident);
            }
        }
        found.ok_or_else(|| EscalationError::not_found("incident of case", case.clone()))
    }

    pub(super) async fn current_statement(
        &self,
        principal: &Principal,
        request: GetCurrentStatementRequest,
    ) -> Result<Statement, EscalationError> {
        // Incidents' readers, or the readers of a member case; which one the request needs is
        // checked once it is parsed.
        if !principal.has(Permission::IncidentsRead) {
            principal.require(Permission::CasesRead)?;
        }
        let mut v = Violations::new();
        Text::Name.check(&mut v, "channel", &request.channel, false);
        checked(v)?;
        let incident = self.incident_for(principal, &request.incident, &request.case).await?;
        let statements = self.store()?.statements(&incident.name).await?;
        statement::current(&statements)
            .cloned()
            .ok_or_else(|| DomainError::NoApprovedStatement { incident: incident.name.clone() }.into())
    }

    pub(super) async fn list_statements(
        &self,
        principal: &Principal,
        request: ListStatementsRequest,
    ) -> Result<ListStatementsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let id = incident_id(&mut v, "incident", &request.incident);
        checked(v)?;
        let incident = self.visible_incident(principal, id.ok_or_else(unparsed)?).await?;
        Ok(ListStatementsResponse { statements: self.store()?.statements(&incident.name).await? })
    }

    pub(super) async fn use_statement(
        &self,
        principal: &Arc<Principal>,
        request: UseStatementRequest,
    ) -> Result<StatementUse, EscalationError> {
        if !principal.has(Permission::IncidentsWrite) {
            principal.require(Permission::CasesWrite)?;
        }
        let mut v = Violations::new();
        let parsed = statement::parse_name(&request.name);
        if parsed.is_none() {
            v.add("name", "must be incidents/{id}/statements/{version}");
        }
        Text::Name.check(&mut v, "channel", &request.channel, true);
        let case = (!request.case.is_empty()).then(|| case_name(&mut v, "case", &request.case)).flatten();
        let key = request_key(&mut v, &request.request_id, false, principal, "UseStatement", &request);
        checked(v)?;
        let (incident, version) = parsed.ok_or_else(unparsed)?;
        let u = ops::Use {
            incident: crate::domain::actions::id_of(incident).to_owned(),
            version,
            channel: request.channel.trim().to_owned(),
            case: case.unwrap_or_default(),
            request: key,
            principal: principal.clone(),
        };
        self.store()?.use_statement(u).await
    }
}
