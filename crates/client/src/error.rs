//! The client's one error type: what went wrong talking to a registry, with enough of
//! the request (and of the answer, when there was one) to explain itself in a test
//! failure or a benchmark's first-error field.

use crate::response::Response;

/// Why an operation gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path or a `Location`/`Link` value did not resolve to a URL.
    #[error("cannot resolve {reference:?} against {base}: {source}")]
    Url {
        /// What was resolved.
        reference: String,
        /// What it was resolved against.
        base: String,
        /// Why it failed.
        source: url::ParseError,
    },
    /// The HTTP client could not be built.
    #[error("cannot build HTTP client: {0}")]
    Build(String),
    /// The request got no answer (connection refused, reset, timed out ...).
    #[error("{what}: {detail}")]
    Transport {
        /// The request line, e.g. `GET http://127.0.0.1:5000/v2/`.
        what: String,
        /// The transport error with its causes.
        detail: String,
    },
    /// The registry answered with another status than the operation needs.
    #[error("expected status {want}; got {}", .got.describe())]
    Status {
        /// The status the operation needed.
        want: u16,
        /// The whole answer.
        got: Box<Response>,
    },
    /// The answer lacks a header the operation needs.
    #[error("missing {name} header; {}", .got.describe())]
    MissingHeader {
        /// The header's name.
        name: &'static str,
        /// The whole answer.
        got: Box<Response>,
    },
    /// The body is not the JSON the operation needs.
    #[error("{detail}; {}", .got.describe())]
    Body {
        /// What is wrong with it.
        detail: String,
        /// The whole answer.
        got: Box<Response>,
    },
    /// The lean raw `GET` failed (see [`crate::raw`]).
    #[error("GET {url}: {detail}")]
    Raw {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The blocking wrapper could not start its runtime.
    #[error("cannot start the client's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Callers that report failures as text (the conformance suite's check details, the
/// benchmark's first error) can use `?` on client results.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}

/// A reqwest error with its causes, which carry the useful part ("connection refused").
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
