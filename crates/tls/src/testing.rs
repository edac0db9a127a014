//! Certificates made at test time (rcgen): a CA, a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, and a client certificate, as PEM
//! files in a temporary directory. Only for tests (feature `testsuite`).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{ClientTls, ServerTlsFiles};

/// A CA and the certificates it issued, on disk.
pub struct TestPki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// A new CA named `name` with a server certificate (common name
    /// `server`) and a client certificate already issued.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("failed to make a temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca certificate");
        write(&dir.path().join("ca.pem"), &cert.pem());
        let pki = Self {
            dir,
            issuer: Issuer::new(params, key),
        };
        pki.issue_server("server");
        pki.issue(
            "client",
            "cicada-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        pki
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// (Re)issues the server certificate with this common name, replacing
    /// `server.pem` and `server.key` (each by an atomic rename).
    pub fn issue_server(&self, common_name: &str) {
        self.issue("server", common_name, ExtendedKeyUsagePurpose::ServerAuth);
    }

    fn issue(&self, stem: &str, common_name: &str, usage: ExtendedKeyUsagePurpose) {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        write(
            &self.dir.path().join(format!("{stem}.key")),
            &key.serialize_pem(),
        );
        write(&self.dir.path().join(format!("{stem}.pem")), &cert.pem());
    }

    /// The server's files; with `mtls`, client certificates from this CA
    /// are required.
    pub fn server_files(&self, mtls: bool) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.dir.path().join("server.pem"),
            key: self.dir.path().join("server.key"),
            client_ca: mtls.then(|| self.ca()),
        }
    }

    /// A client trusting this CA, presenting the client certificate when
    /// `with_certificate`.
    pub fn client(&self, with_certificate: bool) -> ClientTls {
        ClientTls {
            ca: Some(self.ca()),
            cert: with_certificate.then(|| self.dir.path().join("client.pem")),
            key: with_certificate.then(|| self.dir.path().join("client.key")),
        }
    }
}

/// Writes `text` to `path` by a rename, so a reader sees the old or the new
/// file, never half of one.
fn write(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("failed to write a test certificate");
    std::fs::rename(&partial, path).expect("failed to rename a test certificate");
}
