//! Tags: `_manifests/tags/<tag>/current/link` names the manifest, and an index of every
//! digest the tag has pointed at, as distribution keeps it.

use berth_core::{Digest, Error, Page, RepositoryName, Tag};

use crate::StorageRegistry;
use crate::layout::StoragePath;

impl StorageRegistry {
    /// Points `tag` at `digest`, whose revision link must already be on disk. The index
    /// entry and the `current` link are independent, so they are written (and flushed)
    /// at the same time.
    pub(crate) async fn tag_manifest(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), Error> {
        futures::try_join!(
            self.write_link(StoragePath::TagIndexLink(repo, tag, digest), digest),
            self.write_link(StoragePath::TagCurrentLink(repo, tag), digest),
        )?;
        self.meta.set_tag(repo, tag, digest);
        if let Some(listing) = self.indexes.tags_if_present(repo) {
            listing.insert(tag.as_str()).await;
        }
        Ok(())
    }

    /// Removes a tag; `Ok(false)` when it did not exist.
    pub(crate) async fn untag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool, Error> {
        self.meta.forget_tag(repo, tag);
        let existed = self.remove(StoragePath::TagDir(repo, tag)).await?;
        if let Some(listing) = self.indexes.tags_if_present(repo) {
            listing.remove(tag.as_str()).await;
        }
        Ok(existed)
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
        let listing = match self.indexes.tags_if_present(repo) {
            Some(l) => l,
            None if self.repository_exists(repo).await? => self.indexes.tags(repo),
            None => return Err(Error::NameUnknown(repo.to_string())),
        };
        let load = async {
            let names = self.tag_names(repo).await?;
            Ok(names
                .into_iter()
                .filter(|t| Tag::parse(t).is_ok())
                .collect())
        };
        listing.page(n, last, load).await
    }
}
