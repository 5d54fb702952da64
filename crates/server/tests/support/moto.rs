//! moto's S3 server (PyPI `moto[server]`) on a free loopback port, for tests of berth
//! over S3. moto enforces S3's multipart rules and checks no signatures.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An `Authorization` header line naming moto's default account.
const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n";

/// The `http.secret` of every node [`Moto::berth_config`] writes.
pub const FLEET_SECRET: &str = "s3-nodes-secret";

/// A running moto server, killed when dropped.
pub struct Moto {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto, or answers `None` when it is not installed (the test is then skipped,
    /// or fails under `BERTH_E2E_REQUIRED`).
    pub fn start() -> Option<Moto> {
        if !crate::common::have_tool("moto_server") {
            return None;
        }
        let port = crate::common::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Moto { child, addr })
    }

    /// Creates a bucket (a bare PUT: moto checks no signature).
    pub fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(&self.addr).expect("connect moto");
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
    }

    /// The status of a GET of an object, with a made-up signature (moto reads who asks
    /// from it but checks no signature; without one the object is private).
    pub fn status_of(&self, bucket: &str, key: &str) -> u16 {
        self.object(bucket, key).0
    }

    /// Writes an object as another client would, behind berth's back (the same made-up
    /// signature as [`status_of`](Self::status_of)).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let mut s = TcpStream::connect(&self.addr).expect("connect moto");
        write!(
            s,
            "PUT /{bucket}/{key} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n{AUTH}\r\n",
            self.addr,
            body.len()
        )
        .expect("send");
        s.write_all(body).expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "PUT {key}: {answer}");
    }

    /// A GET of an object, as [`status_of`](Self::status_of) sends it: the status and
    /// the body.
    pub fn object(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).expect("connect moto");
        write!(
            s,
            "GET /{bucket}/{key} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{AUTH}\r\n",
            self.addr
        )
        .expect("send");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(answer.len(), |p| p + 4);
        let status = String::from_utf8_lossy(&answer[..head_end])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, answer[head_end..].to_vec())
    }

    /// Writes the config of a berth node over `bucket` (in `work`, named after `name`),
    /// with the `http.secret` nodes behind one load balancer share; `storage_extra`
    /// (indented two spaces) goes in the storage section and `extra` after `http.addr`
    /// (more of `http`, indented, then top-level sections). Answers its path and the
    /// address the node listens on.
    pub fn berth_config(
        &self,
        bucket: &str,
        work: &Path,
        name: &str,
        storage_extra: &str,
        extra: &str,
    ) -> (PathBuf, String) {
        let addr = format!("127.0.0.1:{}", crate::common::free_port());
        let config = work.join(format!("{name}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info}}\n{}{storage_extra}http:\n  addr: {addr}\n  secret: {FLEET_SECRET}\n{extra}",
                self.storage_yaml(bucket)
            ),
        )
        .expect("write config");
        (config, addr)
    }

    /// The `storage` section of a berth config over `bucket`.
    pub fn storage_yaml(&self, bucket: &str) -> String {
        format!(
            "storage:\n  s3:\n    region: us-east-1\n    bucket: {bucket}\n    regionendpoint: http://{}\n    forcepathstyle: true\n    accesskey: test\n    secretkey: test\n    rootdirectory: /registry\n    chunksize: 5242880\n  delete:\n    enabled: true\n",
            self.addr
        )
    }
}
