//! Three berth nodes, A, B and C, over one moto bucket and one `redis-server`, with the
//! same `http.secret`: a fleet behind a load balancer acting as one registry. An image
//! pushed through A is pulled from B and C; one chunked upload goes to A, B and C in
//! turn; two PATCHes of one session at one offset on two nodes at once end with exactly
//! one accepted (the fleet's session lock); a node killed with SIGKILL while it holds
//! a session's lock, mid-PATCH, leaves it to another node once its lease runs out; a
//! tag moved on one node is seen on the others at once, and tag moves and manifest
//! deletes racing on two nodes end with storage and every node agreeing; and berth's
//! conformance suite passes through a balancer that sends each request to the next
//! node, so every write it reads back crosses nodes. (A node
//! SIGKILLed right after acknowledging a chunk, without Redis: `e2e_s3.rs`.)

#[path = "support/balancer.rs"]
mod balancer;
mod common;
#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/oci_layout.rs"]
mod oci_layout;
#[path = "../../redis/tests/support/server.rs"]
mod redis_server;

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use berth_client::{Body, Client, Method, OCTET_STREAM, Request, Response, Url};
use bytes::Bytes;
use fleet::{Node, OCI_MANIFEST, image_manifest, push, sha256};
use moto::Moto;
use oci_layout::*;
use redis_server::RedisServer;

/// The nodes' lock lease: short, so a dead holder's locks free within a test.
const LEASE: Duration = Duration::from_secs(2);

/// Three nodes and what they share; the nodes go first when dropped.
struct Fleet {
    nodes: Vec<Node>,
    moto: Moto,
    bucket: String,
    _redis: RedisServer,
    work: tempfile::TempDir,
}

/// Starts moto with `bucket`, Redis, and nodes A, B and C over them; `None` (the test
/// skips) when moto or Redis is not installed.
fn fleet(bucket: &str) -> Option<Fleet> {
    fleet_with(bucket, "")
}

/// Like [`fleet`], with `storage_extra` (indented two spaces) in each node's storage
/// section.
fn fleet_with(bucket: &str, storage_extra: &str) -> Option<Fleet> {
    let redis = RedisServer::start()?;
    let moto = Moto::start()?;
    moto.create_bucket(bucket);
    let work = tempfile::tempdir().unwrap();
    let nodes = ["a", "b", "c"]
        .iter()
        .map(|name| {
            node(
                &moto,
                bucket,
                work.path(),
                name,
                &redis.addr(),
                storage_extra,
            )
        })
        .collect();
    Some(Fleet {
        nodes,
        moto,
        bucket: bucket.to_owned(),
        _redis: redis,
        work,
    })
}

fn node(
    moto: &Moto,
    bucket: &str,
    work: &Path,
    name: &str,
    redis: &str,
    storage_extra: &str,
) -> Node {
    let debug = format!("127.0.0.1:{}", common::free_port());
    let extra = format!(
        "{}berth:\n  redis:\n    locklease: {}s\n",
        Node::debug_yaml(&debug),
        LEASE.as_secs()
    );
    let (config, addr) = moto.berth_config(bucket, work, name, storage_extra, &extra);
    Node::spawn(config, addr, debug, work, name, Some(redis))
}

/// PATCHes `bytes[from..to]` at `loc` (a Location any node gave) on `node`; answers the
/// next Location.
fn patch(node: &Node, loc: &Url, bytes: &[u8], from: usize, to: usize) -> Url {
    let at = common::rebase(node.client(), loc);
    let chunk = bytes[from..to].to_vec();
    let r = node
        .client()
        .run(|c| c.patch_chunk(&at, from as u64, chunk))
        .unwrap();
    assert_eq!(r.status, 202, "PATCH {from}..{to}: {}", r.text());
    assert_eq!(r.header("range"), Some(format!("0-{}", to - 1).as_str()));
    r.location().unwrap()
}

/// Starts a session on `node`; answers its Location.
fn start_upload(node: &Node, repo: &str) -> Url {
    let r = node.client().run(|c| c.start_upload(repo)).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.location().unwrap()
}

/// The closing PUT on `node`, then a GET of the blob from every node in `readers`.
fn commit_and_read(node: &Node, loc: &Url, repo: &str, blob: &[u8], readers: &[&Node]) {
    let digest = sha256(blob);
    let at = common::rebase(node.client(), loc);
    let r = node
        .client()
        .run(|c| c.finish_upload(&at, &digest, Vec::new()))
        .unwrap();
    assert_eq!(r.status, 201, "closing PUT: {}", r.text());
    for n in readers {
        let r = n.client().run(|c| c.get_blob(repo, &digest, None)).unwrap();
        assert_eq!(r.status, 200, "GET on {}: {}", n.process.addr, r.text());
        assert!(r.body == blob, "{} serves other bytes", n.process.addr);
    }
}

/// A PATCH whose body the test feeds piece by piece, sent by a runtime of its own.
struct SlowPatch {
    runtime: tokio::runtime::Runtime,
    feed: Option<tokio::sync::mpsc::Sender<Bytes>>,
    answer: tokio::task::JoinHandle<Result<Response, berth_client::Error>>,
}

impl SlowPatch {
    /// Sends the head of a PATCH of `len` bytes at `start` to `node`.
    fn start(node: &Node, loc: &Url, start: u64, len: u64) -> SlowPatch {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (feed, pieces) = tokio::sync::mpsc::channel::<Bytes>(1);
        let body = futures::stream::unfold(pieces, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(b), rx))
        });
        let client = Client::new(&node.process.url()).unwrap();
        let request = Request::new(Method::PATCH, common::rebase(node.client(), loc))
            .header("Content-Type", OCTET_STREAM)
            .header("Content-Range", format!("{start}-{}", start + len - 1))
            .body(Body::stream(body, Some(len)));
        let answer = runtime.spawn(async move { client.send(request).await });
        SlowPatch {
            runtime,
            feed: Some(feed),
            answer,
        }
    }

    fn send(&self, bytes: &[u8]) {
        let feed = self.feed.as_ref().expect("body still open");
        feed.blocking_send(Bytes::copy_from_slice(bytes)).unwrap();
    }

    /// The answer, once the body has ended.
    fn finish(mut self) -> Response {
        drop(self.feed.take());
        self.runtime.block_on(self.answer).unwrap().unwrap()
    }
}

#[test]
fn an_image_pushed_through_a_is_pulled_from_b_and_c() {
    if !common::have_tool("skopeo") {
        return;
    }
    let Some(f) = fleet("images") else {
        return;
    };
    let (a, b) = (&f.nodes[0], &f.nodes[1]);
    let work = f.work.path();
    // A layer over a part (a multipart upload), and a small one.
    let img = image(&mut Rng::new("multinode"), "amd64", &[(6 << 20) + 17, 3000]);
    let src = work.join("src");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let pushed = skopeo_copy(
        &[],
        &layout_str(&src, "v1"),
        &format!("docker://{}/team/app:v1", a.process.host()),
        work,
    );
    assert_eq!(pushed, img.manifest.digest);
    for n in &f.nodes[1..] {
        let raw = skopeo_raw(&format!("docker://{}/team/app:v1", n.process.host()));
        assert_eq!(
            sha256_digest(&raw),
            img.manifest.digest,
            "{}",
            n.process.addr
        );
    }
    let out = work.join("out");
    let pulled = skopeo_copy(
        &[],
        &format!("docker://{}/team/app:v1", b.process.host()),
        &layout_str(&out, "v1"),
        work,
    );
    assert_eq!(pulled, img.manifest.digest);
    assert_layout_has_image(&out, "v1", &img);
}

#[test]
fn one_upload_patched_on_a_b_and_c_is_committed_on_a() {
    let Some(f) = fleet("chunks") else {
        return;
    };
    let nodes = &f.nodes;
    let blob = Rng::new("chunks").bytes((16 << 20) + 9);
    // Chunk ends: under 5 MiB, across a part, five MiB exactly, tiny, the rest; the
    // chunks go to A, B, C, A, B, each following the last answer's Location (its
    // `_state` token signed by another node).
    let cuts = [
        0,
        3 << 20,
        (9 << 20) + 1,
        (14 << 20) + 1,
        (14 << 20) + 101,
        blob.len(),
    ];
    let mut loc = start_upload(&nodes[0], "team/chunked");
    for (i, w) in cuts.windows(2).enumerate() {
        loc = patch(&nodes[i % 3], &loc, &blob, w[0], w[1]);
        // Every node tells where the session stands.
        for n in nodes {
            let at = common::rebase(n.client(), &loc);
            let r = n.client().run(|c| c.upload_status(&at)).unwrap();
            assert_eq!(r.status, 204, "status on {}: {}", n.process.addr, r.text());
            assert_eq!(r.header("range"), Some(format!("0-{}", w[1] - 1).as_str()));
        }
    }
    let readers: Vec<&Node> = nodes.iter().collect();
    commit_and_read(&nodes[0], &loc, "team/chunked", &blob, &readers);
}

/// B's PATCH arrives while A's, for the same session and offset, is streaming: B waits
/// for the session's lock, then finds the offset moved on and answers 416.
#[test]
fn two_patches_at_one_offset_on_two_nodes_one_is_accepted() {
    let Some(f) = fleet("race") else {
        return;
    };
    let (a, b, c) = (&f.nodes[0], &f.nodes[1], &f.nodes[2]);
    let mut rng = Rng::new("race");
    let (first, ours, theirs) = (
        rng.bytes(1 << 20),
        rng.bytes((6 << 20) + 3),
        rng.bytes(5 << 20),
    );
    let start = first.len();
    let end = start + ours.len();
    let loc = start_upload(c, "team/race");
    let loc = patch(c, &loc, &first, 0, start);

    let slow = SlowPatch::start(a, &loc, start as u64, ours.len() as u64);
    slow.send(&ours[..3 << 20]);
    a.wait_metric("berth_redis_locks_held", "", 1.0);
    let waits = || b.metric("berth_redis_lock_waits_total", "");
    let at = common::rebase(b.client(), &loc);
    let (accepted, refused) = std::thread::scope(|s| {
        let other = s.spawn(|| {
            b.client()
                .run(|c| c.patch_chunk(&at, start as u64, theirs.clone()))
                .unwrap()
        });
        // B's PATCH is waiting for A's lease (or, were there no lock, done already).
        let deadline = Instant::now() + Duration::from_secs(10);
        while waits() < 1.0 && !other.is_finished() {
            assert!(
                Instant::now() < deadline,
                "B's PATCH neither waits nor ends"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        slow.send(&ours[3 << 20..]);
        (slow.finish(), other.join().unwrap())
    });
    let range = format!("0-{}", end - 1);
    assert_eq!(
        (accepted.status, refused.status),
        (202, 416),
        "A: {} / B: {}",
        accepted.text(),
        refused.text()
    );
    assert_eq!(accepted.header("range"), Some(range.as_str()));
    assert_eq!(
        refused.header("range"),
        Some(range.as_str()),
        "B's answer says where the session stands"
    );
    assert_eq!(waits(), 1.0, "B waited for A's lock");
    let blob = [first, ours].concat();
    commit_and_read(
        c,
        &accepted.location().unwrap(),
        "team/race",
        &blob,
        &[a, b, c],
    );
}

/// A holds a session's lock, mid-PATCH (a part of other bytes already sent to the
/// bucket), when it is killed; B waits for its lease to run out, then continues from
/// the end of the last chunk A acknowledged.
#[test]
fn a_lock_holder_killed_mid_patch_leaves_the_session_to_another_node() {
    let Some(mut f) = fleet("killed") else {
        return;
    };
    let blob = Rng::new("killed").bytes((12 << 20) + 100);
    let first_end = 6 << 20;
    let second_end = 12 << 20;
    let loc = start_upload(&f.nodes[0], "team/killed");
    // Over a part: the session is a multipart upload whose next part A is about to send.
    let loc = patch(&f.nodes[0], &loc, &blob, 0, first_end);

    let garbage = Rng::new("garbage").bytes((11 << 20) / 2);
    let slow = SlowPatch::start(
        &f.nodes[0],
        &loc,
        first_end as u64,
        (second_end - first_end) as u64,
    );
    slow.send(&garbage);
    f.nodes[0].wait_metric("berth_redis_locks_held", "", 1.0);
    // A sends its next part (the tail and the first garbage bytes) before it dies.
    let id = loc.path().rsplit('/').next().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.uploaded_parts("team/killed", &id) < 2 {
        assert!(Instant::now() < deadline, "A never sent its next part");
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = f.nodes.remove(0);
    let mut process = a.process;
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    drop(slow);

    let (b, c) = (&f.nodes[0], &f.nodes[1]);
    let started = Instant::now();
    let loc = patch(b, &loc, &blob, first_end, second_end);
    let took = started.elapsed();
    assert_eq!(
        b.metric("berth_redis_lock_waits_total", ""),
        1.0,
        "B waited for the dead node's lease"
    );
    assert!(
        took >= Duration::from_millis(400) && took < LEASE * berth_redis::WAIT_LEASES,
        "B's PATCH took {took:?} with a lease of {LEASE:?}"
    );
    let loc = patch(c, &loc, &blob, second_end, blob.len());
    commit_and_read(c, &loc, "team/killed", &blob, &[b, c]);
}

/// Pushes a one-layer image by digest through `node`; answers its digest and body, for
/// tagging later.
fn untagged(node: &Node, repo: &str, layer: &[u8]) -> (String, String) {
    let config = b"{}".to_vec();
    let (cd, ld) = (push(node, repo, &config), push(node, repo, layer));
    let body = image_manifest((&cd, config.len()), (&ld, layer.len()));
    let digest = sha256(body.as_bytes());
    put(node, repo, &digest, &body);
    (digest, body)
}

fn put(node: &Node, repo: &str, reference: &str, body: &str) {
    let r = node
        .client()
        .run(|c| c.put_manifest(repo, reference, OCI_MANIFEST, body.to_owned(), &[]))
        .unwrap();
    assert_eq!(r.status, 201, "PUT {repo}:{reference}: {}", r.text());
}

/// What a HEAD of `repo:reference` on `node` answers: the digest, or `None` for 404.
fn head(node: &Node, repo: &str, reference: &str) -> Option<String> {
    let r = node
        .client()
        .run(|c| c.head_manifest(repo, reference, OCI_MANIFEST))
        .unwrap();
    match r.status {
        200 => Some(r.header("docker-content-digest").unwrap().to_owned()),
        404 => None,
        other => panic!("HEAD {repo}:{reference}: {other}"),
    }
}

impl Fleet {
    /// Parts uploaded so far to the multipart upload of a session's pending data
    /// object (`ListParts`), whether the pending object lists them or not.
    fn uploaded_parts(&self, repo: &str, id: &str) -> usize {
        let key = format!("registry/docker/registry/v2/repositories/{repo}/_uploads/{id}/data");
        let (status, body) = self.moto.object(&self.bucket, &key);
        assert_eq!(status, 200, "{key}");
        let line = body.split(|b| *b == b'\n').next().unwrap_or_default();
        let Ok(state) = serde_json::from_slice::<serde_json::Value>(line) else {
            return 0;
        };
        let upload = state["upload_id"].as_str().expect("a pending object");
        let upload = upload
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let (status, listing) = self
            .moto
            .object(&self.bucket, &format!("{key}?uploadId={upload}"));
        assert_eq!(status, 200, "ListParts");
        String::from_utf8_lossy(&listing)
            .matches("<PartNumber>")
            .count()
    }

    /// The digest a tag's `current` link names in the bucket, if any.
    fn stored_tag(&self, repo: &str, tag: &str) -> Option<String> {
        let key = format!(
            "registry/docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}/current/link"
        );
        match self.moto.object(&self.bucket, &key) {
            (200, body) => Some(String::from_utf8(body).unwrap()),
            (404, _) => None,
            (status, body) => panic!("{key}: {status} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Checks that the bucket and every node say `repo:tag` is `want`.
    fn assert_tag(&self, repo: &str, tag: &str, want: &str, when: &str) {
        assert_eq!(self.stored_tag(repo, tag).as_deref(), Some(want), "{when}");
        for n in &self.nodes {
            assert_eq!(
                head(n, repo, tag).as_deref(),
                Some(want),
                "{when}: node {}",
                n.process.addr
            );
        }
    }
}

/// Rounds of racing changes to one tag.
const ROUNDS: u32 = 16;
/// How much later than in the round before the racing move starts: across the rounds it
/// lands at every point of the delete's check-then-remove of the tag (a few ms on
/// moto), which without the fleet's tag lock removes the tag just moved (seen to fail
/// so when the lock was left out).
const MOVE_STEP: Duration = Duration::from_millis(3);

#[test]
fn tags_moved_on_any_node_are_agreed_on_by_every_node() {
    let Some(f) = fleet("tags") else {
        return;
    };
    let (a, b) = (&f.nodes[0], &f.nodes[1]);
    let repo = "team/tags";
    // Moved on A: B's next HEAD answers the new target.
    let (first, body) = untagged(a, repo, b"one");
    put(a, repo, "latest", &body);
    assert_eq!(head(b, repo, "latest").as_deref(), Some(first.as_str()));
    let (second, body) = untagged(a, repo, b"two");
    put(a, repo, "latest", &body);
    assert_eq!(head(b, repo, "latest").as_deref(), Some(second.as_str()));

    let barrier = Barrier::new(2);
    for round in 0..ROUNDS {
        // Moved at the same moment from A and from B: one of the two wins, everywhere.
        let (ma, body_a) = untagged(a, repo, format!("a{round}").as_bytes());
        let (mb, body_b) = untagged(b, repo, format!("b{round}").as_bytes());
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                put(a, repo, "latest", &body_a);
            });
            s.spawn(|| {
                barrier.wait();
                put(b, repo, "latest", &body_b);
            });
        });
        let stored = f.stored_tag(repo, "latest").expect("tag kept");
        assert!(stored == ma || stored == mb, "round {round}: {stored}");
        f.assert_tag(repo, "latest", &stored, &format!("moves, round {round}"));

        // The manifest `latest` names deleted on A while B moves `latest` on: whichever
        // goes first, the tag ends naming B's manifest (a delete removes only a tag
        // that still names what it deletes).
        let (mn, body_n) = untagged(b, repo, format!("n{round}").as_bytes());
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                let r = a
                    .client()
                    .run(|c| c.delete_manifest(repo, &stored))
                    .unwrap();
                assert_eq!(r.status, 202, "DELETE {stored}: {}", r.text());
            });
            s.spawn(|| {
                barrier.wait();
                std::thread::sleep(MOVE_STEP * round);
                put(b, repo, "latest", &body_n);
            });
        });
        f.assert_tag(
            repo,
            "latest",
            &mn,
            &format!("delete and move, round {round}"),
        );
        for n in &f.nodes {
            assert_eq!(
                head(n, repo, &stored),
                None,
                "deleted manifest still served"
            );
        }
    }
}

/// berth's conformance suite through nginx sending each request to the next node of the
/// fleet: every upload session, manifest, tag, listing and delete the suite checks is
/// read back from another node than the one that wrote it, as a client behind a load
/// balancer sees the fleet. Blob GETs are served by the nodes (a bucket answering a
/// redirected GET sends no `Docker-Content-Digest`, which the suite checks).
#[test]
fn the_conformance_suite_passes_through_a_round_robin_balancer() {
    let Some(f) = fleet_with("balanced", "  redirect:\n    disable: true\n") else {
        return;
    };
    let nodes: Vec<String> = f.nodes.iter().map(|n| n.process.addr.clone()).collect();
    let Some(balancer) = balancer::Balancer::start(&nodes, f.work.path()) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcomes = runtime.block_on(berth_conformance::run(&berth_conformance::Options {
        base_url: balancer.process.url(),
        namespace: "balanced".into(),
        delete_enabled: true,
    }));
    let failed = berth_conformance::failures(&outcomes);
    assert!(outcomes.len() > 40, "only {} checks ran", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} of {} checks failed through the balancer:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
    let answered = balancer.answered_by();
    let total: usize = answered.values().sum();
    for node in &nodes {
        let n = answered.get(node).copied().unwrap_or(0);
        assert!(
            n * 4 >= total,
            "node {node} answered {n} of {total} requests: {answered:?}"
        );
    }
}
