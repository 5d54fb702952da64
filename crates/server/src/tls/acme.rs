//! `http.tls.letsencrypt`: the certificate obtained and renewed by ACME (RFC 8555) with
//! the `tls-alpn-01` challenge (RFC 8737), as distribution's Let's Encrypt support does.
//! The ACME client is `instant-acme`. The account and the current certificate live in
//! one cache file (`cachefile`, JSON, mode 0600, replaced atomically), so a restart
//! serves the cached certificate at once and orders nothing until renewal is due.
//!
//! The ACME server's own HTTPS is verified against the system's roots, or against the
//! PEM bundle named by the `SSL_CERT_FILE` environment variable when it is set (a test
//! CA such as pebble's).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountBuilder, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::reload::{CertStore, describe};
use super::{TlsError, certs};
use crate::config::LetsEncrypt;

/// Never sleep longer than this between looks at the certificate's expiry, so a clock
/// change or a suspended machine cannot postpone a renewal for long.
const MAX_SLEEP: Duration = Duration::from_secs(12 * 3600);
/// The first retry after a failed order; doubled on each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Renew when this much of the validity is left (or a third of it, if less).
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why obtaining a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server or the client library refused.
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The cache file could not be read or written.
    #[error("ACME cache file {}: {message}", path.display())]
    Cache {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `SSL_CERT_FILE` could not be used.
    #[error("SSL_CERT_FILE {}: {message}", path.display())]
    Roots {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The order did not go as ACME says it should.
    #[error("ACME order: {0}")]
    Order(String),
    /// A challenge certificate could not be made.
    #[error("making the tls-alpn-01 challenge certificate: {0}")]
    Challenge(String),
    /// The issued certificate does not load.
    #[error("the issued certificate: {0}")]
    Issued(#[from] TlsError),
}

/// What the cache file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    /// The directory the account belongs to.
    #[serde(default)]
    directory: String,
    /// instant-acme's account credentials, kept as written.
    #[serde(default)]
    account: Option<serde_json::Value>,
    /// The current certificate.
    #[serde(default)]
    certificate: Option<CachedCertificate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedCertificate {
    /// The names it was ordered for.
    hosts: Vec<String>,
    /// PEM chain, leaf first.
    chain: String,
    /// PEM private key.
    key: String,
}

impl Cache {
    /// The cache, or an empty one when the file does not exist yet.
    fn read(path: &Path) -> Result<Cache, AcmeError> {
        let err = |message: String| AcmeError::Cache {
            path: path.to_owned(),
            message,
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| err(format!("not berth's ACME cache ({e})"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cache::default()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Replaces the file atomically; only the owner may read it (it holds private keys).
    fn write(&self, path: &Path) -> Result<(), AcmeError> {
        let err = |message: String| AcmeError::Cache {
            path: path.to_owned(),
            message,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|e| err(e.to_string()))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// The cached certificate, if it was ordered from this directory for these names.
    fn certificate_for(&self, le: &LetsEncrypt) -> Option<&CachedCertificate> {
        let wanted: BTreeSet<String> = le.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        self.certificate.as_ref().filter(|c| {
            self.directory == le.directory_url
                && c.hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect::<BTreeSet<_>>()
                    == wanted
        })
    }
}

fn parse_cached(c: &CachedCertificate, path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    certs::parse_pair(c.chain.as_bytes(), c.key.as_bytes(), path, path)
}

/// The certificate in the cache file, if it is for the configured directory and hosts
/// (served at start-up, before any ACME traffic).
pub fn cached_certificate(le: &LetsEncrypt) -> Option<Arc<CertifiedKey>> {
    let cache = match Cache::read(&le.cache_file) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{e}; a new account and certificate will be ordered");
            return None;
        }
    };
    let cached = cache.certificate_for(le)?;
    match parse_cached(cached, &le.cache_file) {
        Ok(pair) => {
            tracing::info!(
                cachefile = %le.cache_file.display(),
                "ACME: serving the cached certificate ({})",
                describe(&pair)
            );
            Some(pair)
        }
        Err(e) => {
            tracing::warn!("ACME cache: {e}; a new certificate will be ordered");
            None
        }
    }
}

/// When `pair` should be renewed: when [`RENEW_BEFORE`] (or a third of its lifetime, if
/// less) is left. `None` when its validity cannot be read (renew now).
fn renewal_time(pair: &CertifiedKey) -> Option<SystemTime> {
    let leaf = pair.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let validity = cert.validity();
    let not_before = u64::try_from(validity.not_before.timestamp()).ok()?;
    let not_after = u64::try_from(validity.not_after.timestamp()).ok()?;
    let lifetime = Duration::from_secs(not_after.saturating_sub(not_before));
    let margin = RENEW_BEFORE.min(lifetime / 3);
    (UNIX_EPOCH + Duration::from_secs(not_after)).checked_sub(margin)
}

/// Obtains the certificate when there is none, renews it when due, and retries failures
/// with a growing pause. Runs until the task is aborted.
pub async fn maintain(store: Arc<CertStore>, le: LetsEncrypt) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let due = store.current().and_then(|p| renewal_time(&p));
        if let Some(due) = due
            && let Ok(wait) = due.duration_since(SystemTime::now())
        {
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
            continue;
        }
        match obtain(&store, &le).await {
            Ok(pair) => {
                tracing::info!(
                    hosts = ?le.hosts,
                    "ACME: certificate issued ({})",
                    describe(&pair)
                );
                store.set(pair);
                backoff = FIRST_BACKOFF;
            }
            Err(e) => {
                tracing::warn!(
                    hosts = ?le.hosts,
                    retry_in_s = backoff.as_secs(),
                    "ACME: obtaining the certificate failed: {e}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// An account client trusting the system's roots, or `SSL_CERT_FILE`'s certificates.
fn account_builder() -> Result<AccountBuilder, AcmeError> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from) else {
        // The platform verifier builds its client with the process's default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        return Ok(Account::builder()?);
    };
    let err = |message: String| AcmeError::Roots {
        path: path.clone(),
        message,
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path).map_err(|e| err(e.to_string()))?;
    for cert in certs {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("holds no certificate".to_owned()));
    }
    let tls = rustls::ClientConfig::builder_with_provider(certs::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BodyWrapper<bytes::Bytes>>(connector);
    Ok(Account::builder_with_http(Box::new(client)))
}

/// The cached account for this directory, or a new one (saved to the cache at once).
async fn account(cache: &mut Cache, le: &LetsEncrypt) -> Result<Account, AcmeError> {
    let cache_err = |message: String| AcmeError::Cache {
        path: le.cache_file.clone(),
        message,
    };
    if cache.directory == le.directory_url
        && let Some(saved) = &cache.account
    {
        let credentials =
            serde_json::from_value(saved.clone()).map_err(|e| cache_err(e.to_string()))?;
        return Ok(account_builder()?.from_credentials(credentials).await?);
    }
    let contact = le.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = account_builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                // distribution's autocert accepts the terms too; configuring Let's
                // Encrypt is taken as the operator's agreement.
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            le.directory_url.clone(),
            None,
        )
        .await?;
    cache.directory = le.directory_url.clone();
    cache.account = Some(serde_json::to_value(&credentials).map_err(|e| cache_err(e.to_string()))?);
    cache.certificate = None;
    cache.write(&le.cache_file)?;
    tracing::info!(directory = %le.directory_url, "ACME: account created");
    Ok(account)
}

/// The self-signed certificate that answers a `tls-alpn-01` validation for `host`.
fn challenge_certificate(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let failed = |e: rcgen::Error| AcmeError::Challenge(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(failed)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its key check parses the certificate with webpki,
    // which refuses the critical acmeIdentifier extension this certificate must carry.
    let signer = certs::provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| AcmeError::Challenge(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// One order: answer each pending authorization's `tls-alpn-01` challenge from `store`,
/// wait for the order, finalize with a fresh key, fetch the chain, and cache it.
async fn obtain(store: &CertStore, le: &LetsEncrypt) -> Result<Arc<CertifiedKey>, AcmeError> {
    let mut cache = Cache::read(&le.cache_file).unwrap_or_else(|e| {
        tracing::warn!("{e}; starting a new cache");
        Cache::default()
    });
    let account = account(&mut cache, le).await?;
    let identifiers: Vec<Identifier> = le.hosts.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut answering: Vec<String> = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Order(format!("authorization is {other:?}")));
                }
            }
            let mut challenge = authorization
                .challenge(ChallengeType::TlsAlpn01)
                .ok_or_else(|| AcmeError::Order("no tls-alpn-01 challenge offered".into()))?;
            let host = challenge.identifier().to_string();
            let digest = challenge.key_authorization().digest();
            store.set_challenge(&host, challenge_certificate(&host, digest.as_ref())?);
            answering.push(host);
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&RetryPolicy::default()).await?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Order(format!("order is {status:?}, not ready")));
        }
        let key = order.finalize().await?;
        let chain = order.poll_certificate(&RetryPolicy::default()).await?;
        Ok((chain, key))
    }
    .await;
    for host in &answering {
        store.clear_challenge(host);
    }
    let (chain, key) = result?;
    let issued = CachedCertificate {
        hosts: le.hosts.clone(),
        chain,
        key,
    };
    let pair = parse_cached(&issued, &le.cache_file)?;
    cache.certificate = Some(issued);
    cache.write(&le.cache_file)?;
    Ok(pair)
}
