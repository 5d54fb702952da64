//! A real `redis-server` for tests: started on a free loopback port with persistence off,
//! stopped (and restarted on the same port) on demand, killed when dropped. Shared by
//! berth-redis's tests and the server's end-to-end tests (included by path).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
    dir: PathBuf,
    /// TLS only, with these arguments, when set.
    tls: Option<Vec<String>>,
}

/// Whether `redis-server` is installed; when it is not, `BERTH_E2E_REQUIRED=1` (as the
/// test script sets) fails the test instead of skipping it.
pub fn have_redis() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("BERTH_E2E_REQUIRED").as_deref() != Ok("1"),
            "redis-server is required by this test (apt-get install redis-server, or unset \
             BERTH_E2E_REQUIRED to skip)"
        );
        eprintln!("skipping: redis-server is not installed");
    }
    found
}

impl RedisServer {
    /// Starts one, or `None` (the test skips) when `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(None)
    }

    /// Starts one that speaks TLS only, with `cert`/`key` (PEM), requiring clients to
    /// present a certificate signed by `ca`.
    pub fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> Option<RedisServer> {
        let arg = |p: &std::path::Path| p.display().to_string();
        Self::start_with(Some(vec![
            "--tls-cert-file".into(),
            arg(cert),
            "--tls-key-file".into(),
            arg(key),
            "--tls-ca-cert-file".into(),
            arg(ca),
            "--tls-auth-clients".into(),
            "yes".into(),
        ]))
    }

    fn start_with(tls: Option<Vec<String>>) -> Option<RedisServer> {
        if !have_redis() {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!("berth-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            tls,
        };
        server.restart();
        Some(server)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills it (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (`SIGSTOP`): connections stay open, nothing answers, as a hung server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on, its data intact.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Starts it again on the same port, empty, and waits until it answers `PING`.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let ports = match &self.tls {
            None => vec!["--port".to_owned(), port],
            Some(tls) => [
                vec!["--port".into(), "0".into(), "--tls-port".into(), port],
                tls.clone(),
            ]
            .concat(),
        };
        let child = Command::new("redis-server")
            .args(&ports)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.addr()) else {
            return false;
        };
        if self.tls.is_some() {
            // Listening is all a plain client can see of a TLS-only server.
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
