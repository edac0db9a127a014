//! Prometheus exposition over `prometheus_client` (the Prometheus project's
//! Rust client): each service keeps a [`Registry`] of its metrics (atomic
//! counters and histograms updated where things happen, plus
//! [`Collector`](prometheus_client::collector::Collector)s that read
//! existing state at scrape time) and answers `GET /metrics` with
//! [`response`]. The body is the Prometheus text format 0.0.4, which every
//! Prometheus-compatible scraper (Prometheus, Google Managed Prometheus,
//! the OpenTelemetry Collector) reads.
//!
//! Helpers for collectors: [`gauge`], [`counter`] and [`labelled_gauge`]
//! write one metric family from plain values. Help texts are written
//! without a final period (the encoder adds one); a registry made with
//! `Registry::with_prefix("cicada_worker")` prefixes every name.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
pub use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

/// `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The path every service serves its metrics on.
pub const PATH: &str = "/metrics";

/// `registry` in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String only fails if a metric's own encoder does.
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        tracing::error!(%error, "failed to encode metrics");
    }
    text
}

/// The answer to `GET /metrics`: 200 with [`encode`]'s text.
pub fn response(registry: &Registry) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(encode(registry))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

/// Serves `GET /metrics` (and `GET /health`, always `ok`) over HTTP/1 on
/// `listener` until `shutdown` completes; anything else is 404. For
/// services without an HTTP port of their own (the worker). No
/// authentication: bind it where only the scraper reaches it.
pub async fn serve(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the metrics listener address")?;
    tracing::info!(%address, "metrics listening");
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a metrics connection");
                    continue;
                }
            },
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(route(&registry, &request)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
    Ok(())
}

fn route<B>(registry: &Registry, request: &Request<B>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, PATH) => response(registry),
        (&Method::GET, "/health") => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"not found: this port serves GET /metrics and GET /health\n",
            )));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// Writes a gauge without labels (for a collector read at scrape time).
/// `name` without a unit suffix; `unit` adds it (`_seconds`, `_bytes`).
pub fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> std::fmt::Result {
    constant(encoder, name, help, unit, ConstGauge::new(value))
}

/// Writes a counter without labels; `name` without `_total` (added).
pub fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> std::fmt::Result {
    constant(encoder, name, help, unit, ConstCounter::new(value))
}

fn constant(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: impl EncodeMetric,
) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// Writes a gauge with one series per `(label value, value)`, the label
/// named `label`.
pub fn labelled_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: &[(&str, f64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value_label, value) in series {
        let labels = [(label, *value_label)];
        ConstGauge::new(*value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prometheus_client::collector::Collector;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;

    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            gauge(&mut encoder, "depth", "Depth", None, 3.0)?;
            counter(&mut encoder, "cpu", "CPU", Some(&Unit::Seconds), 1.5)?;
            labelled_gauge(
                &mut encoder,
                "runs",
                "Runs by state",
                "state",
                &[("running", 1.0), ("finished", 2.0)],
            )
        }
    }

    #[test]
    fn text_follows_the_prometheus_naming_conventions() {
        let mut registry = Registry::with_prefix("cicada_test");
        let received = Counter::<u64>::default();
        registry.register("deltas_received", "Deltas received", received.clone());
        let latency = Histogram::new([0.01, 0.1]);
        registry.register_with_unit("db_write", "Write time", Unit::Seconds, latency.clone());
        registry.register_collector(Box::new(Fixed));
        received.inc_by(7);
        latency.observe(0.05);
        let text = encode(&registry);
        for line in [
            "# TYPE cicada_test_deltas_received_total counter",
            "cicada_test_deltas_received_total 7",
            "# TYPE cicada_test_db_write_seconds histogram",
            "cicada_test_db_write_seconds_bucket{le=\"0.01\"} 0",
            "cicada_test_db_write_seconds_bucket{le=\"0.1\"} 1",
            "cicada_test_db_write_seconds_count 1",
            "# HELP cicada_test_deltas_received_total Deltas received.",
            "# TYPE cicada_test_depth gauge",
            "cicada_test_depth 3.0",
            "cicada_test_cpu_seconds_total 1.5",
            "cicada_test_runs{state=\"running\"} 1.0",
            "cicada_test_runs{state=\"finished\"} 2.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
