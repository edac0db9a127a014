//! Fuzzing the scenario's parsers with arbitrary and structure-aware
//! input: the YAML scenario, templates, threshold expressions and data
//! files. Any input parses or is an error; none panics.
//!
//! Bounded here (`CICADA_FUZZ_CASES` cases per property, default 256);
//! docs/FUZZING.md has the long runs.

use cicada_scenario::{Expr, Scenario, Table, Template, Threshold};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("CICADA_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

const EXAMPLES: [&str; 5] = [
    include_str!("../../../examples/weighted-reads.yaml"),
    include_str!("../../../examples/iot-device.yaml"),
    include_str!("../../../examples/iot-fleet.yaml"),
    include_str!("../../../examples/shop-session.yaml"),
    r#"
name: every-feature
host: https://shop.example.com
http: "2"
rate: 100/s
max_in_flight: 50
stages: [{duration: 10s, rate: 50}, {duration: 1m, rate: 100}]
timeouts: {connect: 2s, request: 5s}
connection: {rate: 10}
data:
  people: {file: people.csv, pick: unique, exhausted: stop}
thresholds: ["p95 < 150ms", {expr: "failure_rate < 1%", endpoint: "GET /orders/{id}"}, {expr: "rps >= 10", abort_on_fail: true, delay: 5s}]
users:
  - name: buyer
    weight: 3
    wait: {between: [1s, 2s]}
    cookies: true
    variables: {id: "{{ uuid }}", n: "{{ random_int(1, 9) }}", who: "{{ people.name }}"}
    on_start:
      - {method: POST, path: /login, form: {user: "{{ who }}"}, expect: [200, 302]}
    tasks:
      - weight: 2
        name: checkout
        think: 100ms
        steps:
          - method: POST
            path: "/cart/{{ n }}"
            json: {id: "{{ id }}", qty: 2, tags: [a, b], nested: {x: null, y: 1.5}}
            headers: {x-trace: "{{ seq }}"}
            check: [{body_contains: ok}, {name: qty, json: /qty, equals: 2}]
            extract: [{var: order, json: /order/id}]
          - {path: "/orders/{{ order }}", name: "/orders/{id}", query: {v: "{{ user_id }}"}}
"#,
];

/// Fragments that mean something somewhere in a scenario.
const FRAGMENTS: [&str; 26] = [
    "{{",
    "}}",
    "{{ x }}",
    "{{ env.HOME }}",
    "{{ random_int(1, ",
    "{{ cookie.sid }}",
    "{{ now_ms }}",
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!str ",
    "'",
    "\"",
    "\n  ",
    "\t",
    "p99 <",
    "ms",
    "/s",
    "%",
    "#",
    "\u{0}",
];

/// An example with a few edits: lines deleted, duplicated or swapped,
/// fragments spliced in, bytes cut off.
fn mutated_scenario() -> impl Strategy<Value = String> {
    (
        prop::sample::select(EXAMPLES.as_slice()),
        proptest::collection::vec(
            (
                0u8..5,
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                "\\PC{0,6}",
            ),
            1..6,
        ),
    )
        .prop_map(|(example, edits)| {
            let mut lines: Vec<String> = example.lines().map(str::to_owned).collect();
            for (op, at, other, text) in edits {
                if lines.is_empty() {
                    break;
                }
                let i = at.index(lines.len());
                let j = other.index(lines.len());
                match op {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let copy = lines[i].clone();
                        lines.insert(j, copy);
                    }
                    2 => lines.swap(i, j),
                    3 => {
                        let line = &mut lines[i];
                        let cut = other.index(line.len() + 1);
                        let cut = (0..=cut)
                            .rev()
                            .find(|c| line.is_char_boundary(*c))
                            .unwrap_or(0);
                        line.insert_str(cut, FRAGMENTS[j % FRAGMENTS.len()]);
                    }
                    _ => {
                        let line = &mut lines[i];
                        let cut = other.index(line.len() + 1);
                        let cut = (0..=cut)
                            .rev()
                            .find(|c| line.is_char_boundary(*c))
                            .unwrap_or(0);
                        line.truncate(cut);
                        line.push_str(&text);
                    }
                }
            }
            lines.join("\n")
        })
}

fn template_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "\\PC{0,4}",
            prop::sample::select(FRAGMENTS.as_slice()).prop_map(str::to_owned),
            prop::sample::select(
                &[
                    "uuid",
                    "seq",
                    "user_id",
                    "x",
                    "y",
                    "random_int(",
                    "now_rfc3339",
                    "cookie.",
                    ")",
                    ",",
                    "1",
                    "-5",
                    "999999999999999999999",
                    "env.",
                    "people.",
                    "next.",
                    " ",
                    "|",
                    "urlencode",
                ][..]
            )
            .prop_map(str::to_owned),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn threshold_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "\\PC{0,3}",
            prop::sample::select(
                &[
                    "p50",
                    "p95",
                    "p99.9",
                    "mean",
                    "max",
                    "rps",
                    "failure_rate",
                    "unrecorded",
                    "failures",
                    "<",
                    "<=",
                    ">",
                    ">=",
                    "==",
                    " ",
                    "150",
                    "1e309",
                    "-1",
                    "NaN",
                    "ms",
                    "s",
                    "us",
                    "%",
                    "/s",
                    "GET /a",
                    ": ",
                    "abort",
                    "delay",
                    "1.5",
                ][..]
            )
            .prop_map(str::to_owned),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

/// A scenario with one CSV and one JSON-lines data set, for `Table::parse`.
fn data_scenario() -> Scenario {
    Scenario::parse(
        "fuzz.yaml",
        r#"
name: data
data:
  people: {file: people.csv}
  events: {file: events.jsonl}
users:
  - variables: {a: "{{ people.name }}", b: "{{ people.id }}", c: "{{ events.kind }}"}
    tasks:
      - request: {path: /x}
"#,
    )
    .unwrap()
}

fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b"name,id\n".to_vec()),
            Just(b"id,name,extra\n".to_vec()),
            Just(b"\"a,b\",1\n".to_vec()),
            Just(b"\"unterminated".to_vec()),
            Just(b"x\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(vec![0xff, 0xfe]),
            proptest::collection::vec(any::<u8>(), 0..8),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

fn jsonl_like() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b"{\"kind\": \"a\"}\n".to_vec()),
            Just(b"{\"kind\": 1, \"x\": [1, {\"y\": null}]}\n".to_vec()),
            Just(b"{\"other\": true}\n".to_vec()),
            Just(b"[1, 2]\n".to_vec()),
            Just(b"{\"kind\": \"\\ud800\"}\n".to_vec()),
            Just(b"{".to_vec()),
            Just(b"\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn scenario_arbitrary_text(text in "\\PC{0,300}") {
        let _ = Scenario::parse("fuzz.yaml", &text);
    }

    #[test]
    fn scenario_mutated_examples(text in mutated_scenario()) {
        if let Ok(scenario) = Scenario::parse("fuzz.yaml", &text) {
            // A scenario that parses can be summarised and its endpoints
            // are within the limit.
            let _ = scenario.summary();
            prop_assert!(scenario.endpoints().len() <= cicada_scenario::MAX_ENDPOINT_ROWS);
        }
    }

    #[test]
    fn template_text_compiles_or_errors(text in template_text()) {
        let vars = ["x".to_owned(), "y".to_owned()];
        if let Ok(template) = Template::compile(&text, &vars) {
            let _ = template.segments();
        }
    }

    #[test]
    fn threshold_text_parses_or_errors(text in threshold_text()) {
        if let Ok(expr) = Expr::parse(&text) {
            // What parses prints as text that parses to the same expression.
            let again = Expr::parse(&expr.to_string()).unwrap();
            prop_assert_eq!(again.to_string(), expr.to_string());
        }
        let _ = Threshold::parse_flag(&text);
    }

    #[test]
    fn csv_data_parses_or_errors(bytes in csv_like()) {
        let scenario = data_scenario();
        if let Ok(table) = Table::parse(&scenario.data()[0], "fuzz.yaml", "people.csv", &bytes) {
            prop_assert_eq!(table.width(), 2);
            for row in 0..table.rows() {
                let _ = table.cell(row, 1);
            }
        }
    }

    #[test]
    fn jsonl_data_parses_or_errors(bytes in jsonl_like()) {
        let scenario = data_scenario();
        if let Ok(table) = Table::parse(&scenario.data()[1], "fuzz.yaml", "events.jsonl", &bytes) {
            prop_assert_eq!(table.width(), 1);
        }
    }

    #[test]
    fn data_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), json in any::<bool>()) {
        let scenario = data_scenario();
        let (def, path) = if json { (&scenario.data()[1], "events.jsonl") } else { (&scenario.data()[0], "people.csv") };
        let _ = Table::parse(def, "fuzz.yaml", path, &bytes);
    }
}

/// The seeds parse, so their mutations reach past the first error.
#[test]
fn the_seed_scenarios_parse() {
    for example in EXAMPLES {
        if let Err(error) = Scenario::parse("seed.yaml", example) {
            panic!("{error}");
        }
    }
}
