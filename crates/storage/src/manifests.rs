//! Manifests: the exact pushed bytes stored as a blob, a revision link per repository,
//! and the caches of the manifest read path (which revisions a repository has; bodies by
//! digest). A revision link and its cache entry change under the revision's lock, which
//! the use cases also hold across everything a manifest write or delete touches.

use berth_core::manifest::sniff_media_type;
use berth_core::{Digest, Error, RepositoryName, StoredManifest};
use berth_driver::Persist;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::access::Access;
use crate::layout::StoragePath;
use crate::locks::{KeyGuard, KeyedLocks};

/// Revision entries kept.
const REVISIONS: usize = 100_000;
/// Bytes of manifest bodies kept.
const BODY_BYTES: u64 = 64 * 1024 * 1024;

/// A revision's key.
type RevisionKey = (RepositoryName, Digest);

#[derive(Clone)]
struct BodyWeight;

impl Weighter<Digest, StoredManifest> for BodyWeight {
    fn weight(&self, _: &Digest, m: &StoredManifest) -> u64 {
        m.body.len() as u64 + 256
    }
}

/// Manifest bytes and revision links.
pub(crate) struct ManifestStore {
    access: Access,
    revisions: Cache<RevisionKey, ()>,
    bodies: Cache<Digest, StoredManifest, BodyWeight>,
    locks: KeyedLocks<RevisionKey>,
}

/// A held revision lock.
pub(crate) type RevisionGuard<'a> = KeyGuard<'a, RevisionKey>;

impl ManifestStore {
    pub(crate) fn new(access: Access) -> Self {
        ManifestStore {
            access,
            revisions: Cache::new(REVISIONS),
            bodies: Cache::with_weighter(REVISIONS, BODY_BYTES, BodyWeight),
            locks: KeyedLocks::default(),
        }
    }

    /// Takes the lock of one revision: whoever writes or deletes it holds this, and so
    /// does a reader filling the cache.
    pub(crate) async fn lock(&self, repo: &RepositoryName, digest: &Digest) -> RevisionGuard<'_> {
        self.locks.lock((repo.clone(), digest.clone())).await
    }

    /// Whether the repository has the revision (filling the cache under its lock).
    pub(crate) async fn has(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool, Error> {
        let key = (repo.clone(), digest.clone());
        if self.revisions.get(&key).is_some() {
            return Ok(true);
        }
        let _held = self.locks.lock(key.clone()).await;
        self.has_locked(key).await
    }

    /// [`has`](Self::has) without the cache's first look: the answer waits for whoever
    /// holds the revision's lock (garbage collection deleting it) to finish.
    pub(crate) async fn has_settled(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let key = (repo.clone(), digest.clone());
        let _held = self.locks.lock(key.clone()).await;
        self.has_locked(key).await
    }

    /// [`has`](Self::has) for a caller that holds the revision's lock.
    pub(crate) async fn has_locked(&self, key: RevisionKey) -> Result<bool, Error> {
        if self.revisions.get(&key).is_some() {
            return Ok(true);
        }
        let found = self
            .access
            .exists(StoragePath::RevisionLink(&key.0, &key.1))
            .await?;
        if found {
            self.revisions.insert(key, ());
        }
        Ok(found)
    }

    /// A revision of the repository, with its bytes; `None` when the repository does not
    /// have it. Bytes that do not hash to the digest (a damaged or half-written file) are
    /// refused with `ManifestUnknown`, never served.
    pub(crate) async fn get(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, Error> {
        if !self.has(repo, digest).await? {
            return Ok(None);
        }
        if let Some(m) = self.bodies.get(digest) {
            return Ok(Some(m));
        }
        let Some(body) = self.bytes(digest).await? else {
            return Ok(None);
        };
        if Digest::of(digest.algorithm(), &body) != *digest {
            tracing::warn!(%repo, %digest, bytes = body.len(), "stored manifest bytes do not match their digest");
            return Err(Error::ManifestUnknown(format!(
                "{repo}@{digest}: the stored bytes are damaged; push the manifest again"
            )));
        }
        let m = StoredManifest {
            media_type: sniff_media_type(&body),
            digest: digest.clone(),
            body,
        };
        self.bodies.insert(digest.clone(), m.clone());
        Ok(Some(m))
    }

    /// The stored bytes of a manifest, unchecked; `None` when absent.
    pub(crate) async fn bytes(&self, digest: &Digest) -> Result<Option<Bytes>, Error> {
        self.access.get(StoragePath::BlobData(digest)).await
    }

    /// Stores a manifest's bytes and links the revision; the caller holds its lock.
    /// The bytes are created in place: nothing reads them before a revision link to
    /// them exists, and that link is written after them.
    pub(crate) async fn put_locked(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        body: Bytes,
    ) -> Result<(), Error> {
        self.access
            .ensure(StoragePath::BlobData(digest), body, Persist::Durable)
            .await?;
        self.access
            .write_link(StoragePath::RevisionLink(repo, digest), digest)
            .await?;
        self.revisions.insert((repo.clone(), digest.clone()), ());
        Ok(())
    }

    /// Forgets a manifest body (garbage collection removed its bytes).
    pub(crate) fn forget_body(&self, digest: &Digest) {
        self.bodies.remove(digest);
    }

    /// Removes a revision link; the caller holds its lock.
    pub(crate) async fn remove_locked(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let removed = self
            .access
            .remove(StoragePath::RevisionDir(repo, digest))
            .await;
        self.revisions.remove(&(repo.clone(), digest.clone()));
        removed
    }
}
