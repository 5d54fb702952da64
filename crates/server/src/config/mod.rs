//! distribution's `config.yml`, read unchanged, in four steps: YAML into a tree,
//! `REGISTRY_*` overrides applied to the tree (`env`), the tree typed into a
//! [`Document`] (`schema`), and one validation into the [`Config`] berth acts on
//! (`validate`). Every error names its key. Options berth does not implement yet are
//! reported as warnings (or refused, where ignoring them would be unsafe; `support`).

mod auth;
pub mod duration;
pub mod env;
mod notifications;
mod proxy;
mod redis;
pub mod schema;
pub mod size;
mod support;
mod tls;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use yaml_serde::Value;

pub use crate::tls::suites::MinimumTls;
pub use auth::Auth;
pub use notifications::{DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_EVENTS, DEFAULT_QUEUE_DIR};
pub use schema::Document;
pub use support::unsupported_options;
pub use validate::validate;

/// A configuration problem that stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML, or a value of the wrong type at a key.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An option berth refuses to ignore.
    #[error("{0}")]
    Refused(String),
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The configuration `berth serve` uses when given no file.
pub const EMBEDDED: &str = "version: 0.1
storage:
  filesystem:
    rootdirectory: data
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:5000
";

/// The validated configuration berth acts on, with distribution's defaults filled in.
/// [`validate()`] makes it, so every command acts on a configuration that passed.
#[derive(Debug, Clone)]
pub struct Config {
    /// `log` (and the deprecated `loglevel`).
    pub log: Log,
    /// `http`.
    pub http: Http,
    /// `storage`.
    pub storage: Storage,
    /// `auth` with `berth.auth`; `None`: everyone may do everything.
    pub auth: Option<Auth>,
    /// `berth.limits` (berth's own).
    pub limits: Limits,
    /// `health`: the checks to run, in the order written.
    pub health: Vec<HealthCheck>,
    /// `notifications` with `berth.notifications`; `None` when no endpoint is enabled.
    pub notifications: Option<berth_notify::NotifyConfig>,
    /// `proxy` and `berth.proxy.upstreams`: the upstreams this registry caches, by
    /// repository prefix (empty: no pull-through cache).
    pub proxy: Vec<berth_proxy::UpstreamConfig>,
    /// `redis`; `None` when `redis.addr` is not written.
    pub redis: Option<berth_redis::RedisConfig>,
    /// `berth.proxy.cache.maxsize`: bytes of cached blobs kept at most; `None` (absent,
    /// or 0) for no limit.
    pub proxy_max_size: Option<u64>,
}

/// One background health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// Its key in `/debug/health` (distribution's: `storagedriver_<driver>`, the file,
    /// the URI, the address).
    pub name: String,
    /// What is checked.
    pub probe: Probe,
    /// Time between checks (10s unless written).
    pub interval: Duration,
    /// Failures in a row before the check counts as failing (1 unless written).
    pub threshold: u32,
}

/// What a health check looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// The storage accepts a small write and delete (only a read when read-only).
    StorageDriver,
    /// Fails while this file exists.
    File(PathBuf),
    /// A `HEAD` request must answer `status` within `timeout`.
    Http {
        /// The URI (http only).
        uri: String,
        /// Sent with the request.
        headers: Vec<(HeaderName, HeaderValue)>,
        /// The status expected.
        status: u16,
        /// How long the request may take.
        timeout: Duration,
    },
    /// A TCP connection must open within `timeout`.
    Tcp {
        /// `host:port`.
        addr: String,
        /// How long the connection may take.
        timeout: Duration,
    },
}

/// `berth.limits`, with berth's defaults: what one connection, client or user may hold
/// or ask of this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A request head must arrive whole within this of its first byte
    /// (`headerreadtimeout`, 10s); `None` (`0s`) turns it off.
    pub header_read_timeout: Option<Duration>,
    /// A connection with no request in flight and no bytes moving is closed after this
    /// (`idletimeout`, 60s); `None` (`0s`) turns it off.
    pub idle_timeout: Option<Duration>,
    /// Largest request head in bytes (`maxheaderbytes`, 1 MiB as in Go's `net/http`, so
    /// distribution's); larger ones get 431. It is also hyper's read-buffer bound, and a
    /// small one would cap each read of an upload body (hyper's own default is 408 KiB).
    pub max_header_bytes: usize,
    /// Upload sessions this node keeps open at once (`maxuploadsessions`, 10,000);
    /// `None` (`0`) for no bound.
    pub max_upload_sessions: Option<usize>,
    /// `ratelimit`: off unless a bucket is written.
    pub rate_limit: berth_http::RateLimit,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            max_header_bytes: 1024 * 1024,
            max_upload_sessions: Some(10_000),
            rate_limit: berth_http::RateLimit::default(),
        }
    }
}

/// `log`.
#[derive(Debug, Clone)]
pub struct Log {
    /// `log.level`, else the deprecated top-level `loglevel`.
    pub level: Option<String>,
    /// text, json (logstash is written as json).
    pub formatter: Option<String>,
    /// Static fields added to every request's line.
    pub fields: BTreeMap<String, Value>,
    /// Whether to write the per-request line (`log.accesslog.disabled` turns it off).
    pub access_log: bool,
}

/// `http`.
#[derive(Debug, Clone)]
pub struct Http {
    /// Listen address, checked for form (`:5000` when absent).
    pub addr: String,
    /// URL prefix.
    pub prefix: Option<String>,
    /// Externally visible base URL, for absolute `Location` headers.
    pub host: Option<String>,
    /// The key upload URLs' `_state` tokens are signed with; `None` for a random key per
    /// process (as distribution does).
    pub secret: Option<String>,
    /// Headers added to every response, in the order written.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `http.tls`, loaded.
    pub tls: Option<Tls>,
    /// HTTP/2 offered (`http.http2.disabled` turns it off: HTTP/1.1 only).
    pub http2: bool,
    /// How long shutdown waits for in-flight requests (`http.draintimeout`, 30s).
    pub drain_timeout: Duration,
    /// `http.debug.addr`: where metrics and `/debug/health` are served; `None`: nowhere.
    pub debug_addr: Option<String>,
    /// `http.debug.prometheus.path` (`/metrics`) when `http.debug.prometheus.enabled`;
    /// `None`: no metrics are recorded.
    pub metrics_path: Option<String>,
}

/// `http.tls`, validated: where the certificate comes from and how handshakes go.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate's source.
    pub source: CertificateSource,
    /// `http.tls.clientcas`: when not empty, a client certificate chaining to one of
    /// these CAs is required.
    pub client_cas: Vec<PathBuf>,
    /// The verifier built from `client_cas` (read while validating).
    pub client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// `http.tls.minimumtls`, as far as rustls goes (TLS 1.2 at least).
    pub minimum: MinimumTls,
    /// `http.tls.ciphersuites` resolved to the suites rustls serves.
    pub cipher_suites: Vec<rustls::SupportedCipherSuite>,
    /// What the settings could not honour exactly, said at start-up.
    pub warnings: Vec<String>,
}

/// Where the served certificate comes from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// `http.tls.certificate` and `http.tls.key`, reloaded when they change.
    Files {
        /// PEM certificate chain.
        certificate: PathBuf,
        /// PEM private key.
        key: PathBuf,
        /// The pair as read while validating.
        pair: Arc<rustls::sign::CertifiedKey>,
    },
    /// `http.tls.letsencrypt`: obtained and renewed by ACME.
    Acme(LetsEncrypt),
}

/// `http.tls.letsencrypt`.
#[derive(Debug, Clone, PartialEq)]
pub struct LetsEncrypt {
    /// The one file holding the ACME account and the certificate.
    pub cache_file: PathBuf,
    /// Contact address given to the ACME server.
    pub email: Option<String>,
    /// The names the certificate covers.
    pub hosts: Vec<String>,
    /// The ACME directory (Let's Encrypt's production directory by default).
    pub directory_url: String,
}

/// Where data lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Driver {
    /// `storage.filesystem`.
    Filesystem {
        /// `rootdirectory`.
        root: PathBuf,
        /// `fsync` (berth's own; default true): flush every write to the disk before
        /// acknowledging it. distribution ignores the key, so a shared config stays valid.
        fsync: bool,
    },
    /// `storage.inmemory`.
    InMemory,
    /// `storage.s3`.
    S3(Box<berth_driver::S3Options>),
}

/// `storage`.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The driver.
    pub driver: Driver,
    /// Blob GETs redirect to the driver's presigned URLs (S3) unless
    /// `storage.redirect.disable` is set.
    pub redirect: bool,
    /// `storage.delete.enabled`.
    pub delete_enabled: bool,
    /// Blob-descriptor cache entries (`storage.cache.blobdescriptor: inmemory`), if on.
    pub descriptor_cache: Option<usize>,
    /// `storage.cache.blobdescriptor: redis`: the descriptor cache is the one in
    /// [`Config::redis`] (shared by a fleet) instead of this process's map.
    pub redis_descriptors: bool,
    /// `storage.maintenance.uploadpurging`.
    pub upload_purging: UploadPurging,
    /// `storage.maintenance.readonly.enabled`.
    pub read_only: bool,
    /// `storage.maintenance.gc` (berth's own).
    pub gc: OnlineGc,
    /// `berth.referrers.tagschema` (berth's own; default false).
    pub referrers_tag_schema: bool,
}

/// `storage.maintenance.uploadpurging`, with distribution's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadPurging {
    /// Run the purger.
    pub enabled: bool,
    /// Remove sessions older than this.
    pub age: Duration,
    /// Time between passes.
    pub interval: Duration,
    /// Only report.
    pub dry_run: bool,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

/// `storage.maintenance.gc`: online garbage collection, berth's own (off by default).
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineGc {
    /// Run collections in the serving process.
    pub enabled: bool,
    /// Pause between the end of one collection and the start of the next.
    pub interval: Duration,
    /// A blob whose data is younger than this is never removed: what protects blobs
    /// uploaded for a manifest not pushed yet when the collection cannot see the upload
    /// (it came before the collection started, or through another process).
    pub grace_period: Duration,
    /// Also delete manifests no tag reaches (`garbage-collect -m`).
    pub delete_untagged: bool,
    /// Only report what would be removed.
    pub dry_run: bool,
}

impl Default for OnlineGc {
    fn default() -> Self {
        OnlineGc {
            enabled: false,
            interval: Duration::from_secs(24 * 3600),
            grace_period: Duration::from_secs(24 * 3600),
            delete_untagged: false,
            dry_run: false,
        }
    }
}

impl Config {
    /// Reads a file, applies the process environment, and validates.
    pub fn load(path: &std::path::Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text, std::env::vars())
    }

    /// Parses YAML text with the given environment, types it and validates it; returns
    /// warnings for options that are ignored.
    pub fn from_yaml(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut root: Value =
            yaml_serde::from_str(text).map_err(|e| invalid("(document)", e.to_string()))?;
        if root.is_null() {
            root = Value::Mapping(Default::default());
        }
        env::apply(&mut root, vars);
        let mut warnings = unsupported_options(&root)?;
        let document = Document::from_tree(root)?;
        let config = validate(&document)?;
        if let Some(tls) = &config.http.tls {
            warnings.extend(tls.warnings.iter().cloned());
        }
        Ok((config, warnings))
    }

    /// The embedded default (filesystem storage in `./data`, `127.0.0.1:5000`, in-memory
    /// descriptor cache), with `REGISTRY_*` overrides from `vars` applied.
    pub fn embedded(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_yaml(EMBEDDED, vars)
    }
}

impl Document {
    /// Types a YAML tree (after overrides). A value of the wrong type is an error naming
    /// its key.
    pub fn from_tree(root: Value) -> Result<Document, ConfigError> {
        let drivers: Vec<String> = match root.get("storage") {
            Some(Value::Mapping(m)) => m
                .keys()
                .filter_map(Value::as_str)
                .filter(|k| !env::STORAGE_SETTINGS.contains(k))
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let mut document: Document = serde_path_to_error::deserialize(root)
            .map_err(|e| invalid(&e.path().to_string(), e.inner().to_string()))?;
        if let Some(storage) = document.storage.as_mut() {
            storage.drivers = drivers;
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests;
