//! When each proxied tag was last fetched or confirmed upstream: within the upstream's
//! ttl the cached tag is served without asking. Kept in memory only, so after a restart
//! every tag is asked once (and served from the cache if the upstream cannot answer).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Confirmation times by repository and tag.
#[derive(Default)]
pub(crate) struct Freshness {
    confirmed: Mutex<HashMap<(String, String), Instant>>,
}

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 16 * 1024;

impl Freshness {
    /// Whether `repo:tag` was confirmed less than `ttl` ago.
    pub(crate) fn is_fresh(&self, repo: &str, tag: &str, ttl: Duration) -> bool {
        self.confirmed.lock().is_ok_and(|m| {
            m.get(&(repo.to_owned(), tag.to_owned()))
                .is_some_and(|t| t.elapsed() < ttl)
        })
    }

    /// Notes that `repo:tag` was just fetched or confirmed.
    pub(crate) fn confirm(&self, repo: &str, tag: &str, ttl: Duration) {
        if let Ok(mut m) = self.confirmed.lock() {
            if m.len() >= SWEEP_AT {
                m.retain(|_, t| t.elapsed() < ttl);
            }
            m.insert((repo.to_owned(), tag.to_owned()), Instant::now());
        }
    }
}
