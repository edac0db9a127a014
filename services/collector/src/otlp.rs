//! Live metrics exported over OTLP/gRPC (opentelemetry-otlp on the
//! workspace's tonic), off unless an endpoint is configured.
//!
//! The collector feeds the exporter from its ingestion path with the deltas
//! the store has just *applied* (duplicates never reach it), through a
//! bounded queue: a full queue drops the delta from the export (counted and
//! logged), never slows ingestion, and never touches stored data. A dedicated
//! thread records queued deltas into OpenTelemetry instruments
//! (`record`); the SDK's periodic reader exports them with cumulative
//! temporality every `interval`, and a failed export is logged by the SDK and
//! dropped.

mod counted;
mod record;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cicada_store::{Delta, Endpoint, RunRecord};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::EnvResourceDetector;
use tokio::sync::mpsc;

pub use record::{
    ACTIVE_USERS, FAILURES, LATENCY, LATENCY_BOUNDARIES_MS, REQUESTS, TARGET_RATE, TARGET_USERS,
};

/// Deltas waiting to be recorded; beyond this they are dropped from the export.
const QUEUE: usize = 4096;

/// Where and how often live metrics are exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// OTLP/gRPC endpoint, e.g. `http://otel-collector:4317` (plain) or
    /// `https://…` (TLS with the Mozilla roots).
    pub endpoint: String,
    /// Export interval of the periodic reader.
    pub interval: Duration,
    /// Extra gRPC metadata sent with every export (on top of
    /// `OTEL_EXPORTER_OTLP_HEADERS`, which the exporter reads itself).
    pub headers: Vec<(String, String)>,
}

impl OtlpConfig {
    /// Export to `endpoint` every 10 seconds.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            interval: Duration::from_secs(10),
            headers: Vec::new(),
        }
    }
}

impl OtlpConfig {
    /// The export configuration from explicit values (flags) over the OTLP
    /// environment variables: the endpoint from
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// the interval from `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds).
    /// `None` (export off) without an endpoint.
    pub fn from_env(
        endpoint: Option<String>,
        interval: Option<Duration>,
        headers: Vec<(String, String)>,
    ) -> Result<Option<Self>, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(endpoint) = endpoint
            .or_else(|| env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        let mut config = Self::new(endpoint);
        if let Some(interval) = interval {
            config.interval = interval;
        } else if let Some(ms) = env("OTEL_METRIC_EXPORT_INTERVAL") {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                format!("OTEL_METRIC_EXPORT_INTERVAL must be milliseconds, not {ms:?}")
            })?;
            config.interval = Duration::from_millis(ms);
        }
        if config.interval.is_zero() {
            return Err("the otlp export interval must be above zero".into());
        }
        config.headers = headers;
        Ok(Some(config))
    }
}

/// Parses `key=value,key2=value2` (the `OTEL_EXPORTER_OTLP_HEADERS` format).
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("header {pair:?} is not key=value"))?;
            Ok((key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect()
}

/// What the exporter needs to know about a run besides its deltas.
#[derive(Debug)]
pub(crate) struct RunMeta {
    pub run_id: String,
    pub scenario: String,
    /// (method, name) by endpoint index.
    pub endpoints: Vec<(String, String)>,
    /// Closed model: the configured users (from `config_json`).
    pub target_users: Option<u64>,
    /// Open model: the configured arrivals per second (from `config_json`).
    pub target_rate: Option<f64>,
}

impl RunMeta {
    pub(crate) fn new(record: &RunRecord, endpoints: &[Endpoint]) -> Self {
        let config: serde_json::Value =
            serde_json::from_str(&record.config_json).unwrap_or_default();
        Self {
            run_id: record.id.clone(),
            scenario: record.scenario_name.clone(),
            endpoints: endpoints
                .iter()
                .map(|e| (e.method.clone(), e.name.clone()))
                .collect(),
            target_users: config["users"].as_u64().filter(|&users| users > 0),
            target_rate: config["rate"].as_f64().filter(|&rate| rate > 0.0),
        }
    }
}

/// What the recording thread is told.
enum Item {
    /// A delta the store has applied.
    Applied(Arc<RunMeta>, Delta),
    /// The run ended: forget its state.
    Finished(String),
}

/// The ingestion side of the exporter: cheap, never blocks.
pub(crate) struct Feed {
    /// `None` once the exporter shuts down (which ends the recording
    /// thread even if a `Feed` is still referenced somewhere).
    sender: RwLock<Option<mpsc::Sender<Item>>>,
    dropped: AtomicU64,
    /// Run metadata by run id, built once per run.
    runs: Mutex<HashMap<String, Arc<RunMeta>>>,
}

impl Feed {
    /// Queues a delta the store has applied; drops it from the export (only)
    /// when the queue is full.
    pub(crate) fn applied(&self, record: &RunRecord, endpoints: &[Endpoint], delta: &Delta) {
        let meta = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(record.id.clone())
            .or_insert_with(|| Arc::new(RunMeta::new(record, endpoints)))
            .clone();
        if !self.send(Item::Applied(meta, delta.clone())) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "otlp export queue full: deltas dropped from the export (stored data is unaffected)"
                );
            }
        }
    }

    /// The run ended: its metadata and per-second state are forgotten.
    pub(crate) fn finished(&self, run_id: &str) {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run_id);
        let _ = self.send(Item::Finished(run_id.to_owned()));
    }

    /// Queues `item` without waiting; false when the queue is full or closed.
    fn send(&self, item: Item) -> bool {
        self.sender
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|sender| sender.try_send(item).is_ok())
    }

    /// Closes the queue: the recording thread ends after what is queued.
    fn close(&self) {
        self.sender
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// A running exporter: the feed, the recording thread and the SDK provider.
pub(crate) struct Exporter {
    pub feed: Arc<Feed>,
    recorder: std::thread::JoinHandle<()>,
    provider: SdkMeterProvider,
}

/// The resource: `service.name` (`OTEL_SERVICE_NAME`, default
/// `cicada-collector`), `service.instance.id` and `k8s.*` from the pod's
/// environment (downward API), then `OTEL_RESOURCE_ATTRIBUTES` on top.
fn resource() -> Resource {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let service_name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "cicada-collector".to_owned());
    let instance = env("K8S_POD_NAME")
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| format!("cicada-collector-{}", std::process::id()));
    let mut attributes = vec![KeyValue::new("service.instance.id", instance)];
    for (variable, key) in [
        ("K8S_POD_NAME", "k8s.pod.name"),
        ("K8S_NAMESPACE_NAME", "k8s.namespace.name"),
        ("K8S_NODE_NAME", "k8s.node.name"),
        ("K8S_CONTAINER_NAME", "k8s.container.name"),
        ("K8S_CLUSTER_NAME", "k8s.cluster.name"),
    ] {
        if let Some(value) = env(variable) {
            attributes.push(KeyValue::new(key, value));
        }
    }
    Resource::builder_empty()
        .with_service_name(service_name)
        .with_attributes(attributes)
        .with_detector(Box::new(EnvResourceDetector::new()))
        .build()
}

impl Exporter {
    /// Builds the OTLP exporter and starts recording; must run inside the
    /// Tokio runtime (the gRPC channel's connection task lives there).
    /// Failed exports are counted into `errors`.
    pub(crate) fn start(
        config: &OtlpConfig,
        errors: prometheus_client::metrics::counter::Counter,
    ) -> anyhow::Result<Self> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (key, value) in &config.headers {
            let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| anyhow::anyhow!("invalid otlp header name {key:?}"))?;
            let value = value
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid otlp header value for {key:?}"))?;
            metadata.insert(key, value);
        }
        let mut builder = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_metadata(metadata);
        if config.endpoint.starts_with("https://") {
            // Remote receivers (e.g. telemetry.googleapis.com): rustls on
            // ring with the Mozilla roots, like the rest of the workspace.
            builder = builder.with_tls_config(
                opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                    .with_webpki_roots(),
            );
        }
        let exporter = builder
            .build()
            .map_err(|error| anyhow::anyhow!("failed to build the otlp exporter: {error}"))?;
        let exporter = counted::Counted {
            inner: exporter,
            errors,
        };
        let reader = PeriodicReader::builder(exporter)
            .with_interval(config.interval)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource())
            .with_reader(reader)
            .build();
        let instruments = record::Instruments::new(&provider.meter("cicada-collector"));
        let (sender, mut receiver) = mpsc::channel::<Item>(QUEUE);
        // Recording a second of a busy run is O(requests): keep it off the
        // async workers.
        let recorder = std::thread::Builder::new()
            .name("otlp-record".into())
            .spawn(move || {
                let mut instruments = instruments;
                while let Some(item) = receiver.blocking_recv() {
                    match item {
                        Item::Applied(meta, delta) => instruments.record(&meta, &delta),
                        Item::Finished(run_id) => instruments.forget(&run_id),
                    }
                }
            })?;
        tracing::info!(endpoint = %config.endpoint, interval = ?config.interval, "otlp metrics export on");
        Ok(Self {
            feed: Arc::new(Feed {
                sender: RwLock::new(Some(sender)),
                dropped: AtomicU64::new(0),
                runs: Mutex::new(HashMap::new()),
            }),
            recorder,
            provider,
        })
    }

    /// Records what is queued, exports it one last time and stops. Call
    /// after the last `Feed` user is gone (the service has stopped).
    pub(crate) async fn shutdown(self) {
        let Self {
            feed,
            recorder,
            provider,
        } = self;
        feed.close();
        drop(feed);
        let done = tokio::task::spawn_blocking(move || {
            if recorder.join().is_err() {
                tracing::error!("otlp recording thread panicked");
            }
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "failed to flush the otlp exporter");
            }
        });
        if done.await.is_err() {
            tracing::error!("otlp shutdown panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_like_otel_exporter_otlp_headers() {
        assert_eq!(
            parse_headers("Authorization=Bearer x, x-tenant = a").unwrap(),
            [
                ("authorization".to_owned(), "Bearer x".to_owned()),
                ("x-tenant".to_owned(), "a".to_owned())
            ]
        );
        assert!(parse_headers("").unwrap().is_empty());
        assert!(parse_headers("nokey").is_err());
    }

    #[tokio::test]
    async fn https_endpoints_get_tls() {
        // A closed loopback port: building and shutting down must not fail.
        let exporter =
            Exporter::start(&OtlpConfig::new("https://127.0.0.1:1"), Default::default()).unwrap();
        exporter.shutdown().await;
    }

    #[test]
    fn explicit_values_win_over_the_environment() {
        let config = OtlpConfig::from_env(
            Some("http://127.0.0.1:4317".into()),
            Some(Duration::from_secs(2)),
            vec![("k".into(), "v".into())],
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.endpoint, "http://127.0.0.1:4317");
        assert_eq!(config.interval, Duration::from_secs(2));
        assert_eq!(config.headers.len(), 1);
        assert!(
            OtlpConfig::from_env(Some("http://x".into()), Some(Duration::ZERO), vec![]).is_err()
        );
    }

    #[test]
    fn a_full_queue_drops_from_the_export_without_waiting() {
        let (sender, mut receiver) = mpsc::channel(2);
        let feed = Feed {
            sender: RwLock::new(Some(sender)),
            dropped: AtomicU64::new(0),
            runs: Mutex::new(HashMap::new()),
        };
        let record = RunRecord {
            id: "r".into(),
            scenario_name: "shop".into(),
            scenario_yaml: String::new(),
            host: String::new(),
            config_json: r#"{"users":5,"rate":0}"#.into(),
            labels: Default::default(),
            status: cicada_store::RunStatus::Running,
            started_at_ms: 0,
            ended_at_ms: None,
            error: None,
        };
        let delta = Delta {
            run_id: "r".into(),
            worker_id: "w".into(),
            seq: 1,
            second: 1,
            active_users: 1,
            dropped: 0,
            endpoints: Vec::new(),
            ..Default::default()
        };
        for _ in 0..5 {
            feed.applied(&record, &[], &delta);
        }
        assert_eq!(feed.dropped.load(Ordering::Relaxed), 3);
        let Ok(Item::Applied(meta, _)) = receiver.try_recv() else {
            panic!("a queued delta");
        };
        assert_eq!(meta.target_users, Some(5));
        assert_eq!(meta.target_rate, None);
        feed.finished("r");
        assert!(feed.runs.lock().unwrap().is_empty());
        // Closed: nothing more is queued, and the receiver sees the end.
        feed.close();
        feed.applied(&record, &[], &delta);
        assert!(matches!(receiver.try_recv(), Ok(Item::Applied(..))));
        assert!(matches!(receiver.try_recv(), Ok(Item::Finished(_))));
        assert!(matches!(
            receiver.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
