//! The filesystem driver: paths map below a root directory. Small files appear and are
//! replaced by write-to-temporary-then-rename, so neither a reader nor a crash ever sees
//! a half-written link, and every write is flushed to the disk before it is acknowledged
//! (see [`crate::durable`]).

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::Rng;
use tokio::sync::mpsc;

use crate::durable::Durability;
use crate::{
    DriverError, FileInfo, FileWriter, Persist, ReadStream, StorageDriver, check_path, mapped,
};

/// Reads of blob content are this large: big reads keep per-call overhead off the hot path.
const READ_CHUNK: usize = 512 * 1024;
/// Chunks read ahead of the consumer.
const READ_AHEAD: usize = 2;
/// Slices of a mapped file handed to the HTTP layer.
const MAP_CHUNK: usize = 1024 * 1024;
/// Chunks queued between a writer and its thread. Each may pin one of hyper's read
/// buffers (up to about 400 KiB), so the queue is short: enough to overlap, no more.
const WRITE_QUEUE: usize = 2;
/// Bytes a writer gathers in memory before a thread of its own takes over.
const INLINE_WRITE: usize = 256 * 1024;
/// Directory below the root for temporary files (outside distribution's `docker/` tree).
const TMP_DIR: &str = ".berth-tmp";

/// Stores files below a root directory. Every operation is one trip to a blocking thread
/// doing all of its system calls, so a small request does not pay many thread hand-offs.
#[derive(Debug, Clone)]
pub struct FilesystemDriver {
    root: PathBuf,
    durability: Durability,
    boot: String,
}

/// Runs `f` on the blocking pool, mapping its I/O error to `path`.
async fn blocking<T, F>(path: &str, f: F) -> Result<T, DriverError>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| DriverError::io(path, e)),
        Err(e) => Err(DriverError::io(path, std::io::Error::other(e))),
    }
}

/// The result of a blocking task, its panic or cancellation as an I/O error.
async fn joined<T>(task: tokio::task::JoinHandle<std::io::Result<T>>) -> std::io::Result<T> {
    task.await.map_err(std::io::Error::other).and_then(|r| r)
}

/// Writes `chunks` to `file` in order and flushes them to the disk (when durable).
fn write_chunks(
    file: &mut fs::File,
    chunks: impl IntoIterator<Item = Bytes>,
    durability: Durability,
) -> std::io::Result<()> {
    let mut writeback = durability.writeback();
    for chunk in chunks {
        file.write_all(&chunk)?;
        writeback.wrote(file, chunk.len());
    }
    file.flush()?;
    durability.file(file)
}

/// `op`, retried once after creating `target`'s parent directories when it reports that a
/// directory is missing: the common case (parents exist) costs one system call.
fn with_parent<T>(target: &Path, mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    match op() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            op()
        }
        other => other,
    }
}

impl FilesystemDriver {
    /// A driver rooted at `root` (created on first write) that flushes every write to
    /// the disk before acknowledging it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FilesystemDriver {
            root: root.into(),
            durability: Durability::new(true),
            boot: boot_id(),
        }
    }

    /// Turns flushing to the disk on or off (`storage.filesystem.fsync`). Off, an
    /// acknowledged write survives a crash of berth but not of the machine.
    pub fn with_fsync(mut self, on: bool) -> Self {
        self.durability = Durability::new(on);
        self
    }

    fn durability_for(&self, persist: Persist) -> Durability {
        match persist {
            Persist::Durable => self.durability,
            Persist::Volatile => self.durability.unflushed(),
        }
    }

    /// Removes temporary files older than `older_than` that a crash left below the root
    /// (a file being written when berth stopped never reached its final name). Younger
    /// ones may belong to another process serving the same root, and are kept. Answers
    /// how many were removed.
    pub fn sweep_temporaries(&self, older_than: std::time::Duration) -> std::io::Result<usize> {
        let entries = match fs::read_dir(self.root.join(TMP_DIR)) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            other => other?,
        };
        let cutoff = std::time::SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(std::time::UNIX_EPOCH);
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let stale = entry.metadata()?.modified()? < cutoff;
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> Result<PathBuf, DriverError> {
        check_path(path)?;
        Ok(self.root.join(path.trim_start_matches('/')))
    }

    /// [`StorageDriver::ensure_content`], flushed as `durability` says; one trip to the
    /// blocking pool whatever it finds.
    ///
    /// A new file is written under a temporary name and renamed into place without
    /// replacing anything (`RENAME_NOREPLACE`), so no crash of berth ever leaves it empty
    /// or partly written under its final name (a registry that reads it, such as
    /// distribution, would fail on it). It is flushed after the rename: on ext4 the flush
    /// of a file created since the last one also writes the directory that now holds its
    /// name (and with a journal the commit carries the rename), so one flush covers data
    /// and name, as when the file was created in place. A write that fails leaves
    /// nothing behind under the final name.
    async fn ensure_with(
        &self,
        path: &str,
        content: Bytes,
        durability: Durability,
    ) -> Result<(), DriverError> {
        let full = self.full(path)?;
        let tmp_dir = self.root.join(TMP_DIR);
        let tmp = temporary(&tmp_dir);
        blocking(path, move || {
            let mut file = with_parent(&tmp, || {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
            })?;
            let placed = file
                .write_all(&content)
                .and_then(|()| with_parent(&full, || rename_noreplace(&tmp, &full)));
            match placed {
                Ok(()) => durability.file(&file).inspect_err(|_| {
                    // Not acknowledged, so not left visible either.
                    let _ = fs::remove_file(&full);
                }),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    if e.kind() != ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                    drop(file);
                    let mut existing = fs::File::open(&full)?;
                    let mut held = Vec::with_capacity(content.len() + 1);
                    // One byte more than expected tells a longer file apart.
                    (&mut existing)
                        .take(content.len() as u64 + 1)
                        .read_to_end(&mut held)?;
                    if held != content {
                        return replace(&tmp_dir, &full, &content, durability);
                    }
                    // Another writer may have put these bytes there and not yet
                    // flushed them: what this call acknowledges must be on disk.
                    durability.file(&existing)
                }
            }
        })
        .await
    }
}

/// This boot of the machine: unflushed data in the page cache lasts as long as it does.
/// Where the kernel does not say, a random value, so that nothing saved unflushed is
/// trusted after a restart.
fn boot_id() -> String {
    match fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => format!("process-{:016x}", rand::rng().random::<u64>()),
    }
}

/// A fresh path for a temporary file in `tmp_dir`.
fn temporary(tmp_dir: &Path) -> PathBuf {
    tmp_dir.join(format!("{:016x}", rand::rng().random::<u64>()))
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then), atomically.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    let from = std::ffi::CString::new(from.as_os_str().as_encoded_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_encoded_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call,
    // which reads them and touches no other memory of ours.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Replaces `full` with `content` atomically: a temporary file in `tmp_dir` is written,
/// flushed, and renamed over `full`, whose directory is then flushed.
fn replace(
    tmp_dir: &Path,
    full: &Path,
    content: &[u8],
    durability: Durability,
) -> std::io::Result<()> {
    let tmp = temporary(tmp_dir);
    let mut file = with_parent(&tmp, || fs::File::create(&tmp))?;
    let written = file
        .write_all(content)
        .and_then(|()| durability.file(&file));
    drop(file);
    let moved = written.and_then(|()| with_parent(full, || fs::rename(&tmp, full)));
    if moved.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    moved?;
    durability.parent_of(full)
}

#[async_trait]
impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError> {
        let full = self.full(path)?;
        blocking(path, move || fs::read(&full).map(Bytes::from)).await
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        let full = self.full(path)?;
        let tmp_dir = self.root.join(TMP_DIR);
        let durability = self.durability;
        blocking(path, move || replace(&tmp_dir, &full, &content, durability)).await
    }

    async fn ensure_content(
        &self,
        path: &str,
        content: Bytes,
        persist: Persist,
    ) -> Result<(), DriverError> {
        self.ensure_with(path, content, self.durability_for(persist))
            .await
    }

    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError> {
        let full = self.full(path)?;
        let owned = path.to_owned();
        let (file, size) = blocking(path, move || {
            let mut file = fs::File::open(&full)?;
            let size = file.metadata()?.len();
            if offset <= size {
                file.seek(SeekFrom::Start(offset))?;
            }
            Ok((file, size))
        })
        .await?;
        if offset > size {
            return Err(DriverError::InvalidOffset {
                path: owned,
                offset,
            });
        }
        let remaining = len.unwrap_or(u64::MAX).min(size - offset);
        Ok(read_stream(file, offset, remaining))
    }

    async fn writer(
        &self,
        path: &str,
        append: bool,
        persist: Persist,
    ) -> Result<Box<dyn FileWriter>, DriverError> {
        let full = self.full(path)?;
        let (file, size) = blocking(path, move || {
            let file = with_parent(&full, || {
                fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(&full)
            })?;
            let size = file.metadata()?.len();
            Ok((file, size))
        })
        .await?;
        Ok(Box::new(FsWriter::new(
            path.to_owned(),
            file,
            size,
            self.durability_for(persist),
        )))
    }

    async fn flush(&self, path: &str) -> Result<(), DriverError> {
        let full = self.full(path)?;
        let durability = self.durability;
        blocking(path, move || {
            let file = fs::File::open(&full)?;
            if file.metadata()?.is_dir() {
                durability.directory(&file)
            } else {
                durability.file(&file)
            }
        })
        .await
    }

    fn volatile_epoch(&self) -> &str {
        &self.boot
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError> {
        let full = self.full(path)?;
        blocking(path, move || {
            let meta = fs::metadata(&full)?;
            Ok(FileInfo {
                size: if meta.is_dir() { 0 } else { meta.len() },
                is_dir: meta.is_dir(),
                modified: meta.modified().ok(),
            })
        })
        .await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError> {
        let full = self.full(path)?;
        let prefix = if path == "/" {
            String::new()
        } else {
            path.to_owned()
        };
        let at_root = path == "/";
        blocking(path, move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&full)? {
                if let Some(name) = entry?.file_name().to_str() {
                    if at_root && name == TMP_DIR {
                        continue;
                    }
                    out.push(format!("{prefix}/{name}"));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str, persist: Persist) -> Result<(), DriverError> {
        let src = self.full(from)?;
        let dst = self.full(to)?;
        let durability = self.durability_for(persist);
        blocking(from, move || {
            // A missing source is an error of its own, not a reason to create directories.
            fs::symlink_metadata(&src)?;
            with_parent(&dst, || fs::rename(&src, &dst))?;
            durability.parent_of(&dst)
        })
        .await
    }

    async fn import(
        &self,
        from: &std::path::Path,
        to: &str,
        persist: Persist,
    ) -> Result<(), DriverError> {
        let dst = self.full(to)?;
        let src = from.to_owned();
        let tmp = temporary(&self.root.join(TMP_DIR));
        let durability = self.durability_for(persist);
        let linked = blocking(to, move || {
            // The bytes reach the disk before the name does: a crash must not leave
            // the name over an empty file.
            durability.file(&fs::File::open(&src)?)?;
            // A second name for the same bytes, moved over `to` (a link cannot replace).
            with_parent(&tmp, || fs::hard_link(&src, &tmp))?;
            if let Err(e) = with_parent(&dst, || fs::rename(&tmp, &dst)) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            durability.parent_of(&dst)
        })
        .await;
        match linked {
            // Another file system (a spool directory elsewhere): copied instead.
            Err(DriverError::Io { source, .. }) if source.kind() == ErrorKind::CrossesDevices => {
                crate::copy_local_file(self, from, to, persist).await
            }
            other => other,
        }
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        let full = self.full(path)?;
        blocking(path, move || {
            if fs::symlink_metadata(&full)?.is_dir() {
                fs::remove_dir_all(&full)
            } else {
                fs::remove_file(&full)
            }
        })
        .await
    }
}

/// Streams `remaining` bytes of `file` from its current position: one blocking read for a
/// small file; for a large one a registered memory map (see [`mapped`]), which a plain
/// connection sends with `sendfile` and anything else reads as memory; a reading thread
/// when mapping is refused.
fn read_stream(file: fs::File, offset: u64, remaining: u64) -> ReadStream {
    if remaining <= READ_CHUNK as u64 {
        let fut = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut buf = vec![0u8; remaining as usize];
            file.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        });
        return Box::pin(futures::stream::once(joined(fut)));
    }
    let mut file = match mapped::map(file, offset, remaining) {
        Ok(mapped) => {
            let chunks = (0..mapped.len())
                .step_by(MAP_CHUNK)
                .map(move |i| Ok(mapped.slice(i..(i + MAP_CHUNK).min(mapped.len()))));
            return Box::pin(futures::stream::iter(chunks));
        }
        Err(file) => file,
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut left = remaining;
        while left > 0 {
            let n = left.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::zeroed(n);
            let result = file.read_exact(&mut buf).map(|()| buf.freeze());
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
            left -= n as u64;
        }
    });
    Box::pin(tokio_stream_from(rx))
}

/// A receiver as a stream.
fn tokio_stream_from(
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// A file being written. Small writes are gathered in memory and written by `commit` in
/// one blocking call; once more than [`INLINE_WRITE`] bytes arrive, a blocking thread of
/// its own takes over, fed through a short queue, so the caller (which hashes the same
/// bytes) and the copy into the page cache run on different cores.
struct FsWriter {
    path: String,
    file: Option<fs::File>,
    pending: Vec<Bytes>,
    pending_len: usize,
    thread: Option<(
        mpsc::Sender<Bytes>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    size: u64,
    durability: Durability,
}

impl FsWriter {
    fn new(path: String, file: fs::File, size: u64, durability: Durability) -> Self {
        FsWriter {
            path,
            file: Some(file),
            pending: Vec::new(),
            pending_len: 0,
            thread: None,
            size,
            durability,
        }
    }

    fn start_thread(&mut self) -> Result<(), DriverError> {
        let Some(mut file) = self.file.take() else {
            return Err(DriverError::io(
                &self.path,
                std::io::Error::other("writer closed"),
            ));
        };
        let (queue, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let pending = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let durability = self.durability;
        let done = tokio::task::spawn_blocking(move || {
            let queued = std::iter::from_fn(move || rx.blocking_recv());
            write_chunks(&mut file, pending.into_iter().chain(queued), durability)
        });
        self.thread = Some((queue, done));
        Ok(())
    }
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), DriverError> {
        let len = data.len() as u64;
        match &self.thread {
            None => {
                self.pending_len += data.len();
                self.pending.push(data);
                if self.pending_len > INLINE_WRITE {
                    self.start_thread()?;
                }
            }
            Some((queue, _)) => {
                if queue.send(data).await.is_err() {
                    // The writer thread stopped: its error says why.
                    if let Some((_, done)) = self.thread.take() {
                        joined(done)
                            .await
                            .map_err(|e| DriverError::io(&self.path, e))?;
                    }
                    return Err(DriverError::io(
                        &self.path,
                        std::io::Error::other("writer closed"),
                    ));
                }
            }
        }
        self.size += len;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DriverError> {
        // Flushed to the disk, as distribution flushes every file it commits: an upload
        // acknowledged is an upload that survives a power cut.
        let durability = self.durability;
        let result = match (self.thread.take(), self.file.take()) {
            (Some((queue, done)), _) => {
                drop(queue);
                joined(done).await
            }
            (None, Some(mut file)) if !self.pending.is_empty() => {
                let pending = std::mem::take(&mut self.pending);
                joined(tokio::task::spawn_blocking(move || {
                    write_chunks(&mut file, pending, durability)
                }))
                .await
            }
            _ => Ok(()),
        };
        result.map_err(|e| DriverError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_driver_suite() {
        let dir = tempfile::tempdir().unwrap();
        crate::suite::run_all(&FilesystemDriver::new(dir.path())).await;
    }

    #[tokio::test]
    async fn sweeps_only_stale_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let d = FilesystemDriver::new(dir.path());
        assert_eq!(d.sweep_temporaries(std::time::Duration::ZERO).unwrap(), 0);
        let tmp = dir.path().join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join("left-by-a-crash"), b"x").unwrap();
        d.ensure_content("/kept", Bytes::from_static(b"k"), Persist::Durable)
            .await
            .unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(
            d.sweep_temporaries(hour).unwrap(),
            0,
            "young files are kept"
        );
        assert_eq!(d.sweep_temporaries(std::time::Duration::ZERO).unwrap(), 1);
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(d.get_content("/kept").await.unwrap(), "k");
    }

    #[tokio::test]
    async fn stays_inside_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = FilesystemDriver::new(dir.path().join("root"));
        assert!(matches!(
            d.put_content("/../escape", Bytes::from_static(b"x")).await,
            Err(DriverError::InvalidPath(_))
        ));
        assert!(!dir.path().join("escape").exists());
    }
}
