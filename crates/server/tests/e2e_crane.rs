//! go-containerregistry's `crane` (0.14.0, built from Debian's packaged sources by
//! scripts/lib/crane.sh) against the real `berth` binary, on the filesystem and over S3
//! (moto), with the same checks on both:
//! 1. `crane push` of OCI layouts the test built (an image and a two-platform index), read
//!    back with `crane digest`, `manifest`, `config`, `blob`, `pull --format oci` and
//!    `validate --remote`: every byte and digest is the test's;
//! 2. `crane copy` to other repositories mounts every blob (berth's access log shows one
//!    `POST .../blobs/uploads/` answered 201 per blob and no upload), `crane tag`, `ls`,
//!    `catalog`, and `crane delete` by digest (then 404) and by tag;
//! 3. `crane append` of a layer read from stdin (24 MiB) and `crane mutate --append` of a
//!    tar file, which crane compresses as it sends: each blob goes up in one PATCH of
//!    unknown length (`Transfer-Encoding: chunked`, no `Content-Length` nor
//!    `Content-Range`), then the closing PUT; the stored layers decompress to the test's
//!    tars and the config's diff IDs are the tars' digests.
//!
//! On the filesystem, also: `crane ls` of more tags than its page (1000) follows berth's
//! `Link`; with htpasswd, `crane auth login` credentials push and pull, anonymous and
//! wrong ones are refused with 401; with berth's own token issuer and the shared policy,
//! alice pushes and mounts within `team/*`, bob only reads it, anyone reads `public/**`
//! and nothing else, and only root deletes.

#[path = "support/access_log.rs"]
mod access_log;
#[path = "support/auth.rs"]
mod auth;
mod common;
#[path = "support/crane.rs"]
mod crane;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;
use std::process::Command;

use access_log::{Access, logged, since, stop_clean};
use crane::Crane;
use moto::Moto;
use oci_layout::*;
use serde_json::Value;

/// The manifest berth serves for `name:reference`, parsed (its digest checked).
fn served_manifest(berth: &common::Process, name: &str, reference: &str) -> (String, Value) {
    let r = get(berth.client(), &format!("/v2/{name}/manifests/{reference}"));
    assert_eq!(r.status, 200, "{name}:{reference}: {}", r.text());
    let digest = sha256_digest(&r.body);
    assert_eq!(r.digest(), Some(digest.as_str()), "{name}:{reference}");
    (
        digest,
        serde_json::from_slice(&r.body).expect("manifest JSON"),
    )
}

/// A blob as berth serves it, checked against its digest.
fn served_blob(berth: &common::Process, name: &str, digest: &str) -> Vec<u8> {
    let r = get(berth.client(), &format!("/v2/{name}/blobs/{digest}"));
    assert_eq!(r.status, 200, "{name}@{digest}: {}", r.text());
    assert_eq!(sha256_digest(&r.body), digest, "{name}@{digest}");
    r.body.to_vec()
}

/// `gzip -dc` of some bytes.
fn gunzip(work: &Path, bytes: &[u8]) -> Vec<u8> {
    let file = work.join(format!("gz-{}", common::free_port()));
    std::fs::write(&file, bytes).unwrap();
    common::run_bytes(Command::new("gzip").arg("-dc").arg(&file))
}

/// crane pushes a layout of `img` to `name:v1` and every read gives the test's bytes back.
fn push_and_read_back(crane: &Crane, host: &str, work: &Path, name: &str, img: &Image) {
    let layout = work.join(format!("layout-{}", name.replace('/', "-")));
    LayoutWriter::new(&layout).add_image(img, "v1");
    let reference = format!("{host}/{name}:v1");
    let refs = work.join(format!("refs-{}", common::free_port()));
    crane.ok(&[
        "push",
        layout.to_str().unwrap(),
        &reference,
        "--image-refs",
        refs.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&refs).unwrap(),
        format!("{host}/{name}@{}", img.manifest.digest)
    );
    assert_eq!(crane.ok_text(&["digest", &reference]), img.manifest.digest);
    assert!(crane.ok(&["manifest", &reference]) == img.manifest.bytes);
    assert!(crane.ok(&["config", &reference]) == img.config.bytes);
    for layer in &img.layers {
        let blob = crane.ok(&["blob", &format!("{host}/{name}@{}", layer.digest)]);
        assert!(blob == layer.bytes, "crane blob {}", layer.digest);
    }
    // crane checks each layer's digest and diff ID as it reads it.
    let validated = crane.ok_text(&["validate", "--remote", &reference]);
    assert!(validated.starts_with("PASS"), "{validated}");
    let pulled = work.join(format!("pulled-{}", common::free_port()));
    crane.pull_layout(&reference, &pulled);
    assert_layout_has_image(&pulled, &reference, img);
}

/// The same for a two-platform index: crane pushes it whole and picks a platform from it.
fn push_index_and_read_back(crane: &Crane, host: &str, work: &Path, ma: &MultiArch) {
    let layout = work.join("layout-multi");
    LayoutWriter::new(&layout).add_multi_arch(ma, "v1");
    let reference = format!("{host}/crane/multi:v1");
    crane.ok(&["push", layout.to_str().unwrap(), &reference]);
    assert_eq!(crane.ok_text(&["digest", &reference]), ma.index.digest);
    assert!(crane.ok(&["manifest", &reference]) == ma.index.bytes);
    for (arch, img) in &ma.images {
        let platform = format!("linux/{arch}");
        assert_eq!(
            crane.ok_text(&["digest", "--platform", &platform, &reference]),
            img.manifest.digest,
            "{platform}"
        );
        assert!(crane.ok(&["config", "--platform", &platform, &reference]) == img.config.bytes);
    }
    let pulled = work.join("pulled-multi");
    crane.pull_layout(&reference, &pulled);
    assert_layout_has_multi_arch(&pulled, &reference, ma);
}

/// `crane copy` of `from` to `to` (repositories of `berth`) mounts each of `blobs` into
/// `to` (a `POST` answered 201, what a cross-repository mount answers) and uploads
/// nothing; the copy serves the same manifest.
fn copy_mounts(berth: &common::Process, crane: &Crane, from: &str, to: &str, blobs: &[&Blob]) {
    let host = berth.host();
    let before = logged(berth);
    crane.ok(&[
        "copy",
        &format!("{host}/{from}:v1"),
        &format!("{host}/{to}:v1"),
    ]);
    let seen = since(berth, before);
    let uploads = format!("/v2/{to}/blobs/uploads/");
    let mount = |a: &&Access| a.method == "POST" && a.path == uploads && a.status == 201;
    assert_eq!(
        seen.iter().filter(mount).count(),
        blobs.len(),
        "mounts into {to}: {seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|a| a.path.starts_with(&uploads) && !mount(&a)),
        "crane uploaded into {to} instead of mounting: {seen:#?}"
    );
    for b in blobs {
        let blob = crane.ok(&["blob", &format!("{host}/{to}@{}", b.digest)]);
        assert!(blob == b.bytes, "{to}@{}", b.digest);
    }
    assert_eq!(
        crane.ok_text(&["digest", &format!("{host}/{to}:v1")]),
        crane.ok_text(&["digest", &format!("{host}/{from}:v1")])
    );
}

/// The request dumps (`crane -v`) of every PATCH to `name`'s uploads: request line and
/// headers.
fn patch_dumps<'a>(verbose: &'a str, name: &str) -> Vec<Vec<&'a str>> {
    let start = format!("PATCH /v2/{name}/blobs/uploads/");
    let mut dumps = Vec::new();
    let mut lines = verbose.lines();
    while let Some(line) = lines.next() {
        if line.contains(&start) {
            dumps.push(
                lines
                    .by_ref()
                    .take_while(|l| !l.trim().is_empty())
                    .collect(),
            );
        }
    }
    dumps
}

/// Each PATCH crane sent to `name` streamed its body: chunked, with no length and no range.
fn assert_streamed(verbose: &str, name: &str, patches: usize) {
    let dumps = patch_dumps(verbose, name);
    assert_eq!(dumps.len(), patches, "PATCHes to {name}:\n{verbose}");
    for headers in dumps {
        let has = |h: &str| {
            headers
                .iter()
                .any(|l| l.to_lowercase().starts_with(&format!("{h}:")))
        };
        assert!(
            headers.contains(&"Transfer-Encoding: chunked"),
            "{headers:?}"
        );
        assert!(
            !has("content-length") && !has("content-range"),
            "{headers:?}"
        );
    }
}

/// `crane <args>` with `-v` and the file `input` on stdin: stdout, and the debug log.
fn crane_verbose(crane: &Crane, args: &[&str], input: &Path) -> (String, String) {
    let args = [&["-v"][..], args].concat();
    let out = crane.run_with(&args, Some(input));
    crane::assert_success(&out, &args);
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `crane append` of a tar read from stdin (a layer whose digest crane learns only by
/// sending it) and `crane mutate --append` of a tar file: crane compresses as it sends, so
/// every PATCH is streamed; what berth stored is exactly what crane computed, and
/// decompresses to the test's tars.
fn streams_layers(berth: &common::Process, crane: &Crane, work: &Path, rng: &mut Rng) {
    let host = berth.host();
    let name = "crane/stream";
    // Random content: gzip cannot shrink it, so tens of MiB travel in one PATCH.
    let first = tar_with_file("big.bin", &rng.bytes(24 << 20));
    let second = tar_with_file("small.bin", &rng.bytes(300 * 1024));
    let (first_file, second_file) = (work.join("first.tar"), work.join("second.tar"));
    std::fs::write(&first_file, &first).unwrap();
    std::fs::write(&second_file, &second).unwrap();

    let v1 = format!("{host}/{name}:v1");
    let (printed, verbose) = crane_verbose(
        crane,
        &["append", "--oci-empty-base", "-f", "-", "-t", &v1],
        &first_file,
    );
    // The layer and the config (crane streams every blob it uploads).
    assert_streamed(&verbose, name, 2);
    let (digest, manifest) = served_manifest(berth, name, "v1");
    assert_eq!(printed, format!("{host}/{name}@{digest}"));
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], OCI_LAYER_GZIP);
    let stored = served_blob(berth, name, layer["digest"].as_str().unwrap());
    assert_eq!(layer["size"].as_u64(), Some(stored.len() as u64));
    assert!(
        gunzip(work, &stored) == first,
        "the stored layer is not the tar"
    );
    let config: Value = serde_json::from_slice(&served_blob(
        berth,
        name,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256_digest(&first));

    let before = logged(berth);
    let v2 = format!("{host}/{name}:v2");
    let (printed, verbose) = crane_verbose(
        crane,
        &[
            "mutate",
            &v1,
            "--label",
            "org.example.step=mutated",
            // A file: crane 0.14's mutate needs the new layer's diff ID before pushing,
            // which a layer read from stdin only has once sent.
            "--append",
            second_file.to_str().unwrap(),
            "-t",
            &v2,
        ],
        &second_file,
    );
    assert_streamed(&verbose, name, 2);
    let (digest2, manifest2) = served_manifest(berth, name, "v2");
    assert!(printed.ends_with(&digest2), "{printed}");
    // The first layer was there already: crane asked, and uploaded only the new blobs.
    assert_eq!(manifest2["layers"][0], *layer);
    let seen = since(berth, before);
    let layer_path = format!("/v2/{name}/blobs/{}", layer["digest"].as_str().unwrap());
    assert!(
        seen.iter()
            .any(|a| a.method == "HEAD" && a.path == layer_path && a.status == 200),
        "{seen:#?}"
    );
    let closed = seen
        .iter()
        .filter(|a| a.method == "PUT" && a.path.contains("/blobs/uploads/") && a.status == 201)
        .count();
    assert_eq!(closed, 2, "{seen:#?}");
    let added = served_blob(
        berth,
        name,
        manifest2["layers"][1]["digest"].as_str().unwrap(),
    );
    assert!(gunzip(work, &added) == second);
    let config2: Value = serde_json::from_slice(&served_blob(
        berth,
        name,
        manifest2["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        config2["rootfs"]["diff_ids"],
        serde_json::json!([sha256_digest(&first), sha256_digest(&second)])
    );
    assert_eq!(config2["config"]["Labels"]["org.example.step"], "mutated");
    assert_eq!(crane.ok_text(&["digest", &v2]), digest2);
}

/// Everything both storages are checked with: push and read back, copies by mount,
/// streamed layers, tags, catalog, deletes.
fn exercise(berth: &common::Process, crane: &Crane, work: &Path, label: &str) {
    let host = berth.host();
    let mut rng = Rng::new(label);
    let img = image(&mut rng, "amd64", &[(2 << 20) + 5, 700]);
    push_and_read_back(crane, host, work, "crane/app", &img);
    let ma = multi_arch(&mut rng, &["amd64", "arm64"]);
    push_index_and_read_back(crane, host, work, &ma);

    let blobs: Vec<&Blob> = img.blobs().collect();
    copy_mounts(berth, crane, "crane/app", "crane/copy", &blobs);
    let children: Vec<&Blob> = ma.images.iter().flat_map(|(_, i)| i.blobs()).collect();
    copy_mounts(berth, crane, "crane/multi", "crane/multi-copy", &children);

    streams_layers(berth, crane, work, &mut rng);

    let app = format!("{host}/crane/app");
    crane.ok(&["tag", &format!("{app}:v1"), "v2"]);
    assert_eq!(crane.ok_text(&["ls", &app]), "v1\nv2");
    assert_eq!(
        crane.ok_text(&["digest", &format!("{app}:v2")]),
        img.manifest.digest
    );
    assert_eq!(
        crane.ok_text(&["catalog", host]),
        "crane/app\ncrane/copy\ncrane/multi\ncrane/multi-copy\ncrane/stream"
    );

    // By digest: the manifest and its tag go from that repository only.
    let copy = format!("{host}/crane/copy@{}", img.manifest.digest);
    crane.ok(&["delete", &copy]);
    let err = crane.fails(&["manifest", &copy]);
    assert!(err.contains("MANIFEST_UNKNOWN"), "{err}");
    assert_eq!(
        resolve(berth.client(), "crane/copy", &img.manifest.digest),
        None
    );
    assert_eq!(resolve(berth.client(), "crane/copy", "v1"), None);
    assert_eq!(crane.ok_text(&["ls", &format!("{host}/crane/copy")]), "");
    assert_eq!(
        resolve(berth.client(), "crane/app", "v1").as_deref(),
        Some(img.manifest.digest.as_str())
    );
    // By tag (OCI 1.1): the tag goes, the manifest stays under its other tag.
    crane.ok(&["delete", &format!("{app}:v2")]);
    assert_eq!(crane.ok_text(&["ls", &app]), "v1");
    assert_eq!(
        crane.ok_text(&["digest", &format!("{app}:v1")]),
        img.manifest.digest
    );
}

#[test]
fn crane_on_the_filesystem() {
    let work = tempfile::tempdir().unwrap();
    let Some(crane) = Crane::new(work.path(), "fs") else {
        return;
    };
    if !common::have_tool("gzip") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let berth = common::berth(root.path(), work.path(), "");
    exercise(&berth, &crane, work.path(), "fs");
    tags_page_through_links(&berth, &crane, work.path());
    stop_clean(berth);
}

#[test]
fn crane_over_s3() {
    let work = tempfile::tempdir().unwrap();
    let Some(crane) = Crane::new(work.path(), "s3") else {
        return;
    };
    if !common::have_tool("gzip") {
        return;
    }
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("crane");
    let (config, addr) = moto.berth_config("crane", work.path(), "berth", "", "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    let berth = common::spawn(cmd, addr, work.path(), "berth");
    exercise(&berth, &crane, work.path(), "s3");
    stop_clean(berth);
}

/// More tags than crane asks for in one page (`n=1000`): crane follows berth's `Link` to
/// the second page and lists them all.
fn tags_page_through_links(berth: &common::Process, crane: &Crane, work: &Path) {
    let name = "crane/many";
    let img = image(&mut Rng::new("many"), "amd64", &[100]);
    push_and_read_back(crane, berth.host(), work, name, &img);
    let mut expected: Vec<String> = (0..1000).map(|i| format!("t{i:04}")).collect();
    for tag in &expected {
        put_manifest(berth.client(), name, tag, &img.manifest);
    }
    expected.push("v1".to_owned());
    let before = logged(berth);
    let listed = crane.ok_text(&["ls", &format!("{}/{name}", berth.host())]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), expected);
    let pages = since(berth, before)
        .iter()
        .filter(|a| a.method == "GET" && a.path == format!("/v2/{name}/tags/list"))
        .count();
    assert_eq!(pages, 2, "crane did not page");
}

#[test]
fn crane_logs_in_with_htpasswd() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let Some(alice) = Crane::new(d, "alice") else {
        return;
    };
    if !common::have_tool("htpasswd") {
        return;
    }
    let anonymous = Crane::new(d, "anonymous").unwrap();
    let root = tempfile::tempdir().unwrap();
    let users = auth::htpasswd_file(d, &[("alice", "a-pw")]);
    let berth = common::berth(
        root.path(),
        d,
        &format!(
            "auth:\n  htpasswd:\n    realm: crane\n    path: {}\n",
            users.display()
        ),
    );
    let host = berth.host();
    let img = image(&mut Rng::new("htpasswd"), "amd64", &[40 * 1024, 300]);
    let layout = d.join("layout");
    LayoutWriter::new(&layout).add_image(&img, "v1");
    let reference = format!("{host}/team/app:v1");

    // crane stores what it is given; berth decides.
    alice.ok(&["auth", "login", host, "-u", "alice", "-p", "wrong"]);
    let err = alice.fails(&["push", layout.to_str().unwrap(), &reference]);
    assert!(err.contains("401 Unauthorized"), "{err}");
    alice.ok(&["auth", "login", host, "-u", "alice", "-p", "a-pw"]);
    push_and_read_back(&alice, host, d, "team/app", &img);

    let err = anonymous.fails(&["manifest", &reference]);
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    let err = anonymous.fails(&["catalog", host]);
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    assert_eq!(
        access_log::count(&berth.log_text(), "GET", "/v2/team/app/manifests/v1", 401),
        1
    );
    stop_clean(berth);
}

#[test]
fn crane_takes_tokens_from_berths_issuer() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let Some(alice) = Crane::new(d, "alice") else {
        return;
    };
    if !common::have_tool("htpasswd") || !common::have_tool("openssl") {
        return;
    }
    let (bob, root_user, anonymous) = (
        Crane::new(d, "bob").unwrap(),
        Crane::new(d, "root").unwrap(),
        Crane::new(d, "anonymous").unwrap(),
    );
    let root = tempfile::tempdir().unwrap();
    let (key, cert) = auth::signing_pair(d, "issuer");
    let users = auth::htpasswd_file(d, &[("alice", "a-pw"), ("bob", "b-pw"), ("root", "r-pw")]);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let extra = format!(
        "auth:\n  token:\n    realm: http://{addr}/auth/token\n    service: registry.test\n    issuer: berth-issuer\n    rootcertbundle: {}\n{}    users: {}\n    issuer:\n      key: {}\n",
        cert.display(),
        auth::POLICY,
        users.display(),
        key.display()
    );
    let (config, addr) = common::berth_config_on(&addr, root.path(), d, "", &extra);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    let berth = common::spawn(cmd, addr, d, "berth");
    let host = berth.host();
    for (crane, user, pw) in [
        (&alice, "alice", "a-pw"),
        (&bob, "bob", "b-pw"),
        (&root_user, "root", "r-pw"),
    ] {
        crane.ok(&["auth", "login", host, "-u", user, "-p", pw]);
    }
    let mut rng = Rng::new("token");
    let img = image(&mut rng, "amd64", &[64 * 1024, 300]);

    // alice pushes team/*, and copies by mount within it: her token for the copy names
    // both repositories.
    let tokens = access_log::count(&berth.log_text(), "GET", "/auth/token", 200);
    push_and_read_back(&alice, host, d, "team/app", &img);
    assert!(access_log::count(&berth.log_text(), "GET", "/auth/token", 200) > tokens);
    let blobs: Vec<&Blob> = img.blobs().collect();
    copy_mounts(&berth, &alice, "team/app", "team/copy", &blobs);

    // bob reads team/* but may not push there.
    let reference = format!("{host}/team/app:v1");
    assert!(bob.ok(&["manifest", &reference]) == img.manifest.bytes);
    let err = bob.fails(&["copy", &reference, &format!("{host}/team/bob:v1")]);
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    assert_eq!(resolve_as(&root_user, host, "team/bob:v1"), None);

    // Anyone reads public/**, nothing else.
    let public = image(&mut rng, "amd64", &[1000]);
    push_and_read_back(&root_user, host, d, "public/base", &public);
    assert!(
        anonymous.ok(&["manifest", &format!("{host}/public/base:v1")]) == public.manifest.bytes
    );
    let err = anonymous.fails(&["manifest", &reference]);
    assert!(err.contains("UNAUTHORIZED"), "{err}");

    // Only root deletes.
    let by_digest = format!("{host}/team/copy@{}", img.manifest.digest);
    let err = alice.fails(&["delete", &by_digest]);
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    root_user.ok(&["delete", &by_digest]);
    assert_eq!(resolve_as(&root_user, host, "team/copy:v1"), None);
    stop_clean(berth);
}

/// The digest `crane` finds for `reference` on `host`, `None` when berth knows no such
/// manifest.
fn resolve_as(crane: &Crane, host: &str, reference: &str) -> Option<String> {
    let out = crane.run(&["digest", &format!("{host}/{reference}")]);
    if out.status.success() {
        return Some(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MANIFEST_UNKNOWN") || err.contains("404"),
        "{err}"
    );
    None
}
