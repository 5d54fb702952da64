//! Registry workflows that checks use as setup: push a blob monolithically, open an
//! upload session, push and fetch a manifest. Each returns a detailed error when the
//! registry answers unexpectedly, so a failed setup explains itself.

use reqwest::Method;
use url::Url;

use crate::Ctx;
use crate::client::{Body, Response};
use crate::data::{ACCEPT_MANIFESTS, Content};

/// `Content-Type` of blob upload requests.
pub const OCTET_STREAM: (&str, &str) = ("Content-Type", "application/octet-stream");

/// Returns `url` with extra query parameters appended (keeping any it already has).
pub fn with_query(url: &Url, params: &[(&str, &str)]) -> Url {
    let mut url = url.clone();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url
}

/// `/v2/<repo>/<rest>` resolved against the base URL.
pub fn v2_url(ctx: &Ctx, repo: &str, rest: &str) -> Result<Url, String> {
    ctx.client.resolve(&format!("/v2/{repo}/{rest}"))
}

/// The resolved `Location` header of a response.
pub fn location(ctx: &Ctx, resp: &Response) -> Result<Url, String> {
    let loc = resp.require_header("Location")?;
    ctx.client.resolve(loc)
}

/// `POST /v2/<repo>/blobs/uploads/` with an empty body; expects 202 and returns the
/// response and the resolved upload `Location`.
pub async fn start_upload(ctx: &Ctx, repo: &str) -> Result<(Response, Url), String> {
    let url = v2_url(ctx, repo, "blobs/uploads/")?;
    let resp = ctx
        .client
        .send(Method::POST, url, &[OCTET_STREAM], Body::Bytes(Vec::new()))
        .await?;
    resp.expect(202)?;
    let loc = location(ctx, &resp)?;
    Ok((resp, loc))
}

/// Pushes a blob with POST then a monolithic `PUT ?digest=`; expects 201.
pub async fn push_blob(ctx: &Ctx, repo: &str, blob: &Content) -> Result<Response, String> {
    let (_, loc) = start_upload(ctx, repo).await?;
    let url = with_query(&loc, &[("digest", &blob.digest)]);
    let resp = ctx
        .client
        .send(
            Method::PUT,
            url,
            &[OCTET_STREAM],
            Body::Bytes(blob.bytes.clone()),
        )
        .await?;
    resp.expect(201)?;
    Ok(resp)
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
    let url = v2_url(ctx, repo, &format!("manifests/{reference}"))?;
    ctx.client
        .send(
            Method::PUT,
            url,
            &[("Content-Type", &manifest.media_type)],
            Body::Bytes(manifest.bytes.clone()),
        )
        .await
}

/// Pushes a manifest and expects 201 with `Docker-Content-Digest` equal to its digest.
pub async fn push_manifest(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    manifest: &Content,
) -> Result<Response, String> {
    let resp = put_manifest(ctx, repo, reference, manifest).await?;
    resp.expect(201)
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
    ctx.client
        .fetch(
            method,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", ACCEPT_MANIFESTS)],
        )
        .await
}

/// `GET`/`HEAD /v2/<repo>/blobs/<digest>` with extra headers.
pub async fn fetch_blob(
    ctx: &Ctx,
    method: Method,
    repo: &str,
    digest: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    ctx.client
        .fetch(method, &format!("/v2/{repo}/blobs/{digest}"), headers)
        .await
}

/// Fails unless a manifest GET answered 200 with exactly `m`'s bytes, its media type
/// and its digest.
pub fn check_manifest_body(resp: &Response, m: &Content) -> Result<(), String> {
    resp.expect(200)?;
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
