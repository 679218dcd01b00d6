//! `redress case …` against the embedded suite: the built binary drives a case through the
//! gateway, and says in its exit code and on stderr when a call is refused.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use redress_integration_tests::{BRANCH, BRANCH_STAFF_TOKEN, HEAD_OFFICE_TOKEN, Sandbox, TOKEN};
use redress_proto::redress::case::v1::Case;
use tokio::process::Command;

/// Runs `redress case <args>` against the sandbox's gateway with the development token.
async fn redress_case(sandbox: &Sandbox, args: &[&str]) -> Output {
    redress_case_as(sandbox, TOKEN, args).await
}

/// Runs `redress case <args>` against the sandbox's gateway as the caller of `token`.
async fn redress_case_as(sandbox: &Sandbox, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .arg("case")
        .args(args)
        .env("REDRESS_GATEWAY", format!("http://{}", sandbox.suite.gateway_addr))
        .env("REDRESS_TOKEN", token)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Submits a complaint through the gateway and waits for its case.
async fn a_case(sandbox: &Sandbox, request_id: &str) -> Case {
    a_case_of(sandbox, request_id, redress_intake::testing::complaint("信用卡年费已达标仍被扣收。")).await
}

/// Submits `complaint` through the gateway and waits for its case.
async fn a_case_of(
    sandbox: &Sandbox,
    request_id: &str,
    complaint: redress_proto::redress::intake::v1::Complaint,
) -> Case {
    sandbox.submit_and_open(request_id, complaint).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_assigned_investigated_read_and_verified_from_the_command_line() {
    let sandbox = Sandbox::start().await.unwrap();
    let case = a_case(&sandbox, "cli-1").await;
    let id = case.name.strip_prefix("cases/").unwrap();

    // A bare id is enough.
    let assigned = redress_case(
        &sandbox,
        &["assign", id, "--assignee", "user:zhang-wei", "--department", "retail-banking", "--etag", &case.etag],
    )
    .await;
    assert!(assigned.status.success(), "{}", stderr(&assigned));
    let text = stdout(&assigned);
    assert!(text.contains(&case.name), "{text}");
    assert!(text.contains("state       assigned"), "{text}");
    assert!(text.contains("user:zhang-wei in retail-banking"), "{text}");

    let investigating = redress_case(
        &sandbox,
        &["transition", &case.name, "--state", "investigating", "--reason", "gathering records"],
    )
    .await;
    assert!(investigating.status.success(), "{}", stderr(&investigating));
    assert!(stdout(&investigating).contains("state       investigating (was assigned)"), "{}", stdout(&investigating));

    let got = redress_case(&sandbox, &["get", &case.name, "--output", "json"]).await;
    assert!(got.status.success(), "{}", stderr(&got));
    let json: serde_json::Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(json["name"], case.name.as_str());
    assert_eq!(json["case_number"], case.case_number.as_str());
    assert_eq!(json["state"], "CASE_STATE_INVESTIGATING");
    assert_eq!(json["previous_state"], "CASE_STATE_ASSIGNED");
    assert_eq!(json["assignee"], "user:zhang-wei");
    assert_eq!(json["department"], "retail-banking");
    assert_eq!(json["grade"], "GRADE_GENERAL");
    assert!(json["etag"].as_str().unwrap().starts_with('"'), "{json}");
    assert!(json["open_time"].as_str().unwrap().ends_with('Z'), "RFC 3339 in UTC: {json}");
    let clocks = json["clocks"].as_array().unwrap();
    assert!(!clocks.is_empty(), "{json}");
    assert!(clocks.iter().all(|c| c["kind"].as_str().unwrap().starts_with("CLOCK_KIND_")), "{json}");
    assert!(json["resolution"].is_null() && json["survey"].is_null(), "{json}");

    let audit = redress_case(&sandbox, &["audit", &case.name]).await;
    assert!(audit.status.success(), "{}", stderr(&audit));
    let trail = stdout(&audit);
    assert!(trail.contains("case.opened") && trail.contains("case.assigned"), "{trail}");

    let verified = redress_case(&sandbox, &["verify", &case.name]).await;
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    assert!(stdout(&verified).contains("intact"), "{}", stdout(&verified));

    let refused = redress_case(&sandbox, &["extend", &case.name, "--days", "45", "--reason", "complex"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let errors = stderr(&refused);
    assert!(errors.contains("INVALID_ARGUMENT"), "{errors}");
    assert!(errors.contains("total_days"), "{errors}");

    // The case is unchanged by the refused call.
    let after = redress_case(&sandbox, &["get", id, "--output", "json"]).await;
    let after: serde_json::Value = serde_json::from_str(&stdout(&after)).unwrap();
    assert_eq!(after["etag"], json["etag"]);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_etag_is_refused_and_a_repeated_request_id_changes_the_case_once() {
    let sandbox = Sandbox::start().await.unwrap();
    let case = a_case(&sandbox, "cli-2").await;
    let respond = ["respond", case.name.as_str(), "--note", "phoned the complainant", "--request-id", "cli-respond-1"];
    let first = redress_case(&sandbox, &respond).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let again = redress_case(&sandbox, &respond).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&first), stdout(&again), "the retry answers the first result");

    let stale = redress_case(
        &sandbox,
        &["grade", &case.name, "--grade", "urgent", "--reason", "media attention", "--etag", &case.etag],
    )
    .await;
    assert_eq!(stale.status.code(), Some(1), "{}", stdout(&stale));
    assert!(stderr(&stale).contains("ABORTED"), "{}", stderr(&stale));
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_audit_chain_exits_with_3() {
    let sandbox = Sandbox::start().await.unwrap();
    let case = a_case(&sandbox, "cli-3").await;
    let db = sandbox.data_dir.path().join("case-workflow.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query("UPDATE audit_entries SET actor = 'user:someone-else'").execute(&pool).await.unwrap();
    pool.close().await;

    let text = redress_case(&sandbox, &["verify", &case.name]).await;
    assert_eq!(text.status.code(), Some(3), "{}", stderr(&text));
    assert!(stdout(&text).contains("BROKEN at entry 1"), "{}", stdout(&text));
    let json = redress_case(&sandbox, &["verify", &case.name, "--output", "json"]).await;
    assert_eq!(json.status.code(), Some(3), "{}", stderr(&json));
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["intact"], false);
    assert_eq!(json["first_broken_sequence"], "1");
    assert!(!json["reason"].as_str().unwrap().is_empty(), "{json}");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_requested_and_decided_from_the_command_line_above_the_deciding_unit() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut complaint = redress_intake::testing::complaint("信用卡年费已达标仍被扣收。");
    complaint.org_unit = BRANCH.to_owned();
    let case = a_case_of(&sandbox, "cli-review", complaint).await;
    let name = case.name.clone();
    sandbox.decide(&name).await;

    let requested = redress_case(&sandbox, &["review", "request", &name, "--reason", "disagrees with the fee"]).await;
    assert!(requested.status.success(), "{}", stderr(&requested));
    let text = stdout(&requested);
    assert!(text.contains("under-review (was decided)"), "{text}");
    assert!(text.contains("disagrees with the fee") && text.contains(&format!("made at {BRANCH}")), "{text}");

    let decide = ["review", "decide", name.as_str(), "--outcome", "upheld", "--notice", "the fee stands"];
    let refused = redress_case_as(&sandbox, BRANCH_STAFF_TOKEN, &decide).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("REVIEW_NEEDS_HIGHER_UNIT"), "{}", stderr(&refused));
    let decided = redress_case_as(&sandbox, HEAD_OFFICE_TOKEN, &decide).await;
    assert!(decided.status.success(), "{}", stderr(&decided));
    let text = stdout(&decided);
    assert!(text.contains("decided (was under-review)") && text.contains("upheld"), "{text}");
    assert!(text.contains("the fee stands"), "{text}");
    sandbox.stop().await.unwrap();
}

/// The due time of the case's clock of `kind` (e.g. "CLOCK_KIND_RESOLUTION"), in RFC 3339, as
/// `get --output json` prints it: a time days ahead that the case itself names.
async fn clock_due(sandbox: &Sandbox, case: &str, kind: &str) -> String {
    let got = redress_case(sandbox, &["get", case, "--output", "json"]).await;
    assert!(got.status.success(), "{}", stderr(&got));
    let json: serde_json::Value = serde_json::from_str(&stdout(&got)).unwrap();
    let clocks = json["clocks"].as_array().unwrap();
    let clock = clocks.iter().find(|c| c["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {json}"));
    clock["due_time"].as_str().unwrap().to_owned()
}

/// The line of `text`'s table labelled `label` that holds `cell`, to read a row by.
fn row<'a>(text: &'a str, label: &str, cell: &str) -> &'a str {
    let rows = text.lines().skip_while(|l| !l.starts_with(label));
    rows.take_while(|l| l.starts_with(label) || l.starts_with(' ')).find(|l| l.contains(cell)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_scope_tasks_a_transfer_and_the_steps_after_a_decision_are_driven_from_the_command_line() {
    let sandbox = Sandbox::start().await.unwrap();
    let case = a_case(&sandbox, "cli-progress").await;
    let name = case.name.clone();
    let later = clock_due(&sandbox, &name, "CLOCK_KIND_RESOLUTION").await;

    // A transfer naming its new owner: they own the case at once, and the handoff is done.
    let transfer = [
        "transfer",
        name.as_str(),
        "--to-department",
        "cards",
        "--reason",
        "信用卡年费由卡部核查更快",
        "--to-assignee",
        "user:li-na",
        "--to-assignee-staff-id",
        "E2001",
    ];
    let transferred = redress_case(&sandbox, &transfer).await;
    assert!(transferred.status.success(), "{}", stderr(&transferred));
    let text = stdout(&transferred);
    assert!(text.contains("state       assigned (was accepted)"), "{text}");
    assert!(text.contains("handler     user:li-na (E2001) in cards"), "{text}");
    let moved = row(&text, "transfers", "信用卡年费由卡部核查更快");
    assert!(moved.contains("cards  user:li-na (E2001)") && moved.contains("accepted"), "{text}");

    // The first response and a contact are logged with their channel and direction.
    let respond = ["respond", name.as_str(), "--note", "电话告知已受理", "--channel", "phone"];
    let responded = redress_case(&sandbox, &respond).await;
    assert!(responded.status.success(), "{}", stderr(&responded));
    let contact = [
        "contact",
        name.as_str(),
        "--channel",
        "sms",
        "--direction",
        "inbound",
        "--summary",
        "客户短信询问进展",
        "--next-contact",
        later.as_str(),
    ];
    let contacted = redress_case(&sandbox, &contact).await;
    assert!(contacted.status.success(), "{}", stderr(&contacted));
    let text = stdout(&contacted);
    let header = text.lines().find(|l| l.starts_with("contacts")).unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["contacts", "WHEN", "CHANNEL", "DIRECTION", "BY", "SUMMARY"]
    );
    let inbound = row(&text, "contacts", "客户短信询问进展");
    assert!(inbound.contains("sms") && inbound.contains("inbound") && inbound.contains("dev"), "{text}");
    let first = row(&text, "contacts", "电话告知已受理");
    assert!(first.contains("phone") && first.contains("outbound"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("contact due") && l.contains("(Asia/Shanghai)")), "{text}");

    // Bad input: refused before any call (2) or by the service naming the field (1).
    let sideways = ["contact", name.as_str(), "--channel", "sms", "--direction", "sideways", "--summary", "s"];
    let refused = redress_case(&sandbox, &sideways).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--direction"), "{}", stderr(&refused));
    let backwards = [&contact[..], &["--at", later.as_str()]].concat();
    let refused = redress_case(&sandbox, &backwards).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--next-contact must lie after --at"), "{}", stderr(&refused));
    let future = ["contact", name.as_str(), "--channel", "sms", "--direction", "inbound", "--summary", "s"];
    let refused = redress_case(&sandbox, &[&future[..], &["--at", "2999-01-01T00:00:00Z"]].concat()).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("INVALID_ARGUMENT") && stderr(&refused).contains("contact_time"),
        "{}",
        stderr(&refused)
    );

    // Systemic or individual, with why.
    let scope = ["scope", name.as_str(), "--scope", "systemic", "--reason", "同批次客户均被重复扣收"];
    let scoped = redress_case(&sandbox, &scope).await;
    assert!(scoped.status.success(), "{}", stderr(&scoped));
    assert!(stdout(&scoped).contains("scope       systemic: 同批次客户均被重复扣收"), "{}", stdout(&scoped));

    // A coordination task, added and completed.
    let task = [
        "task",
        "add",
        name.as_str(),
        "--department",
        "legal",
        "--owner",
        "user:wang",
        "--description",
        "出具法律意见",
        "--due",
        later.as_str(),
    ];
    let added = redress_case(&sandbox, &task).await;
    assert!(added.status.success(), "{}", stderr(&added));
    let open = row(&stdout(&added), "tasks", "出具法律意见").to_owned();
    assert!(open.contains("t1") && open.contains("coordination") && open.contains("open"), "{}", stdout(&added));
    let complete = ["task", "complete", name.as_str(), "--task", "t1", "--outcome", "收费符合合同约定"];
    let completed = redress_case(&sandbox, &complete).await;
    assert!(completed.status.success(), "{}", stderr(&completed));
    assert!(row(&stdout(&completed), "tasks", "t1").contains("done"), "{}", stdout(&completed));

    // Steps carry out a decision: none before it.
    let step = [
        "step",
        "add",
        name.as_str(),
        "--description",
        "退还已扣收的年费",
        "--owner",
        "user:ops-zhao",
        "--owner-staff-id",
        "E4001",
        "--department",
        "operations",
        "--due",
        later.as_str(),
    ];
    let early = redress_case(&sandbox, &step).await;
    assert_eq!(early.status.code(), Some(1), "{}", stdout(&early));
    assert!(stderr(&early).contains("FAILED_PRECONDITION"), "{}", stderr(&early));
    sandbox.decide(&name).await;
    let added = redress_case(&sandbox, &step).await;
    assert!(added.status.success(), "{}", stderr(&added));
    let text = stdout(&added);
    let header = text.lines().find(|l| l.starts_with("steps")).unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["steps", "STEP", "OWNER", "DEPARTMENT", "DUE", "STATUS", "WHAT"]
    );
    let open = row(&text, "steps", "退还已扣收的年费");
    assert!(
        open.contains("s1") && open.contains("user:ops-zhao (E4001)  operations") && open.contains("open"),
        "{text}"
    );
    let unknown = redress_case(&sandbox, &["step", "complete", &name, "--step", "s9", "--outcome", "x"]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", stdout(&unknown));
    let complete = ["step", "complete", name.as_str(), "--step", "s1", "--outcome", "已退还 200 元"];
    let completed = redress_case(&sandbox, &complete).await;
    assert!(completed.status.success(), "{}", stderr(&completed));
    let text = stdout(&completed);
    let done = row(&text, "steps", "s1");
    assert!(done.contains("done") && done.contains("已退还 200 元"), "{text}");
    assert!(text.contains("state       decided"), "{text}");
    sandbox.stop().await.unwrap();
}

/// Runs `redress case <args>` against an address where nothing listens.
async fn offline(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
    command.arg("case").args(args).env("REDRESS_GATEWAY", "http://127.0.0.1:9").env_remove("REDRESS_TOKEN");
    if let Some(token) = token {
        command.env("REDRESS_TOKEN", token);
    }
    command.output().await.unwrap()
}

#[tokio::test]
async fn bad_input_is_a_usage_error_before_any_call() {
    for (amount, message) in [("1.234", "at most two decimals"), ("-5", "must not be negative"), ("1,5", "120.50")] {
        let args = ["propose", "abc", "--type", "apology-compensation", "--grounds", "g", "--compensation", amount];
        let output = offline(&args, Some("t")).await;
        assert_eq!(output.status.code(), Some(2), "{amount}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{amount}: {}", stderr(&output));
    }
    let output = offline(&["survey", "abc", "--score", "6"], Some("t")).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = offline(&["evidence", "abc", "--uri", "s3://e/1", "--kind", "document"], Some("t")).await;
    assert_eq!(output.status.code(), Some(2), "one of --sha256 and --file: {}", stderr(&output));
    let output = offline(&["get", "abc"], None).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("REDRESS_TOKEN"), "{}", stderr(&output));
    let evidence = ["evidence", "abc", "--uri", "s3://e/1", "--kind", "document", "--file", "/no/such/file"];
    let output = offline(&evidence, Some("t")).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("/no/such/file"), "{}", stderr(&output));
}

#[tokio::test]
async fn an_unreachable_gateway_is_reported_with_a_safe_retry() {
    let args = ["assign", "abc", "--assignee", "a", "--department", "d", "--request-id", "retry-me"];
    let output = offline(&args, Some("t")).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let errors = stderr(&output);
    assert!(errors.contains("UNAVAILABLE"), "{errors}");
    assert!(errors.contains("--request-id retry-me"), "{errors}");
}
