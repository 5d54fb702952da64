//! The one validation step: turns the typed [`Document`] into the [`Config`] berth acts
//! on, or into the first [`ConfigError`], naming its key. `check-config` and `serve` both
//! load through here, so whatever `serve` would refuse, `check-config` refuses first.
//! Only what depends on the running machine (creating the storage root, resolving and
//! binding the address) is left to start-up.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::duration::GoDuration;
use super::schema::{
    BerthLimitsSection, BucketSection, Document, Flag, HealthSection, HttpSection, S3Section,
    StorageSection,
};
use super::{
    ConfigError, Driver, HealthCheck, Http, Limits, Log, OnlineGc, Probe, Storage, UploadPurging,
    auth, invalid, tls,
};
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
    let redis = super::redis::redis(&doc.redis, &doc.berth.redis)?;
    if storage.redis_descriptors && redis.is_none() {
        return Err(invalid(
            "storage.cache.blobdescriptor",
            "redis needs redis.addr (the host:port of the Redis server)",
        ));
    }
    let health = health(&doc.health, &storage)?;
    let notifications = super::notifications::notifications(
        &doc.notifications,
        &doc.berth.notifications,
        &storage.driver,
    )?;
    Ok(Config {
        notifications,
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
        health,
        proxy: super::proxy::upstreams(&doc.proxy, &doc.berth.proxy)?,
        redis,
        proxy_max_size: super::proxy::max_size(&doc.proxy, &doc.berth.proxy)?,
    })
}

/// distribution's time between checks when none is written.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Largest `threshold`: far beyond any sensible count, small enough for a `u32`.
const MAX_THRESHOLD: i64 = 1_000_000;

/// `interval` (10s when absent or zero, as in distribution) and `threshold` (a single
/// failure counts when absent or zero) of one check.
fn cadence(
    key: &str,
    interval: Option<GoDuration>,
    threshold: Option<i64>,
) -> Result<(Duration, u32), ConfigError> {
    let interval = interval
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_CHECK_INTERVAL);
    if interval < Duration::from_millis(10) {
        return Err(invalid(
            &format!("{key}.interval"),
            format!("{interval:?} is shorter than 10ms"),
        ));
    }
    let threshold = match threshold {
        None | Some(0) => 1,
        Some(n) if (1..=MAX_THRESHOLD).contains(&n) => n as u32,
        Some(n) => {
            return Err(invalid(
                &format!("{key}.threshold"),
                format!("{n} is not from 0 to {MAX_THRESHOLD}"),
            ));
        }
    };
    Ok((interval, threshold))
}

/// A probe's timeout: as written, else the check's interval (a probe never outlives
/// the next one).
fn probe_timeout(
    key: &str,
    t: Option<GoDuration>,
    interval: Duration,
) -> Result<Duration, ConfigError> {
    match t.map(|d| d.0) {
        None => Ok(interval),
        Some(d) if d.is_zero() => Ok(interval),
        Some(d) if d < Duration::from_millis(1) => Err(invalid(
            &format!("{key}.timeout"),
            format!("{d:?} is shorter than 1ms"),
        )),
        Some(d) => Ok(d),
    }
}

/// A check named by what it checks.
fn entry(name: &str, probe: Probe, (interval, threshold): (Duration, u32)) -> HealthCheck {
    HealthCheck {
        name: name.to_owned(),
        probe,
        interval,
        threshold,
    }
}

fn health(h: &HealthSection, storage: &Storage) -> Result<Vec<HealthCheck>, ConfigError> {
    let mut checks = Vec::new();
    let sd = &h.storagedriver;
    if Flag::or(sd.enabled, false) {
        let (interval, threshold) = cadence("health.storagedriver", sd.interval, sd.threshold)?;
        let driver = match storage.driver {
            Driver::Filesystem { .. } => "filesystem",
            Driver::InMemory => "inmemory",
            Driver::S3(_) => "s3",
        };
        let name = format!("storagedriver_{driver}");
        checks.push(entry(&name, Probe::StorageDriver, (interval, threshold)));
    }
    for (i, f) in h.file.iter().enumerate() {
        let key = format!("health.file[{i}]");
        let (interval, threshold) = cadence(&key, f.interval, f.threshold)?;
        let file = f
            .file
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid(&format!("{key}.file"), "is required (a path)"))?;
        let probe = Probe::File(PathBuf::from(file));
        checks.push(entry(file, probe, (interval, threshold)));
    }
    for (i, c) in h.http.iter().enumerate() {
        let key = format!("health.http[{i}]");
        let (interval, threshold) = cadence(&key, c.interval, c.threshold)?;
        let uri = c
            .uri
            .as_deref()
            .ok_or_else(|| invalid(&format!("{key}.uri"), "is required"))?;
        let parsed = url::Url::parse(uri)
            .map_err(|e| invalid(&format!("{key}.uri"), format!("{uri:?}: {e}")))?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => {
                return Err(invalid(
                    &format!("{key}.uri"),
                    format!("{uri:?}: scheme {other:?} is not http or https"),
                ));
            }
        }
        let status = match c.statuscode {
            None | Some(0) => 200,
            Some(n) if (100..=599).contains(&n) => n as u16,
            Some(n) => {
                return Err(invalid(
                    &format!("{key}.statuscode"),
                    format!("{n} is not an HTTP status (100 to 599)"),
                ));
            }
        };
        let headers = header_pairs(&format!("{key}.headers"), &c.headers)?;
        let probe = Probe::Http {
            uri: uri.to_owned(),
            headers,
            status,
            timeout: probe_timeout(&key, c.timeout, interval)?,
        };
        checks.push(entry(uri, probe, (interval, threshold)));
    }
    for (i, c) in h.tcp.iter().enumerate() {
        let key = format!("health.tcp[{i}]");
        let (interval, threshold) = cadence(&key, c.interval, c.threshold)?;
        let addr = c
            .addr
            .as_deref()
            .ok_or_else(|| invalid(&format!("{key}.addr"), "is required (host:port)"))?;
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(invalid(
                    &format!("{key}.addr"),
                    format!("{addr:?} is not host:port"),
                ));
            }
        }
        let probe = Probe::Tcp {
            addr: addr.to_owned(),
            timeout: probe_timeout(&key, c.timeout, interval)?,
        };
        checks.push(entry(addr, probe, (interval, threshold)));
    }
    let mut names = std::collections::HashSet::new();
    if let Some(c) = checks.iter().find(|c| !names.insert(c.name.as_str())) {
        return Err(invalid(
            "health",
            format!(
                "{:?} is checked twice (each check is named by what it checks)",
                c.name
            ),
        ));
    }
    Ok(checks)
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
    let debug_addr = h.debug.addr.clone().filter(|a| !a.is_empty());
    if let Some(d) = &debug_addr {
        check_listen_addr(d).map_err(|m| invalid("http.debug.addr", format!("{d:?}: {m}")))?;
    }
    let prometheus = &h.debug.prometheus;
    let metrics_path = if Flag::or(prometheus.enabled, false) {
        let path = prometheus
            .path
            .clone()
            .unwrap_or_else(|| "/metrics".to_owned());
        let bad = |m: &str| invalid("http.debug.prometheus.path", format!("{path:?} {m}"));
        if !path.starts_with('/') || path.len() < 2 {
            return Err(bad("must be a path below / (e.g. /metrics)"));
        }
        if path.contains(['?', '#', '{', '}'])
            || http::uri::PathAndQuery::try_from(path.as_str()).is_err()
        {
            return Err(bad("is not a plain URL path"));
        }
        if path == berth_http::HEALTH_PATH {
            return Err(bad("is where the health status is served"));
        }
        Some(path)
    } else {
        None
    };
    Ok(Http {
        addr,
        debug_addr,
        metrics_path,
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
    header_pairs("http.headers", &h.headers)
}

/// Header names and values written as a map of lists (`http.headers`,
/// `health.http[].headers`), checked.
pub(super) fn header_pairs(
    at: &str,
    map: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut out = Vec::new();
    for (name, values) in map {
        let key = format!("{at}.{name}");
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

/// S3's smallest multipart part, and distribution's floor for `chunksize`.
const S3_MIN_CHUNK: u64 = 5 * 1024 * 1024;

fn s3(c: &S3Section) -> Result<berth_driver::S3Options, ConfigError> {
    let required = |v: &Option<String>, key: &str| match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(invalid(key, "is required")),
    };
    let bucket = required(&c.bucket, "storage.s3.bucket")?;
    let region = required(&c.region, "storage.s3.region")?;
    let mut o = berth_driver::S3Options::new(bucket, region);
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    o.endpoint = nonempty(&c.regionendpoint);
    match (nonempty(&c.accesskey), nonempty(&c.secretkey)) {
        (Some(a), Some(s)) => {
            o.access_key = Some(a);
            o.secret_key = Some(s);
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(invalid(
                "storage.s3.secretkey",
                "is required with accesskey (or leave both out for the AWS environment credentials)",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "storage.s3.accesskey",
                "is required with secretkey (or leave both out for the AWS environment credentials)",
            ));
        }
    }
    o.root_directory = c.rootdirectory.clone().unwrap_or_default();
    // distribution 2.8.2 has no `forcepathstyle`: its SDK sends path-style requests
    // whenever `regionendpoint` is set, so a 2.8.2 config naming MinIO or radosgw works
    // unchanged; an explicit value (distribution 3's key) wins.
    o.force_path_style = Flag::or(c.forcepathstyle, o.endpoint.is_some());
    o.secure = Flag::or(c.secure, true);
    o.skip_verify = Flag::or(c.skipverify, false);
    o.encrypt = Flag::or(c.encrypt, false);
    o.key_id = nonempty(&c.keyid);
    if !Flag::or(c.v4auth, true) {
        return Err(ConfigError::Refused(
            "storage.s3.v4auth: false (signature version 2) is not supported; berth signs \
             every request with SigV4"
                .into(),
        ));
    }
    if let Some(acl) = c.objectacl.as_deref().filter(|a| *a != "private") {
        return Err(ConfigError::Refused(format!(
            "storage.s3.objectacl: {acl:?} is not supported yet; berth writes objects with \
             the bucket's default ACL (private)"
        )));
    }
    let chunk = c.chunksize.unwrap_or(10 * 1024 * 1024);
    if !(S3_MIN_CHUNK..=5 * 1024 * 1024 * 1024).contains(&chunk) {
        return Err(invalid(
            "storage.s3.chunksize",
            format!("{chunk} must be between 5 MiB ({S3_MIN_CHUNK}) and 5 GiB"),
        ));
    }
    o.chunk_size = usize::try_from(chunk)
        .map_err(|_| invalid("storage.s3.chunksize", "too large for this machine"))?;
    for (key, v) in [
        (
            "storage.s3.multipartcopychunksize",
            c.multipartcopychunksize,
        ),
        (
            "storage.s3.multipartcopythresholdsize",
            c.multipartcopythresholdsize,
        ),
    ] {
        if let Some(v) = v.filter(|v| !(S3_MIN_CHUNK..=5 * 1024 * 1024 * 1024).contains(v)) {
            return Err(invalid(key, format!("{v} must be between 5 MiB and 5 GiB")));
        }
    }
    if let Some(v) = c.multipartcopychunksize {
        o.copy_part = v;
    }
    if let Some(v) = c.multipartcopythresholdsize {
        o.copy_threshold = v;
    }
    match c.multipartcopymaxconcurrency {
        Some(0) => {
            return Err(invalid(
                "storage.s3.multipartcopymaxconcurrency",
                "must be at least 1",
            ));
        }
        Some(n) => o.copy_concurrency = usize::try_from(n).unwrap_or(usize::MAX),
        None => {}
    }
    // distribution's `NONE` sends no header; STANDARD is what S3 does without one, and
    // some S3-compatible servers refuse the header.
    o.storage_class = match c.storageclass.as_deref() {
        None | Some("") | Some("NONE") | Some("STANDARD") => None,
        Some(class) => Some(class.to_owned()),
    };
    Ok(o)
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
        [d] if d == "s3" => Driver::S3(Box::new(s3(&s.s3.clone().unwrap_or_default())?)),
        [other] => {
            return Err(ConfigError::Refused(format!(
                "storage driver `{other}` is not supported yet (filesystem, inmemory and s3 are)"
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
    let redis_descriptors = cache == Some("redis");
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
    let gc = &s.maintenance.gc;
    let defaults = OnlineGc::default();
    let gc = OnlineGc {
        enabled: Flag::or(gc.enabled, defaults.enabled),
        interval: gc.interval.map_or(defaults.interval, |d| d.0),
        grace_period: gc.graceperiod.map_or(defaults.grace_period, |d| d.0),
        delete_untagged: Flag::or(gc.deleteuntagged, defaults.delete_untagged),
        dry_run: Flag::or(gc.dryrun, defaults.dry_run),
    };
    if gc.enabled && gc.interval.is_zero() {
        return Err(invalid(
            "storage.maintenance.gc.interval",
            "must be greater than zero",
        ));
    }
    Ok(Storage {
        driver,
        redirect: !Flag::or(s.redirect.disable, false),
        delete_enabled: Flag::or(s.delete.enabled, false),
        descriptor_cache,
        redis_descriptors,
        upload_purging,
        read_only: Flag::or(s.maintenance.readonly.enabled, false),
        gc,
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
