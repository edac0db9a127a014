use cicada_histogram::{Counts, LatencyHistogram};

use std::time::{Duration, Instant};

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
                    checks: Vec::new(),
                }
            })
            .collect(),
        dropped: 0,
    }
}

#[test]
fn builds_numbered_deltas_without_empty_endpoints() {
    let mut builder = DeltaBuilder::new("run-1", "w-1");
    let first = builder.build(
        &Cut::whole_second(1_700_000_000, 4),
        &interval(&[(5, 1), (0, 0), (2, 0)]),
    );
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
    let second = builder.build(&Cut::whole_second(1_700_000_001, 4), &Interval::default());
    assert_eq!(second.seq, 2);
    assert!(second.endpoints.is_empty());

    let third = builder.build(&Cut::whole_second(1_700_000_002, 0), &interval(&[(1, 0)]));
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
    let delta = builder.build(&Cut::whole_second(10, 0), &cut);
    assert_eq!(delta.endpoints.len(), 1);
    assert_eq!(delta.endpoints[0].cancelled, 2);
    assert_eq!(builder.totals().cancelled, 2);
}

#[test]
fn pending_keeps_order_until_acknowledged() {
    let mut builder = DeltaBuilder::new("r", "w");
    let mut pending = Pending::default();
    let now = Instant::now();
    for second in 0..5 {
        pending.push(
            builder.build(&Cut::whole_second(second, 1), &interval(&[(3, 0)])),
            now,
        );
    }
    let batch = pending.batch(3, usize::MAX);
    let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);

    // A failed push acknowledges nothing: the same batch goes out again.
    assert_eq!(pending.batch(3, usize::MAX), batch);

    pending.ack_through(3);
    assert_eq!(pending.len(), 2);
    // New deltas queue behind the unacknowledged ones.
    pending.push(
        builder.build(&Cut::whole_second(5, 1), &Interval::default()),
        now,
    );
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
    let now = Instant::now();
    for second in 100..104 {
        pending.push(
            builder.build(&Cut::whole_second(second, 1), &interval(&[(50, 0)])),
            now,
        );
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
    let closed = builder.build(&Cut::whole_second(1, 0), &cut);
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
    let open = builder.build(&Cut::whole_second(2, 0), &cut);
    assert_eq!(open.dropped, 7);
    let decoded = LatencyHistogram::decode(&open.endpoints[0].uncorrected_histogram).unwrap();
    assert_eq!(decoded, uncorrected);
    assert!(open.endpoints[1].uncorrected_histogram.is_empty());
    // An interval with only drops is still sent (its delta is never skipped).
    let only_drops = builder.build(
        &Cut::whole_second(3, 0),
        &Interval {
            dropped: 4,
            ..Interval::default()
        },
    );
    assert_eq!(only_drops.dropped, 4);
}

#[test]
fn sub_second_cuts_carry_their_clock_and_users_only_at_the_second() {
    let mut builder = DeltaBuilder::new("r", "w");
    let cut = Cut {
        second: 1_700_000_000,
        active_users: 0,
        cut_at_ms: 1_700_000_000_200,
        interval_us: 200_000,
    };
    let delta = builder.build(&cut, &interval(&[(4, 0)]));
    assert_eq!(delta.second, 1_700_000_000);
    assert_eq!(delta.active_users, 0);
    assert_eq!(
        (delta.cut_at_ms, delta.interval_us),
        (1_700_000_000_200, 200_000)
    );
    assert_eq!((delta.first_seq, delta.evicted_requests.len()), (0, 0));
    assert_eq!(requests(&delta), 4);
}

#[test]
fn eviction_leaves_an_exact_gap_free_loss_marker() {
    let mut builder = DeltaBuilder::new("r", "w");
    let mut pending = Pending::default();
    let start = Instant::now();
    for i in 0..6u64 {
        let at = start + Duration::from_secs(i);
        pending.push(
            builder.build(&Cut::whole_second(i as i64, 1), &interval(&[(i + 1, 0)])),
            at,
        );
    }
    // Nothing is too old or too big yet.
    let now = start + Duration::from_secs(5);
    assert_eq!(
        pending.evict(usize::MAX, Duration::from_secs(60), now),
        Evicted::default()
    );
    // Older than 2.5 s: seqs 1, 2, 3 (built at 0, 1, 2 s) go, holding 1+2+3 requests.
    let evicted = pending.evict(usize::MAX, Duration::from_millis(2_500), now);
    assert_eq!(
        evicted,
        Evicted {
            deltas: 3,
            requests: 6
        }
    );
    assert_eq!(pending.len(), 4, "the marker and seqs 4, 5, 6");
    let batch = pending.batch(10, usize::MAX);
    let marker = &batch[0];
    assert_eq!((marker.first_seq, marker.seq), (1, 3));
    assert_eq!(marker.evicted_requests, vec![1, 2, 3]);
    assert!(marker.endpoints.is_empty());
    let seqs: Vec<u64> = batch[1..].iter().map(|d| d.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6]);

    // Over the byte bound: more go, into the same marker; the newest stays.
    let evicted = pending.evict(0, Duration::from_secs(60), now);
    assert_eq!(
        evicted,
        Evicted {
            deltas: 2,
            requests: 4 + 5
        }
    );
    let batch = pending.batch(10, usize::MAX);
    assert_eq!((batch[0].first_seq, batch[0].seq), (1, 5));
    assert_eq!(batch[0].evicted_requests, vec![1, 2, 3, 4, 5]);
    assert_eq!(batch[1].seq, 6);
    assert_eq!(pending.bytes(), batch[1].encoded_len());

    // Acknowledging the marker and the last delta empties the queue; only
    // delivered requests count as acknowledged.
    assert_eq!(pending.ack_through(5), 0);
    assert_eq!(pending.ack_through(6), 6);
    assert!(pending.is_empty());
    assert_eq!(pending.bytes(), 0);
    assert_eq!(pending.oldest_age(now), Duration::ZERO);
}
