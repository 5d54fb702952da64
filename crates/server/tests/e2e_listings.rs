//! The catalog and tag listings end to end. One node on a file system written in
//! distribution's layout: catalog pages are right while the listing is still being
//! built in the background (read from storage) and after (from memory), and a push made
//! during the build is listed. Three nodes over one S3 bucket (moto) and one
//! `redis-server`: what A and B push is paged on C, tags set on A are listed on B, a tag
//! deleted on B is gone from A's list; what is written into the bucket behind berth's
//! back is not listed while the indexes are complete (pages come from Redis); after
//! `FLUSHALL` the indexes are rebuilt from storage and still right, and with Redis
//! stopped every node still lists from storage.

mod common;
#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/moto.rs"]
mod moto;
#[path = "../../redis/tests/support/server.rs"]
mod redis_server;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_client::BlockingClient;
use fleet::{Node, push, sha256};
use moto::Moto;
use redis_server::RedisServer;

/// Whether `node` has its catalog listing built (the `berth_catalog_listing_built`
/// gauge).
fn built(node: &Node) -> bool {
    node.metric("berth_catalog_listing_built", "") == 1.0
}

/// Component-wise order, as distribution's catalog walk lists names.
fn catalog_sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    names.dedup();
    names
}

/// Every page of a listing, `n` at a time, following each `Link` (which must be there
/// exactly when a page is not the last, and start after the page's last entry).
fn pages(c: &BlockingClient, first: &str, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut target = first.to_owned();
    for _ in 0..100_000 {
        let r = c.run(|c| c.get(&target)).unwrap();
        assert_eq!(r.status, 200, "GET {target}: {}", r.text());
        let entries = r.names(field).unwrap();
        out.extend(entries.iter().cloned());
        match r.next_link() {
            Some(next) => {
                let last = entries.last().expect("a page linking onward has entries");
                let url = berth_client::Url::parse("http://x")
                    .unwrap()
                    .join(&next)
                    .unwrap();
                let linked = url
                    .query_pairs()
                    .find(|(k, _)| k == "last")
                    .map(|(_, v)| v.into_owned());
                assert_eq!(linked.as_deref(), Some(last.as_str()), "Link {next}");
                target = next;
            }
            None => return out,
        }
    }
    panic!("{first}: the pages never end");
}

/// The whole catalog, `n` names a page.
fn catalog(c: &BlockingClient, n: usize) -> Vec<String> {
    pages(c, &format!("/v2/_catalog?n={n}"), "repositories")
}

/// A repository's tags, `n` a page.
fn tags(c: &BlockingClient, repo: &str, n: usize) -> Vec<String> {
    pages(c, &format!("/v2/{repo}/tags/list?n={n}"), "tags")
}

/// The catalog page after `last` (URL-encoded by the client), at most `n`.
fn page_after(c: &BlockingClient, n: usize, last: &str) -> Vec<String> {
    let r = c.run(|c| c.catalog(Some(n), Some(last))).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.repository_names().unwrap()
}

/// Writes a repository as distribution lays it out: a layer link (which makes it a
/// catalog entry) and a tag.
fn write_repository(root: &Path, name: &str, layer: &str, manifest: &str) {
    let repo = root.join("docker/registry/v2/repositories").join(name);
    let link = |dir: std::path::PathBuf, digest: &str| {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("link"), digest).unwrap();
    };
    link(repo.join("_layers/sha256").join(&layer[7..]), layer);
    link(repo.join("_manifests/tags/latest/current"), manifest);
}

/// Pushes a one-layer image to `repo:tag` through `node`.
fn push_image(node: &Node, repo: &str, tag: &str) {
    fleet::push_image(node, repo, tag, format!("layer of {repo}:{tag}").as_bytes());
}

#[test]
fn catalog_pages_are_right_while_the_listing_is_built_and_after() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    // Enough repositories that the build outlasts the first requests, nested, with
    // names whose component order differs from byte order, and directories that are
    // not repositories (an upload only; a name no repository can have).
    let (layer, manifest) = (sha256(b"layer"), sha256(b"manifest"));
    let mut names: Vec<String> = (0..20_000)
        .map(|i| format!("org{:02}/app{i:05}", i % 40))
        .collect();
    names.extend(["a", "a/b", "a-b", "a.b", "a/b/c", "a_b/c", "z"].map(String::from));
    for name in &names {
        write_repository(&root, name, &layer, &manifest);
    }
    for odd in ["up/only/_uploads/x", "Upper/x/_layers/sha256"] {
        std::fs::create_dir_all(root.join("docker/registry/v2/repositories").join(odd)).unwrap();
    }
    let mut want = catalog_sorted(names.clone());

    let debug = format!("127.0.0.1:{}", common::free_port());
    let (config, addr) = common::berth_config(&root, work.path(), "", &Node::debug_yaml(&debug));
    let node = Node::spawn(config, addr, debug, work.path(), "berth", None);
    let c = node.client();
    // The first page answers at once, from storage, while the build walks.
    let started = Instant::now();
    let first = page_after(c, 100, "");
    let took = started.elapsed();
    // The pages below are checked either way; on a machine fast enough to finish the
    // walk first they come from the listing instead (the walk's own tests cover it).
    if built(&node) {
        eprintln!("note: the build ended before the first page; pages came from the listing");
    }
    assert_eq!(first, want[..100]);
    assert!(took < Duration::from_secs(2), "first page took {took:?}");
    // Pages after positions that are not names, during the build.
    assert_eq!(page_after(c, 3, "a/"), ["a/b", "a/b/c", "a-b"]);
    assert_eq!(
        page_after(c, 2, "org07/"),
        ["org07/app00007", "org07/app00047"]
    );
    assert_eq!(page_after(c, 2, "org39/app19999"), ["z"]);
    // A push during the build is listed, during it and after.
    push(
        &node,
        "a/a-during-build",
        b"pushed while the listing is built",
    );
    want = catalog_sorted([want, vec!["a/a-during-build".to_owned()]].concat());
    assert_eq!(catalog(c, 1000), want);

    let deadline = Instant::now() + Duration::from_secs(120);
    while !built(&node) {
        assert!(Instant::now() < deadline, "the build never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    push(
        &node,
        "org05/after-build",
        b"pushed once the listing is built",
    );
    want = catalog_sorted([want, vec!["org05/after-build".to_owned()]].concat());
    assert_eq!(catalog(c, 1000), want);
    assert_eq!(catalog(c, 97), want);
    assert_eq!(page_after(c, 3, "a/"), ["a/a-during-build", "a/b", "a/b/c"]);
    assert_eq!(
        page_after(c, 2, "org07/"),
        ["org07/app00007", "org07/app00047"]
    );
    assert_eq!(page_after(c, 2, "org39/app19999"), ["z"]);
    assert!(page_after(c, 2, "z").is_empty());
}

/// One berth node over `bucket` with the listings (and descriptors) in Redis at `redis`.
fn s3_node(moto: &Moto, bucket: &str, redis: &str, work: &Path, name: &str) -> Node {
    let debug = format!("127.0.0.1:{}", common::free_port());
    let (config, addr) = moto.berth_config(bucket, work, name, "", &Node::debug_yaml(&debug));
    Node::spawn(config, addr, debug, work, name, Some(redis))
}

/// Whether Redis holds the index at `key` complete (its empty member, the mark).
fn complete_in_redis(redis: &RedisServer, key: &str) -> bool {
    let mut conn = redis::Client::open(format!("redis://{}/", redis.addr()))
        .unwrap()
        .get_connection()
        .unwrap();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(key)
        .arg("")
        .query(&mut conn)
        .unwrap();
    score.is_some()
}

/// Pages `c`'s catalog until the shared index is complete (a page asked of an
/// incomplete one starts its rebuild), checking every answer on the way.
fn until_rebuilt(c: &BlockingClient, redis: &RedisServer, want: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert_eq!(catalog(c, 2), want);
        if complete_in_redis(redis, "berth::catalog") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the catalog index was never rebuilt"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn flushall(redis: &RedisServer) {
    let mut conn = redis::Client::open(format!("redis://{}/", redis.addr()))
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
}

#[test]
fn three_nodes_share_the_listings_over_s3_and_redis() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    moto.create_bucket("fleet");
    let work = tempfile::tempdir().unwrap();
    let addr = redis.addr();
    let a = s3_node(&moto, "fleet", &addr, work.path(), "a");
    let b = s3_node(&moto, "fleet", &addr, work.path(), "b");
    let c = s3_node(&moto, "fleet", &addr, work.path(), "c");
    let (ac, bc, cc) = (a.client(), b.client(), c.client());

    // Pushed through A and B, paged on C, n=1 and n=2 and whole.
    push_image(&a, "team/app", "v1");
    push_image(&a, "a/b", "x");
    push_image(&b, "a-b", "y");
    push_image(&b, "team/app2", "z");
    push_image(&b, "a", "w");
    let want = catalog_sorted(
        ["a", "a/b", "a-b", "team/app", "team/app2"]
            .map(String::from)
            .to_vec(),
    );
    for n in [1, 2, 100] {
        assert_eq!(catalog(cc, n), want, "n={n}");
    }
    // From the shared index once it is complete (C's first page started its rebuild).
    until_rebuilt(cc, &redis, &want);
    assert_eq!(page_after(cc, 2, "a/"), ["a/b", "a-b"]);
    // A repository pushed now reaches the index (no rebuild needed) and every node.
    push_image(&a, "team/app/sub", "s");
    let want = catalog_sorted([want, vec!["team/app/sub".to_owned()]].concat());
    for node in [ac, bc, cc] {
        assert_eq!(catalog(node, 1), want);
    }
    assert!(complete_in_redis(&redis, "berth::catalog"));

    // Tags set on A, listed on B; one deleted on B, gone on A.
    push_image(&a, "team/app", "v2");
    push_image(&a, "team/app", "v3");
    assert_eq!(tags(bc, "team/app", 1), ["v1", "v2", "v3"]);
    assert!(complete_in_redis(
        &redis,
        "berth::repository::team/app::tags"
    ));
    let r = bc.run(|c| c.delete_manifest("team/app", "v2")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(tags(ac, "team/app", 1), ["v1", "v3"]);
    assert_eq!(tags(cc, "team/app", 2), ["v1", "v3"]);
    push_image(&c, "team/app", "v0");
    assert_eq!(tags(ac, "team/app", 100), ["v0", "v1", "v3"]);

    // A repository and a tag written straight into the bucket (as another registry
    // would) are not listed while the indexes are complete: pages come from Redis.
    let layer = sha256(b"written behind berth's back");
    let repos = "registry/docker/registry/v2/repositories";
    moto.put_object(
        "fleet",
        &format!("{repos}/behind/_layers/sha256/{}/link", &layer[7..]),
        layer.as_bytes(),
    );
    moto.put_object(
        "fleet",
        &format!("{repos}/team/app/_manifests/tags/v9/current/link"),
        layer.as_bytes(),
    );
    assert_eq!(catalog(cc, 100), want);
    assert_eq!(tags(cc, "team/app", 100), ["v0", "v1", "v3"]);

    // Redis emptied: answers stay right (from storage) and the indexes are rebuilt
    // from storage, which now has both.
    flushall(&redis);
    assert!(!complete_in_redis(&redis, "berth::catalog"));
    let want = catalog_sorted([want, vec!["behind".to_owned()]].concat());
    until_rebuilt(bc, &redis, &want);
    for node in [ac, bc, cc] {
        assert_eq!(catalog(node, 1), want);
        assert_eq!(tags(node, "team/app", 1), ["v0", "v1", "v3", "v9"]);
    }
    assert!(complete_in_redis(
        &redis,
        "berth::repository::team/app::tags"
    ));

    // Redis stopped: every node lists from storage, changes included.
    redis.stop();
    push_image(&b, "during/outage", "o");
    let r = ac.run(|c| c.delete_manifest("team/app", "v3")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = ac.run(|c| c.delete_manifest("team/app", "v9")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let want = catalog_sorted([want, vec!["during/outage".to_owned()]].concat());
    for node in [ac, bc, cc] {
        assert_eq!(catalog(node, 2), want);
        assert_eq!(tags(node, "team/app", 1), ["v0", "v1"]);
        assert_eq!(tags(node, "during/outage", 1), ["o"]);
    }

    // Back (empty): rebuilt with what changed while it was away.
    redis.restart();
    std::thread::sleep(Duration::from_secs(1));
    until_rebuilt(cc, &redis, &want);
    for node in [ac, bc, cc] {
        assert_eq!(catalog(node, 1), want);
        assert_eq!(tags(node, "team/app", 1), ["v0", "v1"]);
    }
}
