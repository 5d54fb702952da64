//! The catalog: repository names found by walking `repositories/`, in distribution's
//! order (path component by component, so `a/b` sorts before `a-b`).

use std::cmp::Ordering;

use berth_core::{Error, Page};

use crate::StorageRegistry;
use crate::layout::StoragePath;

/// What makes a directory a repository in the catalog: linked blobs, as distribution
/// decides (a repository with only an upload in progress is not listed).
pub(crate) const CATALOG_MARKERS: &[&str] = &["_layers"];
/// Every directory that may hold registry data of a repository (for maintenance walks).
pub(crate) const ANY_DATA_MARKERS: &[&str] = &["_layers", "_manifests", "_uploads"];

/// Component-wise comparison of repository names.
pub(crate) fn catalog_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

impl StorageRegistry {
    /// Every repository name having one of `markers` (a walk of the whole tree; the
    /// catalog does it once, then keeps its index current).
    pub(crate) async fn repository_names(&self, markers: &[&str]) -> Result<Vec<String>, Error> {
        let root = StoragePath::Repositories.path();
        let mut out = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(name) = pending.pop() {
            let dir = if name.is_empty() {
                root.clone()
            } else {
                format!("{root}/{name}")
            };
            let children = self.list_names(&dir).await?;
            if !name.is_empty() && children.iter().any(|c| markers.contains(&c.as_str())) {
                out.push(name.clone());
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

    pub(crate) async fn catalog_impl(&self, n: usize, last: Option<&str>) -> Result<Page, Error> {
        let load = self.repository_names(CATALOG_MARKERS);
        self.indexes.repositories.page(Some(n), last, load).await
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
