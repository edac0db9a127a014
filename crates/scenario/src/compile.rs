//! Turns the YAML tree into the scenario model, checking every key and value.

mod check;
mod connection;
mod data;
mod fields;
mod stages;
mod step;
mod thresholds;
mod tls;

use std::time::Duration;

use crate::check::CheckDef;
use crate::data::DataDef;
use crate::model::{
    BasicAuth, ConnectionEndpoints, ConnectionPolicy, EndpointDef, Task, Timeouts, UserClass,
    UserClassInfo, Wait,
};
use crate::node::{Kind, Node};
use crate::template::{BUILTINS, Template};
use crate::{Scenario, ScenarioError};

use fields::Fields;

const TOP_KEYS: &[&str] = &[
    "name",
    "host",
    "timeouts",
    "stages",
    "users",
    "rate",
    "max_in_flight",
    "thresholds",
    "data",
    "http",
    "connection",
    "tls",
];
const TIMEOUT_KEYS: &[&str] = &["connect", "request"];
const CLASS_KEYS: &[&str] = &[
    "name",
    "weight",
    "wait",
    "cookies",
    "connection",
    "tls",
    "auth",
    "variables",
    "on_start",
    "tasks",
];
const TASK_KEYS: &[&str] = &["weight", "name", "request", "steps", "think"];
const WAIT_KINDS: &str = "none, {constant: DURATION}, {between: [MIN, MAX]}, {pacing: DURATION}";

/// Compilation state: where errors point and the endpoint table being built.
pub(crate) struct Compiler<'a> {
    source_name: &'a str,
    endpoints: Vec<EndpointDef>,
    checks: Vec<CheckDef>,
    /// The `auth` of the user class being compiled, its requests' default.
    class_auth: Option<BasicAuth>,
    /// `data:`, its columns added as templates use them.
    data: Vec<DataDef>,
    /// The scenario's `connection:`, every class's default.
    connection: ConnectionPolicy,
    /// `{{ env.NAME }}` names, each with the first place that reads it.
    env: std::cell::RefCell<Vec<crate::EnvRef>>,
}

impl<'a> Compiler<'a> {
    pub fn new(source_name: &'a str) -> Self {
        Compiler {
            source_name,
            endpoints: Vec::new(),
            checks: Vec::new(),
            class_auth: None,
            data: Vec::new(),
            connection: ConnectionPolicy::default(),
            env: std::cell::RefCell::new(Vec::new()),
        }
    }

    pub fn error(&self, node: &Node, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            source_name: self.source_name.to_owned(),
            line: node.line,
            column: node.column,
            message: message.into(),
        }
    }

    pub fn scenario(mut self, root: &Node) -> Result<Scenario, ScenarioError> {
        if matches!(root.kind, Kind::Null) {
            return Err(self.error(
                root,
                "empty scenario; expected a mapping with keys: name, host, users",
            ));
        }
        let top = Fields::new(&self, root, "scenario", TOP_KEYS)?;
        let name = self.non_empty_string(top.required(&self, "name")?, "name")?;
        let host = match top.get("host") {
            Some(node) => Some(self.host(node)?),
            None => None,
        };
        let timeouts = match top.get("timeouts") {
            Some(node) => self.timeouts(node)?,
            None => Timeouts::default(),
        };
        let stages = match top.get("stages") {
            Some(node) => self.stages(node)?,
            None => Vec::new(),
        };
        let rate = match top.get("rate") {
            Some(node) => Some(self.rate(node)?),
            None => None,
        };
        let max_in_flight = match top.get("max_in_flight") {
            Some(node) => Some(self.max_in_flight(node)?),
            None => None,
        };
        let http = match top.get("http") {
            Some(node) => self.http_version(node)?,
            None => crate::HttpVersion::Auto,
        };
        let tls = match top.get("tls") {
            Some(node) => self.tls_options(node)?,
            None => crate::model::TlsOptions::default(),
        };
        let connection_rate = match top.get("connection") {
            Some(node) => {
                let (policy, rate) = self.scenario_connection(node)?;
                self.connection = policy;
                rate
            }
            None => None,
        };
        // Before the users: their templates read the data sets.
        if let Some(node) = top.get("data") {
            self.data = self.data_sets(node)?;
        }
        let users = top.required(&self, "users")?;
        let Kind::Seq(items) = &users.kind else {
            return Err(self.wrong_type(users, "users", "a list of user classes"));
        };
        if items.is_empty() {
            return Err(self.error(
                users,
                "\"users\" is empty; a scenario needs at least one user class",
            ));
        }
        let mut classes: Vec<UserClass> = Vec::with_capacity(items.len());
        for item in items {
            let class = self.user_class(item, classes.len())?;
            if classes.iter().any(|c| c.name == class.name) {
                return Err(self.error(item, format!("duplicate user class name {:?}", class.name)));
            }
            classes.push(class);
        }
        let user_classes = classes
            .iter()
            .map(|c| UserClassInfo {
                name: c.name.clone(),
                weight: c.weight,
            })
            .collect();
        // After the requests' rows: each gets a row for its new connections
        // and one for its TLS handshakes.
        let requests: Vec<(usize, String)> = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| crate::is_request_method(&e.method))
            .map(|(index, e)| (index, format!("{} {}", e.method, e.name)))
            .collect();
        let mut connection_endpoints = vec![None; self.endpoints.len()];
        for (index, row) in requests {
            connection_endpoints[index] = Some(ConnectionEndpoints {
                connect: self.endpoint(crate::CONNECT_METHOD, &row),
                tls: self.endpoint(crate::TLS_METHOD, &row),
            });
        }
        connection_endpoints.resize(self.endpoints.len(), None);
        // After the users: thresholds name endpoints from the complete table.
        let thresholds = match top.get("thresholds") {
            Some(node) => self.thresholds(node)?,
            None => Vec::new(),
        };
        Ok(Scenario {
            name,
            host,
            user_classes,
            classes,
            endpoints: self.endpoints,
            checks: self.checks,
            timeouts,
            stages,
            rate,
            max_in_flight,
            thresholds,
            data: self.data,
            http,
            connection_rate,
            connection_endpoints,
            env: self.env.into_inner(),
            tls,
        })
    }

    /// `http: 1.1 | 2 | auto`.
    fn http_version(&self, node: &Node) -> Result<crate::HttpVersion, ScenarioError> {
        let text = node.scalar_text().unwrap_or_default();
        match text.as_str() {
            "auto" => Ok(crate::HttpVersion::Auto),
            "1.1" | "1" => Ok(crate::HttpVersion::Http1),
            "2" => Ok(crate::HttpVersion::Http2),
            _ => Err(self.error(
                node,
                format!(
                    "invalid http {:?}; allowed: auto (HTTP/1.1, or what TLS ALPN picks), 1.1, 2 (h2c with prior knowledge over http://)",
                    text
                ),
            )),
        }
    }

    /// `rate: 500/s`, `6000/m`, or a number per second.
    pub(super) fn rate(&self, node: &Node) -> Result<f64, ScenarioError> {
        let text = match &node.kind {
            Kind::Int(n) => n.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Str(s) => s.clone(),
            other => {
                return Err(self.error(
                    node,
                    format!(
                        "expected a rate like 500/s or 6000/m, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        crate::parse_rate(&text).map_err(|message| self.error(node, message))
    }

    fn max_in_flight(&self, node: &Node) -> Result<u32, ScenarioError> {
        match &node.kind {
            Kind::Int(n) if *n >= 1 && *n <= i64::from(u32::MAX) => Ok(*n as u32),
            _ => Err(self.error(
                node,
                "max_in_flight must be a whole number from 1 to 4294967295",
            )),
        }
    }

    fn timeouts(&self, node: &Node) -> Result<Timeouts, ScenarioError> {
        let fields = Fields::new(self, node, "timeouts", TIMEOUT_KEYS)?;
        let positive = |key: &str| -> Result<Option<Duration>, ScenarioError> {
            let Some(node) = fields.get(key) else {
                return Ok(None);
            };
            let duration = self.duration(node)?;
            if duration.is_zero() {
                return Err(self.error(node, format!("timeouts.{key} must be more than 0")));
            }
            Ok(Some(duration))
        };
        Ok(Timeouts {
            connect: positive("connect")?,
            request: positive("request")?,
        })
    }

    fn host(&self, node: &Node) -> Result<String, ScenarioError> {
        let host = self.string(node, "host")?;
        let rest = host
            .strip_prefix("http://")
            .or_else(|| host.strip_prefix("https://"))
            .ok_or_else(|| {
                self.error(
                    node,
                    format!(
                        "invalid host {host:?}; expected http://HOST[:PORT] or https://HOST[:PORT]"
                    ),
                )
            })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', ' ']) {
            return Err(self.error(
                node,
                format!("invalid host {host:?}; expected a scheme and authority only, e.g. http://127.0.0.1:8080"),
            ));
        }
        Ok(host)
    }

    fn user_class(&mut self, node: &Node, index: usize) -> Result<UserClass, ScenarioError> {
        let f = Fields::new(self, node, "user class", CLASS_KEYS)?;
        let name = match f.get("name") {
            Some(n) => self.non_empty_string(n, "name")?,
            None => format!("user{}", index + 1),
        };
        let weight = match f.get("weight") {
            Some(n) => self.weight(n)?,
            None => 1,
        };
        let wait = match f.get("wait") {
            Some(n) => self.wait(n)?,
            None => Wait::None,
        };
        let cookies = match f.get("cookies") {
            Some(n) => match n.kind {
                Kind::Bool(on) => on,
                _ => return Err(self.wrong_type(n, "cookies", "true or false")),
            },
            None => true,
        };
        let connection = match f.get("connection") {
            Some(n) => self.class_connection(n, self.connection)?,
            None => self.connection,
        };
        // Variable names come first so every template can resolve them,
        // including ones only set later by an `extract`: the data columns
        // read from the user's first row, `variables:`, the `extract`
        // targets, then the data columns read from a row per task.
        let mut refs = Vec::new();
        for n in ["variables", "auth", "tls", "on_start", "tasks"] {
            if let Some(n) = f.get(n) {
                self.data_refs(n, &mut refs);
            }
        }
        for (n, place) in [
            (f.get("variables"), "a variable"),
            (f.get("auth"), "a class's auth"),
            (f.get("tls"), "a class's tls"),
        ] {
            if let Some(n) = n {
                self.no_next_refs(n, place)?;
            }
        }
        let mut var_names: Vec<String> = Vec::new();
        let start_vars = self.data_vars(&refs, false, &mut var_names);
        let data_start = data::bindings(&start_vars);
        let first_var = var_names.len();
        let mut initial: Vec<(&Node, &Node)> = Vec::new();
        if let Some(vars) = f.get("variables") {
            let Kind::Map(entries) = &vars.kind else {
                return Err(self.wrong_type(vars, "variables", "a mapping of name: template"));
            };
            for (key, value) in entries {
                let name = self.var_name(key)?;
                var_names.push(name);
                initial.push((key, value));
            }
        }
        for steps in [f.get("on_start"), f.get("tasks")].into_iter().flatten() {
            collect_extract_vars(steps, &mut var_names);
        }
        let next_vars = self.data_vars(&refs, true, &mut var_names);
        let mut variables = Vec::with_capacity(initial.len());
        for (index, (_, value)) in initial.iter().enumerate() {
            // A variable's initial value may only use variables defined
            // before it (and the user's first data rows).
            let var = first_var + index;
            variables.push((
                var,
                self.template(value, "variable value", &var_names[..var])?,
            ));
        }
        let tls = match f.get("tls") {
            Some(n) => Some(self.class_tls(n, &var_names)?),
            None => None,
        };
        self.class_auth = match f.get("auth") {
            Some(n) => Some(self.auth(n, &var_names)?),
            None => None,
        };
        let (on_start, on_start_data) = match f.get("on_start") {
            Some(n) => (
                self.steps(n, "on_start", &var_names)?,
                self.next_bindings(n, &next_vars),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let tasks_node = f.required(self, "tasks")?;
        let Kind::Seq(task_nodes) = &tasks_node.kind else {
            return Err(self.wrong_type(tasks_node, "tasks", "a list of tasks"));
        };
        if task_nodes.is_empty() {
            return Err(self.error(
                tasks_node,
                "\"tasks\" is empty; a user class needs at least one task",
            ));
        }
        let mut tasks = Vec::with_capacity(task_nodes.len());
        for node in task_nodes {
            let mut task = self.task(node, &var_names)?;
            task.data = self.next_bindings(node, &next_vars);
            tasks.push(task);
        }
        Ok(UserClass {
            name,
            weight,
            wait,
            var_names,
            variables,
            cookies,
            connection,
            tls,
            data: data_start,
            on_start,
            on_start_data,
            tasks,
        })
    }

    fn task(&mut self, node: &Node, vars: &[String]) -> Result<Task, ScenarioError> {
        let f = Fields::new(self, node, "task", TASK_KEYS)?;
        let weight = match f.get("weight") {
            Some(n) => self.weight(n)?,
            None => 1,
        };
        let steps = match (f.get("request"), f.get("steps")) {
            (Some(request), None) => vec![self.step(request, vars)?],
            (None, Some(steps)) => self.steps(steps, "steps", vars)?,
            _ => {
                return Err(self.error(node, "a task needs exactly one of \"request\" (one request) or \"steps\" (a list of requests)"));
            }
        };
        let think = match f.get("think") {
            Some(n) => self.duration(n)?,
            None => std::time::Duration::ZERO,
        };
        let group = match f.get("name") {
            Some(n) if f.get("steps").is_some() => {
                let name = self.non_empty_string(n, "name")?;
                Some(self.named_endpoint(n, crate::GROUP_METHOD, &name)?)
            }
            Some(n) => {
                return Err(self.error(
                    n,
                    "only a \"steps\" task has a \"name\" (a group); name a single request with its own \"name\"",
                ));
            }
            None => None,
        };
        Ok(Task {
            weight,
            steps,
            think,
            group,
            data: Vec::new(),
        })
    }

    fn steps(
        &mut self,
        node: &Node,
        what: &str,
        vars: &[String],
    ) -> Result<Vec<crate::Step>, ScenarioError> {
        let Kind::Seq(items) = &node.kind else {
            return Err(self.wrong_type(node, what, "a list of requests"));
        };
        if items.is_empty() && what == "steps" {
            return Err(self.error(
                node,
                "\"steps\" is empty; a task needs at least one request",
            ));
        }
        items.iter().map(|item| self.step(item, vars)).collect()
    }

    /// The row of a request or group the scenario names (`node`), within
    /// [`crate::MAX_ENDPOINTS`].
    pub fn named_endpoint(
        &mut self,
        node: &Node,
        method: &str,
        name: &str,
    ) -> Result<usize, ScenarioError> {
        let known = self
            .endpoints
            .iter()
            .any(|e| e.method == method && e.name == name);
        if !known && self.endpoints.len() >= crate::MAX_ENDPOINTS {
            return Err(self.error(
                node,
                format!(
                    "too many endpoints: over the limit of {} distinct methods and names; \
                     give requests whose path differs only by a value one \"name\" (e.g. name: /items/{{id}})",
                    crate::MAX_ENDPOINTS
                ),
            ));
        }
        Ok(self.endpoint(method, name))
    }

    pub fn endpoint(&mut self, method: &str, name: &str) -> usize {
        if let Some(i) = self
            .endpoints
            .iter()
            .position(|e| e.method == method && e.name == name)
        {
            return i;
        }
        self.endpoints.push(EndpointDef {
            method: method.to_owned(),
            name: name.to_owned(),
        });
        self.endpoints.len() - 1
    }

    fn weight(&self, node: &Node) -> Result<u32, ScenarioError> {
        match node.kind {
            Kind::Int(w) if w >= 1 => u32::try_from(w).map_err(|_| {
                self.error(
                    node,
                    format!("weight {w} is too large; allowed: 1 to {}", u32::MAX),
                )
            }),
            Kind::Int(w) => Err(self.error(
                node,
                format!("weight {w} is not positive; allowed: an integer >= 1"),
            )),
            _ => Err(self.wrong_type(node, "weight", "an integer >= 1")),
        }
    }

    fn wait(&self, node: &Node) -> Result<Wait, ScenarioError> {
        match &node.kind {
            Kind::Str(s) if s == "none" => Ok(Wait::None),
            Kind::Null => Ok(Wait::None),
            Kind::Map(_) => {
                let f = Fields::new(self, node, "wait", &["constant", "between", "pacing"])?;
                if f.len() != 1 {
                    return Err(
                        self.error(node, format!("\"wait\" needs exactly one of: {WAIT_KINDS}"))
                    );
                }
                if let Some(n) = f.get("constant") {
                    return Ok(Wait::Constant(self.duration(n)?));
                }
                if let Some(n) = f.get("pacing") {
                    let period = self.duration(n)?;
                    if period.is_zero() {
                        return Err(self.error(n, "pacing period must be greater than 0"));
                    }
                    return Ok(Wait::Pacing(period));
                }
                let n = f.required(self, "between")?;
                match &n.kind {
                    Kind::Seq(pair) if pair.len() == 2 => {
                        let (min, max) = (self.duration(&pair[0])?, self.duration(&pair[1])?);
                        if min > max {
                            return Err(
                                self.error(n, "\"between\" needs [MIN, MAX] with MIN <= MAX")
                            );
                        }
                        Ok(Wait::Between(min, max))
                    }
                    _ => Err(self.wrong_type(n, "between", "a list of two durations [MIN, MAX]")),
                }
            }
            _ => Err(self.error(node, format!("invalid \"wait\"; allowed: {WAIT_KINDS}"))),
        }
    }

    pub fn duration(&self, node: &Node) -> Result<Duration, ScenarioError> {
        match &node.kind {
            Kind::Int(0) => Ok(Duration::ZERO),
            Kind::Str(s) => parse_duration(s).ok_or_else(|| {
                self.error(
                    node,
                    format!(
                        "invalid duration {s:?}; expected a number with a unit, e.g. 500ms, 1s, 2m"
                    ),
                )
            }),
            _ => Err(self.error(
                node,
                format!(
                    "expected a duration like 500ms, 1s or 2m, found {}",
                    node.kind.describe()
                ),
            )),
        }
    }

    fn var_name(&self, node: &Node) -> Result<String, ScenarioError> {
        self.identifier(node, "variable name")
    }

    /// A name templates use (a variable, a data set): letters, digits and
    /// `_`, not starting with a digit, and not a built-in.
    pub(super) fn identifier(&self, node: &Node, what: &str) -> Result<String, ScenarioError> {
        let name = self.string(node, what)?;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(self.error(node, format!("invalid {what} {name:?}; allowed: letters, digits and _, not starting with a digit")));
        }
        if BUILTINS.contains(&name.as_str()) {
            return Err(self.error(
                node,
                format!(
                    "{what} {name:?} is a built-in; reserved: {}",
                    BUILTINS.join(", ")
                ),
            ));
        }
        Ok(name)
    }

    pub fn template(
        &self,
        node: &Node,
        what: &str,
        vars: &[String],
    ) -> Result<Template, ScenarioError> {
        let text = node
            .scalar_text()
            .ok_or_else(|| self.wrong_type(node, what, "a string"))?;
        let template = Template::compile(&text, vars).map_err(|e| self.error(node, e.0))?;
        let mut env = self.env.borrow_mut();
        for name in template.env_names() {
            if !env.iter().any(|e| e.name == name) {
                env.push(crate::EnvRef {
                    name: name.to_owned(),
                    line: node.line,
                    column: node.column,
                });
            }
        }
        Ok(template)
    }

    pub fn string(&self, node: &Node, what: &str) -> Result<String, ScenarioError> {
        match &node.kind {
            Kind::Str(s) => Ok(s.clone()),
            _ => Err(self.wrong_type(node, what, "a string")),
        }
    }

    fn non_empty_string(&self, node: &Node, what: &str) -> Result<String, ScenarioError> {
        let s = self.string(node, what)?;
        if s.trim().is_empty() {
            return Err(self.error(node, format!("\"{what}\" is empty")));
        }
        Ok(s)
    }

    pub fn wrong_type(&self, node: &Node, what: &str, expected: &str) -> ScenarioError {
        self.error(
            node,
            format!(
                "\"{what}\" must be {expected}, found {}",
                node.kind.describe()
            ),
        )
    }
}

/// Durations like `500ms`, `1s`, `1.5s`, `2m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds_per_unit = match unit.trim() {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * seconds_per_unit).ok()
}

/// Finds `extract: [{var: NAME}]` anywhere below `node` and adds the names.
fn collect_extract_vars(node: &Node, names: &mut Vec<String>) {
    match &node.kind {
        Kind::Seq(items) => items.iter().for_each(|i| collect_extract_vars(i, names)),
        Kind::Map(entries) => {
            for (key, value) in entries {
                if matches!(&key.kind, Kind::Str(k) if k == "extract") {
                    if let Kind::Seq(items) = &value.kind {
                        for item in items {
                            if let Kind::Map(fields) = &item.kind {
                                for (k, v) in fields {
                                    if let (Kind::Str(k), Kind::Str(v)) = (&k.kind, &v.kind)
                                        && k == "var"
                                        && !names.contains(v)
                                        && !BUILTINS.contains(&v.as_str())
                                    {
                                        names.push(v.clone());
                                    }
                                }
                            }
                        }
                    }
                } else {
                    collect_extract_vars(value, names);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("1"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("1..2s"), None);
    }
}
