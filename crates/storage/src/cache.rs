//! The blob-descriptor cache: which blobs exist (globally) and which are linked into which
//! repository, with their sizes. An optimisation only: a miss goes to storage. Either this
//! process's bounded map or a cache shared by several nodes ([`SharedDescriptors`], Redis);
//! [`Descriptors`] picks between them with a `match`, so the in-memory path stays free of
//! boxing and dynamic dispatch.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName};
use berth_metrics::Counter;
use quick_cache::sync::Cache;

/// How often one cache answered and how often storage had to: counted at the first
/// look of a lookup only (the look repeated under a lock is the same lookup).
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    pub hits: Counter,
    pub misses: Counter,
}

impl Lookups {
    /// Counts what a look found and passes it on.
    pub fn record<T>(&self, found: Option<T>) -> Option<T> {
        match &found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }
}

/// Entries per map when the configuration does not say.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Global and repository-scoped blob sizes.
pub struct DescriptorCache {
    global: Cache<Digest, u64>,
    linked: Cache<(RepositoryName, Digest), u64>,
}

impl DescriptorCache {
    /// A cache holding at most `capacity` entries in each map.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DescriptorCache {
            global: Cache::new(capacity),
            linked: Cache::new(capacity),
        }
    }

    /// Size of a blob linked into `repo`, if known.
    pub fn linked(&self, repo: &RepositoryName, digest: &Digest) -> Option<u64> {
        self.linked.get(&(repo.clone(), digest.clone()))
    }

    /// Size of a blob in the global store, if known.
    pub fn global(&self, digest: &Digest) -> Option<u64> {
        self.global.get(digest)
    }

    /// Records that `digest` (of `size` bytes) is linked into `repo`.
    pub fn set_linked(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        self.global.insert(digest.clone(), size);
        self.linked.insert((repo.clone(), digest.clone()), size);
    }

    /// Records that `digest` (of `size` bytes) is linked into `repo`, leaving the global
    /// map alone: a fill through a link learns the size from the global map or storage,
    /// which is filled under the blob's own lock.
    pub fn set_link(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        self.linked.insert((repo.clone(), digest.clone()), size);
    }

    /// Records a blob in the global store.
    pub fn set_global(&self, digest: &Digest, size: u64) {
        self.global.insert(digest.clone(), size);
    }

    /// Forgets a blob of the global store (garbage collection removed it).
    pub fn forget_global(&self, digest: &Digest) {
        self.global.remove(digest);
    }

    /// Forgets a repository link.
    pub fn unlink(&self, repo: &RepositoryName, digest: &Digest) {
        self.linked.remove(&(repo.clone(), digest.clone()));
    }
}

/// A blob-descriptor cache several nodes share (Redis). Best effort throughout: a failed
/// lookup answers `None` (storage is read instead) and a failed update is the
/// implementation's to log, count and, for removals, retry; nothing here fails a request.
#[async_trait]
pub trait SharedDescriptors: Send + Sync + fmt::Debug {
    /// Size of a blob linked into `repo`, if known.
    async fn linked(&self, repo: &RepositoryName, digest: &Digest) -> Option<u64>;
    /// Size of a blob in the global store, if known.
    async fn global(&self, digest: &Digest) -> Option<u64>;
    /// Records that `digest` (of `size` bytes) is in the global store and linked into `repo`.
    async fn set_linked(&self, repo: &RepositoryName, digest: &Digest, size: u64);
    /// Records the link of `digest` into `repo` only (the global entry is filled apart).
    async fn set_link(&self, repo: &RepositoryName, digest: &Digest, size: u64);
    /// Records a blob of the global store.
    async fn set_global(&self, digest: &Digest, size: u64);
    /// Forgets a blob of the global store.
    async fn forget_global(&self, digest: &Digest);
    /// Forgets a repository link.
    async fn unlink(&self, repo: &RepositoryName, digest: &Digest);
}

/// A version per repository that several nodes share (Redis), moved on by every change
/// of a tag, so a node can tell that its cached tag targets may be out of date.
#[async_trait]
pub trait SharedVersions: Send + Sync + fmt::Debug {
    /// The repository's version now; `None` when it cannot be known (Redis unreachable):
    /// the caller must not trust what it cached.
    async fn version(&self, repo: &RepositoryName) -> Option<u64>;
    /// Moves the version on after a change reached storage. One that cannot be sent is
    /// the implementation's to retry before it answers [`version`](Self::version) again.
    async fn bump(&self, repo: &RepositoryName);
}

/// The versions a per-node cache stamps its entries with: a constant `0` on a single
/// node (nothing to ask, entries always current), the shared ones in a fleet.
#[derive(Clone, Default)]
pub(crate) struct Versions(Option<Arc<dyn SharedVersions>>);

impl Versions {
    pub fn new(shared: Option<Arc<dyn SharedVersions>>) -> Self {
        Versions(shared)
    }

    /// The repository's version, read before storage is (a change made after this read
    /// moves it on, so no entry is stamped newer than what it holds); `None`: unknown,
    /// trust nothing cached.
    pub async fn now(&self, repo: &RepositoryName) -> Option<u64> {
        match &self.0 {
            None => Some(0),
            Some(v) => v.version(repo).await,
        }
    }

    /// Announces a change of `repo` that reached storage.
    pub async fn bump(&self, repo: &RepositoryName) {
        if let Some(v) = &self.0 {
            v.bump(repo).await;
        }
    }

    /// Whether other nodes change what this node caches.
    pub fn is_shared(&self) -> bool {
        self.0.is_some()
    }
}

/// The cache `BlobStore` consults: this process's map, or a shared one.
pub(crate) enum Descriptors {
    /// This process's bounded map (the default).
    Local(DescriptorCache),
    /// A cache shared by the nodes of a fleet.
    Shared(Arc<dyn SharedDescriptors>),
}

impl Descriptors {
    pub async fn linked(&self, repo: &RepositoryName, digest: &Digest) -> Option<u64> {
        match self {
            Descriptors::Local(c) => c.linked(repo, digest),
            Descriptors::Shared(c) => c.linked(repo, digest).await,
        }
    }

    pub async fn global(&self, digest: &Digest) -> Option<u64> {
        match self {
            Descriptors::Local(c) => c.global(digest),
            Descriptors::Shared(c) => c.global(digest).await,
        }
    }

    pub async fn set_linked(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        match self {
            Descriptors::Local(c) => c.set_linked(repo, digest, size),
            Descriptors::Shared(c) => c.set_linked(repo, digest, size).await,
        }
    }

    pub async fn set_link(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        match self {
            Descriptors::Local(c) => c.set_link(repo, digest, size),
            Descriptors::Shared(c) => c.set_link(repo, digest, size).await,
        }
    }

    pub async fn set_global(&self, digest: &Digest, size: u64) {
        match self {
            Descriptors::Local(c) => c.set_global(digest, size),
            Descriptors::Shared(c) => c.set_global(digest, size).await,
        }
    }

    pub async fn forget_global(&self, digest: &Digest) {
        match self {
            Descriptors::Local(c) => c.forget_global(digest),
            Descriptors::Shared(c) => c.forget_global(digest).await,
        }
    }

    pub async fn unlink(&self, repo: &RepositoryName, digest: &Digest) {
        match self {
            Descriptors::Local(c) => c.unlink(repo, digest),
            Descriptors::Shared(c) => c.unlink(repo, digest).await,
        }
    }

    /// Whether other nodes read this cache: their fills can race this node's removals,
    /// so a removal is repeated after storage changed.
    pub fn is_shared(&self) -> bool {
        matches!(self, Descriptors::Shared(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::Algorithm;

    #[test]
    fn scoped_and_global() {
        let c = DescriptorCache::new(10);
        let a = RepositoryName::parse("a").unwrap();
        let b = RepositoryName::parse("b").unwrap();
        let d = Digest::of(Algorithm::Sha256, b"x");
        c.set_linked(&a, &d, 1);
        assert_eq!(c.linked(&a, &d), Some(1));
        assert_eq!(c.linked(&b, &d), None);
        assert_eq!(c.global(&d), Some(1));
        c.unlink(&a, &d);
        assert_eq!(c.linked(&a, &d), None);
        assert_eq!(c.global(&d), Some(1));
    }

    #[test]
    fn bounded() {
        let c = DescriptorCache::new(100);
        let r = RepositoryName::parse("r").unwrap();
        for i in 0..10_000u32 {
            c.set_linked(&r, &Digest::of(Algorithm::Sha256, &i.to_le_bytes()), 1);
        }
        let kept = (0..10_000u32)
            .filter(|i| {
                c.linked(&r, &Digest::of(Algorithm::Sha256, &i.to_le_bytes()))
                    .is_some()
            })
            .count();
        assert!(kept <= 200, "cache kept {kept} entries");
    }
}
