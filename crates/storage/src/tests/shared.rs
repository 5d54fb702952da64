//! Two registries over one driver, as two nodes over one storage, with the shared
//! caches faked in process: a tag moved or a blob deleted through one is seen through the
//! other at once, and while the shared versions cannot be read nothing cached is trusted.
//! Without them (the default), each node's caches are its own. A lock service faked the
//! same way shows which steps take the fleet's leases, and a shared catalog index faked
//! so shows that a repository's first link on one node, racing the removal of its last
//! on another, leaves it listed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_core::{BlobRead, Chunk, Digest, Error, Page, Reference, Registry, RepositoryName};
use berth_driver::{InMemoryDriver, StorageDriver};
use futures::future::BoxFuture;

use super::{image, opts, push_blob, put, repo, tag};
use crate::{
    Acquired, IndexName, Lease as IndexLease, Options, SharedDescriptors, SharedIndex, SharedLease,
    SharedLocks, SharedVersions, StorageRegistry,
};

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

/// The fleet's lock service, in process: records what is asked, and answers as told.
#[derive(Debug, Default)]
struct Locks {
    /// `(name, wait)` of every request.
    asked: Mutex<Vec<(String, bool)>>,
    /// Names another node holds.
    elsewhere: Mutex<HashSet<String>>,
    /// Redis unreachable.
    down: AtomicBool,
}

struct Lease;
impl SharedLease for Lease {}

#[async_trait]
impl SharedLocks for Locks {
    async fn acquire(&self, name: &str, wait: bool) -> Acquired {
        self.asked.lock().unwrap().push((name.to_owned(), wait));
        if self.down.load(Ordering::Relaxed) {
            Acquired::Unavailable
        } else if self.elsewhere.lock().unwrap().contains(name) {
            Acquired::Busy
        } else {
            Acquired::Held(Box::new(Lease))
        }
    }
}

impl Locks {
    /// What was asked since the last call, as `name` (waiting) or `name?` (not).
    fn take(&self) -> Vec<String> {
        let asked = std::mem::take(&mut *self.asked.lock().unwrap());
        let mark = |(n, wait): (String, bool)| if wait { n } else { format!("{n}?") };
        asked.into_iter().map(mark).collect()
    }
}

/// A node with the shared caches and the lock service.
fn fleet_node(
    fake: &Arc<Fake>,
    locks: &Arc<Locks>,
    driver: Arc<dyn StorageDriver>,
) -> StorageRegistry {
    StorageRegistry::new(
        driver,
        Options {
            shared_descriptor_cache: Some(fake.clone()),
            shared_versions: Some(fake.clone()),
            shared_locks: Some(locks.clone()),
            ..opts()
        },
    )
}

/// Which steps take the fleet's lease of what, and what a busy or unreachable lock
/// service does to them.
#[tokio::test]
async fn writers_take_the_fleets_leases_and_readers_do_not_wait() {
    let name = repo("fleet/app");
    let (fake, locks) = (Arc::new(Fake::default()), Arc::new(Locks::default()));
    let a = fleet_node(&fake, &locks, Arc::new(InMemoryDriver::new()));
    let r = a.repository(name.clone());

    // An upload: each append and the commit hold the session's lease; the commit the
    // link's too.
    let data = b"a layer pushed in two chunks";
    let d = Digest::of(berth_core::Algorithm::Sha256, data);
    let up = r.start_upload(berth_core::Algorithm::Sha256).await.unwrap();
    let chunk = Chunk::stream(super::body(&data[..10]));
    r.upload_chunk(&up.id, chunk).await.unwrap();
    let last = Chunk::stream(super::body(&data[10..]));
    r.finish_upload(&up.id, &d, Some(last)).await.unwrap();
    let session = format!("upload::fleet/app::{}", up.id);
    assert_eq!(
        locks.take(),
        [session.clone(), session, format!("link::fleet/app::{d}")]
    );

    // A tagged manifest: its revision's lease, then its tag's.
    let cfg = push_blob(&a, &name, b"{}").await;
    locks.take();
    let m = put(&a, &name, image(&cfg, &d, None), &[tag("v1")]).await;
    assert_eq!(
        locks.take(),
        [
            format!("revision::fleet/app::{m}"),
            "tag::fleet/app::v1".to_owned()
        ]
    );

    // Reads: tags and revisions take none; a descriptor miss tries the link's lease
    // (and the blob's) without waiting, a hit takes none.
    assert_eq!(target(&a, &name).await, Some(m.clone()));
    let stat = || r.blob(&d, BlobRead::default());
    assert_eq!(stat().await.unwrap().size, data.len() as u64);
    assert_eq!(locks.take(), Vec::<String>::new());
    fake.unlink(&name, &d).await;
    fake.forget_global(&d).await;
    assert_eq!(stat().await.unwrap().size, data.len() as u64);
    assert_eq!(
        locks.take(),
        [format!("link::fleet/app::{d}?"), format!("blob::{d}?")]
    );
    assert!(fake.linked(&name, &d).await.is_some(), "filled");

    // Another node changing the link: the miss is answered from storage, not cached.
    fake.unlink(&name, &d).await;
    let link = format!("link::fleet/app::{d}");
    locks.elsewhere.lock().unwrap().insert(link.clone());
    assert_eq!(stat().await.unwrap().size, data.len() as u64);
    assert!(fake.linked(&name, &d).await.is_none(), "filled meanwhile");
    // And a writer of that link gives up: a 503 to retry.
    let deleted = r.delete_blob(&d).await;
    assert!(matches!(deleted, Err(Error::Busy(_))), "{deleted:?}");
    locks.elsewhere.lock().unwrap().clear();

    // Redis unreachable: everything goes on under this node's locks.
    locks.down.store(true, Ordering::Relaxed);
    let moved = put(&a, &name, image(&cfg, &d, Some(&m)), &[tag("v1")]).await;
    assert_eq!(target(&a, &name).await, Some(moved));
    r.delete_blob(&d).await.unwrap();
    assert!(stat().await.is_err());
}

/// What runs inside the shared index's next catalog removal, before it is applied.
type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The shared catalog index, in process: its names only (never complete, so pages come
/// from storage), with hooks run by the next removal or addition before it is applied
/// (another node's steps falling between a node's storage write or check and its
/// update of the index).
#[derive(Default)]
struct Catalog {
    names: Mutex<BTreeSet<String>>,
    before_remove: Mutex<Option<Hook>>,
    before_add: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("names", &self.names)
            .finish()
    }
}

impl Catalog {
    fn listed(&self, name: &str) -> bool {
        self.names.lock().unwrap().contains(name)
    }
}

#[async_trait]
impl SharedIndex for Catalog {
    async fn page(&self, _: IndexName<'_>, _: Option<usize>, _: Option<&str>) -> Option<Page> {
        None
    }
    async fn add(&self, index: IndexName<'_>, name: &str) -> bool {
        if index != IndexName::Catalog {
            return false;
        }
        let hook = self.before_add.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.names.lock().unwrap().insert(name.to_owned())
    }
    async fn remove(&self, index: IndexName<'_>, name: &str) {
        if index != IndexName::Catalog {
            return;
        }
        let hook = self.before_remove.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.names.lock().unwrap().remove(name);
    }
    async fn begin_rebuild(&self, _: IndexName<'_>) -> Option<IndexLease> {
        None
    }
    async fn renew(&self, _: IndexName<'_>, _: &IndexLease) -> bool {
        false
    }
    async fn complete_rebuild(&self, _: IndexName<'_>, _: &IndexLease, _: Vec<String>) -> bool {
        false
    }
}

/// Two nodes over one in-memory storage, sharing `catalog`.
fn two_nodes(catalog: &Arc<Catalog>) -> (StorageRegistry, StorageRegistry) {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let node = || {
        StorageRegistry::new(
            driver.clone(),
            Options {
                shared_index: Some(catalog.clone()),
                ..opts()
            },
        )
    };
    (node(), node())
}

/// Node B removes a repository's last layer link (a blob delete; a collection rechecks
/// the same way) and finds `_layers` gone; before its removal reaches the shared index,
/// node A links a first blob into the repository and adds the name. The name must stay:
/// the repository has a blob.
#[tokio::test]
async fn a_first_link_racing_the_removal_of_the_last_stays_listed() {
    let name = repo("race/app");
    let catalog = Arc::new(Catalog::default());
    let (a, b) = two_nodes(&catalog);
    let a = Arc::new(a);
    let first = push_blob(&b, &name, b"first").await;
    assert!(catalog.listed("race/app"));

    let (on_a, in_repo) = (a.clone(), name.clone());
    *catalog.before_remove.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            push_blob(&on_a, &in_repo, b"second").await;
        })
    }));
    b.repository(name.clone())
        .delete_blob(&first)
        .await
        .unwrap();
    assert!(
        catalog.before_remove.lock().unwrap().is_none(),
        "the removal was made (after A's link)"
    );
    assert!(
        catalog.listed("race/app"),
        "a repository with a linked blob left the catalog"
    );

    // Without a link racing it, the last link's removal takes the name out.
    let second = Digest::of(berth_core::Algorithm::Sha256, b"second");
    b.repository(name.clone())
        .delete_blob(&second)
        .await
        .unwrap();
    assert!(!catalog.listed("race/app"));
}

/// Node A links a first blob into a repository, but its add reaches the shared index
/// only after node B deleted that blob and took the name out (B found nothing listed
/// to remove). The name must not stay: the repository has no blob.
#[tokio::test]
async fn a_first_add_delayed_past_the_removal_does_not_stay() {
    let name = repo("late/app");
    let catalog = Arc::new(Catalog::default());
    let (a, b) = two_nodes(&catalog);
    let b = Arc::new(b);
    let first = Digest::of(berth_core::Algorithm::Sha256, b"first");
    let (on_b, in_repo, gone) = (b.clone(), name.clone(), first.clone());
    *catalog.before_add.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            on_b.repository(in_repo).delete_blob(&gone).await.unwrap();
        })
    }));
    push_blob(&a, &name, b"first").await;
    assert!(
        catalog.before_add.lock().unwrap().is_none(),
        "B's delete ran before A's add"
    );
    assert!(
        !catalog.listed("late/app"),
        "an emptied repository stayed in the catalog"
    );

    // An add that is not late keeps the name.
    push_blob(&a, &name, b"second").await;
    assert!(catalog.listed("late/app"));
}
