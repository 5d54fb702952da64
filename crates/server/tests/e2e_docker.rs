//! The Docker client (Debian's `docker.io`: dockerd and docker 20.10) against the real
//! binary with htpasswd: a push refused before `docker login`, then pushed (schema2, the
//! digest Docker reports is the one berth serves), pushed again to another repository by
//! mounting the layer (the config is uploaded again, as Docker always does), pulled back after the local images are gone (the layer's bytes
//! compared through a created container), and a pull refused after `docker logout`.

#[path = "support/access_log.rs"]
mod access_log;
#[path = "support/auth.rs"]
mod auth;
mod common;
#[path = "support/dockerd.rs"]
mod dockerd;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::process::Command;

use auth::{basic, berth_with_users};
use dockerd::Dockerd;
use oci_layout::Rng;

/// The digest in `docker push`'s last line (`<tag>: digest: sha256:… size: N`).
fn pushed_digest(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in docker push's output:\n{output}"))
        .to_owned()
}

#[test]
fn docker_logs_in_pushes_mounts_and_pulls() {
    if !dockerd::installed() || !common::have_tool("htpasswd") || !common::have_tool("tar") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth = berth_with_users(root.path(), work.path(), &[("alice", "alice-pw")]);
    let host = berth.host().to_owned();
    let docker = Dockerd::start(&work.path().join("docker"));

    // An image of the test's own: a root file system with random bytes in it.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let payload = Rng::new("docker-layer").bytes(3 << 20);
    std::fs::write(rootfs.join("payload.bin"), &payload).unwrap();
    let tarball = work.path().join("rootfs.tar");
    common::run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    let app = format!("{host}/team/app:v1");
    docker.ok(&["import", tarball.to_str().unwrap(), &app]);

    let refused = docker.run(&["push", &app], None);
    assert!(
        !refused.status.success(),
        "a push before login went through"
    );
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        said.contains("basic auth") || said.contains("unauthorized"),
        "{said}"
    );

    let login = docker.run(
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("alice-pw"),
    );
    assert!(
        login.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    let digest = pushed_digest(&docker.ok(&["push", &app]));
    let alice = common::client_as(&host, &basic("alice", "alice-pw"));
    let served = alice
        .run(|c| {
            c.head_manifest(
                "team/app",
                "v1",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
        })
        .unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(
        served.header("Docker-Content-Digest"),
        Some(digest.as_str())
    );
    assert_eq!(
        served.header("Content-Type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );

    // Another repository: Docker mounts the layer from the first instead of uploading it.
    let copy = format!("{host}/team/copy:v1");
    docker.ok(&["tag", &app, &copy]);
    let from = access_log::logged(&berth);
    let pushed = docker.ok(&["push", &copy]);
    assert!(pushed.contains("Mounted from team/app"), "{pushed}");
    assert_eq!(pushed_digest(&pushed), digest);
    // The layer is mounted (201); only the small config is uploaded again (Docker pushes
    // an image's config itself, never by mount).
    let seen = access_log::since(&berth, from);
    let answered = |method: &str, status: u16| {
        seen.iter()
            .filter(|a| a.method == method && a.path.starts_with("/v2/team/copy/blobs/uploads/"))
            .filter(|a| a.status == status)
            .count()
    };
    assert_eq!(answered("POST", 201), 1, "one layer mounted: {seen:#?}");
    assert_eq!(answered("POST", 202), 1, "one blob uploaded: {seen:#?}");

    // Pulled back with nothing local: the digest pushed, and the layer's bytes.
    docker.ok(&["rmi", &app, &copy]);
    let pulled = docker.ok(&["pull", &app]);
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    let container = docker.ok(&["create", &app, "/payload.bin"]);
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    docker.ok(&[
        "cp",
        &format!("{}:/payload.bin", container.trim()),
        out.to_str().unwrap(),
    ]);
    assert!(std::fs::read(out.join("payload.bin")).unwrap() == payload);

    // Logged out, the registry refuses the pull.
    docker.ok(&["rm", container.trim()]);
    docker.ok(&["rmi", &app]);
    docker.ok(&["logout", &host]);
    let refused = docker.run(&["pull", &app], None);
    assert!(
        !refused.status.success(),
        "a pull after logout went through"
    );
    access_log::stop_clean(berth);
}
