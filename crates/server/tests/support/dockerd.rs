//! A Docker daemon of a test's own (included with `#[path = "support/dockerd.rs"]`, next
//! to `mod common;`), driven through the `docker` client: data, exec state, socket, pid
//! file and the client's config (credentials) all under one directory of the test's, the
//! `vfs` storage driver and no network set-up, so a test touches neither the machine's
//! daemon nor its images. Loopback registries are plain HTTP to Docker by default.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// Whether `dockerd` and `docker` are installed (a missing one fails the test under
/// `BERTH_E2E_REQUIRED=1`).
pub fn installed() -> bool {
    common::have_tool("dockerd") && common::have_tool("docker")
}

/// The client shipped with the daemon when there is one (Debian's `docker.io`), so the
/// two speak the same API version; any `docker` otherwise.
fn client_binary() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// A running dockerd, stopped when dropped.
pub struct Dockerd {
    daemon: common::Process,
    host: String,
    config: PathBuf,
    /// Its data root, which it bind-mounts onto itself while it runs.
    data_root: PathBuf,
}

impl Dockerd {
    /// Starts dockerd with everything under `dir` (created) and waits until the client
    /// reaches it.
    pub fn start(dir: &Path) -> Dockerd {
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("docker.sock");
        let data_root = dir.join("root");
        let host = format!("unix://{}", sock.display());
        let log = dir.join("dockerd.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args(["-H", &host])
            .args(["--storage-driver", "vfs"])
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn dockerd");
        let config = dir.join("client");
        std::fs::create_dir_all(&config).unwrap();
        let docker = Dockerd {
            daemon: common::Process::new(child, host.clone(), log),
            host,
            config,
            data_root,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker.run(&["version"], None).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd never answered:\n{}",
                docker.daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        docker
    }

    /// `docker <args>` against this daemon with `stdin` as input, whatever its outcome.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(client_binary());
        cmd.arg("--config")
            .arg(&self.config)
            .args(["-H", &self.host])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"));
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"))
    }

    /// `docker <args>`, which must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the daemon logged.
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }
}

impl Drop for Dockerd {
    /// SIGTERM, so that dockerd undoes its mounts (killed, it would leave its data root
    /// mounted and the test's directory undeletable); a mount still there is undone here.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.daemon.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("umount")
            .arg(&self.data_root)
            .stderr(Stdio::null())
            .status();
    }
}
