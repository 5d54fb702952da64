//! End-to-end: the real `berth` binary driven by skopeo. Test images are OCI image layouts
//! built in Rust (see `support/oci_layout.rs`), so nothing but skopeo is needed.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;

use oci_layout::*;
use serde_json::Value;
use tempfile::TempDir;

/// berth on fresh temporary directories (work, root), or `None` when skopeo is missing
/// (the test is then skipped, or fails under `BERTH_E2E_REQUIRED`).
fn start() -> Option<(TempDir, TempDir, common::Process)> {
    if !common::have_tool("skopeo") {
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth = common::berth(root.path(), work.path(), "");
    Some((work, root, berth))
}

/// Writes `img` as an OCI layout at `<work>/src`, tagged `v1`; answers skopeo's reference.
fn layout_of(work: &Path, img: &Image) -> String {
    let src = work.join("src");
    LayoutWriter::new(&src).add_image(img, "v1");
    layout_str(&src, "v1")
}

#[test]
fn multi_layer_image_round_trip() {
    let Some((work, _root, berth)) = start() else {
        return;
    };
    let host = berth.host();

    let img = image(
        &mut Rng::new("multi-layer"),
        "amd64",
        &[1024 * 1024 + 13, 256 * 1024 + 1, 3000],
    );
    let src = layout_of(work.path(), &img);

    let pushed = skopeo_copy(
        &[],
        &src,
        &format!("docker://{host}/team/app:v1"),
        work.path(),
    );
    assert_eq!(
        pushed, img.manifest.digest,
        "skopeo rewrote the manifest on push"
    );

    let out = work.path().join("out");
    let pulled = skopeo_copy(
        &[],
        &format!("docker://{host}/team/app:v1"),
        &layout_str(&out, "v1"),
        work.path(),
    );
    assert_eq!(pulled, img.manifest.digest);
    assert_layout_has_image(&out, "v1", &img);

    let inspect: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/team/app:v1"),
    ]))
    .expect("inspect JSON");
    assert_eq!(inspect["Digest"], img.manifest.digest.as_str(), "{inspect}");
    let layers: Vec<&str> = img.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layers), "{inspect}");
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");

    let list: Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{host}/team/app"),
    ]))
    .expect("list-tags JSON");
    assert_eq!(list["Tags"], serde_json::json!(["v1"]), "{list}");

    // And straight over HTTP: the exact manifest bytes with the right headers.
    let reg = berth.client();
    let r = reg
        .run(|c| c.get_manifest("team/app", "v1", OCI_MANIFEST))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, img.manifest.bytes);
    assert_eq!(r.digest(), Some(img.manifest.digest.as_str()));
    assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
    assert_blobs_served(reg, "team/app", &img);
    berth.stop();
}

#[test]
fn multi_arch_index_round_trip() {
    let Some((work, _root, berth)) = start() else {
        return;
    };
    let host = berth.host();

    let mut rng = Rng::new("multi-arch");
    let ma = multi_arch(&mut rng, &["amd64", "arm64"]);
    let src = work.path().join("src");
    LayoutWriter::new(&src).add_multi_arch(&ma, "multi");

    let dest = format!("docker://{host}/team/multi:multi");
    let pushed = skopeo_copy(
        &["--all", "--preserve-digests"],
        &layout_str(&src, "multi"),
        &dest,
        work.path(),
    );
    assert_eq!(pushed, ma.index.digest, "index digest at push");

    let out = work.path().join("out");
    let pulled = skopeo_copy(
        &["--all", "--preserve-digests"],
        &dest,
        &layout_str(&out, "multi"),
        work.path(),
    );
    assert_eq!(pulled, ma.index.digest, "index digest at pull");
    assert_layout_has_multi_arch(&out, "multi", &ma);

    let reg = berth.client();
    let r = reg
        .run(|c| c.get_manifest("team/multi", "multi", OCI_INDEX))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.body == ma.index.bytes,
        "index bytes served differ from those pushed:\n{}",
        r.text()
    );
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(ma.index.digest.as_str())
    );
    for (arch, img) in &ma.images {
        let r = reg
            .run(|c| c.get_manifest("team/multi", &img.manifest.digest, OCI_MANIFEST))
            .unwrap();
        assert_eq!(r.status, 200, "{arch}: {}", r.text());
        assert_eq!(r.body, img.manifest.bytes, "{arch} manifest bytes served");
        assert_blobs_served(reg, "team/multi", img);
    }
    berth.stop();
}

#[test]
fn docker_schema2_conversion() {
    let Some((work, _root, berth)) = start() else {
        return;
    };
    let host = berth.host();

    let img = image(
        &mut Rng::new("schema2"),
        "amd64",
        &[200 * 1024, 5000, 70_000],
    );
    let src = layout_of(work.path(), &img);

    let reference = format!("docker://{host}/team/conv:v1");
    let pushed = skopeo_copy(&["--format", "v2s2"], &src, &reference, work.path());
    assert_ne!(
        pushed, img.manifest.digest,
        "v2s2 must be a different manifest"
    );

    let raw = skopeo_raw(&reference);
    assert_eq!(
        sha256_digest(&raw),
        pushed,
        "inspect --raw digest vs --digestfile at push"
    );
    let manifest: Value = serde_json::from_slice(&raw).expect("manifest JSON");
    assert_eq!(manifest["mediaType"], DOCKER_MANIFEST, "{manifest}");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["config"]["digest"],
        img.config.digest.as_str(),
        "config bytes kept"
    );
    for (got, want) in manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .zip(&img.layers)
    {
        assert_eq!(
            got["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(got["digest"], want.digest.as_str());
    }

    // Pull back into a `dir:` (kept as is, no conversion) and compare.
    let out = work.path().join("out");
    let pulled = skopeo_copy(
        &[],
        &reference,
        &format!("dir:{}", out.display()),
        work.path(),
    );
    assert_eq!(pulled, pushed);
    assert_eq!(
        std::fs::read(out.join("manifest.json")).expect("manifest.json"),
        raw
    );
    for b in img.blobs() {
        assert!(
            std::fs::read(out.join(b.hex())).expect("pulled blob") == b.bytes,
            "blob {}",
            b.digest
        );
    }

    let r = berth
        .client()
        .run(|c| c.get_manifest("team/conv", "v1", DOCKER_MANIFEST))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(DOCKER_MANIFEST));
    assert_eq!(r.header("docker-content-digest"), Some(pushed.as_str()));
    berth.stop();
}

#[test]
fn copy_between_repositories_mounts() {
    let Some((work, root, berth)) = start() else {
        return;
    };
    let host = berth.host();

    let img = image(&mut Rng::new("mount"), "arm64", &[300 * 1024, 1000, 40_000]);
    let src = layout_of(work.path(), &img);
    let pushed = skopeo_copy(&[], &src, &format!("docker://{host}/a:v1"), work.path());
    assert_eq!(pushed, img.manifest.digest);

    let copied = skopeo_copy(
        &[],
        &format!("docker://{host}/a:v1"),
        &format!("docker://{host}/b/c/d:v1"),
        work.path(),
    );
    assert_eq!(
        copied, img.manifest.digest,
        "digest after registry-to-registry copy"
    );
    assert_eq!(
        skopeo_raw(&format!("docker://{host}/b/c/d:v1")),
        img.manifest.bytes
    );
    assert_blobs_served(berth.client(), "b/c/d", &img);
    assert_eq!(tags(berth.client(), "b/c/d"), ["v1"]);
    let repos = catalog(berth.client());
    assert!(
        repos.contains(&"a".to_string()) && repos.contains(&"b/c/d".to_string()),
        "{repos:?}"
    );

    // skopeo mounted the layers it knew to be in `a` (POST .../uploads/ answered 201) rather
    // than uploading them again; checked in the access log when it has request lines.
    let log = strip_ansi(&berth.log_text());
    let mounts = log
        .lines()
        .filter(|l| {
            l.contains("POST") && l.contains("/v2/b/c/d/blobs/uploads/") && l.contains("status=201")
        })
        .count();
    if log.contains("/v2/b/c/d/manifests/v1") {
        assert_eq!(mounts, img.layers.len(), "layers mounted by skopeo:\n{log}");
    }

    // A mount driven by hand, into a fourth repository.
    for b in img.blobs() {
        mount_blob(berth.client(), "e/f", "b/c/d", &b.digest);
    }
    put_manifest(berth.client(), "e/f", "v1", &img.manifest);
    assert_blobs_served(berth.client(), "e/f", &img);

    // Every blob is linked into the new repositories, in distribution's layout.
    for name in ["b/c/d", "e/f"] {
        let repo = root
            .path()
            .join("docker/registry/v2/repositories")
            .join(name);
        for b in img.blobs() {
            let link =
                std::fs::read_to_string(repo.join("_layers/sha256").join(b.hex()).join("link"))
                    .unwrap_or_else(|e| panic!("layer link of {} in {name}: {e}", b.digest));
            assert_eq!(link, b.digest);
        }
    }
    berth.stop();
}

/// The log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
