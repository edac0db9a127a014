//! The `LiveRun` view: the collector's merged statistics, the controller's
//! run status and the registry's workers, in one JSON object.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cicada_proto::v1::{
    Diagnosis, DiagnosisKind, EndpointStats, GetRunStatsRequest, RunProgress, RunState, RunStats,
    WorkerInfo,
};
use parking_lot::Mutex;
use serde::Serialize;

use super::Web;
use super::api::Worker;
use super::reply::WebError;
use crate::lifecycle::unix_ms;
use crate::runs::{RunPlan, RunStatus};

/// How long the collector may take to answer a live snapshot.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);
/// Per-endpoint current rates are measured over at most this much time.
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// Samples kept per run (a bound; MIN_SAMPLE_GAP keeps far fewer).
const MAX_SAMPLES: usize = 64;
/// Samples closer together than this are not kept.
const MIN_SAMPLE_GAP: Duration = Duration::from_millis(250);
/// A run not looked at for this long has its samples forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// One endpoint, or the total (`Stat` in docs/WEB.md).
#[derive(Serialize, Debug, Clone, Default)]
pub struct Stat {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub avg_size: f64,
    pub rps: f64,
    pub current_rps: f64,
    pub current_failures_per_s: f64,
}

impl Stat {
    fn new(stats: &EndpointStats, current: (f64, f64)) -> Self {
        Stat {
            method: stats.method.clone(),
            name: stats.name.clone(),
            requests: stats.requests,
            failures: stats.failures,
            median_ms: stats.p50_ms,
            p90_ms: stats.p90_ms,
            p95_ms: stats.p95_ms,
            p99_ms: stats.p99_ms,
            p999_ms: stats.p999_ms,
            max_ms: stats.max_ms,
            min_ms: stats.min_ms,
            mean_ms: stats.mean_ms,
            avg_size: stats.avg_size,
            rps: stats.rps,
            current_rps: current.0,
            current_failures_per_s: current.1,
        }
    }
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Current {
    pub rps: f64,
    pub failures_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub dropped_per_s: f64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Failure {
    pub method: String,
    pub name: String,
    pub kind: String,
    pub count: u64,
    pub last_message: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct ThresholdView {
    pub expression: String,
    pub endpoint: String,
    pub observed: Option<f64>,
    pub observed_text: String,
    pub passed: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct DiagnosisView {
    pub kind: &'static str,
    pub summary: String,
    pub evidence: Vec<String>,
    pub suggested_workers: u32,
}

/// The last second, for the charts.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Point {
    pub t_s: u64,
    pub rps: f64,
    pub failures_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub users: u32,
    pub target_users: u32,
    pub target_rate: f64,
}

/// `LiveRun` in docs/WEB.md.
#[derive(Serialize, Debug, Clone)]
pub struct LiveRun {
    pub run_id: String,
    pub scenario_name: String,
    pub host: String,
    pub state: &'static str,
    pub started_at_ms: i64,
    pub elapsed_s: f64,
    pub run_time_s: Option<f64>,
    pub target_users: u32,
    pub active_users: u32,
    pub target_rate: f64,
    pub workers: u32,
    pub error: Option<String>,
    pub current: Current,
    pub endpoints: Vec<Stat>,
    pub total: Stat,
    pub failures: Vec<Failure>,
    pub thresholds: Vec<ThresholdView>,
    pub diagnoses: Vec<DiagnosisView>,
    pub point: Point,
    pub worker_list: Vec<Worker>,
    /// Open model: iterations dropped over the run.
    pub dropped: u64,
    /// Workers lost without their final flush (bounds once the run ended).
    pub lost_workers: Vec<LostView>,
    /// Upper bound of the requests missing from the run (0: complete).
    pub unrecorded_max: u64,
    /// Response checks (`check:`) with their counts.
    pub checks: Vec<CheckView>,
}

/// A response check with its counts.
#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    /// `METHOD NAME` of the endpoint whose responses it checks.
    pub endpoint: String,
    pub name: String,
    pub passed: u64,
    pub failed: u64,
}

/// A worker lost without its final flush.
#[derive(Debug, Clone, Serialize)]
pub struct LostView {
    pub worker_id: String,
    /// Seconds into the run; `None` while the run lives.
    pub at_s: Option<f64>,
    /// The collector's bound, once the run ended.
    pub unrecorded_max: Option<u64>,
}

impl LiveRun {
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, "finished" | "failed")
    }
}

pub(crate) fn state_name(state: RunState) -> &'static str {
    match state {
        RunState::Unspecified | RunState::Starting => "starting",
        RunState::Running => "running",
        RunState::Stopping => "stopping",
        RunState::Finished => "finished",
        RunState::Failed => "failed",
    }
}

fn diagnosis_kind(kind: i32) -> &'static str {
    match DiagnosisKind::try_from(kind).unwrap_or(DiagnosisKind::Unspecified) {
        DiagnosisKind::GeneratorBound => "generator_bound",
        DiagnosisKind::FailingBeforeScaled => "failing_before_scaled",
        DiagnosisKind::TargetErrors => "target_errors",
        DiagnosisKind::Unspecified => "unspecified",
    }
}

/// Asks the collector for a run's merged statistics (bounded in time).
pub(crate) async fn fetch_stats(web: &Web, run_id: &str) -> Result<RunStats, WebError> {
    let mut collector = web.shared.collector.clone();
    let request = GetRunStatsRequest {
        run_id: run_id.to_owned(),
    };
    match tokio::time::timeout(STATS_TIMEOUT, collector.get_run_stats(request)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(WebError::from_collector("GetRunStats", &status)),
        Err(_) => Err(WebError::Collector(format!(
            "collector GetRunStats did not answer within {} s",
            STATS_TIMEOUT.as_secs()
        ))),
    }
}

/// One snapshot of a run: the controller's view when it knows the run
/// (live, or recently finished), else the collector's stored run.
pub(crate) async fn snapshot(web: &Web, run_id: &str) -> Result<LiveRun, WebError> {
    let status = web
        .shared
        .runs
        .get(run_id)
        .map(|run| run.status.borrow().clone());
    let stats = match &status {
        Some(status) if status.is_terminal() && status.final_stats.is_some() => {
            status.final_stats.clone()
        }
        // A run still starting may not be at the collector yet: its state
        // is worth showing without numbers. Other failures are the
        // caller's to handle (the event stream skips the second) rather
        // than numbers going back to zero.
        Some(_) => match fetch_stats(web, run_id).await {
            Ok(stats) => Some(stats),
            Err(WebError::NotFound(_)) => None,
            Err(error) => return Err(error),
        },
        None => Some(fetch_stats(web, run_id).await?),
    };
    let workers = web.shared.registry.list();
    Ok(build(web, run_id, status.as_ref(), stats, workers))
}

/// What a `LiveRun` is made of, from the controller's memory (web) or from
/// a watched run's last progress message (`cicada run --html`).
#[derive(Debug, Default)]
pub struct Parts {
    pub run_id: String,
    pub state: RunState,
    pub plan: RunPlan,
    pub target_users: u32,
    pub target_rate: f64,
    pub workers: u32,
    pub active_users: u32,
    pub error: String,
    pub diagnoses: Vec<Diagnosis>,
    pub stats: RunStats,
    /// The workers of this run.
    pub worker_list: Vec<WorkerInfo>,
    /// Per-endpoint current (requests, failures) per second, live runs only.
    pub current_rates: Option<Vec<(f64, f64)>>,
    /// Workers lost so far, as the controller saw them (live runs).
    pub lost_live: Vec<String>,
}

impl Parts {
    /// From a run's progress message (the final one carries the final stats).
    pub fn from_progress(progress: &RunProgress, plan: RunPlan) -> Self {
        Parts {
            run_id: progress.run_id.clone(),
            state: RunState::try_from(progress.state).unwrap_or(RunState::Unspecified),
            plan,
            target_users: progress.target_users,
            target_rate: progress.target_rate,
            workers: progress.workers,
            active_users: progress.active_users,
            error: progress.error.clone(),
            diagnoses: progress.diagnoses.clone(),
            stats: progress.stats.clone().unwrap_or_default(),
            worker_list: Vec::new(),
            current_rates: None,
            lost_live: progress
                .delivery
                .as_ref()
                .map(|d| d.lost_workers.clone())
                .unwrap_or_default(),
        }
    }
}

/// Assembles the web view of a run (no lock is held here but the short
/// ones of the registry and the rate samples).
pub(crate) fn build(
    web: &Web,
    run_id: &str,
    status: Option<&RunStatus>,
    stats: Option<RunStats>,
    workers: Vec<WorkerInfo>,
) -> LiveRun {
    let stats = stats.unwrap_or_default();
    let state = match status {
        Some(status) => status.state,
        None => RunState::try_from(stats.state).unwrap_or(RunState::Unspecified),
    };
    let terminal = matches!(state, RunState::Finished | RunState::Failed);
    let current_rates = (!terminal).then(|| {
        web.rates.current(
            run_id,
            Instant::now(),
            stats
                .endpoints
                .iter()
                .map(|e| (e.requests, e.failures))
                .collect(),
        )
    });
    let parts = Parts {
        run_id: run_id.to_owned(),
        state,
        plan: status.map(|s| s.plan.clone()).unwrap_or_default(),
        target_users: status.map_or(0, |s| s.target_users),
        target_rate: status.map_or(0.0, |s| s.target_rate),
        workers: status.map_or(0, |s| s.workers),
        active_users: if terminal {
            0
        } else {
            web.shared.registry.active_users(run_id)
        },
        error: status.map(|s| s.error.clone()).unwrap_or_default(),
        diagnoses: status.map(|s| s.diagnoses.clone()).unwrap_or_default(),
        stats,
        worker_list: workers
            .into_iter()
            .filter(|worker| worker.run_id == run_id)
            .collect(),
        current_rates,
        lost_live: status.map(|s| s.lost_workers.clone()).unwrap_or_default(),
    };
    LiveRun::new(parts)
}

impl LiveRun {
    /// The view of a run from its parts.
    pub fn new(parts: Parts) -> LiveRun {
        let Parts {
            run_id,
            state,
            plan,
            target_users,
            target_rate,
            workers,
            active_users,
            error,
            diagnoses,
            stats,
            worker_list,
            current_rates,
            lost_live,
        } = parts;
        let terminal = matches!(state, RunState::Finished | RunState::Failed);
        let started_at_ms = if stats.started_at_ms > 0 {
            stats.started_at_ms
        } else {
            plan.started_at_ms
        };
        let elapsed_s = if terminal || stats.ended_at_ms > 0 {
            stats.duration_s
        } else if started_at_ms > 0 {
            (unix_ms() - started_at_ms).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        let current_rates =
            current_rates.unwrap_or_else(|| vec![(0.0, 0.0); stats.endpoints.len()]);
        let endpoints: Vec<Stat> = stats
            .endpoints
            .iter()
            .zip(current_rates)
            .map(|(endpoint, current)| Stat::new(endpoint, current))
            .collect();
        // The Aggregated row's current rates are its rows' sum, over the
        // same window; the header and the charts show the collector's last
        // complete second (`current`), like the CLI.
        let summed = endpoints
            .iter()
            .filter(|e| cicada_store::is_request_method(&e.method))
            .fold((0.0, 0.0), |(r, f), e| {
                (r + e.current_rps, f + e.current_failures_per_s)
            });
        let current = if terminal {
            Current::default()
        } else {
            Current {
                rps: stats.current_rps,
                failures_per_s: stats.current_failures_per_s,
                p50_ms: stats.current_p50_ms,
                p95_ms: stats.current_p95_ms,
                p99_ms: stats.current_p99_ms,
                dropped_per_s: stats.current_dropped_per_s,
            }
        };
        let total = stats
            .total
            .as_ref()
            .map(|total| Stat::new(total, summed))
            .unwrap_or_else(|| Stat {
                name: "total".into(),
                ..Stat::default()
            });
        let point = Point {
            t_s: elapsed_s as u64,
            rps: current.rps,
            failures_per_s: current.failures_per_s,
            p50_ms: current.p50_ms,
            p95_ms: current.p95_ms,
            p99_ms: current.p99_ms,
            users: active_users,
            target_users,
            target_rate,
        };
        LiveRun {
            run_id,
            scenario_name: if stats.scenario_name.is_empty() {
                plan.scenario_name
            } else {
                stats.scenario_name.clone()
            },
            host: plan.host,
            state: state_name(state),
            started_at_ms,
            elapsed_s,
            run_time_s: plan.run_time_ms.map(|ms| ms as f64 / 1000.0),
            target_users,
            active_users,
            target_rate,
            workers,
            error: (!error.is_empty()).then_some(error),
            current,
            endpoints,
            total,
            failures: stats
                .failures
                .iter()
                .map(|f| Failure {
                    method: f.method.clone(),
                    name: f.name.clone(),
                    kind: f.kind.clone(),
                    count: f.count,
                    last_message: f.last_message.clone(),
                })
                .collect(),
            thresholds: stats
                .thresholds
                .iter()
                .map(|t| ThresholdView {
                    expression: t.expression.clone(),
                    endpoint: t.endpoint.clone(),
                    observed: t.observed,
                    observed_text: t.observed_text.clone(),
                    passed: t.passed,
                })
                .collect(),
            diagnoses: diagnoses
                .iter()
                .map(|d| DiagnosisView {
                    kind: diagnosis_kind(d.kind),
                    summary: d.summary.clone(),
                    evidence: d.evidence.clone(),
                    suggested_workers: d.suggested_workers,
                })
                .collect(),
            point,
            worker_list: worker_list.into_iter().map(Worker::from).collect(),
            dropped: stats.dropped,
            lost_workers: lost_view(&stats, lost_live),
            unrecorded_max: stats.unrecorded_max,
            checks: stats
                .checks
                .iter()
                .map(|c| CheckView {
                    endpoint: c.endpoint.clone(),
                    name: c.name.clone(),
                    passed: c.passed,
                    failed: c.failed,
                })
                .collect(),
        }
    }
}

/// The collector's lost workers once it has bounded them, else the ones
/// the controller has seen go.
fn lost_view(stats: &RunStats, live: Vec<String>) -> Vec<LostView> {
    if !stats.lost_workers.is_empty() {
        return stats
            .lost_workers
            .iter()
            .map(|lost| LostView {
                worker_id: lost.worker_id.clone(),
                at_s: Some(lost.at_s),
                unrecorded_max: Some(lost.unrecorded_max),
            })
            .collect();
    }
    live.into_iter()
        .map(|worker_id| LostView {
            worker_id,
            at_s: None,
            unrecorded_max: None,
        })
        .collect()
}

/// Per-endpoint (requests, failures) at one moment.
type Sample = (Instant, Vec<(u64, u64)>);

/// Samples of each live run's per-endpoint counters, from which the
/// per-endpoint current rates are computed (the collector's live window
/// covers all endpoints together).
#[derive(Default)]
pub struct Rates {
    runs: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl Rates {
    /// Requests and failures per second per endpoint over the last few
    /// seconds of samples (zeros until a sample at least 0.5 s old exists);
    /// records `counts` as a new sample.
    pub(crate) fn current(
        &self,
        run_id: &str,
        now: Instant,
        counts: Vec<(u64, u64)>,
    ) -> Vec<(f64, f64)> {
        let mut runs = self.runs.lock();
        runs.retain(|_, samples| {
            samples
                .back()
                .is_some_and(|(at, _)| now.duration_since(*at) < FORGET_AFTER)
        });
        let samples = runs.entry(run_id.to_owned()).or_default();
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
            || samples.len() >= MAX_SAMPLES
        {
            samples.pop_front();
        }
        let rates = match samples.front() {
            Some((at, base))
                if now.duration_since(*at) >= Duration::from_millis(500)
                    && base.len() == counts.len() =>
            {
                let seconds = now.duration_since(*at).as_secs_f64();
                base.iter()
                    .zip(&counts)
                    .map(|(&(r0, f0), &(r1, f1))| {
                        (
                            r1.saturating_sub(r0) as f64 / seconds,
                            f1.saturating_sub(f0) as f64 / seconds,
                        )
                    })
                    .collect()
            }
            _ => vec![(0.0, 0.0); counts.len()],
        };
        // Many viewers each ask once a second: keep one sample per
        // MIN_SAMPLE_GAP, so the base of the window stays a few seconds
        // old however many watch.
        if samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= MIN_SAMPLE_GAP)
        {
            samples.push_back((now, counts));
        }
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_viewers_do_not_shrink_the_window() {
        let rates = Rates::default();
        let t0 = Instant::now();
        rates.current("r", t0, vec![(0, 0)]);
        // 2,000 viewer polls over the next 2 s (a sample every 1 ms), all
        // seeing 100 requests a second: a window of the last 64 samples
        // would be 64 ms old and read 0.
        for i in 1..=2_000u64 {
            let at = t0 + Duration::from_millis(i);
            rates.current("r", at, vec![(i / 10, 0)]);
        }
        let t = t0 + Duration::from_secs(2);
        let (rps, _) = rates.current("r", t, vec![(200, 0)])[0];
        assert!((rps - 100.0).abs() < 1.0, "{rps}");
    }

    #[test]
    fn current_rates_from_samples() {
        let rates = Rates::default();
        let t0 = Instant::now();
        assert_eq!(
            rates.current("r", t0, vec![(100, 1), (0, 0)]),
            vec![(0.0, 0.0); 2]
        );
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            rates.current("r", t1, vec![(300, 5), (10, 0)]),
            vec![(100.0, 2.0), (5.0, 0.0)]
        );
        // The first sample has left the window: the rate is over t1..t2.
        let t2 = t0 + Duration::from_millis(4500);
        assert_eq!(
            rates.current("r", t2, vec![(800, 5), (10, 0)]),
            vec![(200.0, 0.0), (0.0, 0.0)]
        );
        // Other runs are separate.
        assert_eq!(rates.current("q", t2, vec![(5, 5)]), vec![(0.0, 0.0)]);
    }
}
