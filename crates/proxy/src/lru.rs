//! The cache's account of its blobs: each one's size and when it was last used, in
//! least-recently-used order, and the readers streaming each from storage (pins). The
//! account lives in memory; at start-up it is rebuilt from storage, each blob aged by when
//! it was cached (see `eviction`), so the first evictions after a restart go by age of
//! arrival and later ones by use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use berth_core::Digest;

/// When a blob was last used (nanoseconds since the epoch), then a sequence number so two
/// uses in one clock tick keep their order.
type Used = (u128, u64);

/// Blobs by recency.
#[derive(Default)]
struct Index {
    entries: HashMap<Digest, (u64, Used)>,
    order: BTreeMap<Used, Digest>,
    total: u64,
    seq: u64,
}

impl Index {
    fn stamp(&mut self, at: SystemTime) -> Used {
        self.seq += 1;
        let nanos = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        (nanos, self.seq)
    }

    fn put(&mut self, digest: &Digest, size: u64, at: SystemTime) {
        let used = self.stamp(at);
        if let Some((old_size, old)) = self.entries.insert(digest.clone(), (size, used)) {
            self.order.remove(&old);
            self.total -= old_size;
        }
        self.order.insert(used, digest.clone());
        self.total += size;
    }
}

/// The cache's blobs and their readers.
#[derive(Default)]
pub(crate) struct Lru {
    index: Mutex<Index>,
    pins: Mutex<HashMap<Digest, usize>>,
}

/// A reader's hold on a blob: eviction leaves it alone until this is dropped.
pub(crate) struct Pin {
    lru: Arc<Lru>,
    digest: Digest,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self.lru.pins();
        if let Some(n) = pins.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.digest);
            }
        }
    }
}

impl Lru {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pins(&self) -> MutexGuard<'_, HashMap<Digest, usize>> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `digest` (of `size` bytes) was used now.
    pub(crate) fn used(&self, digest: &Digest, size: u64) {
        self.index().put(digest, size, SystemTime::now());
    }

    /// `digest` is used again now, if it is in the account.
    pub(crate) fn bump(&self, digest: &Digest) {
        let mut index = self.index();
        if let Some(&(size, _)) = index.entries.get(digest) {
            index.put(digest, size, SystemTime::now());
        }
    }

    /// A blob found in storage at start-up, cached at `at`; a use seen meanwhile wins.
    pub(crate) fn found(&self, digest: &Digest, size: u64, at: SystemTime) {
        let mut index = self.index();
        if !index.entries.contains_key(digest) {
            index.put(digest, size, at);
        }
    }

    /// Leaves the account (evicted, gone, or not the cache's).
    pub(crate) fn forget(&self, digest: &Digest) {
        let mut index = self.index();
        if let Some((size, used)) = index.entries.remove(digest) {
            index.order.remove(&used);
            index.total -= size;
        }
    }

    /// Bytes in the account.
    pub(crate) fn total(&self) -> u64 {
        self.index().total
    }

    /// The least recently used blobs no reader holds, oldest first, just enough to free
    /// `bytes`.
    pub(crate) fn oldest(&self, bytes: u64) -> Vec<Digest> {
        let pins = self.pins();
        let index = self.index();
        let mut out = Vec::new();
        let mut freed = 0u64;
        for digest in index.order.values() {
            if freed >= bytes {
                break;
            }
            if pins.contains_key(digest) {
                continue;
            }
            if let Some((size, _)) = index.entries.get(digest) {
                freed += size;
                out.push(digest.clone());
            }
        }
        out
    }

    /// Holds `digest` for a reader.
    pub(crate) fn pin(self: &Arc<Self>, digest: &Digest) -> Pin {
        *self.pins().entry(digest.clone()).or_default() += 1;
        Pin {
            lru: self.clone(),
            digest: digest.clone(),
        }
    }

    /// Whether a reader holds `digest`.
    pub(crate) fn busy(&self, digest: &Digest) -> bool {
        self.pins().contains_key(digest)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_core::Algorithm;

    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(Algorithm::Sha256, s.as_bytes())
    }

    #[test]
    fn oldest_first_skipping_pinned_and_counting_each_blob_once() {
        let lru = Arc::new(Lru::default());
        lru.used(&d("a"), 10);
        lru.used(&d("b"), 20);
        lru.used(&d("c"), 30);
        lru.used(&d("a"), 10);
        assert_eq!(lru.total(), 60);
        assert_eq!(lru.oldest(25), vec![d("b"), d("c")]);
        let pin = lru.pin(&d("b"));
        assert!(lru.busy(&d("b")));
        assert_eq!(lru.oldest(25), vec![d("c")]);
        drop(pin);
        assert!(!lru.busy(&d("b")));
        lru.forget(&d("b"));
        assert_eq!(lru.total(), 40);
        assert_eq!(lru.oldest(1), vec![d("c")]);
    }

    #[test]
    fn start_up_ages_order_below_uses_and_never_override_them() {
        let lru = Lru::default();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        lru.used(&d("live"), 1);
        lru.found(&d("live"), 1, long_ago);
        lru.found(&d("old"), 1, long_ago);
        lru.found(&d("older"), 1, long_ago - Duration::from_secs(60));
        assert_eq!(lru.oldest(3), vec![d("older"), d("old"), d("live")]);
        lru.bump(&d("older"));
        assert_eq!(lru.oldest(1), vec![d("old")]);
    }
}
