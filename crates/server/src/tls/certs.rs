//! Reading PEM files into what rustls serves: a certificate chain and its private key
//! (checked to belong together), and the client CA pool that verifies client
//! certificates. Used when the configuration is validated and again on every reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;

use super::TlsError;

/// The crypto provider berth's TLS uses everywhere (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Parses a PEM chain and key (`certificate`, `key` name them in errors) into a served
/// pair, checking that the key is the leaf certificate's.
pub fn parse_pair(
    chain_pem: &[u8],
    key_pem: &[u8],
    certificate: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: certificate.to_owned(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: certificate.to_owned(),
            message: "holds no PEM certificate".to_owned(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: format!("no PEM private key: {e}"),
    })?;
    let pair = CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Arc::new(pair))
}

/// Reads and parses the pair from its files.
pub fn load_pair(certificate: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read(certificate, "http.tls.certificate")?;
    let private = read(key, "http.tls.key")?;
    parse_pair(&chain, &private, certificate, key)
}

/// Builds the verifier that requires a client certificate chaining to one of the CA
/// files (each may hold several PEM certificates).
pub fn client_verifier(cas: &[PathBuf]) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in cas {
        let pem = read(path, "http.tls.clientcas")?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::ClientCa {
                path: path.clone(),
                message: format!("not PEM certificates: {e}"),
            })?;
        if certs.is_empty() {
            return Err(TlsError::ClientCa {
                path: path.clone(),
                message: "holds no PEM certificate".to_owned(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::ClientCa {
                path: path.clone(),
                message: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::ClientCa {
            path: cas.first().cloned().unwrap_or_default(),
            message: e.to_string(),
        })
}
