//! Where the queue's bytes live: segment files named by their first sequence number and
//! one cursor file per endpoint in a node-local directory ([`DirStore`]), or the same in
//! memory ([`MemStore`], for `inmemory` storage, where nothing outlives the process
//! anyway). The queue and delivery see only [`Store`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Segment files and cursors.
pub trait Store: Send + Sync {
    /// The first sequence numbers of the segments present, ascending.
    fn segments(&self) -> io::Result<Vec<u64>>;
    /// Up to `max` bytes of segment `seg` from `offset` (fewer at its end).
    fn read(&self, seg: u64, offset: u64, max: usize) -> io::Result<Vec<u8>>;
    /// Cuts segment `seg` to `len` bytes (a torn tail after a crash).
    fn truncate(&self, seg: u64, len: u64) -> io::Result<()>;
    /// Deletes segment `seg`.
    fn remove(&self, seg: u64) -> io::Result<()>;
    /// Opens segment `seg` for appending, creating it.
    fn appender(&self, seg: u64) -> io::Result<Box<dyn Appender>>;
    /// Flushes the names of segments created since the last call (their directory).
    fn names_flusher(&self) -> Flush;
    /// An endpoint's saved cursor: the sequence number of its next undelivered event.
    fn cursor(&self, endpoint: &str) -> io::Result<Option<u64>>;
    /// Saves an endpoint's cursor (atomically: the old value or the new one survives).
    fn set_cursor(&self, endpoint: &str, seq: u64) -> io::Result<()>;
}

/// A flush to the disk, run on another thread than the one appending.
pub type Flush = Box<dyn FnOnce() -> io::Result<()> + Send>;

/// Appends to one segment.
pub trait Appender: Send {
    /// Appends `bytes` in one write.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Flushes what was appended to the disk.
    fn sync(&mut self) -> io::Result<()>;
    /// A flush of what was appended so far that another thread can run while appends
    /// go on.
    fn flusher(&self) -> io::Result<Flush>;
    /// The segment's length.
    fn len(&self) -> u64;
}

/// Segments and cursors in a directory, which it holds locked.
pub struct DirStore {
    dir: PathBuf,
    /// Held (with its exclusive lock) while the store is open.
    _lock: File,
}

const SEGMENT_SUFFIX: &str = ".log";

impl DirStore {
    /// The store in `dir`, created when missing. Two processes appending to one queue
    /// would interleave their records, so the directory is locked, and a second process
    /// is refused.
    pub fn open(dir: &Path) -> io::Result<DirStore> {
        std::fs::create_dir_all(dir)?;
        let lock = File::create(dir.join("lock"))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process holds this queue (each berth needs a queue directory of its own)",
            ),
            std::fs::TryLockError::Error(e) => e,
        })?;
        Ok(DirStore {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    fn segment(&self, seg: u64) -> PathBuf {
        self.dir.join(format!("{seg:020}{SEGMENT_SUFFIX}"))
    }

    fn cursor_path(&self, endpoint: &str) -> PathBuf {
        // Endpoint names are free text; hex keeps any of them a safe file name.
        let hex: String = endpoint.bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("cursor-{hex}"))
    }
}

impl Store for DirStore {
    fn segments(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name
                .strip_suffix(SEGMENT_SUFFIX)
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn read(&self, seg: u64, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut f = File::open(self.segment(seg))?;
        // Sized by what is there: a reader near the head reads a few records, and a
        // buffer of `max` per read (1 MiB) would cost more than the read.
        let there = f.metadata()?.len().saturating_sub(offset);
        let want = there.min(max as u64);
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(max));
        f.take(want).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn truncate(&self, seg: u64, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.segment(seg))?;
        f.set_len(len)?;
        f.sync_data()
    }

    fn remove(&self, seg: u64) -> io::Result<()> {
        match std::fs::remove_file(self.segment(seg)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn appender(&self, seg: u64) -> io::Result<Box<dyn Appender>> {
        let path = self.segment(seg);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(FileAppender { file, len }))
    }

    fn names_flusher(&self) -> Flush {
        // A new segment's name must survive a power cut too, or its records would be
        // lost with it.
        let dir = self.dir.clone();
        Box::new(move || File::open(dir)?.sync_all())
    }

    fn cursor(&self, endpoint: &str) -> io::Result<Option<u64>> {
        match std::fs::read_to_string(self.cursor_path(endpoint)) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_cursor(&self, endpoint: &str, seq: u64) -> io::Result<()> {
        // Write and rename: a crash leaves the old cursor or the new one, so at worst
        // events are delivered again (at least once), never skipped. Not flushed: a
        // power cut costing a cursor only repeats deliveries.
        let path = self.cursor_path(endpoint);
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{seq}\n").as_bytes())?;
        drop(f);
        std::fs::rename(tmp, path)
    }
}

struct FileAppender {
    file: File,
    len: u64,
}

impl Appender for FileAppender {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn flusher(&self) -> io::Result<Flush> {
        let file = self.file.try_clone()?;
        Ok(Box::new(move || file.sync_data()))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// Segments and cursors in memory.
#[derive(Default, Clone)]
pub struct MemStore {
    inner: Arc<Mutex<MemInner>>,
}

#[derive(Default)]
struct MemInner {
    segments: BTreeMap<u64, Vec<u8>>,
    cursors: BTreeMap<String, u64>,
}

impl MemStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemInner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn missing(seg: u64) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("segment {seg}"))
}

impl Store for MemStore {
    fn segments(&self) -> io::Result<Vec<u64>> {
        Ok(self.with(|m| m.segments.keys().copied().collect()))
    }

    fn read(&self, seg: u64, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        self.with(|m| {
            let data = m.segments.get(&seg).ok_or_else(|| missing(seg))?;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let end = start.saturating_add(max).min(data.len());
            Ok(data[start..end].to_vec())
        })
    }

    fn truncate(&self, seg: u64, len: u64) -> io::Result<()> {
        self.with(|m| {
            let data = m.segments.get_mut(&seg).ok_or_else(|| missing(seg))?;
            data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            Ok(())
        })
    }

    fn remove(&self, seg: u64) -> io::Result<()> {
        self.with(|m| m.segments.remove(&seg));
        Ok(())
    }

    fn appender(&self, seg: u64) -> io::Result<Box<dyn Appender>> {
        let len = self.with(|m| m.segments.entry(seg).or_default().len() as u64);
        Ok(Box::new(MemAppender {
            store: self.clone(),
            seg,
            len,
        }))
    }

    fn names_flusher(&self) -> Flush {
        Box::new(|| Ok(()))
    }

    fn cursor(&self, endpoint: &str) -> io::Result<Option<u64>> {
        Ok(self.with(|m| m.cursors.get(endpoint).copied()))
    }

    fn set_cursor(&self, endpoint: &str, seq: u64) -> io::Result<()> {
        self.with(|m| m.cursors.insert(endpoint.to_owned(), seq));
        Ok(())
    }
}

struct MemAppender {
    store: MemStore,
    seg: u64,
    len: u64,
}

impl Appender for MemAppender {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.store.with(|m| {
            m.segments
                .get_mut(&self.seg)
                .ok_or_else(|| missing(self.seg))?
                .extend_from_slice(bytes);
            Ok::<_, io::Error>(())
        })?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn flusher(&self) -> io::Result<Flush> {
        Ok(Box::new(|| Ok(())))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_per_queue_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirStore::open(dir.path()).unwrap();
        let err = DirStore::open(dir.path())
            .err()
            .expect("second open refused");
        assert!(err.to_string().contains("another process"), "{err}");
        drop(first);
        DirStore::open(dir.path()).unwrap();
    }

    #[test]
    fn cursors_are_kept_under_any_endpoint_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path()).unwrap();
        assert_eq!(store.cursor("a/b c").unwrap(), None);
        store.set_cursor("a/b c", 42).unwrap();
        store.set_cursor("../x", 7).unwrap();
        assert_eq!(store.cursor("a/b c").unwrap(), Some(42));
        assert_eq!(store.cursor("../x").unwrap(), Some(7));
    }
}
