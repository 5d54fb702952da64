//! Evicting what a pull-through cache keeps: a blob leaves storage the way garbage
//! collection removes one (its `<hex>` directory under the blob's lock, then the `_layers`
//! links naming it, with the caches told), inside a fence phase of its own, so requests
//! of this process that rely on it (a pull, a mount into a hosted repository, a push of
//! the same bytes) either keep it or find it gone and ask storage again. Which
//! repositories are caches is the caller's to say; a blob linked into any other
//! repository, or that is a manifest anywhere, is not the cache's and stays.

use std::collections::HashMap;
use std::time::SystemTime;

use berth_core::{Digest, Error, RepositoryName};

use crate::StorageRegistry;
use crate::access::DriverResult;
use crate::blobs::Sweep;
use crate::catalog::ANY_DATA_MARKERS;
use crate::layout::StoragePath;

/// A blob linked into a cache repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When its data was last written (when it was cached), where the driver knows it.
    pub modified: Option<SystemTime>,
}

/// What an eviction did with one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    /// Removed with its links: this many bytes freed.
    Removed(u64),
    /// Linked into a repository that is not a cache, or a manifest: never evicted.
    Hosted,
    /// A request relied on it meanwhile, or a reader still streams it: kept for now.
    InUse,
    /// Not in storage (any more).
    Absent,
}

impl StorageRegistry {
    /// Every blob linked into a repository `is_cache` accepts, once each, with its size
    /// and age (for rebuilding a cache's recency at start-up).
    pub async fn cached_blobs(
        &self,
        is_cache: &(dyn Fn(&RepositoryName) -> bool + Sync),
    ) -> Result<Vec<CachedBlob>, Error> {
        let access = &self.stores.access;
        let mut seen = HashMap::new();
        for repo in self.stores.catalog.walk(ANY_DATA_MARKERS).await? {
            if !is_cache(&repo) {
                continue;
            }
            let linked = access
                .digest_dirs(|alg| StoragePath::LayersOfAlgorithm(&repo, alg))
                .await?;
            for digest in linked {
                if seen.contains_key(&digest) {
                    continue;
                }
                let path = StoragePath::BlobData(&digest).path();
                if let Some(info) = access.driver().stat(&path).await.or_absent()? {
                    seen.insert(digest, (info.size, info.modified));
                }
            }
        }
        Ok(seen
            .into_iter()
            .map(|(digest, (size, modified))| CachedBlob {
                digest,
                size,
                modified,
            })
            .collect())
    }

    /// Evicts `digests` from the cache repositories `is_cache` accepts: each is removed
    /// unless another repository links it or has it as a manifest ([`Evicted::Hosted`]),
    /// `busy` says a reader needs it, or a request relies on it meanwhile
    /// ([`Evicted::InUse`]). Waits for a garbage collection in progress, and holds the
    /// next back until done.
    pub async fn evict(
        &self,
        digests: &[Digest],
        is_cache: &(dyn Fn(&RepositoryName) -> bool + Sync),
        busy: &(dyn Fn(&Digest) -> bool + Sync),
    ) -> Result<Vec<(Digest, Evicted)>, Error> {
        let fence = &self.stores.blobs.fence;
        let evicting = fence.begin().await;
        let done = self.evict_fenced(digests, is_cache, busy).await;
        fence.end().await;
        drop(evicting);
        done
    }

    /// [`evict`](Self::evict) once the fence is closed: every link that existed before
    /// it closed is on storage now, and every later one comes from a request that
    /// touched the blob first.
    async fn evict_fenced(
        &self,
        digests: &[Digest],
        is_cache: &(dyn Fn(&RepositoryName) -> bool + Sync),
        busy: &(dyn Fn(&Digest) -> bool + Sync),
    ) -> Result<Vec<(Digest, Evicted)>, Error> {
        let (stores, access) = (&self.stores, &self.stores.access);
        let repos = stores.catalog.walk(ANY_DATA_MARKERS).await?;
        let mut out = Vec::with_capacity(digests.len());
        'blobs: for digest in digests {
            let mut cache_links = Vec::new();
            for repo in &repos {
                if access
                    .exists(StoragePath::RevisionLink(repo, digest))
                    .await?
                {
                    out.push((digest.clone(), Evicted::Hosted));
                    continue 'blobs;
                }
                if access.exists(StoragePath::LayerLink(repo, digest)).await? {
                    if !is_cache(repo) {
                        out.push((digest.clone(), Evicted::Hosted));
                        continue 'blobs;
                    }
                    cache_links.push(repo);
                }
            }
            let swept = stores
                .blobs
                .sweep(digest, std::time::Duration::ZERO, false, busy)
                .await?;
            let evicted = match swept {
                Sweep::Removed(bytes) => Evicted::Removed(bytes),
                Sweep::Touched | Sweep::Busy | Sweep::Young => Evicted::InUse,
                Sweep::Absent => Evicted::Absent,
            };
            if matches!(evicted, Evicted::Removed(_) | Evicted::Absent) {
                stores.manifests.forget_body(digest);
                for repo in cache_links {
                    stores.blobs.unlink_collected(repo, digest).await?;
                }
            }
            out.push((digest.clone(), evicted));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use berth_core::{BlobRead, Registry};

    use super::*;
    use crate::tests::{drivers, image, opts, push_blob, put, repo, tag};

    #[tokio::test]
    async fn evicts_cache_blobs_only_and_leaves_busy_and_hosted_ones() {
        for (driver, _dir) in drivers().await {
            let r = StorageRegistry::new(driver, opts());
            let (cache, other, hosted) = (repo("up/a"), repo("up/b"), repo("mine/app"));
            let is_cache = |n: &RepositoryName| n.as_str().starts_with("up/");
            let config = push_blob(&r, &cache, b"{}").await;
            let layer = push_blob(&r, &cache, b"layer").await;
            let manifest = put(&r, &cache, image(&config, &layer, None), &[tag("v1")]).await;
            let busy = push_blob(&r, &cache, b"streaming").await;
            let shared = push_blob(&r, &cache, b"shared").await;
            assert!(
                r.repository(hosted.clone())
                    .mount_blob(&shared, Some(&cache))
                    .await
                    .unwrap()
            );
            assert!(
                r.repository(other.clone())
                    .mount_blob(&layer, None)
                    .await
                    .unwrap()
            );

            let listed = r.cached_blobs(&is_cache).await.unwrap();
            let mut digests: Vec<_> = listed.iter().map(|b| b.digest.clone()).collect();
            digests.sort();
            let mut want = vec![config.clone(), layer.clone(), busy.clone(), shared.clone()];
            want.sort();
            assert_eq!(digests, want, "each linked blob once, manifests aside");

            let asked = [
                layer.clone(),
                busy.clone(),
                shared.clone(),
                manifest.clone(),
            ];
            let out = r
                .evict(&asked, &is_cache, &|d: &Digest| *d == busy)
                .await
                .unwrap();
            assert_eq!(
                out,
                vec![
                    (layer.clone(), Evicted::Removed(5)),
                    (busy.clone(), Evicted::InUse),
                    (shared.clone(), Evicted::Hosted),
                    (manifest.clone(), Evicted::Hosted),
                ]
            );
            for name in [&cache, &other] {
                let gone = r
                    .repository(name.clone())
                    .blob(&layer, BlobRead::default())
                    .await;
                assert!(
                    matches!(gone, Err(berth_core::Error::BlobUnknown(_))),
                    "{name}"
                );
            }
            let kept = r
                .repository(hosted.clone())
                .blob(&shared, BlobRead::default())
                .await;
            assert!(kept.is_ok());
            assert!(
                r.repository(cache.clone())
                    .blob(&busy, BlobRead::default())
                    .await
                    .is_ok()
            );
            let again = r
                .evict(std::slice::from_ref(&layer), &is_cache, &|_| false)
                .await
                .unwrap();
            assert_eq!(again, vec![(layer, Evicted::Absent)]);
        }
    }
}
