//! The embedded suite's gateway limits request rates per caller when its options ask it to
//! (`redress dev` and the default options leave them off).
#![allow(clippy::unwrap_used)]

use redress_gateway::RateLimits;
use redress_integration_tests::{BRANCH_TOKEN, Sandbox, TOKEN};
use redress_proto::redress::case::v1::ListCasesRequest;

fn list() -> ListCasesRequest {
    ListCasesRequest { page_size: 1, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_rate_is_refused_while_another_is_served() {
    let limits = RateLimits { caller_per_second: 1, caller_burst: 1, institution_per_second: 0, institution_burst: 0 };
    let sandbox = Sandbox::start_configured(tempfile::tempdir().unwrap(), |options| {
        options.rate_limits = Some(limits);
    })
    .await
    .unwrap();
    sandbox.cases_with(TOKEN).list_cases(list()).await.unwrap();
    let refused = sandbox.cases_with(TOKEN).list_cases(list()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    // Another caller has a limit of its own.
    sandbox.cases_with(BRANCH_TOKEN).list_cases(list()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_limits_in_the_options_the_suite_limits_no_rate() {
    let sandbox = Sandbox::start().await.unwrap();
    for _ in 0..20 {
        sandbox.cases_with(TOKEN).list_cases(list()).await.unwrap();
    }
}
