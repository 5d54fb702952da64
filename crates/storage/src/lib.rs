//! berth-storage: the registry's data laid out on a storage driver exactly as CNCF
//! distribution lays it out. `StorageRegistry` implements `berth_core::Registry`; each
//! module owns one kind of data (blobs, links, manifests, tags, uploads, referrers, catalog).

mod blobs;
mod cache;
mod catalog;
mod hashing;
mod index;
mod links;
mod manifests;
mod metacache;
mod purge;
mod referrers;
mod registry;
mod tags;
mod uploads;

pub mod layout;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_driver::StorageDriver;

pub use cache::DEFAULT_CAPACITY as DEFAULT_CACHE_CAPACITY;
use cache::DescriptorCache;
pub use purge::PurgeReport;

/// Behaviour switches from the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `storage.delete.enabled`: allow deleting blobs and manifests.
    pub delete_enabled: bool,
    /// Entries of the blob-descriptor cache; `None` disables it.
    pub descriptor_cache: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            delete_enabled: false,
            descriptor_cache: Some(cache::DEFAULT_CAPACITY),
        }
    }
}

/// The registry over one storage driver.
pub struct StorageRegistry {
    driver: Arc<dyn StorageDriver>,
    cache: Option<DescriptorCache>,
    delete_enabled: bool,
    indexes: index::Indexes,
    meta: metacache::MetadataCache,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<uploads::HotState>>>>,
}

impl StorageRegistry {
    /// A registry storing through `driver`.
    pub fn new(driver: Arc<dyn StorageDriver>, options: Options) -> Self {
        StorageRegistry {
            driver,
            cache: options.descriptor_cache.map(DescriptorCache::new),
            delete_enabled: options.delete_enabled,
            indexes: index::Indexes::default(),
            meta: metacache::MetadataCache::new(),
            uploads: Mutex::new(HashMap::new()),
        }
    }
}

#[cfg(test)]
mod tests;
