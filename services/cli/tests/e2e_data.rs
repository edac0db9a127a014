//! Test data files end to end through `cicada run` with two workers
//! against the sample target, which remembers the `deviceid` of every
//! login: `unique` rows reach at most one user across the workers, a
//! `unique` set that runs out ends the run (or fails it), `sequential`
//! rows are read once per user in order, and `circular`/`random` JSON-lines
//! rows fill per-task values.

mod support;

use std::time::{Duration, Instant};

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;

/// `n` devices `dev-0000` ... with a key column the scenario does not read.
fn devices_csv(n: usize) -> String {
    let mut csv = String::from("key,deviceid\n");
    for i in 0..n {
        csv.push_str(&format!("k{i},dev-{i:04}\n"));
    }
    csv
}

fn endpoint_requests(summary: &serde_json::Value, name: &str) -> u64 {
    summary["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name}: {summary}"))["requests"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_rows_per_user_and_circular_rows_per_task_across_two_workers() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/devices.csv"), devices_csv(1000)).unwrap();
    std::fs::write(
        dir.path().join("readings.jsonl"),
        "{\"value\": 1, \"at\": \"t1\"}\n{\"value\": 2.5, \"at\": \"t2\"}\n",
    )
    .unwrap();
    let scenario = scenario_file(
        &dir,
        r#"
name: iot-data
data:
  devices: {file: data/devices.csv, pick: unique}
  readings: {file: readings.jsonl, pick: circular}
users:
  - variables: {deviceid: "{{ devices.deviceid }}"}
    on_start:
      - {method: POST, path: /login, form: {deviceid: "{{ deviceid }}"}}
    tasks:
      - request:
          method: POST
          path: /metrics
          form: {deviceid: "{{ deviceid }}", timestamp: "{{ readings.next.at }}", value: "{{ readings.next.value }}"}
"#,
    );
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "40", "-r", "200", "-t", "3s"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("data set devices: ") && run.stderr.contains("1000 rows (pick unique)"),
        "the CLI says what it read: {}",
        run.stderr
    );
    let stats = target_stats(&target.url).await;
    // One login per user, each with its own device: none twice across the
    // two workers.
    assert_eq!(stats["paths"]["POST /login"], 40, "{stats}");
    assert_eq!(stats["login_devices"], 40, "{stats}");
    assert_eq!(stats["login_repeats"], 0, "{stats}");
    // Every metrics request carried a timestamp from the JSON lines (the
    // target answers 400 without one).
    let metrics = endpoint_requests(&run.summary, "/metrics");
    assert!(metrics > 40, "{}", run.summary);
    assert_eq!(stats["bad_requests"], 0, "{stats}");
    assert_conserved(&target.url, db.url(), &run.summary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_set_taken_per_task_hands_out_every_row_once_then_stops_the_run() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("devices.csv"), devices_csv(3000)).unwrap();
    let yaml = |exhausted: &str| {
        format!(
            r#"
name: iot-once
data:
  devices: {{file: devices.csv, exhausted: {exhausted}}}
users:
  - tasks:
      - request: {{method: POST, path: /login, form: {{deviceid: "{{{{ devices.next.deviceid }}}}"}}}}
"#
        )
    };
    let scenario = scenario_file(&dir, &yaml("stop"));
    let started = Instant::now();
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "10", "-r", "100", "-t", "60s"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the run ends when the rows run out, not at its time limit"
    );
    assert!(
        run.stderr
            .contains("stopped early: data set \"devices\" ran out: all 3000 rows were used"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.summary["stop_reason"],
        "data set \"devices\" ran out: all 3000 rows were used"
    );
    assert_eq!(run.summary["state"], "finished", "{}", run.summary);
    let stats = target_stats(&target.url).await;
    // Every row was used exactly once, by whichever worker leased it.
    assert_eq!(stats["paths"]["POST /login"], 3000, "{stats}");
    assert_eq!(stats["login_devices"], 3000, "{stats}");
    assert_eq!(stats["login_repeats"], 0, "{stats}");
    assert_conserved(&target.url, db.url(), &run.summary).await;

    // `exhausted: fail`: the same end, as a failed run.
    let target = start_target(TargetConfig::default()).await;
    std::fs::write(dir.path().join("devices.csv"), devices_csv(200)).unwrap();
    let scenario = scenario_file(&dir, &yaml("fail"));
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "4", "-r", "100", "-t", "60s"],
        &[],
    )
    .await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("data set \"devices\" ran out: all 200 rows were used (exhausted: fail)"),
        "{}",
        run.stderr
    );
    let stats = target_stats(&target.url).await;
    assert_eq!(stats["login_devices"], 200, "{stats}");
    assert_eq!(stats["login_repeats"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_rows_are_read_once_per_user_in_order() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("devices.csv"), devices_csv(3)).unwrap();
    let scenario = scenario_file(
        &dir,
        r#"
name: replay
data:
  devices: {file: devices.csv, pick: sequential}
users:
  - tasks:
      - request: {method: POST, path: /login, form: {deviceid: "{{ devices.next.deviceid }}"}}
"#,
    );
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "4", "-r", "100", "-t", "2s"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = target_stats(&target.url).await;
    // Each of the 4 users logs in with the 3 devices, then stops.
    assert_eq!(stats["paths"]["POST /login"], 12, "{stats}");
    assert_eq!(stats["login_devices"], 3, "{stats}");
    assert_eq!(stats["login_repeats"], 9, "{stats}");
    assert_conserved(&target.url, db.url(), &run.summary).await;
}

#[tokio::test]
async fn validate_checks_the_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        "name: v\ndata:\n  devices: {file: devices.csv}\nusers:\n  - tasks:\n      - request: {path: \"/{{ devices.serial }}\"}\n",
    );
    let path = scenario.to_str().unwrap();
    let (code, _, stderr) = run_cicada(&["validate", path], Duration::from_secs(30)).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("data set \"devices\": failed to read"),
        "{stderr}"
    );
    assert!(stderr.contains("relative to the scenario file"), "{stderr}");

    std::fs::write(dir.path().join("devices.csv"), devices_csv(2)).unwrap();
    let (code, _, stderr) = run_cicada(&["validate", path], Duration::from_secs(30)).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!(
            "{path}:6:25: data set \"devices\" has no column \"serial\""
        )),
        "{stderr}"
    );

    std::fs::write(dir.path().join("devices.csv"), "serial\ns1\ns2,extra\n").unwrap();
    let (code, _, stderr) = run_cicada(&["validate", path], Duration::from_secs(30)).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("devices.csv:3:0: this row has 2 fields, the header 1"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("devices.csv"), "serial\ns1\ns2\n").unwrap();
    let (code, stdout, stderr) = run_cicada(&["validate", path], Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2 rows (pick unique)"), "{stderr}");
    assert!(
        stdout
            .contains("devices: devices.csv (csv, pick unique, exhausted: stop), columns: serial"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iot_fleet_example_runs_with_its_data_files() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let scenario = workspace_file("examples/iot-fleet.yaml");
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "30", "-r", "100", "-t", "3s"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = target_stats(&target.url).await;
    assert_eq!(stats["login_devices"], 30, "{stats}");
    assert_eq!(stats["login_repeats"], 0, "{stats}");
    assert_eq!(stats["bad_requests"], 0, "{stats}");
    let checks = run.summary["checks"].as_array().unwrap();
    assert_eq!(checks[0]["passed"], 30, "{}", run.summary);
    assert_eq!(checks[0]["failed"], 0, "{}", run.summary);
    assert_conserved(&target.url, db.url(), &run.summary).await;
}
