//! Upload sessions: POST (start, single-POST monolithic, mount), GET status, PATCH
//! (chunked and streamed), PUT (finish, with or without a last chunk), DELETE (cancel).

use axum::response::{IntoResponse, Response};
use berth_core::{Algorithm, Digest, Error, RepositoryName, UploadState};
use http::{HeaderName, HeaderValue, StatusCode, header};

use super::{Ctx, digest};
use crate::error::ApiError;
use crate::headers::{CONTENT_DIGEST, UPLOAD_UUID, range_value, value};
use crate::range::content_range;

fn session_response(
    ctx: &Ctx,
    name: &RepositoryName,
    st: &UploadState,
    status: StatusCode,
) -> Response {
    let location = ctx.state.url(&format!("{name}/blobs/uploads/{}", st.id));
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::LOCATION, value(&location)),
        (header::RANGE, range_value(st.offset)),
        (UPLOAD_UUID, value(&st.id)),
        (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
    ];
    (status, headers).into_response()
}

fn blob_created(ctx: &Ctx, name: &RepositoryName, dg: &Digest) -> Response {
    let location = ctx.state.url(&format!("{name}/blobs/{dg}"));
    let headers: [(HeaderName, HeaderValue); 3] = [
        (header::LOCATION, value(&location)),
        (CONTENT_DIGEST, value(&dg.to_string())),
        (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
    ];
    (StatusCode::CREATED, headers).into_response()
}

/// The `Content-Range` start and length of a chunk, checked against `Content-Length`.
fn chunk_range(ctx: &Ctx) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let declared = ctx
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    let Some(raw) = ctx.header(header::CONTENT_RANGE) else {
        return Ok((None, declared));
    };
    let (start, len) = content_range(raw).ok_or_else(|| {
        Error::BlobUploadInvalid(format!(
            "malformed Content-Range {raw:?} (expected <start>-<end>)"
        ))
    })?;
    if let Some(cl) = declared.filter(|cl| *cl != len) {
        return Err(Error::SizeInvalid(format!(
            "Content-Range {raw:?} covers {len} bytes but Content-Length is {cl}"
        ))
        .into());
    }
    Ok((Some(start), Some(len)))
}

pub(crate) async fn start(mut ctx: Ctx, name: RepositoryName) -> Result<Response, ApiError> {
    let registry = ctx.state.registry.clone();
    if let Some(mount) = ctx.query.get("mount") {
        let dg = digest(mount)?;
        let from = ctx
            .query
            .get("from")
            .map(RepositoryName::parse)
            .transpose()?;
        if registry.mount_blob(&name, &dg, from.as_ref()).await? {
            return Ok(blob_created(&ctx, &name, &dg));
        }
    }
    if let Some(raw) = ctx.query.get("digest") {
        let dg = digest(raw)?;
        let st = registry.start_upload(&name, dg.algorithm()).await?;
        let chunk = ctx.has_body().then(|| (None, ctx.take_body()));
        registry.finish_upload(&name, &st.id, &dg, chunk).await?;
        return Ok(blob_created(&ctx, &name, &dg));
    }
    let algorithm = match ctx.query.get("digest-algorithm") {
        Some(a) => Algorithm::parse(a)?,
        None => Algorithm::Sha256,
    };
    let st = registry.start_upload(&name, algorithm).await?;
    Ok(session_response(&ctx, &name, &st, StatusCode::ACCEPTED))
}

pub(crate) async fn status(
    ctx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    let st = ctx.state.registry.upload_status(&name, &id).await?;
    Ok(session_response(&ctx, &name, &st, StatusCode::NO_CONTENT))
}

pub(crate) async fn patch(
    mut ctx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    let (start, len) = chunk_range(&ctx)?;
    let registry = ctx.state.registry.clone();
    let st = registry
        .upload_chunk(&name, &id, start, len, ctx.take_body())
        .await?;
    Ok(session_response(&ctx, &name, &st, StatusCode::ACCEPTED))
}

pub(crate) async fn finish(
    mut ctx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    let raw = ctx
        .query
        .get("digest")
        .ok_or_else(|| Error::DigestInvalid("the digest query parameter is required".into()))?;
    let dg = digest(raw)?;
    let (start, _) = chunk_range(&ctx)?;
    let registry = ctx.state.registry.clone();
    let chunk = ctx.has_body().then(|| (start, ctx.take_body()));
    registry.finish_upload(&name, &id, &dg, chunk).await?;
    Ok(blob_created(&ctx, &name, &dg))
}

pub(crate) async fn cancel(
    ctx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    ctx.state.registry.cancel_upload(&name, &id).await?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}
