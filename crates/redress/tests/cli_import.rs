//! `redress complaint import` end to end: a CFPB export (in the public schema) goes through the
//! gateway into intake, historical dates kept, bad rows reported without stopping; importing it
//! again creates nothing new.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use redress_integration_tests::{Sandbox, TOKEN};
use redress_proto::redress::intake::v1::ListComplaintsRequest;
use tokio::process::Command;

const EXTRACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cfpb_extract.csv");

async fn import(sandbox: &Sandbox, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["complaint", "import", "--format", "cfpb", "--org-unit", "institutions/demo-bank"])
        .args(["--time-zone", "America/New_York"])
        .args(extra)
        .arg(EXTRACT)
        .env("REDRESS_GATEWAY", format!("http://{}", sandbox.suite.gateway_addr))
        .env("REDRESS_TOKEN", TOKEN)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cfpb_extract_imports_once_with_its_dates_and_bad_rows_reported() {
    let sandbox = Sandbox::start().await.unwrap();
    let first = import(&sandbox, &[]).await;
    let (out, err) = (String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&first.stderr));
    assert_eq!(first.status.code(), Some(1), "a row failed: {out}{err}");
    assert!(out.starts_with("imported 30, already present 0, failed 1 (of 31 rows)"), "{out}");
    assert!(err.contains("(7400999)") && err.contains("Date received"), "{err}");

    let mut page = sandbox
        .intake()
        .list_complaints(ListComplaintsRequest { page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.complaints.len(), 30);
    page.complaints.sort_by_key(|c| c.external_reference.clone());
    let first_row = &page.complaints[0];
    assert_eq!(first_row.external_reference, "cfpb:7400100");
    // "01/01/2023" at midnight in New York.
    assert_eq!(first_row.receive_time.unwrap().seconds, 1_672_549_200);
    assert!(first_row.facts.contains("\"trailing interest\""), "{}", first_row.facts);
    assert_eq!(first_row.complained_party.as_ref().unwrap().institution, "EXAMPLE BANK, N.A.");
    assert!(page.complaints.iter().any(|c| c.facts.contains("Mi cuenta fue bloqueada")), "any script, verbatim");

    let again = import(&sandbox, &["--output", "json"]).await;
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["imported"], 0, "{summary}");
    assert_eq!(summary["already_present"], 30, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    let count = sandbox
        .intake()
        .list_complaints(ListComplaintsRequest { page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .complaints
        .len();
    assert_eq!(count, 30, "re-importing created nothing");
    sandbox.stop().await.unwrap();
}
