//! The suite end to end, through the gateway, with nothing but generated clients.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use redress_integration_tests::{BRANCH_TOKEN, Sandbox, TOKEN};
use redress_proto::redress::case::v1::{CaseState, ListCasesRequest};
use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::intake::v1::personal_data_service_client::PersonalDataServiceClient;
use redress_proto::redress::intake::v1::{
    Complaint, ExportPersonalDataRequest, GetComplaintRequest, ListComplaintsRequest, PersonIdentifier,
    SubmitComplaintRequest, complainant::Party, person_identifier,
};
use tonic::Code;
use tonic_types::StatusExt;

fn complaint(facts: &str) -> Complaint {
    Complaint { channel: Channel::MobileApp as i32, ..redress_intake::testing::complaint(facts) }
}

fn submit(request_id: &str, facts: &str) -> SubmitComplaintRequest {
    SubmitComplaintRequest { request_id: request_id.to_owned(), complaint: Some(complaint(facts)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_complaint_gets_a_receipt_and_a_case_within_a_second() {
    let sandbox = Sandbox::start().await.unwrap();
    let response = sandbox.intake().submit_complaint(submit("e2e-1", "客服电话中被诱导办理分期。")).await.unwrap();
    let response = response.into_inner();
    let complaint = response.complaint.unwrap();
    let receipt = response.receipt.unwrap();
    assert!(complaint.name.starts_with("complaints/"));
    assert_eq!(receipt.complaint, complaint.name);
    assert_eq!(receipt.complaint_number, complaint.complaint_number);
    let deadlines = receipt.deadlines.unwrap();
    assert!(deadlines.first_response_due_time.is_some());
    assert!(deadlines.resolution_due_time.is_some());
    assert!(deadlines.regulatory_decision_due_time.is_some());
    assert_eq!(deadlines.time_zone, "Asia/Shanghai");

    // Read back masked by default, and in clear only with a reason (which is recorded).
    let fetched = sandbox
        .intake()
        .get_complaint(GetComplaintRequest { name: complaint.name.clone(), ..Default::default() })
        .await
        .unwrap();
    let mut masked = complaint.clone();
    redress_intake::domain::mask::complaint(&mut masked);
    assert_eq!(fetched.into_inner(), masked);
    let reason = "核实联系方式".to_owned();
    let request = GetComplaintRequest { name: complaint.name.clone(), pii_access_reason: reason };
    assert_eq!(sandbox.intake().get_complaint(request).await.unwrap().into_inner(), complaint);

    let started = Instant::now();
    let case = loop {
        let request = ListCasesRequest { complaint: complaint.name.clone(), ..Default::default() };
        let cases = sandbox.cases().list_cases(request).await.unwrap().into_inner().cases;
        if let Some(case) = cases.into_iter().next() {
            break case;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "no case within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(case.state, CaseState::Accepted as i32);
    assert_eq!(case.case_number, complaint.complaint_number);
    assert_eq!(case.deadlines, Some(deadlines));
    assert!(case.assignee.is_empty());
    let listed = sandbox.intake().list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.complaints.len(), 1);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_id_returns_the_same_complaint_and_a_changed_one_is_refused() {
    let sandbox = Sandbox::start().await.unwrap();
    let first = sandbox.intake().submit_complaint(submit("retry-1", "事实")).await.unwrap().into_inner();
    let again = sandbox.intake().submit_complaint(submit("retry-1", "事实")).await.unwrap().into_inner();
    assert_eq!(first, again);
    let status = sandbox.intake().submit_complaint(submit("retry-1", "另一件事")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["request_id"]);
    let listed = sandbox.intake().list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.complaints.len(), 1, "nothing half-written");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut request = submit("bad-1", "事实");
    if let Some(Party::Person(p)) = request.complaint.as_mut().unwrap().complainant.as_mut().unwrap().party.as_mut() {
        p.phone = "12345".to_owned();
    }
    let status = sandbox.intake().submit_complaint(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["complaint.complainant.person.phone"]);
    assert_eq!(details.localized_message().unwrap().locale, "zh-CN");
    assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");

    let status = sandbox
        .intake()
        .get_complaint(GetComplaintRequest { name: "nope".to_owned(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let missing = GetComplaintRequest {
        name: "complaints/01a20000-0000-7000-8000-000000000000".to_owned(),
        ..Default::default()
    };
    assert_eq!(sandbox.intake().get_complaint(missing).await.unwrap_err().code(), Code::NotFound);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let sandbox = Sandbox::start().await.unwrap();
    for token in [None, Some("wrong-token")] {
        let status = sandbox.intake_with(token).submit_complaint(submit("auth-1", "事实")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
    }
    assert!(sandbox.intake_with(Some(TOKEN)).list_complaints(ListComplaintsRequest::default()).await.is_ok());
    let listed = sandbox.intake().list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner();
    assert!(listed.complaints.is_empty());
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_refuse_calls_that_bypass_the_gateway() {
    let sandbox = Sandbox::start().await.unwrap();
    let direct = tonic::transport::Channel::from_shared(format!("http://{}", sandbox.suite.intake_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient::with_interceptor(
        direct,
        redress_integration_tests::Bearer(Some(TOKEN.to_owned())),
    );
    let status = client.submit_complaint(submit("direct-1", "事实")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_survive_a_restart_and_are_never_duplicated() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut names = Vec::new();
    for i in 0..20 {
        let r = sandbox.intake().submit_complaint(submit(&format!("restart-{i}"), &format!("事实{i}"))).await.unwrap();
        names.push(r.into_inner().complaint.unwrap().name);
    }
    // Stop while the consumer may still be catching up, then start on the same files.
    let dir = sandbox.stop().await.unwrap();
    let sandbox = Sandbox::start_in(dir).await.unwrap();
    for i in 20..30 {
        let r = sandbox.intake().submit_complaint(submit(&format!("restart-{i}"), &format!("事实{i}"))).await.unwrap();
        names.push(r.into_inner().complaint.unwrap().name);
    }
    let started = Instant::now();
    loop {
        let request = ListCasesRequest { page_size: 100, ..Default::default() };
        let cases = sandbox.cases().list_cases(request).await.unwrap().into_inner().cases;
        if cases.len() >= names.len() {
            let mut complaints: Vec<_> = cases.into_iter().map(|c| c.complaint).collect();
            complaints.sort();
            let mut expected = names.clone();
            expected.sort();
            assert_eq!(complaints, expected, "exactly one case per complaint");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "cases missing after restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_reaches_the_published_event_and_the_feed_resumes_through_the_gateway() {
    use redress_proto::redress::intake::v1::StreamEventsRequest;
    use redress_proto::redress::intake::v1::intake_event_feed_service_client::IntakeEventFeedServiceClient;

    let sandbox = Sandbox::start().await.unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    for i in 0..3 {
        let mut request = tonic::Request::new(submit(&format!("trace-{i}"), &format!("事实{i}")));
        request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
        sandbox.intake().submit_complaint(request).await.unwrap();
    }
    let mut feed = IntakeEventFeedServiceClient::with_interceptor(
        sandbox.channel.clone(),
        redress_integration_tests::Bearer(Some(TOKEN.to_owned())),
    );
    let mut stream = feed.stream_events(StreamEventsRequest { after_position: 1 }).await.unwrap().into_inner();
    let mut positions = Vec::new();
    while positions.len() < 2 {
        for event in stream.message().await.unwrap().unwrap().events {
            assert_eq!(event.event_type, "redress.intake.v1.ComplaintAccepted");
            assert!(event.traceparent.contains(trace_id), "event carries the caller's trace: {}", event.traceparent);
            positions.push(event.position);
        }
    }
    assert_eq!(positions, [2, 3], "resumes after the given position, in order");
    drop(stream);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_count_calls_and_accepted_complaints() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.intake().submit_complaint(submit("metrics-1", "事实")).await.unwrap();
    let _ = sandbox.intake_with(None).submit_complaint(submit("metrics-2", "事实")).await.unwrap_err();
    let page = redress_integration_tests::scrape_metrics().await.unwrap();
    assert!(page.contains("redress_complaints_accepted_total{channel=\"CHANNEL_MOBILE_APP\"}"), "{page}");
    let submit_ok =
        "redress_grpc_requests_total{method=\"/redress.intake.v1.IntakeService/SubmitComplaint\",code=\"0\"}";
    let submit_unauthenticated =
        "redress_grpc_requests_total{method=\"/redress.intake.v1.IntakeService/SubmitComplaint\",code=\"16\"}";
    assert!(page.contains(submit_ok), "{page}");
    assert!(page.contains(submit_unauthenticated), "{page}");
    assert!(page.contains("redress_grpc_request_duration_seconds_bucket"), "{page}");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_see_only_their_organisation_unit_and_masked_personal_information() {
    use redress_integration_tests::{BRANCH, BRANCH_TOKEN};
    use redress_proto::redress::case::v1::GetCaseRequest;
    use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;

    let sandbox = Sandbox::start().await.unwrap();
    let mut branch = sandbox.intake_with(Some(BRANCH_TOKEN));
    let mut own = submit("scope-1", "本网点的投诉");
    own.complaint.as_mut().unwrap().org_unit = format!("{BRANCH}/departments/cards");
    let own = branch.submit_complaint(own).await.unwrap().into_inner().complaint.unwrap();
    let Some(Party::Person(person)) = own.complainant.as_ref().unwrap().party.as_ref() else { panic!() };
    assert_eq!(person.phone, "138****5678", "masked without the PII permission");
    assert_eq!(person.id_number, "1****************X");

    let mut elsewhere = submit("scope-2", "另一家机构的投诉");
    elsewhere.complaint.as_mut().unwrap().org_unit = "institutions/other-bank".to_owned();
    let status = branch.submit_complaint(elsewhere.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let other = sandbox.intake().submit_complaint(elsewhere).await.unwrap().into_inner().complaint.unwrap();
    let Some(Party::Person(person)) = other.complainant.as_ref().unwrap().party.as_ref() else { panic!() };
    assert_eq!(person.phone, "13812345678", "clear with the PII permission");

    let status =
        branch.get_complaint(GetComplaintRequest { name: other.name.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "another unit's complaint does not exist for the caller");
    let listed = branch.list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner().complaints;
    assert_eq!(listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [own.name.as_str()]);
    let all = sandbox.intake().list_complaints(ListComplaintsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.complaints.len(), 2);

    let mut cases = CaseServiceClient::with_interceptor(
        sandbox.channel.clone(),
        redress_integration_tests::Bearer(Some(BRANCH_TOKEN.to_owned())),
    );
    let started = Instant::now();
    while sandbox.cases().list_cases(ListCasesRequest::default()).await.unwrap().into_inner().cases.len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "cases not opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let visible = cases.list_cases(ListCasesRequest::default()).await.unwrap().into_inner().cases;
    assert_eq!(visible.iter().map(|c| c.complaint.as_str()).collect::<Vec<_>>(), [own.name.as_str()]);
    let request = ListCasesRequest { complaint: other.name.clone(), ..Default::default() };
    let other_case = sandbox.cases().list_cases(request).await.unwrap().into_inner().cases.remove(0);
    let status = cases.get_case(GetCaseRequest { name: other_case.name }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_stored_audit_entry_is_detected() {
    use redress_proto::redress::case::v1::{ListAuditEntriesRequest, VerifyAuditChainRequest};

    let sandbox = Sandbox::start().await.unwrap();
    let complaint =
        sandbox.intake().submit_complaint(submit("audit-1", "事实")).await.unwrap().into_inner().complaint.unwrap();
    let started = Instant::now();
    let case = loop {
        let request = ListCasesRequest { complaint: complaint.name.clone(), ..Default::default() };
        if let Some(case) = sandbox.cases().list_cases(request).await.unwrap().into_inner().cases.pop() {
            break case;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no case");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let entries = sandbox
        .cases()
        .list_audit_entries(ListAuditEntriesRequest { case: case.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .audit_entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "case.opened");
    let verify = || VerifyAuditChainRequest { case: case.name.clone() };
    let intact = sandbox.cases().verify_audit_chain(verify()).await.unwrap().into_inner();
    assert!(intact.intact, "{intact:?}");
    assert_eq!(intact.entries, 1);

    // Someone with access to the database file rewrites who opened the case.
    let db = sandbox.data_dir.path().join("case-workflow.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query("UPDATE audit_entries SET actor = 'user:someone-else'").execute(&pool).await.unwrap();
    pool.close().await;
    let broken = sandbox.cases().verify_audit_chain(verify()).await.unwrap().into_inner();
    assert!(!broken.intact);
    assert_eq!(broken.first_broken_sequence, 1);
    assert!(broken.reason.contains("no longer matches"), "{}", broken.reason);
    sandbox.stop().await.unwrap();
}

/// Only the gateway speaks for a caller: a principal (or a token to act on behalf of someone)
/// the caller sends along is dropped, and the service sees the principal of the caller's own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_sent_by_the_caller_is_replaced_by_the_gateway() {
    let sandbox = Sandbox::start().await.unwrap();
    let export = || {
        let phone = person_identifier::Identifier::Phone("13812345678".to_owned());
        tonic::Request::new(ExportPersonalDataRequest {
            person: Some(PersonIdentifier { identifier: Some(phone) }),
            institution: "institutions/demo-bank".to_owned(),
            reason: "数据主体查阅申请".to_owned(),
        })
    };
    // A principal for intake holding pii.manage over every institution, validly signed with the
    // gateway's own key: intake accepts it when it reaches intake itself.
    let forged = || {
        let mut request = export();
        sandbox.suite.gateway_credentials(redress::dev_principal(), "intake").apply(&mut request).unwrap();
        request
    };
    let mut direct = PersonalDataServiceClient::connect(format!("http://{}", sandbox.suite.intake_addr)).await.unwrap();
    direct.export_personal_data(forged()).await.unwrap();
    // Sent to the gateway with a branch handler's token (no pii.manage), it is replaced.
    let mut gateway = PersonalDataServiceClient::new(sandbox.channel.clone());
    let mut request = forged();
    request.metadata_mut().insert("authorization", format!("Bearer {BRANCH_TOKEN}").parse().unwrap());
    assert_eq!(gateway.export_personal_data(request).await.unwrap_err().code(), Code::PermissionDenied);
    // Sent with no token at all, it is no token.
    assert_eq!(gateway.export_personal_data(forged()).await.unwrap_err().code(), Code::Unauthenticated);
    // A token to act on behalf of someone, sent along by the caller, is dropped too: the call is
    // the branch handler's own (were it passed on, intake would refuse the call as unsigned by a
    // service).
    let mut request = export();
    let on_behalf = forged().metadata().get(redress_platform::principal::PRINCIPAL_METADATA_KEY).unwrap().clone();
    request.metadata_mut().insert(redress_platform::principal::ON_BEHALF_METADATA_KEY, on_behalf);
    request.metadata_mut().insert("authorization", format!("Bearer {BRANCH_TOKEN}").parse().unwrap());
    let refused = gateway.export_personal_data(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    sandbox.stop().await.unwrap();
}
