//! `connection:` against a real server: one connection per request, per
//! iteration, recycled after N requests or an age, the connection rate,
//! and the rows new connections (and TLS handshakes) are recorded on.

use std::time::{Duration, Instant};

use super::server::{TEST_CA_PEM, TestServer};
use super::{Engine, config, load, run_for, scenario};
use crate::engine::Interval;

/// Requests, connect rows and TLS rows recorded for endpoint `index`.
fn rows(total: &Interval, s: &cicada_scenario::Scenario, index: usize) -> (u64, u64, u64) {
    let rows = s.connection_endpoints(index).expect("a request endpoint");
    let requests = total.endpoints[index].counts.requests;
    (
        requests,
        total.endpoints[rows.connect].counts.requests,
        total.endpoints[rows.tls].counts.requests,
    )
}

#[tokio::test]
async fn keep_alive_opens_one_connection_per_user_and_records_it() {
    let server = TestServer::start();
    let s = scenario("name: ka\nusers: [{tasks: [{request: {path: /ok}}]}]\n");
    let engine = Engine::start(s.clone(), &server.url(), load(vec![4], 0.0), config(2)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let (requests, connects, tls) = rows(&total, &s, 0);
    assert!(requests > 50, "{requests}");
    assert_eq!((connects, tls), (4, 0));
    assert_eq!(server.connections(), 4);
    assert_eq!(server.close_requests(), 0);
    let connect = &total.endpoints[s.connection_endpoints(0).unwrap().connect];
    assert_eq!(connect.histogram.len(), 4, "each connect is timed");
    assert_eq!(connect.counts.failures, 0);
}

#[tokio::test]
async fn close_opens_a_connection_per_request() {
    let server = TestServer::start();
    let s =
        scenario("name: close\nconnection: close\nusers: [{tasks: [{request: {path: /ok}}]}]\n");
    let engine = Engine::start(s.clone(), &server.url(), load(vec![3], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let (requests, connects, _) = rows(&total, &s, 0);
    let cancelled = total.endpoints[0].counts.cancelled;
    assert!(requests > 10, "{requests}");
    assert_eq!(total.endpoints[0].counts.failures, 0);
    // Every request asked the server to close, and went on a connection
    // of its own.
    assert_eq!(server.served(), requests + cancelled);
    assert_eq!(server.close_requests(), server.served());
    assert_eq!(server.connections(), connects);
    assert_eq!(connects, requests + cancelled);
}

#[tokio::test]
async fn max_requests_recycles_after_n_requests() {
    let server = TestServer::start();
    let s = scenario(
        "name: recycle\nconnection: {max_requests: 5}\nusers: [{tasks: [{request: {path: /ok}}]}]\n",
    );
    let users = 2;
    let engine =
        Engine::start(s.clone(), &server.url(), load(vec![users], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let (requests, connects, _) = rows(&total, &s, 0);
    let sent = requests + total.endpoints[0].counts.cancelled;
    assert!(sent > 20, "{sent}");
    assert_eq!(total.endpoints[0].counts.failures, 0);
    // Each user's connections carry 5 requests each, its last one fewer.
    let full = sent / 5;
    assert!(
        (full..=full + u64::from(users)).contains(&connects),
        "{connects} connections for {sent} requests"
    );
    assert_eq!(server.connections(), connects);
    // Every user's 5th, 10th, ... request asked the server to close.
    let closes = server.close_requests();
    assert!(
        closes <= full && closes + u64::from(users) >= full,
        "{closes} closes for {sent} requests"
    );
}

#[tokio::test]
async fn per_iteration_opens_a_connection_per_task_and_closes_on_its_last_step() {
    let server = TestServer::start();
    let s = scenario(
        r#"
name: iterations
connection: per_iteration
users:
  - tasks:
      - name: session
        steps: [{path: /ok}, {path: /v/1}, {path: /v/2}]
"#,
    );
    let engine = Engine::start(s.clone(), &server.url(), load(vec![2], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let group = s
        .endpoints()
        .iter()
        .position(|e| e.method == "GROUP")
        .unwrap();
    let iterations = total.endpoints[group].counts.requests;
    assert!(iterations > 5, "{iterations}");
    let connects: u64 = (0..3).map(|i| rows(&total, &s, i).1).sum();
    // Each iteration starts on a new connection (its first step's row).
    assert_eq!(rows(&total, &s, 0).1, connects);
    assert_eq!(server.connections(), connects);
    // A complete iteration asked to close once, on its last step; one cut
    // short by the stop leaves without.
    assert!(
        (iterations..=iterations + 2).contains(&connects),
        "{connects} connections for {iterations} iterations"
    );
    assert_eq!(server.close_requests(), server.served_path("/v/2"));
}

#[tokio::test]
async fn max_age_recycles_old_connections() {
    let server = TestServer::start();
    let s = scenario(
        "name: age\nconnection: {max_age: 50ms}\nusers: [{wait: {constant: 10ms}, tasks: [{request: {path: /ok}}]}]\n",
    );
    let engine = Engine::start(s.clone(), &server.url(), load(vec![2], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(500), Duration::from_secs(5)).await;
    let (requests, connects, _) = rows(&total, &s, 0);
    // 500 ms at ~10 ms a request: each user's connection lives ~50 ms, so
    // ~10 connections each on a quiet machine; at least two each (one
    // recycle) on a loaded one.
    assert!(requests > 20, "{requests}");
    assert!(
        connects >= 2 * 2 && connects < requests,
        "{connects} connections for {requests} requests"
    );
    assert_eq!(server.connections(), connects);
    assert_eq!(server.close_requests() + 2, connects);
}

#[tokio::test]
async fn the_connection_rate_limits_new_connections() {
    let server = TestServer::start();
    let s = scenario("name: rate\nconnection: close\nusers: [{tasks: [{request: {path: /ok}}]}]\n");
    let mut limited = config(2);
    limited.connection_rate = 40.0;
    let started = Instant::now();
    let engine = Engine::start(s.clone(), &server.url(), load(vec![8], 0.0), limited).unwrap();
    let total = run_for(&engine, Duration::from_millis(500), Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let (requests, connects, _) = rows(&total, &s, 0);
    // At most one connection per 25 ms, plus the first at once and the
    // 10 ms burst of an idle limiter; users still waiting for a slot when
    // the run stops do not connect.
    let most = (40.0 * (elapsed.as_secs_f64() + 0.01)).floor() as u64 + 1;
    assert!(connects <= most, "{connects} connections > {most}");
    assert!(connects >= 5, "{connects}");
    assert_eq!(requests + total.endpoints[0].counts.cancelled, connects);
    assert_eq!(server.connections(), connects);
}

#[tokio::test]
async fn tls_handshakes_are_recorded_on_their_row() {
    let server = TestServer::start_tls();
    let s = scenario(
        "name: tls\nconnection: {max_requests: 4}\nusers: [{tasks: [{request: {path: /ok}}]}]\n",
    );
    let mut tls = config(1);
    tls.tls_ca_pem = Some(TEST_CA_PEM.to_owned());
    let engine = Engine::start(s.clone(), &server.https_url(), load(vec![2], 0.0), tls).unwrap();
    let total = run_for(&engine, Duration::from_millis(400), Duration::from_secs(5)).await;
    let (requests, connects, handshakes) = rows(&total, &s, 0);
    assert!(requests > 8, "{requests}");
    assert_eq!(handshakes, connects);
    assert_eq!(server.connections(), connects);
    let tls_row = &total.endpoints[s.connection_endpoints(0).unwrap().tls];
    assert_eq!(tls_row.histogram.len(), handshakes);
    assert!(tls_row.histogram.max_us() > 0, "a handshake takes time");
}

#[tokio::test]
async fn failed_connects_are_recorded_on_the_connect_row() {
    // A port nobody listens on: bind, read the port, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let s = scenario("name: down\nusers: [{tasks: [{request: {path: /ok}}]}]\n");
    let engine = Engine::start(
        s.clone(),
        &format!("http://127.0.0.1:{port}"),
        load(vec![1], 0.0),
        config(1),
    )
    .unwrap();
    let total = run_for(&engine, Duration::from_millis(100), Duration::from_secs(5)).await;
    let (requests, connects, _) = rows(&total, &s, 0);
    assert!(requests > 0);
    assert_eq!(connects, requests);
    let connect = &total.endpoints[s.connection_endpoints(0).unwrap().connect];
    assert_eq!(connect.counts.failures, connects);
    assert_eq!(connect.failures_by_kind[0].kind, "connect");
    assert_eq!(total.endpoints[0].failures_by_kind[0].kind, "connect");
}
