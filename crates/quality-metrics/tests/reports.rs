//! Reports of a test institution's first quarter of 2026, from events fed to the read models:
//! the regulator's quarterly statistics match the file worked out by hand
//! (`data/regulator-quarterly-2026-Q1.csv`), and every format and kind is written.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use redress_platform::time::to_timestamp;
use redress_proto::redress::case::v1::{Case, CaseClosed, CaseState, ClockBreach, Resolution, ResolutionType};
use redress_proto::redress::common::v1::{Channel, Event};
use redress_proto::redress::intake::v1::{Classification, ComplaintAccepted, ComplaintWithdrawn};
use redress_proto::redress::metrics::v1::{ReportFormat, ReportKind};
use redress_quality_metrics::domain::period::{Days, parse_day};
use redress_quality_metrics::read::Reader;
use redress_quality_metrics::{Calendars, MetricsStore};

const SH: &str = "institutions/test-bank/branches/sh";
const BJ: &str = "institutions/test-bank/branches/bj";

/// Noon in Shanghai.
fn noon(day: &str) -> DateTime<Utc> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    Utc.from_utc_datetime(&date.and_hms_opt(4, 0, 0).unwrap())
}

fn event(position: i64, payload: &impl prost::Name, aggregate: &str, unit: &str) -> Event {
    Event {
        position,
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: full_name(payload),
        aggregate: aggregate.to_owned(),
        payload: Some(prost_types::Any::from_msg(payload).unwrap()),
        org_unit: unit.to_owned(),
        ..Default::default()
    }
}

fn full_name<M: prost::Name>(_: &M) -> String {
    M::full_name()
}

/// How a test complaint ends.
enum End {
    Decided(&'static str, bool),
    Withdrawn(&'static str),
    Open,
}

struct Complaint {
    received: &'static str,
    unit: &'static str,
    channel: Channel,
    business_type: &'static str,
    cause: &'static str,
    recurrence: bool,
    end: End,
}

/// The institution's complaints, as worked out by hand in the expected file.
fn complaints() -> Vec<Complaint> {
    use Channel::{Counter, MobileApp, Online, Phone};
    let c = |received, unit, channel, business_type, cause, recurrence, end| Complaint {
        received,
        unit,
        channel,
        business_type,
        cause,
        recurrence,
        end,
    };
    vec![
        c("2025-12-20", SH, Phone, "B02", "C05", false, End::Decided("2026-01-05", true)),
        c("2026-01-10", SH, Phone, "B02", "C05", false, End::Decided("2026-01-12", true)),
        c("2026-01-15", SH, Counter, "B01", "C01", false, End::Decided("2026-02-01", false)),
        c("2026-02-03", BJ, MobileApp, "B02", "C05", false, End::Withdrawn("2026-02-04")),
        c("2026-02-20", BJ, Phone, "B05", "C02", true, End::Open),
        c("2026-03-05", SH, Online, "B02", "C07", false, End::Decided("2026-03-06", true)),
        c("2026-03-31", BJ, Phone, "B99", "C99", false, End::Open),
        c("2026-04-02", SH, Phone, "B02", "C05", false, End::Decided("2026-04-03", true)),
    ]
}

fn calendars() -> Arc<dyn Calendars> {
    Arc::new(redress_calendar::Institutions::single(
        redress_calendar::DeadlineCalculator::china(),
        redress_calendar::SlaPolicy::default(),
    ))
}

async fn loaded(db: &redress_platform::testing::TestDatabase) -> Arc<dyn MetricsStore> {
    let store =
        redress_quality_metrics::open_store(&db.config, calendars(), &redress_platform::host::Supervisor::detached())
            .await
            .unwrap();
    let (mut intake, mut cases) = (Vec::new(), Vec::new());
    for (n, c) in complaints().into_iter().enumerate() {
        let complaint = format!("complaints/{n}");
        let accepted = ComplaintAccepted {
            complaint: complaint.clone(),
            channel: c.channel as i32,
            receive_time: Some(to_timestamp(noon(c.received))),
            org_unit: c.unit.to_owned(),
            grade: 1,
            recurrence_of: if c.recurrence { "complaints/earlier".to_owned() } else { String::new() },
            classification: Some(Classification {
                business_type: c.business_type.to_owned(),
                cause: c.cause.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        intake.push(event(intake.len() as i64 + 1, &accepted, &complaint, c.unit));
        let mut case = Case {
            name: format!("cases/{n}"),
            complaint: complaint.clone(),
            org_unit: c.unit.to_owned(),
            channel: c.channel as i32,
            receive_time: Some(to_timestamp(noon(c.received))),
            state: CaseState::Accepted as i32,
            etag: "\"5\"".to_owned(),
            ..Default::default()
        };
        match c.end {
            End::Decided(day, on_time) => {
                case.state = CaseState::Decided as i32;
                case.decide_time = Some(to_timestamp(noon(day)));
                case.resolution = Some(Resolution { r#type: ResolutionType::Explanation as i32, ..Default::default() });
                if !on_time {
                    case.breaches.push(ClockBreach::default());
                }
            }
            End::Withdrawn(day) => {
                let withdrawn = ComplaintWithdrawn {
                    complaint: complaint.clone(),
                    withdraw_time: Some(to_timestamp(noon(day))),
                    reason: "撤诉".to_owned(),
                };
                intake.push(event(intake.len() as i64 + 1, &withdrawn, &complaint, c.unit));
                case.state = CaseState::Withdrawn as i32;
                case.close_time = Some(to_timestamp(noon(day)));
            }
            End::Open => {}
        }
        let closed = CaseClosed { case: Some(case.clone()), ..Default::default() };
        cases.push(event(cases.len() as i64 + 1, &closed, &case.name, c.unit));
    }
    for (consumer, events) in [("intake", intake), ("case-workflow", cases)] {
        let (_, epoch) = store.position(consumer).await.unwrap();
        store.apply(consumer, epoch, events).await.unwrap();
    }
    store
}

fn q1() -> Days {
    Days::quarter("2026-Q1").unwrap()
}

#[tokio::test]
async fn the_regulator_quarterly_report_matches_the_one_worked_by_hand() {
    let db = redress_platform::testing::TestDatabase::sqlite("reports").unwrap();
    let store = loaded(&db).await;
    let reader = Reader::new(store);
    let today = parse_day("2026-04-10").unwrap();
    let unit = "institutions/test-bank";
    let csv = redress_quality_metrics::report::generate(
        &reader,
        unit,
        q1(),
        "2026-Q1",
        ReportKind::RegulatorQuarterly,
        ReportFormat::Csv,
        today,
    )
    .await
    .unwrap();
    assert_eq!(csv.file_name, "regulator-quarterly-2026-Q1.csv");
    let expected = include_str!("data/regulator-quarterly-2026-Q1.csv");
    assert_eq!(String::from_utf8(csv.content).unwrap(), expected);

    // The same figures as a workbook and as a page with its Pareto chart.
    let xlsx = redress_quality_metrics::report::generate(
        &reader,
        unit,
        q1(),
        "2026-Q1",
        ReportKind::RegulatorQuarterly,
        ReportFormat::Xlsx,
        today,
    )
    .await
    .unwrap();
    assert_eq!(&xlsx.content[..2], b"PK", "an xlsx file is a zip archive");
    assert_eq!(xlsx.tables, csv.tables);
    let html = redress_quality_metrics::report::generate(
        &reader,
        unit,
        q1(),
        "2026-Q1",
        ReportKind::RegulatorQuarterly,
        ReportFormat::Html,
        today,
    )
    .await
    .unwrap();
    let page = String::from_utf8(html.content).unwrap();
    assert!(page.contains("<svg") && page.contains("四、按投诉原因（维度C）") && page.contains("定价收费"));
}

#[tokio::test]
async fn every_report_kind_is_written_in_every_format() {
    let db = redress_platform::testing::TestDatabase::sqlite("reports").unwrap();
    let reader = Reader::new(loaded(&db).await);
    let today = parse_day("2026-04-10").unwrap();
    for kind in [ReportKind::InsuranceIndicators, ReportKind::FcaReturn, ReportKind::Management] {
        for format in [ReportFormat::Csv, ReportFormat::Xlsx, ReportFormat::Html] {
            let written = redress_quality_metrics::report::generate(
                &reader,
                "institutions/test-bank",
                q1(),
                "2026-Q1",
                kind,
                format,
                today,
            )
            .await
            .unwrap();
            assert!(!written.content.is_empty() && !written.tables.is_empty(), "{kind:?} {format:?}");
        }
    }
    let fca = redress_quality_metrics::report::generate(
        &reader,
        "institutions/test-bank",
        q1(),
        "2026-Q1",
        ReportKind::FcaReturn,
        ReportFormat::Csv,
        today,
    )
    .await
    .unwrap();
    // Opened 6, closed 5, outstanding 2; #1 decided on the 10th working day after 20 December,
    // #2 and #6 the day after or two days after (within 3 business days), #3 after 17 days, and
    // the withdrawal the next day; all within 8 weeks.
    assert_eq!(fca.tables[0].rows[0][..7], ["All complaints", "6", "5", "2", "3", "2", "0"]);
    let page = redress_quality_metrics::report::generate(
        &reader,
        "institutions/test-bank",
        q1(),
        "2026-Q1",
        ReportKind::Management,
        ReportFormat::Html,
        today,
    )
    .await
    .unwrap();
    let page = String::from_utf8(page.content).unwrap();
    assert_eq!(page.matches("<svg").count(), 2, "a Pareto chart and a trend");
}
