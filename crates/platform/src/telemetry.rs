//! Logging and tracing: `tracing` everywhere, formatted to stderr (JSON in production), with an
//! OpenTelemetry layer that exports spans over OTLP when an endpoint is configured. W3C trace
//! context (`traceparent`/`tracestate`) is extracted from every inbound gRPC call and injected
//! into every outbound one and into every event the services publish.

use std::collections::HashMap;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// `RUST_LOG`-style filter; `RUST_LOG` itself wins when set.
    pub log_filter: String,
    /// Emit JSON lines instead of human-readable text.
    pub json: bool,
    /// OTLP/gRPC endpoint (e.g. `http://otel-collector:4317`); empty disables export.
    pub otlp_endpoint: String,
    /// Admin address serving Prometheus `/metrics` (e.g. `0.0.0.0:9464`); empty disables it.
    pub metrics_addr: String,
    /// Share of new traces recorded and exported (0.0 to 1.0), decided from the trace id. A call
    /// that arrives inside a trace follows its caller's decision, so a trace is whole or absent.
    pub trace_sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info".to_owned(),
            json: false,
            otlp_endpoint: String::new(),
            metrics_addr: String::new(),
            trace_sample_ratio: 1.0,
        }
    }
}

/// Keeps the exporter alive; flushes pending spans when dropped.
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber. Call once per process, inside a Tokio runtime.
pub fn init(config: &TelemetryConfig, service_name: &str) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .context("invalid log filter")?;
    anyhow::ensure!(
        (0.0..=1.0).contains(&config.trace_sample_ratio),
        "telemetry.trace_sample_ratio must be between 0.0 and 1.0, not {}",
        config.trace_sample_ratio
    );
    let provider = if config.otlp_endpoint.is_empty() {
        SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOff,
            )))
            .build()
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .build()
            .context("cannot build the otlp exporter")?;
        let builder = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build());
        // The standard `OTEL_TRACES_SAMPLER` (read by the SDK) wins over the setting.
        if std::env::var_os("OTEL_TRACES_SAMPLER").is_some() {
            builder.build()
        } else {
            builder.with_sampler(sampler(config.trace_sample_ratio)).build()
        }
    };
    // The log filter applies to log output only: trace context must propagate (and spans
    // export) whatever the log level is.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("redress"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(otel);
    let result = if config.json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(filter))
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter)).try_init()
    };
    result.context("a global subscriber is already installed")?;
    if !config.metrics_addr.is_empty() {
        let addr =
            config.metrics_addr.parse().with_context(|| format!("invalid metrics_addr {}", config.metrics_addr))?;
        crate::metrics::serve(addr)?;
    }
    Ok(TelemetryGuard(Some(provider)))
}

/// New traces sampled at `ratio` by trace id; a call inside a trace follows its parent.
fn sampler(ratio: f64) -> opentelemetry_sdk::trace::Sampler {
    use opentelemetry_sdk::trace::Sampler;
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Makes the W3C context carried by `headers` the parent of `span`.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Writes the W3C context of `span` into `headers`.
pub fn inject_into_headers(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// A W3C trace context captured from a span, to carry work done elsewhere (a batch writer,
/// a published event) into the trace of the request that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceContext {
    /// The context of the current span.
    pub fn current() -> Self {
        Self::of(&tracing::Span::current())
    }

    pub fn of(span: &tracing::Span) -> Self {
        let mut map = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut map);
        Self {
            traceparent: map.remove("traceparent").unwrap_or_default(),
            tracestate: map.remove("tracestate").unwrap_or_default(),
        }
    }
}

/// Makes a stored W3C context the parent of `span` (event delivery keeps the trace).
pub fn set_parent_from_trace_context(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() {
        return;
    }
    let mut map = HashMap::new();
    map.insert("traceparent".to_owned(), traceparent.to_owned());
    if !tracestate.is_empty() {
        map.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&map);
    let _ = span.set_parent(cx);
}

/// The span every inbound gRPC call runs in, parented on the caller's W3C context.
pub fn grpc_server_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!("grpc.server", rpc.method = %request.uri().path());
    set_parent_from_headers(&span, request.headers());
    span
}

/// A tonic interceptor for clients: carries the current span's W3C context to the callee.
pub fn inject_current_context<T>(request: &mut tonic::Request<T>) {
    let mut headers = http::HeaderMap::new();
    inject_into_headers(&tracing::Span::current(), &mut headers);
    for (name, value) in &headers {
        if let Ok(value) = value.to_str()
            && let Ok(value) = value.parse()
            && let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes())
        {
            request.metadata_mut().insert(key, value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};

    use super::*;

    fn decision(ratio: f64, parent: Option<bool>, trace: u128) -> SamplingDecision {
        let context = parent.map(|sampled| {
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
            let span = SpanContext::new(TraceId::from(trace), SpanId::from(7), flags, true, TraceState::default());
            opentelemetry::Context::new().with_remote_span_context(span)
        });
        sampler(ratio)
            .should_sample(context.as_ref(), TraceId::from(trace), "call", &SpanKind::Server, &[], &[])
            .decision
    }

    #[test]
    fn new_traces_are_sampled_at_the_ratio_and_calls_inside_a_trace_follow_it() {
        // Trace ids spread like random ones (the decision reads their low 64 bits).
        let id = |n: u64| u128::from(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1 << 64;
        let sampled = |ratio| (1..=2_000).filter(|&n| decision(ratio, None, id(n)) != SamplingDecision::Drop).count();
        assert_eq!(sampled(1.0), 2_000);
        assert_eq!(sampled(0.0), 0);
        let tenth = sampled(0.1);
        assert!((100..=300).contains(&tenth), "about a tenth sampled, not {tenth}");
        // Whatever the ratio, a caller's decision holds on this hop.
        assert_eq!(decision(0.0, Some(true), 1 << 64), SamplingDecision::RecordAndSample);
        assert_eq!(decision(1.0, Some(false), 1 << 64), SamplingDecision::Drop);
    }

    #[tokio::test]
    async fn a_ratio_outside_zero_to_one_stops_the_start() {
        let config = TelemetryConfig { trace_sample_ratio: 1.5, ..TelemetryConfig::default() };
        let err = init(&config, "test").err().unwrap();
        assert!(err.to_string().contains("trace_sample_ratio"), "{err}");
    }
}
