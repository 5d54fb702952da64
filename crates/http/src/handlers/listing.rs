//! Listings with pagination: `/v2/_catalog` and `/v2/<name>/tags/list`, with `n`, `last`
//! and an RFC 5988 `Link` to the next page.

use axum::Json;
use axum::response::{IntoResponse, Response};
use berth_core::{Error, Page, RepositoryName};
use http::header;

use super::Ctx;
use crate::error::ApiError;
use crate::headers::value;

/// Catalog page size when the client gives none (distribution's default).
const CATALOG_DEFAULT: usize = 100;
/// Largest catalog page a client may ask for (distribution's `catalog.maxentries`).
const CATALOG_MAX: usize = 1000;

fn with_link(
    ctx: &Ctx,
    path: &str,
    n: Option<usize>,
    page: &Page,
    body: serde_json::Value,
) -> Response {
    let mut resp = Json(body).into_response();
    if let (Some(n), true, Some(last)) = (n, page.more, page.entries.last()) {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", last)
            .finish();
        let link = format!("<{}?{query}>; rel=\"next\"", ctx.state.url(path));
        resp.headers_mut().insert(header::LINK, value(&link));
    }
    resp
}

pub(crate) async fn catalog(ctx: Ctx) -> Result<Response, ApiError> {
    let n = ctx.query.page_size()?;
    if let Some(n) = n.filter(|n| *n > CATALOG_MAX) {
        return Err(Error::PaginationInvalid(format!(
            "n={n} exceeds the maximum of {CATALOG_MAX}"
        ))
        .into());
    }
    let size = n.unwrap_or(CATALOG_DEFAULT);
    let page = ctx
        .state
        .registry
        .catalog(size, ctx.query.get("last"))
        .await?;
    let body = serde_json::json!({ "repositories": page.entries });
    Ok(with_link(&ctx, "_catalog", Some(size), &page, body))
}

pub(crate) async fn tags(ctx: Ctx, name: RepositoryName) -> Result<Response, ApiError> {
    let n = ctx.query.page_size()?;
    let page = ctx
        .repository(name.clone())
        .tags(n, ctx.query.get("last"))
        .await?;
    let body = serde_json::json!({ "name": name.as_str(), "tags": page.entries });
    Ok(with_link(
        &ctx,
        &format!("{name}/tags/list"),
        n,
        &page,
        body,
    ))
}
