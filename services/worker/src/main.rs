//! `cicada-worker`: parses flags, sets up logging and runs the worker until
//! SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use cicada_proto::auth::Token;
use cicada_worker::WorkerConfig;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The cicada worker: runs virtual users and streams per-second deltas.
#[derive(Debug, Parser)]
#[command(name = "cicada-worker", version)]
struct Args {
    /// gRPC URL of the controller, e.g. http://127.0.0.1:7000.
    #[arg(long, env = "CICADA_CONTROLLER")]
    controller: String,
    /// Worker id (default: hostname plus a random suffix).
    #[arg(long, env = "CICADA_WORKER_ID")]
    worker_id: Option<String>,
    /// Cores to offer the controller (default: available parallelism).
    #[arg(long, env = "CICADA_CORES")]
    cores: Option<u32>,
    /// OS threads running users (default: one per available core).
    #[arg(long, env = "CICADA_THREADS")]
    threads: Option<usize>,
    /// Shared token sent to the controller and the collector (set when they
    /// require one).
    #[arg(long, env = "CICADA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the shared token (used when --token is not given).
    #[arg(long, env = "CICADA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut config = WorkerConfig::new(args.controller);
    if let Some(worker_id) = args.worker_id {
        config.worker_id = worker_id;
    }
    if let Some(cores) = args.cores {
        config.cores = cores;
    }
    if let Some(threads) = args.threads {
        config.engine.threads = threads;
    }
    config.token = Token::resolve(args.token.as_deref(), args.token_file.as_deref())
        .context("bad --token / --token-file")?;
    config.validate().context("bad flags")?;
    cicada_worker::run(config, shutdown_signal()).await
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
