//! Two berth nodes on one filesystem root sharing one real `redis-server` as their
//! blob-descriptor cache (`storage.cache.blobdescriptor: redis`, set through
//! `REGISTRY_*` variables as a fleet's nodes would be): what one node pushes the other
//! finds in Redis, what one deletes the other stops serving at once, and a Redis that
//! hangs or dies neither fails nor slows requests, and is used again once it is back.

mod common;
#[path = "support/fleet.rs"]
mod fleet;
#[path = "../../redis/tests/support/server.rs"]
mod redis_server;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fleet::{Node, push, push_image, sha256, tag_target, with_redis};
use redis_server::RedisServer;

/// A berth node on the filesystem root `root` with the Redis cache at `redis`.
fn start(root: &Path, work: &Path, redis: &str) -> Node {
    start_with(root, work, redis, "")
}

/// Like [`start`], with `extra` top-level YAML (a `redis` section).
fn start_with(root: &Path, work: &Path, redis: &str, extra: &str) -> Node {
    let debug = format!("127.0.0.1:{}", common::free_port());
    let (config, addr) = common::berth_config(
        root,
        work,
        "",
        &format!("{}{extra}", Node::debug_yaml(&debug)),
    );
    Node::spawn(config, addr, debug, work, "berth", Some(redis))
}

/// Lookups of blob links the node answered from the cache.
fn link_hits(node: &Node) -> f64 {
    node.metric(
        "berth_storage_cache_lookups_total",
        "cache=\"blob_link\",result=\"hit\"",
    )
}

fn status_of_get(node: &Node, repo: &str, digest: &str, bytes: &[u8]) -> u16 {
    let r = node
        .client()
        .run(|c| c.get_blob(repo, digest, None))
        .unwrap();
    if r.status == 200 {
        assert!(r.body == bytes, "other bytes served for {digest}");
    }
    r.status
}

#[test]
fn two_nodes_share_the_descriptor_cache() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let a = start(&root, work.path(), &redis.addr());
    let b = start(&root, work.path(), &redis.addr());

    // Pushed through A, served by B from the shared cache: B never saw the blob, yet its
    // first lookup is a hit.
    let bytes = b"a layer pushed through node A".to_vec();
    let d = push(&a, "team/app", &bytes);
    let hits = link_hits(&b);
    let r = b.client().run(|c| c.head_blob("team/app", &d)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        link_hits(&b),
        hits + 1.0,
        "B's first lookup came from Redis"
    );
    assert_eq!(status_of_get(&b, "team/app", &d, &bytes), 200);
    assert!(b.metric("registry_storage_cache_total", "type=\"Hit\"") >= 2.0);

    // Deleted through A: B answers 404 at once (its in-memory cache would still hold it).
    let r = a.client().run(|c| c.delete_blob("team/app", &d)).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = b.client().run(|c| c.head_blob("team/app", &d)).unwrap();
    assert_eq!(r.status, 404, "B still serves a blob A deleted");

    // Redis hangs: every request still succeeds, and only the first ones wait for the
    // 500 ms timeout (without the breaker 20 pulls would take 20 s and more).
    let kept = b"a layer pulled through the outage".to_vec();
    let kd = push(&a, "team/app", &kept);
    let before = push_image(&a, "team/app", "v", b"image before the outage");
    assert_eq!(tag_target(&b, "team/app", "v").as_deref(), Some(&*before));
    redis.pause();
    let started = Instant::now();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(status_of_get(node, "team/app", &kd, &kept), 200);
    }
    let more = b"a layer pushed while redis hangs".to_vec();
    let md = push(&b, "team/other", &more);
    assert_eq!(status_of_get(&a, "team/other", &md, &more), 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "requests were slowed: {took:?}"
    );
    assert_eq!(a.metric("berth_redis_up", ""), 0.0);
    assert!(a.metric("berth_redis_skipped_total", "") > 0.0);

    // Redis killed: still served, from storage.
    redis.stop();
    let started = Instant::now();
    for node in [&a, &b] {
        assert_eq!(status_of_get(node, "team/app", &kd, &kept), 200);
        assert_eq!(status_of_get(node, "team/other", &md, &more), 200);
        assert_eq!(
            node.client()
                .run(|c| c.head_blob("team/app", &d))
                .unwrap()
                .status,
            404
        );
    }
    let late = b"a layer pushed while redis is down".to_vec();
    let ld = push(&a, "team/app", &late);
    assert_eq!(status_of_get(&b, "team/app", &ld, &late), 200);
    // A tag moved meanwhile: B cannot know the version, so it reads storage.
    let during = push_image(&a, "team/app", "v", b"image during the outage");
    assert_eq!(tag_target(&b, "team/app", "v").as_deref(), Some(&*during));
    assert!(started.elapsed() < Duration::from_secs(3));

    // Redis back (empty): both nodes reconnect and use it again.
    redis.restart();
    a.wait_metric("berth_redis_up", "", 1.0);
    b.wait_metric("berth_redis_up", "", 1.0);
    let again = b"a layer pushed once redis is back".to_vec();
    let gd = push(&a, "team/app", &again);
    let hits = link_hits(&b);
    assert_eq!(status_of_get(&b, "team/app", &gd, &again), 200);
    assert_eq!(
        link_hits(&b),
        hits + 1.0,
        "B's lookup came from Redis again"
    );
    // Tags: the emptied Redis counts from a new start, and moves are seen again.
    assert_eq!(tag_target(&b, "team/app", "v").as_deref(), Some(&*during));
    let after = push_image(&a, "team/app", "v", b"image after the outage");
    assert_eq!(tag_target(&b, "team/app", "v").as_deref(), Some(&*after));
}

/// CNCF distribution 2.8.2 with its cache in the same Redis, on the same root.
fn distribution(root: &Path, work: &Path, redis: &str) -> common::Process {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let config = work.join("distribution.yml");
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: redis\nredis:\n  addr: {redis}\nhttp:\n  addr: {addr}\n",
        root.display()
    );
    std::fs::write(&config, yaml).unwrap();
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&config);
    common::spawn(cmd, addr, work, "distribution")
}

#[test]
fn berth_and_distribution_share_one_redis() {
    if !common::have_tool("docker-registry") {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let b = start(&root, work.path(), &redis.addr());
    let dist = distribution(&root, work.path(), &redis.addr());
    let d_client = dist.client();

    // berth pushes; distribution serves it (its cache reads what berth wrote).
    let bytes = b"pushed through berth".to_vec();
    let bd = push(&b, "mixed/app", &bytes);
    let r = d_client
        .run(|c| c.get_blob("mixed/app", &bd, None))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == bytes);

    // distribution pushes; berth's first lookup is a hit on distribution's entry.
    let other = b"pushed through distribution".to_vec();
    let od = sha256(&other);
    let r = d_client
        .run(|c| c.push_blob("mixed/app", &od, other.clone()))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let hits = link_hits(&b);
    assert_eq!(status_of_get(&b, "mixed/app", &od, &other), 200);
    assert_eq!(link_hits(&b), hits + 1.0, "berth read distribution's entry");

    // distribution deletes what berth pushed (and berth had cached): berth answers 404.
    assert_eq!(
        b.client()
            .run(|c| c.head_blob("mixed/app", &bd))
            .unwrap()
            .status,
        200
    );
    let r = d_client.run(|c| c.delete_blob("mixed/app", &bd)).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        b.client()
            .run(|c| c.head_blob("mixed/app", &bd))
            .unwrap()
            .status,
        404,
        "berth still answers for a blob distribution deleted"
    );
    // And the other way round.
    let r = b.client().run(|c| c.delete_blob("mixed/app", &od)).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        d_client
            .run(|c| c.head_blob("mixed/app", &od))
            .unwrap()
            .status,
        404,
        "distribution still answers for a blob berth deleted"
    );
}

#[test]
fn offline_garbage_collection_clears_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let a = start(&root, work.path(), &redis.addr());
    // A layer no manifest references: garbage.
    let bytes = b"a layer nothing references".to_vec();
    let d = push(&a, "gc/app", &bytes);
    assert_eq!(
        a.client()
            .run(|c| c.head_blob("gc/app", &d))
            .unwrap()
            .status,
        200
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("garbage-collect").arg(&a.config);
    with_redis(&mut cmd, &redis.addr());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "garbage-collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !root
            .join(format!(
                "docker/registry/v2/blobs/sha256/{}/{}",
                &d[7..9],
                &d[7..]
            ))
            .exists()
    );
    // The running node's next lookup misses in Redis: 404, not the collected blob's size.
    assert_eq!(
        a.client()
            .run(|c| c.head_blob("gc/app", &d))
            .unwrap()
            .status,
        404
    );
}

#[test]
fn tags_and_manifests_changed_on_one_node_are_seen_on_the_other_at_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let a = start(&root, work.path(), &redis.addr());
    let b = start(&root, work.path(), &redis.addr());
    let tag_hits = |n: &Node| {
        n.metric(
            "berth_storage_cache_lookups_total",
            "cache=\"tag\",result=\"hit\"",
        )
    };

    let first = push_image(&a, "tags/app", "latest", b"layer one");
    assert_eq!(
        tag_target(&b, "tags/app", "latest").as_deref(),
        Some(&*first)
    );
    // Unchanged: B answers from its cache.
    let hits = tag_hits(&b);
    assert_eq!(
        tag_target(&b, "tags/app", "latest").as_deref(),
        Some(&*first)
    );
    assert_eq!(
        tag_hits(&b),
        hits + 1.0,
        "B's tag cache is used while nothing moves"
    );

    // Moved on A: B answers the new target on its very next request.
    let second = push_image(&a, "tags/app", "latest", b"layer two");
    assert_ne!(first, second);
    assert_eq!(
        tag_target(&b, "tags/app", "latest").as_deref(),
        Some(&*second)
    );

    // Moved on B, seen on A (which had cached its own push).
    let third = push_image(&b, "tags/app", "latest", b"layer three");
    assert_eq!(
        tag_target(&a, "tags/app", "latest").as_deref(),
        Some(&*third)
    );

    // The manifest deleted on A (which removes the tag): B answers 404 at once, by tag
    // and by digest (which it had just served).
    assert_eq!(tag_target(&b, "tags/app", &third).as_deref(), Some(&*third));
    let r = a
        .client()
        .run(|c| c.delete_manifest("tags/app", &third))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(tag_target(&b, "tags/app", "latest"), None);
    assert_eq!(tag_target(&b, "tags/app", &third), None);

    // An untagged manifest (no tag moves with it) deleted on A: 404 on B by digest.
    let untagged = push_image(&a, "tags/app", "", b"layer four");
    assert_eq!(
        tag_target(&b, "tags/app", &untagged).as_deref(),
        Some(&*untagged)
    );
    let r = a
        .client()
        .run(|c| c.delete_manifest("tags/app", &untagged))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(tag_target(&b, "tags/app", &untagged), None);
}

#[test]
fn redis_over_tls_with_a_client_certificate() {
    if !tls::have(&["openssl", "redis-server"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pki = tls::Pki::new(&work.path().join("pki"));
    let ca = pki.ca("ca");
    let (cert, key) = pki.server("ca", "redis", "redis");
    let (client_cert, client_key) = pki.client("ca", "berth");
    let Some(redis) = RedisServer::start_tls(&cert, &key, &ca) else {
        return;
    };
    let root = work.path().join("root");
    let yaml = format!(
        "redis:\n  tls:\n    certificate: {}\n    key: {}\n    rootcas: [{}]\n",
        client_cert.display(),
        client_key.display(),
        ca.display()
    );
    // Connected (up) only if the handshake, the server check and the client
    // certificate all worked.
    let a = start_with(&root, work.path(), &redis.addr(), &yaml);
    let b = start_with(&root, work.path(), &redis.addr(), &yaml);
    let bytes = b"pushed over a TLS redis".to_vec();
    let d = push(&a, "tls/app", &bytes);
    let hits = link_hits(&b);
    assert_eq!(status_of_get(&b, "tls/app", &d, &bytes), 200);
    assert_eq!(
        link_hits(&b),
        hits + 1.0,
        "B's lookup came from Redis over TLS"
    );
}
