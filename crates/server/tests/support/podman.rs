//! podman as a test may run it as root without touching the machine's containers: its
//! storage, run and temporary directories under one directory of the test's (the vfs
//! storage driver needs no kernel overlay support; cgroupfs and file events need no
//! systemd).

use std::path::Path;
use std::process::Command;

/// Points `cmd` (a `podman` command, before its subcommand) at directories under `dir`.
pub fn isolate(cmd: &mut Command, dir: &Path) {
    cmd.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--tmpdir")
        .arg(dir.join("libpod"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        // Blobs being pulled are staged in TMPDIR (else /var/tmp).
        .env("TMPDIR", dir.join("tmp"));
}
