//! Data-subject rights through the gateway: export, correction, erasure, and who may do them.
#![allow(clippy::unwrap_used)]

use redress_integration_tests::{BRANCH_TOKEN, Bearer, Sandbox, TOKEN};
use redress_proto::redress::intake::v1::personal_data_service_client::PersonalDataServiceClient;
use redress_proto::redress::intake::v1::{
    CorrectPersonalDataRequest, ErasePersonalDataRequest, ExportPersonalDataRequest, GetComplaintRequest,
    ListPersonalDataAccessesRequest, PersonIdentifier, SubmitComplaintRequest, complainant::Party, person_identifier,
};
use tonic::Code;
use tonic_types::StatusExt;

fn by_phone(phone: &str) -> Option<PersonIdentifier> {
    Some(PersonIdentifier { identifier: Some(person_identifier::Identifier::Phone(phone.to_owned())) })
}

const BANK: &str = "institutions/demo-bank";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_can_be_exported_corrected_and_erased() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut names = Vec::new();
    for i in 0..2 {
        let complaint = redress_intake::testing::complaint(&format!("事实{i}"));
        let request = SubmitComplaintRequest { request_id: format!("pd-{i}"), complaint: Some(complaint) };
        names.push(sandbox.intake().submit_complaint(request).await.unwrap().into_inner().complaint.unwrap().name);
    }
    let mut pd = PersonalDataServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(TOKEN.to_owned())));

    // Every wrong field at once.
    let status = pd.export_personal_data(ExportPersonalDataRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["institution", "person", "reason"]);
    // A handler without pii.manage may not.
    let mut branch =
        PersonalDataServiceClient::with_interceptor(sandbox.channel.clone(), Bearer(Some(BRANCH_TOKEN.to_owned())));
    let request =
        ExportPersonalDataRequest { person: by_phone("13812345678"), institution: BANK.to_owned(), reason: "r".into() };
    assert_eq!(branch.export_personal_data(request.clone()).await.unwrap_err().code(), Code::PermissionDenied);

    let exported = pd.export_personal_data(request).await.unwrap().into_inner();
    assert_eq!(exported.complaints.len(), 2);
    assert!(exported.subject.starts_with("subjects/"));
    let mut complainant = exported.complaints[0].complainant.clone().unwrap();
    let Some(Party::Person(p)) = complainant.party.as_mut() else { panic!() };
    assert_eq!(p.phone, "13812345678");

    // A correction is validated like a submission, then applied.
    p.phone = "1381234".to_owned();
    let bad = CorrectPersonalDataRequest {
        name: names[0].clone(),
        complainant: Some(complainant.clone()),
        reason: "号码有误".to_owned(),
    };
    let status = pd.correct_personal_data(bad).await.unwrap_err();
    assert_eq!(status.get_error_details().bad_request().unwrap().field_violations[0].field, "complainant.person.phone");
    let Some(Party::Person(p)) = complainant.party.as_mut() else { panic!() };
    p.phone = "13987654321".to_owned();
    let request = CorrectPersonalDataRequest {
        name: names[0].clone(),
        complainant: Some(complainant),
        reason: "号码有误".to_owned(),
    };
    pd.correct_personal_data(request).await.unwrap();

    let erase = ErasePersonalDataRequest {
        person: by_phone("13812345678"),
        institution: BANK.to_owned(),
        reason: "删除请求".into(),
    };
    let erased = pd.erase_personal_data(erase).await.unwrap().into_inner();
    assert_eq!((erased.subject.as_str(), erased.erased_complaints), (exported.subject.as_str(), 2));
    let request = GetComplaintRequest { name: names[1].clone(), pii_access_reason: "核实".to_owned() };
    let after = sandbox.intake().get_complaint(request).await.unwrap().into_inner();
    let Some(Party::Person(p)) = after.complainant.unwrap().party else { panic!() };
    assert_eq!((p.phone.as_str(), p.id_number.as_str()), ("[已删除]", "[已删除]"));

    let log = pd
        .list_personal_data_accesses(ListPersonalDataAccessesRequest { subject: exported.subject.clone() })
        .await
        .unwrap()
        .into_inner()
        .accesses;
    let actions: Vec<&str> = log.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["erase", "correct", "export", "export"]);
    assert!(log.iter().all(|a| a.actor == "dev"));
    sandbox.stop().await.unwrap();
}
