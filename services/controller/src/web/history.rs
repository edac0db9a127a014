//! `/api/history/*`: stored runs, read through the collector's `History`
//! gRPC service (the same queries as `cicada runs|compare|trend`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cicada_history::{HistoryError, Metric, RunDetail, Tolerance, Window};
use cicada_store::{RunFilter, RunStatus};

use super::Web;
use super::reply::{self, Reply, WebError};

/// How long a history query may take (a long run's series is large).
const TIMEOUT: Duration = Duration::from_secs(30);
/// Most runs one page lists.
const MAX_LIMIT: u64 = 1000;
/// Runs of a trend when `last` is not given.
const DEFAULT_LAST: u32 = 30;

impl From<HistoryError> for WebError {
    fn from(error: HistoryError) -> Self {
        let message = error.to_string();
        match error {
            HistoryError::NotFound(_) | HistoryError::NoBaseline { .. } => {
                WebError::NotFound(message)
            }
            HistoryError::Invalid(_) => WebError::BadRequest(message),
            HistoryError::Remote {
                code: tonic::Code::NotFound,
                ..
            } => WebError::NotFound(message),
            HistoryError::Remote {
                code: tonic::Code::InvalidArgument,
                ..
            } => WebError::BadRequest(message),
            HistoryError::Remote { .. } => WebError::Collector(message),
            HistoryError::Store(_) => WebError::Internal(message),
        }
    }
}

/// Runs a history call, bounded in time.
async fn call<T>(
    what: &str,
    future: impl Future<Output = Result<T, HistoryError>>,
) -> Result<T, WebError> {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(WebError::Collector(format!(
            "collector History.{what} did not answer within {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

/// One stored run over `window`, with its per-second series.
pub(crate) async fn show(web: &Web, run_id: &str, window: Window) -> Result<RunDetail, WebError> {
    call("ShowRun", web.shared.history.show(run_id, window)).await
}

pub(crate) async fn route(
    web: &Arc<Web>,
    rest: &[&str],
    query: &HashMap<String, String>,
) -> Result<Reply, WebError> {
    let history = &web.shared.history;
    match rest {
        ["runs"] => {
            let filter = run_filter(query)?;
            Ok(reply::json(
                &call("SearchRuns", history.search(&filter)).await?,
            ))
        }
        ["runs", id] => Ok(reply::json(&show(web, id, window(query)?).await?)),
        ["runs", id, "baseline"] => Ok(reply::json(&call("Baseline", history.baseline(id)).await?)),
        ["compare"] => {
            let tolerance = match query.get("tolerance").filter(|t| !t.is_empty()) {
                Some(text) => text.parse::<Tolerance>()?,
                None => Tolerance::default(),
            };
            let (a, b) = (required(query, "a")?, required(query, "b")?);
            let comparison = history.compare(a, b, window(query)?, tolerance);
            Ok(reply::json(&call("CompareRuns", comparison).await?))
        }
        ["trend"] => {
            let metric = match query.get("metric").filter(|m| !m.is_empty()) {
                Some(text) => text.parse::<Metric>()?,
                None => Metric::P95,
            };
            let last = match number(query, "last")? {
                Some(last) => u32::try_from(last)
                    .ok()
                    .filter(|&last| last >= 1 && u64::from(last) <= MAX_LIMIT)
                    .ok_or_else(|| {
                        WebError::BadRequest(format!("last must be from 1 to {MAX_LIMIT}"))
                    })?,
                None => DEFAULT_LAST,
            };
            let endpoint = query
                .get("endpoint")
                .map(String::as_str)
                .filter(|e| !e.is_empty() && *e != cicada_history::TOTAL_NAME);
            let scenario = required(query, "scenario")?;
            let trend = history.trend(scenario, metric, endpoint, last);
            Ok(reply::json(&call("Trend", trend).await?))
        }
        _ => Err(WebError::NotFound(format!(
            "no history endpoint /api/history/{}; there are runs, runs/ID, runs/ID/baseline, compare and trend",
            rest.join("/")
        ))),
    }
}

fn required<'a>(query: &'a HashMap<String, String>, name: &str) -> Result<&'a str, WebError> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| WebError::BadRequest(format!("missing query parameter {name:?}")))
}

fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, WebError> {
    query
        .get(name)
        .filter(|text| !text.is_empty())
        .map(|text| {
            text.parse().map_err(|_| {
                WebError::BadRequest(format!("{name}={text:?} is not a whole number >= 0"))
            })
        })
        .transpose()
}

fn signed(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, WebError> {
    query
        .get(name)
        .filter(|text| !text.is_empty())
        .map(|text| {
            text.parse()
                .map_err(|_| WebError::BadRequest(format!("{name}={text:?} is not a whole number")))
        })
        .transpose()
}

/// `from` and `to`, seconds since the run started.
fn window(query: &HashMap<String, String>) -> Result<Window, WebError> {
    Ok(Window::new(number(query, "from")?, number(query, "to")?)?)
}

fn run_filter(query: &HashMap<String, String>) -> Result<RunFilter, WebError> {
    let text = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    let label = match text("label") {
        Some(label) => match label.split_once('=') {
            Some((key, value)) if !key.is_empty() => Some((key.to_owned(), value.to_owned())),
            _ => {
                return Err(WebError::BadRequest(format!(
                    "label={label:?} is not key=value"
                )));
            }
        },
        None => None,
    };
    let status = text("status")
        .map(|status| status.parse::<RunStatus>())
        .transpose()
        .map_err(|error| {
            WebError::BadRequest(format!("{error}; allowed: running, finished, failed"))
        })?;
    let limit = number(query, "limit")?.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(WebError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )));
    }
    Ok(RunFilter {
        limit: limit as u32,
        scenario_name: text("scenario"),
        status,
        label,
        started_after_ms: signed(query, "after_ms")?,
        started_before_ms: signed(query, "before_ms")?,
    })
}
