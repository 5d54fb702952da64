//! The fence between a garbage collection and the requests that run beside it.
//!
//! A collection decides from what it read (the mark) that a blob or an untagged manifest
//! is unused, and removes it later; a push may start using it in between. The fence makes
//! the two meet in one place:
//!
//! - While a collection runs, every digest a request relies on is *touched* (recorded)
//!   before the request checks that it exists. The collection *dooms* a digest right
//!   before removing it, and a digest already touched cannot be doomed. Both happen under
//!   one mutex, so they are ordered: either the touch came first and the digest is kept,
//!   or the doom came first and the toucher learns it ([`Touch::Doomed`]), waits for the
//!   removal to finish and asks storage rather than a cache.
//! - Requests that write what the mark reads (a manifest push, a blob commit, a mount)
//!   hold a [`Pass`] while they run. Passes are counted per phase; a collection begins by
//!   opening a new phase and waiting until every pass of the previous one is returned, so
//!   no write that started before touches were recorded is still running when the mark
//!   begins, and it ends the same way, so no request that touched into this collection's
//!   record is still running when the next one clears it.
//!
//! Without a collection, a touch is one atomic load and a pass three atomic operations
//! (and one on return).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use berth_core::Digest;

/// How often a phase change looks again for passes still out.
const DRAIN_POLL: Duration = Duration::from_millis(2);

/// The fence of one storage registry (one process's view of one storage root).
#[derive(Default)]
pub(crate) struct Fence {
    /// Odd while a collection runs.
    phase: AtomicU64,
    /// Passes out, by the parity of the phase they were taken in.
    passes: [AtomicUsize; 2],
    record: Mutex<Record>,
    /// One collection at a time.
    collector: tokio::sync::Mutex<()>,
}

/// What the running collection has been told.
#[derive(Default)]
struct Record {
    touched: HashSet<Digest>,
    doomed: HashSet<Digest>,
}

/// What a touch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touch {
    /// The running collection (if any) will not remove the digest: what caches say of it
    /// stays true.
    Kept,
    /// The running collection is removing, or has removed, the digest: wait for the
    /// removal to finish, then believe storage, not caches.
    Doomed,
}

/// The running collection's claim: no other collection starts while it is held.
pub(crate) struct Collecting<'a> {
    _only: tokio::sync::MutexGuard<'a, ()>,
}

/// A request's hold on the current phase; returned on drop.
pub(crate) struct Pass<'a> {
    fence: &'a Fence,
    slot: usize,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.fence.passes[self.slot].fetch_sub(1, Ordering::SeqCst);
    }
}

impl Fence {
    /// Whether a collection is running.
    pub(crate) fn active(&self) -> bool {
        self.phase.load(Ordering::SeqCst) % 2 == 1
    }

    /// Takes a pass for a request that writes what the mark reads. Never waits.
    pub(crate) fn enter(&self) -> Pass<'_> {
        loop {
            let phase = self.phase.load(Ordering::SeqCst);
            let slot = (phase % 2) as usize;
            self.passes[slot].fetch_add(1, Ordering::SeqCst);
            // Counted in the phase it saw: a change in between could have missed it.
            if self.phase.load(Ordering::SeqCst) == phase {
                return Pass { fence: self, slot };
            }
            self.passes[slot].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Records that a request relies on `digest` from now on (nothing without a running
    /// collection).
    pub(crate) fn touch(&self, digest: &Digest) -> Touch {
        if !self.active() {
            return Touch::Kept;
        }
        let mut record = self.lock();
        record.touched.insert(digest.clone());
        if record.doomed.contains(digest) {
            Touch::Doomed
        } else {
            Touch::Kept
        }
    }

    /// Whether a request touched `digest` in the running collection (a dry run asks).
    pub(crate) fn touched(&self, digest: &Digest) -> bool {
        self.lock().touched.contains(digest)
    }

    /// Claims `digest` for removal; `false` when a request touched it in this collection
    /// (then it must stay). The caller holds the lock a toucher that is told
    /// [`Touch::Doomed`] waits for, until the removal is done.
    pub(crate) fn doom(&self, digest: &Digest) -> bool {
        let mut record = self.lock();
        if record.touched.contains(digest) {
            return false;
        }
        record.doomed.insert(digest.clone());
        true
    }

    /// Starts a collection: clears the record, opens a running phase and waits for the
    /// passes taken before it. A collection whose future was dropped while it ran left
    /// its phase open: it is ended first, as it would have ended itself.
    pub(crate) async fn begin(&self) -> Collecting<'_> {
        let only = self.collector.lock().await;
        if self.active() {
            self.end().await;
        }
        {
            let mut record = self.lock();
            record.touched.clear();
            record.doomed.clear();
        }
        self.advance().await;
        Collecting { _only: only }
    }

    /// Ends the running collection (drop its [`Collecting`] after this): opens an idle
    /// phase, waits for the passes taken while it ran, and frees the record.
    pub(crate) async fn end(&self) {
        self.advance().await;
        let mut record = self.lock();
        record.touched = HashSet::new();
        record.doomed = HashSet::new();
    }

    /// Moves to the next phase and waits until no pass of the previous one is out.
    async fn advance(&self) {
        let before = self.phase.fetch_add(1, Ordering::SeqCst);
        let slot = (before % 2) as usize;
        while self.passes[slot].load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::Algorithm;

    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(Algorithm::Sha256, s.as_bytes())
    }

    #[test]
    fn idle_touches_record_nothing() {
        let f = Fence::default();
        assert_eq!(f.touch(&d("a")), Touch::Kept);
        assert!(f.doom(&d("a")), "an idle touch must not be recorded");
    }

    #[tokio::test]
    async fn touch_and_doom_are_ordered() {
        let f = Fence::default();
        let c = f.begin().await;
        assert_eq!(f.touch(&d("a")), Touch::Kept);
        assert!(!f.doom(&d("a")), "a touched digest was doomed");
        assert!(f.doom(&d("b")));
        assert_eq!(f.touch(&d("b")), Touch::Doomed);
        f.end().await;
        drop(c);
        let c = f.begin().await;
        assert!(f.doom(&d("a")), "a touch outlived its collection");
        f.end().await;
        drop(c);
    }

    #[tokio::test]
    async fn a_collection_waits_for_passes_taken_before_it() {
        let f = Arc::new(Fence::default());
        let pass = f.enter();
        let begun = {
            let f = f.clone();
            tokio::spawn(async move {
                drop(f.begin().await);
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !begun.is_finished(),
            "began with a pass of the idle phase out"
        );
        assert!(f.active());
        // A pass taken now belongs to the running phase and does not hold it up.
        let during = f.enter();
        drop(pass);
        begun.await.unwrap();
        let ended = {
            let f = f.clone();
            tokio::spawn(async move { f.end().await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !ended.is_finished(),
            "ended with a pass of the running phase out"
        );
        drop(during);
        ended.await.unwrap();
        assert!(!f.active());
    }

    #[tokio::test]
    async fn an_abandoned_collection_is_ended_by_the_next() {
        let f = Arc::new(Fence::default());
        drop(f.begin().await);
        assert!(f.doom(&d("x")));
        // The first collection never ended; a pass of its phase is still out.
        let pass = f.enter();
        let next = {
            let f = f.clone();
            tokio::spawn(async move {
                let c = f.begin().await;
                let fresh = f.doom(&d("y"));
                f.end().await;
                drop(c);
                fresh
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !next.is_finished(),
            "cleared a record a request may still rely on"
        );
        drop(pass);
        assert!(next.await.unwrap());
        assert!(!f.active());
    }
}
