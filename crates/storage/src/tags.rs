//! Tags: `_manifests/tags/<tag>/current/link` names the manifest, and an index of every
//! digest the tag has pointed at, as distribution keeps it.

use berth_core::{Digest, Error, Page, RepositoryName, Tag};

use crate::StorageRegistry;
use crate::layout::StoragePath;

/// Sorts names and cuts the page after `last`, at most `n` entries (`None`: all).
pub(crate) fn paginate(
    mut names: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    order: fn(&str, &str) -> std::cmp::Ordering,
) -> Page {
    names.sort_by(|a, b| order(a, b));
    names.dedup();
    let start = match last {
        Some(l) => names.partition_point(|x| order(x, l) != std::cmp::Ordering::Greater),
        None => 0,
    };
    let rest = names.len() - start;
    let take = n.unwrap_or(rest).min(rest);
    Page {
        entries: names.drain(start..start + take).collect(),
        more: take > 0 && take < rest,
    }
}

impl StorageRegistry {
    /// Points `tag` at `digest`.
    pub(crate) async fn tag_manifest(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), Error> {
        self.write_link(StoragePath::TagIndexLink(repo, tag, digest), digest)
            .await?;
        self.write_link(StoragePath::TagCurrentLink(repo, tag), digest)
            .await
    }

    /// Every tag name stored for the repository.
    async fn tag_names(&self, repo: &RepositoryName) -> Result<Vec<String>, Error> {
        self.children(StoragePath::TagsDir(repo)).await
    }

    /// Tags whose current link is `digest`.
    pub(crate) async fn tags_pointing_at(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Tag>, Error> {
        let mut out = Vec::new();
        for name in self.tag_names(repo).await? {
            let Ok(tag) = Tag::parse(&name) else { continue };
            if self
                .read_link(StoragePath::TagCurrentLink(repo, &tag))
                .await?
                .as_ref()
                == Some(digest)
            {
                out.push(tag);
            }
        }
        Ok(out)
    }

    /// Whether the repository exists (has links or manifests).
    pub(crate) async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool, Error> {
        Ok(self.exists(StoragePath::ManifestsDir(repo)).await?
            || self.exists(StoragePath::LayersDir(repo)).await?)
    }

    pub(crate) async fn tags_impl(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page, Error> {
        let names = self.tag_names(repo).await?;
        if names.is_empty() && !self.repository_exists(repo).await? {
            return Err(Error::NameUnknown(repo.to_string()));
        }
        let names = names
            .into_iter()
            .filter(|t| Tag::parse(t).is_ok())
            .collect();
        Ok(paginate(names, n, last, str::cmp))
    }
}

#[cfg(test)]
mod tests {
    use super::paginate;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages() {
        let all = names(&["c", "a", "b", "d"]);
        let p = paginate(all.clone(), Some(2), None, str::cmp);
        assert_eq!((p.entries, p.more), (names(&["a", "b"]), true));
        let p = paginate(all.clone(), Some(2), Some("b"), str::cmp);
        assert_eq!((p.entries, p.more), (names(&["c", "d"]), false));
        let p = paginate(all.clone(), Some(0), None, str::cmp);
        assert_eq!((p.entries, p.more), (vec![], false));
        let p = paginate(all.clone(), None, Some("bb"), str::cmp);
        assert_eq!((p.entries, p.more), (names(&["c", "d"]), false));
        let p = paginate(all, Some(10), Some("z"), str::cmp);
        assert_eq!((p.entries, p.more), (vec![], false));
    }
}
