//! The pull-through cache on the real binary: distribution 2.8.2 (htpasswd) and a second
//! berth (token auth, its own issuer) as upstreams, skopeo pulling through berth; and a
//! tiny upstream written here, which counts its blob GETs and can lie about a blob's bytes.

#[path = "support/auth.rs"]
mod auth;
mod common;
#[path = "support/fake_upstream.rs"]
mod fake_upstream;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auth::*;
use berth_client::ByteRange;
use fake_upstream::*;
use oci_layout::*;

/// Lines of a distribution access log that are GETs of blobs of `repo`.
fn blob_gets(log: &str, repo: &str) -> usize {
    log.matches(&format!("\"GET /v2/{repo}/blobs/")).count()
}

/// Pushes `img` as `dest` (a `docker://` reference) with `creds`.
fn push(work: &Path, img: &Image, dest: &str, creds: &str) -> String {
    let src = work.join(format!("src-{}", &img.manifest.hex()[..12]));
    LayoutWriter::new(&src).add_image(img, "v1");
    skopeo_copy(
        &["--dest-creds", creds],
        &layout_str(&src, "v1"),
        dest,
        work,
    )
}

/// Pulls `from` into a fresh layout; the manifest digest skopeo wrote.
fn pull(work: &Path, from: &str, into: &str) -> String {
    let dir = work.join(into);
    skopeo_copy(&[], from, &layout_str(&dir, "v1"), work)
}

#[test]
fn distribution_upstream_pulls_through_moves_tags_after_the_ttl_and_survives_its_loss() {
    if !common::have_tool("skopeo")
        || !common::have_tool("docker-registry")
        || !common::have_tool("htpasswd")
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (up_root, cache_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = work.path();
    let users = htpasswd_file(w, &[("alice", "a-pw")]);
    let upstream = common::distribution_with(
        up_root.path(),
        w,
        &format!(
            "auth:\n  htpasswd:\n    realm: up\n    path: {}\n",
            users.display()
        ),
    );
    let first = image(&mut Rng::new("proxy-first"), "amd64", &[300_000, 5000]);
    let second = image(&mut Rng::new("proxy-second"), "amd64", &[7000]);
    let up = upstream.host().to_owned();
    push(
        w,
        &first,
        &format!("docker://{up}/library/app:v1"),
        "alice:a-pw",
    );

    let cache = common::berth(
        cache_root.path(),
        w,
        &format!(
            "proxy:\n  remoteurl: http://{up}\n  username: alice\n  password: a-pw\n  ttl: 2s\n"
        ),
    );
    let via = |tag: &str| format!("docker://{}/library/app:{tag}", cache.host());
    assert_eq!(pull(w, &via("v1"), "p1"), first.manifest.digest);
    assert_layout_has_image(&w.join("p1"), "v1", &first);
    assert_eq!(
        skopeo_raw(&via("v1")),
        first.manifest.bytes,
        "the cache serves the upstream's exact bytes"
    );
    let gets = blob_gets(&upstream.log_text(), "library/app");
    assert_eq!(gets, first.blobs().count(), "one upstream GET per blob");

    // Warm: nothing fetched again.
    assert_eq!(pull(w, &via("v1"), "p2"), first.manifest.digest);
    assert_eq!(blob_gets(&upstream.log_text(), "library/app"), gets);

    // Kept in distribution's layout, as any pushed image.
    let v2 = cache_root.path().join("docker/registry/v2");
    for b in first.blobs() {
        let data = v2
            .join("blobs/sha256")
            .join(&b.hex()[..2])
            .join(b.hex())
            .join("data");
        assert_eq!(std::fs::read(&data).unwrap(), b.bytes);
    }
    assert!(
        v2.join("repositories/library/app/_manifests/tags/v1/current/link")
            .exists()
    );

    // Writes answer as distribution's proxy mode does.
    let r = cache
        .client()
        .run(|c| c.start_upload("library/app"))
        .unwrap();
    r.require_error(405, "UNSUPPORTED").unwrap();
    let r = cache
        .client()
        .run(|c| c.delete_manifest("library/app", &first.manifest.digest))
        .unwrap();
    r.require_error(405, "UNSUPPORTED").unwrap();

    // The tag moves upstream: served from the cache while fresh, seen after the ttl.
    push(
        w,
        &second,
        &format!("docker://{up}/library/app:v1"),
        "alice:a-pw",
    );
    assert_eq!(pull(w, &via("v1"), "p3"), first.manifest.digest);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(pull(w, &via("v1"), "p4"), second.manifest.digest);
    assert_layout_has_image(&w.join("p4"), "v1", &second);

    // The upstream goes: what was pulled still pulls, the tag past its ttl included.
    upstream.stop();
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(pull(w, &via("v1"), "p5"), second.manifest.digest);
    let by_digest = format!(
        "docker://{}/library/app@{}",
        cache.host(),
        first.manifest.digest
    );
    let dir = w.join("p6");
    skopeo_copy(&[], &by_digest, &layout_str(&dir, "v1"), w);
    assert!(
        cache.log_text().contains("may be stale"),
        "{}",
        cache.log_text()
    );
    // What was never pulled cannot be: 503 UNAVAILABLE, as distribution names it.
    let r = cache
        .client()
        .run(|c| c.get_manifest("library/other", "v1", "*/*"))
        .unwrap();
    r.require_error(503, "UNAVAILABLE").unwrap();
    cache.stop();
}

#[test]
fn berth_upstream_with_token_auth_under_a_prefix_beside_hosted_repositories() {
    if !common::have_tool("skopeo")
        || !common::have_tool("htpasswd")
        || !common::have_tool("openssl")
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (up_root, cache_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d = work.path();
    let (key, cert) = signing_pair(d, "issuer");
    let users = htpasswd_file(d, &[("alice", "a-pw")]);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let extra = format!(
        "auth:\n  token:\n    realm: http://{addr}/auth/token\n    service: registry.test\n    issuer: test-issuer\n    rootcertbundle: {}\n{POLICY}    users: {}\n    issuer:\n      key: {}\n      expiration: 2m\n",
        cert.display(),
        users.display(),
        key.display()
    );
    let (config, addr) = common::berth_config_on(&addr, up_root.path(), d, "", &extra);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    let upstream = common::spawn(cmd, addr.clone(), d, "upstream");
    let img = image(&mut Rng::new("proxy-token"), "amd64", &[20_000, 3000]);
    push(
        d,
        &img,
        &format!("docker://{addr}/team/app:v1"),
        "alice:a-pw",
    );

    let metrics = format!("127.0.0.1:{}", common::free_port());
    let cache = common::berth(
        cache_root.path(),
        d,
        &format!(
            "  debug:\n    addr: {metrics}\n    prometheus:\n      enabled: true\n\
             berth:\n  proxy:\n    upstreams:\n\
             \x20     - prefix: up/\n        remoteurl: http://{addr}\n        username: alice\n        password: a-pw\n"
        ),
    );
    let from = format!("docker://{}/up/team/app:v1", cache.host());
    assert_eq!(pull(d, &from, "p1"), img.manifest.digest);
    assert_layout_has_image(&d.join("p1"), "v1", &img);
    assert_eq!(pull(d, &from, "p2"), img.manifest.digest);

    // Tags come from the upstream (distribution's proxy does the same).
    let r = cache
        .client()
        .run(|c| c.tags_list("up/team/app", None, None))
        .unwrap();
    assert_eq!(r.tag_names().unwrap(), ["v1"]);

    // Outside the prefix: an ordinary hosted repository, with push.
    let pushed = push(
        d,
        &img,
        &format!("docker://{}/mine/app:v1", cache.host()),
        "x:y",
    );
    assert_eq!(pushed, img.manifest.digest);
    // And under it, pushes are refused.
    let r = cache
        .client()
        .run(|c| c.start_upload("up/team/app"))
        .unwrap();
    r.require_error(405, "UNSUPPORTED").unwrap();

    let text = common::client(&metrics)
        .run(|c| c.get("/metrics"))
        .unwrap()
        .text();
    let blobs = img.blobs().count();
    for (series, want) in [
        (
            "berth_proxy_pulls_total{upstream=\"up/\",kind=\"blob\",source=\"upstream\"}",
            blobs,
        ),
        (
            "berth_proxy_pulls_total{upstream=\"up/\",kind=\"blob\",source=\"cache\"}",
            blobs,
        ),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert_eq!(line, format!("{series} {want}"));
    }
    let bytes_line = text
        .lines()
        .find(|l| l.starts_with("berth_proxy_upstream_bytes_total{upstream=\"up/\"}"))
        .expect("bytes series");
    let fetched: u64 = bytes_line.rsplit(' ').next().unwrap().parse().unwrap();
    let blob_bytes: u64 = img.blobs().map(|b| b.bytes.len() as u64).sum();
    assert!(fetched >= blob_bytes, "{bytes_line}");
    cache.stop();
    upstream.stop();
}

/// berth on `root` as a pull-through cache of a fake upstream serving `blob` under
/// `repo` (streaming wrong bytes when `corrupt`).
fn cache_over_fake(
    root: &Path,
    work: &Path,
    repo: &'static str,
    blob: &Arc<Vec<u8>>,
    corrupt: bool,
) -> (FakeUpstream, common::Process) {
    let up = fake_upstream(repo, vec![blob.clone()], corrupt);
    let cache = common::berth(
        root,
        work,
        &format!("proxy:\n  remoteurl: http://{}\n", up.addr),
    );
    (up, cache)
}

#[test]
fn thirty_two_concurrent_pulls_of_an_uncached_blob_share_one_upstream_get() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let blob = big_blob("proxy-big", 64 << 20);
    let digest = sha256_digest(&blob);
    let (up, cache) = cache_over_fake(root.path(), work.path(), "big", &blob, false);
    let path = format!("/v2/big/blobs/{digest}");
    let host = cache.host().to_owned();
    let start = Arc::new(std::sync::Barrier::new(32));
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let (host, path, start) = (host.clone(), path.clone(), start.clone());
            let blob = blob.clone();
            std::thread::spawn(move || {
                start.wait();
                raw_get(&host, &path, &blob)
            })
        })
        .collect();
    // A HEAD while the blob downloads takes its size from the download.
    std::thread::sleep(Duration::from_millis(50));
    let head = cache.client().run(|c| c.head_blob("big", &digest)).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(blob.len().to_string().as_str())
    );
    for c in clients {
        let (status, length, received, same) = c.join().unwrap();
        assert_eq!(
            (status, length, received),
            (200, blob.len() as u64, blob.len() as u64)
        );
        assert!(same, "the bytes differ");
    }
    assert_eq!(
        up.gets.load(Ordering::SeqCst),
        1,
        "one upstream GET for 32 pulls"
    );
    assert_eq!(up.heads.load(Ordering::SeqCst), 0, "the HEAD went upstream");
    // Kept: the next pull is the cache's own.
    let data = root
        .path()
        .join("docker/registry/v2/blobs/sha256")
        .join(&digest[7..9])
        .join(&digest[7..])
        .join("data");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !data.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, received, same) = raw_get(&host, &path, &blob);
    assert_eq!((status, received, same), (200, blob.len() as u64, true));
    assert_eq!(up.gets.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::metadata(&data).unwrap().len(), blob.len() as u64);
    // No spool file is left behind (in this process's spool directory, the one there).
    let spool = root.path().canonicalize().unwrap().join(".berth-proxy");
    let left: usize = std::fs::read_dir(spool)
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(left, 0);
    cache.stop();
}

/// A blob GET whose range ends before it starts is refused (416, with the size) from the
/// upstream's HEAD alone: nothing is downloaded for it. A valid range then downloads it.
#[test]
fn an_invalid_range_of_an_uncached_blob_downloads_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let blob = big_blob("proxy-range", 3 << 20);
    let digest = sha256_digest(&blob);
    let (up, cache) = cache_over_fake(root.path(), work.path(), "ranged", &blob, false);
    let refused = cache
        .client()
        .run(|c| c.get_blob("ranged", &digest, Some(ByteRange::Span(9, 2))))
        .unwrap();
    assert_eq!(refused.status, 416);
    assert_eq!(
        refused.header("Content-Range"),
        Some(format!("bytes */{}", blob.len()).as_str())
    );
    assert_eq!(up.gets.load(Ordering::SeqCst), 0, "a download started");
    assert_eq!(up.heads.load(Ordering::SeqCst), 1);
    let part = cache
        .client()
        .run(|c| c.get_blob("ranged", &digest, Some(ByteRange::Span(2, 9))))
        .unwrap();
    assert_eq!(part.status, 206);
    assert!(part.body[..] == blob[2..10]);
    assert_eq!(up.gets.load(Ordering::SeqCst), 1);
}

#[test]
fn a_corrupt_upstream_blob_fails_the_pull_and_is_not_kept() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let blob = big_blob("proxy-big", 8 << 20);
    let digest = sha256_digest(&blob);
    let (up, cache) = cache_over_fake(root.path(), work.path(), "bad", &blob, true);
    let path = format!("/v2/bad/blobs/{digest}");
    let failed = Arc::new(AtomicBool::new(true));
    let mut pulls = Vec::new();
    for _ in 0..2 {
        let (status, length, received, _) = raw_get(cache.host(), &path, &blob);
        // For the failure message: what each pull saw, and the upstream's count after it.
        pulls.push((status, length, received, up.gets.load(Ordering::SeqCst)));
        // The stream is cut before its last byte: never a complete, valid-looking body.
        let complete = status == 200 && received == length && length == blob.len() as u64;
        if complete {
            failed.store(false, Ordering::SeqCst);
        }
    }
    assert!(
        failed.load(Ordering::SeqCst),
        "a corrupt blob was served whole"
    );
    assert_eq!(
        up.gets.load(Ordering::SeqCst),
        2,
        "nothing was kept, so asked again; pulls (status, length, received, upstream GETs \
         after it): {pulls:?}\n{}",
        cache.log_text()
    );
    let data = root
        .path()
        .join("docker/registry/v2/blobs/sha256")
        .join(&digest[7..9])
        .join(&digest[7..]);
    assert!(!data.exists(), "the corrupt blob was kept");
    assert!(cache.log_text().contains("refused"), "{}", cache.log_text());
    cache.stop();
}

#[test]
fn referrers_are_asked_upstream_and_come_from_the_copy_when_it_is_gone() {
    let work = tempfile::tempdir().unwrap();
    let (up_root, cache_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d = work.path();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let (config, addr) = common::berth_config_on(&addr, up_root.path(), d, "", "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    let upstream = common::spawn(cmd, addr.clone(), d, "upstream");
    let mut rng = Rng::new("proxy-referrers");
    let img = image(&mut rng, "amd64", &[2000]);
    let (signed, other) = (
        referrer(&mut rng, &img.manifest),
        referrer(&mut rng, &img.manifest),
    );
    for (i, reference) in [(&img, "v1"), (&signed, ""), (&other, "")] {
        for b in i.blobs() {
            push_blob_monolithic(upstream.client(), "team/app", b);
        }
        let reference = if reference.is_empty() {
            &i.manifest.digest
        } else {
            reference
        };
        put_manifest(upstream.client(), "team/app", reference, &i.manifest);
    }

    let cache = common::berth(
        cache_root.path(),
        d,
        &format!("proxy:\n  remoteurl: http://{addr}\n"),
    );
    let listed = |artifact_type: Option<&str>| -> Vec<String> {
        let r = cache
            .client()
            .run(|c| c.referrers("team/app", &img.manifest.digest, artifact_type))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let mut v: Vec<String> = r.json().unwrap()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // Nothing pulled through the cache yet: the upstream's answer.
    let mut both = vec![
        signed.manifest.digest.clone(),
        other.manifest.digest.clone(),
    ];
    both.sort();
    assert_eq!(listed(None), both);
    assert_eq!(listed(Some(SIGNATURE)), both);
    assert!(listed(Some("application/vnd.example.none")).is_empty());

    // One referrer pulled, then the upstream gone: the copy knows that one.
    let r = cache
        .client()
        .run(|c| c.get_manifest("team/app", &signed.manifest.digest, OCI_MANIFEST))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    upstream.stop();
    assert_eq!(listed(None), vec![signed.manifest.digest.clone()]);
    cache.stop();
}
