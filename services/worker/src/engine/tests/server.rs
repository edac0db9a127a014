//! A tiny real HTTP/1.1 and HTTP/2 server on 127.0.0.1:0 that counts what
//! it served (h2c with prior knowledge, or h2 by ALPN over TLS when asked).
//!
//! Routes: `/ok` (200 "hello"), `/status/CODE`, `/slow/MS` (sleeps, then 200),
//! `/stall-once/MS` (the first one makes every request the server receives
//! in the next MS milliseconds, on any path, wait until they are over),
//! `/close` (200 and closes the connection), `/redirect` (302 to `/ok`), `POST /login` (200 with a JSON
//! token), `/v/ANY` (200), `/echo` (records
//! the request), `/me` (200 if `authorization: Bearer tok-N` was issued, else 401).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::sync::oneshot;

#[derive(Default)]
struct Counters {
    /// Requests whose head arrived, by path.
    by_path: Mutex<BTreeMap<String, u64>>,
    connections: AtomicU64,
    /// Requests that came over HTTP/2.
    http2: AtomicU64,
    /// Requests sent with `Connection: close`.
    close_requested: AtomicU64,
    tokens: AtomicU64,
    /// The last `/echo` request as `METHOD QUERY CONTENT-TYPE BODY`.
    last_echo: Mutex<String>,
    /// End of the one-off stall, once `/stall-once/MS` was hit.
    stall_until: Mutex<Option<tokio::time::Instant>>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The test CA's certificate, which signed the server's (for 127.0.0.1 and
/// localhost; made with openssl, valid until 2126; test use only).
pub const TEST_CA_PEM: &str = include_str!("tls/ca.pem");

fn tls_acceptor(alpn_h2: bool) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_slice_iter(include_bytes!("tls/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("tls/server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    if alpn_h2 {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl TestServer {
    /// A plain HTTP server.
    pub fn start() -> TestServer {
        Self::start_with(None)
    }

    /// An HTTPS server whose certificate is signed by [`TEST_CA_PEM`],
    /// HTTP/1.1 only (no ALPN).
    pub fn start_tls() -> TestServer {
        Self::start_with(Some(tls_acceptor(false)))
    }

    /// An HTTPS server that offers HTTP/2 by ALPN (and HTTP/1.1).
    pub fn start_tls_h2() -> TestServer {
        Self::start_with(Some(tls_acceptor(true)))
    }

    fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let (shutdown, mut shutdown_rx) = oneshot::channel();
        let thread_counters = counters.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => accepted.unwrap(),
                        _ = &mut shutdown_rx => return,
                    };
                    thread_counters.connections.fetch_add(1, Ordering::Relaxed);
                    let counters = thread_counters.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| handle(counters.clone(), request));
                        // HTTP/1.1, or HTTP/2 told apart by its preface.
                        let http = auto::Builder::new(TokioExecutor::new());
                        let _ = match tls {
                            None => http.serve_connection(TokioIo::new(stream), service).await,
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => {
                                    http.serve_connection(TokioIo::new(stream), service).await
                                }
                                Err(_) => return,
                            },
                        };
                    });
                }
            });
        });
        TestServer {
            addr,
            counters,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Requests served (heads received), all paths.
    pub fn served(&self) -> u64 {
        self.counters.by_path.lock().values().sum()
    }

    /// Requests served on `path`.
    pub fn served_path(&self, path: &str) -> u64 {
        self.counters.by_path.lock().get(path).copied().unwrap_or(0)
    }

    pub fn last_echo(&self) -> String {
        self.counters.last_echo.lock().clone()
    }

    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// Requests sent with `Connection: close`.
    pub fn close_requests(&self) -> u64 {
        self.counters.close_requested.load(Ordering::Relaxed)
    }

    /// Requests that came over HTTP/2.
    pub fn served_http2(&self) -> u64 {
        self.counters.http2.load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    counters: Arc<Counters>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    *counters.by_path.lock().entry(path.clone()).or_default() += 1;
    if request.version() == hyper::Version::HTTP_2 {
        counters.http2.fetch_add(1, Ordering::Relaxed);
    }
    if request
        .headers()
        .get(hyper::header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        counters.close_requested.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(ms) = path.strip_prefix("/stall-once/") {
        let mut until = counters.stall_until.lock();
        if until.is_none() {
            let ms = ms.parse().unwrap_or(0);
            *until = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
        }
    }
    let stall = *counters.stall_until.lock();
    if let Some(until) = stall {
        tokio::time::sleep_until(until).await;
    }
    let respond = |status: u16, body: String| {
        Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next().unwrap_or(""), parts.next()) {
        ("ok", None) => respond(200, "hello".to_owned()),
        ("status", Some(code)) => respond(code.parse().unwrap_or(500), format!("status {code}")),
        ("slow", Some(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            respond(200, "slow".to_owned())
        }
        // A redirect to itself on another path: a client that followed it
        // would show as a request to /ok.
        ("redirect", None) => Ok(Response::builder()
            .status(302)
            .header("location", "/ok")
            .body(Full::new(Bytes::from_static(b"moved")))
            .unwrap()),
        ("close", None) => Ok(Response::builder()
            .header("connection", "close")
            .body(Full::new(Bytes::from_static(b"bye")))
            .unwrap()),
        ("login", None) => {
            let n = counters.tokens.fetch_add(1, Ordering::Relaxed);
            respond(200, format!(r#"{{"token":"tok-{n}","ok":true}}"#))
        }
        ("me", None) => {
            let issued = counters.tokens.load(Ordering::Relaxed);
            let valid = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer tok-"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < issued);
            if valid {
                respond(200, "me".to_owned())
            } else {
                respond(401, "who?".to_owned())
            }
        }
        ("v", Some(_)) => respond(200, "v".to_owned()),
        ("stall-once", Some(_)) => respond(200, "stalled".to_owned()),
        ("echo", None) => {
            use http_body_util::BodyExt;
            let method = request.method().to_string();
            let query = request.uri().query().unwrap_or("").to_owned();
            let content_type = request
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default();
            let custom = request
                .headers()
                .get("x-custom")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default();
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let echo = format!(
                "{method} {query} {content_type} {custom} {}",
                String::from_utf8_lossy(&body)
            );
            *counters.last_echo.lock() = echo.clone();
            respond(200, echo)
        }
        _ => respond(404, "not found".to_owned()),
    }
}
