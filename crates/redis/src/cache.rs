//! [`RedisDescriptors`]: the shared descriptor cache over a [`Link`]. A repository-scoped
//! hit needs both the repository's set to hold the digest and the global hash to hold
//! it, in one round trip: a blob removed from the global store (garbage collection, on
//! any node, berth or distribution) stops being served through every repository at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName};
use berth_metrics::{Collect, Encoder, Kind as MetricKind};
use berth_storage::{SharedDescriptors, SharedVersions};
use redis::{
    ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisConnectionInfo,
    TlsCertificates,
};

use crate::keys::{self, MEDIA_TYPE};
use crate::link::{self, Kind, Link};
use crate::lock::RedisLocks;
use crate::{RedisConfig, RedisError, RedisTls, parse_addr};

/// The descriptor cache in Redis. Cheap to share: clone the `Arc`.
pub struct RedisDescriptors {
    link: Arc<Link>,
    addr: String,
}

impl std::fmt::Debug for RedisDescriptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDescriptors")
            .field("addr", &self.addr)
            .field("up", &self.link.is_up())
            .finish()
    }
}

impl RedisDescriptors {
    /// Starts the cache: it connects in the background (start-up never waits for Redis,
    /// nor fails when it is down) and is skipped until connected.
    pub fn start(config: &RedisConfig) -> Result<Arc<Self>, RedisError> {
        Self::start_with_max_pending(config, link::MAX_PENDING)
    }

    /// [`start`](Self::start), keeping at most `max_pending` changes while Redis is
    /// unreachable (one more and they are given up for a wipe on reconnection; tests
    /// use a small number).
    pub fn start_with_max_pending(
        config: &RedisConfig,
        max_pending: usize,
    ) -> Result<Arc<Self>, RedisError> {
        tokio::runtime::Handle::try_current().map_err(|_| RedisError::NoRuntime)?;
        let (host, port) =
            parse_addr(&config.addr).ok_or_else(|| RedisError::Addr(config.addr.clone()))?;
        let addr = if config.tls.is_some() {
            // redis' rustls client takes the process's provider: the tree's is ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let mut settings = RedisConnectionInfo::default().set_db(config.db);
        if let Some(username) = &config.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password);
        }
        let info = addr.into_connection_info()?.set_redis_settings(settings);
        let client = match config.tls.as_ref().map(certificates).transpose()? {
            Some(Some(certs)) => redis::Client::build_with_tls(info, certs)?,
            _ => redis::Client::open(info)?,
        };
        let link = Arc::new(Link::new(
            client,
            config.dial_timeout,
            config.read_timeout,
            config.write_timeout,
            max_pending,
        ));
        link::spawn_reconnect(&link, config.addr.clone());
        Ok(Arc::new(RedisDescriptors {
            link,
            addr: config.addr.clone(),
        }))
    }

    /// The catalog and tag indexes, over this cache's connection (its timeouts,
    /// breaker, metrics and queue of removals).
    pub fn index(&self) -> Arc<crate::RedisIndex> {
        Arc::new(crate::RedisIndex::new(self.link.clone()))
    }

    /// The fleet's locks over the same connection (and so the same breaker), with
    /// leases of `lease`.
    pub fn locks(&self, lease: Duration) -> Arc<RedisLocks> {
        Arc::new(RedisLocks::new(self.link.clone(), lease))
    }

    /// Whether Redis is being used (connected, no change waiting).
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Changes (removals, version bumps, index distrusts) that have not reached Redis
    /// yet.
    pub fn pending_removals(&self) -> usize {
        self.link.pending()
    }

    /// Whether a wipe is owed or under way (changes were given up for it when too many
    /// waited): Redis is not used until it is done.
    pub fn wipe_owed(&self) -> bool {
        self.link.wipe_owed()
    }

    async fn write(&self, pipe: &Pipeline) {
        // A lost fill costs one storage read later; only removals are retried.
        let _: Option<()> = self.link.query(pipe, Kind::Write).await;
    }
}

/// The certificates `tls` names, read; `None` when it names none (the system's roots,
/// no client certificate).
fn certificates(tls: &RedisTls) -> Result<Option<TlsCertificates>, RedisError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| RedisError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let client_tls = match (&tls.certificate, &tls.key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    let mut roots = Vec::new();
    for ca in &tls.rootcas {
        roots.extend(read(ca)?);
        roots.push(b'\n');
    }
    let root_cert = (!roots.is_empty()).then_some(roots);
    Ok(
        (client_tls.is_some() || root_cert.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

/// A size from `HMGET <global> digest size`, when the entry names `digest`.
fn size_of(fields: &[Option<String>], digest: &Digest) -> Option<u64> {
    match fields {
        [Some(d), Some(size)] if d.as_str() == digest.to_string() => size.parse().ok(),
        _ => None,
    }
}

fn hmget_global(pipe: &mut Pipeline, digest: &Digest) {
    pipe.cmd("HMGET")
        .arg(keys::global(digest))
        .arg("digest")
        .arg("size");
}

fn fill_global(pipe: &mut Pipeline, digest: &Digest, size: u64) {
    let key = keys::global(digest);
    pipe.cmd("HSET")
        .arg(&key)
        .arg("digest")
        .arg(digest.to_string())
        .arg("size")
        .arg(size)
        .ignore();
    pipe.cmd("HSETNX")
        .arg(&key)
        .arg("mediatype")
        .arg(MEDIA_TYPE)
        .ignore();
}

fn fill_link(pipe: &mut Pipeline, repo: &RepositoryName, digest: &Digest) {
    pipe.cmd("SADD")
        .arg(keys::linked_set(repo))
        .arg(digest.to_string())
        .ignore();
    // distribution reads the link's media type from here and treats its absence as an
    // error (it then stats storage), so it is written too.
    pipe.cmd("HSET")
        .arg(keys::link(repo, digest))
        .arg("mediatype")
        .arg(MEDIA_TYPE)
        .ignore();
}

#[async_trait]
impl SharedDescriptors for RedisDescriptors {
    async fn linked(&self, repo: &RepositoryName, digest: &Digest) -> Option<u64> {
        let mut pipe = redis::pipe();
        pipe.cmd("SISMEMBER")
            .arg(keys::linked_set(repo))
            .arg(digest.to_string());
        hmget_global(&mut pipe, digest);
        let (member, fields): (bool, Vec<Option<String>>) =
            self.link.query(&pipe, Kind::Read).await?;
        if !member {
            return None;
        }
        size_of(&fields, digest)
    }

    async fn global(&self, digest: &Digest) -> Option<u64> {
        let mut pipe = redis::pipe();
        hmget_global(&mut pipe, digest);
        let (fields,): (Vec<Option<String>>,) = self.link.query(&pipe, Kind::Read).await?;
        size_of(&fields, digest)
    }

    async fn set_linked(&self, repo: &RepositoryName, digest: &Digest, size: u64) {
        let mut pipe = redis::pipe();
        fill_global(&mut pipe, digest, size);
        fill_link(&mut pipe, repo, digest);
        self.write(&pipe).await;
    }

    async fn set_link(&self, repo: &RepositoryName, digest: &Digest, _size: u64) {
        // The size lives in the global hash only (distribution's layout); a link without
        // it is a miss, so a global entry removed meanwhile is never answered for.
        let mut pipe = redis::pipe();
        fill_link(&mut pipe, repo, digest);
        self.write(&pipe).await;
    }

    async fn set_global(&self, digest: &Digest, size: u64) {
        let mut pipe = redis::pipe();
        fill_global(&mut pipe, digest, size);
        self.write(&pipe).await;
    }

    async fn forget_global(&self, digest: &Digest) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(keys::global(digest)).ignore();
        self.link.remove(pipe).await;
    }

    async fn unlink(&self, repo: &RepositoryName, digest: &Digest) {
        let mut pipe = redis::pipe();
        pipe.cmd("SREM")
            .arg(keys::linked_set(repo))
            .arg(digest.to_string())
            .ignore();
        pipe.cmd("DEL").arg(keys::link(repo, digest)).ignore();
        self.link.remove(pipe).await;
    }
}

/// Repository versions for the tag caches: a lookup is one `GET`, a change one `INCR`
/// that is queued like a removal when it cannot be sent (so this node reads no version
/// until the other nodes could have seen its change).
#[async_trait]
impl SharedVersions for RedisDescriptors {
    async fn version(&self, repo: &RepositoryName) -> Option<u64> {
        let mut pipe = redis::pipe();
        start_epoch(&mut pipe, repo);
        pipe.cmd("GET").arg(keys::version(repo));
        let (version,): (Option<u64>,) = self.link.query(&pipe, Kind::Read).await?;
        version
    }

    async fn bump(&self, repo: &RepositoryName) {
        let mut pipe = redis::pipe();
        start_epoch(&mut pipe, repo);
        pipe.cmd("INCR").arg(keys::version(repo)).ignore();
        self.link.remove(pipe).await;
    }
}

/// Starts a repository's counter, where Redis has none, at the microseconds since the
/// Unix epoch rather than at 0: a Redis restarted empty (or flushed) must never count
/// again through values that entries cached before still carry, or those entries would
/// be trusted again. Counting from the clock, a new start lies far above every value of
/// an earlier one (which would need a change per microsecond to catch up).
fn start_epoch(pipe: &mut Pipeline, repo: &RepositoryName) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX >> 2));
    pipe.cmd("SET")
        .arg(keys::version(repo))
        .arg(now)
        .arg("NX")
        .ignore();
}

/// The link's health: calls failed, calls skipped while Redis was unreachable, whether
/// it is used, changes waiting to be sent, and wipes owed and done.
impl Collect for RedisDescriptors {
    fn collect(&self, enc: &mut Encoder) {
        let c = &self.link.counts;
        enc.counters(&[
            (
                "berth_redis_errors_total",
                "Redis calls that failed or timed out (each then read storage).",
                c.errors.get(),
            ),
            (
                "berth_redis_skipped_total",
                "Redis calls not sent because Redis was unreachable (storage was read).",
                c.skipped.get(),
            ),
            (
                "berth_redis_connects_total",
                "Connections to Redis opened.",
                c.connects.get(),
            ),
            (
                "berth_redis_queue_overflows_total",
                "Times more changes waited for Redis than are kept: they were given up for a wipe.",
                c.overflows.get(),
            ),
            (
                "berth_redis_wipes_total",
                "Wipes done on reconnection: descriptor-cache entries and listings' completeness removed, versions moved on.",
                c.wipes.get(),
            ),
        ]);
        let name = "berth_redis_up";
        enc.family(
            name,
            "1 while the Redis descriptor cache is used, 0 while it is skipped.",
            MetricKind::Gauge,
        );
        enc.sample(name, &[], i64::from(self.link.is_up()));
        let name = "berth_redis_pending_removals";
        enc.family(
            name,
            "Changes (cache removals, version bumps, index distrusts) waiting for Redis to be reachable.",
            MetricKind::Gauge,
        );
        let pending = i64::try_from(self.link.pending()).unwrap_or(i64::MAX);
        enc.sample(name, &[], pending);
        let name = "berth_redis_wipe_owed";
        enc.family(
            name,
            "1 while a wipe is owed to Redis (the queue overflowed), 0 otherwise.",
            MetricKind::Gauge,
        );
        enc.sample(name, &[], i64::from(self.link.wipe_owed()));
    }
}
