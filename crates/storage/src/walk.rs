//! The bounded ordered walk: one catalog page read straight from storage, for as long as
//! no complete listing exists (the in-memory one is still being built, or the shared
//! index in Redis is missing or unreachable). Directories are visited in catalog order
//! (children sorted, a directory before its children, which is the component-wise
//! order of `catalog_order`), starting from the position of `last`: siblings ordered
//! before the matching component of `last` are skipped, and only the directories along
//! its path are entered below it. The walk stops once it has found one repository more
//! than the page holds, so a page costs one directory listing per repository on it
//! (plus the directories along `last`'s path), whatever the registry's size. A page is
//! exactly the one the complete listing gives, for any `last`, a repository name or not.

use std::collections::VecDeque;
use std::ops::Bound;

use berth_core::{Error, Page, RepositoryName};
use berth_driver::DirWindow;
use tokio::task::JoinHandle;

use crate::access::Access;
use crate::catalog::CATALOG_MARKERS;
use crate::layout::StoragePath;

/// Directories listed ahead of the walk, in order, while it works through the one
/// before: a cold disk or an object store answers several at once about as fast as
/// one. Never more than the page still needs.
const LOOKAHEAD: usize = 16;

/// How many names one listing of a directory asks for: what the page still needs,
/// within these bounds (also for a tags directory, see `tags`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// A repository's own directory (`_layers`, `_manifests`, `_uploads`, and any
    /// repositories nested in it) fits in one window of this many.
    least: usize,
    /// S3 answers at most 1,000 keys a request.
    most: usize,
}

impl Windows {
    /// The size of the next window when the page still needs `still` names.
    pub(crate) fn size(self, still: usize) -> usize {
        still.clamp(self.least, self.most)
    }
}

pub(crate) const WINDOWS: Windows = Windows {
    least: 32,
    most: 1000,
};

/// A directory's first window of names, asked for ahead of its turn.
type Listed = JoinHandle<Result<DirWindow, Error>>;

/// One directory being walked: its children in order and where the walk is among them.
struct Frame {
    /// The directory's path under `repositories/` ("" for the root).
    name: String,
    /// Its children listed so far that may hold repositories (`_`-directories left
    /// out), in order.
    children: Vec<String>,
    /// The next child to enter.
    next: usize,
    /// Listings of `children[next..]`, asked for ahead, in order.
    ahead: VecDeque<Listed>,
    /// Whether the directory lies on the path of `last` (its own name is then not
    /// after `last`, and only children from `last`'s next component on are listed).
    on_path: bool,
    /// How many components deep it is (the root is 0).
    depth: usize,
    /// The last name listed (a `_`-directory too) when more may follow it.
    resume: Option<String>,
}

impl Frame {
    /// The path of child `i`.
    fn child(&self, i: usize) -> String {
        if self.name.is_empty() {
            self.children[i].clone()
        } else {
            format!("{}/{}", self.name, self.children[i])
        }
    }

    /// Takes in the next window of the directory's names.
    fn extend(&mut self, window: DirWindow) {
        self.resume = window.more.then(|| window.names.last().cloned()).flatten();
        self.children
            .extend(window.names.into_iter().filter(|c| !c.starts_with('_')));
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // Listings the page no longer needs (it filled, or failed).
        for listed in &self.ahead {
            listed.abort();
        }
    }
}

/// Where a directory met on the walk lives.
fn at(name: &str) -> StoragePath<'_> {
    if name.is_empty() {
        StoragePath::Repositories
    } else {
        StoragePath::RepositoryTree(name)
    }
}

/// Where the listing of a directory `depth` components deep starts: on `last`'s path
/// at `last`'s next component (children before it hold only names before `last`), and
/// elsewhere (or past `last`'s last component, where every child is after it) at the
/// first child.
fn start<'p>(on_path: bool, depth: usize, path: &[&'p str]) -> Bound<&'p str> {
    match path.get(depth).filter(|_| on_path) {
        Some(component) => Bound::Included(component),
        None => Bound::Unbounded,
    }
}

/// Lists a directory's first window in a task of its own, to be awaited later.
fn list_ahead(access: &Access, name: String, from: Bound<&str>, limit: usize) -> Listed {
    let access = access.clone();
    let from = from.map(str::to_owned);
    tokio::spawn(async move {
        access
            .dirs(at(&name), from.as_ref().map(String::as_str), limit)
            .await
    })
}

/// The repositories after `last` in catalog order, at most `n`, with whether more exist.
pub(crate) async fn page(access: &Access, n: usize, last: Option<&str>) -> Result<Page, Error> {
    page_in(access, n, last, WINDOWS).await
}

async fn page_in(
    access: &Access,
    n: usize,
    last: Option<&str>,
    windows: Windows,
) -> Result<Page, Error> {
    if n == 0 {
        // As the complete listing answers it: an empty page links nowhere.
        return Ok(Page {
            entries: Vec::new(),
            more: false,
        });
    }
    let want = n.saturating_add(1);
    let size = |found: usize| windows.size(want - found);
    let path: Vec<&str> = last.map(|l| l.split('/').collect()).unwrap_or_default();
    let on_path = last.is_some();
    let mut found = Vec::new();
    let root = access
        .dirs(StoragePath::Repositories, start(on_path, 0, &path), size(0))
        .await?;
    let root = frame(access, String::new(), root, on_path, 0, &mut found).await?;
    let mut stack = vec![root];
    while found.len() < want {
        let Some(top) = stack.last_mut() else { break };
        if top.next >= top.children.len() {
            match top.resume.take() {
                Some(after) => {
                    let more = access
                        .dirs(at(&top.name), Bound::Excluded(&after), size(found.len()))
                        .await?;
                    top.extend(more);
                }
                None => drop(stack.pop()),
            }
            continue;
        }
        // Keep the next few listings coming, never more than the page still needs.
        let window = (want - found.len()).min(LOOKAHEAD);
        while top.ahead.len() < window && top.next + top.ahead.len() < top.children.len() {
            let i = top.next + top.ahead.len();
            let on_path = top.on_path && path.get(top.depth) == Some(&top.children[i].as_str());
            let from = start(on_path, top.depth + 1, &path);
            top.ahead
                .push_back(list_ahead(access, top.child(i), from, size(found.len())));
        }
        let name = top.child(top.next);
        let on_path = top.on_path && path.get(top.depth) == Some(&top.children[top.next].as_str());
        let depth = top.depth + 1;
        top.next += 1;
        let children = match top.ahead.pop_front() {
            Some(listed) => listed
                .await
                .map_err(|e| Error::internal(format!("listing {name}: {e}")))??,
            None => {
                let from = start(on_path, depth, &path);
                access.dirs(at(&name), from, size(found.len())).await?
            }
        };
        let entered = frame(access, name, children, on_path, depth, &mut found).await?;
        stack.push(entered);
    }
    let more = found.len() > n;
    found.truncate(n);
    Ok(Page {
        entries: found,
        more,
    })
}

/// The frame of a directory from its first window of names; records the directory in
/// `found` when it is a repository after `last` (off `last`'s path).
async fn frame(
    access: &Access,
    name: String,
    window: DirWindow,
    on_path: bool,
    depth: usize,
    found: &mut Vec<String>,
) -> Result<Frame, Error> {
    if !on_path
        && !name.is_empty()
        && RepositoryName::parse(&name).is_ok()
        && (window
            .names
            .iter()
            .any(|c| CATALOG_MARKERS.contains(&c.as_str()))
            || (window.more && marked(access, &name).await?))
    {
        found.push(name.clone());
    }
    let mut entered = Frame {
        name,
        children: Vec::new(),
        next: 0,
        ahead: VecDeque::new(),
        on_path,
        depth,
        resume: None,
    };
    entered.extend(window);
    Ok(entered)
}

/// Whether a directory too large for one window holds a marker of a repository.
async fn marked(access: &Access, name: &str) -> Result<bool, Error> {
    for marker in CATALOG_MARKERS {
        let w = access.dirs(at(name), Bound::Included(marker), 1).await?;
        if w.names.first().map(String::as_str) == Some(*marker) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use berth_driver::{InMemoryDriver, StorageDriver};
    use bytes::Bytes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::catalog::catalog_order;
    use crate::layout::ROOT;

    /// Components random trees are made of: separators of every kind, prefixes of one
    /// another, an invalid name and a `_`-directory.
    const PARTS: &[&str] = &["a", "a-b", "a.b", "a_b", "b", "ab", "z9", "A", "_x", "a__b"];

    /// Windows small enough that directories are listed in several, in the in-memory
    /// driver's key order (S3's), so names like `a` and `a-b` meet at their edges.
    const SMALL: [Windows; 3] = [
        Windows { least: 1, most: 1 },
        Windows { least: 1, most: 2 },
        Windows { least: 2, most: 3 },
    ];

    /// Writes a file under `repositories/<dir>/`.
    async fn put(driver: &InMemoryDriver, dir: &str, file: &str) {
        let path = format!("{ROOT}/repositories/{dir}/{file}");
        driver
            .put_content(&path, Bytes::from_static(b"x"))
            .await
            .unwrap();
    }

    /// A random tree: repositories (a layer link), directories holding only uploads or
    /// manifests (not listed), nested at random depths. Answers the driver and every
    /// listed name in catalog order.
    async fn random_tree(rng: &mut StdRng) -> (Arc<InMemoryDriver>, Vec<String>) {
        let driver = Arc::new(InMemoryDriver::new());
        let mut listed = Vec::new();
        for _ in 0..rng.random_range(0..40) {
            let depth = rng.random_range(1..4);
            let name: Vec<&str> = (0..depth)
                .map(|_| PARTS[rng.random_range(0..PARTS.len())])
                .collect();
            let name = name.join("/");
            match rng.random_range(0..5) {
                0 => put(&driver, &name, "_uploads/u/data").await,
                1 => put(&driver, &name, "_manifests/tags/t/current/link").await,
                _ => {
                    put(&driver, &name, "_layers/sha256/ab/link").await;
                    if RepositoryName::parse(&name).is_ok() {
                        listed.push(name);
                    }
                }
            }
        }
        listed.sort_by(|a, b| catalog_order(a, b));
        listed.dedup();
        (driver, listed)
    }

    /// What the complete listing answers: the names after `last`, at most `n`.
    fn expected(all: &[String], n: usize, last: Option<&str>) -> Page {
        let after: Vec<String> = all
            .iter()
            .filter(|name| last.is_none_or(|l| catalog_order(name, l).is_gt()))
            .cloned()
            .collect();
        Page {
            entries: after.iter().take(n).cloned().collect(),
            more: n > 0 && after.len() > n,
        }
    }

    #[tokio::test]
    async fn pages_equal_the_complete_listing_for_every_last_and_n() {
        let mut rng = StdRng::seed_from_u64(12);
        for _ in 0..60 {
            let (driver, all) = random_tree(&mut rng).await;
            let access = Access::new(driver);
            // Every name, and positions that are not names: prefixes, in-between
            // values, separators and characters no name has.
            let mut lasts: BTreeSet<String> = all.iter().cloned().collect();
            for name in &all {
                lasts.insert(format!("{name}/"));
                lasts.insert(format!("{name}-"));
                lasts.insert(format!("{name}\u{0}"));
                lasts.insert(name[..name.len() - 1].to_owned());
            }
            for odd in ["", "/", "a/", "a//b", "_x", "A", "a/_x/b", "~", "a-b/zz"] {
                lasts.insert(odd.to_owned());
            }
            let mut cases: Vec<Option<&str>> = lasts.iter().map(|l| Some(l.as_str())).collect();
            cases.push(None);
            for last in cases {
                for n in 0..=all.len() + 1 {
                    let want = expected(&all, n, last);
                    for windows in [WINDOWS, SMALL[n % SMALL.len()]] {
                        let got = page_in(&access, n, last, windows).await.unwrap();
                        assert_eq!(
                            (&got.entries, got.more),
                            (&want.entries, want.more),
                            "n={n} last={last:?} {windows:?} all={all:?}"
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn paging_through_visits_every_repository_once() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20 {
            let (driver, all) = random_tree(&mut rng).await;
            let access = Access::new(driver);
            for n in 1..4 {
                let mut seen = Vec::new();
                let mut last: Option<String> = None;
                loop {
                    let p = page_in(&access, n, last.as_deref(), SMALL[n - 1])
                        .await
                        .unwrap();
                    seen.extend(p.entries.iter().cloned());
                    if !p.more {
                        break;
                    }
                    last = p.entries.last().cloned();
                }
                assert_eq!(seen, all);
            }
        }
    }

    /// The driver's `List` calls so far, from its action timers.
    fn lists(metrics: &berth_driver::DriverMetrics) -> u64 {
        use berth_metrics::Collect;
        let mut enc = berth_metrics::Encoder::new();
        metrics.collect(&mut enc);
        enc.finish()
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "registry_storage_action_seconds_count{driver=\"inmemory\",action=\"List\"} ",
                )
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_page_reads_about_one_directory_per_repository_on_it() {
        let inner = InMemoryDriver::new();
        for i in 0..500 {
            put(
                &inner,
                &format!("org{}/app{i:03}", i % 5),
                "_layers/sha256/ab/link",
            )
            .await;
        }
        let observed = berth_driver::ObservedDriver::new(Arc::new(inner)).with_metrics();
        let metrics = observed.metrics().unwrap();
        let access = Access::new(Arc::new(observed));
        let p = page(&access, 10, Some("org3/app253")).await.unwrap();
        assert_eq!(p.entries.first().map(String::as_str), Some("org3/app258"));
        assert!(p.more);
        // The root, `org3`, `org3/app253` (whose children would come after it) and the
        // 11 repositories read to fill the page; `org4` may be listed ahead for nothing.
        let lists = lists(&metrics);
        assert!((14..=15).contains(&lists), "{lists} directories listed");
    }
}
