//! Quality metrics through the gateway: 300 complaints driven through intake and case-workflow
//! with known outcomes (surveys, breaches, reopenings, reviews, recurrences, withdrawals, cases
//! left open), every KPI's numerator and denominator checked against values this test computes
//! itself from the cases as case-workflow reports them; then the read models are dropped and
//! replayed from the feeds and give the same answers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use redress_integration_tests::{Bearer, Sandbox};
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::case::v1::{
    AnswerSurveyRequest, AssignCaseRequest, Case, CaseState, DecideCaseRequest, DecideCaseReviewRequest,
    GetCaseRequest, ListCasesRequest, Money, ProposeResolutionRequest, RecordFirstResponseRequest,
    RequestCaseReviewRequest, ResolutionType, ReviewOutcome, TransitionCaseRequest,
};
use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{SubmitComplaintRequest, WithdrawComplaintRequest};
use redress_proto::redress::metrics::v1::{
    Denominators, Dimension, DimensionValue, GetBreakdownRequest, GetKpisRequest, GetParetoRequest,
    GetReadModelStatusRequest, GetSeriesRequest, Granularity, Kpi, KpiReport, Period, RebuildReadModelsRequest,
    SetDenominatorsRequest,
};
use redress_quality_metrics::domain::measures::HOUR_BOUNDS;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel as GrpcChannel;

type Cases = CaseServiceClient<InterceptedService<GrpcChannel, Bearer>>;
type Intake = IntakeServiceClient<InterceptedService<GrpcChannel, Bearer>>;

const BANK: &str = "institutions/qm-bank";
const BRANCHES: [&str; 2] = ["institutions/qm-bank/branches/sh", "institutions/qm-bank/branches/bj"];
const COMPLAINTS: u32 = 300;
const CUSTOMERS: i64 = 50_000;

/// Calm wording (grade general) about four different matters.
const FACTS: [&str; 4] = [
    "信用卡年费未经同意被扣收，要求退还。",
    "网点工作人员办理业务时态度冷淡，解释不清。",
    "理财产品购买时未充分告知风险，收益与宣传不符。",
    "手机银行转账失败但资金已扣减，长时间未到账。",
];
const CHANNELS: [Channel; 4] = [Channel::Phone, Channel::Counter, Channel::MobileApp, Channel::Online];
/// The product each complaint names, by `n % 3`, as a channel system might send it (intake trims
/// it); the third names none.
const PRODUCTS: [&str; 3] = [" 信用卡 ", "手机银行", ""];

/// What the test asks of complaint `n`'s case, by `n % 10`.
fn plan(n: u32) -> u32 {
    n % 10
}

fn shanghai_day(t: DateTime<Utc>) -> chrono::NaiveDate {
    (t + TimeDelta::hours(8)).date_naive()
}

fn instant(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(from_timestamp)
}

struct Submitted {
    name: String,
    channel: Channel,
    unit: &'static str,
    cause: String,
    product: String,
    recurrence: bool,
}

async fn submit_all(sandbox: &Sandbox, now: DateTime<Utc>) -> Vec<Submitted> {
    let mut intake = sandbox.intake();
    let mut out = Vec::new();
    for n in 0..COMPLAINTS {
        // Every tenth complaint from n % 10 == 3 repeats the one before: same person, same matter.
        let repeats = n % 10 == 3;
        let who = if repeats { n - 1 } else { n };
        let mut complaint = redress_intake::testing::complaint(FACTS[(who % 4) as usize]);
        let (phone, id) = redress_intake::testing::identity(90_000 + who);
        if let Some(redress_proto::redress::intake::v1::complainant::Party::Person(p)) =
            complaint.complainant.as_mut().and_then(|c| c.party.as_mut())
        {
            p.phone = phone;
            p.id_number = id;
        }
        let unit = BRANCHES[(n % 2) as usize];
        let channel = CHANNELS[(n % 4) as usize];
        complaint.org_unit = unit.to_owned();
        complaint.channel = channel as i32;
        complaint.product = PRODUCTS[(n % 3) as usize].to_owned();
        // A fifth were received ten days ago: their first-response and resolution clocks are
        // breached by the time they are handled; the rest within the last day.
        let received = if n % 5 == 0 {
            now - TimeDelta::days(10)
        } else if repeats {
            // After the complaint it repeats.
            now - TimeDelta::minutes(10)
        } else {
            now - TimeDelta::hours(i64::from(n % 20) + 1)
        };
        complaint.receive_time = Some(to_timestamp(received));
        let request = SubmitComplaintRequest { request_id: format!("qm-{n}"), complaint: Some(complaint) };
        let recorded = intake.submit_complaint(request).await.unwrap().into_inner().complaint.unwrap();
        let cause = recorded.classification.as_ref().map(|c| c.cause.clone()).unwrap_or_default();
        out.push(Submitted {
            name: recorded.name,
            channel,
            unit,
            cause,
            product: recorded.product,
            recurrence: !recorded.recurrence_of.is_empty(),
        });
    }
    out
}

async fn case_of(cases: &mut Cases, complaint: &str) -> Case {
    let started = Instant::now();
    loop {
        let request = ListCasesRequest { complaint: complaint.to_owned(), ..Default::default() };
        if let Some(case) = cases.list_cases(request).await.unwrap().into_inner().cases.pop() {
            return case;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no case opened for {complaint}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn transition(name: &str, state: CaseState) -> TransitionCaseRequest {
    TransitionCaseRequest {
        name: name.to_owned(),
        state: state as i32,
        reason: "按流程办理".to_owned(),
        ..Default::default()
    }
}

async fn decide(cases: &mut Cases, name: &str, kind: ResolutionType, compensation: i64) {
    let propose = ProposeResolutionRequest {
        name: name.to_owned(),
        r#type: kind as i32,
        compensation: (compensation > 0).then(|| Money { currency_code: "CNY".to_owned(), amount_minor: compensation }),
        grounds: "依据合同及相关规定".to_owned(),
        ..Default::default()
    };
    cases.propose_resolution(propose).await.unwrap();
    let decide =
        DecideCaseRequest {
            name: name.to_owned(), decision_notice: "处理决定已告知".to_owned(), ..Default::default()
        };
    cases.decide_case(decide).await.unwrap();
}

async fn survey(cases: &mut Cases, name: &str, score: i32) {
    let answer = AnswerSurveyRequest { name: name.to_owned(), score, resolved: score >= 4, ..Default::default() };
    cases.answer_survey(answer).await.unwrap();
}

/// Handles complaint `n`'s case as its plan says.
async fn handle(mut cases: Cases, mut intake: Intake, n: u32, complaint: String) {
    let case = case_of(&mut cases, &complaint).await;
    let name = case.name.clone();
    if !n.is_multiple_of(3) {
        let first =
            RecordFirstResponseRequest {
                name: name.clone(), note: "已电话联系客户".to_owned(), ..Default::default()
            };
        cases.record_first_response(first).await.unwrap();
    }
    if plan(n) == 5 {
        let withdraw =
            WithdrawComplaintRequest {
                name: complaint, reason: "问题已自行解决".to_owned(), ..Default::default()
            };
        intake.withdraw_complaint(withdraw).await.unwrap();
        return;
    }
    let assign = AssignCaseRequest {
        name: name.clone(),
        assignee: format!("user:handler-{}", n % 7),
        department: ["cards", "wealth", "retail"][(n % 3) as usize].to_owned(),
        ..Default::default()
    };
    cases.assign_case(assign).await.unwrap();
    if plan(n) == 6 {
        return;
    }
    cases.transition_case(transition(&name, CaseState::Investigating)).await.unwrap();
    match plan(n) {
        4 => decide(&mut cases, &name, ResolutionType::ApologyCompensation, 10_000 + i64::from(n)).await,
        9 => decide(&mut cases, &name, ResolutionType::NotUpheld, 0).await,
        _ => decide(&mut cases, &name, ResolutionType::Explanation, 0).await,
    }
    match plan(n) {
        9 => {}
        7 => {
            survey(&mut cases, &name, 4).await;
            cases.transition_case(transition(&name, CaseState::Closed)).await.unwrap();
            cases.transition_case(transition(&name, CaseState::Reopened)).await.unwrap();
            cases.transition_case(transition(&name, CaseState::Investigating)).await.unwrap();
            decide(&mut cases, &name, ResolutionType::ProcessFix, 0).await;
        }
        8 => {
            let review = RequestCaseReviewRequest {
                name: name.clone(),
                reason: "对处理结果有异议".to_owned(),
                ..Default::default()
            };
            cases.request_case_review(review).await.unwrap();
            let reviewer = AssignCaseRequest {
                name: name.clone(),
                assignee: "user:reviewer".to_owned(),
                department: "consumer-protection".to_owned(),
                ..Default::default()
            };
            cases.assign_case(reviewer).await.unwrap();
            let decided = DecideCaseReviewRequest {
                name: name.clone(),
                outcome: ReviewOutcome::Upheld as i32,
                decision_notice: "经核查维持原处理决定".to_owned(),
                ..Default::default()
            };
            cases.decide_case_review(decided).await.unwrap();
            survey(&mut cases, &name, 5).await;
            cases.transition_case(transition(&name, CaseState::Closed)).await.unwrap();
        }
        p => {
            survey(&mut cases, &name, [5, 4, 3, 2, 5][p as usize % 5]).await;
            cases.transition_case(transition(&name, CaseState::Closed)).await.unwrap();
        }
    }
}

/// The cases as case-workflow finally reports them (withdrawals applied).
async fn final_cases(cases: &mut Cases, submitted: &[Submitted]) -> Vec<Case> {
    let mut out = Vec::new();
    for (n, s) in submitted.iter().enumerate() {
        let started = Instant::now();
        loop {
            let case = case_of(cases, &s.name).await;
            let case = cases.get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
            if plan(n as u32) != 5 || case.state == CaseState::Withdrawn as i32 {
                out.push(case);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{} was never withdrawn", case.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

/// Each KPI as (numerator, denominator), computed from the cases alone.
fn expected(cases: &[Case], submitted: &[Submitted]) -> BTreeMap<Kpi, (i64, i64)> {
    let state = |c: &Case| CaseState::try_from(c.state).unwrap();
    let resolved: Vec<&Case> = cases
        .iter()
        .filter(|c| {
            matches!(state(c), CaseState::Decided | CaseState::FollowUp | CaseState::Closed | CaseState::Withdrawn)
        })
        .collect();
    let decided: Vec<&Case> =
        resolved.iter().copied().filter(|c| state(c) != CaseState::Withdrawn && c.decide_time.is_some()).collect();
    let count = |cs: &[&Case], f: &dyn Fn(&Case) -> bool| cs.iter().filter(|c| f(c)).count() as i64;
    let received = cases.len() as i64;
    let surveyed: Vec<&Case> =
        resolved.iter().copied().filter(|c| c.survey.as_ref().is_some_and(|s| s.score > 0)).collect();
    let favourable = |c: &Case| {
        let r = c.resolution.clone().unwrap_or_default();
        let kind = ResolutionType::try_from(r.r#type).unwrap();
        matches!(kind, ResolutionType::ApologyCompensation | ResolutionType::ProcessFix | ResolutionType::SystemFix)
            || r.compensation.is_some_and(|m| m.amount_minor > 0)
    };
    let redress: i64 = decided
        .iter()
        .map(|c| c.resolution.clone().unwrap_or_default().compensation.map_or(0, |m| m.amount_minor))
        .sum();
    let with_redress =
        count(&decided, &|c| c.resolution.clone().unwrap_or_default().compensation.is_some_and(|m| m.amount_minor > 0));
    let responded: Vec<i64> = cases
        .iter()
        .filter_map(|c| Some((instant(&c.first_response_time)? - instant(&c.receive_time)?).num_seconds()))
        .collect();
    // Times to resolve in whole hours rounded up, nearest rank, reported as the bound of the
    // bucket holding it.
    let mut hours: Vec<i64> = decided
        .iter()
        .map(|c| {
            let seconds = (instant(&c.decide_time).unwrap() - instant(&c.receive_time).unwrap()).num_seconds();
            (seconds + 3599) / 3600
        })
        .collect();
    hours.sort();
    let percentile = |p: i64| {
        let rank = ((p * hours.len() as i64 + 99) / 100).max(1) as usize;
        let bound = *HOUR_BOUNDS.iter().find(|b| **b >= hours[rank - 1]).unwrap();
        (hours.iter().filter(|h| **h <= bound).count() as i64, hours.len() as i64)
    };
    let withdrawn = count(&resolved, &|c| state(c) == CaseState::Withdrawn);
    BTreeMap::from([
        (Kpi::Volume, (received, 1)),
        (Kpi::Resolved, (resolved.len() as i64, 1)),
        (Kpi::Satisfaction, (count(&surveyed, &|c| c.survey.as_ref().unwrap().score >= 4), surveyed.len() as i64)),
        (
            Kpi::OneTimeResolution,
            (
                count(&decided, &|c| {
                    c.review_count == 0 && c.reopen_count == 0 && c.survey.as_ref().is_some_and(|s| s.resolved)
                }),
                decided.len() as i64,
            ),
        ),
        (Kpi::OnTime, (count(&resolved, &|c| c.breaches.is_empty()), resolved.len() as i64)),
        (Kpi::Recurrence, (submitted.iter().filter(|s| s.recurrence).count() as i64, received)),
        (Kpi::FirstResponseTime, (responded.iter().sum(), responded.len() as i64)),
        (Kpi::TimeToResolveP50, percentile(50)),
        (Kpi::TimeToResolveP90, percentile(90)),
        (Kpi::Backlog, (received - resolved.len() as i64, 1)),
        (Kpi::UpheldRate, (count(&decided, &|c| favourable(c)), decided.len() as i64)),
        (Kpi::RedressPaid, (redress, with_redress)),
        (Kpi::VolumePer10kCustomers, (received, CUSTOMERS)),
        (Kpi::WithdrawalRate, (withdrawn, resolved.len() as i64)),
    ])
}

fn period(first: chrono::NaiveDate, last: chrono::NaiveDate) -> Period {
    Period { start_date: first.format("%Y-%m-%d").to_string(), end_date: last.format("%Y-%m-%d").to_string() }
}

async fn report(sandbox: &Sandbox, period: &Period) -> KpiReport {
    let request = GetKpisRequest { org_unit: BANK.to_owned(), period: Some(period.clone()), filter: None };
    sandbox.metrics().get_kpis(request).await.unwrap().into_inner()
}

fn pairs(report: &KpiReport) -> BTreeMap<Kpi, (i64, i64)> {
    report.kpis.iter().map(|k| (Kpi::try_from(k.kpi).unwrap(), (k.numerator, k.denominator))).collect()
}

/// Polls the KPIs until they equal `want` on every KPI it names (at most 60 s), and returns
/// the last report.
async fn report_once_caught_up(sandbox: &Sandbox, period: &Period, want: &BTreeMap<Kpi, (i64, i64)>) -> KpiReport {
    let started = Instant::now();
    loop {
        let got = report(sandbox, period).await;
        let have = pairs(&got);
        if want.iter().all(|(k, v)| have.get(k) == Some(v)) || started.elapsed() > Duration::from_secs(60) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kpi_of_300_complaints_matches_what_their_cases_say_and_survives_a_rebuild() {
    let sandbox = Sandbox::start().await.unwrap();
    let now = redress_platform::time::now();
    let submitted = submit_all(&sandbox, now).await;
    assert!(submitted.iter().filter(|s| s.recurrence).count() >= 20, "repeated complaints are recurrences");

    // Handle the cases, a dozen at a time.
    let mut tasks = tokio::task::JoinSet::new();
    for (n, s) in submitted.iter().enumerate() {
        if tasks.len() >= 12 {
            tasks.join_next().await.unwrap().unwrap();
        }
        tasks.spawn(handle(sandbox.cases(), sandbox.intake(), n as u32, s.name.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let cases = final_cases(&mut sandbox.cases(), &submitted).await;

    let today = shanghai_day(now);
    let period = period(today - TimeDelta::days(30), today);
    let first_month = chrono::NaiveDate::from_ymd_opt(
        chrono::Datelike::year(&(today - TimeDelta::days(30))),
        chrono::Datelike::month(&(today - TimeDelta::days(30))),
        1,
    )
    .unwrap();
    let mut month = first_month;
    while month <= today {
        let denominators = Denominators {
            org_unit: BANK.to_owned(),
            month: month.format("%Y-%m").to_string(),
            customers: CUSTOMERS,
            branches: 2,
            ..Default::default()
        };
        let request =
            SetDenominatorsRequest { request_id: format!("customers-{month}"), denominators: Some(denominators) };
        sandbox.metrics().set_denominators(request).await.unwrap();
        month = month.checked_add_months(chrono::Months::new(1)).unwrap();
    }

    let want = expected(&cases, &submitted);
    // Every outcome the plans aim at is there.
    for kpi in [Kpi::Satisfaction, Kpi::OneTimeResolution, Kpi::OnTime, Kpi::UpheldRate] {
        let (n, d) = want[&kpi];
        assert!(0 < n && n < d, "{kpi:?} has both outcomes: {n}/{d}");
    }
    assert!(want[&Kpi::Backlog].0 >= 30 && want[&Kpi::WithdrawalRate].0 >= 30);
    let got = report_once_caught_up(&sandbox, &period, &want).await;
    assert_eq!(pairs(&got).into_iter().filter(|(k, _)| want.contains_key(k)).collect::<BTreeMap<_, _>>(), want);
    for k in &got.kpis {
        let kpi = Kpi::try_from(k.kpi).unwrap();
        if let Some((n, d)) = want.get(&kpi)
            && *d > 0
            && k.unit == "percent"
        {
            assert!((k.value - 100.0 * *n as f64 / *d as f64).abs() < 1e-9, "{kpi:?}: {k:?}");
        }
    }
    let satisfaction = got.kpis.iter().find(|k| k.kpi == Kpi::Satisfaction as i32).unwrap();
    assert_eq!(satisfaction.target.as_ref().unwrap().threshold, 90.0);
    assert_eq!(satisfaction.meets_target, satisfaction.value >= 90.0);
    let per_10k = got.kpis.iter().find(|k| k.kpi == Kpi::VolumePer10kCustomers as i32).unwrap();
    assert!((per_10k.value - 10_000.0 * COMPLAINTS as f64 / CUSTOMERS as f64).abs() < 1e-9);
    let open_now: i64 = got.ageing.iter().map(|b| b.count).sum();
    assert_eq!(open_now, want[&Kpi::Backlog].0);

    // Breakdowns by channel, branch and product, filtered KPIs, Pareto of causes and a daily
    // series.
    let by = |dimension: Dimension| GetBreakdownRequest {
        org_unit: BANK.to_owned(),
        period: Some(period.clone()),
        dimension: dimension as i32,
        kpis: vec![Kpi::Volume as i32, Kpi::Resolved as i32],
    };
    let volumes = |b: redress_proto::redress::metrics::v1::Breakdown| -> BTreeMap<String, i64> {
        b.rows.into_iter().map(|r| (r.value, r.kpis[0].numerator)).collect()
    };
    let mut channels: BTreeMap<String, i64> = BTreeMap::new();
    let mut units: BTreeMap<String, i64> = BTreeMap::new();
    let mut causes: BTreeMap<String, i64> = BTreeMap::new();
    let mut products: BTreeMap<String, i64> = BTreeMap::new();
    for s in &submitted {
        *channels.entry(s.channel.as_str_name().to_owned()).or_default() += 1;
        *units.entry(s.unit.to_owned()).or_default() += 1;
        *causes.entry(s.cause.clone()).or_default() += 1;
        *products.entry(s.product.clone()).or_default() += 1;
    }
    assert_eq!(products.keys().collect::<Vec<_>>(), ["", "信用卡", "手机银行"], "recorded trimmed");
    let by_channel = sandbox.metrics().get_breakdown(by(Dimension::Channel)).await.unwrap().into_inner();
    assert_eq!(volumes(by_channel.clone()), channels);
    assert!(!by_channel.rows[0].label.is_empty(), "channels have labels");
    assert_eq!(volumes(sandbox.metrics().get_breakdown(by(Dimension::OrgUnit)).await.unwrap().into_inner()), units);
    let phone = GetKpisRequest {
        org_unit: BANK.to_owned(),
        period: Some(period.clone()),
        filter: Some(DimensionValue { dimension: Dimension::Channel as i32, value: "CHANNEL_PHONE".to_owned() }),
    };
    let phone = sandbox.metrics().get_kpis(phone).await.unwrap().into_inner();
    assert_eq!(phone.kpis[0].numerator, channels["CHANNEL_PHONE"]);
    let by_product = sandbox.metrics().get_breakdown(by(Dimension::Product)).await.unwrap().into_inner();
    assert_eq!(volumes(by_product.clone()), products);
    let card = GetKpisRequest {
        org_unit: BANK.to_owned(),
        period: Some(period.clone()),
        filter: Some(DimensionValue { dimension: Dimension::Product as i32, value: "信用卡".to_owned() }),
    };
    let card = sandbox.metrics().get_kpis(card).await.unwrap().into_inner();
    assert_eq!(card.kpis[0].numerator, products["信用卡"]);
    let pareto = GetParetoRequest { org_unit: BANK.to_owned(), period: Some(period.clone()), dimension: 0 };
    let pareto = sandbox.metrics().get_pareto(pareto).await.unwrap().into_inner();
    assert_eq!(pareto.total, COMPLAINTS as i64);
    assert_eq!(pareto.rows.iter().map(|r| (r.value.clone(), r.count)).collect::<BTreeMap<_, _>>(), causes);
    assert!((pareto.rows.last().unwrap().cumulative_share - 100.0).abs() < 1e-9);
    let series = GetSeriesRequest {
        org_unit: BANK.to_owned(),
        period: Some(period.clone()),
        kpi: Kpi::Volume as i32,
        granularity: Granularity::Day as i32,
        filter: None,
    };
    let series = sandbox.metrics().get_series(series).await.unwrap().into_inner();
    assert_eq!(series.points.len(), 31);
    let mut by_day: BTreeMap<String, i64> = BTreeMap::new();
    for c in &cases {
        *by_day.entry(shanghai_day(instant(&c.receive_time).unwrap()).format("%Y-%m-%d").to_string()).or_default() += 1;
    }
    let series_days: BTreeMap<String, i64> = series
        .points
        .iter()
        .filter(|p| p.value.as_ref().unwrap().numerator > 0)
        .map(|p| (p.period.clone().unwrap().start_date, p.value.as_ref().unwrap().numerator))
        .collect();
    assert_eq!(series_days, by_day);

    // A branch sees only itself; another institution's reader is refused.
    let mut branch = sandbox.metrics_with(redress_integration_tests::BRANCH_TOKEN);
    let refused =
        branch.get_kpis(GetKpisRequest { org_unit: BANK.to_owned(), period: Some(period.clone()), filter: None });
    assert_eq!(refused.await.unwrap_err().code(), tonic::Code::PermissionDenied);
    let bad = GetKpisRequest {
        org_unit: BANK.to_owned(),
        period: Some(Period { start_date: "2026-13-01".to_owned(), end_date: String::new() }),
        filter: None,
    };
    let status = sandbox.metrics().get_kpis(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("period.start_date") && status.message().contains("period.end_date"),
        "{status:?}"
    );

    // Drop the read models and replay the feeds: the same answers.
    let before = (got, volumes(by_channel), pareto, volumes(by_product));
    let rebuilt = sandbox.metrics().rebuild_read_models(RebuildReadModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(rebuilt.rebuilds, 1);
    let again = report_once_caught_up(&sandbox, &period, &pairs(&before.0)).await;
    assert_eq!(again, before.0);
    let channels_again = sandbox.metrics().get_breakdown(by(Dimension::Channel)).await.unwrap().into_inner();
    assert_eq!(volumes(channels_again), before.1);
    let products_again = sandbox.metrics().get_breakdown(by(Dimension::Product)).await.unwrap().into_inner();
    assert_eq!(volumes(products_again), before.3);
    let pareto = GetParetoRequest { org_unit: BANK.to_owned(), period: Some(period.clone()), dimension: 0 };
    assert_eq!(sandbox.metrics().get_pareto(pareto).await.unwrap().into_inner(), before.2);
    let status = sandbox.metrics().get_read_model_status(GetReadModelStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.facts, COMPLAINTS as i64);
    assert!(status.consumers.iter().all(|c| c.dead_letters == 0), "{status:?}");
    sandbox.stop().await.unwrap();
}
