//! The history API over HTTP/JSON, on its own port (`--http-listen`): thin
//! handlers over `cicada_history`, the same queries the CLI runs on a local
//! database.
//!
//! - `GET /api/runs?scenario=&label=k=v&status=&after_ms=&before_ms=&limit=`
//! - `GET /api/runs/{id}?from=&to=` (seconds since the run started)
//! - `DELETE /api/runs/{id}`
//! - `PUT /api/runs/{id}/labels/{key}` (body: the value), `DELETE` to remove
//! - `GET /api/runs/{id}/baseline` (the latest passing run before it)
//! - `GET /api/compare?a=&b=&from=&to=&tolerance=5%`
//! - `GET /api/trend?scenario=&metric=p95&endpoint=GET%20/&last=30`
//! - `GET /metrics`: the collector's own metrics (Prometheus text), without
//!   the token (a scraper should not hold the token that writes runs; the
//!   metrics are counts and latencies with no run data)
//!
//! Errors are `{"error": "..."}` with 400 (bad argument), 404 (unknown run
//! or no baseline) or 500.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use cicada_history::{HistoryError, Metric, Tolerance, Window};
use cicada_proto::auth::Token;
use cicada_store::{RunFilter, RunStatus, Store, StoreError};
use cicada_tls::ServerTls;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

type Reply = Response<Full<Bytes>>;

/// Serves the history API on `listener` until `shutdown` completes.
pub async fn serve_http(
    store: Arc<dyn Store>,
    token: Option<Token>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_http_with(store, token, Metrics::default(), None, listener, shutdown).await
}

/// [`serve_http`], with `metrics` (the gRPC side's, see
/// [`crate::serve_with_metrics`]) at `GET /metrics`, over TLS when `tls`
/// is given.
pub async fn serve_http_with(
    store: Arc<dyn Store>,
    token: Option<Token>,
    metrics: Metrics,
    tls: Option<ServerTls>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the listener address")?;
    tracing::info!(%address, tls = tls.is_some(), "history api listening");
    let mut incoming = cicada_tls::incoming(listener, tls);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = incoming.next() => match accepted {
                Some(Ok(stream)) => stream,
                // The accept loop logs its own failures.
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let store = store.clone();
        let token = token.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let store = store.clone();
                let scrape = request.method() == Method::GET
                    && request.uri().path() == cicada_telemetry::metrics::PATH;
                let metrics =
                    scrape.then(|| cicada_telemetry::metrics::response(metrics.registry()));
                // Every other route needs the shared token when one is set.
                let denied = token.as_ref().and_then(|token| {
                    let presented = request
                        .headers()
                        .get(hyper::header::AUTHORIZATION)
                        .map(|value| value.as_bytes());
                    token.check(presented).err()
                });
                async move {
                    Ok::<_, Infallible>(match (metrics, denied) {
                        (Some(metrics), _) => metrics,
                        (None, Some(message)) => error_reply(StatusCode::UNAUTHORIZED, message),
                        (None, None) => handle(&*store, request).await,
                    })
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "http connection ended with an error");
            }
        });
    }
    Ok(())
}

async fn handle(store: &dyn Store, request: Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                &format!("failed to read the body: {error}"),
            );
        }
    };
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = route(store, &method, &segments, &query, &body).await;
    match result {
        Ok(reply) => reply,
        Err(error) => {
            let status = match &error {
                HistoryError::NotFound(_)
                | HistoryError::NoBaseline { .. }
                | HistoryError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
                HistoryError::Invalid(_) | HistoryError::Store(StoreError::Invalid(_)) => {
                    StatusCode::BAD_REQUEST
                }
                HistoryError::Store(_) | HistoryError::Remote { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            error_reply(status, &error.to_string())
        }
    }
}

async fn route(
    store: &dyn Store,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Reply, HistoryError> {
    match (method, segments) {
        (&Method::GET, ["api", "runs"]) => {
            json(&cicada_history::search(store, &run_filter(query)?).await?)
        }
        (&Method::GET, ["api", "runs", id]) => {
            json(&cicada_history::show(store, id, window(query)?).await?)
        }
        (&Method::DELETE, ["api", "runs", id]) => {
            cicada_history::delete(store, id).await?;
            json(&serde_json::json!({ "deleted": id }))
        }
        (&Method::PUT, ["api", "runs", id, "labels", key]) => {
            let value = String::from_utf8_lossy(body);
            json(&cicada_history::label(store, id, key, Some(&value)).await?)
        }
        (&Method::DELETE, ["api", "runs", id, "labels", key]) => {
            json(&cicada_history::label(store, id, key, None).await?)
        }
        (&Method::GET, ["api", "runs", id, "baseline"]) => {
            let baseline = cicada_history::latest_passing_baseline(store, id).await?;
            json(&serde_json::json!({ "run_id": baseline }))
        }
        (&Method::GET, ["api", "compare"]) => {
            let tolerance = match query.get("tolerance") {
                Some(text) => text.parse()?,
                None => Tolerance::default(),
            };
            let comparison = cicada_history::compare(
                store,
                required(query, "a")?,
                required(query, "b")?,
                window(query)?,
                tolerance,
            )
            .await?;
            json(&comparison)
        }
        (&Method::GET, ["api", "trend"]) => {
            let metric: Metric = query.get("metric").map_or(Ok(Metric::P95), |m| m.parse())?;
            let last = number(query, "last")?.unwrap_or(30);
            let last = u32::try_from(last)
                .map_err(|_| HistoryError::Invalid("last is too large".to_owned()))?;
            let trend = cicada_history::trend(
                store,
                required(query, "scenario")?,
                metric,
                query.get("endpoint").map(String::as_str),
                last,
            )
            .await?;
            json(&trend)
        }
        _ => Ok(error_reply(
            StatusCode::NOT_FOUND,
            &format!(
                "no route {method} /{}; see the collector's HTTP API in README.md",
                segments.join("/")
            ),
        )),
    }
}

fn required<'a>(query: &'a HashMap<String, String>, name: &str) -> Result<&'a str, HistoryError> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| HistoryError::Invalid(format!("missing query parameter {name:?}")))
}

fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, HistoryError> {
    query
        .get(name)
        .map(|text| {
            text.parse().map_err(|_| {
                HistoryError::Invalid(format!("{name}={text:?} is not a whole number >= 0"))
            })
        })
        .transpose()
}

fn signed(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, HistoryError> {
    query
        .get(name)
        .map(|text| {
            text.parse().map_err(|_| {
                HistoryError::Invalid(format!("{name}={text:?} is not a whole number"))
            })
        })
        .transpose()
}

fn window(query: &HashMap<String, String>) -> Result<Window, HistoryError> {
    Window::new(number(query, "from")?, number(query, "to")?)
}

fn run_filter(query: &HashMap<String, String>) -> Result<RunFilter, HistoryError> {
    let label = match query.get("label") {
        Some(text) => match text.split_once('=') {
            Some((key, value)) => Some((key.to_owned(), value.to_owned())),
            None => {
                return Err(HistoryError::Invalid(format!(
                    "label={text:?} is not key=value"
                )));
            }
        },
        None => None,
    };
    let status = query
        .get("status")
        .map(|text| text.parse::<RunStatus>())
        .transpose()
        .map_err(|error| {
            HistoryError::Invalid(format!("{error}; allowed: running, finished, failed"))
        })?;
    let limit = number(query, "limit")?.unwrap_or(50).min(1000) as u32;
    Ok(RunFilter {
        limit,
        scenario_name: query.get("scenario").cloned(),
        status,
        label,
        started_after_ms: signed(query, "after_ms")?,
        started_before_ms: signed(query, "before_ms")?,
    })
}

fn json(value: &impl Serialize) -> Result<Reply, HistoryError> {
    let body = serde_json::to_vec(value)
        .map_err(|error| HistoryError::Invalid(format!("failed to encode the answer: {error}")))?;
    Ok(reply(StatusCode::OK, body))
}

fn error_reply(status: StatusCode, message: &str) -> Reply {
    reply(
        status,
        serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default(),
    )
}

fn reply(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
