//! berth-redis: the blob-descriptor cache in Redis that the nodes of a fleet share
//! (`storage.cache.blobdescriptor: redis`), under distribution's own key names so berth
//! and distribution nodes can share one Redis, the repository versions that keep the
//! nodes' tag caches in step, the fleet's locks, and the catalog and tag listings as
//! shared ordered indexes (`index`; leases and indexes under berth's own keys).
//! Redis never fails a request: every call is bounded by a timeout, a failure or an
//! outage makes lookups misses (storage is read instead) and locks this node's alone,
//! and a dead Redis is skipped until a background task has reconnected.

mod cache;
mod index;
mod keys;
mod link;
mod lock;

use std::path::PathBuf;
use std::time::Duration;

pub use cache::RedisDescriptors;
pub use index::{RedisIndex, catalog_after, decode, encode};
pub use lock::{RedisLocks, WAIT_LEASES};

/// The `redis` section, validated. Its `Debug` leaves the password out.
#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    /// `host:port` of the server.
    pub addr: String,
    /// An ACL user (Redis 6 and later), sent with `AUTH` along with `password`; the
    /// `default` user when unset.
    pub username: Option<String>,
    /// Sent with `AUTH` when set.
    pub password: Option<String>,
    /// The database selected.
    pub db: i64,
    /// How long opening a connection may take.
    pub dial_timeout: Duration,
    /// How long a lookup may take, from sending it to its answer.
    pub read_timeout: Duration,
    /// How long an update may take, from sending it to its answer.
    pub write_timeout: Duration,
    /// Connect with TLS; `None`: plain TCP.
    pub tls: Option<RedisTls>,
    /// How long a lock's lease lasts unless its holder renews it
    /// (`berth.redis.locklease`): how long a dead node's locks keep others waiting.
    pub lock_lease: Duration,
}

/// `redis.tls`: how berth proves itself and checks the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisTls {
    /// A client certificate chain (PEM) for servers that require one, with `key`.
    pub certificate: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) the server's certificate must chain to; empty: the
    /// system's roots.
    pub rootcas: Vec<PathBuf>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("db", &self.db)
            .field("dial_timeout", &self.dial_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("tls", &self.tls)
            .field("lock_lease", &self.lock_lease)
            .finish()
    }
}

impl RedisConfig {
    /// Timeouts used where the configuration writes none (or zero): distribution waits
    /// forever then, which would let a hung Redis hang requests.
    pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
    /// See [`DEFAULT_DIAL_TIMEOUT`](Self::DEFAULT_DIAL_TIMEOUT).
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_millis(200);
    /// See [`DEFAULT_DIAL_TIMEOUT`](Self::DEFAULT_DIAL_TIMEOUT).
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_millis(200);
    /// A lock's lease unless configured: renewed every third of it, so a holder is
    /// safe through two lost renewals; a dead holder's locks free within it.
    pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(10);

    /// A configuration for `addr` with the default timeouts.
    pub fn new(addr: impl Into<String>) -> Self {
        RedisConfig {
            addr: addr.into(),
            username: None,
            password: None,
            db: 0,
            dial_timeout: Self::DEFAULT_DIAL_TIMEOUT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            tls: None,
            lock_lease: Self::DEFAULT_LOCK_LEASE,
        }
    }
}

/// Why the cache could not be set up (an unreachable server is not one of these: the
/// cache then starts disconnected and keeps trying).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// `redis.addr` is not `host:port`.
    #[error("redis.addr {0:?} is not host:port")]
    Addr(String),
    /// The client could not be made from the configuration.
    #[error("redis client: {0}")]
    Client(#[from] redis::RedisError),
    /// A TLS file could not be read.
    #[error("reading {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Started outside a tokio runtime.
    #[error("the redis cache needs a tokio runtime")]
    NoRuntime,
}

/// Splits `host:port` (`[v6]:port` too); the port is required, as in distribution.
pub fn parse_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(['/', ' '])).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::parse_addr;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("localhost:6379"),
            Some(("localhost".into(), 6379))
        );
        assert_eq!(parse_addr("[::1]:6380"), Some(("::1".into(), 6380)));
        assert_eq!(parse_addr("localhost"), None);
        assert_eq!(parse_addr(":6379"), None);
        assert_eq!(parse_addr("h:0"), None);
        assert_eq!(parse_addr("h:x"), None);
    }
}
