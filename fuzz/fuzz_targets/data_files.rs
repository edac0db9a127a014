//! CSV and JSON-lines data files, checked against a scenario that reads
//! two columns of each.
#![no_main]

use std::sync::OnceLock;

use cicada_scenario::{Scenario, Table};

fn scenario() -> &'static Scenario {
    static SCENARIO: OnceLock<Scenario> = OnceLock::new();
    SCENARIO.get_or_init(|| {
        Scenario::parse(
            "fuzz.yaml",
            "name: data\ndata:\n  people: {file: people.csv}\n  events: {file: events.jsonl}\nusers:\n  - variables: {a: \"{{ people.name }}\", b: \"{{ people.id }}\", c: \"{{ events.kind }}\"}\n    tasks:\n      - request: {path: /x}\n",
        )
        .expect("the fuzz scenario parses")
    })
}

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, bytes)) = bytes.split_first() else {
        return;
    };
    let data = scenario().data();
    let (def, path) = if selector % 2 == 0 {
        (&data[0], "people.csv")
    } else {
        (&data[1], "events.jsonl")
    };
    let _ = Table::parse(def, "fuzz.yaml", path, bytes);
});
