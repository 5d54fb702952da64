//! The catalog: repository names found by walking `repositories/`, in distribution's
//! order (path component by component, so `a/b` sorts before `a-b`). On one node an
//! ordered in-memory listing, built in the background from start-up and kept current by
//! this process's writes; in a fleet the shared index (`index`), kept current by every
//! node. Until the complete listing exists, each page is read with the bounded ordered
//! walk (`walk`), so no request waits for a walk of the whole tree.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Instant;

use berth_core::{Error, Page, RepositoryName};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::access::Access;
use crate::index::{IndexName, LEASE_RENEWAL, SharedIndex};
use crate::layout::StoragePath;
use crate::listing::Listing;
use crate::locks::KeyedLocks;

/// What makes a directory a repository in the catalog: linked blobs, as distribution
/// decides (a repository with only an upload in progress is not listed).
pub(crate) const CATALOG_MARKERS: &[&str] = &["_layers"];
/// Every directory that may hold registry data of a repository (for maintenance walks).
pub(crate) const ANY_DATA_MARKERS: &[&str] = &["_layers", "_manifests", "_uploads"];
/// Directories a whole-tree walk lists at once (cold caches and object stores answer
/// faster with a few requests in flight).
const WALK_CONCURRENCY: usize = 8;

/// Component-wise comparison of repository names.
pub(crate) fn catalog_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Every repository having one of `markers`, in no particular order: a walk of the
/// whole tree (the maintenance tasks).
pub(crate) async fn walk_all(
    access: &Access,
    markers: &[&str],
) -> Result<Vec<RepositoryName>, Error> {
    let names = walk_names(access, markers).await?;
    Ok(names
        .iter()
        .filter_map(|n| RepositoryName::parse(n).ok())
        .collect())
}

/// The names [`walk_all`] finds, as they were walked (the listings keep them as they
/// are, with no second copy of each).
async fn walk_names(access: &Access, markers: &[&str]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let list = |name: String| async move {
        let at = if name.is_empty() {
            StoragePath::Repositories
        } else {
            StoragePath::RepositoryTree(&name)
        };
        let children = access.children(at).await;
        (name, children)
    };
    let mut pending = vec![String::new()];
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < WALK_CONCURRENCY
            && let Some(name) = pending.pop()
        {
            running.push(list(name));
        }
        let Some((name, children)) = running.next().await else {
            break;
        };
        let children = children?;
        let listed = !name.is_empty()
            && children.iter().any(|c| markers.contains(&c.as_str()))
            && RepositoryName::parse(&name).is_ok();
        for child in children.into_iter().filter(|c| !c.starts_with('_')) {
            pending.push(if name.is_empty() {
                child
            } else {
                format!("{name}/{child}")
            });
        }
        if listed {
            out.push(name);
        }
    }
    Ok(out)
}

/// Where the complete catalog lives.
#[derive(Clone)]
enum Listings {
    /// This process's ordered set (one node).
    Local(Arc<Listing<true>>),
    /// The index the nodes of a fleet share.
    Shared(Arc<dyn SharedIndex>),
}

/// Repository names.
pub(crate) struct Catalog {
    access: Access,
    listings: Listings,
    /// Whether this node is building the listing (or trying to take the shared index's
    /// rebuild): one attempt at a time.
    building: Arc<AtomicBool>,
    /// Serialises a repository's entering the catalog with its leaving it.
    locks: KeyedLocks<RepositoryName>,
}

impl Catalog {
    pub(crate) fn new(access: Access, shared: Option<Arc<dyn SharedIndex>>) -> Self {
        Catalog {
            access,
            listings: match shared {
                Some(index) => Listings::Shared(index),
                None => Listings::Local(Arc::default()),
            },
            building: Arc::default(),
            locks: KeyedLocks::default(),
        }
    }

    /// Every repository having one of `markers` (see [`walk_all`]).
    pub(crate) async fn walk(&self, markers: &[&str]) -> Result<Vec<RepositoryName>, Error> {
        walk_all(&self.access, markers).await
    }

    /// Starts building the complete listing in the background, unless it is complete or
    /// being built (in a fleet: rebuilds the shared index if it is missing and no other
    /// node is rebuilding it). Returns at once; needs a tokio runtime (without one it
    /// does nothing).
    pub(crate) fn start_build(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.building.swap(true, AtomicOrdering::AcqRel) {
            return;
        }
        let (access, listings, building) = (
            self.access.clone(),
            self.listings.clone(),
            self.building.clone(),
        );
        runtime.spawn(async move {
            match listings {
                Listings::Local(listing) => build_local(&access, &listing).await,
                Listings::Shared(index) => rebuild_shared(&access, index.as_ref()).await,
            }
            building.store(false, AtomicOrdering::Release);
        });
    }

    /// One page of names after `last`, at most `n`: from the complete listing, or read
    /// from storage by the bounded ordered walk while there is none.
    pub(crate) async fn page(&self, n: usize, last: Option<&str>) -> Result<Page, Error> {
        let complete = match &self.listings {
            Listings::Local(listing) => listing.page_if_loaded(Some(n), last).await,
            Listings::Shared(index) => index.page(IndexName::Catalog, Some(n), last).await,
        };
        if let Some(page) = complete {
            return Ok(page);
        }
        self.start_build();
        crate::walk::page(&self.access, n, last).await
    }

    /// Whether pages come from a complete listing in this process's memory (never with
    /// the shared index, whose completeness only Redis knows).
    pub(crate) fn is_built(&self) -> bool {
        match &self.listings {
            Listings::Local(listing) => listing.is_loaded(),
            Listings::Shared(_) => false,
        }
    }

    /// Records a repository that now has a linked blob.
    pub(crate) async fn note(&self, repo: &RepositoryName) {
        let _held = self.locks.lock(repo.clone()).await;
        match &self.listings {
            Listings::Local(listing) => listing.insert(repo.as_str()).await,
            Listings::Shared(index) => {
                // A name new to the index may arrive after another node emptied the
                // repository and took the name out (this add was delayed past that
                // removal): storage is asked once more, as a removal asks it. Unsure
                // (a failed check), the name stays.
                if index.add(IndexName::Catalog, repo.as_str()).await {
                    let _ = self.drop_if_empty(index.as_ref(), repo).await;
                }
            }
        }
    }

    /// Drops a repository from the catalog if it no longer has linked blobs (after a
    /// layer link was removed: on object storage, and in memory, a directory goes with
    /// its last file, so the walk would no longer list it).
    pub(crate) async fn recheck(&self, repo: &RepositoryName) -> Result<(), Error> {
        let _held = self.locks.lock(repo.clone()).await;
        match &self.listings {
            // One process: `note` takes the same lock, so a link written meanwhile is
            // added after this removal.
            Listings::Local(listing) => {
                if !self.access.exists(StoragePath::LayersDir(repo)).await? {
                    listing.remove(repo.as_str()).await;
                }
                Ok(())
            }
            Listings::Shared(index) => self.drop_if_empty(index.as_ref(), repo).await,
        }
    }

    /// Takes a repository without linked blobs out of the shared index.
    async fn drop_if_empty(
        &self,
        index: &dyn SharedIndex,
        repo: &RepositoryName,
    ) -> Result<(), Error> {
        let layers = StoragePath::LayersDir(repo);
        if self.access.exists(layers).await? {
            return Ok(());
        }
        index.remove(IndexName::Catalog, repo.as_str()).await;
        // Another node's lock does not exclude this one: it may have linked a first
        // blob after the check above and added the name before the removal. Its
        // storage write precedes its add. If the write also precedes the check below,
        // that check sees it and the name goes back; if not, its add follows that
        // check, and so this removal, and the name stays. Unsure (a failed check), the
        // name goes back too: a listed repository without blobs, as when the first
        // check fails, rather than one missing.
        let again = self.access.exists(layers).await;
        if !matches!(again, Ok(false)) {
            index.add(IndexName::Catalog, repo.as_str()).await;
        }
        again.map(|_| ())
    }
}

/// The names of every repository in the catalog, walked.
async fn catalog_names(access: &Access) -> Result<Vec<String>, Error> {
    walk_names(access, CATALOG_MARKERS).await
}

/// Builds this node's listing (see `Listing::build`).
async fn build_local(access: &Access, listing: &Listing<true>) {
    let started = Instant::now();
    let mut count = 0;
    let walk = async {
        let names = catalog_names(access).await?;
        count = names.len();
        Ok(names)
    };
    match listing.build(walk).await {
        Ok(true) => tracing::info!(
            repositories = count,
            seconds = started.elapsed().as_secs_f64(),
            "catalog listing built; pages now come from memory"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            "building the catalog listing: {e}; pages are read from storage until a \
             later page starts the build again"
        ),
    }
}

/// Rebuilds the shared index when it is incomplete and this node takes the lease; the
/// lease is renewed while the walk runs, and the walk abandoned if it is lost.
async fn rebuild_shared(access: &Access, index: &dyn SharedIndex) {
    let Some(lease) = index.begin_rebuild(IndexName::Catalog).await else {
        return;
    };
    let started = Instant::now();
    tracing::info!("rebuilding the shared catalog index from storage");
    let renew = async {
        loop {
            tokio::time::sleep(LEASE_RENEWAL).await;
            if !index.renew(IndexName::Catalog, &lease).await {
                return;
            }
        }
    };
    let names = tokio::select! {
        names = catalog_names(access) => names,
        () = renew => {
            tracing::warn!("the shared catalog index's rebuild lost its lease; another node or a later page rebuilds it");
            return;
        }
    };
    let names = match names {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(
                "rebuilding the shared catalog index: {e}; pages are read from storage until a later page rebuilds it"
            );
            return;
        }
    };
    let count = names.len();
    if index
        .complete_rebuild(IndexName::Catalog, &lease, names)
        .await
    {
        tracing::info!(
            repositories = count,
            seconds = started.elapsed().as_secs_f64(),
            "shared catalog index rebuilt"
        );
    } else {
        tracing::warn!(
            "the shared catalog index's rebuild could not be completed; a later page rebuilds it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::catalog_order;
    use std::cmp::Ordering;

    #[test]
    fn component_order() {
        assert_eq!(catalog_order("a/b", "a-b"), Ordering::Less);
        assert_eq!(catalog_order("a", "a/b"), Ordering::Less);
        assert_eq!(catalog_order("b", "a/z"), Ordering::Greater);
    }
}
