//! The cache's composition: the wrapped registry, the upstreams by prefix, and what
//! their repositories share (downloads in flight, tag freshness, the size limit).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Page, Registry, Repository, RepositoryName, Result};
use berth_storage::StorageRegistry;

use crate::error::UpstreamError;
use crate::eviction::{Eviction, IsCache};
use crate::flight::Flights;
use crate::freshness::Freshness;
use crate::repository::ProxyRepository;
use crate::upstream::{Upstream, UpstreamConfig};

/// What every proxied repository handle shares.
pub(crate) struct Shared {
    pub(crate) flights: Arc<Flights>,
    pub(crate) freshness: Freshness,
    /// The size limit, when there is one.
    pub(crate) eviction: Option<Arc<Eviction>>,
}

/// A registry whose repositories under an upstream's prefix are pull-through copies
/// of that upstream's; the rest are the wrapped registry's own.
pub struct ProxyRegistry {
    inner: Arc<dyn Registry>,
    upstreams: Vec<Arc<Upstream>>,
    shared: Arc<Shared>,
}

/// Why the cache could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The spool directory for downloads in flight.
    #[error("proxy spool directory {path}: {source}")]
    Spool {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An upstream's HTTP client.
    #[error("proxy upstream {remote}: {source}")]
    Client {
        /// The upstream.
        remote: String,
        /// Why.
        source: UpstreamError,
    },
}

impl ProxyRegistry {
    /// A cache of `upstreams` (longest prefix first is not needed: validation keeps
    /// prefixes from overlapping) kept in `storage`, spooling downloads in `spool`
    /// (emptied now: nothing there outlives its process), its blobs kept under
    /// `max_size` bytes when given. Call from within a Tokio runtime when `max_size` is
    /// set (the eviction task starts here, or else with the first pull).
    pub fn new(
        storage: Arc<StorageRegistry>,
        upstreams: Vec<UpstreamConfig>,
        spool: PathBuf,
        max_size: Option<u64>,
    ) -> Result<Self, SetupError> {
        let flights = Flights::new(spool.clone()).map_err(|source| SetupError::Spool {
            path: spool,
            source,
        })?;
        let upstreams = upstreams
            .into_iter()
            .map(|c| {
                let remote = c.remote.to_string();
                Upstream::new(c)
                    .map(Arc::new)
                    .map_err(|source| SetupError::Client { remote, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let eviction = max_size.map(|limit| {
            let configs: Vec<UpstreamConfig> = upstreams.iter().map(|u| u.config.clone()).collect();
            let is_cache: Arc<IsCache> = Arc::new(move |name: &RepositoryName| {
                configs
                    .iter()
                    .any(|c| c.remote_name(name.as_str()).is_some())
            });
            let eviction = Arc::new(Eviction::new(limit, storage.clone(), is_cache));
            if tokio::runtime::Handle::try_current().is_ok() {
                eviction.start();
            }
            eviction
        });
        Ok(ProxyRegistry {
            inner: storage,
            upstreams,
            shared: Arc::new(Shared {
                flights: Arc::new(flights),
                freshness: Freshness::default(),
                eviction,
            }),
        })
    }

    pub(crate) fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.upstreams.iter()
    }

    pub(crate) fn eviction(&self) -> Option<&Arc<Eviction>> {
        self.shared.eviction.as_ref()
    }
}

#[async_trait]
impl Registry for ProxyRegistry {
    /// The local catalog, as distribution's proxy lists it: what has been pulled.
    async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Page> {
        self.inner.catalog(n, last).await
    }

    fn repository(&self, name: RepositoryName) -> Box<dyn Repository> {
        let local = self.inner.repository(name.clone());
        let found = self
            .upstreams
            .iter()
            .find_map(|u| Some((u, u.config.remote_name(name.as_str())?.to_owned())));
        match found {
            Some((upstream, remote)) => Box::new(ProxyRepository::new(
                name,
                remote,
                local,
                upstream.clone(),
                self.shared.clone(),
            )),
            None => local,
        }
    }
}
