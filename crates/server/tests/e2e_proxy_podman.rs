//! podman pulls through the pull-through cache (distribution 2.8.2 upstream on
//! loopback) with the digests skopeo sees, twice: the second pull fetches no blob from the
//! upstream. podman runs with storage, run and config directories of the test's own
//! (vfs driver, cgroupfs, file events), so the machine's containers are never touched.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;
#[path = "support/podman.rs"]
mod podman;

use std::path::Path;
use std::process::Command;

use oci_layout::*;

/// Lines of a distribution access log that are GETs of blobs of `repo`.
fn blob_gets(log: &str, repo: &str) -> usize {
    log.matches(&format!("\"GET /v2/{repo}/blobs/")).count()
}

/// podman with every directory under `dir`.
fn podman(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("podman");
    for (var, sub) in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_RUNTIME_DIR", "xdg-run"),
        ("HOME", "home"),
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        cmd.env(var, dir.join(sub));
    }
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    podman::isolate(&mut cmd, dir);
    cmd.args(args);
    common::run(&mut cmd).trim().to_owned()
}

#[test]
fn podman_pulls_through_the_cache_with_skopeos_digests() {
    if !common::have_tool("podman")
        || !common::have_tool("skopeo")
        || !common::have_tool("docker-registry")
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (up_root, cache_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = work.path();
    let upstream = common::distribution(up_root.path(), w);
    let img = image(&mut Rng::new("podman-proxy"), "amd64", &[200_000, 3000]);
    let src = w.join("src");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let dest = format!("docker://{}/library/tool:v1", upstream.host());
    skopeo_copy(&[], &layout_str(&src, "v1"), &dest, w);
    let cache = common::berth(
        cache_root.path(),
        w,
        &format!("proxy:\n  remoteurl: http://{}\n", upstream.host()),
    );
    let reference = format!("{}/library/tool:v1", cache.host());

    for (round, dir) in ["podman-cold", "podman-warm"].into_iter().enumerate() {
        let dir = w.join(dir);
        podman(&dir, &["pull", "--quiet", "--tls-verify=false", &reference]);
        let digest = podman(
            &dir,
            &["image", "inspect", "--format", "{{.Digest}}", &reference],
        );
        assert_eq!(digest, img.manifest.digest, "round {round}");
        let via_skopeo = skopeo_copy(
            &[],
            &format!("docker://{reference}"),
            &layout_str(&w.join(format!("skopeo-{round}")), "v1"),
            w,
        );
        assert_eq!(
            via_skopeo, digest,
            "round {round}: skopeo and podman differ"
        );
        let layers = podman(
            &dir,
            &[
                "image",
                "inspect",
                "--format",
                "{{len .RootFS.Layers}}",
                &reference,
            ],
        );
        assert_eq!(layers, img.layers.len().to_string());
    }
    assert_eq!(
        blob_gets(&upstream.log_text(), "library/tool"),
        img.blobs().count(),
        "one upstream GET per blob over both pulls"
    );
    cache.stop();
    upstream.stop();
}
