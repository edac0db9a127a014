//! The server side: a rustls config built from `--tls-cert`, `--tls-key`
//! and optionally `--tls-client-ca` (mTLS), rebuilt when the files change.
//!
//! Rotation: [`ServerTls::watch`] re-reads the files every few seconds and
//! swaps in a new config when their contents changed. Connections already
//! open keep the certificate they were accepted with; new handshakes get the
//! new one. A file that is half-written or wrong is logged and the old
//! config kept, so a bad rotation never takes the server down.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;

use crate::{TlsError, files, path_buf, provider};

/// How often [`ServerTls::watch`] looks at the files.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The files of a TLS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// PEM CA bundle client certificates must chain to; `None` accepts
    /// clients without certificates.
    pub client_ca: Option<PathBuf>,
}

/// Which application protocol a listener speaks (negotiated with ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// gRPC: HTTP/2.
    Grpc,
    /// The web UI and the history API: HTTP/1.1.
    Http1,
}

impl Alpn {
    pub(crate) fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Grpc => vec![b"h2".to_vec()],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
        }
    }
}

impl ServerTlsFiles {
    /// Reads the files and builds a server config.
    pub fn load(&self, alpn: Alpn) -> Result<ServerConfig, TlsError> {
        let chain = files::certificates(&self.cert, "certificate")?;
        let key = files::private_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let roots = files::roots(path, "client CA")?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|error| TlsError::ClientCa {
                            path: path_buf(path),
                            reason: error.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder
                .with_single_cert(chain, key)
                .map_err(|source| TlsError::Identity {
                    cert: self.cert.clone(),
                    key: self.key.clone(),
                    source,
                })?;
        config.alpn_protocols = alpn.protocols();
        Ok(config)
    }

    /// The files' contents, to tell whether they changed.
    fn contents(&self) -> Vec<Option<Vec<u8>>> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .map(|path| path.and_then(|path| std::fs::read(path).ok()))
            .collect()
    }
}

/// A server's current TLS config; cheap to clone (all clones share it).
#[derive(Clone, Debug)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    files: ServerTlsFiles,
    alpn: Alpn,
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    config: Arc<ServerConfig>,
    contents: Vec<Option<Vec<u8>>>,
}

impl ServerTls {
    /// Loads the files (an error says which file is wrong and how).
    pub fn load(files: ServerTlsFiles, alpn: Alpn) -> Result<Self, TlsError> {
        let contents = files.contents();
        let config = Arc::new(files.load(alpn)?);
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                alpn,
                current: RwLock::new(Current { config, contents }),
            }),
        })
    }

    /// The config new connections are accepted with.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .config
            .clone()
    }

    /// The application protocol this config negotiates.
    pub fn alpn(&self) -> Alpn {
        self.inner.alpn
    }

    /// True when mTLS is on (client certificates are required).
    pub fn requires_client_certificates(&self) -> bool {
        self.inner.files.client_ca.is_some()
    }

    /// Rebuilds the config if the files' contents changed: `Ok(true)` when
    /// it did, `Ok(false)` when nothing changed, an error (and the old
    /// config kept) when the new files are unusable.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let contents = self.inner.files.contents();
        {
            let current = self
                .inner
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if current.contents == contents {
                return Ok(false);
            }
        }
        let result = self.inner.files.load(self.inner.alpn);
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Remember the contents even when they are bad: the error is
        // logged once, not at every poll, until the files change again.
        current.contents = contents;
        current.config = Arc::new(result?);
        Ok(true)
    }

    /// Reloads every `every` (see [`ServerTls::reload`]) until the last
    /// clone of this `ServerTls` is dropped.
    pub fn watch(&self, every: Duration) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let tls = ServerTls { inner };
                let cert = tls.inner.files.cert.display().to_string();
                match tls.reload() {
                    Ok(true) => tracing::info!(%cert, "tls certificate reloaded"),
                    Ok(false) => {}
                    Err(error) => tracing::error!(
                        %cert,
                        error = %error_chain(&error),
                        "failed to reload the tls files; keeping the previous certificate"
                    ),
                }
            }
        });
    }
}

/// An error and its sources, `: `-separated (for logs).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
