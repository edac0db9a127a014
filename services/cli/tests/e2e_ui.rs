//! `cicada ui` and `cicada run --html` as real processes: the UI's local
//! cluster serves the web API until SIGTERM (refusing hosts outside
//! `--allow-target`), and the HTML report holds the
//! run's exact numbers with no external URL.
#![allow(clippy::print_stderr)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cicada_sample_target::TargetConfig;
use support::*;

const SCENARIO: &str = "name: ui-reads
users:
  - name: reader
    wait: { constant: 5ms }
    tasks:
      - request: { method: GET, path: /Test/V1 }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_serves_the_web_api_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(scenarios.join("reads.yaml"), SCENARIO).unwrap();
    let database = dir.path().join("ui.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cicada"))
        .args([
            "ui",
            "--web-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--database-url",
            database.to_str().unwrap(),
            "--scenarios",
            scenarios.to_str().unwrap(),
            "--allow-target",
            "10.0.0.0/8",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut ui = Process(child);
    // The address line, read on a thread (bounded by the child's life).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[ui] {line}");
            if let Some(url) = line.strip_prefix("web UI: ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("`web UI: http://...` within 30 s");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");

    assert_eq!(http_get(&url, "/health").await, "ok");
    let status: serde_json::Value =
        serde_json::from_str(&http_get(&url, "/api/status").await).unwrap();
    assert_eq!(status["workers"], 2, "{status}");
    assert_eq!(status["scenarios"], 1, "{status}");
    let scenarios: serde_json::Value =
        serde_json::from_str(&http_get(&url, "/api/scenarios").await).unwrap();
    assert_eq!(scenarios[0]["name"], "ui-reads");
    assert!(http_get(&url, "/").await.contains("<html"));

    // --allow-target: a run against a host outside the list is refused
    // with the controller's message, before any worker is claimed.
    let start = serde_json::json!({
        "scenario_yaml": SCENARIO, "host": "http://127.0.0.1:9", "users": 1, "spawn_rate": 1
    });
    let (status, body) = http_post_json(&url, "/api/runs", &start.to_string()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("is not in the allowed targets (10.0.0.0/8)"),
        "{body}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&http_get(&url, "/api/status").await).unwrap();
    assert_eq!(status["live_runs"], serde_json::json!([]), "{status}");
    assert_eq!(status["idle_workers"], 2, "no worker claimed: {status}");

    ui.terminate(Duration::from_secs(20));
    assert!(ui.0.try_wait().unwrap().unwrap().success(), "clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_a_self_contained_html_report() {
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(&dir, SCENARIO);
    let database = dir.path().join("runs.db");
    let html_path = dir.path().join("report.html");
    let run = cicada_run_with(
        &scenario,
        &target.url,
        database.to_str().unwrap(),
        &[
            "--workers",
            "2",
            "-u",
            "4",
            "-r",
            "100",
            "-t",
            "2s",
            "--html",
            html_path.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains("{{CICADA_"), "a marker was left");
    let lower = html.to_ascii_lowercase();
    for attribute in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(
            !lower.contains(attribute),
            "external URL ({attribute}) in the report"
        );
    }
    // The embedded report: stored run detail and final statistics, equal to
    // what the target served.
    let report = embedded_report(&html);
    let served = target_stats(&target.url).await["total"].as_u64().unwrap();
    assert!(served > 0);
    assert_eq!(report["stats"]["total"]["requests"].as_u64(), Some(served));
    assert_eq!(report["stats"]["state"], "finished");
    assert_eq!(report["stats"]["scenario_name"], "ui-reads");
    assert_eq!(report["run"]["run"]["id"], run.summary["run_id"]);
    assert_eq!(report["run"]["total"]["requests"].as_u64(), Some(served));
    let series_total: u64 = report["run"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|second| second["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(series_total, served, "per-second series != served");

    // A report into a missing directory is refused before the run.
    let bad = run_cicada(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--host",
            &target.url,
            "--html",
            "/nonexistent-dir/report.html",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(bad.0, 1);
    assert!(bad.2.contains("does not exist"), "{}", bad.2);
}

/// The report JSON embedded where report.html has its marker.
fn embedded_report(html: &str) -> serde_json::Value {
    cicada_controller::web::report::embedded_json(html).expect("an embedded report")
}
