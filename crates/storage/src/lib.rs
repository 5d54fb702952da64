//! berth-storage: the registry's data laid out on a storage driver exactly as CNCF
//! distribution lays it out. Each store owns one kind of data and its caches (blobs and
//! their links, uploads, manifests, tags, referrers, the catalog); `StorageRegistry`
//! composes them into `berth_core::Registry`, and `repository` holds the use cases that
//! span stores. Maintenance walks (the storage check, garbage collection, upload
//! purging, a pull-through cache's eviction) work through the same stores.

mod access;
mod blobs;
mod cache;
mod catalog;
mod check;
mod evict;
mod fence;
mod gc;
mod hashing;
mod index;
mod lease;
mod listing;
mod locks;
mod manifests;
mod purge;
mod referrers;
mod registry;
mod repository;
mod tag_schema;
mod tags;
mod uploads;
mod walk;

pub mod layout;

pub use cache::DEFAULT_CAPACITY as DEFAULT_CACHE_CAPACITY;
pub use cache::{SharedDescriptors, SharedVersions};
pub use check::{CheckReport, Finding, FindingKind};
pub use evict::{CachedBlob, Evicted};
pub use gc::{GcEvent, GcOptions, GcReport};
pub use index::{IndexName, LEASE_RENEWAL, Lease, SharedIndex};
pub use lease::{Acquired, SharedLease, SharedLocks};
pub use purge::PurgeReport;
pub use registry::StorageRegistry;

/// Behaviour switches from the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `storage.delete.enabled`: allow deleting blobs and manifests.
    pub delete_enabled: bool,
    /// Entries of the blob-descriptor cache; `None` disables it.
    pub descriptor_cache: Option<usize>,
    /// A descriptor cache shared by several nodes (Redis), used in place of the
    /// in-memory one when set.
    pub shared_descriptor_cache: Option<std::sync::Arc<dyn SharedDescriptors>>,
    /// Repository versions shared by several nodes (Redis): tag targets cached here are
    /// trusted only while their repository's version is the one they were read at.
    pub shared_versions: Option<std::sync::Arc<dyn SharedVersions>>,
    /// The catalog and tag listings as indexes shared by several nodes (Redis), in
    /// place of this process's in-memory listings.
    pub shared_index: Option<std::sync::Arc<dyn SharedIndex>>,
    /// Leases several nodes share (Redis), taken beside this node's locks wherever
    /// storage reads, checks and writes (see `lease`).
    pub shared_locks: Option<std::sync::Arc<dyn SharedLocks>>,
    /// `berth.referrers.tagschema`: also keep the referrers tag schema's `<alg>-<hex>`
    /// indexes current, for clients of registries without the referrers API.
    pub referrers_tag_schema: bool,
    /// Write distribution's `startedat` when an upload session starts: distribution
    /// nodes sharing the storage need it to continue berth's sessions. It costs a small
    /// push one freed inode at commit (from 5% to two thirds of push-small's throughput
    /// on a journal-less ext4, depending on what was freed lately), so it is for fleets,
    /// which share an `http.secret`.
    pub upload_startedat: bool,
    /// Bound on upload sessions this process opened and has not seen end
    /// (`berth.limits.maxuploadsessions`); `None` for no bound. See `uploads::Opened`.
    pub max_upload_sessions: Option<usize>,
    /// Answer blob GETs with a redirect to the driver's presigned URL where it has one
    /// (`storage.redirect.disable` unset).
    pub redirect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            delete_enabled: false,
            descriptor_cache: Some(cache::DEFAULT_CAPACITY),
            shared_descriptor_cache: None,
            shared_versions: None,
            shared_index: None,
            shared_locks: None,
            referrers_tag_schema: false,
            upload_startedat: false,
            redirect: false,
            max_upload_sessions: None,
        }
    }
}

#[cfg(test)]
mod tests;
