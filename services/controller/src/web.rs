//! The web UI and its JSON API (docs/WEB.md), on its own port next to gRPC.
//!
//! Layout: this file serves HTTP/1 (hyper), checks authentication and
//! routes; the handlers live in `web/`: `api` (status, scenarios, start,
//! stop, scale, workers), `live` (the `LiveRun` view and its per-endpoint
//! current rates), `events` (server-sent events), `csv` (downloads),
//! [`report`] (report.json and the self-contained HTML report, shared with
//! `cicada run --html`), `history` (stored runs through the collector's
//! `History` service), `assets` (the embedded HTML/CSS/JS) and `reply`
//! (responses and the error mapping).

mod api;
mod assets;
mod auth;
mod csv;
mod events;
mod guard;
mod history;
pub mod live;
mod reply;
pub mod report;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use api::Worker;
pub use auth::BasicAuth;
use reply::{Reply, WebError};

use crate::Shared;

/// Settings of the web UI.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// HTTP Basic credentials required on every path but `/health`.
    pub auth: Option<BasicAuth>,
    /// Directory whose `*.yaml` / `*.yml` files the start form offers.
    pub scenarios_dir: Option<PathBuf>,
}

impl WebConfig {
    /// Checks the settings (call before binding a port): the scenarios
    /// directory must be a readable directory.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(dir) = &self.scenarios_dir {
            let kind = std::fs::metadata(dir).with_context(|| {
                format!("cannot read the scenarios directory {}", dir.display())
            })?;
            anyhow::ensure!(
                kind.is_dir(),
                "the scenarios path {} is not a directory",
                dir.display()
            );
        }
        Ok(())
    }
}

/// Where the web UI listens: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebListen {
    Off,
    At(std::net::SocketAddr),
}

impl std::str::FromStr for WebListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "off" | "none" | "" => Ok(WebListen::Off),
            addr => addr.parse().map(WebListen::At).map_err(|_| {
                format!("expected HOST:PORT (e.g. 127.0.0.1:8089) or `off`, got {addr:?}")
            }),
        }
    }
}

/// Refuses a non-loopback web listener that nobody has to log in to
/// (neither `--web-auth` nor the shared token) unless the operator said so.
pub fn check_listen(
    addr: std::net::SocketAddr,
    web: &WebConfig,
    token: Option<&cicada_proto::auth::Token>,
    insecure_no_auth: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        web.auth.is_some() || token.is_some() || insecure_no_auth || addr.ip().is_loopback(),
        "refusing to serve the web UI on {addr} without authentication: set --web-auth USER:PASS or the shared token (CICADA_TOKEN), bind a loopback address, or pass --insecure-no-auth on a trusted network"
    );
    Ok(())
}

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// State of the web handlers.
pub(crate) struct Web {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: WebConfig,
    pub(crate) rates: live::Rates,
    /// One snapshot producer per watched run, shared by its viewers.
    pub(crate) feeds: events::Feeds,
    /// No login is configured and the listener is loopback: only requests
    /// addressed to loopback names are answered (`guard`).
    pub(crate) open_loopback: bool,
    /// The controller's own metrics (`GET /metrics`).
    pub(crate) metrics: cicada_telemetry::metrics::Registry,
}

/// Serves the web UI on `listener` until the controller shuts down; open
/// event streams end then too.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the web listener address")?;
    tracing::info!(%address, auth = shared.config.web.auth.is_some(), "web ui listening");
    let open_loopback = shared.config.web.auth.is_none()
        && shared.config.token.is_none()
        && address.ip().is_loopback();
    let web = Arc::new(Web {
        config: shared.config.web.clone(),
        metrics: crate::metrics::registry(shared.clone()),
        shared,
        rates: live::Rates::default(),
        feeds: events::Feeds::default(),
        open_loopback,
    });
    // HTTPS with the gRPC port's certificate but no client certificate:
    // browsers log in with --web-auth or the token.
    let tls = web
        .shared
        .config
        .tls
        .clone()
        .map(|files| {
            let files = cicada_tls::ServerTlsFiles {
                client_ca: None,
                ..files
            };
            crate::watched(files, cicada_tls::Alpn::Http1)
        })
        .transpose()?;
    let mut incoming = cicada_tls::incoming(listener, tls);
    let mut shutdown = web.shared.shutdown.clone();
    loop {
        let stream = tokio::select! {
            () = crate::shut_down(&mut shutdown) => break,
            accepted = incoming.next() => match accepted {
                Some(Ok(stream)) => stream,
                // The accept loop logs its own failures.
                Some(Err(_)) => continue,
                None => break,
            },
        };
        tokio::spawn(connection(web.clone(), stream));
    }
    Ok(())
}

/// Serves one connection; on shutdown it finishes the request in progress
/// and closes.
async fn connection(web: Arc<Web>, stream: cicada_tls::Conn) {
    let mut shutdown = web.shared.shutdown.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let web = web.clone();
        async move { Ok::<_, Infallible>(handle(&web, request).await) }
    });
    // Without a timer hyper ignores its header read timeout: a client that
    // never finishes its headers would hold the connection forever.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = crate::shut_down(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "web connection ended with an error");
    }
}

async fn handle(web: &Arc<Web>, request: Request<Incoming>) -> Reply {
    let path = request.uri().path().to_owned();
    if path == "/health" {
        return reply::text("ok");
    }
    // Open like /health: a scraper should not hold the token that starts
    // runs, and the metrics are counts with no run data.
    if path == cicada_telemetry::metrics::PATH && request.method() == Method::GET {
        return reply::typed(
            cicada_telemetry::metrics::CONTENT_TYPE,
            cicada_telemetry::metrics::encode(&web.metrics),
        );
    }
    let presented = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    if !auth::allowed(
        web.config.auth.as_ref(),
        web.shared.config.token.as_ref(),
        presented,
    ) {
        return reply::unauthorized();
    }
    if let Err(refused) = guard::check(request.method(), request.headers(), web.open_loopback) {
        return reply::refused(refused);
    }
    let method = request.method().clone();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(decode_segment)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match route(web, &method, &segments, &query, request).await {
        Ok(reply) => reply,
        Err(error) => reply::error(&error),
    }
}

fn decode_segment(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={segment}").as_bytes())
        .map(|(_, value)| value.into_owned())
        .next()
        .unwrap_or_default()
}

async fn route(
    web: &Arc<Web>,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    request: Request<Incoming>,
) -> Result<Reply, WebError> {
    match (method, segments) {
        (&Method::GET, []) => Ok(assets::index()),
        (&Method::GET, ["assets", name]) => assets::asset(name),
        (&Method::GET, ["api", "status"]) => api::status(web),
        (&Method::GET, ["api", "scenarios"]) => api::scenarios(web).await,
        (&Method::POST, ["api", "scenarios", "validate"]) => {
            api::validate(reply::json_body(request).await?)
        }
        (&Method::POST, ["api", "runs"]) => api::start(web, reply::json_body(request).await?).await,
        (&Method::GET, ["api", "runs", id, "live"]) => {
            Ok(reply::json(&live::snapshot(web, id).await?))
        }
        (&Method::GET, ["api", "runs", id, "events"]) => events::stream(web, id).await,
        (&Method::POST, ["api", "runs", id, "stop"]) => api::stop(web, id),
        (&Method::POST, ["api", "runs", id, "scale"]) => {
            api::scale(web, id, reply::json_body(request).await?)
        }
        (&Method::GET, ["api", "workers"]) => Ok(reply::json(&api::workers(web))),
        (&Method::GET, ["api", "runs", id, "stats.csv"]) => csv::stats(web, id).await,
        (&Method::GET, ["api", "runs", id, "failures.csv"]) => csv::failures(web, id).await,
        (&Method::GET, ["api", "runs", id, "history.csv"]) => csv::history(web, id).await,
        (&Method::GET, ["api", "runs", id, "report.json"]) => report::json(web, id).await,
        (&Method::GET, ["api", "runs", id, "report.html"]) => report::html(web, id).await,
        (&Method::GET, ["api", "history", rest @ ..]) => history::route(web, rest, query).await,
        (_, ["api", ..]) => Err(WebError::NotFound(format!(
            "no API endpoint {method} /{}; see docs/WEB.md",
            segments.join("/")
        ))),
        (_, _) => Err(WebError::NotFound(format!(
            "no page /{}",
            segments.join("/")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_web_listener() {
        assert_eq!("off".parse::<WebListen>(), Ok(WebListen::Off));
        assert_eq!(
            "127.0.0.1:8089".parse::<WebListen>(),
            Ok(WebListen::At("127.0.0.1:8089".parse().unwrap()))
        );
        assert!("8089".parse::<WebListen>().is_err());
    }

    #[test]
    fn non_loopback_needs_a_login() {
        let public = "0.0.0.0:8089".parse().unwrap();
        let loopback = "127.0.0.1:8089".parse().unwrap();
        let open = WebConfig::default();
        let basic = WebConfig {
            auth: Some("u:p".parse().unwrap()),
            ..WebConfig::default()
        };
        let token = cicada_proto::auth::Token::new("a-shared-token").unwrap();
        assert!(check_listen(loopback, &open, None, false).is_ok());
        assert!(check_listen(public, &open, None, false).is_err());
        assert!(check_listen(public, &open, None, true).is_ok());
        assert!(check_listen(public, &basic, None, false).is_ok());
        assert!(check_listen(public, &open, Some(&token), false).is_ok());
    }

    #[test]
    fn the_scenarios_path_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "x").unwrap();
        let config = |path: &std::path::Path| WebConfig {
            scenarios_dir: Some(path.to_owned()),
            ..WebConfig::default()
        };
        assert!(config(dir.path()).validate().is_ok());
        assert!(config(&file).validate().is_err());
        assert!(config(&dir.path().join("missing")).validate().is_err());
    }
}
