//! The worker service end to end on loopback: the real controller, the real
//! worker (engine included) against a counting HTTP target, and a small
//! collector peer that applies deltas with the collector's rules (in seq
//! order, duplicates ignored, gaps refused) and refuses some pushes on
//! purpose so the worker's retry path runs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cicada_controller::ControllerConfig;
use cicada_histogram::LatencyHistogram;
use cicada_proto::v1::collector_server::{Collector, CollectorServer};
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::*;
use cicada_worker::WorkerConfig;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const WAIT: Duration = Duration::from_secs(20);

const SCENARIO: &str = "\
name: worker-test
users:
  - name: reader
    weight: 3
    wait: {constant: 5ms}
    tasks:
      - request: {method: GET, path: /a}
  - name: writer
    weight: 1
    wait: {constant: 5ms}
    tasks:
      - request: {method: POST, path: /b}
";

// ---------------------------------------------------------------------------
// A counting HTTP target.
// ---------------------------------------------------------------------------

async fn start_target() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, served)
}

// ---------------------------------------------------------------------------
// A collector peer with the collector's delta rules.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Applied {
    /// Highest applied seq per (run, worker).
    watermark: BTreeMap<(String, String), u64>,
    deltas: Vec<WorkerDelta>,
    duplicates: u64,
    pushes: u64,
    finished: Vec<FinishRunRequest>,
}

#[derive(Clone, Default)]
struct RulesCollector {
    applied: Arc<Mutex<Applied>>,
}

#[tonic::async_trait]
impl Collector for RulesCollector {
    async fn create_run(
        &self,
        _request: Request<CreateRunRequest>,
    ) -> Result<Response<CreateRunResponse>, Status> {
        Ok(Response::new(CreateRunResponse {}))
    }

    async fn list_runs(
        &self,
        _request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        // Keeps no run records: nothing for a restarted controller to adopt.
        Ok(Response::new(ListRunsResponse::default()))
    }

    async fn push_deltas(
        &self,
        request: Request<PushDeltasRequest>,
    ) -> Result<Response<PushDeltasResponse>, Status> {
        let mut applied = self.applied.lock();
        applied.pushes += 1;
        // Every third push fails before anything is applied: the worker
        // must keep its deltas and send them again, in order.
        if applied.pushes.is_multiple_of(3) {
            return Err(Status::unavailable("planned outage"));
        }
        let mut response = PushDeltasResponse::default();
        for delta in request.into_inner().deltas {
            let key = (delta.run_id.clone(), delta.worker_id.clone());
            let watermark = applied.watermark.get(&key).copied().unwrap_or(0);
            if delta.seq <= watermark {
                applied.duplicates += 1;
                response.duplicates += 1;
            } else if delta.seq == watermark + 1 {
                applied.watermark.insert(key, delta.seq);
                applied.deltas.push(delta);
                response.applied += 1;
            } else {
                return Err(Status::failed_precondition(format!(
                    "gap: seq {} after {watermark}",
                    delta.seq
                )));
            }
        }
        Ok(Response::new(response))
    }

    async fn finish_run(
        &self,
        request: Request<FinishRunRequest>,
    ) -> Result<Response<FinishRunResponse>, Status> {
        let request = request.into_inner();
        let incomplete = {
            let mut applied = self.applied.lock();
            applied.finished.push(request.clone());
            request.workers.iter().any(|worker| {
                let key = (request.run_id.clone(), worker.worker_id.clone());
                applied.watermark.get(&key).copied().unwrap_or(0) < worker.last_seq
            })
        };
        Ok(Response::new(FinishRunResponse {
            stats: None,
            incomplete,
        }))
    }

    async fn get_run_stats(
        &self,
        request: Request<GetRunStatsRequest>,
    ) -> Result<Response<RunStats>, Status> {
        Ok(Response::new(RunStats {
            run_id: request.into_inner().run_id,
            ..Default::default()
        }))
    }
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

struct Cluster {
    collector: RulesCollector,
    controller_url: String,
    stops: Vec<oneshot::Sender<()>>,
    worker: tokio::task::JoinHandle<anyhow::Result<()>>,
    controller: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn serve_collector(collector: RulesCollector) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CollectorServer::new(collector))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    (url, stop)
}

fn worker_config(controller_url: &str) -> WorkerConfig {
    let mut config = WorkerConfig::new(controller_url);
    config.worker_id = "worker-1".into();
    config.cores = 1;
    config.engine.threads = 1;
    config.reconnect_max = Duration::from_millis(300);
    config.flush_timeout = Duration::from_secs(15);
    config
}

async fn start_controller(
    listener: TcpListener,
    collector_url: &str,
) -> (
    tokio::task::JoinHandle<anyhow::Result<()>>,
    oneshot::Sender<()>,
) {
    let mut config = ControllerConfig::new(collector_url);
    config.progress_interval = Duration::from_millis(200);
    config.finish_wait = Duration::from_secs(2);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(cicada_controller::run(config, listener, async {
        let _ = stopped.await;
    }));
    (handle, stop)
}

impl Cluster {
    async fn start() -> Cluster {
        let collector = RulesCollector::default();
        let (collector_url, stop_collector) = serve_collector(collector.clone()).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let controller_url = format!("http://{}", listener.local_addr().unwrap());
        let (controller, stop_controller) = start_controller(listener, &collector_url).await;
        let (stop_worker, worker_stopped) = oneshot::channel::<()>();
        let worker = tokio::spawn(cicada_worker::run(worker_config(&controller_url), async {
            let _ = worker_stopped.await;
        }));
        let cluster = Cluster {
            collector,
            controller_url,
            stops: vec![stop_worker, stop_controller, stop_collector],
            worker,
            controller,
        };
        cluster.wait_for_workers(1).await;
        cluster
    }

    async fn client(&self) -> ControllerClient<Channel> {
        ControllerClient::connect(self.controller_url.clone())
            .await
            .unwrap()
    }

    async fn wait_for_workers(&self, count: usize) {
        let mut client = self.client().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let workers = client
                .list_workers(ListWorkersRequest {})
                .await
                .unwrap()
                .into_inner()
                .workers;
            if workers.len() == count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker did not register"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(self) {
        let mut stops = self.stops.into_iter();
        let _ = stops.next().unwrap().send(());
        tokio::time::timeout(WAIT, self.worker)
            .await
            .expect("worker stops in time")
            .unwrap()
            .unwrap();
        let _ = stops.next().unwrap().send(());
        tokio::time::timeout(WAIT, self.controller)
            .await
            .expect("controller stops in time")
            .unwrap()
            .unwrap();
        let _ = stops.next().unwrap().send(());
    }
}

async fn watch_to_end(client: &mut ControllerClient<Channel>, run_id: &str) -> RunProgress {
    let mut stream = client
        .watch_run(WatchRunRequest {
            run_id: run_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(progress) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("progress in time")
        .unwrap()
    {
        last = Some(progress);
    }
    last.expect("a final message")
}

fn start_request(host: String, run_time_ms: u64) -> StartRunRequest {
    StartRunRequest {
        scenario_yaml: SCENARIO.to_owned(),
        scenario_path: "worker-test.yaml".to_owned(),
        host,
        users: 4,
        spawn_rate: 100.0,
        run_time_ms,
        labels: Default::default(),
        stop_grace_ms: 2_000,
        ..StartRunRequest::default()
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_served_arrives_once_in_gap_free_deltas() {
    let (target, served) = start_target().await;
    let cluster = Cluster::start().await;
    let mut client = cluster.client().await;

    let run_id = client
        .start_run(start_request(format!("http://{target}"), 2_500))
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let last = watch_to_end(&mut client, &run_id).await;
    assert_eq!(last.state, RunState::Finished as i32, "{}", last.error);

    let (finished, deltas, pushes) = {
        let applied = cluster.collector.applied.lock();
        let deltas: Vec<WorkerDelta> = applied
            .deltas
            .iter()
            .filter(|d| d.run_id == run_id)
            .cloned()
            .collect();
        (applied.finished.clone(), deltas, applied.pushes)
    };
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].workers.len(), 1);
    let last_seq = finished[0].workers[0].last_seq;
    // The deltas' source: the worker id plus a suffix fresh for this work.
    let source = &finished[0].workers[0].worker_id;
    assert!(source.starts_with("worker-1."), "{source}");
    assert!(deltas.iter().all(|d| &d.worker_id == source));

    // Gap-free, in order, one per interval, each second after the previous.
    let seqs: Vec<u64> = deltas.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (1..=last_seq).collect::<Vec<_>>());
    assert!(
        last_seq >= 3,
        "about one delta per second over 2.5 s: {last_seq}"
    );
    assert!(deltas.windows(2).all(|w| w[0].second <= w[1].second));
    assert!(pushes >= 3, "the planned outage was hit");

    // Exact accounting: what the target served is what the deltas hold,
    // and each endpoint's histogram holds exactly its completed requests.
    let mut requests = 0;
    let mut cancelled = 0;
    let mut per_endpoint = BTreeMap::<u32, u64>::new();
    let mut connections = 0;
    for delta in &deltas {
        for endpoint in &delta.endpoints {
            // The scenario's two requests are endpoints 0 and 1; their
            // connection rows (new connections, TLS handshakes) follow.
            if endpoint.endpoint > 1 {
                connections += endpoint.requests;
                continue;
            }
            requests += endpoint.requests;
            cancelled += endpoint.cancelled;
            *per_endpoint.entry(endpoint.endpoint).or_default() += endpoint.requests;
            let histogram = LatencyHistogram::decode(&endpoint.histogram).unwrap();
            assert_eq!(histogram.len(), endpoint.requests);
            assert_eq!(endpoint.failures, 0);
        }
    }
    assert_eq!(
        cancelled, 0,
        "a 2 s grace lets sub-millisecond requests finish"
    );
    assert!(requests > 0);
    assert_eq!(requests, served.load(Ordering::SeqCst));
    assert_eq!(per_endpoint.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert!(connections >= 1, "each user's connection is recorded");
    assert_eq!(deltas.last().unwrap().active_users, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_start_fails_the_run() {
    let cluster = Cluster::start().await;
    let mut client = cluster.client().await;
    let run_id = client
        .start_run(start_request("not a url".into(), 0))
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let last = watch_to_end(&mut client, &run_id).await;
    assert_eq!(last.state, RunState::Failed as i32);
    assert!(last.error.contains("worker-1"), "{}", last.error);
    // The worker is free again.
    cluster.wait_for_workers(1).await;
    let workers = client
        .list_workers(ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    assert!(workers[0].run_id.is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_gets_its_worker_back() {
    let collector = RulesCollector::default();
    let (collector_url, stop_collector) = serve_collector(collector).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let controller_url = format!("http://{addr}");
    let (controller, stop_controller) = start_controller(listener, &collector_url).await;
    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(cicada_worker::run(worker_config(&controller_url), async {
        let _ = worker_stopped.await;
    }));

    let count = |url: String| async move {
        let Ok(mut client) = ControllerClient::connect(url).await else {
            return 0;
        };
        client
            .list_workers(ListWorkersRequest {})
            .await
            .map_or(0, |r| r.into_inner().workers.len())
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(controller_url.clone()).await != 1 {
        assert!(tokio::time::Instant::now() < deadline, "first registration");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let _ = stop_controller.send(());
    controller.await.unwrap().unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let (controller, stop_controller) = start_controller(listener, &collector_url).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(controller_url.clone()).await != 1 {
        assert!(tokio::time::Instant::now() < deadline, "worker came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let _ = stop_worker.send(());
    tokio::time::timeout(WAIT, worker)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = stop_controller.send(());
    controller.await.unwrap().unwrap();
    let _ = stop_collector.send(());
}
