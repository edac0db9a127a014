//! Responses, and the one mapping of errors to HTTP statuses.

use std::convert::Infallible;

use bytes::Bytes;
use cicada_scenario::ScenarioError;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ControllerError;

pub(crate) type Body = BoxBody<Bytes, Infallible>;
pub(crate) type Reply = Response<Body>;

/// Largest request body accepted (a scenario YAML fits many times over).
const MAX_BODY: usize = 4 << 20;

/// Everything a web handler can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Scenario(ScenarioError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Collector(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) | WebError::Scenario(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Collector(_) => StatusCode::BAD_GATEWAY,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A failed collector call: NOT_FOUND is the caller's unknown run, bad
    /// arguments are the caller's too, the rest means the collector is
    /// unreachable or broken.
    pub(crate) fn from_collector(call: &str, status: &tonic::Status) -> Self {
        match status.code() {
            tonic::Code::NotFound => WebError::NotFound(status.message().to_owned()),
            tonic::Code::InvalidArgument => WebError::BadRequest(status.message().to_owned()),
            _ => WebError::Collector(format!("collector {call} failed: {}", status.message())),
        }
    }
}

impl From<ControllerError> for WebError {
    fn from(error: ControllerError) -> Self {
        let message = error.to_string();
        match error {
            ControllerError::Scenario(scenario) => WebError::Scenario(scenario),
            ControllerError::InvalidArgument(_)
            | ControllerError::NoHost
            | ControllerError::Protocol(_) => WebError::BadRequest(message),
            ControllerError::NoWorkers
            | ControllerError::TooFewWorkers { .. }
            | ControllerError::RunActive(_) => WebError::Conflict(message),
            ControllerError::RunNotFound(_) => WebError::NotFound(message),
            ControllerError::TargetNotAllowed(_) => WebError::Forbidden(message),
            ControllerError::Collector { .. } => WebError::Collector(message),
            ControllerError::ShuttingDown => WebError::Unavailable(message),
        }
    }
}

fn body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// `{"error": ...}` (with `path`, `line`, `column` for scenario errors).
pub(crate) fn error(error: &WebError) -> Reply {
    let value = match error {
        WebError::Scenario(scenario) => serde_json::json!({
            "error": scenario.message,
            "path": scenario.source_name,
            "line": scenario.line,
            "column": scenario.column,
        }),
        other => serde_json::json!({ "error": other.to_string() }),
    };
    with_status(error.status(), json(&value))
}

pub(crate) fn with_status(status: StatusCode, mut reply: Reply) -> Reply {
    *reply.status_mut() = status;
    reply
}

/// A JSON answer.
pub(crate) fn json(value: &impl Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(bytes) => typed("application/json", bytes),
        Err(error) => with_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            typed(
                "application/json",
                serde_json::json!({ "error": format!("failed to encode the answer: {error}") })
                    .to_string(),
            ),
        ),
    }
}

pub(crate) fn text(text: &'static str) -> Reply {
    typed("text/plain; charset=utf-8", text)
}

/// A body with its content type, never cached (the UI changes with the binary).
pub(crate) fn typed(content_type: &'static str, bytes: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(body(bytes));
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, content_type.parse().expect("static header"));
    headers.insert(CACHE_CONTROL, "no-cache".parse().expect("static header"));
    // Not framed by other sites (clickjacking), types not sniffed.
    headers.insert("x-frame-options", "DENY".parse().expect("static header"));
    headers.insert(
        "x-content-type-options",
        "nosniff".parse().expect("static header"),
    );
    reply
}

/// A download named `cicada-RUN-SUFFIX`.
pub(crate) fn download(
    content_type: &'static str,
    run_id: &str,
    suffix: &str,
    bytes: impl Into<Bytes>,
) -> Reply {
    let mut reply = typed(content_type, bytes);
    // Run ids are UUIDs; anything else is reduced to a safe file name.
    let safe: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let disposition = format!("attachment; filename=\"cicada-{safe}-{suffix}\"");
    if let Ok(value) = disposition.parse() {
        reply.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    reply
}

/// A request `guard` refused: 403, or 415 for a body that is not JSON.
pub(crate) fn refused(refused: super::guard::Refused) -> Reply {
    use super::guard::Refused;
    let (status, message) = match refused {
        Refused::CrossSite(message) => (StatusCode::FORBIDDEN, message),
        Refused::NotJson => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests that change something must be `Content-Type: application/json`".to_owned(),
        ),
    };
    with_status(status, json(&serde_json::json!({ "error": message })))
}

pub(crate) fn unauthorized() -> Reply {
    let mut reply = with_status(
        StatusCode::UNAUTHORIZED,
        json(&serde_json::json!({
            "error": "authentication required: HTTP Basic (--web-auth USER:PASS) or `Authorization: Bearer TOKEN` (the shared token)"
        })),
    );
    reply.headers_mut().insert(
        WWW_AUTHENTICATE,
        "Basic realm=\"cicada\"".parse().expect("static header"),
    );
    reply
}

/// Reads and parses a JSON request body (bounded).
pub(crate) async fn json_body<T: DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, WebError> {
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|error| {
            WebError::BadRequest(format!(
                "failed to read the request body (at most {MAX_BODY} bytes): {error}"
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|error| WebError::BadRequest(format!("invalid JSON body: {error}")))
}

/// Streams an answer from a channel of body chunks.
pub(crate) fn streaming(
    content_type: &'static str,
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
) -> Reply {
    use futures::StreamExt;
    let stream = tokio_stream::wrappers::ReceiverStream::new(chunks)
        .map(|chunk| Ok::<_, Infallible>(hyper::body::Frame::data(chunk)));
    let mut reply = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, content_type.parse().expect("static header"));
    headers.insert(CACHE_CONTROL, "no-cache".parse().expect("static header"));
    reply
}
