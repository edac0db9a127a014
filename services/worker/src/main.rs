//! `cicada-worker`: parses flags, sets up logging and runs the worker until
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cicada_proto::auth::Token;
use cicada_worker::WorkerConfig;
use clap::Parser;

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
    /// How often measurements are cut and sent to the collector (divides
    /// 1s): at most about this much traffic is lost if the worker is killed.
    #[arg(long, env = "CICADA_DELTA_INTERVAL", default_value = "200ms", value_parser = humantime::parse_duration)]
    delta_interval: std::time::Duration,
    /// Most bytes of measurements kept while the collector cannot be reached;
    /// beyond it the oldest are dropped and reported as lost.
    #[arg(long, env = "CICADA_BUFFER_MAX_BYTES", default_value_t = 64 << 20)]
    buffer_max_bytes: usize,
    /// Oldest measurements kept while the collector cannot be reached.
    #[arg(long, env = "CICADA_BUFFER_MAX_AGE", default_value = "15m", value_parser = humantime::parse_duration)]
    buffer_max_age: std::time::Duration,
    /// Serve Prometheus metrics (GET /metrics) and GET /health on this
    /// address, e.g. 0.0.0.0:9090 (off by default; no authentication, so
    /// bind it where only the scraper reaches it).
    #[arg(long, env = "CICADA_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    log: cicada_telemetry::LogArgs,
    /// TLS towards https:// controller and collector URLs.
    #[command(flatten)]
    tls: cicada_tls::ClientTlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cicada_telemetry::logging::init(args.log.log_format, "info");
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
    config.delta_interval = args.delta_interval;
    config.buffer = cicada_worker::BufferLimits {
        max_bytes: args.buffer_max_bytes,
        max_age: args.buffer_max_age,
    };
    config.token = Token::resolve(args.token.as_deref(), args.token_file.as_deref())
        .context("bad --token / --token-file")?;
    config.tls = args
        .tls
        .client()
        .context("bad --tls-ca / --tls-client-cert / --tls-client-key")?;
    config.validate().context("bad flags")?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to bind the metrics listener to {addr}"))?,
        ),
        None => None,
    };
    cicada_worker::run_with_metrics(
        config,
        metrics_listener,
        cicada_telemetry::shutdown_signal(),
    )
    .await
}
