//! Registry operations built from timed requests: the push styles (monolithic, chunked,
//! docker-style), mounts, manifest put/get. Each checks the answer and returns an error
//! string for a wrong one; every request is recorded in the caller's [`Recorder`].

use bytes::Bytes;
use reqwest::Method;
use url::Url;

use crate::client::{Answer, Registry};
use crate::data::{Blob, Manifest, sha256_chunks};
use crate::stats::Recorder;

/// Size of the pieces a docker-style streamed `PATCH` body is sent in.
const STREAM_PIECE: usize = 1 << 20;

/// `url` with `digest=<digest>` appended to its query (kept if it already has one).
pub fn with_digest(mut url: Url, digest: &str) -> Url {
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

/// The upload URL an answer's `Location` names.
fn location(reg: &Registry, answer: &Answer) -> Result<Url, String> {
    reg.url(answer.require_header("Location")?)
}

/// `POST /v2/<repo>/blobs/uploads/`: opens an upload session, answers its URL.
pub async fn start_upload(reg: &Registry, rec: &mut Recorder, repo: &str) -> Result<Url, String> {
    let url = reg.url(&format!("/v2/{repo}/blobs/uploads/"))?;
    let answer = reg
        .send(
            rec,
            reg.request(Method::POST, url).header("Content-Length", "0"),
        )
        .await?
        .expect(202)?;
    location(reg, &answer)
}

/// The closing `PUT <upload>?digest=` (with the whole content, or none after PATCHes).
async fn finish_upload(
    reg: &Registry,
    rec: &mut Recorder,
    upload: Url,
    blob: &Blob,
    body: Option<Bytes>,
) -> Result<(), String> {
    let request = reg
        .request(Method::PUT, with_digest(upload, &blob.digest))
        .header("Content-Type", "application/octet-stream");
    let request = match body {
        Some(b) => request.header("Content-Length", b.len()).body(b),
        None => request.header("Content-Length", "0"),
    };
    let answer = reg.send(rec, request).await?.expect(201)?;
    check_digest_header(&answer, &blob.digest)
}

/// A `Docker-Content-Digest` header, when present, must name `digest`.
fn check_digest_header(answer: &Answer, digest: &str) -> Result<(), String> {
    match answer.header("Docker-Content-Digest") {
        Some(d) if d != digest => Err(format!(
            "{}: Docker-Content-Digest {d}, want {digest}",
            answer.what
        )),
        _ => Ok(()),
    }
}

/// Monolithic push: `POST` then one `PUT ?digest=` carrying the whole blob.
pub async fn push_monolithic(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    blob: &Blob,
) -> Result<(), String> {
    let upload = start_upload(reg, rec, repo).await?;
    finish_upload(reg, rec, upload, blob, Some(blob.data.clone())).await
}

/// Chunked push: `POST`, one `PATCH` with `Content-Range` per `chunk` bytes, then an
/// empty `PUT ?digest=`.
pub async fn push_chunked(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    blob: &Blob,
    chunk: usize,
) -> Result<(), String> {
    let mut upload = start_upload(reg, rec, repo).await?;
    let mut start = 0usize;
    while start < blob.data.len() {
        let end = (start + chunk.max(1)).min(blob.data.len());
        let piece = blob.data.slice(start..end);
        let request = reg
            .request(Method::PATCH, upload.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{start}-{}", end - 1))
            .header("Content-Length", piece.len())
            .body(piece);
        let answer = reg.send(rec, request).await?.expect(202)?;
        if let Some(range) = answer.header("Range") {
            let want = format!("0-{}", end - 1);
            if range != want {
                return Err(format!("{}: Range {range}, want {want}", answer.what));
            }
        }
        upload = location(reg, &answer)?;
        start = end;
    }
    finish_upload(reg, rec, upload, blob, None).await
}

/// Docker-style push: `HEAD` the blob (skip if present), `POST`, one streamed `PATCH`
/// (chunked transfer encoding, no `Content-Range`), then an empty `PUT ?digest=`.
pub async fn push_docker_style(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    blob: &Blob,
) -> Result<(), String> {
    if head_blob(reg, rec, repo, &blob.digest).await?.is_some() {
        return Ok(());
    }
    let upload = start_upload(reg, rec, repo).await?;
    let data = blob.data.clone();
    let pieces = (0..data.len().div_ceil(STREAM_PIECE)).map(move |i| {
        let end = ((i + 1) * STREAM_PIECE).min(data.len());
        Ok::<Bytes, std::io::Error>(data.slice(i * STREAM_PIECE..end))
    });
    let request = reg
        .request(Method::PATCH, upload)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)));
    let answer = reg.send(rec, request).await?.expect(202)?;
    let upload = location(reg, &answer)?;
    finish_upload(reg, rec, upload, blob, None).await
}

/// `HEAD /v2/<repo>/blobs/<digest>`: `Some(length)` if present, `None` on 404.
pub async fn head_blob(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    digest: &str,
) -> Result<Option<u64>, String> {
    let url = reg.url(&format!("/v2/{repo}/blobs/{digest}"))?;
    let answer = reg.send(rec, reg.request(Method::HEAD, url)).await?;
    match answer.status {
        404 => Ok(None),
        200 => {
            let len = answer
                .require_header("Content-Length")?
                .parse::<u64>()
                .map_err(|e| format!("{}: bad Content-Length: {e}", answer.what))?;
            check_digest_header(&answer, digest)?;
            Ok(Some(len))
        }
        _ => answer.expect(200).map(|_| None),
    }
}

/// Pushes `blob` monolithically unless the repository already has it (set-up helper).
pub async fn ensure_blob(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    blob: &Blob,
) -> Result<(), String> {
    if head_blob(reg, rec, repo, &blob.digest).await? == Some(blob.len()) {
        return Ok(());
    }
    push_monolithic(reg, rec, repo, blob).await
}

/// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`, which must answer 201.
pub async fn mount(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    from: &str,
    digest: &str,
) -> Result<(), String> {
    let mut url = reg.url(&format!("/v2/{repo}/blobs/uploads/"))?;
    url.query_pairs_mut()
        .append_pair("mount", digest)
        .append_pair("from", from);
    let request = reg.request(Method::POST, url).header("Content-Length", "0");
    reg.send(rec, request).await?.expect(201).map(|_| ())
}

/// `PUT /v2/<repo>/manifests/<reference>`, which must answer 201 with the digest.
pub async fn put_manifest(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    reference: &str,
    manifest: &Manifest,
) -> Result<(), String> {
    let url = reg.url(&format!("/v2/{repo}/manifests/{reference}"))?;
    let request = reg
        .request(Method::PUT, url)
        .header("Content-Type", manifest.media_type)
        .header("Content-Length", manifest.body.len())
        .body(manifest.body.clone());
    let answer = reg.send(rec, request).await?.expect(201)?;
    check_digest_header(&answer, &manifest.digest)
}

/// `GET /v2/<repo>/manifests/<reference>`; the body must be exactly `manifest`.
pub async fn get_manifest(
    reg: &Registry,
    rec: &mut Recorder,
    repo: &str,
    reference: &str,
    manifest: &Manifest,
) -> Result<(), String> {
    let url = reg.url(&format!("/v2/{repo}/manifests/{reference}"))?;
    let request = reg
        .request(Method::GET, url)
        .header("Accept", manifest.media_type);
    let answer = reg.send(rec, request).await?.expect(200)?;
    let got = sha256_chunks(&answer.chunks);
    if got != manifest.digest {
        return Err(format!(
            "{}: body hashes to {got}, want {}",
            answer.what, manifest.digest
        ));
    }
    check_digest_header(&answer, &manifest.digest)
}
