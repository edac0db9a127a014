//! Every limit of a scenario, at its boundary: the last accepted value
//! passes, one more is a clear error.

use cicada_scenario::{
    MAX_ENDPOINT_ROWS, MAX_ENDPOINTS, MAX_NESTING_DEPTH, MAX_SCENARIO_BYTES, MAX_YAML_NODES,
    Scenario,
};

fn error(yaml: &str) -> String {
    Scenario::parse("x.yaml", yaml).unwrap_err().to_string()
}

const HEAD: &str =
    "name: x\nhost: http://127.0.0.1:1\nusers:\n  - tasks:\n      - request: {path: /a}\n";

/// `HEAD` padded with a comment to exactly `len` bytes.
fn padded(len: usize) -> String {
    let mut text = format!("{HEAD}#");
    text.push_str(&"x".repeat(len - text.len()));
    text
}

#[test]
fn scenario_size_limit() {
    let at_limit = padded(MAX_SCENARIO_BYTES);
    assert_eq!(at_limit.len(), MAX_SCENARIO_BYTES);
    Scenario::parse("x.yaml", &at_limit).unwrap();
    assert_eq!(
        error(&padded(MAX_SCENARIO_BYTES + 1)),
        "x.yaml:0:0: the scenario is 1048577 bytes, over the limit of 1024 KiB; \
         put large data in data files (data:)"
    );
}

/// A JSON body nested `depth` lists deep below the top-level mapping's
/// own levels (mapping, users list, user, tasks list, task, request, json).
fn nested_body(levels: usize) -> String {
    format!(
        "{HEAD}      - request: {{method: POST, path: /b, json: {}1{}}}\n",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

#[test]
fn nesting_depth_limit() {
    // Find the deepest body that parses: exactly the limit in all.
    let deepest = (1..MAX_NESTING_DEPTH)
        .take_while(|levels| Scenario::parse("x.yaml", &nested_body(*levels)).is_ok())
        .last()
        .unwrap();
    let message = error(&nested_body(deepest + 1));
    assert!(
        message.starts_with("x.yaml:6:")
            && message.ends_with(
                ": invalid YAML: mappings and lists nest deeper than 32 levels, the limit"
            ),
        "{message}"
    );
    // Around the body: the top mapping, users, a user, tasks, a task and
    // the request's mapping; the deepest body reaches the limit exactly.
    assert_eq!(deepest + 6, MAX_NESTING_DEPTH, "{message}");
    // Far deeper is an error too (the parser's own recursion limit may
    // stop it first), not a stack overflow.
    let message = error(&nested_body(100_000));
    assert!(message.starts_with("x.yaml:6:"), "{message}");
    assert!(message.contains(": invalid YAML: "), "{message}");
}

#[test]
fn alias_expansion_is_bounded() {
    // "Billion laughs": 10 levels of 10 aliases each would be 10^10 nodes.
    let mut yaml =
        String::from("name: x\nhost: http://127.0.0.1:1\nl0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for level in 1..10 {
        let prev = format!("*l{}", level - 1);
        yaml.push_str(&format!(
            "l{level}: &l{level} [{}]\n",
            vec![prev; 10].join(", ")
        ));
    }
    assert_eq!(
        error(&yaml),
        "x.yaml:8:10: invalid YAML: more than 200000 nodes, the limit (an alias counts every node it repeats)"
    );
    // Aliases that stay under the limit are fine (the key is then unknown).
    let message = error("name: x\na: &a [1, 2]\nb: [*a, *a]\n");
    assert!(!message.contains("invalid YAML"), "{message}");
    assert!(MAX_YAML_NODES < 10_usize.pow(10));
}

fn requests(count: usize) -> String {
    let mut yaml = String::from("name: x\nhost: http://127.0.0.1:1\nusers:\n  - tasks:\n");
    for index in 0..count {
        yaml.push_str(&format!("      - request: {{path: /item/{index}}}\n"));
    }
    yaml
}

#[test]
fn endpoint_limit() {
    let scenario = Scenario::parse("x.yaml", &requests(MAX_ENDPOINTS)).unwrap();
    // Each request also has a connection and a TLS row.
    assert_eq!(scenario.endpoints().len(), MAX_ENDPOINT_ROWS);
    assert_eq!(
        error(&requests(MAX_ENDPOINTS + 1)),
        "x.yaml:1005:18: too many endpoints: over the limit of 1000 distinct methods and names; give requests whose path differs only by a value one \"name\" \
         (e.g. name: /items/{id})"
    );
}

#[test]
fn a_templated_path_is_one_endpoint() {
    let yaml = format!("{HEAD}      - request: {{path: \"/items/{{{{ user_id }}}}\"}}\n");
    let scenario = Scenario::parse("x.yaml", &yaml).unwrap();
    let requests = scenario
        .endpoints()
        .iter()
        .filter(|e| cicada_scenario::is_request_method(&e.method))
        .count();
    assert_eq!(requests, 2);
}
