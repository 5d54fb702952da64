//! `proxy` (distribution's pull-through cache of one upstream) and `berth.proxy` (several
//! upstreams, each for the repositories under a name prefix), validated into the list of
//! upstreams the cache serves. `proxy` alone makes every repository a cache, as in
//! distribution; with `berth.proxy.upstreams` too, it serves the names no prefix claims.

use std::time::Duration;

use berth_core::RepositoryName;
use berth_proxy::{DEFAULT_TTL, UpstreamConfig};
use url::Url;

use super::duration::GoDuration;
use super::schema::{BerthProxySection, ProxySection};
use super::{ConfigError, invalid};

/// The upstreams, prefixed ones first (so they win over `proxy`'s catch-all); empty
/// when no cache is configured.
pub fn upstreams(
    proxy: &ProxySection,
    berth: &BerthProxySection,
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let mut out = Vec::new();
    for (i, u) in berth.upstreams.iter().flatten().enumerate() {
        let key = format!("berth.proxy.upstreams[{i}]");
        let prefix = match u.prefix.as_deref() {
            None | Some("") => {
                return Err(invalid(
                    &format!("{key}.prefix"),
                    "is required (a repository name prefix ending in '/', e.g. hub/)",
                ));
            }
            Some(p) => p,
        };
        if !prefix.ends_with('/') || RepositoryName::parse(&prefix[..prefix.len() - 1]).is_err() {
            return Err(invalid(
                &format!("{key}.prefix"),
                format!(
                    "{prefix:?} is not a repository name prefix: lowercase path components \
                     ending in '/', e.g. hub/ or mirrors/ghcr/"
                ),
            ));
        }
        if let Some(other) = out.iter().find(|o: &&UpstreamConfig| {
            o.prefix.starts_with(prefix) || prefix.starts_with(&o.prefix)
        }) {
            return Err(invalid(
                &format!("{key}.prefix"),
                format!(
                    "{prefix:?} overlaps {:?}: a repository would belong to two upstreams",
                    other.prefix
                ),
            ));
        }
        out.push(upstream(
            &key,
            prefix,
            u.remoteurl.as_deref(),
            u.username.clone(),
            u.password.clone(),
            u.ttl,
        )?);
    }
    match proxy.remoteurl.as_deref() {
        Some(url) => out.push(upstream(
            "proxy",
            "",
            Some(url),
            proxy.username.clone(),
            proxy.password.clone(),
            proxy.ttl,
        )?),
        None => {
            if proxy.username.is_some() || proxy.password.is_some() || proxy.ttl.is_some() {
                return Err(invalid(
                    "proxy.remoteurl",
                    "is required when other proxy options are set",
                ));
            }
        }
    }
    Ok(out)
}

/// `berth.proxy.cache.maxsize`, which needs a cache to limit.
pub fn max_size(
    proxy: &ProxySection,
    berth: &BerthProxySection,
) -> Result<Option<u64>, ConfigError> {
    let size = berth.cache.maxsize.map(|s| s.0).filter(|&s| s > 0);
    if size.is_some() && proxy.remoteurl.is_none() && berth.upstreams.is_none() {
        return Err(invalid(
            "berth.proxy.cache.maxsize",
            "limits a pull-through cache: set proxy.remoteurl or berth.proxy.upstreams",
        ));
    }
    Ok(size)
}

fn upstream(
    key: &str,
    prefix: &str,
    remoteurl: Option<&str>,
    username: Option<String>,
    password: Option<String>,
    ttl: Option<GoDuration>,
) -> Result<UpstreamConfig, ConfigError> {
    let url_key = format!("{key}.remoteurl");
    let raw = remoteurl
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid(&url_key, "is required (the upstream's base URL)"))?;
    let remote =
        Url::parse(raw).map_err(|e| invalid(&url_key, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(remote.scheme(), "http" | "https") || remote.host_str().is_none() {
        return Err(invalid(
            &url_key,
            format!("{raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if remote.query().is_some() || remote.fragment().is_some() {
        return Err(invalid(
            &url_key,
            format!("{raw:?} must not have a query or fragment"),
        ));
    }
    if password.is_some() && username.is_none() {
        return Err(invalid(
            &format!("{key}.username"),
            "is required when a password is set",
        ));
    }
    Ok(UpstreamConfig {
        prefix: prefix.to_owned(),
        remote,
        username,
        password,
        // distribution: absent is 7 days; 0 is "never expires" there, and here a tag
        // is then asked upstream on every pull (what distribution does with tags).
        ttl: ttl.map_or(DEFAULT_TTL, |d| d.0).max(Duration::ZERO),
    })
}
