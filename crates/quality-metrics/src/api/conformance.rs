//! Root causes and improvement actions through the API on both stores: an action done for one
//! cause shows its effect, owners are reminded once per due date, and bad input names its
//! fields.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use redress_platform::db::DatabaseConfig;
use redress_platform::principal::Principal;
use redress_platform::ready::Ready;
use redress_platform::testing::committed_events;
use redress_platform::time::{Clock, to_timestamp};
use redress_proto::redress::common::v1::Event;
use redress_proto::redress::intake::v1::{Classification, ComplaintAccepted};
use redress_proto::redress::metrics::v1::{
    ActionStatus, ActionTarget, CreateImprovementActionRequest, CreateRootCauseRequest, Factor, FishboneCategory,
    GetActionEffectRequest, ImprovementAction, ImprovementActionReminder, ListImprovementActionsRequest, RootCause,
    UpdateImprovementActionRequest,
};
use tokio_util::sync::CancellationToken;

use super::MetricsApi;
use crate::error::MetricsError;
use crate::store::{Improvement, MetricsStore};

const SH: &str = "institutions/bank/branches/sh";

async fn open(config: &DatabaseConfig) -> Arc<dyn MetricsStore> {
    let calendars = crate::store::conformance_calendars();
    crate::open_store(config, calendars, &redress_platform::host::Supervisor::detached()).await.expect("store opens")
}

/// Noon in Shanghai on `day`.
fn noon(day: &str) -> DateTime<Utc> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    Utc.from_utc_datetime(&date.and_hms_opt(4, 0, 0).unwrap())
}

fn manager() -> Principal {
    Principal {
        subject: "user:quality".to_owned(),
        roles: vec!["quality_manager".to_owned()],
        org_unit: "institutions/bank".to_owned(),
        department: String::new(),
        permissions: ["cases.read", "cases.write"].map(str::to_owned).to_vec(),
        staff_id: String::new(),
    }
}

fn accepted(position: i64, cause: &str, received: DateTime<Utc>, recurrence: bool) -> Event {
    let payload = ComplaintAccepted {
        complaint: format!("complaints/{position}"),
        channel: 3,
        receive_time: Some(to_timestamp(received)),
        org_unit: SH.to_owned(),
        grade: 1,
        recurrence_of: if recurrence { "complaints/0".to_owned() } else { String::new() },
        classification: Some(Classification { cause: cause.to_owned(), ..Default::default() }),
        ..Default::default()
    };
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "redress.intake.v1.ComplaintAccepted".to_owned(),
        aggregate: payload.complaint.clone(),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        org_unit: SH.to_owned(),
        ..Default::default()
    }
}

fn api(store: &Arc<dyn MetricsStore>, clock: &Clock) -> MetricsApi {
    MetricsApi::new(Ready::from(store.clone()), CancellationToken::new()).with_clock(clock.clone())
}

fn action(due: &str) -> ImprovementAction {
    ImprovementAction {
        title: "年费扣收前短信告知".to_owned(),
        owner: "user:li".to_owned(),
        department: "cards".to_owned(),
        due_date: due.to_owned(),
        target: Some(ActionTarget { org_unit: SH.to_owned(), dimension: 0, values: vec!["C05".to_owned()] }),
        ..Default::default()
    }
}

fn status(name: &str, to: ActionStatus, request_id: &str) -> UpdateImprovementActionRequest {
    UpdateImprovementActionRequest {
        action: Some(ImprovementAction { name: name.to_owned(), ..Default::default() }),
        update_mask: vec!["status".to_owned()],
        status: to as i32,
        request_id: request_id.to_owned(),
        ..Default::default()
    }
}

redress_platform::conformance_suite!(
    open = open;
    an_action_done_for_one_cause_shows_its_effect,
    owners_are_reminded_once_per_due_date,
    bad_root_causes_and_actions_name_their_fields,
);

async fn an_action_done_for_one_cause_shows_its_effect(store: Arc<dyn MetricsStore>) {
    // Before: 12 fee complaints (C05) in the 30 days before 10 June, 4 of them repeats, and
    // 5 about service (C01). After: 3 fee complaints in the 6 days from 10 June, no repeats.
    let mut events = Vec::new();
    for i in 0..12 {
        events.push(accepted(
            events.len() as i64 + 1,
            "C05",
            noon("2026-05-12") + chrono::TimeDelta::days(i * 2),
            i < 4,
        ));
    }
    for i in 0..5 {
        events.push(accepted(events.len() as i64 + 1, "C01", noon("2026-05-20") + chrono::TimeDelta::days(i), false));
    }
    for day in ["2026-06-10", "2026-06-12", "2026-06-15"] {
        events.push(accepted(events.len() as i64 + 1, "C05", noon(day), false));
    }
    // One far outside both windows.
    events.push(accepted(events.len() as i64 + 1, "C05", noon("2026-01-05"), true));
    let (_, epoch) = store.position("intake").await.unwrap();
    store.apply("intake", epoch, events).await.unwrap();

    let clock = Clock::fixed(noon("2026-05-25"));
    let api = api(&store, &clock);
    let me = manager();
    let root = RootCause {
        org_unit: SH.to_owned(),
        r#case: "cases/0193".to_owned(),
        problem: "年费扣收引发集中投诉".to_owned(),
        whys: vec!["客户不知道会扣年费".to_owned(), "扣费前未通知".to_owned(), "系统无通知环节".to_owned()],
        factors: vec![
            Factor {
                category: FishboneCategory::System as i32, description: "扣费批处理无短信接口".to_owned()
            },
            Factor { category: FishboneCategory::Process as i32, description: "开卡时未强调年费".to_owned() },
        ],
        cause_codes: vec!["C05".to_owned()],
        systemic: true,
        ..Default::default()
    };
    let request = CreateRootCauseRequest { request_id: "rc-1".to_owned(), root_cause: Some(root) };
    let recorded = api.create_root_cause(&me, request.clone()).await.unwrap();
    assert!(recorded.name.starts_with("rootCauses/"));
    assert_eq!(recorded.recorded_by, "user:quality");
    assert_eq!(api.create_root_cause(&me, request).await.unwrap(), recorded, "a retry records nothing more");

    let create = CreateImprovementActionRequest {
        request_id: "a-1".to_owned(),
        action: Some(ImprovementAction { root_cause: recorded.name.clone(), ..action("2026-06-20") }),
    };
    let created = api.create_improvement_action(&me, create).await.unwrap();
    assert_eq!(created.status, ActionStatus::Planned as i32);
    let effect = GetActionEffectRequest { name: created.name.clone(), window_days: 30 };
    let refused = api.get_action_effect(&me, effect.clone()).await.unwrap_err();
    assert!(matches!(refused, MetricsError::ActionNotDone), "{refused:?}");

    api.update_improvement_action(&me, status(&created.name, ActionStatus::InProgress, "a-2")).await.unwrap();
    clock.set(noon("2026-06-10"));
    let done = api.update_improvement_action(&me, status(&created.name, ActionStatus::Done, "a-3")).await.unwrap();
    assert_eq!((done.status, done.done_date.as_str()), (ActionStatus::Done as i32, "2026-06-10"));
    let closed = api.update_improvement_action(&me, status(&created.name, ActionStatus::Cancelled, "a-4")).await;
    assert!(matches!(closed, Err(MetricsError::Action(_))), "a done action changes no more");

    clock.set(noon("2026-06-15"));
    let effect = api.get_action_effect(&me, effect).await.unwrap();
    let window = |p: &Option<redress_proto::redress::metrics::v1::Period>| {
        let p = p.clone().unwrap();
        (p.start_date, p.end_date)
    };
    assert_eq!(window(&effect.before), ("2026-05-11".to_owned(), "2026-06-09".to_owned()));
    assert_eq!(window(&effect.after), ("2026-06-10".to_owned(), "2026-06-15".to_owned()));
    assert_eq!((effect.volume_before, effect.recurrences_before), (12, 4));
    assert_eq!((effect.volume_after, effect.recurrences_after), (3, 0));
    assert!((effect.daily_before - 0.4).abs() < 1e-9 && (effect.daily_after - 0.5).abs() < 1e-9);
    assert!((effect.volume_change_percent - 25.0).abs() < 1e-9);
    assert!((effect.recurrence_before - 100.0 / 3.0).abs() < 1e-9 && effect.recurrence_after == 0.0);

    // The feed announced the root cause and each change of the action.
    let announced = committed_events(store.feed(), 0, 100).await.unwrap();
    let types: Vec<&str> = announced.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "redress.metrics.v1.RootCauseRecorded",
            "redress.metrics.v1.ImprovementActionChanged",
            "redress.metrics.v1.ImprovementActionChanged",
            "redress.metrics.v1.ImprovementActionChanged",
        ]
    );
    // Another branch's manager does not see it.
    let other = Principal { org_unit: "institutions/bank/branches/bj".to_owned(), ..manager() };
    let listed = api.list_improvement_actions(&other, ListImprovementActionsRequest::default()).await.unwrap();
    assert!(listed.actions.is_empty());
    let effect = GetActionEffectRequest { name: created.name.clone(), window_days: 30 };
    assert!(matches!(api.get_action_effect(&other, effect).await, Err(MetricsError::NotFound { .. })));
}

async fn owners_are_reminded_once_per_due_date(store: Arc<dyn MetricsStore>) {
    let clock = Clock::fixed(noon("2026-06-01"));
    let api = api(&store, &clock);
    let me = manager();
    let create = CreateImprovementActionRequest { request_id: "r-1".to_owned(), action: Some(action("2026-06-10")) };
    let created = api.create_improvement_action(&me, create).await.unwrap();
    let remind = |now: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let mut sent = Vec::new();
            for id in store.actions_to_remind(now, 10).await.unwrap() {
                if let Some(bytes) = store.improve(None, Improvement::Remind { id, now }).await.unwrap() {
                    sent.push(ImprovementAction::decode(bytes.as_slice()).unwrap());
                }
            }
            sent
        }
    };
    assert!(remind(noon("2026-06-06")).await.is_empty(), "nothing before three days ahead");
    let due = remind(noon("2026-06-07")).await;
    assert_eq!(due.len(), 1);
    assert!(due[0].due_reminded && !due[0].overdue);
    assert!(remind(noon("2026-06-09")).await.is_empty(), "reminded once");
    let overdue = remind(noon("2026-06-11")).await;
    assert!(overdue.len() == 1 && overdue[0].overdue);
    assert!(remind(noon("2026-06-30")).await.is_empty());
    let events = committed_events(store.feed(), 0, 100).await.unwrap();
    let reminders: Vec<ImprovementActionReminder> = events
        .iter()
        .filter(|e| e.event_type == "redress.metrics.v1.ImprovementActionReminder")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    let seen: Vec<(bool, Vec<String>)> = reminders.into_iter().map(|r| (r.overdue, r.recipients)).collect();
    assert_eq!(
        seen,
        [(false, vec!["user:li".to_owned()]), (true, vec!["user:li".to_owned(), "supervisor:cards".to_owned()])]
    );
    // A new due date, reminded anew; a stale etag is refused.
    clock.set(noon("2026-06-12"));
    let moved = UpdateImprovementActionRequest {
        action: Some(ImprovementAction {
            name: created.name.clone(),
            due_date: "2026-06-30".to_owned(),
            ..Default::default()
        }),
        update_mask: vec!["due_date".to_owned()],
        etag: created.etag.clone(),
        ..Default::default()
    };
    let stale = api.update_improvement_action(&me, moved.clone()).await.unwrap_err();
    assert!(matches!(stale, MetricsError::EtagMismatch { .. }), "{stale:?}");
    let moved =
        api.update_improvement_action(&me, UpdateImprovementActionRequest { etag: String::new(), ..moved }).await;
    let moved = moved.unwrap();
    assert!(!moved.overdue && !moved.due_reminded);
    assert_eq!(remind(noon("2026-06-27")).await.len(), 1);
}

async fn bad_root_causes_and_actions_name_their_fields(store: Arc<dyn MetricsStore>) {
    let api = api(&store, &Clock::fixed(noon("2026-06-01")));
    let me = manager();
    let root = RootCause { org_unit: SH.to_owned(), factors: vec![Factor::default()], ..Default::default() };
    let err = api
        .create_root_cause(&me, CreateRootCauseRequest { request_id: String::new(), root_cause: Some(root) })
        .await
        .unwrap_err();
    let fields: Vec<String> = redress_platform::ApiError::violations(&err).into_iter().map(|v| v.field).collect();
    for field in
        ["request_id", "root_cause.case", "root_cause.whys", "root_cause.factors[0].category", "root_cause.problem"]
    {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    let bad = ImprovementAction { due_date: "30 June".to_owned(), target: None, ..action("") };
    let err = api
        .create_improvement_action(
            &me,
            CreateImprovementActionRequest { request_id: "x".to_owned(), action: Some(bad) },
        )
        .await
        .unwrap_err();
    let fields: Vec<String> = redress_platform::ApiError::violations(&err).into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["action.target", "action.target.org_unit", "action.due_date", "action.target.values"]);
    let outside = ImprovementAction {
        target: Some(ActionTarget {
            org_unit: "institutions/other".to_owned(),
            dimension: 0,
            values: vec!["C01".to_owned()],
        }),
        ..action("2026-07-01")
    };
    let err = api
        .create_improvement_action(
            &me,
            CreateImprovementActionRequest { request_id: "y".to_owned(), action: Some(outside) },
        )
        .await
        .unwrap_err();
    assert_eq!(redress_platform::ApiError::kind(&err), redress_platform::ErrorKind::PermissionDenied);
}
