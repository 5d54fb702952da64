//! `http.tls`: reads the PEM certificate chain and private key and builds the server's
//! TLS settings while the configuration is validated, so an unreadable or mismatched
//! pair stops `check-config` and `serve` alike, before any port is bound.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{ConfigError, invalid};

/// Protocols offered during the handshake: HTTP/2 first, as clients prefer it.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(key, format!("reading {}: {e}", path.display())))
}

/// Loads the certificate chain and key and checks that they belong together.
pub fn server_config(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    let pem = read(certificate, "http.tls.certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                "http.tls.certificate",
                format!(
                    "{}: not a PEM certificate chain: {e}",
                    certificate.display()
                ),
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            "http.tls.certificate",
            format!("{} holds no PEM certificate", certificate.display()),
        ));
    }
    let pem = read(key, "http.tls.key")?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            "http.tls.key",
            format!("{}: no PEM private key: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("http.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            invalid(
                "http.tls",
                format!("the certificate and key cannot be used together: {e}"),
            )
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
