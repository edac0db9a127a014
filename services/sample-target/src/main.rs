//! `cicada-sample-target`: parses flags, sets up tracing and a tokio runtime,
//! binds the listener and runs [`cicada_sample_target::run`] until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use cicada_sample_target::{ErrorRate, Latency, RouteSetting, TargetConfig, TlsSettings};
use clap::Parser;

/// The reference case's IoT collection service, with injected latency and
/// errors and exact per-path counts at `GET /stats`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CICADA_TARGET_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Delay before each answer: `20ms`, `uniform:10ms..30ms`,
    /// `normal:20ms,5ms`, `exp:20ms` or `0`.
    #[arg(long, env = "CICADA_TARGET_LATENCY", default_value = "0")]
    latency: Latency,
    /// Fraction of answers replaced by 500 (0 to 1).
    #[arg(long, env = "CICADA_TARGET_ERROR_RATE", default_value = "0")]
    error_rate: ErrorRate,
    /// Per-route latency, `ROUTE=LATENCY` (e.g. `POST /login=50ms`); repeatable.
    #[arg(
        long = "route-latency",
        env = "CICADA_TARGET_ROUTE_LATENCY",
        value_delimiter = ';'
    )]
    route_latency: Vec<RouteSetting<Latency>>,
    /// Per-route error rate, `ROUTE=RATE` (e.g. `GET /Test/V2=0.5`); repeatable.
    #[arg(
        long = "route-error-rate",
        env = "CICADA_TARGET_ROUTE_ERROR_RATE",
        value_delimiter = ';'
    )]
    route_error_rate: Vec<RouteSetting<ErrorRate>>,
    /// Seed of the latency and error decisions.
    #[arg(long, env = "CICADA_TARGET_SEED", default_value_t = 0)]
    seed: u64,
    /// Tokio worker threads (default: one per core); 1 to pin to one core.
    #[arg(long, env = "CICADA_TARGET_THREADS")]
    threads: Option<usize>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "CICADA_TARGET_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "CICADA_TARGET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "CICADA_TARGET_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// How long to wait for in-flight requests at shutdown.
    #[arg(long, env = "CICADA_TARGET_SHUTDOWN_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten)]
    log: cicada_telemetry::LogArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cicada_telemetry::logging::init(args.log.log_format, "info");
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: args.tls_client_ca.as_deref().map(read).transpose()?,
        }),
        _ => None,
    };
    let config = TargetConfig {
        latency: args.latency,
        error_rate: args.error_rate.0,
        seed: args.seed,
        shutdown_grace: args.shutdown_grace,
        tls,
        ..TargetConfig::default()
    }
    .with_route_settings(args.route_latency, args.route_error_rate);
    config.validate().context("invalid configuration")?;

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to listen on {}", args.listen))?;
        cicada_sample_target::run(config, listener, cicada_telemetry::shutdown_signal()).await
    })
}
