//! The service traits: every use case the HTTP API needs, in domain types. `Registry`
//! holds what spans repositories (the catalog) and hands out a `Repository` per name,
//! which holds the rest. `berth-storage` implements both over a storage driver;
//! `berth-http` only calls them, and a wrapper (a pull-through cache, access rules) can
//! implement them around another implementation.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::descriptor::Descriptor;
use crate::digest::{Algorithm, Digest};
use crate::error::Result;
use crate::name::{RepositoryName, Tag};
use crate::range::RangeRequest;
use crate::reference::Reference;
use crate::upload::{Chunk, UploadId};

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
    /// The session id.
    pub id: UploadId,
    /// Bytes received so far.
    pub offset: u64,
    /// When the session started, when the answer knows it without asking storage (a
    /// session just opened); upload URLs carry it in distribution's `_state` token.
    pub started: Option<std::time::SystemTime>,
}

/// What a blob read asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlobRead {
    /// A byte range, resolved against the blob's size; `None` for the whole blob.
    pub range: Option<RangeRequest>,
    /// Whether to open the bytes (GET) or only describe them (HEAD, a `304`).
    pub body: bool,
}

/// A blob found in a repository: its size, the bytes served, and their stream.
pub struct BlobContent {
    /// The whole blob's size.
    pub size: u64,
    /// The inclusive bytes served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The served bytes, when [`BlobRead::body`] asked for them.
    pub stream: Option<ByteStream>,
}

/// The registry's use cases that span repositories, and the door to each repository.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// One page of repository names after `last`, at most `n`.
    async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Page>;

    /// The use cases of one repository (nothing is read or created until one is called).
    fn repository(&self, name: RepositoryName) -> Box<dyn Repository>;
}

/// The use cases of one repository. Tags and digests arrive validated.
#[async_trait]
pub trait Repository: Send + Sync {
    /// The repository's name.
    fn name(&self) -> &RepositoryName;

    /// One page of tags after `last` (`None` for `n`: all). Unknown repository:
    /// `NameUnknown`.
    async fn tags(&self, n: Option<usize>, last: Option<&str>) -> Result<Page>;

    /// The manifest a tag or digest names.
    async fn get_manifest(&self, reference: &Reference) -> Result<StoredManifest>;

    /// Stores a manifest under `reference` and tags it with `extra_tags` too.
    async fn put_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest>;

    /// Stores a manifest copied from another registry (what a pull-through cache
    /// fetched) as `put_manifest` does, without requiring the blobs and manifests it
    /// references to be present: they are fetched when asked for (distribution's proxy
    /// skips layer verification the same way). Implementations that cannot keep copies
    /// answer `Unsupported`.
    async fn put_copied_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PutManifest> {
        let _ = (reference, content_type, body);
        Err(crate::Error::Unsupported(
            "this repository does not keep copied manifests".into(),
        ))
    }

    /// Removes a tag (tag reference) or a manifest and every tag pointing at it (digest);
    /// answers the tags removed (what notifications report as tag deletes).
    async fn delete_manifest(&self, reference: &Reference) -> Result<Vec<Tag>>;

    /// A blob linked into the repository: its size and, when asked, its bytes (or a
    /// range of them), found and opened in one step.
    async fn blob(&self, digest: &Digest, read: BlobRead) -> Result<BlobContent>;

    /// Where a client may GET a linked blob's bytes itself (a presigned storage URL),
    /// with the blob's size; `None` when blobs are served through the registry (the
    /// default, and whenever `storage.redirect.disable` is set).
    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<(String, u64)>> {
        let _ = digest;
        Ok(None)
    }

    /// Unlinks a blob from the repository.
    async fn delete_blob(&self, digest: &Digest) -> Result<()>;

    /// Links an existing blob into the repository: from `from` when given, else from
    /// anywhere it exists. `Ok(false)` when it cannot be mounted.
    async fn mount_blob(&self, digest: &Digest, from: Option<&RepositoryName>) -> Result<bool>;

    /// Opens an upload session; `algorithm` is the digest it will be verified with.
    async fn start_upload(&self, algorithm: Algorithm) -> Result<UploadState>;

    /// Where an upload session of this repository stands.
    async fn upload_status(&self, id: &UploadId) -> Result<UploadState>;

    /// Appends a chunk to a session of this repository.
    async fn upload_chunk(&self, id: &UploadId, chunk: Chunk) -> Result<UploadState>;

    /// Appends an optional last chunk, verifies `digest`, and commits the blob; the
    /// blob's size.
    async fn finish_upload(
        &self,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<Chunk>,
    ) -> Result<u64>;

    /// Abandons an upload session of this repository.
    async fn cancel_upload(&self, id: &UploadId) -> Result<()>;

    /// Stores and links a blob whose bytes are in the local file `file`, which the caller
    /// has already checked against `digest` and must not change afterwards (storage may
    /// link the file itself in rather than copy it); the blob's size. For a registry's
    /// own downloads (a pull-through cache's verified spool file), never client bytes.
    async fn adopt_blob(&self, digest: &Digest, file: &std::path::Path) -> Result<u64>;

    /// Manifests whose subject is `digest`, optionally filtered by artifact type.
    async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>>;
}
