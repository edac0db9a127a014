//! Test data files: `data:`, the templates that read rows, and the checks
//! of a file against the scenario.

use cicada_scenario::data::{DataFormat, Exhausted, Pick};
use cicada_scenario::{DataBinding, Scenario, Table};

fn parse(yaml: &str) -> Scenario {
    Scenario::parse("iot.yaml", yaml).unwrap()
}

fn error(yaml: &str) -> String {
    Scenario::parse("iot.yaml", yaml).unwrap_err().to_string()
}

const IOT: &str = r#"
name: iot
data:
  devices: {file: data/devices.csv, pick: unique, exhausted: fail}
  readings: {file: readings.jsonl, pick: circular}
users:
  - variables:
      deviceid: "{{ devices.deviceid }}"
      label: "dev-{{ deviceid }}"
    on_start:
      - method: POST
        path: /login
        form: {deviceid: "{{ deviceid }}", key: "{{ devices.key }}"}
    tasks:
      - request:
          method: POST
          path: /metrics
          form:
            deviceid: "{{ deviceid }}"
            value: "{{ readings.next.value }}"
            at: "{{ readings.next.at }}"
      - request:
          path: /Test/V1
"#;

#[test]
fn data_sets_and_their_bindings_parse() {
    let s = parse(IOT);
    let [devices, readings] = s.data() else {
        panic!("two data sets: {:?}", s.data());
    };
    assert_eq!(devices.name, "devices");
    assert_eq!(devices.file, "data/devices.csv");
    assert_eq!(
        (devices.pick, devices.exhausted),
        (Pick::Unique, Exhausted::Fail)
    );
    assert_eq!(devices.format, DataFormat::Csv);
    // Columns in order of first use.
    assert_eq!(devices.columns, ["deviceid", "key"]);
    assert_eq!(readings.format, DataFormat::JsonLines);
    assert_eq!(readings.pick, Pick::Circular);
    assert_eq!(readings.columns, ["value", "at"]);

    let class = &s.classes()[0];
    // The first row's columns come before `variables`, the per-task ones last.
    assert_eq!(
        class.var_names,
        [
            "devices.deviceid",
            "devices.key",
            "deviceid",
            "label",
            "readings.next.value",
            "readings.next.at"
        ]
    );
    assert_eq!(
        class.data,
        [DataBinding {
            set: 0,
            vars: vec![(0, 0), (1, 1)]
        }]
    );
    assert_eq!(class.variables[0].0, 2);
    assert_eq!(class.variables[1].0, 3);
    assert!(class.on_start_data.is_empty());
    assert_eq!(
        class.tasks[0].data,
        [DataBinding {
            set: 1,
            vars: vec![(0, 4), (1, 5)]
        }]
    );
    assert!(
        class.tasks[1].data.is_empty(),
        "a task without next reads takes no row"
    );
    let summary = s.summary();
    assert!(
        summary.contains(
            "devices: data/devices.csv (csv, pick unique, exhausted: fail), columns: deviceid, key"
        ),
        "{summary}"
    );
}

#[test]
fn a_table_is_cut_to_the_columns_the_scenario_reads() {
    let s = parse(IOT);
    let csv = "key,zone,deviceid\nk1,eu,d1\nk2,us,d2\n";
    let table = Table::parse(&s.data()[0], "iot.yaml", "data/devices.csv", csv.as_bytes()).unwrap();
    assert_eq!((table.rows(), table.width()), (2, 2));
    assert_eq!((table.cell(1, 0), table.cell(1, 1)), ("d2", "k2"));
    // A column the scenario reads and the file lacks points at the template.
    let error = Table::parse(
        &s.data()[0],
        "iot.yaml",
        "data/devices.csv",
        b"deviceid\nd1\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "iot.yaml:13:49: data set \"devices\" has no column \"key\"; the columns of data/devices.csv are: deviceid"
    );
}

#[test]
fn bad_data_sections_say_what_is_allowed() {
    let with = |data: &str, template: &str| {
        format!(
            "name: x\ndata:\n{data}\nusers:\n  - tasks:\n      - request: {{path: \"/{template}\"}}\n"
        )
    };
    assert_eq!(
        error(&with("  devices: {file: d.csv, pick: shuffled}", "")),
        "iot.yaml:3:32: unknown pick \"shuffled\"; allowed: unique, sequential, random, circular"
    );
    assert!(
        error(&with("  devices: {pick: random}", "")).contains("missing key \"file\" in data set"),
        "{}",
        error(&with("  devices: {pick: random}", ""))
    );
    assert!(
        error(&with(
            "  devices: {file: d.csv, pick: random, exhausted: stop}",
            ""
        ))
        .contains("\"exhausted\" applies to it alone")
    );
    assert!(
        error(&with("  devices: {file: d.csv, format: xml}", "")).contains("allowed: csv, jsonl")
    );
    assert!(error(&with("  cookie: {file: d.csv}", "")).contains("is a built-in"));
    assert!(error(&with("  2x: {file: d.csv}", "")).contains("invalid data set name"));
    assert!(error(&with("  devices: {file: d.csv, size: 3}", "")).contains("unknown key \"size\""));
    // An unknown set is an unknown name, listing what is defined.
    let unknown = error(&with("  devices: {file: d.csv}", "{{ devicez.id }}"));
    assert!(unknown.contains("unknown name \"devicez.id\""), "{unknown}");
    // A per-task row cannot fill a per-user variable.
    let yaml = "name: x\ndata:\n  d: {file: d.csv}\nusers:\n  - variables: {id: \"{{ d.next.id }}\"}\n    tasks:\n      - request: {path: /}\n";
    assert_eq!(
        error(yaml),
        "iot.yaml:5:21: {{ d.next.id }} takes a row per task, but a variable is set once per user: use {{ d.id }} (the row the user took when it started)"
    );
}

#[test]
fn on_start_can_take_its_own_row() {
    let yaml = r#"
name: x
data:
  creds: {file: creds.csv, pick: sequential}
users:
  - on_start:
      - {method: POST, path: /login, form: {user: "{{ creds.next.user }}"}}
    tasks:
      - request: {path: "/items/{{ creds.user }}"}
"#;
    let s = parse(yaml);
    let class = &s.classes()[0];
    assert_eq!(class.var_names, ["creds.user", "creds.next.user"]);
    assert_eq!(
        class.on_start_data,
        [DataBinding {
            set: 0,
            vars: vec![(0, 1)]
        }]
    );
    assert_eq!(
        class.data,
        [DataBinding {
            set: 0,
            vars: vec![(0, 0)]
        }]
    );
    assert_eq!(s.data()[0].columns, ["user"]);
}
