//! Manifest GET/HEAD (with `Accept` negotiation), PUT (with `?tag=`) and DELETE.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use berth_core::{Digest, Error, Manifest, Reference, RepositoryName, StoredManifest, Tag, media};
use berth_notify::{Action, EventDraft};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::Ctx;
use crate::MAX_MANIFEST_BYTES;
use crate::error::ApiError;
use crate::headers::{CONTENT_DIGEST, OCI_SUBJECT, OCI_TAG, value};

/// Manifest media types a client may list in `Accept`.
const MANIFEST_TYPES: [&str; 6] = [
    media::OCI_MANIFEST,
    media::OCI_INDEX,
    media::DOCKER_MANIFEST,
    media::DOCKER_LIST,
    media::DOCKER_SCHEMA1,
    media::DOCKER_SCHEMA1_SIGNED,
];

/// Whether a client's `Accept` headers allow `media_type`. Like distribution, only a
/// client that names manifest types is held to them; no header, `*/*` or a generic
/// type gets what is stored.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let listed: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(media::essence)
        .collect();
    if !listed.iter().any(|t| MANIFEST_TYPES.contains(t)) {
        return true;
    }
    listed.iter().any(|t| *t == media_type || *t == "*/*")
}

/// The child a client that cannot take a list gets instead of it, as distribution
/// chooses: the `linux/amd64` entry, when the client accepts that entry's type.
fn default_platform_child(headers: &HeaderMap, list: &StoredManifest) -> Option<Digest> {
    if list.media_type != media::DOCKER_LIST && list.media_type != media::OCI_INDEX {
        return None;
    }
    let parsed = Manifest::parse(Some(&list.media_type), &list.body).ok()?;
    parsed
        .manifests
        .into_iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                && accepts(headers, &d.media_type)
        })
        .map(|d| d.digest)
}

pub(crate) async fn get(
    ctx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    let repo = ctx.repository(name.clone());
    let mut m = repo.get_manifest(&reference).await?;
    let tag = match &reference {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    };
    // Each manifest read is a pull, as in distribution: a list answered by its default
    // child is two.
    let mut pulled: Vec<EventDraft> = Vec::new();
    if ctx.notifying(Action::Pull, &m.media_type) {
        pulled.push(ctx.manifest_event(Action::Pull, &name, &m, tag));
    }
    // A manifest asked for by digest is served whatever the Accept header says: the
    // client named exactly these bytes.
    if matches!(reference, Reference::Tag(_)) && !accepts(&ctx.headers, &m.media_type) {
        let Some(child) = default_platform_child(&ctx.headers, &m) else {
            return Err(Error::ManifestUnknown(format!(
                "{name}:{reference} is a {} and the request's Accept header does not allow it",
                m.media_type
            ))
            .into());
        };
        m = repo.get_manifest(&Reference::Digest(child)).await?;
        if ctx.notifying(Action::Pull, &m.media_type) {
            pulled.push(ctx.manifest_event(Action::Pull, &name, &m, None));
        }
    }
    let etag = format!("\"{}\"", m.digest);
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::CONTENT_TYPE, value(&m.media_type)),
        (header::CONTENT_LENGTH, HeaderValue::from(m.body.len())),
        (CONTENT_DIGEST, value(&m.digest.to_string())),
        (header::ETAG, value(&etag)),
    ];
    if ctx
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, headers, Body::empty()).into_response());
    }
    // A 304 is not a pull in distribution (it answers before reading the manifest).
    ctx.emit(pulled).await;
    let body = if ctx.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(m.body)
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

/// Reads a manifest body, refusing more than [`MAX_MANIFEST_BYTES`]. An oversized body
/// is still read (and discarded) up to a bound, so the client receives the 413 instead of
/// a connection reset while it is still sending.
async fn read_limited(ctx: &mut Ctx) -> Result<Bytes, ApiError> {
    let limit = MAX_MANIFEST_BYTES;
    let drain_limit = 4 * limit;
    let declared = ctx
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size| ApiError::from(Error::ManifestTooLarge { size, limit });
    if let Some(size) = declared.filter(|s| *s > drain_limit) {
        return Err(too_large(size));
    }
    let mut stream = ctx.take_body();
    let mut buf = BytesMut::new();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Error::BodyRead)?;
        seen += chunk.len() as u64;
        if seen > drain_limit {
            return Err(too_large(seen));
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(too_large(seen));
    }
    Ok(buf.freeze())
}

pub(crate) async fn put(
    mut ctx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    let extra_tags = ctx
        .query
        .all("tag")
        .map(Tag::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let body = read_limited(&mut ctx).await?;
    let content_type = ctx.header(header::CONTENT_TYPE).map(str::to_owned);
    let put = ctx
        .repository(name.clone())
        .put_manifest(
            &reference,
            content_type.as_deref(),
            body.clone(),
            &extra_tags,
        )
        .await?;
    ctx.emit(pushed(&ctx, &name, content_type.as_deref(), body, &put))
        .await;
    let location = ctx.state.url(&format!("{name}/manifests/{}", put.digest));
    let mut resp = (
        StatusCode::CREATED,
        [
            (header::LOCATION, value(&location)),
            (CONTENT_DIGEST, value(&put.digest.to_string())),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response();
    let h = resp.headers_mut();
    if let Some(s) = &put.subject {
        h.insert(OCI_SUBJECT, value(&s.to_string()));
    }
    if !extra_tags.is_empty() {
        for t in &put.tags {
            h.append(OCI_TAG, value(t.as_str()));
        }
    }
    Ok(resp)
}

/// The push events of a stored manifest: one per tag the request set (distribution
/// sets at most one), or one without a tag.
fn pushed(
    ctx: &Ctx,
    name: &RepositoryName,
    content_type: Option<&str>,
    body: Bytes,
    put: &berth_core::PutManifest,
) -> Vec<EventDraft> {
    if ctx.state.options.notifier.is_none() {
        return Vec::new();
    }
    let Ok(parsed) = Manifest::parse(content_type, &body) else {
        return Vec::new();
    };
    let media_type = parsed.kind.media_type();
    if !ctx.notifying(Action::Push, media_type) {
        return Vec::new();
    }
    let stored = StoredManifest {
        digest: put.digest.clone(),
        media_type: media_type.to_owned(),
        body,
    };
    if put.tags.is_empty() {
        vec![ctx.manifest_event(Action::Push, name, &stored, None)]
    } else {
        put.tags
            .iter()
            .map(|t| ctx.manifest_event(Action::Push, name, &stored, Some(t)))
            .collect()
    }
}

pub(crate) async fn delete(
    ctx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    let untagged = ctx
        .repository(name.clone())
        .delete_manifest(&reference)
        .await?;
    if ctx.notifying(Action::Delete, "") {
        // As distribution: the manifest's delete, then one per tag removed with it.
        let mut drafts = Vec::with_capacity(untagged.len() + 1);
        if let Reference::Digest(d) = &reference {
            drafts.push(Ctx::deleted_event(&name, d));
        }
        drafts.extend(untagged.iter().map(|t| Ctx::tag_deleted_event(&name, t)));
        ctx.emit(drafts).await;
    }
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for a in accept {
            m.append(header::ACCEPT, a.parse().unwrap());
        }
        m
    }

    #[test]
    fn negotiation() {
        assert!(accepts(&h(&[]), media::OCI_INDEX));
        assert!(accepts(&h(&["application/json"]), media::OCI_INDEX));
        assert!(accepts(
            &h(&[media::DOCKER_MANIFEST, "*/*"]),
            media::OCI_INDEX
        ));
        assert!(!accepts(&h(&[media::DOCKER_MANIFEST]), media::OCI_INDEX));
        assert!(accepts(
            &h(&[&format!(
                "{}, {};q=0.5",
                media::DOCKER_MANIFEST,
                media::OCI_INDEX
            )]),
            media::OCI_INDEX
        ));
    }
}
