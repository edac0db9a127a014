//! The final report of a run: a Locust-style table per endpoint (stdout),
//! the thresholds with PASS/FAIL, and the machine-readable summary
//! (`--summary-json`).

mod thresholds;

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use cicada_proto::v1::{EndpointStats, RunStats};
use serde::Serialize;

/// `--summary-json` document.
#[derive(Debug, Serialize)]
pub struct SummaryJson {
    pub run_id: String,
    pub scenario: String,
    pub state: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_s: f64,
    pub endpoints: Vec<EndpointJson>,
    pub total: EndpointJson,
    pub failures: Vec<FailureJson>,
    pub thresholds: Vec<thresholds::ThresholdJson>,
}

#[derive(Debug, Serialize)]
pub struct EndpointJson {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub cancelled: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub avg_size: f64,
}

#[derive(Debug, Serialize)]
pub struct FailureJson {
    pub method: String,
    pub name: String,
    pub kind: String,
    pub count: u64,
    pub last_message: String,
}

impl From<&EndpointStats> for EndpointJson {
    fn from(e: &EndpointStats) -> Self {
        Self {
            method: e.method.clone(),
            name: e.name.clone(),
            requests: e.requests,
            failures: e.failures,
            cancelled: e.cancelled,
            rps: e.rps,
            p50_ms: e.p50_ms,
            p90_ms: e.p90_ms,
            p95_ms: e.p95_ms,
            p99_ms: e.p99_ms,
            p999_ms: e.p999_ms,
            max_ms: e.max_ms,
            min_ms: e.min_ms,
            mean_ms: e.mean_ms,
            avg_size: e.avg_size,
        }
    }
}

/// Builds the summary document from the final statistics.
pub fn summary_json(stats: &RunStats, state: &str) -> SummaryJson {
    let started = UNIX_EPOCH + Duration::from_millis(stats.started_at_ms.max(0) as u64);
    SummaryJson {
        run_id: stats.run_id.clone(),
        scenario: stats.scenario_name.clone(),
        state: state.to_owned(),
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        duration_s: stats.duration_s,
        endpoints: stats.endpoints.iter().map(EndpointJson::from).collect(),
        total: EndpointJson::from(&stats.total.clone().unwrap_or_default()),
        failures: stats
            .failures
            .iter()
            .map(|f| FailureJson {
                method: f.method.clone(),
                name: f.name.clone(),
                kind: f.kind.clone(),
                count: f.count,
                last_message: f.last_message.clone(),
            })
            .collect(),
        thresholds: thresholds::json(&stats.thresholds),
    }
}

const HEADER: [&str; 12] = [
    "Method", "Name", "Requests", "Failures", "RPS", "p50", "p90", "p95", "p99", "p99.9", "Max",
    "Avg size",
];

fn row(e: &EndpointStats, method: &str, name: &str) -> [String; 12] {
    let failure_pct = if e.requests > 0 {
        100.0 * e.failures as f64 / e.requests as f64
    } else {
        0.0
    };
    [
        method.to_owned(),
        name.to_owned(),
        e.requests.to_string(),
        format!("{} ({:.2}%)", e.failures, failure_pct),
        format!("{:.1}", e.rps),
        format!("{:.2}", e.p50_ms),
        format!("{:.2}", e.p90_ms),
        format!("{:.2}", e.p95_ms),
        format!("{:.2}", e.p99_ms),
        format!("{:.2}", e.p999_ms),
        format!("{:.2}", e.max_ms),
        format!("{:.0} B", e.avg_size),
    ]
}

/// The final table: one row per endpoint then the aggregate, latencies in
/// milliseconds with two decimals (not rounded to Locust's coarse steps),
/// followed by the failures by kind.
pub fn render_table(stats: &RunStats) -> String {
    let total = stats.total.clone().unwrap_or_default();
    let mut rows: Vec<[String; 12]> = stats
        .endpoints
        .iter()
        .map(|e| row(e, &e.method, &e.name))
        .collect();
    let aggregated = row(&total, "", "Aggregated");
    let mut widths = HEADER.map(str::len);
    for r in rows.iter().chain(std::iter::once(&aggregated)) {
        for (width, cell) in widths.iter_mut().zip(r) {
            *width = (*width).max(cell.len());
        }
    }
    let render = |cells: &[String; 12], out: &mut String| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i < 2 {
                let _ = write!(line, "{cell:<width$}  ");
            } else {
                let _ = write!(line, "{cell:>width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} ({}) — {:.1} s, latencies in ms",
        stats.run_id, stats.scenario_name, stats.duration_s
    );
    render(&HEADER.map(str::to_owned), &mut out);
    let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1));
    out.push_str(&rule);
    out.push('\n');
    rows.sort_by(|a, b| (&a[1], &a[0]).cmp(&(&b[1], &b[0])));
    for r in &rows {
        render(r, &mut out);
    }
    out.push_str(&rule);
    out.push('\n');
    render(&aggregated, &mut out);
    if total.cancelled > 0 {
        let _ = writeln!(
            out,
            "\n{} requests were still in flight when the run stopped and were cancelled",
            total.cancelled
        );
    }
    if !stats.failures.is_empty() {
        let _ = writeln!(out, "\nFailures:");
        for f in &stats.failures {
            let _ = writeln!(
                out,
                "  {:>8}  {} {}  {}: {}",
                f.count, f.method, f.name, f.kind, f.last_message
            );
        }
    }
    thresholds::render(&stats.thresholds, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cicada_proto::v1::FailureStat;

    fn stats() -> RunStats {
        let login = EndpointStats {
            method: "POST".into(),
            name: "/login".into(),
            requests: 10,
            failures: 1,
            rps: 1.0,
            p50_ms: 1.25,
            max_ms: 3.5,
            avg_size: 20.0,
            ..Default::default()
        };
        let metrics = EndpointStats {
            method: "POST".into(),
            name: "/metrics".into(),
            requests: 9990,
            rps: 999.0,
            p50_ms: 0.75,
            ..Default::default()
        };
        RunStats {
            run_id: "run-1".into(),
            scenario_name: "iot-device".into(),
            started_at_ms: 1_700_000_000_000,
            duration_s: 10.0,
            endpoints: vec![metrics.clone(), login.clone()],
            total: Some(EndpointStats {
                requests: 10_000,
                failures: 1,
                rps: 1000.0,
                ..Default::default()
            }),
            failures: vec![FailureStat {
                method: "POST".into(),
                name: "/login".into(),
                kind: "status 500".into(),
                count: 1,
                last_message: "500 Internal Server Error".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn table_has_one_row_per_endpoint_and_the_aggregate() {
        let table = render_table(&stats());
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("Method"), "{table}");
        // Sorted by name: /login before /metrics.
        assert!(lines[3].starts_with("POST    /login"), "{table}");
        assert!(lines[3].contains("1 (10.00%)"), "{table}");
        assert!(lines[4].contains("/metrics"), "{table}");
        assert!(lines[6].contains("Aggregated"), "{table}");
        assert!(lines[6].contains("10000"), "{table}");
        assert!(
            table.contains("status 500: 500 Internal Server Error"),
            "{table}"
        );
    }

    #[test]
    fn summary_json_has_the_documented_fields() {
        let json = serde_json::to_value(summary_json(&stats(), "finished")).unwrap();
        assert_eq!(json["run_id"], "run-1");
        assert_eq!(json["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["duration_s"], 10.0);
        assert_eq!(json["endpoints"].as_array().unwrap().len(), 2);
        for key in [
            "method", "name", "requests", "failures", "rps", "p50_ms", "p90_ms", "p95_ms",
            "p99_ms", "p999_ms", "max_ms",
        ] {
            assert!(json["total"].get(key).is_some(), "total.{key} missing");
            assert!(
                json["endpoints"][0].get(key).is_some(),
                "endpoint {key} missing"
            );
        }
        assert_eq!(json["total"]["requests"], 10_000);
    }
}
