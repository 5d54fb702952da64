//! The pull-through cache's size limit on the real binary: more distinct images pulled
//! through it (skopeo, from distribution 2.8.2 on loopback) than fit, then the first ones
//! again; pulls racing evictions of the blobs they read; hosted repositories beside the
//! cache; and the cache's size after a restart.

mod common;
#[path = "support/fake_upstream.rs"]
mod fake_upstream;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_upstream::*;
use oci_layout::*;

/// The limit the tests set: room for about two of the images below.
const LIMIT: u64 = 700_000;
/// Each image's layer.
const LAYER: usize = 300_000;

/// `http` lines exposing Prometheus metrics on `addr`.
fn metrics_on(addr: &str) -> String {
    format!("  debug:\n    addr: {addr}\n    prometheus:\n      enabled: true\n")
}

/// The value of the sample `series` (name and labels) at `addr`, 0 when absent.
fn sample(addr: &str, series: &str) -> u64 {
    let text = common::client(addr)
        .run(|c| c.get("/metrics"))
        .unwrap()
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Waits until the cache's size is at most `bound`; the size then.
fn settles_under(metrics: &str, bound: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let size = sample(metrics, "berth_proxy_cache_bytes");
        if size <= bound || Instant::now() > deadline {
            return size;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the cache keeps `b`'s bytes.
fn data_of(root: &Path, b: &Blob) -> std::path::PathBuf {
    root.join("docker/registry/v2/blobs/sha256")
        .join(&b.hex()[..2])
        .join(b.hex())
        .join("data")
}

/// Lines of a distribution access log that are GETs of blobs of `repo`.
fn blob_gets(log: &str, repo: &str) -> usize {
    log.matches(&format!("\"GET /v2/{repo}/blobs/")).count()
}

#[test]
fn eviction_under_a_small_limit_keeps_every_pull_correct_and_spares_hosted_blobs() {
    if !common::have_tool("skopeo") || !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (up_root, cache_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = work.path();
    let upstream = common::distribution(up_root.path(), w);
    let images: Vec<Image> = (0..6)
        .map(|i| image(&mut Rng::new(&format!("evict-{i}")), "amd64", &[LAYER]))
        .collect();
    for (i, img) in images.iter().enumerate() {
        let src = w.join(format!("src-{i}"));
        LayoutWriter::new(&src).add_image(img, "v1");
        let dest = format!("docker://{}/lib/app{i}:v1", upstream.host());
        skopeo_copy(&[], &layout_str(&src, "v1"), &dest, w);
    }
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let config = format!(
        "{}berth:\n  proxy:\n    cache:\n      maxsize: {LIMIT}\n    upstreams:\n\
         \x20     - prefix: up/\n        remoteurl: http://{}\n",
        metrics_on(&metrics),
        upstream.host()
    );
    let cache = common::berth(cache_root.path(), w, &config);
    // A hosted repository holds image 0 too: its blobs are hosted, never evicted.
    let src0 = w.join("src-0");
    let hosted = format!("docker://{}/mine/app:v1", cache.host());
    skopeo_copy(
        &["--dest-creds", "x:y"],
        &layout_str(&src0, "v1"),
        &hosted,
        w,
    );

    let via = |i: usize| format!("docker://{}/up/lib/app{i}:v1", cache.host());
    let largest = images.iter().flat_map(Image::blobs).map(|b| b.bytes.len());
    let bound = LIMIT + largest.max().unwrap_or(0) as u64;
    for (i, img) in images.iter().enumerate() {
        let digest = skopeo_copy(&[], &via(i), &layout_str(&w.join(format!("p{i}")), "v1"), w);
        assert_eq!(digest, img.manifest.digest);
        assert_layout_has_image(&w.join(format!("p{i}")), "v1", img);
        let size = settles_under(&metrics, bound);
        assert!(size <= bound, "the cache holds {size} bytes after pull {i}");
    }
    assert!(sample(&metrics, "berth_proxy_evictions_total") >= 3);
    assert!(sample(&metrics, "berth_proxy_evicted_bytes_total") >= 3 * LAYER as u64);
    let root = cache_root.path();
    assert!(
        !data_of(root, &images[1].layers[0]).exists(),
        "the least recently used layer is still kept"
    );
    for b in images[0].blobs() {
        assert!(data_of(root, b).exists(), "a hosted blob was evicted");
    }

    // The evicted images pull again, identical, fetched again from the upstream.
    let before = blob_gets(&upstream.log_text(), "lib/app1");
    for i in [1, 2] {
        let into = format!("again{i}");
        let digest = skopeo_copy(&[], &via(i), &layout_str(&w.join(&into), "v1"), w);
        assert_eq!(digest, images[i].manifest.digest);
        assert_layout_has_image(&w.join(&into), "v1", &images[i]);
    }
    assert!(
        blob_gets(&upstream.log_text(), "lib/app1") > before,
        "the evicted layer was not fetched again"
    );
    let size = settles_under(&metrics, bound);
    assert!(size <= bound, "the cache holds {size} bytes");
    // The hosted repository is whole.
    let digest = skopeo_copy(&[], &hosted, &layout_str(&w.join("hosted"), "v1"), w);
    assert_eq!(digest, images[0].manifest.digest);
    assert_layout_has_image(&w.join("hosted"), "v1", &images[0]);
    cache.stop();

    // After a restart the size is rebuilt from storage (what is cached, hosted aside).
    let on_disk: u64 = images[1..]
        .iter()
        .flat_map(Image::blobs)
        .filter(|b| data_of(root, b).exists())
        .map(|b| b.bytes.len() as u64)
        .sum();
    let cache = common::berth(cache_root.path(), w, &config);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rebuilt = 0;
    while Instant::now() < deadline {
        rebuilt = sample(&metrics, "berth_proxy_cache_bytes");
        if rebuilt >= on_disk {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Image 0's blobs are counted until an eviction finds them hosted.
    let hosted_bytes: u64 = images[0].blobs().map(|b| b.bytes.len() as u64).sum();
    assert!(
        rebuilt >= on_disk && rebuilt <= on_disk + hosted_bytes,
        "rebuilt {rebuilt}, {on_disk} cached on disk"
    );
    cache.stop();
    upstream.stop();
}

#[test]
fn pulls_racing_evictions_get_whole_blobs() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let blobs: Vec<_> = (0..3)
        .map(|i| big_blob(&format!("race-{i}"), 4 << 20))
        .collect();
    let up = fake_upstream("race", blobs.clone(), false);
    let metrics = format!("127.0.0.1:{}", common::free_port());
    // Room for one blob and a half: every commit evicts another.
    let cache = common::berth(
        root.path(),
        work.path(),
        &format!(
            "{}proxy:\n  remoteurl: http://{}\nberth:\n  proxy:\n    cache:\n      maxsize: 6MiB\n",
            metrics_on(&metrics),
            up.addr
        ),
    );
    let host = cache.host().to_owned();
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (host, blobs) = (host.clone(), blobs.clone());
            std::thread::spawn(move || {
                for round in 0..8 {
                    let blob = &blobs[(c + round) % blobs.len()];
                    let path = format!("/v2/race/blobs/{}", sha256_digest(blob));
                    let (status, length, received, same) = raw_get(&host, &path, blob);
                    assert_eq!(
                        (status, length, received),
                        (200, blob.len() as u64, blob.len() as u64),
                        "client {c} round {round}"
                    );
                    assert!(same, "client {c} round {round}: the bytes differ");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(sample(&metrics, "berth_proxy_evictions_total") > 0);
    assert!(
        up.gets.load(Ordering::SeqCst) > blobs.len(),
        "no blob was fetched again after its eviction"
    );
    let size = settles_under(&metrics, (6 << 20) + (4 << 20));
    assert!(
        size <= (6 << 20) + (4 << 20),
        "the cache holds {size} bytes"
    );
    cache.stop();
}
