//! Storage that fails under the real binary. On a small tmpfs filled to the last page, a
//! manifest PUT under a new tag and a blob mount fail, and must leave nothing visible
//! (neither to the running server nor after a restart, nor as damage `check-storage`
//! finds); once space is freed the same requests succeed. And manifest bytes damaged on
//! disk are answered with a clear error, never a 200, until `check-storage --repair`
//! clears the way for the manifest to be pushed again.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_client::BlockingClient;
use oci_layout::*;

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `dir`; `None` (after
    /// saying why) when this process may not mount. When `BERTH_E2E_REQUIRED=1` a
    /// refused mount by root fails the test instead.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping: mounting a tmpfs needs root (run the test as root)");
            return None;
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                std::env::var("BERTH_E2E_REQUIRED").as_deref() != Ok("1"),
                "mounting a tmpfs failed: {why}"
            );
            eprintln!("skipping: mounting a tmpfs failed: {why}");
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it open: detach it now, the kernel frees it later.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `path` until the filesystem refuses another byte; answers the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let mut written = 0u64;
    // Big pieces first, then single bytes to use up the last page.
    for piece in [1 << 20, 4096, 1] {
        let buf = vec![0x5a_u8; piece];
        loop {
            match file.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    written
}

/// Runs `berth check-storage` (with `extra` arguments) on a config.
fn check_storage(config: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("check-storage")
        .arg(config)
        .args(extra)
        .output()
        .expect("run check-storage")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn put(reg: &BlockingClient, repo: &str, reference: &str, m: &Blob) -> berth_client::Response {
    reg.run(|c| c.put_manifest(repo, reference, &m.media_type, m.bytes.clone(), &[]))
        .expect("manifest PUT")
}

fn mount(reg: &BlockingClient, repo: &str, from: &str, digest: &str) -> berth_client::Response {
    reg.run(|c| c.mount_blob(repo, digest, Some(from)))
        .expect("mount")
}

fn listed(reg: &BlockingClient, repo: &str) -> Vec<String> {
    let r = reg
        .run(|c| c.tags_list(repo, None, None))
        .expect("tags/list");
    assert_eq!(r.status, 200, "tags/list {repo}: {}", r.text());
    r.tag_names().expect("tag names")
}

/// What a server must show after the failed writes: no new tag, no mounted blob.
fn nothing_visible(who: &str, reg: &BlockingClient, tags: &[&str], mounted: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let list = listed(reg, "full/app");
    for tag in tags {
        if list.iter().any(|t| t == tag) {
            problems.push(format!(
                "{who}: tags/list of full/app lists {tag}: {list:?}"
            ));
        }
        let status = resolve_status(reg, "full/app", tag);
        if status != 404 {
            problems.push(format!(
                "{who}: GET full/app:{tag} answers {status}, not 404"
            ));
        }
    }
    let r = reg
        .run(|c| c.head_blob("full/app", mounted))
        .expect("HEAD blob");
    if r.status != 404 {
        problems.push(format!(
            "{who}: HEAD of the blob whose mount failed answers {}, not 404",
            r.status
        ));
    }
    problems
}

fn resolve_status(reg: &BlockingClient, repo: &str, reference: &str) -> u16 {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    reg.run(|c| c.get_manifest(repo, reference, &accept))
        .expect("manifest GET")
        .status
}

#[test]
fn writes_refused_by_a_full_disk_leave_nothing_visible() {
    let mnt = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // Declared after the directory it mounts on, so it is unmounted before that goes.
    let Some(_tmpfs) = Tmpfs::mount(mnt.path(), "24m") else {
        return;
    };
    let root = mnt.path().join("registry");
    std::fs::create_dir(&root).unwrap();
    let mut rng = Rng::new("fulldisk");
    let base = image(&mut rng, "amd64", &[4096]);
    let stored = image(&mut rng, "amd64", &[4096]);
    let fresh = image(&mut rng, "amd64", &[4096]);
    let source = Blob::new(OCI_LAYER_GZIP, rng.bytes(8192));

    let mut berth = common::berth(&root, work.path(), "");
    {
        let reg = berth.client();
        for img in [&base, &stored, &fresh] {
            for b in img.blobs() {
                push_blob_monolithic(reg, "full/app", b);
            }
        }
        push_blob_monolithic(reg, "full/src", &source);
        put_manifest(reg, "full/app", "v0", &base.manifest);
        // Stored by digest: its bytes and revision exist, so only the tag needs space.
        put_manifest(reg, "full/app", &stored.manifest.digest, &stored.manifest);
    }

    let filler = mnt.path().join("filler");
    let filled = fill(&filler);
    assert!(filled > 16 << 20, "only {filled} bytes filled the tmpfs");
    let mut problems = Vec::new();
    {
        let reg = berth.client();
        let tagged = put(reg, "full/app", "stored-tag", &stored.manifest);
        let new = put(reg, "full/app", "fresh-tag", &fresh.manifest);
        let mounted = mount(reg, "full/app", "full/src", &source.digest);
        for (what, r) in [
            ("tagging a stored manifest", &tagged),
            ("a new manifest", &new),
            ("a mount", &mounted),
        ] {
            assert_ne!(
                r.status, 201,
                "{what} succeeded on a full disk: the test filled nothing"
            );
            eprintln!("on the full disk, {what}: {}", r.describe());
        }
        problems.extend(nothing_visible(
            "running server",
            reg,
            &["stored-tag", "fresh-tag"],
            &source.digest,
        ));
    }

    // Storage itself, read afresh: by berth's check and by a new process.
    let (config, _) = common::berth_config(&root, work.path(), "", "");
    berth.stop();
    let out = check_storage(&config, &[]);
    if out.status.code() != Some(0) {
        problems.push(format!(
            "check-storage after the failed writes exited {:?}:\n{}",
            out.status.code(),
            text(&out)
        ));
    }
    berth = common::berth(&root, work.path(), "");
    problems.extend(nothing_visible(
        "restarted server",
        berth.client(),
        &["stored-tag", "fresh-tag"],
        &source.digest,
    ));

    // With space again, the same requests work.
    std::fs::remove_file(&filler).unwrap();
    let reg = berth.client();
    put_manifest(reg, "full/app", "stored-tag", &stored.manifest);
    put_manifest(reg, "full/app", "fresh-tag", &fresh.manifest);
    mount_blob(reg, "full/app", "full/src", &source.digest);
    assert_eq!(
        resolve(reg, "full/app", "stored-tag"),
        Some(stored.manifest.digest.clone())
    );
    assert_eq!(
        resolve(reg, "full/app", "fresh-tag"),
        Some(fresh.manifest.digest.clone())
    );
    let r = reg
        .run(|c| c.get_blob("full/app", &source.digest, None))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == source.bytes, "mounted blob bytes differ");
    assert_eq!(tags(reg, "full/app"), ["fresh-tag", "stored-tag", "v0"]);
    berth.stop();

    assert!(
        problems.is_empty(),
        "{} problems after writes failed on a full disk:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn damaged_manifest_bytes_are_an_error_until_repaired_and_pushed_again() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("damaged");
    let emptied = image(&mut rng, "amd64", &[2048]);
    let garbled = image(&mut rng, "amd64", &[2048]);
    let healthy = image(&mut rng, "amd64", &[2048]);

    let berth = common::berth(root.path(), work.path(), "");
    let reg = berth.client();
    for (img, tag) in [
        (&emptied, "emptied"),
        (&garbled, "garbled"),
        (&healthy, "ok"),
    ] {
        for b in img.blobs() {
            push_blob_monolithic(reg, "team/app", b);
        }
        put_manifest(reg, "team/app", tag, &img.manifest);
    }
    berth.stop();

    // Damage written directly, with no server running (so no cache holds the bytes).
    let data = |m: &Blob| {
        root.path().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &m.hex()[..2],
            m.hex()
        ))
    };
    std::fs::write(data(&emptied.manifest), b"").unwrap();
    let mut flipped = garbled.manifest.bytes.clone();
    for b in &mut flipped[10..20] {
        *b ^= 0x20;
    }
    std::fs::write(data(&garbled.manifest), &flipped).unwrap();

    let berth = common::berth(root.path(), work.path(), "");
    let reg = berth.client();
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    for (m, tag) in [
        (&emptied.manifest, "emptied"),
        (&garbled.manifest, "garbled"),
    ] {
        for reference in [m.digest.as_str(), tag] {
            let r = reg
                .run(|c| c.get_manifest("team/app", reference, &accept))
                .unwrap();
            assert_eq!(r.status, 404, "GET team/app:{reference}: {}", r.describe());
            assert!(
                r.text().contains("MANIFEST_UNKNOWN") && r.text().contains("damaged"),
                "GET team/app:{reference}: {}",
                r.text()
            );
            let r = reg
                .run(|c| c.head_manifest("team/app", reference, &accept))
                .unwrap();
            assert_eq!(r.status, 404, "HEAD team/app:{reference}");
        }
    }
    assert_eq!(
        resolve(reg, "team/app", "ok"),
        Some(healthy.manifest.digest.clone())
    );
    berth.stop();

    // check-storage names both revisions and both tags, and repairs them.
    let (config, _) = common::berth_config(root.path(), work.path(), "", "");
    let out = check_storage(&config, &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(3), "{report}");
    for m in [&emptied.manifest, &garbled.manifest] {
        let revision = format!("_manifests/revisions/sha256/{}/link", m.hex());
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("damaged-manifest ") && l.contains(&revision)),
            "no damaged-manifest line for {}:\n{report}",
            m.digest
        );
    }
    for tag in ["emptied", "garbled"] {
        let current = format!("_manifests/tags/{tag}/current/link");
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("broken-tag ") && l.contains(&current)),
            "no broken-tag line for {tag}:\n{report}"
        );
    }
    assert!(report.contains("4 findings; run with --repair"), "{report}");
    let out = check_storage(&config, &["--repair"]);
    let repaired = text(&out);
    assert_eq!(out.status.code(), Some(0), "{repaired}");
    assert_eq!(
        repaired
            .lines()
            .filter(|l| l.contains("; removed "))
            .count(),
        4,
        "{repaired}"
    );
    let out = check_storage(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(": clean"), "{}", text(&out));

    // Nothing healthy went, the damaged bytes stayed, and the manifests push again.
    assert!(data(&emptied.manifest).exists() && data(&garbled.manifest).exists());
    let berth = common::berth(root.path(), work.path(), "");
    let reg = berth.client();
    assert_eq!(tags(reg, "team/app"), ["ok"]);
    assert_blobs_served(reg, "team/app", &healthy);
    for (img, tag) in [(&emptied, "emptied"), (&garbled, "garbled")] {
        put_manifest(reg, "team/app", tag, &img.manifest);
        let r = reg
            .run(|c| c.get_manifest("team/app", tag, &accept))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body == img.manifest.bytes, "{tag}: bytes after the push");
    }
    assert_eq!(tags(reg, "team/app"), ["emptied", "garbled", "ok"]);
    berth.stop();
}
