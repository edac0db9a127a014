//! Scenario features of real applications end to end through `cicada run`
//! against the sample target, which checks what it receives: per-user
//! cookie jars (its `/account` answers 401 without the session cookie),
//! header extraction (the session's `Location` names the account path),
//! basic auth (`/private`), think time, response checks with their counts,
//! and the JUnit report.

mod support;

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;

const SHOP: &str = r#"
name: shop-session
users:
  - name: buyer
    weight: 3
    auth: {basic: [cicada, "{{ password }}"]}
    variables: {password: secret}
    on_start:
      - method: POST
        path: /session
        form: {user: "buyer{{ user_id }}"}
        check:
          - {json: /user, exists: true}
        extract:
          - {var: me, header: location, regex: "^/account/(.+)$"}
    tasks:
      - think: 5ms
        name: browse account
        steps:
          - path: "/account/{{ me }}"
            name: /account/:user
            headers: {x-session: "{{ cookie.sid }}"}
            check:
              - {json: /items, equals: 3}
              - {header: content-type, equals: application/json}
              - {name: has five items, json: /items, equals: 5}
          - path: /private
            check: [{body_contains: ok}]
  - name: regular
    on_start:
      - {method: POST, path: /session, name: /session (regular), form: {user: "regular{{ user_id }}"}}
    tasks:
      - request: {path: /account, name: /account (jar)}
  - name: visitor
    cookies: false
    tasks:
      - steps:
          - {method: POST, path: /session, name: /session (visitor), form: {user: visitor}}
          - path: /account
            name: /account (no cookies)
            expect: 401
            check: [{body_contains: unauthorized}]
"#;

fn endpoint<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name}: {summary}"))
}

fn check(summary: &serde_json::Value, name: &str) -> (u64, u64) {
    let check = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {summary}"));
    (
        check["passed"].as_u64().unwrap(),
        check["failed"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_auth_extraction_and_checks_against_a_verifying_target() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(&dir, SHOP);
    let junit = dir.path().join("junit.xml");
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &[
            "--workers",
            "2",
            "-u",
            "8",
            "-r",
            "100",
            "-t",
            "4s",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(
        run.code, 0,
        "failing checks alone do not fail the run: {}",
        run.stderr
    );
    let summary = &run.summary;
    // Conservation over the whole run (the endpoints are named apart from
    // the target's routes): served == reported == stored.
    let served = target_stats(&target.url).await["total"].as_u64().unwrap();
    let reported = summary["total"]["requests"].as_u64().unwrap();
    let run_id = summary["run_id"].as_str().unwrap();
    let stored = stored_run(db.url(), run_id).await;
    assert_eq!(served, reported, "{summary}");
    assert_eq!(stored.summary_total.requests, served);
    assert_eq!(stored.seconds_total.requests, served);

    let sessions = endpoint(summary, "/session")["requests"].as_u64().unwrap();
    let accounts = endpoint(summary, "/account/:user")["requests"]
        .as_u64()
        .unwrap();
    let private = endpoint(summary, "/private")["requests"].as_u64().unwrap();
    let refused = endpoint(summary, "/account (no cookies)")["requests"]
        .as_u64()
        .unwrap();
    assert!(
        sessions >= 1 && accounts > 100 && private > 100 && refused > 10,
        "{summary}"
    );
    // A static request (sent pre-encoded while a user's jar is empty) goes
    // out built, with the cookie, once the jar holds one: the target
    // accepted every one of them (below: it refused only the visitors).
    let jar = endpoint(summary, "/account (jar)");
    assert!(jar["requests"].as_u64().unwrap() > 10, "{jar}");
    assert_eq!(jar["failures"].as_u64(), Some(0), "{jar}");

    // The named task is a group: one row timing both steps and the think
    // time between them, not counted as requests (conservation above).
    let group = endpoint(summary, "browse account");
    assert_eq!(group["method"], "GROUP");
    let groups = group["requests"].as_u64().unwrap();
    assert!(
        groups <= private && groups + 8 >= private,
        "{groups} groups, {private} /private"
    );
    assert_eq!(group["failures"].as_u64(), Some(0));
    let p50 = |e: &serde_json::Value| e["p50_ms"].as_f64().unwrap();
    assert!(
        p50(group) >= 5.0 + p50(endpoint(summary, "/private")),
        "a group lasts its steps plus the think time: {group}"
    );

    // The target refused exactly the visitors' cookieless requests: every
    // buyer sent its own session cookie to its own account (the path came
    // from the Location header) and the right credentials to /private.
    let stats = target_stats(&target.url).await;
    assert_eq!(stats["bad_requests"].as_u64(), Some(refused), "{stats}");
    assert_eq!(stats["errors"].as_u64(), Some(0));

    // Every check is counted; only the one that cannot pass fails, and it
    // makes those requests failures of kind `check` without losing their
    // latencies.
    assert_eq!(check(summary, "/user exists"), (sessions, 0));
    assert_eq!(check(summary, "/items == 3"), (accounts, 0));
    assert_eq!(
        check(summary, "header content-type == \"application/json\""),
        (accounts, 0)
    );
    assert_eq!(check(summary, "has five items"), (0, accounts));
    assert_eq!(check(summary, "body contains \"ok\""), (private, 0));
    assert_eq!(
        check(summary, "body contains \"unauthorized\""),
        (refused, 0)
    );
    let failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{summary}");
    assert_eq!(failures[0]["kind"], "check");
    assert_eq!(failures[0]["count"].as_u64(), Some(accounts));
    assert_eq!(
        failures[0]["last_message"],
        "\"has five items\" failed: found 3"
    );
    let account_row = endpoint(summary, "/account/:user");
    assert!(
        account_row["p50_ms"].as_f64().unwrap() > 0.0,
        "{account_row}"
    );
    assert!(
        run.stdout.contains("Checks: 1 of 6 failing"),
        "{}",
        run.stdout
    );
    let line = run
        .stdout
        .lines()
        .find(|line| line.contains("has five items") && line.contains("passed,"))
        .expect("the failing check's line");
    assert!(
        line.starts_with("  FAIL    0.00%  GET /account/:user "),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("(0 passed, {accounts} failed)")),
        "{line}"
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"7\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains("<testcase name=\"GET /account/:user: has five items\" classname=\"check\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"every request recorded\" classname=\"completeness\""),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_reaches_the_target_as_http2() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        r#"
name: h2c
http: 2
users:
  - on_start:
      - {method: POST, path: /session, form: {user: "u{{ user_id }}"}}
    tasks:
      - request:
          path: /account
          check: [{json: /items, equals: 3}]
      - request:
          method: POST
          path: /metrics
          form: {deviceid: "d{{ user_id }}", timestamp: "{{ now_ms }}"}
"#,
    );
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "6", "-r", "100", "-t", "2s"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = target_stats(&target.url).await;
    let total = stats["total"].as_u64().unwrap();
    assert!(total > 100, "{stats}");
    // Every request came over HTTP/2, with its cookie (the session) and
    // form bodies intact.
    assert_eq!(stats["http2"], total, "{stats}");
    assert_eq!(stats["bad_requests"], 0, "{stats}");
    assert_eq!(run.summary["total"]["failures"], 0, "{}", run.summary);
    assert_conserved(&target.url, db.url(), &run.summary).await;
}

/// `{{ env.NAME }}`: the value comes from the workers' environment (here
/// `cicada run`'s own), reaches the target, and is stored nowhere; without
/// it the run is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_values_are_used_and_never_stored() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        r#"
name: env-auth
users:
  - auth: {basic: [cicada, "{{ env.SHOP_PASSWORD }}"]}
    tasks:
      - request: {path: /private}
"#,
    );
    let refused = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["-u", "2", "-t", "1s"],
        &[],
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("environment variable not set: SHOP_PASSWORD (line 4, column 28)"),
        "{}",
        refused.stderr
    );
    assert_eq!(target_stats(&target.url).await["total"], 0);

    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["-u", "2", "-r", "100", "-t", "1s"],
        &[("SHOP_PASSWORD", "secret")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The target accepted the password on every request.
    assert_eq!(run.summary["total"]["failures"], 0, "{}", run.summary);
    assert!(run.summary["total"]["requests"].as_u64().unwrap() > 50);
    assert_conserved(&target.url, db.url(), &run.summary).await;
    let store = cicada_store::connect(db.url()).await.unwrap();
    let record = store
        .get_run(run.summary["run_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(record.scenario_yaml.contains("{{ env.SHOP_PASSWORD }}"));
    for text in [
        record.scenario_yaml.as_str(),
        record.config_json.as_str(),
        &run.summary.to_string(),
        &run.stdout,
        &run.stderr,
    ] {
        assert!(!text.contains("secret"), "the value leaked: {text}");
    }
}
