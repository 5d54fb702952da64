//! Blobs: the global content store and the repository-scoped links that make a blob
//! visible in a repository (the linked blob store of distribution's design).

use berth_core::{BlobContent, Digest, Error, RepositoryName};

use crate::StorageRegistry;
use crate::layout::StoragePath;
use crate::links::internal;

impl StorageRegistry {
    /// Size of a blob in the global store; `None` when absent.
    pub(crate) async fn global_blob_size(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        if let Some(size) = self.cache.as_ref().and_then(|c| c.global(digest)) {
            return Ok(Some(size));
        }
        match self
            .driver
            .stat(&StoragePath::BlobData(digest).path())
            .await
        {
            Ok(info) => {
                if let Some(c) = &self.cache {
                    c.set_global(digest, info.size);
                }
                Ok(Some(info.size))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }

    /// Size of a blob visible in `repo`: linked as a layer, or (as registries commonly
    /// allow) a manifest revision of the repository.
    pub(crate) async fn linked_blob_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, Error> {
        if let Some(size) = self.cache.as_ref().and_then(|c| c.linked(repo, digest)) {
            return Ok(Some(size));
        }
        let linked = self.exists(StoragePath::LayerLink(repo, digest)).await?
            || self.exists(StoragePath::RevisionLink(repo, digest)).await?;
        if !linked {
            return Ok(None);
        }
        let size = self.global_blob_size(digest).await?;
        if let (Some(size), Some(c)) = (size, &self.cache) {
            c.set_linked(repo, digest, size);
        }
        Ok(size)
    }

    /// Links a blob of `size` bytes into `repo`.
    pub(crate) async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), Error> {
        self.write_link(StoragePath::LayerLink(repo, digest), digest)
            .await?;
        self.note_linked(repo, digest, size).await;
        Ok(())
    }

    /// Records in memory that `repo` links a blob of `size` bytes, once both the link
    /// and the blob are in storage.
    pub(crate) async fn note_linked(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        if let Some(c) = &self.cache {
            c.set_linked(repo, digest, size);
        }
        self.indexes.repositories.insert(repo.as_str()).await;
    }

    pub(crate) async fn stat_blob_impl(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<u64, Error> {
        self.linked_blob_size(repo, digest)
            .await?
            .ok_or_else(|| Error::BlobUnknown(digest.to_string()))
    }

    pub(crate) async fn open_blob_impl(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<BlobContent, Error> {
        let size = self.stat_blob_impl(repo, digest).await?;
        let (offset, len) = match range {
            Some((first, last)) if first <= last && last < size => (first, Some(last - first + 1)),
            Some(_) => return Err(Error::RangeNotSatisfiable { size }),
            None => (0, None),
        };
        let stream = self
            .driver
            .reader(&StoragePath::BlobData(digest).path(), offset, len)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    Error::BlobUnknown(digest.to_string())
                } else {
                    internal(e)
                }
            })?;
        Ok(BlobContent {
            size,
            digest: digest.clone(),
            stream,
        })
    }

    pub(crate) async fn delete_blob_impl(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), Error> {
        if !self.delete_enabled {
            return Err(Error::Unsupported(
                "blob deletion is disabled (storage.delete.enabled)".into(),
            ));
        }
        if let Some(c) = &self.cache {
            c.unlink(repo, digest);
        }
        let link = StoragePath::LayerLink(repo, digest);
        if !self.exists(link).await? {
            return Err(Error::BlobUnknown(digest.to_string()));
        }
        // Remove the link's directory, as distribution does, so no empty `<hex>` stays behind.
        let dir = link.path();
        let dir = dir.trim_end_matches("/link");
        self.driver.delete(dir).await.map_err(internal)
    }

    pub(crate) async fn mount_blob_impl(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<bool, Error> {
        let size = match from {
            Some(source) => self.linked_blob_size(source, digest).await?,
            None => self.global_blob_size(digest).await?,
        };
        match size {
            Some(size) => {
                self.link_blob(repo, digest, size).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
