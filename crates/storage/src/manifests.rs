//! Manifests: the exact pushed bytes stored as a blob, a revision link per repository,
//! and the caches of the manifest read path (which revisions a repository has; bodies by
//! digest). A revision link and its cache entry change under the revision's lock, which
//! the use cases also hold across everything a manifest write or delete touches. In a
//! fleet, revision entries are stamped with the repository's shared version (as tag
//! targets are), so a revision deleted on another node is not answered for here. The
//! writers' lock is the fleet's too (`lease`); readers filling the cache take this
//! node's only, the stamp doing the rest.

use berth_core::manifest::sniff_media_type;
use berth_core::{Digest, Error, RepositoryName, StoredManifest};
use berth_driver::Persist;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::access::Access;
use crate::cache::Versions;
use crate::layout::StoragePath;
use crate::lease::{Fleet, Held, Locks};

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
    /// Revisions known, each with the repository version it was seen at.
    revisions: Cache<RevisionKey, u64>,
    versions: Versions,
    bodies: Cache<Digest, StoredManifest, BodyWeight>,
    locks: Locks<RevisionKey>,
}

/// A held revision lock.
pub(crate) type RevisionGuard<'a> = Held<'a, RevisionKey>;

impl ManifestStore {
    pub(crate) fn new(access: Access, versions: Versions, fleet: Fleet) -> Self {
        ManifestStore {
            access,
            revisions: Cache::new(REVISIONS),
            versions,
            bodies: Cache::with_weighter(REVISIONS, BODY_BYTES, BodyWeight),
            locks: Locks::new("revision", fleet),
        }
    }

    /// Takes the lock of one revision, on this node and in the fleet: whoever writes or
    /// deletes it holds this (a reader filling the cache holds this node's part).
    pub(crate) async fn lock(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<RevisionGuard<'_>, Error> {
        self.locks.lock((repo.clone(), digest.clone())).await
    }

    /// Whether the repository has the revision (filling the cache under its lock).
    pub(crate) async fn has(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool, Error> {
        let key = (repo.clone(), digest.clone());
        let version = self.versions.now(repo).await;
        if self.known(&key, version) {
            return Ok(true);
        }
        let _held = self.locks.local(key.clone()).await;
        self.has_at(key, version).await
    }

    fn known(&self, key: &RevisionKey, version: Option<u64>) -> bool {
        version.is_some() && self.revisions.get(key) == version
    }

    /// [`has`](Self::has) without the cache's first look: the answer waits for whoever
    /// holds the revision's lock (garbage collection deleting it) to finish.
    pub(crate) async fn has_settled(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let key = (repo.clone(), digest.clone());
        let _held = self.locks.local(key.clone()).await;
        self.has_locked(key).await
    }

    /// [`has`](Self::has) for a caller that holds the revision's lock.
    pub(crate) async fn has_locked(&self, key: RevisionKey) -> Result<bool, Error> {
        let version = self.versions.now(&key.0).await;
        self.has_at(key, version).await
    }

    async fn has_at(&self, key: RevisionKey, version: Option<u64>) -> Result<bool, Error> {
        if self.known(&key, version) {
            return Ok(true);
        }
        let found = self
            .access
            .exists(StoragePath::RevisionLink(&key.0, &key.1))
            .await?;
        // An entry stamped with an older version is never trusted, so none is removed.
        if let (true, Some(version)) = (found, version) {
            self.revisions.insert(key, version);
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
        // In a fleet the version it would be stamped with is not known here: the next
        // read stamps it.
        if !self.versions.is_shared() {
            self.revisions.insert((repo.clone(), digest.clone()), 0);
        }
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
        self.versions.bump(repo).await;
        self.revisions.remove(&(repo.clone(), digest.clone()));
        removed
    }
}
