//! OTLP export end to end through `cicada run`: real workers load the real
//! sample target, the in-process collector exports to a real OTLP/gRPC
//! receiver (opentelemetry-proto's `MetricsService` on 127.0.0.1:0) per
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, and the exported counters and histogram
//! counts equal what the run stored and what the target served, exactly.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use support::*;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn text(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cicada_run_exports_exactly_what_it_stored() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let run = cicada_run_with(
        &workspace_file("examples/weighted-reads.yaml"),
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "4", "-r", "100", "-t", "3s"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "cicada run failed: {}", run.stderr);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let summary = run.summary;
    let run_id = summary["run_id"].as_str().unwrap();
    let stored = stored_run(db.url(), run_id).await;
    let served = target_stats(&target.url).await;

    // Cumulative: the last export (the flush at shutdown) holds the totals.
    let received = receiver.received.lock().unwrap();
    let last = received.last().expect("exports received");
    let mut requests: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut latency_counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for metric in last
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
    {
        match (metric.name.as_str(), metric.data.as_ref()) {
            ("cicada.requests", Some(metric::Data::Sum(sum))) => {
                for point in &sum.data_points {
                    assert_eq!(text(&point.attributes, "run_id"), run_id);
                    assert_eq!(text(&point.attributes, "scenario"), summary["scenario"]);
                    let value = match point.value {
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        None => 0.0,
                    };
                    *requests
                        .entry((
                            text(&point.attributes, "method"),
                            text(&point.attributes, "endpoint"),
                        ))
                        .or_default() += value;
                }
            }
            ("cicada.latency", Some(metric::Data::Histogram(histogram))) => {
                for point in &histogram.data_points {
                    *latency_counts
                        .entry((
                            text(&point.attributes, "method"),
                            text(&point.attributes, "endpoint"),
                        ))
                        .or_default() += point.count;
                }
            }
            _ => {}
        }
    }
    let total: f64 = requests.values().sum();
    assert!(total > 0.0, "no requests exported");
    assert_eq!(total, stored.summary_total.requests as f64);
    assert_eq!(total, served["total"].as_u64().unwrap() as f64);
    for (method, name, counts, histogram) in &stored.summary_by_endpoint {
        // `cicada.requests` exports requests: not the connection rows.
        if counts.requests == 0 || !cicada_store::is_request_method(method) {
            continue;
        }
        let key = (method.clone(), name.clone());
        assert_eq!(requests[&key], counts.requests as f64, "{method} {name}");
        assert_eq!(latency_counts[&key], histogram.len(), "{method} {name}");
    }
}
