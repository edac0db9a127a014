//! The real `cicada-collector` binary with `--log-format json`: every line
//! it writes to stderr is one JSON object with Cloud Logging's fields, and
//! the lines of a run's calls carry its `run_id` (from the spans around
//! them).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cicada_proto::v1;
use cicada_proto::v1::collector_client::CollectorClient;
use serde_json::{Map, Value};

const RUN_ID: &str = "0190aaaa-0000-7000-8000-00000000json";

fn object(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(map)) => map,
        _ => panic!("a stderr line is not a JSON object: {line:?}"),
    }
}

#[tokio::test]
async fn every_stderr_line_is_json_and_run_lines_carry_the_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cicada-collector"))
        .args(["--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(dir.path().join("runs.db"))
        .env("RUST_LOG", "info")
        .env_remove("CICADA_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cicada-collector");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let mut seen = Vec::new();
    // The gRPC address, from the JSON line that announces it.
    let address = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the collector logs that it listens");
        let parsed = object(&line);
        seen.push(line);
        if parsed["message"] == "collector listening" {
            break parsed["address"].as_str().unwrap().to_owned();
        }
    };
    let mut client = CollectorClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    client
        .create_run(v1::CreateRunRequest {
            run_id: RUN_ID.to_owned(),
            scenario_name: "logs".to_owned(),
            scenario_yaml: "name: logs\n".to_owned(),
            host: "http://127.0.0.1:9".to_owned(),
            config_json: "{}".to_owned(),
            started_at_ms: 1_700_000_000_000,
            endpoints: vec![v1::Endpoint {
                index: 0,
                method: "GET".to_owned(),
                name: "/".to_owned(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .finish_run(v1::FinishRunRequest {
            run_id: RUN_ID.to_owned(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: 1_700_000_001_000,
            ..Default::default()
        })
        .await
        .unwrap();
    // An open connection would hold the graceful shutdown.
    drop(client);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "collector did not stop"
        );
        // Not a thread sleep: the runtime must run to close the dropped
        // client's connection, or the collector waits for it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "collector exited with {status}");
    reader.join().unwrap();
    seen.extend(lines.try_iter());

    let parsed: Vec<Map<String, Value>> = seen.iter().map(|line| object(line)).collect();
    for line in &parsed {
        for field in ["timestamp", "severity", "message", "target"] {
            assert!(line.contains_key(field), "no {field} in {line:?}");
        }
        let severity = line["severity"].as_str().unwrap();
        assert!(
            ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&severity),
            "{severity}"
        );
        humantime::parse_rfc3339(line["timestamp"].as_str().unwrap()).unwrap();
    }
    let of_message = |message: &str| {
        parsed
            .iter()
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {seen:#?}"))
    };
    let created = of_message("run created");
    assert_eq!(created["run_id"], RUN_ID);
    assert_eq!(created["scenario"], "logs");
    let finished = of_message("run finished");
    assert_eq!(finished["run_id"], RUN_ID);
    assert_eq!(finished["span"], "finish_run");
    assert_eq!(of_message("shutting down")["signal"], "SIGTERM");
}
