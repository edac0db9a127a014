//! `{{ env.NAME }}`: values from the worker's environment in every kind of
//! template, and a missing one refused before any request.

use std::time::Duration;

use super::server::TestServer;
use super::{Engine, config, load, run_for, scenario};

#[tokio::test]
async fn env_values_reach_the_request() {
    let server = TestServer::start();
    let s = scenario(
        r#"name: secrets
users:
  - variables: {device: "{{ env.DEVICE }}-{{ user_id }}"}
    on_start:
      - {method: POST, path: /echo, query: {key: "{{ env.API_KEY }}"}, form: {device: "{{ device }}"}, headers: {x-api-key: "{{ env.API_KEY }}"}}
      - {method: PUT, path: /echo, json: {token: "Bearer {{ env.API_KEY }}", device: "{{ device }}"}}
    tasks:
      - request: {path: /slow/100}
"#,
    );
    assert_eq!(
        s.env().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["DEVICE", "API_KEY"]
    );
    let mut with_env = config(1);
    with_env.env = [("DEVICE", "meter"), ("API_KEY", "s3cr3t")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let engine = Engine::start(s, &server.url(), load(vec![1], 0.0), with_env).unwrap();
    let total = run_for(&engine, Duration::from_millis(150), Duration::from_secs(5)).await;
    let failures: u64 = total.endpoints.iter().map(|e| e.counts.failures).sum();
    assert_eq!(failures, 0);
    assert_eq!(server.served_path("/echo"), 2);
    assert_eq!(
        server.last_echo(),
        r#"PUT  application/json  {"token":"Bearer s3cr3t","device":"meter-0"}"#
    );
}

#[tokio::test]
async fn a_missing_env_value_is_refused_before_any_request() {
    let server = TestServer::start();
    let s = scenario(
        "name: secrets\nusers:\n  - tasks:\n      - request: {path: /ok, headers: {x-api-key: \"{{ env.API_KEY }}\"}}\n",
    );
    let error = Engine::start(s, &server.url(), load(vec![2], 0.0), config(1))
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(
        error,
        "environment variable not set: API_KEY (line 4, column 51); the scenario reads it with {{ env.NAME }}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.served(), 0);
}
