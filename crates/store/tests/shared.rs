//! Several collectors on one Postgres database: their group-commit batches
//! run concurrently over the same (run, second, endpoint) rows and the same
//! run-wide failure and check rows. Every batch must commit (row locks taken
//! in one fixed order: no deadlock, no lost update) and the stored totals
//! must be exactly what was sent. SQLite serializes writers, so this is
//! Postgres only.

use std::collections::BTreeMap;
use std::sync::Arc;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_store::testing::TestDatabase;
use cicada_store::{
    ApplyOutcome, CheckCount, CheckDef, Delta, Endpoint, EndpointDelta, FailureCount, NewRun,
    RunFinish, RunStatus, Store,
};

const SECOND: i64 = 1_700_000_000;
/// Concurrent writers (collectors), each with its own workers.
const WRITERS: u64 = 4;
const WORKERS_PER_WRITER: u64 = 3;
/// Batches per writer; each covers three seconds per worker.
const ROUNDS: u64 = 15;
const ENDPOINTS: u32 = 3;

fn run() -> NewRun {
    NewRun {
        id: "shared".to_owned(),
        scenario_name: "shop".to_owned(),
        scenario_yaml: "name: shop\n".to_owned(),
        host: "http://127.0.0.1:8080".to_owned(),
        config_json: "{}".to_owned(),
        labels: BTreeMap::new(),
        started_at_ms: SECOND * 1000,
        endpoints: (0..ENDPOINTS)
            .map(|index| Endpoint {
                index,
                method: "GET".to_owned(),
                name: format!("/e{index}"),
            })
            .collect(),
        thresholds: Vec::new(),
        // One check on every endpoint: check i belongs to endpoint i.
        checks: (0..ENDPOINTS)
            .map(|index| CheckDef {
                index,
                endpoint: index,
                name: format!("check {index}"),
            })
            .collect(),
    }
}

/// The delta `seq` of `worker` for `second`: every endpoint, a failure kind
/// shared by all workers and a check count on each endpoint.
fn delta(worker: u64, seq: u64, second: i64) -> Delta {
    let endpoints = (0..ENDPOINTS)
        .map(|endpoint| {
            let requests = 1 + (worker * 7 + seq * 3 + u64::from(endpoint)) % 11;
            let mut histogram = LatencyHistogram::new();
            for i in 0..requests {
                histogram.record_us(100 + (worker * 1_000 + seq * 10 + i) % 50_000);
            }
            EndpointDelta {
                endpoint,
                counts: Counts {
                    requests,
                    failures: 1,
                    cancelled: 0,
                    bytes: 10 * requests,
                },
                histogram,
                uncorrected: None,
                failures: vec![FailureCount {
                    kind: "status 503".to_owned(),
                    count: 1,
                    last_message: format!("w{worker} seq {seq}"),
                }],
                checks: vec![CheckCount {
                    check: endpoint,
                    passed: requests - 1,
                    failed: 1,
                }],
            }
        })
        .collect();
    Delta {
        run_id: "shared".to_owned(),
        worker_id: format!("w{worker}"),
        seq,
        first_seq: seq,
        second,
        active_users: 1,
        endpoints,
        ..Default::default()
    }
}

/// Writer `writer`'s batch of round `round`: three deltas per worker, over
/// seconds that overlap the other writers' batches of the same round.
fn batch(writer: u64, round: u64) -> Vec<Delta> {
    let mut deltas = Vec::new();
    for w in 0..WORKERS_PER_WRITER {
        let worker = writer * WORKERS_PER_WRITER + w;
        for k in 0..3 {
            let seq = round * 3 + k + 1;
            let second = SECOND + (round + (writer + k) % 3) as i64;
            deltas.push(delta(worker, seq, second));
        }
    }
    deltas
}

#[tokio::test]
async fn concurrent_batches_over_shared_rows_all_commit_exactly() {
    let db = TestDatabase::postgres().await.expect("create database");
    // One store (pool) per writer, as separate collector processes have.
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..WRITERS {
        stores.push(db.connect().await.expect("connect"));
    }
    stores[0].create_run(&run()).await.unwrap();
    let mut tasks = Vec::new();
    for (writer, store) in stores.iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let deltas = batch(writer as u64, round);
                let outcomes = store
                    .apply_batch(&deltas)
                    .await
                    .unwrap_or_else(|error| panic!("writer {writer} round {round}: {error}"));
                assert!(
                    outcomes
                        .iter()
                        .all(|outcome| matches!(outcome, Ok(ApplyOutcome::Applied))),
                    "writer {writer} round {round}: {outcomes:?}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let mut requests = vec![0u64; ENDPOINTS as usize];
    let mut histograms: Vec<LatencyHistogram> =
        (0..ENDPOINTS).map(|_| LatencyHistogram::new()).collect();
    let mut sent = 0u64;
    for writer in 0..WRITERS {
        for round in 0..ROUNDS {
            for delta in batch(writer, round) {
                sent += 1;
                for endpoint in &delta.endpoints {
                    requests[endpoint.endpoint as usize] += endpoint.counts.requests;
                    histograms[endpoint.endpoint as usize]
                        .merge(&endpoint.histogram)
                        .unwrap();
                }
            }
        }
    }
    let store = &stores[0];
    let mut stored = vec![0u64; ENDPOINTS as usize];
    for row in store.seconds("shared", None).await.unwrap() {
        stored[row.endpoint as usize] += row.counts.requests;
    }
    assert_eq!(stored, requests);
    let failures: Vec<(u32, u64)> = store
        .failures("shared")
        .await
        .unwrap()
        .iter()
        .map(|f| (f.endpoint, f.count))
        .collect();
    assert_eq!(
        failures,
        (0..ENDPOINTS).map(|e| (e, sent)).collect::<Vec<_>>(),
        "one failure per delta and endpoint"
    );
    let checks: Vec<(u64, u64)> = store
        .checks("shared")
        .await
        .unwrap()
        .iter()
        .map(|c| (c.passed + c.failed, c.failed))
        .collect();
    assert_eq!(
        checks,
        requests.iter().map(|r| (*r, sent)).collect::<Vec<_>>()
    );
    let users: u64 = store
        .active_users("shared", None)
        .await
        .unwrap()
        .iter()
        .map(|u| u.users)
        .sum();
    assert_eq!(users, sent);
    let marks = store.watermarks("shared").await.unwrap();
    assert_eq!(marks.len() as u64, WRITERS * WORKERS_PER_WRITER);
    assert!(marks.iter().all(|m| m.seq == ROUNDS * 3), "{marks:?}");

    let record = store
        .finish_run(
            "shared",
            &RunFinish {
                status: RunStatus::Finished,
                ended_at_ms: (SECOND + ROUNDS as i64 + 3) * 1000,
                error: None,
                lost_workers: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Finished);
    for summary in store.summaries("shared").await.unwrap() {
        let endpoint = summary.endpoint as usize;
        assert_eq!(summary.counts.requests, requests[endpoint]);
        assert_eq!(
            summary.histogram.iter_recorded().collect::<Vec<_>>(),
            histograms[endpoint].iter_recorded().collect::<Vec<_>>()
        );
    }
}
