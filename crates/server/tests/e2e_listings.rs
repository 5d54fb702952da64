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
#[path = "support/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../../redis/tests/support/server.rs"]
mod redis_server;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_client::BlockingClient;
use moto::Moto;
use redis_server::RedisServer;
use sha2::{Digest as _, Sha256};

/// Whether the node whose debug server is at `debug` has its catalog listing built
/// (the `berth_catalog_listing_built` gauge).
fn built(debug: &str) -> bool {
    let r = common::client(debug).run(|c| c.get("/metrics")).unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("berth_catalog_listing_built "))
        .expect("the gauge is exported")
        .to_owned();
    value == "1"
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
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

fn push_blob(c: &BlockingClient, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = c.run(|c| c.push_blob(repo, &d, bytes.to_vec())).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes a one-layer image to `repo:tag` through `c`; answers its digest.
fn push_image(c: &BlockingClient, repo: &str, tag: &str) -> String {
    let config = b"{}".to_vec();
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    let (cd, ld) = (push_blob(c, repo, &config), push_blob(c, repo, &layer));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    })
    .to_string();
    let r = c
        .run(|c| c.put_manifest(repo, tag, OCI_MANIFEST, manifest.clone(), &[]))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    sha256(manifest.as_bytes())
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
    let node = common::berth(
        &root,
        work.path(),
        &format!("  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n"),
    );
    let c = node.client();
    // The first page answers at once, from storage, while the build walks.
    let started = Instant::now();
    let first = page_after(c, 100, "");
    let took = started.elapsed();
    assert!(
        !built(&debug),
        "the build ended before the first page: make the tree larger"
    );
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
    push_blob(c, "a/a-during-build", b"pushed while the listing is built");
    assert!(!built(&debug), "the build ended before the push");
    want = catalog_sorted([want, vec!["a/a-during-build".to_owned()]].concat());
    assert_eq!(catalog(c, 1000), want);

    let deadline = Instant::now() + Duration::from_secs(120);
    while !built(&debug) {
        assert!(Instant::now() < deadline, "the build never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    push_blob(c, "org05/after-build", b"pushed once the listing is built");
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
fn s3_node(moto: &Moto, bucket: &str, redis: &str, work: &Path, name: &str) -> common::Process {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let config = work.join(format!("{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: info}}\n{}  cache:\n    blobdescriptor: redis\nredis:\n  addr: {redis}\n  readtimeout: 500ms\n  writetimeout: 500ms\nhttp:\n  addr: {addr}\n  secret: listings-fleet\n",
            moto.storage_yaml(bucket)
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    common::spawn(cmd, addr, work, name)
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

/// Writes `key` into `bucket` behind berth's back (moto reads the account from the
/// signature's credential and checks nothing else).
fn put_object(moto: &Moto, bucket: &str, key: &str, body: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&moto.addr).unwrap();
    write!(
        s,
        "PUT /{bucket}/{key} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n{body}",
        moto.addr,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "PUT {key}: {answer}");
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
    push_image(ac, "team/app", "v1");
    push_image(ac, "a/b", "x");
    push_image(bc, "a-b", "y");
    push_image(bc, "team/app2", "z");
    push_image(bc, "a", "w");
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
    push_image(ac, "team/app/sub", "s");
    let want = catalog_sorted([want, vec!["team/app/sub".to_owned()]].concat());
    for node in [ac, bc, cc] {
        assert_eq!(catalog(node, 1), want);
    }
    assert!(complete_in_redis(&redis, "berth::catalog"));

    // Tags set on A, listed on B; one deleted on B, gone on A.
    push_image(ac, "team/app", "v2");
    push_image(ac, "team/app", "v3");
    assert_eq!(tags(bc, "team/app", 1), ["v1", "v2", "v3"]);
    assert!(complete_in_redis(
        &redis,
        "berth::repository::team/app::tags"
    ));
    let r = bc.run(|c| c.delete_manifest("team/app", "v2")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(tags(ac, "team/app", 1), ["v1", "v3"]);
    assert_eq!(tags(cc, "team/app", 2), ["v1", "v3"]);
    push_image(cc, "team/app", "v0");
    assert_eq!(tags(ac, "team/app", 100), ["v0", "v1", "v3"]);

    // A repository and a tag written straight into the bucket (as another registry
    // would) are not listed while the indexes are complete: pages come from Redis.
    let layer = sha256(b"written behind berth's back");
    let repos = "registry/docker/registry/v2/repositories";
    put_object(
        &moto,
        "fleet",
        &format!("{repos}/behind/_layers/sha256/{}/link", &layer[7..]),
        &layer,
    );
    put_object(
        &moto,
        "fleet",
        &format!("{repos}/team/app/_manifests/tags/v9/current/link"),
        &layer,
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
    push_image(bc, "during/outage", "o");
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
