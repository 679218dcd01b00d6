//! `redress mention …` and `redress incident …` against the embedded suite: a watchlist, a
//! far-reaching mention that opens a media incident, its declaration, one approved statement,
//! and lists under a header row.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use redress_integration_tests::{Sandbox, TOKEN};
use tokio::process::Command;

async fn redress(sandbox: &Sandbox, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(args)
        .env("REDRESS_GATEWAY", format!("http://{}", sandbox.suite.gateway_addr))
        .env("REDRESS_TOKEN", TOKEN)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value after `label` on its line of a summary.
fn field(text: &str, label: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(label).is_some_and(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {label} in {text}"));
    line[label.len()..].trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_opens_a_media_incident_that_is_declared_and_speaks_with_one_statement() {
    let sandbox = Sandbox::start().await.unwrap();
    let watch = [
        "mention",
        "watch",
        "--org-unit",
        "institutions/demo-bank",
        "--name",
        "理财舆情",
        "--keyword",
        "爆雷",
        "--keyword",
        "维权",
        "--incident-reach",
        "100000",
    ];
    let watched = redress(&sandbox, &watch).await;
    assert!(watched.status.success(), "{watched:?}");
    assert!(stdout(&watched).starts_with("watchlist   watchlists/"));

    let report = [
        "mention",
        "report",
        "--org-unit",
        "institutions/demo-bank",
        "--source",
        "微博",
        "--url",
        "https://weibo.example/post/1",
        "--text",
        "示例银行稳盈三号理财爆雷，大家一起维权",
        "--reach",
        "250000",
    ];
    let reported = redress(&sandbox, &report).await;
    assert!(reported.status.success(), "{reported:?}");
    let incident = field(&stdout(&reported), "incident");
    assert!(incident.starts_with("incidents/"), "{}", stdout(&reported));

    let mentions = stdout(&redress(&sandbox, &["mention", "list"]).await);
    assert!(mentions.lines().next().unwrap().starts_with("MENTION"), "{mentions}");
    assert!(mentions.contains("微博"));

    let listed = stdout(&redress(&sandbox, &["incident", "list", "--kind", "media"]).await);
    assert!(listed.lines().next().unwrap().starts_with("INCIDENT"), "{listed}");
    assert!(listed.contains(&incident) && listed.contains("proposed"), "{listed}");

    let declared = redress(&sandbox, &["incident", "declare", &incident, "--reason", "传播量超过十万"]).await;
    assert!(declared.status.success(), "{declared:?}");
    assert_eq!(field(&stdout(&declared), "state"), "declared");
    assert!(field(&stdout(&declared), "stage").starts_with("fact-clarification"));

    let drafted = stdout(
        &redress(&sandbox, &["incident", "statement", "draft", &incident, "--text", "我们已成立专项工作组核实情况。"])
            .await,
    );
    let statement = field(&drafted, "statement");
    let approved = redress(&sandbox, &["incident", "statement", "approve", &statement]).await;
    assert!(approved.status.success(), "{approved:?}");
    let current = stdout(&redress(&sandbox, &["incident", "statement", "current", "--incident", &incident]).await);
    assert_eq!(field(&current, "state"), "approved");
    assert!(current.contains("我们已成立专项工作组核实情况。"));

    // A refusal exits 1 and says why.
    let close = redress(&sandbox, &["incident", "close", &incident, "--reason", "x"]).await;
    assert!(close.status.success(), "a media incident closes without a systemic cause: {close:?}");
    let again = redress(&sandbox, &["incident", "close", &incident, "--reason", "x"]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("INVALID_INCIDENT_STATE"), "{again:?}");
}
