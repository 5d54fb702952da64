//! The composition: one of each store over one driver, shared by every repository handle.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Digest, Page, Registry, Repository, RepositoryName, Result};
use berth_driver::StorageDriver;
use berth_metrics::{Collect, Encoder, Kind};

use crate::Options;
use crate::access::Access;
use crate::blobs::BlobStore;
use crate::cache::{DescriptorCache, Descriptors, Versions};
use crate::catalog::Catalog;
use crate::lease::{Fleet, Locks};
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
    /// Blob GETs may redirect to the driver's presigned URLs.
    pub redirect: bool,
    /// Serialises rewrites of one subject's referrers tag schema index (in the fleet
    /// too: each rewrite reads the index, then writes it whole).
    pub schema_locks: Locks<(RepositoryName, Digest)>,
}

/// The registry over one storage driver.
pub struct StorageRegistry {
    pub(crate) stores: Arc<Stores>,
}

impl StorageRegistry {
    /// A registry storing through `driver`.
    pub fn new(driver: Arc<dyn StorageDriver>, options: Options) -> Self {
        // Only a driver that presigns URLs is asked for one: elsewhere asking would
        // cost every blob GET a link lookup for nothing.
        let redirect = options.redirect && driver.redirects();
        let access = Access::new(driver);
        let versions = Versions::new(options.shared_versions);
        let fleet = Fleet::new(options.shared_locks);
        let stores = Stores {
            blobs: BlobStore::new(
                access.clone(),
                match options.shared_descriptor_cache {
                    Some(shared) => Some(Descriptors::Shared(shared)),
                    None => options
                        .descriptor_cache
                        .map(|n| Descriptors::Local(DescriptorCache::new(n))),
                },
                fleet.clone(),
            ),
            uploads: UploadStore::new(
                access.clone(),
                options.upload_startedat,
                options.max_upload_sessions,
                fleet.clone(),
            ),
            manifests: ManifestStore::new(access.clone(), versions.clone(), fleet.clone()),
            tags: TagStore::new(
                access.clone(),
                versions,
                fleet.clone(),
                options.shared_index.clone(),
            ),
            referrers: ReferrerStore::new(access.clone()),
            catalog: Catalog::new(access.clone(), options.shared_index),
            access,
            delete_enabled: options.delete_enabled,
            referrers_tag_schema: options.referrers_tag_schema,
            redirect,
            schema_locks: Locks::new("schema", fleet),
        };
        StorageRegistry {
            stores: Arc::new(stores),
        }
    }

    /// Starts building the catalog listing in the background (see `catalog`): a serving
    /// registry calls it at start-up, so the listing is complete by the time pages are
    /// asked for, and pages asked for before are read from storage meanwhile. Returns
    /// at once.
    pub fn start_listings(&self) {
        self.stores.catalog.start_build();
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

/// The storage layer's series: distribution's blob-descriptor cache counter, berth's
/// lookups of each cache, whether the catalog listing is built, and the upload sessions
/// open. Counts are read as they stand;
/// the session count takes the session table's lock once per scrape.
impl Collect for StorageRegistry {
    fn collect(&self, enc: &mut Encoder) {
        let s = &self.stores;
        let (global, linked) = (&s.blobs.global_lookups, &s.blobs.linked_lookups);
        let hits = global.hits.get() + linked.hits.get();
        let misses = global.misses.get() + linked.misses.get();
        let name = "registry_storage_cache_total";
        enc.family(name, "The number of cache request received", Kind::Counter);
        enc.sample(name, &[("type", "Request")], hits + misses);
        enc.sample(name, &[("type", "Hit")], hits);
        enc.sample(name, &[("type", "Miss")], misses);
        let name = "berth_storage_cache_lookups_total";
        enc.family(
            name,
            "Lookups of berth's metadata caches by cache and result (miss: storage was read).",
            Kind::Counter,
        );
        for (cache, lookups) in [
            ("blob_descriptor", global),
            ("blob_link", linked),
            ("tag", &s.tags.lookups),
        ] {
            enc.sample(
                name,
                &[("cache", cache), ("result", "hit")],
                lookups.hits.get(),
            );
            enc.sample(
                name,
                &[("cache", cache), ("result", "miss")],
                lookups.misses.get(),
            );
        }
        let name = "berth_catalog_listing_built";
        enc.family(
            name,
            "1 once this node's in-memory catalog listing is complete (pages then come from \
             memory; until then from storage), 0 before and with the listings in Redis.",
            Kind::Gauge,
        );
        enc.sample(name, &[], i64::from(s.catalog.is_built()));
        let name = "berth_upload_sessions_open";
        enc.family(
            name,
            "Upload sessions this node holds open (started or continued here, not yet ended).",
            Kind::Gauge,
        );
        let open = i64::try_from(s.uploads.open_sessions()).unwrap_or(i64::MAX);
        enc.sample(name, &[], open);
    }
}
