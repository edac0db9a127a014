//! `connection:`: keep-alive, recycling, one connection per request or per
//! iteration, the fleet's connection rate, and the rows new connections
//! are recorded on.

use std::time::Duration;

use cicada_scenario::{CONNECT_METHOD, ConnectionPolicy, Scenario, TLS_METHOD, is_request_method};

fn parse(yaml: &str) -> Scenario {
    Scenario::parse("conn.yaml", yaml).unwrap()
}

fn error(yaml: &str) -> String {
    Scenario::parse("conn.yaml", yaml).unwrap_err().to_string()
}

#[test]
fn classes_take_the_scenarios_policy_key_by_key() {
    let s = parse(
        r#"
name: recycle
connection: {max_age: 30s, max_requests: 100, rate: 200/s}
users:
  - name: fleet
    tasks: [{request: {method: POST, path: /ingest}}]
  - name: fresh
    connection: {max_requests: 1}
    tasks: [{request: {path: /health}}]
  - name: closer
    connection: close
    tasks: [{request: {path: /health}}]
  - name: iterations
    connection: per_iteration
    tasks: [{request: {path: /health}}]
"#,
    );
    assert_eq!(s.connection_rate(), Some(200.0));
    let policies: Vec<ConnectionPolicy> = s.classes().iter().map(|c| c.connection).collect();
    let age = Some(Duration::from_secs(30));
    assert_eq!(
        policies[0],
        ConnectionPolicy {
            keep_alive: true,
            per_iteration: false,
            max_requests: Some(100),
            max_age: age,
        }
    );
    assert_eq!(
        (policies[1].max_requests, policies[1].max_age),
        (Some(1), age)
    );
    // A shorthand replaces the scenario's policy.
    assert!(!policies[2].keep_alive && policies[2].max_age.is_none());
    assert!(policies[3].per_iteration && policies[3].keep_alive);
    assert!(
        s.summary()
            .contains("connection rate: at most 200 new connections/s")
    );
    assert!(
        s.summary()
            .contains("closer (weight 1): 1 tasks, 1 requests, 0 on_start; connections: a new connection per request"),
        "{}",
        s.summary()
    );
}

#[test]
fn the_default_is_one_keep_alive_connection() {
    let s = parse("name: d\nusers: [{tasks: [{request: {path: /}}]}]\n");
    assert_eq!(s.classes()[0].connection, ConnectionPolicy::default());
    assert!(s.classes()[0].connection.keep_alive);
    assert_eq!(s.connection_rate(), None);
}

#[test]
fn every_request_endpoint_gets_a_connect_and_a_tls_row() {
    let s = parse(
        r#"
name: rows
users:
  - tasks:
      - request: {method: POST, path: /ingest}
      - name: session
        steps: [{path: /login}, {path: /ingest, method: POST}]
thresholds:
  - {expr: "p95 < 50ms", endpoint: "CONNECT POST /ingest"}
"#,
    );
    let names: Vec<String> = s
        .endpoints()
        .iter()
        .map(|e| format!("{} {}", e.method, e.name))
        .collect();
    assert_eq!(
        names,
        [
            "POST /ingest",
            "GET /login",
            "GROUP session",
            "CONNECT POST /ingest",
            "TLS POST /ingest",
            "CONNECT GET /login",
            "TLS GET /login",
        ]
    );
    let rows = s.connection_endpoints(0).unwrap();
    assert_eq!((rows.connect, rows.tls), (3, 4));
    assert_eq!(s.connection_endpoints(1).map(|r| r.connect), Some(5));
    assert!(s.connection_endpoints(2).is_none(), "a group opens none");
    assert!(s.connection_endpoints(3).is_none());
    for method in [CONNECT_METHOD, TLS_METHOD, "GROUP"] {
        assert!(!is_request_method(method));
    }
    assert!(is_request_method("POST"));
    // `validate` lists what the scenario sends, not the derived rows.
    let summary = s.summary();
    let listed = summary
        .split("endpoints:")
        .nth(1)
        .unwrap()
        .split("thresholds:")
        .next()
        .unwrap();
    assert!(!listed.contains("CONNECT"), "{summary}");
    assert_eq!(
        s.thresholds()[0].endpoint.as_deref(),
        Some("CONNECT POST /ingest")
    );
}

#[test]
fn bad_connection_settings_say_what_is_allowed() {
    let cases = [
        (
            "connection: sometimes",
            "conn.yaml:2:13: invalid connection \"sometimes\"; allowed: keep_alive",
        ),
        (
            "connection: {max_requests: 0}",
            "conn.yaml:2:28: connection.max_requests must be a whole number of at least 1",
        ),
        (
            "connection: {max_age: 0s}",
            "conn.yaml:2:23: connection.max_age must be more than 0",
        ),
        (
            "connection: {keep_alive: sometimes}",
            "conn.yaml:2:26: \"connection.keep_alive\" must be true or false",
        ),
        (
            "connection: {recycle: 3}",
            "conn.yaml:2:14: unknown key \"recycle\" in connection; allowed: keep_alive, per_iteration, max_requests, max_age, rate",
        ),
        ("connection: {rate: 0/s}", "conn.yaml:2:20:"),
    ];
    for (line, expected) in cases {
        let message = error(&format!(
            "name: bad\n{line}\nusers: [{{tasks: [{{request: {{path: /}}}}]}}]\n"
        ));
        assert!(message.starts_with(expected), "{line}: {message}");
    }
    let message = error(
        "name: bad\nusers:\n  - connection: {rate: 5/s}\n    tasks: [{request: {path: /}}]\n",
    );
    assert!(
        message.starts_with("conn.yaml:3:18: a connection rate is for the whole run"),
        "{message}"
    );
}
