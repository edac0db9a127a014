//! `RunStats` from per-endpoint totals: percentiles always come from merged
//! histograms (via `cicada_histogram::Summary`), never from averages.

use cicada_histogram::{Counts, LatencyHistogram, Summary};
use cicada_proto::v1;
use cicada_store::{Endpoint, LostWorkerRecord, RunRecord, RunStatus};

use crate::convert::run_state;
use crate::live::LiveWindow;
use crate::threshold::{self, RunThreshold};

/// Name of the all-endpoints row (`RunStats.total`).
pub const TOTAL_NAME: &str = "total";

/// Seconds the run has lasted: until its end once finished, until `now_ms`
/// while live.
pub(crate) fn duration_s(record: &RunRecord, now_ms: i64) -> f64 {
    let end = match record.status {
        RunStatus::Running => now_ms,
        RunStatus::Finished | RunStatus::Failed => record.ended_at_ms.unwrap_or(now_ms),
    };
    (end - record.started_at_ms).max(0) as f64 / 1000.0
}

fn endpoint_stats(
    method: &str,
    name: &str,
    counts: Counts,
    histogram: &LatencyHistogram,
    uncorrected: Option<&LatencyHistogram>,
    duration_s: f64,
) -> v1::EndpointStats {
    let summary = Summary::new(counts, histogram, duration_s);
    let uncorrected = uncorrected.map(|histogram| {
        let s = Summary::new(counts, histogram, duration_s);
        v1::UncorrectedLatency {
            p50_ms: s.p50_ms,
            p90_ms: s.p90_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            p999_ms: s.p999_ms,
            max_ms: s.max_ms,
            mean_ms: s.mean_ms,
        }
    });
    v1::EndpointStats {
        method: method.to_owned(),
        name: name.to_owned(),
        requests: counts.requests,
        failures: counts.failures,
        cancelled: counts.cancelled,
        bytes: counts.bytes,
        rps: summary.rps,
        p50_ms: summary.p50_ms,
        p90_ms: summary.p90_ms,
        p95_ms: summary.p95_ms,
        p99_ms: summary.p99_ms,
        p999_ms: summary.p999_ms,
        max_ms: summary.max_ms,
        min_ms: summary.min_ms,
        mean_ms: summary.mean_ms,
        avg_size: summary.avg_size,
        uncorrected,
    }
}

/// The protocol form of a run's checks, each named with its endpoint.
pub(crate) fn check_stats(
    checks: &[cicada_store::CheckTotals],
    endpoints: &[Endpoint],
) -> Vec<v1::CheckStat> {
    checks
        .iter()
        .map(|check| v1::CheckStat {
            endpoint: endpoints
                .iter()
                .find(|e| e.index == check.def.endpoint)
                .map(|e| format!("{} {}", e.method, e.name))
                .unwrap_or_default(),
            name: check.def.name.clone(),
            passed: check.passed,
            failed: check.failed,
        })
        .collect()
}

/// What a `RunStats` is built from.
pub(crate) struct StatsInput<'a> {
    pub record: &'a RunRecord,
    pub endpoints: &'a [Endpoint],
    /// Counts and merged histogram per endpoint, indexed by endpoint.
    pub totals: &'a [(Counts, LatencyHistogram)],
    /// Open model: uncorrected latencies per endpoint, indexed by endpoint
    /// (empty or all `None` in the closed model).
    pub uncorrected: &'a [Option<LatencyHistogram>],
    /// Open model: dropped iterations.
    pub dropped: u64,
    /// Checked against `totals`.
    pub thresholds: &'a [RunThreshold],
    /// (endpoint, kind, count, last message).
    pub failures: Vec<(u32, &'a str, u64, &'a str)>,
    /// The live view; `None` once the run has ended.
    pub live: Option<LiveWindow>,
    pub now_ms: i64,
    /// Workers lost without their final flush (known once the run ended).
    pub lost_workers: &'a [LostWorkerRecord],
    /// Requests evicted from full worker buffers.
    pub evicted_requests: u64,
}

/// Builds the protocol statistics of a run.
pub(crate) fn run_stats(input: StatsInput<'_>) -> v1::RunStats {
    let duration_s = duration_s(input.record, input.now_ms);
    let mut total_counts = Counts::default();
    let mut total_histogram = LatencyHistogram::new();
    let mut total_uncorrected: Option<LatencyHistogram> = None;
    let mut endpoints = Vec::with_capacity(input.endpoints.len());
    for endpoint in input.endpoints {
        let (counts, histogram) = input
            .totals
            .get(endpoint.index as usize)
            .cloned()
            .unwrap_or_default();
        let uncorrected = input
            .uncorrected
            .get(endpoint.index as usize)
            .and_then(Option::as_ref);
        // The total is of requests: a group's row is not one.
        if endpoint.is_request() {
            total_counts.add(&counts);
            if let Err(error) = total_histogram.merge(&histogram) {
                tracing::warn!(%error, "failed to merge the total histogram");
            }
        }
        if let (true, Some(uncorrected)) = (endpoint.is_request(), uncorrected) {
            let total = total_uncorrected.get_or_insert_with(LatencyHistogram::new);
            if let Err(error) = total.merge(uncorrected) {
                tracing::warn!(%error, "failed to merge the total uncorrected histogram");
            }
        }
        endpoints.push(endpoint_stats(
            &endpoint.method,
            &endpoint.name,
            counts,
            &histogram,
            uncorrected,
            duration_s,
        ));
    }
    let endpoint_names = |index: u32| {
        input
            .endpoints
            .get(index as usize)
            .map_or(("", ""), |e| (e.method.as_str(), e.name.as_str()))
    };
    let failures = input
        .failures
        .into_iter()
        .map(|(endpoint, kind, count, last_message)| {
            let (method, name) = endpoint_names(endpoint);
            v1::FailureStat {
                method: method.to_owned(),
                name: name.to_owned(),
                kind: kind.to_owned(),
                count,
                last_message: last_message.to_owned(),
            }
        })
        .collect();
    let live = input.live.unwrap_or_default();
    let unrecorded_max = input
        .lost_workers
        .iter()
        .map(|lost| lost.unrecorded_max)
        .sum::<u64>()
        + input.evicted_requests;
    let thresholds = threshold::evaluate(
        input.thresholds,
        input.totals,
        (&total_counts, &total_histogram),
        duration_s,
        unrecorded_max,
    );
    v1::RunStats {
        run_id: input.record.id.clone(),
        state: run_state(input.record.status) as i32,
        started_at_ms: input.record.started_at_ms,
        ended_at_ms: input.record.ended_at_ms.unwrap_or(0),
        duration_s,
        endpoints,
        total: Some(endpoint_stats(
            "",
            TOTAL_NAME,
            total_counts,
            &total_histogram,
            total_uncorrected.as_ref(),
            duration_s,
        )),
        current_rps: live.rps,
        current_failures_per_s: live.failures_per_s,
        current_p50_ms: live.p50_ms,
        current_p95_ms: live.p95_ms,
        current_p99_ms: live.p99_ms,
        active_users: live.active_users,
        failures,
        scenario_name: input.record.scenario_name.clone(),
        dropped: input.dropped,
        current_dropped_per_s: live.dropped_per_s,
        thresholds,
        // Filled in by the service for ended runs that sampled it.
        target_cpu: None,
        lost_workers: input.lost_workers.iter().map(crate::loss::stat).collect(),
        evicted_requests: input.evicted_requests,
        unrecorded_max,
        // Read from the store by the caller.
        checks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(status: RunStatus, ended_at_ms: Option<i64>) -> RunRecord {
        RunRecord {
            id: "r".into(),
            scenario_name: "shop".into(),
            scenario_yaml: String::new(),
            host: String::new(),
            config_json: "{}".into(),
            labels: BTreeMap::new(),
            status,
            started_at_ms: 10_000,
            ended_at_ms,
            error: None,
        }
    }

    #[test]
    fn totals_merge_histograms_and_rates_use_the_duration() {
        let endpoints = [
            Endpoint {
                index: 0,
                method: "GET".into(),
                name: "/a".into(),
            },
            Endpoint {
                index: 1,
                method: "POST".into(),
                name: "/b".into(),
            },
        ];
        let mut h0 = LatencyHistogram::new();
        h0.record_n_us(1_000, 90);
        let mut h1 = LatencyHistogram::new();
        h1.record_n_us(100_000, 10);
        let c = |requests| Counts {
            requests,
            failures: 1,
            cancelled: 0,
            bytes: requests * 2,
        };
        let totals = [(c(90), h0), (c(10), h1)];
        let record = record(RunStatus::Finished, Some(20_000));
        let stats = run_stats(StatsInput {
            record: &record,
            endpoints: &endpoints,
            totals: &totals,
            uncorrected: &[],
            dropped: 0,
            thresholds: &[],
            failures: vec![(1, "status 500", 1, "boom")],
            live: None,
            lost_workers: &[],
            evicted_requests: 0,
            now_ms: 99_999,
        });
        assert_eq!(stats.duration_s, 10.0);
        assert_eq!(stats.state, v1::RunState::Finished as i32);
        let total = stats.total.unwrap();
        assert_eq!(total.requests, 100);
        assert_eq!(total.failures, 2);
        assert_eq!(total.rps, 10.0);
        assert_eq!(total.avg_size, 2.0);
        // p50 from the merged histogram is the fast endpoint's latency, p95
        // the slow one's: averaging per-endpoint percentiles would give neither.
        assert_eq!(total.p50_ms, 1.0);
        assert!((total.p95_ms - 100.0).abs() < 0.1, "{}", total.p95_ms);
        assert_eq!(stats.endpoints[1].rps, 1.0);
        assert_eq!(stats.failures[0].name, "/b");
        assert_eq!(stats.failures[0].method, "POST");
        // The closed model has no uncorrected figures.
        assert!(total.uncorrected.is_none());
        assert!(stats.endpoints[0].uncorrected.is_none());
    }

    #[test]
    fn open_model_stats_have_uncorrected_percentiles_and_dropped() {
        let endpoints = [Endpoint {
            index: 0,
            method: "GET".into(),
            name: "/a".into(),
        }];
        let mut corrected = LatencyHistogram::new();
        corrected.record_n_us(1_000, 90);
        corrected.record_n_us(500_000, 10);
        let mut uncorrected = LatencyHistogram::new();
        uncorrected.record_n_us(1_000, 100);
        let counts = Counts {
            requests: 100,
            ..Counts::default()
        };
        let record = record(RunStatus::Finished, Some(20_000));
        let stats = run_stats(StatsInput {
            record: &record,
            endpoints: &endpoints,
            totals: &[(counts, corrected)],
            uncorrected: &[Some(uncorrected)],
            dropped: 42,
            thresholds: &[],
            failures: Vec::new(),
            live: None,
            lost_workers: &[],
            evicted_requests: 0,
            now_ms: 0,
        });
        assert_eq!(stats.dropped, 42);
        let total = stats.total.unwrap();
        assert!((total.p99_ms - 500.0).abs() < 1.0, "{}", total.p99_ms);
        let u = total.uncorrected.unwrap();
        assert_eq!(u.p99_ms, 1.0);
        assert_eq!(u.max_ms, 1.0);
        assert_eq!(stats.endpoints[0].uncorrected.unwrap().p50_ms, 1.0);
    }

    #[test]
    fn live_duration_runs_to_now() {
        assert_eq!(duration_s(&record(RunStatus::Running, None), 12_500), 2.5);
        assert_eq!(duration_s(&record(RunStatus::Running, None), 0), 0.0);
    }
}
