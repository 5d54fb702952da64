//! Tags: `_manifests/tags/<tag>/current/link` names the manifest, beside an index of
//! every digest the tag has pointed at, as distribution keeps it; a cache of tag targets;
//! and each repository's ordered tag listing. A tag's link, its cache entry and its
//! listing entry change under the tag's lock, and a reader fills the cache under the same
//! lock, so the cache never holds a target storage no longer has. Nodes sharing storage
//! share a version per repository (`cache::Versions`): a cached target is stamped with
//! the version read before storage was, and trusted only while the version is unchanged,
//! so a tag moved or deleted on another node is seen at once. Writers also take the
//! tag's lease in the fleet (`lease`): a move, a delete and a manifest delete's
//! check-then-remove of one tag run one at a time across nodes. In a fleet the tag
//! listings are the shared indexes (`index`) rather than this node's, updated under
//! the same lock and lease.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use berth_core::{Digest, Error, Page, RepositoryName, Tag};
use quick_cache::sync::Cache;

use crate::access::{Access, DriverResult};
use crate::cache::{Lookups, Versions};
use crate::index::{IndexName, SharedIndex};
use crate::layout::StoragePath;
use crate::lease::{Fleet, Locks};
use crate::listing::{Key, Listing, page_of};
use crate::walk::WINDOWS;

/// Tag targets kept.
const TARGETS: usize = 100_000;

/// A tag's key.
type TagKey = (RepositoryName, Tag);

/// Tags over the driver.
pub(crate) struct TagStore {
    access: Access,
    /// Targets, each with the repository version it was read at (always 0 without
    /// shared versions).
    targets: Cache<TagKey, (Digest, u64)>,
    versions: Versions,
    locks: Locks<TagKey>,
    listings: TagListings,
    /// Lookups of tag targets.
    pub(crate) lookups: Lookups,
}

/// Where the tag listings live.
enum TagListings {
    /// This process's, one per repository, each loaded on first use.
    Local(Mutex<HashMap<RepositoryName, Arc<Listing<false>>>>),
    /// The indexes the nodes of a fleet share.
    Shared(Arc<dyn SharedIndex>),
}

impl TagStore {
    pub(crate) fn new(
        access: Access,
        versions: Versions,
        fleet: Fleet,
        shared: Option<Arc<dyn SharedIndex>>,
    ) -> Self {
        TagStore {
            access,
            targets: Cache::new(TARGETS),
            versions,
            locks: Locks::new("tag", fleet),
            listings: match shared {
                Some(index) => TagListings::Shared(index),
                None => TagListings::Local(Mutex::new(HashMap::new())),
            },
            lookups: Lookups::default(),
        }
    }

    /// The digest a tag names; `None` when the tag does not exist.
    pub(crate) async fn target(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<Digest>, Error> {
        let key = (repo.clone(), tag.clone());
        let version = self.versions.now(repo).await;
        let cached = |targets: &Cache<TagKey, (Digest, u64)>| {
            let (d, stamp) = targets.get(&key)?;
            (Some(stamp) == version).then_some(d)
        };
        if let Some(d) = self.lookups.record(cached(&self.targets)) {
            return Ok(Some(d));
        }
        // This node's lock only: the entry's version stamp keeps other nodes' changes out.
        let _held = self.locks.local(key.clone()).await;
        if let Some(d) = cached(&self.targets) {
            return Ok(Some(d));
        }
        let found = self
            .access
            .read_link(StoragePath::TagCurrentLink(repo, tag))
            .await?;
        // An entry stamped with an older version is never trusted, so none is removed.
        if let (Some(d), Some(version)) = (&found, version) {
            self.targets.insert(key, (d.clone(), version));
        }
        Ok(found)
    }

    /// Tells the other nodes that a tag of `repo` changed (after storage did), and
    /// forgets this node's entry when they share versions: the next read stamps it anew.
    async fn changed(&self, repo: &RepositoryName, key: &TagKey, digest: Option<&Digest>) {
        match digest {
            Some(d) if !self.versions.is_shared() => {
                self.targets.insert(key.clone(), (d.clone(), 0))
            }
            _ => {
                self.versions.bump(repo).await;
                self.targets.remove(key);
            }
        }
    }

    /// Points `tag` at `digest`, whose revision link must already be on storage. The
    /// `current` link goes first and the index entry after it: a tag directory is only
    /// ever on storage with its `current` link, so no crash leaves a tag that a
    /// registry lists (distribution lists every tag directory) but cannot serve. A tag
    /// this call was creating is removed again when a write fails, so a refused write
    /// leaves no tag behind.
    pub(crate) async fn set(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), Error> {
        let key = (repo.clone(), tag.clone());
        let _held = self.locks.lock(key.clone()).await?;
        let current = StoragePath::TagCurrentLink(repo, tag);
        let index = StoragePath::TagIndexLink(repo, tag, digest);
        // `current` is put in place first; its flush and the index entry's write then
        // run together, so the order costs no extra flush in a row.
        let written = match self.access.place_link(current, digest).await {
            Ok(()) => futures::try_join!(
                async {
                    self.access
                        .driver()
                        .flush(&current.path())
                        .await
                        .or_internal()
                },
                self.access.write_link(index, digest),
            )
            .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // `current` may have moved before the failure: other nodes must look again.
            self.changed(repo, &key, None).await;
            if matches!(
                self.access
                    .read_link(StoragePath::TagCurrentLink(repo, tag))
                    .await,
                Ok(None)
            ) {
                let _ = self.access.remove(StoragePath::TagDir(repo, tag)).await;
            }
            return Err(e);
        }
        self.changed(repo, &key, Some(digest)).await;
        self.listed(repo, tag, true).await;
        Ok(())
    }

    /// Removes a tag, but only while it still names `only_if` when given (a manifest
    /// delete must not remove a tag that has meanwhile moved on). `Ok(false)` when
    /// nothing was removed.
    pub(crate) async fn remove(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        only_if: Option<&Digest>,
    ) -> Result<bool, Error> {
        let key = (repo.clone(), tag.clone());
        let _held = self.locks.lock(key.clone()).await?;
        if let Some(expected) = only_if {
            let current = self
                .access
                .read_link(StoragePath::TagCurrentLink(repo, tag))
                .await?;
            if current.as_ref() != Some(expected) {
                return Ok(false);
            }
        }
        let existed = self.access.remove(StoragePath::TagDir(repo, tag)).await;
        self.changed(repo, &key, None).await;
        self.listed(repo, tag, false).await;
        existed
    }

    /// Removes the history entry naming `digest` from every tag of the repository
    /// (garbage collection deleting an untagged manifest, as distribution's does), each
    /// under its tag's lock; answers the entries removed. No `current` link changes.
    pub(crate) async fn remove_history(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Tag>, Error> {
        let mut removed = Vec::new();
        for tag in self.names(repo).await? {
            let _held = self.locks.lock((repo.clone(), tag.clone())).await?;
            if self
                .access
                .remove(StoragePath::TagIndexDir(repo, &tag, digest))
                .await?
            {
                removed.push(tag);
            }
        }
        Ok(removed)
    }

    /// Every valid tag name stored for the repository.
    pub(crate) async fn names(&self, repo: &RepositoryName) -> Result<Vec<Tag>, Error> {
        tag_names(&self.access, repo).await
    }

    /// Tags whose current link is `digest`.
    pub(crate) async fn pointing_at(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Tag>, Error> {
        let mut out = Vec::new();
        for tag in self.names(repo).await? {
            let current = self
                .access
                .read_link(StoragePath::TagCurrentLink(repo, &tag))
                .await?;
            if current.as_ref() == Some(digest) {
                out.push(tag);
            }
        }
        Ok(out)
    }

    /// Brings the repository's tag listing in line with storage, which now has the tag
    /// (`present`) or no longer has it; called under the tag's lock.
    async fn listed(&self, repo: &RepositoryName, tag: &Tag, present: bool) {
        match &self.listings {
            TagListings::Local(map) => {
                // Only listings in use are updated; the others load from storage.
                let listing = locked(map).get(repo).cloned();
                if let Some(listing) = listing {
                    if present {
                        listing.insert(tag.as_str()).await;
                    } else {
                        listing.remove(tag.as_str()).await;
                    }
                }
            }
            TagListings::Shared(index) if present => {
                index.add(IndexName::Tags(repo), tag.as_str()).await;
            }
            TagListings::Shared(index) => {
                index.remove(IndexName::Tags(repo), tag.as_str()).await;
            }
        }
    }

    /// One page read from the tags directory a window at a time, while no complete
    /// listing exists: a few listings of about n names each from `last` on, however
    /// many tags the repository has (on S3 a listing of a directory whole takes one
    /// request per 1,000 names).
    async fn storage_page(
        &self,
        repo: &RepositoryName,
        n: usize,
        last: Option<&str>,
    ) -> Result<Page, Error> {
        let want = n.saturating_add(1);
        let mut found: Vec<String> = Vec::new();
        let mut after: Option<String> = last.map(str::to_owned);
        while n > 0 && found.len() < want {
            let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let limit = WINDOWS.size(want - found.len());
            let w = self
                .access
                .dirs(StoragePath::TagsDir(repo), from, limit)
                .await?;
            found.extend(w.names.iter().filter(|t| Tag::parse(t).is_ok()).cloned());
            match w.names.last() {
                Some(name) if w.more => after = Some(name.clone()),
                _ => break,
            }
        }
        let more = found.len() > n;
        found.truncate(n);
        Ok(Page {
            entries: found,
            more,
        })
    }

    /// One page of the repository's tags; `None` when the repository does not exist
    /// (the caller decides what makes one, and says so with `exists`; a complete
    /// listing answers without asking).
    pub(crate) async fn page(
        &self,
        repo: &RepositoryName,
        exists: bool,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Option<Page>, Error> {
        let index = match &self.listings {
            TagListings::Local(map) => {
                let listing = {
                    let mut map = locked(map);
                    match map.get(repo) {
                        Some(l) => l.clone(),
                        // Created unloaded for a repository known to exist.
                        None if exists => map.entry(repo.clone()).or_default().clone(),
                        None => return Ok(None),
                    }
                };
                let Some(n) = n.filter(|_| !listing.is_loaded()) else {
                    let load = listed_names(&self.access, repo);
                    return listing.page(n, last, load).await.map(Some);
                };
                // A page while the listing loads in the background (changes meanwhile
                // are recorded and applied over what the load read).
                let (access, repo_owned) = (self.access.clone(), repo.clone());
                tokio::spawn(async move {
                    let load = listed_names(&access, &repo_owned);
                    if let Err(e) = listing.build(load).await {
                        tracing::warn!(repository = %repo_owned, "loading the tag listing: {e}");
                    }
                });
                return self.storage_page(repo, n, last).await.map(Some);
            }
            TagListings::Shared(index) => index,
        };
        let at = IndexName::Tags(repo);
        if let Some(page) = index.page(at, n, last).await {
            return Ok(Some(page));
        }
        if !exists {
            return Ok(None);
        }
        // Incomplete (or Redis unreachable): storage answers, and the index is rebuilt
        // from a listing of the tags directory when this node takes the lease (taken
        // before the listing is read, so a tag changed meanwhile reaches the index
        // after it). A page waits for neither.
        let lease = index.begin_rebuild(at).await;
        let Some(n) = n else {
            let names = listed_names(&self.access, repo).await?;
            if let Some(lease) = lease {
                index.complete_rebuild(at, &lease, names.clone()).await;
            }
            let set = names.into_iter().map(Key).collect();
            return Ok(Some(page_of::<false>(&set, None, last)));
        };
        if let Some(lease) = lease {
            let (access, index, repo_owned) = (self.access.clone(), index.clone(), repo.clone());
            tokio::spawn(async move {
                if let Ok(names) = listed_names(&access, &repo_owned).await {
                    index
                        .complete_rebuild(IndexName::Tags(&repo_owned), &lease, names)
                        .await;
                }
            });
        }
        self.storage_page(repo, n, last).await.map(Some)
    }
}

/// Every valid tag name stored for the repository.
async fn tag_names(access: &Access, repo: &RepositoryName) -> Result<Vec<Tag>, Error> {
    let names = access.children(StoragePath::TagsDir(repo)).await?;
    Ok(names.iter().filter_map(|t| Tag::parse(t).ok()).collect())
}

/// The names of the repository's tags directory: one listing of it, as reading every
/// tag's `current` link would make the first page O(tags). A directory without its
/// `current` link is what only a crash between creating `current/` and renaming the
/// link into it (or another registry) can leave; `check-storage` finds and removes it.
async fn listed_names(access: &Access, repo: &RepositoryName) -> Result<Vec<String>, Error> {
    let names = tag_names(access, repo).await?;
    Ok(names.into_iter().map(|t| t.as_str().to_owned()).collect())
}

/// The map of listings, whatever a panic elsewhere left in it.
fn locked(
    map: &Mutex<HashMap<RepositoryName, Arc<Listing<false>>>>,
) -> std::sync::MutexGuard<'_, HashMap<RepositoryName, Arc<Listing<false>>>> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}
