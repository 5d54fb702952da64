//! End-to-end: online garbage collection (`storage.maintenance.gc`) in the real `berth`
//! binary. Collections every 200 ms with no grace period run beside a few seconds of
//! concurrent pushes (images sharing layers, pushed the way docker does: `HEAD` each
//! blob, upload or mount what is missing, then the manifest) and deletes on loopback;
//! afterwards every acknowledged image that was not deleted pulls byte for byte, the
//! blobs only deleted images used are gone from disk, and the `berth_gc_*` series moved.
//! Read-only mode skips every collection, and the offline command still collects.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_client::BlockingClient;
use oci_layout::*;
use serde_json::json;

/// Workers pushing at once, each in a repository of its own.
const WORKERS: usize = 4;
/// How long they push and delete.
const LOAD: Duration = Duration::from_secs(4);
/// Layers every image starts with (a base image's).
const BASE_LAYERS: usize = 3;

/// Online collection every 200 ms, no grace period: only the fence protects pushes.
const GC: &str =
    "  maintenance:\n    gc:\n      enabled: true\n      interval: 200ms\n      graceperiod: 0s\n";

/// The `http` lines of a debug listener with metrics on `port`.
fn debug_metrics(port: u16) -> String {
    format!("  debug:\n    addr: 127.0.0.1:{port}\n    prometheus:\n      enabled: true\n")
}

/// An image: one of the base layers, then a layer and a config of its own.
fn image_on(rng: &mut Rng, base: &Blob, label: &str) -> Image {
    let size = 3000 + (rng.next_u64() % 5000) as usize;
    let own = Blob::new(OCI_LAYER_GZIP, rng.bytes(size));
    let config = json!({"architecture": "amd64", "os": "linux", "label": label});
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).expect("JSON"));
    let layers = vec![base.clone(), own];
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    Image {
        manifest: Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).expect("JSON")),
        config,
        layers,
    }
}

/// How a push ended.
enum Pushed {
    /// 201: the registry acknowledged it.
    Acknowledged,
    /// `MANIFEST_BLOB_UNKNOWN`: a blob the push found went before the manifest came (a
    /// collection swept it); the client pushes again.
    BlobGone,
}

/// One push as docker makes it: `HEAD` each blob, mount (from `mount_from`) or upload
/// what is missing, then `PUT` the manifest under `tag`.
fn push(reg: &BlockingClient, name: &str, img: &Image, tag: &str, mount_from: &str) -> Pushed {
    for b in img.blobs() {
        let head = reg
            .run(|c| c.head_blob(name, &b.digest))
            .expect("blob HEAD");
        if head.status == 200 {
            continue;
        }
        assert_eq!(head.status, 404, "HEAD {name}@{}", b.digest);
        let mount = reg
            .run(|c| c.mount_blob(name, &b.digest, Some(mount_from)))
            .expect("mount");
        match mount.status {
            201 => continue,
            // Not there to mount: the answer is an upload session, which the client
            // abandons for a monolithic upload (the purger removes it later).
            202 => push_blob_monolithic(reg, name, b),
            s => panic!("mount into {name}: {s} {}", mount.text()),
        }
    }
    let r = reg
        .run(|c| {
            c.put_manifest(
                name,
                tag,
                &img.manifest.media_type,
                img.manifest.bytes.clone(),
                &[],
            )
        })
        .expect("manifest PUT");
    match r.status {
        201 => {
            assert_eq!(r.digest(), Some(img.manifest.digest.as_str()));
            Pushed::Acknowledged
        }
        400 if r.text().contains("MANIFEST_BLOB_UNKNOWN") => Pushed::BlobGone,
        s => panic!("PUT {name}:{tag}: {s} {}", r.text()),
    }
}

/// What one worker did.
#[derive(Default)]
struct Outcome {
    /// (repository, tag, image) acknowledged and not deleted.
    kept: Vec<(String, String, Image)>,
    /// Digests only the images this worker deleted used.
    deleted_only: BTreeSet<String>,
    /// Pushes refused because a collection took a blob first.
    retried: usize,
}

/// Pushes images into `load/w<w>` until `until`, deleting every fourth acknowledged one.
fn worker(addr: &str, w: usize, base: &[Blob], until: Instant) -> Outcome {
    let reg = common::client(addr);
    let mut rng = Rng::new(&format!("online-gc-{w}"));
    let name = format!("load/w{w}");
    let neighbour = format!("load/w{}", (w + 1) % WORKERS);
    let mut out = Outcome::default();
    let mut i = 0;
    while Instant::now() < until {
        let img = image_on(&mut rng, &base[i % base.len()], &format!("{w}-{i}"));
        let tag = format!("t{i}");
        let mut attempts = 0;
        while let Pushed::BlobGone = push(&reg, &name, &img, &tag, &neighbour) {
            out.retried += 1;
            attempts += 1;
            assert!(attempts < 50, "{name}:{tag} never went through");
        }
        if i % 4 == 3 {
            let r = reg
                .run(|c| c.delete_manifest(&name, &img.manifest.digest))
                .expect("manifest DELETE");
            assert_eq!(r.status, 202, "DELETE {name}@{}", img.manifest.digest);
            // Config and own layer are this image's alone (random bytes).
            out.deleted_only.insert(img.manifest.digest.clone());
            out.deleted_only.insert(img.config.digest.clone());
            out.deleted_only.insert(img.layers[1].digest.clone());
        } else {
            out.kept.push((name.clone(), tag, img));
        }
        i += 1;
    }
    out
}

fn blob_file(root: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// The value of one sample line (`name{labels} value`) of a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
}

fn scrape(debug: &str) -> String {
    let r = common::client(debug)
        .run(|c| c.get("/metrics"))
        .expect("scrape");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// Asserts `img` pulls from `name:tag` with the digests and bytes pushed.
fn assert_pulls(reg: &BlockingClient, name: &str, tag: &str, img: &Image) {
    assert_eq!(
        resolve(reg, name, tag).as_deref(),
        Some(img.manifest.digest.as_str()),
        "{name}:{tag}"
    );
    assert_blobs_served(reg, name, img);
}

#[test]
fn online_collection_beside_pushes_and_deletes_keeps_every_acknowledged_image() {
    let (root, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let debug_port = common::free_port();
    let debug = format!("127.0.0.1:{debug_port}");
    let berth = common::berth_with(root.path(), work.path(), GC, &debug_metrics(debug_port));
    let mut rng = Rng::new("online-gc-base");
    let base: Vec<Blob> = (0..BASE_LAYERS)
        .map(|_| Blob::new(OCI_LAYER_GZIP, rng.bytes(20_000)))
        .collect();
    let until = Instant::now() + LOAD;
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (addr, base) = (berth.addr.as_str(), &base);
                s.spawn(move || worker(addr, w, base, until))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let kept: Vec<_> = outcomes.iter().flat_map(|o| &o.kept).collect();
    let deleted_only: BTreeSet<&String> = outcomes.iter().flat_map(|o| &o.deleted_only).collect();
    let retried: usize = outcomes.iter().map(|o| o.retried).sum();
    eprintln!(
        "{} images kept, {} blobs only deleted images used, {retried} pushes retried",
        kept.len(),
        deleted_only.len()
    );
    assert!(
        kept.len() >= 8 && !deleted_only.is_empty(),
        "too little load"
    );

    // Later collections take what the deletes freed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while deleted_only
        .iter()
        .any(|d| blob_file(root.path(), d).exists())
    {
        assert!(
            Instant::now() < deadline,
            "blobs of deleted images still on disk: {}",
            berth.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reg = berth.client();
    for (name, tag, img) in &kept {
        assert_pulls(reg, name, tag, img);
    }
    for b in &base {
        assert!(blob_file(root.path(), &b.digest).exists());
    }
    // A real client pulls a few of them with the digests pushed.
    if common::have_tool("skopeo") {
        for (name, tag, img) in kept.iter().step_by(kept.len() / 3 + 1) {
            let layout = work
                .path()
                .join(format!("pulled-{}", name.replace('/', "-")));
            let src = format!("docker://{}/{name}:{tag}", berth.host());
            let pulled = skopeo_copy(
                &["--preserve-digests"],
                &src,
                &layout_str(&layout, tag),
                work.path(),
            );
            assert_eq!(pulled, img.manifest.digest);
            assert_layout_has_image(&layout, tag, img);
        }
    }

    let scraped = scrape(&debug);
    let runs = sample(&scraped, "berth_gc_runs_total{result=\"ok\"}");
    assert!(runs >= 5.0, "{runs} collections:\n{scraped}");
    assert_eq!(
        sample(&scraped, "berth_gc_runs_total{result=\"failed\"}"),
        0.0
    );
    let removed = sample(&scraped, "berth_gc_blobs_removed_total");
    assert!(removed >= deleted_only.len() as f64, "{scraped}");
    assert!(sample(&scraped, "berth_gc_bytes_freed_total") > 0.0);
    assert!(sample(&scraped, "berth_gc_last_run_timestamp_seconds") > 0.0);
    assert!(
        berth.log_text().contains("online garbage collection"),
        "{}",
        berth.log_text()
    );

    // What a restart finds: the same images, and no damage.
    let config = common::berth_config(root.path(), work.path(), "", "").0;
    assert!(berth.stop().success());
    let restarted = common::berth(root.path(), work.path(), "");
    for (name, tag, img) in &kept {
        assert_pulls(restarted.client(), name, tag, img);
    }
    drop(restarted);
    let check = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("check-storage")
        .arg(&config)
        .output()
        .expect("check-storage");
    assert!(
        check.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn read_only_mode_skips_online_collections_and_the_offline_command_still_collects() {
    let (root, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut rng = Rng::new("online-gc-readonly");
    let base = Blob::new(OCI_LAYER_GZIP, rng.bytes(5000));
    let img = image_on(&mut rng, &base, "read-only");
    {
        let berth = common::berth(root.path(), work.path(), "");
        let reg = berth.client();
        for b in img.blobs() {
            push_blob_monolithic(reg, "team/app", b);
        }
        put_manifest(reg, "team/app", "v1", &img.manifest);
        delete_manifest(reg, "team/app", &img.manifest.digest);
        assert!(berth.stop().success());
    }
    let garbage: Vec<String> = img
        .blobs()
        .map(|b| b.digest.clone())
        .chain([img.manifest.digest.clone()])
        .collect();
    let debug_port = common::free_port();
    let read_only = format!("{GC}    readonly:\n      enabled: true\n");
    let berth = common::berth_with(
        root.path(),
        work.path(),
        &read_only,
        &debug_metrics(debug_port),
    );
    std::thread::sleep(Duration::from_millis(1200));
    for d in &garbage {
        assert!(blob_file(root.path(), d).exists(), "read-only removed {d}");
    }
    let scraped = scrape(&format!("127.0.0.1:{debug_port}"));
    assert!(sample(&scraped, "berth_gc_runs_total{result=\"skipped\"}") >= 2.0);
    assert_eq!(sample(&scraped, "berth_gc_runs_total{result=\"ok\"}"), 0.0);
    assert!(
        berth
            .log_text()
            .contains("online garbage collection skipped"),
        "{}",
        berth.log_text()
    );
    assert!(berth.stop().success());

    // The operator's command on the same read-only configuration.
    let (config, _) = common::berth_config(root.path(), work.path(), &read_only, "");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["garbage-collect"])
        .arg(&config)
        .output()
        .expect("garbage-collect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in &garbage {
        assert!(!blob_file(root.path(), d).exists(), "{d} survived");
    }
}
