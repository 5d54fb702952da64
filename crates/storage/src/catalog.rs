//! The catalog: repository names found by walking `repositories/`, in distribution's
//! order (path component by component, so `a/b` sorts before `a-b`), kept as an ordered
//! listing loaded on first use and updated by this process's writes.

use std::cmp::Ordering;

use berth_core::{Error, Page, RepositoryName};

use crate::access::Access;
use crate::layout::StoragePath;
use crate::listing::Listing;

/// What makes a directory a repository in the catalog: linked blobs, as distribution
/// decides (a repository with only an upload in progress is not listed).
const CATALOG_MARKERS: &[&str] = &["_layers"];
/// Every directory that may hold registry data of a repository (for maintenance walks).
pub(crate) const ANY_DATA_MARKERS: &[&str] = &["_layers", "_manifests", "_uploads"];

/// Component-wise comparison of repository names.
pub(crate) fn catalog_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Repository names.
pub(crate) struct Catalog {
    access: Access,
    listing: Listing<true>,
}

impl Catalog {
    pub(crate) fn new(access: Access) -> Self {
        Catalog {
            access,
            listing: Listing::default(),
        }
    }

    /// Every repository having one of `markers` (a walk of the whole tree; the catalog
    /// does it once, then keeps its listing current).
    pub(crate) async fn walk(&self, markers: &[&str]) -> Result<Vec<RepositoryName>, Error> {
        let mut out = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(name) = pending.pop() {
            let at = if name.is_empty() {
                StoragePath::Repositories
            } else {
                StoragePath::RepositoryTree(&name)
            };
            let children = self.access.children(at).await?;
            if !name.is_empty()
                && children.iter().any(|c| markers.contains(&c.as_str()))
                && let Ok(repo) = RepositoryName::parse(&name)
            {
                out.push(repo);
            }
            for child in children.into_iter().filter(|c| !c.starts_with('_')) {
                pending.push(if name.is_empty() {
                    child
                } else {
                    format!("{name}/{child}")
                });
            }
        }
        Ok(out)
    }

    /// One page of names after `last`, at most `n`.
    pub(crate) async fn page(&self, n: usize, last: Option<&str>) -> Result<Page, Error> {
        let load = async {
            let names = self.walk(CATALOG_MARKERS).await?;
            Ok(names.into_iter().map(|n| n.as_str().to_owned()).collect())
        };
        self.listing.page(Some(n), last, load).await
    }

    /// Records a repository that now has a linked blob.
    pub(crate) async fn note(&self, repo: &RepositoryName) {
        self.listing.insert(repo.as_str()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::catalog_order;
    use std::cmp::Ordering;

    #[test]
    fn component_order() {
        assert_eq!(catalog_order("a/b", "a-b"), Ordering::Less);
        assert_eq!(catalog_order("a", "a/b"), Ordering::Less);
        assert_eq!(catalog_order("b", "a/z"), Ordering::Greater);
    }
}
