//! The collector's own metrics, served as Prometheus text at `GET /metrics`
//! on its HTTP port (`--http-listen`). Counters and the write-latency
//! histogram are updated where the work happens: `service` (deltas
//! received, applied, duplicate, refused), `ingest` (the group-commit
//! writer: transaction time, database errors, deltas waiting) and `otlp`
//! (failed exports). Names follow the Prometheus conventions
//! (`cicada_collector_..._total`, `_seconds`); docs/DEPLOY.md lists them.

use std::sync::Arc;
use std::time::Duration;

use cicada_telemetry::metrics::{Registry, Unit};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Buckets of a group-commit transaction's time, in seconds: 1 ms to 10 s.
const WRITE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The collector's metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Deltas in `PushDeltas` requests, before anything is checked.
    pub(crate) received: Counter,
    /// Deltas applied (merged and stored) for the first time.
    pub(crate) applied: Counter,
    /// Deltas acknowledged again without being counted (re-sent).
    pub(crate) duplicate: Counter,
    /// Deltas refused (bad input, a finished run, a sequence gap, the
    /// database failing).
    pub(crate) refused: Counter,
    /// Time of each group-commit transaction (and of each delta applied
    /// alone after a batch failed).
    pub(crate) db_write: Histogram,
    /// Transactions that failed with a database error.
    pub(crate) db_write_errors: Counter,
    /// Deltas queued for the writer and not yet taken into a transaction.
    pub(crate) queue_depth: Gauge,
    /// OTLP exports that failed.
    pub(crate) otlp_export_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cicada_collector");
        let received = Counter::default();
        let applied = Counter::default();
        let duplicate = Counter::default();
        let refused = Counter::default();
        let db_write = Histogram::new(WRITE_BUCKETS);
        let db_write_errors = Counter::default();
        let queue_depth = Gauge::default();
        let otlp_export_errors = Counter::default();
        let counters = [
            (
                "deltas_received",
                "Deltas received in PushDeltas requests",
                &received,
            ),
            (
                "deltas_applied",
                "Deltas merged and stored for the first time",
                &applied,
            ),
            (
                "deltas_duplicate",
                "Deltas acknowledged again without being counted (re-sent by a worker)",
                &duplicate,
            ),
            (
                "deltas_refused",
                "Deltas refused: invalid, for a finished run, out of sequence, or not written",
                &refused,
            ),
            (
                "db_write_errors",
                "Write transactions that failed with a database error",
                &db_write_errors,
            ),
            (
                "otlp_export_errors",
                "OTLP metric exports that failed",
                &otlp_export_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register_with_unit(
            "db_write",
            "Time of each group-commit transaction",
            Unit::Seconds,
            db_write.clone(),
        );
        registry.register(
            "ingest_queue_depth",
            "Deltas waiting for the group-commit writer",
            queue_depth.clone(),
        );
        Self {
            registry: Arc::new(registry),
            received,
            applied,
            duplicate,
            refused,
            db_write,
            db_write_errors,
            queue_depth,
            otlp_export_errors,
        }
    }
}

impl Metrics {
    /// The registry to encode for `GET /metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one write transaction's time.
    pub(crate) fn db_write_took(&self, elapsed: Duration) {
        self.db_write.observe(elapsed.as_secs_f64());
    }
}
