//! The final report of a run: a Locust-style table per endpoint (stdout),
//! the checks and thresholds with PASS/FAIL, the machine-readable summary
//! (`--summary-json`) and JUnit XML (`--junit`).

mod checks;
mod connections;
pub mod junit;
mod thresholds;

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use cicada_proto::v1::{Diagnosis, DiagnosisKind, EndpointStats, RunStats, UncorrectedLatency};
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
    /// Response checks (`check:`) with their pass/fail counts.
    pub checks: Vec<checks::CheckJson>,
    /// Per request endpoint: the new connections its requests opened,
    /// connect and TLS handshake times (endpoints without any left out).
    pub connections: Vec<connections::ConnectionJson>,
    /// Open model: iterations due but not started because the in-flight
    /// bound was reached (0 in the closed model).
    pub dropped: u64,
    /// What limited the run (generator-bound, failing before the target
    /// scaled, target errors), with the evidence.
    pub diagnoses: Vec<DiagnosisJson>,
    /// Workers that disappeared without their final flush (SIGKILL, pod
    /// preemption), each with a bound of the requests missing from the run.
    pub lost_workers: Vec<LostWorkerJson>,
    /// Requests in deltas a worker dropped from its full buffer (counted,
    /// never delivered).
    pub evicted_requests: u64,
    /// Upper bound of the completed requests missing from the run: the
    /// lost workers' bounds plus the evicted requests (0: complete).
    pub unrecorded_max: u64,
    /// The target's CPU sampled during the run (with --target-cpu-query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_cpu: Option<TargetCpuJson>,
    /// Why the run ended before its time without failing (a `unique`
    /// data set ran out); absent otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_reason: String,
}

/// A worker lost without its final flush.
#[derive(Debug, Serialize)]
pub struct LostWorkerJson {
    pub worker_id: String,
    /// Seconds from the run's start to the loss.
    pub at_s: f64,
    /// Upper bound of its completed (or in-flight) requests not in the run.
    pub unrecorded_max: u64,
}

/// Target CPU over the run, from per-second samples of a Prometheus query.
#[derive(Debug, Serialize)]
pub struct TargetCpuJson {
    pub query: String,
    /// Seconds sampled.
    pub samples: u32,
    /// Target CPU-seconds: the sum of the per-second samples (cores).
    pub cpu_seconds: f64,
    /// Completed requests per target CPU-second (0 without CPU).
    pub requests_per_cpu_second: f64,
}

#[derive(Debug, Serialize)]
pub struct DiagnosisJson {
    /// `generator_bound`, `failing_before_scaled` or `target_errors`.
    pub kind: &'static str,
    pub summary: String,
    pub evidence: Vec<String>,
    /// For `generator_bound`: workers estimated to carry the load.
    pub suggested_workers: u32,
}

impl From<&Diagnosis> for DiagnosisJson {
    fn from(d: &Diagnosis) -> Self {
        Self {
            kind: diagnosis_kind(d.kind()),
            summary: d.summary.clone(),
            evidence: d.evidence.clone(),
            suggested_workers: d.suggested_workers,
        }
    }
}

/// The stable name of a diagnosis kind.
pub fn diagnosis_kind(kind: DiagnosisKind) -> &'static str {
    match kind {
        DiagnosisKind::GeneratorBound => "generator_bound",
        DiagnosisKind::FailingBeforeScaled => "failing_before_scaled",
        DiagnosisKind::TargetErrors => "target_errors",
        DiagnosisKind::Unspecified => "unknown",
    }
}

/// The diagnoses as printed after the final table.
pub fn render_diagnoses(diagnoses: &[Diagnosis]) -> String {
    let mut out = String::from("Diagnosis:\n");
    for diagnosis in diagnoses {
        let _ = writeln!(out, "  {}", diagnosis.summary);
        for evidence in &diagnosis.evidence {
            let _ = writeln!(out, "    - {evidence}");
        }
    }
    out
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
    /// Open model only: latencies measured from the actual send instead of
    /// the intended start (the `p*_ms` above are corrected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncorrected: Option<UncorrectedJson>,
}

#[derive(Debug, Serialize)]
pub struct UncorrectedJson {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl From<&UncorrectedLatency> for UncorrectedJson {
    fn from(u: &UncorrectedLatency) -> Self {
        Self {
            p50_ms: u.p50_ms,
            p90_ms: u.p90_ms,
            p95_ms: u.p95_ms,
            p99_ms: u.p99_ms,
            p999_ms: u.p999_ms,
            max_ms: u.max_ms,
            mean_ms: u.mean_ms,
        }
    }
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
            uncorrected: e.uncorrected.as_ref().map(UncorrectedJson::from),
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
        endpoints: stats
            .endpoints
            .iter()
            .filter(|e| !connections::is_connection_row(e))
            .map(EndpointJson::from)
            .collect(),
        connections: connections::json(&stats.endpoints),
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
        diagnoses: Vec::new(),
        dropped: stats.dropped,
        lost_workers: stats
            .lost_workers
            .iter()
            .map(|lost| LostWorkerJson {
                worker_id: lost.worker_id.clone(),
                at_s: lost.at_s,
                unrecorded_max: lost.unrecorded_max,
            })
            .collect(),
        evicted_requests: stats.evicted_requests,
        unrecorded_max: stats.unrecorded_max,
        thresholds: thresholds::json(&stats.thresholds),
        checks: checks::json(&stats.checks),
        target_cpu: stats.target_cpu.as_ref().map(|t| TargetCpuJson {
            query: t.query.clone(),
            samples: t.samples,
            cpu_seconds: t.cpu_seconds,
            requests_per_cpu_second: t.requests_per_cpu_second,
        }),
        stop_reason: String::new(),
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
        .filter(|e| !connections::is_connection_row(e))
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
    if let Some(total_uncorrected) = &total.uncorrected {
        out.push_str(&uncorrected_section(stats, total_uncorrected));
    }
    let open = total.uncorrected.is_some() || stats.dropped > 0;
    if open {
        let due = total.requests + total.cancelled + stats.dropped;
        let pct = if due > 0 {
            100.0 * stats.dropped as f64 / due as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "\nDropped: {} iterations ({pct:.2}% of those due) could not start because every in-flight slot was busy",
            stats.dropped
        );
    }
    if total.cancelled > 0 {
        let _ = writeln!(
            out,
            "\n{} requests were still in flight when the run stopped and were cancelled",
            total.cancelled
        );
    }
    connections::render(&stats.endpoints, &mut out);
    out.push_str(&loss_section(stats));
    // A connection row's failures are in the connections table; the
    // request that needed the connection lists its own.
    let failures: Vec<_> = stats
        .failures
        .iter()
        .filter(|f| !cicada_scenario::is_connection_method(&f.method))
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailures:");
        for f in failures {
            let _ = writeln!(
                out,
                "  {:>8}  {} {}  {}: {}",
                f.count, f.method, f.name, f.kind, f.last_message
            );
        }
    }
    if let Some(cpu) = &stats.target_cpu {
        let _ = writeln!(
            out,
            "\nTarget CPU: {:.2} CPU-seconds over {} sampled seconds ({}); {:.0} requests per target CPU-second",
            cpu.cpu_seconds, cpu.samples, cpu.query, cpu.requests_per_cpu_second
        );
    }
    checks::render(&stats.checks, &mut out);
    thresholds::render(&stats.thresholds, &mut out);
    out
}

/// What the run may be missing (lost workers, evicted deltas), loudly: the
/// numbers above undercount by up to this much.
fn loss_section(stats: &RunStats) -> String {
    let mut out = String::new();
    for lost in &stats.lost_workers {
        let _ = writeln!(
            out,
            "\nLost: worker {} disappeared at {:.1} s without its final flush: up to {} requests it completed are not in this run",
            lost.worker_id, lost.at_s, lost.unrecorded_max
        );
    }
    if stats.evicted_requests > 0 {
        let _ = writeln!(
            out,
            "\nLost: {} requests in deltas that workers could not deliver before their buffers filled",
            stats.evicted_requests
        );
    }
    if stats.unrecorded_max > 0 {
        let total = stats.total.as_ref().map_or(0, |t| t.requests);
        let pct =
            100.0 * stats.unrecorded_max as f64 / (total + stats.unrecorded_max).max(1) as f64;
        let _ = writeln!(
            out,
            "Unrecorded: at most {} requests ({pct:.2}%) are missing from the numbers above",
            stats.unrecorded_max
        );
    }
    out
}

/// Open model: the latencies measured from the actual send, next to the
/// corrected ones of the main table (which count from the intended start).
fn uncorrected_section(stats: &RunStats, total: &UncorrectedLatency) -> String {
    let mut rows: Vec<(String, &UncorrectedLatency)> = stats
        .endpoints
        .iter()
        .filter_map(|e| {
            e.uncorrected
                .as_ref()
                .map(|u| (format!("{} {}", e.method, e.name), u))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.push(("Aggregated".to_owned(), total));
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nUncorrected latencies (from the actual send; the table above counts from each iteration's intended start):"
    );
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
        "Name", "p50", "p95", "p99", "p99.9", "Max"
    );
    for (name, u) in rows {
        let _ = writeln!(
            out,
            "{name:<width$}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}",
            u.p50_ms, u.p95_ms, u.p99_ms, u.p999_ms, u.max_ms
        );
    }
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
        assert_eq!(json["dropped"], 0);
        assert!(json["total"].get("uncorrected").is_none());
    }

    fn open_stats() -> RunStats {
        let uncorrected = UncorrectedLatency {
            p50_ms: 0.5,
            p95_ms: 0.9,
            p99_ms: 1.25,
            p999_ms: 2.0,
            max_ms: 3.0,
            ..Default::default()
        };
        let mut stats = stats();
        stats.dropped = 25;
        for e in &mut stats.endpoints {
            e.uncorrected = Some(uncorrected);
        }
        stats.total.as_mut().unwrap().uncorrected = Some(uncorrected);
        stats
    }

    #[test]
    fn lost_workers_are_printed_and_in_the_summary() {
        let mut stats = stats();
        stats.lost_workers = vec![cicada_proto::v1::LostWorkerStat {
            worker_id: "w2".into(),
            delta_source: "w2.00c0ffee".into(),
            at_s: 5.25,
            received: 1_000,
            unrecorded_max: 240,
        }];
        stats.evicted_requests = 10;
        stats.unrecorded_max = 250;
        let table = render_table(&stats);
        assert!(
            table.contains(
                "Lost: worker w2 disappeared at 5.2 s without its final flush: up to 240 requests"
            ),
            "{table}"
        );
        assert!(table.contains("Lost: 10 requests in deltas"), "{table}");
        assert!(
            table.contains("Unrecorded: at most 250 requests"),
            "{table}"
        );
        let json = serde_json::to_value(summary_json(&stats, "finished")).unwrap();
        assert_eq!(json["lost_workers"][0]["worker_id"], "w2");
        assert_eq!(json["lost_workers"][0]["at_s"], 5.25);
        assert_eq!(json["lost_workers"][0]["unrecorded_max"], 240);
        assert_eq!(json["unrecorded_max"], 250);
        assert_eq!(json["evicted_requests"], 10);
        assert!(!render_table(&self::tests::stats()).contains("Lost:"));
    }

    #[test]
    fn open_model_table_shows_dropped_and_uncorrected() {
        let table = render_table(&open_stats());
        assert!(table.contains("Uncorrected latencies"), "{table}");
        assert!(table.contains("POST /login"), "{table}");
        assert!(table.contains("1.25"), "{table}");
        assert!(
            table.contains("Dropped: 25 iterations (0.25% of those due)"),
            "{table}"
        );
        // The closed model has neither.
        let closed = render_table(&stats());
        assert!(
            !closed.contains("Uncorrected") && !closed.contains("Dropped"),
            "{closed}"
        );
    }

    #[test]
    fn open_model_summary_json_has_dropped_and_uncorrected() {
        let json = serde_json::to_value(summary_json(&open_stats(), "finished")).unwrap();
        assert_eq!(json["dropped"], 25);
        for key in ["p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"] {
            assert!(json["total"]["uncorrected"].get(key).is_some(), "{key}");
            assert!(
                json["endpoints"][0]["uncorrected"].get(key).is_some(),
                "{key}"
            );
        }
        assert_eq!(json["total"]["uncorrected"]["p99_ms"], 1.25);
    }
}
