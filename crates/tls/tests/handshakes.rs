//! TLS between cicada services over real loopback connections: a tonic
//! server (grpc.health.v1) on `cicada_tls::incoming`, clients through
//! `GrpcTarget`, certificates made at test time.

use std::time::Duration;

use cicada_tls::testing::TestPki;
use cicada_tls::{Alpn, ClientTls, GrpcTarget, ServerTls, incoming};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Bound of every call in these tests: a refused connection must fail, not
/// hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves grpc.health.v1 on 127.0.0.1 with `tls` (or plaintext); returns the
/// port and a guard that stops the server when dropped.
async fn health_server(tls: Option<ServerTls>) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_reporter, service) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming(listener, tls), async move {
                let _ = stopped.await;
            }),
    );
    (port, stop)
}

/// One health check over a fresh channel: `Ok` when it answered.
async fn check(url: &str, tls: &ClientTls) -> Result<(), String> {
    let target = GrpcTarget::new(url, tls).map_err(|error| error.to_string())?;
    let call = async {
        let channel = target
            .connect()
            .await
            .map_err(|error| format!("{error:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(|_| ())
            .map_err(|status| format!("{status:?}"))
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer within {CALL_TIMEOUT:?}"))
}

fn server_tls(pki: &TestPki, mtls: bool) -> ServerTls {
    ServerTls::load(pki.server_files(mtls), Alpn::Grpc).unwrap()
}

#[tokio::test]
async fn a_tls_server_answers_a_client_trusting_its_ca() {
    let pki = TestPki::new("cicada test ca");
    let (port, _stop) = health_server(Some(server_tls(&pki, false))).await;
    check(&format!("https://127.0.0.1:{port}"), &pki.client(false))
        .await
        .unwrap();
    check(&format!("https://localhost:{port}"), &pki.client(false))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tls_server_refuses_a_plaintext_client() {
    let pki = TestPki::new("cicada test ca");
    let (port, _stop) = health_server(Some(server_tls(&pki, false))).await;
    let error = check(&format!("http://127.0.0.1:{port}"), &ClientTls::default())
        .await
        .unwrap_err();
    assert!(!error.is_empty());
    // The server is still fine for TLS clients.
    check(&format!("https://127.0.0.1:{port}"), &pki.client(false))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_trusting_another_ca_refuses_the_server() {
    let pki = TestPki::new("cicada test ca");
    let other = TestPki::new("some other ca");
    let (port, _stop) = health_server(Some(server_tls(&pki, false))).await;
    let error = check(&format!("https://127.0.0.1:{port}"), &other.client(false))
        .await
        .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
    // No CA at all: the webpki roots do not know a test CA either.
    let error = check(&format!("https://127.0.0.1:{port}"), &ClientTls::default())
        .await
        .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn an_mtls_server_requires_a_client_certificate_from_its_ca() {
    let pki = TestPki::new("cicada test ca");
    let (port, _stop) = health_server(Some(server_tls(&pki, true))).await;
    let url = format!("https://127.0.0.1:{port}");
    check(&url, &pki.client(true)).await.unwrap();
    let error = check(&url, &pki.client(false)).await.unwrap_err();
    assert!(!error.is_empty());
    // A client certificate from another CA, the server trusted by the client.
    let other = TestPki::new("some other ca");
    let mut foreign = other.client(true);
    foreign.ca = Some(pki.ca());
    check(&url, &foreign).await.unwrap_err();
}

#[tokio::test]
async fn a_plaintext_server_refuses_a_tls_client() {
    let pki = TestPki::new("cicada test ca");
    let (port, _stop) = health_server(None).await;
    check(&format!("http://127.0.0.1:{port}"), &ClientTls::default())
        .await
        .unwrap();
    let error = check(&format!("https://127.0.0.1:{port}"), &pki.client(false))
        .await
        .unwrap_err();
    assert!(error.contains("tls handshake"), "{error}");
}

/// The certificate the server at `port` presents now (DER).
async fn served_certificate(port: u16, tls: &ClientTls) -> Vec<u8> {
    let stream = tls
        .connect("127.0.0.1", port, true, Alpn::Grpc)
        .await
        .unwrap();
    let cicada_tls::MaybeTls::Tls(stream) = stream else {
        panic!("expected a tls connection")
    };
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The server certificate on disk now (DER).
fn certificate_on_disk(pki: &TestPki) -> Vec<u8> {
    let path = pki.server_files(false).cert;
    cicada_tls::files::certificates(&path, "certificate").unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let pki = TestPki::new("cicada test ca");
    let tls = server_tls(&pki, false);
    tls.watch(Duration::from_millis(50));
    let (port, _stop) = health_server(Some(tls.clone())).await;
    let client = pki.client(false);
    let first = certificate_on_disk(&pki);
    assert_eq!(served_certificate(port, &client).await, first);

    // A broken file is refused and the old certificate kept.
    std::fs::write(pki.server_files(false).cert, "not a certificate").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(served_certificate(port, &client).await, first);

    pki.issue_server("server-rotated");
    let rotated = certificate_on_disk(&pki);
    assert_ne!(rotated, first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if served_certificate(port, &client).await == rotated {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated certificate was not served within 10s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check(&format!("https://127.0.0.1:{port}"), &client)
        .await
        .unwrap();
}
