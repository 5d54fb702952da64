//! distribution's `config.yml`, read unchanged: YAML, then `REGISTRY_*` overrides, then
//! typed settings with errors that name the key. Options berth does not implement yet are
//! reported as warnings (or refused, where ignoring them would be unsafe).

pub mod duration;
pub mod env;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use yaml_serde::Value;

pub use support::unsupported_options;

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

/// The typed configuration berth acts on.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    /// Configuration format version (`0.1`).
    pub version: Option<Value>,
    /// `log`.
    pub log: Log,
    /// Deprecated top-level `loglevel`.
    pub loglevel: Option<String>,
    /// `http`.
    pub http: Http,
    /// `storage` (driver and settings), parsed by hand: its driver is a key name.
    #[serde(skip)]
    pub storage: Storage,
}

/// `log`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Log {
    /// error, warn, info, debug (trace too).
    pub level: Option<String>,
    /// text, json (logstash is treated as json).
    pub formatter: Option<String>,
    /// Static fields added to every line.
    pub fields: BTreeMap<String, Value>,
    /// `log.accesslog.disabled`.
    pub accesslog: AccessLog,
}

/// `log.accesslog`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct AccessLog {
    /// Turn off the per-request line.
    pub disabled: bool,
}

/// `http`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Http {
    /// Listen address (`:5000`, `127.0.0.1:5000`).
    pub addr: Option<String>,
    /// `tcp` (unix sockets are not supported yet).
    pub net: Option<String>,
    /// URL prefix.
    pub prefix: Option<String>,
    /// Externally visible base URL, for absolute `Location` headers.
    pub host: Option<String>,
    /// Upload-state signing secret (berth keeps no client-visible state; accepted).
    pub secret: Option<String>,
    /// Relative URLs in `Location` (berth's default).
    pub relativeurls: bool,
    /// How long to wait for in-flight requests on shutdown.
    pub draintimeout: Option<String>,
    /// Headers added to every response.
    pub headers: BTreeMap<String, Vec<String>>,
    /// `http.tls`.
    pub tls: Tls,
}

/// `http.tls`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Tls {
    /// PEM certificate chain.
    pub certificate: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
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
}

/// `storage`.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The driver.
    pub driver: Driver,
    /// `storage.delete.enabled`.
    pub delete_enabled: bool,
    /// Blob-descriptor cache entries (`storage.cache.blobdescriptor: inmemory`), if on.
    pub descriptor_cache: Option<usize>,
    /// `storage.maintenance.uploadpurging`.
    pub upload_purging: UploadPurging,
    /// `storage.maintenance.readonly.enabled`.
    pub read_only: bool,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            driver: Driver::Filesystem {
                root: PathBuf::from("/var/lib/registry"),
                fsync: true,
            },
            delete_enabled: false,
            descriptor_cache: None,
            upload_purging: UploadPurging::default(),
            read_only: false,
        }
    }
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

impl Config {
    /// Reads a file, applies the process environment, and validates.
    pub fn load(path: &std::path::Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text, std::env::vars())
    }

    /// Parses YAML text with the given environment; returns warnings for options that
    /// are ignored.
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
        let warnings = unsupported_options(&root)?;
        let mut config: Config = serde_path_to_error::deserialize(root.clone())
            .map_err(|e| invalid(&e.path().to_string(), e.inner().to_string()))?;
        if config.version.is_none() {
            return Err(invalid("version", "is required (use 0.1)"));
        }
        config.storage = parse_storage(root.get("storage"))?;
        Ok((config, warnings))
    }

    /// The embedded default (filesystem storage in `./data`, `127.0.0.1:5000`, in-memory
    /// descriptor cache), with `REGISTRY_*` overrides from `vars` applied.
    pub fn embedded(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_yaml(EMBEDDED, vars)
    }

    /// How long shutdown waits for in-flight requests.
    pub fn drain_timeout(&self) -> Result<Duration, ConfigError> {
        match self.http.draintimeout.as_deref() {
            None => Ok(Duration::from_secs(30)),
            Some(s) => duration::parse(s)
                .ok_or_else(|| invalid("http.draintimeout", format!("{s:?} is not a duration"))),
        }
    }
}

fn bool_at(v: Option<&Value>, key: &str, default: bool) -> Result<bool, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => {
            let found = yaml_serde::to_string(other).unwrap_or_default();
            Err(invalid(
                key,
                format!("expected true or false, found {}", found.trim()),
            ))
        }
    }
}

fn duration_at(v: Option<&Value>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => duration::parse(s)
            .ok_or_else(|| invalid(key, format!("{s:?} is not a duration (e.g. 168h)"))),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| invalid(key, "durations are strings like 24h")),
        Some(other) => Err(invalid(
            key,
            format!("expected a duration, found {other:?}"),
        )),
    }
}

fn parse_storage(v: Option<&Value>) -> Result<Storage, ConfigError> {
    let map = match v {
        Some(Value::Mapping(m)) => m,
        None | Some(Value::Null) => {
            return Err(invalid(
                "storage",
                "is required (e.g. filesystem or inmemory)",
            ));
        }
        Some(_) => return Err(invalid("storage", "must be a mapping")),
    };
    let drivers: Vec<&str> = map
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| !env::STORAGE_SETTINGS.contains(k))
        .collect();
    let driver = match drivers.as_slice() {
        ["filesystem"] => {
            let params = map.get("filesystem");
            let root = match params.and_then(|p| p.get("rootdirectory")) {
                None | Some(Value::Null) => PathBuf::from("/var/lib/registry"),
                Some(Value::String(s)) if !s.is_empty() => PathBuf::from(s),
                Some(_) => {
                    return Err(invalid(
                        "storage.filesystem.rootdirectory",
                        "must be a non-empty path",
                    ));
                }
            };
            let fsync = bool_at(
                params.and_then(|p| p.get("fsync")),
                "storage.filesystem.fsync",
                true,
            )?;
            Driver::Filesystem { root, fsync }
        }
        ["inmemory"] => Driver::InMemory,
        [other] => {
            return Err(ConfigError::Refused(format!(
                "storage driver `{other}` is not supported yet (filesystem and inmemory are)"
            )));
        }
        [] => {
            return Err(invalid(
                "storage",
                "names no driver (e.g. filesystem or inmemory)",
            ));
        }
        many => {
            return Err(invalid(
                "storage",
                format!("names more than one driver: {}", many.join(", ")),
            ));
        }
    };
    let get = |path: &[&str]| path.iter().try_fold(v?, |node, k| node.get(*k));
    let cache = get(&["cache", "blobdescriptor"]).or_else(|| get(&["cache", "layerinfo"]));
    let descriptor_cache = match cache.and_then(Value::as_str) {
        None | Some("") => None,
        Some("inmemory") | Some("redis") => {
            let size = match get(&["cache", "blobdescriptorsize"]) {
                None => berth_storage::DEFAULT_CACHE_CAPACITY,
                Some(n) => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        invalid(
                            "storage.cache.blobdescriptorsize",
                            "must be a positive integer",
                        )
                    })?,
            };
            Some(size)
        }
        Some(other) => {
            return Err(invalid(
                "storage.cache.blobdescriptor",
                format!("unknown cache {other:?} (inmemory or redis)"),
            ));
        }
    };
    let purge = get(&["maintenance", "uploadpurging"]);
    let defaults = UploadPurging::default();
    let upload_purging = UploadPurging {
        enabled: bool_at(
            purge.and_then(|p| p.get("enabled")),
            "storage.maintenance.uploadpurging.enabled",
            true,
        )?,
        age: duration_at(
            purge.and_then(|p| p.get("age")),
            "storage.maintenance.uploadpurging.age",
            defaults.age,
        )?,
        interval: duration_at(
            purge.and_then(|p| p.get("interval")),
            "storage.maintenance.uploadpurging.interval",
            defaults.interval,
        )?,
        dry_run: bool_at(
            purge.and_then(|p| p.get("dryrun")),
            "storage.maintenance.uploadpurging.dryrun",
            false,
        )?,
    };
    if upload_purging.enabled && upload_purging.interval.is_zero() {
        return Err(invalid(
            "storage.maintenance.uploadpurging.interval",
            "must be greater than zero",
        ));
    }
    Ok(Storage {
        driver,
        delete_enabled: bool_at(get(&["delete", "enabled"]), "storage.delete.enabled", false)?,
        descriptor_cache,
        upload_purging,
        read_only: bool_at(
            get(&["maintenance", "readonly", "enabled"]),
            "storage.maintenance.readonly.enabled",
            false,
        )?,
    })
}

#[cfg(test)]
mod tests;
