//! The cicada worker: runs a share of a run's virtual users and streams
//! per-second histogram deltas to the collector.
//!
//! The worker dials the controller (it needs no listener), registers and
//! heartbeats over one `WorkerSession` stream, and executes the `StartWork`
//! it receives: the [`engine`] runs the users; at every wall-clock second the
//! run's task cuts an interval, [`delta`] turns it into a numbered
//! `WorkerDelta`, and the pump pushes pending deltas to the collector until
//! they are acknowledged. On `StopWork` the engine stops within the grace
//! period, the last delta is flushed and `WorkDone { last_seq }` goes back.
//!
//! Layout: [`run`] (this file); `session` (controller connection), `state`
//! (what survives reconnects), `work` (one run), `pump` (delivery), [`delta`]
//! (pure delta building and the pending queue), [`backoff`], [`procstat`],
//! `metrics` (Prometheus text on the optional listener of
//! [`run_with_metrics`]).

pub mod backoff;
pub mod delta;
pub mod engine;
mod metrics;
pub mod procstat;
mod pump;
mod session;
mod state;
mod work;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

pub use engine::EngineConfig;
pub use pump::BufferLimits;
pub use session::SessionError;

/// Worker settings. [`WorkerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// gRPC URL of the controller, e.g. `http://127.0.0.1:7000`.
    pub controller_url: String,
    /// Stable for the life of the process; see [`default_worker_id`].
    pub worker_id: String,
    /// Reported to the controller.
    pub hostname: String,
    /// Cores this worker offers; the controller places users in proportion.
    pub cores: u32,
    /// Engine tunables (threads, timeouts).
    pub engine: EngineConfig,
    /// Grace for in-flight requests when the worker stops a run by itself
    /// (safety-net limit, shutdown).
    pub default_stop_grace: Duration,
    /// How long a stopping run may take to get its deltas acknowledged.
    pub flush_timeout: Duration,
    /// Cap of the redial backoff.
    pub reconnect_max: Duration,
    /// Shared token sent on every call to the controller and the collector.
    pub token: Option<cicada_proto::auth::Token>,
    /// How often the engine's interval is cut into a delta (divides one
    /// second): what a SIGKILL can take with it is about this much traffic.
    pub delta_interval: Duration,
    /// How much is kept for a collector that cannot be reached.
    pub buffer: BufferLimits,
    /// TLS towards `https://` controller and collector URLs (the collector's
    /// URL comes from the controller in `StartWork`; the same CA and client
    /// certificate are used for both).
    pub tls: cicada_tls::ClientTls,
}

impl WorkerConfig {
    /// The defaults: this host's name, all available cores, a generated id.
    pub fn new(controller_url: impl Into<String>) -> Self {
        let hostname = hostname();
        Self {
            controller_url: controller_url.into(),
            worker_id: default_worker_id(&hostname),
            hostname,
            cores: available_cores(),
            engine: EngineConfig::default(),
            default_stop_grace: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(60),
            reconnect_max: Duration::from_secs(5),
            token: None,
            delta_interval: Duration::from_millis(200),
            buffer: BufferLimits::default(),
            tls: cicada_tls::ClientTls::default(),
        }
    }
}

impl WorkerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        let url = &self.controller_url;
        cicada_tls::GrpcTarget::new(url, &self.tls)
            .with_context(|| format!("invalid controller url {url:?}"))?;
        anyhow::ensure!(!self.worker_id.is_empty(), "worker id must not be empty");
        anyhow::ensure!(self.cores > 0, "cores must be at least 1");
        let every = self.delta_interval;
        anyhow::ensure!(
            every >= Duration::from_millis(50)
                && every <= Duration::from_secs(1)
                && every.subsec_nanos().is_multiple_of(1_000_000)
                && 1000u128.is_multiple_of(every.as_millis().max(1)),
            "invalid delta interval {every:?}: expected whole milliseconds that divide one second, from 50ms to 1s (e.g. 100ms, 200ms, 250ms, 500ms, 1s)"
        );
        anyhow::ensure!(
            self.buffer.max_bytes >= 1 << 20,
            "buffer max bytes must be at least 1 MiB, got {}",
            self.buffer.max_bytes
        );
        anyhow::ensure!(
            self.buffer.max_age >= Duration::from_secs(10),
            "buffer max age must be at least 10s, got {:?}",
            self.buffer.max_age
        );
        Ok(())
    }
}

/// The host name (from the kernel; `localhost` when unknown).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `hostname-xxxxxx`: the host name plus a random suffix, so several workers
/// on one host (or restarts) never share an id.
pub fn default_worker_id(hostname: &str) -> String {
    format!("{hostname}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Cores available to this process.
pub fn available_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Runs the worker until `shutdown` resolves: keeps a session with the
/// controller (redialing with backoff) and executes the work it is given.
/// At shutdown a run in progress is stopped and flushed (bounded) and its
/// `WorkDone` sent before the session closes.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_metrics(config, None, shutdown).await
}

/// [`run`], also serving `GET /metrics` (Prometheus text) and `GET /health`
/// on `metrics_listener` when given, until the worker has stopped.
pub async fn run_with_metrics(
    config: WorkerConfig,
    metrics_listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let grace = config.default_stop_grace;
    let flush = config.flush_timeout;
    let node = state::Node::new(config);
    let (closing_tx, closing) = watch::channel(false);
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = metrics_listener.map(|listener| {
        let registry = std::sync::Arc::new(metrics::registry(node.clone()));
        tokio::spawn(cicada_telemetry::metrics::serve(
            registry,
            listener,
            async move {
                let _ = metrics_stopped.await;
            },
        ))
    });
    let sessions = tokio::spawn(session::maintain(node.clone(), closing));
    shutdown.await;
    tracing::info!("worker shutting down");
    node.stop_current(grace, grace + flush + Duration::from_secs(5))
        .await;
    let _ = closing_tx.send(true);
    sessions.await.context("session task failed")?;
    // Scrapeable until the last delta was flushed.
    let _ = stop_metrics.send(());
    if let Some(metrics) = metrics {
        metrics.await.context("metrics task failed")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let config = WorkerConfig::new("http://127.0.0.1:7000");
        assert!(config.validate().is_ok());
        assert!(config.worker_id.starts_with(&config.hostname));
        assert!(config.cores >= 1);
        assert_ne!(
            default_worker_id("h"),
            default_worker_id("h"),
            "ids differ between processes on one host"
        );
        for bad in ["bad", "127.0.0.1:7000", "ftp://x"] {
            assert!(WorkerConfig::new(bad).validate().is_err(), "{bad}");
        }
        let mut no_cores = config.clone();
        no_cores.cores = 0;
        assert!(no_cores.validate().is_err());
        for (ms, ok) in [
            (100, true),
            (250, true),
            (1000, true),
            (300, false),
            (5, false),
            (20, false),
            (50, true),
            (2000, false),
        ] {
            let mut every = config.clone();
            every.delta_interval = Duration::from_millis(ms);
            assert_eq!(every.validate().is_ok(), ok, "{ms} ms");
        }
    }
}
