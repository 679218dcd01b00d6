//! One conformance suite for both metrics stores (PostgreSQL when `REDRESS_TEST_POSTGRES_URL`
//! is set; otherwise those runs report that they skipped).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use redress_platform::db::DatabaseConfig;
use redress_platform::dead_letters::Replay;
use redress_platform::principal::Principal;
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{
    Case, CaseChanged, CaseClosed, CaseLink, CaseOpened, CaseState, ClockBreach, LinkType, Money, Resolution,
    ResolutionType, Survey,
};
use redress_proto::redress::common::v1::{Event, ListDeadLettersRequest, ReplayDeadLetterRequest};
use redress_proto::redress::escalation::v1::CaseLinkedToIncident;
use redress_proto::redress::intake::v1::{
    Classification, ComplaintAccepted, ComplaintReclassified, ComplaintWithdrawn,
};
use redress_proto::redress::metrics::v1::{Dimension, Granularity, Kpi, KpiValue};

use super::{CASE_CONSUMER, INTAKE_CONSUMER, MetricsStore, Rebuilt, RequestKey, StoredDenominators, Write};
use crate::domain::fact::Calendars;
use crate::domain::period::{Days, parse_day};
use crate::read::{Filter, HotspotQuery, Reader};

async fn open(config: &DatabaseConfig) -> Arc<dyn MetricsStore> {
    crate::open_store(config, calendars(), &redress_platform::host::Supervisor::detached()).await.expect("store opens")
}

pub(crate) fn calendars() -> Arc<dyn Calendars> {
    Arc::new(redress_calendar::Institutions::single(
        redress_calendar::DeadlineCalculator::china(),
        redress_calendar::SlaPolicy::default(),
    ))
}

const BANK: &str = "institutions/bank";
const SH: &str = "institutions/bank/branches/sh";
const BJ: &str = "institutions/bank/branches/bj";

fn at(day: &str, hour: u32) -> DateTime<Utc> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    // Shanghai is UTC+8: local hour `hour`.
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap()) + chrono::TimeDelta::hours(i64::from(hour) - 8)
}

fn event(position: i64, aggregate: &str, unit: &str, payload: &impl prost::Name) -> Event {
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: payload.full_name_of(),
        aggregate: aggregate.to_owned(),
        payload: Some(prost_types::Any::from_msg(payload).unwrap()),
        org_unit: unit.to_owned(),
        ..Default::default()
    }
}

/// `full_name` of a message value.
trait FullName {
    fn full_name_of(&self) -> String;
}

impl<M: prost::Name> FullName for M {
    fn full_name_of(&self) -> String {
        M::full_name()
    }
}

fn accepted(position: i64, n: u32, unit: &str, channel: i32, cause: &str, received: DateTime<Utc>) -> Event {
    let payload = ComplaintAccepted {
        complaint: format!("complaints/{n}"),
        complaint_number: format!("{n}"),
        channel,
        receive_time: Some(to_timestamp(received)),
        org_unit: unit.to_owned(),
        grade: 1,
        classification: Some(Classification {
            business_type: "B02".to_owned(),
            cause: cause.to_owned(),
            rights: vec!["R4".to_owned()],
            ..Default::default()
        }),
        ..Default::default()
    };
    event(position, &payload.complaint.clone(), unit, &payload)
}

/// An acceptance naming the product complained about.
fn of_product(mut accepted: Event, product: &str) -> Event {
    let any = accepted.payload.as_mut().unwrap();
    let mut payload: ComplaintAccepted = any.to_msg().unwrap();
    payload.product = product.to_owned();
    *any = prost_types::Any::from_msg(&payload).unwrap();
    accepted
}

fn case(n: u32, unit: &str, received: DateTime<Utc>, version: i64) -> Case {
    Case {
        name: format!("cases/{n}"),
        complaint: format!("complaints/{n}"),
        org_unit: unit.to_owned(),
        channel: 3,
        grade: 1,
        receive_time: Some(to_timestamp(received)),
        state: CaseState::Accepted as i32,
        etag: format!("\"{version}\""),
        ..Default::default()
    }
}

fn opened(position: i64, c: &Case) -> Event {
    event(position, &c.name, &c.org_unit, &CaseOpened { case: Some(c.clone()) })
}

fn changed(position: i64, c: &Case) -> Event {
    event(position, &c.name, &c.org_unit, &CaseChanged { case: Some(c.clone()), ..Default::default() })
}

fn closed(position: i64, c: &Case) -> Event {
    event(position, &c.name, &c.org_unit, &CaseClosed { case: Some(c.clone()), ..Default::default() })
}

/// A case decided at `decided` (compensation in fen), surveyed, then closed at `decided` + 1 day.
fn decided_case(
    n: u32,
    unit: &str,
    received: DateTime<Utc>,
    decided: DateTime<Utc>,
    compensation: i64,
    score: i32,
) -> Case {
    Case {
        state: CaseState::Closed as i32,
        assignee: "user:li".to_owned(),
        department: "cards".to_owned(),
        first_response_time: Some(to_timestamp(received + chrono::TimeDelta::hours(2))),
        decide_time: Some(to_timestamp(decided)),
        close_time: Some(to_timestamp(decided + chrono::TimeDelta::days(1))),
        resolution: Some(Resolution {
            r#type: if compensation > 0 { ResolutionType::ApologyCompensation } else { ResolutionType::Explanation }
                as i32,
            compensation: (compensation > 0)
                .then(|| Money { currency_code: "CNY".to_owned(), amount_minor: compensation }),
            ..Default::default()
        }),
        survey: Some(Survey { score, resolved: score >= 4, ..Default::default() }),
        etag: "\"9\"".to_owned(),
        ..case(n, unit, received, 9)
    }
}

const CARD: &str = "信用卡";
const COVER: &str = "重疾险";

fn q1() -> Days {
    Days::new(parse_day("2026-01-01").unwrap(), parse_day("2026-03-31").unwrap())
}

fn today() -> i32 {
    parse_day("2026-04-01").unwrap()
}

async fn kpis(store: &Arc<dyn MetricsStore>, unit: &str, period: Days, filter: &Filter) -> Vec<KpiValue> {
    Reader::new(store.clone()).kpis(unit, period, filter, today()).await.unwrap().0
}

fn kpi(all: &[KpiValue], kpi: Kpi) -> (i64, i64, f64) {
    let k = all.iter().find(|k| k.kpi == kpi as i32).unwrap();
    (k.numerator, k.denominator, k.value)
}

async fn apply(store: &Arc<dyn MetricsStore>, consumer: &str, events: Vec<Event>) -> i64 {
    let (_, epoch) = store.position(consumer).await.unwrap();
    store.apply(consumer, epoch, events).await.unwrap()
}

/// Three complaints at two branches: one decided with redress and a happy survey, one
/// withdrawn, one still open; and a fourth received in April. Complaints 1, 3 and 4 are about
/// a credit card (信用卡), complaint 2 about critical illness cover (重疾险).
pub(crate) fn scenario() -> (Vec<Event>, Vec<Event>) {
    let r1 = at("2026-01-10", 9);
    let r2 = at("2026-02-03", 15);
    let r3 = at("2026-03-30", 10);
    let r4 = at("2026-04-02", 10);
    let intake = vec![
        of_product(accepted(1, 1, SH, 3, "C05", r1), CARD),
        of_product(accepted(2, 2, BJ, 5, "C05", r2), COVER),
        of_product(accepted(3, 3, SH, 3, "C01", r3), CARD),
        event(
            4,
            "complaints/2",
            BJ,
            &ComplaintWithdrawn {
                complaint: "complaints/2".to_owned(),
                withdraw_time: Some(to_timestamp(at("2026-02-04", 9))),
                reason: "resolved elsewhere".to_owned(),
            },
        ),
        of_product(accepted(5, 4, SH, 3, "C05", r4), CARD),
    ];
    let c1 = case(1, SH, r1, 1);
    let c1_done = decided_case(1, SH, r1, at("2026-01-12", 18), 5_000, 5);
    let c2 = case(2, BJ, r2, 1);
    let c2_withdrawn = Case {
        state: CaseState::Withdrawn as i32,
        close_time: Some(to_timestamp(at("2026-02-04", 9))),
        etag: "\"2\"".to_owned(),
        ..c2.clone()
    };
    let c3 = case(3, SH, r3, 1);
    let cases = vec![opened(1, &c1), opened(2, &c2), closed(3, &c1_done), changed(4, &c2_withdrawn), opened(5, &c3)];
    (intake, cases)
}

redress_platform::conformance_suite!(
    open = open;
    a_complaint_counts_once_whichever_feed_comes_first,
    redelivered_and_stale_events_change_nothing,
    units_see_their_own_and_everything_below,
    a_rebuild_drops_the_read_models_and_the_replay_gives_the_same_answers,
    an_unreadable_event_is_a_dead_letter_and_its_replay_counts_it,
    targets_and_denominators_are_written_once_per_request_id,
    a_reclassification_and_a_breach_move_the_counts,
    a_breakdown_by_product_counts_each_product_like_any_other_dimension,
);

async fn a_complaint_counts_once_whichever_feed_comes_first(store: Arc<dyn MetricsStore>) {
    let (intake, cases) = scenario();
    // Case-workflow's feed first, then intake's.
    apply(&store, CASE_CONSUMER, cases).await;
    apply(&store, INTAKE_CONSUMER, intake).await;
    let all = kpis(&store, BANK, q1(), &Filter::all()).await;
    assert_eq!(kpi(&all, Kpi::Volume).0, 3, "the April complaint is outside Q1");
    assert_eq!(kpi(&all, Kpi::Resolved).0, 2);
    assert_eq!(kpi(&all, Kpi::Backlog).0, 1, "complaint 3 is open at the end of March");
    assert_eq!(kpi(&all, Kpi::WithdrawalRate), (1, 2, 50.0));
    assert_eq!(kpi(&all, Kpi::Satisfaction), (1, 1, 100.0));
    assert_eq!(kpi(&all, Kpi::UpheldRate), (1, 1, 100.0));
    assert_eq!(kpi(&all, Kpi::RedressPaid).0, 5_000);
    assert_eq!(kpi(&all, Kpi::OnTime), (2, 2, 100.0));
    assert_eq!(kpi(&all, Kpi::OneTimeResolution), (1, 1, 100.0));
    // Complaint 1: received Sat 10 January 09:00, decided Mon 12 January 18:00: 57 hours.
    assert_eq!(kpi(&all, Kpi::TimeToResolveP50), (1, 1, 72.0));
    assert_eq!(kpi(&all, Kpi::FirstResponseTime), (7200, 1, 2.0));
    // By cause: C05 twice, C01 once.
    let by_cause =
        Reader::new(store.clone()).breakdown(BANK, q1(), Dimension::Cause as i32, &[Kpi::Volume]).await.unwrap();
    let volumes: Vec<(String, i64)> = by_cause.iter().map(|r| (r.value.clone(), r.kpis[0].numerator)).collect();
    assert_eq!(volumes, [("C05".to_owned(), 2), ("C01".to_owned(), 1)]);

    // The other order gives the same answers.
    let db = redress_platform::testing::TestDatabase::sqlite("other-order").unwrap();
    let other = open(&db.config).await;
    let (intake, cases) = scenario();
    apply(&other, INTAKE_CONSUMER, intake).await;
    apply(&other, CASE_CONSUMER, cases).await;
    assert_eq!(kpis(&other, BANK, q1(), &Filter::all()).await, all);
    let status = store.status().await.unwrap();
    assert_eq!(status.facts, 4);
}

async fn redelivered_and_stale_events_change_nothing(store: Arc<dyn MetricsStore>) {
    let (intake, cases) = scenario();
    apply(&store, INTAKE_CONSUMER, intake.clone()).await;
    apply(&store, CASE_CONSUMER, cases.clone()).await;
    let before = kpis(&store, BANK, q1(), &Filter::all()).await;
    let cells = store.status().await.unwrap().cells;
    // The same batches again: at or below the stored positions, skipped.
    assert_eq!(apply(&store, INTAKE_CONSUMER, intake).await, 5);
    assert_eq!(apply(&store, CASE_CONSUMER, cases).await, 5);
    assert_eq!(kpis(&store, BANK, q1(), &Filter::all()).await, before);
    // An older announcement of case 1 arriving late (a replayed event) does not reopen it.
    let stale = changed(6, &case(1, SH, at("2026-01-10", 9), 3));
    apply(&store, CASE_CONSUMER, vec![stale]).await;
    assert_eq!(kpis(&store, BANK, q1(), &Filter::all()).await, before);
    assert_eq!(store.status().await.unwrap().cells, cells);
}

async fn units_see_their_own_and_everything_below(store: Arc<dyn MetricsStore>) {
    let (intake, cases) = scenario();
    apply(&store, INTAKE_CONSUMER, intake).await;
    apply(&store, CASE_CONSUMER, cases).await;
    let sh = kpis(&store, SH, q1(), &Filter::all()).await;
    let bj = kpis(&store, BJ, q1(), &Filter::all()).await;
    assert_eq!(kpi(&sh, Kpi::Volume).0, 2);
    assert_eq!(kpi(&bj, Kpi::Volume).0, 1);
    assert_eq!(kpi(&bj, Kpi::WithdrawalRate), (1, 1, 100.0));
    let by_unit =
        Reader::new(store.clone()).breakdown(BANK, q1(), Dimension::OrgUnit as i32, &[Kpi::Volume]).await.unwrap();
    let units: Vec<&str> = by_unit.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(units, [SH, BJ]);
    let phone = Filter { dimension: Dimension::Channel as i32, value: "CHANNEL_PHONE".to_owned() };
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &phone).await, Kpi::Volume).0, 2);
    // March alone, from day cells; the ageing of what is open on 1 April.
    let march = Days::new(parse_day("2026-03-01").unwrap(), parse_day("2026-03-31").unwrap());
    assert_eq!(kpi(&kpis(&store, BANK, march, &Filter::all()).await, Kpi::Volume).0, 1);
    let (_, ageing) = Reader::new(store.clone()).kpis(BANK, q1(), &Filter::all(), today()).await.unwrap();
    let open: Vec<i64> = ageing.iter().map(|b| b.count).collect();
    // Complaint 3 (30 March) and complaint 4 (2 April, "today" being 1 April counts it as 0-7d
    // only once it is received: it is in the future here, so it is not aged).
    assert_eq!(open, [1, 0, 0, 0, 0]);
}

async fn a_rebuild_drops_the_read_models_and_the_replay_gives_the_same_answers(store: Arc<dyn MetricsStore>) {
    let (intake, cases) = scenario();
    apply(&store, INTAKE_CONSUMER, intake.clone()).await;
    apply(&store, CASE_CONSUMER, cases.clone()).await;
    let before = kpis(&store, BANK, q1(), &Filter::all()).await;
    let by_product = products(&store, q1()).await;
    let cells = store.status().await.unwrap().cells;
    let (_, epoch) = store.position(INTAKE_CONSUMER).await.unwrap();
    store.rebuild().await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!((status.facts, status.cells, status.rebuilds), (0, 0, 1));
    assert!(status.consumers.iter().all(|c| c.position == 0));
    // A consumer still streaming from before the rebuild is refused and resubscribes.
    let refused = store.apply(INTAKE_CONSUMER, epoch, intake.clone()).await.unwrap_err();
    assert!(refused.downcast_ref::<Rebuilt>().is_some(), "{refused:#}");
    apply(&store, INTAKE_CONSUMER, intake).await;
    apply(&store, CASE_CONSUMER, cases).await;
    assert_eq!(kpis(&store, BANK, q1(), &Filter::all()).await, before);
    assert_eq!(products(&store, q1()).await, by_product);
    assert_eq!(store.status().await.unwrap().cells, cells);
}

/// Each product's (received, resolved, open at the end) over `period`, as the breakdown orders
/// them.
async fn products(store: &Arc<dyn MetricsStore>, period: Days) -> Vec<(String, i64, i64, i64)> {
    let kpis = [Kpi::Volume, Kpi::Resolved, Kpi::Backlog];
    let rows = Reader::new(store.clone()).breakdown(BANK, period, Dimension::Product as i32, &kpis).await.unwrap();
    rows.iter().map(|r| (r.value.clone(), r.kpis[0].numerator, r.kpis[1].numerator, r.kpis[2].numerator)).collect()
}

async fn a_breakdown_by_product_counts_each_product_like_any_other_dimension(store: Arc<dyn MetricsStore>) {
    let (intake, cases) = scenario();
    // Case-workflow's feed first: the product comes only with intake's acceptance, so until it
    // arrives the complaints count under no product.
    apply(&store, CASE_CONSUMER, cases).await;
    assert_eq!(products(&store, q1()).await, [(String::new(), 3, 2, 1)]);
    apply(&store, INTAKE_CONSUMER, intake).await;
    // A complaint naming no product, received 2 March and open.
    let unnamed = accepted(6, 5, BJ, 3, "C01", at("2026-03-02", 11));
    apply(&store, INTAKE_CONSUMER, vec![unnamed]).await;
    // Q1: complaints 1 (decided) and 3 (open) about the card, 2 (withdrawn) about the cover, 5
    // about nothing named; complaint 4 is April's.
    let q1_products = [(CARD.to_owned(), 2, 1, 1), (COVER.to_owned(), 1, 1, 0), (String::new(), 1, 0, 1)];
    assert_eq!(products(&store, q1()).await, q1_products);
    let april = Days::new(parse_day("2026-04-01").unwrap(), parse_day("2026-04-30").unwrap());
    assert_eq!(products(&store, april).await, [(CARD.to_owned(), 1, 0, 2), (String::new(), 0, 0, 1)]);

    // A product filters the KPIs.
    let card = Filter { dimension: Dimension::Product as i32, value: CARD.to_owned() };
    let card_kpis = kpis(&store, BANK, q1(), &card).await;
    assert_eq!(kpi(&card_kpis, Kpi::Volume).0, 2);
    assert_eq!(kpi(&card_kpis, Kpi::Resolved).0, 1);
    assert_eq!(kpi(&card_kpis, Kpi::RedressPaid).0, 5_000);
    let cover = Filter { dimension: Dimension::Product as i32, value: COVER.to_owned() };
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &cover).await, Kpi::WithdrawalRate), (1, 1, 100.0));
    let sh_card = kpis(&store, SH, q1(), &card).await;
    assert_eq!(kpi(&sh_card, Kpi::Volume).0, 2, "a branch sees its own complaints by product");
    assert_eq!(kpi(&kpis(&store, BJ, q1(), &card).await, Kpi::Volume).0, 0);

    // Pareto, the monthly series of one product and hotspots read the same cells.
    let reader = Reader::new(store.clone());
    let (total, pareto) = reader.pareto(BANK, q1(), Dimension::Product as i32).await.unwrap();
    let shares: Vec<(&str, i64)> = pareto.iter().map(|r| (r.value.as_str(), r.count)).collect();
    assert_eq!((total, shares), (4, vec![(CARD, 2), ("", 1), (COVER, 1)]));
    let series = reader.series(BANK, q1(), Kpi::Volume, Granularity::Month, &card).await.unwrap();
    let monthly: Vec<i64> = series.iter().map(|(_, k)| k.numerator).collect();
    assert_eq!(monthly, [1, 0, 1]);
    let hotspots = HotspotQuery {
        dimension: Dimension::Product as i32,
        end: parse_day("2026-04-20").unwrap(),
        window_days: 20,
        baseline_windows: 3,
        min_ratio: 1.5,
        min_count: 1,
    };
    let (_, _, found) = reader.hotspots(BANK, &hotspots).await.unwrap();
    let found: Vec<(&str, i64)> = found.iter().map(|h| (h.value.as_str(), h.count)).collect();
    // 1–20 April: the card's one complaint against one in the three 20-day windows before it.
    assert_eq!(found, [(CARD, 1)]);
}

async fn an_unreadable_event_is_a_dead_letter_and_its_replay_counts_it(store: Arc<dyn MetricsStore>) {
    let (intake, _) = scenario();
    let mut garbled = intake[0].clone();
    garbled.payload.as_mut().unwrap().value = vec![0xff, 0xff, 0xff];
    let mut batch = vec![garbled];
    batch.extend(intake[1..3].iter().cloned());
    apply(&store, INTAKE_CONSUMER, batch).await;
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &Filter::all()).await, Kpi::Volume).0, 2);
    let admin = Arc::new(Principal {
        subject: "ops".to_owned(),
        org_unit: "/".to_owned(),
        permissions: vec!["events.admin".to_owned()],
        ..Default::default()
    });
    let listed = store.list_dead_letters(&admin, &ListDeadLettersRequest::default()).await.unwrap();
    assert_eq!(listed.dead_letters.len(), 1);
    let corrected = intake[0].payload.clone();
    let replay = Replay::parse(
        admin.clone(),
        ReplayDeadLetterRequest { name: listed.dead_letters[0].name.clone(), payload: corrected },
    )
    .unwrap();
    store.replay_dead_letter(replay).await.unwrap();
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &Filter::all()).await, Kpi::Volume).0, 3);
}

async fn targets_and_denominators_are_written_once_per_request_id(store: Arc<dyn MetricsStore>) {
    let key = |id: &str, fp: &str| Some(RequestKey { id: id.to_owned(), fingerprint: fp.to_owned() });
    let targets = Write::Targets {
        institution: BANK.to_owned(),
        targets: vec![(Kpi::Satisfaction as i32, Some((1, 85.0))), (Kpi::OnTime as i32, None)],
        by: "user:head".to_owned(),
    };
    assert!(!store.write(key("t1", "a"), targets.clone()).await.unwrap());
    assert!(store.write(key("t1", "a"), targets.clone()).await.unwrap(), "a retry writes nothing again");
    assert!(store.write(key("t1", "b"), targets).await.is_err(), "a reused id is refused");
    let merged = Reader::new(store.clone()).targets(BANK).await.unwrap();
    assert_eq!(merged[&(Kpi::Satisfaction as i32)].0.threshold, 85.0);
    assert!(merged[&(Kpi::Satisfaction as i32)].1);
    assert!(!merged[&(Kpi::OnTime as i32)].1, "the seed target stands");
    for (month, customers) in [("2026-01-01", 20_000), ("2026-02-01", 40_000), ("2026-03-01", 30_000)] {
        let d = StoredDenominators {
            org_unit: BANK.to_owned(),
            month: parse_day(month).unwrap(),
            customers,
            branches: 2,
            premium_minor: 0,
            update_time_us: 1,
            updated_by: "user:head".to_owned(),
        };
        store.write(key(month, month), Write::Denominators(d)).await.unwrap();
    }
    let (intake, cases) = scenario();
    apply(&store, INTAKE_CONSUMER, intake).await;
    apply(&store, CASE_CONSUMER, cases).await;
    let all = kpis(&store, BANK, q1(), &Filter::all()).await;
    assert_eq!(kpi(&all, Kpi::VolumePer10kCustomers), (3, 30_000, 1.0));
    assert_eq!(kpi(&all, Kpi::VolumePerBranch), (3, 2, 1.5));
    assert_eq!(kpi(&all, Kpi::VolumePer100mPremium).1, 0, "no premium recorded");
    let satisfaction = all.iter().find(|k| k.kpi == Kpi::Satisfaction as i32).unwrap();
    assert_eq!(satisfaction.target.as_ref().map(|t| t.threshold), Some(85.0));
}

async fn a_reclassification_and_a_breach_move_the_counts(store: Arc<dyn MetricsStore>) {
    let (intake, cases) = scenario();
    apply(&store, INTAKE_CONSUMER, intake).await;
    apply(&store, CASE_CONSUMER, cases).await;
    let reclassified = ComplaintReclassified {
        complaint: "complaints/1".to_owned(),
        classification: Some(Classification {
            cause: "C07".to_owned(),
            business_type: "B02".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    apply(&store, INTAKE_CONSUMER, vec![event(6, "complaints/1", SH, &reclassified)]).await;
    let (_, pareto) = Reader::new(store.clone()).pareto(BANK, q1(), Dimension::Cause as i32).await.unwrap();
    let causes: Vec<(&str, i64)> = pareto.iter().map(|r| (r.value.as_str(), r.count)).collect();
    assert_eq!(causes, [("C01", 1), ("C05", 1), ("C07", 1)]);
    // Case 1 turns out to have breached its first-response clock, and belongs to an incident.
    let mut breached = decided_case(1, SH, at("2026-01-10", 9), at("2026-01-12", 18), 5_000, 5);
    breached.etag = "\"10\"".to_owned();
    breached.breaches.push(ClockBreach::default());
    breached.links.push(CaseLink {
        r#type: LinkType::Parent as i32,
        r#case: "cases/incident".to_owned(),
        ..Default::default()
    });
    apply(&store, CASE_CONSUMER, vec![changed(6, &breached)]).await;
    let all = kpis(&store, BANK, q1(), &Filter::all()).await;
    assert_eq!(kpi(&all, Kpi::OnTime), (1, 2, 50.0));
    let incident = Filter { dimension: Dimension::Incident as i32, value: "cases/incident".to_owned() };
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &incident).await, Kpi::Volume).0, 1);
    // Escalation's feed names the incident itself: one more consumer, the same read models.
    let linked = CaseLinkedToIncident {
        incident: "incidents/7".to_owned(),
        complaint: "complaints/1".to_owned(),
        r#case: "cases/1".to_owned(),
        lead_case: "cases/incident".to_owned(),
        ..Default::default()
    };
    apply(&store, super::ESCALATION_CONSUMER, vec![event(1, "incidents/7", SH, &linked)]).await;
    let declared = Filter { dimension: Dimension::Incident as i32, value: "incidents/7".to_owned() };
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &declared).await, Kpi::Volume).0, 1);
    assert_eq!(kpi(&kpis(&store, BANK, q1(), &incident).await, Kpi::Volume).0, 0);
}

/// Read models built in an older layout (before facts were counted by product) are dropped when
/// the store opens, and the replay counts every complaint under its product; a store of the
/// current layout is opened as it is.
async fn an_older_layout_is_replayed_when_the_store_opens(config: &DatabaseConfig) {
    let store = open(config).await;
    let (intake, cases) = scenario();
    apply(&store, INTAKE_CONSUMER, intake.clone()).await;
    apply(&store, CASE_CONSUMER, cases.clone()).await;
    let before = (kpis(&store, BANK, q1(), &Filter::all()).await, products(&store, q1()).await);
    drop(store);

    let store = open(config).await;
    let status = store.status().await.unwrap();
    assert_eq!((status.facts, status.rebuilds), (4, 0), "the current layout is kept");
    let older = "UPDATE read_model_state SET layout = 0";
    match store.feed().pool() {
        redress_platform::db::Pool::Sqlite(pool) => sqlx::query(older).execute(pool).await.map(|_| ()),
        redress_platform::db::Pool::Postgres(pool) => sqlx::query(older).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    drop(store);

    let store = open(config).await;
    let status = store.status().await.unwrap();
    assert_eq!((status.facts, status.cells, status.rebuilds), (0, 0, 1));
    assert!(status.consumers.iter().all(|c| c.position == 0), "{status:?}");
    apply(&store, INTAKE_CONSUMER, intake).await;
    apply(&store, CASE_CONSUMER, cases).await;
    assert_eq!((kpis(&store, BANK, q1(), &Filter::all()).await, products(&store, q1()).await), before);
    drop(store);
    let store = open(config).await;
    assert_eq!(store.status().await.unwrap().rebuilds, 1, "replayed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_layout_is_replayed_when_the_store_opens_on_sqlite() {
    let db = redress_platform::testing::TestDatabase::sqlite("older-layout").unwrap();
    an_older_layout_is_replayed_when_the_store_opens(&db.config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_layout_is_replayed_when_the_store_opens_on_postgres() {
    let test = concat!(module_path!(), "::an_older_layout_is_replayed_when_the_store_opens");
    let Some(db) = redress_platform::testing::TestDatabase::postgres(test).await.unwrap() else { return };
    an_older_layout_is_replayed_when_the_store_opens(&db.config).await;
}
