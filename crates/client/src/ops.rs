//! The registry's API as methods of [`Client`], one request each: the version check,
//! blobs (HEAD, GET with a range, streamed GET, DELETE), uploads (open, single POST,
//! mount, chunk with `Content-Range`, streamed PATCH, status, finish, cancel),
//! manifests (GET and HEAD with `Accept`, PUT with `?tag=`, DELETE), `tags/list` and
//! `_catalog` with `n`/`last`, and referrers with `artifactType`. Each answers the
//! [`Response`] whatever its status: judging it is the caller's business. A few
//! workflows of several requests ([`Client::push_blob`], [`Client::push_blob_chunked`])
//! stop at the first unexpected status instead.

use std::fmt;

use bytes::Bytes;
use reqwest::Method;
use url::Url;

use crate::client::Client;
use crate::error::Error;
use crate::request::{Body, Request};
use crate::response::{Response, Streaming};

/// `Content-Type` of blob bytes in uploads.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// A `Range` of a blob GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `start` to `end`, both included (`bytes=start-end`).
    Span(u64, u64),
    /// The last `n` bytes (`bytes=-n`).
    Suffix(u64),
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::Span(start, end) => write!(f, "bytes={start}-{end}"),
            ByteRange::Suffix(n) => write!(f, "bytes=-{n}"),
        }
    }
}

/// `url` with `digest=<digest>` appended to its query (keeping what it has).
pub fn with_digest(url: &Url, digest: &str) -> Url {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

impl Client {
    /// A request to `/v2/<repo>/<rest>`.
    fn repo_request(&self, method: Method, repo: &str, rest: &str) -> Result<Request, Error> {
        Ok(Request::new(
            method,
            self.url(&format!("/v2/{repo}/{rest}"))?,
        ))
    }

    /// `GET` of a path or URL (e.g. a `Link` target) without extra headers.
    pub async fn get(&self, target: &str) -> Result<Response, Error> {
        self.send(Request::new(Method::GET, self.url(target)?))
            .await
    }

    /// `GET /v2/`: the API version check.
    pub async fn ping(&self) -> Result<Response, Error> {
        self.get("/v2/").await
    }

    /// The URL of a blob, `/v2/<repo>/blobs/<digest>`.
    pub fn blob_url(&self, repo: &str, digest: &str) -> Result<Url, Error> {
        self.url(&format!("/v2/{repo}/blobs/{digest}"))
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> Result<Response, Error> {
        self.send(Request::new(Method::HEAD, self.blob_url(repo, digest)?))
            .await
    }

    /// `GET /v2/<repo>/blobs/<digest>`, whole or a range, read into memory.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
        range: Option<ByteRange>,
    ) -> Result<Response, Error> {
        self.send(blob_get(self.blob_url(repo, digest)?, range))
            .await
    }

    /// `GET /v2/<repo>/blobs/<digest>`, the body handed over piece by piece.
    pub async fn get_blob_streaming(
        &self,
        repo: &str,
        digest: &str,
        range: Option<ByteRange>,
    ) -> Result<Streaming, Error> {
        self.send_streaming(blob_get(self.blob_url(repo, digest)?, range))
            .await
    }

    /// `DELETE /v2/<repo>/blobs/<digest>`.
    pub async fn delete_blob(&self, repo: &str, digest: &str) -> Result<Response, Error> {
        self.send(Request::new(Method::DELETE, self.blob_url(repo, digest)?))
            .await
    }

    /// `POST /v2/<repo>/blobs/uploads/` with an empty body: opens an upload session
    /// (202 and its `Location` when it works).
    pub async fn start_upload(&self, repo: &str) -> Result<Response, Error> {
        let req = self.repo_request(Method::POST, repo, "blobs/uploads/")?;
        self.send(req.body(Body::bytes(Bytes::new()))).await
    }

    /// `POST /v2/<repo>/blobs/uploads/?digest=<digest>` carrying the whole blob: a push
    /// in one request (201), or 202 from a registry that opens a session instead.
    pub async fn post_blob(
        &self,
        repo: &str,
        digest: &str,
        data: impl Into<Bytes>,
    ) -> Result<Response, Error> {
        let req = self
            .repo_request(Method::POST, repo, "blobs/uploads/")?
            .query(&[("digest", digest)])
            .header("Content-Type", OCTET_STREAM)
            .body(Body::bytes(data));
        self.send(req).await
    }

    /// `POST /v2/<repo>/blobs/uploads/?mount=<digest>[&from=<from>]`: links a blob the
    /// registry has (201), or opens a session (202) when it will not.
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &str,
        from: Option<&str>,
    ) -> Result<Response, Error> {
        let mut params = vec![("mount", digest)];
        if let Some(from) = from {
            params.push(("from", from));
        }
        let req = self
            .repo_request(Method::POST, repo, "blobs/uploads/")?
            .query(&params)
            .body(Body::bytes(Bytes::new()));
        self.send(req).await
    }

    /// `PATCH <upload>` with `Content-Range: <offset>-<end>`: one chunk of a chunked
    /// upload (202 with `Range` and the next `Location`).
    pub async fn patch_chunk(
        &self,
        upload: &Url,
        offset: u64,
        chunk: impl Into<Bytes>,
    ) -> Result<Response, Error> {
        let chunk = chunk.into();
        let end = (offset + chunk.len() as u64).saturating_sub(1);
        let req = Request::new(Method::PATCH, upload.clone())
            .header("Content-Type", OCTET_STREAM)
            .header("Content-Range", format!("{offset}-{end}"))
            .body(Body::bytes(chunk));
        self.send(req).await
    }

    /// `PATCH <upload>` without `Content-Range`, the body as given (a docker-style
    /// streamed upload when it is [`Body::Stream`]).
    pub async fn patch_stream(&self, upload: &Url, body: Body) -> Result<Response, Error> {
        let req = Request::new(Method::PATCH, upload.clone())
            .header("Content-Type", OCTET_STREAM)
            .body(body);
        self.send(req).await
    }

    /// `GET <upload>`: the session's progress (204 with `Range`).
    pub async fn upload_status(&self, upload: &Url) -> Result<Response, Error> {
        self.send(Request::new(Method::GET, upload.clone())).await
    }

    /// The closing `PUT <upload>?digest=<digest>`, with the last bytes (or the whole
    /// blob, for a monolithic push) or none after PATCHes (201 when it works).
    pub async fn finish_upload(
        &self,
        upload: &Url,
        digest: &str,
        last: impl Into<Bytes>,
    ) -> Result<Response, Error> {
        let req = Request::new(Method::PUT, with_digest(upload, digest))
            .header("Content-Type", OCTET_STREAM)
            .body(Body::bytes(last));
        self.send(req).await
    }

    /// `DELETE <upload>`: cancels the session (204).
    pub async fn cancel_upload(&self, upload: &Url) -> Result<Response, Error> {
        self.send(Request::new(Method::DELETE, upload.clone()))
            .await
    }

    /// Monolithic push: `POST`, then one `PUT ?digest=` with the whole blob. Answers
    /// the `PUT`'s 201.
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &str,
        data: impl Into<Bytes>,
    ) -> Result<Response, Error> {
        let upload = self
            .start_upload(repo)
            .await?
            .expect_status(202)?
            .location()?;
        self.finish_upload(&upload, digest, data)
            .await?
            .expect_status(201)
    }

    /// Chunked push: `POST`, one `PATCH` with `Content-Range` per `chunk` bytes
    /// (each must answer 202 with `Range: 0-<end>`), then an empty `PUT ?digest=`.
    /// Answers the `PUT`'s 201.
    pub async fn push_blob_chunked(
        &self,
        repo: &str,
        digest: &str,
        data: impl Into<Bytes>,
        chunk: usize,
    ) -> Result<Response, Error> {
        let data = data.into();
        let mut upload = self
            .start_upload(repo)
            .await?
            .expect_status(202)?
            .location()?;
        let mut start = 0;
        while start < data.len() {
            let end = (start + chunk.max(1)).min(data.len());
            let r = self
                .patch_chunk(&upload, start as u64, data.slice(start..end))
                .await?
                .expect_status(202)?;
            let want = format!("0-{}", end - 1);
            if r.header("Range") != Some(want.as_str()) {
                return Err(Error::Body {
                    detail: format!("Range is not {want}"),
                    got: Box::new(r),
                });
            }
            upload = r.location()?;
            start = end;
        }
        self.finish_upload(&upload, digest, Bytes::new())
            .await?
            .expect_status(201)
    }

    /// A request to `/v2/<repo>/manifests/<reference>`.
    fn manifest_request(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
    ) -> Result<Request, Error> {
        self.repo_request(method, repo, &format!("manifests/{reference}"))
    }

    /// `GET /v2/<repo>/manifests/<reference>` with `Accept: <accept>`.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Response, Error> {
        self.read_manifest(Method::GET, repo, reference, accept)
            .await
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` with `Accept: <accept>`.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Response, Error> {
        self.read_manifest(Method::HEAD, repo, reference, accept)
            .await
    }

    /// A manifest GET or HEAD with `Accept: <accept>`.
    async fn read_manifest(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Response, Error> {
        let req = self
            .manifest_request(method, repo, reference)?
            .header("Accept", accept);
        self.send(req).await
    }

    /// `PUT /v2/<repo>/manifests/<reference>[?tag=a&tag=b]` with the manifest's media
    /// type (201 with `Location` and `Docker-Content-Digest` when it works).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: impl Into<Bytes>,
        tags: &[&str],
    ) -> Result<Response, Error> {
        let params: Vec<(&str, &str)> = tags.iter().map(|t| ("tag", *t)).collect();
        let req = self
            .manifest_request(Method::PUT, repo, reference)?
            .query(&params)
            .header("Content-Type", media_type)
            .body(Body::bytes(body));
        self.send(req).await
    }

    /// `DELETE /v2/<repo>/manifests/<reference>` (a digest, or a tag to untag).
    pub async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<Response, Error> {
        self.send(self.manifest_request(Method::DELETE, repo, reference)?)
            .await
    }

    /// `GET /v2/<repo>/tags/list[?n=<n>][&last=<last>]`; the next page, if any, is
    /// named by [`Response::next_link`] (follow it with [`Client::get`]).
    pub async fn tags_list(
        &self,
        repo: &str,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Response, Error> {
        let req = self.repo_request(Method::GET, repo, "tags/list")?;
        self.send(paged(req, n, last)).await
    }

    /// `GET /v2/_catalog[?n=<n>][&last=<last>]`.
    pub async fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Response, Error> {
        let req = Request::new(Method::GET, self.url("/v2/_catalog")?);
        self.send(paged(req, n, last)).await
    }

    /// `GET /v2/<repo>/referrers/<digest>[?artifactType=<type>]`.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Response, Error> {
        let mut req = self.repo_request(Method::GET, repo, &format!("referrers/{digest}"))?;
        if let Some(t) = artifact_type {
            req = req.query(&[("artifactType", t)]);
        }
        self.send(req).await
    }
}

/// A blob `GET` with its `Range`, if any.
fn blob_get(url: Url, range: Option<ByteRange>) -> Request {
    let req = Request::new(Method::GET, url);
    match range {
        Some(r) => req.header("Range", r.to_string()),
        None => req,
    }
}

/// A listing request with its `n` and `last`, when given.
fn paged(req: Request, n: Option<usize>, last: Option<&str>) -> Request {
    let n = n.map(|n| n.to_string());
    let mut params = Vec::new();
    if let Some(n) = &n {
        params.push(("n", n.as_str()));
    }
    if let Some(last) = last {
        params.push(("last", last));
    }
    req.query(&params)
}
