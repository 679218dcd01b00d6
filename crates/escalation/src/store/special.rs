//! Store operations of the special complaints beyond groups: public opinion (watchlists,
//! mentions, response templates), the VIP register and malicious-complaint flags. Written once
//! over [`EscTx`], like `ops`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_platform::events::NewEvent;
use redress_platform::principal::Principal;
use redress_platform::time::{from_timestamp, to_micros, to_timestamp};
use redress_proto::redress::escalation::v1::{
    Alert, AlertKind, IncidentKind, MaliciousFlag, MaliciousFlagApproved, MaliciousFlagState, Mention, MentionAlert,
    ResponseTemplate, TimelineEntry, TimelineEntryKind, Vip, Watchlist,
};

use super::ops::{
    RequestKey, check_us, etag, incident_changed, incident_in_scope, new_name, raise_alert, raise_for, remember,
    replayed,
};
use super::tx::EscTx;
use super::{Known, Stored};
use crate::domain::actions::{CaseAction, id_of};
use crate::domain::ladder::Raise;
use crate::domain::{Actor, Change, DomainError, incident, malicious, media, user_recipient, vip};
use crate::error::EscalationError;
use crate::rules::Rules;

type Result<T> = std::result::Result<T, EscalationError>;

pub async fn create_watchlist(
    tx: &mut dyn EscTx,
    mut watchlist: Watchlist,
    request: RequestKey,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Watchlist> {
    if let Some(done) = replayed::<Watchlist>(tx, Some(&request)).await? {
        return Ok(done);
    }
    watchlist.name = new_name("watchlists");
    watchlist.created_by = principal.subject.clone();
    watchlist.create_time = Some(to_timestamp(now));
    watchlist.update_time = watchlist.create_time;
    watchlist.etag = etag(1);
    tx.put_watchlist(&watchlist, None).await?;
    remember(tx, Some(&request), &watchlist, now).await?;
    Ok(watchlist)
}

/// A change to a watchlist: the fields named, from `values`.
pub struct WatchlistUpdate {
    pub id: String,
    pub values: Watchlist,
    pub fields: Vec<String>,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn update_watchlist(tx: &mut dyn EscTx, u: WatchlistUpdate, now: DateTime<Utc>) -> Result<Watchlist> {
    let Stored { record: mut w, version } = tx
        .load_watchlist(&u.id)
        .await?
        .filter(|s| u.principal.covers(&s.record.org_unit))
        .ok_or_else(|| EscalationError::not_found("watchlist", format!("watchlists/{}", u.id)))?;
    if let Some(done) = replayed::<Watchlist>(tx, u.request.as_ref()).await? {
        return Ok(done);
    }
    for field in &u.fields {
        match field.as_str() {
            "display_name" => w.display_name = u.values.display_name.clone(),
            "keywords" => w.keywords = u.values.keywords.clone(),
            "entities" => w.entities = u.values.entities.clone(),
            "volume_threshold" => w.volume_threshold = u.values.volume_threshold,
            "volume_window_minutes" => w.volume_window_minutes = u.values.volume_window_minutes,
            "incident_reach" => w.incident_reach = u.values.incident_reach,
            _ => {}
        }
    }
    w.update_time = Some(to_timestamp(now));
    w.etag = etag(version + 1);
    tx.put_watchlist(&w, Some(version)).await?;
    remember(tx, u.request.as_ref(), &w, now).await?;
    Ok(w)
}

pub async fn delete_watchlist(tx: &mut dyn EscTx, id: String, principal: Arc<Principal>) -> Result<()> {
    let found = tx.load_watchlist(&id).await?.filter(|s| principal.covers(&s.record.org_unit));
    if found.is_none() || !tx.delete_watchlist(&id).await? {
        return Err(EscalationError::not_found("watchlist", format!("watchlists/{id}")));
    }
    Ok(())
}

/// A new incident of `kind` for `org_unit`, proposed by the service.
fn proposed(
    kind: IncidentKind,
    org_unit: &str,
    title: String,
    summary: String,
    actor: &Actor,
) -> redress_proto::redress::escalation::v1::Incident {
    incident::open(new_name("incidents"), kind, org_unit.to_owned(), title, summary, None, actor)
}

/// Takes a mention: matches it against the watchlists covering its unit, raises keyword and
/// volume alerts (each once), and by reach or volume opens or joins the watchlist's media
/// incident.
pub async fn report_mention(
    tx: &mut dyn EscTx,
    mut mention: Mention,
    request: RequestKey,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Mention> {
    if let Some(done) = replayed::<Mention>(tx, Some(&request)).await? {
        return Ok(done);
    }
    mention.name = new_name("mentions");
    mention.reported_by = principal.subject.clone();
    mention.report_time = Some(to_timestamp(now));
    mention.incident.clear();
    let publish = mention.publish_time.as_ref().and_then(from_timestamp).unwrap_or(now);
    let actor = Actor::service(now);
    let mut events = Vec::new();
    let mut incidents: Vec<String> = Vec::new();
    for watchlist in tx.watchlists_covering(&mention.org_unit).await? {
        let Some(terms) = media::matched_terms(&watchlist, &mention.text) else { continue };
        mention.watchlists.push(watchlist.name.clone());
        for t in &terms {
            if !mention.matched_terms.contains(t) {
                mention.matched_terms.push(t.clone());
            }
        }
        let window = chrono::Duration::minutes(i64::from(watchlist.volume_window_minutes.max(1)));
        let count = tx
            .record_mention_match(
                id_of(&watchlist.name),
                id_of(&mention.name),
                to_micros(publish),
                to_micros(publish - window),
                to_micros(publish),
            )
            .await?;
        let keyword = media::keyword_alert(new_name("alerts"), &watchlist, &mention, &terms, now);
        if tx.insert_alert(&keyword, &format!("mention:{}:{}", id_of(&mention.name), id_of(&watchlist.name))).await? {
            events.push(mention_alert(&keyword, &mention, &watchlist));
        }
        let volume = media::reaches_volume(&watchlist, count);
        if volume {
            let alert = media::volume_alert(new_name("alerts"), &watchlist, &mention, count, now);
            let cause = format!(
                "volume:{}:{}",
                id_of(&watchlist.name),
                media::volume_window(publish, watchlist.volume_window_minutes)
            );
            if tx.insert_alert(&alert, &cause).await? {
                events.push(mention_alert(&alert, &mention, &watchlist));
            }
        }
        if volume || media::reaches_incident(&watchlist, &mention) {
            let id = match tx.open_incident_of_watchlist(&watchlist.name).await? {
                Some(id) => id,
                None => {
                    let title = format!("舆情：{}", watchlist.display_name);
                    let summary = format!("由{}的相关报道触发（{}）", mention.source, terms.join("、"));
                    let mut opened = proposed(IncidentKind::Media, &watchlist.org_unit, title, summary, &actor);
                    opened.watchlist = watchlist.name.clone();
                    opened.etag = etag(1);
                    tx.insert_incident(&opened, None).await?;
                    let change = Change::new("incident.proposed", [("watchlist", watchlist.name.clone())]);
                    events.push(incident_changed(&opened, &change, &actor));
                    id_of(&opened.name).to_owned()
                }
            };
            if !incidents.contains(&id) {
                incidents.push(id);
            }
        }
    }
    if let Some(first) = incidents.first() {
        mention.incident = format!("incidents/{first}");
    }
    tx.put_mention(&mention, true).await?;
    for id in incidents {
        attach(tx, &mention, &id, &actor, &mut events).await?;
    }
    tx.append_events(&events).await?;
    remember(tx, Some(&request), &mention, now).await?;
    Ok(mention)
}

fn mention_alert(alert: &Alert, mention: &Mention, watchlist: &Watchlist) -> NewEvent {
    let event = MentionAlert {
        alert: Some(alert.clone()),
        mention: Some(mention.clone()),
        watchlist: watchlist.name.clone(),
        kind: alert.kind,
    };
    NewEvent::new(&alert.name, &alert.org_unit, &event)
}

/// Adds a mention to an incident's count and timeline.
async fn attach(
    tx: &mut dyn EscTx,
    mention: &Mention,
    incident_id: &str,
    actor: &Actor,
    events: &mut Vec<NewEvent>,
) -> Result<()> {
    let Some(Stored { record: mut incident, version }) = tx.load_incident(incident_id).await? else { return Ok(()) };
    incident.mention_count += 1;
    incident.timeline.push(TimelineEntry {
        kind: TimelineEntryKind::System as i32,
        time: Some(to_timestamp(actor.now)),
        channel: mention.source.clone(),
        text: format!("舆情：{}（传播量 {}）", mention.url, mention.reach),
        recorded_by: actor.subject.clone(),
        ..TimelineEntry::default()
    });
    incident::touch(&mut incident, actor.now);
    let change = Change::new("incident.mention_attached", [("mention", mention.name.clone())]);
    let event = incident_changed(&incident, &change, actor);
    incident.etag = etag(version + 1);
    tx.save_incident(&incident, version, check_us(incident::next_check(&incident))).await?;
    events.push(event);
    Ok(())
}

pub async fn attach_mention(
    tx: &mut dyn EscTx,
    mention_id: String,
    incident_id: String,
    request: Option<RequestKey>,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Mention> {
    let incident = incident_in_scope(tx, &incident_id, &principal).await?.record;
    let mut mention = tx
        .load_mention(&mention_id)
        .await?
        .filter(|m| principal.covers(&m.org_unit))
        .ok_or_else(|| EscalationError::not_found("mention", format!("mentions/{mention_id}")))?;
    if let Some(done) = replayed::<Mention>(tx, request.as_ref()).await? {
        return Ok(done);
    }
    if !incident::is_open(&incident) {
        return Err(DomainError::IncidentState { action: "attaching a mention", current: incident.state() }.into());
    }
    if mention.incident == incident.name {
        return Ok(mention);
    }
    mention.incident = incident.name.clone();
    tx.put_mention(&mention, false).await?;
    let mut events = Vec::new();
    attach(tx, &mention, &incident_id, &Actor::of(&principal, now), &mut events).await?;
    tx.append_events(&events).await?;
    remember(tx, request.as_ref(), &mention, now).await?;
    Ok(mention)
}

pub async fn create_template(
    tx: &mut dyn EscTx,
    mut template: ResponseTemplate,
    request: RequestKey,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<ResponseTemplate> {
    if let Some(done) = replayed::<ResponseTemplate>(tx, Some(&request)).await? {
        return Ok(done);
    }
    template.name = new_name("responseTemplates");
    template.created_by = principal.subject.clone();
    template.create_time = Some(to_timestamp(now));
    tx.insert_template(&template).await?;
    remember(tx, Some(&request), &template, now).await?;
    Ok(template)
}

/// A VIP as registered: the record and its blind indexes.
pub struct Registration {
    pub vip: Vip,
    pub digests: Vec<String>,
}

/// Registers VIPs (or updates them, by CRM reference), all in one transaction.
pub async fn register_vips(
    tx: &mut dyn EscTx,
    rows: Vec<Registration>,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Vec<Vip>> {
    let mut out = Vec::new();
    for Registration { mut vip, digests } in rows {
        let existing = tx.vip_by_reference(&vip.org_unit, &vip.crm_reference).await?;
        vip.name = existing.as_ref().map_or_else(|| new_name("vips"), |v| v.name.clone());
        vip.update_time = Some(to_timestamp(now));
        vip.updated_by = principal.subject.clone();
        tx.put_vip(&vip, &digests, existing.is_none()).await?;
        out.push(vip);
    }
    Ok(out)
}

pub async fn register_vip(
    tx: &mut dyn EscTx,
    row: Registration,
    request: Option<RequestKey>,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<Vip> {
    if let Some(done) = replayed::<Vip>(tx, request.as_ref()).await? {
        return Ok(done);
    }
    let vip = register_vips(tx, vec![row], principal, now).await?.into_iter().next().unwrap_or_default();
    remember(tx, request.as_ref(), &vip, now).await?;
    Ok(vip)
}

pub async fn delete_vip(tx: &mut dyn EscTx, id: String, principal: Arc<Principal>) -> Result<()> {
    // Checked before deleting: one of another unit is not there for this caller.
    let name = format!("vips/{id}");
    match tx.delete_vip(&id).await? {
        Some(vip) if principal.covers(&vip.org_unit) => Ok(()),
        // Another unit's: the transaction is rolled back with the error, and the VIP stays.
        Some(_) | None => Err(EscalationError::not_found("vip", name)),
    }
}

/// Routes a VIP's complaint (D-ESC-4), once: the senior team at once (the ladder at senior
/// management), an alert to senior management and the account manager, and the tasks.
pub(crate) async fn route_vip(
    tx: &mut dyn EscTx,
    known: &Known,
    digests: &[String],
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<()> {
    let institution = crate::domain::institution_of(&known.org_unit);
    let Some(vip) = tx.vip_of(&institution, digests).await? else { return Ok(()) };
    if !tx.record_vip_match(&known.complaint, id_of(&vip.name), to_micros(now)).await? {
        return Ok(());
    }
    let actor = Actor::service(now);
    let tier = if vip.tier.is_empty() { "VIP".to_owned() } else { vip.tier.clone() };
    let reason = format!("重要客户（{tier}）投诉：绿色通道，立即由资深团队处理");
    raise_for(
        tx,
        known,
        Raise::AtLeast(redress_proto::redress::escalation::v1::EscalationLevel::SeniorManagement),
        reason.clone(),
        &actor,
        rules,
    )
    .await?;
    let alert = Alert {
        name: new_name("alerts"),
        kind: AlertKind::Vip as i32,
        org_unit: known.org_unit.clone(),
        recipients: vec!["role:senior_manager".to_owned(), user_recipient(&vip.account_manager)],
        reason,
        evidence: vec![format!("crm_reference={}", vip.crm_reference)],
        complaint: known.complaint.clone(),
        create_time: Some(to_timestamp(now)),
        ..Alert::default()
    };
    raise_alert(tx, &alert, &format!("vip:{}", known.complaint)).await?;
    for (n, request) in
        vip::tasks(&rules.vip, &tier, &vip.account_manager, &vip.account_manager_department).into_iter().enumerate()
    {
        let action = CaseAction {
            key: format!("vip:{}:{n}", id_of(&known.complaint)),
            complaint: known.complaint.clone(),
            org_unit: known.org_unit.clone(),
            request,
        };
        tx.insert_action(&action, to_micros(now)).await?;
    }
    Ok(())
}

pub async fn flag_malicious(
    tx: &mut dyn EscTx,
    mut flag: MaliciousFlag,
    request: RequestKey,
    principal: Arc<Principal>,
    now: DateTime<Utc>,
) -> Result<MaliciousFlag> {
    let known = tx
        .complaint_of_case(&flag.case)
        .await?
        .filter(|k| principal.covers(&k.org_unit))
        .ok_or_else(|| EscalationError::not_found("case", flag.case.clone()))?;
    if let Some(done) = replayed::<MaliciousFlag>(tx, Some(&request)).await? {
        return Ok(done);
    }
    flag.name = new_name("maliciousFlags");
    flag.complaint = known.complaint.clone();
    flag.org_unit = known.org_unit.clone();
    flag.state = MaliciousFlagState::Proposed as i32;
    flag.proposed_by = principal.subject.clone();
    flag.propose_time = Some(to_timestamp(now));
    flag.etag = etag(1);
    tx.put_flag(&flag, None).await?;
    remember(tx, Some(&request), &flag, now).await?;
    Ok(flag)
}

/// Approves or rejects a proposed flag.
pub struct FlagDecision {
    pub id: String,
    pub approve: bool,
    pub note: String,
    pub request: Option<RequestKey>,
    pub principal: Arc<Principal>,
}

pub async fn decide_flag(
    tx: &mut dyn EscTx,
    d: FlagDecision,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<MaliciousFlag> {
    let Stored { record: mut flag, version } = tx
        .load_flag(&d.id)
        .await?
        .filter(|s| d.principal.covers(&s.record.org_unit))
        .ok_or_else(|| EscalationError::not_found("malicious flag", format!("maliciousFlags/{}", d.id)))?;
    if let Some(done) = replayed::<MaliciousFlag>(tx, d.request.as_ref()).await? {
        return Ok(done);
    }
    let actor = Actor::of(&d.principal, now);
    if d.approve {
        let (_, requests) = malicious::approve(&mut flag, d.note, &rules.legal, &actor)?;
        for (n, request) in requests.into_iter().enumerate() {
            let action = CaseAction {
                key: format!("malicious:{}:{n}", d.id),
                complaint: flag.complaint.clone(),
                org_unit: flag.org_unit.clone(),
                request,
            };
            tx.insert_action(&action, to_micros(now)).await?;
        }
    } else {
        malicious::reject(&mut flag, d.note, &actor)?;
    }
    flag.etag = etag(version + 1);
    tx.put_flag(&flag, Some(version)).await?;
    if d.approve {
        let event = MaliciousFlagApproved { flag: Some(flag.clone()) };
        tx.append_events(&[NewEvent::new(&flag.name, &flag.org_unit, &event)]).await?;
    }
    remember(tx, d.request.as_ref(), &flag, now).await?;
    Ok(flag)
}

/// The crisis stage `policy` with the newest stored template for the incident's unit, when
/// there is one.
pub(crate) async fn stage_with_template(
    tx: &mut dyn EscTx,
    org_unit: &str,
    policy: &incident::StagePolicy,
) -> Result<incident::StagePolicy> {
    let mut stage = policy.clone();
    if let Some(t) = tx.template_for(org_unit, policy.stage as i32).await? {
        stage.template = incident::Template { name: t.name, text: t.text };
    }
    Ok(stage)
}
