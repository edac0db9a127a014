//! The cicada collector: the gRPC service (`cicada.v1.Collector`) workers
//! push their per-second deltas to, which merges them exactly into the run
//! store (crates/store) and answers run statistics.
//!
//! Layout:
//! - `service`: [`CollectorService`], the four RPCs.
//! - `convert`: protocol messages to store records, validated before anything
//!   of a delta is applied.
//! - `runs`: per-run state and its lock; `live`: the live aggregate;
//!   `merged`: live figures read merged from a shared (Postgres) store;
//!   `stats`: `RunStats` from merged histograms; `threshold`: pass/fail
//!   thresholds checked on those histograms (live in every `GetRunStats`,
//!   final at `FinishRun`, when the results are stored with the run).
//! - `loss`: the bound of what a worker lost without its final flush took
//!   with it (`FinishRun.lost`, stored with the run).
//! - `health`: `grpc.health.v1` follows the database (NOT_SERVING while
//!   it cannot be reached).
//! - `error`: [`CollectorError`] and its one mapping to `tonic::Code`.
//! - `history`: [`HistoryService`], the history queries over gRPC
//!   (`cicada.v1.History`) on the same port and token as the collector,
//!   thin over `cicada_history`.
//! - `http`: the history API over HTTP/JSON ([`serve_http`]) on its own
//!   port, thin over `cicada_history`.
//! - `sampler`: the run's target CPU sampled each second from a
//!   Prometheus-compatible API (`target_cpu` in `config_json`) and stored;
//!   totals in the final `RunStats.target_cpu`.
//! - `otlp`: live metrics exported over OTLP/gRPC from the deltas applied
//!   (off unless [`CollectorConfig::otlp`] is set).
//! - `metrics`: the collector's own [`Metrics`] (deltas, write latency and
//!   errors, queue depth, OTLP errors), Prometheus text at `GET /metrics`
//!   on the HTTP port.
//!
//! TLS ([`CollectorConfig::tls`], `cicada_tls`): both ports serve TLS with
//! the same certificate, reloaded when its files change; the client CA
//! (mTLS) applies to the gRPC port only.
//!
//! Exactly-once ingestion lives in the store: a delta, its (run, worker) seq
//! watermark and the merge into the (run, second, endpoint) rows commit in
//! one transaction, so re-sent deltas are acknowledged as duplicates and
//! never counted twice.
//!
//! Live statistics, one collector (SQLite, `cicada run`): each live run has
//! an in-memory running aggregate (per-endpoint counts and merged histograms,
//! the last few seconds, failures by kind), updated right after a delta
//! commits while the run's lock is held for reading (deltas of different
//! workers still apply concurrently; rebuilding and finishing take it for
//! writing), so a `GetRunStats` every second costs a few histogram merges
//! instead of re-merging every stored second. After a restart the aggregate
//! is rebuilt from the stored seconds on first use.
//!
//! Live statistics, Postgres (`merged`): several collectors may serve one
//! run, each applying the deltas of the workers connected to it, so no
//! collector's own deltas are the whole run. Live figures are read merged
//! from the database instead (the last 15 seconds re-read, older ones
//! folded once), and every collector answers the whole run. The database
//! stays the source of truth: once a run ends, its statistics come from the
//! summaries written by `FinishRun`, which waits for every worker's last
//! seq in the database, whichever collector applied it.
//!
//! The "current" numbers cover the 2 complete seconds before the latest
//! second seen (that one may still be arriving from other workers): rps and
//! failures/s over those seconds, p50/p95 of their merged histogram, and the
//! active users of the last of them.

mod convert;
mod error;
mod health;
mod history;
mod http;
mod ingest;
mod live;
mod loss;
mod merged;
mod metrics;
pub mod otlp;
mod runs;
mod sampler;
mod service;
mod stats;
mod threshold;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use cicada_proto::auth::{RequireToken, Token};
use cicada_proto::v1::collector_server::CollectorServer;
use cicada_proto::v1::history_server::HistoryServer;
use cicada_store::Store;
use cicada_tls::{Alpn, ServerTls, ServerTlsFiles};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

pub use error::CollectorError;
pub use history::HistoryService;
pub use http::{serve_http, serve_http_with};
pub use metrics::Metrics;
pub use otlp::OtlpConfig;
pub use service::CollectorService;
pub use stats::TOTAL_NAME;

/// Largest gRPC message the collector decodes or sends: a batch of deltas
/// with histograms. A larger request is refused (`OUT_OF_RANGE`) before it
/// is buffered whole.
pub const MAX_MESSAGE_BYTES: usize = cicada_proto::MAX_COLLECTOR_MESSAGE_BYTES;

/// Configuration of a collector process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectorConfig {
    /// `postgres://...`, `postgresql://...`, `sqlite:...` or a SQLite file path.
    pub database_url: String,
    /// Shared token every call but `grpc.health.v1` must carry; `None`
    /// accepts unauthenticated calls (loopback only, see
    /// [`cicada_proto::auth::check_listen`]).
    pub token: Option<Token>,
    /// Live metrics export over OTLP/gRPC; off when `None`.
    pub otlp: Option<OtlpConfig>,
    /// TLS on both ports (mTLS on gRPC with a client CA); plaintext when
    /// `None`.
    pub tls: Option<ServerTlsFiles>,
}

/// Options of [`serve_with`] beyond the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeOptions {
    /// Live metrics export over OTLP/gRPC; off when `None`.
    pub otlp: Option<OtlpConfig>,
    /// Shared token every call but `grpc.health.v1` must carry.
    pub token: Option<Token>,
    /// TLS on the gRPC port (mTLS with a client CA); plaintext when `None`.
    pub tls: Option<ServerTlsFiles>,
}

/// Opens the store named by `config.database_url` (applying its migrations)
/// and serves the collector on `listener` until `shutdown` completes.
pub async fn run(
    config: CollectorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = cicada_store::connect(&config.database_url)
        .await
        .context("failed to open the run store")?;
    let options = ServeOptions {
        otlp: config.otlp,
        token: config.token,
        tls: config.tls,
    };
    serve_with(store, options, listener, shutdown).await
}

/// Like [`run`], and also serves the history API over HTTP/JSON on
/// `http_listener` (see [`serve_http`]) until `shutdown` completes.
pub async fn run_with_http(
    config: CollectorConfig,
    listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use futures::FutureExt;
    let store = cicada_store::connect(&config.database_url)
        .await
        .context("failed to open the run store")?;
    let shutdown = shutdown.shared();
    // The HTTP API serves the same certificate but asks for none: the
    // token authenticates its callers.
    let http_tls = config
        .tls
        .as_ref()
        .map(|files| {
            let files = ServerTlsFiles {
                client_ca: None,
                ..files.clone()
            };
            watched(files, Alpn::Http1)
        })
        .transpose()?;
    let options = ServeOptions {
        otlp: config.otlp,
        token: config.token.clone(),
        tls: config.tls,
    };
    let metrics = Metrics::default();
    let (grpc, http) = tokio::join!(
        serve_with_metrics(
            store.clone(),
            options,
            metrics.clone(),
            listener,
            shutdown.clone()
        ),
        http::serve_http_with(
            store,
            config.token,
            metrics,
            http_tls,
            http_listener,
            shutdown
        )
    );
    grpc.and(http)
}

/// Serves the collector over an already opened store on `listener` until
/// `shutdown` completes (in-flight requests are finished first), without
/// authentication. Used in process (on loopback) by `cicada run`.
pub async fn serve(
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(store, ServeOptions::default(), listener, shutdown).await
}

/// [`serve`] with options (OTLP export). The exporter is flushed last, after
/// the service has stopped.
pub async fn serve_with(
    store: Arc<dyn Store>,
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_metrics(store, options, Metrics::default(), listener, shutdown).await
}

/// [`serve_with`], counting into `metrics` (pass the same to
/// [`serve_http_with`] so its `/metrics` shows them).
pub async fn serve_with_metrics(
    store: Arc<dyn Store>,
    options: ServeOptions,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the listener address")?;
    let exporter = options
        .otlp
        .as_ref()
        .map(|config| otlp::Exporter::start(config, metrics.otlp_export_errors.clone()))
        .transpose()?;
    let history = HistoryServer::new(HistoryService::new(store.clone()))
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let write_failures = health::WriteFailures::default();
    let mut collector = CollectorService::new(store.clone())
        .with_write_failures(write_failures.clone())
        .with_metrics(metrics);
    if let Some(exporter) = &exporter {
        collector = collector.with_otlp(exporter.feed.clone());
    }
    if let Err(error) = collector.resume_sampling().await {
        // Sampling is optional: serve anyway.
        tracing::warn!(%error, "failed to resume target cpu sampling");
    }
    let service = CollectorServer::new(collector)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // Health answers without the token: probes carry none.
    let collector_name = <CollectorServer<CollectorService> as tonic::server::NamedService>::NAME;
    let (reporter, health) = cicada_proto::health::serving_with_reporter(&[
        collector_name,
        <HistoryServer<HistoryService> as tonic::server::NamedService>::NAME,
    ])
    .await;
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health_task = tokio::spawn(health::follow_store(
        store,
        reporter,
        vec![collector_name],
        write_failures,
        async move {
            let _ = health_stopped.await;
        },
    ));
    let tls = options
        .tls
        .map(|files| watched(files, Alpn::Grpc))
        .transpose()?;
    let token = options.token;
    tracing::info!(
        %address,
        authenticated = token.is_some(),
        tls = tls.is_some(),
        mtls = tls.as_ref().is_some_and(ServerTls::requires_client_certificates),
        "collector listening"
    );
    let served = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(InterceptedService::new(
            service,
            RequireToken::new(token.clone()),
        ))
        .add_service(InterceptedService::new(history, RequireToken::new(token)))
        .serve_with_incoming_shutdown(cicada_tls::incoming(listener, tls), shutdown)
        .await
        .context("failed to serve the collector");
    let _ = stop_health.send(());
    let _ = health_task.await;
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    served?;
    tracing::info!("collector stopped");
    Ok(())
}

/// Loads TLS files and reloads them when they change on disk.
fn watched(files: ServerTlsFiles, alpn: Alpn) -> anyhow::Result<ServerTls> {
    let tls = ServerTls::load(files, alpn).context("invalid tls configuration")?;
    tls.watch(cicada_tls::server::RELOAD_INTERVAL);
    Ok(tls)
}
