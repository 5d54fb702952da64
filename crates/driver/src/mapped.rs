//! Files served from memory maps, and which file a mapped address belongs to.
//!
//! The filesystem driver hands large reads to the HTTP layer as [`Bytes`] backed by a
//! read-only map of the file. Those bytes are ordinary memory, so every consumer (TLS,
//! HTTP/2, a test) can read them. A plain-TCP connection can do better: asked to write a
//! slice that [`find`] recognises, it calls `sendfile` on the file instead, and the
//! kernel sends page-cache pages without copying them through the process, or faulting
//! them into its address space at all.
//!
//! Each live map is registered here for as long as any slice of it exists (the owner
//! unregisters on drop), so a slice being written always finds its file open.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Live maps by start address.
static MAPS: Mutex<BTreeMap<usize, Region>> = Mutex::new(BTreeMap::new());
/// How many maps are live: lets [`find`] answer without the lock when there are none.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// One live map: its length, its file, and the file offset of its first byte.
struct Region {
    len: usize,
    file: Arc<File>,
    offset: u64,
}

/// Owner of a registered map; dropping the last slice drops it and unregisters it.
struct Mapped {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let start = self.map.as_ptr() as usize;
        let mut maps = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        if maps.remove(&start).is_some() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Maps `len` bytes of `file` from `offset`, read-only, and registers the map.
/// Gives the file back when the kernel refuses (the caller then reads instead).
pub(crate) fn map(file: File, offset: u64, len: u64) -> Result<Bytes, File> {
    let Ok(len) = usize::try_from(len) else {
        return Err(file);
    };
    // SAFETY: a map is only unsound if the file shrinks while mapped. Files read this
    // way are content-addressed blobs and upload data: written once (or only appended
    // under the session lock) and afterwards only renamed or unlinked, which leaves a
    // map valid. Nothing in berth truncates a file that may be being read.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(&file)
    };
    let Ok(map) = map else {
        return Err(file);
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    let start = map.as_ptr() as usize;
    {
        let mut maps = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        let file = Arc::new(file);
        maps.insert(start, Region { len, file, offset });
        LIVE.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Bytes::from_owner(Mapped { map }))
}

/// The file and file offset behind `bytes`, if they lie wholly inside a live map.
pub fn find(bytes: &[u8]) -> Option<(Arc<File>, u64)> {
    if LIVE.load(Ordering::Relaxed) == 0 || bytes.is_empty() {
        return None;
    }
    let ptr = bytes.as_ptr() as usize;
    let maps = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
    let (&start, region) = maps.range(..=ptr).next_back()?;
    let end = ptr.checked_add(bytes.len())?;
    if end > start + region.len {
        return None;
    }
    Some((region.file.clone(), region.offset + (ptr - start) as u64))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn slices_of_a_map_lead_back_to_their_file_until_the_map_is_gone() {
        let mut tmp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&data).unwrap();
        let bytes = map(tmp, 4096, 2 * 4096 + 100).unwrap();
        assert_eq!(&bytes[..], &data[4096..]);

        let slice = bytes.slice(10..5000);
        let (_, at) = find(&slice).unwrap();
        assert_eq!(at, 4096 + 10);
        // Memory that is not (wholly) mapped is not recognised.
        assert!(find(&data[..]).is_none());
        assert!(find(&[]).is_none());

        let start = bytes.as_ptr() as usize;
        drop(bytes);
        assert!(
            find(&slice).is_some(),
            "a live slice keeps its map registered"
        );
        drop(slice);
        let maps = MAPS.lock().unwrap();
        assert!(!maps.contains_key(&start));
    }
}
