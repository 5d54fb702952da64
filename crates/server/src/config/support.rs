//! Which of distribution's options berth implements. Every other option present in a
//! configuration is named in a start-up warning; options whose silent omission would be
//! unsafe (authentication) stop start-up instead. The lists here and the typed fields of
//! `schema` must name the same keys; a test holds them together.

use yaml_serde::Value;

use super::ConfigError;

/// Keys berth acts on: exactly the leaves of the typed [`Document`](super::Document),
/// less [`CHECKED_ONLY`]. A key covers anything written below it (`log.fields.service`).
const SUPPORTED: &[&str] = &[
    "version",
    "loglevel",
    "log.level",
    "log.formatter",
    "log.fields",
    "log.accesslog.disabled",
    "storage.filesystem.rootdirectory",
    "storage.filesystem.fsync",
    "storage.inmemory",
    "storage.s3.accesskey",
    "storage.s3.secretkey",
    "storage.s3.region",
    "storage.s3.regionendpoint",
    "storage.s3.forcepathstyle",
    "storage.s3.bucket",
    "storage.s3.encrypt",
    "storage.s3.keyid",
    "storage.s3.secure",
    "storage.s3.skipverify",
    "storage.s3.v4auth",
    "storage.s3.chunksize",
    "storage.s3.multipartcopychunksize",
    "storage.s3.multipartcopymaxconcurrency",
    "storage.s3.multipartcopythresholdsize",
    "storage.s3.rootdirectory",
    "storage.s3.storageclass",
    "storage.s3.objectacl",
    "storage.delete.enabled",
    "storage.cache.blobdescriptor",
    "storage.cache.layerinfo",
    "storage.cache.blobdescriptorsize",
    "storage.maintenance.uploadpurging.enabled",
    "storage.maintenance.uploadpurging.age",
    "storage.maintenance.uploadpurging.interval",
    "storage.maintenance.uploadpurging.dryrun",
    "storage.maintenance.readonly.enabled",
    "storage.maintenance.gc.enabled",
    "storage.maintenance.gc.interval",
    "storage.maintenance.gc.graceperiod",
    "storage.maintenance.gc.deleteuntagged",
    "storage.maintenance.gc.dryrun",
    "storage.redirect.disable",
    "berth.referrers.tagschema",
    "proxy.remoteurl",
    "proxy.username",
    "proxy.password",
    "proxy.ttl",
    "berth.proxy.upstreams",
    "berth.proxy.cache.maxsize",
    "berth.limits.headerreadtimeout",
    "berth.limits.idletimeout",
    "berth.limits.maxheaderbytes",
    "berth.limits.maxuploadsessions",
    "berth.limits.ratelimit.perclient.rate",
    "berth.limits.ratelimit.perclient.burst",
    "berth.limits.ratelimit.peruser.rate",
    "berth.limits.ratelimit.peruser.burst",
    "http.addr",
    "http.net",
    "http.prefix",
    "http.host",
    "http.secret",
    "http.relativeurls",
    "http.draintimeout",
    "http.headers",
    "http.tls.certificate",
    "http.tls.key",
    "auth.htpasswd.realm",
    "auth.htpasswd.path",
    "auth.token.realm",
    "auth.token.service",
    "auth.token.issuer",
    "auth.token.rootcertbundle",
    "auth.token.jwks",
    "auth.token.signingalgorithms",
    "auth.token.autoredirect",
    "auth.token.autoredirectpath",
    "berth.auth.users",
    "berth.auth.groups",
    "berth.auth.policy",
    "berth.auth.issuer.key",
    "berth.auth.issuer.certificate",
    "berth.auth.issuer.expiration",
    "berth.auth.issuer.refreshexpiration",
    "http.tls.clientcas",
    "http.tls.minimumtls",
    "http.tls.ciphersuites",
    "http.tls.letsencrypt.cachefile",
    "http.tls.letsencrypt.email",
    "http.tls.letsencrypt.hosts",
    "http.tls.letsencrypt.directoryurl",
    "http.http2.disabled",
    "http.debug.addr",
    "http.debug.prometheus.enabled",
    "http.debug.prometheus.path",
    "health.storagedriver.enabled",
    "health.storagedriver.interval",
    "health.storagedriver.threshold",
    "health.file",
    "health.http",
    "health.tcp",
    "notifications.endpoints",
    "notifications.events.includereferences",
    "berth.notifications.queue.directory",
    "berth.notifications.queue.maxevents",
    "berth.notifications.queue.flushinterval",
    "redis.addr",
    "redis.username",
    "redis.password",
    "redis.db",
    "redis.dialtimeout",
    "redis.readtimeout",
    "redis.writetimeout",
    "redis.tls.enabled",
    "redis.tls.certificate",
    "redis.tls.key",
    "redis.tls.rootcas",
    "berth.redis.locklease",
];

/// Keys that are typed, so a value of the wrong type fails, but not acted on yet: they
/// are still named in the start-up warning.
const CHECKED_ONLY: &[&str] = &[
    "storage.filesystem.maxthreads",
    // One multiplexed connection per node carries every call: no pool to size.
    "redis.pool.maxidle",
    "redis.pool.maxactive",
    "redis.pool.idletimeout",
];

/// An `auth` option berth does not implement is refused, never ignored: serving
/// without it would open a protected registry.
const REFUSED_UNDER: &str = "auth";

/// Dotted paths of the leaves (and empty sections) of a YAML tree.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => yaml_serde::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, child, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn covered(path: &str) -> bool {
    SUPPORTED
        .iter()
        .any(|s| path == *s || path.starts_with(&format!("{s}.")))
}

/// Warnings for present-but-unsupported options; an error for refused ones.
pub fn unsupported_options(root: &Value) -> Result<Vec<String>, ConfigError> {
    let mut paths = Vec::new();
    leaves("", root, &mut paths);
    if let Some(p) = paths.iter().find(|p| {
        (p.as_str() == REFUSED_UNDER || p.starts_with(&format!("{REFUSED_UNDER}.")))
            && !covered(p)
            && root.get(REFUSED_UNDER).is_some_and(|v| !v.is_null())
    }) {
        return Err(ConfigError::Refused(format!(
            "{p}: this access controller is not supported (berth has auth.htpasswd and \
             auth.token); berth refuses to start an open registry in place of a protected one"
        )));
    }
    let mut warnings: Vec<String> = paths
        .into_iter()
        .filter(|p| !p.is_empty() && !covered(p))
        .map(|p| {
            let checked = if CHECKED_ONLY.contains(&p.as_str()) {
                " (its value is still checked)"
            } else {
                ""
            };
            format!(
                "configuration option `{p}` is not supported by berth yet and is ignored{checked}"
            )
        })
        .collect();
    if root
        .get("log")
        .and_then(|l| l.get("formatter"))
        .and_then(Value::as_str)
        == Some("logstash")
    {
        warnings.push("log.formatter: logstash is written as json".into());
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests;
