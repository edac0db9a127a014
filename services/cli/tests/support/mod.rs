//! Shared pieces of the end-to-end tests: a real sample target on loopback,
//! its exact counters over real HTTP, the cicada binaries, the stored run.
#![allow(dead_code, clippy::print_stderr)]

pub mod cluster;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_sample_target::TargetConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A sample target running in this test process.
pub struct Target {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start_target(config: TargetConfig) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(cicada_sample_target::run(config, listener, async move {
        let _ = stopped.await;
    }));
    Target {
        url,
        stop: Some(stop),
    }
}

/// `GET {url}{path}` over a plain HTTP/1.1 connection; returns the body.
pub async fn http_get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// `POST {url}{path}` with a JSON body over a plain HTTP/1.1 connection;
/// returns the status code and the body.
pub async fn http_post_json(url: &str, path: &str, json: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

/// The target's own count of responses it produced, per `METHOD /path` and total.
pub async fn target_stats(url: &str) -> serde_json::Value {
    serde_json::from_str(&http_get(url, "/stats").await).expect("stats JSON")
}

/// Path of a workspace binary built next to `cicada`.
pub fn binary(name: &str) -> PathBuf {
    let cicada = PathBuf::from(env!("CARGO_BIN_EXE_cicada"));
    let path = cicada.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

pub fn workspace_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// Runs a cicada command to completion (bounded) and returns (exit code, stdout, stderr).
pub async fn run_cicada(args: &[&str], timeout: Duration) -> (i32, String, String) {
    run_cicada_env(args, &[], timeout).await
}

/// [`run_cicada`] with extra environment variables.
pub async fn run_cicada_env(
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> (i32, String, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cicada"))
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, child)
        .await
        .expect("cicada did not finish in time")
        .expect("cicada ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("--- cicada {args:?}\n{stdout}\n{stderr}");
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// SIGKILL: the process gets no chance to clean up (a crash).
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// Waits (bounded) for the process to exit by itself; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process {} did not exit within {within:?}",
                self.0.id()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`-STOP`, `-CONT`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(sent.success(), "kill {name} {pid}");
    }

    /// SIGTERM, then waits (bounded) for the process to exit on its own.
    pub fn terminate(&mut self, within: Duration) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + within;
        while self.0.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn spawn(name: &str, args: &[&str]) -> Process {
    spawn_env(name, args, &[])
}

/// [`spawn`] with extra environment variables.
pub fn spawn_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
    Process(
        Command::new(binary(name))
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {name}: {error}")),
    )
}

/// A free loopback port for a child process to bind. Racy in principle; the
/// in-process tests bind 127.0.0.1:0 directly, only separate processes need it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Everything stored for a run, merged from the per-second rows and from
/// the summaries.
pub struct StoredRun {
    pub seconds_total: Counts,
    pub summary_total: Counts,
    pub summary_by_endpoint: Vec<(String, String, Counts, LatencyHistogram)>,
}

pub async fn stored_run(database_url: &str, run_id: &str) -> StoredRun {
    let store = cicada_store::connect(database_url).await.unwrap();
    let record = store.get_run(run_id).await.unwrap().expect("run stored");
    assert_eq!(record.id, run_id);
    let endpoints = store.endpoints(run_id).await.unwrap();
    // Requests only: a group's rows are not requests.
    let is_request = |index: u32| {
        endpoints
            .iter()
            .find(|e| e.index == index)
            .expect("endpoint in table")
            .is_request()
    };
    let mut seconds_total = Counts::default();
    for row in store.seconds(run_id, None).await.unwrap() {
        if is_request(row.endpoint) {
            seconds_total.add(&row.counts);
        }
    }
    let mut summary_total = Counts::default();
    let mut summary_by_endpoint = Vec::new();
    for summary in store.summaries(run_id).await.unwrap() {
        if is_request(summary.endpoint) {
            summary_total.add(&summary.counts);
        }
        let endpoint = endpoints
            .iter()
            .find(|e| e.index == summary.endpoint)
            .expect("summary endpoint in table");
        summary_by_endpoint.push((
            endpoint.method.clone(),
            endpoint.name.clone(),
            summary.counts,
            summary.histogram,
        ));
    }
    StoredRun {
        seconds_total,
        summary_total,
        summary_by_endpoint,
    }
}

/// Checks exact accounting for a finished run and returns the requests per
/// endpoint name: the target's own count per `METHOD /path` equals the
/// requests cicada recorded there (none cancelled: the stop grace covers every
/// in-flight request), the summary JSON equals the stored summaries, the
/// stored per-second rows add up to the stored summaries, and every request
/// is in its endpoint's histogram.
pub async fn assert_conserved(
    target_url: &str,
    database_url: &str,
    summary: &serde_json::Value,
) -> Vec<(String, u64)> {
    let served = target_stats(target_url).await;
    let total = &summary["total"];
    let requests = total["requests"].as_u64().unwrap();
    assert_eq!(
        total["cancelled"].as_u64().unwrap(),
        0,
        "cancelled requests"
    );
    assert_eq!(
        served["total"].as_u64().unwrap(),
        requests,
        "target served != recorded"
    );

    let stored = stored_run(database_url, summary["run_id"].as_str().unwrap()).await;
    assert_eq!(
        stored.summary_total.requests, requests,
        "stored != summary JSON"
    );
    assert_eq!(
        stored.seconds_total, stored.summary_total,
        "per-second rows != summaries"
    );
    let mut counts = Vec::new();
    for (method, name, endpoint_counts, histogram) in &stored.summary_by_endpoint {
        let key = format!("{method} {name}");
        if !cicada_store::is_request_method(method) {
            // A group's or a connection's row: timed, but not requests the
            // target counts.
            assert_eq!(histogram.len(), endpoint_counts.requests, "{key}");
            continue;
        }
        assert_eq!(
            served["paths"][&key].as_u64().unwrap_or(0),
            endpoint_counts.requests,
            "{key}: target served != stored"
        );
        assert_eq!(
            histogram.len(),
            endpoint_counts.requests,
            "{key}: histogram count"
        );
        counts.push((name.clone(), endpoint_counts.requests));
    }
    counts
}

/// Fails unless each endpoint's share of the requests is within 3 percentage
/// points of its weight share and within 5 binomial standard deviations.
pub fn assert_split(counts: &[(String, u64)], weights: &[(&str, u64)]) {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let weight_total: u64 = weights.iter().map(|(_, w)| w).sum();
    for (name, weight) in weights {
        let expected = *weight as f64 / weight_total as f64;
        let observed = counts
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c) as f64
            / total as f64;
        let sigma = (expected * (1.0 - expected) / total as f64).sqrt();
        let diff = (observed - expected).abs();
        assert!(
            diff <= 0.03 && diff <= 5.0 * sigma,
            "{name}: share {observed:.4} vs weight share {expected:.4} over {total} requests"
        );
    }
}

/// The weights of examples/weighted-reads.yaml (the reference case's 60:1:14:5).
pub const WEIGHTED_READS: [(&str, u64); 4] = [
    ("/Test/V1", 60),
    ("/Test/V2", 1),
    ("/Test/V3", 14),
    ("/Test/V4", 5),
];

/// The median of all requests of a stored run, from the merged stored
/// histograms (not from the summary JSON), in milliseconds.
pub async fn stored_p50_ms(database_url: &str, run_id: &str) -> f64 {
    let mut merged = LatencyHistogram::new();
    for (method, _, _, histogram) in stored_run(database_url, run_id).await.summary_by_endpoint {
        // The requests' latencies, as the summary's total: not the
        // group or connection rows.
        if cicada_store::is_request_method(&method) {
            merged.merge(&histogram).unwrap();
        }
    }
    merged.value_at_quantile_us(0.5) as f64 / 1000.0
}

/// What one finished `cicada run` printed and wrote.
pub struct LocalRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--summary-json` document (`Null` when none was written).
    pub summary: serde_json::Value,
}

/// `cicada run SCENARIO --host HOST --database-url DB --summary-json TMP
/// EXTRA...` with `env` set, bounded by two minutes.
pub async fn cicada_run_with(
    scenario: &std::path::Path,
    host: &str,
    database_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> LocalRun {
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--host",
        host,
        "--database-url",
        database_url,
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_cicada_env(&args, env, Duration::from_secs(120)).await;
    let summary = std::fs::read_to_string(&summary_path)
        .map(|text| serde_json::from_str(&text).expect("summary JSON"))
        .unwrap_or(serde_json::Value::Null);
    LocalRun {
        code,
        stdout,
        stderr,
        summary,
    }
}

/// Writes `yaml` as a scenario file in `dir`.
pub fn scenario_file(dir: &tempfile::TempDir, yaml: &str) -> PathBuf {
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Certificates made at test time (rcgen): a CA, server certificates it
/// signs for the names asked, client certificates it signs.
pub struct TestPki {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
}

/// A certificate (PEM) and its private key (PEM).
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cicada test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestPki {
            ca_pem: cert.pem(),
            ca: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Issued {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        self.issue(params)
    }

    /// A client certificate with this common name.
    pub fn client(&self, common_name: &str) -> Issued {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: rcgen::CertificateParams) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A sample target serving HTTPS with `server`, asking for client
/// certificates signed by `client_ca` when given; its URL is `https://`.
pub async fn start_tls_target(server: &Issued, client_ca: Option<&str>) -> Target {
    let config = TargetConfig {
        tls: Some(cicada_sample_target::TlsSettings {
            cert_pem: server.cert_pem.clone(),
            key_pem: server.key_pem.clone(),
            client_ca_pem: client_ca.map(str::to_owned),
        }),
        ..TargetConfig::default()
    };
    let mut target = start_target(config).await;
    target.url = target.url.replacen("http://", "https://", 1);
    target
}

/// `GET /stats` of an HTTPS sample target, trusting `ca_pem`, presenting
/// `client` and checking `server_name` (default: the host) when given.
pub async fn tls_target_stats(
    url: &str,
    ca_pem: &str,
    client: Option<&Issued>,
    server_name: Option<&str>,
) -> serde_json::Value {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let addr = url.trim_start_matches("https://").to_owned();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let host = server_name.map_or_else(
        || addr.rsplit_once(':').unwrap().0.to_owned(),
        str::to_owned,
    );
    let mut stream = connector
        .connect(ServerName::try_from(host).unwrap(), tcp)
        .await
        .unwrap();
    let request = format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A server closing without close_notify is fine here: the body is in.
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET /stats: {head}");
    serde_json::from_str(body).expect("stats JSON")
}
