//! What the offline subcommands (`check-storage`, `garbage-collect`) share: opening the
//! storage a configuration names while no registry runs on it (an existing filesystem
//! root only: a directory a typo just created would look like an empty registry), and a
//! runtime to walk it on. The configuration's serving switches (`storage.delete.enabled`,
//! `storage.maintenance.readonly`) are not read: they govern clients, and these commands
//! are the operator's. With the descriptor cache in Redis, what a command removes from
//! storage it removes from Redis too (it reads nothing there: see [`RemovalsOnly`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName};
use berth_driver::{FilesystemDriver, InMemoryDriver, StorageDriver};
use berth_redis::RedisDescriptors;
use berth_storage::{Options, SharedDescriptors, SharedVersions, StorageRegistry};

use crate::config::{Config, Driver};

/// Why an offline command could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The configured filesystem root is not a directory.
    #[error("storage root {0} does not exist or is not a directory")]
    MissingRoot(PathBuf),
    /// The command needs storage that outlives a registry process.
    #[error(
        "the configuration names storage.inmemory, which holds nothing once its registry \
         stops: {0} works on filesystem storage"
    )]
    InMemory(&'static str),
    /// The storage driver could not be set up.
    #[error("storage driver: {0}")]
    Driver(berth_driver::DriverError),
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Storage failed during the walk or a removal.
    #[error("{0}")]
    Storage(#[from] berth_core::Error),
    /// The Redis descriptor cache could not be set up.
    #[error("redis: {0}")]
    Redis(#[from] berth_redis::RedisError),
    /// The report could not be written (a closed pipe).
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
}

/// The storage a configuration names, opened for one offline command.
pub struct Offline {
    /// The stores over the driver: deletes allowed, no descriptor cache (every answer
    /// comes from storage; Redis, when configured, only hears of removals).
    pub registry: StorageRegistry,
    /// Prepended to every driver path printed (the filesystem root; empty in memory).
    pub root: String,
    runtime: tokio::runtime::Runtime,
    redis: Option<(Arc<RedisDescriptors>, Duration)>,
}

impl Offline {
    /// Opens the storage of `config` for the command named `command`; in-memory storage
    /// is opened empty when `memory_ok`, else refused.
    pub fn open(
        config: &Config,
        command: &'static str,
        memory_ok: bool,
    ) -> Result<Offline, OfflineError> {
        let (driver, root): (Arc<dyn StorageDriver>, String) = match &config.storage.driver {
            Driver::Filesystem { root, fsync } => {
                if !root.is_dir() {
                    return Err(OfflineError::MissingRoot(root.clone()));
                }
                let shown = root.display().to_string().trim_end_matches('/').to_owned();
                let driver = FilesystemDriver::new(root.clone()).with_fsync(*fsync);
                (Arc::new(driver), shown)
            }
            Driver::InMemory if memory_ok => (Arc::new(InMemoryDriver::new()), String::new()),
            Driver::InMemory => return Err(OfflineError::InMemory(command)),
            Driver::S3(opts) => {
                let driver = berth_driver::S3Driver::new(opts).map_err(OfflineError::Driver)?;
                let root = opts.root_directory.trim_matches('/');
                (Arc::new(driver), format!("s3://{}/{root}", opts.bucket))
            }
        };
        // Deletes are how repairs and collections work, whatever clients are allowed.
        let options = Options {
            delete_enabled: true,
            descriptor_cache: None,
            ..Options::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OfflineError::Runtime)?;
        let mut options = options;
        let redis = match (&config.redis, config.storage.redis_descriptors) {
            (Some(r), true) => {
                let cache = runtime.block_on(async { RedisDescriptors::start(r) })?;
                let patience = r.dial_timeout + r.write_timeout;
                runtime.block_on(settle(&cache, patience, false));
                let removals = Arc::new(RemovalsOnly(cache.clone()));
                options.shared_descriptor_cache = Some(removals.clone());
                options.shared_versions = Some(removals);
                // What a command changes in the listings (a tag `check-storage`
                // removes, a repository whose last layer link a collection removes)
                // reaches the shared indexes like any node's change.
                options.shared_index = Some(cache.index());
                Some((cache, patience))
            }
            _ => None,
        };
        Ok(Offline {
            registry: StorageRegistry::new(driver, options),
            root,
            runtime,
            redis,
        })
    }

    /// Runs a walk to its end (and, with Redis, until its removals reached Redis or
    /// could not).
    pub fn block_on<F: Future>(&self, walk: F) -> F::Output {
        let out = self.runtime.block_on(walk);
        if let Some((cache, patience)) = &self.redis {
            self.runtime.block_on(settle(cache, *patience, true));
        }
        out
    }
}

/// Waits up to `patience` for Redis to be connected with nothing queued; after a walk
/// (`done`), warns when removals are left, or the wipe owed for those a full queue gave
/// up was not done.
async fn settle(cache: &RedisDescriptors, patience: Duration, done: bool) {
    let deadline = Instant::now() + patience;
    while !(cache.is_up() && cache.pending_removals() == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = cache.pending_removals();
    if done && (left > 0 || cache.wipe_owed()) {
        tracing::warn!(
            left,
            wipe_owed = cache.wipe_owed(),
            "redis: cache entries of removed blobs could not be removed from Redis; nodes \
             may answer for them until they are (remove the keys named in docs/DESIGN.md, \
             Redis, or restart Redis)"
        );
    } else if !done && !cache.is_up() {
        tracing::warn!("redis is unreachable: removals are queued until it answers");
    }
}

/// The shared cache as an offline command uses it: removals go through, lookups and
/// fills do not (every answer comes from storage, as without a cache).
#[derive(Debug)]
struct RemovalsOnly(Arc<RedisDescriptors>);

#[async_trait]
impl SharedDescriptors for RemovalsOnly {
    async fn linked(&self, _: &RepositoryName, _: &Digest) -> Option<u64> {
        None
    }
    async fn global(&self, _: &Digest) -> Option<u64> {
        None
    }
    async fn set_linked(&self, _: &RepositoryName, _: &Digest, _: u64) {}
    async fn set_link(&self, _: &RepositoryName, _: &Digest, _: u64) {}
    async fn set_global(&self, _: &Digest, _: u64) {}
    async fn forget_global(&self, digest: &Digest) {
        self.0.forget_global(digest).await;
    }
    async fn unlink(&self, repo: &RepositoryName, digest: &Digest) {
        self.0.unlink(repo, digest).await;
    }
}

/// Tag changes are announced; no version is read (nothing is cached).
#[async_trait]
impl SharedVersions for RemovalsOnly {
    async fn version(&self, _: &RepositoryName) -> Option<u64> {
        None
    }
    async fn bump(&self, repo: &RepositoryName) {
        self.0.bump(repo).await;
    }
}
