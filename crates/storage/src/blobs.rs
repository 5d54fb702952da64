//! Blobs: the global content store and the repository-scoped links that make a blob
//! visible in a repository (the linked blob store of distribution's design), with the
//! blob-descriptor cache in front. A link and its cache entry change together under the
//! link's lock, so the cache never claims a link that storage no longer has. A blob's
//! global cache entry is filled, and the blob removed by garbage collection, under the
//! blob's own lock; requests that rely on a blob touch it in the [`Fence`] first, so a
//! collection running beside them never removes what they were told exists. In a
//! fleet both locks are the fleet's too (`lease`): writers wait for the lease, and a
//! reader fills the shared cache only while no other node holds it, so a fill read from
//! storage before another node's removal cannot land in the cache after it.

use std::future::Future;
use std::time::{Duration, SystemTime};

use berth_core::{BlobContent, BlobRead, Digest, Error, RepositoryName};

use crate::access::{Access, DriverResult};
use crate::cache::{Descriptors, Lookups};
use crate::fence::{Fence, Touch};
use crate::layout::StoragePath;
use crate::lease::{Fleet, Locks};

/// Work left when a blob is in place that must end before its push is acknowledged,
/// run alongside the write of the blob's link (see [`BlobStore::link`]).
pub(crate) type Alongside<'p> = futures::future::BoxFuture<'p, Result<(), Error>>;

/// Global blobs and repository links.
pub(crate) struct BlobStore {
    access: Access,
    cache: Option<Descriptors>,
    links: Locks<(RepositoryName, Digest)>,
    /// Held while a blob's global cache entry is filled and while garbage collection
    /// removes it (taken after a link's lock, never before).
    blobs: Locks<Digest>,
    /// What a running garbage collection must keep.
    pub(crate) fence: Fence,
    /// Lookups of blobs in the global store, when the cache is on.
    pub(crate) global_lookups: Lookups,
    /// Lookups of blobs linked into a repository, when the cache is on.
    pub(crate) linked_lookups: Lookups,
}

/// What garbage collection's attempt to remove one blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Removed (or, in a dry run, would have been): this many bytes.
    Removed(u64),
    /// Its data is younger than the grace period.
    Young,
    /// A request relied on it while the collection ran.
    Touched,
    /// The caller's `busy` said a reader still needs it (a cache eviction).
    Busy,
    /// Already gone.
    Absent,
}

impl BlobStore {
    pub(crate) fn new(access: Access, cache: Option<Descriptors>, fleet: Fleet) -> Self {
        BlobStore {
            access,
            cache,
            links: Locks::new("link", fleet.clone()),
            blobs: Locks::new("blob", fleet),
            fence: Fence::default(),
            global_lookups: Lookups::default(),
            linked_lookups: Lookups::default(),
        }
    }

    /// Touches `digest` for a request that relies on it (see [`Fence`]). When a running
    /// collection is removing it, waits until the removal is done: afterwards storage
    /// and the global cache say it is gone (or back, if pushed again meanwhile).
    pub(crate) async fn hold(&self, digest: &Digest) -> Touch {
        let touch = self.fence.touch(digest);
        if touch == Touch::Doomed {
            drop(self.blobs.local(digest.clone()).await);
        }
        touch
    }

    /// Size of a blob in the global store; `None` when absent.
    pub(crate) async fn size(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        if let Some(c) = &self.cache
            && let Some(size) = self.global_lookups.record(c.global(digest).await)
        {
            return Ok(Some(size));
        }
        // Filled under the blob's lock: a collection cannot remove it between what
        // storage said and what the cache is told.
        let (_held, fill) = self.blobs.lock_to_fill(digest.clone()).await;
        if let Some(c) = &self.cache
            && let Some(size) = c.global(digest).await
        {
            return Ok(Some(size));
        }
        let size = self.access.size(StoragePath::BlobData(digest)).await?;
        if let (Some(size), Some(c), true) = (size, &self.cache, fill) {
            c.set_global(digest, size).await;
        }
        Ok(size)
    }

    /// Records the size of a blob just written to the global store.
    pub(crate) async fn note_global(&self, digest: &Digest, size: u64) {
        if let Some(c) = &self.cache {
            c.set_global(digest, size).await;
        }
    }

    /// Size of a blob visible in `repo`: linked as a layer, or (as registries commonly
    /// allow) a manifest revision of the repository. Touches the blob (a check a push
    /// may act on: docker skips uploading what a `HEAD` finds).
    pub(crate) async fn linked_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, Error> {
        let trusted = self.hold(digest).await == Touch::Kept;
        if trusted
            && let Some(c) = &self.cache
            && let Some(size) = self.linked_lookups.record(c.linked(repo, digest).await)
        {
            return Ok(Some(size));
        }
        // Filled under the link's lock: an unlink cannot slip between what storage said
        // and what the cache is told.
        let (_held, fill) = self
            .links
            .lock_to_fill((repo.clone(), digest.clone()))
            .await;
        if !trusted {
            // The blob was collected: its link entry may outlive it until the
            // collection removes the links.
            self.forget_locked(repo, digest).await;
        }
        if let Some(c) = &self.cache
            && let Some(size) = c.linked(repo, digest).await
        {
            return Ok(Some(size));
        }
        let linked = self
            .access
            .exists(StoragePath::LayerLink(repo, digest))
            .await?
            || self
                .access
                .exists(StoragePath::RevisionLink(repo, digest))
                .await?;
        if !linked {
            return Ok(None);
        }
        let size = self.size(digest).await?;
        if let (Some(size), Some(c), true) = (size, &self.cache, fill) {
            c.set_link(repo, digest, size).await;
        }
        Ok(size)
    }

    /// A presigned URL of a linked blob's data and its size, where the driver has such
    /// URLs (S3); `None` otherwise.
    pub(crate) async fn redirect(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(String, u64)>, Error> {
        let size = self
            .linked_size(repo, digest)
            .await?
            .ok_or_else(|| Error::BlobUnknown(digest.to_string()))?;
        let path = StoragePath::BlobData(digest).path();
        let url = self
            .access
            .driver()
            .redirect_url(&path)
            .await
            .or_internal()?;
        Ok(url.map(|u| (u, size)))
    }

    /// A linked blob's size and, when asked, its bytes: one lookup (a cache hit, or the
    /// link and the blob's size), then one open.
    pub(crate) async fn open(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        read: BlobRead,
    ) -> Result<BlobContent, Error> {
        let unknown = || Error::BlobUnknown(digest.to_string());
        let size = self.linked_size(repo, digest).await?.ok_or_else(unknown)?;
        let range = read.range.map(|r| r.resolve(size)).transpose()?;
        let stream = if read.body {
            let (offset, len) = match range {
                Some((first, last)) => (first, Some(last - first + 1)),
                None => (0, None),
            };
            let path = StoragePath::BlobData(digest).path();
            let opened = self.access.driver().reader(&path, offset, len).await;
            Some(opened.or_absent()?.ok_or_else(unknown)?)
        } else {
            None
        };
        Ok(BlobContent {
            size,
            range,
            stream,
        })
    }

    /// Links a blob of `size` bytes into `repo` once `first` (an upload publishing the
    /// blob) has put it in place: a link is never on storage before its blob, so no
    /// crash leaves a link naming nothing. `first` may answer what is left to finish
    /// before the push is acknowledged but may run alongside the link's write (the
    /// flush that makes the blob's move durable, the upload session's removal). The
    /// cache learns of the link once both are done.
    pub(crate) async fn link<'p>(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        first: impl Future<Output = Result<Option<Alongside<'p>>, Error>>,
    ) -> Result<(), Error> {
        let _held = self.links.lock((repo.clone(), digest.clone())).await?;
        let alongside = first.await?;
        let finish = async {
            match alongside {
                Some(work) => work.await,
                None => Ok(()),
            }
        };
        let link = self
            .access
            .write_link(StoragePath::LayerLink(repo, digest), digest);
        futures::try_join!(finish, link)?;
        if let Some(c) = &self.cache {
            c.set_linked(repo, digest, size).await;
        }
        Ok(())
    }

    /// Removes a layer link; `Ok(false)` when there was none. The link's directory goes
    /// with it, as distribution does, so no empty `<hex>` stays behind.
    pub(crate) async fn unlink(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let _held = self.links.lock((repo.clone(), digest.clone())).await?;
        self.unlink_held(repo, digest).await
    }

    /// [`unlink`](Self::unlink) once the link's lock is held.
    async fn unlink_held(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool, Error> {
        self.forget_locked(repo, digest).await;
        if !self
            .access
            .exists(StoragePath::LayerLink(repo, digest))
            .await?
        {
            return Ok(false);
        }
        let removed = self
            .access
            .remove(StoragePath::LayerDir(repo, digest))
            .await;
        self.forget_again(repo, digest).await;
        removed
    }

    /// Removes a blob from the global store (its whole `<hex>` directory) for garbage
    /// collection, under the blob's lock, unless its data is younger than `grace` (or
    /// of unknown age while `grace` is not zero) or a request touched it during this
    /// collection, or `busy` says a reader needs it (asked under the blob's lock, so a
    /// reader either registered before or touches after). With `dry_run` only decides.
    /// Links naming it are the caller's ([`unlink_collected`](Self::unlink_collected)).
    pub(crate) async fn sweep(
        &self,
        digest: &Digest,
        grace: Duration,
        dry_run: bool,
        busy: &(dyn Fn(&Digest) -> bool + Sync),
    ) -> Result<Sweep, Error> {
        let _held = self.blobs.lock(digest.clone()).await?;
        let path = StoragePath::BlobData(digest).path();
        let Some(info) = self.access.driver().stat(&path).await.or_absent()? else {
            return Ok(Sweep::Absent);
        };
        if !grace.is_zero() {
            let age = info
                .modified
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            if age.is_none_or(|age| age < grace) {
                return Ok(Sweep::Young);
            }
        }
        if busy(digest) {
            return Ok(Sweep::Busy);
        }
        if dry_run {
            return Ok(if self.fence.touched(digest) {
                Sweep::Touched
            } else {
                Sweep::Removed(info.size)
            });
        }
        if !self.fence.doom(digest) {
            return Ok(Sweep::Touched);
        }
        let removed = self.access.remove(StoragePath::BlobDir(digest)).await;
        if let Some(c) = &self.cache {
            c.forget_global(digest).await;
        }
        Ok(match removed? {
            true => Sweep::Removed(info.size),
            false => Sweep::Absent,
        })
    }

    /// Removes `repo`'s layer link to a blob garbage collection removed, unless the blob
    /// is back (pushed again since: a commit publishes and links under the same link
    /// lock, so it cannot slip in between); `Ok(false)` when nothing was removed.
    pub(crate) async fn unlink_collected(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let _held = self.links.lock((repo.clone(), digest.clone())).await?;
        if self.access.exists(StoragePath::BlobData(digest)).await? {
            return Ok(false);
        }
        self.unlink_held(repo, digest).await
    }

    /// Forgets what the cache knows of `digest` in `repo` (a manifest revision removed).
    pub(crate) async fn forget(&self, repo: &RepositoryName, digest: &Digest) -> Result<(), Error> {
        let _held = self.links.lock((repo.clone(), digest.clone())).await?;
        self.forget_locked(repo, digest).await;
        self.forget_again(repo, digest).await;
        Ok(())
    }

    async fn forget_locked(&self, repo: &RepositoryName, digest: &Digest) {
        if let Some(c) = &self.cache {
            c.unlink(repo, digest).await;
        }
    }

    /// Forgets a link once more after storage lost it, when other nodes share the cache:
    /// one of them may have filled it from storage read before the removal, if the
    /// fleet's lease could not be had (Redis unreachable for a moment). This node's own
    /// fills, and other nodes' while the lease works, are held off by the link's lock.
    async fn forget_again(&self, repo: &RepositoryName, digest: &Digest) {
        if let Some(c) = &self.cache
            && c.is_shared()
        {
            c.unlink(repo, digest).await;
        }
    }
}
