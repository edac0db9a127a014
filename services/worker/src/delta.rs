//! Turning engine intervals into `WorkerDelta`s and keeping them until the
//! collector acknowledges them. Pure: no I/O, no clock.
//!
//! Every cut becomes a delta, even an empty one, so sequence numbers advance
//! once per second and the collector sees the worker alive with its active
//! users; endpoints without anything recorded are left out to keep the
//! message small (the collector treats a missing endpoint as zero).

use std::collections::VecDeque;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_proto::v1::{EndpointDelta, FailureCount, WorkerDelta};
use prost::Message;

use crate::engine::{EndpointInterval, Interval};

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

    /// The delta of the interval that started at unix `second`.
    pub fn build(&mut self, second: i64, interval: &Interval, active_users: u32) -> WorkerDelta {
        self.last_seq += 1;
        self.totals.add(&interval.total());
        WorkerDelta {
            run_id: self.run_id.clone(),
            worker_id: self.worker_id.clone(),
            seq: self.last_seq,
            second,
            endpoints: interval
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, endpoint)| !is_empty(endpoint))
                .map(|(index, endpoint)| endpoint_delta(index, endpoint))
                .collect(),
            active_users,
            dropped: interval.dropped,
        }
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
    }
}

/// Deltas built but not yet acknowledged, oldest first.
#[derive(Debug, Default)]
pub struct Pending {
    deltas: VecDeque<WorkerDelta>,
}

impl Pending {
    /// Appends the newest delta.
    pub fn push(&mut self, delta: WorkerDelta) {
        debug_assert!(self.deltas.back().is_none_or(|last| last.seq < delta.seq));
        self.deltas.push_back(delta);
    }

    /// The oldest deltas, in order, up to `max_count` and (after the first)
    /// `max_bytes` of encoded size: one `PushDeltas` request. A long outage
    /// leaves a backlog that goes out in several requests, each below the
    /// collector's message size limit.
    pub fn batch(&self, max_count: usize, max_bytes: usize) -> Vec<WorkerDelta> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for delta in self.deltas.iter().take(max_count) {
            let size = delta.encoded_len();
            if !batch.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            batch.push(delta.clone());
        }
        batch
    }

    /// Drops every delta up to and including `seq` (acknowledged).
    pub fn ack_through(&mut self, seq: u64) {
        while self.deltas.front().is_some_and(|delta| delta.seq <= seq) {
            self.deltas.pop_front();
        }
    }

    /// Deltas waiting.
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    /// True when everything was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }
}

#[cfg(test)]
mod tests;
