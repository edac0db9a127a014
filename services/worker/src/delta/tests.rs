use cicada_histogram::{Counts, LatencyHistogram};

use super::*;
use crate::engine::FailureKindCount;

fn interval(per_endpoint: &[(u64, u64)]) -> Interval {
    Interval {
        endpoints: per_endpoint
            .iter()
            .map(|&(requests, failures)| {
                let mut histogram = LatencyHistogram::new();
                for i in 0..requests {
                    histogram.record_us(1_000 + i);
                }
                EndpointInterval {
                    counts: Counts {
                        requests,
                        failures,
                        cancelled: 0,
                        bytes: requests * 3,
                    },
                    histogram,
                    uncorrected: LatencyHistogram::new(),
                    failures_by_kind: if failures > 0 {
                        vec![FailureKindCount {
                            kind: "status 503".into(),
                            count: failures,
                            last_message: "service unavailable".into(),
                        }]
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect(),
        dropped: 0,
    }
}

#[test]
fn builds_numbered_deltas_without_empty_endpoints() {
    let mut builder = DeltaBuilder::new("run-1", "w-1");
    let first = builder.build(1_700_000_000, &interval(&[(5, 1), (0, 0), (2, 0)]), 4);
    assert_eq!(first.run_id, "run-1");
    assert_eq!(first.worker_id, "w-1");
    assert_eq!(first.seq, 1);
    assert_eq!(first.second, 1_700_000_000);
    assert_eq!(first.active_users, 4);
    let indexes: Vec<u32> = first.endpoints.iter().map(|e| e.endpoint).collect();
    assert_eq!(indexes, vec![0, 2], "the empty endpoint is left out");

    let e0 = &first.endpoints[0];
    assert_eq!((e0.requests, e0.failures, e0.bytes), (5, 1, 15));
    assert_eq!(e0.failures_by_kind.len(), 1);
    assert_eq!(e0.failures_by_kind[0].kind, "status 503");
    assert_eq!(e0.failures_by_kind[0].count, 1);
    assert_eq!(e0.failures_by_kind[0].last_message, "service unavailable");
    let decoded = LatencyHistogram::decode(&e0.histogram).unwrap();
    assert_eq!(decoded.len(), 5);
    assert_eq!(decoded, interval(&[(5, 1)]).endpoints[0].histogram);

    // An empty interval still yields a delta (liveness, gap-free seq).
    let second = builder.build(1_700_000_001, &Interval::default(), 4);
    assert_eq!(second.seq, 2);
    assert!(second.endpoints.is_empty());

    let third = builder.build(1_700_000_002, &interval(&[(1, 0)]), 0);
    assert_eq!(third.seq, 3);
    assert_eq!(builder.last_seq(), 3);
    assert_eq!(builder.totals().requests, 8);
    assert_eq!(builder.totals().failures, 1);
}

#[test]
fn cancelled_only_endpoints_are_kept() {
    let mut builder = DeltaBuilder::new("r", "w");
    let mut cut = Interval::default();
    cut.endpoints.push(EndpointInterval {
        counts: Counts {
            cancelled: 2,
            ..Counts::default()
        },
        ..EndpointInterval::default()
    });
    let delta = builder.build(10, &cut, 0);
    assert_eq!(delta.endpoints.len(), 1);
    assert_eq!(delta.endpoints[0].cancelled, 2);
    assert_eq!(builder.totals().cancelled, 2);
}

#[test]
fn pending_keeps_order_until_acknowledged() {
    let mut builder = DeltaBuilder::new("r", "w");
    let mut pending = Pending::default();
    for second in 0..5 {
        pending.push(builder.build(second, &interval(&[(3, 0)]), 1));
    }
    let batch = pending.batch(3, usize::MAX);
    let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);

    // A failed push acknowledges nothing: the same batch goes out again.
    assert_eq!(pending.batch(3, usize::MAX), batch);

    pending.ack_through(3);
    assert_eq!(pending.len(), 2);
    // New deltas queue behind the unacknowledged ones.
    pending.push(builder.build(5, &Interval::default(), 1));
    let seqs: Vec<u64> = pending
        .batch(10, usize::MAX)
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(seqs, vec![4, 5, 6]);
    // A stale or repeated ack is harmless.
    pending.ack_through(2);
    assert_eq!(pending.len(), 3);
    pending.ack_through(6);
    assert!(pending.is_empty());
    assert!(pending.batch(10, usize::MAX).is_empty());
}

#[test]
fn batches_respect_the_size_limit_but_always_make_progress() {
    let mut builder = DeltaBuilder::new("r", "w");
    let mut pending = Pending::default();
    for second in 100..104 {
        pending.push(builder.build(second, &interval(&[(50, 0)]), 1));
    }
    let one = pending.batch(10, 1).len();
    assert_eq!(one, 1, "a delta larger than the limit still goes out alone");
    let sizes: Vec<usize> = pending
        .batch(10, usize::MAX)
        .iter()
        .map(|d| d.encoded_len())
        .collect();
    assert_eq!(sizes.len(), 4);
    assert_eq!(pending.batch(10, sizes[0] + sizes[1]).len(), 2);
    assert_eq!(pending.batch(3, usize::MAX).len(), 3);
}

#[test]
fn open_model_deltas_carry_dropped_and_the_uncorrected_histogram() {
    let mut builder = DeltaBuilder::new("r", "w");
    let mut cut = interval(&[(3, 0), (2, 0)]);
    // The closed model leaves the uncorrected histogram out entirely.
    let closed = builder.build(1, &cut, 0);
    assert!(
        closed
            .endpoints
            .iter()
            .all(|e| e.uncorrected_histogram.is_empty())
    );
    assert_eq!(closed.dropped, 0);

    let mut uncorrected = LatencyHistogram::new();
    uncorrected.record_n_us(500, 3);
    cut.endpoints[0].uncorrected = uncorrected.clone();
    cut.dropped = 7;
    let open = builder.build(2, &cut, 0);
    assert_eq!(open.dropped, 7);
    let decoded = LatencyHistogram::decode(&open.endpoints[0].uncorrected_histogram).unwrap();
    assert_eq!(decoded, uncorrected);
    assert!(open.endpoints[1].uncorrected_histogram.is_empty());
    // An interval with only drops is still sent (its delta is never skipped).
    let only_drops = builder.build(
        3,
        &Interval {
            dropped: 4,
            ..Interval::default()
        },
        0,
    );
    assert_eq!(only_drops.dropped, 4);
}
