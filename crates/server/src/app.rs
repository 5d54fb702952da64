//! The composition root: the only place that knows every concrete type. Turns a
//! configuration into a storage registry and an HTTP router.

use std::sync::Arc;

use axum::Router;
use berth_driver::{FilesystemDriver, InMemoryDriver, ObservedDriver, S3Driver, StorageDriver};
use berth_http::{HealthGate, HttpMetrics};
use berth_metrics::Collect;
use berth_storage::{Options as StoreOptions, StorageRegistry};

use crate::config::{Config, ConfigError, Driver};

/// Temporary files older than this are what a crash left; younger ones may be another
/// process's writes in flight on the same root.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The storage root is unusable.
    #[error("storage root {path}: {source}")]
    Storage {
        /// The root directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The storage driver could not be set up (an S3 client from its settings).
    #[error("storage driver: {0}")]
    Driver(berth_driver::DriverError),
    /// The TLS settings could not be put in place.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The notification queue could not be opened.
    #[error(transparent)]
    Notify(#[from] berth_notify::NotifyError),
    /// The pull-through cache could not be set up.
    #[error(transparent)]
    Proxy(#[from] berth_proxy::SetupError),
    /// The Redis descriptor cache could not be set up (an unreachable Redis is not this:
    /// the cache then starts skipped and connects in the background).
    #[error("redis: {0}")]
    Redis(#[from] berth_redis::RedisError),
    /// The listen address could not be used.
    #[error("listening on {addr}: {message}")]
    Listen {
        /// The configured address.
        addr: String,
        /// Why.
        message: String,
    },
}

/// A wired registry, ready to serve.
pub struct App {
    /// The HTTP application.
    pub router: Router,
    /// The storage registry (for maintenance tasks).
    pub registry: Arc<StorageRegistry>,
    /// One line saying where data lives.
    pub storage_description: String,
    /// The driver the registry stores through (what the storage health check probes).
    pub driver: Arc<dyn StorageDriver>,
    /// Everything scraped at `http.debug.prometheus.path`; empty when metrics are off.
    pub metrics: Vec<Arc<dyn Collect>>,
    /// The flag the health checks raise; `None` without checks.
    pub health: Option<Arc<HealthGate>>,
    /// What online garbage collection records (scraped only when metrics and online
    /// collection are both on).
    pub gc_metrics: Arc<crate::online_gc::GcMetrics>,
}

/// `http.prefix` as the router wants it: leading slash, no trailing slash, "" for none.
fn normalize_prefix(p: Option<&str>) -> String {
    let p = p.unwrap_or("").trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

/// Which registry events say they come from: distribution's `hostname:port` (the
/// configured port) and a random id of this process.
fn event_source(config: &Config) -> berth_notify::Source {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty());
    let addr = match (hostname, config.http.addr.rsplit_once(':')) {
        (Some(h), Some((_, port))) => format!("{h}:{port}"),
        (Some(h), None) => h,
        (None, _) => config.http.addr.clone(),
    };
    berth_notify::Source {
        addr,
        instance_id: berth_notify::event::new_id(),
    }
}

/// This process's spool directory under `base`, after removing the ones other processes
/// left that nothing has written to for [`STALE_TEMPORARY`] (a crash, or a node gone).
fn process_spool(base: &std::path::Path) -> std::path::PathBuf {
    let fresh = |path: &std::path::Path| {
        let recent = |m: std::io::Result<std::fs::Metadata>| {
            m.and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < STALE_TEMPORARY)
        };
        recent(std::fs::metadata(path))
            || std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| recent(e.metadata()))
    };
    if let Ok(entries) = std::fs::read_dir(base) {
        for entry in entries.flatten() {
            let path = entry.path();
            if !fresh(&path) {
                // Best effort: a spool left behind only costs disk until the next start.
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
    base.join(format!(
        "{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// What the start-up line says about an S3 bucket (never the keys).
fn s3_description(o: &berth_driver::S3Options) -> String {
    let root = o.root_directory.trim_matches('/');
    let at = o.endpoint.as_deref().unwrap_or("AWS");
    format!(
        "s3 storage in bucket {} (region {}, {at}), root /{root}",
        o.bucket, o.region
    )
}

/// Builds the registry and router a configuration describes.
pub fn build(config: &Config) -> Result<App, StartError> {
    let mut spool = std::env::temp_dir().join(format!("berth-proxy-{}", std::process::id()));
    let (driver, storage_description): (Arc<dyn StorageDriver>, String) =
        match &config.storage.driver {
            Driver::Filesystem { root, fsync } => {
                std::fs::create_dir_all(root).map_err(|source| StartError::Storage {
                    path: root.display().to_string(),
                    source,
                })?;
                let root = std::fs::canonicalize(root).map_err(|source| StartError::Storage {
                    path: root.display().to_string(),
                    source,
                })?;
                let description = if *fsync {
                    format!("filesystem storage at {}", root.display())
                } else {
                    format!(
                        "filesystem storage at {} (fsync off: a machine crash may lose \
                         acknowledged pushes)",
                        root.display()
                    )
                };
                // Beside `docker/` (which distribution walks), on the same file system; one
                // directory per process, as nodes may share the root.
                spool = process_spool(&root.join(".berth-proxy"));
                let driver = FilesystemDriver::new(root).with_fsync(*fsync);
                match driver.sweep_temporaries(STALE_TEMPORARY) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "removed temporary files a crash left"),
                    Err(e) => tracing::warn!("sweeping temporary files: {e}"),
                }
                (Arc::new(driver), description)
            }
            Driver::InMemory => (
                Arc::new(InMemoryDriver::new()),
                "in-memory storage (not persisted)".to_owned(),
            ),
            Driver::S3(opts) => (
                Arc::new(S3Driver::new(opts).map_err(StartError::Driver)?),
                s3_description(opts),
            ),
        };
    let mut metrics: Vec<Arc<dyn Collect>> = Vec::new();
    let http_metrics = config
        .http
        .metrics_path
        .is_some()
        .then(|| Arc::new(HttpMetrics::new()));
    let driver: Arc<dyn StorageDriver> = if http_metrics.is_some() || crate::telemetry::active() {
        let mut observed = ObservedDriver::new(driver);
        if let Some(m) = &http_metrics {
            metrics.push(m.clone());
            observed = observed.with_metrics();
        }
        if crate::telemetry::active() {
            observed = observed.with_spans();
        }
        if let Some(timers) = observed.metrics() {
            metrics.push(timers);
        }
        Arc::new(observed)
    } else {
        driver
    };
    let redis_cache = match (&config.redis, config.storage.redis_descriptors) {
        (Some(redis), true) => {
            let cache = berth_redis::RedisDescriptors::start(redis)?;
            let locks = cache.locks(redis.lock_lease);
            if http_metrics.is_some() {
                metrics.push(cache.clone());
                metrics.push(locks.clone());
            }
            tracing::info!(
                addr = %redis.addr,
                lock_lease = ?redis.lock_lease,
                "blob descriptors are cached in redis, tag changes versioned there, writes \
                 locked there across nodes, and the catalog and tag listings kept there"
            );
            Some((cache, locks))
        }
        (Some(redis), false) => {
            tracing::info!(
                addr = %redis.addr,
                "redis is configured but not used: storage.cache.blobdescriptor is not redis"
            );
            None
        }
        _ => None,
    };
    let registry = Arc::new(StorageRegistry::new(
        driver.clone(),
        StoreOptions {
            delete_enabled: config.storage.delete_enabled,
            descriptor_cache: config.storage.descriptor_cache,
            shared_descriptor_cache: redis_cache
                .as_ref()
                .map(|(c, _)| c.clone() as Arc<dyn berth_storage::SharedDescriptors>),
            shared_versions: redis_cache
                .as_ref()
                .map(|(c, _)| c.clone() as Arc<dyn berth_storage::SharedVersions>),
            shared_index: redis_cache
                .as_ref()
                .map(|(c, _)| c.index() as Arc<dyn berth_storage::SharedIndex>),
            shared_locks: redis_cache.map(|(_, l)| l as Arc<dyn berth_storage::SharedLocks>),
            referrers_tag_schema: config.storage.referrers_tag_schema,
            // Only nodes sharing a secret can continue each other's sessions.
            upload_startedat: config.http.secret.is_some(),
            max_upload_sessions: config.limits.max_upload_sessions,
            redirect: config.storage.redirect,
        },
    ));
    let health = (!config.health.is_empty()).then(|| Arc::new(HealthGate::default()));
    let upload_secret = match config.http.secret.as_deref() {
        Some(secret) => berth_http::UploadSecret::configured(secret),
        None => {
            tracing::warn!(
                "http.secret is not set: upload URLs are signed with a random key of this \
                 process, so nodes sharing this storage behind a load balancer cannot continue \
                 each other's uploads (set the same http.secret, or REGISTRY_HTTP_SECRET, on \
                 every node)"
            );
            berth_http::UploadSecret::random()
        }
    };
    let notifier = match &config.notifications {
        Some(n) => {
            let notifier = berth_notify::Notifier::start(n.clone(), event_source(config))?;
            if http_metrics.is_some() {
                metrics.push(notifier.metrics());
            }
            Some(notifier)
        }
        None => None,
    };
    let options = berth_http::Options {
        prefix: normalize_prefix(config.http.prefix.as_deref()),
        host: config
            .http
            .host
            .as_deref()
            .map(|h| h.trim_end_matches('/').to_owned()),
        read_only: config.storage.read_only,
        extra_headers: config.http.headers.clone(),
        upload_secret,
        access: config.auth.as_ref().map(|a| a.controller.clone()),
        token_endpoint: config.auth.as_ref().and_then(|a| a.token_endpoint.clone()),
        rate_limit: config.limits.rate_limit,
        log_fields: crate::logging::static_fields(config).map(Into::into),
        metrics: http_metrics.clone(),
        health: health.clone(),
        continue_trace: crate::telemetry::active()
            .then_some(crate::telemetry::continue_trace as berth_http::ContinueTrace),
        tls: config.http.tls.is_some(),
        notifier,
    };
    let gc_metrics = Arc::new(crate::online_gc::GcMetrics::default());
    if http_metrics.is_some() {
        metrics.push(registry.clone());
        if config.storage.gc.enabled {
            metrics.push(gc_metrics.clone());
        }
    }
    let served: Arc<dyn berth_core::Registry> = if config.proxy.is_empty() {
        registry.clone()
    } else {
        for u in &config.proxy {
            let prefix = if u.prefix.is_empty() {
                "every repository"
            } else {
                &u.prefix
            };
            tracing::info!(upstream = %u.remote, "pull-through cache for {prefix}");
        }
        let proxy = Arc::new(berth_proxy::ProxyRegistry::new(
            registry.clone(),
            config.proxy.clone(),
            spool,
            config.proxy_max_size,
        )?);
        if http_metrics.is_some() {
            metrics.push(proxy.clone());
        }
        proxy
    };
    let router = berth_http::router(served, options);
    Ok(App {
        router,
        registry,
        storage_description,
        driver,
        metrics,
        health,
        gc_metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::{STALE_TEMPORARY, normalize_prefix, process_spool};

    #[test]
    fn spools_left_untouched_for_an_hour_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - STALE_TEMPORARY * 2;
        let age = |path: &std::path::Path| {
            std::fs::File::open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        // Another process's, written to a moment ago: kept.
        let busy = base.path().join("1-busy");
        std::fs::create_dir(&busy).unwrap();
        age(&busy);
        std::fs::write(busy.join("download"), b"x").unwrap();
        age(&busy);
        // A crashed process's: its directory and its file are old.
        let stale = base.path().join("2-stale");
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("download"), b"x").unwrap();
        age(&stale.join("download"));
        age(&stale);
        let mine = process_spool(base.path());
        assert!(busy.exists());
        assert!(!stale.exists());
        assert_eq!(mine.parent(), Some(base.path()));
        assert_ne!(process_spool(base.path()), mine, "one per process start");
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix(None), "");
        assert_eq!(normalize_prefix(Some("/")), "");
        assert_eq!(normalize_prefix(Some("/registry/")), "/registry");
        assert_eq!(normalize_prefix(Some("a/b")), "/a/b");
    }
}
