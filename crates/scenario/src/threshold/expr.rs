//! Threshold expressions: `METRIC OP VALUE`.

use std::fmt;

use super::ThresholdError;

/// What a threshold measures. Values are compared in the metric's unit:
/// milliseconds for latencies, a fraction (0 to 1) for `failure_rate`,
/// requests per second for `rps`, a count for `requests` and `failures`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency percentile, `0 < q < 100` (`p95` is `Percentile(95.0)`).
    Percentile(f64),
    /// Slowest request.
    Max,
    /// Fastest request.
    Min,
    /// Mean latency.
    Mean,
    /// Failed requests / completed requests.
    FailureRate,
    /// Completed requests / run duration so far.
    Rps,
    /// Completed requests.
    Requests,
    /// Failed requests.
    Failures,
    /// Upper bound of the requests missing from the run: what workers lost
    /// without their final flush may have taken with them, plus deltas
    /// evicted from full worker buffers (docs/RELIABILITY.md). Run-wide.
    Unrecorded,
}

/// The metrics an expression may use, for error messages.
const METRICS: &str =
    "pNN (e.g. p50, p95, p99.9), max, min, mean, failure_rate, rps, requests, failures, unrecorded";
/// The operators, for error messages.
const OPS: &str = "<, <=, >, >=";
/// Latency units.
const UNITS: &str = "us, ms or s";

impl Metric {
    fn parse(text: &str) -> Result<Metric, ThresholdError> {
        Ok(match text {
            "max" => Metric::Max,
            "min" => Metric::Min,
            "mean" => Metric::Mean,
            "failure_rate" => Metric::FailureRate,
            "rps" => Metric::Rps,
            "requests" => Metric::Requests,
            "failures" => Metric::Failures,
            "unrecorded" => Metric::Unrecorded,
            _ => {
                let q = text
                    .strip_prefix('p')
                    .filter(|q| !q.is_empty() && q.chars().all(|c| c.is_ascii_digit() || c == '.'))
                    .and_then(|q| q.parse::<f64>().ok())
                    .ok_or_else(|| {
                        ThresholdError(format!("unknown metric {text:?}; allowed: {METRICS}"))
                    })?;
                if !(q > 0.0 && q < 100.0) {
                    return Err(ThresholdError(format!(
                        "percentile {text:?} is out of range; allowed: more than p0 and less than p100 (use min or max)"
                    )));
                }
                Metric::Percentile(q)
            }
        })
    }

    /// True for latency metrics (values in milliseconds, written with a unit).
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::Percentile(_) | Metric::Max | Metric::Min | Metric::Mean
        )
    }

    /// An observed value as the report shows it: `180.2 ms`, `1.25%`,
    /// `950.3/s`, `1200`.
    pub fn format_observed(self, value: f64) -> String {
        match self {
            Metric::Percentile(_) | Metric::Max | Metric::Min | Metric::Mean => {
                format!("{} ms", trim_decimals(value, 2))
            }
            Metric::FailureRate => format!("{}%", trim_decimals(value * 100.0, 2)),
            Metric::Rps => format!("{}/s", trim_decimals(value, 1)),
            Metric::Requests | Metric::Failures | Metric::Unrecorded => format!("{value:.0}"),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Percentile(q) => write!(f, "p{q}"),
            Metric::Max => f.write_str("max"),
            Metric::Min => f.write_str("min"),
            Metric::Mean => f.write_str("mean"),
            Metric::FailureRate => f.write_str("failure_rate"),
            Metric::Rps => f.write_str("rps"),
            Metric::Requests => f.write_str("requests"),
            Metric::Failures => f.write_str("failures"),
            Metric::Unrecorded => f.write_str("unrecorded"),
        }
    }
}

/// `value` with at most `decimals` decimals and no trailing zeros.
fn trim_decimals(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Whether `observed OP limit` holds.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

/// A threshold expression such as `p95 < 150ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub metric: Metric,
    pub op: Op,
    /// The limit in the metric's unit (see [`Metric`]).
    pub limit: f64,
    /// The limit as written, without spaces (`150ms`, `1%`).
    limit_text: String,
}

impl Expr {
    /// Parses `METRIC OP VALUE`; spaces around the operator are optional.
    pub fn parse(text: &str) -> Result<Expr, ThresholdError> {
        let trimmed = text.trim();
        let op_at = trimmed.find(['<', '>', '=', '!']).ok_or_else(|| {
            ThresholdError(format!(
                "threshold {trimmed:?} has no operator; expected METRIC OP VALUE, e.g. p95 < 150ms (operators: {OPS})"
            ))
        })?;
        let metric_text = trimmed[..op_at].trim();
        let rest = &trimmed[op_at..];
        let (op, value_text) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            let shown: String = rest.chars().take(2).collect();
            return Err(ThresholdError(format!(
                "unknown operator {shown:?} in threshold {trimmed:?}; allowed: {OPS}"
            )));
        };
        if metric_text.is_empty() {
            return Err(ThresholdError(format!(
                "threshold {trimmed:?} has no metric; allowed: {METRICS}"
            )));
        }
        let metric = Metric::parse(metric_text)?;
        let value_text = value_text.trim();
        if value_text.is_empty() {
            return Err(ThresholdError(format!(
                "threshold {trimmed:?} has no value after {op}"
            )));
        }
        let (limit, limit_text) = limit(metric, value_text)?;
        Ok(Expr {
            metric,
            op,
            limit,
            limit_text,
        })
    }

    /// Whether an observed value (in the metric's unit) passes.
    pub fn passes(&self, observed: f64) -> bool {
        self.op.holds(observed, self.limit)
    }
}

impl fmt::Display for Expr {
    /// Canonical text, `p95 < 150ms`, which [`Expr::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op, self.limit_text)
    }
}

/// Splits `150ms` into its number and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

fn number(text: &str, whole: &str, what: &str) -> Result<f64, ThresholdError> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| ThresholdError(format!("invalid value {whole:?}; expected {what}")))
}

/// The limit in the metric's unit and its canonical text.
fn limit(metric: Metric, text: &str) -> Result<(f64, String), ThresholdError> {
    let (digits, unit) = split_number(text);
    match metric {
        Metric::Percentile(_) | Metric::Max | Metric::Min | Metric::Mean => {
            let what = format!("a duration with a unit ({UNITS}), e.g. 150ms");
            let value = number(digits, text, &what)?;
            let ms_per_unit = match unit {
                "us" => 1e-3,
                "ms" => 1.0,
                "s" => 1e3,
                "" => {
                    return Err(ThresholdError(format!(
                        "latency {text:?} needs a unit; allowed: {UNITS} (e.g. {text}ms)"
                    )));
                }
                other => {
                    return Err(ThresholdError(format!(
                        "unknown unit {other:?} in {text:?}; allowed: {UNITS}"
                    )));
                }
            };
            Ok((value * ms_per_unit, format!("{digits}{unit}")))
        }
        Metric::FailureRate => {
            let what = "a percentage (1%) or a fraction from 0 to 1 (0.01)";
            let value = number(digits, text, what)?;
            let fraction = match unit {
                "%" => value / 100.0,
                "" => value,
                _ => {
                    return Err(ThresholdError(format!(
                        "invalid value {text:?}; expected {what}"
                    )));
                }
            };
            if fraction > 1.0 {
                return Err(ThresholdError(format!(
                    "failure rate {text:?} is more than 100%; expected {what}"
                )));
            }
            Ok((fraction, format!("{digits}{unit}")))
        }
        Metric::Rps => {
            if !unit.is_empty() {
                return Err(ThresholdError(format!(
                    "invalid value {text:?} for rps; expected a number of requests per second, e.g. 100000"
                )));
            }
            Ok((
                number(digits, text, "a number, e.g. 100000")?,
                digits.to_owned(),
            ))
        }
        Metric::Requests | Metric::Failures | Metric::Unrecorded => {
            if !unit.is_empty() || digits.contains('.') || digits.is_empty() {
                return Err(ThresholdError(format!(
                    "invalid value {text:?} for {metric}; expected a whole number, e.g. 1000"
                )));
            }
            Ok((number(digits, text, "a whole number")?, digits.to_owned()))
        }
    }
}
