//! Thresholds: pass/fail criteria of a run, k6-like (`p95 < 150ms`,
//! `failure_rate < 1%`, `rps >= 100000`), for all endpoints together or for
//! one endpoint.
//!
//! [`Expr::parse`] reads an expression; [`Threshold::from_flag`] reads the
//! CLI's `--threshold` syntax (`POST /metrics: p99<500ms abort_on_fail=30s`).
//! The scenario's `thresholds:` list is compiled in `compile/thresholds.rs`.
//! Evaluation needs the merged histograms and happens in the collector; this
//! module only says what is compared ([`Metric`]), how ([`Op`]) and how an
//! observed value is shown ([`Metric::format_observed`]).

mod expr;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use crate::EndpointDef;

pub use expr::{Expr, Metric, Op};

/// Why a threshold is invalid; the message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

/// One pass/fail criterion of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is compared.
    pub expr: Expr,
    /// `METHOD NAME` of one endpoint (as in the endpoint table), or `None`
    /// for all endpoints together.
    pub endpoint: Option<String>,
    /// Stop the run as soon as the live value fails.
    pub abort_on_fail: bool,
    /// With `abort_on_fail`: never abort before the run has lasted this long.
    pub delay: Duration,
}

/// The suffix of a `--threshold` flag that asks for abort on fail.
const ABORT: &str = "abort_on_fail";

impl Threshold {
    /// Parses the `--threshold` flag syntax: `[ENDPOINT: ]EXPR[ abort_on_fail[=DELAY]]`,
    /// e.g. `p95<150ms`, `POST /metrics: p99 < 500ms abort_on_fail=30s`. The
    /// endpoint is everything before the last `": "` (names like
    /// `/items/:id` contain `:`); it is checked by [`Threshold::check_endpoint`].
    pub fn parse_flag(text: &str) -> Result<Threshold, ThresholdError> {
        let mut rest = text.trim();
        let mut abort_on_fail = false;
        let mut delay = Duration::ZERO;
        if let Some((head, last)) = rest.rsplit_once(char::is_whitespace)
            && let Some(suffix) = last.strip_prefix(ABORT)
        {
            abort_on_fail = true;
            if let Some(value) = suffix.strip_prefix('=') {
                delay = parse_delay(value)?;
            } else if !suffix.is_empty() {
                return Err(ThresholdError(format!(
                    "invalid suffix {last:?}; expected {ABORT} or {ABORT}=DELAY (e.g. {ABORT}=30s)"
                )));
            }
            rest = head.trim_end();
        }
        let (endpoint, expression) = match rest.rsplit_once(": ") {
            Some((endpoint, expression)) => (Some(endpoint.trim()), expression),
            None => (None, rest),
        };
        if endpoint.is_some_and(str::is_empty) {
            return Err(ThresholdError(format!(
                "threshold {text:?} has an empty endpoint before \": \"; expected METHOD NAME, e.g. POST /metrics"
            )));
        }
        Ok(Threshold {
            expr: Expr::parse(expression)?,
            endpoint: endpoint.map(normalize_endpoint),
            abort_on_fail,
            delay,
        })
    }

    /// Parses a `--threshold` flag and checks its endpoint against `endpoints`.
    pub fn from_flag(text: &str, endpoints: &[EndpointDef]) -> Result<Threshold, ThresholdError> {
        let threshold = Self::parse_flag(text)?;
        threshold.check_endpoint(endpoints)?;
        Ok(threshold)
    }

    /// Checks that the endpoint, if any, is in `endpoints`; the error lists them.
    pub fn check_endpoint(&self, endpoints: &[EndpointDef]) -> Result<(), ThresholdError> {
        match &self.endpoint {
            None => Ok(()),
            Some(name) if self.expr.metric == Metric::Unrecorded => Err(ThresholdError(format!(
                "threshold on {name:?}: unrecorded is measured for the whole run; write it without an endpoint"
            ))),
            Some(name) if endpoint_index(endpoints, name).is_some() => Ok(()),
            Some(name) => Err(ThresholdError(format!(
                "unknown endpoint {name:?} in threshold; expected METHOD NAME, one of: {}",
                endpoint_list(endpoints)
            ))),
        }
    }

    /// `total` or the endpoint, as the final report shows the scope.
    pub fn scope(&self) -> &str {
        self.endpoint.as_deref().unwrap_or("total")
    }
}

impl fmt::Display for Threshold {
    /// The flag syntax, which [`Threshold::parse_flag`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(endpoint) = &self.endpoint {
            write!(f, "{endpoint}: ")?;
        }
        write!(f, "{}", self.expr)?;
        if self.abort_on_fail {
            write!(f, " {ABORT}")?;
            if self.delay.subsec_millis() != 0 {
                write!(f, "={}ms", self.delay.as_millis())?;
            } else if !self.delay.is_zero() {
                write!(f, "={}s", self.delay.as_secs())?;
            }
        }
        Ok(())
    }
}

/// The index of `METHOD NAME` in the endpoint table.
pub fn endpoint_index(endpoints: &[EndpointDef], method_name: &str) -> Option<usize> {
    let (method, name) = method_name.trim().split_once(' ')?;
    endpoints
        .iter()
        .position(|e| e.method == method && e.name == name.trim_start())
}

/// `GET /a, POST /b`, for error messages.
pub(crate) fn endpoint_list(endpoints: &[EndpointDef]) -> String {
    let list = endpoints
        .iter()
        .filter(|e| !crate::is_connection_method(&e.method))
        .map(|e| format!("{} {}", e.method, e.name))
        .collect::<Vec<_>>()
        .join(", ");
    if endpoints.iter().any(|e| e.method == crate::CONNECT_METHOD) {
        format!("{list} (or CONNECT or TLS then a request's METHOD NAME, for its new connections)")
    } else {
        list
    }
}

/// `POST   /x` as `POST /x`.
pub(crate) fn normalize_endpoint(text: &str) -> String {
    match text.trim().split_once(' ') {
        Some((method, name)) => format!("{method} {}", name.trim_start()),
        None => text.trim().to_owned(),
    }
}

/// A delay like `30s` or `500ms` (`0` without a unit).
pub(crate) fn parse_delay(text: &str) -> Result<Duration, ThresholdError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    crate::compile::parse_duration(text).ok_or_else(|| {
        ThresholdError(format!(
            "invalid delay {text:?}; expected a duration like 500ms, 30s or 2m"
        ))
    })
}
