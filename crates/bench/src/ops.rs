//! Registry operations built from timed requests: the push styles (monolithic, chunked,
//! docker-style), mounts, manifest put/get. Requests are built and sent by
//! `berth-client`; [`timed`] records each one in the caller's [`Recorder`] (its time
//! from sending to the last body byte). Each operation checks the answer and returns an
//! error string for a wrong one.

use std::future::Future;
use std::time::Duration;

use berth_client::{Body, Client, Error, Response};
use bytes::Bytes;

use crate::data::{Blob, Manifest, sha256};
use crate::stats::Recorder;

/// Size of the pieces a docker-style streamed `PATCH` body is sent in.
const STREAM_PIECE: usize = 1 << 20;

/// How long one request may take: a 512 MiB blob over a slow registry, and a catalog
/// page over S3 at 20,000 repositories from a registry that walks the bucket for it
/// (berth's first page after a start measured about 30 ms per repository on radosgw
/// here, i.e. some 10 minutes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// The client for the registry under test: HTTP/1.1 keep-alive connections, up to
/// `connections` of them idle, redirects not followed (a redirect is a wrong answer),
/// `authorization` sent with every request when given.
pub fn connect(
    base_url: &str,
    connections: usize,
    authorization: Option<&str>,
) -> Result<Client, String> {
    connect_with(base_url, connections, authorization, false)
}

/// Like [`connect`], following redirects when `follow_redirects` (a registry that sends
/// blob GETs to presigned storage URLs; `Authorization` is not sent to another host).
pub fn connect_with(
    base_url: &str,
    connections: usize,
    authorization: Option<&str>,
    follow_redirects: bool,
) -> Result<Client, String> {
    let mut builder = Client::builder(base_url)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .max_idle_connections(connections)
        .http1_only()
        .follow_redirects(follow_redirects);
    if let Some(a) = authorization {
        builder = builder.authorization(a);
    }
    Ok(builder.build()?)
}

/// Awaits one request and records it: answered (with its time) or not. A body that
/// broke off counts as no answer.
pub async fn timed(
    rec: &mut Recorder,
    sent: impl Future<Output = Result<Response, Error>>,
) -> Result<Response, String> {
    match sent.await {
        Ok(answer) => match &answer.body_error {
            None => {
                rec.request(answer.elapsed);
                Ok(answer)
            }
            Some(e) => {
                rec.unanswered();
                Err(format!("{}: {e}", answer.what()))
            }
        },
        Err(e) => {
            rec.unanswered();
            Err(e.to_string())
        }
    }
}

/// `POST /v2/<repo>/blobs/uploads/`: opens an upload session, answers its URL.
pub async fn start_upload(
    reg: &Client,
    rec: &mut Recorder,
    repo: &str,
) -> Result<berth_client::Url, String> {
    let answer = timed(rec, reg.start_upload(repo))
        .await?
        .expect_status(202)?;
    Ok(answer.location()?)
}

/// The closing `PUT <upload>?digest=` (with the whole content, or none after PATCHes).
async fn finish_upload(
    reg: &Client,
    rec: &mut Recorder,
    upload: berth_client::Url,
    blob: &Blob,
    body: Bytes,
) -> Result<(), String> {
    let answer = timed(rec, reg.finish_upload(&upload, &blob.digest, body))
        .await?
        .expect_status(201)?;
    check_digest_header(&answer, &blob.digest)
}

/// A `Docker-Content-Digest` header, when present, must name `digest`.
fn check_digest_header(answer: &Response, digest: &str) -> Result<(), String> {
    match answer.digest() {
        Some(d) if d != digest => Err(format!(
            "{}: Docker-Content-Digest {d}, want {digest}",
            answer.what()
        )),
        _ => Ok(()),
    }
}

/// Monolithic push: `POST` then one `PUT ?digest=` carrying the whole blob.
pub async fn push_monolithic(
    reg: &Client,
    rec: &mut Recorder,
    repo: &str,
    blob: &Blob,
) -> Result<(), String> {
    let upload = start_upload(reg, rec, repo).await?;
    finish_upload(reg, rec, upload, blob, blob.data.clone()).await
}

/// Chunked push: `POST`, one `PATCH` with `Content-Range` per `chunk` bytes, then an
/// empty `PUT ?digest=`.
pub async fn push_chunked(
    reg: &Client,
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
        let answer = timed(rec, reg.patch_chunk(&upload, start as u64, piece))
            .await?
            .expect_status(202)?;
        if let Some(range) = answer.header("Range") {
            let want = format!("0-{}", end - 1);
            if range != want {
                return Err(format!("{}: Range {range}, want {want}", answer.what()));
            }
        }
        upload = answer.location()?;
        start = end;
    }
    finish_upload(reg, rec, upload, blob, Bytes::new()).await
}

/// Docker-style push: `HEAD` the blob (skip if present), `POST`, one streamed `PATCH`
/// (chunked transfer encoding, no `Content-Range`), then an empty `PUT ?digest=`.
pub async fn push_docker_style(
    reg: &Client,
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
        data.slice(i * STREAM_PIECE..end)
    });
    let answer = timed(rec, reg.patch_stream(&upload, Body::pieces(pieces)))
        .await?
        .expect_status(202)?;
    let upload = answer.location()?;
    finish_upload(reg, rec, upload, blob, Bytes::new()).await
}

/// `HEAD /v2/<repo>/blobs/<digest>`: `Some(length)` if present, `None` on 404.
pub async fn head_blob(
    reg: &Client,
    rec: &mut Recorder,
    repo: &str,
    digest: &str,
) -> Result<Option<u64>, String> {
    let answer = timed(rec, reg.head_blob(repo, digest)).await?;
    match answer.status {
        404 => Ok(None),
        200 => {
            let len = answer
                .require_header("Content-Length")?
                .parse::<u64>()
                .map_err(|e| format!("{}: bad Content-Length: {e}", answer.what()))?;
            check_digest_header(&answer, digest)?;
            Ok(Some(len))
        }
        _ => answer
            .expect_status(200)
            .map(|_| None)
            .map_err(String::from),
    }
}

/// Pushes `blob` monolithically unless the repository already has it (set-up helper).
pub async fn ensure_blob(
    reg: &Client,
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
    reg: &Client,
    rec: &mut Recorder,
    repo: &str,
    from: &str,
    digest: &str,
) -> Result<(), String> {
    timed(rec, reg.mount_blob(repo, digest, Some(from)))
        .await?
        .expect_status(201)?;
    Ok(())
}

/// `PUT /v2/<repo>/manifests/<reference>`, which must answer 201 with the digest.
pub async fn put_manifest(
    reg: &Client,
    rec: &mut Recorder,
    repo: &str,
    reference: &str,
    manifest: &Manifest,
) -> Result<(), String> {
    let sent = reg.put_manifest(
        repo,
        reference,
        manifest.media_type,
        manifest.body.clone(),
        &[],
    );
    let answer = timed(rec, sent).await?.expect_status(201)?;
    check_digest_header(&answer, &manifest.digest)
}

/// `GET /v2/<repo>/manifests/<reference>`; the body must be exactly `manifest`.
pub async fn get_manifest(
    reg: &Client,
    rec: &mut Recorder,
    repo: &str,
    reference: &str,
    manifest: &Manifest,
) -> Result<(), String> {
    let answer = timed(rec, reg.get_manifest(repo, reference, manifest.media_type))
        .await?
        .expect_status(200)?;
    let got = sha256(&answer.body);
    if got != manifest.digest {
        return Err(format!(
            "{}: body hashes to {got}, want {}",
            answer.what(),
            manifest.digest
        ));
    }
    check_digest_header(&answer, &manifest.digest)
}
