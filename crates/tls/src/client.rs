//! The client side: [`ClientTls`] (`--tls-ca`, `--tls-client-cert`,
//! `--tls-client-key`) and [`GrpcTarget`], a tonic channel to an `http://`
//! or `https://` URL.
//!
//! TLS is done by our own connector rather than tonic's: it reads the files
//! again at every (re)connect, so a rotated client certificate or CA bundle
//! is used from the next connection on without a restart. Tonic sees a
//! plaintext `http://` endpoint whose origin (the `:scheme` and
//! `:authority` of requests) is the `https://` URL.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::server::error_chain;
use crate::stream::MaybeTls;
use crate::{Alpn, TlsError, files, provider};

/// A client connection, plaintext or TLS.
pub type ClientConn = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

/// A client's TLS files. The default (all `None`) trusts the webpki roots
/// (Mozilla's CA list, built in) for `https://` URLs and presents no client
/// certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA bundle the servers' certificates must chain to.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain for servers that require one (mTLS).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    /// Checks that the flags go together and the files are usable (call
    /// before connecting anywhere).
    pub fn validate(&self) -> Result<(), TlsError> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "--tls-client-cert (CICADA_TLS_CLIENT_CERT)",
                missing: "--tls-client-key (CICADA_TLS_CLIENT_KEY)",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                given: "--tls-client-key (CICADA_TLS_CLIENT_KEY)",
                missing: "--tls-client-cert (CICADA_TLS_CLIENT_CERT)",
            }),
            _ => self.config(Alpn::Grpc).map(|_| ()),
        }
    }

    /// True when any file is set.
    pub fn is_configured(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// Reads the files and builds a client config.
    pub fn config(&self, alpn: Alpn) -> Result<ClientConfig, TlsError> {
        let roots = match &self.ca {
            Some(path) => files::roots(path, "CA")?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots);
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(
                    files::certificates(cert, "client certificate")?,
                    files::private_key(key)?,
                )
                .map_err(|source| TlsError::Identity {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.protocols();
        Ok(config)
    }

    /// Opens a TCP connection to `host:port`, wrapped in TLS when `https`
    /// (the files are read now). `host` may be a bracketed IPv6 address.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        https: bool,
        alpn: Alpn,
    ) -> io::Result<ClientConn> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        if !https {
            return Ok(MaybeTls::Plain(tcp));
        }
        let config = self.config(alpn).map_err(io::Error::other)?;
        let name = ServerName::try_from(host.to_owned()).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a valid tls server name: {error}"),
            )
        })?;
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "tls handshake with {host}:{port} failed: {}",
                        error_chain(&error)
                    ),
                )
            })?;
        Ok(MaybeTls::Tls(Box::new(stream)))
    }
}

/// A gRPC server to dial: its tonic [`Endpoint`] (configure timeouts with
/// [`GrpcTarget::with`]) and the connector that does TLS for `https://`.
#[derive(Clone, Debug)]
pub struct GrpcTarget {
    endpoint: Endpoint,
    connector: Connector,
}

impl GrpcTarget {
    /// Checks `url` (`http://HOST:PORT` or `https://HOST:PORT`; the port
    /// defaults to 80 / 443).
    pub fn new(url: &str, tls: &ClientTls) -> Result<Self, TlsError> {
        let bad = |reason: &str| TlsError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|error: http::uri::InvalidUri| bad(&error.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("expected http://HOST:PORT or https://HOST:PORT")),
        };
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| bad("no host; expected http://HOST:PORT or https://HOST:PORT"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        let origin: Uri = format!("{scheme}://{host}:{port}")
            .parse()
            .map_err(|error: http::uri::InvalidUri| bad(&error.to_string()))?;
        let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
            .map_err(|error| bad(&error_chain(&error)))?
            .origin(origin);
        Ok(Self {
            endpoint,
            connector: Connector {
                tls: Arc::new(tls.clone()),
                host: host.to_owned(),
                port,
                https,
            },
        })
    }

    /// True for an `https://` URL.
    pub fn is_https(&self) -> bool {
        self.connector.https
    }

    /// Adjusts the endpoint (timeouts, keep-alive).
    pub fn with(mut self, configure: impl FnOnce(Endpoint) -> Endpoint) -> Self {
        self.endpoint = configure(self.endpoint);
        self
    }

    /// Connects now.
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        self.endpoint
            .connect_with_connector(self.connector.clone())
            .await
    }

    /// A channel that connects on first use (and reconnects as needed).
    pub fn connect_lazy(&self) -> Channel {
        self.endpoint
            .connect_with_connector_lazy(self.connector.clone())
    }
}

#[derive(Clone, Debug)]
struct Connector {
    tls: Arc<ClientTls>,
    host: String,
    port: u16,
    https: bool,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<ClientConn>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            this.tls
                .connect(&this.host, this.port, this.https, Alpn::Grpc)
                .await
                .map(TokioIo::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let tls = ClientTls::default();
        assert!(GrpcTarget::new("http://127.0.0.1:7000", &tls).is_ok());
        assert!(
            GrpcTarget::new("https://collector", &tls)
                .unwrap()
                .is_https()
        );
        assert!(GrpcTarget::new("https://[::1]:7100", &tls).is_ok());
        for bad in ["", "127.0.0.1:7000", "ftp://host:1", "http://", "bad host"] {
            let error = GrpcTarget::new(bad, &tls).unwrap_err();
            assert!(
                error.to_string().contains("not a usable gRPC url"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn client_files_come_in_pairs() {
        let half = ClientTls {
            cert: Some("client.pem".into()),
            ..ClientTls::default()
        };
        let error = half.validate().unwrap_err();
        assert!(error.to_string().contains("--tls-client-key"), "{error}");
        assert!(ClientTls::default().validate().is_ok());
    }
}
