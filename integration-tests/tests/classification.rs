//! Classification, grading and early warning at intake, through the gateway; each institution
//! classifies in the taxonomy of its regime (D-CLS, D-SLA-10).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redress_calendar::{InstitutionConfig, RegimeConfig};
use redress_integration_tests::{Bearer, Sandbox, TOKEN};
use redress_proto::redress::common::v1::Grade;
use redress_proto::redress::intake::v1::intake_event_feed_service_client::IntakeEventFeedServiceClient;
use redress_proto::redress::intake::v1::{
    ClassificationSource, ComplaintReclassified, Interaction, ListTaxonomiesRequest, OverrideClassificationRequest,
    RiskSignalKind, RiskSignalRaised, StreamEventsRequest, SubmitComplaintRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_are_classified_graded_and_can_be_overridden() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut complaint = redress_intake::testing::complaint(
        "信用卡年费未经同意被扣了600元，客服态度恶劣，太过分了！再不处理我就向金融监管总局投诉。",
    );
    complaint.interaction = Some(Interaction { contact_count: 5, wait_seconds: 30 });
    let request = SubmitComplaintRequest { request_id: "cls-1".to_owned(), complaint: Some(complaint) };
    let response = sandbox.intake().submit_complaint(request).await.unwrap().into_inner();
    let complaint = response.complaint.unwrap();
    let classification = complaint.classification.clone().unwrap();
    assert_eq!(classification.business_type, "B02");
    assert_eq!(classification.taxonomy, "banking@2026.2");
    assert_eq!(classification.source, ClassificationSource::Automatic as i32);
    assert_eq!(classification.grade, Grade::Important as i32, "{:?}", classification.grade_reasons);
    assert_eq!(complaint.grade, Grade::Important as i32);
    // The receipt's deadlines follow the grade: important is 8 hours to first response.
    let deadlines = response.receipt.unwrap().deadlines.unwrap();
    assert_eq!(deadlines.grade, Grade::Important as i32);
    let received = complaint.receive_time.unwrap().seconds;
    assert_eq!(deadlines.first_response_due_time.unwrap().seconds - received, 8 * 3600);
    let kinds: Vec<i32> = complaint.risk_signals.iter().map(|s| s.kind).collect();
    for kind in [RiskSignalKind::RepeatContact, RiskSignalKind::EscalationThreat, RiskSignalKind::HeatedWording] {
        assert!(kinds.contains(&(kind as i32)), "{kind:?} in {kinds:?}");
    }

    // A handler overrides; bad codes are refused naming each field.
    let bad = OverrideClassificationRequest {
        name: complaint.name.clone(),
        business_type: "B42".to_owned(),
        rights: vec!["R1".to_owned(), "R9".to_owned()],
        ..Default::default()
    };
    let status = sandbox.intake().override_classification(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["business_type", "rights[1]", "reason"]);
    let request = OverrideClassificationRequest {
        name: complaint.name.clone(),
        cause: "C05".to_owned(),
        grade: Grade::Urgent as i32,
        reason: "涉及多名客户的同类收费问题".to_owned(),
        ..Default::default()
    };
    let overridden = sandbox.intake().override_classification(request).await.unwrap().into_inner();
    let now = overridden.classification.unwrap();
    assert_eq!(
        (now.source, now.cause.as_str(), now.grade),
        (ClassificationSource::Handler as i32, "C05", Grade::Urgent as i32)
    );
    assert_eq!(now.classified_by, "dev");
    assert_eq!(overridden.grade, Grade::Urgent as i32);
    assert_eq!(overridden.automatic_classification.unwrap(), classification, "the automatic result is kept");

    // Both are announced on the feed.
    let mut feed =
        IntakeEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let mut stream = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let mut types = Vec::new();
    while types.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
        for event in batch.events {
            match event.event_type.as_str() {
                "redress.intake.v1.RiskSignalRaised" => {
                    let raised: RiskSignalRaised = event.payload.as_ref().unwrap().to_msg().unwrap();
                    assert_eq!(raised.signals, complaint.risk_signals);
                }
                "redress.intake.v1.ComplaintReclassified" => {
                    let changed: ComplaintReclassified = event.payload.as_ref().unwrap().to_msg().unwrap();
                    assert_eq!(changed.previous.unwrap(), classification);
                }
                _ => {}
            }
            types.push(event.event_type);
        }
    }
    assert_eq!(
        types,
        [
            "redress.intake.v1.ComplaintAccepted",
            "redress.intake.v1.RiskSignalRaised",
            "redress.intake.v1.ComplaintReclassified"
        ]
    );
    drop(stream);

    let taxonomies = sandbox.intake().list_taxonomies(ListTaxonomiesRequest {}).await.unwrap().into_inner().taxonomies;
    let names: Vec<(&str, bool)> = taxonomies.iter().map(|t| (t.name.as_str(), t.active)).collect();
    assert_eq!(names, [("banking", true), ("general", false)]);
    assert!(taxonomies[0].business_types.iter().any(|c| c.code == "B99" && c.name == "其他"));
    sandbox.stop().await.unwrap();
}

/// A shop under the SAMR regime classifies in the general-enterprise taxonomy, a bank under
/// CBIRC in banking (where damaged-note exchange is cash management, B09); a handler's codes
/// come from the complaint's own taxonomy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_institution_classifies_in_its_regimes_taxonomy() {
    let sandbox = Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        let institution =
            |regime: &str| InstitutionConfig { regime: regime.to_owned(), ..InstitutionConfig::default() };
        options.regimes = RegimeConfig {
            institutions: [
                ("institutions/shop".to_owned(), institution("samr")),
                ("institutions/demo-bank".to_owned(), institution("cbirc")),
            ]
            .into(),
            ..RegimeConfig::default()
        };
    })
    .await
    .unwrap();
    let submit = |unit: &str, request_id: &str, demand: &str, facts: &str| {
        let mut complaint = redress_intake::testing::complaint(facts);
        complaint.org_unit = unit.to_owned();
        complaint.demand = demand.to_owned();
        let request = SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) };
        let mut intake = sandbox.intake();
        async move { intake.submit_complaint(request).await.unwrap().into_inner().complaint.unwrap() }
    };

    let parcel = submit(
        "institutions/shop/stores/s1",
        "cls-shop",
        "尽快找到包裹或者赔偿",
        "网上买的电饭煲显示已签收，可我根本没收到包裹，快递员电话一直不接，问了三天也没人处理。",
    )
    .await;
    let shop = parcel.classification.clone().unwrap();
    assert_eq!((shop.taxonomy.as_str(), shop.business_type.as_str()), ("general@2026.2", "G03"), "{shop:?}");
    assert!(shop.cause.starts_with('K'), "{shop:?}");

    let card = submit("institutions/demo-bank/branches/sh", "cls-bank", "退还年费", "信用卡年费未经同意被扣收。").await;
    let bank = card.classification.unwrap();
    assert_eq!((bank.taxonomy.as_str(), bank.business_type.as_str()), ("banking@2026.2", "B02"));

    let note = submit(
        "institutions/demo-bank/branches/sh",
        "cls-cash",
        "按规定兑换残损币",
        "我拿一张缺了一角的残损币去网点兑换，柜员说残损币兑换要去人民银行办，不给换。",
    )
    .await;
    let cash = note.classification.unwrap();
    assert_eq!((cash.taxonomy.as_str(), cash.business_type.as_str()), ("banking@2026.2", "B09"), "{cash:?}");

    // Both taxonomies are in use now, and a handler picks codes from the complaint's own.
    let taxonomies = sandbox.intake().list_taxonomies(ListTaxonomiesRequest {}).await.unwrap().into_inner().taxonomies;
    let active: Vec<(&str, bool)> = taxonomies.iter().map(|t| (t.name.as_str(), t.active)).collect();
    assert_eq!(active, [("banking", true), ("general", true)]);
    let general = taxonomies.iter().find(|t| t.name == "general").unwrap();
    assert!(general.business_types.iter().any(|c| c.code == "G99" && c.name == "其他"));
    let overriding = |business_type: &str| OverrideClassificationRequest {
        name: parcel.name.clone(),
        business_type: business_type.to_owned(),
        reason: "核实为售后问题".to_owned(),
        ..Default::default()
    };
    let status = sandbox.intake().override_classification(overriding("B02")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!(violations[0].field, "business_type");
    assert!(violations[0].description.contains("general@2026.2"), "{violations:?}");
    let overridden = sandbox.intake().override_classification(overriding("G02")).await.unwrap().into_inner();
    let now = overridden.classification.unwrap();
    assert_eq!((now.taxonomy.as_str(), now.business_type.as_str()), ("general@2026.2", "G02"));
    sandbox.stop().await.unwrap();
}
