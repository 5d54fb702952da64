//! End-to-end: `berth garbage-collect` on the real binary, over storage written by berth
//! (skopeo pushes, a multi-arch index, referrers pushed with berth-client, deletes through
//! the API) and by CNCF distribution 2.8.2 (Debian's `docker-registry`), compared with
//! distribution's own `garbage-collect` on copies of the same root.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_layout::*;
use serde_json::json;
use tempfile::TempDir;

/// The data of a gzip stream made of stored deflate blocks (what `gzip_stored` writes).
fn gunzip_stored(gz: &[u8]) -> Vec<u8> {
    let (mut at, mut out) = (10, Vec::new());
    loop {
        let last = gz[at] & 1 == 1;
        let len = usize::from(u16::from_le_bytes([gz[at + 1], gz[at + 2]]));
        out.extend_from_slice(&gz[at + 5..at + 5 + len]);
        at += 5 + len;
        if last {
            return out;
        }
    }
}

/// An image whose layers are `shared` (taken from another image) then one new layer of
/// `size` random bytes; its config carries the right diff IDs.
fn image_sharing(rng: &mut Rng, shared: &[Blob], size: usize) -> Image {
    let fresh = image(rng, "amd64", &[size]);
    let layers: Vec<Blob> = shared.iter().chain(&fresh.layers).cloned().collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| sha256_digest(&gunzip_stored(&l.bytes)))
        .collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [format!("NONCE={:016x}", rng.next_u64())]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    Image {
        manifest: Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap()),
        config,
        layers,
    }
}

/// Pushes every blob of `img` and its manifest under `reference` with berth-client.
fn push_by_hand(reg: &berth_client::BlockingClient, name: &str, img: &Image, reference: &str) {
    for b in img.blobs() {
        push_blob_monolithic(reg, name, b);
    }
    put_manifest(reg, name, reference, &img.manifest);
}

/// Every file under `root` by relative path, with its contents.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().into_string().expect("utf8 name");
            let rel = format!("{rel}/{name}");
            if entry.file_type().expect("file type").is_dir() {
                walk(&entry.path(), &rel, out);
            } else {
                out.insert(rel, std::fs::read(entry.path()).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root.join("docker/registry/v2"), "", &mut out);
    out
}

/// The digests of the blobs in `blobs/` (`<hex>/data` files).
fn blob_files(root: &Path) -> BTreeSet<String> {
    files(root)
        .keys()
        .filter_map(|p| {
            let rest = p.strip_prefix("/blobs/sha256/")?.strip_suffix("/data")?;
            Some(format!("sha256:{}", rest.rsplit('/').next()?))
        })
        .collect()
}

/// `<root>/docker/registry/v2/<dir>/<hex>`: a digest's directory in the layout.
fn digest_dir(root: &Path, dir: &str, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    root.join("docker/registry/v2").join(dir).join(hex)
}

fn blob_dir(root: &Path, digest: &str) -> PathBuf {
    let prefix = &digest["sha256:".len()..][..2];
    digest_dir(root, &format!("blobs/sha256/{prefix}"), digest)
}

fn layer_link(root: &Path, name: &str, digest: &str) -> PathBuf {
    digest_dir(root, &format!("repositories/{name}/_layers/sha256"), digest)
}

fn revision(root: &Path, name: &str, digest: &str) -> PathBuf {
    let dir = format!("repositories/{name}/_manifests/revisions/sha256");
    digest_dir(root, &dir, digest)
}

/// Runs a garbage collector (`berth` or `docker-registry`) on `config`; answers its
/// standard output and error, failing unless it exits 0.
fn collect(program: &str, config: &Path, flags: &[&str]) -> (String, String) {
    let out = Command::new(program)
        .arg("garbage-collect")
        .args(flags)
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{program} garbage-collect {flags:?} exited with {}:\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn berth_gc(config: &Path, flags: &[&str]) -> (String, String) {
    collect(env!("CARGO_BIN_EXE_berth"), config, flags)
}

/// The digests a report names on `blob eligible for deletion:` lines.
fn eligible_blobs(report: &str) -> BTreeSet<String> {
    prefixed(report, "blob eligible for deletion: ")
}

/// The digests a report names on `manifest eligible for deletion:` lines.
fn eligible_manifests(report: &str) -> BTreeSet<String> {
    prefixed(report, "manifest eligible for deletion: ")
}

fn prefixed(report: &str, prefix: &str) -> BTreeSet<String> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::to_owned)
        .collect()
}

/// A config for distribution on `root` (delete enabled).
fn distribution_config(root: &Path, work: &Path, name: &str) -> PathBuf {
    let config = work.join(format!("{name}.yml"));
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n",
        root.display(),
        common::free_port()
    );
    std::fs::write(&config, yaml).expect("write config");
    config
}

/// `cp -a` of a storage root (small test data) into a new temporary directory.
fn copy_root(root: &Path) -> TempDir {
    let copy = tempfile::tempdir().unwrap();
    common::run(
        Command::new("cp")
            .arg("-a")
            .arg(root.join("docker"))
            .arg(copy.path()),
    );
    copy
}

/// What the berth scenario pushed and deleted.
struct Pushed {
    base: Image,
    derived: Image,
    doomed: Image,
    multi: MultiArch,
    signature: Image,
    orphan_signature: Image,
    untagged: Image,
    orphan: Blob,
}

impl Pushed {
    /// Everything collected without `--delete-untagged`: the deleted image's own blobs,
    /// its manifest, and the blob no manifest ever referenced.
    fn unreferenced(&self) -> BTreeSet<String> {
        let doomed = &self.doomed;
        [
            &doomed.manifest,
            &doomed.config,
            &doomed.layers[1],
            &self.orphan,
        ]
        .iter()
        .map(|b| b.digest.clone())
        .collect()
    }
}

/// Pushes the scenario into a running berth and deletes part of it.
///
/// `team/app`: `v1` (base), `v2` sharing base's first layer, `v3` sharing it too then
/// deleted by digest; a signature of base and one of `v3` (pushed before the delete, its
/// subject then gone); an image pushed by digest only; a blob no manifest names.
/// `team/multi:multi`: a two-platform index (children untagged).
fn push_scenario(berth: &common::Process, work: &Path, label: &str) -> Pushed {
    let (host, reg) = (berth.host(), berth.client());
    let mut rng = Rng::new(label);
    let base = image(&mut rng, "amd64", &[6000, 3000]);
    let derived = image_sharing(&mut rng, &base.layers[..1], 2000);
    let doomed = image_sharing(&mut rng, &base.layers[..1], 2500);
    let multi = multi_arch(&mut rng, &["amd64", "arm64"]);
    let layout = work.join(format!("src-{label}"));
    let mut w = LayoutWriter::new(&layout);
    w.add_image(&base, "v1");
    w.add_image(&derived, "v2");
    w.add_image(&doomed, "v3");
    w.add_multi_arch(&multi, "multi");
    for (tag, img) in [("v1", &base), ("v2", &derived), ("v3", &doomed)] {
        let dest = format!("docker://{host}/team/app:{tag}");
        let pushed = skopeo_copy(&[], &layout_str(&layout, tag), &dest, work);
        assert_eq!(pushed, img.manifest.digest, "{tag}");
    }
    let dest = format!("docker://{host}/team/multi:multi");
    let flags = ["--all", "--preserve-digests"];
    let pushed = skopeo_copy(&flags, &layout_str(&layout, "multi"), &dest, work);
    assert_eq!(pushed, multi.index.digest);

    let signature = referrer(&mut rng, &base.manifest);
    push_by_hand(reg, "team/app", &signature, &signature.manifest.digest);
    let orphan_signature = referrer(&mut rng, &doomed.manifest);
    push_by_hand(
        reg,
        "team/app",
        &orphan_signature,
        &orphan_signature.manifest.digest,
    );
    let untagged = image(&mut rng, "arm64", &[1500]);
    push_by_hand(reg, "team/app", &untagged, &untagged.manifest.digest);
    let orphan = Blob::new("application/octet-stream", rng.bytes(700));
    push_blob_monolithic(reg, "team/app", &orphan);
    delete_manifest(reg, "team/app", &doomed.manifest.digest);
    Pushed {
        base,
        derived,
        doomed,
        multi,
        signature,
        orphan_signature,
        untagged,
        orphan,
    }
}

/// A storage root berth wrote with [`push_scenario`] (berth stopped), with the work
/// directory; `None` when a tool is missing (see `common::have_tool`).
fn berth_root(label: &str, tools: &[&str]) -> Option<(TempDir, TempDir, Pushed)> {
    if !tools.iter().all(|t| common::have_tool(t)) {
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth = common::berth(root.path(), work.path(), "");
    let pushed = push_scenario(&berth, work.path(), label);
    berth.stop();
    Some((work, root, pushed))
}

/// The referrers berth lists for `subject` in `team/app`.
fn referrers_of(reg: &berth_client::BlockingClient, subject: &str) -> BTreeSet<String> {
    let r = reg
        .run(|c| c.referrers("team/app", subject, None))
        .expect("referrers");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().expect("JSON")["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// Pulls every tagged image with skopeo into layouts and checks every byte and digest.
fn assert_survivors_pull(registry: &common::Process, p: &Pushed, work: &Path, label: &str) {
    let host = registry.host();
    for (tag, img) in [("v1", &p.base), ("v2", &p.derived)] {
        let out = work.join(format!("pull-{label}-{tag}"));
        let src = format!("docker://{host}/team/app:{tag}");
        let pulled = skopeo_copy(&[], &src, &layout_str(&out, tag), work);
        assert_eq!(pulled, img.manifest.digest, "{label}: team/app:{tag}");
        assert_layout_has_image(&out, tag, img);
    }
    let out = work.join(format!("pull-{label}-multi"));
    let src = format!("docker://{host}/team/multi:multi");
    let flags = ["--all", "--preserve-digests"];
    let pulled = skopeo_copy(&flags, &src, &layout_str(&out, "multi"), work);
    assert_eq!(pulled, p.multi.index.digest, "{label}: team/multi:multi");
    assert_layout_has_multi_arch(&out, "multi", &p.multi);
    let reg = registry.client();
    assert_blobs_served(reg, "team/app", &p.signature);
    assert_eq!(
        resolve(reg, "team/app", &p.signature.manifest.digest),
        Some(p.signature.manifest.digest.clone()),
        "{label}: signature of v1"
    );
}

#[test]
fn collects_what_berth_wrote() {
    let Some((work, root, p)) = berth_root("gc-berth", &["skopeo"]) else {
        return;
    };
    let (config, _) = common::berth_config(root.path(), work.path(), "", "");

    // A dry run reports and removes nothing.
    let before = files(root.path());
    let (report, removals) = berth_gc(&config, &["--dry-run"]);
    assert_eq!(files(root.path()), before, "--dry-run changed the storage");
    assert!(removals.is_empty(), "{removals}");
    assert_eq!(eligible_blobs(&report), p.unreferenced(), "{report}");
    let (short, _) = berth_gc(&config, &["-d"]);
    assert_eq!(short, report, "-d and --dry-run differ");
    assert_eq!(files(root.path()), before, "-d changed the storage");
    for line in [
        "team/app".to_owned(),
        format!("team/app: marking manifest {} ", p.untagged.manifest.digest),
        format!("team/app: marking blob {}", p.base.layers[0].digest),
        format!(
            "team/multi: marking blob {}",
            p.multi.images[0].1.manifest.digest
        ),
        String::new(),
    ] {
        assert!(
            report.lines().any(|l| l == line),
            "{line:?} missing:\n{report}"
        );
    }
    let marked: BTreeSet<&str> = report
        .lines()
        .filter(|l| l.contains(": marking "))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let summary = format!(
        "{} blobs marked, {} blobs and 0 manifests eligible for deletion",
        marked.len(),
        p.unreferenced().len()
    );
    assert!(
        report.lines().any(|l| l == summary),
        "{summary:?} missing:\n{report}"
    );

    // The real run: the unreferenced blobs and their layer links go, nothing else.
    let (again, removals) = berth_gc(&config, &[]);
    assert_eq!(again, report, "the real run reports what the dry run did");
    for digest in p.unreferenced() {
        assert!(
            !blob_dir(root.path(), &digest).exists(),
            "{digest} still in blobs/"
        );
        assert!(
            removals.contains(&format!(
                "removed {}",
                blob_dir(root.path(), &digest).display()
            )),
            "{removals}"
        );
        assert!(
            !layer_link(root.path(), "team/app", &digest).exists(),
            "layer link of swept {digest}"
        );
    }
    assert!(layer_link(root.path(), "team/app", &p.base.layers[0].digest).exists());
    let after = files(root.path());
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    // Per unreferenced blob: its data; per linked one (all but the manifest): its link.
    assert_eq!(gone.len(), 2 * p.unreferenced().len() - 1, "{gone:#?}");

    let berth = common::berth(root.path(), work.path(), "");
    assert_survivors_pull(&berth, &p, work.path(), "after-gc");
    let reg = berth.client();
    assert_eq!(
        resolve(reg, "team/app", &p.untagged.manifest.digest),
        Some(p.untagged.manifest.digest.clone()),
        "untagged manifests stay without --delete-untagged"
    );
    assert_blobs_served(reg, "team/app", &p.orphan_signature);
    assert_eq!(resolve(reg, "team/app", "v3"), None);
    berth.stop();

    // --delete-untagged: the image pushed by digest and the signature of the deleted v3
    // go; the index's children and the signature of v1 stay.
    let (report, _) = berth_gc(&config, &["-m"]);
    let expected: BTreeSet<String> = [&p.untagged, &p.orphan_signature]
        .iter()
        .map(|i| i.manifest.digest.clone())
        .collect();
    assert_eq!(eligible_manifests(&report), expected, "{report}");
    let untagged_blobs: BTreeSet<String> = [&p.untagged, &p.orphan_signature]
        .iter()
        .flat_map(|i| i.blobs().chain([&i.manifest]))
        .map(|b| b.digest.clone())
        // The empty config is shared with the signature of v1.
        .filter(|d| *d != p.signature.config.digest)
        .collect();
    assert_eq!(eligible_blobs(&report), untagged_blobs, "{report}");
    for (_, img) in &p.multi.images {
        assert!(revision(root.path(), "team/multi", &img.manifest.digest).exists());
    }
    for digest in &expected {
        assert!(
            !revision(root.path(), "team/app", digest).exists(),
            "{digest}"
        );
    }
    for digest in &untagged_blobs {
        assert!(!blob_dir(root.path(), digest).exists(), "{digest}");
    }
    let berth = common::berth(root.path(), work.path(), "");
    assert_survivors_pull(&berth, &p, work.path(), "after-m");
    let reg = berth.client();
    assert_eq!(resolve(reg, "team/app", &p.untagged.manifest.digest), None);
    assert_eq!(
        referrers_of(reg, &p.base.manifest.digest),
        BTreeSet::from([p.signature.manifest.digest.clone()])
    );
    assert!(referrers_of(reg, &p.doomed.manifest.digest).is_empty());
    berth.stop();
}

#[test]
fn agrees_with_distribution_on_a_berth_root() {
    let Some((work, root, p)) = berth_root("gc-agree", &["skopeo", "docker-registry"]) else {
        return;
    };

    // Without --delete-untagged: the same report (distribution prints eligible blobs in
    // no particular order) and the same blobs kept. berth also removes the layer links
    // of the blobs it deletes; distribution leaves them dangling.
    let (d_root, b_root) = (copy_root(root.path()), copy_root(root.path()));
    let d_config = distribution_config(d_root.path(), work.path(), "dist-gc");
    let (b_config, _) = common::berth_config(b_root.path(), work.path(), "", "");
    let (d_report, _) = collect("docker-registry", &d_config, &[]);
    let (b_report, _) = berth_gc(&b_config, &[]);
    let sorted = |r: &str| r.lines().map(str::to_owned).collect::<Vec<_>>();
    let (mut d_lines, mut b_lines) = (sorted(&d_report), sorted(&b_report));
    d_lines.sort();
    b_lines.sort();
    assert_eq!(
        b_lines, d_lines,
        "berth:\n{b_report}\ndistribution:\n{d_report}"
    );
    assert_eq!(eligible_blobs(&d_report), p.unreferenced());
    assert_eq!(blob_files(b_root.path()), blob_files(d_root.path()));
    let (d_files, b_files) = (files(d_root.path()), files(b_root.path()));
    let only_d: BTreeSet<&String> = d_files
        .keys()
        .filter(|k| !b_files.contains_key(*k))
        .collect();
    let only_b: Vec<&String> = b_files
        .keys()
        .filter(|k| !d_files.contains_key(*k))
        .collect();
    assert!(only_b.is_empty(), "{only_b:#?}");
    let dangling: BTreeSet<String> = p
        .unreferenced()
        .iter()
        .filter(|d| **d != p.doomed.manifest.digest)
        .map(|d| {
            format!(
                "/repositories/team/app/_layers/sha256/{}/link",
                d.strip_prefix("sha256:").unwrap()
            )
        })
        .collect();
    assert_eq!(
        only_d,
        dangling.iter().collect(),
        "distribution's dangling links"
    );

    // With --delete-untagged, distribution 2.8.2 also deletes the children of the tagged
    // index and the signature of v1, and their blobs (its data-loss bug); berth keeps them.
    let (d_root, b_root) = (copy_root(root.path()), copy_root(root.path()));
    let d_config = distribution_config(d_root.path(), work.path(), "dist-gc-m");
    let (b_config, _) = common::berth_config(b_root.path(), work.path(), "", "");
    let (d_report, _) = collect("docker-registry", &d_config, &["--delete-untagged"]);
    let (b_report, _) = berth_gc(&b_config, &["--delete-untagged"]);
    let children: BTreeSet<String> = p
        .multi
        .images
        .iter()
        .map(|(_, i)| i.manifest.digest.clone())
        .collect();
    let mut lost = children.clone();
    lost.insert(p.signature.manifest.digest.clone());
    let b_deleted = eligible_manifests(&b_report);
    let d_deleted = eligible_manifests(&d_report);
    assert_eq!(
        d_deleted
            .difference(&b_deleted)
            .cloned()
            .collect::<BTreeSet<_>>(),
        lost,
        "berth:\n{b_report}\ndistribution:\n{d_report}"
    );
    assert!(b_deleted.is_subset(&d_deleted));
    let (d_blobs, b_blobs) = (blob_files(d_root.path()), blob_files(b_root.path()));
    assert!(d_blobs.is_subset(&b_blobs));
    // The children's bytes stay even there: the index still references them.
    let mut lost_blobs: BTreeSet<String> = BTreeSet::new();
    for (_, img) in &p.multi.images {
        lost_blobs.extend(img.blobs().map(|b| b.digest.clone()));
    }
    // The signature of v1, and the empty config it shared with the signature of v3.
    lost_blobs.extend(
        p.signature
            .blobs()
            .chain([&p.signature.manifest])
            .map(|b| b.digest.clone()),
    );
    assert_eq!(
        b_blobs
            .difference(&d_blobs)
            .cloned()
            .collect::<BTreeSet<_>>(),
        lost_blobs,
        "blobs berth keeps and distribution deletes"
    );
}

#[test]
fn collects_what_distribution_wrote_on_a_read_only_configuration() {
    if !common::have_tool("skopeo") || !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("gc-dist");
    let kept = image(&mut rng, "amd64", &[4000, 1000]);
    let gone = image_sharing(&mut rng, &kept.layers[..1], 3000);
    let multi = multi_arch(&mut rng, &["amd64", "arm64"]);
    let layout = work.path().join("src");
    let mut w = LayoutWriter::new(&layout);
    w.add_image(&kept, "v1");
    w.add_image(&gone, "v2");
    w.add_multi_arch(&multi, "multi");

    let dist = common::distribution(root.path(), work.path());
    let host = dist.host().to_owned();
    for (tag, name) in [("v1", "team/app"), ("v2", "team/app"), ("v1", "lib/copy")] {
        let dest = format!("docker://{host}/{name}:{tag}");
        skopeo_copy(&[], &layout_str(&layout, tag), &dest, work.path());
    }
    let dest = format!("docker://{host}/team/multi:multi");
    let flags = ["--all", "--preserve-digests"];
    skopeo_copy(&flags, &layout_str(&layout, "multi"), &dest, work.path());
    delete_manifest(dist.client(), "team/app", &gone.manifest.digest);
    dist.stop();

    // A registry configured read-only (as it would serve while collecting).
    let storage = "  maintenance:\n    readonly:\n      enabled: true\n";
    let (config, _) = common::berth_config(root.path(), work.path(), storage, "");
    let (report, _) = berth_gc(&config, &[]);
    let expected: BTreeSet<String> = [&gone.manifest, &gone.config, &gone.layers[1]]
        .iter()
        .map(|b| b.digest.clone())
        .collect();
    assert_eq!(eligible_blobs(&report), expected, "{report}");
    for digest in &expected {
        assert!(!blob_dir(root.path(), digest).exists(), "{digest}");
    }

    let dist = common::distribution(root.path(), work.path());
    let host = dist.host();
    for name in ["team/app", "lib/copy"] {
        let out = work.path().join(format!("pull-{}", name.replace('/', "-")));
        let src = format!("docker://{host}/{name}:v1");
        let pulled = skopeo_copy(&[], &src, &layout_str(&out, "v1"), work.path());
        assert_eq!(pulled, kept.manifest.digest, "{name}");
        assert_layout_has_image(&out, "v1", &kept);
    }
    let out = work.path().join("pull-multi");
    let src = format!("docker://{host}/team/multi:multi");
    let pulled = skopeo_copy(&flags, &src, &layout_str(&out, "multi"), work.path());
    assert_eq!(pulled, multi.index.digest);
    assert_layout_has_multi_arch(&out, "multi", &multi);
    assert_eq!(resolve(dist.client(), "team/app", "v2"), None);
    dist.stop();
}
