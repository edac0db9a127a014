//! The history queries over a real store (SQLite and Postgres): merged
//! histogram percentiles, windows, baselines and trends.

use std::collections::BTreeMap;
use std::sync::Arc;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_history::{Metric, Tolerance, Window};
use cicada_store::testing::TestDatabase;
use cicada_store::{Delta, Endpoint, EndpointDelta, NewRun, RunFinish, RunStatus, Store};

const START_S: i64 = 1_700_000_000;

/// A run of 10 seconds whose second `t` has 100 requests of `base + t` ms.
async fn seed(store: &Arc<dyn Store>, id: &str, started_offset_s: i64, base_ms: u64) {
    store
        .create_run(&NewRun {
            checks: Default::default(),
            id: id.to_owned(),
            scenario_name: "shop".to_owned(),
            scenario_yaml: "name: shop\n".to_owned(),
            host: "http://h".to_owned(),
            config_json: "{}".to_owned(),
            labels: BTreeMap::new(),
            started_at_ms: (START_S + started_offset_s) * 1000,
            endpoints: vec![Endpoint {
                index: 0,
                method: "GET".to_owned(),
                name: "/".to_owned(),
            }],
            thresholds: Vec::new(),
        })
        .await
        .unwrap();
    for t in 0..10u64 {
        let mut histogram = LatencyHistogram::new();
        histogram.record_n_us((base_ms + t) * 1000, 100);
        store
            .apply_delta(&Delta {
                run_id: id.to_owned(),
                worker_id: "w".to_owned(),
                seq: t + 1,
                second: START_S + started_offset_s + t as i64,
                active_users: t as u32 + 1,
                dropped: 0,
                endpoints: vec![EndpointDelta {
                    checks: Default::default(),
                    endpoint: 0,
                    counts: Counts {
                        requests: 100,
                        failures: 0,
                        cancelled: 0,
                        bytes: 0,
                    },
                    histogram,
                    uncorrected: None,
                    failures: Vec::new(),
                }],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: (START_S + started_offset_s + 10) * 1000,
        error: None,
        lost_workers: Vec::new(),
    };
    store.finish_run(id, &finish).await.unwrap();
}

async fn queries(store: Arc<dyn Store>) {
    seed(&store, "a", 0, 100).await;
    seed(&store, "b", 100, 200).await;
    let whole = cicada_history::compare(&*store, "a", "b", Window::default(), Tolerance(0.05))
        .await
        .unwrap();
    assert!(whole.regression);
    let p99 = whole
        .total
        .metrics
        .iter()
        .find(|m| m.metric == Metric::P99)
        .unwrap();
    // Merged histogram: 1,000 requests, the top 1% at 109 ms (A) / 209 ms (B),
    // within the histogram's precision.
    assert!((p99.a - 109.0).abs() < 0.2, "{}", p99.a);
    assert!((p99.b - 209.0).abs() < 0.2, "{}", p99.b);
    let requests = &whole.total.metrics[0];
    assert_eq!((requests.a, requests.b), (1000.0, 1000.0));
    let rps = &whole.total.metrics[1];
    assert_eq!((rps.a, rps.b), (100.0, 100.0));

    // Window [2 s, 5 s): seconds 2, 3, 4 only.
    let window = Window::new(Some(2), Some(5)).unwrap();
    let detail = cicada_history::show(&*store, "a", window).await.unwrap();
    assert_eq!(detail.total.requests, 300);
    assert_eq!(detail.duration_s, 3.0);
    assert_eq!(
        detail.series.iter().map(|p| p.t_s).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    // Users running in each second of the window, as the worker reported.
    assert_eq!(
        detail.series.iter().map(|p| p.users).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!((detail.total.max_ms - 104.0).abs() < 0.2);
    assert!((detail.total.p50_ms - 103.0).abs() < 0.2);
    let windowed = cicada_history::compare(&*store, "b", "a", window, Tolerance(0.05))
        .await
        .unwrap();
    assert!(!windowed.regression, "A is faster than B");
    assert_eq!(windowed.total.metrics[0].a, 300.0);

    assert_eq!(
        cicada_history::latest_passing_baseline(&*store, "b")
            .await
            .unwrap(),
        "a"
    );
    assert!(
        cicada_history::latest_passing_baseline(&*store, "a")
            .await
            .is_err()
    );
    let trend = cicada_history::trend(&*store, "shop", Metric::P50, Some("GET /"), 30)
        .await
        .unwrap();
    let ids: Vec<&str> = trend.points.iter().map(|p| p.run_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(trend.points[1].value.unwrap() > trend.points[0].value.unwrap());
    assert!(matches!(
        cicada_history::show(&*store, "nope", Window::default()).await,
        Err(cicada_history::HistoryError::NotFound(_))
    ));
}

#[tokio::test]
async fn queries_on_sqlite() {
    let db = TestDatabase::sqlite().unwrap();
    queries(db.connect().await.unwrap()).await;
}

#[tokio::test]
async fn queries_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    queries(db.connect().await.unwrap()).await;
}

/// A run of 200 s started 0.3 s into a second, two endpoints whose
/// latencies change every second; finished unless `running`.
async fn seed_long(store: &Arc<dyn Store>, id: &str, running: bool) {
    let endpoint = |index: u32, name: &str| Endpoint {
        index,
        method: "GET".to_owned(),
        name: name.to_owned(),
    };
    store
        .create_run(&NewRun {
            checks: Default::default(),
            id: id.to_owned(),
            scenario_name: "long".to_owned(),
            scenario_yaml: "name: long\n".to_owned(),
            host: "http://h".to_owned(),
            config_json: "{}".to_owned(),
            labels: BTreeMap::new(),
            started_at_ms: START_S * 1000 + 300,
            endpoints: vec![endpoint(0, "/a"), endpoint(1, "/b")],
            thresholds: Vec::new(),
        })
        .await
        .unwrap();
    for t in 0..200u64 {
        let endpoints = (0..2u32)
            .map(|e| {
                let mut histogram = LatencyHistogram::new();
                for i in 0..(5 + t % 7) {
                    histogram
                        .record_us(1_000 + (t * 7_919 + i * 104_729 + u64::from(e) * 31) % 20_000);
                }
                EndpointDelta {
                    checks: Default::default(),
                    endpoint: e,
                    counts: Counts {
                        requests: histogram.len(),
                        failures: u64::from(t % 13 == 0),
                        cancelled: 0,
                        bytes: 10 * histogram.len(),
                    },
                    histogram,
                    uncorrected: None,
                    failures: Vec::new(),
                }
            })
            .collect();
        store
            .apply_delta(&Delta {
                run_id: id.to_owned(),
                worker_id: "w".to_owned(),
                seq: t + 1,
                second: START_S + t as i64,
                active_users: 1,
                dropped: 0,
                endpoints,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    if !running {
        let finish = RunFinish {
            status: RunStatus::Finished,
            ended_at_ms: (START_S + 200) * 1000 + 300,
            error: None,
            lost_workers: Vec::new(),
        };
        store.finish_run(id, &finish).await.unwrap();
    }
}

/// Windowed numbers through the rollup (finished run: minutes, 10-second
/// blocks, edge seconds) and from the seconds only (running run) equal
/// merging every second of the window directly, for windows aligned to
/// minutes, to 10-second blocks and to neither.
async fn windows_equal_the_per_second_merge(store: Arc<dyn Store>) {
    seed_long(&store, "done", false).await;
    seed_long(&store, "live", true).await;
    assert!(
        store
            .rollup_between("done", i64::MIN, i64::MAX)
            .await
            .unwrap()
            .is_some_and(|span| !span.rows.is_empty())
    );
    assert!(
        store
            .rollup_between("done", START_S + 50, START_S + 130)
            .await
            .unwrap()
            .is_some_and(|span| span.rows.iter().any(|r| r.span_s == 10)
                && span.rows.iter().any(|r| r.span_s == 60))
    );
    let windows = [
        // Aligned to minutes.
        (Some(60), Some(180)),
        (Some(0), Some(120)),
        (Some(120), None),
        // Aligned to 10-second blocks.
        (Some(50), Some(130)),
        (Some(70), Some(190)),
        (Some(10), Some(50)),
        (Some(30), None),
        // Aligned to neither.
        (Some(61), Some(179)),
        (Some(1), Some(200)),
        (Some(3), Some(57)),
        (Some(90), Some(151)),
        (Some(17), None),
        (None, Some(155)),
        // No whole 10-second block.
        (Some(59), Some(61)),
        (Some(71), Some(79)),
    ];
    for (from, to) in windows {
        let window = Window::new(from, to).unwrap();
        let (first, end) = (
            START_S + from.unwrap_or(0) as i64,
            to.map_or(i64::MAX, |to| START_S + to as i64),
        );
        for id in ["done", "live"] {
            let detail = cicada_history::show(&*store, id, window).await.unwrap();
            let mut merged = [
                (Counts::default(), LatencyHistogram::new()),
                (Counts::default(), LatencyHistogram::new()),
            ];
            let mut total = (Counts::default(), LatencyHistogram::new());
            for row in store.seconds_between(id, first, end).await.unwrap() {
                let slot = &mut merged[row.endpoint as usize];
                slot.0.add(&row.counts);
                slot.1.merge(&row.histogram).unwrap();
                total.0.add(&row.counts);
                total.1.merge(&row.histogram).unwrap();
            }
            assert!(total.0.requests > 0);
            let duration = detail.duration_s;
            for (e, (counts, histogram)) in merged.iter().enumerate() {
                assert_eq!(
                    detail.endpoints[e].metrics,
                    cicada_history::Metrics::new(*counts, histogram, duration),
                    "{id} window {from:?}..{to:?} endpoint {e}"
                );
            }
            assert_eq!(
                detail.total,
                cicada_history::Metrics::new(total.0, &total.1, duration),
                "{id} window {from:?}..{to:?}"
            );
        }
        let comparison = cicada_history::compare(&*store, "live", "done", window, Tolerance(0.05))
            .await
            .unwrap();
        assert!(!comparison.regression, "the same numbers in both runs");
    }
}

#[tokio::test]
async fn windows_equal_the_per_second_merge_on_sqlite() {
    let db = TestDatabase::sqlite().unwrap();
    windows_equal_the_per_second_merge(db.connect().await.unwrap()).await;
}

#[tokio::test]
async fn windows_equal_the_per_second_merge_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    windows_equal_the_per_second_merge(db.connect().await.unwrap()).await;
}
