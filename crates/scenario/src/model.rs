//! The compiled scenario model that the worker's engine executes.

use std::time::Duration;

use crate::data::DataBinding;
use crate::template::{JsonTemplate, Template};

/// Identity of one user class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserClassInfo {
    pub name: String,
    pub weight: u32,
}

/// One endpoint (a stats row): every request step with the same method and
/// name maps to the same endpoint index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDef {
    pub method: String,
    pub name: String,
}

/// A user class: what one kind of virtual user does.
#[derive(Debug, Clone)]
pub struct UserClass {
    pub name: String,
    pub weight: u32,
    pub wait: Wait,
    /// Every variable of the class: first those of `variables:` in file
    /// order, then those only set by `extract`. Templates refer to them by index.
    pub var_names: Vec<String>,
    /// Initial values, rendered in order when a user starts (a later one may
    /// use an earlier one). Indexes into `var_names`.
    pub variables: Vec<(usize, Template)>,
    /// Each user keeps its own cookie jar (`cookies:`, on by default).
    pub cookies: bool,
    /// How its users hold connections (`connection:`, over the scenario's).
    pub connection: ConnectionPolicy,
    /// Each user's own client certificate (`tls:` of the class).
    pub tls: Option<ClientCertTemplates>,
    /// Rows each user takes when it starts, before `variables` render.
    pub data: Vec<DataBinding>,
    /// Steps each user runs once before its first task.
    pub on_start: Vec<Step>,
    /// Rows taken before `on_start` runs (its `{{ SET.next.COLUMN }}`).
    pub on_start_data: Vec<DataBinding>,
    /// Tasks, picked at random by weight.
    pub tasks: Vec<Task>,
}

impl UserClass {
    /// The class with every `{{ env.NAME }}` replaced by its value
    /// ([`Template::with_env`]): what a worker runs.
    pub fn with_env(&self, env: &crate::EnvValues) -> UserClass {
        if env.is_empty() {
            return self.clone();
        }
        let steps = |steps: &[Step]| steps.iter().map(|s| s.with_env(env)).collect();
        UserClass {
            tls: self.tls.as_ref().map(|tls| ClientCertTemplates {
                cert: tls.cert.with_env(env),
                key: tls.key.with_env(env),
            }),
            variables: self
                .variables
                .iter()
                .map(|(i, t)| (*i, t.with_env(env)))
                .collect(),
            on_start: steps(&self.on_start),
            tasks: self
                .tasks
                .iter()
                .map(|task| Task {
                    steps: steps(&task.steps),
                    ..task.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

impl Step {
    /// The request with every `{{ env.NAME }}` replaced by its value.
    pub fn with_env(&self, env: &crate::EnvValues) -> Step {
        let pairs = |pairs: &[(String, Template)]| {
            pairs
                .iter()
                .map(|(name, t)| (name.clone(), t.with_env(env)))
                .collect()
        };
        Step {
            path: self.path.with_env(env),
            query: pairs(&self.query),
            headers: pairs(&self.headers),
            body: match &self.body {
                Body::None => Body::None,
                Body::Form(fields) => Body::Form(pairs(fields)),
                Body::Json(json) => Body::Json(json.with_env(env)),
                Body::Raw(raw) => Body::Raw(raw.with_env(env)),
            },
            auth: self.auth.as_ref().map(|auth| BasicAuth {
                user: auth.user.with_env(env),
                password: auth.password.with_env(env),
            }),
            ..self.clone()
        }
    }
}

/// What a user does between two tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Start the next task at once.
    None,
    /// Sleep this long after each task.
    Constant(Duration),
    /// Sleep a uniformly random time in `[min, max]` after each task.
    Between(Duration, Duration),
    /// Start a task every period (sleep what is left of it; none if the task
    /// took longer), like Locust's `constant_pacing`.
    Pacing(Duration),
}

/// A weighted task: one request or a sequence of steps.
#[derive(Debug, Clone)]
pub struct Task {
    pub weight: u32,
    pub steps: Vec<Step>,
    /// Pause between two steps (`think:`; zero: none).
    pub think: Duration,
    /// A named `steps` task is a group: its whole duration (first request
    /// sent to last response) is recorded on this endpoint (method
    /// [`crate::GROUP_METHOD`]).
    pub group: Option<usize>,
    /// Rows taken each time the task begins (its `{{ SET.next.COLUMN }}`).
    pub data: Vec<DataBinding>,
}

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct Step {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template, starting with `/`.
    pub path: Template,
    /// Endpoint name (defaults to the path template's text).
    pub name: String,
    /// Index into `Scenario::endpoints()`.
    pub endpoint: usize,
    /// Query parameters, appended URL-encoded after the path.
    pub query: Vec<(String, Template)>,
    /// Extra request headers (names validated as HTTP tokens).
    pub headers: Vec<(String, Template)>,
    pub body: Body,
    /// Basic auth: the request's own `auth`, else its user class's.
    pub auth: Option<BasicAuth>,
    pub expect: Expect,
    /// Assertions on the response (`check:`), evaluated when the status is
    /// expected; counted per check.
    pub checks: Vec<crate::Check>,
    pub extract: Vec<Extract>,
}

/// `auth: {basic: [USER, PASSWORD]}`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub user: Template,
    pub password: Template,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    /// `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, Template)>),
    /// `application/json`.
    Json(JsonTemplate),
    /// Raw text; set `content-type` in `headers` if the target cares.
    Raw(Template),
}

/// Which response statuses count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// 200-399, like Locust.
    Default,
    /// Exactly these.
    Statuses(Vec<u16>),
}

impl Expect {
    /// Whether `status` is a success.
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            Expect::Default => (200..400).contains(&status),
            Expect::Statuses(list) => list.contains(&status),
        }
    }
}

/// Copies a value from a response into a user variable.
#[derive(Debug, Clone)]
pub struct Extract {
    /// Index into `UserClass::var_names`.
    pub var: usize,
    pub source: ExtractSource,
}

/// Where an extracted value comes from.
#[derive(Debug, Clone)]
pub enum ExtractSource {
    /// A JSON pointer (RFC 6901) into a JSON body, e.g. `/token`.
    JsonPointer(String),
    /// A regex with exactly one capture group, matched against the body text.
    Regex(regex::Regex),
    /// A response header's value, or the one capture group of `regex` in it.
    Header {
        name: http::HeaderName,
        regex: Option<regex::Regex>,
    },
}

/// The parts of a response that checks and extractions read.
#[derive(Clone, Copy)]
pub struct ResponseView<'a> {
    pub body: &'a [u8],
    pub headers: &'a http::HeaderMap,
}

impl ResponseView<'_> {
    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &http::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Extract {
    /// The extracted value, or a message saying why there is none. A JSON
    /// string is taken without quotes; other JSON values as JSON text.
    pub fn apply(&self, response: &ResponseView<'_>) -> Result<String, String> {
        match &self.source {
            ExtractSource::JsonPointer(pointer) => {
                let value: serde_json::Value = serde_json::from_slice(response.body)
                    .map_err(|e| format!("response body is not JSON: {e}"))?;
                match value.pointer(pointer) {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(other) => Ok(other.to_string()),
                    None => Err(format!("JSON pointer {pointer:?} not found in response")),
                }
            }
            ExtractSource::Regex(regex) => {
                let text = String::from_utf8_lossy(response.body);
                capture(regex, &text)
                    .ok_or_else(|| format!("regex {:?} did not match the response", regex.as_str()))
            }
            ExtractSource::Header { name, regex } => {
                let value = response
                    .header(name)
                    .ok_or_else(|| format!("no header {name:?} in the response"))?;
                match regex {
                    None => Ok(value.to_owned()),
                    Some(regex) => capture(regex, value).ok_or_else(|| {
                        format!(
                            "regex {:?} did not match header {name:?}: {value:?}",
                            regex.as_str()
                        )
                    }),
                }
            }
        }
    }
}

/// The first capture group of `regex` in `text`.
fn capture(regex: &regex::Regex, text: &str) -> Option<String> {
    regex
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
}

/// The HTTP version requests go out with (`http:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 over plain TCP; over TLS what the server picks by ALPN
    /// (HTTP/2 if it offers it, as browsers do).
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: h2c with prior knowledge over plain TCP, ALPN `h2` over TLS.
    Http2,
}

impl HttpVersion {
    pub fn name(self) -> &'static str {
        match self {
            HttpVersion::Auto => "auto",
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

/// How a user holds its connection (`connection:`). By default one
/// keep-alive connection for the user's whole life; each limit set makes
/// the user replace it: the request that reaches a limit is sent with
/// `Connection: close`, so the server closes and keeps the TIME_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// false: a new connection for every request (`connection: close`).
    pub keep_alive: bool,
    /// A new connection for every task iteration (and open-model iteration).
    pub per_iteration: bool,
    /// Replace the connection after this many requests on it.
    pub max_requests: Option<u64>,
    /// Replace the connection once it is this old (checked before a request).
    pub max_age: Option<Duration>,
}

impl Default for ConnectionPolicy {
    fn default() -> Self {
        ConnectionPolicy {
            keep_alive: true,
            per_iteration: false,
            max_requests: None,
            max_age: None,
        }
    }
}

impl std::fmt::Display for ConnectionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.keep_alive {
            return f.write_str("a new connection per request");
        }
        let mut parts = Vec::new();
        if self.per_iteration {
            parts.push("a new connection per iteration".to_owned());
        }
        if let Some(n) = self.max_requests {
            parts.push(format!("replaced after {n} requests"));
        }
        if let Some(age) = self.max_age {
            parts.push(format!("replaced after {age:?}"));
        }
        if parts.is_empty() {
            f.write_str("keep-alive")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The scenario's `tls:` for https targets; the files are relative to the
/// scenario file and shipped with it to the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates (PEM) trusted besides the public web roots.
    pub ca_file: Option<String>,
    /// The name sent in SNI and checked against the server's certificate
    /// (default: the host).
    pub server_name: Option<String>,
    /// Accept any server certificate (test setups only).
    pub insecure_skip_verify: bool,
    /// Client certificate chain and key files (PEM): mutual TLS.
    pub client: Option<(String, String)>,
}

impl TlsOptions {
    /// `(key, file)` for every file the options name: what is shipped.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        let mut files = Vec::new();
        if let Some(ca) = &self.ca_file {
            files.push(("ca_file", ca.as_str()));
        }
        if let Some((cert, key)) = &self.client {
            files.push(("client_cert", cert.as_str()));
            files.push(("client_key", key.as_str()));
        }
        files
    }
}

/// A user class's client certificate per user: PEM text rendered from
/// templates when the user starts (e.g. `{{ devices.cert }}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCertTemplates {
    pub cert: Template,
    pub key: Template,
}

/// The rows a request endpoint's new connections are recorded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionEndpoints {
    /// TCP connect times ([`crate::CONNECT_METHOD`]).
    pub connect: usize,
    /// TLS handshake times ([`crate::TLS_METHOD`]).
    pub tls: usize,
}

/// Timeouts for every request of a scenario (`timeouts: {connect, request}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for a TCP connection (and TLS handshake).
    pub connect: Option<Duration>,
    /// Longest wait for a complete response, from sending the request.
    pub request: Option<Duration>,
}

/// One stage of the load shape (`stages:`): the target reached, linearly
/// from the previous stage's (0 before the first), at the end of `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: StageTarget,
}

/// What a stage ramps: users (closed model) or a rate (open model). All
/// stages of a scenario ramp the same kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StageTarget {
    Users(u32),
    /// Iterations per second across all workers.
    Rate(f64),
}
