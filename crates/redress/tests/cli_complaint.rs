//! `redress complaint …` against the embedded suite: the built binary submits, reads,
//! reclassifies and withdraws complaints, and restricts, supplements and lifts for the person,
//! through the gateway, and says in its exit code and on stderr when a call is refused.
#![allow(clippy::unwrap_used)]

use std::process::{Output, Stdio};

use redress_integration_tests::{Sandbox, TOKEN};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

fn redress(sandbox: &Sandbox) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
    command
        .arg("complaint")
        .env("REDRESS_GATEWAY", format!("http://{}", sandbox.suite.gateway_addr))
        .env("REDRESS_TOKEN", TOKEN);
    command
}

/// Runs `redress complaint <args>` against the sandbox's gateway with the development token.
async fn redress_complaint(sandbox: &Sandbox, args: &[&str]) -> Output {
    redress(sandbox).args(args).output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The complainant's phone and resident ID number, valid and in clear.
const PHONE: &str = "13812345678";
const ID_NUMBER: &str = "11010519491231002X";

/// Submits a natural person's phone complaint with flags; the complaint's name and number.
async fn submit(sandbox: &Sandbox, request_id: &str) -> (String, String) {
    let (name, number, _) = submit_with(sandbox, request_id, &[]).await;
    (name, number)
}

/// [`submit`] with `extra` flags; the complaint's name, number and the printed summary.
async fn submit_with(sandbox: &Sandbox, request_id: &str, extra: &[&str]) -> (String, String, String) {
    let flags = [
        "submit",
        "--channel",
        "phone",
        "--name",
        "王小明",
        "--phone",
        PHONE,
        "--id-number",
        ID_NUMBER,
        "--institution",
        "示例银行",
        "--branch",
        "上海分行",
        "--org-unit",
        "institutions/demo-bank/branches/shanghai",
        "--demand",
        "退还多收的信用卡年费",
        "--facts",
        "信用卡年费已达标仍被扣收。",
        "--request-id",
        request_id,
    ];
    let output = redress_complaint(sandbox, &[&flags[..], extra].concat()).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let first = text.lines().next().unwrap();
    let mut words = first.split_whitespace();
    assert_eq!(words.next(), Some("complaint"), "{text}");
    let name = words.next().unwrap().to_owned();
    assert_eq!(words.next(), Some("no."), "{text}");
    let number = words.next().unwrap().to_owned();
    assert!(name.starts_with("complaints/"), "{text}");
    assert!(number.len() >= 8 && number.bytes().all(|b| b.is_ascii_digit()), "a complaint number: {text}");
    assert!(text.contains(&format!("request id  {request_id}")), "{text}");
    (name, number, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_submitted_with_flags_and_read_masked_or_in_clear() {
    let sandbox = Sandbox::start().await.unwrap();
    let (name, number) = submit(&sandbox, "cli-complaint-1").await;

    // Without a reason personal information comes back masked; a bare id is enough.
    let id = name.strip_prefix("complaints/").unwrap();
    let masked = redress_complaint(&sandbox, &["get", id]).await;
    assert!(masked.status.success(), "{}", stderr(&masked));
    let text = stdout(&masked);
    assert!(text.contains(&number), "{text}");
    assert!(text.contains("138****5678"), "{text}");
    assert!(!text.contains(PHONE) && !text.contains(ID_NUMBER), "{text}");
    assert!(text.contains("state       accepted"), "{text}");
    assert!(text.contains("first response"), "the receipt's deadlines: {text}");
    // A working-day period ends at 24:00 of its last day where it was counted (D-SLA-5).
    let resolution = text.lines().find(|l| l.trim_start().starts_with("resolution")).unwrap_or_default();
    assert!(resolution.contains(" 24:00 (Asia/Shanghai)"), "{text}");

    let clear = redress_complaint(&sandbox, &["get", &name, "--reveal-reason", "回电核实身份"]).await;
    assert!(clear.status.success(), "{}", stderr(&clear));
    let text = stdout(&clear);
    assert!(text.contains(PHONE) && text.contains(ID_NUMBER) && text.contains("王小明"), "{text}");
    assert!(!text.contains("****"), "{text}");

    let json = redress_complaint(&sandbox, &["get", &name, "--output", "json"]).await;
    assert!(json.status.success(), "{}", stderr(&json));
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["name"], name.as_str());
    assert_eq!(json["complaint_number"], number.as_str());
    assert_eq!(json["channel"], "CHANNEL_PHONE");
    assert_eq!(json["state"], "COMPLAINT_STATE_ACCEPTED");
    assert_eq!(json["complainant"]["person"]["phone"], "138****5678");
    assert_eq!(json["complainant"]["person"]["id_document_type"], "ID_DOCUMENT_TYPE_RESIDENT_ID");
    assert_eq!(json["complained_party"]["institution"], "示例银行");
    assert_eq!(json["classification"]["source"], "CLASSIFICATION_SOURCE_AUTOMATIC");
    assert!(json["classification"]["business_type"].as_str().unwrap().starts_with('B'), "{json}");
    assert!(json["receive_time"].as_str().unwrap().ends_with('Z'), "RFC 3339 in UTC: {json}");
    assert!(json["receipt"]["deadlines"]["resolution_due_time"].as_str().unwrap().ends_with('Z'), "{json}");
    assert!(json["withdraw_time"].is_null(), "{json}");

    // A retry with the same request id records the complaint once.
    let (again, again_number) = submit(&sandbox, "cli-complaint-1").await;
    assert_eq!((again, again_number), (name.clone(), number.clone()));

    let list = redress_complaint(&sandbox, &["list", "--channel", "phone"]).await;
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(stdout(&list).lines().filter(|l| l.starts_with(&name)).count(), 1, "{}", stdout(&list));
    let list = redress_complaint(&sandbox, &["list", "--channel", "counter"]).await;
    assert_eq!(stdout(&list), "no complaints\n");
    let list = redress_complaint(&sandbox, &["list", "--received-after", "2999-01-01T00:00:00+08:00"]).await;
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(stdout(&list), "no complaints\n");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classification_is_overridden_with_codes_from_the_taxonomies() {
    let sandbox = Sandbox::start().await.unwrap();
    let (name, _) = submit(&sandbox, "cli-complaint-2").await;

    let taxonomies = redress_complaint(&sandbox, &["taxonomies"]).await;
    assert!(taxonomies.status.success(), "{}", stderr(&taxonomies));
    let text = stdout(&taxonomies);
    assert!(text.lines().any(|l| l.starts_with("banking@")), "{text}");
    assert!(text.contains("B01"), "{text}");

    let refused = redress_complaint(&sandbox, &["classify", &name, "--business-type", "B42", "--reason", "核实"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let errors = stderr(&refused);
    assert!(errors.contains("INVALID_ARGUMENT"), "{errors}");
    assert!(errors.contains("business_type"), "{errors}");

    let args = ["classify", &name, "--business-type", "B01", "--right", "R1", "--right", "R2", "--grade", "urgent"];
    let overridden =
        redress_complaint(&sandbox, &[&args[..], &["--reason", "核实为借记卡", "--output", "json"]].concat()).await;
    assert!(overridden.status.success(), "{}", stderr(&overridden));
    let json: serde_json::Value = serde_json::from_str(&stdout(&overridden)).unwrap();
    assert_eq!(json["classification"]["source"], "CLASSIFICATION_SOURCE_HANDLER");
    assert_eq!(json["classification"]["business_type"], "B01");
    assert_eq!(json["classification"]["rights"], serde_json::json!(["R1", "R2"]));
    assert_eq!(json["classification"]["override_reason"], "核实为借记卡");
    assert_eq!(json["grade"], "GRADE_URGENT");
    assert_eq!(json["automatic_classification"]["source"], "CLASSIFICATION_SOURCE_AUTOMATIC");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_submitted_from_a_json_file_or_stdin() {
    let sandbox = Sandbox::start().await.unwrap();
    let complaint = serde_json::json!({
        "channel": "mobile-app",
        "receive_time": "2026-01-05T09:30:00+08:00",
        "complainant": { "organisation": {
            "name": "上海某某贸易有限公司",
            "unified_social_credit_code": "91310000MA1FL8XQ37",
            "contact_name": "李娜",
            "contact_phone": "13912345678",
        }},
        "complained_party": { "institution": "示例银行", "branch": "上海分行", "staff_id": "E1024" },
        "demand": "撤销不合理的账户管理费",
        "facts": "对公账户被收取账户管理费，事先未告知。",
        "org_unit": "institutions/demo-bank/branches/shanghai",
        "interaction": { "contact_count": 4, "wait_seconds": 420 },
        "first_contact": { "staff_id": "E2002", "department": "客服中心" },
        "source": "external-partner",
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("complaint.json");
    std::fs::write(&file, complaint.to_string()).unwrap();
    let args = ["submit", "--file", file.to_str().unwrap(), "--request-id", "cli-file-1", "--output", "json"];
    let submitted = redress_complaint(&sandbox, &args).await;
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let json: serde_json::Value = serde_json::from_str(&stdout(&submitted)).unwrap();
    assert_eq!(json["request_id"], "cli-file-1");
    assert_eq!(json["complaint"]["channel"], "CHANNEL_MOBILE_APP");
    assert_eq!(json["complaint"]["receive_time"], "2026-01-05T01:30:00Z");
    assert_eq!(json["complaint"]["complained_party"]["staff_id"], "E1024");
    assert_eq!(json["complaint"]["interaction"]["wait_seconds"], 420);
    assert_eq!(json["complaint"]["first_contact"]["staff_id"], "E2002");
    assert_eq!(json["complaint"]["first_contact"]["department"], "客服中心");
    assert_eq!(json["complaint"]["source"], "COMPLAINT_SOURCE_EXTERNAL_PARTNER");
    let kinds: Vec<_> =
        json["complaint"]["risk_signals"].as_array().unwrap().iter().map(|s| s["kind"].clone()).collect();
    assert!(kinds.contains(&"RISK_SIGNAL_KIND_LONG_WAIT".into()), "{json}");
    assert_eq!(json["receipt"]["complaint"], json["complaint"]["name"]);

    // The same file on stdin with the same request id is the same submission.
    let mut child = redress(&sandbox)
        .args(["submit", "--file", "-", "--request-id", "cli-file-1", "--output", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(complaint.to_string().as_bytes()).await.unwrap();
    let again = child.wait_with_output().await.unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let again: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(again["complaint"]["name"], json["complaint"]["name"]);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_complaint_reads_as_withdrawn() {
    let sandbox = Sandbox::start().await.unwrap();
    let (name, _) = submit(&sandbox, "cli-complaint-3").await;
    let withdrawn = redress_complaint(&sandbox, &["withdraw", &name, "--reason", "已与银行协商解决"]).await;
    assert_eq!(withdrawn.status.code(), Some(0), "{}", stderr(&withdrawn));
    assert!(stdout(&withdrawn).contains("state       withdrawn"), "{}", stdout(&withdrawn));

    let got = redress_complaint(&sandbox, &["get", &name, "--output", "json"]).await;
    assert!(got.status.success(), "{}", stderr(&got));
    let json: serde_json::Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(json["state"], "COMPLAINT_STATE_WITHDRAWN");
    assert_eq!(json["withdraw_reason"], "已与银行协商解决");
    assert!(json["withdraw_time"].as_str().unwrap().ends_with('Z'), "{json}");

    // A withdrawal before the complaint was received is refused.
    let args = ["withdraw", &name, "--reason", "x", "--withdraw-time", "2001-01-01T00:00:00Z"];
    let refused = redress_complaint(&sandbox, &args).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("withdraw_time"), "{}", stderr(&refused));
    sandbox.stop().await.unwrap();
}

/// The request id a change printed, to repeat it with.
fn printed_request_id(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("request id")).unwrap_or_default();
    line.split_whitespace().nth(2).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_took_a_complaint_is_named_and_the_read_back_answers_are_recorded() {
    let sandbox = Sandbox::start().await.unwrap();
    let first_contact = [
        "--first-contact-staff-id",
        "E2001",
        "--first-contact-subject",
        "user:li-na",
        "--first-contact-department",
        "counter-services",
        "--source",
        "partner",
    ];
    let (name, _, text) = submit_with(&sandbox, "cli-confirm-1", &first_contact).await;
    assert!(text.contains("source      external-partner"), "{text}");
    let unit = "institutions/demo-bank/branches/shanghai";
    assert!(text.contains(&format!("taken by    staff E2001, user:li-na, {unit}, counter-services")), "{text}");
    // Its case starts owned by whoever took it.
    let case = sandbox.case_of(&name).await;
    assert_eq!((case.assignee.as_str(), case.department.as_str()), ("user:li-na", "counter-services"));

    // The complainant corrects the record on a read-back call: the corrections stand beside the
    // record, masked like the complainant's other personal information.
    let corrections = "年费是 300 元，不是 200 元";
    let corrected =
        ["confirm", &name, "--method", "read-back-call", "--corrections", corrections, "--note", "录音 R-1"];
    let output = redress_complaint(&sandbox, &corrected).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let answers = read_back(&text);
    assert_eq!(
        answers[0].split_whitespace().collect::<Vec<_>>(),
        ["read", "back", "ANSWER", "METHOD", "WHEN", "BY", "CORRECTIONS", "NOTE"],
        "{text}"
    );
    assert_eq!(answers.len(), 2, "{text}");
    assert!(answers[1].contains("corrected  read-back-call") && answers[1].contains("dev"), "{text}");
    assert!(answers[1].contains("[已隐藏]") && answers[1].ends_with("录音 R-1"), "{text}");
    assert!(!text.contains(corrections), "{text}");
    let request_id = printed_request_id(&text);
    assert!(uuid_like(&request_id), "a random request id, printed: {text}");
    assert!(text.contains(&format!("request id  {request_id}  (repeat it to retry safely)")), "{text}");

    // Then confirms it online; repeated with its request id, it is recorded once.
    let confirmed = ["confirm", &name, "--method", "online", "--confirmed", "--request-id", "cli-confirm-2"];
    let output = redress_complaint(&sandbox, &confirmed).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let again = redress_complaint(&sandbox, &confirmed).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(stdout(&again), stdout(&output), "the retry answers the first result");
    let text = stdout(&output);
    let answers = read_back(&text);
    assert_eq!(answers.len(), 3, "{text}");
    assert!(answers[2].contains("confirmed  online") && answers[2].ends_with(" -"), "{text}");
    assert!(text.contains("request id  cli-confirm-2"), "{text}");

    // With a reason the corrections read in clear; JSON names them by their enums.
    let clear = redress_complaint(&sandbox, &["get", &name, "--reveal-reason", "核对客户更正"]).await;
    assert!(clear.status.success(), "{}", stderr(&clear));
    assert!(stdout(&clear).contains(corrections), "{}", stdout(&clear));
    let json = redress_complaint(&sandbox, &["get", &name, "--output", "json"]).await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["source"], "COMPLAINT_SOURCE_EXTERNAL_PARTNER");
    assert_eq!(json["first_contact"]["staff_id"], "E2001");
    assert_eq!(json["first_contact"]["recorded_by"], "dev");
    let answers = json["content_confirmations"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{json}");
    assert_eq!(answers[0]["method"], "CONFIRMATION_METHOD_READ_BACK_CALL");
    assert_eq!(answers[0]["confirmed"], false);
    assert_eq!(answers[1]["confirmed"], true);
    let output = redress_complaint(&sandbox, &[&confirmed[..5], &["--output", "json"]].concat()).await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["name"], name.as_str());
    assert!(!json["request_id"].as_str().unwrap().is_empty(), "{json}");

    // The service names what it refuses: an answer from before the complaint was received.
    let early = ["confirm", &name, "--method", "online", "--confirmed", "--at", "2001-01-01T00:00:00Z"];
    let refused = redress_complaint(&sandbox, &early).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("confirmation.confirm_time"), "{}", stderr(&refused));
    sandbox.stop().await.unwrap();
}

/// The read-back answers' table in a complaint's summary: its header row, then a row each.
fn read_back(text: &str) -> Vec<&str> {
    let table = text.lines().skip_while(|l| !l.starts_with("read back"));
    table.enumerate().take_while(|(i, l)| *i == 0 || l.starts_with(' ')).map(|(_, l)| l).collect()
}

/// Whether `id` reads as a UUID (8-4-4-4-12 hex digits).
fn uuid_like(id: &str) -> bool {
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// Runs `redress complaint <args>` against an address where nothing listens.
async fn offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .arg("complaint")
        .args(args)
        .env("REDRESS_GATEWAY", "http://127.0.0.1:9")
        .env("REDRESS_TOKEN", "t")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_input_is_a_usage_error_before_any_call() {
    let flags = [
        "submit",
        "--channel",
        "phone",
        "--name",
        "n",
        "--institution",
        "i",
        "--org-unit",
        "o",
        "--demand",
        "d",
        "--facts",
        "f",
    ];
    let output = offline(&[&flags[..], &["--receive-time", "2026-01-05 09:30"]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("RFC 3339"), "{}", stderr(&output));
    let output = offline(&flags[..flags.len() - 2]).await;
    assert_eq!(output.status.code(), Some(2), "--facts is required: {}", stderr(&output));
    let output = offline(&[&flags[..], &["--channel", "fax"]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = offline(&["submit", "--file", "complaint.json", "--name", "n"]).await;
    assert_eq!(output.status.code(), Some(2), "--file or flags: {}", stderr(&output));
    let output = offline(&["classify", "abc", "--reason", "r"]).await;
    assert_eq!(output.status.code(), Some(2), "nothing to change: {}", stderr(&output));
    let output = offline(&["list", "--received-before", "yesterday"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = offline(&[&flags[..], &["--first-contact-subject", "user:li-na"]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--first-contact-staff-id"), "{}", stderr(&output));
    let output = offline(&["confirm", "abc", "--method", "other", "--confirmed"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--note"), "{}", stderr(&output));
    let output = offline(&["confirm", "abc", "--method", "online"]).await;
    assert_eq!(output.status.code(), Some(2), "--confirmed or --corrections: {}", stderr(&output));
    let output = offline(&["confirm", "abc", "--method", "online", "--corrections", " "]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--corrections"), "{}", stderr(&output));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("complaint.json");
    std::fs::write(&file, r#"{"channel": "phone", "complainant": {"person": {"ful_name": "王小明"}}}"#).unwrap();
    let output = offline(&["submit", "--file", file.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("complainant.person.ful_name"), "{}", stderr(&output));
    std::fs::write(&file, "{").unwrap();
    let output = offline(&["submit", "--file", file.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("not valid JSON"), "{}", stderr(&output));
    let output = offline(&["submit", "--file", "/no/such/complaint.json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("/no/such/complaint.json"), "{}", stderr(&output));
}

#[tokio::test]
async fn an_unreachable_gateway_is_reported_with_a_safe_retry() {
    let args = [
        "submit",
        "--channel",
        "counter",
        "--name",
        "n",
        "--institution",
        "i",
        "--org-unit",
        "o",
        "--demand",
        "d",
        "--facts",
        "f",
        "--request-id",
        "retry-me",
    ];
    let output = offline(&args).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let errors = stderr(&output);
    assert!(errors.contains("UNAVAILABLE"), "{errors}");
    assert!(errors.contains("--request-id retry-me"), "{errors}");
}

/// A person's rights from the command line: their processing restricted by phone (in any
/// spelling), a supplement added to their complaint, the restriction lifted by identity
/// document; each repeatable with the request id it prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_processing_is_restricted_supplemented_and_lifted() {
    let sandbox = Sandbox::start().await.unwrap();
    let (name, _) = submit(&sandbox, "cli-restrict-1").await;
    let restrict = [
        "restrict",
        "--phone",
        "+86 138 1234 5678",
        "--institution",
        "demo-bank",
        "--reason",
        "客户来函要求限制处理",
        "--request-id",
        "cli-restrict-2",
    ];
    let output = redress_complaint(&sandbox, &restrict).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("subject     subjects/"), "{text}");
    assert!(text.contains("processing  restricted since "), "{text}");
    assert!(text.contains("complaints  1\n"), "{text}");
    assert!(text.contains("request id  cli-restrict-2"), "{text}");
    let read = stdout(&redress_complaint(&sandbox, &["get", &name]).await);
    assert!(read.contains("processing  restricted by the complainant"), "{read}");

    let supplement = [
        "supplement",
        &name,
        "--field",
        "complainant.address",
        "--text",
        "新住址：上海市浦东新区世纪大道 100 号",
        "--reason",
        "客户补充住址",
        "--request-id",
        "cli-supplement-1",
        "--output",
        "json",
    ];
    let output = redress_complaint(&sandbox, &supplement).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["request_id"], "cli-supplement-1");
    assert_eq!(json["personal_data_supplements"][0]["field"], "complainant.address", "{json}");
    assert_eq!(json["personal_data_supplements"][0]["text"], "新住址：上海市浦东新区世纪大道 100 号", "in clear");
    // Repeated with its request id, it is added once.
    let again = redress_complaint(&sandbox, &supplement).await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(json["personal_data_supplements"].as_array().map(Vec::len), Some(1), "{json}");

    let lift = [
        "lift-restriction",
        "--id-number",
        ID_NUMBER,
        "--institution",
        "institutions/demo-bank",
        "--reason",
        "客户撤回",
    ];
    let output = redress_complaint(&sandbox, &lift).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("processing  not restricted"), "{}", stdout(&output));
    let read = stdout(&redress_complaint(&sandbox, &["get", &name]).await);
    assert!(!read.contains("processing  restricted"), "{read}");

    // Refused by the service: an empty reason, named.
    let output =
        redress_complaint(&sandbox, &["restrict", "--phone", PHONE, "--institution", "demo-bank", "--reason", " "])
            .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("reason"), "{}", stderr(&output));
}

/// The person is named by exactly one identifier, and a document's kind by its word.
#[tokio::test]
async fn a_restriction_names_its_person_once() {
    let output = offline(&["restrict", "--institution", "demo-bank", "--reason", "x"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let both = ["restrict", "--phone", PHONE, "--id-number", ID_NUMBER, "--institution", "demo-bank", "--reason", "x"];
    assert_eq!(offline(&both).await.status.code(), Some(2));
    let kind = ["lift-restriction", "--id-number", "E1234", "--id-type", "card", "--institution", "b", "--reason", "x"];
    let output = offline(&kind).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("passport"), "{}", stderr(&output));
}
