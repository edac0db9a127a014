//! End to end through `cicada run`: collector, controller and workers in one
//! process (real gRPC on loopback), a real sample target, a real database.
//! The invariant: what cicada stored equals what the target served, exactly.

mod support;

use std::time::Duration;

use cicada_sample_target::{Latency, TargetConfig};
use cicada_store::testing::TestDatabase;
use support::*;

/// Runs `cicada run` of a workspace scenario on 2 workers, checks it
/// succeeded with live progress and a final table, and returns the summary.
async fn cicada_run(
    scenario: &str,
    target: &Target,
    database_url: &str,
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    let run = cicada_run_with(
        &workspace_file(scenario),
        &target.url,
        database_url,
        &args,
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "cicada run failed: {}", run.stderr);
    assert!(
        run.stdout.contains("Aggregated"),
        "final table missing: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("req/s"),
        "no live progress line: {}",
        run.stderr
    );
    run.summary
}

/// The weighted-reads scenario against the sample target: exact conservation
/// between target, summary JSON, stored seconds and stored summaries, and the
/// 60:1:14:5 split over at least 10,000 requests.
async fn weighted_reads_conserve(database_url: &str) {
    let target = start_target(TargetConfig::default()).await;
    let summary = cicada_run(
        "examples/weighted-reads.yaml",
        &target,
        database_url,
        &["-u", "20", "-r", "100", "-t", "6s"],
    )
    .await;
    assert_eq!(summary["total"]["failures"].as_u64().unwrap(), 0);
    let counts = assert_conserved(&target.url, database_url, &summary).await;
    assert_split(&counts, &WEIGHTED_READS);
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
async fn injected_latency_shows_in_the_median(database_url: &str) {
    let target = start_target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(20)),
        ..TargetConfig::default()
    })
    .await;
    let summary = cicada_run(
        "examples/iot-device.yaml",
        &target,
        database_url,
        &["-u", "10", "-r", "100", "-t", "4s"],
    )
    .await;
    let total = &summary["total"];
    let p50 = total["p50_ms"].as_f64().unwrap();
    assert!((p50 - 20.0).abs() <= 2.0, "p50 {p50} ms, expected 20 +- 2");
    assert!(total["min_ms"].as_f64().unwrap() >= 20.0);
    let stored_p50 = stored_p50_ms(database_url, summary["run_id"].as_str().unwrap()).await;
    assert_eq!(
        stored_p50, p50,
        "stored histograms disagree with the summary"
    );
    let counts = assert_conserved(&target.url, database_url, &summary).await;
    // As in the reference script, login is a weighted task (1 in 1000).
    assert!(counts.iter().any(|(name, n)| name == "/metrics" && *n > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_shows_in_the_median_on_sqlite() {
    let db = TestDatabase::sqlite().unwrap();
    injected_latency_shows_in_the_median(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_shows_in_the_median_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    injected_latency_shows_in_the_median(db.url()).await;
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

/// Ctrl-C (SIGINT) stops a run without a time limit cleanly: the final table
/// and summary are written, the exit code is 0, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_run_cleanly() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cicada"))
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--host",
            &target.url,
            "--database-url",
            db.url(),
            "--summary-json",
            summary_path.to_str().unwrap(),
            "--workers",
            "1",
            "-u",
            "4",
            "-r",
            "100",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let progress = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("req/s") {
                return line;
            }
        }
        panic!("cicada run ended without a progress line");
    })
    .await
    .expect("a progress line within 60 s");
    assert!(progress.contains("users"), "{progress}");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            lines.push(line);
        }
        lines.join("\n")
    });
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("cicada run stopped within 60 s of Ctrl-C")
        .unwrap();
    let rest = rest.await.unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("stopping the run"), "{rest}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert!(summary["total"]["requests"].as_u64().unwrap() > 0);
    assert_conserved(&target.url, db.url(), &summary).await;
}

/// A scenario with stages ramps its users up and down and ends with the
/// shape; every request still conserves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_shape_the_users() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        "name: staged\nstages:\n  - {duration: 2s, users: 6}\n  - {duration: 2s, users: 6}\n  - {duration: 2s, users: 2}\nusers:\n  - wait: {constant: 10ms}\n    tasks: [{request: {path: /Test/V1}}]\n",
    );
    let run = cicada_run_with(&scenario, &target.url, db.url(), &["--workers", "2"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("/6 on 2 workers"),
        "the peak target shows: {}",
        run.stderr
    );
    let duration = run.summary["duration_s"].as_f64().unwrap();
    assert!(
        (5.5..15.0).contains(&duration),
        "the shape ends the run: {duration} s"
    );
    assert_conserved(&target.url, db.url(), &run.summary).await;
}

/// A target that fails a fifth of its answers while the generators idle:
/// the run ends with the "target errors" diagnosis, naming the failure kind
/// and the endpoints, on screen and in the summary JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_errors_are_diagnosed() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig {
        error_rate: 0.2,
        ..TargetConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        "name: paced\nusers:\n  - wait: {constant: 20ms}\n    tasks: [{request: {method: GET, path: /Test/V1}}]\n",
    );
    let LocalRun {
        code,
        stdout,
        stderr,
        summary,
    } = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "1", "-u", "4", "-r", "100", "-t", "5s"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "failures alone do not fail the run: {stderr}");
    assert!(stdout.contains("Diagnosis:"), "{stdout}");
    assert!(
        stdout.contains("target errors with healthy generators"),
        "{stdout}"
    );
    assert!(stdout.contains("x status 500 on GET /Test/V1"), "{stdout}");
    assert_eq!(
        summary["diagnoses"][0]["kind"], "target_errors",
        "{summary}"
    );
    let failures = summary["total"]["failures"].as_u64().unwrap();
    let served = target_stats(&target.url).await;
    assert_eq!(served["errors"].as_u64().unwrap(), failures, "{served}");
}

/// The open model through `cicada run --rate`: every due iteration starts
/// (the sample target has capacity to spare), what the target served equals
/// what is stored, nothing is dropped, and the uncorrected latencies are
/// stored and reported next to the corrected ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_rate_conserves_and_drops_nothing() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let summary = cicada_run(
        "examples/weighted-reads.yaml",
        &target,
        db.url(),
        &["--rate", "200/s", "--max-in-flight", "40", "-t", "4s"],
    )
    .await;
    assert_eq!(summary["dropped"].as_u64().unwrap(), 0);
    let total = &summary["total"];
    assert_eq!(total["failures"].as_u64().unwrap(), 0);
    let requests = total["requests"].as_u64().unwrap();
    // 4 s at 200/s, started when the workers got the run: generous bounds.
    assert!((650..=850).contains(&requests), "{requests} requests");
    let uncorrected = &total["uncorrected"];
    for key in ["p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(uncorrected[key].as_f64().is_some(), "uncorrected.{key}");
    }
    // Corrected latencies count from the intended start: never below.
    assert!(total["p50_ms"].as_f64().unwrap() >= uncorrected["p50_ms"].as_f64().unwrap());
    assert_conserved(&target.url, db.url(), &summary).await;

    let run_id = summary["run_id"].as_str().unwrap();
    let store = cicada_store::connect(db.url()).await.unwrap();
    assert_eq!(store.dropped(run_id).await.unwrap(), 0);
    // The achieved rate: every whole wall-clock second of the run (not the
    // partial first and last) holds 200 requests, within 2%.
    // Requests only: not the connection rows (CONNECT, TLS).
    let endpoints = store.endpoints(run_id).await.unwrap();
    let is_request = |index: u32| endpoints.iter().any(|e| e.index == index && e.is_request());
    let mut per_second = std::collections::BTreeMap::<i64, u64>::new();
    for row in store.seconds(run_id, None).await.unwrap() {
        if is_request(row.endpoint) {
            *per_second.entry(row.second).or_default() += row.counts.requests;
        }
    }
    let counts: Vec<u64> = per_second.values().copied().collect();
    assert!(counts.len() >= 4, "{per_second:?}");
    for &count in &counts[1..counts.len() - 1] {
        assert!(
            (196..=204).contains(&count),
            "achieved rate: {per_second:?}"
        );
    }
    for endpoint in store.summaries(run_id).await.unwrap() {
        if endpoint.counts.requests > 0 && is_request(endpoint.endpoint) {
            let stored = endpoint.uncorrected.expect("uncorrected histogram stored");
            assert_eq!(stored.len(), endpoint.counts.requests);
        }
    }
    let config: serde_json::Value =
        serde_json::from_str(&store.get_run(run_id).await.unwrap().unwrap().config_json).unwrap();
    assert_eq!(config["model"], "open");
    assert_eq!(config["rate"], 200.0);
    assert_eq!(config["max_in_flight"], 40);
}

/// Rate stages drive the open model: the rate ramps 0 -> 100/s, holds and
/// ramps down, so about 350 iterations start; every one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_stages_shape_the_open_model() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let summary = cicada_run(
        "examples/weighted-reads.yaml",
        &target,
        db.url(),
        &[
            "--stage", "2s:100/s", "--stage", "2s:100/s", "--stage", "1s:0/s",
        ],
    )
    .await;
    let requests = summary["total"]["requests"].as_u64().unwrap();
    assert!((250..=450).contains(&requests), "{requests} iterations");
    assert_eq!(summary["dropped"].as_u64().unwrap(), 0);
    assert_conserved(&target.url, db.url(), &summary).await;
}
