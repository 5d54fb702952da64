//! End-to-end: webhook notifications of the real `berth` binary, received by a real HTTP
//! server on loopback. The events are compared field by field with the ones CNCF
//! distribution 2.8.2 (`docker-registry`) sends for the same requests; the durable queue
//! is shown to lose nothing while the receiver is down, across a `kill -9`, and to drop
//! (and count) its oldest events past its limit.

#[path = "support/auth.rs"]
mod auth;
mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_client::{BlockingClient, ByteRange, Method, Request};
use receiver::Receiver;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The `notifications` block for an endpoint named `rec` posting to `url`.
fn notifications(url: &str, more: &str) -> String {
    format!(
        "notifications:\n  events: {{includereferences: true}}\n  endpoints:\n    - name: rec\n      url: {url}\n      headers: {{X-Test: [yes]}}\n      timeout: 2s\n{more}"
    )
}

/// berth's own queue settings (the queue in `work`).
fn queue(work: &Path, more: &str) -> String {
    format!(
        "berth:\n  notifications:\n    queue: {{directory: {}, flushinterval: 100ms{more}}}\n",
        work.join("queue").display()
    )
}

const LAYER: &[u8] = b"layer-one";
const EXTRA: &[u8] = b"deleted-later";
const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn manifest() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": CONFIG.len(), "digest": digest(CONFIG)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": LAYER.len(), "digest": digest(LAYER)}]
    }))
    .unwrap()
}

fn status(c: &BlockingClient, req: Request) -> u16 {
    c.run(|c| c.send(req)).expect("request").status
}

/// The same requests against any registry; answers how many events distribution sends
/// for them.
fn exercise(c: &BlockingClient) -> usize {
    let (l, cfg, extra, m) = (digest(LAYER), digest(CONFIG), digest(EXTRA), manifest());
    let md = digest(&m);
    c.run(|c| c.push_blob("a", &l, LAYER)).expect("push layer");
    c.run(|c| c.push_blob_chunked("a", &cfg, CONFIG, 16))
        .expect("push config");
    let url = |path: &str| c.client().url(path).unwrap();
    let put = |reference: &str| {
        Request::new(Method::PUT, url(&format!("/v2/a/manifests/{reference}")))
            .header("Content-Type", DOCKER_V2)
            .body(berth_client::Body::bytes(m.clone()))
    };
    assert_eq!(status(c, put("v1")), 201);
    assert_eq!(status(c, put(&md)), 201);
    for reference in ["v1", md.as_str()] {
        for method in [Method::HEAD, Method::GET] {
            let req = Request::new(method, url(&format!("/v2/a/manifests/{reference}")))
                .header("Accept", DOCKER_V2);
            assert_eq!(status(c, req), 200);
        }
    }
    // A 304 is not a pull for manifests ...
    let req = Request::new(Method::GET, url(&format!("/v2/a/manifests/{md}")))
        .header("If-None-Match", format!("\"{md}\""));
    assert_eq!(status(c, req), 304);
    // ... but is for blobs, as are HEAD and ranges.
    assert_eq!(c.run(|c| c.head_blob("a", &l)).unwrap().status, 200);
    let req = Request::new(Method::GET, url(&format!("/v2/a/blobs/{l}")))
        .header("X-Request-Id", "notify-e2e-get");
    assert_eq!(status(c, req), 200);
    let range = Some(ByteRange::Span(0, 3));
    assert_eq!(c.run(|c| c.get_blob("a", &l, range)).unwrap().status, 206);
    let req = Request::new(Method::GET, url(&format!("/v2/a/blobs/{l}")))
        .header("If-None-Match", format!("\"{l}\""));
    assert_eq!(status(c, req), 304);
    assert_eq!(
        c.run(|c| c.mount_blob("b", &l, Some("a"))).unwrap().status,
        201
    );
    c.run(|c| c.push_blob("a", &extra, EXTRA)).expect("push");
    assert_eq!(c.run(|c| c.delete_blob("a", &extra)).unwrap().status, 202);
    // A manifest delete is followed by a tag delete per tag it took with it.
    assert_eq!(c.run(|c| c.delete_manifest("a", &md)).unwrap().status, 202);
    17
}

/// An event without what differs between two registries and runs: ids, times, client
/// ports, the registry's own address.
fn normalized(mut e: Value, host: &str) -> Value {
    let o = e.as_object_mut().expect("event object");
    for k in ["id", "timestamp", "source"] {
        assert!(o.remove(k).is_some(), "{k} missing");
    }
    let r = o["request"].as_object_mut().expect("request");
    assert!(r.remove("id").is_some());
    let addr = r.remove("addr").expect("request.addr");
    assert!(addr.as_str().unwrap().starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(r.remove("host"), Some(Value::from(host)));
    if let Some(url) = o["target"].get_mut("url") {
        *url = Value::from(url.as_str().unwrap().replace(host, "HOST"));
    }
    e
}

fn await_quiet(r: &Receiver, n: usize) -> Vec<Value> {
    let events = r.wait_for(n, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let again = r.events();
    assert_eq!(
        again.len(),
        events.len(),
        "more events than expected: {again:#?}"
    );
    again
}

#[test]
fn events_match_distribution_field_by_field() {
    if !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (dist_root, berth_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (dist_rec, berth_rec) = (Receiver::start(), Receiver::start());

    // The notifications section follows the http section the helper ends with.
    let dist = common::distribution_with(
        dist_root.path(),
        work.path(),
        &notifications(&dist_rec.url(), ""),
    );
    let berth = common::berth(
        berth_root.path(),
        work.path(),
        &format!(
            "{}{}",
            notifications(&berth_rec.url(), ""),
            queue(work.path(), "")
        ),
    );

    let n = exercise(dist.client());
    assert_eq!(exercise(berth.client()), n);
    let theirs = await_quiet(&dist_rec, n);
    let ours = await_quiet(&berth_rec, n);

    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            normalized(o.clone(), berth.host()),
            normalized(t.clone(), dist.host()),
            "event {i} differs:\nberth: {o:#}\ndistribution: {t:#}"
        );
        // What was normalized away is still there, and shaped alike.
        assert_eq!(
            o["source"]["addr"].as_str().unwrap().rsplit(':').next(),
            berth.host().rsplit(':').next()
        );
        assert!(!o["source"]["instanceID"].as_str().unwrap().is_empty());
        assert!(o["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(o["id"].as_str().unwrap().len(), 36);
    }
    // berth's request ids are the ones it answered with (a client's, when sane).
    assert!(
        ours.iter().any(|e| e["request"]["id"] == "notify-e2e-get"),
        "{ours:#?}"
    );
    for posts in [berth_rec.posts(), dist_rec.posts()] {
        for p in posts {
            assert_eq!(
                p.headers["content-type"],
                "application/vnd.docker.distribution.events.v1+json"
            );
            assert_eq!(p.headers["x-test"], "yes");
        }
    }

    // A tag delete (2.8.2 refuses it with 400) names only the repository and the tag.
    let c = berth.client();
    let m = manifest();
    let req = Request::new(Method::PUT, c.client().url("/v2/a/manifests/v2").unwrap())
        .header("Content-Type", DOCKER_V2)
        .body(berth_client::Body::bytes(m));
    assert_eq!(status(c, req), 201);
    assert_eq!(c.run(|c| c.delete_manifest("a", "v2")).unwrap().status, 202);
    let events = berth_rec.wait_for(n + 2, Duration::from_secs(10));
    assert_eq!(events[n]["action"], "push");
    assert_eq!(events[n]["target"]["tag"], "v2");
    assert_eq!(events[n + 1]["action"], "delete");
    assert_eq!(
        events[n + 1]["target"],
        json!({"repository": "a", "tag": "v2"})
    );
}

/// Pushes `count` small distinct blobs to `repo`; answers their digests in order.
fn push_blobs(c: &BlockingClient, repo: &str, label: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let data = format!("{label}-{i}").into_bytes();
            let d = digest(&data);
            c.run(|c| c.post_blob(repo, &d, data))
                .expect("push")
                .expect_status(201)
                .expect("201");
            d
        })
        .collect()
}

fn pushed_digests(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["action"] == "push")
        .map(|e| e["target"]["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Digests in order of first delivery (delivery is at least once).
fn first_seen(events: &[Value]) -> Vec<String> {
    let mut seen = Vec::new();
    for d in pushed_digests(events) {
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen
}

fn scrape(debug: &str) -> String {
    common::client(debug)
        .run(|c| c.get("/metrics"))
        .expect("scrape")
        .text()
}

/// The value of the sample starting with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

fn debug_block(port: u16) -> String {
    format!("  debug: {{addr: 127.0.0.1:{port}, prometheus: {{enabled: true}}}}\n")
}

#[test]
fn a_receiver_that_is_down_then_refuses_then_accepts_gets_everything_in_order() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rec = Receiver::start();
    rec.stop();
    let dport = common::free_port();
    let berth = common::berth(
        root.path(),
        work.path(),
        &format!(
            "{}{}{}",
            debug_block(dport),
            notifications(&rec.url(), "      threshold: 2\n      backoff: 100ms\n"),
            queue(work.path(), "")
        ),
    );
    let mut pushed = push_blobs(berth.client(), "team/app", "down", 20);
    std::thread::sleep(Duration::from_millis(300));
    let debug = format!("127.0.0.1:{dport}");
    let text = scrape(&debug);
    assert_eq!(
        sample(&text, "registry_notifications_pending{endpoint=\"rec\"}"),
        Some(20.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "registry_notifications_events_total{type=\"Errors\",endpoint=\"rec\"}"
        )
        .unwrap()
            > 0.0
    );
    // Up, but refusing: retried.
    rec.answer(500);
    rec.resume();
    pushed.extend(push_blobs(berth.client(), "team/app", "refused", 5));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rec.posts().len() < 2 {
        assert!(Instant::now() < deadline, "no retries");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rec.events().is_empty());
    rec.answer(200);
    let events = rec.wait_for(25, Duration::from_secs(20));
    assert_eq!(first_seen(&events), pushed, "order or content differs");
    let text = scrape(&debug);
    assert!(
        sample(&text, "registry_notifications_status_total{code=\"500 Internal Server Error\",endpoint=\"rec\"}").unwrap() > 0.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "registry_notifications_pending{endpoint=\"rec\"}"),
        Some(0.0),
        "{text}"
    );
}

#[test]
fn events_queued_when_berth_is_killed_are_delivered_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rec = Receiver::start();
    rec.stop();
    let extra = format!(
        "{}{}",
        notifications(&rec.url(), "      threshold: 1\n      backoff: 100ms\n"),
        queue(work.path(), "")
    );
    let mut berth = common::berth(root.path(), work.path(), &extra);
    // Requests in parallel, so that their events share writes.
    let mut pushed: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = berth.client();
                s.spawn(move || push_blobs(c, &format!("kill/{t}"), &format!("k{t}"), 25))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    // SIGKILL: no shutdown of any kind.
    berth.child.kill().unwrap();
    berth.child.wait().unwrap();
    drop(berth);
    let berth = common::berth(root.path(), work.path(), &extra);
    pushed.extend(push_blobs(berth.client(), "kill/after", "after", 3));
    rec.resume();
    let events = rec.wait_for(pushed.len(), Duration::from_secs(30));
    let mut got = first_seen(&events);
    assert_eq!(got.len(), pushed.len());
    // Per repository, order is the order of acknowledgement.
    for t in 0..4 {
        let repo = format!("kill/{t}");
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["target"]["repository"] == repo.as_str())
            .collect();
        let digests: Vec<String> = mine
            .iter()
            .map(|e| e["target"]["digest"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = (0..25)
            .map(|i| digest(format!("k{t}-{i}").as_bytes()))
            .collect();
        assert_eq!(digests, want, "{repo}");
    }
    got.sort();
    pushed.sort();
    assert_eq!(got, pushed);
}

#[test]
fn past_its_limit_the_queue_drops_the_oldest_and_counts_them() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rec = Receiver::start();
    rec.stop();
    let dport = common::free_port();
    let berth = common::berth(
        root.path(),
        work.path(),
        &format!(
            "{}{}{}",
            debug_block(dport),
            notifications(&rec.url(), "      threshold: 1\n      backoff: 100ms\n"),
            queue(work.path(), ", maxevents: 5")
        ),
    );
    let pushed = push_blobs(berth.client(), "limited", "l", 12);
    let debug = format!("127.0.0.1:{dport}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&debug);
        if sample(&text, "berth_notifications_dropped_total{endpoint=\"rec\"}") == Some(7.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    rec.resume();
    let events = await_quiet(&rec, 5);
    assert_eq!(first_seen(&events), pushed[7..]);
    assert!(berth.log_text().contains("dropped its oldest events"));
}

#[test]
fn the_actor_is_the_authenticated_user() {
    if !common::have_tool("htpasswd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let rec = Receiver::start();
    let users = auth::htpasswd_file(work.path(), &[("alice", "wonderland")]);
    let berth = common::berth(
        root.path(),
        work.path(),
        &format!(
            "auth:\n  htpasswd: {{realm: test, path: {}}}\n{}{}",
            users.display(),
            notifications(&rec.url(), ""),
            queue(work.path(), "")
        ),
    );
    let alice = common::client_as(berth.host(), &auth::basic("alice", "wonderland"));
    let pushed = push_blobs(&alice, "team/app", "a", 1);
    let events = rec.wait_for(1, Duration::from_secs(10));
    assert_eq!(events[0]["actor"], json!({"name": "alice"}));
    assert_eq!(events[0]["target"]["digest"], pushed[0].as_str());
    // A refused request does nothing, so it says nothing.
    let anonymous = common::client(berth.host());
    let data = b"nope".to_vec();
    let d = digest(&data);
    assert_eq!(
        anonymous
            .run(|c| c.post_blob("team/app", &d, data))
            .unwrap()
            .status,
        401
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rec.events().len(), 1);
}

/// skopeo pushes blobs in parallel, so two runs order their events differently: compare
/// them as sorted lists.
fn sorted(events: Vec<Value>, host: &str) -> Vec<String> {
    let mut out: Vec<String> = events
        .into_iter()
        .map(|e| normalized(e, host).to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn skopeo_push_and_pull_of_a_multi_arch_image_notify_as_distribution_does() {
    if !common::have_tool("docker-registry") || !common::have_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (dist_root, berth_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (dist_rec, berth_rec) = (Receiver::start(), Receiver::start());
    // The notifications section follows the http section the helper ends with.
    let dist = common::distribution_with(
        dist_root.path(),
        work.path(),
        &notifications(&dist_rec.url(), ""),
    );
    let berth = common::berth(
        berth_root.path(),
        work.path(),
        &format!(
            "{}{}",
            notifications(&berth_rec.url(), ""),
            queue(work.path(), "")
        ),
    );
    let mut rng = oci_layout::Rng::new("notify");
    let ma = oci_layout::multi_arch(&mut rng, &["amd64", "arm64"]);
    let src = work.path().join("src");
    oci_layout::LayoutWriter::new(&src).add_multi_arch(&ma, "v1");
    let source = oci_layout::layout_str(&src, "v1");
    let mut counts = Vec::new();
    for (host, rec) in [(dist.host(), &dist_rec), (berth.host(), &berth_rec)] {
        let dest = format!("docker://{host}/team/multi:v1");
        oci_layout::skopeo_copy(&["--all"], &source, &dest, work.path());
        let back = work.path().join(format!("back-{}", host.replace(':', "-")));
        oci_layout::skopeo_copy(
            &["--all"],
            &dest,
            &format!("oci:{}:v1", back.display()),
            work.path(),
        );
        // Quiet for a moment: everything sent.
        let mut seen = 0;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let n = rec.events().len();
            if n == seen && n > 0 {
                break;
            }
            seen = n;
        }
        counts.push(seen);
    }
    let theirs = sorted(dist_rec.events(), dist.host());
    let ours = sorted(berth_rec.events(), berth.host());
    assert_eq!(ours, theirs, "berth's events differ from distribution's");
    // The index's push lists its children (without platforms, as 2.8.2).
    assert!(
        berth_rec.events().iter().any(|e| e["action"] == "push"
            && e["target"]["tag"] == "v1"
            && e["target"]["references"].as_array().map(Vec::len) == Some(2)),
        "{:#?}",
        berth_rec.events()
    );
}

#[test]
fn https_endpoints_are_checked_against_ssl_cert_file() {
    if !common::have_tool("openssl") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (_pki, ca, cert, key) = tls::server_pki(work.path());
    let rec = Receiver::start_tls(&cert, &key);
    assert!(rec.url().starts_with("https://"));
    let (config, addr) = common::berth_config(
        root.path(),
        work.path(),
        "",
        &format!(
            "{}{}",
            notifications(&rec.url(), ""),
            queue(work.path(), "")
        ),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config).env("SSL_CERT_FILE", &ca);
    let berth = common::spawn(cmd, addr, work.path(), "berth");
    let pushed = push_blobs(berth.client(), "tls/app", "t", 3);
    let events = rec.wait_for(3, Duration::from_secs(10));
    assert_eq!(first_seen(&events), pushed);
}
