//! The sample target: the IoT data-collection service of cicada's reference
//! case, built to be load tested and to check load testers against.
//!
//! It answers `POST /login` (form field `deviceid`, returns a JSON token),
//! `POST /metrics` (form fields `deviceid` and `timestamp`), `GET /Test/V1`..
//! `GET /Test/V4`, `GET /` and `GET /health`, with configurable injected
//! latency and error rate (globally and per route), and keeps exact counts of
//! the responses it produced per `METHOD /path`, readable at `GET /stats` and
//! zeroed by `POST /stats/reset`; `/stats` also tells how many distinct
//! `deviceid`s logged in and how many logins repeated one, so tests can
//! check that test data rows were handed out uniquely. `GET /process-metrics` exposes its own
//! `process_cpu_seconds_total` for Prometheus. Tests compare those counts with what a load
//! generator recorded: they must match exactly.
//!
//! Layout:
//! - [`config`]: [`TargetConfig`] and per-route overrides;
//! - [`latency`]: [`Latency`], fixed or distributed delays;
//! - [`route`]: the fixed [`Route`] table;
//! - [`stats`]: lock-free counters, the login device ids and the `/stats`
//!   JSON ([`StatsSnapshot`]);
//! - `service`: request handling; `server`: accept loop and graceful drain;
//! - `chance`: stateless per-request randomness keyed by a seed;
//! - [`tls`]: HTTPS and client certificates (`/stats` counts the distinct
//!   client certificates it saw).

mod chance;
pub mod config;
mod delay;
pub mod error;
mod form;
pub mod latency;
mod process;
pub mod route;
mod server;
mod service;
pub mod stats;
pub mod tls;

pub use config::{ErrorRate, RouteOverride, RouteSetting, TargetConfig};
pub use error::ConfigError;
pub use latency::Latency;
pub use route::Route;
pub use stats::StatsSnapshot;
pub use tls::TlsSettings;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Serves the sample target on `listener` until `shutdown` resolves, then
/// drains in-flight requests for at most `config.shutdown_grace`.
pub async fn run(
    config: TargetConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config
        .validate()
        .context("failed to validate the target config")?;
    let addr = listener
        .local_addr()
        .context("failed to read the listener address")?;
    tracing::info!(
        %addr,
        latency = %config.latency,
        error_rate = config.error_rate,
        overrides = config.routes.len(),
        "sample target listening"
    );
    let tls = config
        .tls
        .as_ref()
        .map(tls::acceptor)
        .transpose()
        .context("failed to set up TLS")?;
    let state = Arc::new(service::State::new(&config));
    server::serve(state, listener, tls, shutdown, config.shutdown_grace).await;
    tracing::info!("sample target stopped");
    Ok(())
}
