//! Scenario features for real applications: cookies, basic auth, think
//! time, response checks, header extraction.

use std::time::Duration;

use cicada_scenario::{CheckKind, ExtractSource, ResponseView, Scenario, Segment};

fn parse(yaml: &str) -> Scenario {
    Scenario::parse("app.yaml", yaml).unwrap()
}

fn error(yaml: &str) -> String {
    Scenario::parse("app.yaml", yaml).unwrap_err().to_string()
}

const SHOP: &str = r#"
name: shop
users:
  - name: buyer
    auth: {basic: [cicada, "{{ password }}"]}
    variables: {password: secret}
    tasks:
      - think: 250ms
        name: checkout
        steps:
          - method: POST
            path: /session
            form: {user: alice}
            check:
              - json: /user
                equals: alice
              - header: content-type
                equals: application/json
            extract:
              - {var: next, header: location}
              - {var: who, header: location, regex: "/account/(.+)"}
          - path: /account
            headers: {x-session: "{{ cookie.sid }}"}
            check:
              - body_contains: items
              - {name: three items, json: /items, equals: 3}
              - {json: /user, exists: true}
              - body_matches: "^\\{"
  - name: anonymous
    cookies: false
    tasks:
      - request:
          path: /private
          auth: {basic: [cicada, wrong]}
"#;

#[test]
fn cookies_auth_think_checks_and_header_extracts_parse() {
    let s = parse(SHOP);
    let buyer = &s.classes()[0];
    assert!(buyer.cookies, "cookies are on by default");
    assert!(!s.classes()[1].cookies);
    let task = &buyer.tasks[0];
    assert_eq!(task.think, Duration::from_millis(250));
    // A named steps task is a group with its own row.
    let group = task.group.expect("a group");
    assert_eq!(s.endpoints()[group].method, cicada_scenario::GROUP_METHOD);
    assert_eq!(s.endpoints()[group].name, "checkout");
    assert_eq!(s.classes()[1].tasks[0].group, None);
    // A threshold can name it.
    let threshold =
        cicada_scenario::Threshold::from_flag("GROUP checkout: p95 < 2s", s.endpoints()).unwrap();
    assert_eq!(threshold.endpoint.as_deref(), Some("GROUP checkout"));
    let (login, account) = (&task.steps[0], &task.steps[1]);
    // The class's auth is every request's default; a request's own wins.
    let auth = login.auth.as_ref().expect("class auth");
    assert_eq!(auth.user.as_static(), Some("cicada"));
    assert_eq!(auth.password.source(), "{{ password }}");
    let own = s.classes()[1].tasks[0].steps[0].auth.as_ref().unwrap();
    assert_eq!(own.password.as_static(), Some("wrong"));
    assert_eq!(
        account.headers[0].1.segments(),
        [Segment::Cookie("sid".into())]
    );
    assert!(matches!(
        &login.extract[0].source,
        ExtractSource::Header { name, regex: None } if name == "location"
    ));
    let headers: http::HeaderMap = [(http::header::LOCATION, "/account/alice".parse().unwrap())]
        .into_iter()
        .collect();
    let response = ResponseView {
        body: b"{}",
        headers: &headers,
    };
    assert_eq!(login.extract[0].apply(&response).unwrap(), "/account/alice");
    assert_eq!(login.extract[1].apply(&response).unwrap(), "alice");

    // Checks are named after what they assert unless named, and listed
    // with their endpoint.
    let names: Vec<(usize, &str)> = s
        .checks()
        .iter()
        .map(|c| (c.endpoint, c.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (0, "/user == \"alice\""),
            (0, "header content-type == \"application/json\""),
            (1, "body contains \"items\""),
            (1, "three items"),
            (1, "/user exists"),
            (1, "body matches \"^\\\\{\""),
        ]
    );
    assert_eq!(account.checks[1].index, 3);
    assert!(matches!(
        &account.checks[1].kind,
        CheckKind::JsonEquals { value, .. } if *value == serde_json::json!(3)
    ));
    assert_eq!(s.classes()[1].tasks[0].steps[0].checks.len(), 0);
    // `cicada validate` lists them.
    let summary = s.summary();
    assert!(
        summary.contains("checks:\n  POST /session: /user == \"alice\"\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  GET /account: three items\n"),
        "{summary}"
    );
}

#[test]
fn the_same_check_on_two_requests_of_an_endpoint_is_one_check() {
    let s = parse(
        r#"
name: twice
users:
  - tasks:
      - request: {path: /, check: [{body_contains: ok}]}
      - request: {path: /, check: [{body_contains: ok}]}
"#,
    );
    assert_eq!(s.checks().len(), 1);
    assert_eq!(s.classes()[0].tasks[1].steps[0].checks[0].index, 0);
}

#[test]
fn bad_checks_auth_and_cookies_say_what_is_allowed() {
    let cases = [
        (
            "check: [{json: /a}]",
            "app.yaml:5:29: a json check needs exactly one of \"equals: VALUE\" or \"exists: true\"",
        ),
        (
            "check: [{body_contains: a, json: /a, equals: 1}]",
            "app.yaml:5:29: a check needs exactly one of: body_contains: TEXT, body_matches: REGEX, json: POINTER with equals: VALUE or exists: true, header: NAME with equals: VALUE",
        ),
        (
            "check: [{body_contains: a, equals: a}]",
            "app.yaml:5:56: \"equals\" does not apply here",
        ),
        (
            "check: [{json: a, exists: true}]",
            "app.yaml:5:36: invalid JSON pointer \"a\"",
        ),
        (
            "check: [{json: /a, exists: false}]",
            "app.yaml:5:48: \"exists\" must be true",
        ),
        (
            "check: [{header: \"bad name\", equals: x}]",
            "app.yaml:5:38: invalid header name \"bad name\"",
        ),
        (
            "check: [{body_matches: \"(\"}]",
            "app.yaml:5:44: invalid regex \"(\"",
        ),
        (
            "check: [{body_contains: a}, {body_contains: a}]",
            "app.yaml:5:49: duplicate check \"body contains \\\"a\\\"\" on this request; give one a \"name\"",
        ),
        (
            "check: {body_contains: a}",
            "app.yaml:5:28: \"check\" must be a list of checks, found a mapping",
        ),
        (
            "auth: {basic: [a]}",
            "app.yaml:5:35: \"basic\" must be a list [USER, PASSWORD], found a list",
        ),
        (
            "auth: {bearer: t}",
            "app.yaml:5:28: unknown key \"bearer\" in auth",
        ),
        (
            "auth: {basic: [a, b]}, headers: {Authorization: x}",
            "app.yaml:5:54: header \"authorization\" and \"auth\" both set the credentials; keep one",
        ),
        (
            "extract: [{var: v, header: location, json: /a}]",
            "app.yaml:5:31: an extract needs exactly one of \"json\" (a JSON pointer), \"regex\" (on the body) or \"header\" (a response header, with an optional \"regex\")",
        ),
        (
            "extract: [{var: v, header: location, regex: \"x\"}]",
            "app.yaml:5:65: regex \"x\" must have exactly one capture group",
        ),
        (
            "headers: {x: \"{{ cookie. }}\"}",
            "app.yaml:5:34: invalid cookie name in \"cookie.\"",
        ),
    ];
    let mut wrong = Vec::new();
    for (request, expected) in cases {
        let yaml = format!(
            "name: bad\nusers:\n  - tasks:\n      - request:\n          {{path: /, {}}}\n",
            request
        );
        let message = error(&yaml);
        if !message.starts_with(expected) {
            wrong.push(format!(
                "{request}:\n  got      {message}\n  expected {expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let message = error("name: c\nusers:\n  - cookies: yes\n    tasks: [{request: {path: /}}]\n");
    assert!(
        message.starts_with("app.yaml:3:14: \"cookies\" must be true or false, found a string"),
        "{message}"
    );
    let message = error("name: g\nusers:\n  - tasks: [{name: g, request: {path: /}}]\n");
    assert!(
        message.starts_with("app.yaml:3:20: only a \"steps\" task has a \"name\" (a group)"),
        "{message}"
    );
    let message = error("name: t\nusers:\n  - tasks: [{think: 1, steps: [{path: /}]}]\n");
    assert!(
        message.starts_with("app.yaml:3:21: expected a duration like 500ms"),
        "{message}"
    );
}

#[test]
fn http_versions() {
    use cicada_scenario::HttpVersion;
    let with =
        |http: &str| format!("name: x\n{http}users:\n  - tasks: [{{request: {{path: /}}}}]\n");
    assert_eq!(parse(&with("")).http(), HttpVersion::Auto);
    assert_eq!(parse(&with("http: auto\n")).http(), HttpVersion::Auto);
    assert_eq!(parse(&with("http: 2\n")).http(), HttpVersion::Http2);
    assert_eq!(parse(&with("http: 1.1\n")).http(), HttpVersion::Http1);
    assert_eq!(parse(&with("http: \"1.1\"\n")).http(), HttpVersion::Http1);
    assert!(parse(&with("http: 2\n")).summary().contains("http: 2\n"));
    assert_eq!(
        error(&with("http: 3\n")),
        "app.yaml:2:7: invalid http \"3\"; allowed: auto (HTTP/1.1, or what TLS ALPN picks), 1.1, 2 (h2c with prior knowledge over http://)"
    );
}
