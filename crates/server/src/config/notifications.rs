//! `notifications` (distribution's endpoints) and `berth.notifications` (berth's durable
//! queue), validated into the notifier's configuration. distribution's defaults are
//! kept: `timeout` 1s, `threshold` 10, `backoff` 1s.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use berth_notify::{Action, EndpointConfig, NotifyConfig, QueueConfig};

use super::schema::{BerthNotificationsSection, EndpointSection, Flag, NotificationsSection};
use super::{ConfigError, Driver, invalid};

/// Where the queue lives with filesystem storage unless configured: node-local state
/// (FHS `/var/lib`), deliberately not under the storage root, which several nodes may
/// share while each needs a queue of its own.
pub const DEFAULT_QUEUE_DIR: &str = "/var/lib/berth/notifications";

/// Undelivered events kept per endpoint unless configured (about 70 MB of queue).
pub const DEFAULT_MAX_EVENTS: u64 = 100_000;

/// How often queued events are flushed to the disk unless configured.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A positive duration, or `default` when absent; zero is refused (a post that may
/// take no time, or retries with no pause, is never what is meant).
fn positive(
    key: &str,
    d: Option<super::duration::GoDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match d.map(|d| d.0) {
        None => Ok(default),
        Some(d) if d.is_zero() => Err(invalid(key, "must be greater than zero")),
        Some(d) => Ok(d),
    }
}

fn endpoint(i: usize, e: &EndpointSection) -> Result<EndpointConfig, ConfigError> {
    let key = |k: &str| format!("notifications.endpoints[{i}].{k}");
    let name = e
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid(&key("name"), "is required"))?;
    let raw = e
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid(&key("url"), "is required"))?;
    let parsed =
        url::Url::parse(raw).map_err(|err| invalid(&key("url"), format!("{raw:?}: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            &key("url"),
            format!("{raw:?}: scheme {:?} is not http or https", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(&key("url"), format!("{raw:?} names no host")));
    }
    let url = raw
        .parse::<http::Uri>()
        .map_err(|err| invalid(&key("url"), format!("{raw:?}: {err}")))?;
    let threshold = match e.threshold {
        None | Some(0) => 10,
        Some(n) if (1..=1_000_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(invalid(
                &key("threshold"),
                format!("{n} is not from 0 to 1000000"),
            ));
        }
    };
    let mut ignored_actions = Vec::new();
    for a in &e.ignore.actions.0 {
        ignored_actions.push(Action::parse(a).ok_or_else(|| {
            invalid(
                &key("ignore.actions"),
                format!("{a:?} is not an action (pull, push, mount, delete)"),
            )
        })?);
    }
    Ok(EndpointConfig {
        headers: super::validate::header_pairs(&key("headers"), &e.headers)?,
        timeout: positive(&key("timeout"), e.timeout, Duration::from_secs(1))?,
        backoff: positive(&key("backoff"), e.backoff, Duration::from_secs(1))?,
        threshold,
        ignored_media_types: e
            .ignoredmediatypes
            .0
            .iter()
            .chain(&e.ignore.mediatypes.0)
            .cloned()
            .collect(),
        ignored_actions,
        name,
        url,
    })
}

/// The notifier's configuration; `None` when no endpoint is enabled.
pub fn notifications(
    n: &NotificationsSection,
    berth: &BerthNotificationsSection,
    driver: &Driver,
) -> Result<Option<NotifyConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut endpoints = Vec::new();
    for (i, e) in n.endpoints.iter().enumerate() {
        let ep = endpoint(i, e)?;
        if !names.insert(ep.name.clone()) {
            return Err(invalid(
                &format!("notifications.endpoints[{i}].name"),
                format!(
                    "{:?} names two endpoints (each keeps its queue position under its name)",
                    ep.name
                ),
            ));
        }
        if !Flag::or(e.disabled, false) {
            endpoints.push(ep);
        }
    }
    let q = &berth.queue;
    let max_events = match q.maxevents {
        None => DEFAULT_MAX_EVENTS,
        Some(0) => {
            return Err(invalid(
                "berth.notifications.queue.maxevents",
                "must be at least 1",
            ));
        }
        Some(n) => n,
    };
    let flush_interval = positive(
        "berth.notifications.queue.flushinterval",
        q.flushinterval,
        DEFAULT_FLUSH_INTERVAL,
    )?;
    if let Some(d) = q.directory.as_ref().filter(|d| d.as_os_str().is_empty()) {
        return Err(invalid(
            "berth.notifications.queue.directory",
            format!("{d:?} must be a non-empty path"),
        ));
    }
    let directory = match (&q.directory, driver) {
        (Some(d), _) => Some(d.clone()),
        // Events about data that is lost on restart may as well be: an in-memory queue.
        // Nodes over S3 are meant to be disposable: no local queue directory unless asked.
        (None, Driver::InMemory | Driver::S3(_)) => None,
        (None, Driver::Filesystem { .. }) => Some(PathBuf::from(DEFAULT_QUEUE_DIR)),
    };
    if endpoints.is_empty() {
        return Ok(None);
    }
    Ok(Some(NotifyConfig {
        endpoints,
        include_references: Flag::or(n.events.includereferences, false),
        queue: QueueConfig {
            directory,
            max_events,
            flush_interval,
        },
    }))
}
