//! What a tag or a manifest read says is what storage holds, under concurrent writers,
//! readers and deletes (issue #9, findings 2-4). Each test checks the running registry
//! against a fresh one over the same storage, which is what a restart would answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_core::{Digest, Error, Reference, Registry, RepositoryName, Tag};
use berth_driver::{FilesystemDriver, StorageDriver};
use bytes::Bytes;

use super::{image, opts, push_blob, repo};
use crate::StorageRegistry;

/// A registry over a fresh filesystem root.
fn registry() -> (
    Arc<StorageRegistry>,
    Arc<dyn StorageDriver>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let driver: Arc<dyn StorageDriver> = Arc::new(FilesystemDriver::new(dir.path()));
    (
        Arc::new(StorageRegistry::new(driver.clone(), opts())),
        driver,
        dir,
    )
}

/// Manifest `i` of a family that differ only in an annotation.
fn variant(cfg: &Digest, layer: &Digest, i: u32) -> Bytes {
    let m = String::from_utf8(image(cfg, layer, None).to_vec()).unwrap();
    Bytes::from(m.replace("\"k\":\"v\"", &format!("\"k\":\"{i}\"")))
}

fn tag(t: &str) -> Reference {
    Reference::Tag(Tag::parse(t).unwrap())
}

/// What a manifest GET answers: the digest, or `None` for unknown.
async fn get(r: &StorageRegistry, name: &RepositoryName, reference: &Reference) -> Option<Digest> {
    match r.repository(name.clone()).get_manifest(reference).await {
        Ok(m) => Some(m.digest),
        Err(Error::ManifestUnknown(_)) => None,
        Err(e) => panic!("GET {reference}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_writes_leave_cache_and_storage_agreeing() {
    let (r, driver, _dir) = registry();
    let name = repo("race/tag");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    for round in 0..10u32 {
        let puts = (0..32u32).map(|i| {
            let (r, name) = (r.clone(), name.clone());
            let body = variant(&cfg, &layer, round * 100 + i);
            tokio::spawn(async move {
                r.repository(name)
                    .put_manifest(&tag("latest"), None, body, &[])
                    .await
            })
        });
        for p in futures::future::join_all(puts).await {
            p.unwrap().unwrap();
        }
        let served = get(&r, &name, &tag("latest")).await;
        let restarted = StorageRegistry::new(driver.clone(), opts());
        assert_eq!(
            served,
            get(&restarted, &name, &tag("latest")).await,
            "round {round}: the running registry and storage disagree on the tag"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_racing_a_delete_do_not_bring_the_manifest_back() {
    let (r, driver, _dir) = registry();
    let name = repo("race/delete");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    for round in 0..5u32 {
        let body = variant(&cfg, &layer, round);
        let v = tag("v");
        let digest = r
            .repository(name.clone())
            .put_manifest(&v, None, body, &[])
            .await
            .unwrap()
            .digest;
        let by_digest = Reference::Digest(digest.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..16)
            .map(|i| {
                let (r, name, stop) = (r.clone(), name.clone(), stop.clone());
                let reference = if i % 2 == 0 {
                    v.clone()
                } else {
                    by_digest.clone()
                };
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        get(&r, &name, &reference).await;
                        // A cache hit never waits: let the timer and the delete run.
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        r.repository(name.clone())
            .delete_manifest(&by_digest)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        stop.store(true, Ordering::Relaxed);
        for t in readers {
            t.await.unwrap();
        }
        assert_eq!(
            get(&r, &name, &v).await,
            None,
            "round {round}: tag still served"
        );
        assert_eq!(
            get(&r, &name, &by_digest).await,
            None,
            "round {round}: deleted manifest still served"
        );
        let blob = r
            .repository(name.clone())
            .blob(&digest, berth_core::BlobRead::default())
            .await;
        assert!(matches!(blob, Err(Error::BlobUnknown(_))), "round {round}");
        let restarted = StorageRegistry::new(driver.clone(), opts());
        assert_eq!(get(&restarted, &name, &by_digest).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_tag_writes_ends_in_one_order() {
    let (r, driver, _dir) = registry();
    let name = repo("race/untag");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    for round in 0..5u32 {
        let body = variant(&cfg, &layer, round);
        let digest = r
            .repository(name.clone())
            .put_manifest(&tag("base"), None, body.clone(), &[])
            .await
            .unwrap()
            .digest;
        let puts: Vec<_> = (0..16u32)
            .map(|i| {
                let (r, name, body) = (r.clone(), name.clone(), body.clone());
                tokio::spawn(async move {
                    r.repository(name)
                        .put_manifest(&tag(&format!("t{round}-{i}")), None, body, &[])
                        .await
                })
            })
            .collect();
        let deleted = r
            .repository(name.clone())
            .delete_manifest(&Reference::Digest(digest.clone()))
            .await;
        assert!(
            deleted.is_ok(),
            "round {round}: delete answered {deleted:?}"
        );
        for p in puts {
            let put = p.await.unwrap();
            assert!(
                put.is_ok(),
                "round {round}: tag write answered {:?}",
                put.err()
            );
        }
        // Every listed tag is readable, here and after a restart, and both list the same.
        let restarted = StorageRegistry::new(driver.clone(), opts());
        let listed = r.repository(name.clone()).tags(None, None).await.unwrap();
        let relisted = restarted
            .repository(name.clone())
            .tags(None, None)
            .await
            .unwrap();
        assert_eq!(listed.entries, relisted.entries, "round {round}");
        for t in &listed.entries {
            let served = get(&r, &name, &tag(t)).await;
            assert!(
                served.is_some(),
                "round {round}: tag {t} is listed but not served"
            );
            assert_eq!(
                get(&restarted, &name, &tag(t)).await,
                served,
                "round {round}: {t}"
            );
            if t.starts_with(&format!("t{round}-")) {
                assert_eq!(served, Some(digest.clone()), "round {round}: {t}");
            }
        }
    }
}
