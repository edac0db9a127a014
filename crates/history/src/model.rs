//! The answers of the history queries (serializable: the collector's HTTP
//! API returns them as JSON and the CLI reads them back) and their inputs.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cicada_histogram::{Counts, LatencyHistogram, Summary};
use cicada_store::RunRecord;
use serde::{Deserialize, Serialize};

use crate::HistoryError;

/// A part of a run in seconds relative to its start: `from <= t < to`
/// (`to` open-ended when `None`), so ramp-up and ramp-down can be excluded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from_s: u64,
    pub to_s: Option<u64>,
}

impl Window {
    /// Checks `from < to`.
    pub fn new(from_s: Option<u64>, to_s: Option<u64>) -> Result<Self, HistoryError> {
        let from_s = from_s.unwrap_or(0);
        if let Some(to_s) = to_s
            && to_s <= from_s
        {
            return Err(HistoryError::Invalid(format!(
                "window --from {from_s}s --to {to_s}s is empty; --to must be after --from"
            )));
        }
        Ok(Self { from_s, to_s })
    }

    /// The whole run.
    pub fn is_whole(&self) -> bool {
        self.from_s == 0 && self.to_s.is_none()
    }
}

/// How much worse B may be than A before it is a regression, as a fraction
/// (0.05 = 5%), for latency percentiles and the failure rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance(pub f64);

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance(0.05)
    }
}

impl FromStr for Tolerance {
    type Err = HistoryError;

    /// `5%` or a fraction such as `0.05`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let value = match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => text.parse::<f64>(),
        };
        match value {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(Tolerance(value)),
            _ => Err(HistoryError::Invalid(format!(
                "tolerance {text:?} is not a percentage >= 0 such as 5% (or a fraction such as 0.05)"
            ))),
        }
    }
}

/// A number [`trend`](crate::trend) follows across runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Requests,
    Rps,
    FailureRate,
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 9] = [
        Metric::Requests,
        Metric::Rps,
        Metric::FailureRate,
        Metric::P50,
        Metric::P90,
        Metric::P95,
        Metric::P99,
        Metric::P999,
        Metric::Max,
    ];

    /// The name used on the command line and in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::Rps => "rps",
            Metric::FailureRate => "failure_rate",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::Max => "max",
        }
    }

    /// Whether a rise beyond the tolerance is a regression. Requests and
    /// RPS follow the load shape, and the maximum is a single sample, so
    /// they are reported but never flagged.
    pub fn is_checked(self) -> bool {
        !matches!(self, Metric::Requests | Metric::Rps | Metric::Max)
    }

    /// This metric of `metrics`.
    pub fn of(self, m: &Metrics) -> f64 {
        match self {
            Metric::Requests => m.requests as f64,
            Metric::Rps => m.rps,
            Metric::FailureRate => m.failure_rate,
            Metric::P50 => m.p50_ms,
            Metric::P90 => m.p90_ms,
            Metric::P95 => m.p95_ms,
            Metric::P99 => m.p99_ms,
            Metric::P999 => m.p999_ms,
            Metric::Max => m.max_ms,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = HistoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        let wanted = match wanted.as_str() {
            "p999" => "p99.9",
            "failure-rate" => "failure_rate",
            other => other,
        };
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                HistoryError::Invalid(format!(
                    "unknown metric {text:?}; allowed: {}",
                    names.join(", ")
                ))
            })
    }
}

/// The numbers of one endpoint (or the total) over a run or a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    /// failures / requests (0 without requests).
    pub failure_rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Metrics {
    /// From exact counts and a merged histogram observed over `duration_s`.
    pub fn new(counts: Counts, histogram: &LatencyHistogram, duration_s: f64) -> Self {
        let s = Summary::new(counts, histogram, duration_s);
        let failure_rate = if counts.requests > 0 {
            counts.failures as f64 / counts.requests as f64
        } else {
            0.0
        };
        Self {
            requests: counts.requests,
            failures: counts.failures,
            rps: s.rps,
            failure_rate,
            p50_ms: s.p50_ms,
            p90_ms: s.p90_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            p999_ms: s.p999_ms,
            max_ms: s.max_ms,
        }
    }
}

/// A run's identity and outcome, without its measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub scenario_name: String,
    pub host: String,
    /// `running`, `finished` or `failed`.
    pub status: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub error: Option<String>,
}

impl From<&RunRecord> for RunInfo {
    fn from(r: &RunRecord) -> Self {
        Self {
            id: r.id.clone(),
            scenario_name: r.scenario_name.clone(),
            host: r.host.clone(),
            status: r.status.as_str().to_owned(),
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            labels: r.labels.clone(),
            error: r.error.clone(),
        }
    }
}

/// The metrics of one endpoint, named `METHOD NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointMetrics {
    pub endpoint: String,
    pub metrics: Metrics,
}

/// A stored threshold and its final result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdInfo {
    pub expression: String,
    pub endpoint: Option<String>,
    pub observed: Option<f64>,
    pub passed: Option<bool>,
}

/// All endpoints together during one second of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondPoint {
    /// Seconds since the run started.
    pub t_s: i64,
    pub requests: u64,
    pub failures: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Users running during that second, summed over workers (0 in
    /// answers written before it was reported).
    #[serde(default)]
    pub users: u64,
}

/// Everything `cicada runs show` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: RunInfo,
    pub config_json: String,
    pub scenario_yaml: String,
    pub thresholds: Vec<ThresholdInfo>,
    pub window: Window,
    /// Seconds the metrics cover.
    pub duration_s: f64,
    pub endpoints: Vec<EndpointMetrics>,
    pub total: Metrics,
    pub series: Vec<SecondPoint>,
}

/// One metric of A and B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    pub metric: Metric,
    pub a: f64,
    pub b: f64,
    /// b - a.
    pub delta: f64,
    /// (b - a) / a; `None` when a is 0.
    pub relative: Option<f64>,
    /// B is worse than A beyond the tolerance (checked metrics only).
    pub regression: bool,
}

/// Every metric of one endpoint (or the total) of A and B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointComparison {
    pub endpoint: String,
    pub metrics: Vec<MetricComparison>,
    pub regression: bool,
}

/// What `cicada compare` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: RunInfo,
    pub b: RunInfo,
    pub window: Window,
    pub tolerance: Tolerance,
    /// Endpoints present in both runs, in B's order.
    pub endpoints: Vec<EndpointComparison>,
    pub total: EndpointComparison,
    /// Endpoints only one of the runs has (not compared).
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    /// Any endpoint or the total regressed.
    pub regression: bool,
}

/// One run's value of a trend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub started_at_ms: i64,
    pub labels: BTreeMap<String, String>,
    /// `None` when the run has no such endpoint.
    pub value: Option<f64>,
}

/// What `cicada trend` prints: oldest run first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub scenario: String,
    pub metric: Metric,
    /// `METHOD NAME`, or `total`.
    pub endpoint: String,
    pub points: Vec<TrendPoint>,
}
