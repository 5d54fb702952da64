//! Ordered in-memory listings (repository names, each repository's tags), built from
//! storage on first use and kept current by this process's writes, so a page of
//! `_catalog` or `tags/list` costs O(page) rather than a walk of the whole tree.
//!
//! A listing is loaded while its write lock is held; writers update it after their
//! storage write under the same lock, so a write racing a load is never lost.
// TODO(#12): with several nodes over shared storage these need invalidation (Redis).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::future::Future;
use std::ops::Bound;

use berth_core::{Error, Page};
use tokio::sync::{RwLock, RwLockReadGuard};

/// A name ordered by `order`, as a set key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key<const CATALOG: bool>(pub String);

impl<const CATALOG: bool> Ord for Key<CATALOG> {
    fn cmp(&self, other: &Self) -> Ordering {
        if CATALOG {
            crate::catalog::catalog_order(&self.0, &other.0)
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl<const CATALOG: bool> PartialOrd for Key<CATALOG> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One lazily loaded, ordered set of names.
pub(crate) struct Listing<const CATALOG: bool> {
    state: RwLock<ListingState<CATALOG>>,
}

/// A listing's names; empty and ignoring updates until loaded from storage.
struct ListingState<const CATALOG: bool> {
    loaded: bool,
    set: BTreeSet<Key<CATALOG>>,
}

impl<const CATALOG: bool> Default for Listing<CATALOG> {
    fn default() -> Self {
        Listing {
            state: RwLock::new(ListingState {
                loaded: false,
                set: BTreeSet::new(),
            }),
        }
    }
}

impl<const CATALOG: bool> Listing<CATALOG> {
    /// The loaded set, loading it with `load` first if needed.
    async fn loaded<F>(&self, load: F) -> Result<RwLockReadGuard<'_, BTreeSet<Key<CATALOG>>>, Error>
    where
        F: Future<Output = Result<Vec<String>, Error>>,
    {
        let read = self.state.read().await;
        if read.loaded {
            return Ok(RwLockReadGuard::map(read, |s| &s.set));
        }
        drop(read);
        let mut write = self.state.write().await;
        // Another request may have loaded it while this one waited for the lock.
        if !write.loaded {
            write.set = load.await?.into_iter().map(Key).collect();
            write.loaded = true;
        }
        Ok(RwLockReadGuard::map(write.downgrade(), |s| &s.set))
    }

    /// One page after `last`, at most `n` (`None`: all), loading first if needed.
    pub(crate) async fn page<F>(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        load: F,
    ) -> Result<Page, Error>
    where
        F: Future<Output = Result<Vec<String>, Error>>,
    {
        let set = self.loaded(load).await?;
        let from = match last {
            Some(l) => Bound::Excluded(Key(l.to_owned())),
            None => Bound::Unbounded,
        };
        let mut iter = set.range((from, Bound::Unbounded));
        let take = n.unwrap_or(usize::MAX);
        let entries: Vec<String> = iter.by_ref().take(take).map(|k| k.0.clone()).collect();
        let more = take > 0 && iter.next().is_some();
        Ok(Page { entries, more })
    }

    /// Adds a name if the listing is loaded (else the next load reads it from storage).
    pub(crate) async fn insert(&self, name: &str) {
        let mut state = self.state.write().await;
        if state.loaded {
            state.set.insert(Key(name.to_owned()));
        }
    }

    /// Removes a name if the listing is loaded.
    pub(crate) async fn remove(&self, name: &str) {
        let mut state = self.state.write().await;
        if state.loaded {
            state.set.remove(&Key(name.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(v: &[&str]) -> impl Future<Output = Result<Vec<String>, Error>> {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        async move { Ok(v) }
    }

    #[tokio::test]
    async fn pages_and_updates() {
        let l: Listing<true> = Listing::default();
        let p = l
            .page(Some(2), None, load(&["b", "a-b", "a/b", "c"]))
            .await
            .unwrap();
        assert_eq!(
            (p.entries, p.more),
            (vec!["a/b".to_owned(), "a-b".to_owned()], true)
        );
        l.insert("a/c").await;
        let p = l.page(Some(2), Some("a/b"), load(&[])).await.unwrap();
        assert_eq!(p.entries, ["a/c", "a-b"]);
        l.remove("c").await;
        let p = l.page(None, Some("a-b"), load(&[])).await.unwrap();
        assert_eq!((p.entries, p.more), (vec!["b".to_owned()], false));
        let p = l.page(Some(0), None, load(&[])).await.unwrap();
        assert_eq!((p.entries.len(), p.more), (0, false));
    }

    #[tokio::test]
    async fn unloaded_updates_are_left_to_the_load() {
        let l: Listing<false> = Listing::default();
        l.insert("x").await;
        let p = l.page(None, None, load(&["y"])).await.unwrap();
        assert_eq!(p.entries, ["y"]);
    }
}
