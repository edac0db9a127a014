//! TLS and mTLS between cicada's own services (controller, collector,
//! workers, CLI). Not the load target's TLS: that is the scenario's `tls:`
//! section, handled by the worker's engine.
//!
//! Layout:
//! - [`files`]: PEM certificate chains, keys and CA bundles, with errors that
//!   name the file and what is wrong with it.
//! - [`server`]: [`ServerTls`], a rustls server config rebuilt when its files
//!   change on disk (cert-manager rotates them), optionally requiring client
//!   certificates signed by a client CA (mTLS).
//! - [`accept`]: [`incoming`], the accept loop every cicada server uses: TCP
//!   accept, then the TLS handshake in its own task with a bounded time, so
//!   one slow client never holds up the others; yields [`Conn`]s tonic and
//!   hyper serve.
//! - [`client`]: [`ClientTls`] and [`GrpcTarget`], tonic channels to
//!   `http://` or `https://` URLs whose TLS files are read again at every
//!   (re)connect, so rotated client certificates are picked up.
//! - [`args`]: the clap flag groups every binary flattens in.
//!
//! The shared token (`cicada_proto::auth`) keeps working unchanged: over
//! TLS it travels encrypted.

pub mod accept;
pub mod args;
pub mod client;
pub mod files;
pub mod server;
pub mod stream;
#[cfg(any(test, feature = "testsuite"))]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use accept::{Conn, incoming};
pub use args::{ClientTlsArgs, ServerTlsArgs};
pub use client::{ClientConn, ClientTls, GrpcTarget};
pub use server::{Alpn, ServerTls, ServerTlsFiles};
pub use stream::MaybeTls;

/// Errors of TLS configuration: every one names the file or flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read the {what} file {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the {what} file {path} holds no PEM certificate (expected a -----BEGIN CERTIFICATE----- block)"
    )]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the {what} file {path} is not valid PEM: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the key file {path} holds no private key (expected a -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block)"
    )]
    NoKey { path: PathBuf },
    #[error("the certificate {cert} and the key {key} do not form a usable TLS identity")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the CA file {path} holds no usable CA certificate")]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the client CA file {path} cannot verify client certificates: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("{given} needs {missing} too")]
    Incomplete {
        given: &'static str,
        missing: &'static str,
    },
    #[error("{url:?} is not a usable gRPC url: {reason}")]
    Url { url: String, reason: String },
}

/// The one crypto provider of cicada's TLS (ring), named explicitly so a
/// dependency that enables another provider cannot make rustls ambiguous.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn path_buf(path: &Path) -> PathBuf {
    path.to_path_buf()
}
