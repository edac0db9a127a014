//! The controller over real gRPC: a test worker speaks the `WorkerSession`
//! protocol directly (the stream is the protocol), and a small recording
//! collector server stands in as the collector peer.

use std::sync::Arc;
use std::time::Duration;

use cicada_controller::ControllerConfig;
use cicada_proto::v1::collector_server::{Collector, CollectorServer};
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::controller_message::Msg as Out;
use cicada_proto::v1::worker_message::Msg as In;
use cicada_proto::v1::*;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};

const SCENARIO: &str = "\
name: smoke
host: http://127.0.0.1:9
users:
  - name: reader
    weight: 3
    tasks:
      - request: {method: GET, path: /a}
      - request: {method: GET, path: /b}
  - name: writer
    weight: 1
    tasks:
      - request: {method: POST, path: /a}
";

/// Upper bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// A collector that records what it was asked.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Recorded {
    created: Vec<CreateRunRequest>,
    finished: Vec<FinishRunRequest>,
    stats_calls: usize,
    /// Threshold results every `GetRunStats` answers with.
    thresholds: Vec<ThresholdResult>,
}

#[derive(Clone, Default)]
struct RecordingCollector {
    recorded: Arc<Mutex<Recorded>>,
}

fn stats(run_id: &str, state: RunState, requests: u64) -> RunStats {
    RunStats {
        run_id: run_id.to_owned(),
        state: state as i32,
        total: Some(EndpointStats {
            requests,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Collector for RecordingCollector {
    async fn create_run(
        &self,
        request: Request<CreateRunRequest>,
    ) -> Result<Response<CreateRunResponse>, Status> {
        self.recorded.lock().created.push(request.into_inner());
        Ok(Response::new(CreateRunResponse {}))
    }

    async fn push_deltas(
        &self,
        _request: Request<PushDeltasRequest>,
    ) -> Result<Response<PushDeltasResponse>, Status> {
        Err(Status::unimplemented("the controller never pushes deltas"))
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        // The runs created and not finished, as a store would list them.
        let wanted = request.into_inner().state;
        let recorded = self.recorded.lock();
        let runs = recorded
            .created
            .iter()
            .filter(|created| !recorded.finished.iter().any(|f| f.run_id == created.run_id))
            .map(|created| RunSummary {
                run_id: created.run_id.clone(),
                state: RunState::Running as i32,
                ..Default::default()
            })
            .filter(|run| wanted == 0 || run.state == wanted)
            .collect();
        Ok(Response::new(ListRunsResponse { runs }))
    }

    async fn finish_run(
        &self,
        request: Request<FinishRunRequest>,
    ) -> Result<Response<FinishRunResponse>, Status> {
        let request = request.into_inner();
        let state = RunState::try_from(request.state).unwrap_or(RunState::Unspecified);
        let run_id = request.run_id.clone();
        self.recorded.lock().finished.push(request);
        Ok(Response::new(FinishRunResponse {
            stats: Some(stats(&run_id, state, 42)),
            incomplete: false,
        }))
    }

    async fn get_run_stats(
        &self,
        request: Request<GetRunStatsRequest>,
    ) -> Result<Response<RunStats>, Status> {
        let mut recorded = self.recorded.lock();
        recorded.stats_calls += 1;
        Ok(Response::new(RunStats {
            thresholds: recorded.thresholds.clone(),
            ..stats(&request.into_inner().run_id, RunState::Running, 7)
        }))
    }
}

// ---------------------------------------------------------------------------
// Harness: collector + controller on ephemeral loopback ports.
// ---------------------------------------------------------------------------

struct Harness {
    url: String,
    collector: RecordingCollector,
    stop_controller: Option<oneshot::Sender<()>>,
    controller: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop_collector: Option<oneshot::Sender<()>>,
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut ControllerConfig)) -> Harness {
        let collector = RecordingCollector::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let collector_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop_collector, stopped) = oneshot::channel::<()>();
        let service = CollectorServer::new(collector.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
        });

        let mut config = ControllerConfig::new(collector_url);
        config.progress_interval = Duration::from_millis(100);
        config.work_done_margin = Duration::from_secs(3);
        config.finish_wait = Duration::from_millis(500);
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop_controller, stopped) = oneshot::channel::<()>();
        let controller = tokio::spawn(cicada_controller::run(config, listener, async {
            let _ = stopped.await;
        }));
        Harness {
            url,
            collector,
            stop_controller: Some(stop_controller),
            controller,
            stop_collector: Some(stop_collector),
        }
    }

    async fn client(&self) -> ControllerClient<Channel> {
        ControllerClient::connect(self.url.clone()).await.unwrap()
    }

    fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.collector.recorded.lock())
    }

    async fn shutdown(mut self) {
        let _ = self.stop_controller.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.controller)
            .await
            .expect("controller stops in time")
            .unwrap()
            .unwrap();
        let _ = self.stop_collector.take().unwrap().send(());
    }
}

// ---------------------------------------------------------------------------
// A worker speaking the protocol by hand.
// ---------------------------------------------------------------------------

struct TestWorker {
    id: String,
    tx: mpsc::Sender<WorkerMessage>,
    inbound: Streaming<ControllerMessage>,
}

impl TestWorker {
    async fn connect(harness: &Harness, id: &str, cores: u32) -> TestWorker {
        let (tx, rx) = mpsc::channel(16);
        tx.send(WorkerMessage {
            msg: Some(In::Register(Register {
                worker_id: id.to_owned(),
                cores,
                version: "test".into(),
                hostname: "localhost".into(),
            })),
        })
        .await
        .unwrap();
        let mut client = harness.client().await;
        let mut inbound = client
            .worker_session(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        match next(&mut inbound).await {
            Out::Registered(registered) => {
                assert_eq!(registered.worker_id, id);
                assert_eq!(registered.heartbeat_interval_ms, 1000);
            }
            other => panic!("expected Registered, got {other:?}"),
        }
        TestWorker {
            id: id.to_owned(),
            tx,
            inbound,
        }
    }

    async fn send(&self, msg: In) {
        self.tx
            .send(WorkerMessage { msg: Some(msg) })
            .await
            .unwrap();
    }

    async fn heartbeat(&self, run_id: &str, active_users: u32) {
        self.send(In::Heartbeat(Heartbeat {
            run_id: run_id.to_owned(),
            active_users,
            in_flight: 1,
            cpu_percent: 12.5,
            rss_bytes: 1 << 20,
            requests: 0,
            ..Heartbeat::default()
        }))
        .await;
    }

    async fn next(&mut self) -> Out {
        next(&mut self.inbound).await
    }

    async fn expect_start(&mut self) -> StartWork {
        match self.next().await {
            Out::StartWork(start) => start,
            other => panic!("{}: expected StartWork, got {other:?}", self.id),
        }
    }

    async fn expect_stop(&mut self) -> StopWork {
        match self.next().await {
            Out::StopWork(stop) => stop,
            other => panic!("{}: expected StopWork, got {other:?}", self.id),
        }
    }

    async fn work_done(&self, run_id: &str, last_seq: u64, error: &str) {
        self.send(In::WorkDone(WorkDone {
            run_id: run_id.to_owned(),
            last_seq,
            requests: 100,
            cancelled: 1,
            error: error.to_owned(),
            ..WorkDone::default()
        }))
        .await;
    }
}

async fn next(inbound: &mut Streaming<ControllerMessage>) -> Out {
    tokio::time::timeout(WAIT, inbound.message())
        .await
        .expect("a controller message in time")
        .expect("the stream is healthy")
        .expect("the stream is open")
        .msg
        .expect("a message body")
}

fn start_request(users: u32, run_time_ms: u64) -> StartRunRequest {
    StartRunRequest {
        scenario_yaml: SCENARIO.to_owned(),
        scenario_path: "smoke.yaml".to_owned(),
        host: String::new(),
        users,
        spawn_rate: 10.0,
        run_time_ms,
        labels: Default::default(),
        stop_grace_ms: 250,
        ..StartRunRequest::default()
    }
}

/// Reads a watch stream to its end; returns every message.
async fn watch_to_end(client: &mut ControllerClient<Channel>, run_id: &str) -> Vec<RunProgress> {
    let mut stream = client
        .watch_run(WatchRunRequest {
            run_id: run_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(progress) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("progress in time")
        .unwrap()
    {
        all.push(progress);
        assert!(all.len() < 1_000, "watch stream does not end");
    }
    all
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn first_message_must_be_register() {
    let harness = Harness::start().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(WorkerMessage {
        msg: Some(In::Heartbeat(Heartbeat::default())),
    })
    .await
    .unwrap();
    let error = harness
        .client()
        .await
        .worker_session(ReceiverStream::new(rx))
        .await
        .expect_err("a session without Register is refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("Register"), "{}", error.message());
    harness.shutdown().await;
}

#[tokio::test]
async fn start_run_rejects_bad_requests() {
    let harness = Harness::start().await;
    let mut client = harness.client().await;

    let error = client.start_run(start_request(10, 0)).await.unwrap_err();
    assert_eq!(
        error.code(),
        Code::FailedPrecondition,
        "no worker yet: {error:?}"
    );

    let _worker = TestWorker::connect(&harness, "w1", 1).await;

    let error = client.start_run(start_request(0, 0)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    let mut bad_rate = start_request(10, 0);
    bad_rate.spawn_rate = 0.0;
    let error = client.start_run(bad_rate).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    let mut bad_yaml = start_request(10, 0);
    bad_yaml.scenario_yaml = "name: x\nusers:\n  - tasks: 3\n".to_owned();
    let error = client.start_run(bad_yaml).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("smoke.yaml:3:"),
        "{}",
        error.message()
    );

    let mut half_sampling = start_request(10, 0);
    half_sampling.target_cpu_query = "up".into();
    let error = client.start_run(half_sampling).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let mut https_prometheus = start_request(10, 0);
    https_prometheus.target_cpu_query = "up".into();
    https_prometheus.prometheus_url = "https://prometheus:9090".into();
    let error = client.start_run(https_prometheus).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("http://"), "{}", error.message());

    let mut no_host = start_request(10, 0);
    no_host.scenario_yaml = SCENARIO.replace("host: http://127.0.0.1:9\n", "");
    let error = client.start_run(no_host).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("host"), "{}", error.message());

    let error = client
        .watch_run(WatchRunRequest {
            run_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = client
        .stop_run(StopRunRequest {
            run_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    assert!(harness.recorded(|r| r.created.is_empty()));
    harness.shutdown().await;
}

#[tokio::test]
async fn run_flows_from_start_to_finish() {
    let harness = Harness::start().await;
    let mut client = harness.client().await;
    let mut small = TestWorker::connect(&harness, "w-a", 1).await;
    let mut big = TestWorker::connect(&harness, "w-b", 3).await;
    let listed = client
        .list_workers(ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    let ids: Vec<&str> = listed.iter().map(|w| w.worker_id.as_str()).collect();
    assert_eq!(ids, vec!["w-a", "w-b"]);
    assert_eq!(listed[1].cores, 3);

    // 8 users, 3:1 classes, cores 1:3 -> 2 and 6 users; 6 readers, 2 writers.
    let started = client
        .start_run(start_request(8, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.workers, 2);
    let run_id = started.run_id.clone();
    assert!(uuid::Uuid::parse_str(&run_id).is_ok());

    let a = small.expect_start().await;
    let b = big.expect_start().await;
    assert_eq!(a.run_id, run_id);
    assert_eq!(a.host, "http://127.0.0.1:9");
    assert_eq!(a.scenario_yaml, SCENARIO);
    assert_eq!(a.scenario_path, "smoke.yaml");
    assert_eq!(a.class_users.iter().sum::<u32>(), 2);
    assert_eq!(b.class_users.iter().sum::<u32>(), 6);
    assert_eq!(
        [
            a.class_users[0] + b.class_users[0],
            a.class_users[1] + b.class_users[1]
        ],
        [6, 2]
    );
    assert_eq!((a.user_id_offset, b.user_id_offset), (0, 2));
    assert!((a.spawn_rate - 2.5).abs() < 1e-9 && (b.spawn_rate - 7.5).abs() < 1e-9);
    assert_eq!(a.max_duration_ms, 0, "no run time: no safety-net limit");
    assert!(a.collector_url.starts_with("http://127.0.0.1:"));

    let created = harness.recorded(|r| r.created.clone());
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].run_id, run_id);
    assert_eq!(created[0].scenario_name, "smoke");
    let endpoints: Vec<(u32, &str, &str)> = created[0]
        .endpoints
        .iter()
        .map(|e| (e.index, e.method.as_str(), e.name.as_str()))
        .take(3)
        .collect();
    // Each request's connection rows follow the requests.
    assert_eq!(created[0].endpoints.len(), 9);
    assert_eq!(
        (
            created[0].endpoints[3].method.as_str(),
            created[0].endpoints[3].name.as_str()
        ),
        ("CONNECT", "GET /a")
    );
    assert_eq!(
        endpoints,
        vec![(0, "GET", "/a"), (1, "GET", "/b"), (2, "POST", "/a")]
    );
    let config: serde_json::Value = serde_json::from_str(&created[0].config_json).unwrap();
    assert_eq!(config["users"], 8);
    assert_eq!(config["workers"].as_array().unwrap().len(), 2);

    // One run at a time.
    let error = client.start_run(start_request(8, 0)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);

    // Live progress: users from heartbeats, stats from the collector.
    small.heartbeat(&run_id, 2).await;
    big.heartbeat(&run_id, 6).await;
    let mut watch = client
        .watch_run(WatchRunRequest {
            run_id: run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let live = loop {
        let progress = tokio::time::timeout(WAIT, watch.message())
            .await
            .unwrap()
            .unwrap()
            .expect("live progress");
        if progress.active_users == 8 && progress.stats.is_some() {
            break progress;
        }
    };
    assert_eq!(live.state, RunState::Running as i32);
    assert_eq!(live.target_users, 8);
    assert_eq!(live.workers, 2);
    assert_eq!(live.stats.unwrap().total.unwrap().requests, 7);

    client
        .stop_run(StopRunRequest {
            run_id: run_id.clone(),
        })
        .await
        .unwrap();
    let stop_a = small.expect_stop().await;
    let stop_b = big.expect_stop().await;
    assert_eq!((stop_a.grace_ms, stop_b.grace_ms), (250, 250));
    assert_eq!(stop_a.run_id, run_id);
    small.work_done(&run_id, 5, "").await;
    big.work_done(&run_id, 9, "").await;

    // The watch ends with the final state and the collector's final stats.
    let mut last = None;
    while let Some(progress) = tokio::time::timeout(WAIT, watch.message())
        .await
        .unwrap()
        .unwrap()
    {
        last = Some(progress);
    }
    let last = last.expect("a final message");
    assert_eq!(last.state, RunState::Finished as i32);
    assert_eq!(last.stats.unwrap().total.unwrap().requests, 42);
    assert!(last.error.is_empty());

    let finished = harness.recorded(|r| r.finished.clone());
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].run_id, run_id);
    assert_eq!(finished[0].state, RunState::Finished as i32);
    assert_eq!(finished[0].wait_ms, 500);
    let finals: Vec<(&str, u64)> = finished[0]
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.last_seq))
        .collect();
    assert_eq!(finals, vec![("w-a", 5), ("w-b", 9)]);
    assert!(harness.recorded(|r| r.stats_calls) >= 1);

    // A late watcher gets the final message at once.
    let replay = watch_to_end(&mut client, &run_id).await;
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].state, RunState::Finished as i32);

    // The workers are free for the next run.
    let again = client
        .start_run(start_request(4, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.workers, 2);
    assert_ne!(again.run_id, run_id);
    assert_eq!(small.expect_start().await.run_id, again.run_id);
    harness.shutdown().await;
}

#[tokio::test]
async fn run_time_stops_and_dropped_workers_count_as_done() {
    let harness = Harness::start().await;
    let mut client = harness.client().await;
    let mut stays = TestWorker::connect(&harness, "stays", 1).await;
    let mut leaves = TestWorker::connect(&harness, "leaves", 1).await;

    let run_id = client
        .start_run(start_request(2, 300))
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let start = stays.expect_start().await;
    assert_eq!(start.max_duration_ms, 300 + 250 + 60_000);
    leaves.expect_start().await;

    // No StopRun: the run time ends the run.
    stays.expect_stop().await;
    leaves.expect_stop().await;
    drop(leaves);
    stays.work_done(&run_id, 3, "").await;

    let progress = watch_to_end(&mut client, &run_id).await;
    let last = progress.last().unwrap();
    assert_eq!(last.state, RunState::Finished as i32);
    let finished = harness.recorded(|r| r.finished.clone());
    let finals: Vec<(&str, u64)> = finished[0]
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.last_seq))
        .collect();
    assert_eq!(
        finals,
        vec![("stays", 3)],
        "a dropped worker is not waited for"
    );
    // The dropped stream leaves the registry.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = client
            .list_workers(ListWorkersRequest {})
            .await
            .unwrap()
            .into_inner()
            .workers;
        if listed.len() == 1 {
            assert_eq!(listed[0].worker_id, "stays");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dropped worker still listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn a_worker_error_fails_the_run_early() {
    let harness = Harness::start().await;
    let mut client = harness.client().await;
    let mut worker = TestWorker::connect(&harness, "w1", 2).await;
    let run_id = client
        .start_run(start_request(3, 0))
        .await
        .unwrap()
        .into_inner()
        .run_id;
    worker.expect_start().await;
    // The worker could not start (say, a bad host): the run ends without StopRun.
    worker.work_done(&run_id, 0, "invalid host").await;
    let progress = watch_to_end(&mut client, &run_id).await;
    let last = progress.last().unwrap();
    assert_eq!(last.state, RunState::Failed as i32);
    assert!(last.error.contains("invalid host"), "{}", last.error);
    let finished = harness.recorded(|r| r.finished.clone());
    assert_eq!(finished[0].state, RunState::Failed as i32);
    assert!(finished[0].error.contains("w1: invalid host"));
    harness.shutdown().await;
}

#[tokio::test]
async fn a_silent_worker_is_not_waited_for_forever() {
    let harness = Harness::start_with(|config| {
        config.work_done_margin = Duration::from_millis(300);
    })
    .await;
    let mut client = harness.client().await;
    let mut silent = TestWorker::connect(&harness, "silent", 1).await;
    let run_id = client
        .start_run(start_request(1, 100))
        .await
        .unwrap()
        .into_inner()
        .run_id;
    silent.expect_start().await;
    silent.expect_stop().await;
    // No WorkDone: after grace (250 ms) + margin (300 ms) the run finishes
    // without it, and FinishRun lists no worker to wait for.
    let progress = watch_to_end(&mut client, &run_id).await;
    assert_eq!(progress.last().unwrap().state, RunState::Finished as i32);
    let finished = harness.recorded(|r| r.finished.clone());
    assert_eq!(finished.len(), 1);
    assert!(finished[0].workers.is_empty());
    // The worker is still connected and idle for the controller.
    let workers = client
        .list_workers(ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    assert_eq!(workers.len(), 1);
    assert!(workers[0].run_id.is_empty());
    harness.shutdown().await;
}

#[tokio::test]
async fn a_failing_abort_on_fail_threshold_stops_the_run() {
    let harness = Harness::start_with(|config| {
        config.threshold_check_interval = Duration::from_millis(50);
    })
    .await;
    let mut client = harness.client().await;
    let mut worker = TestWorker::connect(&harness, "w1", 1).await;

    // Bad thresholds are rejected before anything starts.
    for bad in [
        "p95 < 150",
        "GET /zzz: p95 < 1s",
        "p95 < 1s abort_on_fail=soon",
    ] {
        let request = StartRunRequest {
            thresholds: vec![bad.to_owned()],
            ..start_request(1, 0)
        };
        let error = client.start_run(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{bad}");
        assert!(error.message().contains(bad), "{}", error.message());
    }
    assert!(harness.recorded(|r| r.created.is_empty()));

    let request = StartRunRequest {
        thresholds: vec!["GET /a: p95<1ms abort_on_fail=200ms".to_owned()],
        ..start_request(1, 0)
    };
    let run_id = client.start_run(request).await.unwrap().into_inner().run_id;
    let created = harness.recorded(|r| r.created[0].thresholds.clone());
    assert_eq!(
        created,
        [Threshold {
            expression: "p95 < 1ms".into(),
            endpoint: "GET /a".into(),
            abort_on_fail: true,
            delay_ms: 200,
        }]
    );
    worker.expect_start().await;
    // Passing: the run goes on.
    harness.collector.recorded.lock().thresholds = vec![ThresholdResult {
        expression: "p95 < 1ms".into(),
        endpoint: "GET /a".into(),
        observed: Some(0.5),
        observed_text: "0.5 ms".into(),
        passed: true,
        abort_on_fail: true,
        delay_ms: 200,
    }];
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(harness.recorded(|r| r.finished.is_empty()));
    // Failing after its delay: stopped like StopRun, the reason recorded.
    harness.collector.recorded.lock().thresholds[0] = ThresholdResult {
        observed: Some(180.2),
        observed_text: "180.2 ms".into(),
        passed: false,
        ..harness.recorded(|r| r.thresholds[0].clone())
    };
    worker.expect_stop().await;
    worker.work_done(&run_id, 3, "").await;
    let progress = watch_to_end(&mut client, &run_id).await;
    let last = progress.last().unwrap();
    let reason = "threshold failed: GET /a: p95 < 1ms (observed 180.2 ms)";
    assert_eq!(last.state, RunState::Finished as i32);
    assert_eq!(last.error, reason);
    assert!(last.threshold_aborted);
    let finished = harness.recorded(|r| r.finished.clone());
    assert_eq!(finished[0].state, RunState::Finished as i32);
    assert_eq!(finished[0].error, reason);
    harness.shutdown().await;
}
