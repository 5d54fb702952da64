//! End-to-end on Ceph's radosgw (the test run's gateway, see `support/rgw.rs`), which
//! checks every signature: CNCF distribution 2.8.2 (Debian's `docker-registry`) and berth
//! exchange a bucket both ways, with the same `storage.s3` section (distribution's words
//! only: no `forcepathstyle`, which 2.8.2 does not know), and a blob GET redirects to a
//! presigned URL that radosgw serves while HEAD never redirects.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;
#[path = "support/rgw.rs"]
mod rgw;

use std::path::Path;
use std::process::Command;

use berth_client::{BlockingClient, Client, Url};
use oci_layout::*;
use rgw::Rgw;

/// The `rootdirectory` both registries use.
const ROOT: &str = "/exchange";

/// S3's smallest part: the chunk size both registries are given, so that a layer over it
/// goes through a multipart upload.
const PART: usize = 5 << 20;

/// The `storage` section both registries get over `bucket` (`extra` indented two spaces).
fn storage(rgw: &Rgw, bucket: &str, extra: &str) -> String {
    format!(
        "storage:\n  s3:\n{}  delete:\n    enabled: true\n{extra}",
        rgw.s3_yaml(bucket, ROOT)
    )
}

/// A berth node over `bucket`.
fn berth(rgw: &Rgw, bucket: &str, work: &Path, name: &str, extra: &str) -> common::Process {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let config = work.join(format!("{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: info}}\n{}http:\n  addr: {addr}\n  secret: rgw-secret\n",
            storage(rgw, bucket, extra)
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    common::spawn(cmd, addr, work, name)
}

/// distribution 2.8.2 over `bucket`.
fn distribution(rgw: &Rgw, bucket: &str, work: &Path) -> common::Process {
    common::distribution_on(&storage(rgw, bucket, ""), work, "")
}

/// What the tools, the gateway and the test need; `None` skips.
fn ready() -> Option<&'static Rgw> {
    if !common::have_tool("skopeo") || !common::have_tool("docker-registry") {
        return None;
    }
    Rgw::shared()
}

/// Pushes `img` under `repo:tag` with skopeo from an OCI layout; checks the digest.
fn skopeo_push(reg: &common::Process, img: &Image, repo: &str, tag: &str, work: &Path) {
    let src = work.join(format!("src-{}", &img.manifest.hex()[..12]));
    LayoutWriter::new(&src).add_image(img, tag);
    let pushed = skopeo_copy(
        &[],
        &layout_str(&src, tag),
        &format!("docker://{}/{repo}:{tag}", reg.host()),
        work,
    );
    assert_eq!(pushed, img.manifest.digest, "pushed {repo}:{tag}");
}

/// Pulls `repo:tag` with skopeo into a fresh layout and checks it holds `img` exactly.
fn skopeo_pull_matches(reg: &common::Process, img: &Image, repo: &str, tag: &str, work: &Path) {
    // No `:` in the path: skopeo's `oci:DIR:TAG` would split there.
    let from = reg.addr.replace([':', '.'], "-");
    let out = work.join(format!("pulled-{from}-{}-{tag}", repo.replace('/', "-")));
    let pulled = skopeo_copy(
        &[],
        &format!("docker://{}/{repo}:{tag}", reg.host()),
        &layout_str(&out, tag),
        work,
    );
    assert_eq!(pulled, img.manifest.digest, "pulled {repo}:{tag}");
    assert_layout_has_image(&out, tag, img);
}

/// Pushes every blob of `img` with chunked PATCHes of `chunk` bytes (each under S3's
/// part minimum), asserting that, before the closing PUT of a layer over a part, the
/// bucket holds a multipart upload in progress; then the manifest under `tag`.
fn push_in_chunks(
    reg: &BlockingClient,
    rgw: &Rgw,
    bucket: &str,
    repo: &str,
    tag: &str,
    img: &Image,
    chunk: usize,
) {
    for blob in img.blobs() {
        let r = reg.run(|c| c.start_upload(repo)).unwrap();
        assert_eq!(r.status, 202, "POST: {}", r.text());
        let mut loc: Url = r.location().unwrap();
        for (i, piece) in blob.bytes.chunks(chunk).enumerate() {
            let r = reg
                .run(|c| c.patch_chunk(&loc, (i * chunk) as u64, piece.to_vec()))
                .unwrap();
            assert_eq!(r.status, 202, "PATCH {i}: {}", r.text());
            loc = r.location().unwrap();
        }
        if blob.bytes.len() > PART {
            assert_eq!(
                rgw.uploads_in(bucket),
                1,
                "a {} byte layer in {chunk} byte chunks is a multipart upload",
                blob.bytes.len()
            );
        }
        let r = reg
            .run(|c| c.finish_upload(&loc, &blob.digest, Vec::new()))
            .unwrap();
        assert_eq!(r.status, 201, "closing PUT: {}", r.text());
    }
    put_manifest(reg, repo, tag, &img.manifest);
    assert_eq!(rgw.uploads_in(bucket), 0, "multipart uploads left behind");
}

#[test]
fn berth_pushes_and_distribution_pulls_everything_on_radosgw() {
    let Some(rgw) = ready() else {
        return;
    };
    let bucket = rgw.create_bucket("berth-to-dist");
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("berth-to-distribution");
    // Layers over a part (12 MiB and 7 MiB) and small ones.
    let app = image(&mut rng, "amd64", &[(12 << 20) + 17, 3000]);
    let chunked = image(&mut rng, "arm64", &[(7 << 20) + 5, 1000]);

    let node = berth(rgw, &bucket, work.path(), "berth", "");
    // skopeo streams each layer in one PATCH: berth sends it to the bucket in parts.
    skopeo_push(&node, &app, "team/app", "v1", work.path());
    skopeo_push(&node, &app, "team/app", "latest", work.path());
    // 3 MiB chunks: each PATCH under a part; parts are cut across them.
    push_in_chunks(
        node.client(),
        rgw,
        &bucket,
        "team/chunked",
        "v1",
        &chunked,
        3 << 20,
    );
    assert!(
        rgw.keys(
            &bucket,
            "exchange/docker/registry/v2/repositories/team/app/"
        )
        .iter()
        .any(|k| k.ends_with("/_manifests/tags/v1/current/link")),
        "distribution's keys under the root directory"
    );
    drop(node);

    let dist = distribution(rgw, &bucket, work.path());
    skopeo_pull_matches(&dist, &app, "team/app", "v1", work.path());
    skopeo_pull_matches(&dist, &app, "team/app", "latest", work.path());
    skopeo_pull_matches(&dist, &chunked, "team/chunked", "v1", work.path());
    assert_blobs_served(dist.client(), "team/chunked", &chunked);
    assert_eq!(tags(dist.client(), "team/app"), ["latest", "v1"]);
    assert_eq!(tags(dist.client(), "team/chunked"), ["v1"]);
    assert_eq!(catalog(dist.client()), ["team/app", "team/chunked"]);
}

#[test]
fn distribution_pushes_and_berth_pulls_everything_on_radosgw() {
    let Some(rgw) = ready() else {
        return;
    };
    let bucket = rgw.create_bucket("dist-to-berth");
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("distribution-to-berth");
    let app = image(&mut rng, "amd64", &[(11 << 20) + 3, 2000]);
    let newer = image(&mut rng, "amd64", &[(6 << 20) + 1]);
    let tool = image(&mut rng, "arm64", &[4000]);

    let dist = distribution(rgw, &bucket, work.path());
    skopeo_push(&dist, &app, "team/app", "v1", work.path());
    skopeo_push(&dist, &newer, "team/app", "v2", work.path());
    // Chunked through distribution too (its own multipart upload and last-part logic).
    push_in_chunks(
        dist.client(),
        rgw,
        &bucket,
        "tools/x",
        "stable",
        &tool,
        1000,
    );
    drop(dist);

    let node = berth(rgw, &bucket, work.path(), "berth", "");
    skopeo_pull_matches(&node, &app, "team/app", "v1", work.path());
    skopeo_pull_matches(&node, &newer, "team/app", "v2", work.path());
    skopeo_pull_matches(&node, &tool, "tools/x", "stable", work.path());
    assert_blobs_served(node.client(), "team/app", &app);
    assert_eq!(
        resolve(node.client(), "team/app", "v2"),
        Some(newer.manifest.digest.clone())
    );
    assert_eq!(tags(node.client(), "team/app"), ["v1", "v2"]);
    assert_eq!(catalog(node.client()), ["team/app", "tools/x"]);
}

/// A client that does not follow redirects.
fn no_follow(node: &common::Process) -> BlockingClient {
    let c = Client::builder(&node.url())
        .follow_redirects(false)
        .build()
        .unwrap();
    BlockingClient::new(c).unwrap()
}

/// `curl` of `url` with no credentials (and `extra` arguments); answers the status and
/// the body.
fn curl(url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {url}");
    let mut body = out.stdout;
    let code = body.split_off(body.len() - 3);
    (String::from_utf8_lossy(&code).parse().unwrap_or(0), body)
}

#[test]
fn blob_get_redirects_to_a_presigned_radosgw_url_and_head_does_not() {
    let Some(rgw) = Rgw::shared() else {
        return;
    };
    if !common::have_tool("curl") {
        return;
    }
    let bucket = rgw.create_bucket("redirect");
    let work = tempfile::tempdir().unwrap();
    let node = berth(rgw, &bucket, work.path(), "on", "");
    let blob = Rng::new("redirected").bytes((6 << 20) + 3);
    let digest = sha256_digest(&blob);
    let r = node
        .client()
        .run(|c| c.push_blob("team/r", &digest, blob.clone()))
        .unwrap();
    assert_eq!(r.status, 201, "push: {}", r.text());

    let raw = no_follow(&node);
    let r = raw.run(|c| c.get_blob("team/r", &digest, None)).unwrap();
    assert_eq!(r.status, 307, "GET: {}", r.text());
    let to = r.header("location").unwrap().to_owned();
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        to.starts_with(&format!(
            "{}/{bucket}/exchange/docker/registry/v2/blobs/sha256/{}/{hex}/data?",
            rgw.endpoint,
            &hex[..2]
        )) && to.contains("X-Amz-Signature="),
        "{to}"
    );
    // radosgw serves it to a client holding no key, whole and by range.
    let (status, body) = curl(&to, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == blob, "redirected bytes differ");
    let (status, body) = curl(&to, &["-H", "Range: bytes=5242880-5242889"]);
    assert_eq!(status, 206);
    assert_eq!(body, &blob[5 << 20..(5 << 20) + 10]);
    // ... and refuses the same URL with another signature: it checks them.
    let (head, sig) = to.split_once("X-Amz-Signature=").unwrap();
    let (status, _) = curl(
        &format!("{head}X-Amz-Signature={}", "0".repeat(sig.len())),
        &[],
    );
    assert_eq!(status, 403, "a forged signature");

    let r = raw.run(|c| c.head_blob("team/r", &digest)).unwrap();
    assert_eq!(r.status, 200, "HEAD never redirects");
    assert_eq!(r.header("location"), None);
    assert_eq!(
        r.header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    // Followed (as a client does), the GET ends with the blob.
    let r = node
        .client()
        .run(|c| c.get_blob("team/r", &digest, None))
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == blob, "followed redirect: bytes differ");

    let off = berth(
        rgw,
        &bucket,
        work.path(),
        "off",
        "  redirect:\n    disable: true\n",
    );
    let r = no_follow(&off)
        .run(|c| c.get_blob("team/r", &digest, None))
        .unwrap();
    assert_eq!(r.status, 200, "redirect disabled");
    assert!(r.body == blob, "served bytes differ");
}

/// A monolithic push (`POST`, then one `PUT` with every byte) is written at the blob's
/// own key and appears there only once its digest is checked: a wrong digest leaves
/// neither an object nor a multipart upload in the bucket and ends the session; the
/// right one leaves the blob and nothing of the session, and distribution serves it.
#[test]
fn monolithic_pushes_land_at_the_blob_key_only_once_verified() {
    let Some(rgw) = ready() else {
        return;
    };
    let bucket = rgw.create_bucket("monolithic");
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("monolithic");
    // Over berth's default 10 MiB chunk: parts are sent before the digest is known.
    let img = image(&mut rng, "amd64", &[(12 << 20) + 9, 700]);
    let node = berth(rgw, &bucket, work.path(), "berth", "");
    let reg = node.client();
    let blobs_under = |blob: &Blob| {
        rgw.keys(
            &bucket,
            &format!(
                "exchange/docker/registry/v2/blobs/sha256/{}/{}/",
                &blob.hex()[..2],
                blob.hex()
            ),
        )
    };
    let uploads = "exchange/docker/registry/v2/repositories/team/mono/_uploads/";
    for blob in img.blobs() {
        let r = reg.run(|c| c.start_upload("team/mono")).unwrap();
        assert_eq!(r.status, 202, "POST: {}", r.text());
        let loc: Url = r.location().unwrap();
        let wrong = sha256_digest(b"not these bytes");
        let r = reg
            .run(|c| c.finish_upload(&loc, &wrong, blob.bytes.clone()))
            .unwrap();
        assert_eq!(r.status, 400, "wrong digest: {}", r.text());
        assert!(r.text().contains("DIGEST_INVALID"), "{}", r.text());
        assert_eq!(rgw.uploads_in(&bucket), 0, "multipart upload left behind");
        assert!(blobs_under(blob).is_empty(), "unverified bytes stored");
        assert_eq!(reg.run(|c| c.upload_status(&loc)).unwrap().status, 404);

        let r = reg.run(|c| c.start_upload("team/mono")).unwrap();
        let loc: Url = r.location().unwrap();
        let r = reg
            .run(|c| c.finish_upload(&loc, &blob.digest, blob.bytes.clone()))
            .unwrap();
        assert_eq!(r.status, 201, "PUT: {}", r.text());
        assert_eq!(blobs_under(blob).len(), 1, "the blob's data alone");
        assert!(rgw.keys(&bucket, uploads).is_empty(), "session left behind");
        assert_eq!(rgw.uploads_in(&bucket), 0, "multipart upload left behind");
    }
    put_manifest(reg, "team/mono", "v1", &img.manifest);
    assert_blobs_served(reg, "team/mono", &img);
    drop(node);
    let dist = distribution(rgw, &bucket, work.path());
    skopeo_pull_matches(&dist, &img, "team/mono", "v1", work.path());
    assert_blobs_served(dist.client(), "team/mono", &img);
}
