//! The filesystem driver: paths map below a root directory. Small files are replaced by
//! write-to-temporary-then-rename so a reader never sees a half-written link.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use rand::Rng;
use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

use crate::{DriverError, FileInfo, FileWriter, ReadStream, StorageDriver, check_path};

/// Reads of blob content are this large: big reads keep per-call overhead off the hot path.
const READ_CHUNK: usize = 256 * 1024;
/// Chunks queued between a writer and its thread (hyper's frames are 8 to 400 KiB).
const WRITE_QUEUE: usize = 8;
/// Directory below the root for temporary files (outside distribution's `docker/` tree).
const TMP_DIR: &str = ".berth-tmp";

/// Stores files below a root directory.
#[derive(Debug, Clone)]
pub struct FilesystemDriver {
    root: PathBuf,
}

impl FilesystemDriver {
    /// A driver rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FilesystemDriver { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> Result<PathBuf, DriverError> {
        check_path(path)?;
        Ok(self.root.join(path.trim_start_matches('/')))
    }

    async fn create_parent(&self, full: &Path, path: &str) -> Result<(), DriverError> {
        if let Some(parent) = full.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| DriverError::io(path, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError> {
        let full = self.full(path)?;
        tokio::fs::read(&full)
            .await
            .map(Bytes::from)
            .map_err(|e| DriverError::io(path, e))
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        let full = self.full(path)?;
        let tmp_dir = self.root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        let tmp = tmp_dir.join(format!("{:016x}", rand::rng().random::<u64>()));
        tokio::fs::write(&tmp, &content)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        self.create_parent(&full, path).await?;
        if let Err(e) = tokio::fs::rename(&tmp, &full).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(DriverError::io(path, e));
        }
        Ok(())
    }

    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError> {
        let full = self.full(path)?;
        let mut file = tokio::fs::File::open(&full)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| DriverError::io(path, e))?
            .len();
        if offset > size {
            return Err(DriverError::InvalidOffset {
                path: path.to_owned(),
                offset,
            });
        }
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| DriverError::io(path, e))?;
        let limited = file.take(len.unwrap_or(u64::MAX));
        Ok(Box::pin(
            ReaderStream::with_capacity(limited, READ_CHUNK).map_ok(|b| b),
        ))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>, DriverError> {
        let full = self.full(path)?;
        self.create_parent(&full, path).await?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&full)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| DriverError::io(path, e))?
            .len();
        Ok(Box::new(FsWriter::spawn(
            path.to_owned(),
            file.into_std().await,
            size,
        )))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError> {
        let full = self.full(path)?;
        let meta = tokio::fs::metadata(&full)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        Ok(FileInfo {
            size: if meta.is_dir() { 0 } else { meta.len() },
            is_dir: meta.is_dir(),
            modified: meta.modified().ok(),
        })
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError> {
        let full = self.full(path)?;
        let mut dir = tokio::fs::read_dir(&full)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        let prefix = if path == "/" { "" } else { path };
        let mut out = Vec::new();
        while let Some(entry) = dir
            .next_entry()
            .await
            .map_err(|e| DriverError::io(path, e))?
        {
            if let Some(name) = entry.file_name().to_str() {
                if path == "/" && name == TMP_DIR {
                    continue;
                }
                out.push(format!("{prefix}/{name}"));
            }
        }
        Ok(out)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError> {
        let src = self.full(from)?;
        let dst = self.full(to)?;
        self.create_parent(&dst, to).await?;
        tokio::fs::rename(&src, &dst)
            .await
            .map_err(|e| DriverError::io(from, e))
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        let full = self.full(path)?;
        let meta = tokio::fs::symlink_metadata(&full)
            .await
            .map_err(|e| DriverError::io(path, e))?;
        let result = if meta.is_dir() {
            tokio::fs::remove_dir_all(&full).await
        } else {
            tokio::fs::remove_file(&full).await
        };
        result.map_err(|e| DriverError::io(path, e))
    }
}

/// Writes on a blocking thread of its own, fed through a short queue: the caller (which
/// hashes the same bytes) and the copy into the page cache run on different cores.
struct FsWriter {
    path: String,
    queue: Option<mpsc::Sender<Bytes>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    size: u64,
}

impl FsWriter {
    fn spawn(path: String, mut file: std::fs::File, size: u64) -> Self {
        let (queue, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
            }
            file.flush()
        });
        FsWriter {
            path,
            queue: Some(queue),
            done,
            size,
        }
    }

    async fn finish(&mut self) -> Result<(), DriverError> {
        drop(self.queue.take());
        let result = (&mut self.done)
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        result.map_err(|e| DriverError::io(&self.path, e))
    }
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), DriverError> {
        let len = data.len() as u64;
        let sent = match &self.queue {
            Some(q) => q.send(data).await.is_ok(),
            None => false,
        };
        if !sent {
            // The writer thread stopped: its error says why.
            self.finish().await?;
            return Err(DriverError::io(
                &self.path,
                std::io::Error::other("writer closed"),
            ));
        }
        self.size += len;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DriverError> {
        // Written to the kernel, not fsynced: a crashed process loses nothing, and like
        // distribution berth does not pay a disk flush per upload.
        self.finish().await
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
