//! Run history queries: one place for what `cicada runs`, `cicada compare`
//! and `cicada trend` compute, used by the CLI on a local database and by
//! the collector's gRPC and HTTP APIs, all over the [`Store`] trait.
//!
//! Layout:
//! - `model`: the serializable answers ([`RunDetail`], [`Comparison`],
//!   [`Trend`]) and their inputs ([`Window`], [`Tolerance`], [`Metric`]).
//! - `load`: per-endpoint counts and merged histograms of a run, from its
//!   summaries or from the per-second rows of a window.
//! - `compare`: deltas and regression flags between two runs.
//! - `query`: the entry points (show, compare, trend, baseline).
//! - `runs`: listing, labelling and deleting runs.
//! - [`grpc`]: the same queries over the `cicada.v1.History` gRPC service:
//!   conversions between these types and the protocol's, the mapping of
//!   [`HistoryError`] to gRPC statuses and back, and [`HistoryClient`].
//!
//! Percentiles always come from merged histograms, never from averaged
//! percentiles.

mod compare;
mod error;
pub mod grpc;
mod load;
mod model;
mod query;
mod runs;

pub use cicada_store::Store;
pub use compare::compare_metrics;
pub use error::HistoryError;
pub use grpc::HistoryClient;
pub use model::{
    Comparison, EndpointComparison, EndpointMetrics, Metric, MetricComparison, Metrics, RunDetail,
    RunInfo, SecondPoint, ThresholdInfo, Tolerance, Trend, TrendPoint, Window,
};
pub use query::{compare, latest_passing_baseline, show, trend};
pub use runs::{delete, label, search};

/// Name of the all-endpoints row.
pub const TOTAL_NAME: &str = "total";
