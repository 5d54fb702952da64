//! berth-proxy: a pull-through cache. [`ProxyRegistry`] implements
//! `berth_core::Registry` around another registry (the storage registry), as
//! distribution's proxy wraps its stores: repositories under an upstream's prefix are
//! read-only copies of that upstream, filled on demand and kept in the wrapped registry's
//! storage (same layout as everything else); every other repository is the wrapped
//! registry's own. Module by job: `upstream` talks to one remote registry (`auth` gets
//! it credentials), `flight` shares one download of a blob among every client asking
//! for it, `freshness` remembers when a tag was last confirmed upstream, `repository`
//! holds the cache's rules, `eviction` keeps the cache under its size limit (by the
//! recency `lru` keeps), `counts` its Prometheus series.

mod auth;
mod counts;
mod error;
mod eviction;
mod flight;
mod freshness;
mod lru;
mod registry;
mod repository;
mod upstream;

pub use error::UpstreamError;
pub use registry::{ProxyRegistry, SetupError};
pub use upstream::UpstreamConfig;

/// distribution's default `proxy.ttl`: 7 days.
pub const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
