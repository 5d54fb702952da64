//! A registry upstream written for the proxy tests (it counts its blob GETs and can lie
//! about a blob's bytes), and a raw blob GET that compares what it receives.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::oci_layout::{Rng, sha256_digest};

/// An upstream written for the test: `GET /v2/` answers 200; `GET` of one of its blobs
/// streams it slowly (so concurrent clients arrive mid-download), or, when `corrupt`,
/// streams bytes of the right length that do not match the digest.
pub struct FakeUpstream {
    /// `host:port`.
    pub addr: String,
    /// Blob GETs answered.
    pub gets: Arc<AtomicUsize>,
    /// Blob HEADs answered.
    pub heads: Arc<AtomicUsize>,
}

/// Serves `blobs` under `repo` on a free loopback port until the test ends.
pub fn fake_upstream(repo: &'static str, blobs: Vec<Arc<Vec<u8>>>, corrupt: bool) -> FakeUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gets = Arc::new(AtomicUsize::new(0));
    let blobs: Arc<Vec<(String, Arc<Vec<u8>>)>> =
        Arc::new(blobs.into_iter().map(|b| (sha256_digest(&b), b)).collect());
    let heads = Arc::new(AtomicUsize::new(0));
    let counters = (gets.clone(), heads.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (blobs, counters) = (blobs.clone(), counters.clone());
            std::thread::spawn(move || serve_fake(conn, repo, &blobs, corrupt, &counters));
        }
    });
    FakeUpstream { addr, gets, heads }
}

fn serve_fake(
    conn: TcpStream,
    repo: &str,
    blobs: &[(String, Arc<Vec<u8>>)],
    corrupt: bool,
    (gets, heads): &(Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let wanted = blobs
        .iter()
        .find(|(digest, _)| path == format!("/v2/{repo}/blobs/{digest}"));
    if let Some((_, blob)) = wanted {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            blob.len()
        );
        let _ = conn.write_all(head.as_bytes());
        if method != "GET" {
            heads.fetch_add(1, Ordering::SeqCst);
            return;
        }
        gets.fetch_add(1, Ordering::SeqCst);
        for (i, chunk) in blob.chunks(1 << 20).enumerate() {
            let mut chunk = chunk.to_vec();
            if corrupt && i == blob.len() / (1 << 20) / 2 {
                chunk[0] ^= 0xff;
            }
            if conn.write_all(&chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    } else if path == "/v2/" {
        let _ =
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    } else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

/// One blob GET on its own connection: the status, the length announced, the bytes
/// received, and whether they are `want`'s (compared, not hashed: the test's own code
/// is unoptimised, and 32 clients hashing 64 MiB each would take it most of a minute).
pub fn raw_get(addr: &str, path: &str, want: &[u8]) -> (u16, u64, u64, bool) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::with_capacity(1 << 20, conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut same = true;
    let mut received = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while received < length {
        match reader.read(&mut buf) {
            // A signal to this test process (other tests start and reap servers) is
            // not the server cutting the stream.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = received as usize;
                same &= want.get(at..at + n) == Some(&buf[..n]);
                received += n as u64;
            }
        }
    }
    (
        status,
        length,
        received,
        same && received == want.len() as u64,
    )
}

/// A deterministic blob of `n` bytes (one per `label`), made quickly.
pub fn big_blob(label: &str, n: usize) -> Arc<Vec<u8>> {
    let mut rng = Rng::new(label);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(n);
    Arc::new(v)
}
