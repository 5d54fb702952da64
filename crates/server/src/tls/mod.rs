//! TLS while serving: the rustls server configuration built from the validated
//! `http.tls` settings (protocol floor, cipher suites, ALPN, client certificate
//! verification), the replaceable certificate behind it (`reload`), and where that
//! certificate comes from: files reloaded on change or SIGHUP, or ACME (`acme`).
//! Reading and checking the settings is `config::tls`; it uses `certs` and `suites` from
//! here so that start-up and reloads read files the same way.

pub mod acme;
pub mod certs;
pub mod reload;
pub mod suites;

use std::path::PathBuf;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use rustls::server::danger::ClientCertVerifier;

use crate::config::{CertificateSource, Tls};
use reload::CertStore;

/// Protocols offered during the handshake: HTTP/2 first, as clients prefer it.
const ALPN_H2: &[u8] = b"h2";
/// HTTP/1.1's ALPN name.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why TLS material could not be used. [`TlsError::key`] names the configuration key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file is not a usable PEM chain.
    #[error("{}: {message}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key file holds no usable private key.
    #[error("{}: {message}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key does not belong to the certificate, or cannot sign.
    #[error("the certificate and key cannot be used together: {0}")]
    Mismatch(String),
    /// A client CA file is unusable.
    #[error("{}: {message}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the combination of settings.
    #[error("{0}")]
    Settings(String),
}

impl TlsError {
    /// The configuration key the problem belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. } => key,
            TlsError::Certificate { .. } => "http.tls.certificate",
            TlsError::Key { .. } => "http.tls.key",
            TlsError::Mismatch(_) | TlsError::Settings(_) => "http.tls",
            TlsError::ClientCa { .. } => "http.tls.clientcas",
        }
    }
}

/// The rustls configuration for `tls`: its floor and suites, client certificates
/// required when `verifier` is given, ALPN `h2` unless `http2` is off (plus ACME's
/// `acme-tls/1` when the certificate comes from ACME), certificates from `resolver`.
pub fn server_config(
    tls: &Tls,
    http2: bool,
    resolver: Arc<dyn ResolvesServerCert>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: tls.cipher_suites.clone(),
        ..rustls::crypto::ring::default_provider()
    };
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(tls.minimum.versions())
        .map_err(|e| TlsError::Settings(e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = if http2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    };
    if matches!(tls.source, CertificateSource::Acme(_)) {
        config.alpn_protocols.push(reload::ACME_TLS_ALPN.to_vec());
    }
    Ok(Arc::new(config))
}

/// TLS for a bound server: the configuration handed to the listener, and the store
/// whose certificate it serves.
pub struct Serving {
    tls: Tls,
    http2: bool,
    store: Arc<CertStore>,
    rustls: RustlsConfig,
}

impl Serving {
    /// Builds the server configuration: the certificate loaded at validation, or the one
    /// in the ACME cache file (none yet: handshakes fail until the first is issued).
    pub fn new(tls: &Tls, http2: bool) -> Result<Serving, TlsError> {
        let initial = match &tls.source {
            CertificateSource::Files { pair, .. } => Some(pair.clone()),
            CertificateSource::Acme(le) => acme::cached_certificate(le),
        };
        let store = Arc::new(CertStore::new(initial));
        let config = server_config(tls, http2, store.clone(), tls.client_verifier.clone())?;
        Ok(Serving {
            tls: tls.clone(),
            http2,
            store,
            rustls: RustlsConfig::from_config(config),
        })
    }

    /// What the listener serves with (reloads reach it through this handle).
    pub fn rustls(&self) -> RustlsConfig {
        self.rustls.clone()
    }

    /// Keeps the certificate current until aborted: watches the files (and SIGHUP), or
    /// obtains and renews the certificate by ACME.
    pub fn maintain(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        let tls = self.tls.clone();
        let http2 = self.http2;
        let rustls = self.rustls.clone();
        async move {
            match tls.source.clone() {
                CertificateSource::Files {
                    certificate, key, ..
                } => reload::watch_files(store, certificate, key, tls, http2, rustls).await,
                CertificateSource::Acme(le) if !tls.client_cas.is_empty() => {
                    let hangup =
                        reload::client_cas_on_hangup(store.clone(), tls.clone(), http2, rustls);
                    tokio::join!(acme::maintain(store, le), hangup);
                }
                CertificateSource::Acme(le) => acme::maintain(store, le).await,
            }
        }
    }
}
