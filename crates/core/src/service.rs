//! The `Registry` trait: every use case the HTTP API needs, expressed in domain types.
//! `berth-storage` implements it over a storage driver; `berth-http` only calls it.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::descriptor::Descriptor;
use crate::digest::{Algorithm, Digest};
use crate::error::Result;
use crate::name::{RepositoryName, Tag};
use crate::reference::Reference;

/// A stream of body bytes; errors are I/O errors of the producer (socket or disk).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// One page of a sorted listing (catalog or tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries, in lexical order.
    pub entries: Vec<String>,
    /// Whether entries exist after the last one returned.
    pub more: bool,
}

/// A manifest as stored: the exact pushed bytes and what they are.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Digest of `body`.
    pub digest: Digest,
    /// Media type derived from the bytes.
    pub media_type: String,
    /// The exact bytes pushed.
    pub body: Bytes,
}

/// What a manifest PUT produced.
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// The subject's digest, when the manifest has one (answered as `OCI-Subject`).
    pub subject: Option<Digest>,
    /// Every tag now pointing at the manifest by this request.
    pub tags: Vec<Tag>,
}

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// The session id (a UUID).
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

/// A blob's bytes (or a range of them) ready to stream.
pub struct BlobContent {
    /// The blob's descriptor (size is the whole blob's).
    pub size: u64,
    /// The blob's digest.
    pub digest: Digest,
    /// The requested bytes.
    pub stream: ByteStream,
}

/// The registry's use cases. Names, tags and digests arrive validated.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// One page of repository names after `last`, at most `n`.
    async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Page>;

    /// One page of tags of a repository after `last` (`None` for `n`: all). Unknown
    /// repository: `NameUnknown`.
    async fn tags(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page>;

    /// The manifest a tag or digest names.
    async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest>;

    /// Stores a manifest under `reference` and tags it with `extra_tags` too.
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest>;

    /// Removes a tag (tag reference) or a manifest and every tag pointing at it (digest).
    async fn delete_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()>;

    /// Size of a blob linked into the repository.
    async fn stat_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<u64>;

    /// A blob's bytes; `range` is an inclusive `(first, last)` byte range already
    /// clamped to the size the caller learnt from `stat_blob`.
    async fn open_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<BlobContent>;

    /// Unlinks a blob from the repository.
    async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()>;

    /// Links an existing blob into `repo`: from `from` when given, else from anywhere it
    /// exists. `Ok(false)` when it cannot be mounted.
    async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<bool>;

    /// Opens an upload session; `algorithm` is the digest it will be verified with.
    async fn start_upload(
        &self,
        repo: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadState>;

    /// Where an upload session stands.
    async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadState>;

    /// Appends a chunk. `start` is the first byte's offset from `Content-Range` (checked
    /// against the current offset), `length` the declared length when known.
    async fn upload_chunk(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadState>;

    /// Appends an optional last chunk, verifies `digest`, and commits the blob.
    async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(Option<u64>, ByteStream)>,
    ) -> Result<u64>;

    /// Abandons an upload session.
    async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()>;

    /// Manifests whose subject is `digest`, optionally filtered by artifact type.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>>;
}
