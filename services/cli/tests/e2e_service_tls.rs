//! End to end with TLS and mTLS between cicada's own services (not the
//! target's TLS: that is e2e_tls.rs). Collector, controller and a worker as
//! separate processes with certificates made at test time: every gRPC port
//! requires a client certificate from the test CA, the shared token travels
//! over TLS, a run conserves exactly, the history API and the web UI serve
//! HTTPS; plaintext clients, clients trusting another CA and clients
//! without a certificate are refused.

mod support;

use std::path::Path;
use std::time::Duration;

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use cicada_tls::testing::TestPki as ServicePki;
use cicada_tls::{Alpn, ClientTls};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "e2e-tls-token";

fn path(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// The server side of a process: its certificate, and mTLS.
fn server_env(pki: &ServicePki) -> Vec<(&'static str, String)> {
    let files = pki.server_files(true);
    vec![
        ("CICADA_TOKEN", TOKEN.to_owned()),
        ("CICADA_TLS_CERT", path(&files.cert)),
        ("CICADA_TLS_KEY", path(&files.key)),
        ("CICADA_TLS_CLIENT_CA", path(&pki.ca())),
    ]
}

/// The client side: the CA and (when `certificate`) the client certificate.
fn client_env(pki: &ServicePki, certificate: bool) -> Vec<(&'static str, String)> {
    let client = pki.client(certificate);
    let mut env = vec![
        ("CICADA_TOKEN", TOKEN.to_owned()),
        ("CICADA_TLS_CA", path(client.ca.as_ref().unwrap())),
    ];
    if certificate {
        env.push((
            "CICADA_TLS_CLIENT_CERT",
            path(client.cert.as_ref().unwrap()),
        ));
        env.push(("CICADA_TLS_CLIENT_KEY", path(client.key.as_ref().unwrap())));
    }
    env
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

async fn cicada(args: &[&str], env: &[(&'static str, String)]) -> (i32, String, String) {
    run_cicada_env(args, &borrowed(env), Duration::from_secs(60)).await
}

/// `cicada health --grpc URL` until it reports SERVING (bounded).
async fn wait_healthy(url: &str, env: &[(&'static str, String)]) {
    for _ in 0..150 {
        let (code, _, _) = cicada(&["health", "--grpc", url], env).await;
        if code == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never reported SERVING");
}

/// One HTTP/1.1 GET over `connection`; the whole answer (empty when the
/// server closed without one).
async fn get<S>(mut connection: S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let exchange = async {
        connection.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        connection.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer).into_owned(),
        Ok(Err(_)) => String::new(),
        Err(_) => panic!("no answer to GET {path} within 10s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_mtls_runs_and_refuses_plaintext_and_strangers() {
    let pki = ServicePki::new("cicada e2e ca");
    let stranger = ServicePki::new("some other ca");
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;

    let collector_addr = format!("127.0.0.1:{}", free_port());
    let history_port = free_port();
    let collector_env = server_env(&pki);
    let _collector = spawn_env(
        "cicada-collector",
        &[
            "--listen",
            &collector_addr,
            "--http-listen",
            &format!("127.0.0.1:{history_port}"),
            "--database-url",
            db.url(),
        ],
        &borrowed(&collector_env),
    );
    let controller_addr = format!("127.0.0.1:{}", free_port());
    let controller_url = format!("https://{controller_addr}");
    let web_port = free_port();
    // The controller serves with its certificate and dials the collector
    // with the client one.
    let mut controller_env = server_env(&pki);
    controller_env.extend(client_env(&pki, true));
    let _controller = spawn_env(
        "cicada-controller",
        &[
            "--listen",
            &controller_addr,
            "--collector",
            &format!("https://{collector_addr}"),
            "--web-listen",
            &format!("127.0.0.1:{web_port}"),
        ],
        &borrowed(&controller_env),
    );
    let client = client_env(&pki, true);
    wait_healthy(&format!("https://{collector_addr}"), &client).await;
    wait_healthy(&controller_url, &client).await;

    // Refused: plaintext, no client certificate, a server from another CA.
    let (code, _, stderr) = cicada(&["health", "--grpc", &controller_addr], &[]).await;
    assert_ne!(code, 0, "a plaintext health check passed: {stderr}");
    let (code, _, stderr) = cicada(
        &[
            "workers",
            "--controller",
            &format!("http://{controller_addr}"),
        ],
        &client,
    )
    .await;
    assert_ne!(code, 0, "a plaintext client was served: {stderr}");
    assert!(stderr.contains("use an https:// url"), "{stderr}");
    let (code, _, stderr) = cicada(
        &["workers", "--controller", &controller_url],
        &client_env(&pki, false),
    )
    .await;
    assert_ne!(
        code, 0,
        "a client without a certificate was served: {stderr}"
    );
    assert!(
        stderr.contains("failed to connect to the controller"),
        "{stderr}"
    );
    let (code, _, stderr) = cicada(
        &["workers", "--controller", &controller_url],
        &client_env(&stranger, true),
    )
    .await;
    assert_ne!(code, 0, "a client trusting another ca connected: {stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");

    // The worker dials the controller and (named by it) the collector over
    // mTLS with its own files.
    let worker_env = client_env(&pki, true);
    let _worker = spawn_env(
        "cicada-worker",
        &["--controller", &controller_url, "--worker-id", "worker-tls"],
        &borrowed(&worker_env),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, stdout, stderr) =
            cicada(&["workers", "--controller", &controller_url], &client).await;
        assert_eq!(code, 0, "{stderr}");
        if stdout.contains("worker-tls") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never joined"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A whole run; the TLS files given as flags this time.
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let files = pki.client(true);
    let (code, _, stderr) = cicada(
        &[
            "start",
            scenario.to_str().unwrap(),
            "--controller",
            &controller_url,
            "--tls-ca",
            &path(&pki.ca()),
            "--tls-client-cert",
            &path(files.cert.as_ref().unwrap()),
            "--tls-client-key",
            &path(files.key.as_ref().unwrap()),
            "--host",
            &target.url,
            "-u",
            "5",
            "-r",
            "100",
            "-t",
            "3s",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
        &[("CICADA_TOKEN", TOKEN.to_owned())],
    )
    .await;
    assert_eq!(code, 0, "cicada start over mtls failed: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["total"]["failures"].as_u64().unwrap(), 0);
    assert!(summary["total"]["requests"].as_u64().unwrap() > 0);
    assert_conserved(&target.url, db.url(), &summary).await;

    // The history API over HTTPS (the token authenticates; no client
    // certificate needed there).
    let run_id = summary["run_id"].as_str().unwrap();
    let history_url = format!("https://127.0.0.1:{history_port}");
    let (code, stdout, stderr) = cicada(
        &[
            "runs",
            "list",
            "--collector",
            &history_url,
            "--format",
            "json",
        ],
        &client_env(&pki, false),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(run_id), "{stdout}");
    // And over gRPC on the collector's mTLS port.
    let (code, stdout, stderr) = cicada(
        &[
            "runs",
            "list",
            "--collector-grpc",
            &format!("https://{collector_addr}"),
            "--format",
            "json",
        ],
        &client,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(run_id), "{stdout}");

    // The web UI over HTTPS; a plaintext request gets no HTTP answer.
    let tls = ClientTls {
        ca: Some(pki.ca()),
        ..ClientTls::default()
    };
    let https = tls
        .connect("127.0.0.1", web_port, true, Alpn::Http1)
        .await
        .unwrap();
    let answer = get(https, "/health").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let plain = tokio::net::TcpStream::connect(("127.0.0.1", web_port))
        .await
        .unwrap();
    let answer = get(plain, "/health").await;
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("use an https:// url"),
        "plaintext was served: {answer}"
    );
}
