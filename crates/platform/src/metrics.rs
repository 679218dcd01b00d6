//! Prometheus metrics: one exporter per process on an admin HTTP port, and the gRPC server
//! layer that counts calls and times them per method and status code. Services record their
//! own domain counters through the `metrics` macros.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Every gRPC method path the suite serves (`/package.Service/Method`).
static KNOWN_METHODS: std::sync::LazyLock<std::collections::HashSet<String>> = std::sync::LazyLock::new(|| {
    use prost::Message;
    let mut known: std::collections::HashSet<String> = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for encoded in [redress_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else { continue };
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    known.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    known
});

/// Latency buckets (seconds) for call durations.
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder and serves `/metrics` on `addr`. The exporter runs on
/// its own thread and runtime, so scrapes are answered however busy the services are and
/// outlive whichever runtime installed them. Call once per process.
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let (ready, started) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    std::thread::Builder::new().name("metrics".to_owned()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        runtime.block_on(async move {
            let built = PrometheusBuilder::new()
                .with_http_listener(addr)
                .set_buckets(DURATION_BUCKETS)
                .context("invalid histogram buckets")
                .and_then(|b| b.build().with_context(|| format!("cannot serve metrics on {addr}")));
            let (recorder, exporter) = match built {
                Ok(built) => built,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            if metrics::set_global_recorder(recorder).is_err() {
                let _ = ready.send(Err(anyhow::anyhow!("a metrics recorder is already installed")));
                return;
            }
            let _ = ready.send(Ok(()));
            if let Err(e) = exporter.await {
                tracing::error!(error = ?e, "metrics exporter stopped");
            }
        });
    })?;
    started.recv().context("metrics thread exited")??;
    tracing::info!(%addr, "prometheus metrics on /metrics");
    Ok(())
}

/// Counts and times every gRPC call: `redress_grpc_requests_total` and
/// `redress_grpc_request_duration_seconds` by method and status code (time to response
/// headers; for a streaming call that is when the stream opened). Paths that are not methods
/// of the suite are labelled `unknown`.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            // A handler's error comes back trailers-only, with grpc-status in the headers;
            // a response without it has started normally.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| "0".to_owned(), str::to_owned),
                Err(_) => "transport".to_owned(),
            };
            // Only methods of the suite's contracts are labelled by name: anyone can send any
            // path, and every distinct label set would live in memory for good.
            let method = if KNOWN_METHODS.contains(method.as_str()) { method } else { "unknown".to_owned() };
            metrics::counter!("redress_grpc_requests_total", "method" => method.clone(), "code" => code.clone())
                .increment(1);
            metrics::histogram!("redress_grpc_request_duration_seconds", "method" => method, "code" => code)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::KNOWN_METHODS;

    #[test]
    fn the_suite_s_methods_are_known_and_arbitrary_paths_are_not() {
        assert!(KNOWN_METHODS.contains("/redress.intake.v1.IntakeService/SubmitComplaint"));
        assert!(KNOWN_METHODS.contains("/redress.case.v1.CaseEventFeedService/StreamEvents"));
        assert!(KNOWN_METHODS.contains("/grpc.health.v1.Health/Check"));
        assert!(!KNOWN_METHODS.contains("/redress.intake.v1.IntakeService/DropTables"));
    }
}
