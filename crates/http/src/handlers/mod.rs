//! Handlers: HTTP in, one registry call, HTTP out. `dispatch` is the one place that pairs
//! an endpoint and a method with a handler.

mod blobs;
mod events;
mod listing;
mod manifests;
mod referrers;
mod uploads;

use std::net::SocketAddr;

use axum::body::{Body, HttpBody};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::Principal;
use berth_core::{ByteStream, Digest, Repository, RepositoryName};
use futures::TryStreamExt;
use http::{HeaderMap, Method, StatusCode, header};

use crate::AppState;
use crate::access::{self, AuthenticatedUser};
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::metrics::{Route, Routed};
use crate::query::Query;
use crate::request_id::RequestId;

/// Everything a handler may look at.
pub(crate) struct Ctx {
    pub state: AppState,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    pub body: Body,
    /// Who asks, and what they may do.
    pub principal: Principal,
    /// The request's id (events carry it).
    pub request_id: Option<RequestId>,
    /// The TCP peer, when served over a socket (events carry it).
    pub peer: Option<SocketAddr>,
    /// The URI's authority (HTTP/2 requests carry the host there).
    pub authority: Option<String>,
}

impl Ctx {
    /// A request header as text.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Takes the request body as a byte stream (leaving an empty one behind).
    pub fn take_body(&mut self) -> ByteStream {
        let body = std::mem::take(&mut self.body);
        Box::pin(body.into_data_stream().map_err(std::io::Error::other))
    }

    /// Whether the request carries a (possibly) non-empty body.
    pub fn has_body(&self) -> bool {
        self.body.size_hint().exact() != Some(0)
    }

    /// The use cases of one repository.
    pub fn repository(&self, name: RepositoryName) -> Box<dyn Repository> {
        self.state.registry.repository(name)
    }
}

/// Parses a digest from the path or query.
pub(crate) fn digest(s: &str) -> Result<Digest, ApiError> {
    Ok(Digest::parse(s)?)
}

/// The catch-all route: parse the endpoint, check the method, run the handler. A
/// request that names an endpoint is counted in that route's metrics.
pub(crate) async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // Exactly one slash after `v2`: an empty path segment is not ignored, so
    // `/v2//team/app/...` names no repository rather than `team/app`.
    let path = parts.uri.path();
    let rest = path
        .strip_prefix("/v2")
        .map(|r| r.strip_prefix('/').unwrap_or(r))
        .unwrap_or(path);
    let endpoint = match Endpoint::parse(&parts.method, rest) {
        Ok(Some(ep)) => ep,
        Ok(None) => return ApiError::NoSuchEndpoint.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let route = Route::of(&endpoint);
    if state.options.continue_trace.is_some() {
        // Only exported spans need names: this costs an allocation per request.
        let span = tracing::Span::current();
        span.record("http.route", route.template());
        span.record(
            "otel.name",
            format!("{} {}", parts.method, route.template()).as_str(),
        );
    }
    if let Some(m) = &state.options.metrics {
        m.started(route);
    }
    let mut resp = routed(state, parts, body, endpoint).await;
    // The recording layer ends what `started` began when the body ends.
    resp.extensions_mut().insert(Routed(route));
    resp
}

/// `dispatch` once the endpoint is known.
async fn routed(
    state: AppState,
    parts: http::request::Parts,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let method = parts.method.clone();
    let query = Query::parse(parts.uri.query());
    // Access comes first: a refused request learns nothing, not even that the registry
    // is read-only.
    let principal = match access::check(&state, &method, &parts.headers, &endpoint, &query).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let (Some(limiter), Some(user)) = (&state.limiter, principal.user())
        && let Err(e) = limiter.check_user(user)
    {
        return e.into_response();
    }
    let reading = method == Method::GET || method == Method::HEAD;
    if state.options.read_only && !reading {
        return ApiError::ReadOnly.into_response();
    }
    let user = principal.user().map(|u| AuthenticatedUser(u.to_owned()));
    let notifying = state.options.notifier.is_some();
    let ctx = Ctx {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .filter(|_| notifying)
            .cloned(),
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .filter(|_| notifying),
        authority: parts
            .uri
            .authority()
            .filter(|_| notifying)
            .map(|a| a.as_str().to_owned()),
        state,
        method: parts.method,
        headers: parts.headers,
        query,
        body,
        principal,
    };
    let result = match (endpoint, method) {
        (Endpoint::Base, m) if reading => Ok(base(m)),
        (Endpoint::Catalog, Method::GET) => listing::catalog(ctx).await,
        (Endpoint::Tags { name }, Method::GET) => listing::tags(ctx, name).await,
        (Endpoint::Manifest { name, reference }, _) if reading => {
            manifests::get(ctx, name, reference).await
        }
        (Endpoint::Manifest { name, reference }, Method::PUT) => {
            manifests::put(ctx, name, reference).await
        }
        (Endpoint::Manifest { name, reference }, Method::DELETE) => {
            manifests::delete(ctx, name, reference).await
        }
        (Endpoint::Blob { name, digest }, _) if reading => blobs::get(ctx, name, digest).await,
        (Endpoint::Blob { name, digest }, Method::DELETE) => blobs::delete(ctx, name, digest).await,
        (Endpoint::Uploads { name }, Method::POST) => uploads::start(ctx, name).await,
        (Endpoint::Upload { name, id }, Method::GET) => uploads::status(ctx, name, id).await,
        (Endpoint::Upload { name, id }, Method::PATCH) => uploads::patch(ctx, name, id).await,
        (Endpoint::Upload { name, id }, Method::PUT) => uploads::finish(ctx, name, id).await,
        (Endpoint::Upload { name, id }, Method::DELETE) => uploads::cancel(ctx, name, id).await,
        (Endpoint::Referrers { name, digest }, Method::GET) => {
            referrers::list(ctx, name, digest).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    };
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(user) = user {
        resp.extensions_mut().insert(user);
    }
    resp
}

/// Paths outside `/v2/`.
pub(crate) async fn not_found() -> Response {
    ApiError::NoSuchEndpoint.into_response()
}

fn base(method: Method) -> Response {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from("{}")
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_LENGTH, "2"),
        ],
        body,
    )
        .into_response()
}
