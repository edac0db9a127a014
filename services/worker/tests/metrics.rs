//! The worker's `/metrics` on its metrics listener, scraped over real HTTP
//! before, during and after a real run: the real collector (SQLite), the
//! real controller and the sample target on loopback. After the run the
//! worker's request counter equals the requests the target served.

use std::net::SocketAddr;
use std::time::Duration;

use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::{ListWorkersRequest, StartRunRequest, WatchRunRequest};
use cicada_telemetry::testing::{self, Scrape};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(20);

const SCENARIO: &str = "\
name: worker-metrics
users:
  - name: reader
    wait: {constant: 5ms}
    tasks:
      - request: {method: GET, path: /Test/V1}
";

async fn bound() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

fn stop_flag() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
    })
}

/// Served requests by the sample target's own count.
async fn served(target: SocketAddr) -> u64 {
    let (status, _, body) = testing::get(target, "/stats").await;
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    stats["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cpu_and_buffer_follow_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (target_listener, target) = bound().await;
    let (stop_target, target_stopped) = stop_flag();
    let target_task = tokio::spawn(cicada_sample_target::run(
        cicada_sample_target::TargetConfig::default(),
        target_listener,
        target_stopped,
    ));
    let (collector_listener, collector) = bound().await;
    let (stop_collector, collector_stopped) = stop_flag();
    let collector_task = tokio::spawn(cicada_collector::run(
        cicada_collector::CollectorConfig {
            database_url: dir.path().join("runs.db").display().to_string(),
            ..Default::default()
        },
        collector_listener,
        collector_stopped,
    ));
    let (controller_listener, controller) = bound().await;
    let (stop_controller, controller_stopped) = stop_flag();
    let mut config = cicada_controller::ControllerConfig::new(format!("http://{collector}"));
    config.progress_interval = Duration::from_millis(200);
    let controller_task = tokio::spawn(cicada_controller::run(
        config,
        controller_listener,
        controller_stopped,
    ));
    let (metrics_listener, metrics) = bound().await;
    let (stop_worker, worker_stopped) = stop_flag();
    let mut config = cicada_worker::WorkerConfig::new(format!("http://{controller}"));
    config.worker_id = "metrics-worker".into();
    config.cores = 1;
    config.engine.threads = 1;
    let worker_task = tokio::spawn(cicada_worker::run_with_metrics(
        config,
        Some(metrics_listener),
        worker_stopped,
    ));

    let mut client = ControllerClient::connect(format!("http://{controller}"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while client
        .list_workers(ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "no worker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let idle = testing::scrape(metrics).await;
    assert_eq!(idle.value("cicada_worker_requests_total"), 0.0);
    assert_eq!(idle.value("cicada_worker_busy"), 0.0);
    assert_eq!(idle.value("cicada_worker_buffered_deltas"), 0.0);
    assert_eq!(idle.types["cicada_worker_cpu_seconds_total"], "counter");
    let (status, _, _) = testing::get(metrics, "/health").await;
    assert_eq!(status, 200);

    let run_id = client
        .start_run(StartRunRequest {
            scenario_yaml: SCENARIO.to_owned(),
            host: format!("http://{target}"),
            users: 2,
            spawn_rate: 100.0,
            run_time_ms: 2_000,
            stop_grace_ms: 2_000,
            ..StartRunRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run_id;
    // While it runs: busy, users up, requests counted (bounded wait).
    let deadline = tokio::time::Instant::now() + WAIT;
    let running: Scrape = loop {
        let scrape = testing::scrape(metrics).await;
        if scrape.value("cicada_worker_requests_total") > 0.0
            && scrape.value("cicada_worker_active_users") == 2.0
        {
            break scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no traffic: {:?}",
            scrape.samples
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(running.value("cicada_worker_busy"), 1.0);
    let in_flight = running.value("cicada_worker_in_flight");
    assert!((0.0..=2.0).contains(&in_flight), "in flight {in_flight}");

    let mut stream = client
        .watch_run(WatchRunRequest { run_id })
        .await
        .unwrap()
        .into_inner();
    while tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("progress in time")
        .unwrap()
        .is_some()
    {}

    let ended = testing::scrape(metrics).await;
    assert_eq!(ended.value("cicada_worker_busy"), 0.0);
    assert_eq!(ended.value("cicada_worker_in_flight"), 0.0);
    assert_eq!(ended.value("cicada_worker_buffered_deltas"), 0.0);
    assert_eq!(ended.value("cicada_worker_buffered_bytes"), 0.0);
    let requests = ended.value("cicada_worker_requests_total");
    assert!(requests > 0.0);
    assert_eq!(requests, served(target).await as f64, "worker vs target");
    assert!(ended.value("cicada_worker_cpu_seconds_total") > 0.0);

    for (stop, task) in [
        (stop_worker, worker_task),
        (stop_controller, controller_task),
        (stop_collector, collector_task),
        (stop_target, target_task),
    ] {
        stop.send(()).unwrap();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("stops in time")
            .unwrap()
            .unwrap();
    }
}
