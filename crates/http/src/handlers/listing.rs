//! Listings with pagination: `/v2/_catalog` and `/v2/<name>/tags/list`, with `n`, `last`
//! and an RFC 5988 `Link` to the next page.

use axum::Json;
use axum::response::{IntoResponse, Response};
use berth_auth::Principal;
use berth_core::{Error, Page, RepositoryName};
use http::header;

use super::Ctx;
use crate::AppState;
use crate::error::ApiError;
use crate::headers::value;

/// Catalog page size when the client gives none (distribution's default).
const CATALOG_DEFAULT: usize = 100;
/// Largest catalog page a client may ask for (distribution's `catalog.maxentries`).
const CATALOG_MAX: usize = 1000;

/// Where the page after `page` starts.
fn next_after(page: &Page) -> Option<String> {
    page.more.then(|| page.entries.last().cloned()).flatten()
}

fn with_link(
    ctx: &Ctx,
    path: &str,
    n: Option<usize>,
    next: Option<&str>,
    body: serde_json::Value,
) -> Response {
    let mut resp = Json(body).into_response();
    if let (Some(n), Some(last)) = (n, next) {
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
    let last = ctx.query.get("last");
    let (entries, next) = if ctx.principal.lists_whole_catalog() {
        let page = ctx.state.registry.catalog(size, last).await?;
        let next = next_after(&page);
        (page.entries, next)
    } else {
        visible_catalog(&ctx.state, &ctx.principal, size, last).await?
    };
    let body = serde_json::json!({ "repositories": entries });
    Ok(with_link(
        &ctx,
        "_catalog",
        Some(size),
        next.as_deref(),
        body,
    ))
}

/// Catalog pages read at most to fill one filtered page; a page cut short still links
/// onward, so a caller who may see few repositories pages through the rest.
const FILTER_SCAN_PAGES: usize = 64;

/// The repositories the caller may pull, up to `size`, and the name the next page
/// starts after (`None`: no more).
async fn visible_catalog(
    state: &AppState,
    principal: &Principal,
    size: usize,
    last: Option<&str>,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let mut entries = Vec::new();
    let mut cursor = last.map(str::to_owned);
    for _ in 0..FILTER_SCAN_PAGES {
        let want = (size - entries.len()).max(1);
        let page = state.registry.catalog(want, cursor.as_deref()).await?;
        cursor = page.entries.last().cloned().or(cursor);
        entries.extend(page.entries.into_iter().filter(|n| principal.lists(n)));
        if !page.more {
            return Ok((entries, None));
        }
        if entries.len() >= size {
            break;
        }
    }
    Ok((entries, cursor))
}

pub(crate) async fn tags(ctx: Ctx, name: RepositoryName) -> Result<Response, ApiError> {
    let n = ctx.query.page_size()?;
    let page = ctx
        .repository(name.clone())
        .tags(n, ctx.query.get("last"))
        .await?;
    let next = next_after(&page);
    let body = serde_json::json!({ "name": name.as_str(), "tags": page.entries });
    Ok(with_link(
        &ctx,
        &format!("{name}/tags/list"),
        n,
        next.as_deref(),
        body,
    ))
}
