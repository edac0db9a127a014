//! Where history commands read and write: the local database (through
//! `cicada_history` on the store, the same code the collector serves), a
//! deployed collector's `cicada.v1.History` gRPC service
//! (`--collector-grpc`, through [`HistoryClient`]) or its HTTP/JSON history
//! API (`--collector`).

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use cicada_history::{
    Comparison, HistoryClient, Metric, RunDetail, RunInfo, Tolerance, Trend, Window,
};
use cicada_store::{RunFilter, Store};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use cicada_proto::auth::{AttachToken, Token};
use cicada_tls::{Alpn, ClientTls, GrpcTarget};

use crate::cli::SourceArgs;

pub enum Source {
    Local(Arc<dyn Store>),
    /// The collector's HTTP base URL, and the token it requires.
    Remote(Remote),
    /// The collector's History service over gRPC.
    Grpc(HistoryClient),
}

/// Longest wait for the collector's gRPC port to accept the connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Remote {
    base: url::Url,
    token: Option<Token>,
    tls: ClientTls,
}

impl Source {
    pub async fn open(args: &SourceArgs) -> anyhow::Result<Self> {
        let tls = args
            .tls
            .client()
            .context("bad --tls-ca / --tls-client-cert / --tls-client-key")?;
        if let Some(address) = &args.collector_grpc {
            return Ok(Source::Grpc(
                connect_grpc(address, args.auth.token()?.as_ref(), &tls).await?,
            ));
        }
        match &args.collector {
            Some(base) => {
                let url = url::Url::parse(base).with_context(|| {
                    format!("--collector {base:?} is not a URL such as http://127.0.0.1:7101")
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    anyhow::bail!("--collector {base:?}: only http:// and https:// are supported");
                }
                Ok(Source::Remote(Remote {
                    base: url,
                    token: args.auth.token()?,
                    tls,
                }))
            }
            None => {
                let store = cicada_store::connect(&args.database_url)
                    .await
                    .with_context(|| {
                        format!("failed to open the run database {}", args.database_url)
                    })?;
                Ok(Source::Local(store))
            }
        }
    }

    pub async fn list(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunInfo>> {
        match self {
            Source::Local(store) => Ok(cicada_history::search(&**store, filter).await?),
            Source::Grpc(client) => Ok(client.search(filter).await?),
            Source::Remote(base) => {
                let mut query = vec![("limit", filter.limit.to_string())];
                if let Some(s) = &filter.scenario_name {
                    query.push(("scenario", s.clone()));
                }
                if let Some(s) = filter.status {
                    query.push(("status", s.to_string()));
                }
                if let Some((k, v)) = &filter.label {
                    query.push(("label", format!("{k}={v}")));
                }
                if let Some(ms) = filter.started_after_ms {
                    query.push(("after_ms", ms.to_string()));
                }
                if let Some(ms) = filter.started_before_ms {
                    query.push(("before_ms", ms.to_string()));
                }
                get(base, &["api", "runs"], &query).await
            }
        }
    }

    pub async fn show(&self, run_id: &str, window: Window) -> anyhow::Result<RunDetail> {
        match self {
            Source::Local(store) => Ok(cicada_history::show(&**store, run_id, window).await?),
            Source::Grpc(client) => Ok(client.show(run_id, window).await?),
            Source::Remote(base) => {
                get(base, &["api", "runs", run_id], &window_query(window)).await
            }
        }
    }

    pub async fn set_label(&self, run_id: &str, key: &str, value: &str) -> anyhow::Result<RunInfo> {
        match self {
            Source::Local(store) => {
                Ok(cicada_history::label(&**store, run_id, key, Some(value)).await?)
            }
            Source::Grpc(client) => Ok(client.label(run_id, key, Some(value)).await?),
            Source::Remote(base) => {
                request(
                    base,
                    Method::PUT,
                    &["api", "runs", run_id, "labels", key],
                    &[],
                    value.to_owned(),
                )
                .await
            }
        }
    }

    pub async fn remove_label(&self, run_id: &str, key: &str) -> anyhow::Result<RunInfo> {
        match self {
            Source::Local(store) => Ok(cicada_history::label(&**store, run_id, key, None).await?),
            Source::Grpc(client) => Ok(client.label(run_id, key, None).await?),
            Source::Remote(base) => {
                request(
                    base,
                    Method::DELETE,
                    &["api", "runs", run_id, "labels", key],
                    &[],
                    String::new(),
                )
                .await
            }
        }
    }

    pub async fn delete(&self, run_id: &str) -> anyhow::Result<()> {
        match self {
            Source::Local(store) => Ok(cicada_history::delete(&**store, run_id).await?),
            Source::Grpc(client) => Ok(client.delete(run_id).await?),
            Source::Remote(base) => {
                let _: serde_json::Value = request(
                    base,
                    Method::DELETE,
                    &["api", "runs", run_id],
                    &[],
                    String::new(),
                )
                .await?;
                Ok(())
            }
        }
    }

    pub async fn baseline(&self, run_id: &str) -> anyhow::Result<String> {
        match self {
            Source::Local(store) => {
                Ok(cicada_history::latest_passing_baseline(&**store, run_id).await?)
            }
            Source::Grpc(client) => Ok(client.baseline(run_id).await?.id),
            Source::Remote(base) => {
                let answer: serde_json::Value =
                    get(base, &["api", "runs", run_id, "baseline"], &[]).await?;
                answer["run_id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("the collector's baseline answer has no run_id")
            }
        }
    }

    pub async fn compare(
        &self,
        a: &str,
        b: &str,
        window: Window,
        tolerance: Tolerance,
    ) -> anyhow::Result<Comparison> {
        match self {
            Source::Local(store) => {
                Ok(cicada_history::compare(&**store, a, b, window, tolerance).await?)
            }
            Source::Grpc(client) => Ok(client.compare(a, b, window, tolerance).await?),
            Source::Remote(base) => {
                let mut query = window_query(window);
                query.extend([
                    ("a", a.to_owned()),
                    ("b", b.to_owned()),
                    ("tolerance", tolerance.0.to_string()),
                ]);
                get(base, &["api", "compare"], &query).await
            }
        }
    }

    pub async fn trend(
        &self,
        scenario: &str,
        metric: Metric,
        endpoint: Option<&str>,
        last: u32,
    ) -> anyhow::Result<Trend> {
        match self {
            Source::Local(store) => {
                Ok(cicada_history::trend(&**store, scenario, metric, endpoint, last).await?)
            }
            Source::Grpc(client) => Ok(client.trend(scenario, metric, endpoint, last).await?),
            Source::Remote(base) => {
                let mut query = vec![
                    ("scenario", scenario.to_owned()),
                    ("metric", metric.name().to_owned()),
                    ("last", last.to_string()),
                ];
                if let Some(e) = endpoint {
                    query.push(("endpoint", e.to_owned()));
                }
                get(base, &["api", "trend"], &query).await
            }
        }
    }
}

/// A History client on the collector's gRPC port: `HOST:PORT`,
/// `http://HOST:PORT` or `https://HOST:PORT`.
async fn connect_grpc(
    address: &str,
    token: Option<&Token>,
    tls: &ClientTls,
) -> anyhow::Result<HistoryClient> {
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let target = GrpcTarget::new(&url, tls).with_context(|| {
        format!(
            "--collector-grpc {address:?} is not an address such as http://127.0.0.1:7100 or https://collector:7100"
        )
    })?;
    let channel = target
        .with(|endpoint| endpoint.connect_timeout(CONNECT_TIMEOUT))
        .connect()
        .await
        .with_context(|| format!("failed to connect to the collector's gRPC port at {address}"))?;
    Ok(HistoryClient::new(AttachToken::new(token).wrap(channel)))
}

fn window_query(window: Window) -> Vec<(&'static str, String)> {
    let mut query = vec![("from", window.from_s.to_string())];
    if let Some(to) = window.to_s {
        query.push(("to", to.to_string()));
    }
    query
}

async fn get<T: serde::de::DeserializeOwned>(
    base: &Remote,
    path: &[&str],
    query: &[(&str, String)],
) -> anyhow::Result<T> {
    request(base, Method::GET, path, query, String::new()).await
}

/// One HTTP/1.1 request to the collector; a non-2xx answer becomes an error
/// carrying the collector's message.
async fn request<T: serde::de::DeserializeOwned>(
    remote: &Remote,
    method: Method,
    path: &[&str],
    query: &[(&str, String)],
    body: String,
) -> anyhow::Result<T> {
    let base = &remote.base;
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--collector {base} cannot have a path"))?
        .pop_if_empty()
        .extend(path);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let host = url
        .host_str()
        .context("--collector has no host")?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let https = url.scheme() == "https";
    let stream = remote
        .tls
        .connect(&host, port, https, Alpn::Http1)
        .await
        .with_context(|| format!("failed to connect to the collector at {host}:{port}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("failed to talk HTTP to the collector")?;
    tokio::spawn(connection);
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, format!("{host}:{port}"));
    if let Some(token) = &remote.token {
        builder = builder.header(hyper::header::AUTHORIZATION, token.authorization());
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .context("failed to build the request")?;
    let response = sender
        .send_request(request)
        .await
        .context("the collector did not answer")?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .context("failed to read the collector's answer")?
        .to_bytes();
    if status != StatusCode::OK {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        anyhow::bail!("collector answered {status}: {message}");
    }
    serde_json::from_slice(&bytes).context("failed to decode the collector's answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grpc_addresses_are_checked_before_connecting() {
        let tls = ClientTls::default();
        let error = connect_grpc("ftp://collector:7100", None, &tls)
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("expected http://HOST:PORT or https://HOST:PORT"),
            "{error:#}"
        );
        let error = connect_grpc("http://bad host:7100", None, &tls)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("is not an address such as"),
            "{error:#}"
        );
    }
}
