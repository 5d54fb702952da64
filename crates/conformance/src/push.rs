//! Push category, blob uploads: monolithic (POST + PUT, and single POST), chunked
//! (PATCH with `Content-Range`, status, out-of-order chunks, closing PUT with or without
//! a last chunk), streamed PATCH, digest mismatch, cancel, cross-repository mount and
//! sha512 content.

use reqwest::Method;
use url::Url;

use crate::client::{Body, Response};
use crate::data::{self, Content, OCI_LAYER};
use crate::ops::{
    OCTET_STREAM, check_digest_header, fetch_blob, location, push_blob, start_upload, v2_url,
    with_query,
};
use crate::{Ctx, Recorder};

/// Chunk size used when the registry does not ask for a larger one.
const DEFAULT_CHUNK: usize = 1024;

/// Runs the blob upload checks.
pub async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    let repo = ctx.repo("push");
    rec.record(
        "monolithic upload: POST then PUT ?digest=",
        monolithic(ctx, &repo).await,
    );
    rec.record(
        "single POST ?digest= with body -> 201 (or 202 upload fallback)",
        single_post(ctx, &repo).await,
    );
    rec.record(
        "chunked: POST -> 202 with Location, Range 0-0, Docker-Upload-UUID",
        chunked_open(ctx, &repo).await,
    );
    rec.record(
        "chunked: PATCHes then PUT ?digest= without body",
        chunked(ctx, &repo, false).await,
    );
    rec.record(
        "chunked: PATCH then PUT with the last chunk",
        chunked(ctx, &repo, true).await,
    );
    rec.record(
        "chunked: GET upload status -> 204 with Range",
        status(ctx, &repo).await,
    );
    rec.record(
        "chunked: out-of-order chunk -> 416, Range unchanged",
        out_of_order(ctx, &repo).await,
    );
    rec.record(
        "streamed PATCH without Content-Range",
        streamed(ctx, &repo).await,
    );
    rec.record(
        "digest mismatch on PUT -> 400 DIGEST_INVALID, blob absent",
        mismatch(ctx, &repo).await,
    );
    rec.record(
        "cancel upload: DELETE -> 204, then status -> 404 BLOB_UPLOAD_UNKNOWN",
        cancel(ctx, &repo).await,
    );
    rec.record(
        "cross-repository mount -> 201, blob readable in target",
        mount(ctx, &repo).await,
    );
    rec.record(
        "mount of an unknown digest -> 202 with upload Location",
        mount_unknown(ctx, &repo).await,
    );
    rec.record("sha512 blob push and pull", sha512(ctx, &repo).await);
}

/// A fresh random blob.
fn blob(ctx: &Ctx) -> Content {
    ctx.with_gen(|g| {
        let len = g.size(3000, 6000);
        data::layer(g, len, OCI_LAYER)
    })
}

/// Fails unless GET of the blob in `repo` answers 200 with exactly its bytes.
async fn readable(ctx: &Ctx, repo: &str, blob: &Content) -> Result<(), String> {
    let resp = fetch_blob(ctx, Method::GET, repo, &blob.digest, &[]).await?;
    resp.expect(200)?;
    ensure!(
        resp.body == blob.bytes,
        "blob {} read back differs ({} bytes); {}",
        blob.digest,
        resp.body.len(),
        resp.describe()
    );
    Ok(())
}

/// Fails unless a completed upload answered 201 with a resolvable `Location` and
/// `Docker-Content-Digest` equal to `digest`.
fn check_created(ctx: &Ctx, resp: &Response, digest: &str) -> Result<(), String> {
    resp.expect(201)?;
    location(ctx, resp)?;
    check_digest_header(resp, digest)
}

/// Fails unless the response carries `Range: 0-<end>`.
fn check_range(resp: &Response, end: usize) -> Result<(), String> {
    let got = resp.require_header("Range")?;
    let want = format!("0-{end}");
    ensure!(
        got == want,
        "Range is {got:?}, expected {want:?}; {}",
        resp.describe()
    );
    Ok(())
}

async fn monolithic(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    let resp = push_blob(ctx, repo, &b).await?;
    check_created(ctx, &resp, &b.digest)?;
    readable(ctx, repo, &b).await
}

async fn single_post(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    let url = with_query(
        &v2_url(ctx, repo, "blobs/uploads/")?,
        &[("digest", &b.digest)],
    );
    let resp = ctx
        .client
        .send(
            Method::POST,
            url,
            &[OCTET_STREAM],
            Body::Bytes(b.bytes.clone()),
        )
        .await?;
    if resp.status == 202 {
        // The spec lets a registry without single-POST support open an upload instead;
        // the client then finishes it with a monolithic PUT.
        let url = with_query(&location(ctx, &resp)?, &[("digest", &b.digest)]);
        let put = ctx
            .client
            .send(
                Method::PUT,
                url,
                &[OCTET_STREAM],
                Body::Bytes(b.bytes.clone()),
            )
            .await?;
        check_created(ctx, &put, &b.digest).map_err(|e| format!("after a 202 fallback: {e}"))?;
    } else {
        check_created(ctx, &resp, &b.digest)?;
    }
    readable(ctx, repo, &b).await
}

/// Opens an upload and returns its Location and the chunk size to use (at least the
/// registry's `OCI-Chunk-Min-Length`).
async fn open(ctx: &Ctx, repo: &str) -> Result<(Response, Url, usize), String> {
    let (resp, loc) = start_upload(ctx, repo).await?;
    let min = resp
        .header("OCI-Chunk-Min-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Ok((resp, loc, DEFAULT_CHUNK.max(min)))
}

/// PATCHes `chunk` at offset `start` with `Content-Range`; returns the answer.
async fn patch(ctx: &Ctx, loc: &Url, chunk: &[u8], start: usize) -> Result<Response, String> {
    let range = format!("{start}-{}", start + chunk.len() - 1);
    ctx.client
        .send(
            Method::PATCH,
            loc.clone(),
            &[OCTET_STREAM, ("Content-Range", &range)],
            Body::Bytes(chunk.to_vec()),
        )
        .await
}

/// PATCHes `chunk` at `start`, expects 202 with `Range: 0-<end>`, returns the next
/// Location.
async fn patch_ok(ctx: &Ctx, loc: &Url, chunk: &[u8], start: usize) -> Result<Url, String> {
    let resp = patch(ctx, loc, chunk, start).await?;
    resp.expect(202)?;
    check_range(&resp, start + chunk.len() - 1)?;
    location(ctx, &resp)
}

/// A blob of `n` chunks of `chunk` bytes plus a shorter tail.
fn chunked_blob(ctx: &Ctx, chunk: usize, n: usize) -> Content {
    let bytes = ctx.bytes(chunk * n + chunk / 3);
    Content::new(bytes, OCI_LAYER)
}

async fn chunked_open(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (resp, loc, _) = open(ctx, repo).await?;
    check_range(&resp, 0)?;
    resp.require_header("Docker-Upload-UUID")?;
    // Leave nothing behind; the answer is judged by the cancel check.
    let _ = ctx.client.send(Method::DELETE, loc, &[], Body::None).await;
    Ok(())
}

async fn chunked(ctx: &Ctx, repo: &str, last_on_put: bool) -> Result<(), String> {
    let (_, mut loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 2);
    let pieces: Vec<&[u8]> = b.bytes.chunks(chunk).collect();
    let patched = if last_on_put {
        pieces.len() - 1
    } else {
        pieces.len()
    };
    let mut offset = 0;
    for piece in &pieces[..patched] {
        loc = patch_ok(ctx, &loc, piece, offset).await?;
        offset += piece.len();
    }
    let rest = b.bytes[offset..].to_vec();
    let url = with_query(&loc, &[("digest", &b.digest)]);
    let resp = ctx
        .client
        .send(Method::PUT, url, &[OCTET_STREAM], Body::Bytes(rest))
        .await?;
    check_created(ctx, &resp, &b.digest)?;
    readable(ctx, repo, &b).await
}

/// GETs the upload status and expects 204 with `Range: 0-<end>`.
async fn expect_status(ctx: &Ctx, loc: &Url, end: usize) -> Result<(), String> {
    let resp = ctx
        .client
        .send(Method::GET, loc.clone(), &[], Body::None)
        .await?;
    resp.expect(204)?;
    check_range(&resp, end)?;
    location(ctx, &resp).map(|_| ())
}

async fn status(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 1);
    let loc = patch_ok(ctx, &loc, &b.bytes[..chunk], 0).await?;
    expect_status(ctx, &loc, chunk - 1).await?;
    let _ = ctx.client.send(Method::DELETE, loc, &[], Body::None).await;
    Ok(())
}

async fn out_of_order(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 3);
    let loc = patch_ok(ctx, &loc, &b.bytes[..chunk], 0).await?;
    // Skip the second chunk: send the third one at its own offset.
    let resp = patch(ctx, &loc, &b.bytes[2 * chunk..3 * chunk], 2 * chunk).await?;
    resp.expect(416)?;
    if resp.header("Range").is_some() {
        check_range(&resp, chunk - 1)?;
    }
    expect_status(ctx, &loc, chunk - 1).await?;
    let _ = ctx.client.send(Method::DELETE, loc, &[], Body::None).await;
    Ok(())
}

async fn streamed(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, _) = open(ctx, repo).await?;
    let b = blob(ctx);
    let pieces: Vec<Vec<u8>> = b.bytes.chunks(700).map(<[u8]>::to_vec).collect();
    let resp = ctx
        .client
        .send(Method::PATCH, loc, &[OCTET_STREAM], Body::Stream(pieces))
        .await?;
    resp.expect(202)?;
    check_range(&resp, b.bytes.len() - 1)?;
    let url = with_query(&location(ctx, &resp)?, &[("digest", &b.digest)]);
    let resp = ctx
        .client
        .send(Method::PUT, url, &[OCTET_STREAM], Body::Bytes(Vec::new()))
        .await?;
    check_created(ctx, &resp, &b.digest)?;
    readable(ctx, repo, &b).await
}

async fn mismatch(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    let claimed = ctx.with_gen(|g| g.unknown_digest());
    let (_, loc) = start_upload(ctx, repo).await?;
    let url = with_query(&loc, &[("digest", &claimed)]);
    let resp = ctx
        .client
        .send(
            Method::PUT,
            url,
            &[OCTET_STREAM],
            Body::Bytes(b.bytes.clone()),
        )
        .await?;
    resp.expect_error(400, "DIGEST_INVALID")?;
    let resp = fetch_blob(ctx, Method::GET, repo, &claimed, &[]).await?;
    resp.expect(404)
        .map_err(|e| format!("blob under the claimed digest is retrievable: {e}"))
}

async fn cancel(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 1);
    let loc = patch_ok(ctx, &loc, &b.bytes[..chunk], 0).await?;
    let resp = ctx
        .client
        .send(Method::DELETE, loc.clone(), &[], Body::None)
        .await?;
    resp.expect(204)?;
    let resp = ctx.client.send(Method::GET, loc, &[], Body::None).await?;
    resp.expect_error(404, "BLOB_UPLOAD_UNKNOWN")
}

async fn mount(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    push_blob(ctx, repo, &b).await?;
    let target = ctx.repo("mount");
    let url = with_query(
        &v2_url(ctx, &target, "blobs/uploads/")?,
        &[("mount", &b.digest), ("from", repo)],
    );
    let resp = ctx
        .client
        .send(Method::POST, url, &[OCTET_STREAM], Body::Bytes(Vec::new()))
        .await?;
    resp.expect(201)?;
    location(ctx, &resp)?;
    if resp.header("Docker-Content-Digest").is_some() {
        check_digest_header(&resp, &b.digest)?;
    }
    readable(ctx, &target, &b).await
}

async fn mount_unknown(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let digest = ctx.with_gen(|g| g.unknown_digest());
    let url = with_query(
        &v2_url(ctx, &ctx.repo("mount"), "blobs/uploads/")?,
        &[("mount", &digest), ("from", repo)],
    );
    let resp = ctx
        .client
        .send(Method::POST, url, &[OCTET_STREAM], Body::Bytes(Vec::new()))
        .await?;
    resp.expect(202)?;
    let loc = location(ctx, &resp)?;
    let _ = ctx.client.send(Method::DELETE, loc, &[], Body::None).await;
    Ok(())
}

async fn sha512(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let bytes = blob(ctx).bytes;
    let digest = data::sha512(&bytes);
    let (_, loc) = start_upload(ctx, repo).await?;
    let url = with_query(&loc, &[("digest", &digest)]);
    let resp = ctx
        .client
        .send(
            Method::PUT,
            url,
            &[OCTET_STREAM],
            Body::Bytes(bytes.clone()),
        )
        .await?;
    check_created(ctx, &resp, &digest)?;
    let resp = fetch_blob(ctx, Method::GET, repo, &digest, &[]).await?;
    resp.expect(200)?;
    ensure!(
        resp.body == bytes,
        "sha512 blob read back differs; {}",
        resp.describe()
    );
    Ok(())
}
