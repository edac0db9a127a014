//! The web UI's JSON API against a real cluster on loopback: a collector on
//! SQLite (or Postgres with `DATABASE_URL`), the controller with its web
//! port, real workers and the sample target, all over real gRPC and HTTP.

mod web_support;

use std::time::Duration;

use web_support::{Cluster, Options};

const SCENARIO: &str = "name: web-reads
host: http://127.0.0.1:9
users:
  - name: reader
    wait: { constant: 5ms }
    tasks:
      - weight: 3
        request: { method: GET, path: /Test/V1 }
      - weight: 1
        request: { method: GET, path: /Test/V3 }
";

fn basic() -> Options {
    Options {
        workers: 2,
        error_rate: 0.02,
        web_auth: Some("admin:pw-1".into()),
        token: None,
        scenarios: vec![("reads.yaml", SCENARIO), ("broken.yml", "name: [x\n")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_are_refused() {
    // An open UI (no login) on loopback: the easiest one to attack from
    // another page the browser has open.
    let cluster = Cluster::start(Options {
        workers: 1,
        web_auth: None,
        ..basic()
    })
    .await;
    let client = cluster.client(None);
    let stop = "/api/runs/no-such-run/stop";
    // Same origin (as the UI sends it) reaches the handler: 404.
    let origin = format!("http://{}", cluster.web_addr);
    let same = client
        .request(
            "POST",
            stop,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
            "{}",
        )
        .await;
    assert_eq!(same.status, 404, "{}", same.body);
    let other = client
        .request("POST", stop, &[("origin", "http://evil.example")], "{}")
        .await;
    assert_eq!(other.status, 403, "{}", other.body);
    let fetched = client
        .request(
            "GET",
            "/api/scenarios",
            &[("sec-fetch-site", "cross-site")],
            "",
        )
        .await;
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    // A form or no-cors fetch can only send "simple" content types.
    let form = client
        .request("POST", stop, &[("content-type", "text/plain")], "{}")
        .await;
    assert_eq!(form.status, 415, "{}", form.body);
    // DNS rebinding: a foreign name that resolves to 127.0.0.1.
    let rebound = client
        .request(
            "GET",
            "/api/scenarios",
            &[("host", "attacker.example:8089")],
            "",
        )
        .await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    let framed = client.get("/").await;
    assert_eq!(framed.header("x-frame-options"), Some("DENY"));
    assert_eq!(framed.header("x-content-type-options"), Some("nosniff"));
    // /health stays open to anything (probes).
    let health = client
        .request("GET", "/health", &[("host", "10.1.2.3:8089")], "")
        .await;
    assert_eq!(health.status, 200);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_assets_and_validation() {
    let cluster = Cluster::start(basic()).await;
    let open = cluster.client(None);
    let client = cluster.client(Some("Basic YWRtaW46cHctMQ==".into()));

    let health = open.get("/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let denied = open.get("/api/status").await;
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Basic realm=\"cicada\"")
    );
    let wrong = cluster
        .client(Some("Basic YWRtaW46bm9wZQ==".into()))
        .get("/")
        .await;
    assert_eq!(wrong.status, 401);

    let status = client.get("/api/status").await.json();
    assert_eq!(status["workers"], 2);
    assert_eq!(status["idle_workers"], 2);
    assert_eq!(status["scenarios"], 2);
    assert_eq!(status["auth"], true);

    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/charts.js", "text/javascript; charset=utf-8"),
    ] {
        let asset = client.get(path).await;
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("content-type"), Some(content_type), "{path}");
        assert_eq!(asset.header("cache-control"), Some("no-cache"), "{path}");
        assert!(!asset.body.is_empty(), "{path}");
    }
    assert_eq!(client.get("/assets/nope.js").await.status, 404);
    assert_eq!(client.get("/api/nope").await.status, 404);

    let scenarios = client.get("/api/scenarios").await.json();
    let names: Vec<&str> = scenarios
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken.yml", "reads.yaml"]);
    assert_eq!(scenarios[1]["name"], "web-reads");
    assert_eq!(scenarios[1]["yaml"], SCENARIO);

    let valid = client
        .post(
            "/api/scenarios/validate",
            serde_json::json!({ "yaml": SCENARIO, "path": "reads.yaml" }),
        )
        .await;
    assert_eq!(valid.status, 200, "{}", valid.body);
    let valid = valid.json();
    assert_eq!(valid["name"], "web-reads");
    assert_eq!(
        valid["endpoints"],
        serde_json::json!(["GET /Test/V1", "GET /Test/V3"])
    );
    assert_eq!(
        valid["users"],
        serde_json::json!([{ "name": "reader", "weight": 1 }])
    );

    // An unknown key on line 4, column 5.
    let bad = SCENARIO.replace(
        "    wait: { constant: 5ms }",
        "    wait: { constant: 5ms }\n    colour: red",
    );
    let invalid = client
        .post(
            "/api/scenarios/validate",
            serde_json::json!({ "yaml": bad, "path": "mine.yaml" }),
        )
        .await;
    assert_eq!(invalid.status, 400);
    let invalid = invalid.json();
    assert_eq!(invalid["path"], "mine.yaml");
    assert_eq!(
        (invalid["line"].as_u64(), invalid["column"].as_u64()),
        (Some(6), Some(5)),
        "{invalid}"
    );
    assert!(
        invalid["error"].as_str().unwrap().contains("colour"),
        "{invalid}"
    );

    let not_json = client.post_raw("/api/scenarios/validate", "{").await;
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );

    // Bad start forms are refused before anything starts.
    for (form, needle) in [
        (
            serde_json::json!({ "scenario_yaml": SCENARIO, "users": 0, "spawn_rate": 1 }),
            "users",
        ),
        (
            serde_json::json!({ "scenario_yaml": SCENARIO, "users": 2, "spawn_rate": 1, "run_time": "soon" }),
            "run_time",
        ),
        (
            serde_json::json!({ "scenario_path": "nope.yaml", "users": 2, "spawn_rate": 1 }),
            "nope.yaml",
        ),
        (
            serde_json::json!({ "scenario_yaml": SCENARIO, "users": 2, "spawn_rate": 1, "colour": 1 }),
            "colour",
        ),
        (
            serde_json::json!({ "scenario_yaml": SCENARIO, "users": 2, "spawn_rate": 1, "thresholds": ["p95 <"] }),
            "threshold",
        ),
    ] {
        let refused = client.post("/api/runs", form.clone()).await;
        assert_eq!(refused.status, 400, "{form}: {}", refused.body);
        let message = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{form}: {message}");
    }
    let broken = client
        .post(
            "/api/runs",
            serde_json::json!({ "scenario_path": "broken.yml", "users": 2, "spawn_rate": 1 }),
        )
        .await;
    assert_eq!(broken.status, 400);
    assert_eq!(broken.json()["path"], "broken.yml");

    for path in [
        "/api/runs/no-such-run/live",
        "/api/runs/no-such-run/stats.csv",
        "/api/runs/no-such-run/events",
    ] {
        let missing = client.get(path).await;
        assert_eq!(missing.status, 404, "{path}: {}", missing.body);
    }
    let stop = client
        .post("/api/runs/no-such-run/stop", serde_json::json!({}))
        .await;
    assert_eq!(stop.status, 404);
    let status = client.get("/api/status").await.json();
    assert_eq!(status["live_runs"], serde_json::json!([]));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_and_no_idle_workers() {
    let cluster = Cluster::start(Options {
        workers: 0,
        error_rate: 0.0,
        web_auth: None,
        token: Some("web-test-token".into()),
        scenarios: Vec::new(),
    })
    .await;
    assert_eq!(cluster.client(None).get("/api/workers").await.status, 401);
    assert_eq!(
        cluster
            .client(Some("Bearer wrong-token".into()))
            .get("/api/workers")
            .await
            .status,
        401
    );
    let client = cluster.client(Some("Bearer web-test-token".into()));
    let status = client.get("/api/status").await.json();
    assert_eq!(
        (status["workers"].as_u64(), status["auth"].as_bool()),
        (Some(0), Some(true))
    );
    assert_eq!(status["scenarios"], 0);
    assert_eq!(
        client.get("/api/scenarios").await.json(),
        serde_json::json!([])
    );
    let form = serde_json::json!({
        "scenario_yaml": SCENARIO, "host": cluster.target_url, "users": 1, "spawn_rate": 1,
    });
    let refused = client.post("/api/runs", form).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_watch_scale_stop_and_download() {
    let cluster = Cluster::start(basic()).await;
    let client = cluster.client(Some("Basic YWRtaW46cHctMQ==".into()));
    let started = client
        .post(
            "/api/runs",
            serde_json::json!({
                "scenario_path": "reads.yaml",
                "host": cluster.target_url,
                "users": 4,
                "spawn_rate": 100,
                "labels": { "release": "1.2" },
                "thresholds": ["p95 < 5s"],
            }),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let started = started.json();
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert_eq!(started["workers"], 2);

    let status = client.get("/api/status").await.json();
    assert_eq!(status["live_runs"][0]["run_id"], run_id.as_str());
    assert_eq!(status["live_runs"][0]["scenario_name"], "web-reads");

    // A second start while this one runs: no idle worker.
    let second = client
        .post(
            "/api/runs",
            serde_json::json!({ "scenario_path": "reads.yaml", "host": cluster.target_url, "users": 1, "spawn_rate": 1 }),
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.body);

    // Server-sent progress events with growing counts.
    let mut events = client.events(&format!("/api/runs/{run_id}/events")).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (name, data) = events
            .next(Duration::from_secs(10))
            .await
            .expect("an event");
        assert_eq!(name, "progress");
        assert_eq!(data["run_id"], run_id.as_str());
        assert_eq!(data["scenario_name"], "web-reads");
        assert_eq!(data["host"], cluster.target_url.as_str());
        seen.push(data["total"]["requests"].as_u64().unwrap());
    }
    assert!(seen[2] > seen[0], "requests did not grow: {seen:?}");
    drop(events);

    let scaled = client
        .post(
            &format!("/api/runs/{run_id}/scale"),
            serde_json::json!({ "users": 6 }),
        )
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.body);
    let bad_scale = client
        .post(
            &format!("/api/runs/{run_id}/scale"),
            serde_json::json!({ "rate": 5.0 }),
        )
        .await;
    assert_eq!(bad_scale.status, 400);
    assert!(
        bad_scale.json()["error"]
            .as_str()
            .unwrap()
            .contains("closed model")
    );

    // Users reach 6, and the workers report their request rates.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let live = client.get(&format!("/api/runs/{run_id}/live")).await.json();
        let workers = client.get("/api/workers").await.json();
        let busy = workers
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["run_id"] == run_id.as_str() && w["rps"].as_f64().unwrap() > 0.0)
            .count();
        if live["target_users"] == 6 && live["active_users"] == 6 && busy == 2 {
            assert_eq!(live["state"], "running");
            let requests = live["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| !matches!(e["method"].as_str(), Some("CONNECT" | "TLS")))
                .count();
            assert_eq!(requests, 2, "{live}");
            assert_eq!(live["worker_list"].as_array().unwrap().len(), 2);
            assert!(live["total"]["requests"].as_u64().unwrap() > 0);
            assert!(live["current"]["rps"].as_f64().unwrap() > 0.0, "{live}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 6 users with 2 busy workers: {live} {workers}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Stop: the event stream ends with `end` and the final numbers.
    // Two viewers share one producer; each gets progress, one `end`, and
    // the same final numbers.
    let mut events = client.events(&format!("/api/runs/{run_id}/events")).await;
    let mut second = client.events(&format!("/api/runs/{run_id}/events")).await;
    let stopped = client
        .post(&format!("/api/runs/{run_id}/stop"), serde_json::json!({}))
        .await;
    assert_eq!(stopped.status, 200);
    let mut ends = Vec::new();
    for viewer in [&mut events, &mut second] {
        let end = loop {
            let (name, data) = viewer
                .next(Duration::from_secs(30))
                .await
                .expect("events until the end");
            if name == "end" {
                break data;
            }
            assert_eq!(name, "progress");
        };
        assert!(
            viewer.next(Duration::from_secs(5)).await.is_none(),
            "stream closes after end"
        );
        ends.push(end);
    }
    let end = &ends[0];
    assert_eq!(end["state"], "finished", "{end}");
    assert_eq!(end["thresholds"][0]["passed"], true, "{end}");
    assert_eq!(ends[1]["total"]["requests"], end["total"]["requests"]);

    // Every worker reported WorkDone before the run ended: idle, no rate.
    let workers = client.get("/api/workers").await.json();
    for worker in workers.as_array().unwrap() {
        assert_eq!(worker["state"], "idle", "{worker}");
        assert_eq!(worker["rps"], 0.0, "{worker}");
    }

    // stats.csv totals are the collector's, and the target's own count.
    let served = cluster.target_total().await;
    let csv = client.get(&format!("/api/runs/{run_id}/stats.csv")).await;
    assert_eq!(csv.status, 200);
    assert_eq!(
        csv.header("content-disposition"),
        Some(format!("attachment; filename=\"cicada-{run_id}-stats.csv\"").as_str())
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(lines[0].starts_with("Type,Name,Request Count,Failure Count,Median Response Time"));
    assert_eq!(lines.len(), 4, "{}", csv.body);
    let column =
        |line: &str, index: usize| -> u64 { line.split(',').nth(index).unwrap().parse().unwrap() };
    let aggregated = lines[3];
    assert!(aggregated.starts_with(",Aggregated,"), "{aggregated}");
    assert_eq!(
        column(aggregated, 2),
        served,
        "Aggregated requests != served"
    );
    assert_eq!(column(lines[1], 2) + column(lines[2], 2), served);
    assert_eq!(
        column(aggregated, 2),
        end["total"]["requests"].as_u64().unwrap()
    );
    let stored = cluster.stored_requests(&run_id).await;
    assert_eq!(stored, served, "stored summaries != served");

    // The target fails 2% of its answers with 500: every one is listed.
    let failures = client
        .get(&format!("/api/runs/{run_id}/failures.csv"))
        .await;
    let mut lines = failures.body.lines();
    assert_eq!(lines.next(), Some("method,name,kind,count,last_message"));
    let failed: u64 = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields[2], "status 500", "{line}");
            fields[3].parse::<u64>().unwrap()
        })
        .sum();
    assert!(failed > 0, "no failure in {}", failures.body);
    assert_eq!(
        failed,
        column(aggregated, 3),
        "failures.csv != Aggregated failures"
    );

    let report = client
        .get(&format!("/api/runs/{run_id}/report.json"))
        .await
        .json();
    assert_eq!(report["stats"]["total"]["requests"].as_u64(), Some(served));
    let html = client.get(&format!("/api/runs/{run_id}/report.html")).await;
    assert_eq!(html.status, 200);
    let embedded = embedded_report(&html.body);
    assert_eq!(
        embedded["stats"]["total"]["requests"].as_u64(),
        Some(served)
    );
    assert_eq!(embedded["stats"]["run_id"], run_id.as_str());
    assert!(html.body.contains(&run_id));
    assert!(!html.body.contains("{{CICADA_"), "a marker was left");
    let external = external_url(&html.body);
    assert!(
        external.is_none(),
        "external URL in the report: {external:?}"
    );

    // history.csv: one row per stored second; they add up to the run.
    let history = client.get(&format!("/api/runs/{run_id}/history.csv")).await;
    assert_eq!(history.status, 200, "{}", history.body);
    let mut rows = history.body.lines();
    assert_eq!(
        rows.next(),
        Some("t_s,requests,failures,rps,failures_per_s,p50_ms,p95_ms,p99_ms,users")
    );
    let rows: Vec<Vec<f64>> = rows
        .map(|row| row.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 2, "{}", history.body);
    assert_eq!(rows.iter().map(|r| r[1] as u64).sum::<u64>(), served);
    assert_eq!(rows.iter().map(|r| r[2] as u64).sum::<u64>(), failed);
    assert!(
        rows.iter().any(|r| r[8] >= 6.0),
        "users reach 6: {}",
        history.body
    );
    assert_eq!(report["run"]["run"]["id"], run_id.as_str());
    assert_eq!(report["run"]["total"]["requests"].as_u64(), Some(served));

    // Stored runs through the collector's History service.
    let listed = client
        .get("/api/history/runs?scenario=web-reads&status=finished&label=release=1.2")
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], run_id.as_str());
    let none = client.get("/api/history/runs?label=release=9").await.json();
    assert_eq!(none, serde_json::json!([]));
    let detail = client
        .get(&format!("/api/history/runs/{run_id}?from=0&to=1"))
        .await
        .json();
    assert_eq!(detail["window"]["from_s"], 0);
    assert!(detail["total"]["requests"].as_u64().unwrap() <= served);
    let comparison = client
        .get(&format!(
            "/api/history/compare?a={run_id}&b={run_id}&tolerance=5%25"
        ))
        .await;
    assert_eq!(comparison.status, 200, "{}", comparison.body);
    assert_eq!(comparison.json()["regression"], false);
    let trend = client
        .get("/api/history/trend?scenario=web-reads&metric=requests&endpoint=total&last=5")
        .await
        .json();
    assert_eq!(
        trend["points"][0]["value"].as_f64(),
        Some(served as f64),
        "{trend}"
    );
    for (path, status) in [
        (format!("/api/history/runs/{run_id}/baseline"), 404),
        ("/api/history/runs/no-such-run".to_owned(), 404),
        ("/api/runs/no-such-run/history.csv".to_owned(), 404),
        ("/api/history/runs?status=sleeping".to_owned(), 400),
        ("/api/history/runs?limit=0".to_owned(), 400),
        (format!("/api/history/compare?a={run_id}"), 400),
        (
            "/api/history/trend?scenario=web-reads&metric=p42".to_owned(),
            400,
        ),
        (format!("/api/history/runs/{run_id}?from=5&to=1"), 400),
        ("/api/history/nope".to_owned(), 404),
    ] {
        let answer = client.get(&path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(answer.json()["error"].is_string(), "{path}");
    }

    // A finished run cannot be scaled; stopping it again is harmless.
    let late = client
        .post(
            &format!("/api/runs/{run_id}/scale"),
            serde_json::json!({ "users": 1 }),
        )
        .await;
    assert_eq!(late.status, 400);
    cluster.shutdown().await;
}

/// The first `src=`/`href=` attribute naming an http(s) URL, if any.
fn external_url(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    for attribute in ["src=", "href="] {
        let mut rest = lower.as_str();
        while let Some(at) = rest.find(attribute) {
            let value = rest[at + attribute.len()..].trim_start_matches(['"', '\'', ' ']);
            if value.starts_with("http://")
                || value.starts_with("https://")
                || value.starts_with("//")
            {
                return Some(value.chars().take(80).collect());
            }
            rest = &rest[at + attribute.len()..];
        }
    }
    None
}

/// The report JSON embedded where report.html has its marker.
fn embedded_report(html: &str) -> serde_json::Value {
    cicada_controller::web::report::embedded_json(html).expect("an embedded report")
}

const FLEET: &str = r#"
name: web-fleet
data:
  devices: {file: devices.csv, exhausted: stop}
users:
  - tasks:
      - request: {method: POST, path: /login, form: {deviceid: "{{ devices.next.deviceid }}"}}
"#;

const OUTSIDE: &str = r#"
name: web-outside
data:
  devices: {file: ../devices.csv}
users:
  - tasks:
      - request: {path: "/{{ devices.next.deviceid }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_from_the_directory_brings_its_data_files() {
    let cluster = Cluster::start(Options {
        workers: 2,
        error_rate: 0.0,
        web_auth: None,
        token: None,
        scenarios: vec![
            ("fleet.yaml", FLEET),
            (
                "devices.csv",
                "deviceid\nd1\nd2\nd3\nd4\nd5\nd6\nd7\nd8\nd9\nd10\n",
            ),
            ("outside.yaml", OUTSIDE),
        ],
    })
    .await;
    let client = cluster.client(None);
    // Data files are not scenarios.
    let scenarios = client.get("/api/scenarios").await.json();
    assert_eq!(scenarios.as_array().unwrap().len(), 2, "{scenarios}");

    let outside = client
        .post(
            "/api/runs",
            serde_json::json!({ "scenario_path": "outside.yaml", "host": cluster.target_url, "users": 1, "spawn_rate": 1 }),
        )
        .await;
    assert_eq!(outside.status, 400, "{}", outside.body);
    assert!(
        outside
            .body
            .contains("must be a path inside the scenarios directory"),
        "{}",
        outside.body
    );

    let started = client
        .post(
            "/api/runs",
            serde_json::json!({ "scenario_path": "fleet.yaml", "host": cluster.target_url, "users": 2, "spawn_rate": 100, "run_time": "60s" }),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    // The ten rows are used once each, then the run ends by itself.
    let mut events = client.events(&format!("/api/runs/{run_id}/events")).await;
    let end = loop {
        let (name, data) = events
            .next(Duration::from_secs(30))
            .await
            .expect("events until the end");
        if name == "end" {
            break data;
        }
    };
    assert_eq!(end["state"], "finished", "{end}");
    assert_eq!(end["total"]["requests"], 10, "{end}");
    assert_eq!(cluster.target_total().await, 10);
    cluster.shutdown().await;
}
