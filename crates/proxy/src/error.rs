//! What talking to an upstream can fail with, and how each failure reads to a client
//! of the cache (mapped once, here, into the domain error).

use berth_core::Error;

/// A failed exchange with an upstream registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered 404: it does not have what was asked for.
    #[error("not found upstream")]
    NotFound,
    /// The upstream could not be reached, or the connection failed mid-answer.
    #[error("upstream unreachable: {0}")]
    Transport(String),
    /// The upstream answered with a status the cache cannot use (5xx, a refusal).
    #[error("upstream answered {status}: {what}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// What was asked.
        what: String,
    },
    /// The upstream's answer is not what it claims: wrong digest, wrong length, not a
    /// manifest, a token response that is not one.
    #[error("upstream sent an invalid answer: {0}")]
    Invalid(String),
}

impl UpstreamError {
    /// The domain error a client sees; `unknown` is the 404 of the thing asked for.
    pub(crate) fn into_domain(self, unknown: impl FnOnce() -> Error) -> Error {
        match self {
            UpstreamError::NotFound => unknown(),
            other => Error::UpstreamUnavailable(other.to_string()),
        }
    }
}

impl From<reqwest::Error> for UpstreamError {
    fn from(e: reqwest::Error) -> Self {
        // The chain says what failed (refused, reset, timed out); the top line alone
        // rarely does.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        UpstreamError::Transport(message)
    }
}
