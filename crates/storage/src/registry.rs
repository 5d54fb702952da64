//! The composition: one of each store over one driver, shared by every repository handle.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Digest, Page, Registry, Repository, RepositoryName, Result};
use berth_driver::StorageDriver;

use crate::Options;
use crate::access::Access;
use crate::blobs::BlobStore;
use crate::cache::DescriptorCache;
use crate::catalog::Catalog;
use crate::locks::KeyedLocks;
use crate::manifests::ManifestStore;
use crate::referrers::ReferrerStore;
use crate::repository::StorageRepository;
use crate::tags::TagStore;
use crate::uploads::UploadStore;

/// The stores, each owning its data and caches.
pub(crate) struct Stores {
    pub access: Access,
    pub blobs: BlobStore,
    pub uploads: UploadStore,
    pub manifests: ManifestStore,
    pub tags: TagStore,
    pub referrers: ReferrerStore,
    pub catalog: Catalog,
    pub delete_enabled: bool,
    pub referrers_tag_schema: bool,
    /// Serialises rewrites of one subject's referrers tag schema index.
    pub schema_locks: KeyedLocks<(RepositoryName, Digest)>,
}

/// The registry over one storage driver.
pub struct StorageRegistry {
    pub(crate) stores: Arc<Stores>,
}

impl StorageRegistry {
    /// A registry storing through `driver`.
    pub fn new(driver: Arc<dyn StorageDriver>, options: Options) -> Self {
        let access = Access::new(driver);
        let stores = Stores {
            blobs: BlobStore::new(
                access.clone(),
                options.descriptor_cache.map(DescriptorCache::new),
            ),
            uploads: UploadStore::new(
                access.clone(),
                options.upload_startedat,
                options.max_upload_sessions,
            ),
            manifests: ManifestStore::new(access.clone()),
            tags: TagStore::new(access.clone()),
            referrers: ReferrerStore::new(access.clone()),
            catalog: Catalog::new(access.clone()),
            access,
            delete_enabled: options.delete_enabled,
            referrers_tag_schema: options.referrers_tag_schema,
            schema_locks: KeyedLocks::default(),
        };
        StorageRegistry {
            stores: Arc::new(stores),
        }
    }

    /// The use cases of one repository, typed as this crate's handle.
    pub(crate) fn handle(&self, name: RepositoryName) -> StorageRepository {
        StorageRepository::new(name, self.stores.clone())
    }
}

#[async_trait]
impl Registry for StorageRegistry {
    async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Page> {
        self.stores.catalog.page(n, last).await
    }

    fn repository(&self, name: RepositoryName) -> Box<dyn Repository> {
        Box::new(self.handle(name))
    }
}
