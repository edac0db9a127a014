//! The collector's `/metrics` over real HTTP after real pushes over gRPC:
//! the delta counters equal what was sent, applied and re-sent, on
//! Postgres and SQLite; the endpoint answers without the token that the
//! history API on the same port requires.

use std::collections::HashMap;
use std::time::Duration;

use cicada_collector::CollectorConfig;
use cicada_histogram::LatencyHistogram;
use cicada_proto::auth::{AttachToken, Token};
use cicada_proto::v1;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::both_databases;
use cicada_store::testing::TestDatabase;
use cicada_telemetry::testing;
use tokio::net::TcpListener;

both_databases!(delta_counters_equal_what_was_pushed);

const TOKEN: &str = "metrics-test-token";

fn create_request() -> v1::CreateRunRequest {
    v1::CreateRunRequest {
        run_id: "run-m".to_owned(),
        scenario_name: "metrics".to_owned(),
        scenario_yaml: "name: metrics\n".to_owned(),
        host: "http://127.0.0.1:9".to_owned(),
        config_json: r#"{"users":2}"#.to_owned(),
        labels: HashMap::new(),
        started_at_ms: 1_700_000_000_000,
        endpoints: vec![v1::Endpoint {
            index: 0,
            method: "GET".to_owned(),
            name: "/".to_owned(),
        }],
        ..Default::default()
    }
}

fn delta(worker: &str, seq: u64) -> v1::WorkerDelta {
    let mut histogram = LatencyHistogram::new();
    for latency in 1..=10 {
        histogram.record_us(latency * 1000);
    }
    v1::WorkerDelta {
        run_id: "run-m".to_owned(),
        worker_id: worker.to_owned(),
        seq,
        second: 1_700_000_000 + seq as i64,
        active_users: 1,
        endpoints: vec![v1::EndpointDelta {
            endpoint: 0,
            requests: 10,
            histogram: histogram.encode().unwrap(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn delta_counters_equal_what_was_pushed(db: TestDatabase) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = listener.local_addr().unwrap();
    let http = http_listener.local_addr().unwrap();
    let token = Token::new(TOKEN).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = CollectorConfig {
        database_url: db.url().to_owned(),
        token: Some(token.clone()),
        ..Default::default()
    };
    let task = tokio::spawn(cicada_collector::run_with_http(
        config,
        listener,
        http_listener,
        async {
            let _ = stopped.await;
        },
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CollectorClient::new(AttachToken::new(Some(&token)).wrap(channel));

    let before = testing::scrape(http).await;
    assert_eq!(before.value("cicada_collector_deltas_received_total"), 0.0);
    assert_eq!(
        before.types["cicada_collector_db_write_seconds"],
        "histogram"
    );

    client.create_run(create_request()).await.unwrap();
    // Two workers, 5 deltas each, pushed in pushes of one and of several.
    for worker in ["w-a", "w-b"] {
        client
            .push_deltas(v1::PushDeltasRequest {
                deltas: vec![delta(worker, 1)],
            })
            .await
            .unwrap();
        let answer = client
            .push_deltas(v1::PushDeltasRequest {
                deltas: (2..=5).map(|seq| delta(worker, seq)).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.applied, 4);
    }
    // A worker re-sends three deltas it did not see acknowledged.
    let resent = client
        .push_deltas(v1::PushDeltasRequest {
            deltas: (3..=5).map(|seq| delta("w-a", seq)).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resent.duplicates, 3);
    // A delta for an endpoint the run does not have is refused.
    let mut bad = delta("w-c", 1);
    bad.endpoints[0].endpoint = 7;
    let refused = client
        .push_deltas(v1::PushDeltasRequest { deltas: vec![bad] })
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);

    // Scraped without the token, which the history API wants.
    let (status, _, _) = testing::get(http, "/api/runs").await;
    assert_eq!(status, 401, "the history API still needs the token");
    let after = testing::scrape(http).await;
    assert_eq!(after.value("cicada_collector_deltas_received_total"), 14.0);
    assert_eq!(after.value("cicada_collector_deltas_applied_total"), 10.0);
    assert_eq!(after.value("cicada_collector_deltas_duplicate_total"), 3.0);
    assert_eq!(after.value("cicada_collector_deltas_refused_total"), 1.0);
    assert_eq!(after.value("cicada_collector_db_write_errors_total"), 0.0);
    assert_eq!(after.value("cicada_collector_ingest_queue_depth"), 0.0);
    assert_eq!(
        after.value("cicada_collector_otlp_export_errors_total"),
        0.0
    );
    // One transaction per push at least (pushes were sequential), and the
    // histogram's count is its +Inf bucket.
    let writes = after.value("cicada_collector_db_write_seconds_count");
    assert!(writes >= 5.0, "{writes} write transactions");
    assert_eq!(
        after.value("cicada_collector_db_write_seconds_bucket{le=\"+Inf\"}"),
        writes
    );
    assert!(after.value("cicada_collector_db_write_seconds_sum") > 0.0);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("collector stops")
        .unwrap()
        .unwrap();
}
