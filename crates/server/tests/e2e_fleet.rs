//! A mixed fleet during a rolling migration: berth and CNCF distribution 2.8.2 (Debian's
//! `docker-registry`) on the same storage root with the same `http.secret`, as nodes
//! behind one load balancer. An upload begun on one kind is continued and finished on
//! the other, following each answer's `Location` (its `_state` token included), and the
//! blob is then served by both.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::path::Path;

use berth_client::{BlockingClient, Url};
use oci_layout::*;

const SECRET: &str = "  secret: fleet-shared-secret\n";

/// The `Location` of an upload answer, checked to carry a `_state` token.
fn upload_location(r: &berth_client::Response, who: &str) -> Url {
    let loc = r.location().unwrap();
    assert!(
        loc.query_pairs()
            .any(|(k, v)| k == "_state" && !v.is_empty()),
        "{who}'s upload Location carries no _state: {loc}"
    );
    loc
}

/// PATCHes `bytes[from..to]` at `loc` (a Location from either node) on `node`; answers
/// the next Location.
fn patch(node: &BlockingClient, loc: &Url, bytes: &[u8], from: usize, to: usize, who: &str) -> Url {
    let at = common::rebase(node, loc);
    let r = node
        .run(|c| c.patch_chunk(&at, from as u64, bytes[from..to].to_vec()))
        .unwrap();
    assert_eq!(r.status, 202, "PATCH {from}..{to} on {who}: {}", r.text());
    assert_eq!(
        r.header("range"),
        Some(format!("0-{}", to - 1).as_str()),
        "progress after PATCH on {who}"
    );
    upload_location(&r, who)
}

fn assert_served(node: &BlockingClient, repo: &str, blob: &Blob, who: &str) {
    let r = node.run(|c| c.get_blob(repo, &blob.digest, None)).unwrap();
    assert_eq!(r.status, 200, "{who}: {}", r.text());
    assert!(r.body == blob.bytes, "{who} serves other bytes for {repo}");
}

/// The id of the session a Location names.
fn session_id(loc: &Url) -> String {
    loc.path().rsplit('/').next().unwrap().to_owned()
}

fn startedat(root: &Path, repo: &str, id: &str) -> String {
    let p = root.join(format!(
        "docker/registry/v2/repositories/{repo}/_uploads/{id}/startedat"
    ));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `2006-01-02T15:04:05Z`, as distribution writes `startedat`.
fn is_rfc3339_seconds_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn uploads_cross_between_berth_and_distribution() {
    if !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth_node = common::berth(root.path(), work.path(), SECRET);
    let dist_node = common::distribution_with(root.path(), work.path(), SECRET);
    let (berth, dist) = (berth_node.client(), dist_node.client());
    let mut rng = Rng::new("fleet");

    // Started on berth: its session has distribution's `startedat`, and its Location a
    // token distribution accepts. berth, distribution and berth again each add a chunk
    // (so each resumes the other's saved hash state), then berth finishes.
    let blob = Blob::new("application/octet-stream", rng.bytes(300_000));
    let r = berth.run(|c| c.start_upload("fleet/a")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = upload_location(&r, "berth");
    let started = startedat(root.path(), "fleet/a", &session_id(&loc));
    assert!(
        is_rfc3339_seconds_utc(&started),
        "berth's startedat is not in distribution's format: {started:?}"
    );
    let loc = patch(berth, &loc, &blob.bytes, 0, 100_000, "berth");
    let loc = patch(dist, &loc, &blob.bytes, 100_000, 200_000, "distribution");
    let loc = patch(berth, &loc, &blob.bytes, 200_000, 300_000, "berth");
    let at = common::rebase(dist, &loc);
    let r = dist.run(|c| c.upload_status(&at)).unwrap();
    assert_eq!(r.status, 204, "status on distribution: {}", r.text());
    assert_eq!(r.header("range"), Some("0-299999"));
    let at = common::rebase(berth, &upload_location(&r, "distribution"));
    let r = berth
        .run(|c| c.finish_upload(&at, &blob.digest, Vec::new()))
        .unwrap();
    assert_eq!(r.status, 201, "finish on berth: {}", r.text());
    assert_served(berth, "fleet/a", &blob, "berth");
    assert_served(dist, "fleet/a", &blob, "distribution");

    // Started on distribution: berth continues it from distribution's Location,
    // distribution adds a chunk after berth's, and berth finishes with a last chunk.
    let blob = Blob::new("application/octet-stream", rng.bytes(250_000));
    let r = dist.run(|c| c.start_upload("fleet/b")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = upload_location(&r, "distribution");
    let loc = patch(berth, &loc, &blob.bytes, 0, 80_000, "berth");
    let loc = patch(dist, &loc, &blob.bytes, 80_000, 160_000, "distribution");
    let at = common::rebase(berth, &loc);
    let r = berth
        .run(|c| c.finish_upload(&at, &blob.digest, blob.bytes[160_000..].to_vec()))
        .unwrap();
    assert_eq!(r.status, 201, "finish on berth: {}", r.text());
    assert_served(berth, "fleet/b", &blob, "berth");
    assert_served(dist, "fleet/b", &blob, "distribution");

    // Started and chunked on berth, finished on distribution, which checks the digest
    // against the hash state berth saved.
    let blob = Blob::new("application/octet-stream", rng.bytes(120_000));
    let r = berth.run(|c| c.start_upload("fleet/c")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = patch(
        berth,
        &upload_location(&r, "berth"),
        &blob.bytes,
        0,
        70_000,
        "berth",
    );
    let at = common::rebase(dist, &loc);
    let r = dist
        .run(|c| c.finish_upload(&at, &blob.digest, blob.bytes[70_000..].to_vec()))
        .unwrap();
    assert_eq!(r.status, 201, "finish on distribution: {}", r.text());
    assert_served(berth, "fleet/c", &blob, "berth");
    assert_served(dist, "fleet/c", &blob, "distribution");

    // A docker-style push spread over the fleet: POST on berth, the whole blob streamed
    // in one PATCH on distribution, the closing PUT back on berth (which must not trust
    // what it remembers of the session).
    let blob = Blob::new("application/octet-stream", rng.bytes(90_000));
    let r = berth.run(|c| c.start_upload("fleet/e")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let at = common::rebase(dist, &upload_location(&r, "berth"));
    let r = dist
        .run(|c| c.patch_stream(&at, berth_client::Body::bytes(blob.bytes.clone())))
        .unwrap();
    assert_eq!(
        r.status,
        202,
        "streamed PATCH on distribution: {}",
        r.text()
    );
    let at = common::rebase(berth, &upload_location(&r, "distribution"));
    let r = berth
        .run(|c| c.finish_upload(&at, &blob.digest, Vec::new()))
        .unwrap();
    assert_eq!(r.status, 201, "finish on berth: {}", r.text());
    assert_served(berth, "fleet/e", &blob, "berth");
    assert_served(dist, "fleet/e", &blob, "distribution");

    // A single-request push on berth leaves no session behind for either kind.
    let blob = Blob::new("application/octet-stream", rng.bytes(1000));
    push_blob_monolithic(berth, "fleet/d", &blob);
    assert_served(dist, "fleet/d", &blob, "distribution");
    let uploads = root
        .path()
        .join("docker/registry/v2/repositories/fleet/d/_uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sessions left behind: {left:?}");
    let blob_dir = root.path().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}",
        &blob.hex()[..2],
        blob.hex()
    ));
    let mut files: Vec<_> = std::fs::read_dir(&blob_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["data"],
        "a committed blob's directory holds only data"
    );
}

#[test]
fn tokens_from_another_secret_or_repository_are_refused() {
    if !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth_node = common::berth(root.path(), work.path(), SECRET);
    let dist_node =
        common::distribution_with(root.path(), work.path(), "  secret: another-secret\n");
    let (berth, dist) = (berth_node.client(), dist_node.client());

    // A fleet whose nodes disagree on http.secret fails loudly on both sides.
    let r = dist.run(|c| c.start_upload("fleet/x")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let at = common::rebase(berth, &upload_location(&r, "distribution"));
    let r = berth.run(|c| c.upload_status(&at)).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("BLOB_UPLOAD_INVALID"), "{}", r.text());

    let r = berth.run(|c| c.start_upload("fleet/x")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = upload_location(&r, "berth");
    let at = common::rebase(dist, &loc);
    let r = dist.run(|c| c.upload_status(&at)).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("BLOB_UPLOAD_INVALID"), "{}", r.text());

    // berth's own token, moved onto another repository's path, names the wrong session.
    let mut moved = loc.clone();
    moved.set_path(&loc.path().replacen("/fleet/x/", "/fleet/y/", 1));
    let at = common::rebase(berth, &moved);
    let r = berth.run(|c| c.upload_status(&at)).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("BLOB_UPLOAD_INVALID"), "{}", r.text());
    // The session itself is untouched.
    let at = common::rebase(berth, &loc);
    let r = berth.run(|c| c.upload_status(&at)).unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}
