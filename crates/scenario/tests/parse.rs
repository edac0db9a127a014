//! Parsing the shipped examples, every feature, and the error messages.

use std::time::Duration;

use cicada_scenario::{
    Body, Expect, ExtractSource, Metric, Op, ResponseView, Scenario, Segment, Stage, StageTarget,
    Timeouts, Wait,
};

fn example(name: &str) -> Scenario {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Scenario::parse(&path, &text).unwrap()
}

fn parse(yaml: &str) -> Scenario {
    Scenario::parse("x.yaml", yaml).unwrap()
}

fn error(yaml: &str) -> String {
    Scenario::parse("x.yaml", yaml).unwrap_err().to_string()
}

#[test]
fn weighted_reads_example() {
    let s = example("weighted-reads.yaml");
    assert_eq!(s.name(), "weighted-reads");
    assert_eq!(s.host(), Some("http://127.0.0.1:8080"));
    let class = &s.classes()[0];
    assert_eq!(class.wait, Wait::None);
    let weights: Vec<u32> = class.tasks.iter().map(|t| t.weight).collect();
    assert_eq!(weights, [60, 1, 14, 5]);
    let names: Vec<String> = s
        .endpoints()
        .iter()
        .filter(|e| cicada_scenario::is_request_method(&e.method))
        .map(|e| format!("{} {}", e.method, e.name))
        .collect();
    assert_eq!(
        names,
        [
            "GET /Test/V1",
            "GET /Test/V2",
            "GET /Test/V3",
            "GET /Test/V4"
        ]
    );
    for (i, task) in class.tasks.iter().enumerate() {
        assert_eq!(task.steps[0].endpoint, i);
        assert!(task.steps[0].path.as_static().is_some());
    }
}

#[test]
fn iot_device_example() {
    let s = example("iot-device.yaml");
    let class = &s.classes()[0];
    assert_eq!(class.var_names, ["deviceid"]);
    assert_eq!(class.variables[0].1.segments(), [Segment::Uuid]);
    assert_eq!(class.tasks[0].weight, 1);
    assert_eq!(class.tasks[1].weight, 999);
    let login = &class.tasks[0].steps[0];
    assert_eq!(
        (login.method.as_str(), login.name.as_str()),
        ("POST", "/login")
    );
    let Body::Form(fields) = &login.body else {
        panic!("form body")
    };
    assert_eq!(fields[0].0, "deviceid");
    assert_eq!(fields[0].1.segments(), [Segment::Var(0)]);
    let Body::Form(fields) = &class.tasks[1].steps[0].body else {
        panic!("form body")
    };
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["deviceid", "timestamp"]);
    assert_eq!(fields[1].1.segments(), [Segment::NowMs]);
    let summary = s.summary();
    assert!(summary.contains("device (weight 1): 2 tasks"), "{summary}");
    assert!(summary.contains("POST /metrics"), "{summary}");
}

const FULL: &str = r#"
name: full
users:
  - name: api
    weight: 3
    wait: {between: [500ms, 2s]}
    variables:
      user: "u{{ user_id }}"
      greeting: "hi {{ user }}"
    on_start:
      - method: POST
        path: /login
        json: {user: "{{ user }}", n: 1, tags: [a, "{{ seq }}"], ok: true}
        expect: [200, 201]
        extract: [{var: token, json: /token}]
    tasks:
      - weight: 5
        request:
          path: /items/{{ random_int(1, 100) }}
          name: /items/:id
          query: {q: "{{ greeting }}", page: 2}
          headers: {authorization: "Bearer {{ token }}", x-n: 1}
          expect: 200
      - steps:
          - {method: PUT, path: /raw, body: "text {{ now_rfc3339 }}"}
          - {method: DELETE, path: /items/1, name: /items/:id, extract: [{var: csrf, regex: "csrf=(\\w+)"}]}
          - {method: GET, path: "/items/{{ csrf }}", name: /items/:id}
  - name: idle
    wait: {pacing: 1s}
    tasks: [{request: {path: /}}]
  - name: steady
    wait: {constant: 250ms}
    tasks: [{request: {path: /}}]
"#;

#[test]
fn every_feature_parses() {
    let s = Scenario::parse("full.yaml", FULL).unwrap();
    assert_eq!(s.host(), None);
    let infos: Vec<(&str, u32)> = s
        .user_classes()
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(infos, [("api", 3), ("idle", 1), ("steady", 1)]);
    let api = &s.classes()[0];
    assert_eq!(
        api.wait,
        Wait::Between(Duration::from_millis(500), Duration::from_secs(2))
    );
    assert_eq!(s.classes()[1].wait, Wait::Pacing(Duration::from_secs(1)));
    assert_eq!(
        s.classes()[2].wait,
        Wait::Constant(Duration::from_millis(250))
    );
    assert_eq!(api.var_names, ["user", "greeting", "token", "csrf"]);
    assert_eq!(api.variables[1].1.segments()[1], Segment::Var(0));

    let login = &api.on_start[0];
    assert_eq!(login.expect, Expect::Statuses(vec![200, 201]));
    assert!(matches!(login.body, Body::Json(_)));
    assert_eq!(login.extract[0].var, 2);
    assert!(matches!(&login.extract[0].source, ExtractSource::JsonPointer(p) if p == "/token"));

    let get = &api.tasks[0].steps[0];
    assert_eq!(get.method, "GET");
    assert_eq!(get.name, "/items/:id");
    assert_eq!(get.expect, Expect::Statuses(vec![200]));
    assert_eq!(get.query.len(), 2);
    assert_eq!(get.query[1].1.as_static(), Some("2"));
    assert_eq!(get.headers[0].1.segments()[1], Segment::Var(2));
    assert_eq!(api.tasks[1].weight, 1);
    assert_eq!(api.tasks[1].steps.len(), 3);
    assert!(matches!(api.tasks[1].steps[0].body, Body::Raw(_)));
    let csrf = &api.tasks[1].steps[1].extract[0];
    assert_eq!(csrf.apply(&body(b"<input csrf=abc123>")).unwrap(), "abc123");
    assert!(
        csrf.apply(&body(b"nothing"))
            .unwrap_err()
            .contains("did not match")
    );
    assert_eq!(
        login.extract[0].apply(&body(br#"{"token":"t1"}"#)).unwrap(),
        "t1"
    );
    assert_eq!(
        login.extract[0].apply(&body(br#"{"token":5}"#)).unwrap(),
        "5"
    );
    assert!(
        login.extract[0]
            .apply(&body(br#"{"nope":1}"#))
            .unwrap_err()
            .contains("not found")
    );
    assert!(
        login.extract[0]
            .apply(&body(b"<html>"))
            .unwrap_err()
            .contains("not JSON")
    );

    // (GET, /items/:id) and (DELETE, /items/:id) are different endpoints;
    // both GETs named /items/:id share one.
    let names: Vec<String> = s
        .endpoints()
        .iter()
        .filter(|e| cicada_scenario::is_request_method(&e.method))
        .map(|e| format!("{} {}", e.method, e.name))
        .collect();
    assert_eq!(
        names,
        [
            "POST /login",
            "GET /items/:id",
            "PUT /raw",
            "DELETE /items/:id",
            "GET /"
        ]
    );
    assert_eq!(api.tasks[1].steps[2].endpoint, get.endpoint);
    assert!(
        Expect::Default.accepts(302)
            && !Expect::Default.accepts(404)
            && !Expect::Default.accepts(199)
    );
}

#[test]
fn unknown_keys_name_the_place_and_the_allowed_keys() {
    let yaml = "name: x\nusers:\n  - name: a\n    wiat: none\n    tasks: []\n";
    assert_eq!(
        error(yaml),
        "x.yaml:4:5: unknown key \"wiat\" in user class; allowed: name, weight, wait, cookies, connection, tls, auth, variables, on_start, tasks"
    );
    assert_eq!(
        error("name: x\nratte: 5\nusers: []\n"),
        "x.yaml:2:1: unknown key \"ratte\" in scenario; allowed: name, host, timeouts, stages, users, rate, max_in_flight, thresholds, data, http, connection, tls"
    );
    let yaml = "name: x\nusers:\n  - tasks:\n      - request: {path: /, methd: GET}\n";
    assert_eq!(
        error(yaml),
        "x.yaml:4:28: unknown key \"methd\" in request; allowed: method, path, name, query, headers, form, json, body, auth, expect, check, extract"
    );
    let yaml = "name: x\nusers:\n  - tasks:\n      - wieght: 2\n        request: {path: /}\n";
    assert_eq!(
        error(yaml),
        "x.yaml:4:9: unknown key \"wieght\" in task; allowed: weight, name, request, steps, think"
    );
}

#[test]
fn value_errors_point_at_the_value() {
    let cases: &[(&str, &str)] = &[
        (
            "users:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:1:1: missing key \"name\" in scenario",
        ),
        (
            "name: x\nusers: []\n",
            "x.yaml:2:8: \"users\" is empty; a scenario needs at least one user class",
        ),
        (
            "name: x\nusers:\n  - name: a\n",
            "x.yaml:3:5: missing key \"tasks\" in user class",
        ),
        (
            "name: x\nusers:\n  - weight: 0\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:13: weight 0 is not positive; allowed: an integer >= 1",
        ),
        (
            "name: x\nusers:\n  - wait: {between: [2s, 1s]}\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:21: \"between\" needs [MIN, MAX] with MIN <= MAX",
        ),
        (
            "name: x\nusers:\n  - wait: {constant: 5}\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:22: expected a duration like 500ms, 1s or 2m, found an integer",
        ),
        (
            "name: x\nusers:\n  - wait: {constant: 5 sec}\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:22: invalid duration \"5 sec\"; expected a number with a unit, e.g. 500ms, 1s, 2m",
        ),
        (
            "name: x\nusers:\n  - wait: sometimes\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:11: invalid \"wait\"; allowed: none, {constant: DURATION}, {between: [MIN, MAX]}, {pacing: DURATION}",
        ),
        (
            "name: x\nusers:\n  - wait: {constant: 1s, pacing: 1s}\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:11: \"wait\" needs exactly one of: none, {constant: DURATION}, {between: [MIN, MAX]}, {pacing: DURATION}",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: /, method: FETCH}}]\n",
            "x.yaml:3:41: unknown method \"FETCH\"; allowed: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: items}}]\n",
            "x.yaml:3:30: path \"items\" must start with \"/\"",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: \"/{{ tok }}\"}}]\n",
            "x.yaml:3:30: unknown name \"tok\" in template; built-ins: uuid, now_ms, now_rfc3339, random_int(MIN, MAX), seq, user_id, cookie.NAME, env.NAME; variables: none",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: /, expect: [700]}}]\n",
            "x.yaml:3:42: expected an HTTP status code from 100 to 599",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: /, form: {a: 1}, json: {a: 1}}}]\n",
            "x.yaml:3:23: a request has at most one of \"form\", \"json\" or \"body\"",
        ),
        (
            "name: x\nusers:\n  - tasks: [{weight: 1}]\n",
            "x.yaml:3:13: a task needs exactly one of \"request\" (one request) or \"steps\" (a list of requests)",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: /, extract: [{var: t, regex: \"a(b)(c)\"}]}}]\n",
            "x.yaml:3:59: regex \"a(b)(c)\" must have exactly one capture group",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: /, extract: [{var: t, json: token}]}}]\n",
            "x.yaml:3:58: invalid JSON pointer \"token\"; it must be empty or start with \"/\", e.g. /token",
        ),
        (
            "name: x\nusers:\n  - variables: {uuid: a}\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:3:17: variable name \"uuid\" is a built-in; reserved: uuid, now_ms, now_rfc3339, random_int, seq, user_id, cookie, env",
        ),
        (
            "name: x\nusers:\n  - tasks: [{request: {path: /, headers: {\"bad header\": a}}}]\n",
            "x.yaml:3:43: invalid header name \"bad header\"; allowed: letters, digits and !#$%&'*+-.^_`|~",
        ),
        (
            "name: x\nhost: 127.0.0.1:80\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:7: invalid host \"127.0.0.1:80\"; expected http://HOST[:PORT] or https://HOST[:PORT]",
        ),
        (
            "name: x\nusers:\n  - name: a\n    tasks: [{request: {path: /}}]\n  - name: a\n    tasks: [{request: {path: /}}]\n",
            "x.yaml:5:5: duplicate user class name \"a\"",
        ),
        (
            "name: x\nusers: {a: 1}\n",
            "x.yaml:2:8: \"users\" must be a list of user classes, found a mapping",
        ),
        (
            "name: x\ntimeouts: {request: 0}\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:21: timeouts.request must be more than 0",
        ),
        (
            "name: x\ntimeouts: {read: 1s}\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:12: unknown key \"read\" in timeouts; allowed: connect, request",
        ),
        (
            "name: x\nstages: [{duration: 0s, users: 5}]\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:21: a stage's duration must be more than 0",
        ),
        (
            "name: x\nstages: [{duration: 1m, users: -5}]\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:32: users -5 is negative; allowed: an integer >= 0",
        ),
        (
            "name: x\nstages: [{duration: 1m, user: 5}]\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:25: unknown key \"user\" in stage; allowed: duration, users, rate",
        ),
        (
            "name: x\nstages: [{duration: 1m, users: 5}, {duration: 1m, rate: 5/s}]\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:36: all stages must ramp the same thing: users (closed model) or rate (open model)",
        ),
        (
            "name: x\nstages: [{duration: 1m}]\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:10: a stage needs exactly one of \"users\" (e.g. {duration: 2m, users: 100}) or \"rate\" (e.g. {duration: 2m, rate: 500/s})",
        ),
        (
            "name: x\nstages: []\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:9: \"stages\" is empty; leave it out or give at least one {duration: 2m, users: 100}",
        ),
        (
            "",
            "x.yaml:1:1: empty scenario; expected a mapping with keys: name, host, users",
        ),
        (
            "name: x\nrate: 5/d\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:7: invalid rate unit \"d\" in \"5/d\"; allowed: /s, /m, /h",
        ),
        (
            "name: x\nrate: 0/s\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:7: rate \"0/s\" must be more than 0",
        ),
        (
            "name: x\nrate: [1]\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:2:7: expected a rate like 500/s or 6000/m, found a list",
        ),
        (
            "name: x\nrate: 5/s\nmax_in_flight: 0\nusers:\n  - tasks: [{request: {path: /}}]\n",
            "x.yaml:3:16: max_in_flight must be a whole number from 1 to 4294967295",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(&error(yaml), want, "for {yaml:?}");
    }
}

#[test]
fn timeouts_are_optional_and_parsed() {
    let yaml = "name: x\nusers:\n  - tasks: [{request: {path: /}}]\n";
    assert_eq!(parse(yaml).timeouts(), Timeouts::default());
    let yaml = "name: x\ntimeouts: {connect: 2s, request: 500ms}\nusers:\n  - tasks: [{request: {path: /}}]\n";
    assert_eq!(
        parse(yaml).timeouts(),
        Timeouts {
            connect: Some(Duration::from_secs(2)),
            request: Some(Duration::from_millis(500)),
        }
    );
}

#[test]
fn rate_stages_ramp_the_open_model() {
    let yaml = "name: x\nstages:\n  - {duration: 1m, rate: 6000/m}\n  - {duration: 30s, rate: 0}\nusers:\n  - tasks: [{request: {path: /}}]\n";
    let targets: Vec<StageTarget> = parse(yaml).stages().iter().map(|s| s.target).collect();
    assert_eq!(targets, [StageTarget::Rate(100.0), StageTarget::Rate(0.0)]);
}

#[test]
fn stages_ramp_targets() {
    let yaml = "name: x\nstages:\n  - {duration: 2m, users: 100}\n  - {duration: 30s, users: 0}\nusers:\n  - tasks: [{request: {path: /}}]\n";
    assert_eq!(
        parse(yaml).stages(),
        [
            Stage {
                duration: Duration::from_secs(120),
                target: StageTarget::Users(100)
            },
            Stage {
                duration: Duration::from_secs(30),
                target: StageTarget::Users(0)
            }
        ]
    );
}

#[test]
fn later_variables_may_use_earlier_ones_only() {
    let yaml = "name: x\nusers:\n  - variables: {a: \"{{ b }}\", b: \"1\"}\n    tasks: [{request: {path: /}}]\n";
    let e = error(yaml);
    assert!(
        e.starts_with("x.yaml:3:20: unknown name \"b\" in template"),
        "{e}"
    );
}

#[test]
fn yaml_syntax_errors_have_locations() {
    let e = error("name: x\nusers: [\n  - a: 1\n");
    assert!(e.starts_with("x.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = error("name: x\nname: y\nusers: []\n");
    assert!(
        e.starts_with("x.yaml:2:1: invalid YAML: duplicate mapping key"),
        "{e}"
    );
}

#[test]
fn yaml_1_1_booleans_and_leading_zeros_stay_text() {
    let yaml = "name: x\nusers:\n  - tasks: [{request: {method: POST, path: /, form: {n: no, y: on, zip: 007, ok: true}}}]\n";
    let s = Scenario::parse("x.yaml", yaml).unwrap();
    let Body::Form(fields) = &s.classes()[0].tasks[0].steps[0].body else {
        panic!("form")
    };
    let got: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_static().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("n", "no"), ("y", "on"), ("zip", "007"), ("ok", "true")]
    );
}

#[test]
fn every_example_in_the_reference_parses() {
    let path = format!("{}/../../docs/SCENARIO.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).unwrap();
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 13);
    for block in blocks {
        let s = Scenario::parse("SCENARIO.md", block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert!(!s.endpoints().is_empty());
    }
}

#[test]
fn open_model_rate_and_in_flight_bound() {
    let s = parse(
        "name: x\nrate: 6000/m\nmax_in_flight: 50\nusers:\n  - tasks: [{request: {path: /}}]\n",
    );
    assert_eq!(s.rate(), Some(100.0));
    assert_eq!(s.max_in_flight(), Some(50));
    let s = parse("name: x\nrate: 250\nusers:\n  - tasks: [{request: {path: /}}]\n");
    assert_eq!(s.rate(), Some(250.0));
    assert_eq!(s.max_in_flight(), None);
    let s = parse("name: x\nusers:\n  - tasks: [{request: {path: /}}]\n");
    assert_eq!(s.rate(), None);
    assert_eq!(cicada_scenario::parse_rate("100000/s"), Ok(100_000.0));
    assert_eq!(cicada_scenario::parse_rate(" 0.5 / s "), Ok(0.5));
    assert_eq!(cicada_scenario::parse_rate("7200/h"), Ok(2.0));
    assert!(
        cicada_scenario::parse_rate("fast")
            .unwrap_err()
            .contains("500/s")
    );
    assert!(cicada_scenario::parse_rate("-1").is_err());
    assert!(cicada_scenario::parse_rate("inf").is_err());
}

const THRESHOLDS: &str = r#"
name: t
users:
  - tasks:
      - request: {method: POST, path: /login}
      - request: {method: GET, path: "/items/{{ random_int(1, 9) }}", name: /items/:id}
thresholds:
  - p95 < 150ms
  - "failure_rate < 1%"
  - {expr: "p99.9 < 1s", endpoint: "GET /items/:id"}
  - expr: rps >= 100000
    abort_on_fail: true
    delay: 30s
"#;

#[test]
fn thresholds_parse_as_strings_or_mappings() {
    let s = parse(THRESHOLDS);
    let t = s.thresholds();
    assert_eq!(t.len(), 4);
    assert_eq!(t[0].expr.metric, Metric::Percentile(95.0));
    assert_eq!((t[0].expr.op, t[0].expr.limit), (Op::Lt, 150.0));
    assert_eq!(t[0].endpoint, None);
    assert_eq!(t[1].expr.metric, Metric::FailureRate);
    assert_eq!(t[2].endpoint.as_deref(), Some("GET /items/:id"));
    assert_eq!(t[2].expr.to_string(), "p99.9 < 1s");
    assert!(t[3].abort_on_fail);
    assert_eq!(t[3].delay, Duration::from_secs(30));
    assert!(!t[0].abort_on_fail);
    let summary = s.summary();
    assert!(
        summary.contains("thresholds:\n  p95 < 150ms\n"),
        "{summary}"
    );
    assert!(summary.contains("GET /items/:id: p99.9 < 1s"), "{summary}");
    assert!(
        parse("name: x\nusers:\n  - tasks: [{request: {path: /}}]\n")
            .thresholds()
            .is_empty()
    );
}

#[test]
fn threshold_errors_point_at_the_value() {
    let base = "name: x\nusers:\n  - tasks: [{request: {method: POST, path: /metrics}}]\n";
    let cases: &[(&str, &str)] = &[
        (
            "thresholds:\n  - p95 < 150\n",
            "x.yaml:5:5: latency \"150\" needs a unit; allowed: us, ms or s (e.g. 150ms)",
        ),
        (
            "thresholds:\n  - p95 == 1s\n",
            "x.yaml:5:5: unknown operator \"==\" in threshold \"p95 == 1s\"; allowed: <, <=, >, >=",
        ),
        (
            "thresholds:\n  - latency < 1s\n",
            "x.yaml:5:5: unknown metric \"latency\"; allowed: pNN (e.g. p50, p95, p99.9), max, min, mean, failure_rate, rps, requests, failures, unrecorded",
        ),
        (
            "thresholds:\n  - {expr: p95 < 1s, endpoint: GET /metrics}\n",
            "x.yaml:5:32: unknown endpoint \"GET /metrics\" in threshold; expected METHOD NAME, one of: POST /metrics (or CONNECT or TLS then a request's METHOD NAME, for its new connections)",
        ),
        (
            "thresholds:\n  - {expr: p95 < 1s, abort: true}\n",
            "x.yaml:5:22: unknown key \"abort\" in threshold; allowed: expr, endpoint, abort_on_fail, delay",
        ),
        (
            "thresholds:\n  - {endpoint: POST /metrics}\n",
            "x.yaml:5:5: missing key \"expr\" in threshold",
        ),
        (
            "thresholds:\n  - {expr: p95 < 1s, abort_on_fail: yes}\n",
            "x.yaml:5:37: \"abort_on_fail\" must be true or false, found a string",
        ),
        (
            "thresholds:\n  - {expr: p95 < 1s, delay: 10s}\n",
            "x.yaml:5:29: \"delay\" only applies with \"abort_on_fail: true\"",
        ),
        (
            "thresholds:\n  - {expr: p95 < 1s, abort_on_fail: true, delay: soon}\n",
            "x.yaml:5:50: invalid duration \"soon\"; expected a number with a unit, e.g. 500ms, 1s, 2m",
        ),
        (
            "thresholds:\n  - 5\n",
            "x.yaml:5:5: invalid threshold; expected a string like \"p95 < 150ms\" or a mapping with keys: expr, endpoint, abort_on_fail, delay, found an integer",
        ),
        (
            "thresholds: p95 < 1s\n",
            "x.yaml:4:13: \"thresholds\" must be a list of thresholds, found a string",
        ),
    ];
    for (tail, want) in cases {
        let yaml = format!("{base}{tail}");
        assert_eq!(&error(&yaml), want, "for {yaml:?}");
    }
}

/// A response of this body and no headers.
fn body(body: &[u8]) -> ResponseView<'_> {
    static NO_HEADERS: std::sync::LazyLock<http::HeaderMap> =
        std::sync::LazyLock::new(http::HeaderMap::new);
    ResponseView {
        body,
        headers: &NO_HEADERS,
    }
}
