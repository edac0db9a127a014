//! End to end through `cicada run`: collector, controller and workers in one
//! process (real gRPC on loopback), a real sample target, a real database.
//! The invariant: what cicada stored equals what the target served, exactly.

mod support;

use std::time::Duration;

use cicada_sample_target::{Latency, TargetConfig};
use cicada_store::testing::TestDatabase;
use support::*;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cicada run` and returns the parsed summary JSON.
async fn cicada_run(
    scenario: &str,
    target: &Target,
    database_url: &str,
    extra: &[&str],
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let scenario = workspace_file(scenario);
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--host",
        &target.url,
        "--database-url",
        database_url,
        "--summary-json",
        summary.to_str().unwrap(),
        "--workers",
        "2",
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_cicada(&args, RUN_TIMEOUT).await;
    assert_eq!(code, 0, "cicada run failed: {stderr}");
    assert!(
        stdout.contains("Aggregated"),
        "final table missing: {stdout}"
    );
    assert!(stderr.contains("req/s"), "no live progress line: {stderr}");
    serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap()
}

/// The weighted-reads scenario against the sample target: exact conservation
/// between target, summary JSON, stored seconds and stored summaries, and the
/// 60:1:14:5 split.
async fn weighted_reads_conserve(database_url: &str) {
    let target = start_target(TargetConfig::default()).await;
    let summary = cicada_run(
        "examples/weighted-reads.yaml",
        &target,
        database_url,
        &["-u", "20", "-r", "100", "-t", "6s"],
    )
    .await;

    let served = target_stats(&target.url).await;
    let total = &summary["total"];
    let recorded = total["requests"].as_u64().unwrap() + total["cancelled"].as_u64().unwrap();
    assert_eq!(
        served["total"].as_u64().unwrap(),
        recorded,
        "target served != recorded"
    );
    assert!(
        recorded >= 10_000,
        "too few requests for the split check: {recorded}"
    );
    assert_eq!(total["failures"].as_u64().unwrap(), 0);

    let run_id = summary["run_id"].as_str().unwrap();
    let stored = stored_run(database_url, run_id).await;
    assert_eq!(
        stored.seconds_total.requests,
        total["requests"].as_u64().unwrap()
    );
    assert_eq!(
        stored.seconds_total, stored.summary_total,
        "seconds != summaries"
    );
    assert_eq!(
        stored.summary_total.requests + stored.summary_total.cancelled,
        recorded
    );

    // Per endpoint, the target's own count matches what was stored.
    let mut counts = Vec::new();
    for (method, name, endpoint_counts, histogram) in &stored.summary_by_endpoint {
        let key = format!("{method} {name}");
        let served_here = served["paths"][&key].as_u64().unwrap_or(0);
        assert_eq!(
            served_here,
            endpoint_counts.requests + endpoint_counts.cancelled,
            "{key}"
        );
        assert_eq!(
            histogram.len(),
            endpoint_counts.requests,
            "{key}: histogram count"
        );
        counts.push((name.as_str(), endpoint_counts.requests));
    }
    assert_split(
        &counts,
        &[
            ("/Test/V1", 60),
            ("/Test/V2", 1),
            ("/Test/V3", 14),
            ("/Test/V4", 5),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_reads_conserve_on_sqlite() {
    let db = TestDatabase::sqlite().unwrap();
    weighted_reads_conserve(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_reads_conserve_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    weighted_reads_conserve(db.url()).await;
}

/// With 20 ms injected latency the stored median is 20 ms (within 2 ms), and
/// the IoT scenario's login/metrics mix reaches the target. Few users, so the
/// two cores are not saturated: a saturated generator measures its own queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_shows_in_the_median() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(20)),
        ..TargetConfig::default()
    })
    .await;
    let summary = cicada_run(
        "examples/iot-device.yaml",
        &target,
        db.url(),
        &["-u", "10", "-r", "100", "-t", "4s"],
    )
    .await;
    let total = &summary["total"];
    let p50 = total["p50_ms"].as_f64().unwrap();
    assert!((p50 - 20.0).abs() <= 2.0, "p50 {p50} ms, expected 20 +- 2");
    assert!(total["min_ms"].as_f64().unwrap() >= 20.0);
    let served = target_stats(&target.url).await;
    let recorded = total["requests"].as_u64().unwrap() + total["cancelled"].as_u64().unwrap();
    assert_eq!(served["total"].as_u64().unwrap(), recorded);
    // As in the reference script, login is a weighted task (1 in 1000).
    assert!(served["paths"]["POST /metrics"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_bad_scenario_fails_with_its_location_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\nusers:\n  - name: u\n    tasks: []\n    wiat: 1s\n",
    )
    .unwrap();
    let (code, _stdout, stderr) = run_cicada(
        &[
            "run",
            path.to_str().unwrap(),
            "--host",
            "http://127.0.0.1:9",
            "-t",
            "1s",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.yaml:"), "{stderr}");
    assert!(stderr.contains("wiat"), "{stderr}");
}

#[tokio::test]
async fn validate_prints_the_endpoints() {
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let (code, stdout, _) = run_cicada(
        &["validate", scenario.to_str().unwrap()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 0);
    for endpoint in [
        "GET /Test/V1",
        "GET /Test/V2",
        "GET /Test/V3",
        "GET /Test/V4",
    ] {
        assert!(stdout.contains(endpoint), "{stdout}");
    }
}
