//! The cicada controller: worker membership, load placement and the life
//! cycle of runs.
//!
//! Workers dial in with the bidirectional `WorkerSession` stream; the controller
//! keeps them in the [`registry`], splits a run's users over them ([`split`],
//! a pure function), announces the run to the collector and drives it to its
//! end ([`lifecycle`]): `StopWork` at the run time limit or on `StopRun`,
//! `WorkDone` from every worker, then `FinishRun` at the collector.
//! `WatchRun` streams progress ([`progress`]). Thresholds are checked by the
//! collector on its merged histograms; the controller validates them at
//! `StartRun` and stops a run whose `abort_on_fail` threshold fails ([`abort`]).
//! A run's data files are checked at `StartRun` and its `unique` rows
//! leased to the workers from here ([`data`]).
//!
//! Layout: [`run`] (this file) wires the gRPC server; `service` implements the
//! `Controller` trait on top of [`registry`], [`runs`], `start`, [`lifecycle`]
//! and [`progress`]; [`error`] maps every failure to a `tonic::Code`.
//! Every call but `grpc.health.v1` must carry the shared token when
//! [`ControllerConfig::token`] is set. With [`ControllerConfig::tls`] the
//! gRPC port and the web UI serve TLS (`cicada_tls`; the client CA, for
//! mTLS, applies to gRPC only); [`ControllerConfig::collector_tls`] is how
//! the controller dials an `https://` collector.

pub mod abort;
pub mod data;
pub mod diagnosis;
pub mod error;
pub mod lifecycle;
pub mod membership;
mod metrics;
mod placing;
pub mod progress;
mod recovery;
pub mod registry;
pub mod runs;
mod sampler;
mod service;
pub mod shape;
pub mod split;
mod start;
mod target;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cicada_proto::auth::{AttachToken, AuthChannel, RequireToken, Token};
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_proto::v1::controller_server::ControllerServer;
use cicada_tls::{Alpn, ClientTls, GrpcTarget, ServerTls, ServerTlsFiles};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

pub use error::ControllerError;

/// How long open streams may take to close after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Controller settings. [`ControllerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// gRPC URL of the collector, e.g. `http://127.0.0.1:7100`; also handed
    /// to the workers, which push their deltas there.
    pub collector_url: String,
    /// Heartbeat period announced to workers.
    pub heartbeat_interval: Duration,
    /// Grace for in-flight requests when a run stops and the request names none.
    pub default_stop_grace: Duration,
    /// How long after the grace period the controller still waits for `WorkDone`.
    pub work_done_margin: Duration,
    /// How long the collector may wait for missing deltas in `FinishRun`.
    pub finish_wait: Duration,
    /// Added to run time + grace for the workers' own safety-net stop.
    pub max_duration_margin: Duration,
    /// Period of `WatchRun` progress messages.
    pub progress_interval: Duration,
    /// How often a run with `abort_on_fail` thresholds has them checked.
    pub threshold_check_interval: Duration,
    /// How long a new stream may take to send its `Register`.
    pub register_timeout: Duration,
    /// Timeout of each collector call (plus `finish_wait` for `FinishRun`).
    pub collector_timeout: Duration,
    /// How long after starting the controller waits for workers to come back
    /// before it ends the runs a previous controller left running.
    pub recovery_settle: Duration,
    /// Shared token: required on every call to the controller (except
    /// grpc.health.v1) and sent on every call to the collector. `None`
    /// accepts unauthenticated calls (for loopback only; see
    /// [`cicada_proto::auth::check_listen`]).
    pub token: Option<Token>,
    /// The web UI's settings (served when [`run_with`] gets a web listener).
    pub web: web::WebConfig,
    /// TLS on the gRPC port (mTLS with a client CA) and the web UI;
    /// plaintext when `None`.
    pub tls: Option<ServerTlsFiles>,
    /// How to dial an `https://` collector (CA, client certificate). The
    /// workers dial the collector with their own.
    pub collector_tls: ClientTls,
    /// The hosts runs may target (`--allow-target`); empty: any host.
    /// Checked at `StartRun` and shipped to the workers, which check the
    /// addresses they connect to.
    pub allow_targets: cicada_scenario::allow::AllowList,
}

impl ControllerConfig {
    /// The defaults, with the given collector URL.
    pub fn new(collector_url: impl Into<String>) -> Self {
        Self {
            collector_url: collector_url.into(),
            heartbeat_interval: Duration::from_secs(1),
            default_stop_grace: Duration::from_secs(5),
            work_done_margin: Duration::from_secs(30),
            finish_wait: Duration::from_secs(10),
            max_duration_margin: Duration::from_secs(60),
            progress_interval: Duration::from_secs(1),
            threshold_check_interval: Duration::from_secs(1),
            register_timeout: Duration::from_secs(10),
            collector_timeout: Duration::from_secs(10),
            recovery_settle: Duration::from_secs(5),
            token: None,
            web: web::WebConfig::default(),
            tls: None,
            collector_tls: ClientTls::default(),
            allow_targets: cicada_scenario::allow::AllowList::default(),
        }
    }
}

impl ControllerConfig {
    /// Checks the settings (call before binding a port).
    pub fn validate(&self) -> anyhow::Result<()> {
        collector_target(self).map(|_| ())
    }
}

/// The collector to dial: an `http://` or `https://` URL with a host.
fn collector_target(config: &ControllerConfig) -> anyhow::Result<GrpcTarget> {
    let url = &config.collector_url;
    GrpcTarget::new(url, &config.collector_tls)
        .with_context(|| format!("invalid collector url {url:?}"))
}

/// Loads TLS files and reloads them when they change on disk.
fn watched(files: ServerTlsFiles, alpn: Alpn) -> anyhow::Result<ServerTls> {
    let tls = ServerTls::load(files, alpn).context("invalid tls configuration")?;
    tls.watch(cicada_tls::server::RELOAD_INTERVAL);
    Ok(tls)
}

/// State shared by every RPC and background task.
pub(crate) struct Shared {
    pub(crate) config: ControllerConfig,
    pub(crate) registry: registry::Registry,
    pub(crate) runs: runs::Runs,
    pub(crate) collector: CollectorClient<AuthChannel>,
    /// The collector's stored runs (for the web UI).
    pub(crate) history: cicada_history::HistoryClient,
    /// Flips to true when the controller shuts down; long-lived streams end.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// True once the runs of a previous controller have been dealt with.
    pub(crate) recovered: std::sync::atomic::AtomicBool,
}

/// Serves the controller on `listener` until `shutdown` resolves, then ends
/// the worker and watch streams and drains (bounded).
pub async fn run(
    config: ControllerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, listener, None, shutdown).await
}

/// [`run`], plus the web UI and its JSON API on `web_listener` when given
/// (docs/WEB.md).
pub async fn run_with(
    config: ControllerConfig,
    listener: TcpListener,
    web_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let target = collector_target(&config)?.with(|e| e.connect_timeout(Duration::from_secs(5)));
    let tls = config
        .tls
        .clone()
        .map(|files| watched(files, Alpn::Grpc))
        .transpose()?;
    // Lazy: the controller starts (and takes its workers back) even while
    // the collector is down; only runs need it.
    let channel = AttachToken::new(config.token.as_ref()).wrap(target.connect_lazy());
    // The live stats of a run with many failure kinds can pass tonic's
    // default 4 MiB; a refused answer would leave thresholds unchecked.
    let collector = CollectorClient::new(channel.clone())
        .max_decoding_message_size(cicada_proto::MAX_COLLECTOR_MESSAGE_BYTES);
    let history = cicada_history::HistoryClient::new(channel);
    let auth = RequireToken::new(config.token.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        config,
        registry: registry::Registry::default(),
        runs: runs::Runs::default(),
        collector,
        history,
        shutdown: shutdown_rx.clone(),
        recovered: std::sync::atomic::AtomicBool::new(false),
    });
    let local = listener.local_addr().ok();
    tracing::info!(
        addr = ?local,
        tls = tls.is_some(),
        mtls = tls.as_ref().is_some_and(ServerTls::requires_client_certificates),
        "controller listening"
    );
    tokio::spawn(service::expire_silent_workers(shared.clone()));
    tokio::spawn(recovery::recover(shared.clone()));
    if let Some(web_listener) = web_listener {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(error) = web::serve(shared, web_listener).await {
                tracing::error!(%error, "web ui failed");
            }
        });
    }

    let signal = async move {
        shutdown.await;
        tracing::info!("controller shutting down");
        let _ = shutdown_tx.send(true);
    };
    // Health answers without the token: probes carry none.
    let health =
        cicada_proto::health::serving::<ControllerServer<service::ControllerService>>().await;
    let server = Server::builder()
        // Detects workers whose machine vanished without closing the stream.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(health)
        .add_service(InterceptedService::new(
            ControllerServer::new(service::ControllerService::new(shared.clone()))
                // A StartRun carries the scenario's data files.
                .max_decoding_message_size(cicada_proto::MAX_RUN_MESSAGE_BYTES),
            auth,
        ))
        .serve_with_incoming_shutdown(cicada_tls::incoming(listener, tls), signal);

    let mut drained = shutdown_rx;
    let drain_deadline = async move {
        let _ = drained.wait_for(|&down| down).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = server => result.context("controller server failed")?,
        () = drain_deadline => tracing::warn!("controller drain timed out"),
    }
    Ok(())
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub(crate) async fn shut_down(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|&down| down).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_the_collector_url() {
        assert!(
            ControllerConfig::new("http://127.0.0.1:7100")
                .validate()
                .is_ok()
        );
        assert!(
            ControllerConfig::new("https://collector:443")
                .validate()
                .is_ok()
        );
        for bad in ["bad", "127.0.0.1:7001", "ftp://host", ""] {
            assert!(ControllerConfig::new(bad).validate().is_err(), "{bad}");
        }
    }
}
