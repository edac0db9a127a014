//! The target host and connections to it: one keep-alive connection per
//! virtual user, HTTP/1.1 or HTTP/2 (h2c with prior knowledge over TCP,
//! or chosen by ALPN over TLS: rustls, ring provider).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cicada_scenario::HttpVersion;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http2};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use cicada_scenario::allow::Check;

use super::EngineError;
use super::h1;

/// A user's connection.
pub(crate) enum Sender {
    /// HTTP/1.1: cicada's own client (`h1`), no task of its own.
    Http1(h1::Conn),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Whether the connection can no longer carry a request (never waits).
    pub fn is_closed(&mut self) -> bool {
        match self {
            Sender::Http1(conn) => conn.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }
}

/// Sends `request` (origin-form URI, `Host` header) on an HTTP/2
/// connection to `target`, with the target's scheme and authority in its
/// `:scheme`/`:authority` pseudo-headers instead of a `Host` header.
pub(crate) async fn send_h2(
    sender: &mut http2::SendRequest<Full<Bytes>>,
    target: &Target,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, TrySendError<Request<Full<Bytes>>>> {
    let (mut parts, body) = request.into_parts();
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(target.scheme.clone());
    uri.authority = Some(target.uri_authority.clone());
    // Parts of a valid URI plus a valid scheme and authority.
    parts.uri = Uri::from_parts(uri).unwrap_or_default();
    parts.headers.remove(HOST);
    parts.version = http::Version::HTTP_2;
    sender
        .try_send_request(Request::from_parts(parts, body))
        .await
}

/// Runs HTTP/2 connection tasks on the user's thread (its `LocalSet`).
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// Where requests go.
pub(crate) struct Target {
    /// Host name or IP (without brackets), for resolving.
    host: String,
    port: u16,
    /// Resolved once when the host is an IP literal.
    addr: Option<SocketAddr>,
    /// The `Host` header value.
    pub authority: HeaderValue,
    /// `scheme://authority/`, what cookies are matched against.
    pub origin: url::Url,
    tls: Option<Tls>,
    http: HttpVersion,
    /// What an HTTP/2 request's `:scheme` and `:authority` say.
    scheme: http::uri::Scheme,
    uri_authority: http::uri::Authority,
    /// The controller's `--allow-target` list and what it says of the host.
    allow: cicada_scenario::allow::AllowList,
    allowed: Check,
}

/// How an https target is reached: the connector every user shares (with
/// the scenario's client certificate, if any), the name checked, and what
/// a user's own client certificate is added to.
struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    base: TlsBase,
}

/// The trust settings every connector of a target shares.
#[derive(Clone)]
struct TlsBase {
    provider: Arc<rustls::crypto::CryptoProvider>,
    roots: Arc<rustls::RootCertStore>,
    insecure_skip_verify: bool,
    alpn: Vec<Vec<u8>>,
}

/// TLS settings for an https target (the scenario's `tls:`, with its
/// files' contents).
#[derive(Debug, Clone, Default)]
pub struct TargetTls {
    /// CA certificates (PEM) trusted besides the public web roots.
    pub ca_pem: Option<String>,
    /// SNI and the name the server's certificate is checked against
    /// (default: the host).
    pub server_name: Option<String>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// Client certificate chain and private key (PEM) every user presents.
    pub client: Option<(String, String)>,
}

/// Why a connection could not be made, where and after how long.
pub(crate) struct ConnectError {
    pub message: String,
    pub phase: Phase,
    /// How long the TCP connect took (until it failed, for `Phase::Tcp`).
    pub tcp_us: u64,
    /// How long the TLS handshake ran until it failed (`Phase::Tls`).
    pub tls_us: u64,
}

impl Target {
    /// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/`
    /// is allowed); https trusts the web roots and `extra_ca_pem`. `http`
    /// is the HTTP version the scenario asks for.
    pub fn parse(
        url: &str,
        extra_ca_pem: Option<&str>,
        options: &TargetTls,
        http: HttpVersion,
    ) -> Result<Target, EngineError> {
        let invalid = |reason: &str| EngineError::InvalidHost {
            host: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("expected an http:// or https:// URL")),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "expected a scheme and authority only, no path or query",
            ));
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let scheme = if tls {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        let uri_authority = authority.clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addr = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let origin = url::Url::parse(&format!(
            "{}://{}/",
            if tls { "https" } else { "http" },
            authority.as_str()
        ))
        .map_err(|e| invalid(&e.to_string()))?;
        let authority =
            HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(&e.to_string()))?;
        let tls = if tls {
            let name = options.server_name.clone().unwrap_or_else(|| host.clone());
            let server_name = ServerName::try_from(name).map_err(|e| invalid(&e.to_string()))?;
            let bad = |reason: String| EngineError::InvalidTls { reason };
            let base = TlsBase::new(extra_ca_pem, options, http).map_err(bad)?;
            let client = options
                .client
                .as_ref()
                .map(|(cert, key)| (cert.as_str(), key.as_str()));
            let connector = base.connector(client).map_err(bad)?;
            Some(Tls {
                connector,
                server_name,
                base,
            })
        } else {
            None
        };
        Ok(Target {
            host,
            port,
            addr,
            authority,
            origin,
            tls,
            http,
            scheme,
            uri_authority,
            allow: Default::default(),
            allowed: Check::Allowed,
        })
    }

    /// The target, connecting only to addresses `allow` lets through: the
    /// host as named, or (for a name only address patterns can match)
    /// each address it resolves to at connect time.
    pub fn with_allow_list(mut self, allow: cicada_scenario::allow::AllowList) -> Target {
        self.allowed = allow.check_host(&self.host, self.port);
        self.allow = allow;
        self
    }

    /// The error of a connection the allow list refuses.
    fn refused(&self, why: String) -> ConnectError {
        ConnectError {
            message: format!(
                "connect to {}:{} refused: {why} outside the allowed targets ({})",
                self.host,
                self.port,
                self.allow.to_strings().join(", ")
            ),
            phase: Phase::Refused,
            tcp_us: 0,
            tls_us: 0,
        }
    }

    /// The addresses to connect to when only some of the host's addresses
    /// may be allowed: those that are, resolved now.
    async fn allowed_addrs(&self) -> Result<Vec<SocketAddr>, ConnectError> {
        let resolved = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| ConnectError {
                message: format!("connect to {}:{}: {e}", self.host, self.port),
                phase: Phase::Tcp,
                tcp_us: 0,
                tls_us: 0,
            })?
            .collect::<Vec<_>>();
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .copied()
            .filter(|addr| self.allow.allows_addr(addr.ip(), addr.port()))
            .collect();
        if allowed.is_empty() {
            let addrs: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
            return Err(self.refused(format!("its addresses ({}) are", addrs.join(", "))));
        }
        Ok(allowed)
    }

    /// The full URL of a request to `path` (what cookies are matched against).
    pub fn url_of(&self, path: &http::Uri) -> url::Url {
        let mut url = self.origin.clone();
        url.set_path(path.path());
        url
    }

    /// A connector presenting a user's own client certificate (PEM).
    pub fn user_connector(&self, cert_pem: &str, key_pem: &str) -> Result<TlsConnector, String> {
        match &self.tls {
            Some(tls) => tls.base.connector(Some((cert_pem, key_pem))),
            None => Err("client certificates need an https:// host".to_owned()),
        }
    }

    /// Opens a connection (spawning an HTTP/2 driver on the current
    /// `LocalSet`), timing its TCP connect and TLS handshake; `connector`
    /// replaces the target's (a user's own client certificate).
    pub async fn connect(
        &self,
        timeout: Duration,
        connector: Option<&TlsConnector>,
    ) -> Result<Connected, ConnectError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = |phase: Phase, tcp_us: u64, tls_us: u64| ConnectError {
            message: format!(
                "connect to {}:{}: no connection within {timeout:?}",
                self.host, self.port
            ),
            phase,
            tcp_us,
            tls_us,
        };
        let addrs = match &self.allowed {
            Check::Allowed => None,
            Check::Refused => return Err(self.refused("the host is".to_owned())),
            Check::Resolve { .. } => {
                match tokio::time::timeout_at(deadline, self.allowed_addrs()).await {
                    Ok(addrs) => Some(addrs?),
                    Err(_) => return Err(timed_out(Phase::Tcp, 0, 0)),
                }
            }
        };
        let began = Instant::now();
        let tcp = async {
            match (self.addr, &addrs) {
                (_, Some(addrs)) => TcpStream::connect(addrs.as_slice()).await,
                (Some(addr), None) => TcpStream::connect(addr).await,
                (None, None) => TcpStream::connect((self.host.as_str(), self.port)).await,
            }
        };
        let tcp = match tokio::time::timeout_at(deadline, tcp).await {
            Err(_) => return Err(timed_out(Phase::Tcp, micros(began), 0)),
            Ok(Err(e)) => {
                return Err(ConnectError {
                    message: format!("connect to {}:{}: {e}", self.host, self.port),
                    phase: Phase::Tcp,
                    tcp_us: micros(began),
                    tls_us: 0,
                });
            }
            Ok(Ok(tcp)) => tcp,
        };
        let tcp_us = micros(began);
        // Requests are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            let sender = if self.http == HttpVersion::Http2 {
                // h2c with prior knowledge: no upgrade round trip.
                match tokio::time::timeout_at(deadline, self.handshake_h2(tcp)).await {
                    Ok(sender) => sender.map_err(|message| ConnectError {
                        message,
                        phase: Phase::Tcp,
                        tcp_us: micros(began),
                        tls_us: 0,
                    })?,
                    Err(_) => return Err(timed_out(Phase::Tcp, micros(began), 0)),
                }
            } else {
                Sender::Http1(h1::Conn::new(cicada_tls::MaybeTls::Plain(tcp)))
            };
            return Ok(Connected {
                sender,
                // h2c: with the HTTP/2 preface (documented on `tcp_us`).
                tcp_us: if self.http == HttpVersion::Http2 {
                    micros(began)
                } else {
                    tcp_us
                },
                tls_us: None,
            });
        };
        let started = Instant::now();
        let handshake = async {
            let stream = connector
                .unwrap_or(&tls.connector)
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("tls handshake with {}: {e}", self.host))?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            if h2 {
                self.handshake_h2(stream).await
            } else if self.http == HttpVersion::Http2 {
                Err(format!(
                    "{} did not agree to HTTP/2 (ALPN); use http: auto or 1.1",
                    self.host
                ))
            } else {
                Ok(Sender::Http1(h1::Conn::new(cicada_tls::MaybeTls::Tls(
                    Box::new(stream),
                ))))
            }
        };
        match tokio::time::timeout_at(deadline, handshake).await {
            Err(_) => Err(timed_out(Phase::Tls, tcp_us, micros(started))),
            Ok(Err(message)) => Err(ConnectError {
                message,
                phase: Phase::Tls,
                tcp_us,
                tls_us: micros(started),
            }),
            Ok(Ok(sender)) => Ok(Connected {
                sender,
                tcp_us,
                tls_us: Some(micros(started)),
            }),
        }
    }
}

/// A new connection and how long making it took.
pub(crate) struct Connected {
    pub sender: Sender,
    /// The TCP connect (and, for h2c, the HTTP/2 preface) in microseconds.
    pub tcp_us: u64,
    /// The TLS handshake (with the HTTP/2 preface when ALPN chose h2).
    pub tls_us: Option<u64>,
}

/// The part of making a connection that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Tcp,
    Tls,
    /// Refused before connecting: the address is outside the allow list.
    Refused,
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Target {
    async fn handshake_h2<T>(&self, io: T) -> Result<Sender, String>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    {
        let (sender, connection) = http2::handshake(LocalExec, TokioIo::new(io))
            .await
            .map_err(|e| format!("http/2 handshake: {e}"))?;
        // The driver ends when the user drops its sender or the peer closes.
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Ok(Sender::Http2(sender))
    }
}

impl TlsBase {
    fn new(
        extra_ca_pem: Option<&str>,
        options: &TargetTls,
        http: HttpVersion,
    ) -> Result<TlsBase, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for (pem, what) in [
            (extra_ca_pem, "the worker's CA"),
            (options.ca_pem.as_deref(), "tls.ca_file"),
        ] {
            let Some(pem) = pem else { continue };
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("{what}: bad CA certificate PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{what}: bad CA certificate: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("{what}: no certificate found in the CA PEM"));
            }
        }
        Ok(TlsBase {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots: Arc::new(roots),
            insecure_skip_verify: options.insecure_skip_verify,
            alpn: match http {
                HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
                HttpVersion::Http2 => vec![b"h2".to_vec()],
            },
        })
    }

    /// A connector with these trust settings, presenting `client` (a
    /// certificate chain and a private key, PEM) when given.
    fn connector(&self, client: Option<(&str, &str)>) -> Result<TlsConnector, String> {
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(self.provider.clone())))
        } else {
            builder.with_root_certificates(self.roots.clone())
        };
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("bad client certificate PEM: {e}"))?;
                if certs.is_empty() {
                    return Err("no certificate found in the client certificate PEM".to_owned());
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|e| format!("bad client key PEM: {e}"))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("client certificate and key: {e}"))?
            }
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

/// `insecure_skip_verify`: any server certificate is accepted (its
/// handshake signatures are still checked, so the session keys are real).
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::Target;
    use cicada_scenario::HttpVersion;

    #[test]
    fn parses_hosts() {
        let t = Target::parse(
            "http://127.0.0.1:8080",
            None,
            &Default::default(),
            HttpVersion::Auto,
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.to_str().unwrap()),
            ("127.0.0.1", 8080, "127.0.0.1:8080")
        );
        assert!(t.addr.is_some() && t.tls.is_none());
        let t = Target::parse(
            "https://example.test/",
            None,
            &Default::default(),
            HttpVersion::Auto,
        )
        .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.test", 443));
        assert!(t.addr.is_none() && t.tls.is_some());
        let t = Target::parse(
            "http://[::1]:9",
            None,
            &Default::default(),
            HttpVersion::Auto,
        )
        .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        assert!(t.addr.is_some());
        for bad in ["127.0.0.1:80", "ftp://x", "http://x/path", "http://x/?q=1"] {
            let e = Target::parse(bad, None, &Default::default(), HttpVersion::Auto)
                .err()
                .expect(bad)
                .to_string();
            assert!(e.starts_with(&format!("invalid host {bad:?}")), "{e}");
        }
    }
}
