//! The shared listings against a real `redis-server`: pages in catalog order for every
//! `last` and `n` once complete (none before), updates made while a rebuild walks are
//! kept, one rebuild at a time, a lost lease completes nothing, a flushed Redis asks for
//! a rebuild, and an update that could not be sent (Redis hung) leaves the index
//! distrusted once Redis is back.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::{Page, RepositoryName};
use berth_redis::{RedisDescriptors, RedisIndex};
use berth_storage::{IndexName, SharedIndex};
use redis::Commands;
use support::client::{raw, rebuild, strings, wait_up};
use support::server::RedisServer;

const CATALOG: IndexName<'static> = IndexName::Catalog;

async fn connected(server: &RedisServer) -> (Arc<RedisDescriptors>, Arc<RedisIndex>) {
    let cache = support::client::connected(server).await;
    let index = cache.index();
    (cache, index)
}

/// What the complete listing answers, component-wise for the catalog.
fn expected(all: &[&str], catalog: bool, n: Option<usize>, last: Option<&str>) -> Page {
    let order = |a: &str, b: &str| {
        if catalog {
            a.split('/').cmp(b.split('/'))
        } else {
            a.cmp(b)
        }
    };
    let mut sorted: Vec<&str> = all.to_vec();
    sorted.sort_by(|a, b| order(a, b));
    let after: Vec<String> = sorted
        .iter()
        .filter(|name| last.is_none_or(|l| order(name, l).is_gt()))
        .map(|s| s.to_string())
        .collect();
    let take = n.unwrap_or(usize::MAX);
    Page {
        entries: after.iter().take(take).cloned().collect(),
        more: take > 0 && after.len() > take,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_catalog_order_once_complete() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (_cache, index) = connected(&server).await;
    let names = [
        "a", "a/b", "a-b", "a.b", "a/b/c", "a_b", "a__b", "b", "ab", "a/a", "z/y/x", "0",
    ];
    // Updates before any rebuild go in, but nothing is answered from an incomplete index.
    assert!(index.add(CATALOG, "a").await, "a name new to the index");
    assert!(!index.add(CATALOG, "a").await, "a name listed already");
    assert!(index.page(CATALOG, Some(10), None).await.is_none());
    rebuild(&index, CATALOG, &names).await;
    assert!(
        index.begin_rebuild(CATALOG).await.is_none(),
        "a complete index is not rebuilt"
    );
    let mut lasts: Vec<Option<String>> = names.iter().map(|n| Some(n.to_string())).collect();
    for odd in ["", "a/", "a/\0", "a\0", "a-", "a/b\u{1}", "~", " ", "a//b"] {
        lasts.push(Some(odd.to_owned()));
    }
    lasts.push(None);
    for last in &lasts {
        for n in [None, Some(0), Some(1), Some(2), Some(5), Some(20)] {
            let got = index.page(CATALOG, n, last.as_deref()).await.unwrap();
            let want = expected(&names, true, n, last.as_deref());
            assert_eq!(
                (&got.entries, got.more),
                (&want.entries, want.more),
                "n={n:?} last={last:?}"
            );
        }
    }

    // Tags: plain byte order, any `last`.
    let repo = RepositoryName::parse("team/app").unwrap();
    let tags = IndexName::Tags(&repo);
    let tag_names = ["v1", "v10", "v2", "latest", "V1", "1.0", "1.0-rc", "_x"];
    assert!(index.page(tags, None, None).await.is_none());
    rebuild(&index, tags, &tag_names).await;
    for last in [
        None,
        Some("v1"),
        Some("v"),
        Some("0"),
        Some("zz"),
        Some("1.0"),
    ] {
        for n in [None, Some(1), Some(3), Some(100)] {
            let got = index.page(tags, n, last).await.unwrap();
            let want = expected(&tag_names, false, n, last);
            assert_eq!((&got.entries, got.more), (&want.entries, want.more));
        }
    }
    // Another repository's tags are its own, and not complete yet.
    let other = RepositoryName::parse("team/other").unwrap();
    assert!(
        index
            .page(IndexName::Tags(&other), None, None)
            .await
            .is_none()
    );
    index.remove(tags, "v10").await;
    index.add(tags, "v3").await;
    let got = index.page(tags, None, Some("v1")).await.unwrap();
    assert_eq!(got.entries, ["v2", "v3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_during_a_rebuild_are_kept() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (_cache, index) = connected(&server).await;
    // Left over from before the index was lost: the rebuild starts afresh.
    index.add(CATALOG, "stale").await;
    let lease = index.begin_rebuild(CATALOG).await.expect("lease");
    assert!(
        index.begin_rebuild(CATALOG).await.is_none(),
        "one rebuild at a time"
    );
    // While the walk runs: a repository created after the walk passed its place, one
    // removed after the walk saw it, one removed and created again, one created and
    // removed again.
    index.add(CATALOG, "new/repo").await;
    index.remove(CATALOG, "gone").await;
    index.remove(CATALOG, "back").await;
    index.add(CATALOG, "back").await;
    index.add(CATALOG, "brief").await;
    index.remove(CATALOG, "brief").await;
    assert!(index.page(CATALOG, None, None).await.is_none());
    let walked = strings(&["a", "gone", "back", "a/b"]);
    assert!(index.complete_rebuild(CATALOG, &lease, walked).await);
    let page = index.page(CATALOG, None, None).await.unwrap();
    assert_eq!(page.entries, ["a", "a/b", "back", "new/repo"]);
    // Nothing of the rebuild is left behind but the index.
    let mut conn = raw(&server);
    let keys: Vec<String> = conn.keys("berth::catalog*").unwrap();
    assert_eq!(keys, ["berth::catalog"]);
    // A removal once complete is not recorded apart.
    index.remove(CATALOG, "a").await;
    let keys: Vec<String> = conn.keys("berth::catalog*").unwrap();
    assert_eq!(keys, ["berth::catalog"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_completes_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (_cache, index) = connected(&server).await;
    let mut conn = raw(&server);
    let lease = index.begin_rebuild(CATALOG).await.expect("lease");
    assert!(index.renew(CATALOG, &lease).await);
    // The lease expired (this node stalled) and another node took it.
    let _: () = conn.del("berth::catalog::rebuild").unwrap();
    let other = index
        .begin_rebuild(CATALOG)
        .await
        .expect("taken by another");
    assert!(!index.renew(CATALOG, &lease).await);
    assert!(
        !index
            .complete_rebuild(CATALOG, &lease, strings(&["x"]))
            .await
    );
    assert!(index.page(CATALOG, None, None).await.is_none());
    assert!(
        index
            .complete_rebuild(CATALOG, &other, strings(&["y"]))
            .await
    );
    assert_eq!(
        index.page(CATALOG, None, None).await.unwrap().entries,
        ["y"]
    );
    let ttl: i64 = conn.pttl("berth::catalog").unwrap();
    assert_eq!(ttl, -1, "the index itself never expires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_rebuild_goes_in_batches() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (_cache, index) = connected(&server).await;
    let names: Vec<String> = (0..2500).map(|i| format!("org{}/r{i:05}", i % 7)).collect();
    let lease = index.begin_rebuild(CATALOG).await.expect("lease");
    assert!(index.complete_rebuild(CATALOG, &lease, names.clone()).await);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let last = Some("org3/r01000");
    let got = index.page(CATALOG, Some(100), last).await.unwrap();
    let want = expected(&refs, true, Some(100), last);
    assert_eq!((got.entries, got.more), (want.entries, want.more));
    let all = index.page(CATALOG, None, None).await.unwrap();
    assert_eq!(all.entries.len(), 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_asks_for_a_rebuild() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (_cache, index) = connected(&server).await;
    rebuild(&index, CATALOG, &["a", "b"]).await;
    assert!(index.page(CATALOG, None, None).await.is_some());
    let mut conn = raw(&server);
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    assert!(index.page(CATALOG, None, None).await.is_none());
    rebuild(&index, CATALOG, &["a", "b", "c"]).await;
    assert_eq!(
        index.page(CATALOG, None, None).await.unwrap().entries,
        ["a", "b", "c"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_lost_in_an_outage_leaves_the_index_distrusted() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cache, index) = connected(&server).await;
    rebuild(&index, CATALOG, &["a"]).await;
    let repo = RepositoryName::parse("r").unwrap();
    let tags = IndexName::Tags(&repo);
    rebuild(&index, tags, &["t"]).await;
    // Hung: the update times out (it may or may not have been applied), and every
    // later one is skipped; pages are not answered meanwhile.
    server.pause();
    let started = Instant::now();
    assert!(
        !index.add(CATALOG, "b").await,
        "an add that may not have been applied is not reported new"
    );
    for i in 0..50 {
        index.add(CATALOG, &format!("c{i}")).await;
    }
    assert!(index.page(CATALOG, None, None).await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the outage slowed updates"
    );
    assert_eq!(
        cache.pending_removals(),
        1,
        "one distrust queued for the index"
    );
    server.resume();
    wait_up(&cache).await;
    assert_eq!(cache.pending_removals(), 0);
    // Back: the catalog is distrusted until rebuilt; the tags, untouched, still serve.
    assert!(index.page(CATALOG, None, None).await.is_none());
    assert_eq!(index.page(tags, None, None).await.unwrap().entries, ["t"]);
    rebuild(&index, CATALOG, &["a", "b"]).await;
    assert_eq!(
        index.page(CATALOG, None, None).await.unwrap().entries,
        ["a", "b"]
    );
}
