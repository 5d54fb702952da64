//! The S3 driver against a real S3-compatible server: moto in server mode on a free
//! loopback port (`pip install 'moto[server]'`; `scripts/test.sh` installs it). Skipped
//! with a message when moto is missing, unless `BERTH_E2E_REQUIRED=1`.
//!
//! With `BERTH_S3_ENDPOINT` (and `BERTH_S3_ACCESSKEY`, `BERTH_S3_SECRETKEY`) the same
//! tests run against that server instead, e.g. Ceph radosgw, which checks signatures
//! (buckets are created and inspected with `curl --aws-sigv4`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_driver::{Persist, S3Driver, S3Options, StorageDriver, suite};
use bytes::Bytes;
use futures::TryStreamExt;

/// The server the tests run against: a moto server (stopped when dropped) or the one
/// `BERTH_S3_ENDPOINT` names.
struct Moto {
    child: Option<Child>,
    endpoint: String,
    key: String,
    secret: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn external() -> Option<Moto> {
    let endpoint = std::env::var("BERTH_S3_ENDPOINT").ok()?;
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} is needed with BERTH_S3_ENDPOINT"))
    };
    Some(Moto {
        child: None,
        endpoint,
        key: var("BERTH_S3_ACCESSKEY"),
        secret: var("BERTH_S3_SECRETKEY"),
    })
}

/// A signed request with curl (for servers that check signatures); answers the body.
fn curl(moto: &Moto, method: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-X",
            method,
            "-H",
            // curl signs no payload hash of its own; S3 wants one (an empty body's).
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{}:{}", moto.key, moto.secret))
        .arg(format!("{}{path}", moto.endpoint))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{method} {path}: {body}");
    body
}

fn have_moto() -> bool {
    if std::env::var_os("BERTH_S3_ENDPOINT").is_some() {
        return true;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v moto_server"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("BERTH_E2E_REQUIRED").as_deref() != Ok("1"),
            "moto_server is required by this test (pip install 'moto[server]', or unset BERTH_E2E_REQUIRED to skip)"
        );
        eprintln!("skipping: moto_server is not installed");
    }
    found
}

fn start_moto() -> Moto {
    if let Some(m) = external() {
        return m;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
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
    Moto {
        child: Some(child),
        endpoint: format!("http://{addr}"),
        key: "test".into(),
        secret: "test".into(),
    }
}

/// Creates a bucket and answers its name: on an external server, made unique per run
/// (buckets there outlive the test).
fn create_bucket(moto: &Moto, bucket: &str) -> String {
    if moto.child.is_none() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let bucket = format!("{bucket}-{}-{nanos}", std::process::id());
        curl(moto, "PUT", &format!("/{bucket}"));
        return bucket;
    }
    let addr = moto.endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect moto");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket: {answer}"
    );
    bucket.to_owned()
}

/// Multipart uploads in progress in a bucket (a bare GET: moto checks no signature).
fn uploads_in(moto: &Moto, bucket: &str) -> usize {
    if moto.child.is_none() {
        return curl(moto, "GET", &format!("/{bucket}?uploads="))
            .matches("<UploadId>")
            .count();
    }
    let addr = moto.endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect moto");
    write!(
        s,
        "GET /{bucket}?uploads HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "list uploads: {answer}");
    answer.matches("<UploadId>").count()
}

fn driver(moto: &Moto, bucket: &str, root: &str) -> S3Driver {
    let mut o = S3Options::new(bucket, "us-east-1");
    o.endpoint = Some(moto.endpoint.clone());
    o.access_key = Some(moto.key.clone());
    o.secret_key = Some(moto.secret.clone());
    o.force_path_style = true;
    o.root_directory = root.into();
    o.chunk_size = 5 * 1024 * 1024;
    S3Driver::new(&o).expect("driver")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

async fn read_all(d: &dyn StorageDriver, path: &str) -> Vec<u8> {
    let chunks: Vec<Bytes> = d
        .reader(path, 0, None)
        .await
        .expect("reader")
        .try_collect()
        .await
        .expect("read");
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_driver_passes_the_shared_suite() {
    if !have_moto() {
        return;
    }
    let moto = start_moto();
    let bucket = create_bucket(&moto, "suite");
    suite::run_all(&driver(&moto, &bucket, "/some/root/")).await;
    suite::run_all(&driver(&moto, &bucket, "")).await;
}

/// Keys are distribution's: `<rootdirectory>/<path without its leading slash>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keys_are_distributions() {
    if !have_moto() {
        return;
    }
    let moto = start_moto();
    let bucket = create_bucket(&moto, "keys");
    let rooted = driver(&moto, &bucket, "/registry");
    let top = driver(&moto, &bucket, "");
    rooted
        .put_content(
            "/docker/registry/v2/repositories/a/x",
            Bytes::from_static(b"1"),
        )
        .await
        .unwrap();
    assert_eq!(
        top.get_content("/registry/docker/registry/v2/repositories/a/x")
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(top.list("/").await.unwrap(), ["/registry"]);
}

/// One file appended to by three driver instances (three nodes), each taking over
/// where the previous one's acknowledged write ended, tails under 5 MiB included; then
/// committed by a rename, as an upload is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_append_continues_on_another_node() {
    if !have_moto() {
        return;
    }
    let moto = start_moto();
    let bucket = create_bucket(&moto, "nodes");
    let path = "/docker/registry/v2/repositories/r/_uploads/u/data";
    let chunks = [
        pattern(3 << 20, 1),       // under a part: stays a small object
        pattern(4 << 20, 2),       // crosses 5 MiB: one part plus a 2 MiB tail
        pattern(100_000, 3),       // a tiny chunk on yet another node
        pattern((6 << 20) + 7, 4), // another part, odd tail
        pattern(10, 5),            // a last, tiny chunk
    ];
    let mut expected = Vec::new();
    let a = driver(&moto, &bucket, "root");
    a.put_content(path, Bytes::new()).await.unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        // A fresh instance per chunk: nothing survives in memory between requests.
        let node = driver(&moto, &bucket, "root");
        let mut w = node.writer(path, true, Persist::Volatile).await.unwrap();
        assert_eq!(w.size(), expected.len() as u64, "chunk {i}: size seen");
        for piece in chunk.chunks(1 << 20) {
            w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        w.commit().await.unwrap();
        expected.extend_from_slice(chunk);
        drop(node);
        let other = driver(&moto, &bucket, "root");
        assert_eq!(
            other.stat(path).await.unwrap().size,
            expected.len() as u64,
            "chunk {i}: size on another node"
        );
    }
    let c = driver(&moto, &bucket, "root");
    c.rename(
        "/docker/registry/v2/repositories/r/_uploads/u",
        "/docker/registry/v2/blobs/sha256/ab/abcd",
        Persist::Volatile,
    )
    .await
    .unwrap();
    let got = read_all(&a, "/docker/registry/v2/blobs/sha256/ab/abcd/data").await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "committed bytes differ");
    assert!(a.stat(path).await.unwrap_err().is_not_found());
}

/// Deleting a tree holding a file being appended to removes it and aborts its
/// multipart upload (its parts would otherwise be stored, and billed, until a lifecycle
/// rule reaps them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_pending_file_deletes() {
    if !have_moto() {
        return;
    }
    let moto = start_moto();
    let bucket = create_bucket(&moto, "del");
    let d = driver(&moto, &bucket, "");
    let mut w = d.writer("/up/data", true, Persist::Volatile).await.unwrap();
    w.write(Bytes::from(pattern((5 << 20) + 3, 9)))
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(d.stat("/up/data").await.unwrap().size, (5 << 20) + 3);
    let tail: Vec<Bytes> = d
        .reader("/up/data", 5 << 20, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tail.concat(), &pattern((5 << 20) + 3, 9)[5 << 20..]);
    assert_eq!(uploads_in(&moto, &bucket), 1);
    d.delete("/up").await.unwrap();
    assert!(d.stat("/up/data").await.unwrap_err().is_not_found());
    assert_eq!(
        uploads_in(&moto, &bucket),
        0,
        "multipart upload left behind"
    );
    // The file alone, too.
    let mut w = d
        .writer("/up2/data", true, Persist::Volatile)
        .await
        .unwrap();
    w.write(Bytes::from(pattern(6 << 20, 1))).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(uploads_in(&moto, &bucket), 1);
    d.delete("/up2/data").await.unwrap();
    assert_eq!(
        uploads_in(&moto, &bucket),
        0,
        "multipart upload left behind"
    );
}

/// A move of an object over `multipartcopythresholdsize` copies it in parts
/// (`UploadPartCopy`, several at once), signed by berth itself; the bytes arrive whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_moves_copy_in_parts() {
    if !have_moto() {
        return;
    }
    let moto = start_moto();
    let bucket = create_bucket(&moto, "copies");
    let mut o = S3Options::new(bucket.as_str(), "us-east-1");
    o.endpoint = Some(moto.endpoint.clone());
    o.access_key = Some(moto.key.clone());
    o.secret_key = Some(moto.secret.clone());
    o.force_path_style = true;
    o.root_directory = "root dir".into();
    o.copy_threshold = 5 << 20;
    o.copy_part = 5 << 20;
    o.copy_concurrency = 2;
    let d = S3Driver::new(&o).unwrap();
    let data = pattern((11 << 20) + 3, 7);
    let mut w = d.writer("/big/src", false, Persist::Durable).await.unwrap();
    w.write(Bytes::from(data.clone())).await.unwrap();
    w.commit().await.unwrap();
    d.rename("/big/src", "/big/moved/dst", Persist::Durable)
        .await
        .unwrap();
    assert!(d.stat("/big/src").await.unwrap_err().is_not_found());
    assert_eq!(
        d.stat("/big/moved/dst").await.unwrap().size,
        data.len() as u64
    );
    assert!(
        read_all(&d, "/big/moved/dst").await == data,
        "copied bytes differ"
    );
}

/// A presigned URL serves the file to a client holding no credentials (radosgw checks
/// the signature; moto does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_presigned_urls_serve_the_file() {
    if !have_moto() {
        return;
    }
    let moto = start_moto();
    let bucket = create_bucket(&moto, "signed");
    let d = driver(&moto, &bucket, "/reg");
    d.put_content("/docker/blob/data", Bytes::from_static(b"presigned bytes"))
        .await
        .unwrap();
    let url = d
        .redirect_url("/docker/blob/data")
        .await
        .unwrap()
        .expect("S3 presigns");
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", &url])
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "presigned bytes",
        "{url}"
    );
}
