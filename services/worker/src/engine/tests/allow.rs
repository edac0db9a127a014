//! The controller's allow list on the worker: a connection goes only to an
//! address it allows; a refused one is a `disallowed` failure and nothing
//! reaches the target. Redirects are not followed.

use std::time::Duration;

use cicada_scenario::allow::AllowList;

use super::server::TestServer;
use super::{Engine, config, load, request_total, run_for, scenario};

const YAML: &str = "name: allow\nusers:\n  - tasks:\n      - request: {path: /ok}\n";

/// One user running `YAML` against `host` for 200 ms with `patterns` as
/// the allow list: what it recorded.
async fn run_allowing(host: &str, patterns: &[&str]) -> super::Interval {
    let mut config = config(1);
    config.allow_targets = AllowList::parse(patterns).unwrap();
    let engine = Engine::start(scenario(YAML), host, load(vec![1], 0.0), config).unwrap();
    run_for(&engine, Duration::from_millis(200), Duration::from_secs(5)).await
}

/// `http://localhost:PORT` of the test server (which listens on 127.0.0.1).
fn by_name(server: &TestServer) -> String {
    server.url().replace("127.0.0.1", "localhost")
}

#[tokio::test]
async fn a_name_resolving_outside_the_list_is_refused_before_connecting() {
    let server = TestServer::start();
    let total = run_allowing(&by_name(&server), &["10.0.0.0/8"]).await;
    assert_eq!(server.served(), 0);
    assert_eq!(server.connections(), 0);
    let counts = request_total(&total, &scenario(YAML));
    assert!(counts.requests > 0);
    assert_eq!(counts.failures, counts.requests);
    let failures = &total.endpoints[0].failures_by_kind;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].kind, "disallowed");
    let message = &failures[0].last_message;
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    assert!(
        message.starts_with(&format!(
            "connect to localhost:{port} refused: its addresses ("
        )) && message.ends_with(") are outside the allowed targets (10.0.0.0/8)"),
        "{message}"
    );
}

#[tokio::test]
async fn an_address_outside_the_list_is_refused() {
    let server = TestServer::start();
    let total = run_allowing(&server.url(), &["*.example.com"]).await;
    assert_eq!(server.served(), 0);
    assert_eq!(server.connections(), 0);
    let failures = &total.endpoints[0].failures_by_kind;
    assert_eq!(failures[0].kind, "disallowed");
    assert!(
        failures[0]
            .last_message
            .ends_with("refused: the host is outside the allowed targets (*.example.com)"),
        "{}",
        failures[0].last_message
    );
}

#[tokio::test]
async fn a_name_resolving_inside_the_list_is_served() {
    let server = TestServer::start();
    let total = run_allowing(&by_name(&server), &["127.0.0.0/8"]).await;
    let counts = request_total(&total, &scenario(YAML));
    assert!(counts.requests > 0);
    assert_eq!(
        counts.failures, 0,
        "{:?}",
        total.endpoints[0].failures_by_kind
    );
    assert_eq!(counts.requests + counts.cancelled, server.served());
}

#[tokio::test]
async fn redirects_are_responses_not_followed() {
    let server = TestServer::start();
    let s = scenario("name: redirect\nusers:\n  - tasks:\n      - request: {path: /redirect}\n");
    let engine = Engine::start(s.clone(), &server.url(), load(vec![1], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(200), Duration::from_secs(5)).await;
    let counts = request_total(&total, &s);
    assert!(counts.requests > 0);
    // A 302 succeeds by default, and its Location was never requested.
    assert_eq!(counts.failures, 0);
    assert_eq!(server.served_path("/ok"), 0);
    assert_eq!(
        server.served_path("/redirect"),
        counts.requests + counts.cancelled
    );
}
