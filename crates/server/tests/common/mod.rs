//! Helpers for end-to-end tests: run the real `berth` binary (and peers such as
//! Debian's `docker-registry`) on free loopback ports, wait until they answer, stop them,
//! and talk to them with `berth-client`'s blocking client.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use berth_client::{BlockingClient, Client, Url};

/// Ports handed to test servers: below Linux's ephemeral range (32768-60999 by default),
/// so an outgoing connection (to Redis, S3, a registry) never takes one between the test
/// choosing it and its server binding it, as happened with ports the kernel chose.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next port of [`TEST_PORTS`] to try, shared by the test threads of a process.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A loopback port no other test of this process was given and nothing listens on.
pub fn free_port() -> u16 {
    let span = TEST_PORTS.end - TEST_PORTS.start;
    // Test binaries run one after another, each from its own offset.
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() % u32::from(span)) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = TEST_PORTS.start + n % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}")
}

/// Whether an external tool is installed. When `BERTH_E2E_REQUIRED=1` (as the test script
/// sets) a missing tool fails the test instead of skipping it.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("BERTH_E2E_REQUIRED").as_deref() != Ok("1"),
            "{name} is required by this test (install it, or unset BERTH_E2E_REQUIRED to skip)"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}

/// A blocking client for the registry at `addr` (`host:port`).
pub fn client(addr: &str) -> BlockingClient {
    BlockingClient::connect(&format!("http://{addr}")).expect("client")
}

/// A blocking client for the registry at `addr` that sends `authorization` (`Basic ...`,
/// `Bearer ...`) with every request.
pub fn client_as(addr: &str, authorization: &str) -> BlockingClient {
    Client::builder(&format!("http://{addr}"))
        .authorization(authorization)
        .build()
        .and_then(BlockingClient::new)
        .expect("client")
}

/// The path and query of `url` (an upload `Location` one server gave) resolved against
/// the registry `reg` talks to: the same upload, continued on another server.
pub fn rebase(reg: &BlockingClient, url: &Url) -> Url {
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    reg.client().url(&target).expect("rebased URL")
}

/// Waits until `GET /v2/` answers: 200, or 401 from a registry with access control.
pub fn wait_ready(addr: &str, child: &mut Child, log: &Path) {
    let poll = Client::builder(&format!("http://{addr}"))
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .and_then(BlockingClient::new)
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if poll
            .run(|c| c.ping())
            .is_ok_and(|r| r.status == 200 || r.status == 401)
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "server on {addr} never answered: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A running server process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
    client: OnceLock<BlockingClient>,
}

impl Process {
    /// A started process listening on `addr`, logging to `log`.
    pub fn new(child: Child, addr: String, log: PathBuf) -> Self {
        Process {
            child,
            addr,
            log,
            client: OnceLock::new(),
        }
    }

    /// A blocking client for this server (made on first use).
    pub fn client(&self) -> &BlockingClient {
        self.client.get_or_init(|| client(&self.addr))
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port` as skopeo's `docker://` references want it.
    pub fn host(&self) -> &str {
        &self.addr
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (a server that will listen on `addr`) with its output in a log file under
/// `dir`, and waits until it answers.
pub fn spawn(mut cmd: Command, addr: String, dir: &Path, name: &str) -> Process {
    let log = dir.join(format!("{name}-{}.log", free_port()));
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn server");
    wait_ready(&addr, &mut child, &log);
    Process::new(child, addr, log)
}

/// Starts `berth serve` with `extra` YAML appended to a config that sets the address and
/// filesystem storage at `root` (deletes enabled).
pub fn berth(root: &Path, work: &Path, extra: &str) -> Process {
    berth_with(root, work, "", extra)
}

/// Like [`berth`], with `storage_extra` (indented two spaces) added to the storage section.
pub fn berth_with(root: &Path, work: &Path, storage_extra: &str, extra: &str) -> Process {
    let (config, addr) = berth_config(root, work, storage_extra, extra);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    spawn(cmd, addr, work, "berth")
}

/// Writes the config [`berth_with`] starts from (in `work`); answers its path and the
/// address it listens on.
pub fn berth_config(
    root: &Path,
    work: &Path,
    storage_extra: &str,
    extra: &str,
) -> (PathBuf, String) {
    berth_config_on(
        &format!("127.0.0.1:{}", free_port()),
        root,
        work,
        storage_extra,
        extra,
    )
}

/// Like [`berth_config`], listening on `addr` (so that `extra` can name it, as a token
/// realm on the registry itself does).
pub fn berth_config_on(
    addr: &str,
    root: &Path,
    work: &Path,
    storage_extra: &str,
    extra: &str,
) -> (PathBuf, String) {
    let config = work.join(format!("berth-{}.yml", addr.replace([':', '.'], "-")));
    let yaml = format!(
        "version: 0.1\nlog: {{level: info}}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n{storage_extra}http:\n  addr: {addr}\n{extra}",
        root.display()
    );
    std::fs::write(&config, yaml).expect("write config");
    (config, addr.to_owned())
}

/// Starts Debian's `docker-registry` (CNCF distribution 2.8.2) on `root`.
pub fn distribution(root: &Path, work: &Path) -> Process {
    distribution_with(root, work, "")
}

/// Like [`distribution`], with `http_extra` (indented two spaces) added to the http section.
pub fn distribution_with(root: &Path, work: &Path, http_extra: &str) -> Process {
    let storage = format!(
        "storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
        root.display()
    );
    distribution_on(&storage, work, http_extra)
}

/// Starts Debian's `docker-registry` with `storage` as its whole `storage:` section (an
/// S3 bucket, say), and `http_extra` (indented two spaces) added to the http section.
pub fn distribution_on(storage: &str, work: &Path, http_extra: &str) -> Process {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = work.join(format!("distribution-{port}.yml"));
    let yaml = format!("version: 0.1\n{storage}http:\n  addr: {addr}\n{http_extra}");
    std::fs::write(&config, yaml).expect("write config");
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&config);
    // 2.8.2's AWS SDK cannot apply a custom CA bundle to the transport it is given and
    // panics at start-up over S3 when one is named (the tests speak plain HTTP to S3).
    cmd.env_remove("AWS_CA_BUNDLE");
    spawn(cmd, addr, work, "distribution")
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_bytes(cmd)).into_owned()
}

/// Like [`run`], returning stdout as it is (a signature, a DER file).
pub fn run_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
