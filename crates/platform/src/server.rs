//! Server bootstrap shared by every service: bind first, serve grpc.health.v1 (NOT_SERVING
//! until the service says it is ready) and reflection, apply timeout, concurrency-limit and
//! load-shedding layers, and drain in-flight calls on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::{Connected, TcpIncoming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

/// HTTP/2 ping interval on idle connections, for servers and for the suite's own clients.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a server or client of the suite decodes or encodes unless configured
/// otherwise (`server.max_decoding_message_size`, `server.max_encoding_message_size`): 4 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// An endpoint for calling another service of the suite: no Nagle delay, and HTTP/2 pings so
/// that a dead peer is detected even on an idle connection (event feeds are long-lived). An
/// `https://` URL is called over TLS with the calling service's own TLS (see
/// [`GrpcServer::tls_for_calls`]), an `http://` URL in plaintext.
pub fn suite_endpoint(url: &str) -> anyhow::Result<SuiteEndpoint> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid url {url}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    match endpoint.uri().scheme_str() {
        Some("http" | "https") => {}
        _ => anyhow::bail!("url {url} must start with http:// or https://"),
    }
    Ok(SuiteEndpoint { endpoint })
}

/// A service URL with the suite's connection settings; see [`suite_endpoint`].
#[derive(Debug, Clone)]
pub struct SuiteEndpoint {
    endpoint: tonic::transport::Endpoint,
}

impl SuiteEndpoint {
    /// A channel of a service of the suite that connects on first use, over TLS for `https://`
    /// with `tls`, the calling service's own (its certificate and CA as current at each
    /// (re)connection; see [`GrpcServer::tls_for_calls`]). A mismatch between the URL and the
    /// service's TLS (an `https://` URL without a CA, or an `http://` one although TLS is
    /// configured) is logged.
    pub fn connect_lazy(&self, tls: Option<&crate::tls::Tls>) -> tonic::transport::Channel {
        if self.is_https() && tls.is_none() {
            tracing::warn!(url = %self.endpoint.uri(), "https url but no TLS CA configured; calls will fail");
        } else if !self.is_https() && tls.is_some() {
            tracing::warn!(url = %self.endpoint.uri(), "calling a service in plaintext although TLS is configured");
        }
        self.connect_lazy_with(tls.cloned())
    }

    /// A channel that connects on first use with `tls` (a caller outside the suite's services:
    /// the command line, tests), without [`SuiteEndpoint::connect_lazy`]'s warnings.
    pub fn connect_lazy_with(&self, tls: Option<crate::tls::Tls>) -> tonic::transport::Channel {
        let connector = tower::service_fn(move |uri: http::Uri| {
            let tls = tls.clone();
            async move { crate::tls::connect(uri, tls).await.map(hyper_util::rt::TokioIo::new) }
        });
        self.endpoint.connect_with_connector_lazy(connector)
    }

    /// Whether the URL is `https://`.
    pub fn is_https(&self) -> bool {
        self.endpoint.uri().scheme_str() == Some("https")
    }

    /// The same endpoint with every call limited to `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { endpoint: self.endpoint.timeout(timeout) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `0.0.0.0:50051`; port 0 picks a free port.
    pub listen_addr: String,
    /// Upper bound for any unary call; a shorter `grpc-timeout` from the caller wins.
    pub request_timeout_ms: u64,
    /// Calls in flight at once; beyond it new calls are shed with UNAVAILABLE.
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for in-flight calls.
    pub drain_timeout_ms: u64,
    /// HTTP/2 streams one connection may have open at once. The gateway multiplexes every
    /// caller onto one connection per upstream, so this must exceed its peak concurrency:
    /// streams over the limit are refused, and h2 answers a run of refusals with GOAWAY.
    pub max_concurrent_streams: u32,
    /// Largest request message a service decodes (bytes); a larger one is refused (OUT_OF_RANGE
    /// from a service, RESOURCE_EXHAUSTED from the gateway, which refuses it before forwarding).
    pub max_decoding_message_size: usize,
    /// Largest response message a service encodes (bytes); a larger one fails the call.
    pub max_encoding_message_size: usize,
    /// Event feed streams (`StreamEvents`) one caller may hold open at once on this service;
    /// beyond it a new one is refused with RESOURCE_EXHAUSTED. 0 turns the bound off.
    pub max_event_streams_per_caller: usize,
    /// Event feed streams all callers together may hold open at once on this service; 0 turns
    /// the bound off.
    pub max_event_streams: usize,
    /// TLS for what the service serves and the calls it makes; plaintext (h2c) when not set.
    pub tls: crate::tls::TlsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:0".to_owned(),
            request_timeout_ms: 30_000,
            max_concurrent_requests: 4096,
            drain_timeout_ms: 10_000,
            max_concurrent_streams: 4096,
            max_decoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_event_streams_per_caller: 16,
            max_event_streams: 1024,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// A bound, not yet serving, gRPC server with its health reporter.
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    health: HealthReporter,
    /// Adds health and reflection to a service's routes.
    add_base: Box<dyn FnOnce(Routes) -> Routes + Send>,
    config: ServerConfig,
    /// The server's TLS (reloaded while the server lives), or none for plaintext.
    tls: Option<crate::tls::Tls>,
    /// Serve HTTP/1.1 beside HTTP/2 (the gateway's REST and grpc-web callers).
    accept_http1: bool,
}

impl GrpcServer {
    /// Binds the listener and marks every name in `services` (and the server as a whole) as
    /// NOT_SERVING until [`GrpcServer::set_serving`] is called.
    pub async fn bind(config: &ServerConfig, services: &[&str]) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let tls = crate::tls::Tls::load_watched(&config.tls).context("server.tls")?;
        match &tls {
            Some(tls) if tls.server_config().is_some() => {
                tracing::info!(addr = %local_addr, mutual = tls.requires_client_certificates(), "serving gRPC over TLS");
            }
            _ if local_addr.ip().is_loopback() => {
                tracing::debug!(addr = %local_addr, "serving plaintext gRPC (h2c) on loopback");
            }
            _ => {
                tracing::warn!(addr = %local_addr, "TLS is not configured (server.tls): serving plaintext gRPC (h2c)");
            }
        }
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::NotServing).await;
        for service in services {
            health.set_service_status(*service, ServingStatus::NotServing).await;
        }
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(redress_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building reflection")?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(redress_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("building reflection")?;
        let add_base = Box::new(move |routes: Routes| {
            routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha)
        });
        Ok(Self { listener, local_addr, health, add_base, config: config.clone(), tls, accept_http1: false })
    }

    /// Accepts HTTP/1.1 connections too (off by default: gRPC needs HTTP/2 only).
    pub fn accept_http1(mut self, accept: bool) -> Self {
        self.accept_http1 = accept;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS this service calls the others with: its own certificate (presented as the client
    /// certificate) and its CA, reloaded with the files; none without a CA. Each service of a
    /// process has its own, so services embedded together (`redress dev`) keep their settings.
    pub fn tls_for_calls(&self) -> Option<crate::tls::Tls> {
        self.tls.clone().filter(|tls| tls.client_config().is_some())
    }

    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves `routes` plus health and reflection until `shutdown`, then drains.
    pub async fn serve(self, routes: Routes, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.serve_with(|add_base| add_base(routes), shutdown).await
    }

    /// Serves the service `make` builds, given the function that adds health and reflection
    /// to a set of routes (the gateway routes everything else to upstreams), until `shutdown`,
    /// then drains.
    pub async fn serve_with<S, F>(self, make: F, shutdown: CancellationToken) -> anyhow::Result<()>
    where
        F: FnOnce(Box<dyn FnOnce(Routes) -> Routes + Send>) -> S,
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let service = make(self.add_base);
        let tls = self.tls.filter(|tls| tls.server_config().is_some());
        match tls {
            Some(tls) => {
                let incoming = crate::tls::incoming(self.listener, tls, self.accept_http1);
                drive(&self.config, self.accept_http1, self.local_addr, service, incoming, shutdown).await
            }
            None => {
                // Set per accepted socket: the builder's tcp_nodelay does not apply to an incoming stream.
                let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
                drive(&self.config, self.accept_http1, self.local_addr, service, incoming, shutdown).await
            }
        }
    }
}

/// Serves `service` on the connections `incoming` yields until `shutdown`, then drains.
async fn drive<S, I, IO, IE>(
    config: &ServerConfig,
    accept_http1: bool,
    local_addr: SocketAddr,
    service: S,
    incoming: I,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let layers = ServiceBuilder::new()
        .layer(crate::metrics::GrpcMetricsLayer)
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(config.max_concurrent_requests));
    let drain = Duration::from_millis(config.drain_timeout_ms);
    let signal = shutdown.clone();
    let server = tonic::transport::Server::builder()
        .timeout(Duration::from_millis(config.request_timeout_ms))
        .tcp_nodelay(true)
        .accept_http1(accept_http1)
        .max_concurrent_streams(config.max_concurrent_streams)
        // Ping idle connections so a peer that vanished (power loss, partition) is noticed
        // and long-lived feed streams end instead of hanging.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .trace_fn(crate::telemetry::grpc_server_span)
        .layer(layers)
        .serve_with_incoming_shutdown(service, incoming, async move { signal.cancelled().await });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("grpc server failed"),
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result.context("grpc server failed"),
        Err(_) => {
            tracing::warn!(addr = %local_addr, "drain timed out; closing remaining calls");
            Ok(())
        }
    }
}

/// Marks the server and each service as SERVING.
pub async fn set_serving(health: &HealthReporter, services: &[&str]) {
    health.set_service_status("", ServingStatus::Serving).await;
    for service in services {
        health.set_service_status(*service, ServingStatus::Serving).await;
    }
}

/// Marks the server and each service as NOT_SERVING (shutdown has begun).
pub async fn set_not_serving(health: &HealthReporter, services: &[&str]) {
    health.set_service_status("", ServingStatus::NotServing).await;
    for service in services {
        health.set_service_status(*service, ServingStatus::NotServing).await;
    }
}

/// A generated gRPC server `$server` of `$api` behind `$interceptor`, its request and response
/// messages bounded by `$config` (a [`ServerConfig`]: `max_decoding_message_size`,
/// `max_encoding_message_size`).
#[macro_export]
macro_rules! bounded_service {
    ($server:ident, $api:expr, $interceptor:expr, $config:expr) => {
        ::tonic::service::interceptor::InterceptedService::new(
            $server::new($api)
                .max_decoding_message_size($config.max_decoding_message_size)
                .max_encoding_message_size($config.max_encoding_message_size),
            $interceptor,
        )
    };
}
