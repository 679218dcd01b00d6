//! First-contact ownership and the read-back of the record (D-INT-5) through the gateway: who
//! took a complaint is recorded (the calling member of staff, or whom a channel system names),
//! and the complainant's confirmation or corrections are recorded beside the verbatim record,
//! the corrections masked like the complainant's other personal information.
#![allow(clippy::unwrap_used)]

use redress_integration_tests::{BRANCH, BRANCH_TOKEN, Bearer, INSTITUTION_A_TOKEN, Sandbox, TOKEN, events_until};
use redress_platform::Principal;
use redress_proto::redress::intake::v1::intake_event_feed_service_client::IntakeEventFeedServiceClient;
use redress_proto::redress::intake::v1::{
    ComplaintAccepted, ComplaintContentConfirmed, ComplaintSource, ConfirmComplaintContentRequest, ConfirmationMethod,
    ContentConfirmation, FirstContact, GetComplaintRequest, ListComplaintsRequest, StreamEventsRequest,
    SubmitComplaintRequest, WithdrawComplaintRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

/// Token of a front-line clerk at [`BRANCH`] with an employee id, who takes complaints.
const CLERK_TOKEN: &str = "integration-test-front-line-clerk-token";
const CLERK_STAFF_ID: &str = "E1001";

fn clerk() -> Principal {
    Principal {
        subject: "user:clerk-wang".to_owned(),
        roles: vec!["front_line".to_owned()],
        org_unit: BRANCH.to_owned(),
        department: String::new(),
        permissions: ["complaints.create", "complaints.read", "cases.read", "cases.write"].map(str::to_owned).to_vec(),
        staff_id: CLERK_STAFF_ID.to_owned(),
    }
}

async fn sandbox() -> Sandbox {
    let data_dir = tempfile::tempdir().unwrap();
    let with_clerk = |options: &mut redress::SuiteOptions| {
        options.extra_dev_tokens.push((CLERK_TOKEN.to_owned(), clerk()));
    };
    Sandbox::start_configured(data_dir, with_clerk).await.unwrap()
}

/// A complaint at [`BRANCH`] with `facts`.
fn complaint(facts: &str) -> redress_proto::redress::intake::v1::Complaint {
    redress_proto::redress::intake::v1::Complaint {
        org_unit: BRANCH.to_owned(),
        ..redress_intake::testing::complaint(facts)
    }
}

fn submit(request_id: &str, complaint: redress_proto::redress::intake::v1::Complaint) -> SubmitComplaintRequest {
    SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint) }
}

/// The fields a refusal names, after checking it is INVALID_ARGUMENT.
fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    details.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_of_staff_who_took_a_complaint_is_recorded_and_shown() {
    let sandbox = sandbox().await;
    let mut clerk = sandbox.intake_with(Some(CLERK_TOKEN));

    // A clerk with an employee id takes a complaint: they are its first contact.
    let taken = clerk.submit_complaint(submit("fc-1", complaint("柜台多收手续费"))).await.unwrap().into_inner();
    let taken = taken.complaint.unwrap();
    let expected = FirstContact {
        subject: "user:clerk-wang".to_owned(),
        staff_id: CLERK_STAFF_ID.to_owned(),
        org_unit: BRANCH.to_owned(),
        department: String::new(),
        recorded_by: "user:clerk-wang".to_owned(),
    };
    assert_eq!(taken.first_contact.as_ref(), Some(&expected));
    assert_eq!(taken.source, ComplaintSource::ExternalConsumer as i32, "a consumer unless told otherwise");
    let got = GetComplaintRequest { name: taken.name.clone(), ..Default::default() };
    assert_eq!(clerk.get_complaint(got).await.unwrap().into_inner().first_contact.as_ref(), Some(&expected));
    let listed = clerk.list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner();
    let listed = listed.complaints.into_iter().find(|c| c.name == taken.name).unwrap();
    assert_eq!(listed.first_contact.as_ref(), Some(&expected));

    // A channel system (no employee id) names the member of staff who took the call, with a
    // unit spelled any way; naming nobody records nobody.
    let mut channel_system = sandbox.intake_with(Some(TOKEN));
    let named = redress_proto::redress::intake::v1::Complaint {
        first_contact: Some(FirstContact {
            subject: "user:agent-li".to_owned(),
            staff_id: " E2002 ".to_owned(),
            org_unit: "Institutions/Demo-Bank/Call-Centres/BJ/".to_owned(),
            department: "客服中心".to_owned(),
            recorded_by: "forged".to_owned(),
        }),
        source: ComplaintSource::ExternalPartner as i32,
        ..complaint("电话投诉理财产品")
    };
    let named = channel_system.submit_complaint(submit("fc-2", named)).await.unwrap().into_inner();
    let named = named.complaint.unwrap();
    let contact = named.first_contact.clone().unwrap();
    assert_eq!(
        (contact.staff_id.as_str(), contact.org_unit.as_str(), contact.recorded_by.as_str()),
        ("E2002", "institutions/demo-bank/call-centres/bj", "dev")
    );
    assert_eq!(named.source, ComplaintSource::ExternalPartner as i32);
    let unowned = channel_system.submit_complaint(submit("fc-3", complaint("网银转账失败"))).await.unwrap();
    assert_eq!(unowned.into_inner().complaint.unwrap().first_contact, None);

    // ComplaintAccepted carries who took it to case-workflow.
    let mut feed =
        IntakeEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let stream = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let events = events_until(stream, |e| e.aggregate == named.name).await;
    let accepted: Vec<ComplaintAccepted> = events
        .iter()
        .filter(|e| e.event_type == "redress.intake.v1.ComplaintAccepted")
        .map(|e| e.payload.as_ref().unwrap().to_msg().unwrap())
        .collect();
    assert_eq!(accepted[0].first_contact.as_ref(), Some(&expected));
    assert_eq!(accepted[1].first_contact.as_ref().map(|c| c.staff_id.as_str()), Some("E2002"));
    assert_eq!(accepted[1].source, ComplaintSource::ExternalPartner as i32);

    // Bad inputs name their fields, all at once.
    let bad = redress_proto::redress::intake::v1::Complaint {
        first_contact: Some(FirstContact {
            subject: "service:case-workflow".to_owned(),
            org_unit: "institutions/other-bank".to_owned(),
            ..FirstContact::default()
        }),
        source: 42,
        ..complaint("事实")
    };
    let status = channel_system.submit_complaint(submit("fc-4", bad)).await.unwrap_err();
    assert_eq!(
        fields(&status),
        [
            "complaint.first_contact.staff_id",
            "complaint.first_contact.subject",
            "complaint.first_contact.org_unit",
            "complaint.source"
        ]
    );
    // The same request id with another first contact is another complaint: refused.
    let other = redress_proto::redress::intake::v1::Complaint {
        first_contact: Some(FirstContact { staff_id: "E2003".to_owned(), ..contact }),
        source: ComplaintSource::ExternalPartner as i32,
        ..complaint("电话投诉理财产品")
    };
    let status = channel_system.submit_complaint(submit("fc-2", other)).await.unwrap_err();
    assert_eq!(fields(&status), ["request_id"]);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_complainants_confirmation_and_corrections_are_recorded_and_shown_masked_unless_read_with_a_reason() {
    const WORDS: &str = "金额是 300 元，不是 200 元；回电请打 13900009999";
    let sandbox = sandbox().await;
    let mut clerk = sandbox.intake_with(Some(CLERK_TOKEN));
    let taken = clerk.submit_complaint(submit("rb-1", complaint("信用卡年费多扣 200 元"))).await.unwrap();
    let taken = taken.into_inner().complaint.unwrap();
    let answer = |confirmed: bool, corrections: &str| ContentConfirmation {
        confirmed,
        method: ConfirmationMethod::ReadBackCall as i32,
        corrections: corrections.to_owned(),
        note: "通话录音 REC-20261202-01".to_owned(),
        ..ContentConfirmation::default()
    };
    let request = |request_id: &str, confirmation: ContentConfirmation| ConfirmComplaintContentRequest {
        name: taken.name.clone(),
        request_id: request_id.to_owned(),
        confirmation: Some(confirmation),
    };

    // The complainant corrects the amount, then confirms the corrected reading.
    let corrected = clerk.confirm_complaint_content(request("rb-c1", answer(false, WORDS))).await.unwrap();
    let corrected = corrected.into_inner();
    assert_eq!(corrected.content_confirmations.len(), 1);
    assert_eq!(corrected.content_confirmations[0].corrections, "[已隐藏]", "returned masked");
    assert_eq!(corrected.content_confirmations[0].recorded_by, "user:clerk-wang");
    assert_eq!(corrected.facts, "信用卡年费多扣 200 元", "the recorded words stay as they are");
    clerk.confirm_complaint_content(request("rb-c2", answer(true, ""))).await.unwrap();
    // A retry records nothing more.
    let retried = clerk.confirm_complaint_content(request("rb-c2", answer(true, ""))).await.unwrap();
    assert_eq!(retried.into_inner().content_confirmations.len(), 2);

    // Masked for a handler without pii.read; in clear with a reason for one holding it.
    let masked = GetComplaintRequest { name: taken.name.clone(), ..Default::default() };
    let masked = sandbox.intake_with(Some(BRANCH_TOKEN)).get_complaint(masked).await.unwrap().into_inner();
    let answers: Vec<(bool, &str)> =
        masked.content_confirmations.iter().map(|a| (a.confirmed, a.corrections.as_str())).collect();
    assert_eq!(answers, [(false, "[已隐藏]"), (true, "")]);
    assert_eq!(masked.content_confirmations[0].note, "通话录音 REC-20261202-01");
    let clear = GetComplaintRequest { name: taken.name.clone(), pii_access_reason: "回访核实金额".to_owned() };
    let clear = sandbox.intake().get_complaint(clear).await.unwrap().into_inner();
    assert_eq!(clear.content_confirmations[0].corrections, WORDS);
    let listed = sandbox.intake().list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.complaints[0].content_confirmations[0].corrections, "[已隐藏]", "lists never decrypt");

    // Announced without the complainant's words.
    let mut feed =
        IntakeEventFeedServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())));
    let stream = feed.stream_events(StreamEventsRequest { after_position: 0 }).await.unwrap().into_inner();
    let is_confirmation =
        |e: &redress_proto::redress::common::v1::Event| e.event_type == "redress.intake.v1.ComplaintContentConfirmed";
    let events = events_until(stream, |e| {
        is_confirmation(e)
            && e.payload.as_ref().is_some_and(|p| p.to_msg::<ComplaintContentConfirmed>().is_ok_and(|c| c.confirmed))
    })
    .await;
    let confirmed: Vec<ComplaintContentConfirmed> =
        events.iter().filter(|e| is_confirmation(e)).map(|e| e.payload.as_ref().unwrap().to_msg().unwrap()).collect();
    assert_eq!(confirmed.len(), 2);
    assert!(confirmed[0].has_corrections && !confirmed[0].confirmed);
    assert_eq!(confirmed[0].method, ConfirmationMethod::ReadBackCall as i32);
    for event in &events {
        let payload = &event.payload.as_ref().unwrap().value;
        assert!(!payload.windows(11).any(|w| w == b"13900009999"), "no correction in an event");
    }

    // Bad inputs name their fields; another unit's complaint does not exist for the caller.
    let bad = ContentConfirmation { method: 0, ..answer(false, "  ") };
    let status = clerk.confirm_complaint_content(request("rb-c3", bad)).await.unwrap_err();
    assert_eq!(fields(&status), ["confirmation.method", "confirmation.corrections"]);
    let unexplained =
        ContentConfirmation { method: ConfirmationMethod::Other as i32, note: String::new(), ..answer(true, "") };
    let status = clerk.confirm_complaint_content(request("", unexplained)).await.unwrap_err();
    assert_eq!(fields(&status), ["request_id", "confirmation.note"]);
    let elsewhere = redress_proto::redress::intake::v1::Complaint {
        org_unit: "institutions/demo-bank/branches/shanghai".to_owned(),
        ..complaint("上海分行的投诉")
    };
    let elsewhere = sandbox.intake().submit_complaint(submit("rb-2", elsewhere)).await.unwrap().into_inner();
    let hidden = ConfirmComplaintContentRequest {
        name: elsewhere.complaint.unwrap().name,
        request_id: "rb-c4".to_owned(),
        confirmation: Some(answer(true, "")),
    };
    assert_eq!(clerk.confirm_complaint_content(hidden).await.unwrap_err().code(), Code::NotFound);
    // A reader may not record an answer.
    let mut reader = sandbox.intake_with(Some(INSTITUTION_A_TOKEN));
    let status = reader.confirm_complaint_content(request("rb-c5", answer(true, ""))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Once withdrawn, no answer is recorded.
    let withdraw =
        WithdrawComplaintRequest {
            name: taken.name.clone(), reason: "已协商解决".to_owned(), withdraw_time: None
        };
    clerk.withdraw_complaint(withdraw).await.unwrap();
    let status = clerk.confirm_complaint_content(request("rb-c6", answer(true, ""))).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "COMPLAINT_WITHDRAWN");
    sandbox.stop().await.unwrap();
}
