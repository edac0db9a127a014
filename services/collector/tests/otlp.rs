//! OTLP export end to end: a real OTLP/gRPC receiver (opentelemetry-proto's
//! `MetricsService`) on 127.0.0.1:0, the real collector exporting to it every
//! 200 ms, real deltas pushed over gRPC (one of them twice), and the received
//! metrics compared with what the store holds for the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cicada_collector::otlp::{
    ACTIVE_USERS, FAILURES, LATENCY, LATENCY_BOUNDARIES_MS, REQUESTS, TARGET_USERS,
};
use cicada_collector::{CollectorConfig, OtlpConfig};
use cicada_histogram::LatencyHistogram;
use cicada_proto::v1;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::testing::TestDatabase;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

const RUN: &str = "run-otlp";
const SECOND: i64 = 1_700_000_000;

/// An export request with its `x-test` header.
type Received = (Option<String>, ExportMetricsServiceRequest);

/// Keeps every export request it receives.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let header = request
            .metadata()
            .get("x-test")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.received
            .lock()
            .unwrap()
            .push((header, request.into_inner()));
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

fn number(value: Option<&number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        Some(number_data_point::Value::AsDouble(d)) => *d,
        None => f64::NAN,
    }
}

fn delta(worker: &str, seq: u64, second: i64, users: u32, latency_us: u64) -> v1::WorkerDelta {
    let endpoints = (0..2u32)
        .map(|endpoint| {
            let requests = 10 * seq + u64::from(endpoint);
            let mut histogram = LatencyHistogram::new();
            histogram.record_n_us(latency_us + u64::from(endpoint) * 100_000, requests);
            let failures_by_kind = vec![
                v1::FailureCount {
                    kind: "status 503".into(),
                    count: 2,
                    last_message: "503".into(),
                },
                v1::FailureCount {
                    kind: "timeout".into(),
                    count: u64::from(endpoint),
                    last_message: "timed out".into(),
                },
            ];
            v1::EndpointDelta {
                checks: Default::default(),
                endpoint,
                requests,
                failures: 2 + u64::from(endpoint),
                cancelled: 0,
                bytes: 100,
                histogram: histogram.encode().unwrap(),
                failures_by_kind,
                uncorrected_histogram: Vec::new(),
            }
        })
        .collect();
    v1::WorkerDelta {
        run_id: RUN.into(),
        worker_id: worker.into(),
        seq,
        second,
        endpoints,
        active_users: users,
        dropped: 0,
        ..Default::default()
    }
}

#[tokio::test]
async fn exported_metrics_match_the_stored_run() {
    let db = TestDatabase::sqlite().expect("temp dir");

    let receiver = Receiver::default();
    let otlp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_address = otlp_listener.local_addr().unwrap();
    let (stop_receiver, receiver_stopped) = tokio::sync::oneshot::channel::<()>();
    let receiver_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(otlp_listener), async {
                let _ = receiver_stopped.await;
            }),
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut otlp = OtlpConfig::new(format!("http://{otlp_address}"));
    otlp.interval = Duration::from_millis(200);
    otlp.headers = vec![("x-test".into(), "yes".into())];
    let config = CollectorConfig {
        database_url: db.url().to_owned(),
        otlp: Some(otlp),
        ..CollectorConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(cicada_collector::run(config, listener, async {
        let _ = stopped.await;
    }));
    let mut client = CollectorClient::connect(format!("http://{address}"))
        .await
        .unwrap();

    client
        .create_run(v1::CreateRunRequest {
            checks: Default::default(),
            run_id: RUN.into(),
            scenario_name: "shop".into(),
            scenario_yaml: "name: shop\n".into(),
            host: "http://127.0.0.1:9".into(),
            config_json: r#"{"model":"closed","users":20,"rate":0}"#.into(),
            labels: HashMap::new(),
            started_at_ms: SECOND * 1000,
            endpoints: vec![
                v1::Endpoint {
                    index: 0,
                    method: "GET".into(),
                    name: "/items".into(),
                },
                v1::Endpoint {
                    index: 1,
                    method: "POST".into(),
                    name: "/orders".into(),
                },
            ],
            thresholds: Vec::new(),
        })
        .await
        .unwrap();
    let deltas = vec![
        delta("w1", 1, SECOND, 4, 2_000),
        delta("w2", 1, SECOND, 6, 40_000),
        delta("w1", 2, SECOND + 1, 5, 2_000),
        delta("w2", 2, SECOND + 1, 7, 40_000),
        delta("w1", 3, SECOND + 2, 5, 2_000),
    ];
    let response = client
        .push_deltas(v1::PushDeltasRequest {
            deltas: deltas.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.applied, 5);
    // A re-sent delta is a duplicate: stored once, exported once.
    let response = client
        .push_deltas(v1::PushDeltasRequest {
            deltas: deltas[..1].to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.duplicates, 1);

    // Exports arrive while the run is live.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !receiver.received.lock().unwrap().iter().any(|(_, r)| {
        r.resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .any(|m| m.name == REQUESTS)
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no export reached the receiver"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    client
        .finish_run(v1::FinishRunRequest {
            run_id: RUN.into(),
            state: v1::RunState::Finished as i32,
            ended_at_ms: (SECOND + 3) * 1000,
            error: String::new(),
            workers: Vec::new(),
            wait_ms: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    drop(client);
    // Stopping the collector flushes the exporter last.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), collector)
        .await
        .expect("collector stops")
        .unwrap()
        .expect("collector ran cleanly");
    stop_receiver.send(()).unwrap();
    receiver_task.await.unwrap().unwrap();

    let store = cicada_store::connect(db.url()).await.unwrap();
    let summaries = store.summaries(RUN).await.unwrap();
    let stored_failures = store.failures(RUN).await.unwrap();
    let endpoints = [("GET", "/items"), ("POST", "/orders")];

    let received = receiver.received.lock().unwrap();
    assert!(received.iter().all(|(h, _)| h.as_deref() == Some("yes")));
    // Cumulative temporality: the last export holds the totals.
    let (_, last) = received.last().unwrap();
    let resource = last.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        text(&resource.attributes, "service.name").as_deref(),
        Some("cicada-collector")
    );
    assert!(text(&resource.attributes, "service.instance.id").is_some());
    let metrics: BTreeMap<&str, &metric::Data> = last
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| (m.name.as_str(), m.data.as_ref().unwrap()))
        .collect();

    // Requests and failures by (endpoint, status class).
    let sums = |name: &str| -> BTreeMap<(String, String, String), f64> {
        let Some(metric::Data::Sum(sum)) = metrics.get(name) else {
            panic!("{name} is not a sum: {:?}", metrics.keys());
        };
        assert!(sum.is_monotonic);
        sum.data_points
            .iter()
            .map(|p| {
                assert_eq!(text(&p.attributes, "run_id").as_deref(), Some(RUN));
                assert_eq!(text(&p.attributes, "scenario").as_deref(), Some("shop"));
                (
                    (
                        text(&p.attributes, "method").unwrap(),
                        text(&p.attributes, "endpoint").unwrap(),
                        text(&p.attributes, "status_class").unwrap(),
                    ),
                    number(p.value.as_ref()),
                )
            })
            .collect()
    };
    let requests = sums(REQUESTS);
    let failures = sums(FAILURES);
    for summary in &summaries {
        let (method, name) = endpoints[summary.endpoint as usize];
        let of = |map: &BTreeMap<(String, String, String), f64>| -> f64 {
            map.iter()
                .filter(|((m, n, _), _)| m == method && n == name)
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(of(&requests), summary.counts.requests as f64, "{name}");
        assert_eq!(of(&failures), summary.counts.failures as f64, "{name}");
        let key = |class: &str| (method.to_owned(), name.to_owned(), class.to_owned());
        let stored = |kind: &str| {
            stored_failures
                .iter()
                .find(|f| f.endpoint == summary.endpoint && f.kind == kind)
                .map_or(0.0, |f| f.count as f64)
        };
        assert_eq!(failures[&key("5xx")], stored("status 503"));
        assert_eq!(
            failures.get(&key("timeout")).copied().unwrap_or(0.0),
            stored("timeout")
        );
        assert_eq!(
            requests[&key("success")],
            (summary.counts.requests - summary.counts.failures) as f64
        );
    }
    assert_eq!(
        requests.values().sum::<f64>(),
        summaries.iter().map(|s| s.counts.requests).sum::<u64>() as f64
    );

    // Latency: counts per endpoint exact, buckets where the values are.
    let Some(metric::Data::Histogram(latency)) = metrics.get(LATENCY) else {
        panic!("{LATENCY} is not a histogram");
    };
    for summary in &summaries {
        let (_, name) = endpoints[summary.endpoint as usize];
        let point = latency
            .data_points
            .iter()
            .find(|p| text(&p.attributes, "endpoint").as_deref() == Some(name))
            .unwrap();
        assert_eq!(point.count, summary.histogram.len(), "{name}");
        assert_eq!(point.explicit_bounds, LATENCY_BOUNDARIES_MS);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
        let stored_sum_ms: f64 = summary
            .histogram
            .iter_recorded()
            .map(|(us, n)| us as f64 / 1000.0 * n as f64)
            .sum();
        let sum = point.sum.unwrap();
        assert!(
            (sum - stored_sum_ms).abs() <= stored_sum_ms * 1e-9,
            "{sum} vs {stored_sum_ms}"
        );
        // Every value of the stored histogram lands in its bucket.
        for (us, _) in summary.histogram.iter_recorded() {
            let ms = us as f64 / 1000.0;
            let bucket = LATENCY_BOUNDARIES_MS.partition_point(|&b| b < ms);
            assert!(point.bucket_counts[bucket] > 0, "{name} {ms} ms");
        }
    }

    // Gauges: configured users, and users of the last complete second
    // (SECOND + 1: 5 + 7 over both workers).
    let gauge = |name: &str| -> f64 {
        let Some(metric::Data::Gauge(gauge)) = metrics.get(name) else {
            panic!("{name} is not a gauge");
        };
        assert_eq!(
            text(&gauge.data_points[0].attributes, "run_id").as_deref(),
            Some(RUN)
        );
        number(gauge.data_points[0].value.as_ref())
    };
    assert_eq!(gauge(TARGET_USERS), 20.0);
    assert_eq!(gauge(ACTIVE_USERS), 12.0);
}

/// An unreachable OTLP endpoint (a closed loopback port) changes nothing for
/// ingestion: every delta is applied, the run finishes with exact totals and
/// the collector stops cleanly.
#[tokio::test]
async fn an_unreachable_receiver_never_blocks_ingestion() {
    let db = TestDatabase::sqlite().expect("temp dir");
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_address = closed.local_addr().unwrap();
    drop(closed);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut otlp = OtlpConfig::new(format!("http://{closed_address}"));
    otlp.interval = Duration::from_millis(100);
    let config = CollectorConfig {
        database_url: db.url().to_owned(),
        otlp: Some(otlp),
        ..CollectorConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(cicada_collector::run(config, listener, async {
        let _ = stopped.await;
    }));
    let mut client = CollectorClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    client
        .create_run(v1::CreateRunRequest {
            run_id: RUN.into(),
            scenario_name: "shop".into(),
            config_json: r#"{"users":2}"#.into(),
            started_at_ms: SECOND * 1000,
            endpoints: vec![
                v1::Endpoint {
                    index: 0,
                    method: "GET".into(),
                    name: "/items".into(),
                },
                v1::Endpoint {
                    index: 1,
                    method: "POST".into(),
                    name: "/orders".into(),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut expected = 0;
    for seq in 1..=50u64 {
        let delta = delta("w1", seq, SECOND + seq as i64, 2, 1_000);
        expected += delta.endpoints.iter().map(|e| e.requests).sum::<u64>();
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            client.push_deltas(v1::PushDeltasRequest {
                deltas: vec![delta],
            }),
        )
        .await
        .expect("ingestion is not blocked by the exporter")
        .unwrap()
        .into_inner();
        assert_eq!(response.applied, 1);
    }
    let stats = client
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
    assert_eq!(stats.total.unwrap().requests, expected);
    drop(client);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), collector)
        .await
        .expect("collector stops despite the unreachable receiver")
        .unwrap()
        .expect("collector ran cleanly");
}

/// The binary takes its export configuration from the OTLP environment
/// variables (endpoint, headers, interval, resource attributes) and the pod's
/// `K8S_*` variables, as deployed on GKE.
#[tokio::test]
async fn the_binary_follows_the_otlp_environment_variables() {
    let db = TestDatabase::sqlite().expect("temp dir");
    let receiver = Receiver::default();
    let otlp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_address = otlp_listener.local_addr().unwrap();
    let (stop_receiver, receiver_stopped) = tokio::sync::oneshot::channel::<()>();
    let receiver_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(otlp_listener), async {
                let _ = receiver_stopped.await;
            }),
    );
    // The binary binds its own port: a free one, taken just before.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cicada-collector"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", db.url()])
        .env("RUST_LOG", "warn")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{otlp_address}"),
        )
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-test=from-env")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "k8s.cluster.name=c1,deployment.environment=ci",
        )
        .env("K8S_POD_NAME", "cicada-collector-abc")
        .env("K8S_NAMESPACE_NAME", "cicada")
        .env("K8S_CONTAINER_NAME", "collector")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        if let Ok(client) = CollectorClient::connect(format!("http://127.0.0.1:{port}")).await {
            break client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "collector did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client
        .create_run(v1::CreateRunRequest {
            run_id: RUN.into(),
            scenario_name: "shop".into(),
            config_json: r#"{"users":2}"#.into(),
            started_at_ms: SECOND * 1000,
            endpoints: vec![
                v1::Endpoint {
                    index: 0,
                    method: "GET".into(),
                    name: "/items".into(),
                },
                v1::Endpoint {
                    index: 1,
                    method: "POST".into(),
                    name: "/orders".into(),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .push_deltas(v1::PushDeltasRequest {
            deltas: vec![delta("w1", 1, SECOND, 2, 1_000)],
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let request = loop {
        let found = receiver
            .received
            .lock()
            .unwrap()
            .iter()
            .find_map(|(header, r)| {
                let has_requests = r
                    .resource_metrics
                    .iter()
                    .flat_map(|rm| &rm.scope_metrics)
                    .flat_map(|sm| &sm.metrics)
                    .any(|m| m.name == REQUESTS);
                has_requests.then(|| (header.clone(), r.clone()))
            });
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no export from the binary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().await.unwrap();
    stop_receiver.send(()).unwrap();
    receiver_task.await.unwrap().unwrap();

    let (header, request) = request;
    assert_eq!(header.as_deref(), Some("from-env"));
    let resource = request.resource_metrics[0].resource.as_ref().unwrap();
    for (key, value) in [
        ("service.name", "cicada-collector"),
        ("service.instance.id", "cicada-collector-abc"),
        ("k8s.pod.name", "cicada-collector-abc"),
        ("k8s.namespace.name", "cicada"),
        ("k8s.container.name", "collector"),
        ("k8s.cluster.name", "c1"),
        ("deployment.environment", "ci"),
    ] {
        assert_eq!(
            text(&resource.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
}
