//! Two registries over one driver, as two nodes over one storage, with the shared
//! caches faked in process: a tag moved or a blob deleted through one is seen through the
//! other at once, and while the shared versions cannot be read nothing cached is trusted.
//! Without them (the default), each node's caches are its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_core::{BlobRead, Digest, Reference, Registry, RepositoryName};
use berth_driver::{InMemoryDriver, StorageDriver};

use super::{image, opts, push_blob, put, repo, tag};
use crate::{Options, SharedDescriptors, SharedVersions, StorageRegistry};

/// What Redis would hold, in process.
#[derive(Debug, Default)]
struct Fake {
    versions: Mutex<HashMap<RepositoryName, u64>>,
    global: Mutex<HashMap<Digest, u64>>,
    links: Mutex<HashSet<(RepositoryName, Digest)>>,
    down: AtomicBool,
}

#[async_trait]
impl SharedVersions for Fake {
    async fn version(&self, repo: &RepositoryName) -> Option<u64> {
        if self.down.load(Ordering::Relaxed) {
            return None;
        }
        Some(*self.versions.lock().unwrap().get(repo).unwrap_or(&7))
    }
    async fn bump(&self, repo: &RepositoryName) {
        // While down, a bump waits in the real cache's queue: here it is lost.
        if self.down.load(Ordering::Relaxed) {
            return;
        }
        *self
            .versions
            .lock()
            .unwrap()
            .entry(repo.clone())
            .or_insert(7) += 1;
    }
}

#[async_trait]
impl SharedDescriptors for Fake {
    async fn linked(&self, repo: &RepositoryName, digest: &Digest) -> Option<u64> {
        let linked = self
            .links
            .lock()
            .unwrap()
            .contains(&(repo.clone(), digest.clone()));
        linked.then(|| self.global.lock().unwrap().get(digest).copied())?
    }
    async fn global(&self, digest: &Digest) -> Option<u64> {
        self.global.lock().unwrap().get(digest).copied()
    }
    async fn set_linked(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        self.set_global(digest, size).await;
        self.set_link(repo, digest, size).await;
    }
    async fn set_link(&self, repo: &RepositoryName, digest: &Digest, _: u64) {
        let key = (repo.clone(), digest.clone());
        self.links.lock().unwrap().insert(key);
    }
    async fn set_global(&self, digest: &Digest, size: u64) {
        self.global.lock().unwrap().insert(digest.clone(), size);
    }
    async fn forget_global(&self, digest: &Digest) {
        self.global.lock().unwrap().remove(digest);
    }
    async fn unlink(&self, repo: &RepositoryName, digest: &Digest) {
        let key = (repo.clone(), digest.clone());
        self.links.lock().unwrap().remove(&key);
    }
}

/// Two nodes over one storage; sharing `fake` when given.
fn nodes(fake: Option<&Arc<Fake>>) -> (StorageRegistry, StorageRegistry) {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let options = || Options {
        shared_descriptor_cache: fake.map(|f| f.clone() as Arc<dyn SharedDescriptors>),
        shared_versions: fake.map(|f| f.clone() as Arc<dyn SharedVersions>),
        ..opts()
    };
    (
        StorageRegistry::new(driver.clone(), options()),
        StorageRegistry::new(driver, options()),
    )
}

async fn target(r: &StorageRegistry, name: &RepositoryName) -> Option<Digest> {
    let reference = Reference::Tag(tag("v1"));
    let got = r.repository(name.clone()).get_manifest(&reference).await;
    got.ok().map(|m| m.digest)
}

/// Pushes an image of `layer` tagged `v1` through `r`.
async fn tag_image(r: &StorageRegistry, name: &RepositoryName, layer: &[u8]) -> Digest {
    let cfg = push_blob(r, name, b"{}").await;
    let layer = push_blob(r, name, layer).await;
    put(r, name, image(&cfg, &layer, None), &[tag("v1")]).await
}

#[tokio::test]
async fn tag_moves_are_seen_at_once_only_with_shared_versions() {
    let name = repo("shared/app");
    for shared in [false, true] {
        let fake = Arc::new(Fake::default());
        let (a, b) = nodes(shared.then_some(&fake));
        let first = tag_image(&a, &name, b"one").await;
        assert_eq!(target(&b, &name).await, Some(first.clone()));
        let second = tag_image(&a, &name, b"two").await;
        let seen = target(&b, &name).await;
        if shared {
            assert_eq!(seen, Some(second));
        } else {
            // Each node's cache is its own (the single-writer assumption).
            assert_eq!(seen, Some(first));
        }
    }
}

#[tokio::test]
async fn unknown_versions_trust_nothing_cached() {
    let name = repo("shared/app");
    let fake = Arc::new(Fake::default());
    let (a, b) = nodes(Some(&fake));
    let first = tag_image(&a, &name, b"one").await;
    assert_eq!(target(&b, &name).await, Some(first));
    fake.down.store(true, Ordering::Relaxed);
    // A change no version tells of: B must read storage, not its cache.
    let second = tag_image(&a, &name, b"two").await;
    assert_eq!(target(&b, &name).await, Some(second.clone()));
    let misses = b.stores.tags.lookups.misses.get();
    assert_eq!(target(&b, &name).await, Some(second));
    assert_eq!(
        b.stores.tags.lookups.misses.get(),
        misses + 1,
        "storage read again"
    );
}

#[tokio::test]
async fn a_blob_deleted_on_one_node_is_gone_on_the_other() {
    let name = repo("shared/app");
    let fake = Arc::new(Fake::default());
    let (a, b) = nodes(Some(&fake));
    let d = push_blob(&a, &name, b"layer").await;
    let hits = b.stores.blobs.linked_lookups.hits.get();
    let got = b
        .repository(name.clone())
        .blob(&d, BlobRead::default())
        .await;
    assert_eq!(got.unwrap().size, 5);
    assert_eq!(b.stores.blobs.linked_lookups.hits.get(), hits + 1);
    a.repository(name.clone()).delete_blob(&d).await.unwrap();
    let got = b
        .repository(name.clone())
        .blob(&d, BlobRead::default())
        .await;
    assert!(got.is_err(), "B still serves a blob A deleted");
}
