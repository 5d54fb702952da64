//! The one validation step: turns the typed [`Document`] into the [`Config`] berth acts
//! on, or into the first [`ConfigError`], naming its key. `check-config` and `serve` both
//! load through here, so whatever `serve` would refuse, `check-config` refuses first.
//! Only what depends on the running machine (creating the storage root, resolving and
//! binding the address) is left to start-up.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::schema::{
    BerthLimitsSection, BucketSection, Document, Flag, HttpSection, StorageSection,
};
use super::{ConfigError, Driver, Http, Limits, Log, Storage, UploadPurging, auth, invalid, tls};
use crate::config::Config;

/// distribution's default root directory.
const DEFAULT_ROOT: &str = "/var/lib/registry";

/// Checks a typed document and resolves defaults.
pub fn validate(doc: &Document) -> Result<Config, ConfigError> {
    if doc.version.is_none() {
        return Err(invalid("version", "is required (use 0.1)"));
    }
    let mut storage = match &doc.storage {
        Some(s) => storage(s)?,
        None => {
            return Err(invalid(
                "storage",
                "is required (e.g. filesystem or inmemory)",
            ));
        }
    };
    storage.referrers_tag_schema = Flag::or(doc.berth.referrers.tagschema, false);
    Ok(Config {
        log: Log {
            level: doc.log.level.clone().or_else(|| doc.loglevel.clone()),
            formatter: doc.log.formatter.clone(),
            fields: doc.log.fields.clone(),
            access_log: !Flag::or(doc.log.accesslog.disabled, false),
        },
        http: http(&doc.http)?,
        storage,
        auth: auth::auth(&doc.auth, &doc.berth.auth)?,
        limits: limits(&doc.berth.limits)?,
    })
}

/// Bounds of `berth.limits.maxheaderbytes`: below 1 KiB ordinary requests do not fit;
/// 1 MiB is Go's (and so distribution's) default.
const HEADER_BYTES: std::ops::RangeInclusive<u64> = 1024..=1024 * 1024;

/// Largest `burst` of a rate-limit bucket.
const MAX_BURST: u64 = 1_000_000;

fn limits(l: &BerthLimitsSection) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    // Zero turns a timeout off.
    let timeout = |d: Option<super::duration::GoDuration>, default| {
        d.map_or(default, |d| Some(d.0).filter(|d| !d.is_zero()))
    };
    let max_header_bytes = match l.maxheaderbytes {
        None => defaults.max_header_bytes,
        Some(n) if HEADER_BYTES.contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(
                "berth.limits.maxheaderbytes",
                format!("{n} is not from 1024 to 1048576 (bytes)"),
            ));
        }
    };
    let max_upload_sessions = match l.maxuploadsessions {
        None => defaults.max_upload_sessions,
        Some(0) => None,
        Some(n) => Some(usize::try_from(n).map_err(|_| {
            invalid(
                "berth.limits.maxuploadsessions",
                format!("{n} is too large"),
            )
        })?),
    };
    let rl = &l.ratelimit;
    Ok(Limits {
        header_read_timeout: timeout(l.headerreadtimeout, defaults.header_read_timeout),
        idle_timeout: timeout(l.idletimeout, defaults.idle_timeout),
        max_header_bytes,
        max_upload_sessions,
        rate_limit: berth_http::RateLimit {
            per_client: bucket(rl.perclient.as_ref(), "berth.limits.ratelimit.perclient")?,
            per_user: bucket(rl.peruser.as_ref(), "berth.limits.ratelimit.peruser")?,
        },
    })
}

/// A written bucket needs a positive `rate`; `burst` defaults to one second's worth.
fn bucket(
    b: Option<&BucketSection>,
    key: &str,
) -> Result<Option<berth_http::BucketLimit>, ConfigError> {
    let Some(b) = b else {
        return Ok(None);
    };
    let rate = match b.rate {
        None => {
            return Err(invalid(
                &format!("{key}.rate"),
                "is required (requests per second)",
            ));
        }
        Some(r) if r.is_finite() && r > 0.0 => r,
        Some(r) => {
            return Err(invalid(
                &format!("{key}.rate"),
                format!("{r} is not a positive number of requests per second"),
            ));
        }
    };
    let burst = match b.burst {
        None => (rate.ceil() as u64).clamp(1, MAX_BURST),
        Some(n) if (1..=MAX_BURST).contains(&n) => n,
        Some(n) => {
            return Err(invalid(
                &format!("{key}.burst"),
                format!("{n} is not from 1 to {MAX_BURST}"),
            ));
        }
    };
    Ok(Some(berth_http::BucketLimit {
        rate,
        burst: burst as u32,
    }))
}

fn http(h: &HttpSection) -> Result<Http, ConfigError> {
    if let Some(net) = h.net.as_deref().filter(|n| *n != "tcp") {
        return Err(ConfigError::Refused(format!(
            "http.net: {net:?} is not supported yet (only tcp is)"
        )));
    }
    let addr = h.addr.clone().unwrap_or_else(|| ":5000".to_owned());
    check_listen_addr(&addr).map_err(|m| invalid("http.addr", format!("{addr:?}: {m}")))?;
    let http2 = !Flag::or(h.http2.disabled, false);
    let tls = tls::validate(&h.tls, http2)?;
    Ok(Http {
        addr,
        prefix: h.prefix.clone(),
        host: h.host.clone(),
        secret: h.secret.clone().filter(|s| !s.is_empty()),
        headers: headers(h)?,
        tls,
        http2,
        drain_timeout: h.draintimeout.map_or(Duration::from_secs(30), |d| d.0),
    })
}

/// `host:port` or `:port` (every interface), as Go's `net.Listen` takes it; an IPv6
/// host is bracketed. Whether a host name resolves is left to start-up.
fn check_listen_addr(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("must be host:port or :port (e.g. :5000)".into());
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("port {port:?} is not a number from 0 to 65535"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ip = inner.strip_suffix(']').ok_or("unclosed [ in the host")?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
    } else if host.contains(':') {
        return Err("an IPv6 host must be in brackets ([::1]:5000)".into());
    }
    Ok(())
}

fn headers(h: &HttpSection) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut out = Vec::new();
    for (name, values) in &h.headers {
        let key = format!("http.headers.{name}");
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| invalid(&key, "not a valid header name"))?;
        for v in values {
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| invalid(&key, format!("{v:?} is not a valid header value")))?;
            out.push((header.clone(), value));
        }
    }
    Ok(out)
}

fn storage(s: &StorageSection) -> Result<Storage, ConfigError> {
    let driver = match s.drivers.as_slice() {
        [d] if d == "filesystem" => {
            let fs = s.filesystem.clone().unwrap_or_default();
            let root = match fs.rootdirectory.as_deref() {
                None => PathBuf::from(DEFAULT_ROOT),
                Some("") => {
                    return Err(invalid(
                        "storage.filesystem.rootdirectory",
                        "must be a non-empty path",
                    ));
                }
                Some(p) => PathBuf::from(p),
            };
            Driver::Filesystem {
                root,
                fsync: Flag::or(fs.fsync, true),
            }
        }
        [d] if d == "inmemory" => Driver::InMemory,
        [other] => {
            return Err(ConfigError::Refused(format!(
                "storage driver `{other}` is not supported yet (filesystem and inmemory are)"
            )));
        }
        [] => {
            return Err(invalid(
                "storage",
                "names no driver (e.g. filesystem or inmemory)",
            ));
        }
        many => {
            return Err(invalid(
                "storage",
                format!("names more than one driver: {}", many.join(", ")),
            ));
        }
    };
    let cache = s
        .cache
        .blobdescriptor
        .as_deref()
        .or(s.cache.layerinfo.as_deref());
    let descriptor_cache = match cache {
        None | Some("") => None,
        Some("inmemory") | Some("redis") => Some(match s.cache.blobdescriptorsize {
            None => berth_storage::DEFAULT_CACHE_CAPACITY,
            Some(n) => usize::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                invalid(
                    "storage.cache.blobdescriptorsize",
                    "must be a positive integer",
                )
            })?,
        }),
        Some(other) => {
            return Err(invalid(
                "storage.cache.blobdescriptor",
                format!("unknown cache {other:?} (inmemory or redis)"),
            ));
        }
    };
    let purge = &s.maintenance.uploadpurging;
    let defaults = UploadPurging::default();
    let upload_purging = UploadPurging {
        enabled: Flag::or(purge.enabled, defaults.enabled),
        age: purge.age.map_or(defaults.age, |d| d.0),
        interval: purge.interval.map_or(defaults.interval, |d| d.0),
        dry_run: Flag::or(purge.dryrun, defaults.dry_run),
    };
    if upload_purging.enabled && upload_purging.interval.is_zero() {
        return Err(invalid(
            "storage.maintenance.uploadpurging.interval",
            "must be greater than zero",
        ));
    }
    Ok(Storage {
        driver,
        delete_enabled: Flag::or(s.delete.enabled, false),
        descriptor_cache,
        upload_purging,
        read_only: Flag::or(s.maintenance.readonly.enabled, false),
        referrers_tag_schema: false,
    })
}

#[cfg(test)]
mod tests {
    use super::check_listen_addr;

    #[test]
    fn listen_addresses() {
        for ok in [":5000", "127.0.0.1:0", "localhost:5000", "[::1]:5000", ":0"] {
            assert_eq!(check_listen_addr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "5000",
            "localhost",
            ":http",
            ":70000",
            "::1:5000",
            "[::1:5000",
            "[x]:1",
        ] {
            assert!(check_listen_addr(bad).is_err(), "{bad}");
        }
    }
}
