//! TLS client options end to end through `cicada run` against the sample
//! target serving HTTPS with certificates made at test time: a private CA
//! (`ca_file`), a client certificate for the scenario and one per user
//! from a data file (mTLS), `server_name`, `insecure_skip_verify`, and the
//! failures when trust or a certificate is missing.

mod support;

use cicada_store::testing::TestDatabase;
use support::*;

/// Writes `files` next to a scenario `yaml` in a fresh folder.
fn scenario_with(yaml: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let path = scenario_file(&dir, yaml);
    (dir, path)
}

fn connections(summary: &serde_json::Value) -> &serde_json::Value {
    &summary["connections"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_and_a_client_certificate() {
    let db = TestDatabase::sqlite().unwrap();
    let pki = TestPki::new();
    let target = start_tls_target(&pki.server(&["127.0.0.1"]), Some(&pki.ca_pem)).await;
    let client = pki.client("load generator");
    let (_dir, scenario) = scenario_with(
        r#"
name: mtls
tls: {ca_file: ca.pem, client_cert: client.pem, client_key: client.key}
connection: {max_requests: 25}
users:
  - tasks: [{request: {path: /health}}]
"#,
        &[
            ("ca.pem", &pki.ca_pem),
            ("client.pem", &client.cert_pem),
            ("client.key", &client.key_pem),
        ],
    );
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["-u", "4", "-r", "100", "-t", "1500ms"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = tls_target_stats(&target.url, &pki.ca_pem, Some(&client), None).await;
    let requests = run.summary["total"]["requests"].as_u64().unwrap();
    assert!(requests > 100, "{}", run.summary);
    assert_eq!(run.summary["total"]["failures"], 0, "{}", run.summary);
    assert_eq!(stats["total"].as_u64().unwrap(), requests, "{stats}");
    // Every connection made a handshake the target completed (the stats
    // request's own included), all with the one client certificate.
    let handshakes = connections(&run.summary)["tls"]["handshakes"]
        .as_u64()
        .unwrap();
    assert_eq!(connections(&run.summary)["connections"], handshakes);
    assert!(handshakes >= requests / 25, "{handshakes} for {requests}");
    assert_eq!(
        stats["tls_handshakes"].as_u64().unwrap(),
        handshakes + 1,
        "{stats}"
    );
    assert_eq!(stats["tls_failures"], 0, "{stats}");
    assert_eq!(stats["tls_client_certs"], 1, "{stats}");
    assert!(run.stdout.contains("TLS p50"), "{}", run.stdout);

    // Without a client certificate the target refuses every connection
    // (under TLS 1.3 the client learns it from the server's alert after
    // its side of the handshake): every request fails, none is served.
    let (_dir, anonymous) = scenario_with(
        "name: anonymous\ntls: {ca_file: ca.pem}\nusers: [{tasks: [{request: {path: /health}}]}]\n",
        &[("ca.pem", &pki.ca_pem)],
    );
    let refused = cicada_run_with(
        &anonymous,
        &target.url,
        db.url(),
        &["-u", "2", "-r", "100", "-t", "500ms"],
        &[],
    )
    .await;
    let total = &refused.summary["total"];
    assert!(
        total["requests"].as_u64().unwrap() > 0,
        "{}",
        refused.summary
    );
    assert_eq!(total["failures"], total["requests"], "{}", refused.summary);
    let after = tls_target_stats(&target.url, &pki.ca_pem, Some(&client), None).await;
    assert_eq!(after["total"], stats["total"], "{after}");
    assert!(after["tls_failures"].as_u64().unwrap() > 0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_presents_its_own_certificate_from_a_data_file() {
    let db = TestDatabase::sqlite().unwrap();
    let pki = TestPki::new();
    let target = start_tls_target(&pki.server(&["127.0.0.1"]), Some(&pki.ca_pem)).await;
    let mut devices = String::new();
    for i in 0..12 {
        let device = pki.client(&format!("device-{i}"));
        devices.push_str(
            &serde_json::json!({"id": format!("d{i}"), "cert": device.cert_pem, "key": device.key_pem})
                .to_string(),
        );
        devices.push('\n');
    }
    let (_dir, scenario) = scenario_with(
        r#"
name: fleet
tls: {ca_file: ca.pem}
data:
  devices: {file: devices.jsonl}
users:
  - tls: {client_cert: "{{ devices.cert }}", client_key: "{{ devices.key }}"}
    connection: {max_requests: 10}
    tasks: [{request: {path: /health}}]
"#,
        &[("ca.pem", &pki.ca_pem), ("devices.jsonl", &devices)],
    );
    let run = cicada_run_with(
        &scenario,
        &target.url,
        db.url(),
        &["--workers", "2", "-u", "6", "-r", "100", "-t", "1500ms"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary["total"]["failures"], 0, "{}", run.summary);
    let stats = tls_target_stats(&target.url, &pki.ca_pem, Some(&pki.client("stats")), None).await;
    // Six users took six of the twelve devices: each presented its own
    // certificate (the stats request brought a seventh).
    assert_eq!(stats["tls_client_certs"], 7, "{stats}");
    assert_eq!(stats["tls_failures"], 0, "{stats}");
    assert_eq!(
        stats["total"].as_u64().unwrap(),
        run.summary["total"]["requests"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_server_name_and_missing_certificates() {
    let db = TestDatabase::sqlite().unwrap();
    let pki = TestPki::new();
    // A certificate for a DNS name only: 127.0.0.1 does not match it.
    let target = start_tls_target(&pki.server(&["ingest.test"]), None).await;
    let run = |yaml: &'static str, files: Vec<(&'static str, String)>| {
        let url = target.url.clone();
        let db_url = db.url().to_owned();
        async move {
            let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
            let (_dir, scenario) = scenario_with(yaml, &files);
            cicada_run_with(
                &scenario,
                &url,
                &db_url,
                &["-u", "2", "-r", "100", "-t", "700ms"],
                &[],
            )
            .await
        }
    };
    let ca = || vec![("ca.pem", pki.ca_pem.clone())];

    // The right CA and the certificate's name: every request succeeds.
    let ok = run(
        "name: sni\ntls: {ca_file: ca.pem, server_name: ingest.test}\nusers: [{tasks: [{request: {path: /health}}]}]\n",
        ca(),
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.summary["total"]["failures"], 0, "{}", ok.summary);
    assert!(ok.summary["total"]["requests"].as_u64().unwrap() > 20);

    // The right CA, the wrong name: the handshake fails, nothing is sent.
    let wrong_name = run(
        "name: no-sni\ntls: {ca_file: ca.pem}\nusers: [{tasks: [{request: {path: /health}}]}]\n",
        ca(),
    )
    .await;
    assert_tls_failures(&wrong_name.summary, "certificate");
    // No CA: an unknown issuer.
    let untrusted = run(
        "name: untrusted\nusers: [{tasks: [{request: {path: /health}}]}]\n",
        vec![],
    )
    .await;
    assert_tls_failures(&untrusted.summary, "UnknownIssuer");
    // insecure_skip_verify accepts it anyway.
    let insecure = run(
        "name: insecure\ntls: {insecure_skip_verify: true}\nusers: [{tasks: [{request: {path: /health}}]}]\n",
        vec![],
    )
    .await;
    assert_eq!(insecure.code, 0, "{}", insecure.stderr);
    assert_eq!(
        insecure.summary["total"]["failures"], 0,
        "{}",
        insecure.summary
    );
    assert!(insecure.summary["total"]["requests"].as_u64().unwrap() > 20);

    let served = tls_target_stats(&target.url, &pki.ca_pem, None, Some("ingest.test")).await;
    // Only the two runs that trusted the server reached it.
    assert_eq!(
        served["total"].as_u64().unwrap(),
        ok.summary["total"]["requests"].as_u64().unwrap()
            + insecure.summary["total"]["requests"].as_u64().unwrap(),
        "{served}"
    );
}

/// Every request failed to connect, its TLS row holds failed handshakes
/// whose message names `reason`.
fn assert_tls_failures(summary: &serde_json::Value, reason: &str) {
    let total = &summary["total"];
    assert!(total["requests"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(total["failures"], total["requests"], "{summary}");
    let tls = &connections(summary)["tls"];
    assert!(tls["failures"].as_u64().unwrap() > 0, "{summary}");
    let message = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "tls")
        .unwrap_or_else(|| panic!("no tls failure: {summary}"))["last_message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains(reason), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tls_file_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        "name: nofile\ntls: {ca_file: missing.pem}\nusers: [{tasks: [{request: {path: /}}]}]\n",
    );
    let (code, _, stderr) = run_cicada(
        &["validate", scenario.to_str().unwrap()],
        std::time::Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("tls.ca_file: failed to read") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
