//! Blob GET/HEAD (with ranges and conditional requests) and DELETE.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use berth_core::RepositoryName;
use http::{HeaderValue, Method, StatusCode, header};

use super::{Ctx, digest};
use crate::error::ApiError;
use crate::headers::{CONTENT_DIGEST, value};
use crate::range::{BlobRange, blob_range};

pub(crate) async fn get(ctx: Ctx, name: RepositoryName, dg: String) -> Result<Response, ApiError> {
    let dg = digest(&dg)?;
    let registry = ctx.state.registry.clone();
    let size = registry.stat_blob(&name, &dg).await?;
    let etag = format!("\"{dg}\"");
    let mut resp = Response::builder()
        .header(CONTENT_DIGEST, value(&dg.to_string()))
        .header(header::ETAG, value(&etag))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if ctx
        .header(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return build(resp.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    let (status, range) = match blob_range(ctx.header(header::RANGE), size) {
        BlobRange::Full => (StatusCode::OK, None),
        BlobRange::Partial(a, b) => {
            resp = resp.header(
                header::CONTENT_RANGE,
                value(&format!("bytes {a}-{b}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, Some((a, b)))
        }
        BlobRange::Unsatisfiable => {
            return Err(berth_core::Error::RangeNotSatisfiable { size }.into());
        }
    };
    let len = range.map_or(size, |(a, b)| b - a + 1);
    resp = resp
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = if ctx.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(registry.open_blob(&name, &dg, range).await?.stream)
    };
    build(resp, body)
}

fn build(resp: http::response::Builder, body: Body) -> Result<Response, ApiError> {
    resp.body(body)
        .map_err(|e| ApiError::from(berth_core::Error::Internal(e.to_string())))
}

pub(crate) async fn delete(
    ctx: Ctx,
    name: RepositoryName,
    dg: String,
) -> Result<Response, ApiError> {
    let dg = digest(&dg)?;
    ctx.state.registry.delete_blob(&name, &dg).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
