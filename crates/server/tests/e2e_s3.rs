//! End-to-end over S3: the real `berth` binary on moto's S3 server. skopeo pushes and
//! pulls an image; a chunked upload (chunks under S3's 5 MiB minimum included) begun on
//! one berth node, which is killed with SIGKILL right after acknowledging its chunk, is
//! finished on another node sharing the bucket. (Three nodes with Redis, its locks
//! and what they keep consistent: `e2e_multinode.rs`.)

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;
use std::process::Command;

use berth_client::{BlockingClient, ByteRange, Client, Url};
use moto::Moto;
use oci_layout::*;
use sha2::{Digest, Sha256};

/// A berth node over `bucket`, with a shared `http.secret` (as nodes behind one load
/// balancer have).
fn node(moto: &Moto, bucket: &str, work: &Path, name: &str) -> common::Process {
    node_with(moto, bucket, work, name, "")
}

/// Like [`node`], with `storage_extra` (indented two spaces) in the storage section.
fn node_with(
    moto: &Moto,
    bucket: &str,
    work: &Path,
    name: &str,
    storage_extra: &str,
) -> common::Process {
    let (config, addr) = moto.berth_config(bucket, work, name, storage_extra, "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    common::spawn(cmd, addr, work, name)
}

#[test]
fn skopeo_pushes_and_pulls_over_s3() {
    if !common::have_tool("skopeo") {
        return;
    }
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("images");
    let work = tempfile::tempdir().unwrap();
    let berth = node(&moto, "images", work.path(), "berth");
    let host = berth.host();

    // One layer over a part (a multipart upload), one small.
    let img = image(&mut Rng::new("s3"), "amd64", &[(6 << 20) + 17, 3000]);
    let src = work.path().join("src");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let pushed = skopeo_copy(
        &[],
        &layout_str(&src, "v1"),
        &format!("docker://{host}/team/app:v1"),
        work.path(),
    );
    assert_eq!(pushed, img.manifest.digest);

    let out = work.path().join("out");
    let pulled = skopeo_copy(
        &[],
        &format!("docker://{host}/team/app:v1"),
        &layout_str(&out, "v1"),
        work.path(),
    );
    assert_eq!(pulled, img.manifest.digest);
    assert_layout_has_image(&out, "v1", &img);
}

#[test]
fn chunked_upload_survives_the_node_that_took_a_chunk() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("chunks");
    let work = tempfile::tempdir().unwrap();
    let mut a = node(&moto, "chunks", work.path(), "a");
    let b = node(&moto, "chunks", work.path(), "b");

    let blob: Vec<u8> = (0..(13u32 << 20) + 5).map(|i| (i % 253) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    // Chunk boundaries: under 5 MiB, across a part, tiny, the rest.
    let cuts = [0, 3 << 20, (9 << 20) + 1, (9 << 20) + 100, blob.len()];

    let r = a.client().run(|c| c.start_upload("team/chunked")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let mut loc: Url = r.location().unwrap();
    for (i, w) in cuts.windows(2).enumerate() {
        // The first chunk goes to node a, which is killed at once; the rest to node b.
        let n = if i == 0 { &a } else { &b };
        let at = common::rebase(n.client(), &loc);
        let chunk = blob[w[0]..w[1]].to_vec();
        let r = n
            .client()
            .run(|c| c.patch_chunk(&at, w[0] as u64, chunk))
            .unwrap();
        assert_eq!(r.status, 202, "PATCH {i}: {}", r.text());
        assert_eq!(r.header("range"), Some(format!("0-{}", w[1] - 1).as_str()));
        loc = r.location().unwrap();
        if i == 0 {
            // SIGKILL right after the acknowledgement: nothing of it may live only there.
            a.child.kill().unwrap();
            a.child.wait().unwrap();
        }
    }
    let at = common::rebase(b.client(), &loc);
    let r = b
        .client()
        .run(|c| c.finish_upload(&at, &digest, Vec::new()))
        .unwrap();
    assert_eq!(r.status, 201, "closing PUT: {}", r.text());
    let r = b
        .client()
        .run(|c| c.get_blob("team/chunked", &digest, None))
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == blob, "served bytes differ");
    drop(a);
}

/// A client that does not follow redirects.
fn no_follow(node: &common::Process) -> BlockingClient {
    let c = Client::builder(&node.url())
        .follow_redirects(false)
        .build()
        .unwrap();
    BlockingClient::new(c).unwrap()
}

#[test]
fn blob_get_redirects_to_a_presigned_url_unless_disabled() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("redirect");
    let work = tempfile::tempdir().unwrap();
    let on = node(&moto, "redirect", work.path(), "on");
    let off = node_with(
        &moto,
        "redirect",
        work.path(),
        "off",
        "  redirect:\n    disable: true\n",
    );
    let blob = b"served from the bucket itself".to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let r = on
        .client()
        .run(|c| c.push_blob("team/r", &digest, blob.clone()))
        .unwrap();
    assert!(r.status == 201, "push: {}", r.text());

    let raw = no_follow(&on);
    let r = raw.run(|c| c.get_blob("team/r", &digest, None)).unwrap();
    assert_eq!(r.status, 307, "GET: {}", r.text());
    let to = r.header("location").unwrap().to_owned();
    assert!(
        to.starts_with(&format!(
            "http://{}/redirect/registry/docker/registry/v2/blobs/sha256/",
            moto.addr
        )) && to.contains("X-Amz-Signature="),
        "{to}"
    );
    let r = raw.run(|c| c.head_blob("team/r", &digest)).unwrap();
    assert_eq!(r.status, 200, "HEAD never redirects");
    assert_eq!(
        r.header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    // Followed, the URL serves the blob.
    let r = on
        .client()
        .run(|c| c.get_blob("team/r", &digest, None))
        .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &blob[..]));
    // A range ending before its start is refused by berth itself: the bucket would
    // ignore it and serve the whole blob.
    let r = raw
        .run(|c| c.get_blob("team/r", &digest, Some(ByteRange::Span(9, 2))))
        .unwrap();
    assert_eq!(r.status, 416, "reversed range: {}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", blob.len()).as_str())
    );
    // A valid range goes to the bucket with the client.
    let r = raw
        .run(|c| c.get_blob("team/r", &digest, Some(ByteRange::Span(2, 9))))
        .unwrap();
    assert_eq!(r.status, 307, "valid range");
    // An unknown blob is still a 404, not a URL to nothing.
    let missing = format!("sha256:{}", "0".repeat(64));
    let r = raw.run(|c| c.get_blob("team/r", &missing, None)).unwrap();
    assert_eq!(r.status, 404);

    let r = no_follow(&off)
        .run(|c| c.get_blob("team/r", &digest, None))
        .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &blob[..]), "disabled");
}

/// A store that cannot be reached is a 503 UNAVAILABLE (worth a retry), never a 500 or
/// a "not found" for what storage holds: moto is stopped under a running node.
#[test]
fn a_store_out_of_reach_answers_503() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("outage");
    let work = tempfile::tempdir().unwrap();
    let berth = node_with(
        &moto,
        "outage",
        work.path(),
        "berth",
        "  redirect:\n    disable: true\n",
    );
    let blob = b"stored before the outage".to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let c = berth.client();
    let r = c
        .run(|c| c.push_blob("team/r", &digest, blob.clone()))
        .unwrap();
    assert_eq!(r.status, 201, "push: {}", r.text());
    drop(moto);

    let accept = "application/vnd.oci.image.manifest.v1+json";
    let answers = [
        ("GET blob", c.run(|c| c.get_blob("team/r", &digest, None))),
        (
            "HEAD manifest",
            c.run(|c| c.head_manifest("team/r", "v1", accept)),
        ),
        (
            "GET manifest",
            c.run(|c| c.get_manifest("team/r", "v1", accept)),
        ),
        ("POST upload", c.run(|c| c.start_upload("team/r"))),
        ("GET tags", c.run(|c| c.tags_list("team/r", None, None))),
    ];
    for (what, r) in answers {
        let r = r.unwrap();
        assert_eq!(r.status, 503, "{what}: {}", r.text());
        if what != "HEAD manifest" {
            let body = r.text();
            assert!(
                body.contains("UNAVAILABLE") && body.contains("storage unavailable"),
                "{what}: {body}"
            );
        }
    }
    // The registry itself stays up.
    assert_eq!(c.run(|c| c.ping()).unwrap().status, 200);
}

/// Without `accesskey`/`secretkey` the standard AWS environment credentials are used.
#[test]
fn credentials_come_from_the_aws_environment_when_absent() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("envcreds");
    let work = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let storage = moto
        .storage_yaml("envcreds")
        .replace("    accesskey: test\n    secretkey: test\n", "");
    assert!(!storage.contains("accesskey"));
    let config = work.path().join("env.yml");
    std::fs::write(
        &config,
        format!("version: 0.1\n{storage}http:\n  addr: {addr}\n"),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve")
        .arg(&config)
        .env("AWS_ACCESS_KEY_ID", "env-key")
        .env("AWS_SECRET_ACCESS_KEY", "env-secret")
        // Never fall back to instance metadata in a test.
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let berth = common::spawn(cmd, addr, work.path(), "envcreds");
    let blob = b"signed with the environment's key".to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let r = berth
        .client()
        .run(|c| c.push_blob("team/env", &digest, blob.clone()))
        .unwrap();
    assert_eq!(r.status, 201, "push: {}", r.text());
    let r = no_follow(&berth)
        .run(|c| c.get_blob("team/env", &digest, None))
        .unwrap();
    assert_eq!(r.status, 307);
    let to = r.header("location").unwrap();
    assert!(to.contains("X-Amz-Credential=env-key%2F"), "{to}");
}

/// The offline `garbage-collect` command works on the bucket: a blob no manifest names
/// is reported and its object removed.
#[test]
fn offline_garbage_collect_over_s3() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("collected");
    let work = tempfile::tempdir().unwrap();
    let mut berth = node(&moto, "collected", work.path(), "gc");
    let blob = b"pushed, never referenced".to_vec();
    let hex = hex::encode(Sha256::digest(&blob));
    let digest = format!("sha256:{hex}");
    let r = berth
        .client()
        .run(|c| c.push_blob("team/gc", &digest, blob.clone()))
        .unwrap();
    assert_eq!(r.status, 201, "push: {}", r.text());
    let key = format!(
        "registry/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    );
    assert_eq!(moto.status_of("collected", &key), 200);
    berth.child.kill().unwrap();
    berth.child.wait().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("garbage-collect")
        .arg(work.path().join("gc.yml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("blob eligible for deletion: {digest}")),
        "{stdout}"
    );
    assert_eq!(
        moto.status_of("collected", &key),
        404,
        "blob object left behind"
    );
}
