//! Key names, as distribution's Redis cache writes them, so that berth and distribution
//! nodes sharing a Redis read each other's entries and invalidations:
//! - `blobs::<digest>`: a hash of the global store's blob (`digest`, `size`, `mediatype`);
//! - `repository::<name>::blobs`: the set of digests linked into a repository;
//! - `repository::<name>::blobs::<digest>`: a hash holding the link's `mediatype`.
//!
//! berth's own keys start with `berth::`, a prefix distribution never writes:
//! - `berth::repository::<name>::version`: a counter moved on by every tag change;
//! - `berth::catalog`: the catalog index, a sorted set (every score 0, read in byte
//!   order) of repository names with `/` written as `\0` (see `index`), plus the empty
//!   member as the mark of a complete index;
//! - `berth::repository::<name>::tags`: a repository's tag index, the same way;
//! - `<index>::rebuild`: the lease of the node rebuilding an index (its token);
//!   `<index>::rebuild::<token>`: what that rebuild's walk found; `<index>::removed`:
//!   names removed while it runs.
//! - `berth::lock::<kind>::<key>`: a lease (see `lock`), e.g.
//!   `berth::lock::tag::<name>::<tag>` or `berth::lock::upload::<name>::<id>`.

use berth_core::{Digest, RepositoryName};

/// The media type written with an entry: berth does not track one per blob, and
/// distribution answers this one for blobs it stats from storage.
pub const MEDIA_TYPE: &str = "application/octet-stream";

/// The global descriptor hash.
pub fn global(digest: &Digest) -> String {
    format!("blobs::{digest}")
}

/// The set of a repository's linked digests.
pub fn linked_set(repo: &RepositoryName) -> String {
    format!("repository::{repo}::blobs")
}

/// A repository's per-link hash.
pub fn link(repo: &RepositoryName, digest: &Digest) -> String {
    format!("repository::{repo}::blobs::{digest}")
}

/// A repository's version counter.
pub fn version(repo: &RepositoryName) -> String {
    format!("berth::repository::{repo}::version")
}

/// The catalog index.
pub const CATALOG: &str = "berth::catalog";

/// A repository's tag index.
pub fn tags(repo: &RepositoryName) -> String {
    format!("berth::repository::{repo}::tags")
}

/// The rebuild lease of the index at `index`.
pub fn lease(index: &str) -> String {
    format!("{index}::rebuild")
}

/// Where the rebuild holding `token` gathers the walk's names.
pub fn rebuilt(index: &str, token: &str) -> String {
    format!("{index}::rebuild::{token}")
}

/// The names removed from the index at `index` while it is rebuilt.
pub fn removed(index: &str) -> String {
    format!("{index}::removed")
}

/// The lease of a lock named `name` by the storage (`<kind>::<key>`).
pub fn lock(name: &str) -> String {
    format!("berth::lock::{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::Algorithm;

    #[test]
    fn distribution_names() {
        let d = Digest::of(Algorithm::Sha256, b"x");
        let r = RepositoryName::parse("a/b").unwrap();
        assert_eq!(global(&d), format!("blobs::sha256:{}", d.hex()));
        assert_eq!(linked_set(&r), "repository::a/b::blobs");
        assert_eq!(
            link(&r, &d),
            format!("repository::a/b::blobs::sha256:{}", d.hex())
        );
    }

    #[test]
    fn berth_names_stay_under_the_prefix() {
        let r = RepositoryName::parse("a/b").unwrap();
        assert_eq!(tags(&r), "berth::repository::a/b::tags");
        assert_eq!(lease(CATALOG), "berth::catalog::rebuild");
        assert_eq!(rebuilt(CATALOG, "t"), "berth::catalog::rebuild::t");
        assert_eq!(removed(&tags(&r)), "berth::repository::a/b::tags::removed");
    }
}
