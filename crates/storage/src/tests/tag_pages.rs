//! Tag pages answered from storage while no complete listing exists (the first page
//! after a start, or a shared index being rebuilt): equal to the complete listing's
//! pages for every `n` and `last`, across listing windows, for tag names whose order
//! as keys (S3's, and the in-memory driver's) differs from their order as names.

use std::sync::Arc;

use berth_core::{Page, Registry};
use berth_driver::{InMemoryDriver, StorageDriver};
use bytes::Bytes;

use super::{opts, repo};
use crate::StorageRegistry;
use crate::layout::ROOT;

/// Valid tags: prefixes of one another followed by characters on both sides of `/`.
const TRICKY: &[&str] = &[
    "0", "A", "Z", "_a", "a", "a-", "a--", "a-b", "a.", "a.b", "a0", "a_b", "ab", "b",
];

async fn put(driver: &InMemoryDriver, path: &str) {
    driver
        .put_content(
            &format!("{ROOT}/repositories/r/{path}"),
            Bytes::from_static(b"sha256:0000"),
        )
        .await
        .unwrap();
}

/// What the complete listing answers.
fn expected(all: &[String], n: usize, last: Option<&str>) -> Page {
    let after: Vec<&String> = all
        .iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    Page {
        entries: after.iter().take(n).map(|t| (*t).clone()).collect(),
        more: n > 0 && after.len() > n,
    }
}

#[tokio::test]
async fn first_pages_equal_the_complete_listing() {
    let driver = Arc::new(InMemoryDriver::new());
    put(&driver, "_layers/sha256/ab/link").await;
    let mut all: Vec<String> = TRICKY.iter().map(|t| (*t).to_owned()).collect();
    all.extend((0..100).map(|i| format!("t{i:03}")));
    for tag in &all {
        put(&driver, &format!("_manifests/tags/{tag}/current/link")).await;
    }
    // Directories that are not tags are never listed.
    put(&driver, "_manifests/tags/-x/current/link").await;
    put(&driver, "_manifests/tags/.x/current/link").await;
    all.sort();

    let mut lasts: Vec<Option<String>> = vec![None];
    lasts.extend(TRICKY.iter().map(|t| Some((*t).to_owned())));
    lasts.extend(["t050", "a/", "zzz", "", "-x"].map(|l| Some(l.to_owned())));
    for last in &lasts {
        for n in [0, 1, 2, 3, 7, 40, 200] {
            // A registry of its own for each page: its listing is not loaded yet.
            let r = StorageRegistry::new(driver.clone(), opts());
            let got = r
                .repository(repo("r"))
                .tags(Some(n), last.as_deref())
                .await
                .unwrap();
            let want = expected(&all, n, last.as_deref());
            assert_eq!(
                (&got.entries, got.more),
                (&want.entries, want.more),
                "n={n} last={last:?}"
            );
        }
    }
}
