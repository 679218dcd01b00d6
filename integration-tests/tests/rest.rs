//! Callers without gRPC: REST/JSON transcoded from the `google.api.http` rules and grpc-web,
//! both over HTTP/1.1 to the gateway, with the same authentication as gRPC callers.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use redress_integration_tests::{Sandbox, TOKEN};
use redress_proto::redress::intake::v1::ListComplaintsRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use serde_json::{Value, json};

struct Rest {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Rest {
    fn new(sandbox: &Sandbox) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { base: format!("http://{}", sandbox.suite.gateway_addr), client }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map(|b| Bytes::from(serde_json::to_vec(&b).unwrap())).unwrap_or_default();
        let request = request.header("content-type", "application/json").body(Full::new(body)).unwrap();
        let response = self.client.request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_11);
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn complaint_json(facts: &str) -> Value {
    json!({
        "channel": "CHANNEL_MOBILE_APP",
        "complainant": {"person": {"fullName": "王小明", "idDocumentType": "ID_DOCUMENT_TYPE_RESIDENT_ID",
            "idNumber": "11010519491231002X", "phone": "13812345678"}},
        "complainedParty": {"institution": "示例银行", "branch": "上海分行"},
        "demand": "退还多收的信用卡年费并书面说明原因",
        "facts": facts,
        "orgUnit": "institutions/demo-bank/branches/shanghai",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_submitted_as_json_is_read_back_with_its_case() {
    let sandbox = Sandbox::start().await.unwrap();
    let rest = Rest::new(&sandbox);
    let body = json!({"requestId": "rest-1", "complaint": complaint_json("年费已达标仍被扣收。")});
    let (status, submitted) = rest.call(Method::POST, "/v1/complaints", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    let name = submitted["complaint"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("complaints/"), "{submitted}");
    assert_eq!(submitted["receipt"]["complaint"], json!(name));

    // Read back masked, and in clear with a reason given as a query parameter.
    let (status, fetched) = rest.call(Method::GET, &format!("/v1/{name}"), Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["name"], json!(name));
    assert_eq!(fetched["facts"], json!("年费已达标仍被扣收。"));
    assert_ne!(fetched["complainant"]["person"]["phone"], json!("13812345678"));
    let reason = "%E6%A0%B8%E5%AE%9E%E8%81%94%E7%B3%BB%E6%96%B9%E5%BC%8F";
    let path = format!("/v1/{name}?piiAccessReason={reason}");
    let (status, clear) = rest.call(Method::GET, &path, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{clear}");
    assert_eq!(clear["complainant"]["person"]["phone"], json!("13812345678"));

    // The case opened for it, found with a query parameter and read by its name.
    let started = Instant::now();
    let case = loop {
        let (status, listed) = rest.call(Method::GET, &format!("/v1/cases?complaint={name}"), Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        if let Some(case) = listed["cases"].as_array().and_then(|c| c.first()) {
            break case.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no case opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(case["complaint"], json!(name));
    assert_eq!(case["state"], json!("CASE_STATE_ACCEPTED"));
    let case_name = case["name"].as_str().unwrap();
    let (status, read) = rest.call(Method::GET, &format!("/v1/{case_name}"), Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["name"], case["name"]);

    // An event feed streams over gRPC and grpc-web only.
    let (status, refused) = rest.call(Method::GET, "/v1/case/events", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(refused["message"].as_str().unwrap().contains("grpc-web"), "{refused}");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_as_json_with_their_http_status_and_details() {
    let sandbox = Sandbox::start().await.unwrap();
    let rest = Rest::new(&sandbox);

    // Refused by intake: 400 with the status's ErrorInfo and field violations.
    let mut complaint = complaint_json("事实");
    complaint["demand"] = json!("");
    let body = json!({"requestId": "rest-bad", "complaint": complaint});
    let (status, error) = rest.call(Method::POST, "/v1/complaints", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], json!(3));
    let details = error["details"].as_array().unwrap();
    let info = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo").unwrap();
    assert!(!info["reason"].as_str().unwrap().is_empty(), "{error}");
    let bad = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest").unwrap();
    assert!(bad["fieldViolations"].as_array().unwrap().iter().any(|v| v["field"].as_str().unwrap().contains("demand")));

    // A field the message does not have: 400 naming it, before anything is called.
    let body = json!({"requestId": "rest-unknown", "complaint": {"colour": "red"}});
    let (status, error) = rest.call(Method::POST, "/v1/complaints", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], json!(3));
    assert!(error["message"].as_str().unwrap().contains("complaint.colour"), "{error}");
    let (status, error) = rest.call(Method::GET, "/v1/cases?colour=red", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap().contains("colour"), "{error}");

    // Malformed JSON.
    let request = Request::post(format!("{}/v1/complaints", rest.base))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from_static(b"{\"requestId\": ")))
        .unwrap();
    assert_eq!(rest.client.request(request).await.unwrap().status(), StatusCode::BAD_REQUEST);

    // No token, an unknown complaint, an unknown path.
    let (status, error) = rest.call(Method::GET, "/v1/complaints", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["code"], json!(16));
    let (status, error) =
        rest.call(Method::GET, "/v1/complaints/01936d3c-7b4a-7000-8000-000000000000", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["code"], json!(5));
    let (status, _) = rest.call(Method::GET, "/v2/nothing", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_without_a_token() {
    let sandbox = Sandbox::start().await.unwrap();
    let rest = Rest::new(&sandbox);
    let (status, document) = rest.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], json!("3.0.3"));
    assert_eq!(document["paths"]["/v1/complaints"]["post"]["operationId"], json!("IntakeService_SubmitComplaint"));
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_caller_over_http1_is_served_and_a_browser_preflight_is_answered() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let web = tower::Layer::layer(&tonic_web::GrpcWebClientLayer::new(), client);
    let origin = format!("http://{}", sandbox.suite.gateway_addr).parse().unwrap();
    let mut intake = IntakeServiceClient::with_origin(web, origin);
    let mut request = tonic::Request::new(ListComplaintsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let listed = intake.list_complaints(request).await.unwrap().into_inner();
    assert!(listed.complaints.is_empty());
    let status = intake.list_complaints(ListComplaintsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let rest = Rest::new(&sandbox);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("{}/redress.intake.v1.IntakeService/ListComplaints", rest.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, x-grpc-web")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = rest.client.request(preflight).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
    assert!(response.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-grpc-web"));
    sandbox.stop().await.unwrap();
}
