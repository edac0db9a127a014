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
            })
            .await
            .unwrap();
    }
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: (START_S + started_offset_s + 10) * 1000,
        error: None,
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
