//! The cicada scenario: what virtual users do, parsed from YAML.
//!
//! A scenario is YAML text (see docs/SCENARIO.md for every key). [`Scenario::parse`]
//! checks it completely (unknown keys, types, templates, regexes) and reports
//! the first problem as `file:line:column: message`. The result is a compiled
//! model the worker executes directly: templates are split into segments once,
//! so nothing is parsed per request.
//!
//! Layout:
//! - `node`: the YAML document as a tree of located nodes (serde-saphyr)
//! - `compile`: the tree to the model, with every check and message
//! - `model`: user classes, tasks, steps, bodies, expectations, extraction
//! - `data`: test data files (`data:`), parsed and cut to the used columns
//! - `check`: response checks (`check:`) and how they are evaluated
//! - `template`: `{{ expr }}` templates and JSON body templates
//! - `threshold`: pass/fail thresholds (`p95 < 150ms`) and their flag syntax
//! - `allow`: the target allowlist (`--allow-target`) a controller and its
//!   workers check a run's host against
//!
//! Limits: a scenario is at most [`MAX_SCENARIO_BYTES`] of text, nested at
//! most [`MAX_NESTING_DEPTH`] deep, at most [`MAX_YAML_NODES`] nodes (aliases
//! expanded), and names at most [`MAX_ENDPOINTS`] endpoints.

pub mod allow;
mod check;
mod compile;
pub mod data;
mod model;
mod node;
pub mod template;
pub mod threshold;

use std::fmt::Write as _;

pub use check::{Check, CheckDef, CheckKind};
pub use data::{DataBinding, DataDef, Table};
pub use model::{
    BasicAuth, Body, ClientCertTemplates, ConnectionEndpoints, ConnectionPolicy, EndpointDef,
    Expect, Extract, ExtractSource, HttpVersion, ResponseView, Stage, StageTarget, Step, Task,
    Timeouts, TlsOptions, UserClass, UserClassInfo, Wait,
};
pub use template::{Cookies, EnvValues, JsonTemplate, RenderContext, Segment, Template};
pub use threshold::{Expr, Metric, Op, Threshold, ThresholdError};

/// The method of a group's endpoint (`GROUP checkout`): a named `steps`
/// task, timed as a whole. Not an HTTP method, so no request shares it.
pub const GROUP_METHOD: &str = "GROUP";

/// The method of a request endpoint's connection row (`CONNECT GET /x`):
/// one entry per new TCP connection, its latency the connect time.
pub const CONNECT_METHOD: &str = "CONNECT";

/// The method of a request endpoint's TLS row (`TLS GET /x`): one entry
/// per TLS handshake, its latency the handshake time.
pub const TLS_METHOD: &str = "TLS";

/// Largest scenario text accepted (bytes). Data files are separate and
/// have their own limit.
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// Deepest nesting of YAML collections (mappings and lists) in a scenario;
/// the deepest a valid scenario needs is about 10 (a JSON body nests more).
pub const MAX_NESTING_DEPTH: usize = 32;

/// Most YAML nodes in a scenario, counting every node an alias (`*name`)
/// repeats: a bound on "billion laughs" documents.
pub const MAX_YAML_NODES: usize = 200_000;

/// Most distinct endpoints (request method and name, or group) a scenario
/// may have. A request's name defaults to its path template, so a value in
/// the path does not add rows; this stops a generated scenario with one
/// request per URL. The table also has a connection and a TLS row per
/// request endpoint: [`MAX_ENDPOINT_ROWS`] in all.
pub const MAX_ENDPOINTS: usize = 1000;

/// Most rows of a run's endpoint table (requests, groups and their
/// connection and TLS rows); the collector refuses a run with more.
pub const MAX_ENDPOINT_ROWS: usize = 3 * MAX_ENDPOINTS;

/// Largest file of a scenario's `tls:` section (a PEM certificate chain or key).
pub const MAX_TLS_FILE_BYTES: usize = 1 << 20;

/// Whether rows of an endpoint with this method are requests (not a
/// group's, a connection's or a TLS handshake's).
pub fn is_request_method(method: &str) -> bool {
    !matches!(method, GROUP_METHOD | CONNECT_METHOD | TLS_METHOD)
}

/// Whether rows of an endpoint with this method are a request endpoint's
/// new connections or TLS handshakes (rows the compiler adds).
pub fn is_connection_method(method: &str) -> bool {
    matches!(method, CONNECT_METHOD | TLS_METHOD)
}

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    name: String,
    host: Option<String>,
    user_classes: Vec<UserClassInfo>,
    classes: Vec<UserClass>,
    endpoints: Vec<EndpointDef>,
    checks: Vec<CheckDef>,
    timeouts: Timeouts,
    stages: Vec<Stage>,
    rate: Option<f64>,
    max_in_flight: Option<u32>,
    thresholds: Vec<Threshold>,
    data: Vec<DataDef>,
    http: HttpVersion,
    /// New connections per second across the fleet at most (`connection.rate`).
    connection_rate: Option<f64>,
    /// Per endpoint: the rows its new connections are recorded on (`None`
    /// for rows that are not requests).
    connection_endpoints: Vec<Option<ConnectionEndpoints>>,
    /// The environment variables its templates read, in file order.
    env: Vec<EnvRef>,
    /// `tls:` for https targets.
    tls: TlsOptions,
}

/// An environment variable a scenario reads (`{{ env.NAME }}`), with the
/// first place that reads it (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

/// A scenario error with its location (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct ScenarioError {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Scenario {
    /// Parses and validates `yaml`; `source_name` (a file path) prefixes errors.
    pub fn parse(source_name: &str, yaml: &str) -> Result<Scenario, ScenarioError> {
        if yaml.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError {
                source_name: source_name.to_owned(),
                line: 0,
                column: 0,
                message: format!(
                    "the scenario is {} bytes, over the limit of {} KiB; put large data in data files (data:)",
                    yaml.len(),
                    MAX_SCENARIO_BYTES >> 10
                ),
            });
        }
        let root = node::parse(yaml).map_err(|(line, column, message)| ScenarioError {
            source_name: source_name.to_owned(),
            line,
            column,
            message: format!("invalid YAML: {message}"),
        })?;
        compile::Compiler::new(source_name).scenario(&root)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The default target host from the file, if any.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    pub fn user_classes(&self) -> &[UserClassInfo] {
        &self.user_classes
    }

    /// The full user classes, indexed like [`Scenario::user_classes`].
    pub fn classes(&self) -> &[UserClass] {
        &self.classes
    }

    /// Open model: the total rate the scenario asks for (`rate:`),
    /// iterations per second; flags override it.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Open model: the in-flight bound the scenario asks for (`max_in_flight:`).
    pub fn max_in_flight(&self) -> Option<u32> {
        self.max_in_flight
    }

    /// Connect and request timeouts the scenario sets (`timeouts:`); `None`
    /// leaves the worker's default.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The load shape (`stages:`), empty when the scenario has none.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The endpoint table; deltas refer to endpoints by index into it.
    pub fn endpoints(&self) -> &[EndpointDef] {
        &self.endpoints
    }

    /// Every `check:` of every request, in file order; `Check::index`
    /// points here. Two requests of one endpoint with checks of the same
    /// name share one (their counts add up).
    pub fn checks(&self) -> &[CheckDef] {
        &self.checks
    }

    /// `tls:`: trust, server name and client certificate for https targets.
    pub fn tls(&self) -> &TlsOptions {
        &self.tls
    }

    /// The environment variables the scenario's templates read
    /// (`{{ env.NAME }}`), resolved on each worker from its environment.
    pub fn env(&self) -> &[EnvRef] {
        &self.env
    }

    /// The scenario's environment values taken from `lookup` (a worker's
    /// environment); the names that `lookup` has no value for are an error
    /// that says where each is read.
    pub fn resolve_env(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<EnvValues, String> {
        let mut values = EnvValues::new();
        let mut missing = Vec::new();
        for env in &self.env {
            match lookup(&env.name) {
                Some(value) => {
                    values.insert(env.name.clone(), value);
                }
                None => missing.push(format!(
                    "{} (line {}, column {})",
                    env.name, env.line, env.column
                )),
            }
        }
        if missing.is_empty() {
            Ok(values)
        } else {
            Err(format!(
                "environment variable{} not set: {}; the scenario reads {} with {{{{ env.NAME }}}}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            ))
        }
    }

    /// New connections per second across the whole fleet at most
    /// (`connection: {rate}`); `None`: no limit.
    pub fn connection_rate(&self) -> Option<f64> {
        self.connection_rate
    }

    /// The rows where new connections for requests of `endpoint` are
    /// recorded (`None` for a row that is not a request's).
    pub fn connection_endpoints(&self, endpoint: usize) -> Option<ConnectionEndpoints> {
        self.connection_endpoints.get(endpoint).copied().flatten()
    }

    /// The HTTP version to send with (`http:`).
    pub fn http(&self) -> HttpVersion {
        self.http
    }

    /// The data sets (`data:`), in file order; `DataBinding::set` points here.
    pub fn data(&self) -> &[DataDef] {
        &self.data
    }

    /// The scenario's `thresholds:`, in file order.
    pub fn thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }

    /// A human-readable summary (name, host, classes, endpoints), as
    /// `cicada validate` prints it.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario: {}", self.name);
        let _ = writeln!(
            out,
            "host: {}",
            self.host.as_deref().unwrap_or("(none; pass --host)")
        );
        if self.http != HttpVersion::Auto {
            let _ = writeln!(out, "http: {}", self.http.name());
        }
        for (key, file) in self.tls.files() {
            let _ = writeln!(out, "tls {key}: {file}");
        }
        if let Some(name) = &self.tls.server_name {
            let _ = writeln!(out, "tls server_name: {name}");
        }
        if self.tls.insecure_skip_verify {
            let _ = writeln!(
                out,
                "tls: server certificates are NOT verified (insecure_skip_verify)"
            );
        }
        if !self.env.is_empty() {
            let names: Vec<&str> = self.env.iter().map(|e| e.name.as_str()).collect();
            let _ = writeln!(out, "environment: {}", names.join(", "));
        }
        if let Some(rate) = self.connection_rate {
            let _ = writeln!(out, "connection rate: at most {rate} new connections/s");
        }
        let _ = writeln!(out, "user classes:");
        for class in &self.classes {
            let steps: usize = class.tasks.iter().map(|t| t.steps.len()).sum();
            let _ = writeln!(
                out,
                "  {} (weight {}): {} tasks, {} requests, {} on_start{}",
                class.name,
                class.weight,
                class.tasks.len(),
                steps,
                class.on_start.len(),
                if class.connection == ConnectionPolicy::default() {
                    String::new()
                } else {
                    format!("; connections: {}", class.connection)
                }
            );
        }
        let _ = writeln!(out, "endpoints:");
        // Connection and TLS rows follow from the requests: not listed.
        for endpoint in self
            .endpoints
            .iter()
            .filter(|e| !is_connection_method(&e.method))
        {
            let _ = writeln!(out, "  {} {}", endpoint.method, endpoint.name);
        }
        if !self.checks.is_empty() {
            let _ = writeln!(out, "checks:");
            for check in &self.checks {
                let endpoint = &self.endpoints[check.endpoint];
                let _ = writeln!(
                    out,
                    "  {} {}: {}",
                    endpoint.method, endpoint.name, check.name
                );
            }
        }
        if !self.data.is_empty() {
            let _ = writeln!(out, "data:");
            for set in &self.data {
                let _ = writeln!(
                    out,
                    "  {}: {} ({}, pick {}{}), columns: {}",
                    set.name,
                    set.file,
                    set.format.name(),
                    set.pick.name(),
                    if set.pick == data::Pick::Unique {
                        format!(", exhausted: {}", set.exhausted.name())
                    } else {
                        String::new()
                    },
                    if set.columns.is_empty() {
                        "(none used)".to_owned()
                    } else {
                        set.columns.join(", ")
                    }
                );
            }
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(out, "thresholds:");
            for threshold in &self.thresholds {
                let _ = writeln!(out, "  {threshold}");
            }
        }
        out
    }
}

/// Cases per property of the fuzz harnesses: `CICADA_FUZZ_CASES`, else
/// `default` (see docs/FUZZING.md).
#[cfg(test)]
pub(crate) fn fuzz_cases(default: u32) -> u32 {
    std::env::var("CICADA_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

/// Parses an arrival rate: `100000/s`, `6000/m`, `10/h` or a plain number
/// per second; the result is iterations per second, finite and above 0.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per_second) = match text.split_once('/') {
        None => (text, 1.0),
        Some((number, unit)) => match unit.trim() {
            "s" => (number, 1.0),
            "m" => (number, 60.0),
            "h" => (number, 3600.0),
            other => {
                return Err(format!(
                    "invalid rate unit {other:?} in {text:?}; allowed: /s, /m, /h"
                ));
            }
        },
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid rate {text:?}; expected e.g. 500/s, 6000/m or 100"))?;
    let rate = value / per_second;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("rate {text:?} must be more than 0"));
    }
    Ok(rate)
}
