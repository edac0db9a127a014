//! The records the store reads and writes, independent of the wire protocol.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cicada_histogram::{Counts, LatencyHistogram};

/// Life-cycle state of a stored run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Created and taking deltas.
    Running,
    /// Ended normally; summaries are written.
    Finished,
    /// Ended with an error; summaries are written.
    Failed,
}

impl RunStatus {
    /// The text stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(RunStatus::Running),
            "finished" => Ok(RunStatus::Finished),
            "failed" => Ok(RunStatus::Failed),
            other => Err(format!("unknown run status {other:?}")),
        }
    }
}

/// The method of a group's row (a named `steps` task timed as a whole,
/// `cicada_scenario::GROUP_METHOD`): its rows are not requests, so no total
/// of requests counts them.
pub const GROUP_METHOD: &str = "GROUP";

/// The methods of a request endpoint's new-connection and TLS-handshake
/// rows (`cicada_scenario::CONNECT_METHOD`, `TLS_METHOD`): not requests.
pub const CONNECT_METHOD: &str = "CONNECT";
pub const TLS_METHOD: &str = "TLS";

/// One entry of a scenario's endpoint table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Index in the table; deltas refer to endpoints by it.
    pub index: u32,
    pub method: String,
    pub name: String,
}

impl Endpoint {
    /// Whether its rows are requests (not a group's or a connection's), so
    /// totals count them.
    pub fn is_request(&self) -> bool {
        is_request_method(&self.method)
    }
}

/// Whether rows of an endpoint with this method are requests (not a
/// group's, a new connection's or a TLS handshake's).
pub fn is_request_method(method: &str) -> bool {
    !matches!(method, GROUP_METHOD | CONNECT_METHOD | TLS_METHOD)
}

/// Whether rows of an endpoint with this method are a request endpoint's
/// new connections or TLS handshakes.
pub fn is_connection_method(method: &str) -> bool {
    matches!(method, CONNECT_METHOD | TLS_METHOD)
}

/// A run as announced by the controller.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// UUIDv7 string.
    pub id: String,
    pub scenario_name: String,
    pub scenario_yaml: String,
    pub host: String,
    /// Users, spawn rate, run time, workers, ... as JSON text.
    pub config_json: String,
    pub labels: BTreeMap<String, String>,
    pub started_at_ms: i64,
    /// Indexed 0..n without holes.
    pub endpoints: Vec<Endpoint>,
    /// Pass/fail criteria, in order.
    pub thresholds: Vec<ThresholdDef>,
    /// Response checks, indexed 0..n without holes.
    pub checks: Vec<CheckDef>,
}

/// One response check of a run (`check:`), as announced with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckDef {
    /// Index in the run's check table; deltas refer to checks by it.
    pub index: u32,
    /// The endpoint whose responses it checks.
    pub endpoint: u32,
    pub name: String,
}

/// How often one check passed and failed (in a delta, or over a run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CheckCount {
    pub check: u32,
    pub passed: u64,
    pub failed: u64,
}

/// A check of a run with its counts so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckTotals {
    pub def: CheckDef,
    pub passed: u64,
    pub failed: u64,
}

/// A pass/fail threshold as announced with its run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdDef {
    /// Canonical expression, e.g. `p95 < 150ms`.
    pub expression: String,
    /// `METHOD NAME` of one endpoint; `None` for all endpoints together.
    pub endpoint: Option<String>,
    pub abort_on_fail: bool,
    pub delay_ms: u64,
}

/// A stored threshold and, once its run has ended, its final result.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdRecord {
    /// Position in the run's list.
    pub index: u32,
    pub threshold: ThresholdDef,
    /// In the metric's unit; `None` when nothing was measured (or not yet).
    pub observed: Option<f64>,
    /// `None` until the result is recorded.
    pub passed: Option<bool>,
}

/// The final result of one threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdOutcome {
    /// Position in the run's list.
    pub index: u32,
    pub observed: Option<f64>,
    pub passed: bool,
}

/// A stored run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub scenario_name: String,
    pub scenario_yaml: String,
    pub host: String,
    pub config_json: String,
    pub labels: BTreeMap<String, String>,
    pub status: RunStatus,
    pub started_at_ms: i64,
    /// Set when the run finished.
    pub ended_at_ms: Option<i64>,
    /// Why the run failed, or why it was stopped early (a threshold with
    /// `abort_on_fail`).
    pub error: Option<String>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFinish {
    /// [`RunStatus::Finished`] or [`RunStatus::Failed`].
    pub status: RunStatus,
    pub ended_at_ms: i64,
    pub error: Option<String>,
    /// Workers that left without their final flush, stored with the run.
    pub lost_workers: Vec<LostWorkerRecord>,
}

/// A worker that left a run without its final flush, and the bound of what
/// it took with it (docs/RELIABILITY.md).
#[derive(Clone, Debug, PartialEq)]
pub struct LostWorkerRecord {
    pub worker_id: String,
    /// The source id its deltas were sent under.
    pub delta_source: String,
    /// Seconds from the run's start to the loss.
    pub at_s: f64,
    /// Requests of its deltas that were received.
    pub received: u64,
    /// Upper bound of its requests (completed or in flight) that are not in
    /// the stored run.
    pub unrecorded_max: u64,
}

/// Which runs [`Store::list_runs`](crate::Store::list_runs) returns, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFilter {
    /// At most this many runs.
    pub limit: u32,
    pub scenario_name: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs carrying this label (key, value).
    pub label: Option<(String, String)>,
    /// Only runs started at or after this time.
    pub started_after_ms: Option<i64>,
    /// Only runs started strictly before this time (for paging).
    pub started_before_ms: Option<i64>,
}

impl Default for RunFilter {
    fn default() -> Self {
        Self {
            limit: 50,
            scenario_name: None,
            status: None,
            label: None,
            started_after_ms: None,
            started_before_ms: None,
        }
    }
}

/// Failures of one kind in a delta or over a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureCount {
    pub kind: String,
    pub count: u64,
    /// The most recent message seen for this kind.
    pub last_message: String,
}

/// What one worker measured for one endpoint during one second.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointDelta {
    pub endpoint: u32,
    pub counts: Counts,
    /// Latencies of the completed requests, microseconds (in the open
    /// model measured from each iteration's intended start).
    pub histogram: LatencyHistogram,
    /// Open model: the same requests' latencies measured from their actual
    /// send; `None` in the closed model.
    pub uncorrected: Option<LatencyHistogram>,
    pub failures: Vec<FailureCount>,
    /// Outcomes of the checks of these responses.
    pub checks: Vec<CheckCount>,
}

/// What one worker measured for one run during one interval (a wall-clock
/// second or a part of one); several deltas of a worker may merge into the
/// same second.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Delta {
    pub run_id: String,
    pub worker_id: String,
    /// 1, 2, 3, ... per (run, worker).
    pub seq: u64,
    /// A loss marker covers `first_seq..=seq` (deltas the worker evicted
    /// from its full buffer): it has no endpoints and advances the watermark
    /// over all of them. Equal to `seq` for an ordinary delta.
    pub first_seq: u64,
    /// Unix second the interval started at.
    pub second: i64,
    /// Users at the end of the second (set by the interval that ends it).
    pub active_users: u32,
    /// Open model: iterations due but not started (in-flight bound reached).
    pub dropped: u64,
    /// At most one entry per endpoint.
    pub endpoints: Vec<EndpointDelta>,
    /// End of the interval, Unix ms on the worker's clock (0: unknown).
    pub cut_at_ms: i64,
    /// Length of the interval in microseconds (0: unknown).
    pub interval_us: u64,
    /// Loss marker: the requests of each evicted delta, `first_seq` first
    /// (so a marker whose first deltas were applied before, their
    /// acknowledgement lost, counts only the rest).
    pub evicted: Vec<u64>,
}

impl Delta {
    /// Completed requests over all endpoints.
    pub fn requests(&self) -> u64 {
        self.endpoints.iter().map(|e| e.counts.requests).sum()
    }

    /// The interval's request rate, when it is long enough to say (at
    /// least 50 ms: a tiny first or last interval says nothing).
    pub fn rate(&self) -> Option<f64> {
        (self.interval_us >= 50_000).then(|| self.requests() as f64 * 1e6 / self.interval_us as f64)
    }
}

/// The result of [`Store::apply_delta`](crate::Store::apply_delta).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Merged and the watermark advanced.
    Applied,
    /// Already applied before; nothing changed.
    Duplicate,
}

/// Counts and merged histogram of one endpoint, over a second or a whole run.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointTotals {
    pub endpoint: u32,
    pub counts: Counts,
    pub histogram: LatencyHistogram,
    /// Open model only: latencies from the actual send.
    pub uncorrected: Option<LatencyHistogram>,
}

/// One stored per-second row.
#[derive(Clone, Debug, PartialEq)]
pub struct SecondRow {
    pub second: i64,
    pub endpoint: u32,
    pub counts: Counts,
    pub histogram: LatencyHistogram,
    /// Open model only: latencies from the actual send.
    pub uncorrected: Option<LatencyHistogram>,
}

/// One endpoint's numbers over one block of an ended run's rollup: every
/// per-second row of `[start, start + span_s)` merged. Blocks are minutes
/// (`span_s` 60, `run_minutes`) or 10-second blocks (`span_s` 10,
/// `run_tens`), both aligned to the second the run started in.
#[derive(Clone, Debug, PartialEq)]
pub struct RollupRow {
    /// First Unix second of the block (the run's origin + a multiple of `span_s`).
    pub start: i64,
    /// Seconds the block covers: 60 or 10.
    pub span_s: i64,
    pub endpoint: u32,
    pub counts: Counts,
    pub histogram: LatencyHistogram,
    /// Open model only: latencies from the actual send.
    pub uncorrected: Option<LatencyHistogram>,
}

/// The whole blocks of a window `[from, to)` from an ended run's rollup:
/// `rows` hold exactly the per-second rows of `[from_second, to_second)`
/// merged per block (whole minutes inside, 10-second blocks between them and
/// the edges), so the window is these rows plus the per-second rows of
/// `[from, from_second)` and `[to_second, to)`: at most 9 seconds each, or
/// 59 for a run rolled up before the 10-second level existed.
#[derive(Clone, Debug, PartialEq)]
pub struct RollupSpan {
    /// First second the rows cover (`from <= from_second <= to_second <= to`).
    pub from_second: i64,
    /// End (exclusive) of the seconds the rows cover.
    pub to_second: i64,
    /// Ordered by start, then endpoint; the blocks do not overlap.
    pub rows: Vec<RollupRow>,
}

/// Users running at the end of one second, summed across workers, and the
/// open model's iterations dropped in that second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveUsers {
    pub second: i64,
    pub users: u64,
    pub dropped: u64,
}

/// Failures of one kind at one endpoint over a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRecord {
    pub endpoint: u32,
    pub kind: String,
    pub count: u64,
    pub last_message: String,
}

/// Highest applied delta sequence of one delta source in one run, with
/// what was received from it (all updated with every applied delta).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Watermark {
    pub worker_id: String,
    pub seq: u64,
    /// Completed requests in its applied deltas.
    pub requests: u64,
    /// End of its last applied interval (Unix ms, the worker's clock).
    pub cut_at_ms: i64,
    /// Its recent peak request rate: the fastest of its intervals, halved
    /// for every 5 s since that no interval reached it.
    pub peak_rps: f64,
    /// Requests it reported as evicted (loss markers).
    pub evicted_requests: u64,
}

/// One sample of a run's target resource query (e.g. the target's CPU in
/// cores), taken during the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetSample {
    /// Unix second of the query's evaluation time.
    pub second: i64,
    /// The query's value (summed over the series it returned).
    pub value: f64,
}
