//! [`SharedIndex`]: the catalog and the tag listings as ordered indexes several nodes
//! share (Redis, in `berth-redis`), in place of each node's in-memory listings, which
//! would only see that node's writes. Every node keeps them current after its storage
//! writes; one that finds an index incomplete (never built, flushed, evicted, or
//! distrusted after an update that could not be sent) rebuilds it from storage under a
//! lease, while the others answer from storage. Best effort throughout, like the
//! descriptor cache: an index that cannot be read answers `None` and storage is read
//! instead; nothing here fails a request.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::{Page, RepositoryName};

/// How often a rebuild's lease is renewed while its walk runs; an implementation holds
/// a lease several times longer than this.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(5);

/// Which index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexName<'a> {
    /// Repository names, in catalog order (component by component: `a/b` before `a-b`).
    Catalog,
    /// One repository's tags, in byte order.
    Tags(&'a RepositoryName),
}

/// The right to rebuild one index, held by one node at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease(pub String);

/// An ordered index shared by the nodes of a fleet.
///
/// Rebuilding, and why no write is lost meanwhile: [`begin_rebuild`](Self::begin_rebuild)
/// takes the lease and empties the index before the caller walks storage; updates made
/// while the lease is held still reach the index, and removals are also recorded apart;
/// [`complete_rebuild`](Self::complete_rebuild) merges the walk's names into the index,
/// takes the recorded removals out again, and marks the index complete, all at once and
/// only while the lease is still this node's. An update whose storage write came before
/// the walk started is on storage when the walk reads it; one that came after reaches
/// the index after it was emptied.
#[async_trait]
pub trait SharedIndex: Send + Sync + fmt::Debug {
    /// The page after `last`, at most `n` (`None`: all), with whether more follow;
    /// `None` when the index is not complete or cannot be read.
    async fn page(
        &self,
        index: IndexName<'_>,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Option<Page>;
    /// Adds a name once storage has it; answers whether the index did not list it
    /// before (a caller may then check storage again: another node may have removed
    /// what it wrote between its write and this add). One that cannot be sent leaves
    /// the index distrusted (incomplete) until it is rebuilt, and answers `false`.
    async fn add(&self, index: IndexName<'_>, name: &str) -> bool;
    /// Removes a name once storage no longer has it; as [`add`](Self::add) otherwise.
    async fn remove(&self, index: IndexName<'_>, name: &str);
    /// Takes the lease to rebuild an incomplete index and empties it; `None` when the
    /// index is complete, another node holds the lease, or it cannot be reached.
    async fn begin_rebuild(&self, index: IndexName<'_>) -> Option<Lease>;
    /// Keeps the lease while the walk runs; `false` when it was lost (stop).
    async fn renew(&self, index: IndexName<'_>, lease: &Lease) -> bool;
    /// Merges what the walk found and marks the index complete; `false` when the lease
    /// was lost or the index could not be reached (it stays incomplete).
    async fn complete_rebuild(
        &self,
        index: IndexName<'_>,
        lease: &Lease,
        names: Vec<String>,
    ) -> bool;
}
