//! The debug server's routes (`http.debug.addr`): the Prometheus exposition at the
//! configured path and `/debug/health`, distribution's JSON object of failing checks
//! (check name to error; `{}` when all pass), answered 503 while it is not empty.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_metrics::{CONTENT_TYPE, Collect, Encoder};
use http::header;

use crate::error::health_status;

/// Where the health status is served (distribution's path).
pub const HEALTH_PATH: &str = "/debug/health";

/// The failing checks, by name, with their last error.
pub type FailingChecks = Arc<dyn Fn() -> BTreeMap<String, String> + Send + Sync>;

/// The debug router: `metrics` (its path and what is scraped) when metrics are on, and
/// the health status from `failing`.
pub fn debug_router(
    metrics: Option<(String, Vec<Arc<dyn Collect>>)>,
    failing: FailingChecks,
) -> Router {
    let mut router = Router::new().route(
        HEALTH_PATH,
        get(move || {
            let failing = failing.clone();
            async move { health(&failing()) }
        }),
    );
    if let Some((path, collectors)) = metrics {
        let collectors = Arc::new(collectors);
        router = router.route(
            &path,
            get(move || {
                let collectors = collectors.clone();
                async move { scrape(&collectors) }
            }),
        );
    }
    router
}

fn health(failing: &BTreeMap<String, String>) -> Response {
    let body = serde_json::to_vec(failing).unwrap_or_else(|_| b"{}".to_vec());
    (
        health_status(failing.is_empty()),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn scrape(collectors: &[Arc<dyn Collect>]) -> Response {
    let mut enc = Encoder::new();
    for c in collectors {
        c.collect(&mut enc);
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], enc.finish()).into_response()
}
