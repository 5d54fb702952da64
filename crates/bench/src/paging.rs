//! Listing endpoints (`tags/list`, `_catalog`): fetch one page, follow `Link: <...>;
//! rel="next"` through every page, and check that a listing holds every expected name
//! exactly once and in order.

use std::collections::HashSet;

use berth_client::Client;

use crate::ops::timed;
use crate::stats::Recorder;

/// At most this many pages are followed (a registry whose links loop is an error).
const MAX_PAGES: usize = 100_000;

/// Fetches one page at `target` and answers its names (`field` is `tags` or
/// `repositories`) and the next page's target.
pub async fn page(
    reg: &Client,
    rec: &mut Recorder,
    target: &str,
    field: &str,
) -> Result<(Vec<String>, Option<String>), String> {
    let answer = timed(rec, reg.get(target)).await?.expect_status(200)?;
    Ok((answer.names(field)?, answer.next_link()))
}

/// Follows every page from `first`, answering all names in the order received.
pub async fn walk(
    reg: &Client,
    rec: &mut Recorder,
    first: &str,
    field: &str,
) -> Result<Vec<String>, String> {
    let mut all = Vec::new();
    let mut target = Some(first.to_owned());
    let mut pages = 0;
    while let Some(t) = target {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(format!("{first}: more than {MAX_PAGES} pages"));
        }
        let (names, next) = page(reg, rec, &t, field).await?;
        if next.is_some() && names.is_empty() {
            return Err(format!("{t}: empty page with a next link"));
        }
        all.extend(names);
        target = next;
    }
    Ok(all)
}

/// Checks that `got` holds no name twice and that the names it holds for which
/// `mine` is true are exactly `want`, in that order.
pub fn verify_listing(
    got: &[String],
    want: &[String],
    mine: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let mut seen = HashSet::with_capacity(got.len());
    if let Some(dup) = got.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(format!("listing holds {dup:?} twice"));
    }
    let ours: Vec<&String> = got.iter().filter(|n| mine(n)).collect();
    if ours.len() != want.len() {
        return Err(format!(
            "listing holds {} of the expected names, want {}",
            ours.len(),
            want.len()
        ));
    }
    let Some(i) = ours.iter().zip(want).position(|(g, w)| *g != w) else {
        return Ok(());
    };
    let mut sorted = ours.clone();
    sorted.sort();
    if sorted.iter().zip(want).all(|(g, w)| *g == w) {
        Err(format!(
            "listing holds every expected name once but not in lexical order \
             (position {i}: {:?}, want {:?})",
            ours[i], want[i]
        ))
    } else {
        Err(format!(
            "listing position {i}: {:?}, want {:?}",
            ours[i], want[i]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listing_checks() {
        let want = names(&["a/1", "a/2"]);
        let mine = |n: &str| n.starts_with("a/");
        assert!(verify_listing(&names(&["a/1", "a/2", "b"]), &want, mine).is_ok());
        assert!(verify_listing(&names(&["a/2", "a/1"]), &want, mine).is_err());
        assert!(verify_listing(&names(&["a/1"]), &want, mine).is_err());
        assert!(verify_listing(&names(&["a/1", "b", "b", "a/2"]), &want, mine).is_err());
    }
}
