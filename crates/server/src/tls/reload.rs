//! The certificate every new handshake gets, replaceable while the server runs. The
//! [`CertStore`] is the server's certificate resolver: it holds the current pair behind a
//! lock that handshakes only read, so replacing it affects the next handshake and never a
//! connection already open. [`watch_files`] polls the certificate and key files and
//! listens for SIGHUP; a new pair is served only once it loads and the key matches, and a
//! bad one is logged while the old pair stays.
//!
//! The store also answers ACME `tls-alpn-01` validation handshakes (ALPN `acme-tls/1`)
//! with the challenge certificate of the name asked for.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs;
use crate::config::Tls;

/// The ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How often the certificate and key files are read to see whether they changed.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The served certificate, and ACME challenge certificates by host name.
#[derive(Debug, Default)]
pub struct CertStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    /// A store serving `pair` (none: handshakes fail until one is set).
    pub fn new(pair: Option<Arc<CertifiedKey>>) -> Self {
        CertStore {
            current: RwLock::new(pair),
            challenges: RwLock::default(),
        }
    }

    /// Serves `pair` to every handshake from now on.
    pub fn set(&self, pair: Arc<CertifiedKey>) {
        // A poisoned lock only means a writer panicked mid-assignment of an Arc, which
        // cannot leave it half-written; keep serving.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(pair);
    }

    /// The pair served now.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Answers `tls-alpn-01` handshakes for `host` with `cert` until removed.
    pub fn set_challenge(&self, host: &str, cert: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_ascii_lowercase(), cert);
    }

    /// Stops answering challenges for `host`.
    pub fn clear_challenge(&self, host: &str) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&host.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the validation server asks for acme-tls/1; it gets the challenge
            // certificate of the name it names, never the real one.
            let host = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&host)
                .cloned();
        }
        self.current()
    }
}

/// The bytes last seen in the two files, and whether they were served or refused.
struct Seen {
    chain: Vec<u8>,
    key: Vec<u8>,
}

/// Keeps `store` serving what the certificate and key files hold: polls them every
/// [`POLL_INTERVAL`] and reloads on change; on SIGHUP reloads them, and the client CA
/// files too (`rustls` then gets a new server configuration for new handshakes). Runs
/// until the task is aborted.
pub async fn watch_files(
    store: Arc<CertStore>,
    certificate: PathBuf,
    key: PathBuf,
    tls: Tls,
    http2: bool,
    rustls: RustlsConfig,
) {
    // Nothing seen yet: the first tick (at once) serves what the files hold now, in case
    // they changed between validation and this task's start.
    let mut seen: Result<Seen, String> = Err(String::new());
    let mut first = true;
    let mut hangup = hangup_signal();
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = ticker.tick() => false,
            Some(()) = recv(&mut hangup) => true,
        };
        let quiet = std::mem::take(&mut first);
        let files = read_both(&certificate, &key);
        let (chain_pem, key_pem) = match files {
            Ok(files) => files,
            Err(e) => {
                if forced || seen.is_ok() {
                    tracing::warn!("TLS reload: {e}; still serving the previous certificate");
                }
                seen = Err(e);
                continue;
            }
        };
        let changed = match &seen {
            Ok(s) => s.chain != chain_pem || s.key != key_pem,
            Err(_) => true,
        };
        if changed || forced {
            match certs::parse_pair(&chain_pem, &key_pem, &certificate, &key) {
                Ok(pair) if quiet => store.set(pair),
                Ok(pair) => {
                    let subject = describe(&pair);
                    store.set(pair);
                    tracing::info!(
                        certificate = %certificate.display(),
                        reason = if forced { "SIGHUP" } else { "files changed" },
                        "TLS certificate reloaded: {subject}"
                    );
                }
                // Written one file at a time, a pair may not match for a moment; the
                // next change is tried again, and this one is reported once.
                Err(e) => tracing::warn!("TLS reload: {e}; still serving the previous certificate"),
            }
            seen = Ok(Seen {
                chain: chain_pem,
                key: key_pem,
            });
        }
        if forced {
            reload_client_cas(&store, &tls, http2, &rustls);
        }
    }
}

/// Re-reads the client CA files on every SIGHUP (when the certificate comes from ACME,
/// so no file watcher does it). Runs until the task is aborted.
pub async fn client_cas_on_hangup(
    store: Arc<CertStore>,
    tls: Tls,
    http2: bool,
    rustls: RustlsConfig,
) {
    let mut hangup = hangup_signal();
    while recv(&mut hangup).await.is_some() {
        reload_client_cas(&store, &tls, http2, &rustls);
    }
}

/// Rebuilds the server configuration with freshly read client CA files; keeps the old
/// one when they do not load.
pub fn reload_client_cas(store: &Arc<CertStore>, tls: &Tls, http2: bool, rustls: &RustlsConfig) {
    if tls.client_cas.is_empty() {
        return;
    }
    let verifier = match certs::client_verifier(&tls.client_cas) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("TLS reload: {e}; keeping the previous client CAs");
            return;
        }
    };
    match super::server_config(tls, http2, store.clone(), Some(verifier)) {
        Ok(config) => {
            rustls.reload_from_config(config);
            tracing::info!(files = tls.client_cas.len(), "TLS client CAs reloaded");
        }
        Err(e) => tracing::warn!("TLS reload: {e}; keeping the previous client CAs"),
    }
}

fn read_both(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let chain = std::fs::read(certificate)
        .map_err(|e| format!("reading {}: {e}", certificate.display()))?;
    let key = std::fs::read(key).map_err(|e| format!("reading {}: {e}", key.display()))?;
    Ok((chain, key))
}

/// A short description of a pair for the log: the leaf's subject and serial.
pub fn describe(pair: &CertifiedKey) -> String {
    let Some(leaf) = pair.cert.first() else {
        return "empty chain".to_owned();
    };
    match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, cert)) => format!(
            "subject {}, serial {}",
            cert.subject(),
            cert.raw_serial_as_string()
        ),
        Err(_) => "unparsable leaf certificate".to_owned(),
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); certificate files are still polled");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

/// The next SIGHUP; never, when there is no signal to wait for.
async fn recv(hangup: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = hangup {
        return s.recv().await;
    }
    let _ = hangup;
    std::future::pending().await
}
