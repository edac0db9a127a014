//! The thresholds part of the report: one PASS/FAIL line each after the
//! endpoint table, and their entries in the summary JSON.

use std::fmt::Write as _;

use cicada_proto::v1::ThresholdResult;
use serde::Serialize;

/// One threshold in `--summary-json`.
#[derive(Debug, Serialize)]
pub struct ThresholdJson {
    /// `METHOD NAME`, or `null` for all endpoints together.
    pub endpoint: Option<String>,
    pub expression: String,
    /// In the metric's unit (ms, fraction, per second, count); `null` when
    /// nothing was measured.
    pub observed: Option<f64>,
    pub passed: bool,
    pub abort_on_fail: bool,
}

pub fn json(results: &[ThresholdResult]) -> Vec<ThresholdJson> {
    results
        .iter()
        .map(|t| ThresholdJson {
            endpoint: (!t.endpoint.is_empty()).then(|| t.endpoint.clone()),
            expression: t.expression.clone(),
            observed: t.observed,
            passed: t.passed,
            abort_on_fail: t.abort_on_fail,
        })
        .collect()
}

/// `Thresholds:` then `  PASS  total  p95 < 150ms  observed 20.48 ms` lines.
pub fn render(results: &[ThresholdResult], out: &mut String) {
    if results.is_empty() {
        return;
    }
    let scope = |t: &ThresholdResult| {
        if t.endpoint.is_empty() {
            "total".to_owned()
        } else {
            t.endpoint.clone()
        }
    };
    let scope_width = results.iter().map(|t| scope(t).len()).max().unwrap_or(0);
    let expression_width = results
        .iter()
        .map(|t| t.expression.len())
        .max()
        .unwrap_or(0);
    let failed = results.iter().filter(|t| !t.passed).count();
    let _ = writeln!(
        out,
        "\nThresholds: {} passed, {failed} failed",
        results.len() - failed
    );
    for t in results {
        let verdict = if t.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "  {verdict}  {:<scope_width$}  {:<expression_width$}  observed {}",
            scope(t),
            t.expression,
            t.observed_text
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Vec<ThresholdResult> {
        vec![
            ThresholdResult {
                expression: "p95 < 150ms".into(),
                observed: Some(20.48),
                observed_text: "20.48 ms".into(),
                passed: true,
                ..Default::default()
            },
            ThresholdResult {
                expression: "p50 < 5ms".into(),
                endpoint: "POST /metrics".into(),
                observed: Some(20.1),
                observed_text: "20.1 ms".into(),
                passed: false,
                abort_on_fail: true,
                ..Default::default()
            },
        ]
    }

    #[test]
    fn one_line_per_threshold() {
        let mut out = String::new();
        render(&results(), &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "Thresholds: 1 passed, 1 failed");
        assert_eq!(
            lines[2],
            "  PASS  total          p95 < 150ms  observed 20.48 ms"
        );
        assert_eq!(
            lines[3],
            "  FAIL  POST /metrics  p50 < 5ms    observed 20.1 ms"
        );
        let mut none = String::new();
        render(&[], &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn json_has_the_documented_fields() {
        let json = serde_json::to_value(json(&results())).unwrap();
        assert_eq!(json[0]["endpoint"], serde_json::Value::Null);
        assert_eq!(json[0]["expression"], "p95 < 150ms");
        assert_eq!(json[0]["observed"], 20.48);
        assert_eq!(json[0]["passed"], true);
        assert_eq!(json[1]["endpoint"], "POST /metrics");
        assert_eq!(json[1]["passed"], false);
        assert_eq!(json[1]["abort_on_fail"], true);
    }
}
