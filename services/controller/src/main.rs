//! `cicada-controller`: parses flags, sets up logging and runs the controller
//! until SIGINT or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use cicada_controller::ControllerConfig;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The cicada controller: worker membership, load placement and run life cycle.
#[derive(Debug, Parser)]
#[command(name = "cicada-controller", version)]
struct Args {
    /// Address to serve gRPC on (workers and the CLI connect here).
    #[arg(long, env = "CICADA_LISTEN", default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// gRPC URL of the collector, e.g. http://127.0.0.1:7100.
    #[arg(long, env = "CICADA_COLLECTOR")]
    collector: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = ControllerConfig::new(args.collector);
    // Validate before binding: bad flags should not hold a port.
    config.validate().context("bad --collector")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    cicada_controller::run(config, listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("failed to install the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
