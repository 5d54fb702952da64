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
//!
//! [`role`] tells which of these keys a wipe (see `link::wipe`) acts on, from the name
//! alone, exactly: names and digests must parse, so keys another application keeps
//! under similar names are left alone.

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

/// The catalog index's rebuild lease (`lease(CATALOG)`).
pub const CATALOG_LEASE: &str = "berth::catalog::rebuild";
/// `SCAN MATCH` patterns covering the keys of each [`Role`] but the catalog's (Redis
/// filters with them; [`role`] decides).
pub const REPOSITORY_KEYS: &str = "berth::repository::*";
/// See [`REPOSITORY_KEYS`]: the tag indexes.
pub const TAG_INDEXES: &str = "berth::repository::*::tags";
/// See [`REPOSITORY_KEYS`]: the descriptor cache's global hashes.
pub const GLOBALS: &str = "blobs::*";
/// See [`REPOSITORY_KEYS`]: the descriptor cache's per-repository sets and hashes.
pub const LINKS: &str = "repository::*::blobs*";

/// What a key is to berth, for a wipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A descriptor-cache entry (`global`, `linked_set`, `link`).
    Descriptor,
    /// An index (`CATALOG`, `tags`).
    Index,
    /// An index's rebuild lease (`lease` of an index).
    Lease,
    /// A repository's version counter (`version`).
    Version,
}

/// The role of the key named `key`, or `None` for every other key (locks, a rebuild's
/// gathered names or removals, keys berth never writes).
pub fn role(key: &[u8]) -> Option<Role> {
    let key = std::str::from_utf8(key).ok()?;
    let name = |s: &str| RepositoryName::parse(s).is_ok();
    let digest = |s: &str| Digest::parse(s).is_ok();
    if key == CATALOG {
        return Some(Role::Index);
    }
    if key == CATALOG_LEASE {
        return Some(Role::Lease);
    }
    if let Some(d) = key.strip_prefix("blobs::") {
        return digest(d).then_some(Role::Descriptor);
    }
    // Names hold no `:` and digests no `::`, so `::` splits exactly.
    if let Some(rest) = key.strip_prefix("repository::") {
        let parts: Vec<&str> = rest.split("::").collect();
        return match parts[..] {
            [r, "blobs"] if name(r) => Some(Role::Descriptor),
            [r, "blobs", d] if name(r) && digest(d) => Some(Role::Descriptor),
            _ => None,
        };
    }
    let rest = key.strip_prefix("berth::repository::")?;
    let parts: Vec<&str> = rest.split("::").collect();
    match parts[..] {
        [r, "tags"] if name(r) => Some(Role::Index),
        [r, "tags", "rebuild"] if name(r) => Some(Role::Lease),
        [r, "version"] if name(r) => Some(Role::Version),
        _ => None,
    }
}

/// Whether `pattern` (a `SCAN MATCH` glob of `*` wildcards only) matches `key`.
#[cfg(test)]
fn glob(pattern: &str, key: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == key,
        Some((head, tail)) => key.strip_prefix(head).is_some_and(|rest| {
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }),
    }
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
        assert_eq!(lease(CATALOG), CATALOG_LEASE);
    }

    /// Every key berth writes has the role a wipe needs, and is matched by the pattern
    /// of its pass; keys it must keep have none.
    #[test]
    fn roles_of_every_key_and_their_patterns() {
        let r = RepositoryName::parse("a/b-c").unwrap();
        let d = Digest::of(Algorithm::Sha256, b"x");
        let d512 = Digest::of(Algorithm::Sha512, b"x");
        let role_of = |k: &str| role(k.as_bytes());
        let cases: Vec<(String, Option<Role>, &str)> = vec![
            (global(&d), Some(Role::Descriptor), GLOBALS),
            (global(&d512), Some(Role::Descriptor), GLOBALS),
            (linked_set(&r), Some(Role::Descriptor), LINKS),
            (link(&r, &d), Some(Role::Descriptor), LINKS),
            (CATALOG.into(), Some(Role::Index), CATALOG),
            (tags(&r), Some(Role::Index), TAG_INDEXES),
            (lease(CATALOG), Some(Role::Lease), CATALOG_LEASE),
            (lease(&tags(&r)), Some(Role::Lease), REPOSITORY_KEYS),
            (version(&r), Some(Role::Version), REPOSITORY_KEYS),
        ];
        for (key, want, pattern) in &cases {
            assert_eq!(role_of(key), *want, "{key}");
            assert!(glob(pattern, key), "{pattern} misses {key}");
        }
        for kept in [
            lock("tag::a/b-c::v1"),
            lock("upload::a::0123"),
            rebuilt(CATALOG, "00ff"),
            rebuilt(&tags(&r), "00ff"),
            removed(CATALOG),
            removed(&tags(&r)),
            "blobs::not-a-digest".into(),
            "blobs::md5:0123".into(),
            "repository::Upper::blobs".into(),
            "repository::a::blobs::nodigest".into(),
            "repository::a::blobsmith".into(),
            format!("repository::a::blobs::{d}::more"),
            "berth::repository::a::other".into(),
            "berth::catalogue".into(),
            "sessions::blobs::x".into(),
            "other-app:key".into(),
        ] {
            assert_eq!(role_of(&kept), None, "{kept}");
        }
        assert_eq!(role(b"blobs::\xff\xfe"), None, "not UTF-8");
        // A pattern filters; the role decides: names it matches may have none.
        assert!(glob(LINKS, "repository::a::blobsmith"));
    }
}
