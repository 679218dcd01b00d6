//! Gateway: the one gRPC endpoint of the suite. It authenticates each caller, replaces the
//! caller's credentials (and any principal the caller sent) with a principal signed by the
//! gateway's own key for the one service the call goes to, routes the call by its
//! proto package to the owning service, and serves health and reflection for the whole public
//! API so reflection-based tools work with nothing but its address. Deadlines (`grpc-timeout`)
//! pass through and are enforced here too; the W3C trace context of the gateway's span is
//! injected into every forwarded call. Each caller and each institution is held to a request
//! rate, and a request message larger than `server.max_decoding_message_size` is refused here
//! rather than forwarded (see [`limits`]).
//!
//! Callers without gRPC reach the same router: grpc-web (`application/grpc-web…`, translated
//! by tonic-web), and REST/JSON over HTTP/1.1 or HTTP/2 transcoded from each RPC's
//! `google.api.http` rule (see [`rest`]), with its OpenAPI document at `GET /openapi.json`.
//! A request whose content type is `application/grpc` goes straight to the router.

pub mod auth;
pub mod limits;
pub mod openapi;
pub mod rest;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::{BoxFuture, Either};
use redress_platform::ServiceError;
use redress_platform::config::Secret;
use redress_platform::principal::{ON_BEHALF_METADATA_KEY, PRINCIPAL_METADATA_KEY};
use redress_platform::server::{GrpcServer, ServerConfig, suite_endpoint};
use redress_platform::signing::SigningKey;
use redress_platform::telemetry::{TelemetryConfig, inject_into_headers};
use redress_proto::services;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as PbStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Service, ServiceExt};

pub use auth::{AuthConfig, Authenticator, DevToken, DevTokens, default_roles};
pub use limits::{Limiter, RateLimits};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    /// The gateway's Ed25519 private key (PKCS#8 PEM) that signs forwarded principals, or the
    /// file holding it; the services verify with its public half.
    pub signing_key: Secret,
    pub signing_key_file: String,
    pub telemetry: TelemetryConfig,
    pub upstreams: Upstreams,
    pub auth: AuthConfig,
    /// Request rates per caller and per institution; 0 turns a limit off.
    pub rate_limits: RateLimits,
    /// Web origins (`https://app.example`) whose pages a browser lets call the gateway over
    /// REST and grpc-web, or `*` for any. Empty: no cross-origin page may. Callers that are not
    /// browsers send no origin and are not affected.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig { listen_addr: "127.0.0.1:50051".to_owned(), ..ServerConfig::default() },
            signing_key: Secret::default(),
            signing_key_file: String::new(),
            telemetry: TelemetryConfig::default(),
            upstreams: Upstreams::default(),
            auth: AuthConfig::default(),
            rate_limits: RateLimits::default(),
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// Where each service behind the gateway listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Upstreams {
    pub intake: String,
    pub case_workflow: String,
    pub quality_metrics: String,
    pub knowledge_base: String,
    pub escalation: String,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            intake: "http://127.0.0.1:50052".to_owned(),
            case_workflow: "http://127.0.0.1:50053".to_owned(),
            quality_metrics: "http://127.0.0.1:50054".to_owned(),
            knowledge_base: "http://127.0.0.1:50056".to_owned(),
            escalation: "http://127.0.0.1:50055".to_owned(),
        }
    }
}

/// Public services, the proto package prefix that routes to their owner, and that owner.
fn routes(upstreams: &Upstreams) -> Vec<Route> {
    vec![
        Route {
            prefix: "/redress.intake.v1.",
            audience: "intake",
            services: &[services::INTAKE, services::INTAKE_EVENTS, services::PERSONAL_DATA],
            url: upstreams.intake.clone(),
        },
        Route {
            prefix: "/redress.case.v1.",
            audience: "case-workflow",
            services: &[services::CASE, services::CASE_EVENTS],
            url: upstreams.case_workflow.clone(),
        },
        Route {
            prefix: "/redress.metrics.v1.",
            audience: "quality-metrics",
            services: &[services::METRICS, services::IMPROVEMENT, services::METRICS_EVENTS],
            url: upstreams.quality_metrics.clone(),
        },
        Route {
            prefix: "/redress.knowledge.v1.",
            audience: "knowledge-base",
            services: &[services::KNOWLEDGE, services::KNOWLEDGE_EVENTS],
            url: upstreams.knowledge_base.clone(),
        },
        Route {
            prefix: "/redress.escalation.v1.",
            audience: "escalation",
            services: &[services::ESCALATION, services::ESCALATION_EVENTS],
            url: upstreams.escalation.clone(),
        },
    ]
}

struct Route {
    prefix: &'static str,
    /// The owning service's name: the audience of the principals forwarded to it.
    audience: &'static str,
    services: &'static [&'static str],
    url: String,
}

/// The services the gateway forwards to, by name (the audience of their principals).
pub fn upstream_audiences() -> Vec<&'static str> {
    routes(&Upstreams::default()).iter().map(|r| r.audience).collect()
}

/// Every public service name the gateway serves.
pub fn public_services() -> Vec<&'static str> {
    routes(&Upstreams::default()).iter().flat_map(|r| r.services.iter().copied()).collect()
}

#[derive(Clone)]
struct Upstream {
    prefix: &'static str,
    audience: &'static str,
    channel: Channel,
}

/// The gateway's request router (a tower service over raw gRPC HTTP/2 requests).
#[derive(Clone)]
struct Router {
    local: Routes,
    upstreams: Arc<[Upstream]>,
    auth: Arc<Authenticator>,
    limiter: Arc<Limiter>,
    /// Largest request message forwarded (`server.max_decoding_message_size`).
    max_message: usize,
}

fn is_local(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

fn status_response(status: tonic::Status) -> http::Response<Body> {
    status.into_http()
}

impl Service<http::Request<Body>> for Router {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // Only the gateway speaks for a caller: whatever principal (or token to act on behalf
        // of) the caller sent is dropped.
        request.headers_mut().remove(PRINCIPAL_METADATA_KEY);
        request.headers_mut().remove(ON_BEHALF_METADATA_KEY);
        let path = request.uri().path();
        if is_local(path) {
            let mut local = self.local.clone();
            return Box::pin(async move { local.call(request).await });
        }
        let Some(upstream) = self.upstreams.iter().find(|u| path.starts_with(u.prefix)) else {
            let status = tonic::Status::unimplemented(format!("no service routes {path}"));
            return Box::pin(async move { Ok(status_response(status)) });
        };
        let mut channel = upstream.channel.clone();
        let audience = upstream.audience;
        let (auth, limiter, max_message) = (self.auth.clone(), self.limiter.clone(), self.max_message);
        // Runs inside the server's per-call span (entered while the future is polled).
        Box::pin(async move {
            let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let caller = match auth.principal(authorization) {
                Ok(caller) => caller,
                Err(e) => return Ok(status_response(e.into())),
            };
            if let Err(refused) = limiter.check(&caller) {
                return Ok(status_response(refused));
            }
            let principal = match auth.sign(&caller, audience) {
                Ok(p) => p,
                Err(e) => return Ok(status_response(e.into())),
            };
            let mut request = match first_message_within(request, max_message).await {
                Ok(request) => request,
                Err(status) => return Ok(status_response(status)),
            };
            let headers = request.headers_mut();
            headers.remove(http::header::AUTHORIZATION);
            headers.insert(PRINCIPAL_METADATA_KEY, principal);
            inject_into_headers(&tracing::Span::current(), headers);
            let forwarded = match channel.ready().await {
                Ok(ready) => ready.call(request).await,
                Err(e) => Err(e),
            };
            match forwarded {
                Ok(response) => Ok(response),
                Err(e) => {
                    tracing::warn!(error = %e, "upstream call failed");
                    Ok(status_response(ServiceError::Unavailable("upstream unavailable".to_owned()).into()))
                }
            }
        })
    }
}

/// Reads the request up to its first message's header (a compression flag and the length)
/// and refuses a message longer than `limit` with RESOURCE_EXHAUSTED before anything is
/// forwarded; what was read goes on to the upstream unchanged. Later messages of a request
/// stream are held to the upstream's own limit.
async fn first_message_within(
    request: http::Request<Body>,
    limit: usize,
) -> Result<http::Request<Body>, tonic::Status> {
    use http_body_util::BodyExt;
    const HEADER: usize = 5;
    let (parts, mut body) = request.into_parts();
    let mut read = std::collections::VecDeque::new();
    let mut header = Vec::with_capacity(HEADER);
    let mut ended = false;
    while header.len() < HEADER {
        let Some(frame) = body.frame().await else {
            ended = true;
            break;
        };
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            read.push_back(frame);
            break;
        };
        header.extend(data.iter().take(HEADER - header.len()));
        read.push_back(frame);
    }
    if let [_, a, b, c, d] = header[..] {
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > limit {
            return Err(limits::oversize(len, limit));
        }
    }
    let rest = (!ended).then_some(body);
    Ok(http::Request::from_parts(parts, Body::new(Replayed { read, rest })))
}

/// A request body whose first frames were read already: those frames again, then the rest
/// of the body (none once it ended; an ended body is never polled again, and the end is
/// told as soon as it is known, so the upstream sees the stream end with its last frame).
struct Replayed {
    read: std::collections::VecDeque<http_body::Frame<bytes::Bytes>>,
    rest: Option<Body>,
}

impl http_body::Body for Replayed {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(rest) = self.rest.as_mut() else { return Poll::Ready(None) };
        let polled = std::pin::Pin::new(rest).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.rest = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.as_ref().is_none_or(http_body::Body::is_end_stream)
    }
}

/// What the gateway serves: gRPC to the router as it is, grpc-web through tonic-web, and
/// anything else as REST/JSON (with CORS preflight for browsers).
#[derive(Clone)]
struct Front {
    router: Router,
    web: tonic_web::GrpcWebService<Router>,
    rest: Arc<rest::Transcoder>,
    cors: Arc<Cors>,
}

/// The web origins a browser may let call the gateway (`cors_allowed_origins`).
#[derive(Debug, Default)]
struct Cors {
    any: bool,
    origins: std::collections::HashSet<String>,
}

impl Cors {
    /// Reads the configured origins: `*`, or each a scheme and host with an optional port and
    /// nothing after it (compared as browsers send them: lowercase, no trailing slash).
    fn new(configured: &[String]) -> anyhow::Result<Self> {
        let mut cors = Self::default();
        for origin in configured {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            if origin == "*" {
                cors.any = true;
                continue;
            }
            let uri: http::Uri = origin.parse().with_context(|| {
                format!("cors_allowed_origins: {origin:?} is not an origin such as https://app.example")
            })?;
            anyhow::ensure!(
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.host().is_some_and(|h| !h.is_empty())
                    && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
                    && !origin.contains('@'),
                "cors_allowed_origins: {origin:?} is not an origin such as https://app.example (a scheme, a host, \
                 an optional port and nothing else)"
            );
            cors.origins.insert(origin);
        }
        Ok(cors)
    }

    /// The request's origin if it may call, to be echoed in `Access-Control-Allow-Origin`.
    fn allowed(&self, request: &http::Request<Body>) -> Option<http::HeaderValue> {
        let origin = request.headers().get(http::header::ORIGIN)?;
        let permitted = self.any || origin.to_str().is_ok_and(|o| self.origins.contains(o));
        permitted.then(|| origin.clone())
    }
}

/// Headers a browser may read from a cross-origin reply.
const EXPOSED: &str = "grpc-status, grpc-message, grpc-status-details-bin, content-type";

impl Service<http::Request<Body>> for Front {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<http::Request<Body>>>::Future,
        BoxFuture<'static, Result<Self::Response, Infallible>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let content_type = request.headers().get(http::header::CONTENT_TYPE).map(http::HeaderValue::as_bytes);
        let grpc_web = match content_type {
            Some(t) if t.starts_with(b"application/grpc") => t.starts_with(b"application/grpc-web"),
            _ => {
                let origin = self.cors.allowed(&request);
                if let Some(preflight) = preflight(&request, origin.clone()) {
                    return Either::Right(Box::pin(async move { Ok(preflight) }));
                }
                let (rest, router, max_message) = (self.rest.clone(), self.router.clone(), self.router.max_message);
                return Either::Right(Box::pin(async move {
                    let response = rest.serve(request, router, max_message).await;
                    Ok(allow_origin(response, origin))
                }));
            }
        };
        if !grpc_web {
            return Either::Left(self.router.call(request));
        }
        let origin = self.cors.allowed(&request);
        let call = self.web.call(request);
        Either::Right(Box::pin(async move { Ok(allow_origin(call.await?, origin)) }))
    }
}

/// The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) from
/// `origin`, the request's origin if it is allowed: 204 with what it may send, or 403 without
/// any CORS header when its origin is not allowed (the browser then does not send the call).
fn preflight(request: &http::Request<Body>, origin: Option<http::HeaderValue>) -> Option<http::Response<Body>> {
    use http::header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_MAX_AGE,
        ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    };
    let headers = request.headers();
    if request.method() != http::Method::OPTIONS
        || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        || !headers.contains_key(ORIGIN)
    {
        return None;
    }
    let Some(origin) = origin else {
        let mut refused = http::Response::new(Body::empty());
        *refused.status_mut() = http::StatusCode::FORBIDDEN;
        return Some(refused);
    };
    let mut response = http::Response::new(Body::empty());
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(ACCESS_CONTROL_ALLOW_METHODS, http::HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
    let requested = headers.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    out.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        requested.unwrap_or_else(|| http::HeaderValue::from_static("authorization, content-type")),
    );
    out.insert(ACCESS_CONTROL_MAX_AGE, http::HeaderValue::from_static("86400"));
    Some(allow_origin(response, Some(origin)))
}

fn allow_origin(mut response: http::Response<Body>, origin: Option<http::HeaderValue>) -> http::Response<Body> {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, http::HeaderValue::from_static(EXPOSED));
        headers.append(http::header::VARY, http::HeaderValue::from_static("origin"));
    }
    response
}

pub struct Gateway {
    server: GrpcServer,
    router_parts: (Arc<[Upstream]>, Arc<Authenticator>, Arc<Limiter>, usize),
    rest: Arc<rest::Transcoder>,
    cors: Arc<Cors>,
    shutdown: CancellationToken,
}

impl Gateway {
    /// A gateway signing with `key`; static dev tokens only with [`DevTokens::Allowed`].
    pub async fn build(
        config: GatewayConfig,
        key: SigningKey,
        dev_tokens: DevTokens,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(key.issuer() == redress_platform::signing::GATEWAY, "the gateway signs as gateway");
        let auth = Arc::new(Authenticator::new(&config.auth, key, dev_tokens)?);
        let cors = Arc::new(Cors::new(&config.cors_allowed_origins)?);
        // Bound first: the upstream channels call with the gateway's own TLS (its certificate
        // as the client certificate, its CA for the upstreams), loaded by binding.
        let server = GrpcServer::bind(&config.server, &public_services()).await?.accept_http1(true);
        let rest = Arc::new(
            rest::Transcoder::new(redress_proto::FILE_DESCRIPTOR_SET, &public_services()).context("REST routes")?,
        );
        let tls = server.tls_for_calls();
        let mut upstreams = Vec::new();
        for route in routes(&config.upstreams) {
            let channel = suite_endpoint(&route.url).context("upstream url")?.connect_lazy(tls.as_ref());
            upstreams.push(Upstream { prefix: route.prefix, audience: route.audience, channel });
        }
        let limiter = Arc::new(Limiter::new(&config.rate_limits));
        let max_message = config.server.max_decoding_message_size;
        Ok(Self { server, router_parts: (upstreams.into(), auth, limiter, max_message), rest, cors, shutdown })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let health = self.server.health();
        let (upstreams, auth, limiter, max_message) = self.router_parts;
        let (rest, cors) = (self.rest, self.cors);
        tokio::spawn(mirror_upstream_health(health.clone(), upstreams.clone(), self.shutdown.clone()));
        health.set_service_status("", ServingStatus::Serving).await;
        self.server
            .serve_with(
                move |add_base| {
                    let router =
                        Router { local: add_base(Routes::builder().routes()), upstreams, auth, limiter, max_message };
                    let web = tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), router.clone());
                    Front { router, web, rest, cors: cors.clone() }
                },
                self.shutdown,
            )
            .await
    }
}

/// Reports each public service as SERVING exactly when its upstream says it is.
async fn mirror_upstream_health(
    health: tonic_health::server::HealthReporter,
    upstreams: Arc<[Upstream]>,
    shutdown: CancellationToken,
) {
    let all = routes(&Upstreams::default());
    loop {
        for (upstream, route) in upstreams.iter().zip(all.iter()) {
            for service in route.services {
                let mut client = HealthClient::new(upstream.channel.clone());
                let request = tonic::Request::new(HealthCheckRequest { service: (*service).to_owned() });
                let serving = matches!(
                    tokio::time::timeout(Duration::from_secs(2), client.check(request)).await,
                    Ok(Ok(r)) if r.get_ref().status == PbStatus::Serving as i32
                );
                let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
                health.set_service_status(*service, status).await;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                health.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn preflight_from(origin: &str) -> http::Request<Body> {
        http::Request::builder()
            .method(http::Method::OPTIONS)
            .uri("/v1/complaints")
            .header(http::header::ORIGIN, origin)
            .header(http::header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn only_listed_origins_are_allowed_across_origins() {
        let cors = Cors::new(&["https://App.Example/".to_owned(), "http://localhost:8080".to_owned()]).unwrap();
        for origin in ["https://app.example", "http://localhost:8080"] {
            let request = preflight_from(origin);
            let answer = preflight(&request, cors.allowed(&request)).unwrap();
            assert_eq!(answer.status(), http::StatusCode::NO_CONTENT, "{origin}");
            assert_eq!(answer.headers()[http::header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
        }
        for origin in ["https://evil.example", "https://app.example:8443", "http://app.example", "null"] {
            let request = preflight_from(origin);
            let answer = preflight(&request, cors.allowed(&request)).unwrap();
            assert_eq!(answer.status(), http::StatusCode::FORBIDDEN, "{origin}");
            assert!(!answer.headers().contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN), "{origin}");
        }
        // Nothing configured: no page of another origin may call; `*`: any may.
        let request = preflight_from("https://app.example");
        assert!(Cors::new(&[]).unwrap().allowed(&request).is_none());
        assert!(Cors::new(&["*".to_owned()]).unwrap().allowed(&request).is_some());
        // A request without an origin is not a browser's cross-origin call: no preflight answer.
        let plain = http::Request::builder().method(http::Method::OPTIONS).body(Body::empty()).unwrap();
        assert!(preflight(&plain, None).is_none());
    }

    #[test]
    fn a_configured_origin_that_is_not_one_is_refused_at_start() {
        for bad in ["app.example", "https://app.example/path", "ftp://app.example", "https://user@app.example", ""] {
            let err = Cors::new(&[bad.to_owned()]).unwrap_err();
            assert!(err.to_string().contains("cors_allowed_origins"), "{bad}: {err}");
        }
    }
}
