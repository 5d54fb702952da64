//! `redis`, validated into the connection settings of the shared descriptor cache, with
//! `berth.redis` (the fleet's lock lease). The timeouts distribution leaves unbounded
//! when unset (or zero) get berth's defaults: a hung Redis must never hold a request for
//! longer than a lookup's timeout.

use std::time::Duration;

use std::path::Path;

use berth_redis::{RedisConfig, RedisTls};

use super::duration::GoDuration;
use super::schema::{BerthRedisSection, Flag, RedisSection, RedisTlsSection};
use super::{ConfigError, invalid};

/// The shortest lock lease: renewed every third of it, each renewal bounded by
/// `writetimeout` (200 ms by default).
const MIN_LOCK_LEASE: Duration = Duration::from_secs(1);
/// The longest: a dead node's locks keep the others waiting for up to this.
const MAX_LOCK_LEASE: Duration = Duration::from_secs(600);

/// The settings, or `None` when `redis.addr` is not written.
pub fn redis(
    r: &RedisSection,
    berth: &BerthRedisSection,
) -> Result<Option<RedisConfig>, ConfigError> {
    let lock_lease = lock_lease(berth.locklease)?;
    let addr = match r.addr.as_deref().map(str::trim) {
        None | Some("") => {
            return Ok(None);
        }
        Some(a) => a,
    };
    if berth_redis::parse_addr(addr).is_none() {
        return Err(invalid(
            "redis.addr",
            format!("{addr:?} is not host:port (e.g. redis:6379 or 127.0.0.1:6379)"),
        ));
    }
    let db = r.db.unwrap_or(0);
    if db < 0 {
        return Err(invalid("redis.db", "must be zero or more"));
    }
    for (key, n) in [
        ("redis.pool.maxidle", r.pool.maxidle),
        ("redis.pool.maxactive", r.pool.maxactive),
    ] {
        if n.is_some_and(|n| n < 0) {
            return Err(invalid(key, "must be zero or more"));
        }
    }
    Ok(Some(RedisConfig {
        addr: addr.to_owned(),
        username: r.username.clone().filter(|u| !u.is_empty()),
        password: r.password.clone().filter(|p| !p.is_empty()),
        db,
        dial_timeout: timeout(r.dialtimeout, RedisConfig::DEFAULT_DIAL_TIMEOUT),
        read_timeout: timeout(r.readtimeout, RedisConfig::DEFAULT_READ_TIMEOUT),
        write_timeout: timeout(r.writetimeout, RedisConfig::DEFAULT_WRITE_TIMEOUT),
        tls: tls(&r.tls)?,
        lock_lease,
    }))
}

/// `berth.redis.locklease`, checked even where Redis is not used (a typo should not wait
/// for the day it is).
fn lock_lease(written: Option<GoDuration>) -> Result<Duration, ConfigError> {
    let Some(lease) = written.map(|d| d.0) else {
        return Ok(RedisConfig::DEFAULT_LOCK_LEASE);
    };
    if !(MIN_LOCK_LEASE..=MAX_LOCK_LEASE).contains(&lease) {
        return Err(invalid(
            "berth.redis.locklease",
            format!("{lease:?} is not from {MIN_LOCK_LEASE:?} to {MAX_LOCK_LEASE:?}"),
        ));
    }
    Ok(lease)
}

/// TLS is on when `enabled` is true, or when it is absent and a file is named (as
/// distribution 3 turns it on by its files).
fn tls(t: &RedisTlsSection) -> Result<Option<RedisTls>, ConfigError> {
    let rootcas = t.rootcas.clone().unwrap_or_default();
    let files = t.certificate.is_some() || t.key.is_some() || !rootcas.is_empty();
    match t.enabled {
        Some(Flag(false)) if files => {
            return Err(invalid(
                "redis.tls.enabled",
                "is false while redis.tls names certificate files",
            ));
        }
        Some(Flag(false)) => return Ok(None),
        None if !files => return Ok(None),
        _ => {}
    }
    match (&t.certificate, &t.key) {
        (Some(_), None) => return Err(invalid("redis.tls.key", "is required with a certificate")),
        (None, Some(_)) => {
            return Err(invalid("redis.tls.certificate", "is required with a key"));
        }
        _ => {}
    }
    let named = [
        ("redis.tls.certificate", &t.certificate),
        ("redis.tls.key", &t.key),
    ];
    for (key, path) in named {
        if let Some(path) = path {
            readable(key, path)?;
        }
    }
    for path in &rootcas {
        readable("redis.tls.rootcas", path)?;
    }
    Ok(Some(RedisTls {
        certificate: t.certificate.clone(),
        key: t.key.clone(),
        rootcas,
    }))
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

/// The written timeout, or `default` when it is absent or zero (unbounded in distribution).
fn timeout(written: Option<GoDuration>, default: Duration) -> Duration {
    written
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}
