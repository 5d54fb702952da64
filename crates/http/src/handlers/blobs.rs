//! Blob GET/HEAD (with ranges and conditional requests) and DELETE.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use berth_core::{BlobRead, Digest, Error, RangeRequest, RepositoryName};
use berth_notify::Action;
use http::{HeaderValue, Method, StatusCode, header};

use super::Ctx;
use crate::error::ApiError;
use crate::headers::{CONTENT_DIGEST, value};
use crate::range::blob_range;

/// GET and HEAD: the blob's size, the range and the bytes come from one registry call.
pub(crate) async fn get(ctx: Ctx, name: RepositoryName, dg: Digest) -> Result<Response, ApiError> {
    let etag = format!("\"{dg}\"");
    let not_modified = ctx
        .header(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let read = BlobRead {
        range: blob_range(ctx.header(header::RANGE)),
        body: ctx.method != Method::HEAD && !not_modified,
    };
    let repo = ctx.repository(name.clone());
    // HEAD never redirects; a GET may go to the storage itself (the client sends its
    // Range there too), unless its Range is invalid: berth refuses that itself, where a
    // bucket would ignore it and answer the whole blob.
    if read.body
        && read.range != Some(RangeRequest::Invalid)
        && let Some((url, size)) = repo.blob_redirect(&dg).await?
    {
        if ctx.notifying_blob(Action::Pull) {
            ctx.emit(vec![ctx.blob_event(Action::Pull, &name, &dg, size, None)])
                .await;
        }
        let resp = Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, value(&url))
            .header(header::CONTENT_LENGTH, "0");
        return build(resp, Body::empty());
    }
    let blob = repo.blob(&dg, read).await?;
    // distribution reports every blob served as a pull: HEAD, ranges and 304s too.
    if ctx.notifying_blob(Action::Pull) {
        ctx.emit(vec![ctx.blob_event(
            Action::Pull,
            &name,
            &dg,
            blob.size,
            None,
        )])
        .await;
    }
    let resp = Response::builder()
        .header(CONTENT_DIGEST, value(&dg.to_string()))
        .header(header::ETAG, value(&etag))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if not_modified {
        return build(resp.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    let size = blob.size;
    let (resp, len) = match blob.range {
        Some((a, b)) => (
            resp.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                value(&format!("bytes {a}-{b}/{size}")),
            ),
            b - a + 1,
        ),
        None => (resp.status(StatusCode::OK), size),
    };
    let resp = resp.header(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = blob.stream.map_or_else(Body::empty, Body::from_stream);
    build(resp, body)
}

fn build(resp: http::response::Builder, body: Body) -> Result<Response, ApiError> {
    resp.body(body)
        .map_err(|e| ApiError::from(Error::internal_from("building the response", e)))
}

pub(crate) async fn delete(
    ctx: Ctx,
    name: RepositoryName,
    dg: Digest,
) -> Result<Response, ApiError> {
    ctx.repository(name.clone()).delete_blob(&dg).await?;
    if ctx.notifying(Action::Delete, "") {
        ctx.emit(vec![Ctx::deleted_event(&name, &dg)]).await;
    }
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
