//! Ordered in-memory listings (repository names, each repository's tags), so a page of
//! `_catalog` or `tags/list` costs O(page) rather than a walk of the whole tree. A
//! listing is either loaded on first use while its write lock is held (a repository's
//! tags: one directory listing), or built in the background ([`Listing::build`]: the
//! catalog, while pages are answered by the bounded ordered walk of `walk`). Writers
//! update a listing after their storage write, under its lock: a loaded listing takes
//! the change, one being built records it and applies it over what the walk found, so a
//! write racing a load or a build is never lost. With several nodes the listings live
//! in Redis instead (`index`).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use berth_core::{Error, Page};
use tokio::sync::RwLock;

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

/// One ordered set of names, loaded or built from storage.
pub(crate) struct Listing<const CATALOG: bool> {
    state: RwLock<State<CATALOG>>,
    /// Set once the state is `Loaded` (which it then stays), readable without the lock.
    loaded: AtomicBool,
}

/// Where a listing stands.
enum State<const CATALOG: bool> {
    /// Not loaded: updates are ignored (a load reads them from storage).
    Unloaded,
    /// A build's walk is running: each update is recorded as the name's last change
    /// (`true`: present), applied over what the walk found when it ends.
    Building(HashMap<String, bool>),
    /// Complete and kept current.
    Loaded(BTreeSet<Key<CATALOG>>),
}

impl<const CATALOG: bool> Default for Listing<CATALOG> {
    fn default() -> Self {
        Listing {
            state: RwLock::new(State::Unloaded),
            loaded: AtomicBool::new(false),
        }
    }
}

/// The page of `set` after `last`, at most `n` (`None`: all).
pub(crate) fn page_of<const CATALOG: bool>(
    set: &BTreeSet<Key<CATALOG>>,
    n: Option<usize>,
    last: Option<&str>,
) -> Page {
    let from = match last {
        Some(l) => Bound::Excluded(Key(l.to_owned())),
        None => Bound::Unbounded,
    };
    let mut iter = set.range((from, Bound::Unbounded));
    let take = n.unwrap_or(usize::MAX);
    let entries: Vec<String> = iter.by_ref().take(take).map(|k| k.0.clone()).collect();
    let more = take > 0 && iter.next().is_some();
    Page { entries, more }
}

/// `names` with the changes recorded during a build applied over them.
fn merged<const CATALOG: bool>(
    names: Vec<String>,
    changes: HashMap<String, bool>,
) -> BTreeSet<Key<CATALOG>> {
    let mut set: BTreeSet<Key<CATALOG>> = names.into_iter().map(Key).collect();
    for (name, present) in changes {
        if present {
            set.insert(Key(name));
        } else {
            set.remove(&Key(name));
        }
    }
    set
}

impl<const CATALOG: bool> Listing<CATALOG> {
    /// Whether the listing is complete (loaded or built).
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load(AtomicOrdering::Acquire)
    }

    /// A page, if the listing is complete.
    pub(crate) async fn page_if_loaded(
        &self,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Option<Page> {
        match &*self.state.read().await {
            State::Loaded(set) => Some(page_of(set, n, last)),
            _ => None,
        }
    }

    /// One page after `last`, at most `n` (`None`: all), loading the listing first
    /// with `load` (under the write lock) if needed.
    pub(crate) async fn page<F>(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        load: F,
    ) -> Result<Page, Error>
    where
        F: Future<Output = Result<Vec<String>, Error>>,
    {
        if let Some(page) = self.page_if_loaded(n, last).await {
            return Ok(page);
        }
        let mut state = self.state.write().await;
        // Another request may have loaded it while this one waited for the lock.
        if let State::Loaded(set) = &*state {
            return Ok(page_of(set, n, last));
        }
        let names = load.await?;
        // A build's recorded changes reached storage before this load read it; they are
        // applied all the same (and the build, when it ends, finds the listing loaded).
        let changes = match std::mem::replace(&mut *state, State::Unloaded) {
            State::Building(changes) => changes,
            _ => HashMap::new(),
        };
        let set = merged(names, changes);
        let page = page_of(&set, n, last);
        *state = State::Loaded(set);
        self.loaded.store(true, AtomicOrdering::Release);
        Ok(page)
    }

    /// Builds the listing with `walk` without holding its lock while the walk runs:
    /// updates meanwhile are recorded and applied over the walk's names. Answers whether
    /// this call built it (`false`: it was already loaded or being built). A failed walk
    /// leaves it unloaded, to be built again.
    pub(crate) async fn build<F>(&self, walk: F) -> Result<bool, Error>
    where
        F: Future<Output = Result<Vec<String>, Error>>,
    {
        {
            let mut state = self.state.write().await;
            if !matches!(*state, State::Unloaded) {
                return Ok(false);
            }
            // Recording starts before the walk does: a change made before this point
            // reached storage before the walk reads it.
            *state = State::Building(HashMap::new());
        }
        let walked = walk.await;
        let mut state = self.state.write().await;
        let State::Building(changes) = &mut *state else {
            // Loaded meanwhile by `page`'s load, which is as complete as this walk.
            return Ok(false);
        };
        let changes = std::mem::take(changes);
        match walked {
            Ok(names) => {
                *state = State::Loaded(merged(names, changes));
                self.loaded.store(true, AtomicOrdering::Release);
                Ok(true)
            }
            Err(e) => {
                *state = State::Unloaded;
                Err(e)
            }
        }
    }

    /// Records that storage now has `name`.
    pub(crate) async fn insert(&self, name: &str) {
        self.change(name, true).await;
    }

    /// Records that storage no longer has `name`.
    pub(crate) async fn remove(&self, name: &str) {
        self.change(name, false).await;
    }

    async fn change(&self, name: &str, present: bool) {
        match &mut *self.state.write().await {
            State::Unloaded => {}
            State::Building(changes) => {
                changes.insert(name.to_owned(), present);
            }
            State::Loaded(set) if present => {
                set.insert(Key(name.to_owned()));
            }
            State::Loaded(set) => {
                set.remove(&Key(name.to_owned()));
            }
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

    #[tokio::test]
    async fn a_build_keeps_the_writes_made_while_it_walks() {
        let l: std::sync::Arc<Listing<true>> = std::sync::Arc::default();
        let (walked_tx, walked_rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        // The walk found `a`, `gone` and `moved` before the writes below happened.
        let walk = async move {
            let _ = walked_tx.send(());
            let _ = go_rx.await;
            Ok(vec!["a".to_owned(), "gone".to_owned(), "moved".to_owned()])
        };
        let build = tokio::spawn({
            let l = l.clone();
            async move { l.build(walk).await }
        });
        walked_rx.await.unwrap();
        assert!(l.page_if_loaded(None, None).await.is_none());
        l.insert("new").await;
        l.remove("gone").await;
        l.remove("moved").await;
        l.insert("moved").await;
        l.insert("x").await;
        l.remove("x").await;
        // A second build while one runs does nothing.
        assert!(!l.build(load(&["other"])).await.unwrap());
        go_tx.send(()).unwrap();
        assert!(build.await.unwrap().unwrap());
        let p = l.page_if_loaded(None, None).await.unwrap();
        assert_eq!(p.entries, ["a", "moved", "new"]);
        assert!(!l.build(load(&[])).await.unwrap(), "built once");
    }

    #[tokio::test]
    async fn a_failed_build_leaves_it_unloaded() {
        let l: Listing<true> = Listing::default();
        let failed = l.build(async { Err(Error::internal("walk failed")) }).await;
        assert!(failed.is_err());
        assert!(l.page_if_loaded(None, None).await.is_none());
        assert!(l.build(load(&["b", "a"])).await.unwrap());
        let p = l.page_if_loaded(Some(1), None).await.unwrap();
        assert_eq!((p.entries, p.more), (vec!["a".to_owned()], true));
    }

    #[tokio::test]
    async fn a_load_during_a_build_takes_its_changes_and_ends_it() {
        let l: Listing<true> = Listing::default();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let walk = async move {
            let _ = go_rx.await;
            Ok(vec!["stale".to_owned()])
        };
        let build = l.build(walk);
        let rest = async {
            tokio::task::yield_now().await;
            l.insert("b").await;
            let p = l.page(None, None, load(&["a"])).await.unwrap();
            go_tx.send(()).unwrap();
            p
        };
        let (built, p) = tokio::join!(build, rest);
        assert_eq!(p.entries, ["a", "b"]);
        assert!(!built.unwrap(), "the load completed it first");
        let p = l.page_if_loaded(None, None).await.unwrap();
        assert_eq!(p.entries, ["a", "b"]);
    }
}
