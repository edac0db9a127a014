//! The scenario prepared for sending: everything that does not change per
//! request (methods, static URIs, static bodies, header names) is built once.

use bytes::Bytes;
use std::time::Duration;

use cicada_scenario::{
    BasicAuth, Body, CheckKind, ClientCertTemplates, ConnectionEndpoints, ConnectionPolicy,
    DataBinding, EnvValues, Expect, Extract, HttpVersion, JsonTemplate, Scenario, Step, Template,
    Wait, template::form_urlencode_into,
};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Uri};

use super::EngineError;

/// All user classes, prepared.
pub(crate) struct Plan {
    pub classes: Vec<ClassPlan>,
}

pub(crate) struct ClassPlan {
    pub wait: Wait,
    /// Each user's own client certificate (PEM templates).
    pub tls: Option<ClientCertTemplates>,
    /// Each user keeps a cookie jar.
    pub cookies: bool,
    pub var_count: usize,
    pub variables: Vec<(usize, Template)>,
    /// Rows a user takes when it starts, before its variables render.
    pub data: Vec<DataBinding>,
    pub on_start: Vec<StepPlan>,
    /// Rows taken before `on_start` runs.
    pub on_start_data: Vec<DataBinding>,
    pub tasks: Vec<TaskPlan>,
    /// Running sums of task weights, for a weighted pick with one random number.
    pub task_cumulative: Vec<u64>,
}

pub(crate) struct TaskPlan {
    pub steps: Vec<StepPlan>,
    /// Pause between two steps.
    pub think: Duration,
    /// The endpoint its whole duration is recorded on (a named group).
    pub group: Option<usize>,
    /// Rows taken each time the task begins.
    pub data: Vec<DataBinding>,
}

pub(crate) struct StepPlan {
    pub endpoint: usize,
    pub method: Method,
    /// Set when the path and query have no expressions.
    pub static_uri: Option<Uri>,
    pub path: Template,
    /// Query parameters with their names already URL-encoded.
    pub query: Vec<(String, Template)>,
    pub headers: Vec<HeaderPlan>,
    pub body: BodyPlan,
    pub content_type: Option<HeaderValue>,
    pub auth: Option<AuthPlan>,
    pub expect: Expect,
    pub checks: Vec<CheckPlan>,
    pub extract: Vec<Extract>,
    /// The response body is read into memory (for checks or extraction).
    pub keep_body: bool,
    /// The response headers are kept (for checks or extraction; cookies
    /// ask for them per user).
    pub keep_headers: bool,
    /// Its class's `connection:`.
    pub connection: ConnectionPolicy,
    /// Where new connections made for it are recorded.
    pub connection_rows: Option<ConnectionEndpoints>,
    /// The whole HTTP/1.1 request, encoded once, when nothing in it changes
    /// from one request to the next (static path, headers, auth and body,
    /// keep-alive): sent as it is, without building a request or a header
    /// map per request, by every user whose cookie jar is still empty.
    pub h1_request: Option<Bytes>,
}

/// The `authorization` header of basic auth.
pub(crate) enum AuthPlan {
    /// Both parts are static: encoded once.
    Static(HeaderValue),
    Template(BasicAuth),
}

/// One check, with the name its failure message gives.
pub(crate) struct CheckPlan {
    pub index: u32,
    pub name: String,
    pub kind: CheckKind,
}

pub(crate) struct HeaderPlan {
    pub name: HeaderName,
    pub value: Template,
    pub static_value: Option<HeaderValue>,
}

pub(crate) enum BodyPlan {
    Empty,
    Static(Bytes),
    /// Form fields with names already URL-encoded.
    Form(Vec<(String, Template)>),
    Json(JsonTemplate),
    Raw(Template),
}

impl Plan {
    /// The scenario prepared, its `{{ env.NAME }}` values from `env`.
    /// `authority` is the target's `Host` header value.
    pub fn new(
        scenario: &Scenario,
        env: &EnvValues,
        authority: &HeaderValue,
    ) -> Result<Plan, EngineError> {
        let mut classes = Vec::with_capacity(scenario.classes().len());
        for class in scenario.classes() {
            let class = &class.with_env(env);
            // HTTP/2 has no request text, and without keep-alive every
            // request says `Connection: close`. (A user with cookies in its
            // jar builds its requests: a jar may add a header.)
            let encode = class.connection.keep_alive && scenario.http() != HttpVersion::Http2;
            let prepare = |steps: &[Step]| {
                steps
                    .iter()
                    .map(|step| {
                        let mut plan = StepPlan::new(step, scenario, class.connection)?;
                        if encode {
                            plan.h1_request = plan.encode_static(authority);
                        }
                        Ok(plan)
                    })
                    .collect::<Result<Vec<_>, EngineError>>()
            };
            let on_start = prepare(&class.on_start)?;
            let mut tasks = Vec::with_capacity(class.tasks.len());
            let mut task_cumulative = Vec::with_capacity(class.tasks.len());
            let mut sum = 0u64;
            for task in &class.tasks {
                tasks.push(TaskPlan {
                    steps: prepare(&task.steps)?,
                    think: task.think,
                    group: task.group,
                    data: task.data.clone(),
                });
                sum += u64::from(task.weight);
                task_cumulative.push(sum);
            }
            classes.push(ClassPlan {
                wait: class.wait,
                tls: class.tls.clone(),
                cookies: class.cookies,
                var_count: class.var_names.len(),
                variables: class.variables.clone(),
                data: class.data.clone(),
                on_start,
                on_start_data: class.on_start_data.clone(),
                tasks,
                task_cumulative,
            });
        }
        Ok(Plan { classes })
    }
}

impl StepPlan {
    fn new(
        step: &Step,
        scenario: &Scenario,
        connection: ConnectionPolicy,
    ) -> Result<StepPlan, EngineError> {
        let invalid = |reason: String| EngineError::InvalidRequest {
            endpoint: format!("{} {}", step.method, step.name),
            reason,
        };
        let method =
            Method::from_bytes(step.method.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let query: Vec<(String, Template)> = step
            .query
            .iter()
            .map(|(name, value)| {
                let mut encoded = String::new();
                form_urlencode_into(&mut encoded, name);
                (encoded, value.clone())
            })
            .collect();
        let static_uri = match step.path.as_static() {
            Some(path) if query.iter().all(|(_, v)| v.as_static().is_some()) => {
                let mut text = path.to_owned();
                for (i, (name, value)) in query.iter().enumerate() {
                    text.push(if i == 0 { '?' } else { '&' });
                    text.push_str(name);
                    text.push('=');
                    form_urlencode_into(&mut text, value.as_static().unwrap_or_default());
                }
                Some(Uri::try_from(text).map_err(|e| invalid(format!("invalid path: {e}")))?)
            }
            _ => None,
        };
        let mut headers = Vec::with_capacity(step.headers.len());
        let mut has_content_type = false;
        for (name, value) in &step.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            has_content_type |= name == CONTENT_TYPE;
            let static_value = match value.as_static() {
                Some(text) => {
                    Some(HeaderValue::from_str(text).map_err(|e| invalid(e.to_string()))?)
                }
                None => None,
            };
            headers.push(HeaderPlan {
                name,
                value: value.clone(),
                static_value,
            });
        }
        let (body, content_type) = match &step.body {
            Body::None => (BodyPlan::Empty, None),
            Body::Form(fields) => {
                let fields: Vec<(String, Template)> = fields
                    .iter()
                    .map(|(name, value)| {
                        let mut encoded = String::new();
                        form_urlencode_into(&mut encoded, name);
                        (encoded, value.clone())
                    })
                    .collect();
                let body = if fields.iter().all(|(_, v)| v.as_static().is_some()) {
                    let mut text = String::new();
                    for (i, (name, value)) in fields.iter().enumerate() {
                        if i > 0 {
                            text.push('&');
                        }
                        text.push_str(name);
                        text.push('=');
                        form_urlencode_into(&mut text, value.as_static().unwrap_or_default());
                    }
                    BodyPlan::Static(Bytes::from(text))
                } else {
                    BodyPlan::Form(fields)
                };
                (
                    body,
                    Some(HeaderValue::from_static(
                        "application/x-www-form-urlencoded",
                    )),
                )
            }
            Body::Json(json) => {
                let body = if json.is_static() {
                    let mut text = String::new();
                    let mut rng = rand::rng();
                    let mut ctx = cicada_scenario::RenderContext {
                        vars: &[],
                        seq: 0,
                        user_id: 0,
                        rng: &mut rng,
                        cookies: None,
                    };
                    json.render_into(&mut ctx, &mut text);
                    BodyPlan::Static(Bytes::from(text))
                } else {
                    BodyPlan::Json(json.clone())
                };
                (body, Some(HeaderValue::from_static("application/json")))
            }
            Body::Raw(raw) => match raw.as_static() {
                Some(text) => (
                    BodyPlan::Static(Bytes::copy_from_slice(text.as_bytes())),
                    None,
                ),
                None => (BodyPlan::Raw(raw.clone()), None),
            },
        };
        Ok(StepPlan {
            endpoint: step.endpoint,
            method,
            static_uri,
            path: step.path.clone(),
            query,
            headers,
            body,
            // A content-type set by the scenario wins.
            content_type: if has_content_type { None } else { content_type },
            auth: step.auth.as_ref().map(AuthPlan::new),
            expect: step.expect.clone(),
            checks: step
                .checks
                .iter()
                .map(|check| CheckPlan {
                    index: check.index as u32,
                    name: scenario.checks()[check.index].name.clone(),
                    kind: check.kind.clone(),
                })
                .collect(),
            extract: step.extract.clone(),
            keep_body: !step.extract.is_empty()
                || step.checks.iter().any(|check| check.kind.reads_body()),
            keep_headers: !step.extract.is_empty() || !step.checks.is_empty(),
            connection,
            connection_rows: scenario.connection_endpoints(step.endpoint),
            h1_request: None,
        })
    }

    /// The HTTP/1.1 request of this step when every part of it is static,
    /// with the headers in the order `build_request` inserts them.
    fn encode_static(&self, authority: &HeaderValue) -> Option<Bytes> {
        let uri = self.static_uri.as_ref()?;
        let body: &[u8] = match &self.body {
            BodyPlan::Empty => &[],
            BodyPlan::Static(bytes) => bytes,
            BodyPlan::Form(_) | BodyPlan::Json(_) | BodyPlan::Raw(_) => return None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(HOST, authority.clone());
        if let Some(content_type) = &self.content_type {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        for header in &self.headers {
            headers.append(header.name.clone(), header.static_value.clone()?);
        }
        match &self.auth {
            None => {}
            Some(AuthPlan::Static(value)) => {
                headers.insert(AUTHORIZATION, value.clone());
            }
            Some(AuthPlan::Template(_)) => return None,
        }
        let mut out = Vec::with_capacity(256 + body.len());
        super::h1::encode(&mut out, &self.method, uri, &headers, body);
        Some(Bytes::from(out))
    }
}

impl AuthPlan {
    fn new(auth: &BasicAuth) -> AuthPlan {
        match (auth.user.as_static(), auth.password.as_static()) {
            (Some(user), Some(password)) => match basic_authorization(user, password) {
                Some(value) => AuthPlan::Static(value),
                None => AuthPlan::Template(auth.clone()),
            },
            _ => AuthPlan::Template(auth.clone()),
        }
    }
}

/// `Basic base64(user:password)` (RFC 7617); `None` only if it cannot be a
/// header value (it always can: base64 is ASCII).
pub(crate) fn basic_authorization(user: &str, password: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}
