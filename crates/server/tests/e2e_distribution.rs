//! End-to-end storage exchange with CNCF distribution 2.8.2 (Debian's `docker-registry`):
//! what one writes under `<root>/docker/registry/v2/`, the other serves, and both write
//! the same files for the same pushes.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_layout::*;

/// What the exchange tests push: a multi-layer image (tags `v1` and, after a retag,
/// `old`), an older image that `old` first pointed at, a two-platform index, and the
/// multi-layer image converted to Docker schema2 (whose digest skopeo reports).
struct Fixture {
    img: Image,
    older: Image,
    multi: MultiArch,
    layout: PathBuf,
    schema2: std::cell::RefCell<Option<String>>,
}

impl Fixture {
    fn new(work: &Path, label: &str) -> Self {
        let mut rng = Rng::new(label);
        let img = image(&mut rng, "amd64", &[512 * 1024 + 3, 100 * 1024, 2048]);
        let older = image(&mut rng, "amd64", &[20 * 1024]);
        let multi = multi_arch(&mut rng, &["amd64", "arm64"]);
        let layout = work.join(format!("src-{label}"));
        let mut w = LayoutWriter::new(&layout);
        w.add_image(&img, "v1");
        w.add_image(&older, "older");
        w.add_multi_arch(&multi, "multi");
        Fixture {
            img,
            older,
            multi,
            layout,
            schema2: Default::default(),
        }
    }

    /// Pushes with skopeo: `team/app:old` -> older, `team/app:v1`, then `old` retagged to
    /// the new image, and the index with `--all` as `team/multi:multi`.
    fn push(&self, registry: &common::Process, work: &Path) {
        let (host, reg) = (registry.host(), registry.client());
        let src = |tag| layout_str(&self.layout, tag);
        let to = |r: &str| format!("docker://{host}/{r}");
        assert_eq!(
            skopeo_copy(&[], &src("older"), &to("team/app:old"), work),
            self.older.manifest.digest
        );
        assert_eq!(
            resolve(reg, "team/app", "old"),
            Some(self.older.manifest.digest.clone())
        );
        assert_eq!(
            skopeo_copy(&[], &src("v1"), &to("team/app:v1"), work),
            self.img.manifest.digest
        );
        assert_eq!(
            skopeo_copy(&[], &src("v1"), &to("team/app:old"), work),
            self.img.manifest.digest
        );
        assert_eq!(
            resolve(reg, "team/app", "old"),
            Some(self.img.manifest.digest.clone()),
            "old after retag"
        );
        let pushed = skopeo_copy(
            &["--all", "--preserve-digests"],
            &src("multi"),
            &to("team/multi:multi"),
            work,
        );
        assert_eq!(pushed, self.multi.index.digest);
        let schema2 = skopeo_copy(&["--format", "v2s2"], &src("v1"), &to("team/conv:v1"), work);
        let mut known = self.schema2.borrow_mut();
        assert_eq!(
            *known.get_or_insert_with(|| schema2.clone()),
            schema2,
            "v2s2 conversion is deterministic"
        );
    }

    /// Pulls everything back with skopeo and over HTTP, and checks every byte.
    fn check_served(&self, registry: &common::Process, work: &Path, who: &str) {
        let (host, reg) = (registry.host(), registry.client());
        let from = |r: &str| format!("docker://{host}/{r}");
        for tag in ["v1", "old"] {
            let out = work.join(format!("pull-{who}-app-{tag}"));
            let pulled = skopeo_copy(
                &[],
                &from(&format!("team/app:{tag}")),
                &layout_str(&out, tag),
                work,
            );
            assert_eq!(pulled, self.img.manifest.digest, "{who}: team/app:{tag}");
            assert_layout_has_image(&out, tag, &self.img);
        }
        let out = work.join(format!("pull-{who}-multi"));
        let pulled = skopeo_copy(
            &["--all", "--preserve-digests"],
            &from("team/multi:multi"),
            &layout_str(&out, "multi"),
            work,
        );
        assert_eq!(pulled, self.multi.index.digest, "{who}: team/multi:multi");
        assert_layout_has_multi_arch(&out, "multi", &self.multi);

        // The untagged older image is still there by digest.
        assert_eq!(
            resolve(reg, "team/app", &self.older.manifest.digest),
            Some(self.older.manifest.digest.clone()),
            "{who}: older image by digest"
        );
        let r = reg
            .run(|c| c.get_manifest("team/multi", "multi", OCI_INDEX))
            .unwrap();
        assert_eq!(r.status, 200, "{who}: {}", r.text());
        assert!(
            r.body == self.multi.index.bytes,
            "{who}: index bytes differ: {}",
            r.text()
        );

        let schema2 = self.schema2.borrow().clone().expect("pushed");
        let raw = skopeo_raw(&from("team/conv:v1"));
        assert_eq!(sha256_digest(&raw), schema2, "{who}: team/conv:v1");
        let r = reg
            .run(|c| c.get_manifest("team/conv", "v1", DOCKER_MANIFEST))
            .unwrap();
        assert_eq!(r.status, 200, "{who}: {}", r.text());
        assert_eq!(r.body, raw, "{who}: schema2 bytes");
        assert_eq!(
            r.header("content-type"),
            Some(DOCKER_MANIFEST),
            "{who}: schema2 Content-Type"
        );
        let r = reg
            .run(|c| c.head_manifest("team/conv", &schema2, DOCKER_MANIFEST))
            .unwrap();
        assert_eq!(r.status, 200, "{who}: HEAD schema2");
        assert_eq!(
            r.header("content-type"),
            Some(DOCKER_MANIFEST),
            "{who}: HEAD schema2 Content-Type"
        );
        assert_eq!(
            r.header("content-length"),
            Some(raw.len().to_string().as_str()),
            "{who}: HEAD Content-Length"
        );
        assert_eq!(
            r.header("docker-content-digest"),
            Some(schema2.as_str()),
            "{who}: HEAD digest"
        );
        assert_eq!(tags(reg, "team/conv"), ["v1"], "{who}");

        for img in [&self.img, &self.older] {
            assert_blobs_served(reg, "team/app", img);
        }
        for (_, img) in &self.multi.images {
            assert_blobs_served(reg, "team/multi", img);
        }
        let mut repos = catalog(reg);
        repos.sort();
        assert!(
            ["team/app", "team/conv", "team/multi"]
                .iter()
                .all(|n| repos.iter().any(|r| r == n)),
            "{who}: catalog {repos:?}"
        );
        assert_eq!(tags(reg, "team/app"), ["old", "v1"], "{who}");
        assert_eq!(tags(reg, "team/multi"), ["multi"], "{who}");
    }
}

#[test]
fn distribution_writes_berth_serves() {
    if !common::have_tool("skopeo") || !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let fx = Fixture::new(work.path(), "dist-to-berth");

    let dist = common::distribution(root.path(), work.path());
    fx.push(&dist, work.path());
    fx.check_served(&dist, work.path(), "distribution");
    // An upload distribution started (one chunk in, hash state saved its way) and never
    // finished: berth picks it up from the same Location after the switch.
    let mut rng = Rng::new("in-flight");
    let pending = Blob::new("application/octet-stream", rng.bytes(300_000));
    let r = dist
        .client()
        .run(|c| c.start_upload("team/upload"))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let upload = r.location().unwrap();
    let chunk = pending.bytes[..100_000].to_vec();
    let r = dist
        .client()
        .run(|c| c.patch_chunk(&upload, 0, chunk))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let pending_location = r.location().unwrap();
    dist.stop();

    let berth = common::berth(root.path(), work.path(), "");
    let reg = berth.client();
    fx.check_served(&berth, work.path(), "berth");

    let upload = common::rebase(reg, &pending_location);
    let r = reg.run(|c| c.upload_status(&upload)).unwrap();
    assert_eq!(
        r.status,
        204,
        "status of distribution's upload: {}",
        r.text()
    );
    assert_eq!(
        r.header("range"),
        Some("0-99999"),
        "progress of distribution's upload"
    );
    let rest = pending.bytes[100_000..].to_vec();
    let r = reg.run(|c| c.patch_chunk(&upload, 100_000, rest)).unwrap();
    assert_eq!(
        r.status,
        202,
        "continue distribution's upload: {}",
        r.text()
    );
    assert_eq!(r.header("range"), Some("0-299999"));
    let loc = r.location().unwrap();
    let r = reg
        .run(|c| c.finish_upload(&loc, &pending.digest, Vec::new()))
        .unwrap();
    assert_eq!(r.status, 201, "finish distribution's upload: {}", r.text());
    let r = reg
        .run(|c| c.get_blob("team/upload", &pending.digest, None))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.body == pending.bytes,
        "blob finished across the switch differs"
    );

    // Deletes through berth on what distribution wrote: the untagged image by digest ...
    let older = &fx.older.manifest.digest;
    delete_manifest(reg, "team/app", older);
    assert_eq!(
        resolve(reg, "team/app", older),
        None,
        "deleted manifest still served"
    );
    assert_eq!(
        resolve(reg, "team/app", "old"),
        Some(fx.img.manifest.digest.clone())
    );
    // ... then the tagged one: like distribution, its tags go with it.
    let digest = &fx.img.manifest.digest;
    delete_manifest(reg, "team/app", digest);
    assert_eq!(resolve(reg, "team/app", digest), None);
    assert_eq!(resolve(reg, "team/app", "v1"), None);
    assert_eq!(resolve(reg, "team/app", "old"), None);
    let r = reg.run(|c| c.tags_list("team/app", None, None)).unwrap();
    assert_eq!(
        r.status,
        200,
        "tags/list after deleting every tag (distribution: 200, tags null): {}",
        r.text()
    );
    assert!(
        r.json().unwrap()["tags"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "tags after deleting every tagged manifest: {}",
        r.text()
    );
    // Blobs stay (only garbage collection removes them).
    assert_blobs_served(reg, "team/app", &fx.img);
    berth.stop();
}

#[test]
fn berth_writes_distribution_serves() {
    if !common::have_tool("skopeo") || !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let fx = Fixture::new(work.path(), "berth-to-dist");
    let mut rng = Rng::new("chunked");
    let chunked = image(&mut rng, "arm64", &[350 * 1024 + 11, 70_000]);
    let doomed = image(&mut rng, "amd64", &[1000]);

    let berth = common::berth(root.path(), work.path(), "");
    let reg = berth.client();
    fx.push(&berth, work.path());
    // A push driven by hand: layers in several PATCHes, the config in one PUT.
    for layer in &chunked.layers {
        push_blob_chunked(reg, "team/chunked", layer, 100 * 1024);
    }
    push_blob_monolithic(reg, "team/chunked", &chunked.config);
    put_manifest(reg, "team/chunked", "v1", &chunked.manifest);
    // A cross-repository mount.
    for b in chunked.blobs() {
        mount_blob(reg, "lib/mounted", "team/chunked", &b.digest);
    }
    put_manifest(reg, "lib/mounted", "latest", &chunked.manifest);
    // A manifest pushed, then deleted.
    for b in doomed.blobs() {
        push_blob_monolithic(reg, "team/app", b);
    }
    put_manifest(reg, "team/app", &doomed.manifest.digest, &doomed.manifest);
    delete_manifest(reg, "team/app", &doomed.manifest.digest);
    fx.check_served(&berth, work.path(), "berth");
    berth.stop();

    let dist = common::distribution(root.path(), work.path());
    let (host, reg) = (dist.host(), dist.client());
    fx.check_served(&dist, work.path(), "distribution");
    for (name, tag) in [("team/chunked", "v1"), ("lib/mounted", "latest")] {
        let out = work.path().join(format!("pull-{}", name.replace('/', "-")));
        let pulled = skopeo_copy(
            &[],
            &format!("docker://{host}/{name}:{tag}"),
            &layout_str(&out, tag),
            work.path(),
        );
        assert_eq!(pulled, chunked.manifest.digest, "{name}:{tag}");
        assert_layout_has_image(&out, tag, &chunked);
        assert_blobs_served(reg, name, &chunked);
        assert_eq!(tags(reg, name), [tag]);
    }
    assert_eq!(
        resolve(reg, "team/app", &doomed.manifest.digest),
        None,
        "manifest deleted by berth"
    );
    let mut repos = catalog(reg);
    repos.sort();
    assert_eq!(
        repos,
        [
            "lib/mounted",
            "team/app",
            "team/chunked",
            "team/conv",
            "team/multi"
        ]
    );
    dist.stop();
}

#[test]
fn catalog_lists_what_distribution_lists() {
    if !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("catalog");
    let img = image(&mut rng, "amd64", &[1000]);

    // A pushed image, and a repository that only has an upload in progress.
    let dist = common::distribution(root.path(), work.path());
    let reg = dist.client();
    for b in img.blobs() {
        push_blob_monolithic(reg, "team/app", b);
    }
    put_manifest(reg, "team/app", "v1", &img.manifest);
    let r = reg.run(|c| c.start_upload("pending/only")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let expected = catalog(reg);
    assert_eq!(
        expected,
        ["team/app"],
        "distribution 2.8.2 lists repositories that have _layers"
    );
    dist.stop();

    let berth = common::berth(root.path(), work.path(), "");
    let reg = berth.client();
    let r = reg.run(|c| c.start_upload("pending/berth")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    for name in ["pending/only", "pending/berth"] {
        let r = reg.run(|c| c.tags_list(name, None, None)).unwrap();
        assert_eq!(r.status, 404, "tags/list of {name}: {}", r.text());
    }
    assert_eq!(
        catalog(reg),
        expected,
        "berth's catalog differs from distribution's on the same storage (repositories with only \
         an upload in progress are not listed by distribution, and berth's tags/list calls them unknown)"
    );
    berth.stop();
}

/// Every file under `<root>/docker/registry/v2/` by relative path, with its contents;
/// leaves out upload state, berth's own `_berth` index and distribution's `hashstates`.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().into_string().expect("utf8 name");
            if matches!(name.as_str(), "_uploads" | "_berth" | "hashstates") {
                continue;
            }
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                walk(&path, &rel, out);
            } else {
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root.join("docker/registry/v2"), "", &mut out);
    out
}

#[test]
fn same_pushes_same_files() {
    if !common::have_tool("skopeo") || !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dist_root = tempfile::tempdir().unwrap();
    let berth_root = tempfile::tempdir().unwrap();
    let fx = Fixture::new(work.path(), "layout");

    let scenario = |registry: &common::Process| {
        let host = registry.host();
        fx.push(registry, work.path());
        // A registry-to-registry copy inside the same registry (layers are mounted) ...
        let copied = skopeo_copy(
            &[],
            &format!("docker://{host}/team/app:v1"),
            &format!("docker://{host}/lib/copy:v1"),
            work.path(),
        );
        assert_eq!(copied, fx.img.manifest.digest);
        // ... and a delete by digest of the untagged older image.
        delete_manifest(registry.client(), "team/app", &fx.older.manifest.digest);
    };
    let dist = common::distribution(dist_root.path(), work.path());
    scenario(&dist);
    dist.stop();
    let berth = common::berth(berth_root.path(), work.path(), "");
    scenario(&berth);
    berth.stop();

    let (d, b) = (tree(dist_root.path()), tree(berth_root.path()));
    let only_d: Vec<&String> = d.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<&String> = b.keys().filter(|k| !d.contains_key(*k)).collect();
    assert!(
        only_d.is_empty() && only_b.is_empty(),
        "files only distribution wrote: {only_d:#?}\nfiles only berth wrote: {only_b:#?}"
    );
    assert!(d.len() > 20, "suspiciously few files: {:#?}", d.keys());
    for (path, content) in &d {
        assert!(
            b[path] == *content,
            "{path} differs: distribution {:?}, berth {:?}",
            String::from_utf8_lossy(&content[..content.len().min(200)]),
            String::from_utf8_lossy(&b[path][..b[path].len().min(200)])
        );
    }
    // The files that matter most are there.
    let hex = fx.img.manifest.hex();
    for must in [
        "repositories/team/app/_manifests/tags/old/current/link".to_string(),
        format!("repositories/team/app/_manifests/tags/old/index/sha256/{hex}/link"),
        format!(
            "repositories/team/app/_manifests/tags/old/index/sha256/{}/link",
            fx.older.manifest.hex()
        ),
        format!("repositories/team/app/_manifests/revisions/sha256/{hex}/link"),
        format!(
            "repositories/lib/copy/_layers/sha256/{}/link",
            fx.img.layers[0].hex()
        ),
        format!("blobs/sha256/{}/{}/data", &hex[..2], hex),
    ] {
        assert!(d.contains_key(&must), "{must} missing");
    }
    assert!(
        !d.contains_key(&format!(
            "repositories/team/app/_manifests/revisions/sha256/{}/link",
            fx.older.manifest.hex()
        )),
        "deleted revision link still there"
    );
}
