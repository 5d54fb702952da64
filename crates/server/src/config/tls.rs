//! `http.tls` validated: the certificate and key (read, and checked to belong together),
//! or the `letsencrypt` section; the client CA files; `minimumtls`; `ciphersuites`.
//! Everything is read and checked here, while the configuration is validated, so a bad
//! file or value stops `check-config` and `serve` alike, before any port is bound; the
//! checks that `serve` repeats on reload live in `crate::tls`.

use std::path::{Path, PathBuf};

use rustls::pki_types::DnsName;

use super::schema::{LetsEncryptSection, TlsSection};
use super::{CertificateSource, ConfigError, LetsEncrypt, Tls, invalid};
use crate::tls::{self, TlsError, certs, suites};

/// Let's Encrypt's production directory, used when `directoryurl` is not given.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

fn tls_error(e: TlsError) -> ConfigError {
    invalid(e.key(), e.to_string())
}

/// The validated `http.tls`, or `None` when it asks for no TLS (no certificate and no
/// Let's Encrypt cache file). `http2` is whether HTTP/2 is on, for the ALPN check.
pub fn validate(t: &TlsSection, http2: bool) -> Result<Option<Tls>, ConfigError> {
    let letsencrypt = letsencrypt(&t.letsencrypt)?;
    let source = match (&t.certificate, &t.key, letsencrypt) {
        (Some(_), _, Some(_)) => {
            return Err(invalid(
                "http.tls.letsencrypt",
                "cannot be used together with http.tls.certificate (choose one source)",
            ));
        }
        (None, None, Some(le)) => CertificateSource::Acme(le),
        (None, Some(_), Some(_)) => {
            return Err(invalid(
                "http.tls.key",
                "is not used with http.tls.letsencrypt (the key comes from ACME)",
            ));
        }
        (Some(certificate), Some(key), None) => CertificateSource::Files {
            pair: certs::load_pair(certificate, key).map_err(tls_error)?,
            certificate: certificate.clone(),
            key: key.clone(),
        },
        (None, None, None) => return Ok(None),
        (Some(_), None, None) => {
            return Err(invalid(
                "http.tls.key",
                "is required with http.tls.certificate",
            ));
        }
        (None, Some(_), None) => {
            return Err(invalid(
                "http.tls.certificate",
                "is required with http.tls.key",
            ));
        }
    };
    let (minimum, floor_warning) =
        suites::minimum(t.minimumtls.as_deref()).map_err(|m| invalid("http.tls.minimumtls", m))?;
    let resolved = suites::cipher_suites(&t.ciphersuites.0, minimum)
        .map_err(|m| invalid("http.tls.ciphersuites", m))?;
    let client_cas: Vec<PathBuf> = t.clientcas.0.iter().map(PathBuf::from).collect();
    if client_cas.iter().any(|p| p.as_os_str().is_empty()) {
        return Err(invalid("http.tls.clientcas", "names an empty path"));
    }
    let client_verifier = if client_cas.is_empty() {
        None
    } else {
        Some(certs::client_verifier(&client_cas).map_err(tls_error)?)
    };
    let mut warnings: Vec<String> = floor_warning.into_iter().collect();
    warnings.extend(resolved.warnings);
    let settings = Tls {
        source,
        client_cas,
        client_verifier,
        minimum,
        cipher_suites: resolved.enabled,
        warnings,
    };
    // rustls's own checks of the combination (e.g. no suite for any offered version).
    let probe = std::sync::Arc::new(tls::reload::CertStore::new(None));
    tls::server_config(&settings, http2, probe, settings.client_verifier.clone())
        .map_err(tls_error)?;
    Ok(Some(settings))
}

/// `http.tls.letsencrypt`: `None` when the section is empty.
fn letsencrypt(le: &LetsEncryptSection) -> Result<Option<LetsEncrypt>, ConfigError> {
    let written = le.cachefile.is_some()
        || le.email.is_some()
        || !le.hosts.0.is_empty()
        || le.directoryurl.is_some();
    if !written {
        return Ok(None);
    }
    // distribution turns ACME on by the cache file alone; without it the other keys
    // would be silently ignored and the registry served without TLS.
    let cache_file = match le.cachefile.as_deref() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => {
            return Err(invalid(
                "http.tls.letsencrypt.cachefile",
                "is required to use Let's Encrypt (the file keeping the ACME account and \
                 certificate)",
            ));
        }
    };
    check_cache_dir(&cache_file)?;
    // berth orders the certificate when it starts rather than on a first handshake, so
    // it must know the names beforehand (and never orders for names a client makes up).
    if le.hosts.0.is_empty() {
        return Err(invalid(
            "http.tls.letsencrypt.hosts",
            "must name at least one host the certificate is for",
        ));
    }
    for host in &le.hosts.0 {
        if DnsName::try_from(host.as_str()).is_err() || host.parse::<std::net::IpAddr>().is_ok() {
            return Err(invalid(
                "http.tls.letsencrypt.hosts",
                format!("{host:?} is not a DNS name"),
            ));
        }
    }
    let directory_url = le
        .directoryurl
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| LETS_ENCRYPT_DIRECTORY.to_owned());
    if !directory_url.starts_with("https://") {
        return Err(invalid(
            "http.tls.letsencrypt.directoryurl",
            format!("{directory_url:?} must be an https:// URL"),
        ));
    }
    Ok(Some(LetsEncrypt {
        cache_file,
        email: le.email.clone().filter(|e| !e.is_empty()),
        hosts: le.hosts.0.clone(),
        directory_url,
    }))
}

/// The cache file is created on first use; its directory must already exist.
fn check_cache_dir(file: &Path) -> Result<(), ConfigError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(invalid(
            "http.tls.letsencrypt.cachefile",
            format!(
                "{}: directory {} does not exist",
                file.display(),
                dir.display()
            ),
        ));
    }
    if file.is_dir() {
        return Err(invalid(
            "http.tls.letsencrypt.cachefile",
            format!("{} is a directory, not a file", file.display()),
        ));
    }
    Ok(())
}
