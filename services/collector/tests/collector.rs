//! The collector end to end: the real service on 127.0.0.1:0 over a real
//! Postgres database and a SQLite file, driven by the generated gRPC client.

#[path = "support/collector.rs"]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use cicada_histogram::{Counts, LatencyHistogram, Summary};
use cicada_proto::v1;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::testing::TestDatabase;
use support::Collector;
use tonic::transport::Channel;

use cicada_store::both_databases;

both_databases!(
    two_workers_merge_exactly_and_resends_are_not_counted,
    bad_requests_get_the_right_codes_and_change_nothing,
    finish_waits_for_missing_deltas,
    finish_gives_up_after_wait_ms,
    a_restarted_collector_rebuilds_the_live_view,
    concurrent_workers_merge_exactly,
    two_collectors_share_one_database,
    runs_are_listed_newest_first_by_state,
    open_model_deltas_merge_exactly_live_final_and_after_a_restart,
    thresholds_are_checked_live_and_stored_at_finish,
    live_stats_over_4_mib_reach_clients_with_the_collector_limit,
);

const SECOND: i64 = 1_700_000_000;
const STARTED_AT_MS: i64 = SECOND * 1000;

fn create_request(run_id: &str) -> v1::CreateRunRequest {
    v1::CreateRunRequest {
        checks: Default::default(),
        run_id: run_id.to_owned(),
        scenario_name: "shop".to_owned(),
        scenario_yaml: "name: shop\n".to_owned(),
        host: "http://127.0.0.1:9".to_owned(),
        config_json: r#"{"users":20}"#.to_owned(),
        labels: HashMap::from([("env".to_owned(), "test".to_owned())]),
        started_at_ms: STARTED_AT_MS,
        endpoints: vec![
            v1::Endpoint {
                index: 0,
                method: "GET".to_owned(),
                name: "/items".to_owned(),
            },
            v1::Endpoint {
                index: 1,
                method: "POST".to_owned(),
                name: "/orders".to_owned(),
            },
        ],
        thresholds: Vec::new(),
    }
}

/// Deterministic latencies in microseconds.
fn latencies(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            500 + (state >> 33) % 400_000
        })
        .collect()
}

/// What the test expects, recorded alongside the deltas it sends.
#[derive(Default)]
struct Expected {
    /// Per endpoint: counts and every latency in one histogram.
    endpoints: [(Counts, LatencyHistogram); 2],
    /// Per second: counts and histogram over all endpoints, active users.
    seconds: HashMap<i64, (Counts, LatencyHistogram, u64)>,
    failures: HashMap<(u32, String), u64>,
}

/// Builds a delta of `worker` for `second` and records it in `expected`.
fn make_delta(
    expected: &mut Expected,
    worker: &str,
    seq: u64,
    second: i64,
    users: u32,
) -> v1::WorkerDelta {
    let mut endpoints = Vec::new();
    for endpoint in 0..2u32 {
        let seed = seq * 1000
            + u64::from(endpoint) * 10
            + worker.len() as u64
            + worker.as_bytes()[1] as u64;
        let values = latencies(seed, 40 + (seed % 23) as usize);
        let mut histogram = LatencyHistogram::new();
        for v in &values {
            histogram.record_us(*v);
        }
        let counts = Counts {
            requests: values.len() as u64,
            failures: u64::from(endpoint) + seq % 2,
            cancelled: u64::from(seq == 3),
            bytes: 512 * values.len() as u64 + seq,
        };
        let entry = &mut expected.endpoints[endpoint as usize];
        entry.0.add(&counts);
        entry.1.merge(&histogram).unwrap();
        let per_second = expected.seconds.entry(second).or_default();
        per_second.0.add(&counts);
        per_second.1.merge(&histogram).unwrap();
        let failures_by_kind = if counts.failures > 0 {
            *expected
                .failures
                .entry((endpoint, "status 503".to_owned()))
                .or_default() += counts.failures;
            vec![v1::FailureCount {
                kind: "status 503".to_owned(),
                count: counts.failures,
                last_message: format!("503 from {worker} seq {seq}"),
            }]
        } else {
            Vec::new()
        };
        endpoints.push(v1::EndpointDelta {
            checks: Default::default(),
            endpoint,
            requests: counts.requests,
            failures: counts.failures,
            cancelled: counts.cancelled,
            bytes: counts.bytes,
            histogram: histogram.encode().unwrap(),
            failures_by_kind,
            uncorrected_histogram: Vec::new(),
        });
    }
    expected.seconds.entry(second).or_default().2 += u64::from(users);
    v1::WorkerDelta {
        run_id: "run-1".to_owned(),
        worker_id: worker.to_owned(),
        seq,
        second,
        endpoints,
        active_users: users,
        dropped: 0,
        ..Default::default()
    }
}

async fn push(
    client: &mut CollectorClient<Channel>,
    deltas: Vec<v1::WorkerDelta>,
) -> Result<v1::PushDeltasResponse, tonic::Status> {
    client
        .push_deltas(v1::PushDeltasRequest { deltas })
        .await
        .map(tonic::Response::into_inner)
}

async fn stats(client: &mut CollectorClient<Channel>) -> v1::RunStats {
    client
        .get_run_stats(v1::GetRunStatsRequest {
            run_id: "run-1".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Asserts `actual` equals the summary of `counts` and `histogram`.
fn assert_endpoint(
    actual: &v1::EndpointStats,
    counts: Counts,
    histogram: &LatencyHistogram,
    duration_s: f64,
) {
    let expected = Summary::new(counts, histogram, duration_s);
    assert_eq!(actual.requests, counts.requests, "{}", actual.name);
    assert_eq!(actual.failures, counts.failures, "{}", actual.name);
    assert_eq!(actual.cancelled, counts.cancelled, "{}", actual.name);
    assert_eq!(actual.bytes, counts.bytes, "{}", actual.name);
    assert_eq!(actual.rps, expected.rps, "{}", actual.name);
    assert_eq!(actual.p50_ms, expected.p50_ms, "{}", actual.name);
    assert_eq!(actual.p90_ms, expected.p90_ms, "{}", actual.name);
    assert_eq!(actual.p95_ms, expected.p95_ms, "{}", actual.name);
    assert_eq!(actual.p99_ms, expected.p99_ms, "{}", actual.name);
    assert_eq!(actual.p999_ms, expected.p999_ms, "{}", actual.name);
    assert_eq!(actual.max_ms, expected.max_ms, "{}", actual.name);
    assert_eq!(actual.min_ms, expected.min_ms, "{}", actual.name);
    assert_eq!(actual.mean_ms, expected.mean_ms, "{}", actual.name);
    assert_eq!(actual.avg_size, expected.avg_size, "{}", actual.name);
}

/// Asserts every endpoint, the total and the failures of `stats`.
fn assert_totals(stats: &v1::RunStats, expected: &Expected) {
    assert_eq!(stats.endpoints.len(), 2);
    let mut total_counts = Counts::default();
    let mut total_histogram = LatencyHistogram::new();
    for (actual, (counts, histogram)) in stats.endpoints.iter().zip(&expected.endpoints) {
        assert_endpoint(actual, *counts, histogram, stats.duration_s);
        total_counts.add(counts);
        total_histogram.merge(histogram).unwrap();
    }
    assert_eq!(stats.endpoints[0].name, "/items");
    assert_eq!(stats.endpoints[1].method, "POST");
    let total = stats.total.as_ref().unwrap();
    assert_eq!(total.name, cicada_collector::TOTAL_NAME);
    assert_endpoint(total, total_counts, &total_histogram, stats.duration_s);
    let failures: HashMap<(u32, String), u64> = stats
        .failures
        .iter()
        .map(|f| {
            let endpoint = if f.name == "/items" { 0 } else { 1 };
            ((endpoint, f.kind.clone()), f.count)
        })
        .collect();
    assert_eq!(failures, expected.failures);
}

async fn two_workers_merge_exactly_and_resends_are_not_counted(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();

    let mut expected = Expected::default();
    // Worker A sends its three seconds in one request, worker B one by one.
    let a: Vec<_> = (1..=3)
        .map(|seq| make_delta(&mut expected, "wa", seq, SECOND + seq as i64 - 1, 3))
        .collect();
    let response = push(&mut client, a.clone()).await.unwrap();
    assert_eq!((response.applied, response.duplicates), (3, 0));
    for seq in 1..=3 {
        let delta = make_delta(&mut expected, "wb", seq, SECOND + seq as i64 - 1, 4);
        let response = push(&mut client, vec![delta]).await.unwrap();
        assert_eq!((response.applied, response.duplicates), (1, 0));
    }
    let live = stats(&mut client).await;

    // A re-sent delta is acknowledged and not counted.
    let response = push(&mut client, vec![a[1].clone()]).await.unwrap();
    assert_eq!((response.applied, response.duplicates), (0, 1));

    let again = stats(&mut client).await;
    assert_eq!(again.state, v1::RunState::Running as i32);
    assert_eq!(again.ended_at_ms, 0);
    assert_eq!(again.scenario_name, "shop");
    assert_eq!(
        again.total.as_ref().unwrap().requests,
        live.total.as_ref().unwrap().requests
    );
    assert_totals(&again, &expected);
    // The live window: the 2 complete seconds before the latest (SECOND + 2).
    let mut window_counts = Counts::default();
    let mut window_histogram = LatencyHistogram::new();
    for second in [SECOND, SECOND + 1] {
        let (counts, histogram, _) = &expected.seconds[&second];
        window_counts.add(counts);
        window_histogram.merge(histogram).unwrap();
    }
    assert_eq!(again.current_rps, window_counts.requests as f64 / 2.0);
    assert_eq!(
        again.current_failures_per_s,
        window_counts.failures as f64 / 2.0
    );
    assert_eq!(
        again.current_p50_ms,
        window_histogram.value_at_quantile_us(0.5) as f64 / 1000.0
    );
    assert_eq!(
        again.current_p95_ms,
        window_histogram.value_at_quantile_us(0.95) as f64 / 1000.0
    );
    assert_eq!(again.active_users, 7);

    let ended_at_ms = STARTED_AT_MS + 3_500;
    let finish = v1::FinishRunRequest {
        run_id: "run-1".to_owned(),
        state: v1::RunState::Finished as i32,
        ended_at_ms,
        workers: vec![
            v1::WorkerFinal {
                worker_id: "wa".to_owned(),
                last_seq: 3,
                ..Default::default()
            },
            v1::WorkerFinal {
                worker_id: "wb".to_owned(),
                last_seq: 3,
                ..Default::default()
            },
        ],
        wait_ms: 2_000,
        error: String::new(),
        ..Default::default()
    };
    let finished = client
        .finish_run(finish.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!finished.incomplete);
    let final_stats = finished.stats.unwrap();
    assert_eq!(final_stats.state, v1::RunState::Finished as i32);
    assert_eq!(final_stats.started_at_ms, STARTED_AT_MS);
    assert_eq!(final_stats.ended_at_ms, ended_at_ms);
    assert_eq!(final_stats.duration_s, 3.5);
    assert_totals(&final_stats, &expected);
    assert_eq!(final_stats.current_rps, 0.0);

    // Finishing twice and reading afterwards give the same numbers.
    let twice = client.finish_run(finish).await.unwrap().into_inner();
    assert!(!twice.incomplete);
    assert_eq!(twice.stats.unwrap(), final_stats);
    assert_eq!(stats(&mut client).await, final_stats);
    collector.stop().await;
}

async fn bad_requests_get_the_right_codes_and_change_nothing(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    let mut expected = Expected::default();

    let unknown = make_delta(&mut Expected::default(), "wa", 1, SECOND, 1);
    let status = push(&mut client, vec![unknown]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let status = client
        .get_run_stats(v1::GetRunStatsRequest {
            run_id: "run-1".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    client.create_run(create_request("run-1")).await.unwrap();
    let status = client
        .create_run(create_request("run-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists);

    let good = make_delta(&mut expected, "wa", 1, SECOND, 2);
    push(&mut client, vec![good]).await.unwrap();

    // Endpoint out of range: nothing of the delta applies, not even endpoint 0.
    let mut out_of_range = make_delta(&mut Expected::default(), "wa", 2, SECOND + 1, 2);
    out_of_range.endpoints[1].endpoint = 9;
    let status = push(&mut client, vec![out_of_range]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut bad_histogram = make_delta(&mut Expected::default(), "wa", 2, SECOND + 1, 2);
    bad_histogram.endpoints[1].histogram = b"not a histogram".to_vec();
    let status = push(&mut client, vec![bad_histogram]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // A gap in the sequence.
    let gap = make_delta(&mut Expected::default(), "wa", 3, SECOND + 2, 2);
    let status = push(&mut client, vec![gap]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // The message size limit, at its boundary: a request just under it is
    // decoded (and its oversized histogram refused by the histogram's own
    // limits), one just over it is refused before it is decoded.
    let mut under = make_delta(&mut Expected::default(), "wa", 2, SECOND + 1, 2);
    under.endpoints[1].histogram = vec![0; cicada_collector::MAX_MESSAGE_BYTES - 4096];
    let status = push(&mut client, vec![under]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut over = make_delta(&mut Expected::default(), "wa", 2, SECOND + 1, 2);
    over.endpoints[1].histogram = vec![0; cicada_collector::MAX_MESSAGE_BYTES + 1];
    let status = push(&mut client, vec![over]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{status:?}"
    );
    assert_totals(&stats(&mut client).await, &expected);

    let finish = v1::FinishRunRequest {
        run_id: "run-1".to_owned(),
        state: v1::RunState::Failed as i32,
        ended_at_ms: STARTED_AT_MS + 1_000,
        workers: vec![v1::WorkerFinal {
            worker_id: "wa".to_owned(),
            last_seq: 1,
            ..Default::default()
        }],
        wait_ms: 1_000,
        error: "target down".to_owned(),
        ..Default::default()
    };
    let finished = client.finish_run(finish).await.unwrap().into_inner();
    assert_eq!(
        finished.stats.as_ref().unwrap().state,
        v1::RunState::Failed as i32
    );
    // After the end a new delta is refused, a re-sent one acknowledged.
    let late = make_delta(&mut Expected::default(), "wa", 2, SECOND + 1, 2);
    let status = push(&mut client, vec![late]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let resent = make_delta(&mut Expected::default(), "wa", 1, SECOND, 2);
    let response = push(&mut client, vec![resent]).await.unwrap();
    assert_eq!(response.duplicates, 1);
    assert_totals(&stats(&mut client).await, &expected);

    let status = client
        .finish_run(v1::FinishRunRequest {
            run_id: "nope".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    collector.stop().await;
}

async fn finish_waits_for_missing_deltas(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();
    let mut expected = Expected::default();
    let first = make_delta(&mut expected, "wa", 1, SECOND, 1);
    let second = make_delta(&mut expected, "wa", 2, SECOND + 1, 1);
    push(&mut client, vec![first]).await.unwrap();

    let mut late_client = client.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(&mut late_client, vec![second]).await.unwrap();
    });
    let finished = client
        .finish_run(v1::FinishRunRequest {
            run_id: "run-1".to_owned(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: STARTED_AT_MS + 2_000,
            workers: vec![v1::WorkerFinal {
                worker_id: "wa".to_owned(),
                last_seq: 2,
                ..Default::default()
            }],
            wait_ms: 10_000,
            error: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    late.await.unwrap();
    assert!(!finished.incomplete);
    assert_totals(&finished.stats.unwrap(), &expected);
    collector.stop().await;
}

async fn finish_gives_up_after_wait_ms(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();
    let mut expected = Expected::default();
    push(
        &mut client,
        vec![make_delta(&mut expected, "wa", 1, SECOND, 1)],
    )
    .await
    .unwrap();
    let finished = client
        .finish_run(v1::FinishRunRequest {
            run_id: "run-1".to_owned(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: STARTED_AT_MS + 2_000,
            workers: vec![
                v1::WorkerFinal {
                    worker_id: "wa".to_owned(),
                    last_seq: 1,
                    ..Default::default()
                },
                v1::WorkerFinal {
                    worker_id: "wb".to_owned(),
                    last_seq: 4,
                    requests: 250,
                    evicted_requests: 0,
                },
            ],
            wait_ms: 100,
            error: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(finished.incomplete);
    let stats = finished.stats.unwrap();
    assert_eq!(stats.state, v1::RunState::Finished as i32);
    assert_totals(&stats, &expected);
    // wb's deltas never came: all 250 of its requests are reported missing.
    assert_eq!(stats.lost_workers.len(), 1);
    assert_eq!(stats.lost_workers[0].delta_source, "wb");
    assert_eq!(stats.lost_workers[0].unrecorded_max, 250);
    assert_eq!(stats.unrecorded_max, 250);
    collector.stop().await;
}

async fn a_restarted_collector_rebuilds_the_live_view(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();
    let mut expected = Expected::default();
    let deltas: Vec<_> = (1..=2)
        .map(|seq| make_delta(&mut expected, "wa", seq, SECOND + seq as i64 - 1, 2))
        .collect();
    push(&mut client, deltas).await.unwrap();
    let before = stats(&mut client).await;
    collector.stop().await;

    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    let after = stats(&mut client).await;
    // Same numbers except the rates, whose duration runs on the wall clock.
    let without_rate = |e: &v1::EndpointStats| v1::EndpointStats {
        rps: 0.0,
        ..e.clone()
    };
    for (b, a) in before.endpoints.iter().zip(&after.endpoints) {
        assert_eq!(without_rate(b), without_rate(a));
    }
    assert_totals(&after, &expected);
    assert_eq!(after.current_rps, before.current_rps);
    assert_eq!(after.active_users, before.active_users);
    // Ingestion continues where the first collector stopped.
    let resent = make_delta(&mut Expected::default(), "wa", 2, SECOND + 1, 2);
    let next = make_delta(&mut expected, "wa", 3, SECOND + 2, 2);
    let response = push(&mut client, vec![resent, next]).await.unwrap();
    assert_eq!((response.applied, response.duplicates), (1, 1));
    assert_totals(&stats(&mut client).await, &expected);
    collector.stop().await;
}

async fn concurrent_workers_merge_exactly(db: TestDatabase) {
    const WORKERS: usize = 6;
    const SECONDS: u64 = 5;
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();
    let mut expected = Expected::default();
    let workers: Vec<Vec<v1::WorkerDelta>> = (0..WORKERS)
        .map(|w| {
            let worker = format!("w{w}");
            (1..=SECONDS)
                .map(|seq| make_delta(&mut expected, &worker, seq, SECOND + seq as i64 - 1, 2))
                .collect()
        })
        .collect();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|deltas| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for delta in deltas {
                    let response = push(&mut client, vec![delta]).await.unwrap();
                    assert_eq!(response.applied, 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let live = stats(&mut client).await;
    assert_totals(&live, &expected);
    assert_eq!(live.active_users, 2 * WORKERS as u32);
    let finished = client
        .finish_run(v1::FinishRunRequest {
            run_id: "run-1".to_owned(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: STARTED_AT_MS + 5_000,
            workers: (0..WORKERS)
                .map(|w| v1::WorkerFinal {
                    worker_id: format!("w{w}"),
                    last_seq: SECONDS,
                    ..Default::default()
                })
                .collect(),
            wait_ms: 1_000,
            error: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!finished.incomplete);
    assert_totals(&finished.stats.unwrap(), &expected);
    collector.stop().await;
}

async fn two_collectors_share_one_database(db: TestDatabase) {
    let first = Collector::start(&db).await;
    let second = Collector::start(&db).await;
    let mut a = first.client.clone();
    let mut b = second.client.clone();
    a.create_run(create_request("run-1")).await.unwrap();
    let mut expected = Expected::default();
    // Two workers, each pushing through a different collector into the same seconds.
    for seq in 1..=2 {
        let second_of = SECOND + seq as i64 - 1;
        push(
            &mut a,
            vec![make_delta(&mut expected, "wa", seq, second_of, 1)],
        )
        .await
        .unwrap();
        push(
            &mut b,
            vec![make_delta(&mut expected, "wb", seq, second_of, 1)],
        )
        .await
        .unwrap();
    }
    // The second collector finishes the run; the first learns it on its next delta.
    let finished = b
        .finish_run(v1::FinishRunRequest {
            run_id: "run-1".to_owned(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: STARTED_AT_MS + 2_000,
            workers: vec![
                v1::WorkerFinal {
                    worker_id: "wa".to_owned(),
                    last_seq: 2,
                    ..Default::default()
                },
                v1::WorkerFinal {
                    worker_id: "wb".to_owned(),
                    last_seq: 2,
                    ..Default::default()
                },
            ],
            wait_ms: 1_000,
            error: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!finished.incomplete);
    let final_stats = finished.stats.unwrap();
    assert_totals(&final_stats, &expected);
    let late = make_delta(&mut Expected::default(), "wa", 3, SECOND + 2, 1);
    let status = push(&mut a, vec![late]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(stats(&mut a).await, final_stats);
    first.stop().await;
    second.stop().await;
}

async fn runs_are_listed_newest_first_by_state(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    for (index, run_id) in ["run-a", "run-b", "run-c"].into_iter().enumerate() {
        let mut request = create_request(run_id);
        request.started_at_ms = STARTED_AT_MS + index as i64 * 1_000;
        client.create_run(request).await.unwrap();
    }
    client
        .finish_run(v1::FinishRunRequest {
            run_id: "run-b".to_owned(),
            state: v1::RunState::Failed as i32,
            ended_at_ms: STARTED_AT_MS + 5_000,
            error: "controller restarted".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = |state: v1::RunState, limit: u32| v1::ListRunsRequest {
        limit,
        state: state as i32,
        ..Default::default()
    };
    let ids = |response: v1::ListRunsResponse| -> Vec<String> {
        response.runs.into_iter().map(|run| run.run_id).collect()
    };
    let all = client
        .list_runs(list(v1::RunState::Unspecified, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(all.clone()), ["run-c", "run-b", "run-a"]);
    let failed = &all.runs[1];
    assert_eq!(failed.state, v1::RunState::Failed as i32);
    assert_eq!(failed.error, "controller restarted");
    assert_eq!(failed.ended_at_ms, STARTED_AT_MS + 5_000);
    let running = client
        .list_runs(list(v1::RunState::Running, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(running), ["run-c", "run-a"]);
    let page = client
        .list_runs(list(v1::RunState::Unspecified, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(page), ["run-c"]);
    collector.stop().await;
}

/// An open-model delta for endpoint 0: corrected latencies from `seed`, the
/// uncorrected ones a tenth of them, `dropped` iterations.
fn open_delta(worker: &str, seq: u64, second: i64, seed: u64, dropped: u64) -> v1::WorkerDelta {
    let values = latencies(seed, 50);
    let corrected: LatencyHistogram = histogram(&values);
    let uncorrected = histogram(&values.iter().map(|v| (v / 10).max(1)).collect::<Vec<_>>());
    v1::WorkerDelta {
        run_id: "run-1".to_owned(),
        worker_id: worker.to_owned(),
        seq,
        second,
        endpoints: vec![v1::EndpointDelta {
            endpoint: 0,
            requests: values.len() as u64,
            histogram: corrected.encode().unwrap(),
            uncorrected_histogram: uncorrected.encode().unwrap(),
            ..Default::default()
        }],
        active_users: 3,
        dropped,
        ..Default::default()
    }
}

fn histogram(values: &[u64]) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for v in values {
        h.record_us(*v);
    }
    h
}

async fn open_model_deltas_merge_exactly_live_final_and_after_a_restart(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();
    let deltas = [
        open_delta("wa", 1, SECOND, 1, 5),
        open_delta("wb", 1, SECOND, 2, 0),
        open_delta("wa", 2, SECOND + 1, 3, 7),
        open_delta("wb", 2, SECOND + 1, 4, 1),
        open_delta("wa", 3, SECOND + 2, 5, 0),
    ];
    push(&mut client, deltas.to_vec()).await.unwrap();
    // A re-sent delta counts neither its requests nor its drops twice.
    let response = push(&mut client, vec![deltas[2].clone()]).await.unwrap();
    assert_eq!((response.applied, response.duplicates), (0, 1));

    let mut corrected = LatencyHistogram::new();
    let mut uncorrected = LatencyHistogram::new();
    for delta in &deltas {
        let e = &delta.endpoints[0];
        corrected
            .merge(&LatencyHistogram::decode(&e.histogram).unwrap())
            .unwrap();
        uncorrected
            .merge(&LatencyHistogram::decode(&e.uncorrected_histogram).unwrap())
            .unwrap();
    }
    let check = |stats: &v1::RunStats| {
        assert_eq!(stats.dropped, 13);
        let total = stats.total.as_ref().unwrap();
        assert_eq!(total.requests, 250);
        let u = total.uncorrected.as_ref().expect("open-model total");
        let expected = Summary::new(Counts::default(), &uncorrected, 1.0);
        assert_eq!(u.p50_ms, expected.p50_ms);
        assert_eq!(u.p99_ms, expected.p99_ms);
        assert_eq!(u.max_ms, expected.max_ms);
        assert_eq!(
            total.p99_ms,
            Summary::new(Counts::default(), &corrected, 1.0).p99_ms
        );
        assert_eq!(stats.endpoints[0].uncorrected, total.uncorrected);
        // Endpoint 1 never got an open-model delta.
        assert_eq!(stats.endpoints[1].uncorrected, None);
    };
    let live = stats(&mut client).await;
    check(&live);
    // The window is seconds SECOND and SECOND + 1: 13 dropped in 2 s.
    assert_eq!(live.current_dropped_per_s, 6.5);
    collector.stop().await;

    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    let rebuilt = stats(&mut client).await;
    check(&rebuilt);
    assert_eq!(rebuilt.current_dropped_per_s, 6.5);
    let finish = v1::FinishRunRequest {
        run_id: "run-1".to_owned(),
        state: v1::RunState::Finished as i32,
        ended_at_ms: STARTED_AT_MS + 3_000,
        workers: vec![
            v1::WorkerFinal {
                worker_id: "wa".to_owned(),
                last_seq: 3,
                ..Default::default()
            },
            v1::WorkerFinal {
                worker_id: "wb".to_owned(),
                last_seq: 2,
                ..Default::default()
            },
        ],
        wait_ms: 1_000,
        error: String::new(),
        ..Default::default()
    };
    let finished = client.finish_run(finish).await.unwrap().into_inner();
    check(finished.stats.as_ref().unwrap());
    collector.stop().await;
}

fn threshold(expression: &str, endpoint: &str) -> v1::Threshold {
    v1::Threshold {
        expression: expression.to_owned(),
        endpoint: endpoint.to_owned(),
        abort_on_fail: false,
        delay_ms: 0,
    }
}

async fn thresholds_are_checked_live_and_stored_at_finish(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    // Bad thresholds are rejected before anything is stored.
    for bad in [
        threshold("p95 < 150", ""),
        threshold("p95 < 1s", "GET /orders"),
    ] {
        let request = v1::CreateRunRequest {
            thresholds: vec![bad],
            ..create_request("run-1")
        };
        let status = client.create_run(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    let request = v1::CreateRunRequest {
        thresholds: vec![
            threshold("p95 < 1s", ""),
            threshold("p99 < 1us", ""),
            threshold("failures <= 0", "POST /orders"),
            threshold("requests >= 1", "GET /items"),
        ],
        ..create_request("run-1")
    };
    client.create_run(request).await.unwrap();
    let mut expected = Expected::default();
    let deltas = vec![
        make_delta(&mut expected, "wa", 1, SECOND, 1),
        make_delta(&mut expected, "wb", 1, SECOND, 1),
    ];
    push(&mut client, deltas).await.unwrap();

    // Live: percentiles of the histograms merged across workers and endpoints.
    let mut merged = LatencyHistogram::new();
    for (_, histogram) in &expected.endpoints {
        merged.merge(histogram).unwrap();
    }
    let p95_ms = merged.value_at_quantile_us(0.95) as f64 / 1000.0;
    let live = stats(&mut client).await;
    let passed: Vec<bool> = live.thresholds.iter().map(|t| t.passed).collect();
    assert_eq!(passed, [true, false, false, true]);
    assert_eq!(live.thresholds[0].observed, Some(p95_ms));
    assert_eq!(live.thresholds[2].endpoint, "POST /orders");
    assert_eq!(
        live.thresholds[3].observed,
        Some(expected.endpoints[0].0.requests as f64)
    );

    let finished = client
        .finish_run(v1::FinishRunRequest {
            run_id: "run-1".to_owned(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: STARTED_AT_MS + 2_000,
            workers: Vec::new(),
            wait_ms: 0,
            error: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(finished.thresholds, live.thresholds);
    collector.stop().await;

    // Stored with the run, and served again by a fresh collector.
    let store = cicada_store::connect(db.url()).await.unwrap();
    let stored = store.thresholds("run-1").await.unwrap();
    let stored_passed: Vec<Option<bool>> = stored.iter().map(|t| t.passed).collect();
    assert_eq!(
        stored_passed,
        [Some(true), Some(false), Some(false), Some(true)]
    );
    assert_eq!(stored[0].observed, Some(p95_ms));
    assert_eq!(
        stored[2].threshold.endpoint.as_deref(),
        Some("POST /orders")
    );
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    assert_eq!(stats(&mut client).await.thresholds, finished.thresholds);
    collector.stop().await;
}

/// Failure kinds add up across deltas without a cap, so a run's live stats
/// can outgrow tonic's default 4 MiB: a client with the default refuses
/// them, a client with the collector's own limit (the controller's, which
/// checks thresholds with them) reads them whole.
async fn live_stats_over_4_mib_reach_clients_with_the_collector_limit(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let mut client = collector.client.clone();
    client.create_run(create_request("run-1")).await.unwrap();
    let long = "x".repeat(1000);
    let kinds_per_delta = 1024u64;
    for seq in 1..=3u64 {
        let mut delta = make_delta(&mut Expected::default(), "wa", seq, SECOND + seq as i64, 1);
        let endpoint = &mut delta.endpoints[0];
        endpoint.failures = kinds_per_delta;
        endpoint.failures_by_kind = (0..kinds_per_delta)
            .map(|i| v1::FailureCount {
                kind: format!("kind {seq}-{i} {long}"),
                count: 1,
                last_message: format!("message {i} {long}"),
            })
            .collect();
        push(&mut client, vec![delta]).await.unwrap();
    }
    let request = || v1::GetRunStatsRequest {
        run_id: "run-1".to_owned(),
    };
    let status = client.get_run_stats(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    let mut wide = client
        .clone()
        .max_decoding_message_size(cicada_proto::MAX_COLLECTOR_MESSAGE_BYTES);
    let stats = wide.get_run_stats(request()).await.unwrap().into_inner();
    let kinds = stats.failures.iter().filter(|f| f.name == "/items").count();
    assert_eq!(kinds as u64, 3 * kinds_per_delta);
    let text: usize = stats
        .failures
        .iter()
        .map(|f| f.kind.len() + f.last_message.len())
        .sum();
    assert!(text > 4 << 20, "{text} bytes of failure text");
    collector.stop().await;
}
