//! Traces across every hop: the suite served one process per service, each exporting its spans
//! over OTLP to a collector inside the test. A complaint submitted through the gateway by a
//! caller that traces (a sampled `traceparent`) is one trace from the gateway to the last
//! consumer of its events; one submitted by a caller that does not sample exports nothing.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use redress_platform::principal::Permission;
use redress_platform::server::suite_endpoint;
use redress_platform::signing::{GATEWAY, SigningKey};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "traces-test-token";

/// The services as `redress serve` names them; the gateway last.
const SERVED: [&str; 6] = ["intake", "case-workflow", "escalation", "knowledge-base", "quality-metrics", GATEWAY];

/// The trace the test's caller starts, and the caller's own span in it (the root).
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ROOT: &str = "00f067aa0ba902b7";
/// A trace its caller did not sample.
const UNSAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";

const ACCEPTED: &str = "redress.intake.v1.ComplaintAccepted";
const OPENED: &str = "redress.case.v1.CaseOpened";

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

impl Exported {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map(String::as_str).unwrap_or_default()
    }
}

/// An OTLP/gRPC trace collector that records every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Exported>>>);

impl Collector {
    fn spans(&self) -> Vec<Exported> {
        self.0.lock().unwrap().clone()
    }
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut recorded = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
            let service = text(resource.iter().find(|a| a.key == "service.name").and_then(|a| a.value.as_ref()));
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                recorded.push(Exported {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    name: span.name,
                    attributes: span.attributes.iter().map(|a| (a.key.clone(), text(a.value.as_ref()))).collect(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The hops one complaint's trace passes through, found among `spans` of [`TRACE`].
struct Hops<'a> {
    gateway: Option<&'a Exported>,
    intake: Option<&'a Exported>,
    case_opened: Option<&'a Exported>,
    escalation: [Option<&'a Exported>; 2],
    metrics: [Option<&'a Exported>; 2],
}

impl<'a> Hops<'a> {
    fn of(spans: &'a [Exported]) -> Self {
        let find = |service: &str, name: &str, attribute: (&str, &str)| {
            spans.iter().find(|s| {
                s.trace_id == TRACE && s.service == service && s.name == name && s.attribute(attribute.0) == attribute.1
            })
        };
        let submit = ("rpc.method", "/redress.intake.v1.IntakeService/SubmitComplaint");
        let applied = |service: &str, event: &str| find(service, "event.apply", ("event.type", event));
        Self {
            gateway: find("redress-gateway", "grpc.server", submit),
            intake: find("redress-intake", "grpc.server", submit),
            case_opened: spans
                .iter()
                .find(|s| s.trace_id == TRACE && s.service == "redress-case-workflow" && s.name == "case.open"),
            escalation: [applied("redress-escalation", ACCEPTED), applied("redress-escalation", OPENED)],
            metrics: [applied("redress-quality-metrics", ACCEPTED), applied("redress-quality-metrics", OPENED)],
        }
    }

    fn complete(&self) -> bool {
        self.gateway.is_some()
            && self.intake.is_some()
            && self.case_opened.is_some()
            && self.escalation.iter().chain(&self.metrics).all(Option::is_some)
    }
}

/// The spans from `span` up to the caller's root, each the parent of the one before; fails
/// when a parent is not a span of the same trace.
fn path_to_root<'a>(span: &'a Exported, by_id: &BTreeMap<&str, &'a Exported>) -> Vec<&'a Exported> {
    let mut path = vec![span];
    let mut at = span;
    while at.parent != ROOT {
        let parent = by_id.get(at.parent.as_str()).unwrap_or_else(|| {
            panic!("{} of {} has parent {:?}, not a span of the trace: {at:?}", at.name, at.service, at.parent)
        });
        assert!(path.len() <= by_id.len(), "a cycle of parents at {at:?}");
        path.push(parent);
        at = parent;
    }
    path
}

fn traceparent(trace: &str, sampled: bool) -> String {
    format!("00-{trace}-{ROOT}-{}", if sampled { "01" } else { "00" })
}

async fn submit(gateway: &tonic::transport::Channel, request_id: &str, traceparent: String) {
    let caller = move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
        Ok::<_, tonic::Status>(request)
    };
    let mut intake = IntakeServiceClient::with_interceptor(gateway.clone(), caller);
    let request = SubmitComplaintRequest {
        request_id: request_id.to_owned(),
        complaint: Some(redress_intake::testing::complaint("信用卡年费未经同意被扣收。")),
    };
    intake.submit_complaint(request).await.unwrap();
}

/// Starts every service with its own SQLite store, exporting spans to `otlp`; returns the
/// processes and the gateway's URL.
fn start_suite(dir: &std::path::Path, otlp: &str) -> (Vec<Child>, String) {
    let ports: BTreeMap<&str, u16> = {
        let listeners: Vec<_> =
            SERVED.iter().map(|s| (*s, std::net::TcpListener::bind("127.0.0.1:0").unwrap())).collect();
        listeners.iter().map(|(s, l)| (*s, l.local_addr().unwrap().port())).collect()
    };
    let url = |service: &str| format!("http://127.0.0.1:{}", ports[service]);
    let keys: BTreeMap<&str, SigningKey> = redress::SIGNERS.iter().map(|s| (*s, SigningKey::generate(s))).collect();
    let token_file = dir.join("gateway.toml");
    let permissions: Vec<String> = Permission::ALL.iter().map(|p| format!("{:?}", p.as_str())).collect();
    std::fs::write(
        &token_file,
        format!(
            "[[auth.dev_tokens]]\ntoken = \"{TOKEN}\"\nprincipal = {{ subject = \"dev\", roles = [\"admin\"], \
             org_unit = \"/\", permissions = [{}] }}\n",
            permissions.join(", ")
        ),
    )
    .unwrap();
    let mut children = Vec::new();
    for service in SERVED {
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
        command
            .args(["serve", service])
            .env("REDRESS_SERVER__LISTEN_ADDR", format!("127.0.0.1:{}", ports[service]))
            .env("REDRESS_TELEMETRY__OTLP_ENDPOINT", otlp)
            .env("REDRESS_TELEMETRY__METRICS_ADDR", "")
            // Export batches every 100 ms rather than every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env_remove("OTEL_TRACES_SAMPLER")
            .env_remove("OTEL_TRACES_SAMPLER_ARG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{service}.log"))).unwrap())
            .kill_on_drop(true);
        if service == GATEWAY {
            command
                .arg("--allow-dev-tokens")
                .arg("--config")
                .arg(&token_file)
                .env("REDRESS_SIGNING_KEY", keys[GATEWAY].to_pem())
                .env("REDRESS_UPSTREAMS__INTAKE", url("intake"))
                .env("REDRESS_UPSTREAMS__CASE_WORKFLOW", url("case-workflow"))
                .env("REDRESS_UPSTREAMS__ESCALATION", url("escalation"))
                .env("REDRESS_UPSTREAMS__KNOWLEDGE_BASE", url("knowledge-base"))
                .env("REDRESS_UPSTREAMS__QUALITY_METRICS", url("quality-metrics"));
        } else {
            command
                .env("REDRESS_DATABASE__URL", format!("sqlite://{}/{service}.db", dir.display()))
                .env("REDRESS_AUTH__SIGNING_KEY", keys[service].to_pem())
                .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", keys[GATEWAY].public_key().to_pem())
                .env("REDRESS_INTAKE_URL", url("intake"))
                .env("REDRESS_CASE_WORKFLOW_URL", url("case-workflow"))
                .env("REDRESS_ESCALATION_URL", url("escalation"))
                .env("REDRESS_KNOWLEDGE_BASE_URL", url("knowledge-base"))
                .env("REDRESS_INDEX_DIR", dir.join("knowledge-base-index"))
                .env("REDRESS_PII__ACTIVE_KEY_ID", "k1")
                .env("REDRESS_PII__MASTER_KEYS__K1", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
                .env("REDRESS_PII__INDEX_KEY", "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=")
                .env("REDRESS_AUDIT__ACTIVE_KEY_ID", "k1")
                .env("REDRESS_AUDIT__KEYS__K1", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
            for (_, caller, allowed) in redress::service_callers().into_iter().filter(|(to, _, _)| *to == service) {
                let setting = format!("REDRESS_AUTH__CALLERS__{}", caller.replace('-', "_").to_uppercase());
                let allowed: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
                command
                    .env(format!("{setting}__PUBLIC_KEY"), keys[caller].public_key().to_pem())
                    .env(format!("{setting}__PERMISSIONS"), allowed.join(","));
            }
        }
        children.push(command.spawn().unwrap());
    }
    (children, url(GATEWAY))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_one_trace_from_the_gateway_to_every_consumer_of_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let serving = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });

    let (children, gateway_url) = start_suite(dir.path(), &otlp);
    let logs = || {
        SERVED
            .iter()
            .map(|s| {
                let log = std::fs::read_to_string(dir.path().join(format!("{s}.log"))).unwrap_or_default();
                format!("--- {s}\n{log}")
            })
            .collect::<String>()
    };
    // The gateway sees every upstream SERVING.
    let gateway = suite_endpoint(&gateway_url).unwrap().connect_lazy_with(None);
    let started = Instant::now();
    for service in [
        redress_proto::services::INTAKE,
        redress_proto::services::CASE,
        redress_proto::services::ESCALATION,
        redress_proto::services::METRICS,
    ] {
        loop {
            let request = HealthCheckRequest { service: service.to_owned() };
            let check = HealthClient::new(gateway.clone()).check(request).await;
            if check.is_ok_and(|r| r.get_ref().status == 1) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{service} not serving:\n{}", logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A caller that does not sample first, then one that does: the consumers apply each feed in
    // order, so once the second complaint's events are applied everywhere, so are the first's.
    submit(&gateway, "traces-unsampled", traceparent(UNSAMPLED, false)).await;
    submit(&gateway, "traces-sampled", traceparent(TRACE, true)).await;
    loop {
        if Hops::of(&collector.spans()).complete() {
            break;
        }
        let spans = collector.spans();
        let seen: Vec<_> = spans.iter().filter(|s| s.trace_id == TRACE).collect();
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the trace did not reach every hop; its spans: {seen:#?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stopped with SIGTERM, each service flushes what it still holds.
    for child in &children {
        let pid = child.id().unwrap();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
    }
    for (service, mut child) in SERVED.into_iter().zip(children) {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{service} stopped with {status}:\n{}", logs());
    }

    let spans = collector.spans();
    let trace: Vec<&Exported> = spans.iter().filter(|s| s.trace_id == TRACE).collect();
    let by_id: BTreeMap<&str, &Exported> = trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    assert_eq!(by_id.len(), trace.len(), "span ids are unique within the trace");
    // One tree: every span of the trace reaches the caller's span through spans of the trace.
    for span in &trace {
        path_to_root(span, &by_id);
    }
    let hops = Hops::of(&spans);
    let gateway = hops.gateway.unwrap();
    let intake = hops.intake.unwrap();
    let opened = hops.case_opened.unwrap();
    assert_eq!(gateway.parent, ROOT, "the gateway's span is the caller's child: {gateway:?}");
    assert_eq!(intake.parent, gateway.span_id, "intake's span is the gateway's child: {intake:?}");
    let descends =
        |span: &Exported, from: &Exported| path_to_root(span, &by_id).iter().any(|s| s.span_id == from.span_id);
    assert!(descends(opened, intake), "the case opened in intake's call: {opened:?}");
    for applied in hops.escalation.iter().chain(&hops.metrics).map(|s| s.unwrap()) {
        let cause = if applied.attribute("event.type") == OPENED { opened } else { intake };
        assert!(descends(applied, cause), "{} of {} under {}: {applied:?}", applied.name, applied.service, cause.name);
    }

    // Sampling is honoured on every hop: nothing of the unsampled caller's trace was exported.
    let unsampled: Vec<_> = spans.iter().filter(|s| s.trace_id == UNSAMPLED).collect();
    assert!(unsampled.is_empty(), "spans of a trace its caller did not sample: {unsampled:#?}");
}
