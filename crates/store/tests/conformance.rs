//! The store conformance suite: every test runs against Postgres (a fresh
//! database each) and SQLite (a temporary file).

use std::collections::BTreeMap;
use std::sync::Arc;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_store::{
    ApplyOutcome, CheckCount, CheckDef, Delta, Endpoint, EndpointDelta, FailureCount,
    LostWorkerRecord, NewRun, RollupSpan, RunFilter, RunFinish, RunStatus, SecondRow, Store,
    StoreError, TargetSample, ThresholdDef, ThresholdOutcome, ThresholdRecord,
};

/// Expands each test function into a Postgres and a SQLite test.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = cicada_store::testing::TestDatabase::postgres().await.expect("create database");
                    let store = db.connect().await.expect("connect");
                    super::$test(store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = cicada_store::testing::TestDatabase::sqlite().expect("temp dir");
                    let store = db.connect().await.expect("connect");
                    super::$test(store).await;
                }
            )*
        }
    };
}

conformance!(
    create_and_get_run,
    duplicate_create_is_already_exists,
    deltas_merge_exactly,
    resent_delta_is_not_counted_twice,
    gap_is_rejected,
    two_workers_same_second_share_one_row,
    finish_writes_summaries_equal_to_the_merged_seconds,
    new_deltas_after_finish_are_rejected,
    invalid_deltas_change_nothing,
    list_runs_newest_first_with_filters,
    concurrent_workers_merge_exactly,
    repeated_failure_kinds_in_one_delta_add_up,
    open_model_uncorrected_histograms_and_dropped_merge_exactly_once,
    thresholds_are_stored_with_the_run,
    labels_are_set_replaced_and_removed,
    delete_removes_every_row_of_the_run,
    seconds_between_is_half_open,
    latest_passing_run_skips_failed_and_later_runs,
    target_samples_are_stored_per_second,
    rollup_equals_the_merged_seconds,
    loss_markers_and_lost_workers_are_stored_exactly_once,
    check_counts_add_up_exactly_once,
    a_batch_applies_like_its_deltas_one_by_one,
);

/// Like `conformance!`, for tests that also change the database behind the
/// store's back (to recreate what older versions left behind).
macro_rules! conformance_with_url {
    ($($test:ident),* $(,)?) => {
        mod postgres_with_url {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = cicada_store::testing::TestDatabase::postgres().await.expect("create database");
                    let store = db.connect().await.expect("connect");
                    super::$test(store, db.url()).await;
                }
            )*
        }
        mod sqlite_with_url {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = cicada_store::testing::TestDatabase::sqlite().expect("temp dir");
                    let store = db.connect().await.expect("connect");
                    super::$test(store, db.url()).await;
                }
            )*
        }
    };
}

conformance_with_url!(runs_that_ended_without_a_rollup_are_rolled_up_later);

const SECOND: i64 = 1_700_000_000;

fn new_run(id: &str, scenario: &str, started_at_ms: i64) -> NewRun {
    NewRun {
        id: id.to_owned(),
        scenario_name: scenario.to_owned(),
        scenario_yaml: "name: shop\n".to_owned(),
        host: "http://127.0.0.1:8080".to_owned(),
        config_json: r#"{"users":10}"#.to_owned(),
        labels: BTreeMap::from([("env".to_owned(), "ci".to_owned())]),
        started_at_ms,
        endpoints: vec![
            Endpoint {
                index: 0,
                method: "GET".to_owned(),
                name: "/items".to_owned(),
            },
            Endpoint {
                index: 1,
                method: "POST".to_owned(),
                name: "/orders".to_owned(),
            },
        ],
        thresholds: thresholds(),
        checks: Vec::new(),
    }
}

fn thresholds() -> Vec<ThresholdDef> {
    vec![
        ThresholdDef {
            expression: "p95 < 150ms".to_owned(),
            endpoint: None,
            abort_on_fail: false,
            delay_ms: 0,
        },
        ThresholdDef {
            expression: "failure_rate < 1%".to_owned(),
            endpoint: Some("POST /orders".to_owned()),
            abort_on_fail: true,
            delay_ms: 30_000,
        },
    ]
}

/// Deterministic pseudo-random latencies (a linear congruential generator).
fn latencies(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (state >> 33) % 2_000_000
        })
        .collect()
}

fn endpoint_delta(endpoint: u32, values: &[u64], failures: u64) -> EndpointDelta {
    let mut histogram = LatencyHistogram::new();
    for v in values {
        histogram.record_us(*v);
    }
    EndpointDelta {
        endpoint,
        counts: Counts {
            requests: values.len() as u64,
            failures,
            cancelled: 1,
            bytes: 100 * values.len() as u64,
        },
        histogram,
        uncorrected: None,
        failures: if failures > 0 {
            vec![FailureCount {
                kind: "status 503".to_owned(),
                count: failures,
                last_message: format!("last of {failures}"),
            }]
        } else {
            Vec::new()
        },
        checks: Vec::new(),
    }
}

fn delta(
    run_id: &str,
    worker: &str,
    seq: u64,
    second: i64,
    endpoints: Vec<EndpointDelta>,
) -> Delta {
    Delta {
        run_id: run_id.to_owned(),
        worker_id: worker.to_owned(),
        seq,
        second,
        active_users: 5,
        dropped: 0,
        endpoints,
        ..Default::default()
    }
}

fn histogram_of(values: &[u64]) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for v in values {
        h.record_us(*v);
    }
    h
}

fn recorded(h: &LatencyHistogram) -> Vec<(u64, u64)> {
    h.iter_recorded().collect()
}

async fn create_and_get_run(store: Arc<dyn Store>) {
    let run = new_run("r1", "shop", 1_000);
    store.create_run(&run).await.unwrap();
    let got = store.get_run("r1").await.unwrap().expect("run exists");
    assert_eq!(got.id, "r1");
    assert_eq!(got.scenario_name, "shop");
    assert_eq!(got.scenario_yaml, run.scenario_yaml);
    assert_eq!(got.host, run.host);
    assert_eq!(got.config_json, run.config_json);
    assert_eq!(got.labels, run.labels);
    assert_eq!(got.status, RunStatus::Running);
    assert_eq!(got.started_at_ms, 1_000);
    assert_eq!(got.ended_at_ms, None);
    assert_eq!(got.error, None);
    assert_eq!(store.endpoints("r1").await.unwrap(), run.endpoints);
    assert!(store.get_run("nope").await.unwrap().is_none());
    assert!(store.summaries("r1").await.unwrap().is_empty());
    assert!(store.watermarks("r1").await.unwrap().is_empty());
}

async fn duplicate_create_is_already_exists(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let error = store
        .create_run(&new_run("r1", "other", 2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists(ref id) if id == "r1"),
        "{error:?}"
    );
    // The first run is untouched.
    assert_eq!(
        store.get_run("r1").await.unwrap().unwrap().scenario_name,
        "shop"
    );
}

async fn deltas_merge_exactly(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let a = latencies(1, 500);
    let b = latencies(2, 300);
    let c = latencies(3, 200);
    // Second 0: endpoint 0 from two deltas of the same worker (seq 1, 2
    // report the same second, as after a worker-side split); endpoint 1 once.
    let outcome = store
        .apply_delta(&delta(
            "r1",
            "w1",
            1,
            SECOND,
            vec![endpoint_delta(0, &a, 2), endpoint_delta(1, &c, 0)],
        ))
        .await
        .unwrap();
    assert_eq!(outcome, ApplyOutcome::Applied);
    let outcome = store
        .apply_delta(&delta(
            "r1",
            "w1",
            2,
            SECOND,
            vec![endpoint_delta(0, &b, 3)],
        ))
        .await
        .unwrap();
    assert_eq!(outcome, ApplyOutcome::Applied);

    let rows = store.seconds("r1", None).await.unwrap();
    assert_eq!(rows.len(), 2);
    let all_a: Vec<u64> = a.iter().chain(&b).copied().collect();
    assert_eq!((rows[0].second, rows[0].endpoint), (SECOND, 0));
    assert_eq!(
        rows[0].counts,
        Counts {
            requests: 800,
            failures: 5,
            cancelled: 2,
            bytes: 80_000
        }
    );
    assert_eq!(
        recorded(&rows[0].histogram),
        recorded(&histogram_of(&all_a))
    );
    assert_eq!((rows[1].second, rows[1].endpoint), (SECOND, 1));
    assert_eq!(recorded(&rows[1].histogram), recorded(&histogram_of(&c)));

    let failures = store.failures("r1").await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].count, 5);
    assert_eq!(failures[0].last_message, "last of 3");
    let users = store.active_users("r1", None).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].users, 10);
    let marks = store.watermarks("r1").await.unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!((marks[0].worker_id.as_str(), marks[0].seq), ("w1", 2));
    // from_second filters.
    assert!(
        store
            .seconds("r1", Some(SECOND + 1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn resent_delta_is_not_counted_twice(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let values = latencies(7, 100);
    let d = delta("r1", "w1", 1, SECOND, vec![endpoint_delta(0, &values, 1)]);
    assert_eq!(store.apply_delta(&d).await.unwrap(), ApplyOutcome::Applied);
    let before = store.seconds("r1", None).await.unwrap();
    assert_eq!(
        store.apply_delta(&d).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    assert_eq!(store.seconds("r1", None).await.unwrap(), before);
    assert_eq!(before[0].counts.requests, 100);
    assert_eq!(store.failures("r1").await.unwrap()[0].count, 1);
    assert_eq!(store.active_users("r1", None).await.unwrap()[0].users, 5);
    assert_eq!(store.watermarks("r1").await.unwrap()[0].seq, 1);
}

/// A loss marker (deltas evicted from a worker's full buffer) counts its
/// requests once, closes the sequence gap, and a re-sent marker overlapping
/// applied deltas counts only the ones not applied; lost workers are stored
/// with the run's end.
async fn loss_markers_and_lost_workers_are_stored_exactly_once(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let values = latencies(3, 40);
    let mut first = delta("r1", "w1.a", 1, SECOND, vec![endpoint_delta(0, &values, 0)]);
    first.cut_at_ms = 1_200;
    first.interval_us = 200_000;
    assert_eq!(
        store.apply_delta(&first).await.unwrap(),
        ApplyOutcome::Applied
    );
    // Seqs 2..=4 evicted (10, 20, 30 requests), then seq 5 delivered.
    let marker = Delta {
        first_seq: 2,
        evicted: vec![10, 20, 30],
        ..delta("r1", "w1.a", 4, SECOND, Vec::new())
    };
    assert_eq!(
        store.apply_delta(&marker).await.unwrap(),
        ApplyOutcome::Applied
    );
    assert_eq!(
        store.apply_delta(&marker).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    let next = delta(
        "r1",
        "w1.a",
        5,
        SECOND + 1,
        vec![endpoint_delta(0, &values, 0)],
    );
    assert_eq!(
        store.apply_delta(&next).await.unwrap(),
        ApplyOutcome::Applied
    );
    let marks = store.watermarks("r1").await.unwrap();
    assert_eq!(marks.len(), 1);
    let mark = &marks[0];
    assert_eq!(
        (mark.seq, mark.requests, mark.evicted_requests),
        (5, 80, 60)
    );
    assert_eq!(mark.cut_at_ms, 1_200);
    assert_eq!(mark.peak_rps, 200.0, "40 requests in 200 ms");
    // The markers add no rows: only delivered requests are in the seconds.
    let stored: u64 = store
        .seconds("r1", None)
        .await
        .unwrap()
        .iter()
        .map(|row| row.counts.requests)
        .sum();
    assert_eq!(stored, 80);
    // A malformed marker is refused.
    let bad = Delta {
        first_seq: 6,
        evicted: vec![1],
        ..delta("r1", "w1.a", 7, SECOND, Vec::new())
    };
    assert!(matches!(
        store.apply_delta(&bad).await,
        Err(StoreError::Invalid(_))
    ));

    let lost = LostWorkerRecord {
        worker_id: "w2".into(),
        delta_source: "w2.b".into(),
        at_s: 4.5,
        received: 0,
        unrecorded_max: 17,
    };
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: 10_000,
        error: None,
        lost_workers: vec![lost.clone()],
    };
    store.finish_run("r1", &finish).await.unwrap();
    // Finishing again (a retried FinishRun) keeps one record.
    store.finish_run("r1", &finish).await.unwrap();
    assert_eq!(store.lost_workers("r1").await.unwrap(), vec![lost]);
}

async fn gap_is_rejected(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let values = latencies(1, 10);
    let d1 = delta("r1", "w1", 1, SECOND, vec![endpoint_delta(0, &values, 0)]);
    let d3 = delta(
        "r1",
        "w1",
        3,
        SECOND + 2,
        vec![endpoint_delta(0, &values, 0)],
    );
    store.apply_delta(&d1).await.unwrap();
    let error = store.apply_delta(&d3).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Gap {
                expected: 2,
                got: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.seconds("r1", None).await.unwrap().len(), 1);
    assert_eq!(store.watermarks("r1").await.unwrap()[0].seq, 1);
    // A first delta must be seq 1.
    let error = store
        .apply_delta(&delta("r1", "w2", 2, SECOND, vec![]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Gap {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{error:?}"
    );
    // Once the missing one arrives, the later one applies.
    let d2 = delta(
        "r1",
        "w1",
        2,
        SECOND + 1,
        vec![endpoint_delta(0, &values, 0)],
    );
    assert_eq!(store.apply_delta(&d2).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.apply_delta(&d3).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.seconds("r1", None).await.unwrap().len(), 3);
}

async fn two_workers_same_second_share_one_row(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let a = latencies(10, 400);
    let b = latencies(11, 250);
    store
        .apply_delta(&delta(
            "r1",
            "w1",
            1,
            SECOND,
            vec![endpoint_delta(0, &a, 4)],
        ))
        .await
        .unwrap();
    store
        .apply_delta(&delta(
            "r1",
            "w2",
            1,
            SECOND,
            vec![endpoint_delta(0, &b, 6)],
        ))
        .await
        .unwrap();
    let rows = store.seconds("r1", None).await.unwrap();
    assert_eq!(
        rows.len(),
        1,
        "one row per (run, second, endpoint), not per worker"
    );
    assert_eq!(
        rows[0].counts,
        Counts {
            requests: 650,
            failures: 10,
            cancelled: 2,
            bytes: 65_000
        }
    );
    let all: Vec<u64> = a.iter().chain(&b).copied().collect();
    let expected = histogram_of(&all);
    assert_eq!(recorded(&rows[0].histogram), recorded(&expected));
    for q in [0.5, 0.9, 0.99, 0.999] {
        assert_eq!(
            rows[0].histogram.value_at_quantile_us(q),
            expected.value_at_quantile_us(q)
        );
    }
    assert_eq!(store.active_users("r1", None).await.unwrap()[0].users, 10);
    assert_eq!(store.failures("r1").await.unwrap()[0].count, 10);
    let marks = store.watermarks("r1").await.unwrap();
    assert_eq!(marks.len(), 2);
}

async fn finish_writes_summaries_equal_to_the_merged_seconds(store: Arc<dyn Store>) {
    store
        .create_run(&new_run("r1", "shop", 1_000))
        .await
        .unwrap();
    let mut all0 = Vec::new();
    let mut requests0 = 0;
    for seq in 1..=5u64 {
        for (w, worker) in ["w1", "w2"].into_iter().enumerate() {
            let values = latencies(seq * 10 + w as u64, 50 + seq as usize * 7);
            requests0 += values.len() as u64;
            all0.extend_from_slice(&values);
            store
                .apply_delta(&delta(
                    "r1",
                    worker,
                    seq,
                    SECOND + seq as i64,
                    vec![endpoint_delta(0, &values, 1)],
                ))
                .await
                .unwrap();
        }
    }
    let finish = RunFinish {
        status: RunStatus::Failed,
        ended_at_ms: 9_000,
        error: Some("boom".to_owned()),
        lost_workers: Vec::new(),
    };
    let record = store.finish_run("r1", &finish).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.ended_at_ms, Some(9_000));
    assert_eq!(record.error.as_deref(), Some("boom"));

    let summaries = store.summaries("r1").await.unwrap();
    assert_eq!(summaries.len(), 2, "one summary per endpoint of the table");
    assert_eq!(summaries[0].endpoint, 0);
    assert_eq!(
        summaries[0].counts,
        Counts {
            requests: requests0,
            failures: 10,
            cancelled: 10,
            bytes: 100 * requests0
        }
    );
    assert_eq!(
        recorded(&summaries[0].histogram),
        recorded(&histogram_of(&all0))
    );
    // Equal to merging the stored seconds.
    let mut merged = LatencyHistogram::new();
    let mut counts = Counts::default();
    for row in store.seconds("r1", None).await.unwrap() {
        merged.merge(&row.histogram).unwrap();
        counts.add(&row.counts);
    }
    assert_eq!(summaries[0].counts, counts);
    assert_eq!(recorded(&summaries[0].histogram), recorded(&merged));
    assert_eq!(summaries[1].endpoint, 1);
    assert_eq!(summaries[1].counts, Counts::default());
    assert!(summaries[1].histogram.is_empty());

    // Finishing again changes nothing.
    let again = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: 10_000,
        error: None,
        lost_workers: Vec::new(),
    };
    assert_eq!(store.finish_run("r1", &again).await.unwrap(), record);
    assert_eq!(store.summaries("r1").await.unwrap(), summaries);
    let error = store.finish_run("nope", &again).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
}

async fn new_deltas_after_finish_are_rejected(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let d1 = delta(
        "r1",
        "w1",
        1,
        SECOND,
        vec![endpoint_delta(0, &latencies(1, 5), 0)],
    );
    store.apply_delta(&d1).await.unwrap();
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: 2,
        error: None,
        lost_workers: Vec::new(),
    };
    store.finish_run("r1", &finish).await.unwrap();
    // A re-send of an applied delta is still acknowledged ...
    assert_eq!(
        store.apply_delta(&d1).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    // ... a new one is refused, so the summaries stay equal to the seconds.
    let d2 = delta(
        "r1",
        "w1",
        2,
        SECOND + 1,
        vec![endpoint_delta(0, &latencies(2, 5), 0)],
    );
    let error = store.apply_delta(&d2).await.unwrap_err();
    assert!(matches!(error, StoreError::RunFinished(_)), "{error:?}");
    assert_eq!(store.seconds("r1", None).await.unwrap().len(), 1);
}

async fn invalid_deltas_change_nothing(store: Arc<dyn Store>) {
    let error = store
        .apply_delta(&delta("nope", "w1", 1, SECOND, vec![]))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");

    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let values = latencies(1, 5);
    // Endpoint 7 is not in the table: the valid endpoint 0 must not be applied either.
    let bad = delta(
        "r1",
        "w1",
        1,
        SECOND,
        vec![endpoint_delta(0, &values, 1), endpoint_delta(7, &values, 1)],
    );
    let error = store.apply_delta(&bad).await.unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    let twice = delta(
        "r1",
        "w1",
        1,
        SECOND,
        vec![endpoint_delta(0, &values, 0), endpoint_delta(0, &values, 0)],
    );
    let error = store.apply_delta(&twice).await.unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert!(store.seconds("r1", None).await.unwrap().is_empty());
    assert!(store.failures("r1").await.unwrap().is_empty());
    assert!(store.active_users("r1", None).await.unwrap().is_empty());
    assert!(store.watermarks("r1").await.unwrap().is_empty());

    // Endpoint tables must be indexed 0..n.
    let mut holes = new_run("r2", "shop", 1);
    holes.endpoints[1].index = 5;
    let error = store.create_run(&holes).await.unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert!(store.get_run("r2").await.unwrap().is_none());
}

async fn list_runs_newest_first_with_filters(store: Arc<dyn Store>) {
    store
        .create_run(&new_run("a", "shop", 1_000))
        .await
        .unwrap();
    store
        .create_run(&new_run("b", "search", 3_000))
        .await
        .unwrap();
    let mut c = new_run("c", "shop", 2_000);
    c.labels = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    store.create_run(&c).await.unwrap();
    store
        .finish_run(
            "a",
            &RunFinish {
                status: RunStatus::Finished,
                ended_at_ms: 1_500,
                error: None,
                lost_workers: Vec::new(),
            },
        )
        .await
        .unwrap();

    let ids =
        |runs: Vec<cicada_store::RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["b", "c", "a"]);
    let limited = RunFilter {
        limit: 2,
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&limited).await.unwrap()), ["b", "c"]);
    let shop = RunFilter {
        scenario_name: Some("shop".to_owned()),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&shop).await.unwrap()), ["c", "a"]);
    let finished = RunFilter {
        status: Some(RunStatus::Finished),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&finished).await.unwrap()), ["a"]);
    let prod = RunFilter {
        label: Some(("env".to_owned(), "prod".to_owned())),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&prod).await.unwrap()), ["c"]);
    let window = RunFilter {
        started_after_ms: Some(1_500),
        started_before_ms: Some(3_000),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&window).await.unwrap()), ["c"]);
}

async fn concurrent_workers_merge_exactly(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    const WORKERS: u64 = 4;
    const SECONDS: u64 = 6;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 1..=SECONDS {
                let values = latencies(w * 100 + seq, 30);
                let d = delta(
                    "r1",
                    &format!("w{w}"),
                    seq,
                    SECOND + seq as i64,
                    vec![endpoint_delta(0, &values, 1), endpoint_delta(1, &values, 0)],
                );
                assert_eq!(store.apply_delta(&d).await.unwrap(), ApplyOutcome::Applied);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rows = store.seconds("r1", None).await.unwrap();
    assert_eq!(rows.len() as u64, SECONDS * 2);
    for row in &rows {
        let seq = (row.second - SECOND) as u64;
        let all: Vec<u64> = (0..WORKERS)
            .flat_map(|w| latencies(w * 100 + seq, 30))
            .collect();
        assert_eq!(row.counts.requests, 30 * WORKERS);
        assert_eq!(recorded(&row.histogram), recorded(&histogram_of(&all)));
    }
    let users = store.active_users("r1", None).await.unwrap();
    assert!(users.iter().all(|u| u.users == 5 * WORKERS));
    assert_eq!(
        store.failures("r1").await.unwrap()[0].count,
        WORKERS * SECONDS
    );
}

async fn repeated_failure_kinds_in_one_delta_add_up(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let mut endpoint = endpoint_delta(1, &latencies(1, 10), 5);
    endpoint.failures = vec![
        FailureCount {
            kind: "timeout".to_owned(),
            count: 2,
            last_message: "first".to_owned(),
        },
        FailureCount {
            kind: "connect".to_owned(),
            count: 1,
            last_message: "refused".to_owned(),
        },
        FailureCount {
            kind: "timeout".to_owned(),
            count: 2,
            last_message: "second".to_owned(),
        },
    ];
    store
        .apply_delta(&delta("r1", "w1", 1, SECOND, vec![endpoint]))
        .await
        .unwrap();
    let failures = store.failures("r1").await.unwrap();
    let summary: Vec<_> = failures
        .iter()
        .map(|f| {
            (
                f.endpoint,
                f.kind.as_str(),
                f.count,
                f.last_message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(1, "connect", 1, "refused"), (1, "timeout", 4, "second")]
    );
}

/// An open-model delta: corrected latencies `values`, uncorrected ones a
/// tenth of them, and `dropped` iterations.
fn open_delta(worker: &str, seq: u64, second: i64, values: &[u64], dropped: u64) -> Delta {
    let mut endpoint = endpoint_delta(0, values, 0);
    endpoint.uncorrected = Some(histogram_of(&tenths(values)));
    Delta {
        dropped,
        ..delta("r1", worker, seq, second, vec![endpoint])
    }
}

fn tenths(values: &[u64]) -> Vec<u64> {
    values.iter().map(|v| (v / 10).max(1)).collect()
}

async fn open_model_uncorrected_histograms_and_dropped_merge_exactly_once(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let a = latencies(11, 300);
    let b = latencies(12, 200);
    let c = latencies(13, 100);
    let first = open_delta("w1", 1, SECOND, &a, 4);
    assert_eq!(
        store.apply_delta(&first).await.unwrap(),
        ApplyOutcome::Applied
    );
    // A re-sent delta (lost acknowledgement) counts neither its requests nor its drops again.
    assert_eq!(
        store.apply_delta(&first).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    store
        .apply_delta(&open_delta("w2", 1, SECOND, &b, 3))
        .await
        .unwrap();
    // A delta with drops only (every user busy for the whole second).
    let only_drops = Delta {
        dropped: 10,
        ..delta("r1", "w1", 2, SECOND + 1, Vec::new())
    };
    store.apply_delta(&only_drops).await.unwrap();
    assert_eq!(
        store.apply_delta(&only_drops).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    store
        .apply_delta(&open_delta("w1", 3, SECOND + 2, &c, 0))
        .await
        .unwrap();
    // A closed-model endpoint (no uncorrected histogram) stays NULL.
    store
        .apply_delta(&delta(
            "r1",
            "w2",
            2,
            SECOND,
            vec![endpoint_delta(1, &c, 0)],
        ))
        .await
        .unwrap();

    let users = store.active_users("r1", None).await.unwrap();
    let dropped: Vec<(i64, u64)> = users.iter().map(|u| (u.second, u.dropped)).collect();
    assert_eq!(dropped, [(SECOND, 7), (SECOND + 1, 10), (SECOND + 2, 0)]);
    assert_eq!(store.dropped("r1").await.unwrap(), 17);
    assert_eq!(store.dropped("nope").await.unwrap(), 0);

    let rows = store.seconds("r1", None).await.unwrap();
    let ab: Vec<u64> = a.iter().chain(&b).copied().collect();
    assert_eq!((rows[0].second, rows[0].endpoint), (SECOND, 0));
    assert_eq!(rows[0].counts.requests, 500);
    assert_eq!(recorded(&rows[0].histogram), recorded(&histogram_of(&ab)));
    let uncorrected = rows[0].uncorrected.as_ref().expect("open-model row");
    assert_eq!(recorded(uncorrected), recorded(&histogram_of(&tenths(&ab))));
    assert_eq!((rows[1].second, rows[1].endpoint), (SECOND, 1));
    assert_eq!(rows[1].uncorrected, None);

    store
        .finish_run(
            "r1",
            &RunFinish {
                status: RunStatus::Finished,
                ended_at_ms: 10_000,
                error: None,
                lost_workers: Vec::new(),
            },
        )
        .await
        .unwrap();
    let summaries = store.summaries("r1").await.unwrap();
    let all: Vec<u64> = ab.iter().chain(&c).copied().collect();
    assert_eq!(summaries[0].counts.requests, 600);
    assert_eq!(
        recorded(&summaries[0].histogram),
        recorded(&histogram_of(&all))
    );
    let uncorrected = summaries[0]
        .uncorrected
        .as_ref()
        .expect("open-model summary");
    assert_eq!(
        recorded(uncorrected),
        recorded(&histogram_of(&tenths(&all)))
    );
    assert_eq!(summaries[1].uncorrected, None);
    assert_eq!(store.dropped("r1").await.unwrap(), 17);
}

async fn thresholds_are_stored_with_the_run(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    let announced: Vec<ThresholdRecord> = thresholds()
        .into_iter()
        .enumerate()
        .map(|(index, threshold)| ThresholdRecord {
            index: index as u32,
            threshold,
            observed: None,
            passed: None,
        })
        .collect();
    assert_eq!(store.thresholds("r1").await.unwrap(), announced);
    assert!(store.thresholds("nope").await.unwrap().is_empty());

    let results = [
        ThresholdOutcome {
            index: 0,
            observed: Some(180.25),
            passed: false,
        },
        ThresholdOutcome {
            index: 1,
            observed: None,
            passed: false,
        },
    ];
    // Results are final: not while the run is live.
    assert!(matches!(
        store.record_threshold_results("r1", &results).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.record_threshold_results("nope", &results).await,
        Err(StoreError::NotFound(_))
    ));
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: 2,
        error: Some("threshold failed: p95 < 150ms (observed 180.25 ms)".to_owned()),
        lost_workers: Vec::new(),
    };
    let record = store.finish_run("r1", &finish).await.unwrap();
    assert_eq!(record.error, finish.error);
    store
        .record_threshold_results("r1", &results)
        .await
        .unwrap();
    let stored = store.thresholds("r1").await.unwrap();
    assert_eq!(stored[0].observed, Some(180.25));
    assert_eq!(stored[0].passed, Some(false));
    assert_eq!(stored[1].observed, None);
    assert_eq!(stored[1].passed, Some(false));
    assert_eq!(stored[1].threshold, thresholds()[1]);

    // Recording again overwrites; a bad index writes nothing at all.
    let again = [
        ThresholdOutcome {
            index: 0,
            observed: Some(120.5),
            passed: true,
        },
        ThresholdOutcome {
            index: 7,
            observed: None,
            passed: true,
        },
    ];
    assert!(matches!(
        store.record_threshold_results("r1", &again).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.thresholds("r1").await.unwrap(), stored);
    store
        .record_threshold_results("r1", &again[..1])
        .await
        .unwrap();
    let stored = store.thresholds("r1").await.unwrap();
    assert_eq!(
        (stored[0].observed, stored[0].passed),
        (Some(120.5), Some(true))
    );
    assert_eq!(stored[1].passed, Some(false));
}

async fn labels_are_set_replaced_and_removed(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    store.create_run(&new_run("r2", "shop", 2)).await.unwrap();
    let record = store.set_label("r1", "release", "1.4.2").await.unwrap();
    assert_eq!(record.labels["release"], "1.4.2");
    assert_eq!(record.labels["env"], "ci");
    let record = store.set_label("r1", "env", "prod").await.unwrap();
    assert_eq!(record.labels["env"], "prod");
    assert_eq!(store.get_run("r1").await.unwrap().unwrap(), record);
    // The label rows follow: the filter finds the new value only.
    let prod = RunFilter {
        label: Some(("env".to_owned(), "prod".to_owned())),
        ..RunFilter::default()
    };
    let ids: Vec<String> = store
        .list_runs(&prod)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r1"]);
    let record = store.remove_label("r1", "env").await.unwrap();
    assert!(!record.labels.contains_key("env"));
    assert!(store.list_runs(&prod).await.unwrap().is_empty());
    // Removing a missing label is not an error.
    store.remove_label("r1", "env").await.unwrap();
    assert!(matches!(
        store.set_label("nope", "k", "v").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_label("nope", "k").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_label("r1", "a=b", "v").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_label("r1", " ", "v").await,
        Err(StoreError::Invalid(_))
    ));
    // The other run is untouched.
    assert_eq!(
        store.get_run("r2").await.unwrap().unwrap().labels["env"],
        "ci"
    );
}

async fn delete_removes_every_row_of_the_run(store: Arc<dyn Store>) {
    for id in ["r1", "r2"] {
        store.create_run(&new_run(id, "shop", 1)).await.unwrap();
        let mut values = latencies(7, 40);
        values.push(1);
        store
            .apply_delta(&delta(
                id,
                "w1",
                1,
                SECOND,
                vec![endpoint_delta(1, &values, 2)],
            ))
            .await
            .unwrap();
    }
    assert!(matches!(
        store.delete_run("r1").await,
        Err(StoreError::Invalid(_))
    ));
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: 5_000,
        error: None,
        lost_workers: Vec::new(),
    };
    store.finish_run("r1", &finish).await.unwrap();
    store.delete_run("r1").await.unwrap();
    assert_eq!(store.get_run("r1").await.unwrap(), None);
    assert!(store.endpoints("r1").await.unwrap().is_empty());
    assert!(store.seconds("r1", None).await.unwrap().is_empty());
    assert!(store.summaries("r1").await.unwrap().is_empty());
    assert!(store.failures("r1").await.unwrap().is_empty());
    assert!(store.thresholds("r1").await.unwrap().is_empty());
    assert!(store.watermarks("r1").await.unwrap().is_empty());
    assert!(store.active_users("r1", None).await.unwrap().is_empty());
    let env = RunFilter {
        label: Some(("env".to_owned(), "ci".to_owned())),
        ..RunFilter::default()
    };
    let ids: Vec<String> = store
        .list_runs(&env)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r2"]);
    assert!(matches!(
        store.delete_run("r1").await,
        Err(StoreError::NotFound(_))
    ));
    // The other run keeps all of its rows.
    assert_eq!(store.seconds("r2", None).await.unwrap().len(), 1);
    assert_eq!(store.failures("r2").await.unwrap().len(), 1);
}

async fn seconds_between_is_half_open(store: Arc<dyn Store>) {
    store.create_run(&new_run("r1", "shop", 1)).await.unwrap();
    for seq in 1..=6u64 {
        let values = latencies(seq, 10);
        store
            .apply_delta(&delta(
                "r1",
                "w1",
                seq,
                SECOND + seq as i64,
                vec![endpoint_delta(0, &values, 0), endpoint_delta(1, &values, 0)],
            ))
            .await
            .unwrap();
    }
    let rows = store
        .seconds_between("r1", SECOND + 2, SECOND + 5)
        .await
        .unwrap();
    let keys: Vec<(i64, u32)> = rows
        .iter()
        .map(|r| (r.second - SECOND, r.endpoint))
        .collect();
    assert_eq!(keys, [(2, 0), (2, 1), (3, 0), (3, 1), (4, 0), (4, 1)]);
    let all = store.seconds("r1", None).await.unwrap();
    assert_eq!(rows[..], all[2..8]);
    assert!(
        store
            .seconds_between("r1", SECOND + 5, SECOND + 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .seconds_between("nope", 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn latest_passing_run_skips_failed_and_later_runs(store: Arc<dyn Store>) {
    let passed = |index| ThresholdOutcome {
        index,
        observed: Some(1.0),
        passed: true,
    };
    let failed = |index| ThresholdOutcome {
        index,
        observed: Some(1.0),
        passed: false,
    };
    let finished = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: 0,
        error: None,
        lost_workers: Vec::new(),
    };
    // (id, started, how it ended, threshold results)
    let runs: [(&str, i64, RunFinish, Vec<ThresholdOutcome>); 5] = [
        ("a", 100, finished.clone(), vec![passed(0), passed(1)]),
        ("b", 200, finished.clone(), vec![passed(0), failed(1)]),
        (
            "c",
            300,
            RunFinish {
                status: RunStatus::Failed,
                ended_at_ms: 0,
                error: Some("boom".to_owned()),
                lost_workers: Vec::new(),
            },
            vec![passed(0), passed(1)],
        ),
        ("d", 400, finished.clone(), vec![passed(0)]),
        ("e", 500, finished.clone(), vec![passed(0), passed(1)]),
    ];
    for (id, started, finish, results) in &runs {
        store
            .create_run(&new_run(id, "shop", *started))
            .await
            .unwrap();
        store.finish_run(id, finish).await.unwrap();
        store.record_threshold_results(id, results).await.unwrap();
    }
    store
        .create_run(&new_run("other", "other", 450))
        .await
        .unwrap();
    store.finish_run("other", &finished).await.unwrap();
    store
        .record_threshold_results("other", &[passed(0), passed(1)])
        .await
        .unwrap();
    store
        .create_run(&new_run("live", "shop", 350))
        .await
        .unwrap();

    let latest = |before| {
        let store = store.clone();
        async move {
            store
                .latest_passing_run("shop", before)
                .await
                .unwrap()
                .map(|r| r.id)
        }
    };
    // d has a threshold without a result: not passing.
    assert_eq!(latest(501).await.as_deref(), Some("e"));
    assert_eq!(latest(500).await.as_deref(), Some("a"));
    assert_eq!(latest(100).await, None);
    let mut none = new_run("n", "bare", 10);
    none.thresholds.clear();
    store.create_run(&none).await.unwrap();
    store.finish_run("n", &finished).await.unwrap();
    let bare = store.latest_passing_run("bare", i64::MAX).await.unwrap();
    assert_eq!(bare.map(|r| r.id).as_deref(), Some("n"));
}

async fn target_samples_are_stored_per_second(store: Arc<dyn Store>) {
    store
        .create_run(&new_run("run-t", "shop", SECOND * 1000))
        .await
        .unwrap();
    assert!(store.target_samples("run-t").await.unwrap().is_empty());
    for (second, value) in [(SECOND + 2, 0.25), (SECOND, 1.5), (SECOND + 1, 0.0)] {
        store
            .record_target_sample("run-t", &TargetSample { second, value })
            .await
            .unwrap();
    }
    // A second sampled again keeps the latest value.
    store
        .record_target_sample(
            "run-t",
            &TargetSample {
                second: SECOND + 2,
                value: 0.75,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.target_samples("run-t").await.unwrap(),
        [
            TargetSample {
                second: SECOND,
                value: 1.5
            },
            TargetSample {
                second: SECOND + 1,
                value: 0.0
            },
            TargetSample {
                second: SECOND + 2,
                value: 0.75
            },
        ]
    );
    let unknown = store
        .record_target_sample(
            "nope",
            &TargetSample {
                second: SECOND,
                value: 1.0,
            },
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    assert!(store.target_samples("nope").await.unwrap().is_empty());
}

/// Run r1, started 0.7 s into second `SECOND` (its minutes origin), with
/// rows from 2 s before its start to 150 s after: endpoint 0 every second
/// from worker w1, endpoint 1 (open model, with uncorrected latencies) every
/// 7th second from worker w2, so some seconds lack an endpoint's row.
async fn seed_rollup_run(store: &Arc<dyn Store>) {
    store
        .create_run(&new_run("r1", "shop", SECOND * 1000 + 700))
        .await
        .unwrap();
    for (seq, t) in (-2..150i64).enumerate() {
        let values = latencies((t + 100) as u64, 5 + (t.unsigned_abs() as usize % 13));
        let failures = u64::from(t % 11 == 0);
        store
            .apply_delta(&delta(
                "r1",
                "w1",
                seq as u64 + 1,
                SECOND + t,
                vec![endpoint_delta(0, &values, failures)],
            ))
            .await
            .unwrap();
    }
    for (seq, t) in (-2..150i64).step_by(7).enumerate() {
        let values = latencies((t + 900) as u64, 9);
        let mut endpoint = endpoint_delta(1, &values, 0);
        endpoint.uncorrected = Some(histogram_of(&tenths(&values)));
        store
            .apply_delta(&delta(
                "r1",
                "w2",
                seq as u64 + 1,
                SECOND + t,
                vec![endpoint],
            ))
            .await
            .unwrap();
    }
}

/// Per endpoint: counts and recorded values of `rows` merged.
fn merged_per_endpoint<'a>(
    rows: impl Iterator<Item = (u32, &'a Counts, &'a LatencyHistogram)>,
) -> BTreeMap<u32, (Counts, Vec<(u64, u64)>)> {
    let mut merged: BTreeMap<u32, (Counts, LatencyHistogram)> = BTreeMap::new();
    for (endpoint, counts, histogram) in rows {
        let entry = merged.entry(endpoint).or_default();
        entry.0.add(counts);
        entry.1.merge(histogram).unwrap();
    }
    merged
        .into_iter()
        .map(|(endpoint, (counts, histogram))| (endpoint, (counts, recorded(&histogram))))
        .collect()
}

/// Per endpoint: uncorrected histograms of `rows` merged (open model only).
fn merged_uncorrected<'a>(
    rows: impl Iterator<Item = (u32, Option<&'a LatencyHistogram>)>,
) -> BTreeMap<u32, Vec<(u64, u64)>> {
    let mut merged: BTreeMap<u32, LatencyHistogram> = BTreeMap::new();
    for (endpoint, histogram) in rows {
        if let Some(histogram) = histogram {
            merged
                .entry(endpoint)
                .or_default()
                .merge(histogram)
                .unwrap();
        }
    }
    merged
        .into_iter()
        .map(|(endpoint, histogram)| (endpoint, recorded(&histogram)))
        .collect()
}

/// Distinct (block of `span` seconds aligned to `SECOND`, endpoint) pairs
/// of per-second rows: the rows a rollup level holds for them.
fn blocks_of(rows: &[SecondRow], span: i64) -> u64 {
    let blocks: std::collections::BTreeSet<(i64, u32)> = rows
        .iter()
        .map(|r| ((r.second - SECOND).div_euclid(span), r.endpoint))
        .collect();
    blocks.len() as u64
}

/// Checks a window `[from, to)` (seconds after `SECOND`) of run r1 read
/// through its rollup: the span is `expected` (`None`: open end, checked
/// loosely), each row is exactly its block's seconds merged, the blocks do
/// not overlap and stay inside the span, at most `max_edge` seconds (when
/// given) are left to read at each edge, and rollup rows + edge seconds == every
/// second of the window merged. Returns the span.
async fn check_window(
    store: &Arc<dyn Store>,
    (from, to): (i64, i64),
    expected: Option<(i64, i64)>,
    max_edge: Option<i64>,
) -> RollupSpan {
    let (from, to) = (SECOND + from, SECOND.saturating_add(to));
    let context = format!("window {}..{}", from - SECOND, to - SECOND);
    let span = store
        .rollup_between("r1", from, to)
        .await
        .unwrap()
        .expect("rolled up");
    match expected {
        Some((first, end)) => assert_eq!(
            (span.from_second - SECOND, span.to_second - SECOND),
            (first, end),
            "{context}"
        ),
        None => assert!(span.to_second > SECOND + 150, "{context}"),
    }
    assert!(from <= span.from_second && span.from_second <= span.to_second && span.to_second <= to);
    if let Some(max_edge) = max_edge.filter(|_| span.from_second < span.to_second) {
        assert!(span.from_second - from <= max_edge, "{context}");
        assert!(
            to == i64::MAX || to - span.to_second <= max_edge,
            "{context}"
        );
    }
    for row in &span.rows {
        assert!(matches!(row.span_s, 10 | 60), "{context}");
        assert_eq!((row.start - SECOND) % row.span_s, 0, "{context}: aligned");
        assert!(
            row.start >= span.from_second && row.start + row.span_s <= span.to_second,
            "{context}: inside the span"
        );
        let block = store
            .seconds_between("r1", row.start, row.start + row.span_s)
            .await
            .unwrap();
        let block: Vec<&SecondRow> = block
            .iter()
            .filter(|r| r.endpoint == row.endpoint)
            .collect();
        assert!(
            !block.is_empty(),
            "{context}: a row only for seconds with rows"
        );
        let expected =
            merged_per_endpoint(block.iter().map(|r| (r.endpoint, &r.counts, &r.histogram)));
        assert_eq!(
            expected[&row.endpoint],
            (row.counts, recorded(&row.histogram)),
            "{context}: block {} + {} s of endpoint {}",
            row.start - SECOND,
            row.span_s,
            row.endpoint
        );
        assert_eq!(
            merged_uncorrected(block.iter().map(|r| (r.endpoint, r.uncorrected.as_ref())))
                .get(&row.endpoint),
            row.uncorrected.as_ref().map(recorded).as_ref(),
            "{context}: uncorrected of block {}",
            row.start - SECOND
        );
    }
    // Ordered by start then endpoint, so blocks of one endpoint never overlap.
    let keys: Vec<(i64, u32)> = span.rows.iter().map(|r| (r.start, r.endpoint)).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{context}: ordered");
    for endpoint in [0, 1] {
        let blocks: Vec<(i64, i64)> = span
            .rows
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .map(|r| (r.start, r.start + r.span_s))
            .collect();
        assert!(
            blocks.windows(2).all(|w| w[0].1 <= w[1].0),
            "{context}: overlap"
        );
    }

    let window = store.seconds_between("r1", from, to).await.unwrap();
    let mut edges = store
        .seconds_between("r1", from, span.from_second)
        .await
        .unwrap();
    edges.extend(
        store
            .seconds_between("r1", span.to_second, to)
            .await
            .unwrap(),
    );
    let combined = merged_per_endpoint(
        span.rows
            .iter()
            .map(|r| (r.endpoint, &r.counts, &r.histogram))
            .chain(edges.iter().map(|r| (r.endpoint, &r.counts, &r.histogram))),
    );
    let expected =
        merged_per_endpoint(window.iter().map(|r| (r.endpoint, &r.counts, &r.histogram)));
    assert_eq!(combined, expected, "{context}");
    let combined = merged_uncorrected(
        span.rows
            .iter()
            .map(|r| (r.endpoint, r.uncorrected.as_ref()))
            .chain(edges.iter().map(|r| (r.endpoint, r.uncorrected.as_ref()))),
    );
    let expected = merged_uncorrected(window.iter().map(|r| (r.endpoint, r.uncorrected.as_ref())));
    assert_eq!(combined, expected, "{context}: uncorrected");
    span
}

/// Windows of r1 (data from 2 s before its start to 150 s after) with the
/// span of whole blocks each reads from the rollup: aligned to minutes, to
/// 10-second blocks, and to neither; `None`: the open end.
/// Seconds `[from, to)` after `SECOND`.
type Span = (i64, i64);

const WINDOWS: [(Span, Option<Span>); 14] = [
    // Aligned to minutes: minutes only.
    ((60, 120), Some((60, 120))),
    ((0, 180), Some((0, 180))),
    // Aligned to 10-second blocks: blocks at the edges, minutes inside.
    ((50, 130), Some((50, 130))),
    ((70, 100), Some((70, 100))),
    ((-20, 10), Some((-20, 10))),
    // Aligned to neither: at most 9 seconds per edge.
    ((61, 179), Some((70, 170))),
    ((-5, 125), Some((0, 120))),
    ((-7, 143), Some((0, 140))),
    ((3, 57), Some((10, 50))),
    ((30, i64::MAX - SECOND), None),
    // No whole block: seconds only.
    ((59, 61), Some((61, 61))),
    ((71, 79), Some((79, 79))),
    // Outside the run's seconds: no rows.
    ((-120, -60), Some((-120, -60))),
    ((200, 400), Some((200, 400))),
];

async fn rollup_equals_the_merged_seconds(store: Arc<dyn Store>) {
    seed_rollup_run(&store).await;
    // Running: no rollup yet, windows read seconds.
    assert_eq!(
        store
            .rollup_between("r1", i64::MIN, i64::MAX)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store.roll_up("r1").await,
        Err(StoreError::Invalid(_))
    ));
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: (SECOND + 150) * 1000,
        error: None,
        lost_workers: Vec::new(),
    };
    store.finish_run("r1", &finish).await.unwrap();
    assert!(!store.roll_up("r1").await.unwrap(), "built at finish");
    assert_eq!(
        store.rollup_between("nope", 0, i64::MAX).await.unwrap(),
        None
    );

    // The whole run: its minutes, each the seconds of that minute merged.
    let all = check_window(&store, (i64::MIN / 2, i64::MAX - SECOND), None, None).await;
    assert!(all.rows.iter().all(|r| r.span_s == 60));
    assert_eq!(all.rows.first().unwrap().start, SECOND - 60);
    assert_eq!(all.rows.last().unwrap().start, SECOND + 120);
    let seconds = store.seconds("r1", None).await.unwrap();
    assert_eq!(all.rows.len() as u64, blocks_of(&seconds, 60));

    for (window, expected) in WINDOWS {
        let span = check_window(&store, window, expected, Some(9)).await;
        let (first, end) = (span.from_second - SECOND, span.to_second - SECOND);
        // Whole minutes inside come from run_minutes, never as 6 blocks.
        for row in span.rows.iter().filter(|r| r.span_s == 10) {
            let minute = (row.start - SECOND).div_euclid(60) * 60;
            assert!(
                minute < first || minute + 60 > end,
                "window {window:?}: block {} inside a whole minute",
                row.start - SECOND
            );
        }
    }
    assert!(
        check_window(&store, (50, 130), Some((50, 130)), Some(9))
            .await
            .rows
            .iter()
            .any(|r| r.span_s == 10),
        "edges of a window aligned to 10 s come from run_tens"
    );

    // Summaries (built from the same pass) still equal the seconds merged.
    let summaries = store.summaries("r1").await.unwrap();
    let expected = merged_per_endpoint(
        seconds
            .iter()
            .map(|r| (r.endpoint, &r.counts, &r.histogram)),
    );
    for summary in &summaries {
        assert_eq!(
            expected[&summary.endpoint],
            (summary.counts, recorded(&summary.histogram))
        );
    }
}

/// Runs a statement with `$1` = `run_id` on the database behind a store.
async fn raw(url: &str, sql: &'static str, run_id: &str) -> u64 {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let done = sqlx::query(sql).bind(run_id).execute(&pool).await.unwrap();
        pool.close().await;
        done.rows_affected()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let done = sqlx::query(sql).bind(run_id).execute(&pool).await.unwrap();
        pool.close().await;
        done.rows_affected()
    }
}

async fn runs_that_ended_without_a_rollup_are_rolled_up_later(store: Arc<dyn Store>, url: &str) {
    seed_rollup_run(&store).await;
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: (SECOND + 150) * 1000,
        error: None,
        lost_workers: Vec::new(),
    };
    store.finish_run("r1", &finish).await.unwrap();
    let seconds = store.seconds("r1", None).await.unwrap();
    let mut built = Vec::new();
    for (window, expected) in WINDOWS {
        built.push(check_window(&store, window, expected, Some(9)).await);
    }

    // What a run that ended between migrations 0006 and 0007 looks like:
    // minutes, no 10-second blocks. Windows fall back to whole minutes and
    // up to 59 edge seconds, still exact.
    assert_eq!(
        raw(url, "DELETE FROM run_tens WHERE run_id = $1", "r1").await,
        blocks_of(&seconds, 10)
    );
    raw(
        url,
        "UPDATE runs SET tens_origin = NULL WHERE id = $1",
        "r1",
    )
    .await;
    let minutes_only = check_window(&store, (61, 179), Some((179, 179)), Some(59)).await;
    assert!(minutes_only.rows.is_empty());
    let minutes_only = check_window(&store, (31, 149), Some((60, 120)), Some(59)).await;
    assert!(minutes_only.rows.iter().all(|r| r.span_s == 60));
    assert!(store.roll_up("r1").await.unwrap(), "builds the blocks");
    assert!(!store.roll_up("r1").await.unwrap());
    for ((window, expected), built) in WINDOWS.into_iter().zip(&built) {
        assert_eq!(
            &check_window(&store, window, expected, Some(9)).await,
            built
        );
    }
    assert_eq!(
        raw(url, "DELETE FROM run_minutes WHERE run_id = $1", "r1").await,
        blocks_of(&seconds, 60),
        "the minutes were left as they were"
    );

    // What a run that ended before migration 0006 looks like: no rollup.
    raw(url, "DELETE FROM run_tens WHERE run_id = $1", "r1").await;
    raw(
        url,
        "UPDATE runs SET minutes_origin = NULL, tens_origin = NULL WHERE id = $1",
        "r1",
    )
    .await;
    assert_eq!(
        store
            .rollup_between("r1", i64::MIN, i64::MAX)
            .await
            .unwrap(),
        None
    );
    assert!(store.roll_up("r1").await.unwrap());
    assert!(!store.roll_up("r1").await.unwrap());
    for ((window, expected), built) in WINDOWS.into_iter().zip(&built) {
        assert_eq!(
            &check_window(&store, window, expected, Some(9)).await,
            built
        );
    }
    assert!(matches!(
        store.roll_up("nope").await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting the run deletes both levels.
    store.delete_run("r1").await.unwrap();
    assert_eq!(
        raw(url, "DELETE FROM run_minutes WHERE run_id = $1", "r1").await,
        0
    );
    assert_eq!(
        raw(url, "DELETE FROM run_tens WHERE run_id = $1", "r1").await,
        0
    );
}

/// A run's checks are stored with it; deltas add their counts once (a
/// re-sent delta adds nothing) and a count for a check outside the table
/// is refused with nothing of the delta applied.
async fn check_counts_add_up_exactly_once(store: Arc<dyn Store>) {
    let mut run = new_run("r1", "shop", 1);
    run.checks = vec![
        CheckDef {
            index: 0,
            endpoint: 0,
            name: "body contains \"ok\"".to_owned(),
        },
        CheckDef {
            index: 1,
            endpoint: 1,
            name: "order id".to_owned(),
        },
    ];
    store.create_run(&run).await.unwrap();
    let counts = |check: u32, passed: u64, failed: u64| CheckCount {
        check,
        passed,
        failed,
    };
    let values = latencies(5, 10);
    let mut items = endpoint_delta(0, &values, 0);
    items.checks = vec![counts(0, 9, 1)];
    let mut orders = endpoint_delta(1, &values, 0);
    orders.checks = vec![counts(1, 10, 0)];
    let first = delta("r1", "w1", 1, SECOND, vec![items.clone(), orders]);
    assert_eq!(
        store.apply_delta(&first).await.unwrap(),
        ApplyOutcome::Applied
    );
    assert_eq!(
        store.apply_delta(&first).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    let second = delta("r1", "w2", 1, SECOND, vec![items.clone()]);
    assert_eq!(
        store.apply_delta(&second).await.unwrap(),
        ApplyOutcome::Applied
    );
    let totals: Vec<(String, u64, u64)> = store
        .checks("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.def.name, c.passed, c.failed))
        .collect();
    assert_eq!(
        totals,
        [
            ("body contains \"ok\"".to_owned(), 18, 2),
            ("order id".to_owned(), 10, 0)
        ]
    );
    // Check 1 belongs to endpoint 1, check 7 to none: refused, nothing applied.
    for bad in [counts(1, 1, 0), counts(7, 1, 0)] {
        let mut wrong = items.clone();
        wrong.checks = vec![bad];
        let third = delta("r1", "w3", 1, SECOND, vec![wrong]);
        assert!(matches!(
            store.apply_delta(&third).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let seconds = store.seconds("r1", None).await.unwrap();
    let requests: u64 = seconds.iter().map(|row| row.counts.requests).sum();
    assert_eq!(requests, 30, "the refused deltas left no row behind");
    assert!(
        store
            .watermarks("r1")
            .await
            .unwrap()
            .iter()
            .all(|m| m.worker_id != "w3")
    );
    // A check table with a hole, or a check of no endpoint, is refused.
    let mut holes = new_run("r2", "shop", 1);
    holes.checks = vec![CheckDef {
        index: 1,
        endpoint: 0,
        name: "x".to_owned(),
    }];
    assert!(matches!(
        store.create_run(&holes).await,
        Err(StoreError::Invalid(_))
    ));
    holes.checks[0] = CheckDef {
        index: 0,
        endpoint: 2,
        name: "x".to_owned(),
    };
    assert!(matches!(
        store.create_run(&holes).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.checks("unknown").await.unwrap().is_empty());
}

/// One transaction for many deltas (the collector's group commit) gives
/// exactly what applying them one by one gives: rows, users, failures and
/// watermarks, with duplicates, gaps and unknown runs answered per delta.
async fn a_batch_applies_like_its_deltas_one_by_one(store: Arc<dyn Store>) {
    let deltas = |run: &str| {
        vec![
            delta(
                run,
                "w1",
                1,
                SECOND,
                vec![
                    endpoint_delta(0, &latencies(1, 300), 3),
                    endpoint_delta(1, &latencies(2, 50), 0),
                ],
            ),
            delta(
                run,
                "w2",
                1,
                SECOND,
                vec![endpoint_delta(0, &latencies(3, 200), 1)],
            ),
            delta(
                run,
                "w1",
                2,
                SECOND + 1,
                vec![endpoint_delta(0, &latencies(4, 120), 0)],
            ),
            // Already applied (its acknowledgement lost): a duplicate.
            delta(
                run,
                "w1",
                1,
                SECOND,
                vec![endpoint_delta(0, &latencies(1, 300), 3)],
            ),
            // w3's first delta never came: a gap, refused alone.
            delta(
                run,
                "w3",
                2,
                SECOND,
                vec![endpoint_delta(0, &latencies(5, 10), 0)],
            ),
            delta(
                run,
                "w2",
                2,
                SECOND,
                vec![endpoint_delta(1, &latencies(6, 80), 2)],
            ),
        ]
    };
    store
        .create_run(&new_run("batched", "shop", 1))
        .await
        .unwrap();
    store
        .create_run(&new_run("single", "shop", 1))
        .await
        .unwrap();
    let mut batch = deltas("batched");
    batch.push(delta(
        "no-such-run",
        "w1",
        1,
        SECOND,
        vec![endpoint_delta(0, &[5], 0)],
    ));
    let outcomes = store.apply_batch(&batch).await.unwrap();
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(ApplyOutcome::Applied) => "applied".to_owned(),
            Ok(ApplyOutcome::Duplicate) => "duplicate".to_owned(),
            Err(StoreError::Gap { .. }) => "gap".to_owned(),
            Err(StoreError::NotFound(_)) => "not found".to_owned(),
            Err(other) => format!("{other}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "applied",
            "applied",
            "applied",
            "duplicate",
            "gap",
            "applied",
            "not found"
        ]
    );
    for one in deltas("single") {
        let _ = store.apply_delta(&one).await;
    }
    let rows = |run: &'static str| {
        let store = store.clone();
        async move {
            store
                .seconds(run, None)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.second, r.endpoint, r.counts, recorded(&r.histogram)))
                .collect::<Vec<_>>()
        }
    };
    let batched = rows("batched").await;
    assert_eq!(batched.len(), 3, "(second, endpoint) rows: S/0, S/1, S+1/0");
    assert_eq!(batched, rows("single").await);
    assert_eq!(batched[0].2.requests, 500);
    let users = |run: &'static str| {
        let store = store.clone();
        async move {
            store
                .active_users(run, None)
                .await
                .unwrap()
                .into_iter()
                .map(|u| (u.second, u.users))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(users("batched").await, users("single").await);
    let failures = |run: &'static str| {
        let store = store.clone();
        async move {
            store
                .failures(run)
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.endpoint, f.kind, f.count))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(failures("batched").await, failures("single").await);
    let marks = |run: &'static str| {
        let store = store.clone();
        async move {
            let mut marks: Vec<_> = store
                .watermarks(run)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.worker_id, m.seq, m.requests))
                .collect();
            marks.sort();
            marks
        }
    };
    assert_eq!(marks("batched").await, marks("single").await);
    // The same batch again: every applied delta is now a duplicate.
    let again = store.apply_batch(&deltas("batched")).await.unwrap();
    assert!(again.iter().enumerate().all(|(i, o)| if i == 4 {
        matches!(o, Err(StoreError::Gap { .. }))
    } else {
        matches!(o, Ok(ApplyOutcome::Duplicate))
    }));
    assert_eq!(rows("batched").await, batched);
}
