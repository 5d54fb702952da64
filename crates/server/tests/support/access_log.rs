//! berth's access log read back (included with `#[path = "support/access_log.rs"]`): the
//! requests a client made, as the registry saw them, so a test can tell which upload flow
//! a client used (a mount, a monolithic PUT, PATCHes).

#![allow(dead_code)]

/// One line of the access log (`target berth::access`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub status: u16,
}

/// Every request in `log` (a berth process's output), in order.
pub fn requests(log: &str) -> Vec<Access> {
    log.lines()
        .filter(|l| l.contains("berth::access"))
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                    .map(|v| v.trim_matches('"').to_owned())
            };
            Some(Access {
                method: field("method")?,
                path: field("path")?,
                status: field("status")?.parse().ok()?,
            })
        })
        .collect()
}

/// How many requests of `log` were `method` on `path` answered with `status`.
pub fn count(log: &str, method: &str, path: &str, status: u16) -> usize {
    requests(log)
        .iter()
        .filter(|a| a.method == method && a.path == path && a.status == status)
        .count()
}

/// How many requests `berth` has logged so far: where [`since`] starts.
pub fn logged(berth: &crate::common::Process) -> usize {
    requests(&berth.log_text()).len()
}

/// The requests `berth` logged after the first `from`.
pub fn since(berth: &crate::common::Process, from: usize) -> Vec<Access> {
    requests(&berth.log_text()).split_off(from)
}

/// Stops berth, which must exit cleanly and must not have answered any request with a
/// server error along the way (clients retry some, which could hide one).
pub fn stop_clean(berth: crate::common::Process) {
    let log = berth.log_text();
    assert!(
        !requests(&log).iter().any(|a| a.status >= 500),
        "a request failed with a server error:\n{log}"
    );
    assert!(berth.stop().success(), "{log}");
}
