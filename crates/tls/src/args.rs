//! The TLS flags, as clap groups each binary flattens into its arguments
//! (`#[command(flatten)]`). Every flag has a `CICADA_TLS_*` variable.

use std::path::PathBuf;

use crate::{ClientTls, ServerTlsFiles, TlsError};

/// A server's TLS flags (controller and collector; gRPC and HTTP ports).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServerTlsArgs {
    /// PEM certificate chain: serve TLS on every port (gRPC and HTTP).
    /// Reloaded when the file changes.
    #[arg(long, env = "CICADA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CICADA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it on the gRPC
    /// port (mTLS). Needs --tls-cert.
    #[arg(long, env = "CICADA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The files, or `None` for plaintext; an error when the flags do not
    /// go together.
    pub fn files(&self) -> Result<Option<ServerTlsFiles>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            })),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "--tls-cert (CICADA_TLS_CERT)",
                missing: "--tls-key (CICADA_TLS_KEY)",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                given: "--tls-key (CICADA_TLS_KEY)",
                missing: "--tls-cert (CICADA_TLS_CERT)",
            }),
            (None, None) if self.tls_client_ca.is_some() => Err(TlsError::Incomplete {
                given: "--tls-client-ca (CICADA_TLS_CLIENT_CA)",
                missing: "--tls-cert and --tls-key (CICADA_TLS_CERT, CICADA_TLS_KEY)",
            }),
            (None, None) => Ok(None),
        }
    }
}

/// A client's TLS flags (worker, the controller towards the collector, CLI).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM CA bundle that signs the servers' certificates (for https://
    /// URLs); without it the built-in webpki (Mozilla) roots are trusted.
    #[arg(long, env = "CICADA_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate to present to servers that require one (mTLS).
    #[arg(long, env = "CICADA_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM private key of --tls-client-cert.
    #[arg(long, env = "CICADA_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The checked client settings (the files are read once to check them).
    pub fn client(&self) -> Result<ClientTls, TlsError> {
        let tls = ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_client_cert.clone(),
            key: self.tls_client_key.clone(),
        };
        tls.validate()?;
        Ok(tls)
    }
}
