//! Push category, blob uploads: monolithic (POST + PUT, and single POST), chunked
//! (PATCH with `Content-Range`, status, out-of-order chunks, closing PUT with or without
//! a last chunk), streamed PATCH, digest mismatch, cancel, cross-repository mount and
//! sha512 content.

use berth_client::{Body, Response, Url};
use bytes::Bytes;

use crate::data::{self, Content, OCI_LAYER};
use crate::ops::{check_digest_header, get_blob, push_blob, start_upload};
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
    let resp = get_blob(ctx, repo, &blob.digest, None).await?;
    resp.require_status(200)?;
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
fn check_created(resp: &Response, digest: &str) -> Result<(), String> {
    resp.require_status(201)?;
    resp.location()?;
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
    check_created(&resp, &b.digest)?;
    readable(ctx, repo, &b).await
}

async fn single_post(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    let resp = ctx
        .client
        .post_blob(repo, &b.digest, b.bytes.clone())
        .await?;
    if resp.status == 202 {
        // The spec lets a registry without single-POST support open an upload instead;
        // the client then finishes it with a monolithic PUT.
        let put = ctx
            .client
            .finish_upload(&resp.location()?, &b.digest, b.bytes.clone())
            .await?;
        check_created(&put, &b.digest).map_err(|e| format!("after a 202 fallback: {e}"))?;
    } else {
        check_created(&resp, &b.digest)?;
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
    Ok(ctx
        .client
        .patch_chunk(loc, start as u64, chunk.to_vec())
        .await?)
}

/// PATCHes `chunk` at `start`, expects 202 with `Range: 0-<end>`, returns the next
/// Location.
async fn patch_ok(ctx: &Ctx, loc: &Url, chunk: &[u8], start: usize) -> Result<Url, String> {
    let resp = patch(ctx, loc, chunk, start).await?;
    resp.require_status(202)?;
    check_range(&resp, start + chunk.len() - 1)?;
    Ok(resp.location()?)
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
    let _ = ctx.client.cancel_upload(&loc).await;
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
    let resp = ctx.client.finish_upload(&loc, &b.digest, rest).await?;
    check_created(&resp, &b.digest)?;
    readable(ctx, repo, &b).await
}

/// GETs the upload status and expects 204 with `Range: 0-<end>`.
async fn expect_status(ctx: &Ctx, loc: &Url, end: usize) -> Result<(), String> {
    let resp = ctx.client.upload_status(loc).await?;
    resp.require_status(204)?;
    check_range(&resp, end)?;
    resp.location()?;
    Ok(())
}

async fn status(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 1);
    let loc = patch_ok(ctx, &loc, &b.bytes[..chunk], 0).await?;
    expect_status(ctx, &loc, chunk - 1).await?;
    let _ = ctx.client.cancel_upload(&loc).await;
    Ok(())
}

async fn out_of_order(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 3);
    let loc = patch_ok(ctx, &loc, &b.bytes[..chunk], 0).await?;
    // Skip the second chunk: send the third one at its own offset.
    let resp = patch(ctx, &loc, &b.bytes[2 * chunk..3 * chunk], 2 * chunk).await?;
    resp.require_status(416)?;
    if resp.header("Range").is_some() {
        check_range(&resp, chunk - 1)?;
    }
    expect_status(ctx, &loc, chunk - 1).await?;
    let _ = ctx.client.cancel_upload(&loc).await;
    Ok(())
}

async fn streamed(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, _) = open(ctx, repo).await?;
    let b = blob(ctx);
    let pieces: Vec<Bytes> = b.bytes.chunks(700).map(Bytes::copy_from_slice).collect();
    let resp = ctx.client.patch_stream(&loc, Body::pieces(pieces)).await?;
    resp.require_status(202)?;
    check_range(&resp, b.bytes.len() - 1)?;
    let resp = ctx
        .client
        .finish_upload(&resp.location()?, &b.digest, Bytes::new())
        .await?;
    check_created(&resp, &b.digest)?;
    readable(ctx, repo, &b).await
}

async fn mismatch(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    let claimed = ctx.with_gen(|g| g.unknown_digest());
    let (_, loc) = start_upload(ctx, repo).await?;
    let resp = ctx
        .client
        .finish_upload(&loc, &claimed, b.bytes.clone())
        .await?;
    resp.require_error(400, "DIGEST_INVALID")?;
    let resp = get_blob(ctx, repo, &claimed, None).await?;
    resp.require_status(404)
        .map_err(|e| format!("blob under the claimed digest is retrievable: {e}"))
}

async fn cancel(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (_, loc, chunk) = open(ctx, repo).await?;
    let b = chunked_blob(ctx, chunk, 1);
    let loc = patch_ok(ctx, &loc, &b.bytes[..chunk], 0).await?;
    let resp = ctx.client.cancel_upload(&loc).await?;
    resp.require_status(204)?;
    let resp = ctx.client.upload_status(&loc).await?;
    Ok(resp.require_error(404, "BLOB_UPLOAD_UNKNOWN")?)
}

async fn mount(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = blob(ctx);
    push_blob(ctx, repo, &b).await?;
    let target = ctx.repo("mount");
    let resp = ctx
        .client
        .mount_blob(&target, &b.digest, Some(repo))
        .await?;
    resp.require_status(201)?;
    resp.location()?;
    if resp.header("Docker-Content-Digest").is_some() {
        check_digest_header(&resp, &b.digest)?;
    }
    readable(ctx, &target, &b).await
}

async fn mount_unknown(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let digest = ctx.with_gen(|g| g.unknown_digest());
    let resp = ctx
        .client
        .mount_blob(&ctx.repo("mount"), &digest, Some(repo))
        .await?;
    resp.require_status(202)?;
    let loc = resp.location()?;
    let _ = ctx.client.cancel_upload(&loc).await;
    Ok(())
}

async fn sha512(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let bytes = blob(ctx).bytes;
    let digest = data::sha512(&bytes);
    let (_, loc) = start_upload(ctx, repo).await?;
    let resp = ctx
        .client
        .finish_upload(&loc, &digest, bytes.clone())
        .await?;
    check_created(&resp, &digest)?;
    let resp = get_blob(ctx, repo, &digest, None).await?;
    resp.require_status(200)?;
    ensure!(
        resp.body == bytes,
        "sha512 blob read back differs; {}",
        resp.describe()
    );
    Ok(())
}
