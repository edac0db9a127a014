//! The scenario's `thresholds:` list: strings (`p95 < 150ms`) or mappings
//! (`{expr, endpoint, abort_on_fail, delay}`).

use std::time::Duration;

use crate::ScenarioError;
use crate::node::{Kind, Node};
use crate::threshold::{Expr, Metric, Threshold, endpoint_list, normalize_endpoint};

use super::Compiler;
use super::fields::Fields;

const THRESHOLD_KEYS: &[&str] = &["expr", "endpoint", "abort_on_fail", "delay"];
const THRESHOLD_FORMS: &str =
    "a string like \"p95 < 150ms\" or a mapping with keys: expr, endpoint, abort_on_fail, delay";

impl Compiler<'_> {
    /// Compiles `thresholds:` against the endpoint table built so far (call
    /// it after every user class).
    pub(super) fn thresholds(&self, node: &Node) -> Result<Vec<Threshold>, ScenarioError> {
        let Kind::Seq(items) = &node.kind else {
            return Err(self.wrong_type(node, "thresholds", "a list of thresholds"));
        };
        items.iter().map(|item| self.threshold(item)).collect()
    }

    fn threshold(&self, node: &Node) -> Result<Threshold, ScenarioError> {
        match &node.kind {
            Kind::Str(text) => Ok(Threshold {
                expr: self.expr(node, text)?,
                endpoint: None,
                abort_on_fail: false,
                delay: Duration::ZERO,
            }),
            Kind::Map(_) => {
                let f = Fields::new(self, node, "threshold", THRESHOLD_KEYS)?;
                let expr_node = f.required(self, "expr")?;
                let expr = self.expr(expr_node, &self.string(expr_node, "expr")?)?;
                let endpoint = match f.get("endpoint") {
                    Some(n) if expr.metric == Metric::Unrecorded => {
                        return Err(self.error(
                            n,
                            "unrecorded is measured for the whole run; write it without an endpoint",
                        ));
                    }
                    Some(n) => Some(self.threshold_endpoint(n)?),
                    None => None,
                };
                let abort_on_fail = match f.get("abort_on_fail") {
                    Some(n) => match n.kind {
                        Kind::Bool(b) => b,
                        _ => return Err(self.wrong_type(n, "abort_on_fail", "true or false")),
                    },
                    None => false,
                };
                let delay = match f.get("delay") {
                    Some(n) if !abort_on_fail => {
                        return Err(
                            self.error(n, "\"delay\" only applies with \"abort_on_fail: true\"")
                        );
                    }
                    Some(n) => self.duration(n)?,
                    None => Duration::ZERO,
                };
                Ok(Threshold {
                    expr,
                    endpoint,
                    abort_on_fail,
                    delay,
                })
            }
            _ => Err(self.error(
                node,
                format!(
                    "invalid threshold; expected {THRESHOLD_FORMS}, found {}",
                    node.kind.describe()
                ),
            )),
        }
    }

    fn expr(&self, node: &Node, text: &str) -> Result<Expr, ScenarioError> {
        Expr::parse(text).map_err(|e| self.error(node, e.0))
    }

    fn threshold_endpoint(&self, node: &Node) -> Result<String, ScenarioError> {
        let text = normalize_endpoint(&self.string(node, "endpoint")?);
        let known = self
            .endpoints
            .iter()
            .any(|e| text.split_once(' ') == Some((e.method.as_str(), e.name.as_str())));
        if !known {
            return Err(self.error(
                node,
                format!(
                    "unknown endpoint {text:?} in threshold; expected METHOD NAME, one of: {}",
                    endpoint_list(&self.endpoints)
                ),
            ));
        }
        Ok(text)
    }
}
