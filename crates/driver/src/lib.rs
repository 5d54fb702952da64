//! berth-driver: the `StorageDriver` trait (bytes at slash-separated paths, nothing about
//! digests, repositories or HTTP), its filesystem, in-memory and S3 implementations, and the
//! test suite every driver must pass.

mod durable;
mod error;
pub mod filesystem;
pub mod inmemory;
pub mod mapped;
pub mod observed;
mod path;
pub mod s3;
pub mod suite;
pub mod window;

use std::ops::Bound;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use error::DriverError;
pub use filesystem::FilesystemDriver;
pub use inmemory::InMemoryDriver;
pub use observed::{DriverMetrics, ObservedDriver};
pub use path::check_path;
pub use s3::{S3Driver, S3Options};
pub use window::DirWindow;

/// A stream of file bytes.
pub type ReadStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What `stat` knows about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Whether the path is a directory (a prefix of other paths).
    pub is_dir: bool,
    /// Last modification, where the driver knows it.
    pub modified: Option<SystemTime>,
}

/// Bytes at paths. Paths are absolute, slash-separated, with no empty, `.` or `..`
/// segments (checked by every driver with [`check_path`]).
#[async_trait]
pub trait StorageDriver: Send + Sync + 'static {
    /// The driver's name as in the configuration (`filesystem`, `inmemory`).
    fn name(&self) -> &'static str;

    /// The whole content of a small file.
    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError>;

    /// Replaces a file's content atomically: readers see the old or the new bytes.
    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError>;

    /// Makes a small file hold `content`. An absent file is created in place, in one
    /// write and without a temporary file (a reader racing the creation may see it empty,
    /// never partly written, so callers use this where content is fixed by the path or
    /// where the file is only read once something written after it exists). A file that
    /// already holds exactly `content` is left alone; any other (a movable link, or what a
    /// crash left) is replaced atomically, as by [`put_content`](Self::put_content).
    /// `persist` says whether the file must survive a machine crash once this returns.
    async fn ensure_content(
        &self,
        path: &str,
        content: Bytes,
        persist: Persist,
    ) -> Result<(), DriverError>;

    /// Streams a file from `offset`, at most `len` bytes when given.
    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError>;

    /// Opens a file for writing, appending to what is there when `append` is set
    /// (creating it otherwise, or when it does not exist). `persist` says whether the
    /// writer's commit must make the bytes survive a machine crash.
    async fn writer(
        &self,
        path: &str,
        append: bool,
        persist: Persist,
    ) -> Result<Box<dyn FileWriter>, DriverError>;

    /// Makes a file written with [`Persist::Volatile`], or a directory's entries, survive
    /// a machine crash.
    async fn flush(&self, path: &str) -> Result<(), DriverError>;

    /// Names the span of time over which [`Persist::Volatile`] writes stay readable as
    /// written: the machine's boot for a filesystem (unflushed data lives in its page
    /// cache), the driver instance for memory. State derived from volatile writes (an
    /// upload's saved hash) is trusted only while the epoch it was saved in lasts.
    fn volatile_epoch(&self) -> &str;

    /// Size and kind of a path.
    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError>;

    /// The direct children of a directory, as full paths, in no particular order.
    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError>;

    /// A directory's subdirectories within `from`, in name order, from the first on:
    /// `limit` or so of them where the backend can list a window without reading the
    /// whole directory (S3: a bucket prefix is listed 1,000 keys a request, so a
    /// directory of 20,000 costs 20 requests whole and one from a position). By
    /// default the whole directory is listed once, files included (callers skip what is
    /// not a directory), and `more` is false. An absent directory answers an empty
    /// window or [`DriverError::PathNotFound`].
    async fn list_dirs(
        &self,
        path: &str,
        from: Bound<&str>,
        limit: usize,
    ) -> Result<DirWindow, DriverError> {
        let _ = limit;
        let mut names: Vec<String> = self
            .list(path)
            .await?
            .into_iter()
            .filter_map(|p| {
                let name = p.rsplit('/').next().unwrap_or_default();
                window::within(name, from).then(|| name.to_owned())
            })
            .collect();
        names.sort_unstable();
        Ok(DirWindow { names, more: false })
    }

    /// Moves a file or a directory, replacing any file at `to` (atomically where the
    /// backend allows). With [`Persist::Volatile`] the move is not yet made to survive a
    /// machine crash: a [`flush`](Self::flush) of `to`'s parent directory does that
    /// later, so that something else may be placed first.
    async fn rename(&self, from: &str, to: &str, persist: Persist) -> Result<(), DriverError>;

    /// Deletes a file or a whole directory tree.
    async fn delete(&self, path: &str) -> Result<(), DriverError>;

    /// Places a copy of the local file `from` at `to`, replacing any file there; `from`
    /// stays as it is and must not change afterwards. By default its bytes are copied
    /// through a [`writer`](Self::writer); the filesystem driver links the file in
    /// instead when it lies on the same file system, so nothing is read or written again.
    async fn import(
        &self,
        from: &std::path::Path,
        to: &str,
        persist: Persist,
    ) -> Result<(), DriverError> {
        copy_local_file(self, from, to, persist).await
    }

    /// Whether a writer opened without `append` shows nothing at its path before its
    /// commit, and nothing at all once [aborted](FileWriter::abort) or dropped
    /// uncommitted (S3 aborts the multipart upload in the background): then a file can be
    /// written straight at its final path and still appear whole or not at all (S3: a
    /// multipart upload completed only by the commit; memory: bytes kept aside until
    /// then). Where false (a filesystem, whose writes land in the file as they come),
    /// callers write elsewhere and move the file into place.
    fn writes_appear_on_commit(&self) -> bool {
        false
    }

    /// Whether [`redirect_url`](Self::redirect_url) can answer a URL at all, so callers
    /// skip the work of asking where it never does.
    fn redirects(&self) -> bool {
        false
    }

    /// A URL from which a client can GET the file's bytes itself for a while (an S3
    /// presigned URL); `None` where reads go through berth (the default).
    async fn redirect_url(&self, path: &str) -> Result<Option<String>, DriverError> {
        check_path(path)?;
        Ok(None)
    }
}

/// Whether a small write must reach the disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Flushed to the disk (where the driver flushes at all) before the call returns.
    Durable,
    /// Files whose loss in a machine crash costs nothing (the empty file of a new upload
    /// session, which the client starts again; a saved hash state, which is recomputed
    /// from the data): not flushed.
    Volatile,
}

/// A file being written.
#[async_trait]
pub trait FileWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> Result<(), DriverError>;

    /// Bytes in the file so far, including those appended to.
    fn size(&self) -> u64;

    /// Makes everything written visible (and durable, unless the writer was opened
    /// [`Persist::Volatile`]), and closes the writer.
    async fn commit(self: Box<Self>) -> Result<(), DriverError>;

    /// Gives up the write. Where the driver's
    /// [`writes_appear_on_commit`](StorageDriver::writes_appear_on_commit), nothing of it
    /// stays (nor, on S3, any part storage would keep billing); elsewhere what was
    /// written stays in the file, as when the writer is dropped.
    async fn abort(self: Box<Self>) -> Result<(), DriverError> {
        Ok(())
    }
}

/// [`StorageDriver::import`] by copying: `from`'s bytes streamed into a writer at `to`.
pub async fn copy_local_file<D: StorageDriver + ?Sized>(
    driver: &D,
    from: &std::path::Path,
    to: &str,
    persist: Persist,
) -> Result<(), DriverError> {
    use tokio::io::AsyncReadExt;

    /// Bytes per read: large enough that a multi-GiB file costs few calls.
    const COPY_CHUNK: usize = 1 << 20;
    let local = |e| DriverError::io(&from.display().to_string(), e);
    let mut file = tokio::fs::File::open(from).await.map_err(local)?;
    let mut writer = driver.writer(to, false, persist).await?;
    loop {
        let mut buf = bytes::BytesMut::with_capacity(COPY_CHUNK);
        if file.read_buf(&mut buf).await.map_err(local)? == 0 {
            break;
        }
        writer.write(buf.freeze()).await?;
    }
    writer.commit().await
}
