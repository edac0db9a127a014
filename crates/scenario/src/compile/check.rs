//! Compiles `check:` lists and `auth:`.

use crate::ScenarioError;
use crate::check::{Check, CheckDef, CheckKind};
use crate::model::BasicAuth;
use crate::node::{Kind, Node};

use super::Compiler;
use super::fields::Fields;

const CHECK_KEYS: &[&str] = &[
    "name",
    "body_contains",
    "body_matches",
    "json",
    "header",
    "equals",
    "exists",
];
const CHECK_KINDS: &str = "body_contains: TEXT, body_matches: REGEX, json: POINTER with equals: VALUE or exists: true, header: NAME with equals: VALUE";

impl Compiler<'_> {
    /// `check:` of a request of `endpoint`.
    pub(super) fn checks(
        &mut self,
        node: &Node,
        endpoint: usize,
    ) -> Result<Vec<Check>, ScenarioError> {
        let Kind::Seq(items) = &node.kind else {
            return Err(self.wrong_type(node, "check", "a list of checks"));
        };
        let mut checks = Vec::with_capacity(items.len());
        for item in items {
            let f = Fields::new(self, item, "check", CHECK_KEYS)?;
            let kind = self.check_kind(item, &f)?;
            let name = match f.get("name") {
                Some(n) => self.non_empty_string(n, "name")?,
                None => kind.describe(),
            };
            let index = self.check_def(endpoint, name);
            if checks.iter().any(|c: &Check| c.index == index) {
                return Err(self.error(
                    item,
                    format!(
                        "duplicate check {:?} on this request; give one a \"name\"",
                        self.checks[index].name
                    ),
                ));
            }
            checks.push(Check { index, kind });
        }
        Ok(checks)
    }

    fn check_kind(&self, item: &Node, f: &Fields<'_>) -> Result<CheckKind, ScenarioError> {
        let what = [
            f.get("body_contains"),
            f.get("body_matches"),
            f.get("json"),
            f.get("header"),
        ];
        if what.iter().flatten().count() != 1 {
            return Err(self.error(item, format!("a check needs exactly one of: {CHECK_KINDS}")));
        }
        let only = |allowed: &[&str]| -> Result<(), ScenarioError> {
            for key in ["equals", "exists"] {
                if let Some(n) = f.get(key)
                    && !allowed.contains(&key)
                {
                    return Err(self.error(
                        n,
                        format!("\"{key}\" does not apply here; checks: {CHECK_KINDS}"),
                    ));
                }
            }
            Ok(())
        };
        if let Some(n) = f.get("body_contains") {
            only(&[])?;
            let text = n
                .scalar_text()
                .ok_or_else(|| self.wrong_type(n, "body_contains", "a string"))?;
            return Ok(CheckKind::BodyContains(text));
        }
        if let Some(n) = f.get("body_matches") {
            only(&[])?;
            let text = self.string(n, "body_matches")?;
            let regex = regex::Regex::new(&text)
                .map_err(|e| self.error(n, format!("invalid regex {text:?}: {e}")))?;
            return Ok(CheckKind::BodyMatches(regex));
        }
        if let Some(n) = f.get("json") {
            only(&["equals", "exists"])?;
            let pointer = self.json_pointer(n)?;
            return match (f.get("equals"), f.get("exists")) {
                (Some(value), None) => Ok(CheckKind::JsonEquals {
                    pointer,
                    value: self.json_scalar(value)?,
                }),
                (None, Some(exists)) if matches!(exists.kind, Kind::Bool(true)) => {
                    Ok(CheckKind::JsonExists(pointer))
                }
                (None, Some(exists)) => Err(self.error(
                    exists,
                    "\"exists\" must be true (check for a value that must not be there with equals: null)",
                )),
                _ => Err(self.error(
                    item,
                    "a json check needs exactly one of \"equals: VALUE\" or \"exists: true\"",
                )),
            };
        }
        let n = f.required(self, "header")?;
        only(&["equals"])?;
        let name = self.header_name(n)?;
        let value = f
            .get("equals")
            .ok_or_else(|| self.error(item, "a header check needs \"equals: VALUE\""))?;
        let value = value
            .scalar_text()
            .ok_or_else(|| self.wrong_type(value, "equals", "a string"))?;
        Ok(CheckKind::HeaderEquals { name, value })
    }

    /// The check of `endpoint` named `name`, added if new.
    fn check_def(&mut self, endpoint: usize, name: String) -> usize {
        if let Some(i) = self
            .checks
            .iter()
            .position(|c| c.endpoint == endpoint && c.name == name)
        {
            return i;
        }
        self.checks.push(CheckDef { endpoint, name });
        self.checks.len() - 1
    }

    /// A YAML scalar as the JSON value a check compares with.
    fn json_scalar(&self, node: &Node) -> Result<serde_json::Value, ScenarioError> {
        Ok(match &node.kind {
            Kind::Null => serde_json::Value::Null,
            Kind::Bool(b) => (*b).into(),
            Kind::Int(i) => (*i).into(),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .ok_or_else(|| self.error(node, "JSON has no NaN or infinity"))?,
            Kind::Str(s) => s.clone().into(),
            Kind::Seq(_) | Kind::Map(_) => {
                return Err(self.wrong_type(node, "equals", "a string, number, boolean or null"));
            }
        })
    }

    /// A JSON pointer (RFC 6901): empty or starting with `/`.
    pub(super) fn json_pointer(&self, node: &Node) -> Result<String, ScenarioError> {
        let pointer = self.string(node, "json")?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(self.error(
                node,
                format!("invalid JSON pointer {pointer:?}; it must be empty or start with \"/\", e.g. /token"),
            ));
        }
        Ok(pointer)
    }

    /// A header name (an HTTP token), lowercased.
    pub(super) fn header_name(&self, node: &Node) -> Result<http::HeaderName, ScenarioError> {
        let name = self.string(node, "header")?;
        http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            self.error(
                node,
                format!(
                    "invalid header name {name:?}; allowed: letters, digits and !#$%&'*+-.^_`|~"
                ),
            )
        })
    }

    /// `auth: {basic: [USER, PASSWORD]}`.
    pub(super) fn auth(&self, node: &Node, vars: &[String]) -> Result<BasicAuth, ScenarioError> {
        let f = Fields::new(self, node, "auth", &["basic"])?;
        let basic = f.required(self, "basic")?;
        match &basic.kind {
            Kind::Seq(pair) if pair.len() == 2 => Ok(BasicAuth {
                user: self.template(&pair[0], "basic auth user", vars)?,
                password: self.template(&pair[1], "basic auth password", vars)?,
            }),
            _ => Err(self.wrong_type(basic, "basic", "a list [USER, PASSWORD]")),
        }
    }
}
