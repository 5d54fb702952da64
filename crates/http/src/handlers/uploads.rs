//! Upload sessions: POST (start, single-POST monolithic, mount), GET status, PATCH
//! (chunked and streamed), PUT (finish, with or without a last chunk), DELETE (cancel).
//! Session URLs carry distribution's `_state` token, so either kind of node continues
//! them; a request's token is checked here against the session its path names.

use axum::response::{IntoResponse, Response};
use berth_auth::Principal;
use berth_core::{
    Algorithm, BlobRead, Chunk, Digest, Error, Repository, RepositoryName, UploadId, UploadState,
};
use berth_notify::Action;
use http::{HeaderName, HeaderValue, StatusCode, header};
use time::OffsetDateTime;

use super::{Ctx, digest};
use crate::AppState;
use crate::error::ApiError;
use crate::headers::{CONTENT_DIGEST, UPLOAD_UUID, range_value, value};
use crate::range::content_range;
use crate::upload_state::UploadToken;

/// The answer naming a session: its `Location` (with a fresh `_state` token), progress
/// and id. `token` is the one the request carried, whose start time is echoed when the
/// answer does not know it.
fn session_response(
    ctx: &Ctx,
    name: &RepositoryName,
    st: &UploadState,
    token: Option<&UploadToken>,
    status: StatusCode,
) -> Response {
    let started = st
        .started
        .map(OffsetDateTime::from)
        .or(token.map(|t| t.started_at));
    let state =
        UploadToken::new(name, &st.id, st.offset, started).pack(&ctx.state.options.upload_secret);
    let state: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
    let location = ctx
        .state
        .url(&format!("{name}/blobs/uploads/{}?_state={state}", st.id));
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::LOCATION, value(&location)),
        (header::RANGE, range_value(st.offset)),
        (UPLOAD_UUID, value(st.id.as_str())),
        (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
    ];
    (status, headers).into_response()
}

/// The `_state` token of a request on a session, checked against the repository and id
/// its path names. Without one the session is still found by repository and id. One
/// that does not verify is refused when `http.secret` is configured (a fleet whose
/// nodes disagree on it), and ignored under this process's random key (it most likely
/// predates a restart).
fn request_token(
    ctx: &Ctx,
    name: &RepositoryName,
    id: &UploadId,
) -> Result<Option<UploadToken>, ApiError> {
    let Some(raw) = ctx.query.get("_state") else {
        return Ok(None);
    };
    let secret = &ctx.state.options.upload_secret;
    let token = match UploadToken::unpack(secret, raw) {
        Ok(t) => t,
        Err(e) if !secret.is_configured() => {
            tracing::debug!(error = %e, "ignoring an upload _state this process cannot verify");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    token.check(name, id)?;
    Ok(Some(token))
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

/// The request body as a chunk: its `Content-Range` start and length, checked against
/// `Content-Length`.
fn chunk(ctx: &mut Ctx) -> Result<Chunk, ApiError> {
    let declared = ctx
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    let (start, length) = match ctx.header(header::CONTENT_RANGE) {
        None => (None, declared),
        Some(raw) => {
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
            (Some(start), Some(len))
        }
    };
    Ok(Chunk {
        start,
        length,
        body: ctx.take_body(),
    })
}

/// Catalog pages searched for a blob to mount when no source is named.
const MOUNT_SCAN_PAGES: usize = 16;
/// Names per catalog page in that search.
const MOUNT_SCAN_PAGE: usize = 1000;

/// Mounts `digest` only from a repository the caller may pull. A mount the caller may
/// not make is not refused: it falls back to an ordinary upload session, exactly as when
/// the blob does not exist, so nothing about other repositories leaks.
async fn mount_visible(
    state: &AppState,
    principal: &Principal,
    repo: &dyn Repository,
    digest: &Digest,
    from: Option<&RepositoryName>,
) -> Result<bool, ApiError> {
    match from {
        Some(source) if principal.may_pull(source.as_str()) => {
            Ok(repo.mount_blob(digest, Some(source)).await?)
        }
        Some(_) => Ok(false),
        None if principal.is_unrestricted() => Ok(repo.mount_blob(digest, None).await?),
        None => {
            let mut last: Option<String> = None;
            for _ in 0..MOUNT_SCAN_PAGES {
                let page = state
                    .registry
                    .catalog(MOUNT_SCAN_PAGE, last.as_deref())
                    .await?;
                for name in page.entries.iter().filter(|n| principal.may_pull(n)) {
                    let Ok(source) = RepositoryName::parse(name) else {
                        continue;
                    };
                    if repo.mount_blob(digest, Some(&source)).await? {
                        return Ok(true);
                    }
                }
                if !page.more {
                    break;
                }
                last = page.entries.last().cloned();
            }
            Ok(false)
        }
    }
}

pub(crate) async fn start(mut ctx: Ctx, name: RepositoryName) -> Result<Response, ApiError> {
    let repo = ctx.repository(name.clone());
    if let Some(mount) = ctx.query.get("mount") {
        let dg = digest(mount)?;
        let from = ctx
            .query
            .get("from")
            .map(RepositoryName::parse)
            .transpose()?;
        if mount_visible(
            &ctx.state,
            &ctx.principal,
            repo.as_ref(),
            &dg,
            from.as_ref(),
        )
        .await?
        {
            if ctx.notifying_blob(Action::Mount) {
                // The event carries the size, which the mount did not need to read.
                let size = repo
                    .blob(&dg, BlobRead::default())
                    .await
                    .map_or(0, |b| b.size);
                ctx.emit(vec![ctx.blob_event(
                    Action::Mount,
                    &name,
                    &dg,
                    size,
                    from.as_ref(),
                )])
                .await;
            }
            return Ok(blob_created(&ctx, &name, &dg));
        }
    }
    if let Some(raw) = ctx.query.get("digest") {
        let dg = digest(raw)?;
        let st = repo.start_upload(dg.algorithm()).await?;
        let last = ctx.has_body().then(|| Chunk::stream(ctx.take_body()));
        let size = repo.finish_upload(&st.id, &dg, last).await?;
        if ctx.notifying_blob(Action::Push) {
            ctx.emit(vec![ctx.blob_event(Action::Push, &name, &dg, size, None)])
                .await;
        }
        return Ok(blob_created(&ctx, &name, &dg));
    }
    let algorithm = match ctx.query.get("digest-algorithm") {
        Some(a) => Algorithm::parse(a)?,
        None => Algorithm::Sha256,
    };
    let st = repo.start_upload(algorithm).await?;
    Ok(session_response(
        &ctx,
        &name,
        &st,
        None,
        StatusCode::ACCEPTED,
    ))
}

pub(crate) async fn status(
    ctx: Ctx,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response, ApiError> {
    let token = request_token(&ctx, &name, &id)?;
    let st = ctx.repository(name.clone()).upload_status(&id).await?;
    Ok(session_response(
        &ctx,
        &name,
        &st,
        token.as_ref(),
        StatusCode::NO_CONTENT,
    ))
}

pub(crate) async fn patch(
    mut ctx: Ctx,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response, ApiError> {
    let token = request_token(&ctx, &name, &id)?;
    let chunk = chunk(&mut ctx)?;
    let st = ctx
        .repository(name.clone())
        .upload_chunk(&id, chunk)
        .await?;
    Ok(session_response(
        &ctx,
        &name,
        &st,
        token.as_ref(),
        StatusCode::ACCEPTED,
    ))
}

pub(crate) async fn finish(
    mut ctx: Ctx,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response, ApiError> {
    request_token(&ctx, &name, &id)?;
    let raw = ctx
        .query
        .get("digest")
        .ok_or_else(|| Error::DigestInvalid("the digest query parameter is required".into()))?;
    let dg = digest(raw)?;
    // The last chunk's declared length is not checked: a PUT's Content-Length covers
    // only what it carries, and the digest check covers the whole blob.
    let last = if ctx.has_body() {
        let mut last = chunk(&mut ctx)?;
        last.length = None;
        Some(last)
    } else {
        None
    };
    let size = ctx
        .repository(name.clone())
        .finish_upload(&id, &dg, last)
        .await?;
    // distribution reports a blob push when its upload is committed.
    if ctx.notifying_blob(Action::Push) {
        ctx.emit(vec![ctx.blob_event(Action::Push, &name, &dg, size, None)])
            .await;
    }
    Ok(blob_created(&ctx, &name, &dg))
}

pub(crate) async fn cancel(
    ctx: Ctx,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response, ApiError> {
    request_token(&ctx, &name, &id)?;
    ctx.repository(name).cancel_upload(&id).await?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}
