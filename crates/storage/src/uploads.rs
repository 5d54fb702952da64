//! Upload sessions: bytes stream to `_uploads/<id>/data` while they are hashed; the running
//! hash state is saved after every chunk (so a chunked upload survives a restart), and a
//! finished upload is verified and then renamed into the blob store: nobody ever reads an
//! unverified blob. A session belongs to the repository that opened it: every step names
//! it by repository and id, so another repository's request finds no session.
//!
//! Every step that writes a session holds its lock: this process's mutex, and in a
//! fleet the session's lease (`lease`), so two nodes never append to one session at
//! once (each append reads where the data ends, checks the chunk starts there, writes,
//! and saves the hash state named by the new end: interleaved, two appends both pass
//! the check, and the later one's write drops the other's acknowledged bytes).
//!
//! Optionally the store bounds the sessions open at once (`Opened`): a session counts on
//! the node that opened it, from its start until this node finishes, cancels or purges
//! it, or finds it gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use berth_core::{
    Algorithm, Chunk, Digest, Digester, Error, RepositoryName, UploadId, UploadState,
};
use berth_driver::{FileWriter, Persist, StorageDriver};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::access::{Access, DriverResult};
use crate::blobs::Alongside;
use crate::hashing::StreamHasher;
use crate::layout::StoragePath;
use crate::lease::{Fleet, Lease};

/// A session as this process last left it, so the common case reads no state from
/// storage. `None` until first used here (or after a failure): then storage is asked.
struct LiveSession {
    /// Bytes in the data file.
    offset: u64,
    /// Hash of those bytes.
    hash: Digester,
    /// The session's epoch file names the current volatile epoch (written by this
    /// process), so its saved hash states may be trusted.
    epoch_recorded: bool,
    /// The session directory holds nothing but `data` (and `startedat`, when the store
    /// writes it): created here, no hash state saved.
    only_data: bool,
}

/// A session's key: sessions are per repository.
type SessionKey = (RepositoryName, UploadId);
/// A session's lock and what memory knows of it.
type SessionSlot = Arc<AsyncMutex<Option<LiveSession>>>;

/// The sessions this process opened and has not yet seen end, counted against a bound
/// (`berth.limits.maxuploadsessions`). Only sessions started here count: one started
/// by another node of a fleet and continued here is not counted on either side of the
/// hand-over twice, and a restart starts from zero (sessions left on storage by an
/// earlier process are the purger's). A session this node opened but another node
/// finished stays counted until this node touches it again (and finds it gone) or
/// its next purge pass, which drops every count whose session is no longer stored.
struct Opened {
    limit: usize,
    keys: Mutex<HashSet<SessionKey>>,
}

impl Opened {
    fn keys(&self) -> std::sync::MutexGuard<'_, HashSet<SessionKey>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `key`, or refuses when every slot is taken.
    fn reserve(&self, key: &SessionKey) -> Result<(), Error> {
        let mut keys = self.keys();
        if keys.len() >= self.limit {
            return Err(Error::TooManyUploads { limit: self.limit });
        }
        keys.insert(key.clone());
        Ok(())
    }
}

/// Upload sessions over the driver.
pub(crate) struct UploadStore {
    access: Access,
    /// Write `startedat` when a session starts (`Options::upload_startedat`).
    startedat: bool,
    sessions: Mutex<HashMap<SessionKey, SessionSlot>>,
    /// The bound on open sessions, when one is configured.
    opened: Option<Opened>,
    /// The fleet's session leases.
    fleet: Fleet,
}

/// A finished upload whose bytes matched the digest, still holding its session, ready to
/// be published into the blob store.
pub(crate) struct Verified<'a> {
    store: &'a UploadStore,
    key: SessionKey,
    digest: Digest,
    size: u64,
    only_data: bool,
    /// Set when the bytes did not go through the session's data file (see
    /// [`UploadStore::verify_direct`]).
    direct: Option<Direct>,
    // Before the mutex, so released first (see `lease::Held`).
    _lease: Lease,
    _session: OwnedMutexGuard<Option<LiveSession>>,
}

/// Where a monolithic upload's bytes went instead of the session's data file.
enum Direct {
    /// Into a writer at the blob's own path, to be committed on publishing (dropped
    /// unpublished, when the link's lock could not be had, it leaves nothing: see
    /// `StorageDriver::writes_appear_on_commit`).
    Written(Box<dyn FileWriter>),
    /// Nowhere: the blob was stored already, and the bytes were only hashed.
    Stored,
}

impl Verified<'_> {
    /// The blob's size.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Moves the verified data into the blob store; the blob appears whole, by rename
    /// (or, for bytes written at the blob's path, by committing them). A session
    /// directory holding nothing but `data` (and `startedat`) becomes the blob's
    /// directory itself, then loses `startedat`, so a small push deletes at most one
    /// file rather than a file and a directory (inode churn is what limits small pushes
    /// on ext4; readers only ever open `data`). Otherwise, or when the blob exists
    /// already (a concurrent push of the same bytes), the data file is renamed over the
    /// blob and the session removed.
    ///
    /// The move is not yet flushed: what it answers is that flush (or the removal of a
    /// session whose bytes went straight to the blob), so the caller can write the
    /// repository link meanwhile (see `BlobStore::link`).
    pub(crate) async fn publish(&mut self) -> Result<Option<Alongside<'_>>, Error> {
        let (repo, id) = (&self.key.0, &self.key.1);
        let store = self.store;
        let driver = store.access.driver();
        if let Some(direct) = self.direct.take() {
            if let Direct::Written(w) = direct {
                w.commit().await.or_internal()?;
            }
            return Ok(Some(Box::pin(store.discard(repo, id))));
        }
        let session = StoragePath::UploadDir(repo, id);
        let (only_data, started_at) = if self.only_data {
            (true, store.startedat)
        } else {
            let mut files = store.access.children(session).await?;
            files.sort();
            match files.as_slice() {
                [d] if d == "data" => (true, false),
                [d, s] if d == "data" && s == "startedat" => (true, true),
                _ => (false, false),
            }
        };
        if only_data
            && driver
                .rename(
                    &session.path(),
                    &StoragePath::BlobDir(&self.digest).path(),
                    Persist::Volatile,
                )
                .await
                .is_ok()
        {
            store.forget(&self.key);
            if started_at {
                // Should this fail, the file stays where nothing reads it: berth and
                // distribution open only a blob's `data`.
                let _ = store
                    .access
                    .remove(StoragePath::BlobStartedAt(&self.digest))
                    .await;
            }
            return Ok(flush(driver, StoragePath::BlobParent(&self.digest)));
        }
        driver
            .rename(
                &StoragePath::UploadData(repo, id).path(),
                &StoragePath::BlobData(&self.digest).path(),
                Persist::Volatile,
            )
            .await
            .or_internal()?;
        store.discard(repo, id).await?;
        Ok(flush(driver, StoragePath::BlobDir(&self.digest)))
    }
}

impl UploadStore {
    pub(crate) fn new(
        access: Access,
        startedat: bool,
        max_sessions: Option<usize>,
        fleet: Fleet,
    ) -> Self {
        UploadStore {
            access,
            startedat,
            sessions: Mutex::new(HashMap::new()),
            opened: max_sessions.map(|limit| Opened {
                limit,
                keys: Mutex::new(HashSet::new()),
            }),
            fleet,
        }
    }

    /// The sessions counted against the bound right now (a snapshot), for the purger
    /// to reconcile with storage; empty without a bound.
    pub(crate) fn counted(&self) -> HashSet<SessionKey> {
        self.opened
            .as_ref()
            .map(|o| o.keys().clone())
            .unwrap_or_default()
    }

    /// Frees the slots of `gone`: sessions counted when a purge pass began that the
    /// pass did not find on storage (another node finished or cancelled them).
    pub(crate) fn uncount(&self, gone: impl IntoIterator<Item = SessionKey>) {
        if let Some(opened) = &self.opened {
            let mut keys = opened.keys();
            for key in gone {
                keys.remove(&key);
            }
        }
    }

    /// Sessions this node holds in memory: started or continued here and not yet seen
    /// to end.
    pub(crate) fn open_sessions(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn slot(&self, key: &SessionKey) -> SessionSlot {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.clone()).or_default().clone()
    }

    /// Whether `slot` is still the session's: a session discarded while a request
    /// waited for its lock must not be trusted from memory.
    fn is_current(&self, key: &SessionKey, slot: &SessionSlot) -> bool {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_some_and(|l| Arc::ptr_eq(l, slot))
    }

    /// Locks a session, dropping what memory says of it if it was discarded meanwhile;
    /// then takes its lease in the fleet.
    async fn lock(
        &self,
        key: &SessionKey,
    ) -> Result<(OwnedMutexGuard<Option<LiveSession>>, Lease), Error> {
        let slot = self.slot(key);
        let mut guard = slot.clone().lock_owned().await;
        if !self.is_current(key, &slot) {
            *guard = None;
        }
        let lease = self.fleet.lease("upload", key).await?;
        Ok((guard, lease))
    }

    /// Drops the in-memory entry of a session storage does not know, so requests naming
    /// made-up sessions leave nothing behind.
    fn forget_if_unknown(&self, key: &SessionKey, e: &Error) {
        if matches!(e, Error::BlobUploadUnknown(_)) {
            self.forget(key);
        }
    }

    /// Drops what memory holds of a session, its slot under the bound included: every
    /// way a session ends (published, discarded, found unknown) comes through here.
    fn forget(&self, key: &SessionKey) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(opened) = &self.opened {
            opened.keys().remove(key);
        }
    }

    /// Bytes received so far; `BlobUploadUnknown` when the session does not exist.
    async fn offset(&self, repo: &RepositoryName, id: &UploadId) -> Result<u64, Error> {
        self.access
            .size(StoragePath::UploadData(repo, id))
            .await?
            .ok_or_else(|| Error::BlobUploadUnknown(id.to_string()))
    }

    /// The algorithm chosen when the session started (recorded by its hash-state directory).
    async fn algorithm(&self, repo: &RepositoryName, id: &UploadId) -> Result<Algorithm, Error> {
        let p = StoragePath::UploadHashStates(repo, id, Algorithm::Sha512);
        Ok(if self.access.exists(p).await? {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        })
    }

    /// The hash of the first `offset` bytes: from memory, a saved state, or by re-reading.
    async fn resume_hash(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        live: &Option<LiveSession>,
        algorithm: Algorithm,
        offset: u64,
    ) -> Result<Digester, Error> {
        if let Some(live) = live
            && live.offset == offset
            && live.hash.algorithm() == algorithm
        {
            return Ok(live.hash.clone());
        }
        let saved = StoragePath::UploadHashState(repo, id, algorithm, offset);
        if self.states_trusted(repo, id).await
            && let Ok(Some(bytes)) = self.access.get(saved).await
            && let Some(h) = Digester::restore(algorithm, &bytes)
        {
            return Ok(h);
        }
        self.rehash(repo, id, algorithm, offset).await
    }

    /// Whether the session's saved hash states were saved in the driver's current
    /// volatile epoch. The chunks they cover were written unflushed: within the epoch
    /// (this boot) the data file holds exactly what was hashed; after it (a reboot may
    /// have lost the file's tail) only re-reading the file tells what it holds. The
    /// states themselves stay in distribution's format, so the epoch is a file beside
    /// them.
    async fn states_trusted(&self, repo: &RepositoryName, id: &UploadId) -> bool {
        let epoch = self.access.get(StoragePath::UploadEpoch(repo, id)).await;
        matches!(epoch, Ok(Some(e)) if e == self.access.driver().volatile_epoch().as_bytes())
    }

    async fn rehash(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        algorithm: Algorithm,
        offset: u64,
    ) -> Result<Digester, Error> {
        let mut h = Digester::new(algorithm);
        if offset == 0 {
            return Ok(h);
        }
        let path = StoragePath::UploadData(repo, id).path();
        let mut stream = self
            .access
            .driver()
            .reader(&path, 0, Some(offset))
            .await
            .or_internal()?;
        let mut seen = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::internal_from(format!("re-reading {path}"), e))?;
            seen += chunk.len() as u64;
            h.update(&chunk);
        }
        if seen != offset {
            return Err(Error::internal(format!(
                "{path} holds {seen} bytes, expected {offset}"
            )));
        }
        Ok(h)
    }

    /// Saves the hash of the first `offset` bytes and drops the state at `previous`.
    /// Unless `epoch_recorded`, every other saved state is removed (they may come from
    /// an earlier epoch) before the session's epoch file is pointed at the current one,
    /// so a state is trusted only if it was saved in the epoch the file names.
    async fn save_hash(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        h: &Digester,
        offset: u64,
        previous: Option<u64>,
        epoch_recorded: bool,
    ) -> Result<(), Error> {
        let alg = h.algorithm();
        self.write_state(repo, id, h, offset).await?;
        if let Some(prev) = previous {
            self.drop_state(repo, id, alg, prev, offset).await;
        }
        if epoch_recorded {
            return Ok(());
        }
        let states = StoragePath::UploadHashStates(repo, id, alg);
        let keep = offset.to_string();
        for other in self.access.children(states).await? {
            if other != keep
                && let Ok(stale) = other.parse::<u64>()
            {
                self.access
                    .remove(StoragePath::UploadHashState(repo, id, alg, stale))
                    .await?;
            }
        }
        let epoch = Bytes::copy_from_slice(self.access.driver().volatile_epoch().as_bytes());
        self.access
            .ensure(StoragePath::UploadEpoch(repo, id), epoch, Persist::Volatile)
            .await
    }

    /// Writes the hash of the first `offset` bytes where a resume looks for it.
    async fn write_state(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        h: &Digester,
        offset: u64,
    ) -> Result<(), Error> {
        let at = StoragePath::UploadHashState(repo, id, h.algorithm(), offset);
        self.access
            .ensure(at, Bytes::from(h.save()), Persist::Volatile)
            .await
    }

    /// Removes the hash state saved at `prev`, now that one at `now` replaces it.
    async fn drop_state(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        alg: Algorithm,
        prev: u64,
        now: u64,
    ) {
        if prev != now {
            // Best effort: a state left behind is trusted only within this epoch, in
            // which it was true of the data.
            let _ = self
                .access
                .remove(StoragePath::UploadHashState(repo, id, alg, prev))
                .await;
        }
    }

    /// Opens a session; `TooManyUploads` when the bound on open sessions is reached.
    pub(crate) async fn start(
        &self,
        repo: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadState, Error> {
        let id = UploadId::random();
        let key = (repo.clone(), id.clone());
        // The slot is taken before any I/O, so concurrent starts cannot overshoot.
        if let Some(opened) = &self.opened {
            opened.reserve(&key)?;
        }
        self.create(repo, id, algorithm)
            .await
            .inspect_err(|_| self.forget(&key))
    }

    /// Creates the files of a new session and what memory knows of it.
    async fn create(
        &self,
        repo: &RepositoryName,
        id: UploadId,
        algorithm: Algorithm,
    ) -> Result<UploadState, Error> {
        // The empty data file is the session; `startedat` is what distribution needs to
        // resume it and to purge it when stale (see `crate::purge::startedat`). Written
        // together: on object storage each is a round trip.
        let started = SystemTime::now();
        let data = self.access.ensure(
            StoragePath::UploadData(repo, &id),
            Bytes::new(),
            Persist::Volatile,
        );
        let started_at = async {
            if self.startedat {
                self.access
                    .ensure(
                        StoragePath::UploadStartedAt(repo, &id),
                        Bytes::from(crate::purge::startedat(started)),
                        Persist::Volatile,
                    )
                    .await
            } else {
                Ok(())
            }
        };
        futures::try_join!(data, started_at)?;
        let hash = Digester::new(algorithm);
        let only_data = algorithm == Algorithm::Sha256;
        if !only_data {
            // The saved state doubles as the record of the session's algorithm.
            self.save_hash(repo, &id, &hash, 0, None, false).await?;
        }
        let key = (repo.clone(), id.clone());
        *self.slot(&key).lock().await = Some(LiveSession {
            offset: 0,
            hash,
            epoch_recorded: !only_data,
            only_data,
        });
        Ok(UploadState {
            id,
            offset: 0,
            started: Some(started),
        })
    }

    /// Where a session stands.
    pub(crate) async fn status(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadState, Error> {
        let offset = self.offset(repo, id).await?;
        Ok(UploadState {
            id: id.clone(),
            offset,
            started: None,
        })
    }

    /// Appends one chunk while the session lock is held; updates the live state, and
    /// saves the hash state when `persist_state` (a PATCH; not needed for the last chunk
    /// of a finishing upload, which is flushed instead).
    async fn append(
        &self,
        key: &SessionKey,
        live: &mut Option<LiveSession>,
        chunk: Chunk,
        persist_state: bool,
    ) -> Result<u64, Error> {
        let (repo, id) = (&key.0, &key.1);
        if live.is_none() {
            // Opening for append would create the file of a session that does not exist.
            self.offset(repo, id).await?;
        }
        let path = StoragePath::UploadData(repo, id).path();
        // Chunks are written unflushed; the upload's data is flushed once, before it is
        // published (a last chunk's writer flushes the whole file as it commits).
        let persist = if persist_state {
            Persist::Volatile
        } else {
            Persist::Durable
        };
        let mut w = self
            .access
            .driver()
            .writer(&path, true, persist)
            .await
            .or_internal()?;
        // The file, not memory, says where the session stands: another node sharing the
        // storage (a mixed fleet) may have appended since this process last saw it.
        let offset = w.size();
        if live.as_ref().is_some_and(|l| l.offset != offset) {
            *live = None;
        }
        if let Some(start) = chunk.start.filter(|s| *s != offset) {
            return Err(Error::ChunkOutOfOrder { offset, start });
        }
        let (algorithm, only_data) = match live {
            Some(l) => (l.hash.algorithm(), l.only_data),
            None => (self.algorithm(repo, id).await?, false),
        };
        let mut h = StreamHasher::new(self.resume_hash(repo, id, live, algorithm, offset).await?);
        let (received, failure) = pour(chunk.body, &mut h, Some(&mut w)).await;
        let end = w.size();
        let h = match h.finish().await {
            Ok(h) => h,
            Err(e) => {
                let _ = w.commit().await;
                *live = None;
                return Err(e);
            }
        };
        // Whatever reached the file is part of the upload now: record its hash so the
        // session stays consistent, then report the first failure.
        let whole = end == offset + received;
        let mut epoch_recorded = live.as_ref().is_some_and(|l| l.epoch_recorded);
        // Once the epoch is recorded the new state is saved while the bytes are
        // committed (on object storage each is a round trip): states are looked up by
        // the size the data has, so one for an end the data never reached is never
        // read. The previous state goes only once the bytes are in: on S3 the data of
        // an unfinished upload cannot be re-read to rebuild it.
        let early = whole && persist_state && epoch_recorded;
        let save_early = async {
            if early {
                self.write_state(repo, id, &h, end).await
            } else {
                Ok(())
            }
        };
        let (committed, saved) = tokio::join!(w.commit(), save_early);
        let committed = committed.or_internal();
        if whole && committed.is_ok() {
            if early {
                saved?;
                self.drop_state(repo, id, h.algorithm(), offset, end).await;
            } else if persist_state {
                self.save_hash(repo, id, &h, end, Some(offset), epoch_recorded)
                    .await?;
                epoch_recorded = true;
            }
            *live = Some(LiveSession {
                offset: end,
                hash: h,
                epoch_recorded,
                only_data: only_data && !persist_state,
            });
        } else {
            *live = None;
        }
        committed?;
        if let Some(e) = failure {
            return Err(e);
        }
        check_length(chunk.length, received)?;
        Ok(end)
    }

    /// Appends a chunk to a session.
    pub(crate) async fn append_chunk(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        chunk: Chunk,
    ) -> Result<UploadState, Error> {
        let key = (repo.clone(), id.clone());
        let (mut live, _lease) = self.lock(&key).await?;
        let offset = self
            .append(&key, &mut live, chunk, true)
            .await
            .inspect_err(|e| self.forget_if_unknown(&key, e))?;
        Ok(UploadState {
            id: id.clone(),
            offset,
            started: None,
        })
    }

    /// Appends an optional last chunk and checks the session's bytes against `digest`;
    /// on a mismatch the session is discarded. The result keeps the session locked until
    /// it is published or dropped.
    pub(crate) async fn verify(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<Chunk>,
    ) -> Result<Verified<'_>, Error> {
        let key = (repo.clone(), id.clone());
        let (mut live, lease) = self.lock(&key).await?;
        let last_chunk = match last_chunk {
            Some(chunk) if self.access.driver().writes_appear_on_commit() => {
                // Asked of storage: another node may have appended since.
                let offset = self
                    .offset(repo, id)
                    .await
                    .inspect_err(|e| self.forget_if_unknown(&key, e))?;
                if offset == 0 {
                    let (size, direct) = self.verify_direct(&key, digest, chunk).await?;
                    return Ok(Verified {
                        store: self,
                        key,
                        digest: digest.clone(),
                        size,
                        only_data: false,
                        direct: Some(direct),
                        _lease: lease,
                        _session: live,
                    });
                }
                Some(chunk)
            }
            other => other,
        };
        let flushed = last_chunk.is_some();
        let size = match last_chunk {
            Some(chunk) => self.append(&key, &mut live, chunk, false).await,
            // Asked of storage even when memory knows the session: another node may have
            // appended since.
            None => self.offset(repo, id).await,
        }
        .inspect_err(|e| self.forget_if_unknown(&key, e))?;
        if !flushed {
            // The chunks were written unflushed; a last chunk's writer flushes the whole
            // file as it commits, otherwise it is flushed here, before publishing.
            let data = StoragePath::UploadData(repo, id).path();
            self.access.driver().flush(&data).await.or_internal()?;
        }
        if live.as_ref().is_some_and(|l| l.offset != size) {
            *live = None;
        }
        let h = self
            .resume_hash(repo, id, &live, digest.algorithm(), size)
            .await?;
        let actual = h.finish();
        if actual != *digest {
            drop(live);
            self.discard(repo, id).await?;
            return Err(Error::DigestInvalid(format!(
                "uploaded content has digest {actual}, not {digest}"
            )));
        }
        let only_data = live.as_ref().is_some_and(|l| l.only_data);
        Ok(Verified {
            store: self,
            key,
            digest: digest.clone(),
            size,
            only_data,
            direct: None,
            _lease: lease,
            _session: live,
        })
    }

    /// A whole blob in one request (the session has no bytes yet) over a driver whose
    /// writes appear only on commit: the bytes go straight to the blob's own path, where
    /// they stay invisible until the digest is checked, sparing object storage the
    /// session file's write and its copy to the blob's key (S3 has no rename). A blob
    /// stored already is only hashed. On a mismatch the session is discarded, as
    /// [`verify`](Self::verify) does; on any failure nothing stays at the blob's path.
    async fn verify_direct(
        &self,
        key: &SessionKey,
        digest: &Digest,
        chunk: Chunk,
    ) -> Result<(u64, Direct), Error> {
        if let Some(start) = chunk.start.filter(|s| *s != 0) {
            return Err(Error::ChunkOutOfOrder { offset: 0, start });
        }
        let blob = StoragePath::BlobData(digest);
        let mut writer = match self.access.size(blob).await? {
            Some(_) => None,
            None => Some(
                self.access
                    .driver()
                    .writer(&blob.path(), false, Persist::Durable)
                    .await
                    .or_internal()?,
            ),
        };
        let mut h = StreamHasher::new(Digester::new(digest.algorithm()));
        let (received, failure) = pour(chunk.body, &mut h, writer.as_mut()).await;
        let actual = h.finish().await.map(|h| h.finish());
        let checked = match (failure, actual) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(actual)) if actual != *digest => {
                // The client sent the wrong bytes: the session ends, as on a mismatch
                // of bytes sent in chunks.
                self.discard(&key.0, &key.1).await?;
                Err(Error::DigestInvalid(format!(
                    "uploaded content has digest {actual}, not {digest}"
                )))
            }
            (None, Ok(_)) => check_length(chunk.length, received),
        };
        match (checked, writer) {
            (Ok(()), Some(w)) => Ok((received, Direct::Written(w))),
            (Ok(()), None) => Ok((received, Direct::Stored)),
            (Err(e), w) => {
                if let Some(w) = w {
                    let _ = w.abort().await;
                }
                Err(e)
            }
        }
    }

    /// Abandons a session; `BlobUploadUnknown` when the repository has no such session.
    pub(crate) async fn cancel(&self, repo: &RepositoryName, id: &UploadId) -> Result<(), Error> {
        let key = (repo.clone(), id.clone());
        let (guard, _lease) = self.lock(&key).await?;
        if !self.access.exists(StoragePath::UploadDir(repo, id)).await? {
            self.forget(&key);
            return Err(Error::BlobUploadUnknown(id.to_string()));
        }
        drop(guard);
        // The lease is kept until the files are gone: no other node appends meanwhile.
        self.discard(repo, id).await
    }

    /// Deletes a session's files and its in-memory state.
    pub(crate) async fn discard(&self, repo: &RepositoryName, id: &UploadId) -> Result<(), Error> {
        self.forget(&(repo.clone(), id.clone()));
        self.access
            .remove(StoragePath::UploadDir(repo, id))
            .await
            .map(|_| ())
    }
}

/// The flush of `dir` that makes a move into it durable, to run alongside the link.
fn flush<'a>(driver: &'a dyn StorageDriver, dir: StoragePath<'a>) -> Option<Alongside<'a>> {
    Some(Box::pin(async move {
        driver.flush(&dir.path()).await.or_internal()
    }))
}

/// Streams a chunk's body through the hasher and into `w` when given; answers the bytes
/// taken and the first failure (what came before it was hashed and written).
async fn pour(
    mut body: berth_core::ByteStream,
    h: &mut StreamHasher,
    mut w: Option<&mut Box<dyn FileWriter>>,
) -> (u64, Option<Error>) {
    let mut received = 0u64;
    while let Some(next) = body.next().await {
        let bytes = match next {
            Ok(bytes) => bytes,
            Err(e) => return (received, Some(Error::BodyRead(e))),
        };
        if let Err(e) = h.update(&bytes).await {
            return (received, Some(e));
        }
        received += bytes.len() as u64;
        if let Some(w) = w.as_deref_mut()
            && let Err(e) = w.write(bytes).await.or_internal()
        {
            return (received, Some(e));
        }
    }
    (received, None)
}

/// Checks the bytes a chunk brought against the length its request declared.
fn check_length(declared: Option<u64>, received: u64) -> Result<(), Error> {
    match declared.filter(|l| *l != received) {
        Some(len) => Err(Error::SizeInvalid(format!(
            "chunk declared {len} bytes but {received} arrived"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
impl UploadStore {
    /// Sessions counted against the bound.
    pub(crate) fn counted_sessions(&self) -> usize {
        self.counted().len()
    }
}
