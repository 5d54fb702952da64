//! `berth.limits` on the real binary, over raw TCP so the tests control every byte: a
//! slow-loris head is cut off after `headerreadtimeout` while another client is served,
//! an idle keep-alive connection after `idletimeout` (and not at the head timeout), an
//! oversized head is answered 431; the upload-session bound and the per-client rate
//! limit answer 429 `TOOMANYREQUESTS` with `Retry-After`, and recover.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A parsed HTTP/1.1 response.
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

/// Reads one response (head, then a `Content-Length` body) from `s`.
fn read_reply(s: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read response head");
        assert!(
            n == 1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends one request on `s` and reads its response.
fn request(s: &mut TcpStream, method: &str, target: &str) -> Reply {
    let head = format!("{method} {target} HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\n\r\n");
    s.write_all(head.as_bytes()).expect("send request");
    read_reply(s)
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

/// Connects to `addr` from the loopback address `from` (any of 127.0.0.0/8 works on
/// Linux), so the server sees another client.
fn connect_from(from: &str, addr: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let local: SocketAddr = format!("{from}:0").parse().expect("address");
        socket.bind(local).expect("bind the client side");
        let remote: SocketAddr = addr.parse().expect("address");
        socket.connect(remote).await.expect("connect")
    });
    let s = stream.into_std().expect("std stream");
    s.set_nonblocking(false).expect("blocking");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

/// Whether the server has closed `s`: a read sees the end (or a reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 64];
    loop {
        return match s.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            // A signal to this test process, not the server: read again.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => true,
        };
    }
}

fn start(limits: &str) -> (tempfile::TempDir, common::Process) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = common::berth(&root, dir.path(), &format!("berth:\n  limits:\n{limits}"));
    (dir, server)
}

#[test]
fn a_slow_loris_is_cut_off_while_others_are_served() {
    let (_dir, server) = start("    headerreadtimeout: 2s\n    idletimeout: 30s\n");
    let mut loris = connect(&server.addr);
    let head = b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut sent = 0;
    let mut served = 0;
    // One byte a second, checking each second whether the server hung up; a normal
    // client is served meanwhile.
    let cut = loop {
        if sent < head.len() {
            let _ = loris.write_all(&head[sent..=sent]);
            sent += 1;
        }
        let mut other = connect(&server.addr);
        assert_eq!(request(&mut other, "GET", "/v2/").status, 200);
        served += 1;
        if closed_within(&mut loris, Duration::from_secs(1)) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slow head was never cut off"
        );
    };
    assert!(
        cut >= Duration::from_millis(1900) && cut < Duration::from_secs(5),
        "cut off after {cut:?}, headerreadtimeout is 2s"
    );
    assert!(sent < head.len(), "the head was never complete");
    assert!(served >= 2, "the other client was served throughout");
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_not_the_head_timeout() {
    let (_dir, server) = start("    headerreadtimeout: 1s\n    idletimeout: 3s\n");
    let mut s = connect(&server.addr);
    assert_eq!(request(&mut s, "GET", "/v2/").status, 200);
    // Idle past the head timeout: the connection is still good for another request.
    assert!(!closed_within(&mut s, Duration::from_millis(1800)));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(request(&mut s, "GET", "/v2/").status, 200);
    let answered = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(8)),
        "an idle connection stayed open"
    );
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(2900) && idle < Duration::from_secs(6),
        "closed after {idle:?} idle, idletimeout is 3s"
    );
}

#[test]
fn an_oversized_head_is_refused_with_431() {
    let (_dir, server) = start("    maxheaderbytes: 8192\n");
    let mut s = connect(&server.addr);
    let fits = format!(
        "GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Fits: {}\r\n\r\n",
        "a".repeat(4000)
    );
    s.write_all(fits.as_bytes()).expect("send");
    assert_eq!(read_reply(&mut s).status, 200);

    let mut s = connect(&server.addr);
    let big = format!(
        "GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    // The server may answer and close before every byte is taken.
    let _ = s.write_all(big.as_bytes());
    let reply = read_reply(&mut s);
    assert_eq!(reply.status, 431);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

#[test]
fn the_upload_session_bound_answers_429_until_a_session_ends() {
    let (_dir, server) = start("    maxuploadsessions: 2\n");
    let mut s = connect(&server.addr);
    let mut locations = Vec::new();
    for repo in ["a", "b"] {
        let r = request(&mut s, "POST", &format!("/v2/{repo}/blobs/uploads/"));
        assert_eq!(r.status, 202);
        locations.push(r.header("location").to_owned());
    }
    let refused = request(&mut s, "POST", "/v2/c/blobs/uploads/");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.code(), "TOOMANYREQUESTS");
    let wait: u64 = refused.header("retry-after").parse().expect("Retry-After");
    assert!(wait >= 1);
    assert_eq!(
        refused.header("docker-distribution-api-version"),
        "registry/2.0"
    );
    // Cancelling one frees its slot.
    assert_eq!(request(&mut s, "DELETE", &locations[0]).status, 204);
    assert_eq!(request(&mut s, "POST", "/v2/c/blobs/uploads/").status, 202);
    assert_eq!(request(&mut s, "POST", "/v2/d/blobs/uploads/").status, 429);
}

#[test]
fn the_per_client_rate_limit_refuses_a_burst_and_recovers() {
    let (_dir, server) = start("    ratelimit:\n      perclient: {rate: 1, burst: 3}\n");
    // 127.0.0.3 and 127.0.0.2 are clients of their own: the start-up probe came from
    // 127.0.0.1.
    let mut busy = connect_from("127.0.0.3", &server.addr);
    for i in 0..3 {
        assert_eq!(request(&mut busy, "GET", "/v2/").status, 200, "request {i}");
    }
    let refused = request(&mut busy, "GET", "/v2/");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.code(), "TOOMANYREQUESTS");
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(
        refused.header("docker-distribution-api-version"),
        "registry/2.0"
    );
    // Another address is not affected, on a new connection or several.
    for _ in 0..3 {
        let mut other = connect_from("127.0.0.2", &server.addr);
        assert_eq!(request(&mut other, "GET", "/v2/").status, 200);
    }
    // A new connection from the same address shares its bucket.
    let mut again = connect_from("127.0.0.3", &server.addr);
    assert_eq!(request(&mut again, "GET", "/v2/").status, 429);
    // After the wait Retry-After gave, a request passes again (one token came back).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(request(&mut busy, "GET", "/v2/").status, 200);
    assert_eq!(request(&mut busy, "GET", "/v2/").status, 429);
}

/// Starts `openssl s_client` on `addr` with its stdin ours to write, and answers it
/// with when it started.
fn tls_client(addr: &str) -> (std::process::Child, Instant) {
    let child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_client");
    (child, Instant::now())
}

/// Whether `child` exits (the server hung up on it) before `until`.
fn exited_by(child: &mut std::process::Child, until: Instant) -> bool {
    loop {
        if child.try_wait().expect("wait").is_some() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Over TLS too, after the handshake: a connection that never sends a request is
/// closed after `idletimeout`, and a head sent a byte at a time after
/// `headerreadtimeout`.
#[test]
fn tls_connections_get_the_same_timeouts() {
    if !common::have_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    common::run(
        std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let (config, addr) = common::berth_config(
        &dir.path().join("root"),
        dir.path(),
        "",
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\nberth:\n  limits:\n    \
             headerreadtimeout: 1s\n    idletimeout: 3s\n",
            cert.display(),
            key.display()
        ),
    );
    let log = dir.path().join("tls.log");
    let out = std::fs::File::create(&log).expect("log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg(&config)
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("berth");
    let server = common::Process::new(child, addr.clone(), log);
    // Ready once a TLS client gets through the handshake and an answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probe = std::process::Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| {
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(b"GET /v2/ HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")?;
                }
                c.wait_with_output()
            })
            .expect("probe");
        if String::from_utf8_lossy(&probe.stdout).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TLS never answered: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (mut idle, started) = tls_client(&addr);
    let closed = exited_by(&mut idle, started + Duration::from_secs(10));
    let ran = started.elapsed();
    let _ = idle.kill();
    let _ = idle.wait();
    assert!(closed, "an idle TLS connection stayed open");
    assert!(
        ran >= Duration::from_millis(2900) && ran < Duration::from_secs(7),
        "idle TLS connection closed after {ran:?}, idletimeout is 3s"
    );

    let (mut loris, _) = tls_client(&addr);
    let mut input = loris.stdin.take().expect("stdin");
    // Let the handshake finish, then one byte every 300 ms.
    std::thread::sleep(Duration::from_millis(500));
    let first_byte = Instant::now();
    let mut cut = None;
    for b in b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
        let _ = input.write_all(&[*b]);
        let _ = input.flush();
        if exited_by(&mut loris, Instant::now() + Duration::from_millis(300)) {
            cut = Some(first_byte.elapsed());
            break;
        }
    }
    let _ = loris.kill();
    let _ = loris.wait();
    let cut = cut.expect("the slow TLS head was never cut off");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(3),
        "slow TLS head cut off {cut:?} after its first byte, headerreadtimeout is 1s"
    );
}
