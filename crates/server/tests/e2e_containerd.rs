//! containerd's `ctr`, through a containerd daemon of the test's own, against the real
//! `berth` binary over plain HTTP (filesystem storage):
//! 1. `ctr images pull --plain-http` of an image skopeo pushed: containerd resolves the
//!    tag (HEAD), fetches the manifest by digest and every blob, unpacks the layers, and
//!    reports the image's manifest digest; its content store holds the test's bytes;
//! 2. `ctr images tag` + `ctr images push --plain-http` of that image to another
//!    repository: containerd remembers where the content came from and mounts each blob
//!    (HEAD 404, then `POST ?mount=&from=` answered 201), then PUTs the manifest;
//! 3. `ctr images import` of an OCI archive the test built, then a push: with no source
//!    to mount from, containerd uploads each blob in one monolithic PUT after its POST
//!    (no PATCH);
//! 4. a two-platform index skopeo pushed: ctr pulls all platforms and pushes the index to
//!    another repository (child manifests PUT by digest, then the index by tag).
//!
//! After each push berth serves the test's manifest and blobs, and skopeo pulls the
//! pushed image back with the same digest.

#[path = "support/access_log.rs"]
mod access_log;
mod common;
#[path = "support/containerd.rs"]
mod containerd;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;
use std::process::Command;

use access_log::{Access, logged, since, stop_clean};
use containerd::Containerd;
use oci_layout::*;

/// How many of `seen` were `method` on `path` (exactly, or as a prefix when it ends in
/// `*`) answered with `status`.
fn count(seen: &[Access], method: &str, path: &str, status: u16) -> usize {
    seen.iter()
        .filter(|a| a.method == method && a.status == status)
        .filter(|a| match path.strip_suffix('*') {
            Some(prefix) => a.path.starts_with(prefix),
            None => a.path == path,
        })
        .count()
}

/// The digest `ctr images ls` gives for `reference`.
fn listed_digest(containerd: &Containerd, reference: &str) -> String {
    let listing = containerd.ctr_ok(&["images", "ls"]);
    let line = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(reference))
        .unwrap_or_else(|| panic!("{reference} not in\n{listing}"));
    line.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no digest in {line}"))
        .to_owned()
}

/// containerd's content store holds every blob of `img`, byte for byte.
fn assert_content(containerd: &Containerd, img: &Image) {
    for blob in std::iter::once(&img.manifest).chain(img.blobs()) {
        let out = containerd.ctr(&["content", "get", &blob.digest]);
        assert!(
            out.status.success() && out.stdout == blob.bytes,
            "containerd holds another {}",
            blob.digest
        );
    }
}

/// `ctr images push --plain-http` of `reference` (`host/name:tag`): berth then serves
/// `img` under it and skopeo pulls it back with its digest. Answers the requests the
/// push made.
fn push(
    berth: &common::Process,
    containerd: &Containerd,
    work: &Path,
    name: &str,
    img: &Image,
) -> Vec<Access> {
    let reference = format!("{}/{name}:v1", berth.host());
    let before = logged(berth);
    containerd.ctr_ok(&["images", "push", "--plain-http", &reference]);
    let seen = since(berth, before);
    assert_eq!(
        resolve(berth.client(), name, "v1").as_deref(),
        Some(img.manifest.digest.as_str())
    );
    assert_blobs_served(berth.client(), name, img);
    let out = work.join(format!("skopeo-{}", name.replace('/', "-")));
    let pulled = skopeo_copy(
        &[],
        &format!("docker://{reference}"),
        &layout_str(&out, "v1"),
        work,
    );
    assert_eq!(pulled, img.manifest.digest);
    assert_layout_has_image(&out, "v1", img);
    seen
}

#[test]
fn ctr_pulls_and_pushes() {
    if !containerd::installed() || !common::have_tool("skopeo") || !common::have_tool("tar") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let root = tempfile::tempdir().unwrap();
    let berth = common::berth(root.path(), d, "");
    let host = berth.host();
    let containerd = Containerd::start(&d.join("containerd"));
    let mut rng = Rng::new("containerd");

    // 1. Pull what skopeo pushed.
    let img = image(&mut rng, "amd64", &[(1 << 20) + 3, 500]);
    let src = d.join("src");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let source = format!("{host}/ctr/src:v1");
    let pushed = skopeo_copy(
        &[],
        &layout_str(&src, "v1"),
        &format!("docker://{source}"),
        d,
    );
    assert_eq!(pushed, img.manifest.digest);
    let before = logged(&berth);
    let out = containerd.ctr_ok(&[
        "images",
        "pull",
        "--plain-http",
        // Unpacks by copying: no overlay mount needed on the test machine.
        "--snapshotter",
        "native",
        &source,
    ]);
    assert!(
        out.contains(&format!("unpacking linux/amd64 {}", img.manifest.digest)),
        "{out}"
    );
    assert_eq!(listed_digest(&containerd, &source), img.manifest.digest);
    assert_content(&containerd, &img);
    let seen = since(&berth, before);
    assert_eq!(count(&seen, "HEAD", "/v2/ctr/src/manifests/v1", 200), 1);
    let by_digest = format!("/v2/ctr/src/manifests/{}", img.manifest.digest);
    assert_eq!(count(&seen, "GET", &by_digest, 200), 1, "{seen:#?}");
    for b in img.blobs() {
        let path = format!("/v2/ctr/src/blobs/{}", b.digest);
        assert_eq!(count(&seen, "GET", &path, 200), 1, "{seen:#?}");
    }

    // 2. Tag and push to another repository: every blob is mounted.
    let copy = format!("{host}/ctr/copy:v1");
    containerd.ctr_ok(&["images", "tag", &source, &copy]);
    let seen = push(&berth, &containerd, d, "ctr/copy", &img);
    let blobs = img.blobs().count();
    assert_eq!(count(&seen, "HEAD", "/v2/ctr/copy/blobs/*", 404), blobs);
    assert_eq!(
        count(&seen, "POST", "/v2/ctr/copy/blobs/uploads/", 201),
        blobs,
        "{seen:#?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|a| a.path.starts_with("/v2/ctr/copy/blobs/uploads/"))
            .count(),
        blobs,
        "containerd uploaded instead of mounting: {seen:#?}"
    );
    assert_eq!(count(&seen, "PUT", "/v2/ctr/copy/manifests/v1", 201), 1);

    // 3. Import an OCI archive and push it: every blob is uploaded.
    let imported = image(&mut rng, "amd64", &[(2 << 20) + 11, 900]);
    let layout = d.join("import");
    LayoutWriter::new(&layout).add_image(&imported, "v1");
    let archive = d.join("import.tar");
    common::run(
        Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    let base = format!("{host}/ctr/imported");
    containerd.ctr_ok(&[
        "images",
        "import",
        "--snapshotter",
        "native",
        "--base-name",
        &base,
        archive.to_str().unwrap(),
    ]);
    assert_eq!(
        listed_digest(&containerd, &format!("{base}:v1")),
        imported.manifest.digest
    );
    let seen = push(&berth, &containerd, d, "ctr/imported", &imported);
    let blobs = imported.blobs().count();
    let uploads = "/v2/ctr/imported/blobs/uploads/";
    assert_eq!(count(&seen, "HEAD", "/v2/ctr/imported/blobs/*", 404), blobs);
    assert_eq!(count(&seen, "POST", uploads, 202), blobs, "{seen:#?}");
    assert_eq!(count(&seen, "PUT", &format!("{uploads}*"), 201), blobs);
    assert_eq!(count(&seen, "PATCH", &format!("{uploads}*"), 202), 0);
    assert_eq!(count(&seen, "PUT", "/v2/ctr/imported/manifests/v1", 201), 1);

    pulls_and_pushes_an_index(&berth, &containerd, d, &mut rng);
    stop_clean(berth);
}

/// A two-platform index skopeo pushed: ctr pulls every platform (child manifests fetched
/// by digest) and pushes it all to another repository, children by digest first.
fn pulls_and_pushes_an_index(
    berth: &common::Process,
    containerd: &Containerd,
    work: &Path,
    rng: &mut Rng,
) {
    let host = berth.host();
    let ma = multi_arch(rng, &["amd64", "arm64"]);
    let src = work.join("multi");
    LayoutWriter::new(&src).add_multi_arch(&ma, "v1");
    let source = format!("{host}/ctr/multi:v1");
    skopeo_copy(
        &["--all"],
        &layout_str(&src, "v1"),
        &format!("docker://{source}"),
        work,
    );
    containerd.ctr_ok(&[
        "images",
        "pull",
        "--plain-http",
        "--all-platforms",
        "--snapshotter",
        "native",
        &source,
    ]);
    assert_eq!(listed_digest(containerd, &source), ma.index.digest);
    let out = containerd.ctr(&["content", "get", &ma.index.digest]);
    assert!(
        out.stdout == ma.index.bytes,
        "containerd holds another index"
    );
    for (_, img) in &ma.images {
        assert_content(containerd, img);
    }

    let copy = format!("{host}/ctr/multi-copy:v1");
    containerd.ctr_ok(&["images", "tag", &source, &copy]);
    let before = logged(berth);
    containerd.ctr_ok(&["images", "push", "--plain-http", &copy]);
    let seen = since(berth, before);
    for (arch, img) in &ma.images {
        let path = format!("/v2/ctr/multi-copy/manifests/{}", img.manifest.digest);
        assert_eq!(count(&seen, "PUT", &path, 201), 1, "{arch}: {seen:#?}");
        assert_eq!(
            resolve(berth.client(), "ctr/multi-copy", &img.manifest.digest).as_deref(),
            Some(img.manifest.digest.as_str())
        );
        assert_blobs_served(berth.client(), "ctr/multi-copy", img);
    }
    assert_eq!(
        count(&seen, "PUT", "/v2/ctr/multi-copy/manifests/v1", 201),
        1
    );
    let r = get(berth.client(), "/v2/ctr/multi-copy/manifests/v1");
    assert!(r.body == ma.index.bytes, "the pushed index differs");
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
}
