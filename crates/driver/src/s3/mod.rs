//! The S3 driver: files are objects at distribution's keys (`<rootdirectory>/docker/...`,
//! no leading slash), directories are key prefixes listed with a `/` delimiter, a move is
//! a server-side copy then a delete, and a file appended to across requests is a pending
//! object over a multipart upload (see `pending`), so any node can continue it.
//!
//! The client is `object_store` (Apache Arrow's): SigV4 signing with ring, rustls,
//! multipart create/put-part/complete by upload id from any client, presigned URLs.

mod copy;
mod options;
mod pending;
mod writer;

use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore,
    ObjectStoreExt,
};

pub use options::S3Options;
use pending::{META_KEY, PendingState};
use writer::S3Writer;

use crate::window::{self, DirWindow, KeyWindow};
use crate::{DriverError, FileInfo, FileWriter, Persist, ReadStream, StorageDriver, check_path};

/// Files as objects in one bucket.
pub struct S3Driver {
    store: Arc<AmazonS3>,
    /// `rootdirectory` without surrounding slashes ("" for the bucket's top).
    root: String,
    chunk: usize,
    attributes: Attributes,
    epoch: String,
    copier: copy::Copier,
}

/// Turns an `object_store` error on `path` into the driver's vocabulary.
pub(crate) fn store_error(path: &str, e: object_store::Error) -> DriverError {
    match e {
        object_store::Error::NotFound { .. } => DriverError::PathNotFound(path.to_owned()),
        other if out_of_reach(&other) => DriverError::Unavailable {
            path: path.to_owned(),
            source: std::io::Error::other(other),
        },
        other => DriverError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(other),
        },
    }
}

/// Whether a failure (after object_store's retries) means the store could not be
/// reached or did not answer in time: no connection, a request or connection cut, a
/// timeout. A store that answered with an error (its 5xx included: object_store keeps
/// the status in a type it does not export) stays an I/O failure.
fn out_of_reach(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<HttpError>()
            && matches!(
                h.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            )
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn io_error(path: &str, msg: &str) -> DriverError {
    DriverError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(msg.to_owned()),
    }
}

/// How long a presigned blob URL stays valid (distribution's 20 minutes).
const REDIRECT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// What a HEAD says about a file.
struct Head {
    /// The file's size (a pending object's logical size, not its body's).
    size: u64,
    modified: SystemTime,
    pending: bool,
}

impl S3Driver {
    /// A driver for `opts.bucket`; credentials come from the options or, when absent,
    /// from the standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, instance metadata). Makes no request.
    pub fn new(opts: &S3Options) -> Result<Self, DriverError> {
        // reqwest is built without a default crypto provider: the tree uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&opts.bucket)
            .with_region(&opts.region)
            .with_virtual_hosted_style_request(!opts.force_path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_invalid_certificates(opts.skip_verify)
                    .with_allow_http(true),
            );
        if let Some(url) = opts.endpoint_url() {
            b = b.with_endpoint(url);
        }
        if let (Some(a), Some(s)) = (&opts.access_key, &opts.secret_key) {
            b = b.with_access_key_id(a).with_secret_access_key(s);
        }
        if opts.encrypt {
            b = match &opts.key_id {
                Some(k) => b.with_sse_kms_encryption(k),
                None => {
                    // The key's type is private to object_store; its name is not.
                    let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                        .parse()
                        .map_err(|e| store_error("/", e))?;
                    b.with_config(key, "AES256")
                }
            };
        }
        let store = b.build().map_err(|e| store_error("/", e))?;
        let mut attributes = Attributes::new();
        if let Some(class) = &opts.storage_class {
            attributes.insert(Attribute::StorageClass, class.clone().into());
        }
        let root = opts.root_directory.trim_matches('/').to_owned();
        let http = reqwest013::Client::builder()
            .danger_accept_invalid_certs(opts.skip_verify)
            .build()
            .map_err(|e| DriverError::Io {
                path: "/".into(),
                source: std::io::Error::other(e),
            })?;
        let copier = copy::Copier {
            http,
            bucket_endpoint: opts.bucket_endpoint(),
            bucket: opts.bucket.clone(),
            region: opts.region.clone(),
            part: opts.copy_part.max(options::MIN_PART as u64),
            threshold: opts.copy_threshold,
            concurrency: opts.copy_concurrency,
        };
        Ok(S3Driver {
            copier,
            store: Arc::new(store),
            epoch: format!("s3:{}/{root}", opts.bucket),
            root,
            chunk: opts.chunk_size.max(options::MIN_PART),
            attributes,
        })
    }

    /// The object key of a driver path (checked).
    fn key(&self, path: &str) -> Result<ObjPath, DriverError> {
        check_path(path)?;
        let rel = &path[1..];
        let key = match (self.root.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{rel}", self.root),
        };
        ObjPath::parse(key).map_err(|_| DriverError::InvalidPath(path.to_owned()))
    }

    /// The driver path of an object key or prefix.
    fn path_of(&self, key: &ObjPath) -> String {
        let k = key.as_ref();
        let rel = if self.root.is_empty() {
            k
        } else {
            k.strip_prefix(self.root.as_str())
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(k)
        };
        format!("/{rel}")
    }

    /// A prefix to list under (`None` for the bucket's top).
    fn prefix(key: &ObjPath) -> Option<&ObjPath> {
        (!key.as_ref().is_empty()).then_some(key)
    }

    async fn head(&self, key: &ObjPath, path: &str) -> Result<Option<Head>, DriverError> {
        if key.as_ref().is_empty() {
            return Ok(None);
        }
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.store.get_opts(key, opts).await {
            Ok(r) => Ok(Some(head_of(&r.meta, &r.attributes))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(path, e)),
        }
    }

    /// The state and tail of a pending object.
    async fn pending_state(
        &self,
        key: &ObjPath,
        path: &str,
    ) -> Result<(PendingState, Bytes), DriverError> {
        let body = self
            .store
            .get(key)
            .await
            .map_err(|e| store_error(path, e))?
            .bytes()
            .await
            .map_err(|e| store_error(path, e))?;
        PendingState::decode(&body).ok_or_else(|| io_error(path, "malformed pending object"))
    }

    /// Turns a pending object into an ordinary one (completes its multipart upload).
    async fn finish_pending(&self, key: &ObjPath, path: &str) -> Result<(), DriverError> {
        let (state, tail) = self.pending_state(key, path).await?;
        writer::complete(&self.store, key, path, state, tail).await
    }

    /// Every object under a directory, recursively.
    async fn objects_under(&self, key: &ObjPath, path: &str) -> Result<Vec<ObjPath>, DriverError> {
        self.store
            .list(Self::prefix(key))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| store_error(path, e))
    }

    async fn move_file(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        path: &str,
        head: Head,
    ) -> Result<(), DriverError> {
        if head.pending {
            self.finish_pending(from, path).await?;
        }
        if self.copier.in_parts(head.size) {
            self.copier
                .copy(&self.store, &self.attributes, from, to, head.size, path)
                .await?;
        } else {
            self.store
                .copy(from, to)
                .await
                .map_err(|e| store_error(path, e))?;
        }
        self.store
            .delete(from)
            .await
            .map_err(|e| store_error(path, e))
    }
}

fn head_of(meta: &ObjectMeta, attributes: &Attributes) -> Head {
    let pending_size = attributes
        .get(&Attribute::Metadata(META_KEY.into()))
        .and_then(|v| v.as_ref().parse::<u64>().ok());
    Head {
        size: pending_size.unwrap_or(meta.size),
        modified: SystemTime::from(meta.last_modified),
        pending: pending_size.is_some(),
    }
}

/// The most keys S3 answers in one listing request.
const MAX_KEYS: usize = 1000;

/// One listing response as names and keys relative to `prefix`.
fn key_window(prefix: &str, listed: PaginatedListResult) -> KeyWindow {
    let relative = |k: &str| k.strip_prefix(prefix).unwrap_or(k).to_owned();
    let dirs: Vec<String> = listed
        .result
        .common_prefixes
        .iter()
        .map(|p| relative(p.as_ref()))
        .collect();
    // A common prefix's key ends with the delimiter, which object_store trims.
    let last_key = dirs
        .iter()
        .map(|d| format!("{d}/"))
        .chain(
            listed
                .result
                .objects
                .iter()
                .map(|m| relative(m.location.as_ref())),
        )
        .max();
    KeyWindow {
        dirs,
        last_key,
        next: listed.page_token,
    }
}

fn stream_of(r: object_store::GetResult) -> ReadStream {
    Box::pin(r.into_stream().map_err(std::io::Error::other))
}

#[async_trait]
impl StorageDriver for S3Driver {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError> {
        let key = self.key(path)?;
        let r = self
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(path, e))?;
        if r.attributes
            .get(&Attribute::Metadata(META_KEY.into()))
            .is_some()
        {
            return Err(io_error(path, "file is being appended to"));
        }
        r.bytes().await.map_err(|e| store_error(path, e))
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        let key = self.key(path)?;
        let opts = object_store::PutOptions {
            attributes: self.attributes.clone(),
            ..Default::default()
        };
        self.store
            .put_opts(&key, content.into(), opts)
            .await
            .map_err(|e| store_error(path, e))?;
        Ok(())
    }

    async fn ensure_content(
        &self,
        path: &str,
        content: Bytes,
        _persist: Persist,
    ) -> Result<(), DriverError> {
        // A PUT is atomic and durable once answered: readers see old or new bytes.
        match self.get_content(path).await {
            Ok(b) if b == content => Ok(()),
            Ok(_) | Err(DriverError::PathNotFound(_)) => self.put_content(path, content).await,
            Err(e) => Err(e),
        }
    }

    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError> {
        let key = self.key(path)?;
        if offset == 0 && len.is_none() {
            // A whole blob: one GET, no HEAD before it.
            let r = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(path, e))?;
            if !head_of(&r.meta, &r.attributes).pending {
                return Ok(stream_of(r));
            }
        }
        let head = self
            .head(&key, path)
            .await?
            .ok_or_else(|| DriverError::PathNotFound(path.to_owned()))?;
        if offset > head.size {
            return Err(DriverError::InvalidOffset {
                path: path.to_owned(),
                offset,
            });
        }
        let end = len.map_or(head.size, |l| offset.saturating_add(l).min(head.size));
        if end == offset {
            return Ok(Box::pin(futures::stream::empty()));
        }
        if head.pending {
            // Parts of an incomplete multipart upload cannot be read back; the tail can.
            let (state, tail) = self.pending_state(&key, path).await?;
            if offset < state.parts_len {
                return Err(io_error(
                    path,
                    "bytes in an unfinished multipart upload cannot be read before commit",
                ));
            }
            let from = usize::try_from(offset - state.parts_len).unwrap_or(usize::MAX);
            let to = usize::try_from(end - state.parts_len).unwrap_or(usize::MAX);
            let slice = tail.slice(from.min(tail.len())..to.min(tail.len()));
            return Ok(Box::pin(futures::stream::iter([Ok(slice)])));
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(offset..end)),
            ..Default::default()
        };
        let r = self
            .store
            .get_opts(&key, opts)
            .await
            .map_err(|e| store_error(path, e))?;
        Ok(stream_of(r))
    }

    async fn writer(
        &self,
        path: &str,
        append: bool,
        _persist: Persist,
    ) -> Result<Box<dyn FileWriter>, DriverError> {
        let key = self.key(path)?;
        let mut w = S3Writer {
            store: self.store.clone(),
            key,
            path: path.to_owned(),
            chunk: self.chunk,
            attributes: self.attributes.clone(),
            append,
            state: PendingState::default(),
            buf: BytesMut::new(),
            sending: Default::default(),
            failed: false,
            finished: false,
        };
        if !append {
            return Ok(Box::new(w));
        }
        match self.head(&w.key, path).await? {
            // An empty file (what a POST creates) has nothing to carry over.
            None => {}
            Some(h) if h.size == 0 => {}
            Some(h) if h.pending => {
                let (state, tail) = self.pending_state(&w.key, path).await?;
                w.state = state;
                w.buf.extend_from_slice(&tail);
            }
            Some(_) => {
                // An ordinary object (written whole): its bytes become the start of the
                // new one, streamed through part by part.
                let r = self
                    .store
                    .get(&w.key)
                    .await
                    .map_err(|e| store_error(path, e))?;
                let mut stream = r.into_stream();
                while let Some(chunk) = stream.next().await {
                    w.write(chunk.map_err(|e| store_error(path, e))?).await?;
                }
            }
        }
        Ok(Box::new(w))
    }

    async fn flush(&self, path: &str) -> Result<(), DriverError> {
        // Every answered write is durable already.
        self.stat(path).await.map(|_| ())
    }

    fn volatile_epoch(&self) -> &str {
        // Nothing is volatile: a write S3 acknowledged stays as written, so a saved hash
        // state is trusted whenever it names the offset the stored data has reached.
        &self.epoch
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError> {
        let key = self.key(path)?;
        if let Some(h) = self.head(&key, path).await? {
            return Ok(FileInfo {
                size: h.size,
                is_dir: false,
                modified: Some(h.modified),
            });
        }
        let found = self
            .store
            .list(Self::prefix(&key))
            .next()
            .await
            .transpose()
            .map_err(|e| store_error(path, e))?;
        match found {
            Some(_) => Ok(FileInfo {
                size: 0,
                is_dir: true,
                modified: None,
            }),
            None if path == "/" => Ok(FileInfo {
                size: 0,
                is_dir: true,
                modified: None,
            }),
            None => Err(DriverError::PathNotFound(path.to_owned())),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError> {
        let key = self.key(path)?;
        let listed = self
            .store
            .list_with_delimiter(Self::prefix(&key))
            .await
            .map_err(|e| store_error(path, e))?;
        let out: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|m| &m.location))
            .map(|k| self.path_of(k))
            .collect();
        if out.is_empty() && path != "/" {
            return Err(DriverError::PathNotFound(path.to_owned()));
        }
        Ok(out)
    }

    async fn list_dirs(
        &self,
        path: &str,
        from: Bound<&str>,
        limit: usize,
    ) -> Result<DirWindow, DriverError> {
        let key = self.key(path)?;
        let prefix = match key.as_ref() {
            "" => String::new(),
            k => format!("{k}/"),
        };
        // S3 starts after a key: every name within the bound has a key after
        // `<prefix><from>` (a directory `from` itself is `<prefix><from>/`).
        let start = match from {
            Bound::Unbounded => None,
            Bound::Included(f) | Bound::Excluded(f) => Some(format!("{prefix}{f}")),
        };
        let max_keys = limit.clamp(1, MAX_KEYS);
        window::dirs_in_name_order(from, |token| {
            let opts = PaginatedListOptions {
                offset: start.clone(),
                delimiter: Some("/".into()),
                max_keys: Some(max_keys),
                page_token: token,
                ..Default::default()
            };
            let (store, prefix) = (self.store.clone(), prefix.clone());
            async move {
                let listed = store
                    .list_paginated((!prefix.is_empty()).then_some(prefix.as_str()), opts)
                    .await
                    .map_err(|e| store_error(path, e))?;
                Ok(key_window(&prefix, listed))
            }
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str, _persist: Persist) -> Result<(), DriverError> {
        let (fk, tk) = (self.key(from)?, self.key(to)?);
        if let Some(h) = self.head(&fk, from).await? {
            return self.move_file(&fk, &tk, from, h).await;
        }
        let objects = self.objects_under(&fk, from).await?;
        if objects.is_empty() {
            return Err(DriverError::PathNotFound(from.to_owned()));
        }
        // Like a directory rename on a filesystem, refuse to merge into a non-empty one.
        if self.store.list(Self::prefix(&tk)).next().await.is_some() {
            return Err(DriverError::Io {
                path: to.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let from_prefix = fk.as_ref().len();
        for obj in objects {
            let rel = &obj.as_ref()[from_prefix..];
            let dest = ObjPath::parse(format!("{}{rel}", tk.as_ref()))
                .map_err(|_| DriverError::InvalidPath(to.to_owned()))?;
            let Some(head) = self.head(&obj, from).await? else {
                continue;
            };
            self.move_file(&obj, &dest, from, head).await?;
        }
        Ok(())
    }

    fn writes_appear_on_commit(&self) -> bool {
        // A plain writer PUTs a small file whole on commit, or completes the multipart
        // upload of a large one then; until then the key does not change.
        true
    }

    fn redirects(&self) -> bool {
        true
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>, DriverError> {
        let key = self.key(path)?;
        let url = self
            .store
            .signed_url(http::Method::GET, &key, REDIRECT_VALIDITY)
            .await
            .map_err(|e| store_error(path, e))?;
        Ok(Some(url.to_string()))
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        let key = self.key(path)?;
        let mut found = false;
        if let Some(h) = self.head(&key, path).await? {
            found = true;
            if h.pending {
                // Free the parts now rather than at the bucket's lifecycle expiry.
                if let Ok((state, _)) = self.pending_state(&key, path).await {
                    let _ = self.store.abort_multipart(&key, &state.upload_id).await;
                }
            }
            self.store
                .delete(&key)
                .await
                .map_err(|e| store_error(path, e))?;
        }
        let objects = self.objects_under(&key, path).await?;
        if !objects.is_empty() {
            found = true;
            let locations = futures::stream::iter(objects.into_iter().map(Ok)).boxed();
            self.store
                .delete_stream(locations)
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| store_error(path, e))?;
            // Pending objects (sessions cancelled or purged) had multipart uploads under
            // the tree; so may a writer that failed before its commit. Their parts are
            // billed storage until aborted.
            let prefix = format!("{}/", key.as_ref());
            let prefix = prefix.trim_start_matches('/');
            for (k, id) in self.copier.uploads_under(&self.store, prefix, path).await? {
                if let Ok(k) = ObjPath::parse(k) {
                    let _ = self.store.abort_multipart(&k, &id).await;
                }
            }
        }
        if found {
            Ok(())
        } else {
            Err(DriverError::PathNotFound(path.to_owned()))
        }
    }
}
