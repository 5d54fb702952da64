//! The use cases of one repository, composed from the stores. Writes that touch several
//! stores hold the lock of what they change (a manifest revision; through the stores, a
//! tag or a link) across the whole step, so a concurrent delete and write end in one of
//! the two orders, and caches change with storage, never apart from it.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::manifest::Manifest;
use berth_core::{
    Algorithm, BlobContent, BlobRead, Chunk, Descriptor, Digest, Error, Page, PutManifest,
    Reference, Repository, RepositoryName, Result, StoredManifest, Tag, UploadId, UploadState,
};
use berth_driver::Persist;
use bytes::Bytes;
use futures::future::try_join_all;

use crate::access::DriverResult;
use crate::fence::Touch;
use crate::layout::StoragePath;
use crate::registry::Stores;

/// One repository's handle over the shared stores.
pub(crate) struct StorageRepository {
    name: RepositoryName,
    stores: Arc<Stores>,
}

impl StorageRepository {
    pub(crate) fn new(name: RepositoryName, stores: Arc<Stores>) -> Self {
        StorageRepository { name, stores }
    }

    fn check_delete_enabled(&self, what: &str) -> Result<()> {
        if self.stores.delete_enabled {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "{what} deletion is disabled (storage.delete.enabled)"
            )))
        }
    }

    /// The digest a reference names, if the repository has that manifest.
    async fn resolve(&self, reference: &Reference) -> Result<Option<Digest>> {
        match reference {
            Reference::Digest(d) => Ok(Some(d.clone())),
            Reference::Tag(t) => self.stores.tags.target(&self.name, t).await,
        }
    }

    /// Whether the repository exists on storage: it has manifests or linked blobs.
    async fn exists(&self) -> Result<bool> {
        let access = &self.stores.access;
        Ok(access.exists(StoragePath::ManifestsDir(&self.name)).await?
            || access.exists(StoragePath::LayersDir(&self.name)).await?)
    }

    /// Checks that every blob and child manifest the manifest names is in the repository,
    /// touching each first (see `fence`): a collection running beside the push either
    /// keeps it or has removed it before the check looks. The subject is exempt:
    /// referrers may be pushed before what they refer to.
    async fn check_references(&self, m: &Manifest) -> Result<()> {
        let repo = &self.name;
        let blobs = m
            .config
            .iter()
            .chain(&m.layers)
            .filter(|d| d.urls.is_empty());
        try_join_all(blobs.map(|d| async move {
            match self.stores.blobs.linked_size(repo, &d.digest).await? {
                Some(_) => Ok(()),
                None => Err(Error::ManifestBlobUnknown(d.digest.to_string())),
            }
        }))
        .await?;
        try_join_all(m.manifests.iter().map(|d| async move {
            // A child an untagged-manifest collection is deleting: ask once it is done.
            let manifests = &self.stores.manifests;
            let has = match self.stores.blobs.hold(&d.digest).await {
                Touch::Kept => manifests.has(repo, &d.digest).await?,
                Touch::Doomed => manifests.has_settled(repo, &d.digest).await?,
            };
            if has {
                Ok(())
            } else {
                Err(Error::ManifestBlobUnknown(d.digest.to_string()))
            }
        }))
        .await?;
        Ok(())
    }

    /// A manifest PUT, with or without checking that what it references is present.
    async fn store_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[Tag],
        check_references: bool,
    ) -> Result<PutManifest> {
        let (repo, stores) = (&self.name, &self.stores);
        let manifest = Manifest::parse(content_type, &body)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if actual != *expected {
                    return Err(Error::DigestInvalid(format!(
                        "manifest body has digest {actual}, not {expected}"
                    )));
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, &body),
        };
        // Held until the revision and its tags are written: a collection starting now
        // waits for this push, so its mark sees the manifest (see `fence`).
        let _pass = stores.blobs.fence.enter();
        // Its own bytes too: an identical manifest deleted earlier leaves them unused, and
        // `put_locked` keeps bytes already there.
        stores.blobs.hold(&digest).await;
        if check_references {
            self.check_references(&manifest).await?;
        }
        let size = body.len() as u64;
        let referrer = manifest.referrer_descriptor(digest.clone(), size);

        let revision = stores.manifests.lock(repo, &digest).await?;
        stores.manifests.put_locked(repo, &digest, body).await?;
        stores.blobs.note_global(&digest, size).await;

        let mut tags: Vec<Tag> = Vec::new();
        if let Reference::Tag(t) = reference {
            tags.push(t.clone());
        }
        for t in extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        // Tags and the referrer link only name the revision written above, so they are
        // written together.
        let subject = manifest.subject.map(|s| s.digest);
        let referrer_link = async {
            match &subject {
                Some(s) => stores.referrers.link(repo, s, &digest).await,
                None => Ok(()),
            }
        };
        let tagged = try_join_all(tags.iter().map(|t| stores.tags.set(repo, t, &digest)));
        futures::try_join!(tagged, referrer_link)?;
        drop(revision);
        if let Some(s) = subject.as_ref().filter(|_| stores.referrers_tag_schema) {
            self.update_schema(s, &digest, Some(referrer)).await?;
        }
        Ok(PutManifest {
            digest,
            subject,
            tags,
        })
    }

    /// The shared stores.
    pub(crate) fn stores(&self) -> &Stores {
        &self.stores
    }
}

#[async_trait]
impl Repository for StorageRepository {
    fn name(&self) -> &RepositoryName {
        &self.name
    }

    async fn tags(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        // Existence is asked of storage only until the repository's listing is loaded.
        let tags = &self.stores.tags;
        if let Some(page) = tags.page(&self.name, false, n, last).await? {
            return Ok(page);
        }
        let exists = self.exists().await?;
        tags.page(&self.name, exists, n, last)
            .await?
            .ok_or_else(|| Error::NameUnknown(self.name.to_string()))
    }

    async fn get_manifest(&self, reference: &Reference) -> Result<StoredManifest> {
        let unknown = || Error::ManifestUnknown(format!("{}:{reference}", self.name));
        let digest = self.resolve(reference).await?.ok_or_else(unknown)?;
        self.stores
            .manifests
            .get(&self.name, &digest)
            .await?
            .ok_or_else(unknown)
    }

    async fn put_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest> {
        self.store_manifest(reference, content_type, body, extra_tags, true)
            .await
    }

    async fn put_copied_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PutManifest> {
        self.store_manifest(reference, content_type, body, &[], false)
            .await
    }

    async fn delete_manifest(&self, reference: &Reference) -> Result<Vec<Tag>> {
        self.check_delete_enabled("manifest")?;
        let (repo, stores) = (&self.name, &self.stores);
        let digest = match reference {
            Reference::Tag(t) => {
                return if stores.tags.remove(repo, t, None).await? {
                    Ok(vec![t.clone()])
                } else {
                    Err(Error::ManifestUnknown(format!("{repo}:{t}")))
                };
            }
            Reference::Digest(d) => d,
        };
        let revision = stores.manifests.lock(repo, digest).await?;
        if !stores
            .manifests
            .has_locked((repo.clone(), digest.clone()))
            .await?
        {
            return Err(Error::ManifestUnknown(format!("{repo}@{digest}")));
        }
        let subject = match stores.manifests.bytes(digest).await? {
            Some(body) => Manifest::parse(None, &body).ok().and_then(|m| m.subject),
            None => None,
        };
        stores.manifests.remove_locked(repo, digest).await?;
        stores.blobs.forget(repo, digest).await?;
        let mut removed = Vec::new();
        for tag in stores.tags.pointing_at(repo, digest).await? {
            if stores.tags.remove(repo, &tag, Some(digest)).await? {
                removed.push(tag);
            }
        }
        if let Some(s) = &subject {
            stores.referrers.unlink(repo, &s.digest, digest).await?;
        }
        drop(revision);
        if let Some(s) = subject.filter(|_| stores.referrers_tag_schema) {
            self.update_schema(&s.digest, digest, None).await?;
        }
        Ok(removed)
    }

    async fn blob(&self, digest: &Digest, read: BlobRead) -> Result<BlobContent> {
        self.stores.blobs.open(&self.name, digest, read).await
    }

    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<(String, u64)>> {
        if !self.stores.redirect {
            return Ok(None);
        }
        self.stores.blobs.redirect(&self.name, digest).await
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.check_delete_enabled("blob")?;
        if self.stores.blobs.unlink(&self.name, digest).await? {
            self.stores.catalog.recheck(&self.name).await?;
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.to_string()))
        }
    }

    async fn mount_blob(&self, digest: &Digest, from: Option<&RepositoryName>) -> Result<bool> {
        let blobs = &self.stores.blobs;
        let _pass = blobs.fence.enter();
        // Touched before it is looked up: kept by a running collection, or already gone.
        blobs.hold(digest).await;
        let size = match from {
            Some(source) => blobs.linked_size(source, digest).await?,
            None => blobs.size(digest).await?,
        };
        let Some(size) = size else {
            return Ok(false);
        };
        blobs
            .link(&self.name, digest, size, async { Ok(None) })
            .await?;
        self.stores.catalog.note(&self.name).await;
        Ok(true)
    }

    async fn start_upload(&self, algorithm: Algorithm) -> Result<UploadState> {
        self.stores.uploads.start(&self.name, algorithm).await
    }

    async fn upload_status(&self, id: &UploadId) -> Result<UploadState> {
        self.stores.uploads.status(&self.name, id).await
    }

    async fn upload_chunk(&self, id: &UploadId, chunk: Chunk) -> Result<UploadState> {
        self.stores
            .uploads
            .append_chunk(&self.name, id, chunk)
            .await
    }

    async fn finish_upload(
        &self,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<Chunk>,
    ) -> Result<u64> {
        let stores = &self.stores;
        let _pass = stores.blobs.fence.enter();
        // A collection removing an unused copy of this blob finishes before it is published
        // again, and keeps it from now on.
        stores.blobs.hold(digest).await;
        let mut verified = stores
            .uploads
            .verify(&self.name, id, digest, last_chunk)
            .await?;
        let size = verified.size();
        // Still holding the session: no chunk can land between verifying and publishing.
        stores
            .blobs
            .link(&self.name, digest, size, verified.publish())
            .await?;
        drop(verified);
        stores.catalog.note(&self.name).await;
        Ok(size)
    }

    async fn cancel_upload(&self, id: &UploadId) -> Result<()> {
        self.stores.uploads.cancel(&self.name, id).await
    }

    async fn adopt_blob(&self, digest: &Digest, file: &std::path::Path) -> Result<u64> {
        let stores = &self.stores;
        let _pass = stores.blobs.fence.enter();
        stores.blobs.hold(digest).await;
        // A copy stored already (pushed to another repository) is linked as it is, never
        // replaced.
        let stored = stores.blobs.size(digest).await?;
        let size = match stored {
            Some(size) => size,
            None => tokio::fs::metadata(file)
                .await
                .map_err(|e| Error::internal_from("reading a blob to adopt", e))?
                .len(),
        };
        stores
            .blobs
            .link(&self.name, digest, size, async {
                if stored.is_none() {
                    let data = StoragePath::BlobData(digest).path();
                    stores
                        .access
                        .driver()
                        .import(file, &data, Persist::Durable)
                        .await
                        .or_internal()?;
                }
                Ok(None)
            })
            .await?;
        stores.catalog.note(&self.name).await;
        Ok(size)
    }

    async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let (repo, stores) = (&self.name, &self.stores);
        let mut out = Vec::new();
        for digest in stores.referrers.candidates(repo, subject).await? {
            // A link whose manifest has gone, or that no longer names the subject, is
            // skipped: the manifests are the truth, the links only an index.
            let Some(m) = stores.manifests.get(repo, &digest).await.ok().flatten() else {
                continue;
            };
            let Ok(parsed) = Manifest::parse(None, &m.body) else {
                continue;
            };
            if parsed.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                continue;
            }
            out.push(parsed.referrer_descriptor(digest, m.body.len() as u64));
        }
        // The referrers tag schema's index (what clients push to a registry without the
        // referrers API, such as distribution 2.8): the spec asks a registry that enables
        // the API on existing data to include it.
        for desc in self.schema_entries(subject).await? {
            if !out.iter().any(|d| d.digest == desc.digest) {
                out.push(desc);
            }
        }
        out.retain(|d| artifact_type.is_none_or(|want| d.artifact_type.as_deref() == Some(want)));
        Ok(out)
    }
}
