//! `redress kb …` against the embedded suite with the starter pack: search, read, suggest,
//! lint (its exit code says whether the reply may go out), import as drafts in review, and
//! publish by someone other than the importer.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use redress_integration_tests::{Sandbox, TOKEN};
use redress_platform::Principal;
use tokio::process::Command;

const REVIEWER: &str = "cli-kb-reviewer-token";

async fn redress_kb(sandbox: &Sandbox, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .arg("kb")
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

async fn sandbox() -> Sandbox {
    let reviewer = Principal {
        subject: "user:cli-reviewer".to_owned(),
        roles: vec!["editor".to_owned()],
        org_unit: "/".to_owned(),
        department: String::new(),
        permissions: ["knowledge.read", "knowledge.review"].map(str::to_owned).to_vec(),
        staff_id: String::new(),
    };
    let sandbox = Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        options.starter_content = true;
        options.extra_dev_tokens.push((REVIEWER.to_owned(), reviewer));
    })
    .await
    .unwrap();
    // The knowledge base serves once its index is built.
    for _ in 0..400 {
        if redress_kb(&sandbox, TOKEN, &["search", "年费"]).await.status.success() {
            return sandbox;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the knowledge base did not serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knowledge_base_is_searched_linted_imported_and_published_from_the_command_line() {
    let sandbox = sandbox().await;

    let search = redress_kb(&sandbox, TOKEN, &["search", "客户说要找记者曝光", "--kind", "script"]).await;
    assert!(search.status.success(), "{search:?}");
    let text = stdout(&search);
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("#  TITLE"), "a header row: {text}");
    assert!(lines.next().unwrap().contains("客户扬言要找媒体曝光时的应对话术"), "{text}");
    assert!(text.contains("【"), "matches are marked in the snippets: {text}");

    let suggest =
        redress_kb(&sandbox, TOKEN, &["suggest", "--text", "信用卡年费被重复扣了", "--business-type", "B02"]).await;
    assert!(suggest.status.success(), "{suggest:?}");
    assert!(stdout(&suggest).contains("TITLE  ") && stdout(&suggest).contains("script"), "{}", stdout(&suggest));

    let clean = redress_kb(&sandbox, TOKEN, &["lint", "我理解您的着急，我们将立即核实情况。"]).await;
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    let banned = redress_kb(&sandbox, TOKEN, &["lint", "您别着急，这是公司规定。"]).await;
    assert_eq!(banned.status.code(), Some(3), "an error finding: exit code 3");
    assert!(stdout(&banned).starts_with("SEVERITY"), "{}", stdout(&banned));
    assert!(stdout(&banned).contains("banned.calm-down"));
    let notice =
        redress_kb(&sandbox, TOKEN, &["lint", "--as", "decision-notice", "经核实，维持原扣费。", "--output", "json"])
            .await;
    let json: serde_json::Value = serde_json::from_slice(&notice.stdout).unwrap();
    assert_eq!(json["findings"].as_array().unwrap().len(), 3, "{json}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("articles.toml");
    std::fs::write(
        &file,
        "[[articles]]\nslug = \"branch-parking\"\nkind = \"faq\"\ntitle = \"网点停车收费怎么答复\"\n\
         body = \"网点停车场由物业管理，收费按物业公示标准执行，可为客户开具停车凭证。\"\ntags = [\"停车\"]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let imported = redress_kb(&sandbox, TOKEN, &["import", &file, "--org-unit", "/"]).await;
    assert!(imported.status.success(), "{imported:?}");
    let text = stdout(&imported);
    assert!(text.starts_with("SLUG"), "{text}");
    let article = text.lines().nth(1).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    let again = redress_kb(&sandbox, TOKEN, &["import", &file, "--org-unit", "/"]).await;
    assert_eq!(stdout(&again), text, "importing the same file again creates nothing twice");

    let version = format!("{article}/versions/1");
    let own = redress_kb(&sandbox, TOKEN, &["publish", &version]).await;
    assert_eq!(own.status.code(), Some(1), "the importer is the author and cannot publish it");
    assert!(String::from_utf8_lossy(&own.stderr).contains("REVIEWER_IS_AUTHOR"));
    let published = redress_kb(&sandbox, REVIEWER, &["publish", &version]).await;
    assert!(published.status.success(), "{published:?}");
    assert!(stdout(&published).contains("published"));
    let get = redress_kb(&sandbox, TOKEN, &["get", &article]).await;
    assert!(stdout(&get).contains("网点停车收费怎么答复"), "{}", stdout(&get));
    sandbox.stop().await.unwrap();
}
