//! How the filesystem driver makes an acknowledged write survive a machine crash, not
//! just a process crash: file contents are flushed to the disk before the file becomes
//! visible under its final name, and the directory that gained the name is flushed
//! after a rename. Large files are pushed towards the disk while they are still being
//! written, so the flush at the end waits for the tail, not for the whole file.
//!
//! All of it is switched by one flag (`storage.filesystem.fsync`, on by default).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Bytes written between two requests to start write-back of a large file.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Whether and how writes are flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durability {
    /// Flush before acknowledging.
    on: bool,
    /// Start write-back of large files early (useful even unflushed: a later flush of
    /// the same file then waits for less).
    hints: bool,
}

impl Durability {
    pub(crate) fn new(on: bool) -> Self {
        Durability { on, hints: on }
    }

    /// The same, without the flush at the end (for `Persist::Volatile` writes).
    pub(crate) fn unflushed(self) -> Self {
        Durability {
            on: false,
            hints: self.hints,
        }
    }

    /// Flushes a file's data (and the size needed to read it back) to the disk.
    pub(crate) fn file(self, file: &File) -> io::Result<()> {
        if self.on { file.sync_data() } else { Ok(()) }
    }

    /// Flushes the directory holding `path`, so a name just created there by a rename
    /// survives a crash.
    pub(crate) fn parent_of(self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.on => File::open(dir)?.sync_all(),
            _ => Ok(()),
        }
    }

    /// Flushes an open directory's entries.
    pub(crate) fn directory(self, dir: &File) -> io::Result<()> {
        if self.on { dir.sync_all() } else { Ok(()) }
    }

    /// Tracks a file written in pieces and starts write-back every few MiB.
    pub(crate) fn writeback(self) -> Writeback {
        Writeback {
            on: self.hints,
            unflushed: 0,
        }
    }
}

/// Bytes written to a file since its write-back was last started.
pub(crate) struct Writeback {
    on: bool,
    unflushed: u64,
}

impl Writeback {
    /// Records `len` more bytes written to `file`; past [`WRITEBACK_EVERY`], asks the
    /// kernel to start writing the file's dirty pages out without waiting for them.
    pub(crate) fn wrote(&mut self, file: &File, len: usize) {
        if !self.on {
            return;
        }
        self.unflushed += len as u64;
        if self.unflushed >= WRITEBACK_EVERY {
            self.unflushed = 0;
            start_writeback(file);
        }
    }
}

/// `sync_file_range(WRITE)` over the whole file. Only a hint: the final flush is what
/// makes the data durable, so a failure here changes nothing and is not reported.
fn start_writeback(file: &File) {
    // SAFETY: the descriptor is open for the duration of the call (borrowed from
    // `file`), and offset 0 with length 0 means "to the end of the file"; the call reads
    // and writes no memory of ours.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}
