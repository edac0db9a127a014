//! Request handling: routing, injected latency and errors, counting.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, LOCATION, SET_COOKIE,
};
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
    if req.version() == hyper::Version::HTTP_2 {
        state.stats.http2();
    }
    let n = state.next.fetch_add(1, Ordering::Relaxed);
    let plan = &state.plans[route.index()];
    // What the answer depends on besides the form: the session cookie and
    // the credentials (`/account`, `/private`).
    let caller = Caller::of(req.uri().path(), req.headers());
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
    let (outcome, response) = answer(route, &form, &caller, state.seed ^ n);
    if route == Route::Login
        && outcome == Outcome::Ok
        && let Some(device) = form::field(&form, b"deviceid")
    {
        state.stats.login(device);
    }
    in_flight.finish(route, outcome);
    response
}

/// The session and credentials a request came with.
struct Caller {
    /// The user of a valid `sid` cookie.
    session_user: Option<String>,
    /// The user an `/account/USER` path names.
    path_user: Option<String>,
    /// Basic auth `cicada:secret`.
    authorized: bool,
}

/// Basic auth that `/private` accepts: `cicada:secret`.
const PRIVATE_AUTHORIZATION: &str = "Basic Y2ljYWRhOnNlY3JldA==";

impl Caller {
    fn of(path: &str, headers: &HeaderMap) -> Caller {
        let session_user = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix("sid="))
            .find_map(session_user);
        let authorized = headers
            .get(AUTHORIZATION)
            .is_some_and(|value| value.as_bytes() == PRIVATE_AUTHORIZATION.as_bytes());
        Caller {
            session_user,
            path_user: path.strip_prefix("/account/").map(str::to_owned),
            authorized,
        }
    }
}

/// The session id of `user`: `USER.SIGNATURE`, checkable without state.
fn session_id(user: &str) -> String {
    let signature = user
        .bytes()
        .fold(0x5e55_10f5, |h, b| chance::splitmix64(h ^ u64::from(b)));
    format!("{user}.{signature:016x}")
}

fn session_user(sid: &str) -> Option<String> {
    let (user, _) = sid.rsplit_once('.')?;
    (!user.is_empty() && session_id(user) == sid).then(|| user.to_owned())
}

/// The route's own answer to a request that was not failed on purpose.
fn answer(route: Route, form: &[u8], caller: &Caller, salt: u64) -> (Outcome, Response<Body>) {
    let bad = || {
        let response = text(StatusCode::BAD_REQUEST, "missing form field\n");
        (Outcome::BadRequest, response)
    };
    let unauthorized = || {
        let response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        (Outcome::BadRequest, response)
    };
    match route {
        Route::Session => {
            // Letters, digits, - and _ only, so it needs no escaping.
            let user = form::field(form, b"user").filter(|user| {
                user.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            });
            let Some(user) = user.and_then(|user| std::str::from_utf8(user).ok()) else {
                return bad();
            };
            let body = format!("{{\"user\":\"{user}\"}}");
            let mut response = json(StatusCode::OK, body.into());
            let headers = response.headers_mut();
            let cookie = format!("sid={}; Path=/; HttpOnly", session_id(user));
            // Both values are built from checked characters only.
            if let (Ok(cookie), Ok(location)) = (
                HeaderValue::from_str(&cookie),
                HeaderValue::from_str(&format!("/account/{user}")),
            ) {
                headers.insert(SET_COOKIE, cookie);
                headers.insert(LOCATION, location);
            }
            (Outcome::Ok, response)
        }
        Route::Account => match &caller.session_user {
            Some(user) if caller.path_user.as_ref().is_none_or(|named| named == user) => {
                let body = format!("{{\"user\":\"{user}\",\"items\":3}}");
                (Outcome::Ok, json(StatusCode::OK, body.into()))
            }
            _ => unauthorized(),
        },
        Route::Private if caller.authorized => (Outcome::Ok, text(StatusCode::OK, "ok\n")),
        Route::Private => unauthorized(),
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
