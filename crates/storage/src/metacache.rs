//! Small-metadata cache for the manifest read path: tag targets, which manifest revisions
//! a repository has, and manifest bodies (content-addressed, bounded by bytes). Every
//! write path in this crate updates or invalidates it; a miss reads storage.

use berth_core::{Digest, RepositoryName, StoredManifest, Tag};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// Tag and revision entries kept.
const ENTRIES: usize = 100_000;
/// Bytes of manifest bodies kept.
const MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
struct BodyWeight;

impl Weighter<Digest, StoredManifest> for BodyWeight {
    fn weight(&self, _: &Digest, m: &StoredManifest) -> u64 {
        m.body.len() as u64 + 256
    }
}

/// The manifest read path's cache.
pub(crate) struct MetadataCache {
    tags: Cache<(RepositoryName, Tag), Digest>,
    revisions: Cache<(RepositoryName, Digest), ()>,
    manifests: Cache<Digest, StoredManifest, BodyWeight>,
}

impl MetadataCache {
    pub(crate) fn new() -> Self {
        MetadataCache {
            tags: Cache::new(ENTRIES),
            revisions: Cache::new(ENTRIES),
            manifests: Cache::with_weighter(ENTRIES, MANIFEST_BYTES, BodyWeight),
        }
    }

    pub(crate) fn tag(&self, repo: &RepositoryName, tag: &Tag) -> Option<Digest> {
        self.tags.get(&(repo.clone(), tag.clone()))
    }

    pub(crate) fn set_tag(&self, repo: &RepositoryName, tag: &Tag, digest: &Digest) {
        self.tags
            .insert((repo.clone(), tag.clone()), digest.clone());
    }

    pub(crate) fn forget_tag(&self, repo: &RepositoryName, tag: &Tag) {
        self.tags.remove(&(repo.clone(), tag.clone()));
    }

    pub(crate) fn has_revision(&self, repo: &RepositoryName, digest: &Digest) -> bool {
        self.revisions
            .get(&(repo.clone(), digest.clone()))
            .is_some()
    }

    pub(crate) fn set_revision(&self, repo: &RepositoryName, digest: &Digest) {
        self.revisions.insert((repo.clone(), digest.clone()), ());
    }

    pub(crate) fn forget_revision(&self, repo: &RepositoryName, digest: &Digest) {
        self.revisions.remove(&(repo.clone(), digest.clone()));
    }

    pub(crate) fn manifest(&self, digest: &Digest) -> Option<StoredManifest> {
        self.manifests.get(digest)
    }

    pub(crate) fn set_manifest(&self, m: &StoredManifest) {
        self.manifests.insert(m.digest.clone(), m.clone());
    }
}
