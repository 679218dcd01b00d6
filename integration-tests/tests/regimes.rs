//! D-SLA-10 end to end through the gateway: an institution configured on FCA DISP gets the
//! 8-week final-response deadline counted in Europe/London, one left on the default CBIRC
//! regime the 15-day decision deadline in Asia/Shanghai, on both the receipt and the case; a
//! UK deadline reaching a year without a bank-holiday file is set, provisional, and recounted
//! when the file is loaded.
#![allow(clippy::unwrap_used)]

use redress_calendar::{InstitutionConfig, RegimeConfig};
use redress_integration_tests::Sandbox;
use redress_platform::time::{Clock, from_timestamp};
use redress_proto::redress::case::v1::{ClockKind, GetCaseRequest};
use redress_proto::redress::common::v1::ReloadCalendarsRequest;
use redress_proto::redress::intake::v1::{GetComplaintRequest, SubmitComplaintRequest};

fn due(s: &str) -> Option<prost_types::Timestamp> {
    Some(s.parse().unwrap())
}

#[tokio::test]
async fn each_institution_gets_its_regimes_decision_deadline_in_its_zone() {
    // Mon 2026-03-02 10:00 UTC: 10:00 in London (GMT), 18:00 in Shanghai.
    let today = from_timestamp(&prost_types::Timestamp { seconds: 1_772_445_600, nanos: 0 }).unwrap();
    let sandbox = Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        options.clock = Clock::fixed(today);
        options.regimes = RegimeConfig {
            institutions: [(
                "institutions/uk-bank".to_owned(),
                InstitutionConfig { regime: "fca-disp".to_owned(), ..InstitutionConfig::default() },
            )]
            .into(),
            ..RegimeConfig::default()
        };
    })
    .await
    .unwrap();

    // (org unit, request id, zone, decision deadline)
    let expected = [
        // 56 days end Mon 27 April, a business day; 24:00 in London is 23:00 UTC (BST).
        ("institutions/uk-bank/branches/leeds", "regimes-uk", "Europe/London", "2026-04-27T23:00:00Z"),
        // 15 days end Tue 17 March; 24:00 in Shanghai is 16:00 UTC.
        ("institutions/demo-bank/branches/shanghai", "regimes-cn", "Asia/Shanghai", "2026-03-17T16:00:00Z"),
    ];
    for (unit, request_id, zone, decision) in expected {
        let mut complaint = redress_intake::testing::complaint("信用卡年费未经同意被扣收。");
        complaint.org_unit = unit.to_owned();
        let request = SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) };
        let complaint = sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap();
        let deadlines = complaint.receipt.unwrap().deadlines.unwrap();
        assert_eq!((deadlines.time_zone.as_str(), deadlines.regulatory_decision_due_time), (zone, due(decision)));
        let case = sandbox.case_of(&complaint.name).await;
        let deadlines = case.deadlines.unwrap();
        assert_eq!((deadlines.time_zone.as_str(), deadlines.regulatory_decision_due_time), (zone, due(decision)));
    }
}

/// Received Sun 2026-12-20 10:00 in London with no 2027 bank-holiday file: the eight weeks run
/// to Sun 2027-02-14, moved off the rest day to the end of Mon 15 February (24:00 GMT) on the
/// England and Wales provisional rules. A 2027 file that makes 15 February a holiday (a
/// one-off the rules cannot know) moves it to the end of Tue 16 February once loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uk_deadline_in_a_year_without_a_file_is_provisional_until_the_file_is_loaded() {
    const PROVISIONAL_DUE: &str = "2027-02-16T00:00:00Z";
    const OFFICIAL_DUE: &str = "2027-02-17T00:00:00Z";
    // 2026-12-20T10:00:00Z.
    let today = from_timestamp(&prost_types::Timestamp { seconds: 1_797_760_800, nanos: 0 }).unwrap();
    let calendars = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        options.clock = Clock::fixed(today);
        options.calendars_dir = Some(calendars.path().to_owned());
        options.calendars_poll_interval_ms = Some(0);
        options.regimes = RegimeConfig {
            institutions: [(
                "institutions/uk-bank".to_owned(),
                InstitutionConfig { regime: "fca-disp".to_owned(), ..InstitutionConfig::default() },
            )]
            .into(),
            ..RegimeConfig::default()
        };
    })
    .await
    .unwrap();

    let mut complaint = redress_intake::testing::complaint("Annual card fee charged without consent.");
    complaint.org_unit = "institutions/uk-bank/branches/leeds".to_owned();
    let request = SubmitComplaintRequest { request_id: "regimes-uk-2027".to_owned(), complaint: Some(complaint) };
    let complaint = sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap();
    let deadlines = complaint.receipt.clone().unwrap().deadlines.unwrap();
    assert_eq!(deadlines.regulatory_decision_due_time, due(PROVISIONAL_DUE));
    assert!(deadlines.regulatory_decision_provisional);
    let reason = &deadlines.regulatory_decision_provisional_reason;
    assert!(reason.contains("gb-eng") && reason.contains("2027") && reason.contains("one-off"), "{reason}");
    let case = sandbox.case_of(&complaint.name).await;
    let clock = case.clocks.iter().find(|c| c.kind == ClockKind::RegulatoryDecision as i32).unwrap();
    assert_eq!(clock.due_time, due(PROVISIONAL_DUE));
    assert!(clock.provisional && clock.provisional_reason.contains("gb-eng"), "{clock:?}");

    std::fs::create_dir(calendars.path().join("gb-eng")).unwrap();
    let file = "year = 2027\nsource = \"test\"\n[[holidays]]\nname = \"One-off\"\nfrom = 2027-02-15\nto = 2027-02-15\n";
    std::fs::write(calendars.path().join("gb-eng").join("2027.toml"), file).unwrap();
    let intake = sandbox.intake().reload_calendars(ReloadCalendarsRequest {}).await.unwrap().into_inner();
    assert_eq!(intake.revised_count, 1, "{intake:?}");
    let cases = sandbox.cases().reload_calendars(ReloadCalendarsRequest {}).await.unwrap().into_inner();
    assert_eq!(cases.revised_count, 1, "{cases:?}");

    let request = GetComplaintRequest { name: complaint.name.clone(), ..Default::default() };
    let now = sandbox.intake().get_complaint(request).await.unwrap().into_inner();
    let deadlines = now.receipt.unwrap().deadlines.unwrap();
    assert_eq!(deadlines.regulatory_decision_due_time, due(OFFICIAL_DUE));
    assert!(!deadlines.regulatory_decision_provisional);
    let now = sandbox.cases().get_case(GetCaseRequest { name: case.name.clone() }).await.unwrap().into_inner();
    let clock = now.clocks.iter().find(|c| c.kind == ClockKind::RegulatoryDecision as i32).unwrap();
    assert_eq!(clock.due_time, due(OFFICIAL_DUE));
    assert!(!clock.provisional);
    sandbox.stop().await.unwrap();
}
