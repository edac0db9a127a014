//! `cicada-collector`: runs the collector service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cicada_collector::{CollectorConfig, OtlpConfig};
use cicada_proto::auth::{self, Token};
use clap::Parser;

/// The cicada collector: merges worker deltas exactly and stores runs.
#[derive(Debug, Parser)]
#[command(name = "cicada-collector", version)]
struct Args {
    /// Address to listen on for gRPC.
    #[arg(long, env = "CICADA_LISTEN", default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    /// Address to listen on for the history API over HTTP/JSON.
    #[arg(long, env = "CICADA_HTTP_LISTEN", default_value = "127.0.0.1:7101")]
    http_listen: SocketAddr,
    /// Run store: postgres://..., sqlite:... or a SQLite file path
    /// [env: CICADA_DATABASE_URL, then DATABASE_URL; default: ./cicada.db].
    #[arg(long, env = "CICADA_DATABASE_URL")]
    database_url: Option<String>,
    /// Shared token every gRPC call must carry (workers, the controller).
    /// Required unless --listen is loopback.
    #[arg(long, env = "CICADA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the shared token (used when --token is not given).
    #[arg(long, env = "CICADA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token (trusted networks only).
    #[arg(long, env = "CICADA_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    insecure_no_auth: bool,
    /// Export live metrics over OTLP/gRPC to this endpoint, e.g.
    /// http://otel-collector:4317 (off when neither this nor
    /// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT is set).
    #[arg(long, env = "CICADA_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// OTLP export interval, e.g. 10s [default: OTEL_METRIC_EXPORT_INTERVAL
    /// in milliseconds, else 10s].
    #[arg(long, env = "CICADA_OTLP_INTERVAL", value_parser = humantime::parse_duration)]
    otlp_interval: Option<Duration>,
    /// Extra gRPC metadata for OTLP exports, key=value,key2=value2 (added to
    /// OTEL_EXPORTER_OTLP_HEADERS, which the exporter reads itself).
    #[arg(long, env = "CICADA_OTLP_HEADERS", value_parser = parse_headers)]
    otlp_headers: Option<Headers>,
    #[command(flatten)]
    log: cicada_telemetry::LogArgs,
    #[command(flatten)]
    tls: cicada_tls::ServerTlsArgs,
}

type Headers = Vec<(String, String)>;

fn parse_headers(text: &str) -> Result<Headers, String> {
    cicada_collector::otlp::parse_headers(text)
}

/// The OTLP export configuration from flags and the OTLP environment
/// variables; `None` (export off) without an endpoint.
fn otlp_config(args: &Args) -> anyhow::Result<Option<OtlpConfig>> {
    OtlpConfig::from_env(
        args.otlp_endpoint.clone(),
        args.otlp_interval,
        args.otlp_headers.clone().unwrap_or_default(),
    )
    .map_err(anyhow::Error::msg)
    .context("invalid otlp export configuration")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cicada_telemetry::logging::init(args.log.log_format, "info");
    let otlp = otlp_config(&args)?;
    let database_url = args
        .database_url
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "./cicada.db".to_owned());
    cicada_store::check_database_url(&database_url)
        .context("invalid --database-url (or CICADA_DATABASE_URL / DATABASE_URL)")?;
    let token = Token::resolve(args.token.as_deref(), args.token_file.as_deref())
        .context("bad --token / --token-file")?;
    auth::check_listen(args.listen, token.as_ref(), args.insecure_no_auth)?;
    auth::check_listen(args.http_listen, token.as_ref(), args.insecure_no_auth)?;
    let tls = args.tls.files()?;
    if let Some(files) = &tls {
        files
            .load(cicada_tls::Alpn::Grpc)
            .context("invalid --tls-cert / --tls-key / --tls-client-ca")?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.http_listen))?;
    cicada_collector::run_with_http(
        CollectorConfig {
            database_url,
            token,
            otlp,
            tls,
        },
        listener,
        http_listener,
        cicada_telemetry::shutdown_signal(),
    )
    .await
}
