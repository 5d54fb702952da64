//! The real `berth` binary: subcommands, the embedded default, graceful shutdown with an
//! in-flight request, a chunked upload that continues across a restart, read-only mode,
//! upload purging, JSON logs, TLS, large blob GETs (the `sendfile` path), the open-files
//! limit, and pushes flushed to the disk (or not, with `fsync: false`).

mod common;

use std::process::Command;
use std::time::Duration;

use berth_client::{Body, ByteRange, Client};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn berth_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

#[test]
fn check_config_reports_warnings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "version: 0.1\nstorage: {inmemory: {}}\nreporting: {newrelic: {name: x}}\n",
    )
    .unwrap();
    let out = berth_cmd().arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`reporting.newrelic.name` is not supported")
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

    // An access controller berth does not have never leaves the registry open.
    let auth = dir.path().join("auth.yml");
    std::fs::write(
        &auth,
        "version: 0.1\nstorage: {inmemory: {}}\nauth: {silly: {realm: x, service: y}}\n",
    )
    .unwrap();
    let out = berth_cmd().arg("serve").arg(&auth).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.silly"));

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
    let process = common::Process::new(child, addr, log);
    let r = process.client().run(|c| c.start_upload("x")).unwrap();
    assert_eq!(r.status, 202, "{r:?}");
    assert!(
        dir.path()
            .join("data/docker/registry/v2/repositories/x/_uploads")
            .is_dir()
    );
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
    let upload = server
        .client()
        .run(|c| c.start_upload("d"))
        .unwrap()
        .location()
        .unwrap();

    // Half a PATCH body (of a declared 10 bytes), then SIGTERM, then the rest: the
    // request must still complete. The body is fed from this thread while a runtime of
    // its own sends it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (feed, pieces) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = futures::stream::unfold(pieces, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(b), rx))
    });
    let client = Client::new(&format!("http://{}", server.host())).unwrap();
    let patch = runtime.spawn(async move {
        client
            .patch_stream(&upload, Body::stream(body, Some(10)))
            .await
    });
    feed.blocking_send(Bytes::from_static(b"01234")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let fresh = common::client(server.host());
    assert!(
        fresh.run(|c| c.ping()).is_err(),
        "new connections are refused while draining"
    );
    feed.blocking_send(Bytes::from_static(b"56789")).unwrap();
    drop(feed);
    let r = runtime.block_on(patch).unwrap().unwrap();
    assert_eq!((r.status, r.header("range")), (202, Some("0-9")), "{r:?}");
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn chunked_upload_continues_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let first = common::berth(&root, dir.path(), "");
    let reg = first.client();
    let upload = reg
        .run(|c| c.start_upload("r"))
        .unwrap()
        .location()
        .unwrap();
    let chunk = data[..100_000].to_vec();
    let r = reg.run(|c| c.patch_chunk(&upload, 0, chunk)).unwrap();
    assert_eq!(
        (r.status, r.header("range")),
        (202, Some("0-99999")),
        "{r:?}"
    );
    assert!(first.stop().success());

    let second = common::berth(&root, dir.path(), "");
    let reg = second.client();
    let upload = common::rebase(reg, &upload);
    let r = reg.run(|c| c.upload_status(&upload)).unwrap();
    assert_eq!(
        (r.status, r.header("range")),
        (204, Some("0-99999")),
        "{r:?}"
    );
    let chunk = data[100_000..200_000].to_vec();
    let r = reg.run(|c| c.patch_chunk(&upload, 100_000, chunk)).unwrap();
    assert_eq!(r.status, 202, "{r:?}");
    let last = data[200_000..].to_vec();
    let d = digest(&data);
    let r = reg.run(|c| c.finish_upload(&upload, &d, last)).unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    let r = reg.run(|c| c.get_blob("r", &d, None)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("300000"));
    assert!(r.body == data, "blob bytes differ");
}

#[test]
fn read_only_mode_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let d = digest(b"x");
    let writable = common::berth(&root, dir.path(), "");
    let r = writable
        .client()
        .run(|c| c.post_blob("ro", &d, b"x".to_vec()))
        .unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    drop(writable);

    let storage = "  maintenance:\n    readonly:\n      enabled: true\n";
    let server = common::berth_with(&root, dir.path(), storage, "");
    let reg = server.client();
    let r = reg.run(|c| c.start_upload("ro")).unwrap();
    r.require_error(405, "UNSUPPORTED").unwrap();
    let r = reg.run(|c| c.head_blob("ro", &d)).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn old_uploads_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let storage = "  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 1s\n";
    let server = common::berth_with(&dir.path().join("root"), dir.path(), storage, "");
    let reg = server.client();
    let upload = reg
        .run(|c| c.start_upload("p"))
        .unwrap()
        .location()
        .unwrap();
    let status = || reg.run(|c| c.upload_status(&upload)).unwrap().status;
    assert_eq!(status(), 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status() != 404 {
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
    let process = common::Process::new(child, addr, log);
    let r = process
        .client()
        .run(|c| c.tags_list("nothing", None, None))
        .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
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
    let process = common::Process::new(child, addr.clone(), log);
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
    let reg = process.client();
    let r = reg.run(|c| c.post_blob("big", &d, data.clone())).unwrap();
    assert_eq!(r.status, 201, "{r:?}");

    // The whole blob streamed, each piece compared where it lands.
    let mut at = 0;
    let (want, got, d_ref) = (&data, &mut at, &d);
    reg.run(|c| async move {
        let mut s = c.get_blob_streaming("big", d_ref, None).await.unwrap();
        assert_eq!(s.status, 200);
        while let Some(piece) = s.chunk().await.unwrap() {
            let from = *got;
            assert!(
                want.get(from..from + piece.len()) == Some(&piece[..]),
                "the full body differs from the blob at byte {from}"
            );
            *got += piece.len();
        }
    });
    assert_eq!(at, data.len());

    let (start, end) = (1_048_577usize, 4_500_000usize);
    let range = ByteRange::Span(start as u64, end as u64);
    let r = reg.run(|c| c.get_blob("big", &d, Some(range))).unwrap();
    assert_eq!(r.status, 206, "{r:?}");
    assert!(
        r.body == data[start..=end],
        "the range differs from the blob"
    );
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
    let reg = common::client(&addr);

    let layer = b"a layer that must survive a power cut".to_vec();
    let config_blob = b"{}".to_vec();
    for blob in [&layer, &config_blob] {
        let d = digest(blob);
        let r = reg
            .run(|c| c.post_blob("durable", &d, blob.clone()))
            .unwrap();
        assert_eq!(r.status, 201, "{r:?}");
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest(&config_blob),
        config_blob.len(),
        digest(&layer),
        layer.len()
    );
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let r = reg
        .run(|c| c.put_manifest("durable", "v1", media_type, manifest.clone(), &[]))
        .unwrap();
    assert_eq!(r.status, 201, "{r:?}");

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
