//! The real `berth` binary: subcommands, the embedded default, graceful shutdown with an
//! in-flight request, a chunked upload that continues across a restart, read-only mode,
//! upload purging, JSON logs, TLS, large blob GETs (the `sendfile` path), the open-files
//! limit, and pushes flushed to the disk (or not, with `fsync: false`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn berth_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

/// Sends a raw HTTP/1.1 request and returns (status, headers+body text).
fn raw(addr: &str, request: &str, body: &[u8]) -> (u16, String) {
    let (status, text, _) = raw_body(addr, request, body);
    (status, text)
}

/// Like [`raw`], also returning the exact response body bytes.
fn raw_body(addr: &str, request: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| out[i + 4..].to_vec())
        .unwrap_or_default();
    (status, text, body)
}

fn header<'a>(response: &'a str, name: &str) -> &'a str {
    response
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or("")
}

fn request(method: &str, path: &str, host: &str, extra: &str, len: usize) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

#[test]
fn check_config_reports_warnings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "version: 0.1\nstorage: {inmemory: {}}\nnotifications: {endpoints: []}\n",
    )
    .unwrap();
    let out = berth_cmd().arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`notifications.endpoints` is not supported")
    );

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "version: 0.1\nstorage: {inmemory: {}, delete: {enabled: perhaps}}\n",
    )
    .unwrap();
    let out = berth_cmd().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage.delete.enabled"));

    let auth = dir.path().join("auth.yml");
    std::fs::write(
        &auth,
        "version: 0.1\nstorage: {inmemory: {}}\nauth: {htpasswd: {realm: x, path: /x}}\n",
    )
    .unwrap();
    let out = berth_cmd().arg("serve").arg(&auth).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication"));

    let out = berth_cmd().arg("nonsense").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn embedded_default_serves_from_a_local_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("log");
    let mut child = berth_cmd()
        .arg("serve")
        .current_dir(dir.path())
        .env("REGISTRY_HTTP_ADDR", &addr)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    common::wait_ready(&addr, &mut child, &log);
    let (status, _) = raw(
        &addr,
        &request("POST", "/v2/x/blobs/uploads/", &addr, "", 0),
        b"",
    );
    assert_eq!(status, 202);
    assert!(
        dir.path()
            .join("data/docker/registry/v2/repositories/x/_uploads")
            .is_dir()
    );
    let process = common::Process { child, addr, log };
    let text = process.log_text();
    assert!(
        text.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "filesystem storage at {}",
        dir.path().join("data").canonicalize().unwrap().display()
    )));
    assert!(process.stop().success());
}

#[test]
fn sigterm_drains_an_in_flight_upload() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::berth(&dir.path().join("root"), dir.path(), "");
    let addr = server.host().to_owned();
    let (_, resp) = raw(
        &addr,
        &request("POST", "/v2/d/blobs/uploads/", &addr, "", 0),
        b"",
    );
    let location = header(&resp, "location").to_owned();

    // Half a PATCH body, then SIGTERM, then the rest: the request must still complete.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request("PATCH", &location, &addr, "", 10).as_bytes())
        .unwrap();
    s.write_all(b"01234").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        common::http_status(&addr, "/v2/"),
        0,
        "new connections are refused while draining"
    );
    s.write_all(b"56789").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");
    assert_eq!(header(&out, "range"), "0-9");
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn chunked_upload_continues_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let first = common::berth(&root, dir.path(), "");
    let addr = first.host().to_owned();
    let (_, resp) = raw(
        &addr,
        &request("POST", "/v2/r/blobs/uploads/", &addr, "", 0),
        b"",
    );
    let location = header(&resp, "location").to_owned();
    let (status, resp) = raw(
        &addr,
        &request(
            "PATCH",
            &location,
            &addr,
            "Content-Range: 0-99999\r\n",
            100_000,
        ),
        &data[..100_000],
    );
    assert_eq!((status, header(&resp, "range")), (202, "0-99999"), "{resp}");
    assert!(first.stop().success());

    let second = common::berth(&root, dir.path(), "");
    let addr = second.host().to_owned();
    let (status, resp) = raw(&addr, &request("GET", &location, &addr, "", 0), b"");
    assert_eq!((status, header(&resp, "range")), (204, "0-99999"));
    let (status, _) = raw(
        &addr,
        &request(
            "PATCH",
            &location,
            &addr,
            "Content-Range: 100000-199999\r\n",
            100_000,
        ),
        &data[100_000..200_000],
    );
    assert_eq!(status, 202);
    let put = format!("{location}?digest={}", digest(&data));
    let (status, resp) = raw(
        &addr,
        &request("PUT", &put, &addr, "", 100_000),
        &data[200_000..],
    );
    assert_eq!(status, 201, "{resp}");
    let get = request(
        "GET",
        &format!("/v2/r/blobs/{}", digest(&data)),
        &addr,
        "",
        0,
    );
    let (status, resp, body) = raw_body(&addr, &get, b"");
    assert_eq!(status, 200);
    assert_eq!(header(&resp, "content-length"), "300000");
    assert!(body == data, "blob bytes differ");
}

#[test]
fn read_only_mode_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let writable = common::berth(&root, dir.path(), "");
    let addr = writable.host().to_owned();
    let push = request(
        "POST",
        &format!("/v2/ro/blobs/uploads/?digest={}", digest(b"x")),
        &addr,
        "",
        1,
    );
    assert_eq!(raw(&addr, &push, b"x").0, 201);
    drop(writable);

    let storage = "  maintenance:\n    readonly:\n      enabled: true\n";
    let server = common::berth_with(&root, dir.path(), storage, "");
    let addr = server.host().to_owned();
    let (status, resp) = raw(
        &addr,
        &request("POST", "/v2/ro/blobs/uploads/", &addr, "", 0),
        b"",
    );
    assert_eq!(status, 405, "{resp}");
    assert!(resp.contains("UNSUPPORTED"));
    let (status, _) = raw(
        &addr,
        &request(
            "HEAD",
            &format!("/v2/ro/blobs/{}", digest(b"x")),
            &addr,
            "",
            0,
        ),
        b"",
    );
    assert_eq!(status, 200);
}

#[test]
fn old_uploads_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let storage = "  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 1s\n";
    let server = common::berth_with(&dir.path().join("root"), dir.path(), storage, "");
    let addr = server.host().to_owned();
    let (_, resp) = raw(
        &addr,
        &request("POST", "/v2/p/blobs/uploads/", &addr, "", 0),
        b"",
    );
    let location = header(&resp, "location").to_owned();
    assert_eq!(
        raw(&addr, &request("GET", &location, &addr, "", 0), b"").0,
        204
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while raw(&addr, &request("GET", &location, &addr, "", 0), b"").0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "upload never purged:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.log_text().contains("upload purge"));
}

#[test]
fn json_logs_carry_request_fields_and_static_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log_section =
        "log:\n  level: info\n  formatter: json\n  fields:\n    service: registry\n    env: test\n";
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("json.yml");
    std::fs::write(
        &config,
        format!("version: 0.1\n{log_section}storage: {{inmemory: {{}}}}\nhttp: {{addr: {addr}}}\n"),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = berth_cmd()
        .arg("serve")
        .arg(&config)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    common::wait_ready(&addr, &mut child, &log);
    raw(
        &addr,
        &request("GET", "/v2/nothing/tags/list", &addr, "", 0),
        b"",
    );
    let process = common::Process { child, addr, log };
    assert!(process.stop().success());
    let text = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["path"] == "/v2/nothing/tags/list")
        .unwrap_or_else(|| panic!("no JSON access line in:\n{text}"));
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 404);
    assert!(line["duration_ms"].is_number());
    assert!(
        line["span"]["fields"]
            .as_str()
            .unwrap_or("")
            .contains("service=registry"),
        "{line}"
    );
}

#[test]
fn serves_tls() {
    if !common::have_tool("openssl") || !common::have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    common::run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("tls.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage: {{inmemory: {{}}}}\nhttp:\n  addr: {addr}\n  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let child = berth_cmd()
        .arg("serve")
        .arg(&config)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let process = common::Process {
        child,
        addr: addr.clone(),
        log,
    };
    let url = format!("https://{addr}/v2/");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &url])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout) == "200" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "TLS endpoint never answered: {}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(process.stop().success());
}

/// A blob large enough to be served from a memory map (and so by `sendfile` on a plain
/// connection) arrives whole, and so does a range of it; the server started with a low
/// soft open-files limit has raised it to the hard limit.
#[test]
fn large_blobs_arrive_whole_and_the_open_files_limit_is_raised() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (config, addr) = common::berth_config(root.path(), work.path(), "", "");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -Sn 256 2>/dev/null; exec \"$0\" serve \"$1\"")
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg(&config);
    let process = common::spawn(cmd, addr.clone(), work.path(), "berth");
    let (soft, hard) = open_files_limits(process.child.id());
    let (_, hard_here) = open_files_limits(std::process::id());
    assert_eq!(hard, hard_here);
    assert_eq!(soft, hard, "soft limit raised to the hard one");

    let data: Vec<u8> = (0..5 * 1024 * 1024 + 4_321u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let d = digest(&data);
    let (status, head) = raw(
        &addr,
        &request(
            "POST",
            &format!("/v2/big/blobs/uploads/?digest={d}"),
            &addr,
            "",
            data.len(),
        ),
        &data,
    );
    assert_eq!(status, 201, "{head}");

    let path = format!("/v2/big/blobs/{d}");
    let (status, head, body) = raw_body(&addr, &request("GET", &path, &addr, "", 0), b"");
    assert_eq!(status, 200, "{head}");
    assert_eq!(body.len(), data.len());
    assert!(body == data, "the full body differs from the blob");

    let (start, end) = (1_048_577usize, 4_500_000usize);
    let range = format!("Range: bytes={start}-{end}\r\n");
    let (status, head, body) = raw_body(&addr, &request("GET", &path, &addr, &range, 0), b"");
    assert_eq!(status, 206, "{head}");
    assert!(body == data[start..=end], "the range differs from the blob");
    assert!(process.stop().success());
}

/// The soft and hard open-files limits of a process, as `/proc/<pid>/limits` writes them.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-files line in {limits}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

/// A blob push and a manifest push are flushed to the disk before they are acknowledged
/// (`fdatasync` of every file written, `fsync` of the directories renames land in), and
/// none of it happens with `storage.filesystem.fsync: false`. Watched with strace.
#[test]
fn pushes_are_flushed_to_disk_unless_fsync_is_off() {
    if !common::have_tool("strace") {
        return;
    }
    let on = flushes_during_a_push("");
    assert!(on.0 >= 6, "fdatasync calls with fsync on: {on:?}");
    assert!(on.1 >= 2, "directory fsync calls with fsync on: {on:?}");
    assert_eq!(flushes_during_a_push("    fsync: false\n"), (0, 0));
}

/// Pushes one blob and a manifest naming it into a fresh berth run under strace (with
/// `storage_extra` in its config); answers the (`fdatasync`, `fsync`) calls it made.
fn flushes_during_a_push(filesystem_extra: &str) -> (usize, usize) {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (config, addr) = common::berth_config(root.path(), work.path(), "", "");
    // The filesystem section is the first storage entry: add to it in place.
    let yaml = std::fs::read_to_string(&config).unwrap().replacen(
        "    rootdirectory:",
        &format!("{filesystem_extra}    rootdirectory:"),
        1,
    );
    std::fs::write(&config, yaml).unwrap();
    let trace = work.path().join("strace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg(&config);
    let mut process = common::spawn(cmd, addr.clone(), work.path(), "berth");

    let layer = b"a layer that must survive a power cut".to_vec();
    let config_blob = b"{}".to_vec();
    for blob in [&layer, &config_blob] {
        let path = format!("/v2/durable/blobs/uploads/?digest={}", digest(blob));
        let (status, head) = raw(&addr, &request("POST", &path, &addr, "", blob.len()), blob);
        assert_eq!(status, 201, "{head}");
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest(&config_blob),
        config_blob.len(),
        digest(&layer),
        layer.len()
    );
    let content_type = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";
    let put = request(
        "PUT",
        "/v2/durable/manifests/v1",
        &addr,
        content_type,
        manifest.len(),
    );
    let (status, head) = raw(&addr, &put, manifest.as_bytes());
    assert_eq!(status, 201, "{head}");

    // strace is the child; berth is strace's. Stop berth, then strace follows it out.
    let strace_pid = process.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let berth_pid = children
        .split_whitespace()
        .next()
        .expect("berth under strace");
    let _ = Command::new("kill").args(["-TERM", berth_pid]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while process.child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "berth did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&trace).unwrap();
    let calls = |name: &str| {
        text.lines()
            .filter(|l| l.contains(&format!(" {name}(")) && !l.contains("resumed"))
            .count()
    };
    (calls("fdatasync"), calls("fsync"))
}
