//! The scenario prepared for sending: everything that does not change per
//! request (methods, static URIs, static bodies, header names) is built once.

use bytes::Bytes;
use cicada_scenario::{
    Body, Expect, Extract, JsonTemplate, Scenario, Step, Template, Wait,
    template::form_urlencode_into,
};
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method, Uri};

use super::EngineError;

/// All user classes, prepared.
pub(crate) struct Plan {
    pub classes: Vec<ClassPlan>,
}

pub(crate) struct ClassPlan {
    pub wait: Wait,
    pub var_count: usize,
    pub variables: Vec<(usize, Template)>,
    pub on_start: Vec<StepPlan>,
    pub tasks: Vec<Vec<StepPlan>>,
    /// Running sums of task weights, for a weighted pick with one random number.
    pub task_cumulative: Vec<u64>,
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
    pub expect: Expect,
    pub extract: Vec<Extract>,
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
    pub fn new(scenario: &Scenario) -> Result<Plan, EngineError> {
        let mut classes = Vec::with_capacity(scenario.classes().len());
        for class in scenario.classes() {
            let prepare = |steps: &[Step]| {
                steps
                    .iter()
                    .map(StepPlan::new)
                    .collect::<Result<Vec<_>, _>>()
            };
            let on_start = prepare(&class.on_start)?;
            let mut tasks = Vec::with_capacity(class.tasks.len());
            let mut task_cumulative = Vec::with_capacity(class.tasks.len());
            let mut sum = 0u64;
            for task in &class.tasks {
                tasks.push(prepare(&task.steps)?);
                sum += u64::from(task.weight);
                task_cumulative.push(sum);
            }
            classes.push(ClassPlan {
                wait: class.wait,
                var_count: class.var_names.len(),
                variables: class.variables.clone(),
                on_start,
                tasks,
                task_cumulative,
            });
        }
        Ok(Plan { classes })
    }
}

impl StepPlan {
    fn new(step: &Step) -> Result<StepPlan, EngineError> {
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
            expect: step.expect.clone(),
            extract: step.extract.clone(),
        })
    }
}
