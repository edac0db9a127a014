//! The controller's `/metrics` on its web port, scraped over real HTTP
//! before, during and after a real run (real workers, the sample target):
//! workers by state, runs by state and the heartbeat lag, without the
//! login the rest of the web UI wants.

mod web_support;

use std::net::SocketAddr;
use std::time::Duration;

use cicada_telemetry::testing::{self, Scrape};
use web_support::{Cluster, Options};

const SCENARIO: &str = "name: metrics-reads
host: http://127.0.0.1:9
users:
  - name: reader
    wait: { constant: 5ms }
    tasks:
      - request: { method: GET, path: /Test/V1 }
";

fn workers(scrape: &Scrape, state: &str) -> f64 {
    scrape.value(&format!("cicada_controller_workers{{state=\"{state}\"}}"))
}

fn runs(scrape: &Scrape, state: &str) -> f64 {
    scrape.value(&format!("cicada_controller_runs{{state=\"{state}\"}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_runs_and_heartbeat_lag_follow_a_run() {
    let cluster = Cluster::start(Options {
        workers: 2,
        error_rate: 0.0,
        web_auth: Some("admin:pw-1".into()),
        token: None,
        scenarios: Vec::new(),
    })
    .await;
    let web: SocketAddr = cluster.web_addr.parse().unwrap();
    let client = cluster.client(Some("Basic YWRtaW46cHctMQ==".into()));
    let (status, _, _) = testing::get(web, "/api/status").await;
    assert_eq!(status, 401, "the rest of the web UI wants the login");

    let idle = testing::scrape(web).await;
    assert_eq!(workers(&idle, "idle"), 2.0);
    assert_eq!(workers(&idle, "busy"), 0.0);
    for state in ["starting", "running", "stopping", "finished", "failed"] {
        assert_eq!(runs(&idle, state), 0.0, "{state}");
    }
    assert_eq!(
        idle.types["cicada_controller_heartbeat_lag_seconds"],
        "gauge"
    );
    // Heartbeats come every second; a worker silent for 3 s is dropped.
    let lag = idle.value("cicada_controller_heartbeat_lag_seconds");
    assert!((0.0..3.0).contains(&lag), "lag {lag}");

    let started = client
        .post(
            "/api/runs",
            serde_json::json!({
                "scenario_yaml": SCENARIO,
                "host": cluster.target_url,
                "users": 2,
                "spawn_rate": 100,
            }),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    let running = testing::scrape(web).await;
    assert_eq!(runs(&running, "running"), 1.0);
    assert_eq!(workers(&running, "busy"), 2.0);
    assert_eq!(workers(&running, "idle"), 0.0);

    let stopped = client
        .post(&format!("/api/runs/{run_id}/stop"), serde_json::json!({}))
        .await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    // Bounded wait for the run's end (stop grace plus the collector's finish).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let scrape = testing::scrape(web).await;
        if runs(&scrape, "finished") == 1.0 {
            break scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not finish: {:?}",
            scrape.samples
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(runs(&ended, "running"), 0.0);
    assert_eq!(runs(&ended, "failed"), 0.0);
    assert_eq!(workers(&ended, "idle") + workers(&ended, "busy"), 2.0);
    cluster.shutdown().await;
}
