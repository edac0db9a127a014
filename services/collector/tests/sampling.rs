//! Target CPU sampling in the collector against a real Prometheus server
//! (Debian's `prometheus`, installed by scripts/ensure-prometheus.sh): a
//! constant query, so the stored values are known exactly; sampling goes on
//! across a collector restart and the final statistics are the stored
//! samples' totals.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cicada_collector::CollectorConfig;
use cicada_proto::v1;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::testing::TestDatabase;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const RUN: &str = "run-sampled";
const QUERY: &str = "vector(0.5)";

/// A child process killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `prometheus` with nothing to scrape on a free loopback port and
/// waits until it answers queries.
async fn start_prometheus(dir: &std::path::Path) -> (Prometheus, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1s\n").unwrap();
    // Prometheus binds the address itself: a free port, taken just before.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={address}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "failed to start prometheus ({error}): install it with scripts/ensure-prometheus.sh \
                 (Debian package `prometheus`); scripts/test.sh does this"
            )
        });
    let process = Prometheus(child);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "prometheus on {address} not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(stream) = tokio::net::TcpStream::connect(&address).await {
            drop(stream);
            if ready(&address).await {
                return (process, format!("http://{address}"));
            }
        }
    }
}

async fn ready(address: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    let request = format!("GET /-/ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}

struct Collector {
    client: CollectorClient<tonic::transport::Channel>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start_collector(db: &TestDatabase) -> Collector {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = CollectorConfig {
        database_url: db.url().to_owned(),
        ..Default::default()
    };
    let task = tokio::spawn(cicada_collector::run(config, listener, async {
        let _ = stopped.await;
    }));
    let client = CollectorClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    Collector { client, stop, task }
}

impl Collector {
    async fn stop(self) {
        drop(self.client);
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("collector stops")
            .unwrap()
            .expect("collector ran cleanly");
    }
}

async fn samples(db: &TestDatabase) -> Vec<cicada_store::TargetSample> {
    let store = cicada_store::connect(db.url()).await.unwrap();
    store.target_samples(RUN).await.unwrap()
}

/// Waits until at least `n` samples are stored.
async fn wait_for_samples(db: &TestDatabase, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while samples(db).await.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} samples after 20 s: {:?}",
            samples(db).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_stored_each_second_across_a_restart() {
    let db = TestDatabase::sqlite().expect("temp dir");
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prometheus_url) = start_prometheus(dir.path()).await;

    let mut collector = start_collector(&db).await;
    let config_json = serde_json::json!({
        "users": 1,
        "target_cpu": {"prometheus_url": prometheus_url, "query": QUERY},
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    collector
        .client
        .create_run(v1::CreateRunRequest {
            run_id: RUN.into(),
            scenario_name: "shop".into(),
            config_json: config_json.to_string(),
            started_at_ms: now_ms,
            endpoints: vec![v1::Endpoint {
                index: 0,
                method: "GET".into(),
                name: "/".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for_samples(&db, 2).await;
    collector.stop().await;
    let before = samples(&db).await.len();

    // A new collector over the same database resumes sampling the live run.
    let mut collector = start_collector(&db).await;
    wait_for_samples(&db, before + 2).await;
    let stats = collector
        .client
        .finish_run(v1::FinishRunRequest {
            run_id: RUN.into(),
            state: v1::RunState::Finished as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let stored = samples(&db).await;
    // Sampling stopped at finish.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(samples(&db).await, stored);
    collector.stop().await;

    assert!(stored.iter().all(|s| s.value == 0.5), "{stored:?}");
    assert!(stored.windows(2).all(|w| w[0].second < w[1].second));
    let cpu = stats.target_cpu.expect("target cpu in the final stats");
    assert_eq!(cpu.query, QUERY);
    assert_eq!(cpu.samples as usize, stored.len());
    assert_eq!(cpu.cpu_seconds, 0.5 * stored.len() as f64);
    assert_eq!(cpu.requests_per_cpu_second, 0.0, "no requests in this run");
}
