//! The sample target over real HTTP on loopback: exact counts, injected
//! latency and errors, validation, reset, cancellation and shutdown.

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cicada_sample_target::{Latency, TargetConfig};
use harness::{Client, Target};
use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MS: Duration = Duration::from_millis(1);

fn config(latency: &str, error_rate: f64) -> TargetConfig {
    TargetConfig {
        latency: latency.parse().unwrap(),
        error_rate,
        seed: 7,
        ..TargetConfig::default()
    }
}

#[tokio::test]
async fn counts_match_what_clients_received() {
    let target = Target::start(config("0", 0.0)).await;
    let paths = [
        "/", "/Test/V1", "/Test/V2", "/Test/V3", "/Test/V4", "/health",
    ];
    let mut tasks = Vec::new();
    for worker in 0..4usize {
        let mut client = target.client().await;
        tasks.push(tokio::spawn(async move {
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            for i in 0..300usize {
                let (key, (status, _)) = match (worker + i) % 8 {
                    0 => {
                        let form = format!("deviceid=dev-{worker}-{i}");
                        (
                            "POST /login".to_owned(),
                            client.post_form("/login", &form).await,
                        )
                    }
                    1 => {
                        let form = format!("deviceid=dev-{worker}&timestamp={i}");
                        (
                            "POST /metrics".to_owned(),
                            client.post_form("/metrics", &form).await,
                        )
                    }
                    k => {
                        let path = paths[k - 2];
                        (format!("GET {path}"), client.get(path).await)
                    }
                };
                assert_eq!(status, StatusCode::OK, "{key}");
                *seen.entry(key).or_default() += 1;
            }
            let (status, _) = client.get("/nowhere").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            seen
        }));
    }
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        for (key, n) in task.await.unwrap() {
            *expected.entry(key).or_default() += n;
        }
    }

    let stats = target.stats().await;
    // The session routes were not requested: 0 each.
    for route in ["POST /session", "GET /account", "GET /private"] {
        expected.insert(route.to_owned(), 0);
    }
    assert_eq!(stats.paths, expected);
    assert_eq!(stats.unmatched, 4);
    assert_eq!(stats.total, 4 * 300 + 4);
    assert_eq!(
        (stats.errors, stats.bad_requests, stats.cancelled),
        (0, 0, 0)
    );
    // Reading the stats is not itself counted.
    assert_eq!(target.stats().await, stats);
    target.stop().await;
}

#[tokio::test]
async fn fixed_latency_delays_every_answer() {
    let target = Target::start(config("20ms", 0.0)).await;
    let mut client = target.client().await;
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = client.get("/Test/V1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() >= 20 * MS,
            "answered in {:?}",
            started.elapsed()
        );
    }
    assert_eq!(target.stats().await.paths["GET /Test/V1"], 5);
    target.stop().await;
}

#[tokio::test]
async fn per_route_overrides_apply_to_their_route_only() {
    let config = config("0", 0.0).with_route_settings(
        ["POST /login=30ms".parse().unwrap()],
        ["GET /Test/V2=1".parse().unwrap()],
    );
    let target = Target::start(config).await;
    let mut client = target.client().await;
    let started = Instant::now();
    let (status, _) = client.post_form("/login", "deviceid=a").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= 30 * MS);
    for _ in 0..10 {
        assert_eq!(
            client.get("/Test/V2").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(client.get("/Test/V1").await.0, StatusCode::OK);
    }
    let stats = target.stats().await;
    assert_eq!(stats.errors, 10);
    assert_eq!(stats.paths["GET /Test/V2"], 10);
    assert_eq!(stats.paths["GET /Test/V1"], 10);
    target.stop().await;
}

#[tokio::test]
async fn error_rate_is_roughly_right_and_counted_exactly() {
    let target = Target::start(config("0", 0.05)).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut client = target.client().await;
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u64;
            for _ in 0..500 {
                match client.get("/Test/V3").await.0 {
                    StatusCode::OK => {}
                    StatusCode::INTERNAL_SERVER_ERROR => failed += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap();
    }
    let stats = target.stats().await;
    assert_eq!(stats.errors, failed);
    assert_eq!(stats.paths["GET /Test/V3"], 2_000);
    // 5% of 2,000 is 100 with a standard deviation near 10.
    assert!((60..=140).contains(&failed), "{failed} injected errors");
    target.stop().await;
}

#[tokio::test]
async fn invalid_forms_get_400_and_are_counted() {
    let target = Target::start(config("0", 0.0)).await;
    let mut client = target.client().await;
    assert_eq!(
        client.post_form("/login", "").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        client.post_form("/login", "deviceid=").await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = client.post_form("/metrics", "deviceid=a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(client.get("/login").await.0, StatusCode::METHOD_NOT_ALLOWED);

    let (status, body) = client.post_form("/login", "deviceid=3f2a-11").await;
    assert_eq!(status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );

    let stats = target.stats().await;
    assert_eq!(stats.bad_requests, 3);
    assert_eq!(stats.paths["POST /login"], 3);
    assert_eq!(stats.paths["POST /metrics"], 1);
    assert_eq!(stats.unmatched, 1);
    target.stop().await;
}

#[tokio::test]
async fn reset_zeroes_the_counts() {
    let target = Target::start(config("0", 0.0)).await;
    let mut client = target.client().await;
    for _ in 0..3 {
        client.get("/Test/V4").await;
    }
    assert_eq!(target.stats().await.total, 3);
    assert_eq!(client.post_form("/stats/reset", "").await.0, StatusCode::OK);
    let stats = target.stats().await;
    assert_eq!(stats.total, 0);
    assert!(stats.paths.values().all(|&n| n == 0));
    client.get("/Test/V4").await;
    assert_eq!(target.stats().await.paths["GET /Test/V4"], 1);
    target.stop().await;
}

#[tokio::test]
async fn a_client_gone_during_the_latency_is_not_counted_as_served() {
    let target = Target::start(config("300ms", 0.0)).await;
    let mut stream = TcpStream::connect(target.addr).await.unwrap();
    stream
        .write_all(b"GET /Test/V1 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(50 * MS).await;
    drop(stream);

    // The target notices the closed socket and drops the request; wait for
    // that, bounded.
    let deadline = Instant::now() + Duration::from_secs(3);
    let stats = loop {
        let stats = target.stats().await;
        if stats.cancelled > 0 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(20 * MS).await;
    };
    assert_eq!(stats.cancelled, 1);
    // Well past the injected latency, it has still not been served.
    tokio::time::sleep(400 * MS).await;
    let stats = target.stats().await;
    assert_eq!((stats.total, stats.cancelled), (0, 1));
    target.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let target = Target::start(config("200ms", 0.0)).await;
    let mut client = Client::connect(target.addr).await;
    let request = tokio::spawn(async move { client.get("/Test/V1").await.0 });
    tokio::time::sleep(50 * MS).await;
    target.stop().await;
    assert_eq!(request.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn health_ignores_the_global_latency_and_errors() {
    let target = Target::start(config("10s", 1.0)).await;
    let mut client = target.client().await;
    // A 10 s delay would trip the timeout: health is not delayed.
    let answer = tokio::time::timeout(Duration::from_secs(5), client.get("/health")).await;
    assert_eq!(answer.expect("health was delayed").0, StatusCode::OK);
    assert_eq!(target.stats().await.paths["GET /health"], 1);
    target.stop().await;
}

#[test]
fn latency_specs_from_the_docs_parse() {
    for spec in ["20ms", "uniform:10ms..30ms", "normal:20ms,5ms", "exp:20ms"] {
        spec.parse::<Latency>().unwrap();
    }
}
