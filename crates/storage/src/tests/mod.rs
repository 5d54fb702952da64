//! Store-level tests over both drivers: uploads (including resuming after a restart),
//! manifests, tags, referrers, catalog, deletes and purging.

use std::sync::Arc;
use std::time::Duration;

use berth_core::{
    Algorithm, BlobRead, ByteStream, Chunk, Digest, Error, RangeRequest, Reference, Registry,
    RepositoryName, Tag, UploadId,
};
use berth_driver::{FilesystemDriver, InMemoryDriver, StorageDriver};
use bytes::Bytes;
use futures::TryStreamExt;

use crate::{Options, StorageRegistry};

mod direct;
mod leftovers;
mod races;
mod shared;
mod tag_pages;

pub(super) fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

pub(super) fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

pub(super) fn opts() -> Options {
    Options {
        delete_enabled: true,
        ..Options::default()
    }
}

pub(super) async fn push_blob(r: &StorageRegistry, name: &RepositoryName, data: &[u8]) -> Digest {
    let d = Digest::of(Algorithm::Sha256, data);
    let up = r
        .repository(name.clone())
        .start_upload(Algorithm::Sha256)
        .await
        .unwrap();
    r.repository(name.clone())
        .finish_upload(&up.id, &d, Some(Chunk::stream(body(data))))
        .await
        .unwrap();
    d
}

/// Pushes `{}` and `layer` and an image of them tagged `v1`: (config, layer, image).
async fn tagged_image(r: &StorageRegistry, name: &RepositoryName) -> (Digest, Digest, Digest) {
    let cfg = push_blob(r, name, b"{}").await;
    let layer = push_blob(r, name, b"layer").await;
    let subject = r
        .repository(name.clone())
        .put_manifest(
            &Reference::Tag(Tag::parse("v1").unwrap()),
            None,
            image(&cfg, &layer, None),
            &[],
        )
        .await
        .unwrap()
        .digest;
    (cfg, layer, subject)
}

async fn read_blob(r: &StorageRegistry, name: &RepositoryName, d: &Digest) -> Vec<u8> {
    let read = BlobRead {
        range: None,
        body: true,
    };
    let c = r.repository(name.clone()).blob(d, read).await.unwrap();
    let parts: Vec<Bytes> = c.stream.unwrap().try_collect().await.unwrap();
    parts.concat()
}

/// A blob's size as the repository sees it.
async fn stat(r: &StorageRegistry, name: &RepositoryName, d: &Digest) -> Result<u64, Error> {
    let c = r
        .repository(name.clone())
        .blob(d, BlobRead::default())
        .await?;
    assert!(c.stream.is_none());
    Ok(c.size)
}

pub(super) fn image(config: &Digest, layer: &Digest, subject: Option<&Digest>) -> Bytes {
    let subject = subject
        .map(|s| {
            format!(
                r#","subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{s}","size":1}}"#
            )
        })
        .unwrap_or_default();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/x.cfg","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/x.layer","digest":"{layer}","size":5}}],"annotations":{{"k":"v"}}{subject}}}"#
    ))
}

pub(super) fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

/// Pushes `body` (whose blobs are in `name`) under `tags`; answers its digest.
pub(super) async fn put(
    r: &StorageRegistry,
    name: &RepositoryName,
    body: Bytes,
    tags: &[Tag],
) -> Digest {
    let d = Digest::of(Algorithm::Sha256, &body);
    r.repository(name.clone())
        .put_manifest(&Reference::Digest(d.clone()), None, body, tags)
        .await
        .unwrap();
    d
}

pub(super) async fn drivers() -> Vec<(Arc<dyn StorageDriver>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    vec![
        (Arc::new(InMemoryDriver::new()), None),
        (Arc::new(FilesystemDriver::new(dir.path())), Some(dir)),
    ]
}

#[tokio::test]
async fn chunked_upload_resumes_after_restart() {
    for (driver, _dir) in drivers().await {
        let name = repo("a/b");
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let d = Digest::of(Algorithm::Sha256, &data);
        let first = StorageRegistry::new(driver.clone(), opts());
        let up = first
            .repository(name.clone())
            .start_upload(Algorithm::Sha256)
            .await
            .unwrap();
        let st = first
            .repository(name.clone())
            .upload_chunk(
                &up.id,
                Chunk {
                    start: Some(0),
                    length: Some(20_000),
                    body: body(&data[..20_000]),
                },
            )
            .await
            .unwrap();
        assert_eq!(st.offset, 20_000);
        drop(first);
        // A new process: no hot state, the saved hash state is used.
        let second = StorageRegistry::new(driver.clone(), opts());
        assert_eq!(
            second
                .repository(name.clone())
                .upload_status(&up.id)
                .await
                .unwrap()
                .offset,
            20_000
        );
        let err = second
            .repository(name.clone())
            .upload_chunk(
                &up.id,
                Chunk {
                    start: Some(10),
                    length: None,
                    body: body(b"x"),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            Error::ChunkOutOfOrder {
                offset: 20_000,
                start: 10
            }
        ));
        second
            .repository(name.clone())
            .upload_chunk(
                &up.id,
                Chunk {
                    start: Some(20_000),
                    length: None,
                    body: body(&data[20_000..40_000]),
                },
            )
            .await
            .unwrap();
        let size = second
            .repository(name.clone())
            .finish_upload(
                &up.id,
                &d,
                Some(Chunk {
                    start: Some(40_000),
                    length: None,
                    body: body(&data[40_000..]),
                }),
            )
            .await
            .unwrap();
        assert_eq!(size, 50_000);
        assert_eq!(read_blob(&second, &name, &d).await, data);
        assert!(matches!(
            second.repository(name.clone()).upload_status(&up.id).await,
            Err(Error::BlobUploadUnknown(_))
        ));
    }
}

#[tokio::test]
async fn digest_mismatch_commits_nothing() {
    for (driver, _dir) in drivers().await {
        let r = StorageRegistry::new(driver, opts());
        let name = repo("x");
        let rp = r.repository(name.clone());
        let wrong = Digest::of(Algorithm::Sha256, b"something else");
        let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
        let err = rp
            .finish_upload(&up.id, &wrong, Some(Chunk::stream(body(b"data"))))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestInvalid(_)));
        assert!(matches!(
            stat(&r, &name, &wrong).await,
            Err(Error::BlobUnknown(_))
        ));
        let right = Digest::of(Algorithm::Sha256, b"data");
        assert!(matches!(
            stat(&r, &name, &right).await,
            Err(Error::BlobUnknown(_))
        ));
    }
}

#[tokio::test]
async fn sha512_and_ranges() {
    for (driver, _dir) in drivers().await {
        let r = StorageRegistry::new(driver, opts());
        let name = repo("x");
        let rp = r.repository(name.clone());
        let d = Digest::of(Algorithm::Sha512, b"0123456789");
        let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
        rp.finish_upload(&up.id, &d, Some(Chunk::stream(body(b"0123456789"))))
            .await
            .unwrap();
        let range = |first, last| BlobRead {
            range: Some(RangeRequest::From {
                first,
                last: Some(last),
            }),
            body: true,
        };
        let c = rp.blob(&d, range(2, 4)).await.unwrap();
        assert_eq!(c.range, Some((2, 4)));
        let parts: Vec<Bytes> = c.stream.unwrap().try_collect().await.unwrap();
        assert_eq!(parts.concat(), b"234");
        let c = rp.blob(&d, range(5, 10)).await.unwrap();
        assert_eq!((c.range, c.size), (Some((5, 9)), 10));
        assert!(matches!(
            rp.blob(&d, range(10, 12)).await.err(),
            Some(Error::RangeNotSatisfiable { size: 10 })
        ));
    }
}

#[tokio::test]
async fn manifests_tags_referrers_and_deletes() {
    for (driver, _dir) in drivers().await {
        let r = StorageRegistry::new(driver, opts());
        let name = repo("team/app");
        let rp = r.repository(name.clone());
        let cfg = push_blob(&r, &name, b"{}").await;
        let layer = push_blob(&r, &name, b"layer").await;
        let m = image(&cfg, &layer, None);
        let v1 = Reference::Tag(Tag::parse("v1").unwrap());
        let put = rp
            .put_manifest(&v1, None, m.clone(), &[Tag::parse("latest").unwrap()])
            .await
            .unwrap();
        assert_eq!(put.digest, Digest::of(Algorithm::Sha256, &m));
        let got = rp.get_manifest(&v1).await.unwrap();
        assert_eq!(got.body, m);
        assert_eq!(got.media_type, "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(rp.tags(None, None).await.unwrap().entries, ["latest", "v1"]);

        // A manifest naming a blob the repository does not have.
        let other = repo("other");
        let err = r
            .repository(other.clone())
            .put_manifest(&v1, None, m.clone(), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ManifestBlobUnknown(_)));

        // Referrers, including one whose subject is not pushed.
        let sig = image(&cfg, &layer, Some(&put.digest));
        let sig_put = rp
            .put_manifest(
                &Reference::Digest(Digest::of(Algorithm::Sha256, &sig)),
                None,
                sig,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(sig_put.subject.as_ref(), Some(&put.digest));
        let refs = rp.referrers(&put.digest, None).await.unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].artifact_type.as_deref(), Some("application/x.cfg"));
        assert!(
            rp.referrers(&put.digest, Some("nope"))
                .await
                .unwrap()
                .is_empty()
        );

        // Tag delete keeps the manifest; digest delete removes it and its tags.
        rp.delete_manifest(&Reference::Tag(Tag::parse("latest").unwrap()))
            .await
            .unwrap();
        assert_eq!(rp.tags(None, None).await.unwrap().entries, ["v1"]);
        rp.delete_manifest(&Reference::Digest(put.digest.clone()))
            .await
            .unwrap();
        assert!(matches!(
            rp.get_manifest(&v1).await,
            Err(Error::ManifestUnknown(_))
        ));
        assert!(rp.tags(None, None).await.unwrap().entries.is_empty());
        rp.delete_manifest(&Reference::Digest(sig_put.digest.clone()))
            .await
            .unwrap();
        assert!(rp.referrers(&put.digest, None).await.unwrap().is_empty());

        rp.delete_blob(&layer).await.unwrap();
        assert!(matches!(
            stat(&r, &name, &layer).await,
            Err(Error::BlobUnknown(_))
        ));
        assert!(matches!(
            r.repository(repo("nothing")).tags(None, None).await,
            Err(Error::NameUnknown(_))
        ));
    }
}

/// Every catalog page until the end, `n` at a time.
async fn whole_catalog(r: &StorageRegistry, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = r.catalog(n, last.as_deref()).await.unwrap();
        out.extend(page.entries.iter().cloned());
        if !page.more {
            return out;
        }
        last = page.entries.last().cloned();
    }
}

/// Waits until the catalog's pages come from its complete listing.
async fn wait_built(r: &StorageRegistry) {
    for _ in 0..200 {
        if r.stores.catalog.is_built() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the catalog listing was never built");
}

#[tokio::test]
async fn catalog_pages_are_the_same_before_and_after_the_build() {
    for (driver, _dir) in drivers().await {
        let names: Vec<String> = (0..60).map(|i| format!("o{}/r{i:02}", i % 4)).collect();
        let first = StorageRegistry::new(driver.clone(), opts());
        for n in &names {
            push_blob(&first, &repo(n), b"x").await;
        }
        let mut want = names.clone();
        want.sort_by(|a, b| crate::catalog::catalog_order(a, b));
        // A new process: its first pages are walked, later ones come from the listing.
        let r = StorageRegistry::new(driver, opts());
        r.start_listings();
        assert_eq!(whole_catalog(&r, 7).await, want);
        push_blob(&r, &repo("o1/late"), b"y").await;
        want.push("o1/late".to_owned());
        want.sort_by(|a, b| crate::catalog::catalog_order(a, b));
        wait_built(&r).await;
        assert_eq!(whole_catalog(&r, 7).await, want);
        assert_eq!(whole_catalog(&r, 1000).await, want);
    }
}

#[tokio::test]
async fn a_repository_whose_last_link_goes_leaves_the_catalog_where_its_directory_goes() {
    // In memory (as on object storage) a directory ends with its last file; on a file
    // system `_layers` stays, and so does the repository, as distribution lists it.
    for (driver, dir) in drivers().await {
        let r = StorageRegistry::new(driver.clone(), opts());
        let d = push_blob(&r, &repo("a/gone"), b"only").await;
        push_blob(&r, &repo("a/kept"), b"kept").await;
        assert_eq!(whole_catalog(&r, 10).await, ["a/gone", "a/kept"]);
        wait_built(&r).await;
        r.repository(repo("a/gone")).delete_blob(&d).await.unwrap();
        let want: &[&str] = if dir.is_none() {
            &["a/kept"]
        } else {
            &["a/gone", "a/kept"]
        };
        assert_eq!(whole_catalog(&r, 10).await, want);
        // And the walk agrees, for a process started now.
        let fresh = StorageRegistry::new(driver, opts());
        assert_eq!(whole_catalog(&fresh, 10).await, want);
    }
}

#[tokio::test]
async fn catalog_mount_and_purge() {
    for (driver, _dir) in drivers().await {
        let r = StorageRegistry::new(driver, opts());
        for n in ["b", "a/b", "a-b", "a/b/c"] {
            push_blob(&r, &repo(n), n.as_bytes()).await;
        }
        r.repository(repo("only/uploading"))
            .start_upload(Algorithm::Sha256)
            .await
            .unwrap();
        let page = r.catalog(10, None).await.unwrap();
        assert_eq!(page.entries, ["a/b", "a/b/c", "a-b", "b"]);
        // Repositories created after the listing was loaded appear in it.
        push_blob(&r, &repo("a/a"), b"late").await;
        assert!(
            r.repository(repo("z"))
                .mount_blob(&Digest::of(Algorithm::Sha256, b"b"), None)
                .await
                .unwrap()
        );
        let page = r.catalog(10, None).await.unwrap();
        assert_eq!(page.entries, ["a/a", "a/b", "a/b/c", "a-b", "b", "z"]);
        let page = r.catalog(2, Some("a/b")).await.unwrap();
        assert_eq!(
            (page.entries.as_slice(), page.more),
            (&["a/b/c".to_owned(), "a-b".to_owned()][..], true)
        );

        let d = Digest::of(Algorithm::Sha256, b"b");
        assert!(
            r.repository(repo("m"))
                .mount_blob(&d, Some(&repo("b")))
                .await
                .unwrap()
        );
        assert!(
            !r.repository(repo("m2"))
                .mount_blob(&d, Some(&repo("a-b")))
                .await
                .unwrap()
        );
        assert!(r.repository(repo("m3")).mount_blob(&d, None).await.unwrap());
        assert_eq!(stat(&r, &repo("m3"), &d).await.unwrap(), 1);

        let up = r
            .repository(repo("p"))
            .start_upload(Algorithm::Sha256)
            .await
            .unwrap();
        let report = r
            .purge_uploads(Duration::from_secs(3600), false)
            .await
            .unwrap();
        assert_eq!((report.purged, report.kept), (0, 2));
        let report = r.purge_uploads(Duration::ZERO, false).await.unwrap();
        assert_eq!(report.purged, 2);
        assert!(r.repository(repo("p")).upload_status(&up.id).await.is_err());
    }
}

#[tokio::test]
async fn deletes_can_be_disabled() {
    let r = StorageRegistry::new(Arc::new(InMemoryDriver::new()), Options::default());
    let name = repo("x");
    let rp = r.repository(name.clone());
    let d = push_blob(&r, &name, b"x").await;
    assert!(matches!(
        rp.delete_blob(&d).await,
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        rp.delete_manifest(&Reference::Digest(d)).await,
        Err(Error::Unsupported(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_one_blob_and_one_tag() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(StorageRegistry::new(
        Arc::new(FilesystemDriver::new(dir.path())),
        opts(),
    ));
    let name = repo("race");
    let rp = r.repository(name.clone());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::of(Algorithm::Sha256, &data);
    let pushes = (0..8).map(|_| {
        let (r, name, data, d) = (r.clone(), name.clone(), data.clone(), d.clone());
        tokio::spawn(async move {
            let rp = r.repository(name);
            let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
            rp.finish_upload(&up.id, &d, Some(Chunk::stream(body(&data))))
                .await
        })
    });
    for p in futures::future::join_all(pushes).await {
        assert_eq!(p.unwrap().unwrap(), data.len() as u64);
    }
    assert_eq!(read_blob(&r, &name, &d).await, data);

    // Sixteen different manifests race for one tag: the tag ends on one of them, whole.
    let cfg = push_blob(&r, &name, b"{}").await;
    let tag = Reference::Tag(Tag::parse("latest").unwrap());
    let puts = (0..16u32).map(|i| {
        let (r, name, tag) = (r.clone(), name.clone(), tag.clone());
        let m = String::from_utf8(image(&cfg, &d, None).to_vec()).unwrap();
        let m = Bytes::from(m.replace("\"k\":\"v\"", &format!("\"k\":\"{i}\"")));
        tokio::spawn(async move {
            let rp = r.repository(name);
            rp.put_manifest(&tag, None, m, &[]).await.map(|p| p.digest)
        })
    });
    let mut digests = Vec::new();
    for p in futures::future::join_all(puts).await {
        digests.push(p.unwrap().unwrap());
    }
    let got = rp.get_manifest(&tag).await.unwrap();
    assert!(digests.contains(&got.digest));
    assert_eq!(Digest::of(Algorithm::Sha256, &got.body), got.digest);
    for d in &digests {
        assert!(rp.get_manifest(&Reference::Digest(d.clone())).await.is_ok());
    }
}

#[tokio::test]
async fn unknown_sessions_leave_no_state() {
    let r = StorageRegistry::new(Arc::new(InMemoryDriver::new()), opts());
    let name = repo("x");
    let rp = r.repository(name.clone());
    for _ in 0..100 {
        let id = UploadId::random();
        let err = rp
            .upload_chunk(&id, Chunk::stream(body(b"x")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlobUploadUnknown(_)));
        let d = Digest::of(Algorithm::Sha256, b"");
        assert!(rp.finish_upload(&id, &d, None).await.is_err());
    }
    assert_eq!(r.stores.uploads.open_sessions(), 0);
    // A cancelled session is not resurrected by a chunk that was waiting for it.
    let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
    rp.cancel_upload(&up.id).await.unwrap();
    assert!(
        rp.upload_chunk(&up.id, Chunk::stream(body(b"late")))
            .await
            .is_err()
    );
    assert!(matches!(
        rp.upload_status(&up.id).await,
        Err(Error::BlobUploadUnknown(_))
    ));
}

#[tokio::test]
async fn referrers_include_the_tag_schema_index() {
    let r = StorageRegistry::new(Arc::new(InMemoryDriver::new()), opts());
    let name = repo("ts");
    let rp = r.repository(name.clone());
    let (cfg, layer, subject) = tagged_image(&r, &name).await;
    // A signature pushed the way a client does for a registry without the referrers API:
    // no `subject` index entry, listed in an index tagged sha256-<hex>.
    let sig = String::from_utf8(image(&cfg, &layer, None).to_vec()).unwrap();
    let sig = Bytes::from(sig.replace("\"k\":\"v\"", "\"k\":\"sig\""));
    let sig_digest = Digest::of(Algorithm::Sha256, &sig);
    rp.put_manifest(
        &Reference::Digest(sig_digest.clone()),
        None,
        sig.clone(),
        &[],
    )
    .await
    .unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{sig_digest}","size":{},"artifactType":"application/x.sig","annotations":{{"a":"b"}}}}]}}"#,
        sig.len()
    );
    let tag = Tag::parse(&format!("sha256-{}", subject.hex())).unwrap();
    rp.put_manifest(&Reference::Tag(tag), None, Bytes::from(index), &[])
        .await
        .unwrap();

    assert_ne!(sig_digest, subject);
    let refs = rp.referrers(&subject, None).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, sig_digest);
    assert_eq!(refs[0].artifact_type.as_deref(), Some("application/x.sig"));
    assert!(refs[0].annotations.as_ref().is_some_and(|a| a["a"] == "b"));
    assert_eq!(
        rp.referrers(&subject, Some("application/x.sig"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        rp.referrers(&subject, Some("other"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A saved hash state is trusted only in the volatile epoch (the boot) it was saved in:
/// the chunks it covers were written unflushed, so after a reboot the data is re-hashed.
#[tokio::test]
async fn a_hash_state_from_another_boot_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let driver: Arc<dyn StorageDriver> = Arc::new(FilesystemDriver::new(dir.path()));
    let name = repo("boot");
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let d = Digest::of(Algorithm::Sha256, &data);
    // A state that does not describe the data: whoever trusts it computes a wrong digest.
    let mut wrong = berth_core::Digester::new(Algorithm::Sha256);
    wrong.update(&[0u8; 10_000]);
    for (epoch, trusted) in [
        (driver.volatile_epoch().to_owned(), true),
        ("another-boot".to_owned(), false),
    ] {
        let r = StorageRegistry::new(driver.clone(), opts());
        let rp = r.repository(name.clone());
        let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
        let chunk = Chunk {
            start: Some(0),
            length: None,
            body: body(&data[..10_000]),
        };
        rp.upload_chunk(&up.id, chunk).await.unwrap();
        let state =
            crate::layout::StoragePath::UploadHashState(&name, &up.id, Algorithm::Sha256, 10_000)
                .path();
        let epoch_file = crate::layout::StoragePath::UploadEpoch(&name, &up.id).path();
        assert_eq!(
            driver.get_content(&epoch_file).await.unwrap(),
            driver.volatile_epoch().as_bytes(),
            "a saved state is recorded with the epoch it was saved in"
        );
        driver
            .put_content(&state, Bytes::from(wrong.save()))
            .await
            .unwrap();
        driver
            .put_content(&epoch_file, Bytes::from(epoch.into_bytes()))
            .await
            .unwrap();

        // A restart: nothing of the session in memory, only what storage holds.
        let restarted = StorageRegistry::new(driver.clone(), opts());
        let last = Chunk {
            start: Some(10_000),
            length: None,
            body: body(&data[10_000..]),
        };
        let finished = restarted
            .repository(name.clone())
            .finish_upload(&up.id, &d, Some(last))
            .await;
        if trusted {
            assert!(
                matches!(finished, Err(Error::DigestInvalid(_))),
                "{finished:?}"
            );
        } else {
            assert_eq!(
                finished.unwrap(),
                data.len() as u64,
                "re-hashed from the data"
            );
            assert_eq!(read_blob(&restarted, &name, &d).await, data);
        }
    }
}

/// With `referrers_tag_schema`, concurrent referrers of one subject all land in its
/// `<alg>-<hex>` index (rewrites are serialised per subject); without it there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tag_schema_index_keeps_every_concurrent_referrer() {
    for on in [true, false] {
        let options = Options {
            referrers_tag_schema: on,
            ..opts()
        };
        let r = Arc::new(StorageRegistry::new(
            Arc::new(InMemoryDriver::new()),
            options,
        ));
        let name = repo("schema");
        let rp = r.repository(name.clone());
        let (cfg, layer, subject) = tagged_image(&r, &name).await;
        let pushes = (0..8u32).map(|i| {
            let (r, name, subject) = (r.clone(), name.clone(), subject.clone());
            let body = String::from_utf8(image(&cfg, &layer, Some(&subject)).to_vec()).unwrap();
            let body = Bytes::from(body.replace("\"k\":\"v\"", &format!("\"k\":\"{i}\"")));
            tokio::spawn(async move {
                let d = Digest::of(Algorithm::Sha256, &body);
                r.repository(name)
                    .put_manifest(&Reference::Digest(d.clone()), None, body, &[])
                    .await
                    .unwrap();
                d
            })
        });
        let mut pushed: Vec<Digest> = Vec::new();
        for p in futures::future::join_all(pushes).await {
            pushed.push(p.unwrap());
        }
        let tag = Tag::parse(&format!("sha256-{}", subject.hex())).unwrap();
        let index = rp.get_manifest(&Reference::Tag(tag)).await;
        if !on {
            assert!(matches!(index, Err(Error::ManifestUnknown(_))));
            continue;
        }
        let index = berth_core::Manifest::parse(None, &index.unwrap().body).unwrap();
        let mut listed: Vec<Digest> = index.manifests.into_iter().map(|d| d.digest).collect();
        listed.sort();
        pushed.sort();
        assert_eq!(listed, pushed);
        // The referrers API lists each once, though both indexes name them.
        let refs = rp.referrers(&subject, None).await.unwrap();
        assert_eq!(refs.len(), 8);
    }
}

/// `startedat` as distribution writes and reads it: RFC 3339, UTC, whole seconds, no
/// line end.
fn is_distribution_startedat(b: &[u8]) -> bool {
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn sessions_carry_distributions_startedat_and_purge_reads_it() {
    for (driver, _dir) in drivers().await {
        let fleet = Options {
            upload_startedat: true,
            ..opts()
        };
        let r = StorageRegistry::new(driver.clone(), fleet);
        let before = std::time::SystemTime::now();
        let up = r
            .repository(repo("p"))
            .start_upload(Algorithm::Sha256)
            .await
            .unwrap();
        let started = up.started.expect("a new session knows its start");
        assert!(started >= before);
        let prefix = "/docker/registry/v2/repositories";
        let written = driver
            .get_content(&format!("{prefix}/p/_uploads/{}/startedat", up.id))
            .await
            .unwrap();
        assert!(
            is_distribution_startedat(&written),
            "startedat {:?}",
            String::from_utf8_lossy(&written)
        );
        let parsed = time::OffsetDateTime::parse(
            std::str::from_utf8(&written).unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let started = time::OffsetDateTime::from(started);
        assert_eq!(parsed.unix_timestamp(), started.unix_timestamp());

        // A session distribution started long ago, whose data changed just now: its
        // startedat decides, as it does for distribution's purger.
        let old = "0b5f6f59-7d2c-4d1e-9a3b-2f1e0c9d8a7b";
        for (file, content) in [
            ("data", &b"partial"[..]),
            ("startedat", b"2020-01-02T03:04:05Z"),
        ] {
            driver
                .put_content(
                    &format!("{prefix}/q/_uploads/{old}/{file}"),
                    Bytes::from_static(content),
                )
                .await
                .unwrap();
        }
        let report = r
            .purge_uploads(Duration::from_secs(3600), false)
            .await
            .unwrap();
        assert_eq!((report.purged, report.kept), (1, 1));
        let old = UploadId::parse(old).unwrap();
        assert!(matches!(
            r.repository(repo("q")).upload_status(&old).await,
            Err(Error::BlobUploadUnknown(_))
        ));
        r.repository(repo("p")).upload_status(&up.id).await.unwrap();
    }
}

#[tokio::test]
async fn a_committed_blob_directory_holds_only_data() {
    for ((driver, _dir), startedat) in drivers()
        .await
        .into_iter()
        .zip([true, false])
        .chain(drivers().await.into_iter().zip([false, true]))
    {
        let options = Options {
            upload_startedat: startedat,
            ..opts()
        };
        let r = StorageRegistry::new(driver.clone(), options);
        let d = push_blob(&r, &repo("a"), b"whole session renamed").await;
        let dir = format!(
            "/docker/registry/v2/blobs/sha256/{}/{}",
            &d.hex()[..2],
            d.hex()
        );
        let listed = driver.list(&dir).await.unwrap();
        assert_eq!(listed, [format!("{dir}/data")]);
        // The same bytes again, now that the blob exists: the session is removed whole.
        let again = push_blob(&r, &repo("a"), b"whole session renamed").await;
        assert_eq!(again, d);
        assert_eq!(driver.list(&dir).await.unwrap(), [format!("{dir}/data")]);
        assert!(
            driver
                .list("/docker/registry/v2/repositories/a/_uploads")
                .await
                .unwrap_or_default()
                .is_empty()
        );
    }
}

/// `max_upload_sessions`: a start beyond the bound is refused with `TooManyUploads`
/// (across repositories); every way a session ends frees its slot, and a session this
/// node opened that another node finished is freed by the next purge pass.
#[tokio::test]
async fn the_upload_session_bound_refuses_and_frees_slots() {
    for (driver, _dir) in drivers().await {
        let bounded = Options {
            max_upload_sessions: Some(2),
            ..opts()
        };
        let r = StorageRegistry::new(driver.clone(), bounded);
        let (one, two) = (r.repository(repo("one")), r.repository(repo("two")));
        let full = |res: Result<_, Error>| matches!(res, Err(Error::TooManyUploads { limit: 2 }));
        let a = one.start_upload(Algorithm::Sha256).await.unwrap();
        let b = two.start_upload(Algorithm::Sha512).await.unwrap();
        assert!(full(one.start_upload(Algorithm::Sha256).await));
        assert!(full(two.start_upload(Algorithm::Sha256).await));
        assert_eq!(r.stores.uploads.counted_sessions(), 2);

        // Cancelled: freed.
        one.cancel_upload(&a.id).await.unwrap();
        let c = one.start_upload(Algorithm::Sha256).await.unwrap();
        assert!(full(one.start_upload(Algorithm::Sha256).await));

        // Finished: freed.
        let data = b"bounded";
        let d = Digest::of(Algorithm::Sha256, data);
        one.finish_upload(&c.id, &d, Some(Chunk::stream(body(data))))
            .await
            .unwrap();
        let e = one.start_upload(Algorithm::Sha256).await.unwrap();

        // A digest mismatch discards the session: freed.
        let wrong = Digest::of(Algorithm::Sha256, b"other");
        assert!(
            one.finish_upload(&e.id, &wrong, Some(Chunk::stream(body(data))))
                .await
                .is_err()
        );
        let f = one.start_upload(Algorithm::Sha256).await.unwrap();
        assert!(full(two.start_upload(Algorithm::Sha256).await));

        // Finished by another node sharing the storage: still counted here until a
        // purge pass (which keeps young sessions) sees it is gone.
        let other = StorageRegistry::new(driver.clone(), opts());
        let d512 = Digest::of(Algorithm::Sha512, data);
        other
            .repository(repo("two"))
            .finish_upload(&b.id, &d512, Some(Chunk::stream(body(data))))
            .await
            .unwrap();
        assert!(full(two.start_upload(Algorithm::Sha256).await));
        let report = r
            .purge_uploads(Duration::from_secs(3600), false)
            .await
            .unwrap();
        assert_eq!(report.kept, 1, "f is young and stays");
        assert_eq!(r.stores.uploads.counted_sessions(), 1);
        let g = two.start_upload(Algorithm::Sha256).await.unwrap();

        // Purged: freed.
        r.purge_uploads(Duration::ZERO, false).await.unwrap();
        assert_eq!(r.stores.uploads.counted_sessions(), 0);
        assert!(one.upload_status(&f.id).await.is_err() && two.upload_status(&g.id).await.is_err());
    }
}

/// Without a bound nothing is counted (no bookkeeping on the push path).
#[tokio::test]
async fn no_bound_counts_nothing() {
    let r = StorageRegistry::new(Arc::new(InMemoryDriver::new()), opts());
    let rp = r.repository(repo("free"));
    for _ in 0..5 {
        rp.start_upload(Algorithm::Sha256).await.unwrap();
    }
    assert_eq!(r.stores.uploads.counted_sessions(), 0);
}

#[tokio::test]
async fn adopted_files_become_linked_blobs() {
    for (driver, dir) in drivers().await {
        let r = StorageRegistry::new(driver, opts());
        let (a, b) = (repo("cache/a"), repo("cache/b"));
        let spool = tempfile::tempdir().unwrap();
        // On the storage's file system where there is one, as the proxy's spool is.
        let local = match &dir {
            Some(d) => d.path().join("spooled"),
            None => spool.path().join("spooled"),
        };
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&local, &data).unwrap();
        let d = Digest::of(Algorithm::Sha256, &data);
        let size = r
            .repository(a.clone())
            .adopt_blob(&d, &local)
            .await
            .unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(read_blob(&r, &a, &d).await, data);
        assert_eq!(
            std::fs::read(&local).unwrap(),
            data,
            "the caller's file stays"
        );
        assert!(
            r.catalog(10, None)
                .await
                .unwrap()
                .entries
                .contains(&"cache/a".to_owned())
        );
        // The caller drops its file; the stored blob is unaffected.
        std::fs::remove_file(&local).unwrap();
        assert_eq!(read_blob(&r, &a, &d).await, data);
        // Stored already: linked into another repository without the file.
        std::fs::write(&local, b"unread").unwrap();
        r.repository(b.clone())
            .adopt_blob(&d, &local)
            .await
            .unwrap();
        assert_eq!(read_blob(&r, &b, &d).await, data);
        let missing = spool.path().join("missing");
        let other = Digest::of(Algorithm::Sha256, b"other");
        assert!(
            r.repository(a.clone())
                .adopt_blob(&other, &missing)
                .await
                .is_err()
        );
        assert!(stat(&r, &a, &other).await.is_err());
    }
}
