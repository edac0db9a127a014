//! `cicada-controller`: parses flags, sets up logging and runs the controller
//! until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cicada_controller::ControllerConfig;
use cicada_controller::web::{self, BasicAuth, WebConfig, WebListen};
use cicada_proto::auth::{self, Token};
use cicada_scenario::allow::{AllowList, TargetPattern};
use clap::Parser;

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
    /// Shared token every gRPC call must carry (workers, the CLI) and that is
    /// sent to the collector. Required unless --listen is loopback.
    #[arg(long, env = "CICADA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the shared token (used when --token is not given).
    #[arg(long, env = "CICADA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token (trusted networks only).
    #[arg(long, env = "CICADA_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    insecure_no_auth: bool,
    /// Address of the web UI and its JSON API, or `off`.
    #[arg(long, env = "CICADA_WEB_LISTEN", default_value = "127.0.0.1:8089")]
    web_listen: WebListen,
    /// HTTP Basic credentials USER:PASS for the web UI (the shared token is
    /// also accepted as `Authorization: Bearer`).
    #[arg(long, env = "CICADA_WEB_AUTH", hide_env_values = true)]
    web_auth: Option<BasicAuth>,
    /// Directory of scenario files (*.yaml, *.yml) the web UI offers.
    #[arg(long, env = "CICADA_SCENARIOS")]
    scenarios: Option<PathBuf>,
    #[command(flatten)]
    log: cicada_telemetry::LogArgs,
    /// TLS on the gRPC port and the web UI.
    #[command(flatten)]
    tls: cicada_tls::ServerTlsArgs,
    /// TLS towards an https:// collector.
    #[command(flatten)]
    collector_tls: cicada_tls::ClientTlsArgs,
    /// A host runs may target (repeatable; the env var takes a comma-separated
    /// list): shop.example.com, host:port, *.example.com, an IP, IP:port or a
    /// CIDR block. None given: any host (logged as a warning).
    #[arg(long = "allow-target", env = "CICADA_ALLOW_TARGET", value_delimiter = ',', value_parser = TargetPattern::parse)]
    allow_target: Vec<TargetPattern>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cicada_telemetry::logging::init(args.log.log_format, "info");
    let mut config = ControllerConfig::new(args.collector);
    // Validate before binding: bad flags should not hold a port.
    config.collector_tls = args
        .collector_tls
        .client()
        .context("bad --tls-ca / --tls-client-cert / --tls-client-key")?;
    config.validate().context("bad --collector")?;
    config.tls = args.tls.files()?;
    if let Some(files) = &config.tls {
        files
            .load(cicada_tls::Alpn::Grpc)
            .context("invalid --tls-cert / --tls-key / --tls-client-ca")?;
    }
    config.token = Token::resolve(args.token.as_deref(), args.token_file.as_deref())
        .context("bad --token / --token-file")?;
    auth::check_listen(args.listen, config.token.as_ref(), args.insecure_no_auth)?;
    config.web = WebConfig {
        auth: args.web_auth,
        scenarios_dir: args.scenarios,
    };
    config.web.validate().context("bad --scenarios")?;
    config.allow_targets = AllowList::new(args.allow_target);
    if config.allow_targets.is_unrestricted() {
        tracing::warn!(
            "no --allow-target given: runs may target any host; set CICADA_ALLOW_TARGET to the hosts under test"
        );
    }
    if let WebListen::At(addr) = args.web_listen {
        web::check_listen(
            addr,
            &config.web,
            config.token.as_ref(),
            args.insecure_no_auth,
        )?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let web_listener = match args.web_listen {
        WebListen::At(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to bind the web UI to {addr}"))?,
        ),
        WebListen::Off => None,
    };
    cicada_controller::run_with(
        config,
        listener,
        web_listener,
        cicada_telemetry::shutdown_signal(),
    )
    .await
}
