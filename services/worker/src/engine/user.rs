//! One virtual user: its state, its loop, and the request hot path.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Waker};

use bytes::Bytes;
use std::borrow::Cow;
use std::time::Duration;

use cicada_scenario::{
    ConnectionPolicy, Cookies, DataBinding, RenderContext, ResponseView, Wait,
    template::form_urlencode_into,
};
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, COOKIE, HOST, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, Sleep};

use super::data::{Cursors, DataSets};
use super::h1::{self, Keep};
use super::jar::Jar;
use super::plan::{AuthPlan, BodyPlan, ClassPlan, StepPlan, TaskPlan, basic_authorization};
use super::stats::{Failure, FailureKind, InFlight, Latency};
use super::target::{Phase, Sender, send_h2};
use super::thread::{ThreadCtx, UserTls};

/// A request timeout past what an `Instant` can hold: tokio's own "far
/// future" (30 years).
const NEVER: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A user's state; kept small because there may be many idle users.
pub(crate) struct User {
    user_id: u64,
    /// Requests sent so far (the `seq` template value).
    seq: u64,
    vars: Vec<String>,
    rng: SmallRng,
    conn: Option<UserConn>,
    /// Cookies on for its class.
    cookies: bool,
    /// Its cookies, from the first response that set one it keeps (`None`
    /// while it has none: its static requests then go out as encoded).
    jar: Option<Box<Jar>>,
    /// Its place in each data set it reads in order (empty without data sets).
    cursors: Cursors,
    /// Its own client certificate (`tls:` of its class).
    tls: Option<UserTls>,
    /// The timer of its requests' timeout, made at its first request and
    /// moved forward for each next one: moving a registered timer later is
    /// one atomic update, where a new timer per request would be inserted
    /// into and removed from the thread's timer wheel every time.
    deadline: Option<Pin<Box<Sleep>>>,
}

/// A user's connection and what its `connection:` limits count.
struct UserConn {
    sender: Sender,
    /// Requests sent on it.
    requests: u64,
    opened: Instant,
}

/// Whether the request about to go out on `conn` (a new connection when
/// `None`) is its last under `policy`: it is then sent with `Connection:
/// close` (HTTP/1.1) and the connection dropped after its response.
fn last_on_connection(
    conn: Option<&UserConn>,
    policy: &ConnectionPolicy,
    last_of_iteration: bool,
) -> bool {
    !policy.keep_alive
        || (policy.per_iteration && last_of_iteration)
        || policy
            .max_requests
            .is_some_and(|max| conn.map_or(0, |c| c.requests) + 1 >= max)
        || policy
            .max_age
            .is_some_and(|age| conn.is_some_and(|c| c.opened.elapsed() >= age))
}

/// How a request's latency is measured.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Timing {
    /// From the actual send only.
    Closed,
    /// Open model: from `intended` (the iteration's scheduled start) when
    /// set, else from the actual send; the uncorrected latency (from the
    /// actual send) is recorded too.
    Open { intended: Option<Instant> },
}

impl User {
    /// A user of `class`; [`begin`] takes its first rows and renders its
    /// variables.
    pub(crate) fn new(class: &ClassPlan, user_id: u64, data: &DataSets) -> User {
        User {
            user_id,
            seq: 0,
            vars: vec![String::new(); class.var_count],
            rng: SmallRng::from_rng(&mut rand::rng()),
            conn: None,
            cookies: class.cookies,
            jar: None,
            cursors: data.cursors(user_id),
            tls: None,
            deadline: None,
        }
    }

    /// Gives the request timer a waker that wakes nothing. Between open-model
    /// iterations the user is held by the arrival executor, not by a task:
    /// the timer must not keep the finished iteration's task (its waker)
    /// alive until the old deadline.
    fn release_timer(&mut self) {
        if let Some(timer) = &mut self.deadline {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = timer.as_mut().poll(&mut cx);
        }
    }

    fn render_variables(&mut self, class: &ClassPlan) {
        for (index, template) in &class.variables {
            let value = self.render(template);
            self.vars[*index] = value;
        }
    }

    /// `template` rendered against the user's state (without cookies: for
    /// what a user sets up when it starts).
    fn render(&mut self, template: &cicada_scenario::Template) -> String {
        let mut render = RenderContext {
            vars: &self.vars,
            seq: self.seq,
            user_id: self.user_id,
            rng: &mut self.rng,
            cookies: None,
        };
        template.render(&mut render)
    }
}

/// A new user's first data rows, then its variables; false when it cannot
/// start (a data set has no row left for it, or the run stops meanwhile).
async fn begin(ctx: &ThreadCtx, user: &mut User, class: &ClassPlan) -> bool {
    if !take_rows(ctx, user, &class.data).await {
        return false;
    }
    user.render_variables(class);
    if let Some(tls) = &class.tls {
        let (cert, key) = (user.render(&tls.cert), user.render(&tls.key));
        user.tls = Some(ctx.client_cert(cert, key));
    }
    true
}

/// Takes a row of each binding's data set into the user's variables; false
/// when a set has no row left for this user (it stops) or the run stops
/// while a `unique` row is awaited.
async fn take_rows(ctx: &ThreadCtx, user: &mut User, bindings: &[DataBinding]) -> bool {
    for binding in bindings {
        if ctx.stopping.get() {
            return false;
        }
        let take = ctx.data.take(
            binding.set,
            &mut user.cursors,
            &mut user.rng,
            &mut user.vars,
            &binding.vars,
        );
        let taken = tokio::select! {
            taken = take => taken,
            () = ctx.stop.notified() => false,
        };
        if !taken {
            tracing::debug!(
                user_id = user.user_id,
                set = binding.set,
                "no data row left; the user stops"
            );
            return false;
        }
    }
    true
}

/// Runs one user until the thread stops (or aborts it).
pub(crate) async fn run(ctx: Rc<ThreadCtx>, class_index: usize, user_id: u64) {
    let plan = ctx.plan.clone();
    let class: &ClassPlan = &plan.classes[class_index];
    let mut user = User::new(class, user_id, &ctx.data);
    if !begin(&ctx, &mut user, class).await
        || !take_rows(&ctx, &mut user, &class.on_start_data).await
    {
        return;
    }
    let on_start = run_steps(
        &ctx,
        &mut user,
        &class.on_start,
        Duration::ZERO,
        Timing::Closed,
    );
    if !on_start.await.go_on {
        return;
    }
    let total_weight = class.task_cumulative.last().copied().unwrap_or(0);
    if total_weight == 0 {
        return;
    }
    loop {
        if ctx.stopping.get() || ctx.take_retirement(class_index) {
            return;
        }
        let started = Instant::now();
        let pick = user.rng.random_range(0..total_weight);
        let task = class.task_cumulative.partition_point(|&sum| sum <= pick);
        let task = &class.tasks[task];
        if !run_task(&ctx, &mut user, task, Timing::Closed).await {
            return;
        }
        let pause = match class.wait {
            Wait::None => {
                // A task can finish without awaiting anything (a request
                // that cannot be built); make sure the thread still gets
                // its turn to handle commands.
                tokio::task::consume_budget().await;
                continue;
            }
            Wait::Constant(d) => d,
            Wait::Between(min, max) => {
                let span = max.saturating_sub(min);
                min + span.mul_f64(user.rng.random::<f64>())
            }
            Wait::Pacing(period) => period.saturating_sub(started.elapsed()),
        };
        if !pause.is_zero() && !sleep(&ctx, class_index, pause).await {
            return;
        }
    }
}

/// Sleeps `pause` unless the run stops or the user is retired meanwhile;
/// false then.
async fn sleep(ctx: &ThreadCtx, class_index: usize, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            () = ctx.stop.notified() => return false,
            () = ctx.retire_wake.notified() => {
                if ctx.take_retirement(class_index) {
                    return false;
                }
            }
        }
    }
}

/// Open model: one iteration on `user` (a virtual user of `class`): its
/// `on_start` steps if it has not run them yet, then one task picked by
/// weight. The first request is timed from `intended`, the iteration's
/// scheduled start; later ones from their own send.
pub(crate) async fn iterate(
    ctx: &ThreadCtx,
    user: &mut User,
    class: &ClassPlan,
    started: &mut bool,
    intended: Instant,
) {
    run_iteration(ctx, user, class, started, intended).await;
    user.release_timer();
}

async fn run_iteration(
    ctx: &ThreadCtx,
    user: &mut User,
    class: &ClassPlan,
    started: &mut bool,
    intended: Instant,
) {
    let mut timing = Timing::Open {
        intended: Some(intended),
    };
    if !*started {
        if !begin(ctx, user, class).await || !take_rows(ctx, user, &class.on_start_data).await {
            // No row for this virtual user: the iteration cannot run.
            ctx.stats.add_dropped();
            return;
        }
        *started = true;
        if !class.on_start.is_empty() {
            let on_start = run_steps(ctx, user, &class.on_start, Duration::ZERO, timing);
            if !on_start.await.go_on {
                return;
            }
            timing = Timing::Open { intended: None };
        }
    }
    let total_weight = class.task_cumulative.last().copied().unwrap_or(0);
    if total_weight == 0 {
        return;
    }
    let pick = user.rng.random_range(0..total_weight);
    let task = class.task_cumulative.partition_point(|&sum| sum <= pick);
    run_task(ctx, user, &class.tasks[task], timing).await;
}

/// Runs a task's steps; a group's whole duration (first request sent to
/// last response, its think time included) is recorded on its endpoint,
/// as a failure when a step failed. A group cut short by the end of the
/// run is not recorded. Returns false when the user must stop.
async fn run_task(ctx: &ThreadCtx, user: &mut User, task: &TaskPlan, timing: Timing) -> bool {
    if !task.data.is_empty() && !take_rows(ctx, user, &task.data).await {
        if let Timing::Open { .. } = timing {
            ctx.stats.add_dropped();
        }
        return false;
    }
    let started = Instant::now();
    let outcome = run_steps(ctx, user, &task.steps, task.think, timing).await;
    if let Some(group) = task.group
        && outcome.finished
    {
        let latency = measure(started, Timing::Closed);
        let failure = outcome.failed_step.map(|index| Failure {
            kind: FailureKind::Step,
            message: format!(
                "step {} of {} ({} {}) failed",
                index + 1,
                task.steps.len(),
                task.steps[index].method,
                task.steps[index].path.source()
            ),
        });
        ctx.stats.record_group(group, latency, failure);
    }
    outcome.go_on
}

/// How a sequence of steps ended.
struct StepsOutcome {
    /// The user goes on (the run is not stopping).
    go_on: bool,
    /// Every step ran, or one failed: the sequence was not cut short.
    finished: bool,
    /// The step that failed and ended the sequence.
    failed_step: Option<usize>,
}

/// Runs steps in order, `think` apart; a failed step ends the sequence.
/// Only the first step gets an open-model intended start.
async fn run_steps(
    ctx: &ThreadCtx,
    user: &mut User,
    steps: &[StepPlan],
    think: Duration,
    timing: Timing,
) -> StepsOutcome {
    let cut_short = StepsOutcome {
        go_on: false,
        finished: false,
        failed_step: None,
    };
    let mut failed_step = None;
    let mut timing = timing;
    for (i, step) in steps.iter().enumerate() {
        // An open-model iteration that was started sends its first request
        // even if the run stops meanwhile, so every started iteration is a
        // recorded (or cancelled) request.
        let first_of_iteration = matches!(timing, Timing::Open { intended: Some(_) });
        if ctx.stopping.get() && !first_of_iteration {
            return cut_short;
        }
        if i > 0 && !think.is_zero() {
            let until = Instant::now() + think;
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = ctx.stop.notified() => return cut_short,
            }
        }
        let Some(ok) = execute(ctx, user, step, timing, i + 1 == steps.len()).await else {
            return cut_short;
        };
        if let Timing::Open { .. } = timing {
            timing = Timing::Open { intended: None };
        }
        if !ok {
            failed_step = Some(i);
            break;
        }
    }
    // A sequence cut short by a failure leaves its connection open: a new
    // iteration still gets a new one.
    if steps
        .first()
        .is_some_and(|step| step.connection.per_iteration)
    {
        user.conn = None;
    }
    StepsOutcome {
        go_on: !ctx.stopping.get(),
        finished: true,
        failed_step,
    }
}

/// The latency of a request sent at `started` that completes now.
fn measure(started: Instant, timing: Timing) -> Latency {
    let now = Instant::now();
    let micros = |from: Instant| u64::try_from((now - from).as_micros()).unwrap_or(u64::MAX);
    match timing {
        Timing::Closed => Latency {
            us: micros(started),
            uncorrected_us: None,
        },
        Timing::Open { intended } => Latency {
            us: micros(intended.map_or(started, |at| at.min(started))),
            uncorrected_us: Some(micros(started)),
        },
    }
}

/// A completed exchange.
struct Response {
    status: u16,
    bytes: u64,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

/// Sends one request and records it. Returns whether it succeeded, or
/// `None` when the run stopped before it was sent (nothing recorded).
/// `last_of_iteration`: no step of the sequence follows it.
async fn execute(
    ctx: &ThreadCtx,
    user: &mut User,
    step: &StepPlan,
    timing: Timing,
    last_of_iteration: bool,
) -> Option<bool> {
    let guard = InFlight::start(&ctx.stats, step.endpoint);
    // A request that needs a new connection waits for its turn under the
    // worker's connection rate first, outside its latency (in the open
    // model the wait shows in the latency from the intended start). The
    // run stopping meanwhile ends the wait, the request unsent, except for
    // an open-model iteration's first request: a started iteration is
    // always a recorded (or cancelled) request.
    if ctx.pacer.is_limited()
        && user
            .conn
            .as_mut()
            .is_none_or(|conn| conn.sender.is_closed())
        && let Some(at) = ctx.pacer.reserve()
    {
        if matches!(timing, Timing::Open { intended: Some(_) }) {
            tokio::time::sleep_until(at).await;
        } else if ctx.stopping.get() {
            guard.unsent();
            return None;
        } else {
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = ctx.stop.notified() => {
                    guard.unsent();
                    return None;
                }
            }
        }
    }
    let started = Instant::now();
    let close = last_on_connection(user.conn.as_ref(), &step.connection, last_of_iteration);
    // A user whose jar holds a cookie builds its request: the jar may add
    // a `Cookie` header.
    let mut outgoing = match (&step.h1_request, &step.static_uri) {
        (Some(bytes), Some(uri)) if !close && user.jar.is_none() => {
            Outgoing::Encoded { bytes, uri }
        }
        _ => {
            let mut render = RenderContext {
                vars: &user.vars,
                seq: user.seq,
                user_id: user.user_id,
                rng: &mut user.rng,
                cookies: user.jar.as_deref().map(|jar| jar as &dyn Cookies),
            };
            match build_request(&ctx.authority, step, &mut render) {
                Ok(request) => Outgoing::Built(request),
                Err(message) => {
                    guard.finish(
                        measure(started, timing),
                        0,
                        Some(Failure {
                            kind: FailureKind::Request,
                            message,
                        }),
                    );
                    return Some(false);
                }
            }
        }
    };
    user.seq += 1;
    // Cookies are matched against the request's URL, built only when a jar
    // has cookies to send or a response sets one. A static path is
    // borrowed from the plan, so a user of a target without cookies pays
    // nothing for it; a rendered one costs a reference-count bump.
    let path = user.cookies.then(|| match (&outgoing, &step.static_uri) {
        (Outgoing::Encoded { uri, .. }, _) => Cow::Borrowed(*uri),
        (Outgoing::Built(_), Some(uri)) => Cow::Borrowed(uri),
        (Outgoing::Built(request), None) => Cow::Owned(request.uri().clone()),
    });
    let mut cookie_url = None;
    if let (Some(jar), Some(path), Outgoing::Built(request)) = (&user.jar, &path, &mut outgoing) {
        let url = cookie_url.insert(ctx.target.url_of(path));
        if let Some(cookie) = jar.header(url) {
            request.headers_mut().insert(COOKIE, cookie);
        }
    }
    let timeout = ctx.config.request_timeout;
    // A timeout too long for an `Instant` never fires, as with
    // `tokio::time::timeout`.
    let deadline = started
        .checked_add(timeout)
        .unwrap_or_else(|| started + NEVER);
    let mut timer = match user.deadline.take() {
        Some(mut timer) => {
            timer.as_mut().reset(deadline);
            timer
        }
        None => Box::pin(tokio::time::sleep_until(deadline)),
    };
    // The timer is polled outside the task's cooperative budget: a body
    // streaming in faster than it is read spends the budget on reads, and
    // a budgeted timer would then never report the timeout.
    let outcome = tokio::select! {
        biased;
        outcome = send(ctx, user, outgoing, step, close) => Some(outcome),
        () = tokio::task::unconstrained(timer.as_mut()) => None,
    };
    user.deadline = Some(timer);
    if close {
        user.conn = None;
    }
    let latency = measure(started, timing);
    let response = match outcome {
        Some(Ok(response)) => response,
        Some(Err(failure)) => {
            user.conn = None;
            guard.finish(latency, 0, Some(failure));
            return Some(false);
        }
        None => {
            // The connection may still carry the late response: start afresh.
            user.conn = None;
            let message = format!("no response within {timeout:?}");
            guard.finish(
                latency,
                0,
                Some(Failure {
                    kind: FailureKind::Timeout,
                    message,
                }),
            );
            return Some(false);
        }
    };
    if let Some(path) = &path
        && response.headers.contains_key(SET_COOKIE)
    {
        let url = cookie_url.get_or_insert_with(|| ctx.target.url_of(path));
        let jar = user.jar.get_or_insert_default();
        jar.store(&response.headers, url);
        // A jar that kept nothing (malformed, expired or foreign cookies)
        // would only make the user build requests it could send encoded.
        if jar.is_empty() {
            user.jar = None;
        }
    }
    if !step.expect.accepts(response.status) {
        let message = format!("{} returned status {}", step.path.source(), response.status);
        let failure = Failure {
            kind: FailureKind::Status(response.status),
            message,
        };
        guard.finish(latency, response.bytes, Some(failure));
        return Some(false);
    }
    let view = ResponseView {
        body: response.body.as_deref().unwrap_or_default(),
        headers: &response.headers,
    };
    // Every check is counted; the first that fails makes the request a
    // `check` failure, and the steps go on (like k6's checks).
    let mut failure = None;
    if !step.checks.is_empty() {
        let mut outcomes = Vec::with_capacity(step.checks.len());
        for check in &step.checks {
            let outcome = check.kind.evaluate(&view);
            if let (Err(reason), None) = (&outcome, &failure) {
                failure = Some(Failure {
                    kind: FailureKind::Check,
                    message: format!("{:?} failed: {reason}", check.name),
                });
            }
            outcomes.push((check.index, outcome.is_ok()));
        }
        ctx.stats.record_checks(step.endpoint, outcomes.into_iter());
    }
    for extract in &step.extract {
        match extract.apply(&view) {
            Ok(value) => user.vars[extract.var] = value,
            Err(message) => {
                let failure = failure.unwrap_or(Failure {
                    kind: FailureKind::Extract,
                    message,
                });
                guard.finish(latency, response.bytes, Some(failure));
                return Some(false);
            }
        }
    }
    guard.finish(latency, response.bytes, failure);
    Some(true)
}

/// A request on its way: encoded once for the run (with its URI), or built
/// for this send. Unboxed: a built request was held in the future before
/// there were encoded ones, and a box would be one more allocation for it.
#[allow(clippy::large_enum_variant)]
enum Outgoing<'a> {
    Encoded { bytes: &'a Bytes, uri: &'a Uri },
    Built(Request<Bytes>),
}

/// Sends on the user's connection, reconnecting when it is closed (each
/// new connection recorded on the step's connection rows). A request that
/// the connection refused before writing it is sent again once on a fresh
/// connection (a keep-alive connection the server just closed). `close`:
/// the last request on this connection.
async fn send(
    ctx: &ThreadCtx,
    user: &mut User,
    mut outgoing: Outgoing<'_>,
    step: &StepPlan,
    close: bool,
) -> Result<Response, Failure> {
    let keep_body = step.keep_body;
    let keep = Keep {
        body: keep_body,
        headers: step.keep_headers,
        set_cookie: user.cookies,
    };
    for attempt in 0..2 {
        if user
            .conn
            .as_mut()
            .is_some_and(|conn| conn.sender.is_closed())
        {
            user.conn = None;
        }
        let conn = match &mut user.conn {
            Some(conn) => conn,
            slot => slot.insert(connect(ctx, step, user.tls.as_deref()).await?),
        };
        conn.requests += 1;
        match &mut conn.sender {
            Sender::Http1(h1) => {
                let request = match &mut outgoing {
                    Outgoing::Encoded { bytes, .. } => h1::Request::Encoded(bytes),
                    Outgoing::Built(request) => {
                        if close {
                            request
                                .headers_mut()
                                .insert(CONNECTION, HeaderValue::from_static("close"));
                        }
                        h1::Request::Parts {
                            uri: request.uri(),
                            headers: request.headers(),
                            body: request.body(),
                        }
                    }
                };
                match h1.exchange(&step.method, request, keep).await {
                    Ok(exchange) => {
                        return Ok(Response {
                            status: exchange.status,
                            bytes: exchange.bytes,
                            headers: exchange.headers,
                            body: exchange.body,
                        });
                    }
                    Err(error) => {
                        user.conn = None;
                        if error.unsent && attempt == 0 {
                            continue;
                        }
                        return Err(Failure {
                            kind: FailureKind::Connection,
                            message: error.message,
                        });
                    }
                }
            }
            Sender::Http2(sender) => {
                if sender.ready().await.is_err() {
                    user.conn = None;
                    continue;
                }
                // HTTP/2 (picked by ALPN) sends the request's parts: a
                // request encoded for HTTP/1.1 is built after all.
                let request = match outgoing {
                    Outgoing::Built(request) => request,
                    Outgoing::Encoded { .. } => {
                        let mut render = RenderContext {
                            vars: &user.vars,
                            seq: user.seq,
                            user_id: user.user_id,
                            rng: &mut user.rng,
                            cookies: None,
                        };
                        build_request(&ctx.authority, step, &mut render).map_err(|message| {
                            Failure {
                                kind: FailureKind::Request,
                                message,
                            }
                        })?
                    }
                };
                // A reference-count bump: the body again if it goes unsent.
                let body = request.body().clone();
                match send_h2(sender, &ctx.target, request.map(Full::new)).await {
                    Ok(response) => return read_response(response, keep_body).await,
                    Err(mut error) => {
                        user.conn = None;
                        match error.take_message() {
                            Some(unsent) if attempt == 0 => {
                                outgoing = Outgoing::Built(unsent.map(|_| body));
                            }
                            _ => return Err(connection_failure(&error.into_error())),
                        }
                    }
                }
            }
        }
    }
    Err(Failure {
        kind: FailureKind::Connection,
        message: "connection closed before the request was sent".to_owned(),
    })
}

/// Opens a connection for a request of `step`, recording its connect and
/// TLS handshake times (or their failure) on the step's connection rows.
/// The target's connect future is boxed: a connect (with a TLS handshake's
/// state) is rare, and inline it would make every user's task that much
/// larger for its whole life.
async fn connect(
    ctx: &ThreadCtx,
    step: &StepPlan,
    tls: Option<&Result<tokio_rustls::TlsConnector, String>>,
) -> Result<UserConn, Failure> {
    let rows = step.connection_rows;
    let connector = match tls {
        None => None,
        Some(Ok(connector)) => Some(connector),
        Some(Err(reason)) => {
            // The user's own certificate cannot be used: no connection.
            let message = format!("the user's client certificate: {reason}");
            if let Some(rows) = rows {
                let failure = Failure {
                    kind: FailureKind::Tls,
                    message: message.clone(),
                };
                ctx.stats.record_connection(rows.tls, 0, Some(failure));
            }
            return Err(Failure {
                kind: FailureKind::Connect,
                message,
            });
        }
    };
    match Box::pin(ctx.target.connect(ctx.config.connect_timeout, connector)).await {
        Ok(connected) => {
            if let Some(rows) = rows {
                ctx.stats
                    .record_connection(rows.connect, connected.tcp_us, None);
                if let Some(tls_us) = connected.tls_us {
                    ctx.stats.record_connection(rows.tls, tls_us, None);
                }
            }
            Ok(UserConn {
                sender: connected.sender,
                requests: 0,
                opened: Instant::now(),
            })
        }
        Err(error) => {
            let failure = |kind| Failure {
                kind,
                message: error.message.clone(),
            };
            if let Some(rows) = rows {
                match error.phase {
                    Phase::Tcp => {
                        let failed = failure(FailureKind::Connect);
                        ctx.stats
                            .record_connection(rows.connect, error.tcp_us, Some(failed));
                    }
                    Phase::Tls => {
                        ctx.stats
                            .record_connection(rows.connect, error.tcp_us, None);
                        let failed = failure(FailureKind::Tls);
                        ctx.stats
                            .record_connection(rows.tls, error.tls_us, Some(failed));
                    }
                    Phase::Refused => {
                        let failed = failure(FailureKind::Disallowed);
                        ctx.stats.record_connection(rows.connect, 0, Some(failed));
                    }
                }
            }
            Err(Failure {
                kind: if error.phase == Phase::Refused {
                    FailureKind::Disallowed
                } else {
                    FailureKind::Connect
                },
                message: error.message,
            })
        }
    }
}

async fn read_response(
    response: http::Response<Incoming>,
    keep_body: bool,
) -> Result<Response, Failure> {
    let status = response.status().as_u16();
    let (parts, mut body) = response.into_parts();
    let mut bytes = 0u64;
    let mut kept = keep_body.then(Vec::new);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| connection_failure(&e))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            if let Some(kept) = &mut kept {
                kept.extend_from_slice(data);
            }
        }
    }
    Ok(Response {
        status,
        bytes,
        headers: parts.headers,
        body: kept,
    })
}

fn connection_failure(error: &hyper::Error) -> Failure {
    use std::error::Error as _;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure {
        kind: FailureKind::Connection,
        message,
    }
}

/// The request of `step`, its templates rendered with `render`. A step
/// with `StepPlan::h1_request` gives the same request (tested).
fn build_request(
    authority: &HeaderValue,
    step: &StepPlan,
    render: &mut RenderContext<'_, SmallRng>,
) -> Result<Request<Bytes>, String> {
    let uri = match &step.static_uri {
        Some(uri) => uri.clone(),
        None => {
            let mut text = String::with_capacity(step.path.source().len() + 32);
            step.path.render_into(render, &mut text);
            for (i, (name, value)) in step.query.iter().enumerate() {
                text.push(if i == 0 { '?' } else { '&' });
                text.push_str(name);
                text.push('=');
                let mut rendered = String::new();
                value.render_into(render, &mut rendered);
                form_urlencode_into(&mut text, &rendered);
            }
            Uri::try_from(text).map_err(|e| format!("invalid request path: {e}"))?
        }
    };
    let body = match &step.body {
        BodyPlan::Empty => Bytes::new(),
        BodyPlan::Static(bytes) => bytes.clone(),
        BodyPlan::Form(fields) => {
            let mut text = String::new();
            let mut rendered = String::new();
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    text.push('&');
                }
                text.push_str(name);
                text.push('=');
                rendered.clear();
                value.render_into(render, &mut rendered);
                form_urlencode_into(&mut text, &rendered);
            }
            Bytes::from(text)
        }
        BodyPlan::Json(json) => {
            let mut text = String::new();
            json.render_into(render, &mut text);
            Bytes::from(text)
        }
        BodyPlan::Raw(raw) => Bytes::from(raw.render(render)),
    };
    let mut request = Request::new(body);
    *request.method_mut() = step.method.clone();
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, authority.clone());
    if let Some(content_type) = &step.content_type {
        headers.insert(CONTENT_TYPE, content_type.clone());
    }
    for header in &step.headers {
        let value = match &header.static_value {
            Some(value) => value.clone(),
            None => HeaderValue::try_from(header.value.render(render))
                .map_err(|e| format!("invalid value for header {}: {e}", header.name))?,
        };
        headers.append(header.name.clone(), value);
    }
    match &step.auth {
        None => {}
        Some(AuthPlan::Static(value)) => {
            headers.insert(AUTHORIZATION, value.clone());
        }
        Some(AuthPlan::Template(auth)) => {
            let user = auth.user.render(render);
            let password = auth.password.render(render);
            let value = basic_authorization(&user, &password)
                .ok_or_else(|| "invalid basic auth credentials".to_owned())?;
            headers.insert(AUTHORIZATION, value);
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use cicada_scenario::{EnvValues, Scenario};
    use http::HeaderValue;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::super::data::DataSets;
    use super::super::h1;
    use super::super::plan::{Plan, StepPlan};
    use super::{User, build_request};
    use cicada_scenario::RenderContext;

    fn plan(yaml: &str, authority: &HeaderValue) -> Plan {
        let scenario = Scenario::parse("test.yaml", yaml).unwrap();
        Plan::new(&scenario, &EnvValues::default(), authority).unwrap()
    }

    fn built(step: &StepPlan, authority: &HeaderValue) -> Vec<u8> {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut render = RenderContext {
            vars: &[],
            seq: 0,
            user_id: 1,
            rng: &mut rng,
            cookies: None,
        };
        let request = build_request(authority, step, &mut render).unwrap();
        let mut out = Vec::new();
        h1::encode(
            &mut out,
            request.method(),
            request.uri(),
            request.headers(),
            request.body(),
        );
        out
    }

    #[test]
    fn a_static_request_is_encoded_once_exactly_as_it_would_be_built() {
        let authority = HeaderValue::from_static("127.0.0.1:8080");
        let plan = plan(
            r#"
name: t
users:
  - name: u
    tasks:
      - request: { method: GET, path: / }
      - request: { method: GET, path: /search, query: { q: "a b", kind: "x&y" } }
      - request:
          method: DELETE
          path: /items/7
          headers: { x-a: "1", accept: application/json, x-b: two words }
          auth: { basic: [me, secret] }
      - request: { method: POST, path: /form, form: { a: "1", b: "x y" } }
      - request: { method: PUT, path: /json, json: { a: [1, "two"], b: null } }
      - request: { method: POST, path: /raw, body: "raw text", headers: { content-type: text/plain } }
      - request: { method: POST, path: /empty }
      - request: { method: GET, path: "/u/{{ user_id }}" }
"#,
            &authority,
        );
        let steps: Vec<&StepPlan> = plan.classes[0]
            .tasks
            .iter()
            .flat_map(|task| &task.steps)
            .collect();
        assert_eq!(steps.len(), 8);
        for step in &steps[..7] {
            let encoded = step.h1_request.as_deref().expect("static step encoded");
            assert_eq!(
                String::from_utf8_lossy(encoded),
                String::from_utf8_lossy(&built(step, &authority))
            );
        }
        assert_eq!(
            steps[0].h1_request.as_deref().unwrap(),
            b"GET / HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n"
        );
        // A rendered path is built per request.
        assert!(steps[7].h1_request.is_none());
    }

    #[tokio::test]
    async fn releasing_the_timer_lets_go_of_the_last_task_waker() {
        struct Task;
        impl std::task::Wake for Task {
            fn wake(self: Arc<Self>) {}
        }
        let authority = HeaderValue::from_static("t");
        let plan = plan(
            "name: t\nusers:\n  - name: u\n    tasks:\n      - request: { path: / }\n",
            &authority,
        );
        let mut user = User::new(&plan.classes[0], 1, &DataSets::none());
        user.release_timer(); // no timer yet: nothing to do
        let task = Arc::new(Task);
        let waker = Waker::from(task.clone());
        let mut timer = Box::pin(tokio::time::sleep(Duration::from_secs(30)));
        assert!(
            timer
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(waker);
        user.deadline = Some(timer);
        assert_eq!(
            Arc::strong_count(&task),
            2,
            "the timer holds the task's waker"
        );
        user.release_timer();
        assert_eq!(Arc::strong_count(&task), 1);
    }

    #[test]
    fn http2_and_closing_connections_build_every_request() {
        let authority = HeaderValue::from_static("t");
        let task = "    tasks:\n      - request: { method: GET, path: / }\n";
        let plan_of = |top: &str, class: &str| {
            plan(
                &format!("name: t\n{top}users:\n  - name: u\n{class}{task}"),
                &authority,
            )
        };
        for (top, class) in [("http: 2\n", ""), ("", "    connection: close\n")] {
            let plan = plan_of(top, class);
            assert!(plan.classes[0].tasks[0].steps[0].h1_request.is_none());
        }
        // Cookie users send it while their jar is empty.
        let cookies = plan_of("", "    cookies: true\n");
        assert!(cookies.classes[0].tasks[0].steps[0].h1_request.is_some());
    }
}
