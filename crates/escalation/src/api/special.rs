//! Public opinion (watchlists, mentions, response templates), the VIP register and
//! malicious-complaint flags.

use std::sync::Arc;

use redress_platform::ServiceError;
use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, Text, resource_id};
use redress_platform::paging;
use redress_platform::principal::{Permission, Principal};
use redress_platform::time::from_timestamp;
use redress_proto::redress::escalation::v1::vip_identifier::Identifier;
use redress_proto::redress::escalation::v1::{
    ApproveMaliciousFlagRequest, AttachMentionRequest, CreateResponseTemplateRequest, CreateWatchlistRequest,
    CrisisStage, DeleteVipRequest, DeleteVipResponse, DeleteWatchlistRequest, DeleteWatchlistResponse,
    FlagMaliciousComplaintRequest, GetMaliciousFlagRequest, GetWatchlistRequest, ImportVipsError, ImportVipsRequest,
    ImportVipsResponse, ListMaliciousFlagsRequest, ListMaliciousFlagsResponse, ListMentionsRequest,
    ListMentionsResponse, ListResponseTemplatesRequest, ListResponseTemplatesResponse, ListVipsRequest,
    ListVipsResponse, ListWatchlistsRequest, ListWatchlistsResponse, MaliciousFlag, MaliciousGround, Mention,
    RegisterVipRequest, RejectMaliciousFlagRequest, ReportMentionRequest, ResponseTemplate, UpdateWatchlistRequest,
    Vip, Watchlist,
};

use super::{EscalationApi, request_key};
use crate::domain::actions::id_of;
use crate::domain::vip::register_digests;
use crate::error::EscalationError;
use crate::store::{FlagDecision, ListQuery, Registration, WatchlistUpdate};

/// Most keywords or entities a watchlist has.
const MAX_TERMS: usize = 200;
/// Most rows an import takes.
const MAX_IMPORT: usize = 1000;
/// The fields `UpdateWatchlist` changes.
const WATCHLIST_FIELDS: [&str; 6] =
    ["display_name", "keywords", "entities", "volume_threshold", "volume_window_minutes", "incident_reach"];

fn unparsed() -> EscalationError {
    EscalationError::Internal(anyhow::anyhow!("a valid request produced nothing"))
}

fn outside(unit: &str) -> EscalationError {
    ServiceError::PermissionDenied(format!("{unit} is outside the caller's organisation unit")).into()
}

/// A watchlist's own fields, checked (`prefix` names the message in field paths).
fn check_watchlist(v: &mut Violations, w: &Watchlist, prefix: &str) {
    Text::Name.check(v, &format!("{prefix}.display_name"), &w.display_name, true);
    if w.keywords.iter().all(|k| k.trim().is_empty()) {
        v.add(format!("{prefix}.keywords"), "required: at least one keyword");
    }
    for (field, terms) in [("keywords", &w.keywords), ("entities", &w.entities)] {
        if terms.len() > MAX_TERMS {
            v.add(format!("{prefix}.{field}"), format!("at most {MAX_TERMS}"));
        }
        for (i, t) in terms.iter().enumerate() {
            Text::Name.check(v, &format!("{prefix}.{field}[{i}]"), t, true);
        }
    }
    if w.volume_threshold < 0 {
        v.add(format!("{prefix}.volume_threshold"), "must not be negative");
    }
    if w.volume_threshold > 0 && !(1..=10_080).contains(&w.volume_window_minutes) {
        v.add(format!("{prefix}.volume_window_minutes"), "1 to 10080 (a week) when a volume threshold is set");
    }
    if w.incident_reach < 0 {
        v.add(format!("{prefix}.incident_reach"), "must not be negative");
    }
}

fn trimmed(terms: &[String]) -> Vec<String> {
    terms.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
}

impl EscalationApi {
    pub(super) async fn create_watchlist(
        &self,
        principal: &Arc<Principal>,
        request: CreateWatchlistRequest,
    ) -> Result<Watchlist, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, true, principal, "CreateWatchlist", &request);
        let w = request.watchlist.clone().unwrap_or_default();
        if request.watchlist.is_none() {
            v.add("watchlist", "required");
        }
        let unit = OrgUnit::parse(&mut v, "watchlist.org_unit", &w.org_unit);
        check_watchlist(&mut v, &w, "watchlist");
        v.into_result()?;
        let (Some(key), Some(unit)) = (key, unit) else { return Err(unparsed()) };
        if !principal.covers(unit.as_str()) {
            return Err(outside(unit.as_str()));
        }
        let w = Watchlist {
            org_unit: unit.into_string(),
            display_name: w.display_name.trim().to_owned(),
            keywords: trimmed(&w.keywords),
            entities: trimmed(&w.entities),
            ..w
        };
        self.store()?.create_watchlist(w, key, principal.clone()).await
    }

    async fn visible_watchlist(&self, principal: &Principal, name: &str) -> Result<Watchlist, EscalationError> {
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", name, "watchlists");
        v.into_result()?;
        self.store()?
            .watchlist(id.ok_or_else(unparsed)?)
            .await?
            .filter(|w| principal.covers(&w.org_unit))
            .ok_or_else(|| EscalationError::not_found("watchlist", name.to_owned()))
    }

    pub(super) async fn get_watchlist(
        &self,
        principal: &Principal,
        request: GetWatchlistRequest,
    ) -> Result<Watchlist, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        self.visible_watchlist(principal, &request.name).await
    }

    pub(super) async fn list_watchlists(
        &self,
        principal: &Principal,
        request: ListWatchlistsRequest,
    ) -> Result<ListWatchlistsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListWatchlistsResponse::default());
        }
        let q = ListQuery { scope: principal.scope(), after, limit: i64::from(size) + 1, ..ListQuery::default() };
        let mut watchlists = self.store()?.watchlists(&q).await?;
        let next_page_token = paging::finish_page(&mut watchlists, size, |w| (0, id_of(&w.name).to_owned()));
        Ok(ListWatchlistsResponse { watchlists, next_page_token })
    }

    pub(super) async fn update_watchlist(
        &self,
        principal: &Arc<Principal>,
        request: UpdateWatchlistRequest,
    ) -> Result<Watchlist, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let w = request.watchlist.clone().unwrap_or_default();
        let id = resource_id(&mut v, "watchlist.name", &w.name, "watchlists").map(str::to_owned);
        let fields: Vec<String> = if request.update_mask.is_empty() {
            WATCHLIST_FIELDS.iter().map(|f| (*f).to_owned()).collect()
        } else {
            request.update_mask.clone()
        };
        for f in &fields {
            if !WATCHLIST_FIELDS.contains(&f.as_str()) {
                v.add("update_mask", format!("{f} cannot be changed; one of {}", WATCHLIST_FIELDS.join(", ")));
            }
        }
        // The values the mask names are checked as a whole watchlist would be.
        let current = match &id {
            Some(_) => Some(self.visible_watchlist(principal, &w.name).await?),
            None => None,
        };
        let mut merged = current.unwrap_or_default();
        for f in &fields {
            match f.as_str() {
                "display_name" => merged.display_name = w.display_name.clone(),
                "keywords" => merged.keywords = trimmed(&w.keywords),
                "entities" => merged.entities = trimmed(&w.entities),
                "volume_threshold" => merged.volume_threshold = w.volume_threshold,
                "volume_window_minutes" => merged.volume_window_minutes = w.volume_window_minutes,
                "incident_reach" => merged.incident_reach = w.incident_reach,
                _ => {}
            }
        }
        check_watchlist(&mut v, &merged, "watchlist");
        let key = request_key(&mut v, &request.request_id, false, principal, "UpdateWatchlist", &request);
        v.into_result()?;
        let u = WatchlistUpdate {
            id: id.ok_or_else(unparsed)?,
            values: merged,
            fields,
            request: key,
            principal: principal.clone(),
        };
        self.store()?.update_watchlist(u).await
    }

    pub(super) async fn delete_watchlist(
        &self,
        principal: &Arc<Principal>,
        request: DeleteWatchlistRequest,
    ) -> Result<DeleteWatchlistResponse, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "watchlists");
        v.into_result()?;
        self.store()?.delete_watchlist(id.ok_or_else(unparsed)?.to_owned(), principal.clone()).await?;
        Ok(DeleteWatchlistResponse::default())
    }

    pub(super) async fn report_mention(
        &self,
        principal: &Arc<Principal>,
        request: ReportMentionRequest,
    ) -> Result<Mention, EscalationError> {
        principal.require(Permission::MentionsReport)?;
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, true, principal, "ReportMention", &request);
        let m = request.mention.clone().unwrap_or_default();
        if request.mention.is_none() {
            v.add("mention", "required");
        }
        let unit = OrgUnit::parse(&mut v, "mention.org_unit", &m.org_unit);
        Text::Name.check(&mut v, "mention.source", &m.source, true);
        Text::Uri.check(&mut v, "mention.url", &m.url, true);
        Text::Long.check(&mut v, "mention.text", &m.text, true);
        match m.publish_time.as_ref().map(from_timestamp) {
            None => v.add("mention.publish_time", "required"),
            Some(None) => v.add("mention.publish_time", "is not a valid timestamp"),
            Some(Some(t)) if t > self.store()?.now() + chrono::Duration::minutes(5) => {
                v.add("mention.publish_time", "must not lie in the future")
            }
            Some(Some(_)) => {}
        }
        if m.reach < 0 {
            v.add("mention.reach", "must not be negative");
        }
        v.into_result()?;
        let (Some(key), Some(unit)) = (key, unit) else { return Err(unparsed()) };
        if !principal.covers(unit.as_str()) {
            return Err(outside(unit.as_str()));
        }
        let m = Mention {
            org_unit: unit.into_string(),
            watchlists: Vec::new(),
            matched_terms: Vec::new(),
            incident: String::new(),
            ..m
        };
        self.store()?.report_mention(m, key, principal.clone()).await
    }

    pub(super) async fn list_mentions(
        &self,
        principal: &Principal,
        request: ListMentionsRequest,
    ) -> Result<ListMentionsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        let incident = (!request.incident.is_empty())
            .then(|| resource_id(&mut v, "incident", &request.incident, "incidents").map(|_| request.incident.clone()))
            .flatten();
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListMentionsResponse::default());
        }
        let q = ListQuery { scope: principal.scope(), after, limit: i64::from(size) + 1, ..ListQuery::default() };
        let mut mentions = self.store()?.mentions(&q, incident).await?;
        let next_page_token = paging::finish_page(&mut mentions, size, |m| (0, id_of(&m.name).to_owned()));
        Ok(ListMentionsResponse { mentions, next_page_token })
    }

    pub(super) async fn attach_mention(
        &self,
        principal: &Arc<Principal>,
        request: AttachMentionRequest,
    ) -> Result<Mention, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let mention = resource_id(&mut v, "name", &request.name, "mentions");
        let incident = resource_id(&mut v, "incident", &request.incident, "incidents");
        let key = request_key(&mut v, &request.request_id, false, principal, "AttachMention", &request);
        v.into_result()?;
        let (Some(mention), Some(incident)) = (mention, incident) else { return Err(unparsed()) };
        self.store()?.attach_mention(mention.to_owned(), incident.to_owned(), key, principal.clone()).await
    }

    pub(super) async fn create_response_template(
        &self,
        principal: &Arc<Principal>,
        request: CreateResponseTemplateRequest,
    ) -> Result<ResponseTemplate, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, true, principal, "CreateResponseTemplate", &request);
        let t = request.template.clone().unwrap_or_default();
        if request.template.is_none() {
            v.add("template", "required");
        }
        let unit = OrgUnit::parse(&mut v, "template.org_unit", &t.org_unit);
        if matches!(CrisisStage::try_from(t.stage), Err(_) | Ok(CrisisStage::Unspecified)) {
            v.add("template.stage", "must be FACT_CLARIFICATION, PROGRESS_UPDATES or SUMMARY");
        }
        Text::Name.check(&mut v, "template.title", &t.title, true);
        Text::Notice.check(&mut v, "template.text", &t.text, true);
        v.into_result()?;
        let (Some(key), Some(unit)) = (key, unit) else { return Err(unparsed()) };
        if !principal.covers(unit.as_str()) {
            return Err(outside(unit.as_str()));
        }
        let t = ResponseTemplate { org_unit: unit.into_string(), ..t };
        self.store()?.create_template(t, key, principal.clone()).await
    }

    pub(super) async fn list_response_templates(
        &self,
        principal: &Principal,
        request: ListResponseTemplatesRequest,
    ) -> Result<ListResponseTemplatesResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        if CrisisStage::try_from(request.stage).is_err() {
            v.add("stage", "unknown stage");
        }
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListResponseTemplatesResponse::default());
        }
        let templates = self.store()?.templates(principal.scope(), i64::from(request.stage)).await?;
        Ok(ListResponseTemplatesResponse { templates })
    }

    /// A registration checked (`prefix` names it in field paths) and turned into blind indexes.
    fn registration(
        &self,
        v: &mut Violations,
        prefix: &str,
        principal: &Principal,
        request: &RegisterVipRequest,
    ) -> Result<Option<Registration>, EscalationError> {
        let Some(key) = self.index_key.as_ref() else { return Err(EscalationError::VipRegisterUnconfigured) };
        let vip = request.vip.clone().unwrap_or_default();
        if request.vip.is_none() {
            v.add(format!("{prefix}vip"), "required");
        }
        let unit = OrgUnit::parse(v, &format!("{prefix}vip.org_unit"), &vip.org_unit);
        if unit.as_ref().is_some_and(|u| !u.is_institution()) {
            v.add(format!("{prefix}vip.org_unit"), "must be an institution, institutions/{id}");
        }
        Text::Name.check(v, &format!("{prefix}vip.crm_reference"), &vip.crm_reference, true);
        Text::Name.check(v, &format!("{prefix}vip.tier"), &vip.tier, false);
        Text::Name.check(v, &format!("{prefix}vip.account_manager"), &vip.account_manager, true);
        Text::Name.check(v, &format!("{prefix}vip.account_manager_department"), &vip.account_manager_department, false);
        if request.identifiers.is_empty() {
            v.add(format!("{prefix}identifiers"), "required: at least one identity document or phone");
        }
        for (i, id) in request.identifiers.iter().enumerate() {
            let field = format!("{prefix}identifiers[{i}]");
            match &id.identifier {
                Some(Identifier::IdDocument(d)) => {
                    if d.r#type <= 0 {
                        v.add(format!("{field}.id_document.type"), "required (intake's IdDocumentType number)");
                    }
                    Text::Name.check(v, &format!("{field}.id_document.number"), &d.number, true);
                }
                Some(Identifier::Phone(p)) => Text::Name.check(v, &format!("{field}.phone"), p, true),
                None => v.add(field, "set an id_document or a phone"),
            }
        }
        let Some(unit) = unit else { return Ok(None) };
        if !principal.covers(unit.as_str()) {
            return Err(outside(unit.as_str()));
        }
        let digests = register_digests(key, unit.as_str(), &request.identifiers);
        let mut kinds: Vec<String> = digests.iter().map(|(k, _)| (*k).to_owned()).collect();
        kinds.dedup();
        let vip = Vip {
            org_unit: unit.into_string(),
            crm_reference: vip.crm_reference.trim().to_owned(),
            identifier_kinds: kinds,
            ..vip
        };
        Ok(Some(Registration { vip, digests: digests.into_iter().map(|(_, d)| d).collect() }))
    }

    pub(super) async fn register_vip(
        &self,
        principal: &Arc<Principal>,
        request: RegisterVipRequest,
    ) -> Result<Vip, EscalationError> {
        principal.require(Permission::VipsManage)?;
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, false, principal, "RegisterVip", &request);
        let row = self.registration(&mut v, "", principal, &request)?;
        v.into_result()?;
        self.store()?.register_vip(row.ok_or_else(unparsed)?, key, principal.clone()).await
    }

    pub(super) async fn import_vips(
        &self,
        principal: &Arc<Principal>,
        request: ImportVipsRequest,
    ) -> Result<ImportVipsResponse, EscalationError> {
        principal.require(Permission::VipsManage)?;
        if request.vips.is_empty() || request.vips.len() > MAX_IMPORT {
            return Err(ServiceError::invalid("vips", format!("1 to {MAX_IMPORT} registrations")).into());
        }
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for (i, r) in request.vips.iter().enumerate() {
            let mut v = Violations::new();
            let row = match self.registration(&mut v, "", principal, r) {
                Ok(row) => row,
                Err(EscalationError::VipRegisterUnconfigured) => return Err(EscalationError::VipRegisterUnconfigured),
                Err(e) => {
                    errors.push(ImportVipsError { index: i as i32, reason: e.to_string() });
                    continue;
                }
            };
            match (v.into_result(), row) {
                (Ok(()), Some(row)) => rows.push(row),
                (Err(e), _) => errors.push(ImportVipsError { index: i as i32, reason: e.to_string() }),
                (Ok(()), None) => {
                    errors.push(ImportVipsError { index: i as i32, reason: "vip.org_unit: required".into() })
                }
            }
        }
        let registered = self.store()?.register_vips(rows, principal.clone()).await?;
        Ok(ImportVipsResponse { registered_count: registered.len() as i32, errors })
    }

    pub(super) async fn list_vips(
        &self,
        principal: &Principal,
        request: ListVipsRequest,
    ) -> Result<ListVipsResponse, EscalationError> {
        principal.require(Permission::VipsManage)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListVipsResponse::default());
        }
        let q = ListQuery { scope: principal.scope(), after, limit: i64::from(size) + 1, ..ListQuery::default() };
        let mut vips: Vec<Vip> =
            self.store()?.vips(&q).await?.into_iter().filter(|vip| principal.covers(&vip.org_unit)).collect();
        let next_page_token = paging::finish_page(&mut vips, size, |vip| (0, id_of(&vip.name).to_owned()));
        Ok(ListVipsResponse { vips, next_page_token })
    }

    pub(super) async fn delete_vip(
        &self,
        principal: &Arc<Principal>,
        request: DeleteVipRequest,
    ) -> Result<DeleteVipResponse, EscalationError> {
        principal.require(Permission::VipsManage)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "vips");
        v.into_result()?;
        self.store()?.delete_vip(id.ok_or_else(unparsed)?.to_owned(), principal.clone()).await?;
        Ok(DeleteVipResponse::default())
    }

    pub(super) async fn flag_malicious_complaint(
        &self,
        principal: &Arc<Principal>,
        request: FlagMaliciousComplaintRequest,
    ) -> Result<MaliciousFlag, EscalationError> {
        principal.require(Permission::IncidentsWrite)?;
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, true, principal, "FlagMaliciousComplaint", &request);
        let f = request.flag.clone().unwrap_or_default();
        if request.flag.is_none() {
            v.add("flag", "required");
        }
        resource_id(&mut v, "flag.case", &f.case, "cases");
        if f.grounds.is_empty() {
            v.add("flag.grounds", "required: at least one ground");
        }
        for (i, g) in f.grounds.iter().enumerate() {
            if matches!(MaliciousGround::try_from(*g), Err(_) | Ok(MaliciousGround::Unspecified)) {
                v.add(format!("flag.grounds[{i}]"), "unknown ground");
            }
        }
        Text::Long.check(&mut v, "flag.description", &f.description, true);
        if f.evidence.is_empty() {
            v.add("flag.evidence", "required: the evidence chain is preserved, at least one reference");
        }
        for (i, e) in f.evidence.iter().enumerate() {
            Text::Uri.check(&mut v, &format!("flag.evidence[{i}].uri"), &e.uri, true);
            if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                v.add(format!("flag.evidence[{i}].sha256"), "64 lower-case hex digits");
            }
            Text::Name.check(&mut v, &format!("flag.evidence[{i}].kind"), &e.kind, true);
            Text::Reason.check(&mut v, &format!("flag.evidence[{i}].description"), &e.description, false);
        }
        v.into_result()?;
        let flag = MaliciousFlag {
            case: f.case.clone(),
            grounds: f.grounds.clone(),
            description: f.description.trim().to_owned(),
            evidence: f.evidence.clone(),
            ..MaliciousFlag::default()
        };
        self.store()?.flag_malicious(flag, key.ok_or_else(unparsed)?, principal.clone()).await
    }

    async fn decide_flag(
        &self,
        principal: &Arc<Principal>,
        name: &str,
        approve: bool,
        note: &str,
        key: Option<crate::store::ops::RequestKey>,
        mut v: Violations,
    ) -> Result<MaliciousFlag, EscalationError> {
        principal.require(Permission::IncidentsApprove)?;
        let id = resource_id(&mut v, "name", name, "maliciousFlags");
        Text::Reason.check(&mut v, if approve { "note" } else { "reason" }, note, true);
        v.into_result()?;
        let d = FlagDecision {
            id: id.ok_or_else(unparsed)?.to_owned(),
            approve,
            note: note.trim().to_owned(),
            request: key,
            principal: principal.clone(),
        };
        self.store()?.decide_flag(d).await
    }

    pub(super) async fn approve_malicious_flag(
        &self,
        principal: &Arc<Principal>,
        request: ApproveMaliciousFlagRequest,
    ) -> Result<MaliciousFlag, EscalationError> {
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, false, principal, "ApproveMaliciousFlag", &request);
        self.decide_flag(principal, &request.name, true, &request.note, key, v).await
    }

    pub(super) async fn reject_malicious_flag(
        &self,
        principal: &Arc<Principal>,
        request: RejectMaliciousFlagRequest,
    ) -> Result<MaliciousFlag, EscalationError> {
        let mut v = Violations::new();
        let key = request_key(&mut v, &request.request_id, false, principal, "RejectMaliciousFlag", &request);
        self.decide_flag(principal, &request.name, false, &request.reason, key, v).await
    }

    pub(super) async fn get_malicious_flag(
        &self,
        principal: &Principal,
        request: GetMaliciousFlagRequest,
    ) -> Result<MaliciousFlag, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let id = resource_id(&mut v, "name", &request.name, "maliciousFlags");
        v.into_result()?;
        self.store()?
            .flag(id.ok_or_else(unparsed)?)
            .await?
            .filter(|f| principal.covers(&f.org_unit))
            .ok_or_else(|| EscalationError::not_found("malicious flag", request.name.clone()))
    }

    pub(super) async fn list_malicious_flags(
        &self,
        principal: &Principal,
        request: ListMaliciousFlagsRequest,
    ) -> Result<ListMaliciousFlagsResponse, EscalationError> {
        principal.require(Permission::IncidentsRead)?;
        let mut v = Violations::new();
        let size = paging::page_size(request.page_size, &mut v);
        let after = paging::decode_token(&request.page_token, &mut v);
        let case = (!request.case.is_empty()).then(|| resource_id(&mut v, "case", &request.case, "cases")).flatten();
        v.into_result()?;
        if principal.org_unit.is_empty() {
            return Ok(ListMaliciousFlagsResponse::default());
        }
        let store = self.store()?;
        let complaint = match case {
            Some(_) => match store.known_case(&request.case).await? {
                Some(known) => Some(known.complaint),
                None => return Ok(ListMaliciousFlagsResponse::default()),
            },
            None => None,
        };
        let q = ListQuery { scope: principal.scope(), after, limit: i64::from(size) + 1, ..ListQuery::default() };
        let mut flags = store.flags(&q, complaint).await?;
        let next_page_token = paging::finish_page(&mut flags, size, |f| (0, id_of(&f.name).to_owned()));
        Ok(ListMaliciousFlagsResponse { flags, next_page_token })
    }
}
