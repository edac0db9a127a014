//! The connections part of the report: for each request endpoint, the new
//! connections its requests opened (`CONNECT` rows) with their connect
//! times, and their TLS handshakes (`TLS` rows), after the endpoint table.
//! Rows with nothing recorded are left out.

use std::fmt::Write as _;

use cicada_proto::v1::EndpointStats;
use cicada_scenario::{CONNECT_METHOD, TLS_METHOD};
use serde::Serialize;

/// One request endpoint's new connections in `--summary-json`.
#[derive(Debug, Serialize)]
pub struct ConnectionJson {
    /// `METHOD NAME` of the endpoint whose requests opened them.
    pub endpoint: String,
    /// New TCP connections (failed ones included).
    pub connections: u64,
    pub failures: u64,
    /// New connections per second over the run.
    pub per_s: f64,
    pub connect: TimesJson,
    /// TLS handshakes (absent over plain TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<HandshakesJson>,
}

#[derive(Debug, Serialize)]
pub struct HandshakesJson {
    pub handshakes: u64,
    pub failures: u64,
    #[serde(flatten)]
    pub times: TimesJson,
}

/// Milliseconds.
#[derive(Debug, Serialize)]
pub struct TimesJson {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl From<&EndpointStats> for TimesJson {
    fn from(e: &EndpointStats) -> Self {
        TimesJson {
            p50_ms: e.p50_ms,
            p95_ms: e.p95_ms,
            p99_ms: e.p99_ms,
            max_ms: e.max_ms,
            mean_ms: e.mean_ms,
        }
    }
}

/// Whether a row belongs here rather than in the endpoint table.
pub fn is_connection_row(e: &EndpointStats) -> bool {
    cicada_scenario::is_connection_method(&e.method)
}

/// Each request endpoint with new connections: its `CONNECT` row and its
/// `TLS` row (when it has handshakes), sorted by endpoint.
fn pairs(endpoints: &[EndpointStats]) -> Vec<(&EndpointStats, Option<&EndpointStats>)> {
    let mut pairs: Vec<_> = endpoints
        .iter()
        .filter(|e| e.method == CONNECT_METHOD && e.requests > 0)
        .map(|connect| {
            let tls = endpoints
                .iter()
                .find(|e| e.method == TLS_METHOD && e.name == connect.name && e.requests > 0);
            (connect, tls)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    pairs
}

pub fn json(endpoints: &[EndpointStats]) -> Vec<ConnectionJson> {
    pairs(endpoints)
        .into_iter()
        .map(|(connect, tls)| ConnectionJson {
            endpoint: connect.name.clone(),
            connections: connect.requests,
            failures: connect.failures,
            per_s: connect.rps,
            connect: TimesJson::from(connect),
            tls: tls.map(|tls| HandshakesJson {
                handshakes: tls.requests,
                failures: tls.failures,
                times: TimesJson::from(tls),
            }),
        })
        .collect()
}

const HEADER: [&str; 12] = [
    "Endpoint", "New", "Failed", "Conn/s", "p50", "p95", "p99", "Max", "TLS p50", "TLS p95",
    "TLS p99", "TLS max",
];

/// `Connections:` then one line per request endpoint that opened any.
pub fn render(endpoints: &[EndpointStats], out: &mut String) {
    let pairs = pairs(endpoints);
    if pairs.is_empty() {
        return;
    }
    let ms = |v: f64| format!("{v:.2}");
    let rows: Vec<[String; 12]> = pairs
        .iter()
        .map(|(connect, tls)| {
            let tls_cell =
                |pick: fn(&EndpointStats) -> f64| tls.map_or("-".to_owned(), |t| ms(pick(t)));
            [
                connect.name.clone(),
                connect.requests.to_string(),
                (connect.failures + tls.map_or(0, |t| t.failures)).to_string(),
                format!("{:.1}", connect.rps),
                ms(connect.p50_ms),
                ms(connect.p95_ms),
                ms(connect.p99_ms),
                ms(connect.max_ms),
                tls_cell(|t| t.p50_ms),
                tls_cell(|t| t.p95_ms),
                tls_cell(|t| t.p99_ms),
                tls_cell(|t| t.max_ms),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let _ = writeln!(
        out,
        "\nConnections: new connections per endpoint, connect and TLS handshake times in ms"
    );
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::from(" ");
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i == 0 {
                let _ = write!(line, " {cell:<width$}");
            } else {
                let _ = write!(line, "  {cell:>width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, name: &str, requests: u64, p50_ms: f64) -> EndpointStats {
        EndpointStats {
            method: method.into(),
            name: name.into(),
            requests,
            failures: u64::from(method == TLS_METHOD),
            rps: requests as f64 / 10.0,
            p50_ms,
            p95_ms: p50_ms * 2.0,
            p99_ms: p50_ms * 3.0,
            max_ms: p50_ms * 4.0,
            mean_ms: p50_ms,
            ..EndpointStats::default()
        }
    }

    fn endpoints() -> Vec<EndpointStats> {
        vec![
            row("POST", "/ingest", 1000, 1.0),
            row(CONNECT_METHOD, "POST /ingest", 40, 0.25),
            row(TLS_METHOD, "POST /ingest", 40, 3.5),
            row(CONNECT_METHOD, "GET /health", 0, 0.0),
            row(TLS_METHOD, "GET /health", 0, 0.0),
        ]
    }

    #[test]
    fn renders_endpoints_with_new_connections_only() {
        let mut out = String::new();
        render(&endpoints(), &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with("Connections:"), "{out}");
        let cells: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "POST", "/ingest", "40", "1", "4.0", "0.25", "0.50", "0.75", "1.00", "3.50",
                "7.00", "10.50", "14.00"
            ],
            "{out}"
        );
        assert!(!out.contains("/health"));
        let mut none = String::new();
        render(&endpoints()[..1], &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn json_pairs_connect_and_tls_rows() {
        let json = serde_json::to_value(json(&endpoints())).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["endpoint"], "POST /ingest");
        assert_eq!(json[0]["connections"], 40);
        assert_eq!(json[0]["connect"]["p95_ms"], 0.5);
        assert_eq!(json[0]["tls"]["handshakes"], 40);
        assert_eq!(json[0]["tls"]["failures"], 1);
        assert_eq!(json[0]["tls"]["p99_ms"], 10.5);
    }
}
