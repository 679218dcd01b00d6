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
