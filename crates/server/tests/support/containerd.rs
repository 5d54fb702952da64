//! A containerd daemon of a test's own (included with `#[path = "support/containerd.rs"]`,
//! next to `mod common;`), driven through its `ctr` client: root, state, socket, log and
//! registry host configs all under one directory of the test's, so a test touches neither
//! the machine's containerd nor its images.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// The namespace every `ctr` call works in.
const NAMESPACE: &str = "berth-test";

/// Whether `containerd` and `ctr` are installed (a missing one fails the test under
/// `BERTH_E2E_REQUIRED=1`).
pub fn installed() -> bool {
    common::have_tool("containerd") && common::have_tool("ctr")
}

/// A running containerd, killed when dropped.
pub struct Containerd {
    daemon: common::Process,
    sock: PathBuf,
    dir: PathBuf,
}

impl Containerd {
    /// Starts containerd with everything under `dir` (created) and waits until `ctr`
    /// reaches it.
    pub fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                // The CRI plugin serves kubelets; pulling and pushing do not need it.
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n",
                dir.join("root"),
                dir.join("state"),
                sock
            ),
        )
        .unwrap();
        let log = dir.join("containerd.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn containerd");
        let containerd = Containerd {
            daemon: common::Process::new(child, sock.display().to_string(), log),
            sock,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd never answered:\n{}",
                containerd.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    /// `ctr <args>` against this daemon, in the test namespace, whatever its outcome.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running ctr {args:?}: {e}"))
    }

    /// `ctr <args>`, which must succeed: its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `certs.d`-style hosts directory under the daemon's, with `hosts.toml` written
    /// for `host` (`ctr --hosts-dir` reads it).
    pub fn hosts_dir(&self, host: &str, hosts_toml: &str) -> PathBuf {
        let hosts = self.dir.join("certs.d");
        std::fs::create_dir_all(hosts.join(host)).unwrap();
        std::fs::write(hosts.join(host).join("hosts.toml"), hosts_toml).unwrap();
        hosts
    }

    /// Everything the daemon logged.
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }
}
