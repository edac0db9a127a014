//! PEM files: certificate chains, private keys and CA bundles.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{TlsError, path_buf};

/// Reads a file, saying which one failed and what it was for.
pub fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path_buf(path),
        source,
    })
}

/// Every certificate of a PEM file (a chain: leaf first), at least one.
pub fn certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certificates(&read(path, what)?, path, what)
}

fn parse_certificates(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            what,
            path: path_buf(path),
            reason: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path_buf(path),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path_buf(path),
        },
        other => TlsError::Pem {
            what: "key",
            path: path_buf(path),
            reason: other.to_string(),
        },
    })
}

/// The trust anchors of a PEM CA bundle.
pub fn roots(path: &Path, what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, what)? {
        roots.add(cert).map_err(|source| TlsError::Ca {
            path: path_buf(path),
            source,
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = certificates(&missing, "certificate").unwrap_err();
        assert!(matches!(error, TlsError::Read { .. }));
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let error = certificates(&junk, "CA").unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains("CA file"), "{error}");
        let error = private_key(&junk).unwrap_err();
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");

        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = dir.path().join("good.pem");
        std::fs::write(&good, cert.pem()).unwrap();
        assert_eq!(certificates(&good, "certificate").unwrap().len(), 1);
        assert_eq!(roots(&good, "CA").unwrap().len(), 1);
        // A certificate is not a key.
        assert!(matches!(private_key(&good), Err(TlsError::NoKey { .. })));
        let key_file = dir.path().join("key.pem");
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        assert!(private_key(&key_file).is_ok());
    }
}
