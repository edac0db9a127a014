//! `tls:`: the scenario's trust settings and files, a class's per-user
//! certificate templates, and what a bad one says.

use cicada_scenario::Scenario;

fn error(yaml: &str) -> String {
    Scenario::parse("tls.yaml", yaml).unwrap_err().to_string()
}

#[test]
fn scenario_files_and_class_templates_parse() {
    let s = Scenario::parse(
        "tls.yaml",
        r#"
name: fleet
tls: {ca_file: ca.pem, server_name: ingest.test, insecure_skip_verify: true, client_cert: c.pem, client_key: c.key}
data:
  devices: {file: devices.jsonl}
users:
  - tls: {client_cert: "{{ devices.cert }}", client_key: "{{ devices.key }}"}
    tasks: [{request: {path: /}}]
"#,
    )
    .unwrap();
    let tls = s.tls();
    assert_eq!(tls.server_name.as_deref(), Some("ingest.test"));
    assert!(tls.insecure_skip_verify);
    assert_eq!(
        tls.files(),
        [
            ("ca_file", "ca.pem"),
            ("client_cert", "c.pem"),
            ("client_key", "c.key")
        ]
    );
    let class = s.classes()[0].tls.as_ref().expect("per-user certificates");
    assert_eq!(class.cert.source(), "{{ devices.cert }}");
    // The columns the templates read are kept from the data file.
    assert_eq!(s.data()[0].columns, ["cert", "key"]);
    let summary = s.summary();
    assert!(summary.contains("tls ca_file: ca.pem"), "{summary}");
    assert!(summary.contains("NOT verified"), "{summary}");
}

#[test]
fn bad_tls_settings_say_what_is_allowed() {
    let body = "users: [{tasks: [{request: {path: /}}]}]\n";
    for (tls, expected) in [
        (
            "tls: {client_cert: c.pem}",
            "tls.yaml:2:6: tls needs both client_cert and client_key, or neither",
        ),
        (
            "tls: {ca_file: \"{{ env.CA }}\"}",
            "tls.yaml:2:16: tls.ca_file of the scenario is a file",
        ),
        (
            "tls: {server_name: \"a b\"}",
            "tls.yaml:2:20: invalid tls.server_name \"a b\"",
        ),
        (
            "tls: {verify: false}",
            "tls.yaml:2:7: unknown key \"verify\" in tls; allowed: ca_file, server_name, insecure_skip_verify, client_cert, client_key",
        ),
    ] {
        let message = error(&format!("name: bad\n{tls}\n{body}"));
        assert!(message.starts_with(expected), "{tls}: {message}");
    }
    let message = error(
        "name: bad\nusers:\n  - tls: {client_cert: \"{{ x }}\"}\n    tasks: [{request: {path: /}}]\n",
    );
    assert!(
        message
            .starts_with("tls.yaml:3:10: a user class's tls needs both client_cert and client_key"),
        "{message}"
    );
}
