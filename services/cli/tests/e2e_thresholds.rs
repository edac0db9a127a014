//! Thresholds end to end through `cicada run`: a sample target with a fixed
//! 20 ms latency, pass/fail in the final table and the summary JSON, the
//! results stored with the run, the exit codes, and `abort_on_fail`.

mod support;

use std::time::{Duration, Instant};

use cicada_sample_target::{Latency, TargetConfig};
use cicada_store::RunStatus;
use cicada_store::testing::TestDatabase;
use support::*;

/// `cicada run examples/iot-device.yaml` against a 20 ms target with a few
/// users, the given extra flags and a summary JSON.
async fn run_with(target: &Target, database_url: &str, extra: &[&str]) -> LocalRun {
    let scenario = workspace_file("examples/iot-device.yaml");
    let mut args = vec!["--workers", "1", "-u", "4", "-r", "100"];
    args.extend_from_slice(extra);
    let out = cicada_run_with(&scenario, &target.url, database_url, &args, &[]).await;
    assert!(
        !out.summary.is_null(),
        "no summary written; stderr: {}",
        out.stderr
    );
    out
}

async fn target_20ms() -> Target {
    start_target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(20)),
        ..TargetConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_threshold_exits_99_and_is_stored() {
    let db = TestDatabase::sqlite().unwrap();
    let target = target_20ms().await;
    let out = run_with(
        &target,
        db.url(),
        &[
            "-t",
            "3s",
            "--threshold",
            "p50 < 5ms",
            "--threshold",
            "POST /metrics: failure_rate < 1%",
        ],
    )
    .await;
    assert_eq!(out.code, 99, "{}", out.stderr);
    assert!(
        out.stdout.contains("Thresholds: 1 passed, 1 failed"),
        "{}",
        out.stdout
    );
    let fail_line = out
        .stdout
        .lines()
        .find(|line| line.contains("p50 < 5ms"))
        .expect("a line for the failing threshold");
    assert!(
        fail_line.trim_start().starts_with("FAIL  total"),
        "{fail_line}"
    );
    assert!(out.stdout.contains("PASS  POST /metrics"), "{}", out.stdout);
    assert!(
        out.stderr.contains("1 of 2 thresholds failed"),
        "{}",
        out.stderr
    );

    let thresholds = &out.summary["thresholds"];
    assert_eq!(thresholds[0]["expression"], "p50 < 5ms");
    assert_eq!(thresholds[0]["endpoint"], serde_json::Value::Null);
    assert_eq!(thresholds[0]["passed"], false);
    let observed = thresholds[0]["observed"].as_f64().unwrap();
    assert!(observed >= 20.0, "p50 observed {observed} ms");
    // The same number as the final table's p50: both from the merged histograms.
    assert_eq!(observed, out.summary["total"]["p50_ms"].as_f64().unwrap());
    assert_eq!(thresholds[1]["endpoint"], "POST /metrics");
    assert_eq!(thresholds[1]["passed"], true);

    let run_id = out.summary["run_id"].as_str().unwrap();
    let store = cicada_store::connect(db.url()).await.unwrap();
    let stored = store.thresholds(run_id).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].threshold.expression, "p50 < 5ms");
    assert_eq!(stored[0].passed, Some(false));
    assert_eq!(stored[0].observed, Some(observed));
    assert_eq!(stored[1].passed, Some(true));
    assert_conserved(&target.url, db.url(), &out.summary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_thresholds_exit_0() {
    let db = TestDatabase::sqlite().unwrap();
    let target = target_20ms().await;
    let out = run_with(
        &target,
        db.url(),
        &[
            "-t",
            "2s",
            "--threshold",
            "p95 < 1s",
            "--threshold",
            "failure_rate < 1%",
            "--threshold",
            "POST /metrics: min >= 20ms",
            "--threshold",
            "requests >= 1",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Thresholds: 4 passed, 0 failed"),
        "{}",
        out.stdout
    );
    let passed: Vec<bool> = out.summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [true, true, true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_early() {
    let db = TestDatabase::sqlite().unwrap();
    let target = target_20ms().await;
    let started = Instant::now();
    let out = run_with(
        &target,
        db.url(),
        &["-t", "60s", "--threshold", "p50 < 5ms abort_on_fail=1s"],
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(out.code, 99, "{}", out.stderr);
    // A 60 s run, stopped within seconds of the 1 s delay (generous bounds).
    assert!(elapsed < Duration::from_secs(40), "took {elapsed:?}");
    let duration_s = out.summary["duration_s"].as_f64().unwrap();
    assert!(duration_s < 15.0, "run lasted {duration_s} s");
    assert!(
        out.stderr
            .contains("stopped early: threshold failed: p50 < 5ms (observed"),
        "{}",
        out.stderr
    );

    let run_id = out.summary["run_id"].as_str().unwrap();
    let store = cicada_store::connect(db.url()).await.unwrap();
    let run = store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Finished);
    let error = run.error.unwrap_or_default();
    assert!(
        error.starts_with("threshold failed: p50 < 5ms (observed "),
        "{error}"
    );
    let stored = store.thresholds(run_id).await.unwrap();
    assert_eq!(stored[0].passed, Some(false));
    assert!(stored[0].threshold.abort_on_fail);
    assert_eq!(stored[0].threshold.delay_ms, 1000);
    // Stopped like StopRun: nothing lost.
    assert_conserved(&target.url, db.url(), &out.summary).await;
}

#[tokio::test]
async fn bad_threshold_flags_exit_2_before_starting() {
    let scenario = workspace_file("examples/iot-device.yaml");
    for (flag, message) in [
        ("p95 < 150", "needs a unit"),
        ("GET /nope: p95 < 1s", "unknown endpoint \"GET /nope\""),
    ] {
        let (code, _, stderr) = run_cicada(
            &[
                "run",
                scenario.to_str().unwrap(),
                "--host",
                "http://127.0.0.1:9",
                "--threshold",
                flag,
            ],
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains(message), "{flag}: {stderr}");
    }
}
