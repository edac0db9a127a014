//! `connection:`: how users hold their connections (keep-alive, recycling,
//! one per request or per iteration) and the fleet's connection rate.

use crate::ScenarioError;
use crate::model::ConnectionPolicy;
use crate::node::{Kind, Node};

use super::Compiler;
use super::fields::Fields;

const SCENARIO_KEYS: &[&str] = &[
    "keep_alive",
    "per_iteration",
    "max_requests",
    "max_age",
    "rate",
];
const CLASS_KEYS: &[&str] = &["keep_alive", "per_iteration", "max_requests", "max_age"];
const SHORTHANDS: &str = "keep_alive (one connection per user, the default), close (a new connection per request), per_iteration (a new connection per task iteration)";

impl Compiler<'_> {
    /// The scenario's `connection:`: the policy every class starts from and
    /// the fleet's limit of new connections per second.
    pub(super) fn scenario_connection(
        &self,
        node: &Node,
    ) -> Result<(ConnectionPolicy, Option<f64>), ScenarioError> {
        if let Some(policy) = self.connection_shorthand(node)? {
            return Ok((policy, None));
        }
        let fields = Fields::new(self, node, "connection", SCENARIO_KEYS)?;
        let policy = self.connection_fields(&fields, ConnectionPolicy::default())?;
        let rate = match fields.get("rate") {
            Some(rate) => Some(self.rate(rate)?),
            None => None,
        };
        Ok((policy, rate))
    }

    /// A user class's `connection:`, over the scenario's `base` key by key.
    pub(super) fn class_connection(
        &self,
        node: &Node,
        base: ConnectionPolicy,
    ) -> Result<ConnectionPolicy, ScenarioError> {
        if let Some(policy) = self.connection_shorthand(node)? {
            return Ok(policy);
        }
        if let Kind::Map(entries) = &node.kind
            && let Some((key, _)) = entries
                .iter()
                .find(|(key, _)| matches!(&key.kind, Kind::Str(k) if k == "rate"))
        {
            return Err(self.error(
                key,
                "a connection rate is for the whole run: set \"rate\" in the scenario's \"connection\", not a user class's",
            ));
        }
        let fields = Fields::new(self, node, "connection", CLASS_KEYS)?;
        self.connection_fields(&fields, base)
    }

    fn connection_shorthand(&self, node: &Node) -> Result<Option<ConnectionPolicy>, ScenarioError> {
        let Kind::Str(text) = &node.kind else {
            return Ok(None);
        };
        let policy = match text.as_str() {
            "keep_alive" | "keep-alive" => ConnectionPolicy::default(),
            "close" => ConnectionPolicy {
                keep_alive: false,
                ..ConnectionPolicy::default()
            },
            "per_iteration" => ConnectionPolicy {
                per_iteration: true,
                ..ConnectionPolicy::default()
            },
            other => {
                return Err(self.error(
                    node,
                    format!(
                        "invalid connection {other:?}; allowed: {SHORTHANDS}, or a mapping with keys: {}",
                        SCENARIO_KEYS.join(", ")
                    ),
                ));
            }
        };
        Ok(Some(policy))
    }

    fn connection_fields(
        &self,
        fields: &Fields<'_>,
        base: ConnectionPolicy,
    ) -> Result<ConnectionPolicy, ScenarioError> {
        let flag = |key: &str, default: bool| -> Result<bool, ScenarioError> {
            match fields.get(key) {
                None => Ok(default),
                Some(node) => match node.kind {
                    Kind::Bool(on) => Ok(on),
                    _ => Err(self.wrong_type(node, &format!("connection.{key}"), "true or false")),
                },
            }
        };
        let max_requests = match fields.get("max_requests") {
            None => base.max_requests,
            Some(node) => match node.kind {
                Kind::Int(n) if n >= 1 => Some(n as u64),
                _ => {
                    return Err(self.error(
                        node,
                        "connection.max_requests must be a whole number of at least 1 (requests sent on a connection before it is replaced)",
                    ));
                }
            },
        };
        let max_age = match fields.get("max_age") {
            None => base.max_age,
            Some(node) => {
                let age = self.duration(node)?;
                if age.is_zero() {
                    return Err(self.error(
                        node,
                        "connection.max_age must be more than 0 (use keep_alive: false for a new connection per request)",
                    ));
                }
                Some(age)
            }
        };
        Ok(ConnectionPolicy {
            keep_alive: flag("keep_alive", base.keep_alive)?,
            per_iteration: flag("per_iteration", base.per_iteration)?,
            max_requests,
            max_age,
        })
    }
}
