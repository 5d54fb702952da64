//! A directory's subdirectories in name order, a window at a time, read from a store
//! that lists keys in byte order (S3's `ListObjectsV2` with `start-after` and a `/`
//! delimiter). The two orders differ: a subdirectory `a` is listed as the key `a/`,
//! which sorts after `a-b/` and `a.b/` (`-` and `.` come before `/`), although `a` comes
//! first by name. So a window of keys can end after `a-b/` and before `a/`: its names
//! are then certain, in name order, only up to the first one that such a missing prefix
//! would precede. This module keeps that rule in one place.

use std::ops::Bound;

use crate::DriverError;

/// Subdirectories of one directory, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirWindow {
    /// Names (one path component each), sorted, all within the bound asked for, and
    /// no name within it missing before the last one.
    pub names: Vec<String>,
    /// Whether names after the last one may exist.
    pub more: bool,
}

/// One response of a key-ordered listing under a directory's prefix.
#[derive(Debug, Clone, Default)]
pub struct KeyWindow {
    /// The subdirectories it named (common prefixes, as names).
    pub dirs: Vec<String>,
    /// The greatest key it returned relative to the prefix (a subdirectory as `name/`,
    /// a file as `name`), `None` when it returned nothing.
    pub last_key: Option<String>,
    /// Where the listing goes on (a continuation token), `None` at its end.
    pub next: Option<String>,
}

/// Whether `name` lies within `from`.
pub(crate) fn within(name: &str, from: Bound<&str>) -> bool {
    match from {
        Bound::Unbounded => true,
        Bound::Included(f) => name >= f,
        Bound::Excluded(f) => name > f,
    }
}

/// How many of `names` (sorted, every one returned by windows that ended at
/// `last_key`) are certain in name order: a subdirectory missing from the windows has a
/// key after `last_key`, so it precedes a returned `n` by name only when it is a proper
/// prefix `m` of `n` whose next character sorts before `/` and `m/` lies after
/// `last_key`. The names from the first such `n` on wait for the next window.
fn certain(names: &[String], last_key: &str, from: Bound<&str>) -> usize {
    names
        .iter()
        .position(|n| {
            n.char_indices().any(|(i, c)| {
                let m = &n[..i];
                i > 0 && c < '/' && within(m, from) && format!("{m}/").as_str() > last_key
            })
        })
        .unwrap_or(names.len())
}

/// The first window of subdirectories within `from`, at least one name unless none
/// remain: `fetch(token)` answers successive key windows (the first with `None`), each
/// starting after the key of `from`'s bound, so names ordered before it by name but
/// after it by key are dropped here.
pub async fn dirs_in_name_order<F, Fut>(
    from: Bound<&str>,
    mut fetch: F,
) -> Result<DirWindow, DriverError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<KeyWindow, DriverError>>,
{
    let mut names: Vec<String> = Vec::new();
    let mut last_key = String::new();
    let mut token = None;
    loop {
        let w = fetch(token.take()).await?;
        names.extend(w.dirs.into_iter().filter(|n| within(n, from)));
        if let Some(k) = w.last_key {
            last_key = last_key.max(k);
        }
        names.sort_unstable();
        names.dedup();
        let Some(next) = w.next else {
            return Ok(DirWindow { names, more: false });
        };
        let sure = certain(&names, &last_key, from);
        if sure > 0 {
            names.truncate(sure);
            return Ok(DirWindow { names, more: true });
        }
        token = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Components made to collide: prefixes of one another followed by characters on
    /// both sides of `/`.
    const PARTS: &[&str] = &["a", "a-", "a-b", "a.b", "a0", "ab", "b", "-", "a--", "a-.b"];

    /// What a bucket answers for `start-after` and `max-keys` under one prefix with a
    /// `/` delimiter: keys (`name/` per directory, `name` per file) in byte order after
    /// `start`, `max` per window; the token is the last key returned.
    fn key_window(keys: &BTreeSet<String>, start: &str, max: usize) -> KeyWindow {
        let taken: Vec<&String> = keys
            .iter()
            .filter(|k| k.as_str() > start)
            .take(max)
            .collect();
        let more = keys.iter().filter(|k| k.as_str() > start).count() > max;
        KeyWindow {
            dirs: taken
                .iter()
                .filter_map(|k| k.strip_suffix('/').map(str::to_owned))
                .collect(),
            last_key: taken.last().map(|k| (*k).clone()),
            next: more.then(|| taken.last().map(|k| (*k).clone()).unwrap_or_default()),
        }
    }

    /// Pages through a directory with the given bound and window size, as the walk does.
    async fn page_all(keys: &BTreeSet<String>, from: Bound<&str>, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut bound: Bound<String> = match from {
            Bound::Unbounded => Bound::Unbounded,
            Bound::Included(s) => Bound::Included(s.to_owned()),
            Bound::Excluded(s) => Bound::Excluded(s.to_owned()),
        };
        loop {
            let from = bound.as_ref().map(String::as_str);
            let start = match from {
                Bound::Unbounded => String::new(),
                Bound::Included(s) | Bound::Excluded(s) => s.to_owned(),
            };
            let w = dirs_in_name_order(from, |token| {
                let at = token.unwrap_or_else(|| start.clone());
                let w = key_window(keys, &at, max);
                async move { Ok(w) }
            })
            .await
            .unwrap();
            assert!(w.names.is_sorted(), "{:?}", w.names);
            if w.more {
                assert!(
                    !w.names.is_empty(),
                    "a window with more names is never empty"
                );
            }
            out.extend(w.names.iter().cloned());
            match (w.more, w.names.last()) {
                (true, Some(last)) => bound = Bound::Excluded(last.clone()),
                _ => return out,
            }
        }
    }

    #[tokio::test]
    async fn windows_give_exactly_the_directories_in_name_order() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..300 {
            let mut dirs = BTreeSet::new();
            let mut keys = BTreeSet::new();
            for _ in 0..rng.random_range(0..14) {
                let name: String = (0..rng.random_range(1..3))
                    .map(|_| PARTS[rng.random_range(0..PARTS.len())])
                    .collect();
                if rng.random_range(0..4) == 0 {
                    keys.insert(name);
                } else {
                    keys.insert(format!("{name}/"));
                    dirs.insert(name);
                }
            }
            let mut bounds = vec![Bound::Unbounded];
            let probes: Vec<String> = dirs
                .iter()
                .cloned()
                .chain(["a", "a-", "a-b", ""].map(str::to_owned))
                .collect();
            for p in &probes {
                bounds.push(Bound::Included(p.as_str()));
                bounds.push(Bound::Excluded(p.as_str()));
            }
            for from in bounds {
                let want: Vec<String> = dirs.iter().filter(|d| within(d, from)).cloned().collect();
                for max in 1..5 {
                    let got = page_all(&keys, from, max).await;
                    assert_eq!(got, want, "from={from:?} max={max} keys={keys:?}");
                }
            }
        }
    }
}
