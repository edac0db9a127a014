//! The controller's own metrics, Prometheus text at `GET /metrics` on the
//! web port. Everything is read from the controller's state at scrape time
//! (the worker registry and the runs in memory): nothing is counted on the
//! request paths.
//!
//! - `cicada_controller_workers{state="idle"|"busy"}`: connected workers.
//! - `cicada_controller_runs{state}`: runs in memory by state (the active
//!   one, plus up to 64 ended ones kept for late watchers).
//! - `cicada_controller_heartbeat_lag_seconds`: the longest time since any
//!   connected worker was last heard from (heartbeats come every second; a
//!   worker silent for 3 is dropped).

use std::sync::Arc;

use cicada_proto::v1::RunState;
use cicada_telemetry::metrics::{self, Registry, Unit};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::Shared;

/// The registry served at `/metrics`.
pub(crate) fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::with_prefix("cicada_controller");
    registry.register_collector(Box::new(Scrape(shared)));
    registry
}

/// Reads the controller's state on each scrape.
struct Scrape(Arc<Shared>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("controller metrics")
    }
}

/// Every state a run can be in, so each series exists (at 0) from the
/// start.
const STATES: [(RunState, &str); 5] = [
    (RunState::Starting, "starting"),
    (RunState::Running, "running"),
    (RunState::Stopping, "stopping"),
    (RunState::Finished, "finished"),
    (RunState::Failed, "failed"),
];

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let shared = &self.0;
        let workers = shared.registry.summary();
        metrics::labelled_gauge(
            &mut encoder,
            "workers",
            "Connected workers: busy (placed in or reporting a run) or idle",
            "state",
            &[
                ("idle", workers.idle as f64),
                ("busy", (workers.connected - workers.idle) as f64),
            ],
        )?;
        let mut runs = [0u32; STATES.len()];
        for run in shared.runs.all() {
            let state = run.status.borrow().state;
            if let Some(slot) = STATES.iter().position(|(known, _)| *known == state) {
                runs[slot] += 1;
            }
        }
        let series: Vec<(&str, f64)> = STATES
            .iter()
            .zip(runs)
            .map(|((_, name), count)| (*name, f64::from(count)))
            .collect();
        metrics::labelled_gauge(
            &mut encoder,
            "runs",
            "Runs in memory by state: the active one and up to 64 ended ones",
            "state",
            &series,
        )?;
        metrics::gauge(
            &mut encoder,
            "heartbeat_lag",
            "Longest time since a connected worker was last heard from (0 without workers)",
            Some(&Unit::Seconds),
            workers.longest_silence.as_secs_f64(),
        )
    }
}
