//! The S3 driver against real S3-compatible servers, each test on two of them: moto in
//! server mode on a free loopback port (`pip install 'moto[server]'`; starts in half a
//! second, enforces S3's multipart rules, checks no signature) and Ceph's radosgw (one
//! gateway per test run, see `crates/server/tests/support/rgw.rs`; checks SigV4
//! signatures and presigned URLs, so object_store's signing and berth's own signed
//! requests are proven against a real gateway). `scripts/test.sh` installs both. A
//! missing server skips its half with a message, unless `BERTH_E2E_REQUIRED=1`.

#[path = "../../server/tests/support/rgw.rs"]
mod rgw;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_driver::{Persist, S3Driver, S3Options, StorageDriver, suite};
use bytes::Bytes;
use futures::TryStreamExt;

/// The server a test runs against, with the keys of its user.
struct Server {
    /// moto's process (killed when dropped); `None` for the shared radosgw.
    moto: Option<Child>,
    endpoint: String,
    key: String,
    secret: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.moto {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    /// A fresh moto server, or `None` (skipped) when moto is not installed.
    fn moto() -> Option<Server> {
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
            return None;
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
        Some(Server {
            moto: Some(child),
            endpoint: format!("http://{addr}"),
            key: "test".into(),
            secret: "test".into(),
        })
    }

    /// The test run's radosgw, or `None` (skipped) when it is not installed.
    fn rgw() -> Option<Server> {
        let rgw = rgw::Rgw::shared()?;
        Some(Server {
            moto: None,
            endpoint: rgw.endpoint.clone(),
            key: rgw.access_key.clone(),
            secret: rgw.secret_key.clone(),
        })
    }

    /// The shared radosgw this server is (`None` for moto).
    fn gateway(&self) -> Option<&'static rgw::Rgw> {
        if self.moto.is_some() {
            return None;
        }
        rgw::Rgw::shared()
    }

    /// A bare request to moto (which checks no signature); answers the whole response.
    fn bare(&self, request_line: &str) -> String {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect moto");
        write!(
            s,
            "{request_line} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }

    /// Creates a bucket named after `prefix` and answers its name (unique on radosgw,
    /// which outlives the test).
    fn create_bucket(&self, prefix: &str) -> String {
        if let Some(gw) = self.gateway() {
            return gw.create_bucket(prefix);
        }
        let answer = self.bare(&format!("PUT /{prefix}"));
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
        prefix.to_owned()
    }

    /// Multipart uploads in progress in `bucket`.
    fn uploads_in(&self, bucket: &str) -> usize {
        if let Some(gw) = self.gateway() {
            return gw.uploads_in(bucket);
        }
        let answer = self.bare(&format!("GET /{bucket}?uploads"));
        assert!(answer.starts_with("HTTP/1.1 200"), "list uploads: {answer}");
        answer.matches("<UploadId>").count()
    }
}

/// Runs the async test `$name(&Server)` as two tests, `$name::moto` and `$name::rgw`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                if let Some(s) = super::Server::moto() {
                    super::$name(&s).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                if let Some(s) = super::Server::rgw() {
                    super::$name(&s).await;
                }
            }
        }
    };
}

on_both!(s3_driver_passes_the_shared_suite);
on_both!(s3_keys_are_distributions);
on_both!(s3_append_continues_on_another_node);
on_both!(s3_pending_file_deletes);
on_both!(s3_aborted_writes_leave_nothing);
on_both!(s3_large_moves_copy_in_parts);
on_both!(s3_presigned_urls_serve_the_file);

fn driver(s3: &Server, bucket: &str, root: &str) -> S3Driver {
    let mut o = S3Options::new(bucket, "us-east-1");
    o.endpoint = Some(s3.endpoint.clone());
    o.access_key = Some(s3.key.clone());
    o.secret_key = Some(s3.secret.clone());
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

async fn s3_driver_passes_the_shared_suite(s3: &Server) {
    let bucket = s3.create_bucket("suite");
    suite::run_all(&driver(s3, &bucket, "/some/root/")).await;
    suite::run_all(&driver(s3, &bucket, "")).await;
}

/// Keys are distribution's: `<rootdirectory>/<path without its leading slash>`.
async fn s3_keys_are_distributions(s3: &Server) {
    let bucket = s3.create_bucket("keys");
    let rooted = driver(s3, &bucket, "/registry");
    let top = driver(s3, &bucket, "");
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
async fn s3_append_continues_on_another_node(s3: &Server) {
    let bucket = s3.create_bucket("nodes");
    let path = "/docker/registry/v2/repositories/r/_uploads/u/data";
    let chunks = [
        pattern(3 << 20, 1),       // under a part: stays a small object
        pattern(4 << 20, 2),       // crosses 5 MiB: one part plus a 2 MiB tail
        pattern(100_000, 3),       // a tiny chunk on yet another node
        pattern((6 << 20) + 7, 4), // another part, odd tail
        pattern(10, 5),            // a last, tiny chunk
    ];
    let mut expected = Vec::new();
    let a = driver(s3, &bucket, "root");
    a.put_content(path, Bytes::new()).await.unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        // A fresh instance per chunk: nothing survives in memory between requests.
        let node = driver(s3, &bucket, "root");
        let mut w = node.writer(path, true, Persist::Volatile).await.unwrap();
        assert_eq!(w.size(), expected.len() as u64, "chunk {i}: size seen");
        for piece in chunk.chunks(1 << 20) {
            w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        w.commit().await.unwrap();
        expected.extend_from_slice(chunk);
        drop(node);
        let other = driver(s3, &bucket, "root");
        assert_eq!(
            other.stat(path).await.unwrap().size,
            expected.len() as u64,
            "chunk {i}: size on another node"
        );
    }
    let c = driver(s3, &bucket, "root");
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
async fn s3_pending_file_deletes(s3: &Server) {
    let bucket = s3.create_bucket("del");
    let d = driver(s3, &bucket, "");
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
    assert_eq!(s3.uploads_in(&bucket), 1);
    d.delete("/up").await.unwrap();
    assert!(d.stat("/up/data").await.unwrap_err().is_not_found());
    assert_eq!(s3.uploads_in(&bucket), 0, "multipart upload left behind");
    // The file alone, too.
    let mut w = d
        .writer("/up2/data", true, Persist::Volatile)
        .await
        .unwrap();
    w.write(Bytes::from(pattern(6 << 20, 1))).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(s3.uploads_in(&bucket), 1);
    d.delete("/up2/data").await.unwrap();
    assert_eq!(s3.uploads_in(&bucket), 0, "multipart upload left behind");
}

/// An aborted plain writer, or one dropped uncommitted, leaves neither the object nor
/// its multipart upload.
async fn s3_aborted_writes_leave_nothing(s3: &Server) {
    let bucket = s3.create_bucket("abort");
    let d = driver(s3, &bucket, "");
    let mut w = d
        .writer("/blob/data", false, Persist::Durable)
        .await
        .unwrap();
    w.write(Bytes::from(pattern(6 << 20, 4))).await.unwrap();
    assert_eq!(
        s3.uploads_in(&bucket),
        1,
        "the writer's multipart upload is open"
    );
    w.abort().await.unwrap();
    assert_eq!(s3.uploads_in(&bucket), 0, "multipart upload left behind");
    assert!(d.stat("/blob/data").await.unwrap_err().is_not_found());

    // Dropped uncommitted (a request cut short), it aborts in the background.
    let mut w = d
        .writer("/blob/data", false, Persist::Durable)
        .await
        .unwrap();
    w.write(Bytes::from(pattern(6 << 20, 5))).await.unwrap();
    assert_eq!(s3.uploads_in(&bucket), 1);
    drop(w);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s3.uploads_in(&bucket) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a dropped writer left its multipart upload"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(d.stat("/blob/data").await.unwrap_err().is_not_found());
}

/// A move of an object over `multipartcopythresholdsize` copies it in parts
/// (`UploadPartCopy`, several at once), signed by berth itself; the bytes arrive whole.
async fn s3_large_moves_copy_in_parts(s3: &Server) {
    let bucket = s3.create_bucket("copies");
    let mut o = S3Options::new(bucket.as_str(), "us-east-1");
    o.endpoint = Some(s3.endpoint.clone());
    o.access_key = Some(s3.key.clone());
    o.secret_key = Some(s3.secret.clone());
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

/// A presigned URL serves the file to a client holding no credentials; radosgw checks
/// its signature (a URL with another signature is refused), moto does not.
async fn s3_presigned_urls_serve_the_file(s3: &Server) {
    let bucket = s3.create_bucket("signed");
    let d = driver(s3, &bucket, "/reg");
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
    if s3.gateway().is_some() {
        let (head, sig) = url.split_once("X-Amz-Signature=").expect("a signature");
        let forged = format!("{head}X-Amz-Signature={}", "0".repeat(sig.len()));
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &forged])
            .output()
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "403", "{forged}");
    }
}
