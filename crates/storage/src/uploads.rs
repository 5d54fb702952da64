//! Upload sessions: bytes stream to `_uploads/<id>/data` while they are hashed; the running
//! hash state is saved after every chunk (so a chunked upload survives a restart), and a
//! finished upload is verified and then renamed into the blob store: nobody ever reads an
//! unverified blob.

use std::sync::Arc;

use berth_core::{Algorithm, ByteStream, Digest, Digester, Error, RepositoryName, UploadState};
use bytes::Bytes;
use futures::StreamExt;

use crate::StorageRegistry;
use crate::hashing::StreamHasher;
use crate::layout::StoragePath;
use crate::links::internal;

/// What this process knows of a session between requests, so the common case reads no
/// state from storage. `None` until first used here (or after a failure): then storage is
/// asked.
pub(crate) type HotState = Option<Hot>;

/// A session as last left by this process.
pub(crate) struct Hot {
    /// Bytes in the data file.
    offset: u64,
    /// Hash of those bytes.
    hash: Digester,
    /// The session directory holds nothing but `data` (created here, no hash state saved).
    bare: bool,
}

/// Upload ids are UUIDs we issued; anything else is unknown (and never reaches a path).
fn check_id(id: &str) -> Result<(), Error> {
    match uuid::Uuid::try_parse(id) {
        Ok(u) if u.hyphenated().to_string() == id => Ok(()),
        _ => Err(Error::BlobUploadUnknown(id.to_owned())),
    }
}

impl StorageRegistry {
    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<HotState>> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_owned()).or_default().clone()
    }

    /// Whether `lock` is still the session's lock: a session discarded while a request
    /// waited for its lock must not be trusted from memory.
    fn is_current(&self, id: &str, lock: &Arc<tokio::sync::Mutex<HotState>>) -> bool {
        let map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).is_some_and(|l| Arc::ptr_eq(l, lock))
    }

    /// Locks a session, dropping what memory says of it if it was discarded meanwhile.
    async fn lock_session<'a>(
        &self,
        lock: &'a Arc<tokio::sync::Mutex<HotState>>,
        id: &str,
    ) -> tokio::sync::MutexGuard<'a, HotState> {
        let mut guard = lock.lock().await;
        if !self.is_current(id, lock) {
            *guard = None;
        }
        guard
    }

    /// Drops the in-memory entry of a session storage does not know, so requests naming
    /// made-up sessions leave nothing behind.
    fn forget_if_unknown(&self, id: &str, e: &Error) {
        if matches!(e, Error::BlobUploadUnknown(_)) {
            self.forget_session(id);
        }
    }

    fn forget_session(&self, id: &str) {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Bytes received so far; `BlobUploadUnknown` when the session does not exist.
    async fn upload_offset(&self, repo: &RepositoryName, id: &str) -> Result<u64, Error> {
        match self
            .driver
            .stat(&StoragePath::UploadData(repo, id).path())
            .await
        {
            Ok(info) => Ok(info.size),
            Err(e) if e.is_not_found() => Err(Error::BlobUploadUnknown(id.to_owned())),
            Err(e) => Err(internal(e)),
        }
    }

    /// The algorithm chosen when the session started (recorded by its hash-state directory).
    async fn upload_algorithm(&self, repo: &RepositoryName, id: &str) -> Result<Algorithm, Error> {
        let p = StoragePath::UploadHashStates(repo, id, Algorithm::Sha512);
        Ok(if self.exists(p).await? {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        })
    }

    /// The hash of the first `offset` bytes: from memory, a saved state, or by re-reading.
    async fn resume_hash(
        &self,
        repo: &RepositoryName,
        id: &str,
        hot: &HotState,
        algorithm: Algorithm,
        offset: u64,
    ) -> Result<Digester, Error> {
        if let Some(hot) = hot
            && hot.offset == offset
            && hot.hash.algorithm() == algorithm
        {
            return Ok(hot.hash.clone());
        }
        let saved = StoragePath::UploadHashState(repo, id, algorithm, offset).path();
        if let Ok(bytes) = self.driver.get_content(&saved).await
            && let Some(h) = Digester::restore(algorithm, &bytes)
        {
            return Ok(h);
        }
        self.rehash(repo, id, algorithm, offset).await
    }

    async fn rehash(
        &self,
        repo: &RepositoryName,
        id: &str,
        algorithm: Algorithm,
        offset: u64,
    ) -> Result<Digester, Error> {
        let mut h = Digester::new(algorithm);
        if offset == 0 {
            return Ok(h);
        }
        let path = StoragePath::UploadData(repo, id).path();
        let mut stream = self
            .driver
            .reader(&path, 0, Some(offset))
            .await
            .map_err(internal)?;
        let mut seen = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Internal(format!("re-reading {path}: {e}")))?;
            seen += chunk.len() as u64;
            h.update(&chunk);
        }
        if seen != offset {
            return Err(Error::Internal(format!(
                "{path} holds {seen} bytes, expected {offset}"
            )));
        }
        Ok(h)
    }

    async fn save_hash(
        &self,
        repo: &RepositoryName,
        id: &str,
        h: &Digester,
        offset: u64,
        previous: Option<u64>,
    ) -> Result<(), Error> {
        let alg = h.algorithm();
        let path = StoragePath::UploadHashState(repo, id, alg, offset).path();
        self.driver
            .ensure_content_unflushed(&path, Bytes::from(h.save()))
            .await
            .map_err(internal)?;
        if let Some(prev) = previous.filter(|p| *p != offset) {
            let _ = self
                .driver
                .delete(&StoragePath::UploadHashState(repo, id, alg, prev).path())
                .await;
        }
        Ok(())
    }

    pub(crate) async fn start_upload_impl(
        &self,
        repo: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadState, Error> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        // The empty data file is the session. berth writes no `startedat`: purging goes
        // by the data file's last change, and a session that holds nothing but its data
        // can become the blob's directory on commit (see `publish`).
        self.driver
            .ensure_content_unflushed(&StoragePath::UploadData(repo, &id).path(), Bytes::new())
            .await
            .map_err(internal)?;
        let hash = Digester::new(algorithm);
        let bare = algorithm == Algorithm::Sha256;
        if !bare {
            // The saved state doubles as the record of the session's algorithm.
            self.save_hash(repo, &id, &hash, 0, None).await?;
        }
        *self.session_lock(&id).lock().await = Some(Hot {
            offset: 0,
            hash,
            bare,
        });
        Ok(UploadState { id, offset: 0 })
    }

    pub(crate) async fn upload_status_impl(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<UploadState, Error> {
        check_id(id)?;
        let offset = self.upload_offset(repo, id).await?;
        Ok(UploadState {
            id: id.to_owned(),
            offset,
        })
    }

    /// Appends one chunk while the session lock is held; updates the hot state, and saves
    /// the hash state when `persist` (not needed when the upload finishes right after).
    #[allow(clippy::too_many_arguments)]
    async fn append(
        &self,
        repo: &RepositoryName,
        id: &str,
        hot: &mut HotState,
        start: Option<u64>,
        length: Option<u64>,
        mut body: ByteStream,
        persist: bool,
    ) -> Result<u64, Error> {
        let offset = match hot {
            Some(h) => h.offset,
            None => self.upload_offset(repo, id).await?,
        };
        if let Some(start) = start.filter(|s| *s != offset) {
            return Err(Error::ChunkOutOfOrder { offset, start });
        }
        let (algorithm, bare) = match hot {
            Some(h) => (h.hash.algorithm(), h.bare),
            None => (self.upload_algorithm(repo, id).await?, false),
        };
        let mut h = StreamHasher::new(self.resume_hash(repo, id, hot, algorithm, offset).await?);
        let path = StoragePath::UploadData(repo, id).path();
        let mut w = self.driver.writer(&path, true).await.map_err(internal)?;
        let mut received = 0u64;
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    if let Err(e) = h.update(&bytes).await {
                        failure = Some(e);
                        break;
                    }
                    received += bytes.len() as u64;
                    if let Err(e) = w.write(bytes).await {
                        failure = Some(internal(e));
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(Error::BodyRead(e.to_string()));
                    break;
                }
            }
        }
        let end = w.size();
        let committed = w.commit().await.map_err(internal);
        let h = h.finish().await?;
        // Whatever reached the file is part of the upload now: record its hash so the
        // session stays consistent, then report the first failure.
        if end == offset + received {
            if persist {
                self.save_hash(repo, id, &h, end, Some(offset)).await?;
            }
            *hot = Some(Hot {
                offset: end,
                hash: h,
                bare: bare && !persist,
            });
        } else {
            *hot = None;
        }
        committed?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(len) = length.filter(|l| *l != received) {
            return Err(Error::SizeInvalid(format!(
                "chunk declared {len} bytes but {received} arrived"
            )));
        }
        Ok(end)
    }

    pub(crate) async fn upload_chunk_impl(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadState, Error> {
        check_id(id)?;
        let lock = self.session_lock(id);
        let mut hot = self.lock_session(&lock, id).await;
        let offset = self
            .append(repo, id, &mut hot, start, length, body, true)
            .await
            .inspect_err(|e| self.forget_if_unknown(id, e))?;
        Ok(UploadState {
            id: id.to_owned(),
            offset,
        })
    }

    pub(crate) async fn finish_upload_impl(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(Option<u64>, ByteStream)>,
    ) -> Result<u64, Error> {
        check_id(id)?;
        let lock = self.session_lock(id);
        let mut hot = self.lock_session(&lock, id).await;
        let size = match (last_chunk, hot.as_ref()) {
            (Some((start, body)), _) => self
                .append(repo, id, &mut hot, start, None, body, false)
                .await
                .inspect_err(|e| self.forget_if_unknown(id, e))?,
            (None, Some(h)) => h.offset,
            (None, None) => self
                .upload_offset(repo, id)
                .await
                .inspect_err(|e| self.forget_if_unknown(id, e))?,
        };
        let h = self
            .resume_hash(repo, id, &hot, digest.algorithm(), size)
            .await?;
        let actual = h.finish();
        if actual != *digest {
            drop(hot);
            self.discard_upload(repo, id).await?;
            return Err(Error::DigestInvalid(format!(
                "uploaded content has digest {actual}, not {digest}"
            )));
        }
        // Still holding the session lock: no chunk can land between verifying and publishing.
        // The repository link goes to the disk while the blob is published: a reader that
        // finds the link first still finds no blob and answers "unknown", as before the
        // push; memory learns of the blob once both are in place.
        let bare = hot.as_ref().is_some_and(|h| h.bare);
        futures::try_join!(
            self.publish(repo, id, digest, bare),
            self.write_link(StoragePath::LayerLink(repo, digest), digest),
        )?;
        drop(hot);
        self.note_linked(repo, digest, size).await;
        Ok(size)
    }

    /// Moves verified upload data into the blob store; the blob appears whole, by rename.
    /// A session directory holding nothing but `data` becomes the blob's directory itself,
    /// so a small push creates and deletes no extra files (inode churn is what limits
    /// small pushes on ext4). Otherwise, or when the blob exists already (a concurrent push
    /// of the same bytes), the data file is renamed over the blob and the session removed.
    /// `bare` says the directory is known to hold only `data`; otherwise it is listed.
    async fn publish(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        bare: bool,
    ) -> Result<(), Error> {
        let session = StoragePath::UploadDir(repo, id);
        if (bare || self.children(session).await? == ["data"])
            && self
                .driver
                .rename(&session.path(), &StoragePath::BlobDir(digest).path())
                .await
                .is_ok()
        {
            self.forget_session(id);
            return Ok(());
        }
        let data = StoragePath::UploadData(repo, id).path();
        self.driver
            .rename(&data, &StoragePath::BlobData(digest).path())
            .await
            .map_err(internal)?;
        self.discard_upload(repo, id).await
    }

    pub(crate) async fn cancel_upload_impl(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<(), Error> {
        check_id(id)?;
        let lock = self.session_lock(id);
        let _guard = lock.lock().await;
        if !self.exists(StoragePath::UploadDir(repo, id)).await? {
            self.forget_session(id);
            return Err(Error::BlobUploadUnknown(id.to_owned()));
        }
        drop(_guard);
        self.discard_upload(repo, id).await
    }

    /// Deletes a session's files and its in-memory state.
    pub(crate) async fn discard_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<(), Error> {
        self.forget_session(id);
        self.remove(StoragePath::UploadDir(repo, id))
            .await
            .map(|_| ())
    }
}
