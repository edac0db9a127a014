//! Several collectors sharing one run: three real collector services on
//! 127.0.0.1:0 over one real Postgres database, nine simulated workers split
//! across them pushing concurrently into the same seconds and endpoints,
//! workers moving to another collector and re-sending what it already
//! applied (through the other collector: duplicates), live statistics asked
//! of every collector, `FinishRun` through one of them. Stored totals must be
//! exactly what was sent, and equal to the same deltas through one collector.

#[path = "support/collector.rs"]
mod support;

use std::collections::HashMap;

use cicada_histogram::{Counts, LatencyHistogram, Summary};
use cicada_proto::v1;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::testing::TestDatabase;
use support::Collector;
use tonic::transport::Channel;

const SECOND: i64 = 1_700_000_000;
const STARTED_AT_MS: i64 = SECOND * 1000;
const RUN: &str = "run-shared";
const ENDPOINTS: u32 = 4;
const WORKERS: u64 = 9;
/// Deltas per worker: two per second (a 500 ms interval).
const SEQS: u64 = 12;
/// A worker moves to the next collector before this seq, re-sending the two
/// deltas before it there first.
const MOVE_AT: u64 = 9;

fn create_request() -> v1::CreateRunRequest {
    v1::CreateRunRequest {
        run_id: RUN.to_owned(),
        scenario_name: "iot".to_owned(),
        scenario_yaml: "name: iot\n".to_owned(),
        host: "http://127.0.0.1:9".to_owned(),
        config_json: "{}".to_owned(),
        labels: HashMap::new(),
        started_at_ms: STARTED_AT_MS,
        endpoints: (0..ENDPOINTS)
            .map(|index| v1::Endpoint {
                index,
                method: "GET".to_owned(),
                name: format!("/e{index}"),
            })
            .collect(),
        thresholds: Vec::new(),
        checks: (0..ENDPOINTS)
            .map(|index| v1::CheckDef {
                index,
                endpoint: index,
                name: format!("check {index}"),
            })
            .collect(),
    }
}

/// Delta `seq` of `worker`: every endpoint, deterministic latencies, a
/// failure kind every worker reports and a check count per endpoint.
fn delta(worker: u64, seq: u64) -> v1::WorkerDelta {
    let second = SECOND + ((seq - 1) / 2) as i64;
    let endpoints = (0..ENDPOINTS)
        .map(|endpoint| {
            let requests = 5 + (worker * 13 + seq * 7 + u64::from(endpoint) * 3) % 29;
            let mut histogram = LatencyHistogram::new();
            for i in 0..requests {
                histogram.record_us(200 + (worker * 7_919 + seq * 104_729 + i * 31) % 300_000);
            }
            let failures = (worker + seq + u64::from(endpoint)) % 3;
            v1::EndpointDelta {
                endpoint,
                requests,
                failures,
                cancelled: 0,
                bytes: 100 * requests,
                histogram: histogram.encode().unwrap(),
                failures_by_kind: if failures > 0 {
                    vec![v1::FailureCount {
                        kind: "status 503".to_owned(),
                        count: failures,
                        last_message: "503".to_owned(),
                    }]
                } else {
                    Vec::new()
                },
                uncorrected_histogram: Vec::new(),
                checks: vec![v1::CheckCount {
                    check: endpoint,
                    passed: requests - failures,
                    failed: failures,
                }],
            }
        })
        .collect();
    v1::WorkerDelta {
        run_id: RUN.to_owned(),
        worker_id: format!("w{worker}"),
        seq,
        second,
        endpoints,
        active_users: 2,
        cut_at_ms: STARTED_AT_MS + seq as i64 * 500,
        interval_us: 500_000,
        ..Default::default()
    }
}

/// What every worker sent, merged per endpoint.
struct Sent {
    counts: Vec<Counts>,
    histograms: Vec<LatencyHistogram>,
    /// Per endpoint: (passed, failed) of its check.
    checks: Vec<(u64, u64)>,
}

fn sent() -> Sent {
    let mut sent = Sent {
        counts: vec![Counts::default(); ENDPOINTS as usize],
        histograms: (0..ENDPOINTS).map(|_| LatencyHistogram::new()).collect(),
        checks: vec![(0, 0); ENDPOINTS as usize],
    };
    for worker in 0..WORKERS {
        for seq in 1..=SEQS {
            sent.add(&delta(worker, seq));
        }
    }
    sent
}

impl Sent {
    fn add(&mut self, delta: &v1::WorkerDelta) {
        for e in &delta.endpoints {
            let i = e.endpoint as usize;
            self.counts[i].add(&Counts {
                requests: e.requests,
                failures: e.failures,
                cancelled: e.cancelled,
                bytes: e.bytes,
            });
            self.histograms[i]
                .merge(&LatencyHistogram::decode(&e.histogram).unwrap())
                .unwrap();
            self.checks[i].0 += e.checks[0].passed;
            self.checks[i].1 += e.checks[0].failed;
        }
    }
}

/// Asserts the counts, percentiles, failures and checks of `stats` are those
/// of everything sent (rates depend on the time asked, so not those).
fn assert_whole_run(stats: &v1::RunStats, sent: &Sent, label: &str) {
    assert_eq!(stats.endpoints.len(), ENDPOINTS as usize, "{label}");
    for (actual, (counts, histogram)) in stats
        .endpoints
        .iter()
        .zip(sent.counts.iter().zip(&sent.histograms))
    {
        let expected = Summary::new(*counts, histogram, 1.0);
        let name = format!("{label} {}", actual.name);
        assert_eq!(actual.requests, counts.requests, "{name}");
        assert_eq!(actual.failures, counts.failures, "{name}");
        assert_eq!(actual.bytes, counts.bytes, "{name}");
        assert_eq!(actual.p50_ms, expected.p50_ms, "{name}");
        assert_eq!(actual.p99_ms, expected.p99_ms, "{name}");
        assert_eq!(actual.max_ms, expected.max_ms, "{name}");
        assert_eq!(actual.mean_ms, expected.mean_ms, "{name}");
    }
    let failures: Vec<u64> = stats.failures.iter().map(|f| f.count).collect();
    assert_eq!(
        failures,
        sent.counts.iter().map(|c| c.failures).collect::<Vec<_>>(),
        "{label}: failures by endpoint"
    );
    let checks: Vec<(u64, u64)> = stats.checks.iter().map(|c| (c.passed, c.failed)).collect();
    assert_eq!(checks, sent.checks, "{label}: checks");
}

async fn push(
    client: &mut CollectorClient<Channel>,
    deltas: Vec<v1::WorkerDelta>,
) -> v1::PushDeltasResponse {
    client
        .push_deltas(v1::PushDeltasRequest { deltas })
        .await
        .expect("push accepted")
        .into_inner()
}

async fn stats(client: &mut CollectorClient<Channel>) -> v1::RunStats {
    client
        .get_run_stats(v1::GetRunStatsRequest {
            run_id: RUN.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn finish_request() -> v1::FinishRunRequest {
    v1::FinishRunRequest {
        run_id: RUN.to_owned(),
        state: v1::RunState::Finished as i32,
        ended_at_ms: STARTED_AT_MS + (SEQS as i64 / 2) * 1000,
        workers: (0..WORKERS)
            .map(|worker| v1::WorkerFinal {
                worker_id: format!("w{worker}"),
                last_seq: SEQS,
                ..Default::default()
            })
            .collect(),
        wait_ms: 5_000,
        ..Default::default()
    }
}

/// One simulated worker: seqs `1..MOVE_AT` to its first collector (one push
/// of four deltas spanning two seconds among single pushes, as after a
/// reconnect), then it moves to `second`, re-sends its two deltas before
/// `MOVE_AT` there (duplicates) and sends the rest. Returns (applied,
/// duplicates) as acknowledged.
async fn worker(
    worker: u64,
    mut first: CollectorClient<Channel>,
    mut second: CollectorClient<Channel>,
) -> (u32, u32) {
    let mut applied = 0;
    let mut duplicates = 0;
    let mut seq = 1;
    while seq < MOVE_AT {
        let n = if seq == 3 { 4 } else { 1 };
        let response = push(
            &mut first,
            (seq..seq + n).map(|s| delta(worker, s)).collect(),
        )
        .await;
        applied += response.applied;
        duplicates += response.duplicates;
        seq += n;
    }
    let resent = push(
        &mut second,
        (MOVE_AT - 2..MOVE_AT).map(|s| delta(worker, s)).collect(),
    )
    .await;
    assert_eq!((resent.applied, resent.duplicates), (0, 2), "w{worker}");
    duplicates += resent.duplicates;
    for seq in MOVE_AT..=SEQS {
        let response = push(&mut second, vec![delta(worker, seq)]).await;
        applied += response.applied;
        duplicates += response.duplicates;
    }
    (applied, duplicates)
}

#[tokio::test]
async fn three_collectors_share_a_run_exactly() {
    let db = TestDatabase::postgres().await.expect("create database");
    let collectors = [
        Collector::start(&db).await,
        Collector::start(&db).await,
        Collector::start(&db).await,
    ];
    let clients: Vec<_> = collectors.iter().map(|c| c.client.clone()).collect();
    clients[0]
        .clone()
        .create_run(create_request())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let first = clients[(w % 3) as usize].clone();
        let second = clients[((w + 1) % 3) as usize].clone();
        tasks.push(tokio::spawn(worker(w, first, second)));
    }
    let mut applied = 0;
    let mut duplicates = 0;
    for task in tasks {
        let (a, d) = task.await.unwrap();
        applied += a;
        duplicates += d;
    }
    assert_eq!(
        u64::from(applied),
        WORKERS * SEQS,
        "every delta applied once"
    );
    assert_eq!(
        u64::from(duplicates),
        WORKERS * 2,
        "every re-send a duplicate"
    );

    // The same delta through two collectors at once: one applies it.
    let late = delta(0, SEQS + 1);
    let (mut via_0, mut via_1) = (clients[0].clone(), clients[1].clone());
    let (a, b) = tokio::join!(
        push(&mut via_0, vec![late.clone()]),
        push(&mut via_1, vec![late.clone()])
    );
    assert_eq!((a.applied + b.applied, a.duplicates + b.duplicates), (1, 1));
    let mut sent = sent();
    sent.add(&late);

    // Live: every collector answers the whole run, not its share.
    for (i, client) in clients.iter().enumerate() {
        let live = stats(&mut client.clone()).await;
        assert_eq!(live.state, v1::RunState::Running as i32);
        assert_whole_run(&live, &sent, &format!("live through collector {i}"));
    }

    let mut finish = finish_request();
    finish.workers[0].last_seq = SEQS + 1;
    let finished = clients[2]
        .clone()
        .finish_run(finish.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!finished.incomplete);
    let shared = finished.stats.unwrap();
    assert_whole_run(&shared, &sent, "final");
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(
            stats(&mut client.clone()).await,
            shared,
            "final through collector {i}"
        );
    }
    for collector in collectors {
        collector.stop().await;
    }

    // The same deltas through one collector give the same statistics.
    let single_db = TestDatabase::postgres().await.expect("create database");
    let single = Collector::start(&single_db).await;
    let mut client = single.client.clone();
    client.create_run(create_request()).await.unwrap();
    for w in 0..WORKERS {
        push(&mut client, (1..=SEQS).map(|s| delta(w, s)).collect()).await;
    }
    push(&mut client, vec![late]).await;
    let alone = client
        .finish_run(finish)
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(alone, shared);
    single.stop().await;
}
