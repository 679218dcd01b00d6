//! D-SLA-10 end to end through the gateway: an institution configured on FCA DISP gets the
//! 8-week final-response deadline counted in Europe/London, one left on the default CBIRC
//! regime the 15-day decision deadline in Asia/Shanghai, on both the receipt and the case.
#![allow(clippy::unwrap_used)]

use redress_calendar::{InstitutionConfig, RegimeConfig};
use redress_integration_tests::Sandbox;
use redress_platform::time::{Clock, from_timestamp};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;

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
