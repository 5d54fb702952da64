//! go-containerregistry's `crane` as a test drives it (included with
//! `#[path = "support/crane.rs"]`, next to `mod common;`): plain HTTP to loopback
//! registries (`--insecure`), credentials in a docker config directory of the test's own.
//! scripts/lib/crane.sh builds the binary from Debian's packaged sources.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// One crane user: its docker config directory (what `crane auth login` writes).
pub struct Crane {
    config: PathBuf,
}

impl Crane {
    /// A crane with no credentials, keeping its config in `work/crane-<name>`; `None` when
    /// crane is not installed (which fails the test under `BERTH_E2E_REQUIRED=1`).
    pub fn new(work: &Path, name: &str) -> Option<Crane> {
        if !crate::common::have_tool("crane") {
            return None;
        }
        let config = work.join(format!("crane-{name}"));
        std::fs::create_dir_all(&config).unwrap();
        Some(Crane { config })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("crane");
        // Read no credentials but this test's.
        cmd.env("DOCKER_CONFIG", &self.config)
            .arg("--insecure")
            .args(args);
        cmd
    }

    /// `crane --insecure <args>` with `stdin` (a file) or nothing as its input, whatever
    /// its outcome.
    pub fn run_with(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let input = match stdin {
            Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
            None => Stdio::null(),
        };
        self.command(args)
            .stdin(input)
            .output()
            .unwrap_or_else(|e| panic!("running crane {args:?}: {e}"))
    }

    /// `crane --insecure <args>`, whatever its outcome.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    /// `crane --insecure <args>`, which must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(&out, args);
        out.stdout
    }

    /// Like [`ok`](Self::ok), stdout as text without its trailing newline.
    pub fn ok_text(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.ok(args))
            .trim_end()
            .to_owned()
    }

    /// `crane pull` of `reference` into an OCI layout at `into`, the reference recorded
    /// in its index; must succeed.
    pub fn pull_layout(&self, reference: &str, into: &Path) {
        self.ok(&[
            "pull",
            "--format",
            "oci",
            "--annotate-ref",
            reference,
            into.to_str().unwrap(),
        ]);
    }

    /// `crane --insecure <args>`, which must fail: what it said (stderr).
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "crane {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Panics with crane's own words when it failed.
pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "crane {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}
