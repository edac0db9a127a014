//! Downloads: `stats.csv` (Locust's columns), `failures.csv` and the
//! per-second `history.csv`.

use std::fmt::Write as _;

use cicada_proto::v1::{EndpointStats, RunStats};

use super::Web;
use super::history;
use super::reply::{self, Reply, WebError};

const CSV: &str = "text/csv; charset=utf-8";

/// Locust's stats CSV header, with the percentiles cicada computes.
pub const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,90%,95%,99%,99.9%,100%";

/// The run's statistics: final ones from the controller's memory, else
/// the collector's (live, or from the store).
pub(crate) async fn run_stats(web: &Web, run_id: &str) -> Result<RunStats, WebError> {
    let remembered = web.shared.runs.get(run_id).and_then(|run| {
        let status = run.status.borrow();
        status
            .is_terminal()
            .then(|| status.final_stats.clone())
            .flatten()
    });
    match remembered {
        Some(stats) => Ok(stats),
        None => super::live::fetch_stats(web, run_id).await,
    }
}

/// Quotes a field when it holds a comma, a quote or a line break. Text
/// that a spreadsheet would run as a formula (`= + - @`, tab, CR at the
/// start: failure messages come from the target) gets a leading `'`.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn stats_row(out: &mut String, kind: &str, name: &str, stats: &EndpointStats, duration_s: f64) {
    let failures_per_s = if duration_s > 0.0 {
        stats.failures as f64 / duration_s
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        field(kind),
        field(name),
        stats.requests,
        stats.failures,
        stats.p50_ms,
        stats.mean_ms,
        stats.min_ms,
        stats.max_ms,
        stats.avg_size,
        stats.rps,
        failures_per_s,
        stats.p50_ms,
        stats.p90_ms,
        stats.p95_ms,
        stats.p99_ms,
        stats.p999_ms,
        stats.max_ms,
    );
}

/// The stats CSV of a run: one row per endpoint, then `Aggregated` (the
/// collector's total, so totals match the stored run exactly). Locust's
/// columns: the connection rows (`CONNECT`, `TLS`) are left out.
pub fn render_stats(stats: &RunStats) -> String {
    let mut out = String::from(STATS_HEADER);
    out.push('\n');
    for endpoint in stats
        .endpoints
        .iter()
        .filter(|e| !cicada_store::is_connection_method(&e.method))
    {
        stats_row(
            &mut out,
            &endpoint.method,
            &endpoint.name,
            endpoint,
            stats.duration_s,
        );
    }
    let total = stats.total.clone().unwrap_or_default();
    stats_row(&mut out, "", "Aggregated", &total, stats.duration_s);
    out
}

/// The failures CSV: `method,name,kind,count,last_message`.
pub fn render_failures(stats: &RunStats) -> String {
    let mut out = String::from("method,name,kind,count,last_message\n");
    for failure in &stats.failures {
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            field(&failure.method),
            field(&failure.name),
            field(&failure.kind),
            failure.count,
            field(&failure.last_message),
        );
    }
    out
}

/// The per-second CSV from a run's stored series.
pub fn render_history(series: &[cicada_history::SecondPoint]) -> String {
    let mut out =
        String::from("t_s,requests,failures,rps,failures_per_s,p50_ms,p95_ms,p99_ms,users\n");
    for point in series {
        // Each row is one second: its count is its rate.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            point.t_s,
            point.requests,
            point.failures,
            point.requests,
            point.failures,
            point.p50_ms,
            point.p95_ms,
            point.p99_ms,
            point.users,
        );
    }
    out
}

pub(crate) async fn stats(web: &Web, run_id: &str) -> Result<Reply, WebError> {
    let stats = run_stats(web, run_id).await?;
    Ok(reply::download(
        CSV,
        run_id,
        "stats.csv",
        render_stats(&stats),
    ))
}

pub(crate) async fn failures(web: &Web, run_id: &str) -> Result<Reply, WebError> {
    let stats = run_stats(web, run_id).await?;
    Ok(reply::download(
        CSV,
        run_id,
        "failures.csv",
        render_failures(&stats),
    ))
}

pub(crate) async fn history(web: &Web, run_id: &str) -> Result<Reply, WebError> {
    let detail = history::show(web, run_id, cicada_history::Window::default()).await?;
    Ok(reply::download(
        CSV,
        run_id,
        "history.csv",
        render_history(&detail.series),
    ))
}

#[cfg(test)]
mod tests {
    use cicada_proto::v1::FailureStat;

    use super::*;

    #[test]
    fn formulas_are_defused() {
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("+1"), "'+1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("/api/x"), "/api/x");
    }

    #[test]
    fn stats_rows_and_quoting() {
        let endpoint = EndpointStats {
            method: "GET".into(),
            name: "/a,b".into(),
            requests: 10,
            failures: 2,
            p50_ms: 1.5,
            max_ms: 9.0,
            rps: 5.0,
            ..Default::default()
        };
        let stats = RunStats {
            duration_s: 2.0,
            endpoints: vec![endpoint.clone()],
            total: Some(EndpointStats {
                name: "total".into(),
                ..endpoint
            }),
            failures: vec![FailureStat {
                method: "GET".into(),
                name: "/a,b".into(),
                kind: "status 500".into(),
                count: 2,
                last_message: "said \"no\"".into(),
            }],
            ..Default::default()
        };
        let csv = render_stats(&stats);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], STATS_HEADER);
        assert_eq!(lines[1], "GET,\"/a,b\",10,2,1.5,0,0,9,0,5,1,1.5,0,0,0,0,9");
        assert_eq!(lines[2], ",Aggregated,10,2,1.5,0,0,9,0,5,1,1.5,0,0,0,0,9");
        assert_eq!(
            render_failures(&stats).lines().nth(1),
            Some("GET,\"/a,b\",status 500,2,\"said \"\"no\"\"\"")
        );
    }
}
