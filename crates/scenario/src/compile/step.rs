//! Compiles one request step.

use crate::ScenarioError;
use crate::model::{Body, Expect, Extract, ExtractSource, Step};
use crate::node::{Kind, Node};
use crate::template::{JsonTemplate, Template};

use super::Compiler;
use super::fields::Fields;

const STEP_KEYS: &[&str] = &[
    "method", "path", "name", "query", "headers", "form", "json", "body", "auth", "expect",
    "check", "extract",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl Compiler<'_> {
    pub(super) fn step(&mut self, node: &Node, vars: &[String]) -> Result<Step, ScenarioError> {
        let f = Fields::new(self, node, "request", STEP_KEYS)?;
        let method = match f.get("method") {
            Some(n) => {
                let m = self.string(n, "method")?;
                if !METHODS.contains(&m.as_str()) {
                    return Err(self.error(
                        n,
                        format!("unknown method {m:?}; allowed: {}", METHODS.join(", ")),
                    ));
                }
                m
            }
            None => "GET".to_owned(),
        };
        let path_node = f.required(self, "path")?;
        let path = self.template(path_node, "path", vars)?;
        if !path.source().starts_with('/') {
            return Err(self.error(
                path_node,
                format!("path {:?} must start with \"/\"", path.source()),
            ));
        }
        if path.source().contains(['?', '#']) {
            return Err(self.error(
                path_node,
                "path must not contain \"?\" or \"#\"; put parameters under \"query\"",
            ));
        }
        let name = match f.get("name") {
            Some(n) => {
                let name = self.string(n, "name")?;
                if name.is_empty() {
                    return Err(self.error(n, "\"name\" is empty"));
                }
                name
            }
            None => path.source().to_owned(),
        };
        let query = match f.get("query") {
            Some(n) => self.template_map(n, "query", vars)?,
            None => Vec::new(),
        };
        let headers = match f.get("headers") {
            Some(n) => self.headers(n, vars)?,
            None => Vec::new(),
        };
        let body = self.body(node, &f, vars)?;
        let expect = match f.get("expect") {
            Some(n) => self.expect(n)?,
            None => Expect::Default,
        };
        let extract = match f.get("extract") {
            Some(n) => self.extracts(n, vars)?,
            None => Vec::new(),
        };
        let auth = match f.get("auth") {
            Some(n) => Some(self.auth(n, vars)?),
            None => self.class_auth.clone(),
        };
        if auth.is_some()
            && let Some(key) = header_keys(f.get("headers")).find(|key| {
                key.scalar_text()
                    .is_some_and(|name| name.eq_ignore_ascii_case("authorization"))
            })
        {
            return Err(self.error(
                key,
                "header \"authorization\" and \"auth\" both set the credentials; keep one",
            ));
        }
        let endpoint = self.named_endpoint(node, &method, &name)?;
        let checks = match f.get("check") {
            Some(n) => self.checks(n, endpoint)?,
            None => Vec::new(),
        };
        Ok(Step {
            method,
            path,
            name,
            endpoint,
            query,
            headers,
            body,
            auth,
            expect,
            checks,
            extract,
        })
    }

    fn body(&self, node: &Node, f: &Fields<'_>, vars: &[String]) -> Result<Body, ScenarioError> {
        match (f.get("form"), f.get("json"), f.get("body")) {
            (None, None, None) => Ok(Body::None),
            (Some(n), None, None) => Ok(Body::Form(self.template_map(n, "form", vars)?)),
            (None, Some(n), None) => Ok(Body::Json(self.json(n, vars)?)),
            (None, None, Some(n)) => Ok(Body::Raw(self.template(n, "body", vars)?)),
            _ => Err(self.error(
                node,
                "a request has at most one of \"form\", \"json\" or \"body\"",
            )),
        }
    }

    fn template_map(
        &self,
        node: &Node,
        what: &str,
        vars: &[String],
    ) -> Result<Vec<(String, Template)>, ScenarioError> {
        let Kind::Map(entries) = &node.kind else {
            return Err(self.wrong_type(node, what, "a mapping of name: value"));
        };
        entries
            .iter()
            .map(|(k, v)| {
                let key = k
                    .scalar_text()
                    .ok_or_else(|| self.wrong_type(k, what, "a mapping with string keys"))?;
                Ok((key, self.template(v, what, vars)?))
            })
            .collect()
    }

    fn headers(
        &self,
        node: &Node,
        vars: &[String],
    ) -> Result<Vec<(String, Template)>, ScenarioError> {
        let headers = self.template_map(node, "headers", vars)?;
        let Kind::Map(entries) = &node.kind else {
            unreachable!("template_map accepted a mapping");
        };
        for ((name, _), (key, _)) in headers.iter().zip(entries) {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(self.error(
                    key,
                    format!(
                        "invalid header name {name:?}; allowed: letters, digits and !#$%&'*+-.^_`|~"
                    ),
                ));
            }
            if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
                return Err(self.error(
                    key,
                    format!("header {name:?} is set by cicada and cannot be overridden"),
                ));
            }
        }
        Ok(headers)
    }

    fn json(&self, node: &Node, vars: &[String]) -> Result<JsonTemplate, ScenarioError> {
        Ok(match &node.kind {
            Kind::Null => JsonTemplate::Null,
            Kind::Bool(b) => JsonTemplate::Bool(*b),
            Kind::Int(i) => JsonTemplate::Int(*i),
            Kind::Float(f) if f.is_finite() => JsonTemplate::Float(*f),
            Kind::Float(_) => return Err(self.error(node, "JSON has no NaN or infinity")),
            Kind::Str(_) => JsonTemplate::Str(self.template(node, "json", vars)?),
            Kind::Seq(items) => JsonTemplate::Array(
                items
                    .iter()
                    .map(|i| self.json(i, vars))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map(entries) => JsonTemplate::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = k.scalar_text().ok_or_else(|| {
                            self.wrong_type(k, "json", "a mapping with string keys")
                        })?;
                        Ok((key, self.json(v, vars)?))
                    })
                    .collect::<Result<_, ScenarioError>>()?,
            ),
        })
    }

    fn expect(&self, node: &Node) -> Result<Expect, ScenarioError> {
        let items: Vec<&Node> = match &node.kind {
            Kind::Seq(items) if !items.is_empty() => items.iter().collect(),
            Kind::Int(_) => vec![node],
            _ => {
                return Err(self.wrong_type(
                    node,
                    "expect",
                    "a status code or a non-empty list of status codes",
                ));
            }
        };
        let mut statuses = Vec::with_capacity(items.len());
        for item in items {
            match item.kind {
                Kind::Int(code) if (100..=599).contains(&code) => {
                    statuses.push(u16::try_from(code).expect("100..=599 fits in u16"));
                }
                _ => return Err(self.error(item, "expected an HTTP status code from 100 to 599")),
            }
        }
        Ok(Expect::Statuses(statuses))
    }

    fn extracts(&self, node: &Node, vars: &[String]) -> Result<Vec<Extract>, ScenarioError> {
        let Kind::Seq(items) = &node.kind else {
            return Err(self.wrong_type(node, "extract", "a list of {var, json} or {var, regex}"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let f = Fields::new(self, item, "extract", &["var", "json", "regex", "header"])?;
            let var_node = f.required(self, "var")?;
            let var_name = self.string(var_node, "var")?;
            let var = vars.iter().position(|v| *v == var_name).ok_or_else(|| {
                self.error(var_node, format!("invalid variable name {var_name:?}; allowed: letters, digits and _, not starting with a digit, not a built-in"))
            })?;
            let valid = var_name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.error(var_node, format!("invalid variable name {var_name:?}; allowed: letters, digits and _, not starting with a digit")));
            }
            let regex = match f.get("regex") {
                Some(n) => Some(self.capture_regex(n)?),
                None => None,
            };
            let source = match (f.get("json"), f.get("header"), regex) {
                (Some(n), None, None) => ExtractSource::JsonPointer(self.json_pointer(n)?),
                (None, None, Some(regex)) => ExtractSource::Regex(regex),
                (None, Some(n), regex) => ExtractSource::Header {
                    name: self.header_name(n)?,
                    regex,
                },
                _ => {
                    return Err(self.error(
                        item,
                        "an extract needs exactly one of \"json\" (a JSON pointer), \"regex\" (on the body) or \"header\" (a response header, with an optional \"regex\")",
                    ));
                }
            };
            out.push(Extract { var, source });
        }
        Ok(out)
    }

    /// A regex with exactly one capture group.
    fn capture_regex(&self, node: &Node) -> Result<regex::Regex, ScenarioError> {
        let text = self.string(node, "regex")?;
        let regex = regex::Regex::new(&text)
            .map_err(|e| self.error(node, format!("invalid regex {text:?}: {e}")))?;
        if regex.captures_len() != 2 {
            return Err(self.error(
                node,
                format!("regex {text:?} must have exactly one capture group"),
            ));
        }
        Ok(regex)
    }
}

/// The key nodes of a `headers:` mapping, in order.
fn header_keys(node: Option<&Node>) -> impl Iterator<Item = &Node> {
    let entries = match node.map(|n| &n.kind) {
        Some(Kind::Map(entries)) => entries.as_slice(),
        _ => &[],
    };
    entries.iter().map(|(key, _)| key)
}
