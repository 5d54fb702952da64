//! The API's side of health checks: a flag the checks (run by the server) raise while
//! one fails, and the layer that answers every request 503 `UNAVAILABLE` while it is
//! raised, as distribution does. One atomic load per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Whether the registry is to be reported unavailable.
#[derive(Debug, Default)]
pub struct HealthGate {
    down: AtomicBool,
}

impl HealthGate {
    /// Raises (`true`) or lowers the flag.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Whether the flag is raised.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

/// Refuses every request while a check fails.
pub(crate) async fn gate(
    State(gate): State<Arc<HealthGate>>,
    req: Request,
    next: Next,
) -> Response {
    if gate.is_down() {
        return ApiError::Unavailable.into_response();
    }
    next.run(req).await
}
