//! The service host: one place that serves a service's routes, opens its store, flips health,
//! and runs and supervises every background task (sweepers, consumers, sequencers, batch
//! writers, pruners).
//!
//! A supervised task is meant to run until the host stops it. If one ends on its own, fails or
//! panics, the service cannot do its job any more while its API would go on answering; so the
//! host logs the task by name, reports NOT_SERVING, drains in-flight calls and returns an error,
//! and the process exits non-zero for Kubernetes to restart it.
//!
//! Resilience tests inject a panic into one task by name through `REDRESS_INJECT_PANIC`
//! (for example `case-workflow/sweeper`); it fires [`INJECTED_PANIC_DELAY`] after the service
//! reports SERVING.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;

use crate::events::Feed;
use crate::ready::Ready;
use crate::server::{GrpcServer, ServerConfig, set_not_serving, set_serving};

/// Environment variable naming a supervised task to panic, for resilience tests.
pub const INJECT_PANIC_ENV: &str = "REDRESS_INJECT_PANIC";
/// How long after SERVING an injected panic fires.
pub const INJECTED_PANIC_DELAY: Duration = Duration::from_secs(2);
/// How long stopping waits for background tasks to finish their current step.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last outbox sequencing may take before shutdown goes on without it.
const LAST_SEQUENCING_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a service's background tasks and notices when one of them stops.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// The service the tasks belong to; task names are `<service>/<task>`.
    service: String,
    /// The tasks that do the service's work (consumers, sweepers, batchers, pruners): stopped
    /// first, after the API has drained.
    work: Group,
    /// The tasks that work depends on (the SQLite writer, the outbox sequencer): stopped last,
    /// once the work has stopped and the feed was sequenced one last time.
    infrastructure: Group,
    /// Cancelled when a task fails: the host then begins its shutdown.
    on_failure: CancellationToken,
    /// Cancelled once the service reports SERVING.
    serving: CancellationToken,
    failures: Mutex<Vec<String>>,
    inject_panic: Option<String>,
}

/// Tasks stopped together.
#[derive(Default)]
struct Group {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Group {
    /// Stops the group's tasks and waits for them (at most [`STOP_TIMEOUT`]).
    async fn stop(&self, what: &str) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tasks.wait()).await.is_err() {
            tracing::warn!(tasks = what, "background tasks did not stop in time");
        }
    }
}

impl Supervisor {
    /// A supervisor whose task failures cancel `on_failure` (the service's shutdown).
    pub fn new(service: &str, on_failure: CancellationToken) -> Self {
        let inject_panic = std::env::var(INJECT_PANIC_ENV).ok().filter(|n| !n.is_empty());
        Self::with(service, on_failure, inject_panic)
    }

    /// A supervisor of its own, for stores opened outside a host (tests, `redress migrate`):
    /// a failed task is logged and nothing else stops.
    pub fn detached() -> Self {
        Self::with("detached", CancellationToken::new(), None)
    }

    fn with(service: &str, on_failure: CancellationToken, inject_panic: Option<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                work: Group::default(),
                infrastructure: Group::default(),
                on_failure,
                serving: CancellationToken::new(),
                failures: Mutex::new(Vec::new()),
                inject_panic,
            }),
        }
    }

    /// Cancelled when the work tasks are to stop; a task watches it and returns `Ok(())`.
    pub fn stopping(&self) -> CancellationToken {
        self.inner.work.stop.clone()
    }

    /// Cancelled when the infrastructure tasks are to stop (after the work tasks).
    pub fn stopping_last(&self) -> CancellationToken {
        self.inner.infrastructure.stop.clone()
    }

    /// Runs a work task as `<service>/<name>` (as logs, metrics and `REDRESS_INJECT_PANIC` name
    /// it). The task should run until [`Supervisor::stopping`] fires; ending any earlier, with
    /// an error or a panic, is a failure of the service.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn_in(false, name.into(), task);
    }

    /// Runs an infrastructure task (one work tasks write through, such as the SQLite writer),
    /// which should run until [`Supervisor::stopping_last`] fires.
    pub fn spawn_last<F>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn_in(true, name.into(), task);
    }

    fn spawn_in<F>(&self, last: bool, name: String, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = format!("{}/{}", self.inner.service, name);
        let inject = self.inner.inject_panic.as_deref() == Some(name.as_str());
        let serving = self.inner.serving.clone();
        let task = async move {
            if !inject {
                return task.await;
            }
            let trigger = async {
                serving.cancelled().await;
                tokio::time::sleep(INJECTED_PANIC_DELAY).await;
            };
            tokio::select! {
                result = task => result,
                () = trigger => panic!("panic injected by {INJECT_PANIC_ENV}"),
            }
        };
        let supervisor = self.clone();
        let group = if last { &self.inner.infrastructure } else { &self.inner.work };
        group.tasks.spawn(async move {
            let outcome = std::panic::AssertUnwindSafe(task).catch_unwind().await;
            let group = if last { &supervisor.inner.infrastructure } else { &supervisor.inner.work };
            let stopping = group.stop.is_cancelled();
            let failure = match outcome {
                Ok(Ok(())) if stopping => return,
                Ok(Ok(())) => "ended while the service was running".to_owned(),
                Ok(Err(e)) => format!("failed: {e:#}"),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            supervisor.failed(&name, failure);
        });
    }

    fn failed(&self, name: &str, failure: String) {
        tracing::error!(task = name, failure = %failure, "background task stopped; the service stops serving");
        metrics::counter!("redress_task_failures_total", "task" => name.to_owned()).increment(1);
        if let Ok(mut failures) = self.inner.failures.lock() {
            failures.push(format!("{name} {failure}"));
        }
        self.inner.on_failure.cancel();
    }

    /// What failed so far, one line a task.
    pub fn failures(&self) -> Vec<String> {
        self.inner.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Tells the tasks the service serves (an injected panic counts from here).
    fn mark_serving(&self) {
        self.inner.serving.cancel();
    }

    /// Stops the work tasks and waits for them (at most [`STOP_TIMEOUT`]).
    pub async fn stop_work(&self) {
        self.inner.work.stop("work").await;
    }

    /// Stops every task, the work first, and waits for them (at most [`STOP_TIMEOUT`] each).
    pub async fn stop(&self) {
        self.inner.work.stop("work").await;
        self.inner.infrastructure.stop("infrastructure").await;
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A bound service: its gRPC server and the supervisor of its background tasks.
pub struct Host {
    server: GrpcServer,
    services: &'static [&'static str],
    shutdown: CancellationToken,
    supervisor: Supervisor,
    /// The service's own feed, once its store is open: sequenced one last time after the drain.
    feed: Ready<Feed>,
    /// Event streams one caller and all callers may hold on the feed (`server.max_event_streams…`).
    stream_bounds: (usize, usize),
}

impl Host {
    /// Binds the service's listener (reporting NOT_SERVING for `services` until ready). The
    /// host stops when `shutdown` fires or a supervised task fails.
    pub async fn bind(
        name: &str,
        config: &ServerConfig,
        services: &'static [&'static str],
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let server = GrpcServer::bind(config, services).await?;
        // A child token: a failed task stops this service (and, through the caller's token
        // only when it shares it, nothing else).
        let stop_serving = shutdown.child_token();
        let supervisor = Supervisor::new(name, stop_serving.clone());
        let stream_bounds = (config.max_event_streams_per_caller, config.max_event_streams);
        Ok(Self { server, services, shutdown: stop_serving, supervisor, feed: Ready::new(), stream_bounds })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// The TLS this service calls the others with (see [`GrpcServer::tls_for_calls`]).
    pub fn tls_for_calls(&self) -> Option<crate::tls::Tls> {
        self.server.tls_for_calls()
    }

    /// Cancelled when the service begins to stop (shutdown, or a failed task): long-lived
    /// calls such as feed streams end on it so that draining finishes.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Where `init` hands over the service's feed (if it publishes one), so that events
    /// committed by calls still in flight at shutdown get their positions before the
    /// sequencer stops.
    pub fn publishes(&self) -> Ready<Feed> {
        self.feed.clone()
    }

    /// Serves `routes` while `init` opens the store and starts the background tasks, reports
    /// SERVING once it succeeds, and runs until shutdown or a failed task. Then it reports
    /// NOT_SERVING, drains in-flight calls, sequences the feed handed to [`Host::publishes`]
    /// one last time (the tasks still running), stops the tasks, and returns an error naming
    /// any task that failed.
    pub async fn run<I>(self, routes: Routes, init: I) -> anyhow::Result<()>
    where
        I: Future<Output = anyhow::Result<()>>,
    {
        let Self { server, services, shutdown, supervisor, feed, stream_bounds } = self;
        let health = server.health();
        let server_stop = CancellationToken::new();
        let serving = tokio::spawn(server.serve(routes, server_stop.clone()));
        let init_result = tokio::select! {
            r = init => r,
            () = shutdown.cancelled() => Ok(()),
        };
        if let Err(e) = init_result {
            server_stop.cancel();
            let _ = serving.await;
            supervisor.stop().await;
            return Err(e);
        }
        if let Ok(feed) = feed.get() {
            feed.bound_streams(stream_bounds.0, stream_bounds.1);
        }
        if !shutdown.is_cancelled() {
            set_serving(&health, services).await;
            supervisor.mark_serving();
        }
        shutdown.cancelled().await;
        set_not_serving(&health, services).await;
        server_stop.cancel();
        let served = serving.await.context("server task panicked").and_then(|r| r);
        // The work stops first, so that what it committed last is sequenced too; the writer
        // and the sequencer it needs stop after that.
        supervisor.stop_work().await;
        if let Ok(feed) = feed.get()
            && tokio::time::timeout(LAST_SEQUENCING_TIMEOUT, feed.sequence_before_stop()).await.is_err()
        {
            tracing::warn!("final outbox sequencing timed out; the next start completes it");
        }
        supervisor.stop().await;
        let failures = supervisor.failures();
        if !failures.is_empty() {
            anyhow::bail!("stopped because a background task failed: {}", failures.join("; "));
        }
        served
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_stops_the_service_and_is_named() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new("svc", shutdown.clone());
        supervisor.spawn("steady", {
            let stop = supervisor.stopping();
            async move {
                stop.cancelled().await;
                Ok(())
            }
        });
        supervisor.spawn("doomed", async { panic!("boom") });
        tokio::time::timeout(Duration::from_secs(5), shutdown.cancelled()).await.unwrap();
        supervisor.stop().await;
        let failures = supervisor.failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("svc/doomed panicked: boom"), "{failures:?}");
    }

    #[tokio::test]
    async fn a_task_that_ends_early_or_fails_is_a_failure_but_stopping_is_not() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new("svc", shutdown.clone());
        supervisor.spawn("quits", async { Ok(()) });
        supervisor.spawn("errs", async { Err(anyhow::anyhow!("disk full")) });
        tokio::time::timeout(Duration::from_secs(5), shutdown.cancelled()).await.unwrap();
        supervisor.spawn("polite", {
            let stop = supervisor.stopping();
            async move {
                stop.cancelled().await;
                Ok(())
            }
        });
        supervisor.stop().await;
        let mut failures = supervisor.failures();
        failures.sort();
        assert_eq!(failures, vec!["svc/errs failed: disk full", "svc/quits ended while the service was running"]);
    }

    #[tokio::test]
    async fn an_injected_panic_fires_only_after_serving() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::with("svc", shutdown.clone(), Some("svc/target".to_owned()));
        let stop = supervisor.stopping();
        supervisor.spawn("target", async move {
            stop.cancelled().await;
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!shutdown.is_cancelled(), "nothing fires before the service serves");
        supervisor.mark_serving();
        tokio::time::timeout(INJECTED_PANIC_DELAY * 3, shutdown.cancelled()).await.unwrap();
        supervisor.stop().await;
        assert!(supervisor.failures()[0].contains("panic injected"));
    }
}
