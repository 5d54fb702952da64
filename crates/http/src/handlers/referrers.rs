//! `GET /v2/<name>/referrers/<digest>`: an OCI index of the manifests whose subject is
//! the digest, optionally filtered by `artifactType`.

use axum::response::{IntoResponse, Response};
use berth_core::{Digest, Error, RepositoryName, media};
use http::{HeaderValue, StatusCode, header};

use super::Ctx;
use crate::error::ApiError;
use crate::headers::OCI_FILTERS_APPLIED;

pub(crate) async fn list(ctx: Ctx, name: RepositoryName, dg: Digest) -> Result<Response, ApiError> {
    let filter = ctx.query.get("artifactType").filter(|t| !t.is_empty());
    let manifests = ctx.repository(name).referrers(&dg, filter).await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    let bytes =
        serde_json::to_vec(&body).map_err(|e| Error::internal_from("encoding referrers", e))?;
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, media::OCI_INDEX)],
        bytes,
    )
        .into_response();
    if filter.is_some() {
        resp.headers_mut().insert(
            OCI_FILTERS_APPLIED,
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
