//! Turning engine intervals into `WorkerDelta`s and keeping them until the
//! collector acknowledges them. Pure: no I/O, no clock.
//!
//! Every cut becomes a delta, even an empty one, so sequence numbers advance
//! at every cut (several per second) and the collector sees the worker
//! alive with its active users; endpoints without anything recorded are left out to keep the
//! message small (the collector treats a missing endpoint as zero).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_proto::v1::{EndpointDelta, FailureCount, WorkerDelta};
use prost::Message;

use crate::engine::{EndpointInterval, Interval};

/// Where and when an interval was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Unix second the interval lies in.
    pub second: i64,
    /// Users at the end of the interval, sent only by the interval that ends
    /// a whole second (the collector adds the deltas of a second together,
    /// so sub-second deltas carry 0): 0 otherwise.
    pub active_users: u32,
    /// End of the interval, Unix ms (wall clock).
    pub cut_at_ms: i64,
    /// Length of the interval, microseconds (monotonic clock).
    pub interval_us: u64,
}

impl Cut {
    /// A whole second `second` with `active_users` at its end.
    pub fn whole_second(second: i64, active_users: u32) -> Self {
        Self {
            second,
            active_users,
            cut_at_ms: (second + 1) * 1000,
            interval_us: 1_000_000,
        }
    }
}

/// Numbers a run's deltas and keeps the run totals.
#[derive(Debug, Clone)]
pub struct DeltaBuilder {
    run_id: String,
    worker_id: String,
    last_seq: u64,
    totals: Counts,
}

impl DeltaBuilder {
    /// A builder whose first delta gets seq 1.
    pub fn new(run_id: impl Into<String>, worker_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            worker_id: worker_id.into(),
            last_seq: 0,
            totals: Counts::default(),
        }
    }

    /// The delta of the interval described by `cut`.
    pub fn build(&mut self, cut: &Cut, interval: &Interval) -> WorkerDelta {
        self.last_seq += 1;
        self.totals.add(&interval.total());
        WorkerDelta {
            run_id: self.run_id.clone(),
            worker_id: self.worker_id.clone(),
            seq: self.last_seq,
            second: cut.second,
            endpoints: interval
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, endpoint)| !is_empty(endpoint))
                .map(|(index, endpoint)| endpoint_delta(index, endpoint))
                .collect(),
            active_users: cut.active_users,
            dropped: interval.dropped,
            cut_at_ms: cut.cut_at_ms,
            interval_us: cut.interval_us,
            first_seq: 0,
            evicted_requests: Vec::new(),
        }
    }

    /// The run the deltas belong to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Seq of the last delta built (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Everything recorded so far in this run.
    pub fn totals(&self) -> Counts {
        self.totals
    }
}

fn is_empty(endpoint: &EndpointInterval) -> bool {
    endpoint.counts == Counts::default()
        && endpoint.histogram.is_empty()
        && endpoint.uncorrected.is_empty()
        && endpoint.failures_by_kind.is_empty()
        && endpoint.checks.is_empty()
}

fn encode(index: usize, histogram: &LatencyHistogram) -> Vec<u8> {
    histogram.encode().unwrap_or_else(|error| {
        // Encoding an in-memory histogram does not fail in practice; if it
        // ever does, the exact counts still go out and only the latency
        // distribution of this second is missing.
        tracing::error!(%error, endpoint = index, "failed to encode a histogram");
        Vec::new()
    })
}

fn endpoint_delta(index: usize, endpoint: &EndpointInterval) -> EndpointDelta {
    let histogram = encode(index, &endpoint.histogram);
    // Empty (not an encoded empty histogram) in the closed model.
    let uncorrected_histogram = if endpoint.uncorrected.is_empty() {
        Vec::new()
    } else {
        encode(index, &endpoint.uncorrected)
    };
    EndpointDelta {
        endpoint: index as u32,
        requests: endpoint.counts.requests,
        failures: endpoint.counts.failures,
        cancelled: endpoint.counts.cancelled,
        bytes: endpoint.counts.bytes,
        histogram,
        uncorrected_histogram,
        failures_by_kind: endpoint
            .failures_by_kind
            .iter()
            .map(|failure| FailureCount {
                kind: failure.kind.clone(),
                count: failure.count,
                last_message: failure.last_message.clone(),
            })
            .collect(),
        checks: endpoint
            .checks
            .iter()
            .map(|check| cicada_proto::v1::CheckCount {
                check: check.check,
                passed: check.passed,
                failed: check.failed,
            })
            .collect(),
    }
}

/// Completed requests of a delta, over its endpoints.
pub fn requests(delta: &WorkerDelta) -> u64 {
    delta.endpoints.iter().map(|e| e.requests).sum()
}

/// A delta waiting for its acknowledgement.
#[derive(Debug)]
struct Entry {
    delta: WorkerDelta,
    bytes: usize,
    built: Instant,
}

/// Deltas evicted from the front of the queue, still to be reported as a
/// loss marker (seqs `first_seq..=last_seq`, requests of each).
#[derive(Debug)]
struct Marker {
    run_id: String,
    worker_id: String,
    first_seq: u64,
    last_seq: u64,
    requests: Vec<u64>,
}

impl Marker {
    fn delta(&self) -> WorkerDelta {
        WorkerDelta {
            run_id: self.run_id.clone(),
            worker_id: self.worker_id.clone(),
            seq: self.last_seq,
            first_seq: self.first_seq,
            evicted_requests: self.requests.clone(),
            ..WorkerDelta::default()
        }
    }
}

/// What [`Pending::evict`] dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    pub deltas: usize,
    pub requests: u64,
}

/// Deltas built but not yet acknowledged, oldest first, bounded by bytes
/// and age ([`Pending::evict`]). Evicted deltas leave a loss marker in
/// their place, so the sequence the collector sees stays without gaps and
/// the loss is counted exactly.
#[derive(Debug, Default)]
pub struct Pending {
    marker: Option<Marker>,
    deltas: VecDeque<Entry>,
    bytes: usize,
}

impl Pending {
    /// Appends the newest delta, built at `now`.
    pub fn push(&mut self, delta: WorkerDelta, now: Instant) {
        debug_assert!(
            self.deltas
                .back()
                .is_none_or(|last| last.delta.seq < delta.seq)
        );
        let bytes = delta.encoded_len();
        self.bytes += bytes;
        self.deltas.push_back(Entry {
            delta,
            bytes,
            built: now,
        });
    }

    /// The oldest deltas (a loss marker first, if any), in order, up to
    /// `max_count` and (after the first) `max_bytes` of encoded size: one
    /// `PushDeltas` request. A long outage leaves a backlog that goes out
    /// in several requests, each below the collector's message size limit.
    pub fn batch(&self, max_count: usize, max_bytes: usize) -> Vec<WorkerDelta> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        if let Some(marker) = &self.marker {
            let delta = marker.delta();
            bytes += delta.encoded_len();
            batch.push(delta);
        }
        for entry in self.deltas.iter() {
            if batch.len() >= max_count || (!batch.is_empty() && bytes + entry.bytes > max_bytes) {
                break;
            }
            bytes += entry.bytes;
            batch.push(entry.delta.clone());
        }
        batch
    }

    /// Drops every delta up to and including `seq` (acknowledged); returns
    /// the requests they held (a marker's are not delivered, so not counted).
    pub fn ack_through(&mut self, seq: u64) -> u64 {
        if self.marker.as_ref().is_some_and(|m| m.last_seq <= seq) {
            self.marker = None;
        }
        let mut acked = 0;
        while let Some(entry) = self.deltas.front()
            && entry.delta.seq <= seq
        {
            acked += requests(&entry.delta);
            self.bytes -= entry.bytes;
            self.deltas.pop_front();
        }
        acked
    }

    /// Evicts the oldest deltas while the queue holds more than `max_bytes`
    /// or its oldest delta is older than `max_age` at `now`; the newest
    /// delta always stays. They become (part of) the loss marker.
    pub fn evict(&mut self, max_bytes: usize, max_age: Duration, now: Instant) -> Evicted {
        let mut evicted = Evicted::default();
        while self.deltas.len() > 1
            && let Some(front) = self.deltas.front()
            && (self.bytes > max_bytes || now.duration_since(front.built) > max_age)
        {
            let Some(entry) = self.deltas.pop_front() else {
                break;
            };
            self.bytes -= entry.bytes;
            let count = requests(&entry.delta);
            evicted.deltas += 1;
            evicted.requests += count;
            let delta = entry.delta;
            match &mut self.marker {
                Some(marker) => {
                    marker.last_seq = delta.seq;
                    marker.requests.push(count);
                }
                None => {
                    self.marker = Some(Marker {
                        run_id: delta.run_id,
                        worker_id: delta.worker_id,
                        first_seq: delta.seq,
                        last_seq: delta.seq,
                        requests: vec![count],
                    });
                }
            }
        }
        evicted
    }

    /// Age of the oldest delta waiting at `now` (zero when none).
    pub fn oldest_age(&self, now: Instant) -> Duration {
        self.deltas
            .front()
            .map_or(Duration::ZERO, |entry| now.duration_since(entry.built))
    }

    /// Encoded bytes of the deltas waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Deltas waiting (a loss marker counts as one).
    pub fn len(&self) -> usize {
        self.deltas.len() + usize::from(self.marker.is_some())
    }

    /// True when everything was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
