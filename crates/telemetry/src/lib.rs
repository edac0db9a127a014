//! What every cicada binary shares to be watched from outside:
//!
//! - [`logging`]: `--log-format text|json` ([`LogArgs`], flattened into each
//!   binary's clap arguments) and [`logging::init`]; `json` writes one JSON
//!   object per line with the fields Cloud Logging maps (`severity`,
//!   `message`, `timestamp`) plus the event's fields and those of the spans
//!   it happened in (`run_id`), in `logging/json.rs`.
//! - [`metrics`]: Prometheus text exposition of a `prometheus_client`
//!   registry ([`metrics::encode`]), the HTTP answer to `GET /metrics`
//!   ([`metrics::response`]) and a tiny listener for services that have no
//!   HTTP port of their own ([`metrics::serve`], the worker).
//! - [`shutdown_signal`]: the one SIGINT/SIGTERM future passed into each
//!   service's `run`.
//! - `testing` (feature `testsuite`): scrape `/metrics` over HTTP and parse
//!   the text, for the services' integration tests.

pub mod logging;
pub mod metrics;
#[cfg(any(test, feature = "testsuite"))]
pub mod testing;

pub use logging::{LogArgs, LogFormat};

/// Completes on the first SIGINT or SIGTERM (logged). A signal that cannot
/// be listened for is logged and never completes, so the process keeps
/// running rather than stopping at once.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}
