//! berth-http: the OCI Distribution / Docker Registry V2 HTTP API over any
//! `berth_core::Registry`. One catch-all route feeds [`Endpoint::parse`]; one `match`
//! dispatches to handlers; `error.rs` is the only place that knows statuses and codes.

mod access;
mod debug;
mod endpoint;
mod error;
mod handlers;
mod headers;
mod health;
mod log;
mod metrics;
mod query;
mod range;
mod ratelimit;
mod request_id;
mod token;
mod unread_body;
mod upload_state;

use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use berth_auth::AccessController;
use berth_auth::issuer::Issuer;
use berth_core::Registry;
use http::{HeaderMap, HeaderName, HeaderValue};

pub use debug::{FailingChecks, HEALTH_PATH, debug_router};
pub use endpoint::Endpoint;
pub use error::ApiError;
pub use health::HealthGate;
pub use metrics::HttpMetrics;
pub use ratelimit::{BucketLimit, RateLimit, RateLimiter, TokenBuckets};
pub use request_id::{MAX_REQUEST_ID_LEN, REQUEST_ID, RequestId};
pub use upload_state::{StateError, UploadSecret};

/// Entry points for `fuzz/` to parsers this crate keeps private; not an API.
#[doc(hidden)]
pub mod fuzzing {
    use berth_core::RangeRequest;

    /// The `Range` parser of blob GETs.
    pub fn blob_range(header: Option<&str>) -> Option<RangeRequest> {
        crate::range::blob_range(header)
    }

    /// The `Content-Range` parser of upload PATCHes: start offset and length.
    pub fn content_range(header: &str) -> Option<(u64, u64)> {
        crate::range::content_range(header)
    }
}

/// Largest manifest accepted (distribution's limit); larger bodies get 413.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// HTTP-level settings from the configuration.
#[derive(Clone, Default)]
pub struct Options {
    /// Prefix every URL is served under (`http.prefix`), without trailing slash ("" for none).
    pub prefix: String,
    /// Scheme and host for absolute `Location` URLs (`http.host`); relative when `None`.
    pub host: Option<String>,
    /// Refuse every write (`storage.maintenance.readonly`).
    pub read_only: bool,
    /// Headers added to every response (`http.headers`).
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// Signs and checks the `_state` token of upload URLs (`http.secret`).
    pub upload_secret: UploadSecret,
    /// Authenticates and authorizes requests (`auth`); everyone may do everything
    /// without it.
    pub access: Option<Arc<AccessController>>,
    /// berth's own token endpoint: served at this path (the realm's) by this issuer.
    pub token_endpoint: Option<(String, Arc<Issuer>)>,
    /// Request rate limits (`berth.limits.ratelimit`); off by default.
    pub rate_limit: RateLimit,
    /// `log.fields` as one `key=value` text, carried by every request's span.
    pub log_fields: Option<Arc<str>>,
    /// Where requests are counted and timed (`http.debug.prometheus`); `None`: not at
    /// all.
    pub metrics: Option<Arc<HttpMetrics>>,
    /// Raised while a health check fails: every request is then answered 503.
    pub health: Option<Arc<HealthGate>>,
    /// Continues the caller's trace (its `traceparent`) in the request's span; `None`
    /// when traces are not exported.
    pub continue_trace: Option<ContinueTrace>,
    /// Whether the API is served over TLS (the scheme of the URLs events carry).
    pub tls: bool,
    /// Where events of successful pushes, pulls, mounts and deletes go
    /// (`notifications`); `None`: nowhere, and nothing is built for them.
    pub notifier: Option<berth_notify::Notifier>,
}

/// Makes a request's span the child of the trace its headers name.
pub type ContinueTrace = fn(&HeaderMap, &tracing::Span);

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) options: Arc<Options>,
    /// The rate limiter, when `options.rate_limit` turns one on.
    pub(crate) limiter: Option<Arc<RateLimiter>>,
}

impl AppState {
    /// The URL (absolute or relative) of a path below `/v2/`.
    pub(crate) fn url(&self, rest: &str) -> String {
        format!(
            "{}{}/v2/{rest}",
            self.options.host.as_deref().unwrap_or(""),
            self.options.prefix
        )
    }
}

/// The router serving `/v2/...` (under `options.prefix`), with request ids, request
/// logging, and, for answers that left a request body unread, the small rest of it read
/// or the connection's close announced (`unread_body`).
pub fn router(registry: Arc<dyn Registry>, options: Options) -> Router {
    let prefix = options.prefix.clone();
    let request_span = request_id::SpanSettings {
        fields: options.log_fields.clone(),
        continue_trace: options.continue_trace,
    };
    let metrics = options.metrics.clone();
    let health = options.health.clone();
    let token_endpoint = options.token_endpoint.clone();
    let state = AppState {
        registry,
        limiter: RateLimiter::new(options.rate_limit).map(Arc::new),
        options: Arc::new(options),
    };
    let limiter = state.limiter.clone();
    if let (Some(m), Some(l)) = (&metrics, &limiter) {
        m.watch_limiter(l.clone());
    }
    let mut api = Router::new()
        .route("/v2", any(handlers::dispatch))
        .route("/v2/", any(handlers::dispatch))
        .route("/v2/{*rest}", any(handlers::dispatch))
        .fallback(handlers::not_found);
    if let Some(limiter) = limiter.clone() {
        // Inside `common_headers`, so a refusal carries the API version header too.
        api = api.layer(axum::middleware::from_fn_with_state(
            limiter,
            ratelimit::limit_by_client,
        ));
    }
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::common_headers,
        ))
        .with_state(state);
    let mut app = if prefix.is_empty() {
        api
    } else {
        Router::new().nest(&prefix, api)
    };
    if let Some((path, issuer)) = token_endpoint {
        let mut endpoint = axum::routing::get(token::get)
            .post(token::post)
            .with_state(issuer);
        if let Some(limiter) = limiter.clone() {
            // Password guessing at the token endpoint is limited per client as well.
            endpoint = endpoint.layer(axum::middleware::from_fn_with_state(
                limiter,
                ratelimit::limit_by_client,
            ));
        }
        app = app.route(&path, endpoint);
    }
    if let Some(gate) = health {
        // Inside the recording layer, so refusals are logged (and not counted as any
        // route's, as in distribution, whose health check wraps its router).
        app = app.layer(axum::middleware::from_fn_with_state(gate, health::gate));
    }
    app.layer(axum::middleware::from_fn_with_state(
        metrics,
        log::observe_request,
    ))
    .layer(axum::middleware::from_fn_with_state(
        request_span,
        request_id::assign,
    ))
    // Outermost, so that every early answer (health gate, rate limit, access refusal,
    // unknown route) is covered.
    .layer(axum::middleware::from_fn(unread_body::close_if_unread))
}

#[cfg(test)]
mod tests;
