//! Garbage collection beside requests of the same registry: each race of the fence
//! (`crate::fence`) driven step by step, both orders where there are two, plus a run of
//! collections under concurrent pushes and deletes checked against a fresh registry over
//! the same storage (what a restart would answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_core::{Algorithm, BlobRead, Digest, Error, Reference, Registry, RepositoryName};
use berth_driver::{FilesystemDriver, StorageDriver};
use bytes::Bytes;

use super::*;
use crate::tests::{image, opts, push_blob, put, repo, tag};

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

fn online() -> GcOptions {
    GcOptions::default()
}

fn untagged() -> GcOptions {
    GcOptions {
        delete_untagged: true,
        ..GcOptions::default()
    }
}

/// A collection's steps, run one at a time with requests in between.
struct Steps<'a> {
    r: &'a StorageRegistry,
    options: GcOptions,
    repos: Vec<RepositoryName>,
    report: GcReport,
}

impl<'a> Steps<'a> {
    /// Closes the fence and marks.
    async fn begin_and_mark(r: &'a StorageRegistry, options: GcOptions) -> (Steps<'a>, Mark) {
        // The collector's claim is not kept: these tests run one collection at a time.
        drop(r.stores.blobs.fence.begin().await);
        let mut on = |_: GcEvent<'_>| {};
        let mut progress = Progress {
            report: GcReport::default(),
            on: &mut on,
        };
        let (repos, mark) = r.mark(options, &mut progress).await.unwrap();
        let steps = Steps {
            r,
            options,
            repos,
            report: progress.report,
        };
        (steps, mark)
    }

    /// Sweeps what `mark` left unmarked and opens the fence again.
    async fn sweep_and_end(mut self, mark: Mark) -> GcReport {
        let mut on = |_: GcEvent<'_>| {};
        let mut progress = Progress {
            report: std::mem::take(&mut self.report),
            on: &mut on,
        };
        self.r
            .sweep(self.options, &self.repos, mark, &mut progress)
            .await
            .unwrap();
        self.r.stores.blobs.fence.end().await;
        progress.report
    }
}

async fn blob_on_disk(driver: &Arc<dyn StorageDriver>, d: &Digest) -> bool {
    driver.stat(&StoragePath::BlobData(d).path()).await.is_ok()
}

async fn head(r: &StorageRegistry, name: &RepositoryName, d: &Digest) -> Result<u64, Error> {
    let c = r
        .repository(name.clone())
        .blob(d, BlobRead::default())
        .await?;
    Ok(c.size)
}

async fn pulls(r: &StorageRegistry, name: &RepositoryName, reference: &Reference) -> bool {
    let Ok(m) = r.repository(name.clone()).get_manifest(reference).await else {
        return false;
    };
    let Ok(parsed) = berth_core::manifest::Manifest::parse(None, &m.body) else {
        return false;
    };
    for d in parsed.config.iter().chain(&parsed.layers) {
        if head(r, name, &d.digest).await.is_err() {
            return false;
        }
    }
    true
}

async fn push_manifest(
    r: &StorageRegistry,
    name: &RepositoryName,
    body: Bytes,
    tags: &[berth_core::Tag],
) -> Result<Digest, Error> {
    let d = Digest::of(Algorithm::Sha256, &body);
    r.repository(name.clone())
        .put_manifest(&Reference::Digest(d.clone()), None, body, tags)
        .await
        .map(|p| p.digest)
}

#[tokio::test]
async fn a_manifest_pushed_after_the_mark_keeps_its_blobs() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    let (steps, mark) = Steps::begin_and_mark(&r, online()).await;
    assert!(!mark.marked.contains(&layer));
    // The push touches the unreferenced blobs before it checks them.
    let m = put(&r, &name, image(&cfg, &layer, None), &[tag("v1")]).await;
    let report = steps.sweep_and_end(mark).await;
    assert_eq!((report.blobs_removed, report.kept_touched), (0, 3));
    assert!(blob_on_disk(&driver, &layer).await);
    let fresh = StorageRegistry::new(driver.clone(), opts());
    assert!(pulls(&fresh, &name, &Reference::Digest(m)).await);
    assert!(pulls(&r, &name, &Reference::Tag(tag("v1"))).await);
}

#[tokio::test]
async fn a_manifest_pushed_after_its_blob_was_swept_is_refused() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    // Cached as linked and present, as a HEAD before the collection leaves it.
    assert_eq!(head(&r, &name, &layer).await.unwrap(), 5);
    let (steps, mark) = Steps::begin_and_mark(&r, online()).await;
    // The sweep reaches the blob first; its layer link is not removed yet.
    let swept = r
        .stores
        .blobs
        .sweep(&layer, Duration::ZERO, false, &|_| false)
        .await;
    assert_eq!(swept.unwrap(), Sweep::Removed(5));
    let err = push_manifest(&r, &name, image(&cfg, &layer, None), &[tag("v1")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown(_)), "{err:?}");
    assert!(
        head(&r, &name, &layer).await.is_err(),
        "cache claims a swept blob"
    );
    steps.sweep_and_end(mark).await;
    let fresh = StorageRegistry::new(driver.clone(), opts());
    assert!(!pulls(&fresh, &name, &Reference::Tag(tag("v1"))).await);
    // The client's retry uploads the blob again, and the push goes through.
    push_blob(&r, &name, b"layer").await;
    put(&r, &name, image(&cfg, &layer, None), &[tag("v1")]).await;
    assert!(pulls(&fresh, &name, &Reference::Tag(tag("v1"))).await);
}

#[tokio::test]
async fn a_blob_checked_during_the_collection_is_kept_for_the_push() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    let (steps, mark) = Steps::begin_and_mark(&r, online()).await;
    // docker's HEAD: the blob exists, so it will not be uploaded again.
    assert_eq!(head(&r, &name, &layer).await.unwrap(), 5);
    assert_eq!(head(&r, &name, &cfg).await.unwrap(), 2);
    let report = steps.sweep_and_end(mark).await;
    assert_eq!((report.blobs_removed, report.kept_touched), (0, 2));
    put(&r, &name, image(&cfg, &layer, None), &[tag("v1")]).await;
    let fresh = StorageRegistry::new(driver.clone(), opts());
    assert!(pulls(&fresh, &name, &Reference::Tag(tag("v1"))).await);
}

#[tokio::test]
async fn a_mount_during_the_collection_either_keeps_the_blob_or_is_refused() {
    let (r, driver, _dir) = registry();
    let (a, b) = (repo("team/a"), repo("team/b"));
    let kept = push_blob(&r, &a, b"kept").await;
    let gone = push_blob(&r, &a, b"gone").await;
    let (steps, mark) = Steps::begin_and_mark(&r, online()).await;
    // Mounted before the sweep reaches it: kept.
    let to_b = r.repository(b.clone());
    assert!(to_b.mount_blob(&kept, Some(&a)).await.unwrap());
    // Swept before the mount looks: the mount is refused, no link names nothing.
    let swept = r
        .stores
        .blobs
        .sweep(&gone, Duration::ZERO, false, &|_| false)
        .await;
    assert_eq!(swept.unwrap(), Sweep::Removed(4));
    assert!(!to_b.mount_blob(&gone, Some(&a)).await.unwrap());
    assert!(!to_b.mount_blob(&gone, None).await.unwrap());
    let report = steps.sweep_and_end(mark).await;
    assert_eq!(report.kept_touched, 1);
    // The sweep step removes the links of what it removed; this blob was removed here.
    assert!(r.stores.blobs.unlink_collected(&a, &gone).await.unwrap());
    assert!(blob_on_disk(&driver, &kept).await);
    let layer_b = StoragePath::LayerLink(&b, &gone).path();
    assert!(driver.stat(&layer_b).await.is_err());
    let fresh = StorageRegistry::new(driver.clone(), opts());
    assert_eq!(head(&fresh, &b, &kept).await.unwrap(), 4);
    assert!(fresh.check_storage(false).await.unwrap().is_clean());
}

#[tokio::test]
async fn a_blob_pushed_again_after_its_sweep_keeps_its_link() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let layer = push_blob(&r, &name, b"layer").await;
    let (steps, mark) = Steps::begin_and_mark(&r, online()).await;
    let swept = r
        .stores
        .blobs
        .sweep(&layer, Duration::ZERO, false, &|_| false)
        .await;
    assert_eq!(swept.unwrap(), Sweep::Removed(5));
    // Uploaded again before the sweep removes the layer links of what it swept.
    push_blob(&r, &name, b"layer").await;
    assert!(
        !r.stores
            .blobs
            .unlink_collected(&name, &layer)
            .await
            .unwrap()
    );
    steps.sweep_and_end(mark).await;
    let fresh = StorageRegistry::new(driver.clone(), opts());
    assert_eq!(head(&fresh, &name, &layer).await.unwrap(), 5);
    assert_eq!(head(&r, &name, &layer).await.unwrap(), 5);
}

#[tokio::test]
async fn a_blob_uploaded_during_the_collection_is_kept_without_a_grace_period() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let (steps, mark) = Steps::begin_and_mark(&r, online()).await;
    // Acknowledged after the mark, before the manifest that will name it.
    let fresh_blob = push_blob(&r, &name, b"fresh").await;
    let report = steps.sweep_and_end(mark).await;
    assert_eq!((report.blobs_removed, report.kept_touched), (0, 1));
    assert!(blob_on_disk(&driver, &fresh_blob).await);
    assert_eq!(head(&r, &name, &fresh_blob).await.unwrap(), 5);
}

#[tokio::test]
async fn young_blobs_are_kept_until_the_grace_period_passes() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let orphan = push_blob(&r, &name, b"orphan").await;
    let options = GcOptions {
        grace_period: Duration::from_secs(3600),
        ..GcOptions::default()
    };
    let report = r.garbage_collect(options, |_| {}).await.unwrap();
    assert_eq!((report.blobs_eligible, report.kept_young), (1, 1));
    assert!(blob_on_disk(&driver, &orphan).await);
    // Two seconds old: past a one-second grace period.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let options = GcOptions {
        grace_period: Duration::from_secs(1),
        ..GcOptions::default()
    };
    let report = r.garbage_collect(options, |_| {}).await.unwrap();
    assert_eq!((report.blobs_removed, report.bytes_removed), (1, 6));
    assert!(!blob_on_disk(&driver, &orphan).await);
    assert!(head(&r, &name, &orphan).await.is_err());
}

#[tokio::test]
async fn a_push_in_flight_when_the_collection_starts_is_waited_for() {
    let (r, _driver, _dir) = registry();
    // A push that took its pass before the collection began and has not finished.
    let pass = r.stores.blobs.fence.enter();
    let collection = {
        let r = r.clone();
        tokio::spawn(async move { r.garbage_collect(online(), |_| {}).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !collection.is_finished(),
        "marked while a push was in flight"
    );
    drop(pass);
    collection.await.unwrap().unwrap();
}

#[tokio::test]
async fn tagging_an_untagged_manifest_during_the_collection_keeps_it() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let cfg = push_blob(&r, &name, b"{}").await;
    let (l1, l2) = (
        push_blob(&r, &name, b"one").await,
        push_blob(&r, &name, b"two").await,
    );
    let (b1, b2) = (image(&cfg, &l1, None), image(&cfg, &l2, None));
    let first = put(&r, &name, b1.clone(), &[]).await;
    let second = put(&r, &name, b2.clone(), &[]).await;
    let (steps, mark) = Steps::begin_and_mark(&r, untagged()).await;
    assert_eq!(mark.untagged.len(), 2);
    // Tagged before the deletion reaches it: the deletion leaves it.
    put(&r, &name, b1, &[tag("one")]).await;
    // Deleted first, then tagged: the push writes the revision again, and the sweep
    // keeps its bytes and layers, which the push touched.
    let mut on = |_: GcEvent<'_>| {};
    let mut progress = Progress {
        report: GcReport::default(),
        on: &mut on,
    };
    r.delete_untagged(&name, &second, &mut progress)
        .await
        .unwrap();
    assert_eq!(progress.report.manifests_removed, 1);
    put(&r, &name, b2, &[tag("two")]).await;
    let report = steps.sweep_and_end(mark).await;
    assert_eq!(report.blobs_removed, 0, "{report:?}");
    let fresh = StorageRegistry::new(driver.clone(), opts());
    for (t, d) in [("one", &first), ("two", &second)] {
        assert!(pulls(&fresh, &name, &Reference::Tag(tag(t))).await, "{t}");
        assert!(pulls(&r, &name, &Reference::Digest(d.clone())).await, "{t}");
    }
    assert!(fresh.check_storage(false).await.unwrap().is_clean());
}

#[tokio::test]
async fn an_index_naming_a_deleted_untagged_child_is_refused() {
    let (r, driver, _dir) = registry();
    let name = repo("team/app");
    let cfg = push_blob(&r, &name, b"{}").await;
    let layer = push_blob(&r, &name, b"layer").await;
    let child = put(&r, &name, image(&cfg, &layer, None), &[]).await;
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":1}}]}}"#
    ));
    // The child's revision is in the cache, as a pull leaves it.
    assert!(r.stores.manifests.has(&name, &child).await.unwrap());
    let (steps, mark) = Steps::begin_and_mark(&r, untagged()).await;
    let mut on = |_: GcEvent<'_>| {};
    let mut progress = Progress {
        report: GcReport::default(),
        on: &mut on,
    };
    r.delete_untagged(&name, &child, &mut progress)
        .await
        .unwrap();
    let err = push_manifest(&r, &name, index, &[tag("multi")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown(_)), "{err:?}");
    steps.sweep_and_end(mark).await;
    let fresh = StorageRegistry::new(driver.clone(), opts());
    assert!(fresh.check_storage(false).await.unwrap().is_clean());
}

/// Collections in a loop (grace period zero) while tasks push images sharing layers,
/// each blob uploaded and then its manifest pushed (a client's order), and delete some.
/// Every push acknowledged and not deleted must pull afterwards, from this registry and
/// from a fresh one; a push refused with `MANIFEST_BLOB_UNKNOWN` is retried as a
/// client would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_beside_pushes_and_deletes_lose_nothing_acknowledged() {
    let (r, driver, _dir) = registry();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (r, stop) = (r.clone(), stop.clone());
        tokio::spawn(async move {
            let mut cycles = 0;
            let mut removed = 0;
            while !stop.load(Ordering::SeqCst) || cycles < 3 {
                let options = GcOptions {
                    delete_untagged: cycles % 2 == 1,
                    ..GcOptions::default()
                };
                let report = r.garbage_collect(options, |_| {}).await.unwrap();
                removed += report.blobs_removed;
                cycles += 1;
                tokio::task::yield_now().await;
            }
            (cycles, removed)
        })
    };
    let pushers: Vec<_> = (0..4u32)
        .map(|w| {
            let r = r.clone();
            tokio::spawn(async move {
                let name = repo(&format!("team/w{w}"));
                let shared = b"shared layer".to_vec();
                let mut kept = Vec::new();
                for i in 0..25u32 {
                    let own = format!("w{w} layer {i}").into_bytes();
                    let cfg = format!("{{\"w\":{w},\"i\":{i}}}").into_bytes();
                    let body = loop {
                        let cfg = push_blob(&r, &name, &cfg).await;
                        let shared = push_blob(&r, &name, &shared).await;
                        let own = push_blob(&r, &name, &own).await;
                        let mut body = image(&cfg, &own, None).to_vec();
                        // Name the shared layer too: every image shares it.
                        let text = String::from_utf8(body.clone()).unwrap().replacen(
                            "\"layers\":[",
                            &format!(
                                "\"layers\":[{{\"mediaType\":\"application/x.layer\",\"digest\":\"{shared}\",\"size\":12}},"
                            ),
                            1,
                        );
                        body = text.into_bytes();
                        let t = tag(&format!("v{i}"));
                        match push_manifest(&r, &name, Bytes::from(body.clone()), &[t]).await {
                            Ok(_) => break body,
                            Err(Error::ManifestBlobUnknown(_)) => continue,
                            Err(e) => panic!("push: {e}"),
                        }
                    };
                    let d = Digest::of(Algorithm::Sha256, &body);
                    if i % 3 == 0 {
                        r.repository(name.clone())
                            .delete_manifest(&Reference::Digest(d))
                            .await
                            .unwrap();
                    } else {
                        kept.push((i, d));
                    }
                }
                (name, kept)
            })
        })
        .collect();
    let mut all = Vec::new();
    for p in pushers {
        all.push(p.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let (cycles, mut removed) = collector.await.unwrap();
    // One more, after the last delete.
    removed += r
        .garbage_collect(online(), |_| {})
        .await
        .unwrap()
        .blobs_removed;
    assert!(cycles >= 3, "{cycles} cycles");
    assert!(removed > 0, "nothing was ever collected");
    let fresh = StorageRegistry::new(driver.clone(), opts());
    for (name, kept) in &all {
        for (i, d) in kept {
            let by_tag = Reference::Tag(tag(&format!("v{i}")));
            for reg in [&*r, &fresh] {
                assert!(pulls(reg, name, &by_tag).await, "{name}:v{i}");
                assert!(pulls(reg, name, &Reference::Digest(d.clone())).await);
            }
        }
    }
    assert!(fresh.check_storage(false).await.unwrap().is_clean());
}
