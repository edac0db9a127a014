//! Engine tests against a real HTTP server on 127.0.0.1:0.

mod allow;
mod connection;
mod env;
mod open;
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cicada_scenario::Scenario;

use super::{Counts, Engine, EngineConfig, Interval, Load};
use server::{TEST_CA_PEM, TestServer};

fn scenario(yaml: &str) -> Arc<Scenario> {
    Arc::new(Scenario::parse("test.yaml", yaml).unwrap())
}

fn config(threads: usize) -> EngineConfig {
    EngineConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        threads,
        ..EngineConfig::default()
    }
}

fn load(class_users: Vec<u32>, spawn_rate: f64) -> Load {
    Load {
        class_users,
        spawn_rate,
        user_id_offset: 0,
        ..Load::default()
    }
}

/// Whether endpoint `index` of `s` is a request's row (not a group's,
/// a connection's or a TLS handshake's).
fn is_request(s: &Scenario, index: usize) -> bool {
    cicada_scenario::is_request_method(&s.endpoints()[index].method)
}

/// The requests' counts added up (without group and connection rows).
fn request_total(total: &Interval, s: &Scenario) -> Counts {
    let mut sum = Counts::default();
    for (i, e) in total.endpoints.iter().enumerate() {
        if is_request(s, i) {
            sum.add(&e.counts);
        }
    }
    sum
}

/// Adds `part` into `total` (both indexed by endpoint).
fn merge(total: &mut Interval, part: Interval) {
    if total.endpoints.is_empty() {
        *total = part;
        return;
    }
    total.dropped += part.dropped;
    for (sum, e) in total.endpoints.iter_mut().zip(part.endpoints) {
        sum.counts.add(&e.counts);
        sum.histogram.merge(&e.histogram).unwrap();
        sum.uncorrected.merge(&e.uncorrected).unwrap();
        for f in e.failures_by_kind {
            match sum.failures_by_kind.iter_mut().find(|s| s.kind == f.kind) {
                Some(s) => {
                    s.count += f.count;
                    s.last_message = f.last_message;
                }
                None => sum.failures_by_kind.push(f),
            }
        }
    }
}

/// Lets the engine run for `duration` (cutting every 50 ms, like the pump
/// does every second), stops it and returns everything it recorded.
async fn run_for(engine: &Engine, duration: Duration, grace: Duration) -> Interval {
    let mut total = Interval::default();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        merge(&mut total, engine.cut());
    }
    engine.stop(grace).await;
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(engine.active_users(), 0);
    merge(&mut total, engine.cut());
    // Nothing is left after the final cut.
    assert_eq!(engine.cut().total(), Default::default());
    for e in &total.endpoints {
        assert_eq!(
            e.histogram.len(),
            e.counts.requests,
            "every completed request is timed"
        );
        let by_kind: u64 = e.failures_by_kind.iter().map(|f| f.count).sum();
        assert_eq!(by_kind, e.counts.failures);
    }
    total
}

/// Waits (in real time, bounded) until `done` holds, letting the test
/// runtime (which runs the spawner) make progress.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn every_request_served_is_recorded_with_the_weighted_mix() {
    let server = TestServer::start();
    let s = scenario(
        "name: reads\nusers:\n  - tasks:\n      - {weight: 60, request: {path: /v/1}}\n      - {weight: 1, request: {path: /v/2}}\n      - {weight: 14, request: {path: /v/3}}\n      - {weight: 5, request: {path: /v/4}}\n",
    );
    let engine = Engine::start(s.clone(), &server.url(), load(vec![8], 0.0), config(2)).unwrap();
    let total = run_for(&engine, Duration::from_millis(400), Duration::from_secs(5)).await;
    let mut recorded = 0;
    for (i, e) in total.endpoints.iter().enumerate() {
        if !is_request(&s, i) {
            continue;
        }
        let path = &s.endpoints()[i].name;
        assert_eq!(
            e.counts.requests + e.counts.cancelled,
            server.served_path(path),
            "{path}"
        );
        assert_eq!(e.counts.failures, 0, "{path}: {:?}", e.failures_by_kind);
        assert_eq!(e.counts.bytes, e.counts.requests, "body \"v\" is one byte");
        recorded += e.counts.requests + e.counts.cancelled;
    }
    assert_eq!(recorded, server.served());
    assert!(recorded > 100, "only {recorded} requests");
    let v1 = total.endpoints[0].counts.requests;
    let v4 = total.endpoints[3].counts.requests;
    assert!(v1 > v4, "60:5 weights gave {v1}:{v4}");
    // One keep-alive connection per user.
    assert_eq!(server.connections(), 8);
}

#[tokio::test]
async fn failures_are_counted_by_status() {
    let server = TestServer::start();
    let s = scenario(
        "name: statuses\nusers:\n  - tasks:\n      - request: {path: /status/503}\n      - request: {path: /status/404, expect: [404]}\n      - request: {path: /status/302}\n",
    );
    let engine = Engine::start(s.clone(), &server.url(), load(vec![2], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let [e503, e404, e302] = &total.endpoints[..3] else {
        panic!("3 endpoints")
    };
    assert!(e503.counts.requests > 0 && e404.counts.requests > 0 && e302.counts.requests > 0);
    assert_eq!(e503.counts.failures, e503.counts.requests);
    assert_eq!(e503.failures_by_kind.len(), 1);
    assert_eq!(e503.failures_by_kind[0].kind, "status 503");
    assert_eq!(e503.failures_by_kind[0].count, e503.counts.requests);
    assert_eq!(
        e503.failures_by_kind[0].last_message,
        "/status/503 returned status 503"
    );
    assert_eq!(e404.counts.failures, 0, "404 was expected");
    assert_eq!(e302.counts.failures, 0, "3xx succeeds by default");
    let total_counts = request_total(&total, &s);
    assert_eq!(
        total_counts.requests + total_counts.cancelled,
        server.served()
    );
}

/// A body still streaming in at the deadline: the request times out at its
/// deadline, not when the body ends. (The timer is also polled outside the
/// task's cooperative budget, for links fast enough that every read of a
/// turn finds data; loopback here drains the socket before that happens.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_streaming_past_the_timeout_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // One connection at a time: a head promising 1 TB, then bytes as fast
    // as loopback takes them, for at most 3 s or until the client leaves.
    let server = tokio::spawn(async move {
        let started = Instant::now();
        let mut served = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            let accept = tokio::time::timeout(Duration::from_millis(200), listener.accept());
            let Ok(Ok((mut socket, _))) = accept.await else {
                continue;
            };
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            served += 1;
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n";
            if socket.write_all(head).await.is_err() {
                continue;
            }
            let chunk = vec![b'x'; 64 * 1024];
            while started.elapsed() < Duration::from_secs(3) {
                if socket.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        }
        served
    });
    let s = scenario("name: stream\nusers:\n  - tasks: [{request: {path: /big}}]\n");
    let mut cfg = config(1);
    cfg.request_timeout = Duration::from_millis(100);
    let engine = Engine::start(s, &url, load(vec![1], 0.0), cfg).unwrap();
    let total = run_for(&engine, Duration::from_millis(700), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests >= 2, "{:?}", e.counts);
    assert_eq!(e.counts.failures, e.counts.requests);
    assert_eq!(e.failures_by_kind[0].kind, "timeout");
    // Each at its 100 ms deadline, not when the stream ends (3 s).
    assert!(e.histogram.max_us() < 1_000_000, "{}", e.histogram.max_us());
    assert!(server.await.unwrap() >= e.counts.requests);
}

#[tokio::test]
async fn slow_responses_time_out() {
    let server = TestServer::start();
    let s = scenario("name: slow\nusers:\n  - tasks: [{request: {path: /slow/2000}}]\n");
    let mut cfg = config(1);
    cfg.request_timeout = Duration::from_millis(100);
    let engine = Engine::start(s, &server.url(), load(vec![1], 0.0), cfg).unwrap();
    let total = run_for(&engine, Duration::from_millis(450), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests >= 2, "{:?}", e.counts);
    assert_eq!(e.counts.failures, e.counts.requests);
    assert_eq!(e.failures_by_kind[0].kind, "timeout");
    assert_eq!(
        e.failures_by_kind[0].last_message,
        "no response within 100ms"
    );
    // 3 significant digits: the bucket of 100 ms may start just below it.
    assert!(e.histogram.min_us() >= 99_900, "{}", e.histogram.min_us());
    assert_eq!(e.counts.requests + e.counts.cancelled, server.served());
    // Each timed-out connection is dropped and a new one opened.
    assert_eq!(server.connections(), server.served());
}

#[tokio::test]
async fn extracted_token_is_used_by_later_requests() {
    let server = TestServer::start();
    let s = scenario(
        r#"name: token
users:
  - name: member
    on_start:
      - {method: POST, path: /login, extract: [{var: token, json: /token}]}
    tasks:
      - request: {path: /me, headers: {authorization: "Bearer {{ token }}"}, expect: [200]}
  - name: broken
    on_start:
      - {path: /ok, extract: [{var: token, json: /token}]}
      - {path: /never}
    tasks:
      - request: {path: /status/200}
"#,
    );
    let engine = Engine::start(s.clone(), &server.url(), load(vec![2, 1], 0.0), config(2)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let endpoint =
        |name: &str| &total.endpoints[s.endpoints().iter().position(|e| e.name == name).unwrap()];
    let login = endpoint("/login");
    assert_eq!((login.counts.requests, login.counts.failures), (2, 0));
    let me = endpoint("/me");
    assert!(me.counts.requests > 0);
    assert_eq!(me.counts.failures, 0, "{:?}", me.failures_by_kind);
    let ok = endpoint("/ok");
    assert_eq!((ok.counts.requests, ok.counts.failures), (1, 1));
    assert_eq!(ok.failures_by_kind[0].kind, "extract");
    assert!(
        ok.failures_by_kind[0]
            .last_message
            .starts_with("response body is not JSON"),
        "{:?}",
        ok.failures_by_kind
    );
    // A failed step ends its sequence, and the user goes on with its tasks.
    assert_eq!(endpoint("/never").counts.requests, 0);
    assert!(endpoint("/status/200").counts.requests > 0);
    let t = request_total(&total, &s);
    assert_eq!(t.requests + t.cancelled, server.served());
}

#[tokio::test]
async fn requests_carry_query_headers_and_bodies() {
    let server = TestServer::start();
    let s = scenario(
        r#"name: echo
users:
  - variables: {id: "dev {{ user_id }}"}
    on_start:
      - {method: POST, path: /echo, query: {a: "x y", n: "{{ seq }}"}, form: {deviceid: "{{ id }}", t: "1&2"}, headers: {x-custom: "c-{{ id }}"}}
      - {method: PUT, path: /echo, json: {id: "{{ id }}", seq: "{{ seq }}", list: [1, true]}, extract: [{var: id, regex: "\"id\":\"([^\"]*)\""}]}
      - {method: PATCH, path: /echo, body: "raw {{ id }}", headers: {content-type: text/plain}}
    tasks:
      - request: {path: /slow/100}
"#,
    );
    let load = Load {
        class_users: vec![1],
        spawn_rate: 0.0,
        user_id_offset: 41,
        ..Load::default()
    };
    let engine = Engine::start(s, &server.url(), load, config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(150), Duration::from_secs(5)).await;
    assert_eq!(
        total
            .endpoints
            .iter()
            .map(|e| e.counts.failures)
            .sum::<u64>(),
        0
    );
    // The PATCH is last; the PUT's echo (a JSON object) was matched by the regex.
    assert_eq!(server.last_echo(), "PATCH  text/plain  raw dev 41");
    assert_eq!(server.served_path("/echo"), 3);
}

#[tokio::test]
async fn query_and_form_encoding_on_the_wire() {
    let server = TestServer::start();
    let s = scenario(
        r#"name: echo
users:
  - variables: {id: "dev {{ user_id }}"}
    tasks:
      - request: {method: POST, path: /echo, query: {a: "x y", n: "{{ seq }}"}, form: {deviceid: "{{ id }}", t: "1&2"}, headers: {x-custom: "c-{{ id }}"}}
"#,
    );
    let load = Load {
        class_users: vec![1],
        spawn_rate: 0.0,
        user_id_offset: 7,
        ..Load::default()
    };
    let engine = Engine::start(s, &server.url(), load, config(1)).unwrap();
    wait_until("first request", || server.served() >= 1).await;
    engine.stop(Duration::from_secs(5)).await;
    let echo = server.last_echo();
    let seq = server.served() - 1;
    assert_eq!(
        echo,
        format!(
            "POST a=x+y&n={seq} application/x-www-form-urlencoded c-dev 7 deviceid=dev+7&t=1%262"
        )
    );
}

#[tokio::test]
async fn json_bodies_are_rendered() {
    let server = TestServer::start();
    let s = scenario(
        r#"name: echo
users:
  - tasks:
      - request: {method: PUT, path: /echo, json: {id: "u{{ user_id }}", n: "{{ user_id }}", list: [1, true, null]}}
"#,
    );
    let load = Load {
        class_users: vec![1],
        spawn_rate: 0.0,
        user_id_offset: 3,
        ..Load::default()
    };
    let engine = Engine::start(s, &server.url(), load, config(1)).unwrap();
    wait_until("first request", || server.served() >= 1).await;
    engine.stop(Duration::from_secs(5)).await;
    assert_eq!(
        server.last_echo(),
        r#"PUT  application/json  {"id":"u3","n":3,"list":[1,true,null]}"#
    );
}

#[tokio::test(start_paused = true)]
async fn users_ramp_at_the_spawn_rate() {
    let server = TestServer::start();
    let s = scenario(
        "name: ramp\nusers:\n  - {name: a, tasks: [{request: {path: /slow/20}}]}\n  - {name: b, tasks: [{request: {path: /slow/20}}]}\n",
    );
    let engine =
        Engine::start(s.clone(), &server.url(), load(vec![6, 4], 10.0), config(2)).unwrap();
    // Virtual time: user k starts at k / 10 s.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(engine.spawned_users(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(engine.spawned_users(), 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(engine.spawned_users(), 8);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(engine.spawned_users(), 10);
    // The spawner is done; the users run on their own threads in real time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.active_users() < 10 {
        assert!(Instant::now() < deadline, "users did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A paused clock would jump over the grace period at once and abort
    // requests that may not have reached the server yet.
    tokio::time::resume();
    engine.stop(Duration::from_secs(5)).await;
    assert_eq!(engine.active_users(), 0);
    let t = request_total(&engine.cut(), &s);
    assert_eq!(t.cancelled, 0);
    assert_eq!(t.requests + t.cancelled, server.served());
}

#[tokio::test]
async fn stop_cancels_requests_still_in_flight_after_the_grace_period() {
    let server = TestServer::start();
    let s = scenario("name: stuck\nusers:\n  - tasks: [{request: {path: /slow/5000}}]\n");
    let engine = Engine::start(s, &server.url(), load(vec![4], 0.0), config(2)).unwrap();
    wait_until("4 requests at the server", || server.served() == 4).await;
    assert_eq!(engine.in_flight(), 4);
    assert_eq!(engine.active_users(), 4);
    let stopping = Instant::now();
    engine.stop(Duration::from_millis(200)).await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(engine.active_users(), 0);
    let e = &engine.cut().endpoints[0];
    assert_eq!((e.counts.requests, e.counts.cancelled), (0, 4));
    assert_eq!(server.served(), 4);
}

#[tokio::test]
async fn stop_lets_current_requests_finish_within_the_grace_period() {
    let server = TestServer::start();
    let s = scenario("name: finish\nusers:\n  - tasks: [{request: {path: /slow/150}}]\n");
    let engine = Engine::start(s, &server.url(), load(vec![3], 0.0), config(2)).unwrap();
    wait_until("3 requests at the server", || server.served() >= 3).await;
    engine.stop(Duration::from_secs(5)).await;
    let e = &engine.cut().endpoints[0];
    assert_eq!(e.counts.cancelled, 0);
    assert_eq!(e.counts.failures, 0);
    assert_eq!(e.counts.requests, server.served());
}

#[tokio::test]
async fn closed_connections_are_reopened() {
    let server = TestServer::start();
    let s = scenario("name: close\nusers:\n  - tasks: [{request: {path: /close}}]\n");
    let engine = Engine::start(s, &server.url(), load(vec![2], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(300), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests >= 4, "{:?}", e.counts);
    assert_eq!(e.counts.failures, 0, "{:?}", e.failures_by_kind);
    assert_eq!(e.counts.requests + e.counts.cancelled, server.served());
    assert_eq!(server.connections(), server.served());
}

#[tokio::test]
async fn refused_connections_are_failures() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let s = scenario(
        "name: refused\nusers:\n  - {wait: {constant: 20ms}, tasks: [{request: {path: /}}]}\n",
    );
    let engine = Engine::start(
        s,
        &format!("http://127.0.0.1:{port}"),
        load(vec![1], 0.0),
        config(1),
    )
    .unwrap();
    let total = run_for(&engine, Duration::from_millis(150), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests >= 1);
    assert_eq!(e.counts.failures, e.counts.requests);
    assert_eq!(e.failures_by_kind[0].kind, "connect");
    assert!(
        e.failures_by_kind[0]
            .last_message
            .starts_with(&format!("connect to 127.0.0.1:{port}: "))
    );
}

#[tokio::test]
async fn bad_input_is_rejected() {
    let s = scenario("name: x\nusers:\n  - tasks: [{request: {path: /}}]\n");
    let e = Engine::start(s.clone(), "ftp://127.0.0.1", load(vec![1], 0.0), config(1))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("invalid host \"ftp://127.0.0.1\""),
        "{e}"
    );
    let e = Engine::start(s, "http://127.0.0.1:1", load(vec![1, 2], 0.0), config(1))
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "invalid load: 2 user counts for 1 user classes"
    );
}

#[tokio::test]
async fn https_targets_are_verified_and_served() {
    let server = TestServer::start_tls();
    let s = scenario("name: tls\nusers:\n  - tasks: [{request: {path: /ok}}]\n");
    let mut cfg = config(1);
    cfg.tls_ca_pem = Some(TEST_CA_PEM.to_owned());
    let engine = Engine::start(s.clone(), &server.https_url(), load(vec![2], 0.0), cfg).unwrap();
    let total = run_for(&engine, Duration::from_millis(200), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests > 0);
    assert_eq!(e.counts.failures, 0, "{:?}", e.failures_by_kind);
    assert_eq!(e.counts.bytes, 5 * e.counts.requests);
    assert_eq!(e.counts.requests + e.counts.cancelled, server.served());
    assert_eq!(server.connections(), 2);

    // Without the test CA the certificate is not trusted.
    let engine = Engine::start(s, &server.https_url(), load(vec![1], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(100), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests > 0);
    assert_eq!(e.counts.failures, e.counts.requests);
    assert_eq!(e.failures_by_kind[0].kind, "connect");
    assert!(
        e.failures_by_kind[0]
            .last_message
            .starts_with("tls handshake with 127.0.0.1: "),
        "{:?}",
        e.failures_by_kind
    );

    let mut cfg = config(1);
    cfg.tls_ca_pem = Some("not a pem".to_owned());
    let scenario = scenario("name: tls\nusers:\n  - tasks: [{request: {path: /ok}}]\n");
    let error = Engine::start(scenario, &server.https_url(), load(vec![1], 0.0), cfg)
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "invalid TLS configuration: the worker's CA: no certificate found in the CA PEM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retarget_starts_and_retires_users_live() {
    let server = TestServer::start();
    let s = scenario(
        "name: scale\nusers:\n  - {name: a, weight: 3, wait: {constant: 20ms}, tasks: [{request: {path: /}}]}\n  - {name: b, wait: {constant: 20ms}, tasks: [{request: {path: /}}]}\n",
    );
    let engine = Engine::start(s, &server.url(), load(vec![3, 1], 0.0), config(2)).unwrap();
    wait_until("4 users", || engine.active_users() == 4).await;

    // Up: 8 more users, ids from the new offset.
    let up = Load {
        class_users: vec![9, 3],
        spawn_rate: 1000.0,
        user_id_offset: 100,
        ..Load::default()
    };
    engine.retarget(up).unwrap();
    assert_eq!(engine.target_users(), 12);
    wait_until("12 users", || engine.active_users() == 12).await;
    assert_eq!(engine.spawned_users(), 12);

    // Down: users leave after their current task, even while waiting.
    engine.retarget(load(vec![2, 1], 1000.0)).unwrap();
    wait_until("3 users", || engine.active_users() == 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.active_users(), 3, "no user retired twice");
    let served_before = server.served();
    wait_until("the rest still run", || {
        server.served() > served_before + 10
    })
    .await;

    assert!(
        engine.retarget(load(vec![1], 1.0)).is_err(),
        "class count is checked"
    );
    let total = run_for(&engine, Duration::ZERO, Duration::from_secs(5)).await;
    assert_eq!(total.total().cancelled, 0);
}

#[tokio::test]
async fn http2_by_prior_knowledge_and_by_alpn() {
    let ok = |http: &str| {
        scenario(&format!(
            "name: h2\nhttp: {http}\nusers:\n  - tasks: [{{request: {{path: /ok, check: [{{body_contains: hello}}]}}}}]\n"
        ))
    };
    // h2c with prior knowledge over plain TCP.
    let server = TestServer::start();
    let engine = Engine::start(ok("2"), &server.url(), load(vec![3], 0.0), config(1)).unwrap();
    let total = run_for(&engine, Duration::from_millis(200), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests > 0);
    assert_eq!(e.counts.failures, 0, "{:?}", e.failures_by_kind);
    assert_eq!(e.counts.requests + e.counts.cancelled, server.served());
    assert_eq!(
        server.served_http2(),
        server.served(),
        "every request over HTTP/2"
    );
    assert_eq!(server.connections(), 3, "one connection per user");

    // Over TLS `auto` takes HTTP/2 when ALPN offers it, `1.1` never does.
    let server = TestServer::start_tls_h2();
    let mut cfg = config(1);
    cfg.tls_ca_pem = Some(TEST_CA_PEM.to_owned());
    let engine = Engine::start(
        ok("auto"),
        &server.https_url(),
        load(vec![2], 0.0),
        cfg.clone(),
    )
    .unwrap();
    let total = run_for(&engine, Duration::from_millis(200), Duration::from_secs(5)).await;
    assert_eq!(
        total.endpoints[0].counts.failures, 0,
        "{:?}",
        total.endpoints[0].failures_by_kind
    );
    assert!(server.served() > 0);
    assert_eq!(server.served_http2(), server.served());
    let server = TestServer::start_tls_h2();
    let engine = Engine::start(
        ok("1.1"),
        &server.https_url(),
        load(vec![2], 0.0),
        cfg.clone(),
    )
    .unwrap();
    let total = run_for(&engine, Duration::from_millis(200), Duration::from_secs(5)).await;
    assert_eq!(total.endpoints[0].counts.failures, 0);
    assert!(server.served() > 0);
    assert_eq!(server.served_http2(), 0);

    // `2` against a server without h2 in ALPN is a clear connect failure.
    let server = TestServer::start_tls();
    let engine = Engine::start(ok("2"), &server.https_url(), load(vec![1], 0.0), cfg).unwrap();
    let total = run_for(&engine, Duration::from_millis(100), Duration::from_secs(5)).await;
    let e = &total.endpoints[0];
    assert!(e.counts.requests > 0);
    assert_eq!(e.counts.failures, e.counts.requests);
    assert_eq!(e.failures_by_kind[0].kind, "connect");
    assert!(
        e.failures_by_kind[0]
            .last_message
            .contains("did not agree to HTTP/2 (ALPN)"),
        "{:?}",
        e.failures_by_kind
    );
}
