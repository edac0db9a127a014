//! The in-memory running aggregate of a live run: per-endpoint totals, the
//! last few seconds (for the "current" view) and failures, updated as deltas
//! are applied so `GetRunStats` on a live run never re-merges the run from
//! the database.

use std::collections::BTreeMap;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_store::{ActiveUsers, Delta, Endpoint, FailureRecord, SecondRow};

/// Seconds kept behind the latest one; the live window needs only two.
const KEEP_SECONDS: i64 = 8;
/// Complete seconds the live window covers (the ones before the latest
/// second seen, which other workers may still be reporting).
pub(crate) const WINDOW_SECONDS: i64 = 2;

/// One second over all endpoints and workers.
#[derive(Clone, Debug, Default)]
struct SecondAggregate {
    counts: Counts,
    histogram: LatencyHistogram,
    active_users: u64,
    dropped: u64,
}

/// The "current" numbers of a live run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LiveWindow {
    pub rps: f64,
    pub failures_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub active_users: u32,
    /// Open model: dropped iterations per second.
    pub dropped_per_s: f64,
}

/// Everything applied to one live run so far.
#[derive(Clone, Debug)]
pub(crate) struct LiveAggregate {
    /// Indexed by endpoint.
    totals: Vec<(Counts, LatencyHistogram)>,
    /// Whether each endpoint's rows are requests (a group's are not, and
    /// stay out of the per-second totals).
    is_request: Vec<bool>,
    /// Open model: uncorrected latencies per endpoint (`None` until one arrives).
    uncorrected: Vec<Option<LatencyHistogram>>,
    /// Open model: dropped iterations over the run.
    dropped: u64,
    recent: BTreeMap<i64, SecondAggregate>,
    latest_second: Option<i64>,
    /// (endpoint, kind) -> (count, last message).
    failures: BTreeMap<(u32, String), (u64, String)>,
    /// Requests evicted from full worker buffers (loss markers).
    evicted: u64,
}

fn merge_into(into: &mut LatencyHistogram, other: &LatencyHistogram) {
    // Both sides are auto-resizing, so merging cannot run out of range.
    if let Err(error) = into.merge(other) {
        tracing::warn!(%error, "failed to merge into the live aggregate");
    }
}

impl LiveAggregate {
    /// An empty aggregate for a run with these endpoints.
    pub(crate) fn new(endpoints: &[Endpoint]) -> Self {
        let endpoint_count = endpoints.len();
        let mut is_request = vec![true; endpoint_count];
        for endpoint in endpoints {
            if let Some(slot) = is_request.get_mut(endpoint.index as usize) {
                *slot = endpoint.is_request();
            }
        }
        Self {
            totals: (0..endpoint_count).map(|_| Default::default()).collect(),
            is_request,
            uncorrected: vec![None; endpoint_count],
            dropped: 0,
            recent: BTreeMap::new(),
            latest_second: None,
            failures: BTreeMap::new(),
            evicted: 0,
        }
    }

    /// Adds an applied delta (endpoints already validated against the table).
    pub(crate) fn apply(&mut self, delta: &Delta) {
        for endpoint in &delta.endpoints {
            self.add(
                delta.second,
                endpoint.endpoint,
                &endpoint.counts,
                &endpoint.histogram,
                endpoint.uncorrected.as_ref(),
            );
            for failure in &endpoint.failures {
                self.add_failure(
                    endpoint.endpoint,
                    &failure.kind,
                    failure.count,
                    &failure.last_message,
                );
            }
        }
        self.add_users(delta.second, u64::from(delta.active_users), delta.dropped);
    }

    /// Adds requests evicted from a worker's full buffer (a loss marker, or
    /// the stored watermarks when rebuilding).
    pub(crate) fn add_evicted(&mut self, requests: u64) {
        self.evicted += requests;
    }

    /// Requests evicted from full worker buffers so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Adds a stored per-second row (when rebuilding from the database).
    pub(crate) fn add_row(&mut self, row: &SecondRow) {
        self.add(
            row.second,
            row.endpoint,
            &row.counts,
            &row.histogram,
            row.uncorrected.as_ref(),
        );
    }

    /// Adds a stored active-users row (with its dropped iterations).
    pub(crate) fn add_active_users(&mut self, users: &ActiveUsers) {
        self.add_users(users.second, users.users, users.dropped);
    }

    /// Adds a stored failure row.
    pub(crate) fn add_failure_record(&mut self, failure: &FailureRecord) {
        self.add_failure(
            failure.endpoint,
            &failure.kind,
            failure.count,
            &failure.last_message,
        );
    }

    fn add(
        &mut self,
        second: i64,
        endpoint: u32,
        counts: &Counts,
        histogram: &LatencyHistogram,
        uncorrected: Option<&LatencyHistogram>,
    ) {
        if let Some(total) = self.totals.get_mut(endpoint as usize) {
            total.0.add(counts);
            merge_into(&mut total.1, histogram);
        }
        if let (Some(slot), Some(uncorrected)) =
            (self.uncorrected.get_mut(endpoint as usize), uncorrected)
        {
            merge_into(slot.get_or_insert_with(LatencyHistogram::new), uncorrected);
        }
        if !self
            .is_request
            .get(endpoint as usize)
            .copied()
            .unwrap_or(true)
        {
            return;
        }
        if let Some(recent) = self.second_mut(second) {
            recent.counts.add(counts);
            merge_into(&mut recent.histogram, histogram);
        }
    }

    fn add_users(&mut self, second: i64, users: u64, dropped: u64) {
        self.dropped += dropped;
        if let Some(recent) = self.second_mut(second) {
            recent.active_users += users;
            recent.dropped += dropped;
        }
    }

    fn add_failure(&mut self, endpoint: u32, kind: &str, count: u64, last_message: &str) {
        let entry = self
            .failures
            .entry((endpoint, kind.to_owned()))
            .or_default();
        entry.0 += count;
        last_message.clone_into(&mut entry.1);
    }

    /// The aggregate of `second`, or `None` when it is too old to keep.
    fn second_mut(&mut self, second: i64) -> Option<&mut SecondAggregate> {
        let latest = self
            .latest_second
            .map_or(second, |latest| latest.max(second));
        if second < latest - KEEP_SECONDS {
            return None;
        }
        if self.latest_second != Some(latest) {
            self.latest_second = Some(latest);
            self.recent = self.recent.split_off(&(latest - KEEP_SECONDS));
        }
        Some(self.recent.entry(second).or_default())
    }

    /// Per-endpoint totals, indexed by endpoint.
    pub(crate) fn totals(&self) -> &[(Counts, LatencyHistogram)] {
        &self.totals
    }

    /// Open model: uncorrected latencies per endpoint, indexed by endpoint.
    pub(crate) fn uncorrected(&self) -> &[Option<LatencyHistogram>] {
        &self.uncorrected
    }

    /// Open model: dropped iterations so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Failures as (endpoint, kind, count, last message), by endpoint then kind.
    pub(crate) fn failures(&self) -> impl Iterator<Item = (u32, &str, u64, &str)> {
        self.failures
            .iter()
            .map(|((endpoint, kind), (count, message))| {
                (*endpoint, kind.as_str(), *count, message.as_str())
            })
    }

    /// Rates and percentiles over the [`WINDOW_SECONDS`] complete seconds
    /// before the latest second seen, and the users of the last of them.
    pub(crate) fn window(&self) -> LiveWindow {
        let Some(latest) = self.latest_second else {
            return LiveWindow::default();
        };
        let mut counts = Counts::default();
        let mut histogram = LatencyHistogram::new();
        let mut dropped = 0;
        for (_, second) in self.recent.range(latest - WINDOW_SECONDS..latest) {
            counts.add(&second.counts);
            merge_into(&mut histogram, &second.histogram);
            dropped += second.dropped;
        }
        let active_users = self
            .recent
            .get(&(latest - 1))
            .map_or(0, |second| second.active_users);
        LiveWindow {
            rps: counts.requests as f64 / WINDOW_SECONDS as f64,
            failures_per_s: counts.failures as f64 / WINDOW_SECONDS as f64,
            p50_ms: histogram.value_at_quantile_us(0.5) as f64 / 1000.0,
            p95_ms: histogram.value_at_quantile_us(0.95) as f64 / 1000.0,
            p99_ms: histogram.value_at_quantile_us(0.99) as f64 / 1000.0,
            active_users: u32::try_from(active_users).unwrap_or(u32::MAX),
            dropped_per_s: dropped as f64 / WINDOW_SECONDS as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` request endpoints.
    fn endpoints(n: u32) -> Vec<Endpoint> {
        (0..n)
            .map(|index| Endpoint {
                index,
                method: "GET".into(),
                name: format!("/{index}"),
            })
            .collect()
    }
    use cicada_store::{EndpointDelta, FailureCount};

    fn delta(second: i64, latency_us: u64, requests: u64, users: u32) -> Delta {
        let mut histogram = LatencyHistogram::new();
        histogram.record_n_us(latency_us, requests);
        Delta {
            run_id: "r".into(),
            worker_id: "w".into(),
            seq: 1,
            second,
            active_users: users,
            dropped: 0,
            endpoints: vec![EndpointDelta {
                checks: Default::default(),
                endpoint: 0,
                counts: Counts {
                    requests,
                    failures: 1,
                    cancelled: 0,
                    bytes: 10 * requests,
                },
                histogram,
                uncorrected: None,
                failures: vec![FailureCount {
                    kind: "timeout".into(),
                    count: 1,
                    last_message: format!("at {second}"),
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn window_covers_the_two_seconds_before_the_latest() {
        let mut live = LiveAggregate::new(&endpoints(1));
        live.apply(&delta(100, 1_000, 10, 4));
        live.apply(&delta(101, 2_000, 20, 6));
        live.apply(&delta(102, 3_000, 30, 5));
        // Second 102 may still be arriving from other workers: not counted.
        let window = live.window();
        assert_eq!(window.rps, 15.0);
        assert_eq!(window.failures_per_s, 1.0);
        assert_eq!(window.active_users, 6);
        assert_eq!(window.p95_ms, 2.0);
        assert_eq!(window.p99_ms, 2.0);
        assert_eq!(window.p50_ms, 2.0);
        let (counts, histogram) = &live.totals()[0];
        assert_eq!(counts.requests, 60);
        assert_eq!(histogram.len(), 60);
        let failures: Vec<_> = live.failures().collect();
        assert_eq!(failures, [(0, "timeout", 3, "at 102")]);
    }

    #[test]
    fn old_seconds_are_pruned_but_still_counted_in_totals() {
        let mut live = LiveAggregate::new(&endpoints(1));
        for second in 0..100 {
            live.apply(&delta(second, 1_000, 1, 1));
        }
        assert!(live.recent.len() as i64 <= KEEP_SECONDS + 1);
        // A very late delta still counts in the totals.
        live.apply(&delta(3, 1_000, 5, 1));
        assert_eq!(live.totals()[0].0.requests, 105);
        assert_eq!(live.window().rps, 1.0);
    }

    #[test]
    fn open_model_totals_and_window_carry_uncorrected_and_dropped() {
        let mut live = LiveAggregate::new(&endpoints(1));
        for (second, dropped) in [(100, 2), (101, 4), (102, 6)] {
            let mut d = delta(second, 5_000, 10, 1);
            let mut uncorrected = LatencyHistogram::new();
            uncorrected.record_n_us(1_000, 10);
            d.endpoints[0].uncorrected = Some(uncorrected);
            d.dropped = dropped;
            live.apply(&d);
        }
        assert_eq!(live.dropped(), 12);
        assert_eq!(live.window().dropped_per_s, 3.0);
        let uncorrected = live.uncorrected()[0].as_ref().unwrap();
        assert_eq!(uncorrected.len(), 30);
        assert_eq!(uncorrected.max_us(), 1_000);
        assert!(LiveAggregate::new(&endpoints(1)).uncorrected()[0].is_none());
    }

    #[test]
    fn empty_run_has_a_zero_window() {
        assert_eq!(
            LiveAggregate::new(&endpoints(2)).window(),
            LiveWindow::default()
        );
    }
}
