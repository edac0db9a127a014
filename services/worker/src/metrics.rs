//! The worker's own metrics, Prometheus text at `GET /metrics` on the
//! optional metrics listener (`--metrics-listen`). Read at scrape time
//! from what the worker already keeps for its heartbeats (the engine's
//! per-thread counters, the pump's pending queue, /proc): the request path
//! pays nothing for them.
//!
//! - `cicada_worker_requests_total`: requests completed since the process
//!   started (`rate()` gives requests/s).
//! - `cicada_worker_in_flight`, `cicada_worker_active_users`.
//! - `cicada_worker_busy`: 1 while a run is in progress.
//! - `cicada_worker_cpu_seconds_total`: the process's user + system CPU.
//! - `cicada_worker_buffered_deltas`, `cicada_worker_buffered_bytes`:
//!   deltas waiting for the collector's acknowledgement.

use std::sync::Arc;

use cicada_telemetry::metrics::{self, Registry, Unit};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::procstat;
use crate::state::Node;

/// The registry served at `/metrics`.
pub(crate) fn registry(node: Arc<Node>) -> Registry {
    let mut registry = Registry::with_prefix("cicada_worker");
    registry.register_collector(Box::new(Scrape(node)));
    registry
}

struct Scrape(Arc<Node>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("worker metrics")
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let now = self.0.snapshot();
        metrics::counter(
            &mut encoder,
            "requests",
            "Requests completed since the worker started",
            None,
            now.requests as f64,
        )?;
        metrics::gauge(
            &mut encoder,
            "in_flight",
            "Requests sent and not yet answered",
            None,
            now.in_flight as f64,
        )?;
        metrics::gauge(
            &mut encoder,
            "active_users",
            "Virtual users running",
            None,
            f64::from(now.active_users),
        )?;
        metrics::gauge(
            &mut encoder,
            "busy",
            "1 while a run is in progress on this worker",
            None,
            if now.busy { 1.0 } else { 0.0 },
        )?;
        if let Some(cpu) = procstat::cpu_seconds() {
            metrics::counter(
                &mut encoder,
                "cpu",
                "CPU time (user and system) used by the worker process",
                Some(&Unit::Seconds),
                cpu,
            )?;
        }
        metrics::gauge(
            &mut encoder,
            "buffered_deltas",
            "Deltas waiting for the collector's acknowledgement",
            None,
            now.buffered_deltas as f64,
        )?;
        metrics::gauge(
            &mut encoder,
            "buffered",
            "Encoded size of the deltas waiting for the collector's acknowledgement",
            Some(&Unit::Bytes),
            now.buffered_bytes as f64,
        )
    }
}
