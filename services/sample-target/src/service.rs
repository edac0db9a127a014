//! Request handling: routing, injected latency and errors, counting.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::chance;
use crate::config::{RoutePlan, TargetConfig};
use crate::delay::DelayQueue;
use crate::form;
use crate::process;
use crate::route::Route;
use crate::stats::{Outcome, Stats};

/// Largest form body accepted; larger ones get `413`.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Response body type: every answer is a single in-memory buffer.
pub(crate) type Body = Full<Bytes>;

/// Everything the request handler shares across connections.
#[derive(Debug)]
pub(crate) struct State {
    pub stats: Stats,
    plans: [RoutePlan; Route::COUNT],
    seed: u64,
    /// Sequence number of the next counted request, the key of its decisions.
    next: AtomicU64,
    /// Precise sleeps for the injected latency.
    delays: DelayQueue,
}

impl State {
    pub fn new(config: &TargetConfig) -> Self {
        Self {
            stats: Stats::default(),
            plans: config.plans(),
            seed: config.seed,
            next: AtomicU64::new(0),
            delays: DelayQueue::new(),
        }
    }
}

/// Answers one request.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (method, path) = (req.method(), req.uri().path());
    let response = if method == Method::GET && path == "/stats" {
        match serde_json::to_vec(&state.stats.snapshot()) {
            Ok(body) => json(StatusCode::OK, body.into()),
            Err(error) => {
                tracing::error!(%error, "failed to encode stats");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to encode stats\n",
                )
            }
        }
    } else if method == Method::GET && path == "/process-metrics" {
        let mut response = Response::new(Full::new(Bytes::from(process::exposition())));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    } else if method == Method::POST && path == "/stats/reset" {
        state.stats.reset();
        text(StatusCode::OK, "reset\n")
    } else if let Some(route) = Route::find(method, path) {
        serve(&state, route, req).await
    } else {
        state.stats.unmatched();
        let known_path = Route::ALL
            .iter()
            .any(|r| r.name().split_once(' ').is_some_and(|(_, p)| p == path));
        if known_path {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        } else {
            text(StatusCode::NOT_FOUND, "not found\n")
        }
    };
    Ok(response)
}

/// Serves a counted route: read the form, wait, maybe fail, answer, count.
async fn serve(state: &State, route: Route, req: Request<Incoming>) -> Response<Body> {
    let in_flight = state.stats.begin();
    let n = state.next.fetch_add(1, Ordering::Relaxed);
    let plan = &state.plans[route.index()];
    let form = if route.method() == Method::POST {
        match Limited::new(req.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                in_flight.finish(route, Outcome::BadRequest);
                return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n");
            }
            Err(error) => {
                // The body broke off: the client is gone, so nobody gets an
                // answer and the drop of `in_flight` counts it as cancelled.
                tracing::debug!(%error, "failed to read request body");
                drop(in_flight);
                return text(StatusCode::BAD_REQUEST, "broken body\n");
            }
        }
    } else {
        Bytes::new()
    };
    if !plan.latency.is_none() {
        state.delays.sleep(plan.latency.sample(state.seed, n)).await;
    }
    if plan.fails(state.seed, n) {
        in_flight.finish(route, Outcome::Error);
        return text(StatusCode::INTERNAL_SERVER_ERROR, "injected error\n");
    }
    let (outcome, response) = answer(route, &form, state.seed ^ n);
    in_flight.finish(route, outcome);
    response
}

/// The route's own answer to a request that was not failed on purpose.
fn answer(route: Route, form: &[u8], salt: u64) -> (Outcome, Response<Body>) {
    let bad = || {
        let response = text(StatusCode::BAD_REQUEST, "missing form field\n");
        (Outcome::BadRequest, response)
    };
    match route {
        Route::Login => match form::field(form, b"deviceid") {
            Some(device) => {
                let token = device
                    .iter()
                    .fold(salt, |h, &b| chance::splitmix64(h ^ u64::from(b)));
                let body = format!("{{\"token\":\"{token:016x}\"}}");
                (Outcome::Ok, json(StatusCode::OK, body.into()))
            }
            None => bad(),
        },
        Route::Metrics => {
            if form::field(form, b"deviceid").is_some() && form::field(form, b"timestamp").is_some()
            {
                (Outcome::Ok, text(StatusCode::OK, "ok\n"))
            } else {
                bad()
            }
        }
        Route::Root
        | Route::TestV1
        | Route::TestV2
        | Route::TestV3
        | Route::TestV4
        | Route::Health => (Outcome::Ok, text(StatusCode::OK, "ok\n")),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
