//! Registry workflows that checks use as setup (push blobs, open an upload session,
//! push and fetch a manifest) and the checks shared by several categories. Each returns
//! a detailed error when the registry answers unexpectedly, so a failed setup explains
//! itself.

use berth_client::{ByteRange, Method, Response, Url};

use crate::Ctx;
use crate::data::{ACCEPT_MANIFESTS, Content};

/// `POST /v2/<repo>/blobs/uploads/`; expects 202 and returns the response and the
/// resolved upload `Location`.
pub async fn start_upload(ctx: &Ctx, repo: &str) -> Result<(Response, Url), String> {
    let resp = ctx.client.start_upload(repo).await?;
    resp.require_status(202)?;
    let loc = resp.location()?;
    Ok((resp, loc))
}

/// Pushes a blob with POST then a monolithic `PUT ?digest=`; expects 201.
pub async fn push_blob(ctx: &Ctx, repo: &str, blob: &Content) -> Result<Response, String> {
    Ok(ctx
        .client
        .push_blob(repo, &blob.digest, blob.bytes.clone())
        .await?)
}

/// Pushes several blobs, stopping at the first failure.
pub async fn push_blobs(ctx: &Ctx, repo: &str, blobs: &[&Content]) -> Result<(), String> {
    for b in blobs {
        push_blob(ctx, repo, b)
            .await
            .map_err(|e| format!("pushing blob {}: {e}", b.digest))?;
    }
    Ok(())
}

/// `PUT /v2/<repo>/manifests/<reference>` with the manifest's media type; returns the
/// answer without judging it.
pub async fn put_manifest(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    manifest: &Content,
) -> Result<Response, String> {
    Ok(ctx
        .client
        .put_manifest(
            repo,
            reference,
            &manifest.media_type,
            manifest.bytes.clone(),
            &[],
        )
        .await?)
}

/// Pushes a manifest and expects 201.
pub async fn push_manifest(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    manifest: &Content,
) -> Result<Response, String> {
    let resp = put_manifest(ctx, repo, reference, manifest).await?;
    resp.require_status(201)
        .map_err(|e| format!("pushing manifest {reference}: {e}"))?;
    ctx.note_repo(repo);
    Ok(resp)
}

/// `GET`/`HEAD /v2/<repo>/manifests/<reference>` accepting every manifest type.
pub async fn fetch_manifest(
    ctx: &Ctx,
    method: Method,
    repo: &str,
    reference: &str,
) -> Result<Response, String> {
    let resp = if method == Method::HEAD {
        ctx.client
            .head_manifest(repo, reference, ACCEPT_MANIFESTS)
            .await?
    } else {
        ctx.client
            .get_manifest(repo, reference, ACCEPT_MANIFESTS)
            .await?
    };
    Ok(resp)
}

/// `GET /v2/<repo>/blobs/<digest>`, whole or a range.
pub async fn get_blob(
    ctx: &Ctx,
    repo: &str,
    digest: &str,
    range: Option<ByteRange>,
) -> Result<Response, String> {
    Ok(ctx.client.get_blob(repo, digest, range).await?)
}

/// Fails unless a manifest GET answered 200 with exactly `m`'s bytes, its media type
/// and its digest.
pub fn check_manifest_body(resp: &Response, m: &Content) -> Result<(), String> {
    resp.require_status(200)?;
    ensure!(
        resp.body == m.bytes,
        "manifest bytes differ from the pushed ones ({} vs {} bytes); {}",
        resp.body.len(),
        m.bytes.len(),
        resp.describe()
    );
    ensure!(
        resp.content_type() == Some(m.media_type.as_str()),
        "Content-Type is not {}; {}",
        m.media_type,
        resp.describe()
    );
    check_digest_header(resp, &m.digest)
}

/// Fails unless `Docker-Content-Digest` is present and equals `digest`.
pub fn check_digest_header(resp: &Response, digest: &str) -> Result<(), String> {
    let got = resp.require_header("Docker-Content-Digest")?;
    ensure!(
        got == digest,
        "Docker-Content-Digest is {got}, expected {digest}; {}",
        resp.describe()
    );
    Ok(())
}

/// Fails unless `Content-Length` is present and equals `len`.
pub fn check_content_length(resp: &Response, len: usize) -> Result<(), String> {
    let got = resp.require_header("Content-Length")?;
    ensure!(
        got.trim() == len.to_string(),
        "Content-Length is {got}, expected {len}; {}",
        resp.describe()
    );
    Ok(())
}
