//! `berth_core::Registry` for `StorageRegistry`: the trait surface, delegating to the
//! stores in the sibling modules.

use async_trait::async_trait;
use berth_core::{
    Algorithm, BlobContent, ByteStream, Descriptor, Digest, Page, PutManifest, Reference, Registry,
    RepositoryName, Result, StoredManifest, Tag, UploadState,
};
use bytes::Bytes;

use crate::StorageRegistry;

#[async_trait]
impl Registry for StorageRegistry {
    async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Page> {
        self.catalog_impl(n, last).await
    }

    async fn tags(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page> {
        self.tags_impl(repo, n, last).await
    }

    async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        self.get_manifest_impl(repo, reference).await
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest> {
        self.put_manifest_impl(repo, reference, content_type, body, extra_tags)
            .await
    }

    async fn delete_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()> {
        self.delete_manifest_impl(repo, reference).await
    }

    async fn stat_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<u64> {
        self.stat_blob_impl(repo, digest).await
    }

    async fn open_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<BlobContent> {
        self.open_blob_impl(repo, digest, range).await
    }

    async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.delete_blob_impl(repo, digest).await
    }

    async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<bool> {
        self.mount_blob_impl(repo, digest, from).await
    }

    async fn start_upload(
        &self,
        repo: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadState> {
        self.start_upload_impl(repo, algorithm).await
    }

    async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadState> {
        self.upload_status_impl(repo, id).await
    }

    async fn upload_chunk(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadState> {
        self.upload_chunk_impl(repo, id, start, length, body).await
    }

    async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(Option<u64>, ByteStream)>,
    ) -> Result<u64> {
        self.finish_upload_impl(repo, id, digest, last_chunk).await
    }

    async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.cancel_upload_impl(repo, id).await
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        self.referrers_impl(repo, digest, artifact_type).await
    }
}
