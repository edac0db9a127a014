//! The checks part of the report (`check:` in the scenario): one line per
//! check with its pass/fail counts after the endpoint table, like k6's
//! `✓`/`✗` list, and their entries in the summary JSON.

use std::fmt::Write as _;

use cicada_proto::v1::CheckStat;
use serde::Serialize;

/// One check in `--summary-json`.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    /// `METHOD NAME` of the endpoint whose responses it checks.
    pub endpoint: String,
    pub name: String,
    pub passed: u64,
    pub failed: u64,
}

pub fn json(checks: &[CheckStat]) -> Vec<CheckJson> {
    checks
        .iter()
        .map(|c| CheckJson {
            endpoint: c.endpoint.clone(),
            name: c.name.clone(),
            passed: c.passed,
            failed: c.failed,
        })
        .collect()
}

/// `Checks: 1 of 2 failing` then `  ok    100.00%  GET /  body contains "ok"`.
pub fn render(checks: &[CheckStat], out: &mut String) {
    if checks.is_empty() {
        return;
    }
    let failing = checks.iter().filter(|c| c.failed > 0).count();
    let _ = writeln!(out, "\nChecks: {} of {} failing", failing, checks.len());
    let endpoint_width = checks.iter().map(|c| c.endpoint.len()).max().unwrap_or(0);
    for c in checks {
        let total = c.passed + c.failed;
        let verdict = if c.failed > 0 { "FAIL" } else { "ok" };
        let rate = if total > 0 {
            format!("{:.2}%", 100.0 * c.passed as f64 / total as f64)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "  {verdict:<4}  {rate:>7}  {:<endpoint_width$}  {}  ({} passed, {} failed)",
            c.endpoint, c.name, c.passed, c.failed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Vec<CheckStat> {
        vec![
            CheckStat {
                endpoint: "GET /".into(),
                name: "body contains \"ok\"".into(),
                passed: 10,
                failed: 0,
            },
            CheckStat {
                endpoint: "POST /login".into(),
                name: "token".into(),
                passed: 3,
                failed: 1,
            },
        ]
    }

    #[test]
    fn one_line_per_check_with_its_rate() {
        let mut out = String::new();
        render(&checks(), &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "Checks: 1 of 2 failing");
        assert_eq!(
            lines[2],
            "  ok    100.00%  GET /        body contains \"ok\"  (10 passed, 0 failed)"
        );
        assert_eq!(
            lines[3],
            "  FAIL   75.00%  POST /login  token  (3 passed, 1 failed)"
        );
        let json = serde_json::to_value(json(&checks())).unwrap();
        assert_eq!(json[1]["endpoint"], "POST /login");
        assert_eq!(json[1]["failed"], 1);
    }
}
