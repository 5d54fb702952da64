//! The cache size limit (`berth.proxy.cache.maxsize`): one background task per process
//! keeps the blobs of cache repositories under it, evicting the least recently used.
//!
//! Recency is held in memory (`lru`) and rebuilt at start-up from storage, each blob
//! aged by its data's modification time (when it was cached): no write per pull, nothing
//! beside distribution's layout, and after a restart the first evictions go by age of
//! arrival until pulls have said again what is in use. The rebuild runs in the task, so
//! start-up does not wait for it; evictions wait for it.
//!
//! Removal is storage's (`StorageRegistry::evict`): under the blob's lock and in a fence
//! phase, so a pull either holds the blob (its pin, or its touch, came first) or finds it
//! gone and fetches it again; a blob some hosted repository links is never removed. Blobs
//! still downloading are in their spool file, not in storage, and are not accounted
//! until committed. Manifests are not evicted (they are small, and a cached manifest
//! whose blobs went makes its next pull fetch them again).

use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use berth_core::{Digest, RepositoryName};
use berth_metrics::Counter;
use berth_storage::{Evicted, StorageRegistry};
use tokio::sync::Notify;

use crate::lru::{Lru, Pin};

/// Pause after a failed eviction before the next attempt.
const RETRY: Duration = Duration::from_secs(5);

/// Which repositories are the cache's.
pub(crate) type IsCache = dyn Fn(&RepositoryName) -> bool + Send + Sync;

/// The limit and the task enforcing it.
pub(crate) struct Eviction {
    limit: u64,
    lru: Arc<Lru>,
    storage: Arc<StorageRegistry>,
    is_cache: Arc<IsCache>,
    wake: Notify,
    started: Once,
    /// Blobs evicted.
    pub(crate) evicted: Counter,
    /// Their bytes.
    pub(crate) evicted_bytes: Counter,
}

impl Eviction {
    pub(crate) fn new(limit: u64, storage: Arc<StorageRegistry>, is_cache: Arc<IsCache>) -> Self {
        Eviction {
            limit,
            lru: Arc::default(),
            storage,
            is_cache,
            wake: Notify::new(),
            started: Once::new(),
            evicted: Counter::default(),
            evicted_bytes: Counter::default(),
        }
    }

    /// Starts the task, once; needs a Tokio runtime.
    pub(crate) fn start(self: &Arc<Self>) {
        self.started.call_once(|| {
            tokio::spawn(self.clone().run());
        });
    }

    /// The limit in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes of blobs the cache holds (as far as known: the start-up rebuild adds to it).
    pub(crate) fn size(&self) -> u64 {
        self.lru.total()
    }

    /// A blob of the cache was read, or committed, now.
    pub(crate) fn used(self: &Arc<Self>, digest: &Digest, size: u64) {
        self.start();
        self.lru.used(digest, size);
        if self.lru.total() > self.limit {
            self.wake.notify_one();
        }
    }

    /// Holds `digest` for a reader streaming it from storage.
    pub(crate) fn pin(&self, digest: &Digest) -> Pin {
        self.lru.pin(digest)
    }

    async fn run(self: Arc<Self>) {
        match self.storage.cached_blobs(&*self.is_cache).await {
            Ok(blobs) => {
                let n = blobs.len();
                for b in blobs {
                    let at = b.modified.unwrap_or(SystemTime::UNIX_EPOCH);
                    self.lru.found(&b.digest, b.size, at);
                }
                tracing::info!(
                    blobs = n,
                    bytes = self.lru.total(),
                    limit = self.limit,
                    "proxy cache size rebuilt from storage"
                );
            }
            Err(e) => tracing::warn!(
                "proxy cache: listing cached blobs failed, only blobs pulled from now on \
                 are accounted: {e}"
            ),
        }
        loop {
            if !self.evict_over().await {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            self.wake.notified().await;
        }
    }

    /// Evicts until under the limit, or until a round frees nothing (everything left is
    /// in use: the next commit tries again). `false` when storage failed.
    async fn evict_over(&self) -> bool {
        loop {
            let total = self.lru.total();
            if total <= self.limit {
                return true;
            }
            let candidates = self.lru.oldest(total - self.limit);
            if candidates.is_empty() {
                return true;
            }
            let lru = &self.lru;
            let busy = |d: &Digest| lru.busy(d);
            let results = match self
                .storage
                .evict(&candidates, &*self.is_cache, &busy)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("proxy cache eviction failed: {e}");
                    return false;
                }
            };
            let mut progress = false;
            for (digest, outcome) in results {
                match outcome {
                    Evicted::Removed(bytes) => {
                        tracing::debug!(%digest, bytes, "proxy cache evicted a blob");
                        self.evicted.inc();
                        self.evicted_bytes.add(bytes);
                        lru.forget(&digest);
                        progress = true;
                    }
                    Evicted::Hosted | Evicted::Absent => {
                        lru.forget(&digest);
                        progress = true;
                    }
                    Evicted::InUse => lru.bump(&digest),
                }
            }
            if !progress {
                return true;
            }
        }
    }
}
